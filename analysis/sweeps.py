"""Checkpoint sweeps: the registry of trained checkpoints as tables of metrics against K and λ.

The registry (`assets/checkpoints/registry.json` in the project) looks like

    {"checkpoints": [{"name": "k32-l0.5", "path": "...", "latent_budget": 32, "diffusion_loss_weight": 0.5,
                      "stage": "sft", "parent": null,
                      "metrics": {"accuracy": {"overall": 0.61, "maze": 0.7}, "latency_s": 1.9}}]}

A metric is either a number (reported with family "overall") or an object of numbers per family.

    registry = load_registry("assets/checkpoints/registry.json")
    table = metrics_table(registry)                  # long: name, latent_budget, diffusion_loss_weight, stage, ...
    vs_budget(table, "accuracy", stage="sft")        # rows per family, one column per K
    vs_lambda(table, "accuracy", latent_budget=32)   # rows per family, one column per λ

Simplified: no schema versioning; unknown extra fields in a checkpoint entry are kept but ignored.
"""

import json
import math
import os
from typing import Any

import pandas as pd

REQUIRED_FIELDS = ("name", "path", "latent_budget", "diffusion_loss_weight", "stage", "metrics")
TABLE_COLUMNS = ("name", "latent_budget", "diffusion_loss_weight", "stage", "family", "metric", "value")


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
        if not isinstance(entry, dict):
            raise ValueError(f"{label}: expected an object, got {type(entry).__name__}")
        missing = [f for f in REQUIRED_FIELDS if f not in entry]
        if missing:
            raise ValueError(f"{label}: missing field(s) {missing}")
        if entry["name"] in names:
            raise ValueError(f"{label}: duplicate checkpoint name")
        names.add(entry["name"])
        if not isinstance(entry["latent_budget"], int) or isinstance(entry["latent_budget"], bool):
            raise ValueError(f"{label}: latent_budget must be an integer, got {entry['latent_budget']!r}")
        if not _is_number(entry["diffusion_loss_weight"]):
            raise ValueError(
                f"{label}: diffusion_loss_weight must be a number, got {entry['diffusion_loss_weight']!r}"
            )
        if not isinstance(entry["metrics"], dict):
            raise ValueError(f"{label}: metrics must be an object, got {type(entry['metrics']).__name__}")
        for metric, value in entry["metrics"].items():
            values = value.values() if isinstance(value, dict) else [value]
            if not all(_is_number(v) for v in values):
                raise ValueError(f"{label}: metric {metric!r} must be a number or an object of numbers, got {value!r}")
    return registry


def metrics_table(registry: dict[str, Any]) -> pd.DataFrame:
    """Long format: one row per (checkpoint, family, metric); scalar metrics get family "overall"."""
    rows = []
    for entry in registry["checkpoints"]:
        base = {
            "name": entry["name"],
            "latent_budget": entry["latent_budget"],
            "diffusion_loss_weight": float(entry["diffusion_loss_weight"]),
            "stage": entry["stage"],
        }
        for metric, value in entry["metrics"].items():
            per_family = value if isinstance(value, dict) else {"overall": value}
            for family, number in per_family.items():
                rows.append({**base, "family": family, "metric": metric, "value": float(number)})
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def vs_budget(
    table: pd.DataFrame,
    metric: str = "accuracy",
    diffusion_loss_weight: float | None = None,
    stage: str | None = None,
) -> pd.DataFrame:
    """`metric` with rows per family and one column per latent budget K (optionally at one λ and stage)."""
    return _pivot(table, metric, "latent_budget", {"diffusion_loss_weight": diffusion_loss_weight, "stage": stage})


def vs_lambda(
    table: pd.DataFrame,
    metric: str = "accuracy",
    latent_budget: int | None = None,
    stage: str | None = None,
) -> pd.DataFrame:
    """`metric` with rows per family and one column per diffusion loss weight λ (optionally at one K and stage)."""
    return _pivot(table, metric, "diffusion_loss_weight", {"latent_budget": latent_budget, "stage": stage})


def _pivot(table: pd.DataFrame, metric: str, axis: str, filters: dict[str, Any]) -> pd.DataFrame:
    rows = table[table["metric"] == metric]
    if rows.empty:
        raise ValueError(f"no metric {metric!r} in the table; metrics are {sorted(table['metric'].unique())}")
    for column, wanted in filters.items():
        if wanted is not None:
            rows = rows[rows[column] == wanted]
    clash = rows[rows.duplicated(["family", axis], keep=False)]
    if not clash.empty:
        names = sorted(clash["name"].unique())
        raise ValueError(
            f"checkpoints {names} share a {axis} for metric {metric!r}; narrow with "
            f"{' / '.join(k for k, v in filters.items() if v is None)}"
        )
    out = rows.pivot(index="family", columns=axis, values="value").sort_index(axis=1)
    out.columns.name = axis
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
