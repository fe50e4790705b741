"""How a sketch's latents are drawn at inference, the two decodings side by side, and the cache they write into.

    plan = SketchPlan(MODE_SPECS["auto"], steps=5, snap=True, passes=0)
    latents = draw_sequential(model, hidden[inside], inside, rows, prompts, plan)     # one slot per row, this step
    hidden = yield from draw_parallel(model, context, step_embeds, starters, rows, prompts, plan)   # whole sketches

Sequential (the paper's): a row inside a sketch gets one latent a decode step, drawn by the head from the hidden
state one position before the slot; the engine feeds it back like a token. Parallel (model/core/slot_queries.py): the
step that writes ⟨START⟩ also carries the K slot queries of the rows that draw; the head draws all K latents from the
queries' states at once, re-draws them in each refinement pass (each pass against the cache, then cropped off it), and
one more pass writes the K latents and ⟨END⟩ into the cache, so the whole sketch takes one engine step.

In both, the mode decides where a latent comes from (model/generation/modes.py): its `replace` function (noise, zeros,
from the same standard-normal draw the head would start from), the sketches given with the prompt (oracle,
shuffled-latents: the first sketches of the answer, then the head's), or the head, whose drawing snaps to the
checkpoint's codebook with `plan.snap`. `Context` is the batch's KV cache with what each row may attend: its real
positions, minus the problem image's tokens once the row has closed a sketch (the sketch gate, as in training).
"""

from dataclasses import dataclass

import torch

from model.generation.modes import Mode
from model.generation.rows import RowState
from model.generation.trace import TraceEvent


@dataclass(frozen=True)
class SketchPlan:
    """What one engine call draws sketches with."""

    mode: Mode  # the mode the rows run
    steps: int  # diffusion steps T of each draw
    snap: bool  # the head's drawings snap to the checkpoint's codebook
    passes: int  # parallel decoding: refinement passes after the first drawing


@dataclass
class Context:
    """The batch's KV cache and, per row, which cached positions its next inputs may attend."""

    cache: object  # transformers' DynamicCache
    mask: torch.Tensor  # (B, cached): 1 where the position is the row's (0: left padding, steps after it finished)
    image_keys: torch.Tensor  # (B, cached) bool: the problem image tokens
    gated: torch.Tensor  # (B,) bool: rows past their first ⟨END⟩, which no longer attend the image tokens
    next_pos: torch.Tensor  # (B,) each row's next rotary position

    def visible(self) -> torch.Tensor:
        """(B, cached) bool: what each row's next input may attend."""
        return self.mask.bool() & ~(self.image_keys & self.gated[:, None])

    def grow(self, columns: torch.Tensor) -> None:
        """Room for the next inputs: `columns` (B, n) joins the mask (1: the row writes there), as non-image keys."""
        self.mask = torch.cat([self.mask, columns], dim=1)
        self.image_keys = torch.cat([self.image_keys, torch.zeros_like(self.image_keys[:, :1]).expand_as(columns)], 1)

    def step(self, model, step_embeds: torch.Tensor) -> torch.Tensor:
        """One input per row (B, 1, D) through the cache at each row's next position (the mask already grown for
        it). → the hidden state after it (B, D)."""
        step_mask = self.mask
        if bool(self.gated.any()):  # (B, 1, 1, cached + 1): padding and the gate, for this one query per row
            step_mask = self.visible()[:, None, None, :]
        hidden = model.decode_step(step_embeds, step_mask, self.next_pos, self.cache)[:, -1]
        self.next_pos = self.next_pos + 1
        return hidden


def given_sketch(prompt, row: RowState, mode: Mode) -> torch.Tensor | None:
    """The sketch (K, D) the row is inside when the prompt brought it (an inserting mode), else None."""
    given, number = prompt.oracle_latents, row.num_sketches
    return given[number] if mode.inserts and given is not None and number < len(given) else None


def head_draws(prompt, row: RowState, mode: Mode) -> bool:
    """Whether the latent head draws the sketch the row is in (auto; an inserting mode past its given sketches)."""
    return mode.sketches and mode.replace is None and given_sketch(prompt, row, mode) is None


