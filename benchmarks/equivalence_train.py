"""Does the fast training path learn what the path before it learned? A paired run and its checks, one command.

    python benchmarks/equivalence_train.py [--checkpoint assets/checkpoints/demo] [--data data/sketchworld]
                                           [--steps 300] [--puzzles 300] [--out runs/equivalence]

Three stage-1 runs of the demo recipe (model/configs/sft_demo.yaml, sequential sketches, batch 16) from the same
checkpoint, `--steps` each: the path before (float32, eager, whole padded batches), the same path with another seed
(how far training noise alone moves each measure), and the fast path (the recipe's own settings), the recipe copied
into `--out` when the first run starts. Each is a `python -m model.train` run,
skipped when its final checkpoint exists (so the command resumes). Then, for both final models:
(a) the training loss, mean over the last 100 steps;
(b) the loss on the same 24 validation batches (eager float32, padded, the recipe's seeded choices), paired by batch,
    with a 95 % interval of the difference;
(c) the audit on `--puzzles` validation puzzles (`auto`, `noise-latents`, `oracle`; greedy, the pipeline's sampler):
    accuracy with its 95 % Wilson interval, and the paired difference of the two models with a 95 % interval.
Each measure's verdict: "same" when fast − before holds 0, "within training noise" when its interval meets the
reseeded run's, "different" otherwise. (A paired interval over puzzles leaves training noise out: a reseeded run of
the very same path moved `noise-latents` by 6 points, beyond its interval.)
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
from benchmarks.doc_tables import write_section  # noqa: E402
from model.core.checkpoint import load_model  # noqa: E402
from model.evaluation.harness import wilson  # noqa: E402
from model.training.batch_stream import BatchStream  # noqa: E402
from model.training.sft import supervised_data, supervised_forward  # noqa: E402
from model.training.state import latest_checkpoint  # noqa: E402
from model.training.train_config import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "model" / "configs" / "sft_demo.yaml"
BEFORE = ["--mixed_precision", "no", "--length_grouping", "0", "--length_splits", "1", "--compile", "false"]
PATHS = {
    "before": BEFORE,
    "reseeded": [*BEFORE, "--seed", "1"],  # the path before with another seed: how far training noise alone moves
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
    parser.add_argument("--fast", default="", help="overrides of the fast path, e.g. '--length_grouping 8' (an "
                        "ablation: which technique changes what is learned)")  # fmt: skip
    parser.add_argument("--write-readme", action="store_true", help="write the table into docs/RESULTS.md")
    args = parser.parse_args(argv)
    PATHS["fast"] = args.fast.split()
    finals = {name: train(args, name) for name in PATHS}
    lines = report(args, finals)
    text = "\n".join(
        [
            f"Paired runs of {args.steps} stage-1 steps from `{shown(args.checkpoint)}` on "
            f"`{shown(args.data)}` (`python benchmarks/equivalence_train.py`):",
            "",
            *lines,
        ]
    )
    print(text)
    if args.write_readme:
        write_section("equivalence", text)
    return 0


def shown(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path


def report(args, finals: dict) -> list[str]:
    """The table: each measure for the three runs, fast − before and reseeded − before with paired 95 % intervals,
    and whether the fast path's difference is within training noise (its interval holds 0 or meets the reseeded
    run's)."""
    lines = ["| check | before | reseeded | fast | fast − before [95 %] | reseeded − before [95 %] | verdict |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    losses = {name: last_losses(args, name) for name in PATHS}
    cells = [f"{x.mean():.3f} ± {x.sem():.3f}" for x in losses.values()]
    lines.append(f"| training loss, last {len(losses['before'])} steps (mean ± s.e.) | {' | '.join(cells)} | "
                 f"{losses['fast'].mean() - losses['before'].mean():+.3f} | "
                 f"{losses['reseeded'].mean() - losses['before'].mean():+.3f} | – |")  # fmt: skip
    val = {name: validation_losses(args, finals[name]) for name in PATHS}
    diffs = {n: paired_interval([b - a for a, b in zip(val["before"], val[n])]) for n in ("fast", "reseeded")}
    means = " | ".join(f"{sum(v) / len(v):.3f}" for v in val.values())
    lines.append(f"| validation loss, {len(val['fast'])} batches | {means} | {_diff(diffs['fast'], 1)} | "
                 f"{_diff(diffs['reseeded'], 1)} | {_verdict(diffs)} |")  # fmt: skip
    preds = {name: audit(args, name, finals[name]) for name in PATHS}
    for mode in MODES.split(","):
        right = {n: p[p["mode"] == mode].set_index("id").correct.astype(float) for n, p in preds.items()}
        ids = right["before"].index
        right = {n: r.loc[ids] for n, r in right.items()}
        accuracy = []
        for series in right.values():
            lo, hi = wilson(series.sum(), len(ids))
            accuracy.append(f"{100 * series.mean():.1f} [{100 * lo:.1f}–{100 * hi:.1f}]")
        diffs = {n: paired_interval(list(right[n].values - right["before"].values)) for n in ("fast", "reseeded")}
        shown = f"{_diff(diffs['fast'], 100)} | {_diff(diffs['reseeded'], 100)} | {_verdict(diffs)}"
        lines.append(f"| `{mode}`, {len(ids)} validation puzzles | {' | '.join(accuracy)} | {shown} |")
    return lines


def _diff(interval, scale: float) -> str:
    mean, low, high = (scale * x for x in interval)
    digits = 1 if scale == 100 else 3
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def _verdict(diffs: dict) -> str:
    """Same when fast − before holds 0; within training noise when it meets reseeded − before; else different."""
    _, low, high = diffs["fast"]
    _, seed_low, seed_high = diffs["reseeded"]
    if low <= 0 <= high:
        return "same"
    return "within training noise" if low <= seed_high and seed_low <= high else "**different**"


if __name__ == "__main__":
    sys.exit(main())
