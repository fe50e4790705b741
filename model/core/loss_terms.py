"""What a training recipe changes in the model's loss, as one typed object that `ModalMixedModel.forward` takes.

    output = model(input_ids, labels=labels, latents=latents, terms=LossTerms(label_weights=w, blind_rows=blind))

The forward takes what a model needs — token ids, latents, pictures, labels — and computes the paper's loss (eq. 4:
CE over the text labels + λ · the diffusion loss at every latent slot). A recipe changes that loss without changing
the model: which labels weigh more, which rows see no picture, which latents are the diffusion targets when others
are fed in, the drawing probe's term, λ for one stage, constant denominators for length-grouped batches. Each is one
field here, None (or 0) meaning "the loss as it stands"; model/training/recipe.py splits a batch into the model's
inputs and these terms, model/training/sft_batch.py and loss_scale.py fill them from the config's knobs.
"""

from dataclasses import dataclass, fields

import torch


@dataclass
class LossTerms:
    label_weights: torch.Tensor | None = None  # (B, L) weight of each label in the text loss (default 1)
    answer_mask: torch.Tensor | None = None  # (B, L) labels that carry the answer: their mean loss is answer_loss
    target_latents: torch.Tensor | None = None  # (M, D) diffusion targets, when the latents fed in are not them
    blind_rows: torch.Tensor | None = None  # (B,) rows in which no position sees the picture (no diffusion loss)
    slot_labels: torch.Tensor | None = None  # (M,) colour index of each latent slot's cell, -100 where unknown
    draw_loss_weight: float = 0.0  # > 0: the drawing probe's cross-entropy on the drawing states, at this weight
    diffusion_loss_weight: float | None = None  # λ for this batch (stage 0: 0); None: the model's own
    # constant denominators instead of the batch's own sums (model/training/loss_scale.py: length-grouped batches);
    # None: each loss is a mean over this batch
    text_norm: float | None = None  # the text loss: the weighted label tokens of an average batch
    latent_norm: float | None = None  # the diffusion loss: the latent slots that take it in an average batch
    draw_norm: float | None = None  # the drawing probe's loss: its known slots in an average batch
    # stage 0: the sketches' pictures instead of latents; the model pools them from its encoder, with gradients
    sketch_pixel_values: torch.Tensor | None = None
    sketch_image_grid_thw: torch.Tensor | None = None


TERM_NAMES = tuple(f.name for f in fields(LossTerms))