# ---- sequential: one latent per row and step ----------------------------------------------------------------------
def draw_sequential(model, hidden, inside: list[int], rows: list[RowState], prompts, plan: SketchPlan):
    """The next latent of each row in `inside` (rows inside a sketch), from `hidden` (n, D), their states one position
    before the slot; recorded on the rows. → (n, D) as the backbone reads them at the slots (latent_inputs)."""
    mode = plan.mode
    slot = torch.tensor([rows[b].slots_done for b in inside], device=hidden.device)
    cond = model.head.condition(hidden, slot) if model.head is not None else None
    dim = model.config.hidden_size
    noise = torch.stack([torch.randn(dim, generator=rows[b].generator, device=hidden.device) for b in inside])
    # the head runs only for rows that draw their own latent (every row is independent of the others)
    drawing = [j for j, b in enumerate(inside) if head_draws(prompts[b], rows[b], mode)]
    drawn = {}
    if drawing:
        pick = torch.tensor(drawing, device=hidden.device)
        start = noise[pick].to(cond.dtype) * model.config.sketch_temperature  # noise-latents keeps scale 1
        sampled = model.head.sample(cond[pick], plan.steps, noise=start, solver=model.config.diffusion_solver)
        sampled = model.destandardize(sampled)
        drawn = dict(zip(drawing, model.sketch_codebook.snap(sampled, slot[pick]) if plan.snap else sampled))
    out = []
    for j, b in enumerate(inside):
        row, given = rows[b], given_sketch(prompts[b], rows[b], mode)
        sketch = row.drawing.segment
        if mode.replace is not None:  # the mode's own latents (noise, zeros, …) instead of the head's
            latent, sketch.source = mode.replace(model, noise[j : j + 1])[0], mode.source
        elif given is not None:
            latent, sketch.source = given[row.slots_done].to(hidden.device, hidden.dtype), mode.source
        else:
            latent, sketch.snapped = drawn[j], plan.snap
        row.drawing.latents.append(latent.float().cpu())
        if cond is not None:
            row.drawing.conditions.append(cond[j].float().cpu())
        out.append(latent)
    return model.latent_inputs(torch.stack(out), slot)


# ---- parallel: every slot of a sketch in the step that opens it ---------------------------------------------------
def draw_parallel(model, context: Context, step_embeds, starters: list[int], rows, prompts, plan: SketchPlan):
    """The step in which the `starters` rows write ⟨START⟩ (step_embeds (B, 1, D), the mask grown for it), and the
    whole of their sketches: the first query pass (with ⟨START⟩), the refinement passes, one head draw per pass, and
    the latents + ⟨END⟩ written into the cache. Yields a `sketch_pass` event per pass and drawing row; records the
    latents on the rows; returns every row's hidden state after this step (B, D) (a starter's after its ⟨END⟩)."""
    K = model.latent_budget
    heads = [b for b in starters if head_draws(prompts[b], rows[b], plan.mode)]
    if heads:  # ⟨START⟩ goes in with the K slot queries of the rows that draw
        hidden, states = _start_with_queries(model, context, step_embeds, heads)
        context.next_pos = context.next_pos + 1
    else:
        hidden, states = context.step(model, step_embeds), None
    starting = torch.zeros(len(rows), dtype=torch.bool, device=model.device)
    starting[starters] = True
    sees = context.visible()[:, None, None, :]  # (B, 1, 1, cached)
    drawn, conditions = yield from _passes(model, context, sees, starting, heads, states, rows, plan)
    latents = torch.zeros(len(rows), K, model.config.hidden_size, device=model.device)
    for b in starters:
        latents[b] = _sketch_latents(model, rows[b], prompts[b], plan, drawn.get(b)).float()
        if b in conditions:
            rows[b].drawing.conditions.extend(conditions[b].float().cpu())
        rows[b].positions += K
    hidden[starters] = _write_sketches(model, context, sees, starting, starters, latents)
    context.next_pos[starters] += K + 1
    return hidden


def _start_with_queries(model, context: Context, step_embeds, heads: list[int]):
    """One step widened by K columns: every row's input as usual (⟨START⟩ for the rows opening a sketch) and, for the
    `heads` rows, the K slot queries of the first pass after it, attending the cache, their ⟨START⟩ and each other;
    the query columns are cropped off the cache again. → (hidden (B, D), states (H, K, D))."""
    K, batch, mask = model.latent_budget, len(context.gated), context.mask
    device = step_embeds.device
    slot = torch.arange(K, device=device)
    queries = torch.zeros(batch, K, step_embeds.shape[-1], device=device, dtype=step_embeds.dtype)
    queries[heads] = model.query_inputs(slot).to(step_embeds.dtype).expand(len(heads), -1, -1)
    step_mask = torch.zeros(batch, 1, 1 + K, mask.shape[1] + K, dtype=torch.bool, device=device)
    step_mask[:, 0, :, : mask.shape[1]] = context.visible()[:, None]
    drawing = torch.zeros(batch, dtype=torch.bool, device=device)
    drawing[heads] = True
    block = torch.where(drawing[:, None, None], torch.ones(K, K, dtype=torch.bool, device=device),
                        torch.eye(K, dtype=torch.bool, device=device))  # fmt: skip
    step_mask[:, 0, 1:, mask.shape[1] :] = block
    positions = (context.next_pos[:, None] + torch.arange(1 + K, device=device)).unsqueeze(0).expand(3, -1, -1)
    out, _ = model.run_backbone(torch.cat([step_embeds, queries], dim=1), step_mask, positions, context.cache)
    context.cache.crop(-K)  # the queries are a side branch: nothing after the sketch attends them
    return out[:, 0], out[heads, 1:]


