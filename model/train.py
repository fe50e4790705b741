"""Training on accelerate: stage 0 warm-up, stage 1 SFT, stage 2 GRPO — one loop, CPU to many GPUs.

    python -m model.train --config model/configs/sft_tiny.yaml [--key value ...] [--output_dir DIR] [--resume]
    accelerate launch -m model.train --config model/configs/sft_demo.yaml          # DDP; FSDP via --config_file

Stage 0 (`warmup`, from-scratch presets only): the whole model, vision encoder included, learns to describe
sketch-world images densely in text ("row 1: white red …") and then also to answer direct questions about single
cells, so that the vision encoder carries meaning before it is frozen as the target space of the sketches.
Stage 1 (`sft`): interleaved traces; loss = CE + λ·diffusion; vision encoder + merger frozen, so their outputs (the
problem images' tokens and the sketch targets) are computed once before training. Stage 2 (`grpo`): model/grpo.py.

The loop: gradient accumulation, mixed precision (accelerate), gradient clipping, linear warm-up + cosine decay, a
progress bar with loss and throughput, metrics to trackio/tensorboard and always to `metrics.jsonl`, checkpoints
every `save_every` steps (model/train_state.py; no pickle). `--resume` continues from the latest checkpoint with
model, optimizer, scheduler, RNG and data position restored, so the losses match an uninterrupted run.

Data order is our own (`BatchStream`): epoch e is a permutation seeded by (seed, e); each global batch is split
across processes by rank. That makes the data position two integers, saved with every checkpoint.
"""

import argparse
import dataclasses
import json
import logging
import math
import sys
import time
from functools import partial
from pathlib import Path

import torch
import yaml
from accelerate import Accelerator, DistributedDataParallelKwargs
from tqdm import tqdm
from transformers import get_cosine_with_min_lr_schedule_with_warmup

from model import data as D
from model.checkpoint import CheckpointError, is_checkpoint_dir, load_model
from model.sft_batch import prepare_batch
from model.train_config import TrainConfig, load_config
from model.train_state import latest_checkpoint, load_training_state, save_checkpoint

log = logging.getLogger("model.train")


class BatchStream:
    """Seeded, resumable batches: epoch e is a permutation seeded by (seed, e); rank r takes its slice of each
    global batch. `position` is (epoch, batch index) of the next batch."""

    def __init__(self, dataset, batch_size: int, pad_id: int, seed: int, rank: int = 0, world: int = 1):
        global_batch = batch_size * world
        if len(dataset) < global_batch:
            raise ValueError(f"{len(dataset)} training examples cannot fill one batch of {global_batch}")
        self.dataset, self.batch_size, self.pad_id, self.seed = dataset, batch_size, pad_id, seed
        self.rank, self.world, self.epoch, self.index = rank, world, 0, 0
        self.per_epoch = len(dataset) // global_batch

    @property
    def position(self) -> dict:
        return {"epoch": self.epoch, "batch": self.index}

    def restore(self, position: dict) -> None:
        self.epoch, self.index = position["epoch"], position["batch"]

    def next(self) -> dict:
        if self.index >= self.per_epoch:
            self.epoch, self.index = self.epoch + 1, 0
        order = torch.randperm(
            len(self.dataset), generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        )
        start = self.index * self.batch_size * self.world + self.rank * self.batch_size
        self.index += 1
        return D.collate([self.dataset[int(i)] for i in order[start : start + self.batch_size]], self.pad_id)


