"""Parallel sketch decoding: learned slot queries, and the layout that trains them in a teacher-forced forward.

With `sketch_decoding: parallel` (model/core/model_config.py) a sketch is not drawn one latent per decode step,
each from the state after the model's own previous latent (the paper's sequential decoding, whose slots drift on
their own earlier drawings: ../shared/FINDINGS.md, 3), but all at once, after SCOLAR (arXiv 2605.12163) and PCCoT
(arXiv 2506.18582):

1. at ⟨START⟩ the K slot positions are filled with learned, position-aware slot queries (`SlotQueries`, plus the
   slot's cell position where the model has them), attending the prefix and each other;
2. one forward pass gives every slot's hidden state, and the head draws all K latents in one batched call;
3. optionally R refinement passes: the queries again, each carrying the previous pass's drawing of its slot, so
   every slot is re-drawn seeing the whole previous drawing (a few steps of an iterative solver);
4. the drawn latents are written into the KV cache in one pass at the slots' positions, then ⟨END⟩.

The query positions are a side branch: nothing after the sketch attends them, only the latents written in step 4.
The engine (model/generation/engine.py) runs them against the KV cache and crops them off again. A teacher-forced
forward gets the same thing by `add_query_blocks`: after a row's last position it appends one block of K query
positions per sketch and pass, with the rotary positions of the sketch's slots and an attention mask that lets a
block see exactly what its queries see at inference (the row up to its ⟨START⟩, under the sketch gate as the slots
are, and its own block), while no real position sees any block. The query pass takes no true latents, so drawing is
trained on exactly what inference feeds it: no exposure bias for self-feeding to fix.

Simplified: within a block the queries attend each other both ways (they are a set, not a sequence); refinement
passes see the previous drawing as inputs, not through the cache.
"""

import torch
import torch.nn as nn


class SlotQueries(nn.Module):
    """What the K query positions of a parallel sketch are fed: a learned vector per slot, and for refinement
    passes a learned marker plus the previous drawing of the slot (as the model reads latents, positions added)."""

    def __init__(self, latent_budget: int, dim: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(latent_budget, dim) * 0.02)  # (K, D)
        self.refine = nn.Parameter(torch.zeros(dim))  # added in refinement passes

    @property
    def latent_budget(self) -> int:
        return self.queries.shape[0]

    def forward(self, slot_index: torch.Tensor, previous_inputs: torch.Tensor | None = None) -> torch.Tensor:
        """slot_index (N,) → (N, D) query inputs; `previous_inputs` (N, D): the previous pass's drawing of each slot
        as the model reads a latent there (ModalMixedModel.latent_inputs), for a refinement pass."""
        out = self.queries[slot_index]
        if previous_inputs is not None:
            out = out + self.refine + previous_inputs.to(out.dtype)
        return out


def sketch_numbers(rows: torch.Tensor, slot_index: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For latent slots listed row-major (rows, slot_index: (M,)): each slot's sketch number within its row (M,),
    and the number of sketches per row (B,)."""
    first = slot_index == 0
    per_row = torch.zeros(batch, dtype=torch.long, device=rows.device).index_add_(0, rows[first], first[first].long())
    before = per_row.cumsum(0) - per_row  # sketches in earlier rows
    return first.long().cumsum(0) - 1 - before[rows], per_row


def add_query_blocks(
    embeds: torch.Tensor,
    positions: torch.Tensor,
    mask: torch.Tensor,
    rows: torch.Tensor,
    slot_positions: torch.Tensor,
    slot_index: torch.Tensor,
    pass_inputs: list[torch.Tensor],
    latent_budget: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The teacher-forced layout of parallel decoding: query blocks appended after each row's real positions.

    embeds (B, L, D), positions (3, B, L), mask (B, 1, L, L) bool (True: may attend); rows, slot_positions,
    slot_index (M,): the latent slots, row-major; pass_inputs: P tensors (M, D), what each slot's query is fed in
    pass p. → embeds (B, L + Q, D), positions (3, B, L + Q), mask (B, 1, L + Q, L + Q), columns (P, M): the column
    of slot m's query in pass p. Q = the most sketches in a row × P × K; unused columns attend only themselves.
    """
    batch, length, _ = embeds.shape
    K, P = latent_budget, len(pass_inputs)
    number, per_row = sketch_numbers(rows, slot_index, batch)
    extra = int(per_row.max()) * P * K if len(rows) else 0
    total = length + extra
    passes = torch.arange(P, device=rows.device)[:, None]  # (P, 1)
    block_start = length + (number[None] * P + passes) * K  # (P, M)
    columns = block_start + slot_index[None]  # (P, M)

    out_embeds = torch.cat([embeds, embeds.new_zeros(batch, extra, embeds.shape[-1])], dim=1)
    out_positions = torch.cat([positions, positions.new_zeros(3, batch, extra)], dim=2)
    out_mask = torch.zeros(batch, 1, total, total, dtype=torch.bool, device=mask.device)
    out_mask[:, :, :length, :length] = mask
    # a query sees what its slot sees, up to and including the sketch's ⟨START⟩ (no slot of its own sketch)
    starts = slot_positions - slot_index - 1  # (M,)
    keys = torch.arange(length, device=mask.device)
    sees = mask[rows, 0, slot_positions] & (keys[None] <= starts[:, None])  # (M, L)
    block = block_start[:, :, None] + torch.arange(K, device=rows.device)  # (P, M, K)
    for p in range(P):
        out_embeds[rows, columns[p]] = pass_inputs[p].to(out_embeds.dtype)
        out_positions[:, rows, columns[p]] = positions[:, rows, slot_positions]
        out_mask[rows, 0, columns[p], :length] = sees
        out_mask[rows[:, None], 0, columns[p][:, None], block[p]] = True  # its own block, both ways
    padding = torch.arange(length, total, device=mask.device)
    out_mask[:, 0, padding, padding] = True  # unused query columns: no empty softmax rows
    return out_embeds, out_positions, out_mask, columns
