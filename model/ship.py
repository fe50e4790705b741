"""Copy trained demo checkpoints into assets/ and write the checkpoint registry (the `ship` stage of demo_pipeline).

    python -m model.ship            # after python -m model.demo_pipeline has trained and evaluated

- assets/checkpoints/demo/: the final demo model (GRPO when it was trained, else SFT), float32 (≤ 25 MB), plus a
  latent decoder (analysis/latent_decoder.py) trained against its encoder;
- assets/checkpoints/sweep/k{K}-l{λ}/: every SFT model of the K / λ grid in float16 (≤ 12 MB each);
- assets/checkpoints/registry.json: name, path, K, λ, stage, parent and metrics of each shipped checkpoint;
- assets/results/<evaluation>.json: the summary table of every evaluation, for model/report.py.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
SIZE_CAPS_MB = {"demo": 25, "sweep": 12}


def _size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def _metrics(eval_dir: Path) -> dict:
    """Registry metrics from an evaluation's summary.parquet: `accuracy` (auto mode) and `accuracy_<mode>` per
    family, and auto mode's latency, START rate and sketches per answer (analysis/sweeps.py reads these)."""
    summary = pd.read_parquet(eval_dir / "summary.parquet")
    out: dict = {}
    for row in summary.itertuples():
        key = "accuracy" if row.mode == "auto" else f"accuracy_{row.mode.replace('-', '_')}"
        out.setdefault(key, {})[row.family] = round(float(row.accuracy), 4)
        if row.mode == "auto" and row.family == "overall":
            out["latency_s"] = round(float(row.latency_mean_s), 4)
            out["start_rate"] = round(float(row.start_rate), 4)
            out["sketches_per_answer"] = round(float(row.sketches_per_answer), 4)
    return out


def _copy_model(source: Path, target: Path, dtype=None) -> None:
    from model.checkpoint import load_pretrained, save_pretrained

    model = load_pretrained(source)
    save_pretrained(model, target, dtype=dtype)
    for extra in ("latent_decoder.safetensors", "latent_decoder.json"):
        if (source / extra).exists():
            shutil.copy2(source / extra, target / extra)


def ship(runs: Path) -> None:
    from model.demo_pipeline import SWEEP, SWEEP_STEPS, final_model, max_steps

    evals = runs / "demo-eval"
    results = ASSETS / "results"
    results.mkdir(parents=True, exist_ok=True)
    for eval_dir in sorted(p for p in evals.iterdir() if (p / "summary.parquet").exists()):
        summary = pd.read_parquet(eval_dir / "summary.parquet")
        config = json.loads((eval_dir / "results.json").read_text())["config"]
        record = {"config": config, "summary": summary.to_dict(orient="records")}
        (results / f"{eval_dir.name}.json").write_text(json.dumps(record, indent=1, default=str))

    from model.demo_pipeline import TIMINGS

    if TIMINGS.exists():
        shutil.copy2(TIMINGS, results / "timings.json")
    grpo, sft = (
        final_model("demo-grpo", max_steps("grpo_demo.yaml")),
        final_model("demo-sft", max_steps("sft_demo.yaml")),
    )
    final, stage = (grpo, "grpo") if grpo.is_dir() else (sft, "sft")
    entries = []
    demo = ASSETS / "checkpoints" / "demo"
    _copy_model(final, demo)
    # the latent decoder is trained against the shipped model's own encoder (analysis/latent_decoder.py)
    subprocess.run([sys.executable, "-m", "analysis.latent_decoder", "--checkpoint", str(demo), "--images", "2000",
                    "--steps", "1500"], check=True, cwd=ROOT)  # fmt: skip
    entries.append(_entry("demo", demo, stage, "sft" if stage == "grpo" else "warmup", evals / stage))
    for budget, weight in SWEEP:
        run = f"demo-sweep-k{budget}-l{weight:g}"
        source = final_model(run, SWEEP_STEPS)
        if not source.is_dir():
            print(f"ship: {source} missing, skipped")
            continue
        name = f"sweep/k{budget}-l{weight:g}"
        target = ASSETS / "checkpoints" / name
        _copy_model(source, target, dtype=torch.float16)
        eval_name = run.removeprefix("demo-")
        entries.append(_entry(name, target, "sft", "warmup", evals / eval_name))
    for entry in entries:
        cap = SIZE_CAPS_MB["demo" if entry["name"] == "demo" else "sweep"]
        if entry["size_mb"] > cap:
            raise SystemExit(f"error: {entry['path']} is {entry['size_mb']:.1f} MB, over the {cap} MB cap")
    registry = {"checkpoints": entries}
    (ASSETS / "checkpoints" / "registry.json").write_text(json.dumps(registry, indent=1) + "\n")
    print(f"shipped {len(entries)} checkpoints; registry: assets/checkpoints/registry.json")


def _entry(name: str, folder: Path, stage: str, parent: str, eval_dir: Path) -> dict:
    config = json.loads((folder / "config.json").read_text())
    return {
        "name": name,
        "path": str(folder.relative_to(ROOT)),
        "latent_budget": config["latent_budget"],
        "diffusion_loss_weight": config["diffusion_loss_weight"],
        "stage": stage,
        "parent": parent,
        "size_mb": round(_size_mb(folder), 2),
        "metrics": _metrics(eval_dir) if (eval_dir / "summary.parquet").exists() else {},
    }


if __name__ == "__main__":
    ship(ROOT / "runs")
    sys.exit(0)
