"""Paired differences between two evaluations of the same puzzles, with a 95 % interval, and the per-puzzle record the
report keeps of every evaluation (so that it can pair two of them later).

    a = correct_of(predictions_a, "auto")           # id → 1.0 / 0.0
    b = correct_of(predictions_b, "auto")
    d = paired_difference(a, b)                     # Difference(mean, low, high, n) of a − b on the common ids
    d.above_zero, d.below_zero                      # beyond noise, one way or the other

Two models answering the same puzzles are far from independent (both right on the easy ones), so their difference is
judged by the per-puzzle differences: mean ± 1.96 standard errors (a normal approximation: fine at the hundreds of
puzzles an audit has; at a few dozen it is rough). `per_puzzle_record` stores an evaluation's correctness (and
latency) per puzzle compactly in its results file under assets/results/ (ids once, a string of 0/1 per mode).
"""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

Z95 = 1.96


@dataclass(frozen=True)
class Difference:
    mean: float  # of a − b over the paired puzzles
    low: float  # its 95 % interval
    high: float
    n: int  # puzzles in both

    @property
    def above_zero(self) -> bool:
        return self.low > 0

    @property
    def below_zero(self) -> bool:
        return self.high < 0

    def text(self, scale: float = 100.0, unit: str = "") -> str:
        """ "+4.2 [+1.0, +7.4]" (points by default), with n."""
        return (f"{scale * self.mean:+.1f}{unit} [{scale * self.low:+.1f}, {scale * self.high:+.1f}] "
                f"(n = {self.n})")  # fmt: skip


def paired_difference(a: pd.Series, b: pd.Series) -> Difference | None:
    """a − b over the ids (index) both have; None when they share none."""
    common = a.index.intersection(b.index)
    if len(common) == 0:
        return None
    diffs = a.loc[common].astype(float) - b.loc[common].astype(float)
    mean = float(diffs.mean())
    half = Z95 * float(diffs.std(ddof=1)) / len(diffs) ** 0.5 if len(diffs) > 1 else 0.0
    return Difference(mean, mean - half, mean + half, len(diffs))


def correct_of(predictions: pd.DataFrame, mode: str = "auto", families=None, column: str = "correct") -> pd.Series:
    """id → the mode's `column` (correct as 1.0 / 0.0, or latency_s), optionally only `families`."""
    rows = predictions[predictions["mode"] == mode]
    if families is not None:
        rows = rows[rows["family"].isin(list(families))]
    return rows.set_index("id")[column].astype(float)


def read_predictions(eval_dir: Path) -> pd.DataFrame | None:
    """An evaluation folder's predictions (id, family, mode, correct, latency_s); None without the file."""
    path = Path(eval_dir) / "predictions.parquet"
    if not path.exists():
        return None
    return pd.read_parquet(path, columns=["id", "family", "mode", "correct", "latency_s"])


def per_puzzle_record(eval_dir: Path) -> dict | None:
    """{"ids": [...], "families": [...], "correct": {mode: "0110…"}, "latency_s": {mode: [...]}} of an evaluation
    folder's predictions, in id order; None without them."""
    predictions = read_predictions(eval_dir)
    if predictions is None or predictions.empty:
        return None
    first = predictions.drop_duplicates("id").sort_values("id")
    ids = first["id"].tolist()
    record = {"ids": ids, "families": first["family"].tolist(), "correct": {}, "latency_s": {}}
    for mode, rows in predictions.groupby("mode"):
        rows = rows.drop_duplicates("id").set_index("id").reindex(ids)
        record["correct"][mode] = "".join("-" if pd.isna(c) else str(int(bool(c))) for c in rows["correct"])
        record["latency_s"][mode] = [None if pd.isna(x) else round(float(x), 3) for x in rows["latency_s"]]
    return record


def record_frame(record: dict) -> pd.DataFrame:
    """The per-puzzle record back as predictions (id, family, mode, correct, latency_s); puzzles a mode lacks left
    out."""
    rows = []
    for mode, marks in record["correct"].items():
        latency = record.get("latency_s", {}).get(mode) or [None] * len(marks)
        for puzzle, family, mark, seconds in zip(record["ids"], record["families"], marks, latency):
            if mark != "-":
                rows.append({"id": puzzle, "family": family, "mode": mode, "correct": mark == "1",
                             "latency_s": seconds})  # fmt: skip
    return pd.DataFrame(rows, columns=["id", "family", "mode", "correct", "latency_s"])
