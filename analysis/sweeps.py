"""Checkpoint sweeps: the registry of trained checkpoints as tables of metrics against K, λ, the head and the decoding.

The registry (`assets/checkpoints/registry.json` in the project, written by `python -m pipeline.ship`) looks like

    {"checkpoints": [{"name": "sweep/k32-l1", "path": "...", "latent_budget": 32, "diffusion_loss_weight": 1.0,
                      "head_type": "diffusion", "sketch_decoding": "parallel", "stage": "refine", "parent": "warmup",
                      "metrics": {"accuracy": {"overall": 0.61, "maze": 0.7}, "ci_low": {...}, "ci_high": {...},
                                  "accuracy_noise_latents": {...}, "use": {...}, "latency_s": 1.9}}]}

A metric is either a number (reported with family "overall") or an object of numbers per family. Beside the entries,
`"sweep_grid": {"recipe": {...}, "points": [...], "missing": ["sweep/k4-l1", ...]}` names the grid's planned points
and those not trained yet.

    registry = load_registry("assets/checkpoints/registry.json")
    missing_points(registry)                     # the grid's planned points not trained yet (its `sweep_grid`)
    table = metrics_table(registry)              # long: name, K, λ, head, decoding, stage, recipe, training, family, …
    for panel in sweep_panels(table, registry):  # the Sweeps tab's panels, each with the points it draws
        panel.title, panel.names, panel.data     # data: family, <axis>, value, low, high, name
    vs_budget(table, "accuracy", diffusion_loss_weight=1.0, sketch_decoding="parallel")  # per family, a column per K

Only `sweep/` entries are sweep points: the demo, its sequential twin and the baselines are registered so that the app
can load them, never plotted. Each panel holds the axes it does not draw at one value and says so (`Panel.held`), so no
two points can meet at one place: accuracy, use and latency against K at λ = 1 with the diffusion head and the grid's
decoding (parallel; sequential for a grid trained before parallel decoding existed), accuracy against λ at the demo's
K, and the head and decoding ablations at the demo's K (or, when the grid has no such comparison there, at the K that
has the most). `use` is auto − noise-latents: the registry's own `use` with its paired interval when it has one, else
`accuracy − accuracy_noise_latents` without an interval. An entry without `sketch_decoding` predates parallel
decoding; its checkpoint decodes sequentially (the model config's default), and the table says so.

Simplified: no schema versioning; unknown extra fields in a checkpoint entry are kept but ignored.
"""

import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

REQUIRED_FIELDS = ("name", "path", "latent_budget", "diffusion_loss_weight", "stage", "metrics")
DEFAULT_HEAD, DEFAULT_DECODING = "diffusion", "sequential"  # what a checkpoint without the field is (config defaults)
AXES = ("latent_budget", "diffusion_loss_weight", "head_type", "sketch_decoding")  # what a sweep point varies
TABLE_COLUMNS = ("name", *AXES, "stage", "recipe", "training", "family", "metric", "value")
INTERVALS = {"accuracy": ("ci_low", "ci_high"), "use": ("use_ci_low", "use_ci_high")}  # metric: its 95 % bounds
SWEEP_PREFIX = "sweep/"  # the registry names of sweep points; every other entry is left out of the panels
REFERENCE_LAMBDA = 1.0  # the λ the K sweep and both ablations hold
AXIS_WORDS = {"latent_budget": "K", "diffusion_loss_weight": "λ", "head_type": "head", "sketch_decoding": "decoding"}


