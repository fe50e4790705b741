"""Where things sit in an interleaved sequence: the latent slots of each sketch, and who may attend whom.

    rows, positions, slot_index = latent_slots(input_ids, ids, latent_budget)
    mask = gate_mask(input_ids, attention_mask, ids, sketch_gate=True, blind_rows=None)   # (B, 1, L, L)

`ids` is any object with the model's special token ids (`start_id`, `end_id`, `latent_id`, `image_token_id`): the
model passes itself. Both are plain functions of the ids, so the model, the engine and the tests share one reading.
"""

import torch


def latent_slots(input_ids: torch.Tensor, ids, latent_budget: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rows, positions, slot index k) of every latent slot, checking each sketch holds exactly K slots (a sketch
    still open at the end of the row may hold fewer)."""
    rows, positions = (input_ids == ids.latent_id).nonzero(as_tuple=True)
    slot_index = torch.zeros_like(positions)
    length = input_ids.shape[1]
    i = 0
    while i < len(positions):
        j = i
        while j + 1 < len(positions) and rows[j + 1] == rows[i] and positions[j + 1] == positions[j] + 1:
            j += 1
        row, first, last = int(rows[i]), int(positions[i]), int(positions[j])
        run = last - first + 1
        if first == 0 or int(input_ids[row, first - 1]) != ids.start_id:
            raise ValueError(f"latent slots at row {row}, position {first} do not follow ⟨START⟩")
        open_at_end = last == length - 1
        if run > latent_budget or (run < latent_budget and not open_at_end):
            raise ValueError(
                f"sketch at row {row}, position {first} has {run} latent slots; the latent budget K is {latent_budget}"
            )
        if not open_at_end and int(input_ids[row, last + 1]) != ids.end_id:
            raise ValueError(f"sketch at row {row}, position {first} is not closed by ⟨END⟩ after K slots")
        slot_index[i : j + 1] = torch.arange(run, device=positions.device)
        i = j + 1
    return rows, positions, slot_index


def gate_mask(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, ids, sketch_gate: bool, blind_rows=None
) -> torch.Tensor:
    """The attention mask of a whole sequence, 4-D (B, 1, L, L), True where a query may attend a key.

    Causal and padding as usual; with `sketch_gate`, a query at or after its row's first ⟨END⟩ cannot attend the
    problem image tokens (LaViT-style), so the text after a sketch cannot look the answer up in the picture. It can
    still reach the picture indirectly, through the hidden states of earlier positions that saw it (the question,
    the sketch's slots). `blind_rows` (B,) hides the image from every position of those rows, so nothing in them
    knows the picture and what follows a sketch can only come from the latents fed in (training only: a row that
    reads its answer from true latents, with no picture to fall back on).
    """
    batch, length = input_ids.shape
    positions = torch.arange(length, device=input_ids.device)
    keep = positions[None, :, None] >= positions[None, None, :]  # (1, L, L) causal: query ≥ key
    keep = keep & attention_mask.bool()[:, None, :]  # (B, L, L)
    cut = torch.full((batch,), length, device=input_ids.device)
    if sketch_gate:
        ends = input_ids == ids.end_id
        cut = torch.where(ends.any(1), ends.int().argmax(1), cut)  # each row's first ⟨END⟩
    if blind_rows is not None:
        cut = torch.where(blind_rows.to(cut.device), torch.zeros_like(cut), cut)
    gated = (positions[None, :] >= cut[:, None])[:, :, None] & (input_ids == ids.image_token_id)[:, None, :]
    return (keep & ~gated).unsqueeze(1)
