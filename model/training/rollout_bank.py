"""The rollout bank: a model's own free-running sketches of training puzzles, for the second SFT stage.

    python -m model.training.rollout_bank --checkpoint runs/demo/sft/checkpoint-001200/model \
        --data data/sketchworld --limit 4000 --out runs/demo/rollouts.safetensors

Self-feeding (model/training/sft_batch.py) draws each slot from a teacher-forced pass, so a slot's drawing sees the
true sketch before it, never the head's own earlier errors. A bank holds what the model really draws at inference:
each puzzle answered in `auto` mode (greedy text, the checkpoint's sampler and sketch temperature), every slot drawn
after the slots the head drew before it. SFT with `rollout_bank` + `rollout_fraction` then feeds, in that share of
the interleaved rows, the banked sketch in place of the true one, with the true sketch as the diffusion target
(Mirage's second stage: the reader learns from what the head really draws, the head to draw right from conditions
computed over its own drawings). The bank is made once from the checkpoint the stage starts from, so it ages as the
stage trains; keep the stage short.

Stored as one safetensors file (latents (N, K, D) float16) with the keys (example id, reasoning-image index) in its
metadata; written atomically. Only a puzzle whose first sketch came out with exactly K latents is banked; each
banked sketch is the one that stands for the example's first reasoning sketch.
"""

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from model.core.atomic import atomic_file
from model.core.checkpoint import CheckpointError, load_model
from model.data.folders import load_rows, select_rows
from model.data.zebra import Sketch, load_examples
from model.evaluation.harness import run_batch
from model.generation.engine import Engine, GenerationSettings


@dataclass
class RolloutBank:
    latent_budget: int  # K of every banked sketch
    latents: torch.Tensor  # (N, K, D) the sketches drawn, in the backbone's input-embedding space
    index: dict[tuple[str, int], int]  # (example id, reasoning-image index) → row of `latents`
    source: str = ""  # the checkpoint the sketches came from

    def __len__(self) -> int:
        return len(self.index)

    def get(self, example_id: str, image: int) -> torch.Tensor | None:
        row = self.index.get((example_id, image))
        return None if row is None else self.latents[row]


def first_sketch_image(example) -> int | None:
    """Index into example.reasoning_images of the first sketch of its interleaved trace (None: no sketch)."""
    return next((seg.image_index for seg in example.segments if isinstance(seg, Sketch)), None)


def build_bank(model, examples, batch_size: int = 32, seed: int = 0, progress: bool = True, source: str = ""):
    """Answer every example in `auto` mode and keep the first sketch of each trace that drew exactly K latents."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not model.has_latent_head:
        raise ValueError("the model has no latent head, so it draws no sketches to bank")
    K = model.config.latent_budget
    engine, settings = Engine(model), GenerationSettings(mode="auto", seed=seed)
    wanted = [ex for ex in examples if first_sketch_image(ex) is not None]
    rows, index = [], {}
    with tqdm(total=len(wanted), desc="rollouts", unit="ex", disable=not progress) as bar:
        for start in range(0, len(wanted), batch_size):
            batch = wanted[start : start + batch_size]
            for ex, trace in zip(batch, run_batch(engine, batch, "auto", settings)):
                sketches = [s for s in trace.sketches if s.latents is not None and s.num_latents == K]
                if sketches:
                    index[(ex.id, first_sketch_image(ex))] = len(rows)
                    rows.append(torch.as_tensor(sketches[0].latents, dtype=torch.float32))
            bar.update(len(batch))
    latents = torch.stack(rows) if rows else torch.zeros(0, K, model.config.hidden_size)
    return RolloutBank(K, latents, index, source)


def save_bank(path: str | Path, bank: RolloutBank) -> Path:
    path = Path(path)
    meta = {"latent_budget": str(bank.latent_budget), "source": bank.source,
            "index": json.dumps([[k, i, r] for (k, i), r in bank.index.items()])}  # fmt: skip
    with atomic_file(path) as tmp:
        save_file({"latents": bank.latents.to(torch.float16).contiguous()}, str(tmp), metadata=meta)
    return path


def load_bank(path: str | Path) -> RolloutBank:
    """The bank at `path`; ValueError naming the file when it is missing or not a bank."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"rollout bank {path} does not exist (make one with python -m model.training.rollout_bank)")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            latents = handle.get_tensor("latents").float()
        index = {(k, int(i)): int(r) for k, i, r in json.loads(meta["index"])}
        K = int(meta["latent_budget"])
    except Exception as err:  # a truncated file, another safetensors file, bad metadata
        raise ValueError(f"{path} is not a rollout bank ({err})") from err
    if latents.dim() != 3 or latents.shape[1] != K or any(not 0 <= r < len(latents) for r in index.values()):
        raise ValueError(f"{path} is not a rollout bank: latents {tuple(latents.shape)} do not match its index")
    return RolloutBank(K, latents, index, meta.get("source", ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.training.rollout_bank", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="the checkpoint whose sketches to bank")
    parser.add_argument("--data", required=True, help="a data folder (sketch-world)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--limit", type=int, default=0, help="this many rows, round-robin over families (0 = all)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="the bank file to write (.safetensors)")
    args = parser.parse_args(argv)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        if args.limit < 0:
            raise ValueError(f"--limit must be >= 0, got {args.limit}")
        examples, report = load_examples(select_rows(load_rows(args.data, args.split), args.limit or None))
        model = load_model(args.checkpoint).eval()
        bank = build_bank(model, examples, args.batch_size, args.seed, source=args.checkpoint)
    except (CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = save_bank(args.out, bank)
    print(f"banked {len(bank)} sketches (K = {bank.latent_budget}) of {len(examples)} puzzles into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
