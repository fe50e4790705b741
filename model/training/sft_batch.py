"""What stage 1 does to a batch before the forward pass: answer weighting, blind sketches, self-feeding.

    batch = prepare_batch(cfg, model, batch, step)
    inputs, terms = split_batch(batch)               # model/training/recipe.py
    output = model(**inputs, terms=terms)            # terms: model/core/loss_terms.py

Three knobs of the SFT recipe (model/training/train_config.py), each aimed at one way a model can pass its training
loss without reading its sketches:

- `answer_weight`: the text loss is a mean over every response token, and almost all of them are template text the
  model predicts at once; the few that carry the answer (the line that reads the sketch, the final answer) get this
  weight instead of 1 (`data.answer_spans` marks them).
- `blind_fraction`: in this share of the rows that hold a sketch (before generator version 5 any row, so count and
  direct-answer rows were also trained to answer with no picture, i.e. to guess) no position can see the problem
  image (`ModalMixedModel.gate_mask`),
  so no hidden state carries anything about the picture and the answer can only come from the latents fed in: the
  reader learns to read sketches with no picture to fall back on. Those rows take no diffusion loss (their slots
  could not draw the sketch).
- `self_feed_fraction` (from `self_feed_start` of the run on): in this share of the rows the latents fed in are the
  head's own samples instead of the true targets, drawn with `self_feed_steps` denoising steps from the conditions of
  a teacher-forced pass (each slot conditioned on the true sketch before it: scheduled sampling done in parallel,
  not a full autoregressive rollout); the true targets stay the diffusion targets. The reader so learns from what the
  head really draws, and the head from conditions computed over its own drawings (Mirage's second stage does the
  same with full rollouts).

Each draw (which rows, the sampling noise) comes from a generator seeded by (seed, step, micro-batch), so a resumed
run makes the same choices.
"""

import torch

from model.training.recipe import split_batch


def rows_where(num_rows: int, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """A (num_rows,) bool mask with each row chosen with probability `fraction`."""
    return torch.rand(num_rows, generator=generator) < fraction


def label_weights(answer_mask: torch.Tensor, answer_weight: float) -> torch.Tensor:
    """(B, L) weight per label: `answer_weight` on answer-carrying tokens, 1 elsewhere."""
    return 1.0 + (answer_weight - 1.0) * answer_mask.float()


@torch.no_grad()
def drawings(model, batch: dict, steps: int, generator: torch.Generator, passes: int, rows=None) -> list:
    """The head's own drawings of the batch's sketches (M, D) each, pass by pass, from conditions computed the way
    inference computes them. Sequential: teacher-forced, each pass's slots conditioned on the previous pass's
    drawing (the first on the true sketch). Parallel: the first pass from the slot queries alone, each further one
    a refinement pass over the previous drawing. `rows` (B,): only those rows' slots are drawn; the others keep the
    batch's latents."""
    latents = batch["latents"].clone()
    slot_rows, _, slot_index = model.latent_slots(batch["input_ids"])
    take = torch.ones_like(slot_rows, dtype=torch.bool) if rows is None else rows.to(slot_rows.device)[slot_rows]
    if not bool(take.any()):  # no sketch to draw in this batch
        return [latents.clone() for _ in range(passes)]
    inputs, terms = split_batch({k: v for k, v in batch.items() if k not in ("labels", "latents", "refine_latents")})
    was_training, out = model.training, []
    model.eval()
    for _ in range(passes):
        previous = out if model.parallel else None
        states = model(**inputs, latents=latents, refine_latents=previous, with_slot_states=True, terms=terms)
        states = states.slot_states
        cond = model.head.condition(states[take], slot_index[take])
        noise = torch.randn(cond.shape[0], latents.shape[-1], generator=generator).to(cond.device, cond.dtype)
        drawn = latents.clone()
        drawn[take] = model.destandardize(model.head.sample(cond, steps, noise=noise)).to(latents.dtype)
        out.append(drawn)
        if not model.parallel:
            latents = drawn
    model.train(was_training)
    return out


def self_fed_latents(model, batch: dict, rows: torch.Tensor, steps: int, generator: torch.Generator) -> torch.Tensor:
    """The batch's latents (M, D) with those of `rows` replaced by the head's samples (`drawings`): sequential, one
    teacher-forced pass; parallel, exactly what inference draws (the first pass and its refinement passes)."""
    if not bool(rows.any()):
        return batch["latents"].clone()
    count = model.refine_passes + 1 if model.parallel else 1
    return drawings(model, batch, steps, generator, count, rows)[-1]


def prepare_batch(cfg, model, batch: dict, step: int, micro: int = 0) -> dict:
    """The SFT batch with the recipe's extra inputs (label_weights, blind_rows, self-fed latents) added."""
    generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step * 1009 + micro)
    batch = dict(batch)
    num_rows = batch["input_ids"].shape[0]
    if cfg.answer_weight != 1.0:
        batch["label_weights"] = label_weights(batch["answer_mask"], cfg.answer_weight)
    has_latents = batch.get("latents") is not None and model.head is not None
    if has_latents and cfg.self_feed_fraction > 0 and step >= int(cfg.self_feed_start * cfg.max_steps):
        rows = rows_where(num_rows, cfg.self_feed_fraction, generator)
        batch.setdefault("target_latents", batch["latents"])
        batch["latents"] = self_fed_latents(model, batch, rows, cfg.self_feed_steps, generator)
    if has_latents and model.parallel and model.refine_passes:  # what each refinement pass re-draws, as inference
        batch["refine_latents"] = drawings(model, batch, cfg.self_feed_steps, generator, model.refine_passes)
    if cfg.draw_weight > 0 and batch.get("slot_labels") is not None:
        batch["draw_loss_weight"] = cfg.draw_weight
    if has_latents and cfg.blind_fraction > 0:
        # only rows with a sketch: a row without one (count, direct answers) shown no picture could only guess
        sketched = (batch["input_ids"] == model.latent_id).any(1).cpu()
        blind = rows_where(num_rows, cfg.blind_fraction, generator) & sketched
        batch["blind_rows"] = blind.to(batch["input_ids"].device)
    return batch
