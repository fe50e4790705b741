"""Does the fast training path learn what the path before it learned? A paired run and its checks, one command.

    python benchmarks/equivalence_train.py [--checkpoint assets/checkpoints/demo] [--data data/sketchworld]
                                           [--steps 300] [--puzzles 300] [--out runs/equivalence]

Two stage-1 runs of the demo recipe (model/configs/sft_demo.yaml, sequential sketches, batch 16) from the same
checkpoint and seed, `--steps` each: the path before (float32, eager, padded random batches) and the fast path (the
recipe's defaults: bf16 autocast, length-grouped batches, torch.compile), the recipe copied into `--out` when the
first run starts. Each is a `python -m model.train` run,
skipped when its final checkpoint exists (so the command resumes). Then, for both final models:
(a) the training loss, mean over the last 100 steps (batches differ: the fast path groups rows by length, so single
    steps are not comparable, their means are);
(b) the loss on the same 24 validation batches (eager float32, padded, the recipe's seeded choices), paired by batch,
    with a 95 % interval of the difference;
(c) the audit on `--puzzles` validation puzzles (`auto`, `noise-latents`, `oracle`; greedy, the pipeline's sampler):
    accuracy with its 95 % Wilson interval, and the paired difference of the two models with a 95 % interval.
The verdict: equivalent when every paired interval of (b) and (c) holds 0.
"""

import argparse
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from model.core.checkpoint import load_model  # noqa: E402
from model.evaluation.harness import wilson  # noqa: E402
from model.training.batch_stream import BatchStream  # noqa: E402
from model.training.sft import supervised_data, supervised_forward  # noqa: E402
from model.training.state import latest_checkpoint  # noqa: E402
from model.training.train_config import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "model" / "configs" / "sft_demo.yaml"
PATHS = {
    "before": ["--mixed_precision", "no", "--length_grouping", "0", "--compile", "false"],
    "fast": [],  # the recipe's own settings
}
MODES = "auto,noise-latents,oracle"


def frozen_recipe(args) -> Path:
    """The recipe both runs train with: sft_demo.yaml as it was when the first run started (copied into --out), so
    an edit of the recipe between the two runs cannot unpair them."""
    frozen = Path(args.out) / "recipe.yaml"
    if not frozen.exists():
        frozen.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(RECIPE, frozen)
    return frozen


def train(args, name: str) -> Path:
    out = Path(args.out) / name
    done = latest_checkpoint(out)
    if done is not None and done.name == f"checkpoint-{args.steps:06d}":
        print(f"{name}: {done} exists, skipping")
        return done / "model"
    cmd = [sys.executable, "-m", "model.train", "--config", str(frozen_recipe(args)), "--resume", "--init",
           args.checkpoint, "--data", args.data, "--output_dir", str(out), "--max_steps", str(args.steps),
           "--sketch_decoding", "sequential", "--batch_size", "16", "--log_every", "1", "--save_every", "100",
           "--tracker", "none", *PATHS[name]]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return latest_checkpoint(out) / "model"


def last_losses(args, name: str, count: int = 100) -> pd.Series:
    metrics = pd.read_json(Path(args.out) / name / "metrics.jsonl", lines=True)
    return metrics.loss.tail(count)


def validation_losses(args, model_dir: Path, batches: int = 24) -> list[float]:
    """The loss of `model_dir` on the same validation batches (eager float32, padded random batches)."""
    cfg = load_config(str(frozen_recipe(args)), ["--init", str(model_dir), "--data", args.data, "--sketch_decoding",
                                    "sequential", "--tracker", "none"])  # fmt: skip
    model = load_model(str(model_dir), device="cpu")
    trained = model.latent_mean.clone(), model.latent_std.clone()
    phases = supervised_data(cfg, model, main=False, split="validation")
    model.latent_mean.copy_(trained[0])  # supervised_data fits the statistics to its rows: keep the trained ones
    model.latent_std.copy_(trained[1])
    stream = BatchStream(phases[0][1], 16, model.tokenizer.pad_token_id, seed=12345)
    model.eval()
    losses = []
    with torch.no_grad():
        for i in range(batches):
            losses.append(float(supervised_forward(cfg, model, model, stream.next(), step=i).loss))
    return losses


