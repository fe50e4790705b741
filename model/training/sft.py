"""Stage 0 (warm-up) and stage 1 (SFT): the supervised loop.

Stage 0 (`warmup`, from-scratch presets only): the whole model, vision encoder included, learns to see sketch-world
pictures — dense descriptions first, then also perception questions — shown as problem images or as sketches
(model/data/warmup.py), so that the encoder carries meaning and the model reads latents before SFT freezes the
encoder as the target space of the sketches. Stage 1 (`sft`): traces in the configured answer styles; loss = CE +
λ·diffusion, with the recipe of model/training/sft_batch.py; vision encoder + merger frozen, so their outputs (the
problem images' tokens and the sketch targets) are computed once before training (model/data/visual_cache.py).

The loop: gradient accumulation, mixed precision (accelerate), gradient clipping, linear warm-up + cosine decay, a
progress bar with loss and throughput, metrics to trackio/tensorboard and always to `metrics.jsonl`, checkpoints
every `save_every` steps (model/training/state.py; no pickle).
"""

import contextlib
import dataclasses
import math
import time
from functools import partial
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from model.data.batches import SFTDataset
from model.data.encoding import described_colours, encode_examples
from model.data.visual_cache import fit_stats, load_or_compute
from model.data.warmup import is_description, warmup_examples
from model.data.zebra import load_examples
from model.training.batch_stream import BatchStream
from model.training.compiled import compile_for_training
from model.training.length_split import split_by_length
from model.training.loop import MetricsLog, end_of_step, optimizer_and_schedule, training_rows
from model.training.loss_scale import LossScale
from model.training.recipe import split_batch
from model.training.sft_batch import prepare_batch
from model.training.state import latest_checkpoint, load_training_state, save_checkpoint
from model.training.train_config import TrainConfig


def supervised_data(cfg: TrainConfig, model, main: bool, split: str = "train"):
    """Stage 0: (image → description / cell question) pairs on pixels. Stage 1: traces on cached visual targets.
    Returns a list of (first step, dataset) phases. `split`: another split's rows the same way (a held-out loss)."""
    examples, report = load_examples(training_rows(cfg, split), limit=cfg.max_examples or None)
    if main:
        print(f"training examples: {report}")
    if cfg.stage == "warmup":
        warm = warmup_examples(examples, cfg.warmup_questions_per_image, cfg.seed, cfg.warmup_sketch_share)
        describe = [e for e in warm if is_description(e)]
        phases = []
        for first_step, items in [(0, describe), (int(cfg.warmup_describe_fraction * cfg.max_steps), warm)]:
            encoded, _ = encode_examples(model, items, "interleaved", cfg.seed, cfg.max_length)
            dataset = SFTDataset(encoded, None, "pixels", model.image_processor, model.config.image_size)
            phases.append((first_step, dataset))
        return phases
    if cfg.draw_weight > 0:
        model.enable_draw_probe(described_colours(examples))
    encoded, _ = encode_examples(model, examples, cfg.styles, cfg.seed, cfg.max_length, cfg.paraphrase_share)
    cache = load_or_compute(model, examples, Path(cfg.data) / ".visual-cache", progress=main)
    fit_stats(model, cache, seed=cfg.seed)
    return [(0, SFTDataset(encoded, cache, "cached"))]


def loss_scale(cfg: TrainConfig, model, dataset) -> LossScale | None:
    """Constant loss denominators for length-grouped batches (model/training/loss_scale.py); None without grouping."""
    if not cfg.length_grouping:
        return None
    blind = cfg.blind_fraction if cfg.stage == "sft" else 0.0
    answer_weight = cfg.answer_weight if cfg.stage == "sft" else 1.0
    return LossScale.of(dataset, cfg.batch_size, answer_weight, blind, model.latent_id)


def _prepared(cfg: TrainConfig, raw, batch: dict, step: int, micro: int, scale) -> dict:
    """The batch with the stage's recipe: `scale`'s constant denominators, stage 1's prepare_batch, stage 0's λ = 0."""
    if scale is not None:
        batch = {**batch, **scale.terms()}
    if cfg.stage == "sft":
        return prepare_batch(cfg, raw, batch, step, micro)
    return {**batch, "diffusion_loss_weight": 0.0}  # stage 0 reads sketches but trains no head


def supervised_forward(cfg: TrainConfig, model, raw, batch: dict, step: int, micro: int = 0, scale=None):
    """One batch through `model` (DDP-wrapped or not; `raw` unwrapped) in one piece, with the stage's recipe.
    → ModalMixedOutput with the loss (a held-out loss; the tests)."""
    inputs, terms = split_batch(_prepared(cfg, raw, batch, step, micro, scale))
    return model(**inputs, terms=terms)


