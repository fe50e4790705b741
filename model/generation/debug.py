"""Test and smoke-run helpers: make a model with random weights behave enough like a trained one to exercise sketches.

Used by the tests (tests/conftest.py) and by the app's hidden `--debug-sketch-bias` flag; never by training.
"""

import torch


def bias_towards_sketching(model, bias: float = 4.0, seed: int = 0):
    """Add `bias` to the ⟨START⟩ logit so the model sketches now and then, and, while the head's zero-initialised
    output layers are still zero (every latent would be the same vector), give them a seeded spread. Returns the
    model."""
    head = model.head
    if head is not None and not any(bool(p.abs().sum()) for p in head.output.parameters()):
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in (head.output, head.final_modulation[1]):
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * 0.05)
    plain_logits = model.logits

    def biased(hidden):
        out = plain_logits(hidden)
        out[..., model.start_id] += bias
        return out

    model.logits = biased
    return model