def build_model(cfg: TrainConfig):
    """The starting model with the config's K, λ, T and gradient routing applied."""
    model = load_model(cfg.init)
    if cfg.head_type:
        model.replace_head(cfg.head_type)
    if cfg.latent_budget:
        model.set_latent_budget(cfg.latent_budget)
    if cfg.diffusion_loss_weight >= 0:
        model.config.diffusion_loss_weight = cfg.diffusion_loss_weight
    model.config.latent_loss_to_backbone = cfg.latent_loss_to_backbone
    if cfg.stage != "warmup" and cfg.freeze_vision:
        model.backbone.model.visual.requires_grad_(False)
    if cfg.stage == "warmup":
        model.head.requires_grad_(False)  # no latents in stage 0
    if cfg.lora_rank:
        from peft import LoraConfig, inject_adapter_in_model

        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        lora = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, target_modules=targets)
        model.backbone.model.language_model.requires_grad_(False)
        inject_adapter_in_model(lora, model.backbone.model.language_model)
    return model


def supervised_data(cfg: TrainConfig, model, main: bool):
    """Stage 0: (image → description / cell question) pairs on pixels. Stage 1: traces on cached visual targets.
    Returns a list of (first step, dataset) phases."""
    examples, report = D.load_examples(_split(cfg, "train"), limit=cfg.max_examples or None)
    if main:
        print(f"training examples: {report}")
    if cfg.stage == "warmup":
        from model.warmup_data import is_description, warmup_examples

        warm = warmup_examples(examples, cfg.warmup_questions_per_image, cfg.seed, cfg.warmup_sketch_share)
        describe = [e for e in warm if is_description(e)]
        phases = []
        for first_step, items in [(0, describe), (int(cfg.warmup_describe_fraction * cfg.max_steps), warm)]:
            encoded, _ = D.encode_examples(model, items, "interleaved", cfg.seed, cfg.max_length)
            dataset = D.SFTDataset(encoded, None, "pixels", model.image_processor, model.config.image_size)
            phases.append((first_step, dataset))
        return phases
    encoded, _ = D.encode_examples(model, examples, cfg.styles, cfg.seed, cfg.max_length)
    from model.visual_cache import load_or_compute

    cache = load_or_compute(model, examples, Path(cfg.data) / ".visual-cache", progress=main)
    D.fit_stats(model, cache, seed=cfg.seed)
    return [(0, D.SFTDataset(encoded, cache, "cached"))]


def _split(cfg: TrainConfig, split: str):
    """The split, shuffled with the run's seed: sketch-world files are stored family by family, so `max_examples`
    must not take the first rows."""
    from model.sketchworld import load_split

    path = Path(cfg.data)
    if (path / f"{split}.parquet").is_file():
        return load_split(str(path), split).shuffle(seed=cfg.seed)
    shards = sorted(str(p) for p in path.rglob("*.parquet")) if split == "train" and path.is_dir() else []
    if not shards:  # a Zebra-CoT download keeps its rows in Parquet shards under category folders
        raise ValueError(f"data folder {path} has no {split}.parquet (write one with python -m model.sketchworld)")
    import datasets

    return datasets.load_dataset("parquet", data_files=shards, split="train").shuffle(seed=cfg.seed)


def make_accelerator(cfg: TrainConfig) -> Accelerator:
    trackers = None if cfg.tracker == "none" else cfg.tracker
    if cfg.tracker == "tensorboard":
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            raise ValueError("tracker 'tensorboard' needs the tensorboard package: pip install tensorboard")
    return Accelerator(
        cpu=not torch.cuda.is_available(),  # several CPU processes (torchrun) then join through gloo: MULTI_CPU
        mixed_precision=cfg.mixed_precision,
        log_with=trackers,
        project_dir=cfg.output_dir,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )


def optimizer_and_schedule(cfg: TrainConfig, model):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, cfg.warmup_steps, cfg.max_steps, min_lr_rate=0.1
    )
    return optimizer, scheduler


def end_of_step(cfg: TrainConfig, accelerator: Accelerator, step: int, metrics: dict, metrics_log, save) -> None:
    """Log every `log_every` steps (and the first and last); call `save()` on rank 0 every `save_every` steps."""
    if step % cfg.log_every == 0 or step == 1 or step == cfg.max_steps:
        metrics_log(step, metrics)
    if step % cfg.save_every == 0 or step == cfg.max_steps:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            save()
        accelerator.wait_for_everyone()


