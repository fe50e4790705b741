"""Shared fixtures: offline, seeded, CPU; the tiny preset built once per session."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # tiny tensors: threads cost more than they give, and CI has 2 cores


@pytest.fixture(scope="session")
def tiny_model():
    from model.checkpoint import build_preset

    model = build_preset("tiny", seed=0)
    model.eval()
    return model


def bias_towards_sketching(model, bias: float = 4.0):
    """Make a randomly initialised model sketch now and then: spread the head's zero-initialised output layers (or
    every latent would be the same vector) and add `bias` to the ⟨START⟩ logit. Returns the model."""
    for layer in (model.head.output, model.head.final_modulation[1]):
        torch.nn.init.normal_(layer.weight, std=0.05)
    plain_logits = model.logits

    def biased(hidden):
        out = plain_logits(hidden)
        out[..., model.start_id] += bias
        return out

    model.logits = biased
    return model