def audit(args, name: str, model_dir: Path) -> pd.DataFrame:
    out = Path(args.out) / "audit" / name
    if not (out / "predictions.parquet").exists():
        cmd = [sys.executable, "-m", "model.evaluate", "--checkpoint", str(model_dir), "--data", args.data,
               "--split", "validation", "--modes", MODES, "--limit", str(args.puzzles), "--batch-size", "32",
               "--probe-split", "", "--diffusion-solver", "dpm++", "--diffusion-steps", "5", "--sketch-temperature",
               "0.25", "--out", str(out)]  # fmt: skip
        subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return pd.read_parquet(out / "predictions.parquet")


def paired_interval(differences: list[float]) -> tuple[float, float, float]:
    """Mean of paired differences with a normal 95 % interval."""
    n = len(differences)
    mean = sum(differences) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / max(1, n - 1))
    half = 1.96 * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/equivalence_train.py", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "assets" / "checkpoints" / "demo"))
    parser.add_argument("--data", default=str(ROOT / "data" / "sketchworld"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--puzzles", type=int, default=300)
    parser.add_argument("--out", default=str(ROOT / "runs" / "equivalence"))
    parser.add_argument("--fast", default="", help="overrides of the fast path, e.g. '--length_grouping 0' (an "
                        "ablation: which technique changes what is learned)")  # fmt: skip
    args = parser.parse_args(argv)
    PATHS["fast"] = args.fast.split()
    finals = {name: train(args, name) for name in PATHS}
    lines, holds = [], []
    train_loss = {name: last_losses(args, name) for name in PATHS}
    lines.append("| check | before | fast | fast − before [95 %] |")
    lines.append("|---|---|---|---|")
    a, b = train_loss["before"], train_loss["fast"]
    lines.append(f"| training loss, last {len(a)} steps (mean ± s.e.) | {a.mean():.3f} ± {a.sem():.3f} | "
                 f"{b.mean():.3f} ± {b.sem():.3f} | {b.mean() - a.mean():+.3f} (batches differ) |")  # fmt: skip
    val = {name: validation_losses(args, finals[name]) for name in PATHS}
    mean, low, high = paired_interval([f - p for p, f in zip(val["before"], val["fast"])])
    holds.append(low <= 0 <= high)
    lines.append(f"| validation loss, {len(val['fast'])} batches | {sum(val['before']) / len(val['before']):.3f} | "
                 f"{sum(val['fast']) / len(val['fast']):.3f} | {mean:+.3f} [{low:+.3f}, {high:+.3f}] |")  # fmt: skip
    preds = {name: audit(args, name, finals[name]) for name in PATHS}
    for mode in MODES.split(","):
        left = preds["before"][preds["before"]["mode"] == mode].set_index("id").correct.astype(float)
        right = preds["fast"][preds["fast"]["mode"] == mode].set_index("id").correct.astype(float)
        right = right.loc[left.index]
        n = len(left)
        cells = []
        for series in (left, right):
            lo, hi = wilson(series.sum(), n)
            cells.append(f"{100 * series.mean():.1f} [{100 * lo:.1f}–{100 * hi:.1f}]")
        mean, low, high = paired_interval(list(right.values - left.values))
        holds.append(low <= 0 <= high)
        lines.append(f"| `{mode}`, {n} validation puzzles | {cells[0]} | {cells[1]} | "
                     f"{100 * mean:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}] |")  # fmt: skip
    print("\n".join(lines))
    print(f"\nverdict: {'equivalent' if all(holds) else 'NOT equivalent'} (every paired interval holds 0: {holds})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
