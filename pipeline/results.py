"""The stored evaluations the report reads (assets/results/<name>.json) and the registry's records of what each shipped
model was trained with; number formatting shared by the report's parts.

    r = Result("test-demo")
    r.get("auto", "maze"), r.cell("auto", "overall"), r.predictions()    # accuracy, "59.0 [55.0–62.9]", per puzzle
    recipe_of("baseline/text-cot")                                          # its registry entry's recipe, or None
"""

import json
import random
import re

import pandas as pd

from model.sketchworld import DEFAULT_FAMILIES, generate_instance
from pipeline.layout import ASSETS
from pipeline.paired import record_frame

RESULTS = ASSETS / "results"
# the default families whose traces draw sketches (all but count), in the dataset's order
SKETCH_FAMILIES = [f for f in DEFAULT_FAMILIES if generate_instance(f, random.Random(0)).num_sketches]


class Result:
    """One stored evaluation: accuracy (and interval, n, …) by (mode, family), its sketch quality and, when stored,
    its per-puzzle record (pipeline/paired.py)."""

    def __init__(self, name: str):
        path = RESULTS / f"{name}.json"
        self.name, self.exists = name, path.exists()
        data = json.loads(path.read_text()) if self.exists else {"summary": [], "config": {}}
        self.config = data["config"]
        self.summary = pd.DataFrame(data["summary"])
        self.quality = pd.DataFrame(data.get("quality") or [])
        self.record = data.get("per_puzzle")

    def get(self, mode: str, family: str = "overall", column: str = "accuracy"):
        if self.summary.empty:
            return None
        rows = self.summary[(self.summary["mode"] == mode) & (self.summary["family"] == family)]
        return None if rows.empty or pd.isna(rows.iloc[0][column]) else float(rows.iloc[0][column])

    def cell(self, mode: str, family: str) -> str:
        acc = self.get(mode, family)
        if acc is None:
            return "–"
        low, high = self.get(mode, family, "ci_low"), self.get(mode, family, "ci_high")
        return f"{pct(acc)} [{pct(low)}–{pct(high)}]" if low is not None else pct(acc)

    def predictions(self) -> pd.DataFrame | None:
        """Per puzzle: id, family, mode, correct, latency_s; None when the stored file has no record."""
        return record_frame(self.record) if self.record else None

    @property
    def steps(self) -> int | None:
        """The training steps of the evaluated checkpoint's last stage, read from its folder name (checkpoint-N)."""
        found = re.search(r"checkpoint-(\d+)", str(self.config.get("checkpoint", "")))
        return int(found.group(1)) if found else None

    def families(self) -> list[str]:
        return [] if self.summary.empty else sorted(set(self.summary["family"]) - {"overall"})

    def margin(self, mode: str, other: str, family: str):
        a, b = self.get(mode, family), self.get(other, family)
        return None if a is None or b is None else a - b


def registry() -> dict:
    """The registry beside the results the report reads ({"checkpoints": []} without one)."""
    path = RESULTS.parent / "checkpoints" / "registry.json"
    return json.loads(path.read_text()) if path.exists() else {"checkpoints": []}


def recipe_of(name: str) -> dict | None:
    """The `recipe` a registry entry records (supervised steps, data version, lineage); None without one."""
    found = next((e for e in registry()["checkpoints"] if e["name"] == name), {})
    return found.get("recipe") if isinstance(found.get("recipe"), dict) else None


def pct(x) -> str:
    return "–" if x is None or pd.isna(x) else f"{100 * x:.1f}"


def num(x, digits: int = 3) -> str:
    return "–" if x is None or pd.isna(x) else f"{x:.{digits}f}"


def points(x) -> str:
    return "–" if x is None else f"{100 * x:+.1f}"


def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def check(label: str, value, target: float, at_least: bool = True) -> str:
    """One target line: met / **not met** / not measured, with the value and the target."""
    if value is None:
        return f"- {label}: not measured (target {pct(target)})."
    slack = 1e-9  # accuracies are shares of n: 0.59 - 0.49 is 10 points, not 9.999…
    met = value >= target - slack if at_least else value <= target + slack
    sign = "≥" if at_least else "≤"
    return f"- {'met' if met else '**not met**'} — {label}: {pct(value)} (target {sign} {pct(target)})."
