"""Training on accelerate: stage 0 warm-up, stage 1 SFT, stage 2 GRPO — one command, CPU to many GPUs.

    python -m model.train --config model/configs/sft_tiny.yaml [--key value ...] [--output_dir DIR] [--resume]
    accelerate launch -m model.train --config model/configs/sft_demo.yaml          # DDP; FSDP via --config_file

Stages 0 and 1: model/training/sft.py; stage 2: model/training/grpo.py; what they share: model/training/loop.py.
`--resume` continues from the latest checkpoint with model, optimizer, scheduler, RNG and data position restored,
so the losses match an uninterrupted run.
"""

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import torch

from model.core.checkpoint import CheckpointError, is_checkpoint_dir
from model.training.grpo import train_grpo
from model.training.loop import build_model, make_accelerator
from model.training.sft import train_supervised
from model.training.state import latest_checkpoint
from model.training.train_config import TrainConfig, load_config


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
    train = train_grpo if cfg.stage == "grpo" else train_supervised
    return train(cfg, accelerator, model, resume_from, stop_at)


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
