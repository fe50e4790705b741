"""A collated batch split into the model's inputs and the training recipe's loss terms.

    inputs, terms = split_batch(batch)           # a collated batch (model/data/batches.py)
    output = model(**inputs, terms=terms)        # ModalMixedModel.forward: loss = weighted CE + λ·diffusion (+ probe)

A batch dict carries both what the model's forward takes (MODEL_INPUTS) and what a recipe changes in its loss (the
fields of model/core/loss_terms.py `LossTerms`: label weights, blind rows, other diffusion targets, the drawing
probe's term, λ for a stage, constant denominators); model/training/sft_batch.py adds the latter from the config's
knobs.
"""

from model.core.loss_terms import TERM_NAMES, LossTerms

# what ModalMixedModel.forward takes besides `terms` and `with_slot_states`
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


def split_batch(batch: dict) -> tuple[dict, LossTerms]:
    """A batch dict → (the model's inputs, the recipe's loss terms); ValueError naming a key that is neither."""
    unknown = [k for k in batch if k not in MODEL_INPUTS and k not in TERM_NAMES]
    if unknown:
        raise ValueError(f"batch keys {unknown} are neither model inputs {MODEL_INPUTS} nor loss terms {TERM_NAMES}")
    inputs = {k: v for k, v in batch.items() if k in MODEL_INPUTS}
    return inputs, LossTerms(**{k: v for k, v in batch.items() if k in TERM_NAMES})


def forward_batch(model, batch: dict, **terms):
    """`model` on a batch dict (a collated one, or prepare_batch's), with loss terms set or overridden by name."""
    inputs, loss_terms = split_batch(batch)
    for name, value in terms.items():
        if name not in TERM_NAMES:
            raise ValueError(f"{name!r} is not a loss term; terms: {TERM_NAMES}")
        setattr(loss_terms, name, value)
    return model(**inputs, terms=loss_terms)
