"""One batch in parts of like length, whose losses add up to the batch's own: less padding, the same gradient.

    parts = split_by_length(batch, 2, model)       # a prepared stage-1 batch (model/training/sft_batch.py)
    for part in parts:                             # the rows sorted by length, each part cut to its longest row
        model(**inputs_of(part)).loss.backward()   # Σ parts' gradients == the whole batch's gradient

A random batch of sketch-world rows (110–330 tokens) is a third padding when every row is padded to the longest.
Sorting the batch's rows by length and running them as N parts, each padded only to its own longest row, leaves far
less: the same rows, so the same examples meet in a step as before. Each part's losses are divided by the whole
batch's sums (its weighted label tokens, the latent slots that take the diffusion loss, the drawing probe's known
slots) instead of its own, so the parts' losses add up to the batch's loss and their gradients to its gradient
(exact up to the order of float additions and the head's noise draws; tests/test_train_fast.py checks it).
Length-grouped batches (model/training/batch_stream.py) cut padding further by changing which rows meet, which
changed what the demo recipe learned (benchmarks/equivalence_train.py); this does not.

Stage 1 batches only (cached visual inputs); a batch with pictures as pixels (stage 0) or with a parallel model's
refinement drawings is returned whole.
"""

import torch

PER_ROW = ("input_ids", "attention_mask", "labels", "answer_mask", "label_weights", "blind_rows")
PER_SLOT = ("latents", "target_latents", "slot_labels")
WHOLE = ("pixel_values", "sketch_pixel_values", "refine_latents")  # batches with these are not split


def batch_sums(batch: dict, latent_id: int) -> dict:
    """The whole batch's loss denominators, as ModalMixedModel.forward counts them."""
    ids, labels = batch["input_ids"], batch["labels"]
    counted = ((labels[:, 1:] != -100) & (ids[:, 1:] != latent_id)).float()
    weights = counted if batch.get("label_weights") is None else counted * batch["label_weights"][:, 1:].float()
    slot_rows = (ids == latent_id).nonzero(as_tuple=True)[0]
    sighted = torch.ones_like(slot_rows, dtype=torch.bool)
    if batch.get("blind_rows") is not None:
        sighted = ~batch["blind_rows"].to(slot_rows.device)[slot_rows]
    known = sighted
    if batch.get("slot_labels") is not None:
        known = sighted & (batch["slot_labels"].to(slot_rows.device) >= 0)
    return {
        "text_norm": max(float(weights.sum()), 1e-6),
        "latent_norm": max(float(sighted.sum()), 1.0),
        "draw_norm": max(float(known.sum()), 1.0),
    }


def split_by_length(batch: dict, parts: int, model) -> list[dict]:
    """`batch`'s rows sorted by length in `parts` parts (fewer when it has fewer rows), each cut to its longest row
    and carrying the whole batch's denominators; `model` gives the special token ids and the tokens per picture. A
    batch that cannot be split (module docstring) comes back as [batch]."""
    rows = batch["input_ids"].shape[0]
    if parts <= 1 or rows < 2 or any(batch.get(k) is not None for k in WHOLE):
        return [batch]
    ids = batch["input_ids"]
    lengths = batch["attention_mask"].sum(1)
    order = torch.argsort(lengths, stable=True).tolist()
    groups = [order[i * rows // parts : (i + 1) * rows // parts] for i in range(min(parts, rows))]
    sums = batch_sums(batch, model.latent_id)
    slot_start = [0, *(ids == model.latent_id).sum(1).cumsum(0).tolist()]
    # every picture is merged into the same number of tokens (pictures are resized to the model's image size)
    per_picture = model.tokens_per_image
    picture_start = [0, *((ids == model.image_token_id).sum(1) // per_picture).cumsum(0).tolist()]
    out = []
    for group in groups:
        group = sorted(group)  # row order kept inside a part: latents and pictures stay row-major
        longest = int(lengths[group].max())
        part = {k: v for k, v in batch.items() if not torch.is_tensor(v)}
        for key in PER_ROW:
            if batch.get(key) is not None:
                value = batch[key][group]
                part[key] = value[:, :longest] if value.dim() == 2 else value
        slots = [i for r in group for i in range(slot_start[r], slot_start[r + 1])]
        for key in PER_SLOT:
            if batch.get(key) is not None:
                part[key] = batch[key][slots]
        if batch.get("image_embeds") is not None:
            pictures = [i for r in group for i in range(picture_start[r], picture_start[r + 1])]
            tokens = [t for i in pictures for t in range(i * per_picture, (i + 1) * per_picture)]
            part["image_grid_thw"] = batch["image_grid_thw"][pictures]
            part["image_embeds"] = batch["image_embeds"][tokens]
        out.append({**part, **sums})
    return out
