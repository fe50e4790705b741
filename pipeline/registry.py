"""The checkpoint registry's entries (assets/checkpoints/registry.json): what ship writes for each shipped model, and
how newly trained sweep points are merged into the grid that is already registered.

    item = entry("sweep/k16-l1", folder, "refine", "warmup", runs.eval_dir("sweep-k16-l1"), recipe=runs.sweep_grid())
    entries, dropped = merge_sweep(old_entries, [item], runs.sweep_grid())
    summary = grid_summary(entries, [p.name for p in SWEEP], runs.sweep_grid())   # the "sweep_grid" field

An entry: name, path, K, λ, head, decoding, stage, parent, size, `recipe` (what it was trained with: supervised
steps, sketch-world version, lineage; "previous" for a point of an earlier grid) and its audit's `metrics`
(analysis/sweeps.py and the app read them). A sweep point's *role* is what it varies: its K (at λ = 1, the diffusion
head, sequential decoding), its λ, its head or its decoding. Merging keeps every point of the current grid, replaces
a point of the same name, drops a point of an earlier grid once the current grid has a point in its role (the v4
grid's k32-l0.1 goes when k64-l0.1 lands), and marks the earlier grid's other points "previous" (the Sweeps tab then
draws the current grid only, and says so).
"""

import json
from pathlib import Path

import pandas as pd

from model.generation.modes import mode_names
from pipeline.checkpoints import sketch_decoding

SWEEP_PREFIX = "sweep/"


def size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def registry_metrics(eval_dir: Path, main_mode: str = "auto") -> dict:
    """`accuracy` (of `main_mode`: auto, or text-only for the text-only-CoT baseline) and `accuracy_<mode>` per
    family, with `ci_low`/`ci_high` of it, and its latency, START rate and sketches per answer (analysis/sweeps.py and
    the app's Sweeps tab read these)."""
    summary = pd.read_parquet(eval_dir / "summary.parquet")
    out: dict = {}
    for row in summary.itertuples():
        if row.mode not in mode_names():
            continue
        key = "accuracy" if row.mode == main_mode else f"accuracy_{row.mode.replace('-', '_')}"
        out.setdefault(key, {})[row.family] = round(float(row.accuracy), 4)
        if row.mode == main_mode:
            out.setdefault("ci_low", {})[row.family] = round(float(row.ci_low), 4)
            out.setdefault("ci_high", {})[row.family] = round(float(row.ci_high), 4)
            if row.family == "overall":
                out["latency_s"] = round(float(row.latency_mean_s), 4)
                out["start_rate"] = round(float(row.start_rate), 4)
                out["sketches_per_answer"] = round(float(row.sketches_per_answer), 4)
    return out


def use_metrics(eval_dir: Path) -> dict:
    """`use` = auto − noise-latents per family and overall, with a 95 % interval for the paired difference (the same
    puzzles in both modes: mean of per-puzzle differences ± 1.96 standard errors); {} without both modes."""
    path = eval_dir / "predictions.parquet"
    if not path.exists():
        return {}
    predictions = pd.read_parquet(path, columns=["id", "family", "mode", "correct"])
    wide = predictions.pivot_table(index=["id", "family"], columns="mode", values="correct", aggfunc="first")
    if not {"auto", "noise-latents"} <= set(wide.columns):
        return {}
    wide = wide.dropna(subset=["auto", "noise-latents"]).reset_index()
    wide["diff"] = wide["auto"].astype(float) - wide["noise-latents"].astype(float)
    out: dict = {"use": {}, "use_ci_low": {}, "use_ci_high": {}}
    for family, diffs in [*wide.groupby("family")["diff"], ("overall", wide["diff"])]:
        mean, half = float(diffs.mean()), 1.96 * float(diffs.std(ddof=1) / len(diffs) ** 0.5) if len(diffs) > 1 else 0
        out["use"][family] = round(mean, 4)
        out["use_ci_low"][family], out["use_ci_high"][family] = round(mean - half, 4), round(mean + half, 4)
    return out


def entry(name: str, folder: Path, root: Path, stage: str, parent: str, eval_dir: Path, main_mode: str = "auto",
          recipe: dict | None = None) -> dict:  # fmt: skip
    """The registry entry of the model in `folder` (path relative to `root`), its metrics from `eval_dir`."""
    config = json.loads((folder / "config.json").read_text())
    item = {
        "name": name,
        "path": str(folder.relative_to(root)),
        "latent_budget": config["latent_budget"],
        "diffusion_loss_weight": config["diffusion_loss_weight"],
        "head_type": config.get("head_type", "diffusion"),
        "sketch_decoding": sketch_decoding(folder),
        "stage": stage,
        "parent": parent,
        "size_mb": round(size_mb(folder), 2),
        "metrics": {**registry_metrics(eval_dir, main_mode), **use_metrics(eval_dir)}
        if (eval_dir / "summary.parquet").exists()
        else {},
    }
    if recipe is not None:
        item["recipe"] = recipe
    return item


def role(item: dict) -> tuple:
    """What a sweep point varies against the grid's reference (K = 64, λ = 1, diffusion head, sequential decoding):
    ("head", head), ("decoding", decoding), ("lambda", λ) or ("budget", K)."""
    head, decoding = item.get("head_type", "diffusion"), item.get("sketch_decoding", "sequential")
    if head != "diffusion":
        return ("head", head)
    if decoding != "sequential":
        return ("decoding", decoding)
    if float(item["diffusion_loss_weight"]) != 1.0:
        return ("lambda", float(item["diffusion_loss_weight"]))
    return ("budget", int(item["latent_budget"]))


def merge_sweep(old: list[dict], new: list[dict], grid: dict) -> tuple[list[dict], list[dict]]:
    """(the registry's entries with the `new` sweep points of `grid` merged in, the old sweep entries dropped) — see
    the module docstring. The other entries stay where they were; the sweep points follow them, the current grid
    first."""
    new_names = {e["name"] for e in new}
    others = [e for e in old if not e["name"].startswith(SWEEP_PREFIX)]
    points = [e for e in old if e["name"].startswith(SWEEP_PREFIX) and e["name"] not in new_names]
    current = [e for e in points if e.get("recipe") == grid] + list(new)
    roles = {role(e) for e in current}
    earlier = [e for e in points if e.get("recipe") != grid]
    dropped = [e for e in earlier if role(e) in roles]
    previous = [{**e, "recipe": "previous"} for e in earlier if role(e) not in roles]
    return others + current + previous, dropped


def grid_summary(entries: list[dict], planned: list[str], grid: dict) -> dict:
    """The registry's "sweep_grid" field: the grid's recipe, its planned points in training order, and those not
    registered yet (the report and the Sweeps tab name them, never silently absent)."""
    registered = {e["name"] for e in entries if e.get("recipe") == grid}
    points = [f"{SWEEP_PREFIX}{name}" for name in planned]
    return {"recipe": grid, "points": points, "missing": [p for p in points if p not in registered]}
