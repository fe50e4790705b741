"""The training recipe's part of a batch, as one object: what stages 0 and 1 add to the model's own inputs.

    inputs, recipe = split_batch(batch)          # a collated batch (model/data/batches.py)
    output = model(**inputs, recipe=recipe)      # ModalMixedModel.forward: loss = weighted CE + λ·diffusion (+ probe)

The model's forward takes what a model needs — token ids, latents, pictures, labels (MODEL_INPUTS) — and computes
the paper's loss (eq. 4). A recipe changes that loss without changing the model: which labels weigh more, which rows
see no picture, which latents are the diffusion targets when others are fed in, the drawing probe's term, λ for one
stage. `RecipeTerms` holds those, one field each; model/training/sft_batch.py fills them from the config's knobs.
"""

from dataclasses import dataclass, fields

import torch

# what ModalMixedModel.forward takes besides `recipe` and `with_slot_states`
MODEL_INPUTS = (
    "input_ids",
    "attention_mask",
    "labels",
    "latents",
    "pixel_values",
    "image_grid_thw",
    "image_embeds",
    "refine_latents",
)


@dataclass
class RecipeTerms:
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


RECIPE_KEYS = tuple(f.name for f in fields(RecipeTerms))


def split_batch(batch: dict) -> tuple[dict, RecipeTerms]:
    """A batch dict → (the model's inputs, the recipe's terms); ValueError naming a key that is neither."""
    unknown = [k for k in batch if k not in MODEL_INPUTS and k not in RECIPE_KEYS]
    if unknown:
        raise ValueError(
            f"batch keys {unknown} are neither model inputs {MODEL_INPUTS} nor recipe terms {RECIPE_KEYS}"
        )
    inputs = {k: v for k, v in batch.items() if k in MODEL_INPUTS}
    return inputs, RecipeTerms(**{k: v for k, v in batch.items() if k in RECIPE_KEYS})


def forward_batch(model, batch: dict, **terms):
    """`model` on a batch dict (a collated one, or prepare_batch's), with recipe terms set or overridden by name."""
    inputs, recipe = split_batch(batch)
    for name, value in terms.items():
        if name not in RECIPE_KEYS:
            raise ValueError(f"{name!r} is not a recipe term; terms: {RECIPE_KEYS}")
        setattr(recipe, name, value)
    return model(**inputs, recipe=recipe)