def _passes(model, context: Context, sees, starting, heads: list[int], states, rows, plan: SketchPlan):
    """The head's drawing of each `heads` row's sketch from the first pass's `states` (H, K, D), then again in each
    refinement pass: the queries with the previous drawing of their slot, against the cache (cropped off again);
    rows that are not starting a sketch get masked columns. Yields a `sketch_pass` event per pass and row. → (the
    last drawing {row: (K, D)}, its conditions {row: (K, W)})."""
    K, batch, dim, device = model.latent_budget, len(rows), model.config.hidden_size, model.device
    slot = torch.arange(K, device=device)
    own = torch.eye(K, dtype=torch.bool, device=device)  # rows not sketching: no empty softmax row
    positions = (context.next_pos[:, None] + torch.arange(K, device=device)).unsqueeze(0).expand(3, -1, -1)
    drawn, conditions = {}, {}
    for index in range(plan.passes + 1 if heads else 0):
        if index:  # a refinement pass: the queries again, each with the previous drawing of its slot
            inputs = torch.zeros(batch, K, dim, device=device, dtype=model.dtype)
            prior = torch.stack([drawn[b] for b in heads]).flatten(0, 1)
            inputs[heads] = model.query_inputs(slot.repeat(len(heads)), prior).view(len(heads), K, -1)
            block = torch.where(starting[:, None, None], torch.ones_like(own), own)
            query_mask = torch.cat([sees.expand(-1, 1, K, -1), block[:, None]], dim=-1)
            out, _ = model.run_backbone(inputs, query_mask, positions, context.cache)
            context.cache.crop(-K)
            states = out[heads]
        cond = model.head.condition(states.flatten(0, 1), slot.repeat(len(heads)))
        noise = torch.stack([torch.randn(K, dim, generator=rows[b].generator, device=device) for b in heads])
        start = noise.flatten(0, 1).to(cond.dtype) * model.config.sketch_temperature
        sampled = model.head.sample(cond, plan.steps, noise=start, solver=model.config.diffusion_solver)
        sampled = model.destandardize(sampled).view(len(heads), K, -1)
        for j, b in enumerate(heads):
            drawn[b], conditions[b] = sampled[j], cond.view(len(heads), K, -1)[j]
            yield TraceEvent(row=b, kind="sketch_pass", sketch=rows[b].drawing.segment, pass_index=index)
    return drawn, conditions


def _sketch_latents(model, row: RowState, prompt, plan: SketchPlan, drawn) -> torch.Tensor:
    """The K latents a parallel sketch gets in the plan's mode (the head's last drawing, `drawn`, in auto), recorded
    on the row."""
    K, dim, mode = model.latent_budget, model.config.hidden_size, plan.mode
    given, sketch = given_sketch(prompt, row, mode), row.drawing.segment
    sketch.decoding, sketch.refine_passes = "parallel", plan.passes
    if mode.replace is not None:  # the mode's own latents (noise, zeros, …) instead of the head's
        noise = torch.randn(K, dim, generator=row.generator, device=model.device)
        chosen, sketch.source = mode.replace(model, noise), mode.source
    elif given is not None:
        chosen, sketch.source = given.to(model.device, torch.float32), mode.source
    else:
        chosen = model.sketch_codebook.snap(drawn, torch.arange(K, device=model.device)) if plan.snap else drawn
        sketch.snapped = plan.snap
    row.drawing.latents.extend(chosen.float().cpu())
    return chosen


def _write_sketches(model, context: Context, sees, starting, starters: list[int], latents) -> torch.Tensor:
    """The starters' K latents (B, K, D) and ⟨END⟩ into the cache at their positions, causal among themselves (⟨END⟩
    is where the sketch gate closes, as in gate_mask); the other rows' columns masked. → the starters' hidden states
    after ⟨END⟩ (S, D)."""
    K, batch, device = model.latent_budget, len(starting), model.device
    slot = torch.arange(K, device=device)
    end = model.backbone.get_input_embeddings()(torch.full((batch, 1), model.end_id, device=device))
    inputs = torch.cat([model.latent_inputs(latents.flatten(0, 1), slot.repeat(batch)).view(batch, K, -1),
                        end.to(latents.dtype)], dim=1)  # fmt: skip
    old = sees.expand(-1, 1, K + 1, -1).clone()
    if model.config.sketch_gate:
        old[:, 0, K] &= ~context.image_keys
        context.gated[starters] = True
    own = torch.eye(K + 1, dtype=torch.bool, device=device)  # rows not sketching: no empty softmax row
    block = torch.where(starting[:, None, None], torch.ones_like(own).tril(), own)[:, None]
    positions = (context.next_pos[:, None] + torch.arange(K + 1, device=device)).unsqueeze(0).expand(3, -1, -1)
    out, _ = model.run_backbone(inputs.to(model.dtype), torch.cat([old, block], dim=-1), positions, context.cache)
    context.grow(starting.long()[:, None].expand(-1, K + 1))
    return out[starters, K]