LOGGED = ("loss", "text_loss", "latent_loss", "answer_loss", "draw_loss")
SUMMED = ("loss", "text_loss", "latent_loss", "draw_loss")  # the parts' losses add up to the batch's


def supervised_step(cfg: TrainConfig, model, raw, batch: dict, step: int, micro: int = 0, scale=None,
                    autocast=contextlib.nullcontext, backward=None) -> dict:  # fmt: skip
    """Forward and backward of one batch with the stage's recipe, in `cfg.length_splits` parts of like length
    (model/training/length_split.py: the same gradient, less padding), each loss divided by `cfg.grad_accum`.
    → the batch's losses (the parts' sums; answer_loss their mean over answer tokens). The training loop and
    benchmarks/bench_train.py both step through this."""
    backward = backward or torch.Tensor.backward
    batch = _prepared(cfg, raw, batch, step, micro, scale)
    parts = split_by_length(batch, cfg.length_splits, raw) if cfg.stage == "sft" else [batch]
    sums, answers = dict.fromkeys(LOGGED, 0.0), []
    for part in parts:
        inputs, terms = split_batch(part)
        with autocast():
            output = model(**inputs, terms=terms)
        backward(output.loss / cfg.grad_accum)
        for key in SUMMED:
            value = getattr(output, key)
            sums[key] += 0.0 if value is None else value.item() / cfg.grad_accum
        if output.answer_loss is not None and part.get("answer_mask") is not None:
            answers.append((output.answer_loss.item(), float(part["answer_mask"][:, 1:].sum())))
    total = sum(n for _, n in answers)
    if total:
        sums["answer_loss"] = sum(value * n for value, n in answers) / total / cfg.grad_accum
    return sums


def train_supervised(cfg: TrainConfig, accelerator, model, resume_from: Path | None, stop_at: int | None) -> Path:
    """Stage 0 or 1 on `model`; returns the final checkpoint folder. `stop_at` ends the run early without saving
    (tests use it to stand in for a killed process)."""
    out = Path(cfg.output_dir)
    phases = supervised_data(cfg, model, accelerator.is_main_process)
    if cfg.compile:
        compile_for_training(model)
    optimizer, scheduler = optimizer_and_schedule(cfg, model)
    model, optimizer = accelerator.prepare(model, optimizer)
    raw = accelerator.unwrap_model(model)
    step, position = 0, None
    if resume_from is not None:
        state = load_training_state(resume_from, optimizer, scheduler, restore_optimizer=not cfg.lora_rank)
        step, position = state["step"], state["data"]
    streams = [BatchStream(ds, cfg.batch_size, raw.tokenizer.pad_token_id, cfg.seed + i, accelerator.process_index,
                           accelerator.num_processes, cfg.length_grouping)
               for i, (_, ds) in enumerate(phases)]  # fmt: skip
    if position is not None:
        for stream, saved in zip(streams, position["streams"]):
            stream.restore(saved)
    scales = [loss_scale(cfg, raw, ds) for _, ds in phases]
    metrics_log = MetricsLog(cfg, accelerator, step)
    config_yaml = yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not accelerator.is_main_process, desc=cfg.stage)
    model.train()
    while step < cfg.max_steps:
        if stop_at is not None and step >= stop_at:
            return out
        phase = max(i for i, (first, _) in enumerate(phases) if step >= first)
        stream = streams[phase]
        started, sums = (
            time.perf_counter(),
            {"loss": 0.0, "text_loss": 0.0, "latent_loss": 0.0, "answer_loss": 0.0, "draw_loss": 0.0},
        )
        examples = 0
        for micro in range(cfg.grad_accum):
            batch = {k: v.to(accelerator.device) if torch.is_tensor(v) else v for k, v in stream.next().items()}
            examples += batch["input_ids"].shape[0]
            losses = supervised_step(cfg, model, raw, batch, step, micro, scales[phase], accelerator.autocast,
                                     accelerator.backward)  # fmt: skip
            for key in sums:
                sums[key] += losses[key]
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.clip_grad)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        seconds = time.perf_counter() - started
        metrics = {**sums, "grad_norm": float(grad_norm), "lr": scheduler.get_last_lr()[0],
                   "examples_per_s": examples * accelerator.num_processes / seconds}  # fmt: skip
        if not all(math.isfinite(v) for v in metrics.values()):
            raise FloatingPointError(f"step {step}: non-finite metrics {metrics}")
        bar.set_postfix(loss=f"{sums['loss']:.3f}", ex_s=f"{metrics['examples_per_s']:.1f}")
        bar.update(1)
        data_state = {"streams": [s.position for s in streams]}
        save = partial(save_checkpoint, out, step, raw, optimizer, scheduler, data_state, config_yaml, cfg.keep_last)
        end_of_step(cfg, accelerator, step, metrics, metrics_log, save)
    bar.close()
    accelerator.end_training()
    return latest_checkpoint(out)