def load_registry(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check the registry; ValueError naming the file and the problem."""
    where = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            registry = json.load(handle)
    except FileNotFoundError:
        raise ValueError(f"{where}: registry file not found") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not valid JSON ({err})") from None
    if not isinstance(registry, dict) or not isinstance(registry.get("checkpoints"), list):
        raise ValueError(f"{where}: expected an object with a list under 'checkpoints'")
    names = set()
    for i, entry in enumerate(registry["checkpoints"]):
        label = f"{where}: checkpoints[{i}]" + (f" ({entry.get('name')!r})" if isinstance(entry, dict) else "")
        _check_entry(entry, label)
        if entry["name"] in names:
            raise ValueError(f"{label}: duplicate checkpoint name")
        names.add(entry["name"])
    grid = registry.get("sweep_grid", {})
    missing = grid.get("missing", []) if isinstance(grid, dict) else None
    if not isinstance(missing, list) or not all(isinstance(name, str) for name in missing):
        raise ValueError(f"{where}: sweep_grid must be an object whose 'missing' is a list of names, got {grid!r}")
    return registry


def missing_points(registry: dict[str, Any]) -> list[str]:
    """The sweep grid's planned points that are not trained yet, as the registry's `sweep_grid` names them
    (pipeline/registry.py `grid_summary` writes it); [] for a registry without that record."""
    return list(registry.get("sweep_grid", {}).get("missing", []))


def _check_entry(entry: Any, label: str) -> None:
    if not isinstance(entry, dict):
        raise ValueError(f"{label}: expected an object, got {type(entry).__name__}")
    missing = [f for f in REQUIRED_FIELDS if f not in entry]
    if missing:
        raise ValueError(f"{label}: missing field(s) {missing}")
    if not isinstance(entry["latent_budget"], int) or isinstance(entry["latent_budget"], bool):
        raise ValueError(f"{label}: latent_budget must be an integer, got {entry['latent_budget']!r}")
    if not _is_number(entry["diffusion_loss_weight"]):
        raise ValueError(f"{label}: diffusion_loss_weight must be a number, got {entry['diffusion_loss_weight']!r}")
    if not isinstance(entry["metrics"], dict):
        raise ValueError(f"{label}: metrics must be an object, got {type(entry['metrics']).__name__}")
    for metric, value in entry["metrics"].items():
        values = value.values() if isinstance(value, dict) else [value]
        if not all(_is_number(v) for v in values):
            raise ValueError(f"{label}: metric {metric!r} must be a number or an object of numbers, got {value!r}")


def metrics_table(registry: dict[str, Any]) -> pd.DataFrame:
    """Long format: one row per (checkpoint, family, metric); scalar metrics get family "overall". A missing head or
    decoding is the config default (DEFAULT_HEAD, DEFAULT_DECODING); a missing `use` is accuracy − noise-latents."""
    rows = []
    for entry in registry["checkpoints"]:
        base = {**entry_axes(entry), "recipe": entry.get("recipe", ""), "training": training_text(entry)}
        for metric, value in _with_use(entry["metrics"]).items():
            per_family = value if isinstance(value, dict) else {"overall": value}
            for family, number in per_family.items():
                rows.append({**base, "family": family, "metric": metric, "value": float(number)})
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def entry_axes(entry: dict[str, Any]) -> dict[str, Any]:
    """name, K, λ, head, decoding and stage of a registry entry (a missing head or decoding: the config default)."""
    return {
        "name": entry["name"],
        "latent_budget": entry["latent_budget"],
        "diffusion_loss_weight": float(entry["diffusion_loss_weight"]),
        "head_type": entry.get("head_type", DEFAULT_HEAD),
        "sketch_decoding": entry.get("sketch_decoding", DEFAULT_DECODING),
        "stage": entry["stage"],
    }


def training_text(entry: dict[str, Any]) -> str:
    """What a registered checkpoint's training was, from what its entry records: supervised steps, GRPO or not, and
    the task suite's version (sketch-world vN), each "not recorded" where the entry does not say.

    Read from `recipe` ({"supervised_steps": N, "data_version": "5", "lineage": "…"}; "previous" marks a point of an
    earlier recipe), from `supervised_steps` / `data_version` beside it, and from `stage` ("grpo" for GRPO)."""
    recipe = entry.get("recipe")
    recipe = recipe if isinstance(recipe, dict) else {}
    lineage = str(recipe.get("lineage", ""))
    steps = recipe.get("supervised_steps", entry.get("supervised_steps"))
    version = recipe.get("data_version", entry.get("data_version"))
    if version is None and re.search(r"sketch-world v(\d+)", lineage):
        version = re.search(r"sketch-world v(\d+)", lineage).group(1)
    grpo = entry.get("stage") == "grpo" or "GRPO" in lineage
    words = [
        f"{steps} supervised steps" if _is_number(steps) else "supervised steps not recorded",
        f"stage {entry.get('stage', '?')} from {entry.get('parent') or 'scratch'}",
        "with GRPO" if grpo else "no GRPO",
        f"sketch-world v{version}" if version is not None else "data version not recorded",
    ]
    if entry.get("recipe") == "previous":
        words.append("an earlier recipe")
    return ", ".join(words)


def _with_use(metrics: dict) -> dict:
    """The metrics with `use` (auto − noise-latents per family) added when the entry has the two but no `use`."""
    auto, noise = metrics.get("accuracy"), metrics.get("accuracy_noise_latents")
    if "use" in metrics or not isinstance(auto, dict) or not isinstance(noise, dict):
        return metrics
    return {**metrics, "use": {family: auto[family] - noise[family] for family in auto if family in noise}}


# ---- the Sweeps tab's panels ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PanelSpec:
    key: str
    metric: str  # drawn on the y axis
    axis: str  # drawn along x (lines) or as the bars of each family (ablations)
    title: str  # what is drawn; the held axes are added to it


PANEL_SPECS = (
    PanelSpec("accuracy_vs_k", "accuracy", "latent_budget", "Accuracy vs K"),
    PanelSpec("use_vs_k", "use", "latent_budget", "Use of the sketches (auto − noise) vs K"),
    PanelSpec("accuracy_vs_lambda", "accuracy", "diffusion_loss_weight", "Accuracy vs λ"),
    PanelSpec("latency_vs_k", "latency_s", "latent_budget", "Latency per answer vs K"),
    PanelSpec("head", "accuracy", "head_type", "Head ablation: accuracy per head"),
    PanelSpec("decoding", "accuracy", "sketch_decoding", "Decoding ablation: accuracy per decoding"),
)


@dataclass
class Panel:
    spec: PanelSpec
    held: dict[str, Any]  # the axes it does not draw, each at one value
    names: list[str]  # the registry names of the points it draws, in axis order
    data: pd.DataFrame  # family, <axis>, value, low, high, name, training (low/high NaN without an interval)
    note: str = ""  # why it draws nothing, or too little to compare
    title: str = field(init=False)

    def __post_init__(self):
        self.title = f"{self.spec.title} · {held_text(self.held)}" if self.held else self.spec.title


def held_text(held: dict[str, Any]) -> str:
    """The held axes in words: "K = 64 · λ = 1 · diffusion head · parallel decoding"."""
    words = {
        "latent_budget": lambda v: f"K = {v}",
        "diffusion_loss_weight": lambda v: f"λ = {v:g}",
        "head_type": lambda v: f"{v} head",
        "sketch_decoding": lambda v: f"{v} decoding",
    }
    return " · ".join(words[axis](held[axis]) for axis in AXES if axis in held)


def sweep_points(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of `sweep/` entries only; when the registry holds sweep points of the current recipe and of a
    previous one, the current recipe's (the two grids answer different questions)."""
    rows = table[table["name"].str.startswith(SWEEP_PREFIX)]
    current = rows[rows["recipe"] != "previous"]
    return current if not current.empty else rows


def demo_budget(registry: dict[str, Any], table: pd.DataFrame) -> int | None:
    """The demo's K: the registry's `demo` entry's, else the K most sweep points share (None without any)."""
    demo = next((e for e in registry["checkpoints"] if e["name"] == "demo"), None)
    if demo is not None:
        return int(demo["latent_budget"])
    points = sweep_points(table).drop_duplicates("name")
    return int(points["latent_budget"].mode().iloc[0]) if not points.empty else None


def grid_decoding(points: pd.DataFrame) -> str:
    """The decoding the K sweep was trained with: parallel when any point at λ = 1 with the diffusion head decodes in
    parallel, else sequential (a grid from before parallel decoding)."""
    base = points[(points["diffusion_loss_weight"] == REFERENCE_LAMBDA) & (points["head_type"] == DEFAULT_HEAD)]
    return "parallel" if (base["sketch_decoding"] == "parallel").any() else DEFAULT_DECODING


def held_axes(spec: PanelSpec, points: pd.DataFrame, demo_k: int | None) -> dict[str, Any]:
    """The value each axis the panel does not draw is held at (see the module docstring)."""
    held = {"latent_budget": None, "diffusion_loss_weight": REFERENCE_LAMBDA, "head_type": DEFAULT_HEAD}
    held["sketch_decoding"] = grid_decoding(points)
    del held[spec.axis]
    if "latent_budget" in held:
        held["latent_budget"] = _budget_for(spec.axis, points, held, demo_k)
    return held


def _budget_for(axis: str, points: pd.DataFrame, held: dict, demo_k: int | None) -> int | None:
    """The demo's K when the panel compares two or more values of `axis` there; else the K with the most (the
    largest on a tie); the demo's K when no K has two."""
    others = _select(points, {a: v for a, v in held.items() if a != "latent_budget"})
    counts = others.groupby("latent_budget")[axis].nunique()
    if demo_k is not None and counts.get(demo_k, 0) >= 2:
        return demo_k
    best = counts[counts >= 2]
    if best.empty:
        return demo_k
    return int(best[best == best.max()].index.max())


def _select(rows: pd.DataFrame, held: dict[str, Any]) -> pd.DataFrame:
    for axis, value in held.items():
        rows = rows[rows[axis] == value]
    return rows


def panel(spec: PanelSpec, table: pd.DataFrame, demo_k: int | None, families: list[str] | None = None) -> Panel:
    """One panel: the sweep points at its held axes, `spec.metric` per family (or only `families`) with its
    interval; ValueError naming the points when two of them still share a place on the axis."""
    points = sweep_points(table)
    held = held_axes(spec, points, demo_k)
    chosen = _select(points, held)
    clash = chosen.drop_duplicates("name").duplicated(spec.axis, keep=False)
    if clash.any():
        names = sorted(chosen.drop_duplicates("name")[clash.values]["name"])
        raise ValueError(f"{spec.title}: points {names} share {AXIS_WORDS[spec.axis]} at {held_text(held)}")
    data = _values(chosen, spec, families)
    names = data.sort_values(spec.axis)["name"].drop_duplicates().tolist()
    note = ""
    if data.empty:
        note = f"no sweep point has {spec.metric} at {held_text(held)}"
    elif data[spec.axis].nunique() < 2:
        note = f"only {names[0]} at {held_text(held)}: nothing to compare"
    return Panel(spec, held, names, data, note)


def _values(chosen: pd.DataFrame, spec: PanelSpec, families: list[str] | None) -> pd.DataFrame:
    """family, <axis>, value, low, high, name, training of the metric (low/high from its interval metrics, NaN
    without)."""
    keys = ["name", "family"]
    values = chosen[chosen["metric"] == spec.metric]
    if families:
        values = values[values["family"].isin(families)]
    out = values[[*keys, spec.axis, "value", "training"]].copy()
    for bound, metric in zip(("low", "high"), INTERVALS.get(spec.metric, ())):
        interval = chosen[chosen["metric"] == metric][[*keys, "value"]].rename(columns={"value": bound})
        out = out.merge(interval, on=keys, how="left")
    for bound in ("low", "high"):
        if bound not in out:
            out[bound] = float("nan")
    out = out.sort_values([spec.axis, "family"]).reset_index(drop=True)
    return out[["family", spec.axis, "value", "low", "high", "name", "training"]]


def sweep_panels(table: pd.DataFrame, registry: dict[str, Any], families: list[str] | None = None) -> list:
    """Every panel of PANEL_SPECS, in order: a Panel, or the ValueError that says which points clash."""
    demo_k = demo_budget(registry, table)
    out = []
    for spec in PANEL_SPECS:
        try:
            out.append(panel(spec, table, demo_k, families))
        except ValueError as err:
            out.append(err)
    return out


def points_table(registry: dict[str, Any], panels: list) -> pd.DataFrame:
    """One row per registered checkpoint: its axes, stage and the panels that draw it ("" for entries that are not
    sweep points: the demo, its sequential twin, the baselines; and for points only a panel with a `note` has). A
    decoding the entry does not record reads "sequential (not recorded)"."""
    drawn: dict[str, list[str]] = {}
    for shown in panels:
        for name in shown.names if isinstance(shown, Panel) and not shown.note else []:
            drawn.setdefault(name, []).append(shown.spec.key)
    rows = [{**entry_axes(e), "training": training_text(e), "panels": ", ".join(drawn.get(e["name"], []))}
            for e in registry["checkpoints"]]  # fmt: skip
    for row, entry in zip(rows, registry["checkpoints"]):
        if "sketch_decoding" not in entry:  # shown as it is: the field was not recorded, the default applies
            row["sketch_decoding"] = f"{DEFAULT_DECODING} (not recorded)"
    return pd.DataFrame(rows, columns=["name", *AXES, "stage", "training", "panels"])


# ---- pivots (pipeline/report.py) -----------------------------------------------------------------------------------
def vs_budget(
    table: pd.DataFrame,
    metric: str = "accuracy",
    diffusion_loss_weight: float | None = None,
    stage: str | None = None,
    **held: Any,
) -> pd.DataFrame:
    """`metric` with rows per family and one column per latent budget K (optionally at one λ, stage, head_type or
    sketch_decoding)."""
    filters = {"diffusion_loss_weight": diffusion_loss_weight, "stage": stage, **held}
    return _pivot(table, metric, "latent_budget", filters)


def vs_lambda(
    table: pd.DataFrame,
    metric: str = "accuracy",
    latent_budget: int | None = None,
    stage: str | None = None,
    **held: Any,
) -> pd.DataFrame:
    """`metric` with rows per family and one column per diffusion loss weight λ (optionally at one K, stage,
    head_type or sketch_decoding)."""
    return _pivot(table, metric, "diffusion_loss_weight", {"latent_budget": latent_budget, "stage": stage, **held})


def _pivot(table: pd.DataFrame, metric: str, axis: str, filters: dict[str, Any]) -> pd.DataFrame:
    unknown = set(filters) - set(TABLE_COLUMNS)
    if unknown:
        raise ValueError(f"unknown filter(s) {sorted(unknown)}; the table's columns are {list(TABLE_COLUMNS)}")
    rows = table[table["metric"] == metric]
    if rows.empty:
        raise ValueError(f"no metric {metric!r} in the table; metrics are {sorted(table['metric'].unique())}")
    for column, wanted in filters.items():
        if wanted is not None:
            rows = rows[rows[column] == wanted]
    clash = rows[rows.duplicated(["family", axis], keep=False)]
    if not clash.empty:
        names = sorted(clash["name"].unique())
        free = [k for k, v in filters.items() if v is None] or ["the registry"]
        raise ValueError(f"checkpoints {names} share a {axis} for metric {metric!r}; hold {' / '.join(free)} fixed")
    out = rows.pivot(index="family", columns=axis, values="value").sort_index(axis=1)
    out.columns.name = axis
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