class MetricsLog:
    """Flat metric dicts to metrics.jsonl and the accelerate trackers; rank 0 only."""

    def __init__(self, cfg: TrainConfig, accelerator: Accelerator):
        self.accelerator, self.path = accelerator, Path(cfg.output_dir) / "metrics.jsonl"
        if accelerator.is_main_process and cfg.tracker != "none":
            accelerator.init_trackers(cfg.project, config=dataclasses.asdict(cfg))

    def __call__(self, step: int, metrics: dict) -> None:
        if not self.accelerator.is_main_process:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        self.accelerator.log(metrics, step=step)


def run(cfg: TrainConfig, resume: bool = False, stop_at: int | None = None) -> Path:
    """Train; returns the final checkpoint folder. `stop_at` ends the run early without saving (tests use it to
    stand in for a killed process)."""
    accelerator = make_accelerator(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    resume_from = latest_checkpoint(out) if resume else None
    if resume and resume_from is None and accelerator.is_main_process:
        print(f"--resume: no checkpoint in {out}; starting from {cfg.init}")
    if resume_from is not None:
        cfg = dataclasses.replace(cfg, init=str(resume_from / "model"))
    model = build_model(cfg)
    if cfg.stage == "grpo":
        from model.grpo import train_grpo

        return train_grpo(cfg, accelerator, model, resume_from, stop_at)
    phases = supervised_data(cfg, model, accelerator.is_main_process)
    optimizer, scheduler = optimizer_and_schedule(cfg, model)
    model, optimizer = accelerator.prepare(model, optimizer)
    raw = accelerator.unwrap_model(model)
    step, position = 0, None
    if resume_from is not None:
        state = load_training_state(resume_from, optimizer, scheduler, restore_optimizer=not cfg.lora_rank)
        step, position = state["step"], state["data"]
    streams = [BatchStream(ds, cfg.batch_size, raw.tokenizer.pad_token_id, cfg.seed + i, accelerator.process_index,
                           accelerator.num_processes) for i, (_, ds) in enumerate(phases)]  # fmt: skip
    if position is not None:
        for stream, saved in zip(streams, position["streams"]):
            stream.restore(saved)
    metrics_log = MetricsLog(cfg, accelerator)
    config_yaml = yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not accelerator.is_main_process, desc=cfg.stage)
    model.train()
    while step < cfg.max_steps:
        if stop_at is not None and step >= stop_at:
            return out
        stream = streams[max(i for i, (first, _) in enumerate(phases) if step >= first)]
        started, sums = time.perf_counter(), {"loss": 0.0, "text_loss": 0.0, "latent_loss": 0.0, "answer_loss": 0.0}
        examples = 0
        for micro in range(cfg.grad_accum):
            batch = {k: v.to(accelerator.device) if torch.is_tensor(v) else v for k, v in stream.next().items()}
            if cfg.stage == "sft":
                batch = prepare_batch(cfg, raw, batch, step, micro)
            elif cfg.stage == "warmup":
                batch["diffusion_loss_weight"] = 0.0  # stage 0 reads sketches but trains no head
            examples += batch["input_ids"].shape[0]
            with accelerator.autocast():
                output = model(**batch)
            accelerator.backward(output.loss / cfg.grad_accum)
            for key in sums:
                value = getattr(output, key)
                sums[key] += 0.0 if value is None else value.item() / cfg.grad_accum
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.train", description="Train a modal-mixed model.")
    parser.add_argument("--config", required=True, help="YAML recipe under model/configs/")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in output_dir")
    args, overrides = parser.parse_known_args(argv)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        cfg = load_config(args.config, overrides)
        if cfg.stage == "warmup" and is_checkpoint_dir(cfg.init) is False and cfg.init not in ("tiny", "demo"):
            raise ValueError(f"stage 0 warm-up is for the from-scratch presets (tiny, demo), not {cfg.init!r}")
        final = run(cfg, resume=args.resume)
    except (ValueError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"final checkpoint: {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
