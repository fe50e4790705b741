"""The paper's claims, and this project's question about parallel drawing, checked on the sweep grid's audits with
paired 95 % intervals.

    rows = check_claims(results, missing)   # results: point name → pipeline.results.Result; missing: untrained points
    claims_table(rows)                      # markdown for docs/RESULTS.md

Every grid point is audited on the same test puzzles, so two points are compared puzzle by puzzle: the difference of
`auto` correctness (pooled over the puzzles of the sketch families: count draws no sketch) with its paired 95 %
interval (pipeline/paired.py), and for time the difference of seconds per answer. A verdict: **holds** when the
interval lies on the claimed side of zero, **does not hold** when it lies on the other, **within noise** when it
covers zero; "saturates" holds when the larger K is not higher beyond noise. **Not measured** names the point that is
not trained yet (or whose stored audit has no per-puzzle record).
"""

from dataclasses import dataclass

from pipeline.paired import Difference, correct_of, paired_difference


@dataclass(frozen=True)
class Claim:
    claim: str  # the sentence, shortened
    better: str  # the point the claim says is higher (saturates: the larger K; faster: the slower one)
    worse: str
    kind: str = "higher"  # higher: accuracy, better > worse; saturates: better not above worse; faster: latency


CLAIMS = [
    Claim("accuracy rises with K: K = 8 above K = 4", "k8-l1", "k4-l1"),
    Claim("accuracy rises with K: K = 16 above K = 8", "k16-l1", "k8-l1"),
    Claim("accuracy rises with K: K = 32 above K = 16", "k32-l1", "k16-l1"),
    Claim("accuracy saturates: K = 64 no higher than K = 32 beyond noise", "k64-l1", "k32-l1", "saturates"),
    Claim("λ = 1 beats λ = 0.1 (too little weight on the sketch loss)", "k64-l1", "k64-l0.1"),
    Claim("λ = 1 beats λ = 10 (too much)", "k64-l1", "k64-l10"),
    Claim("a diffusion head beats a regression head", "k64-l1", "k64-l1-regression"),
    Claim(
        "(ours) parallel drawing costs accuracy at equal training compute: sequential above parallel",
        "k64-l1",
        "k64-l1-parallel",
    ),  # fmt: skip
    Claim(
        "(ours) parallel drawing saves time per answer: parallel faster than sequential",
        "k64-l1",
        "k64-l1-parallel",
        "faster",
    ),  # fmt: skip
]


def _series(result, families: list[str], kind: str):
    """id → correctness (or seconds per answer, for `faster`) of `auto` over `families`; None when not stored."""
    predictions = None if result is None or not result.exists else result.predictions()
    if predictions is None:
        return None
    column = "latency_s" if kind == "faster" else "correct"
    return correct_of(predictions, "auto", families, column).dropna()


def verdict(kind: str, d: Difference) -> str:
    if kind == "saturates":
        return "does not hold" if d.above_zero else "holds"
    if d.above_zero:
        return "holds"
    return "does not hold" if d.below_zero else "within noise"


def check_claims(results: dict, families: list[str], missing: set[str] = frozenset()) -> list[dict]:
    """One row per claim: each point's `auto` accuracy (or seconds per answer) over `families`, the paired
    difference better − worse with its interval, and the verdict."""
    rows = []
    for c in CLAIMS:
        row = {"claim": c.claim, "better": c.better, "worse": c.worse, "kind": c.kind, "a": None, "b": None, "d": None}
        absent = [p for p in (c.better, c.worse) if p in missing or results.get(p) is None or not results[p].exists]
        if absent:
            row["verdict"] = f"not measured: {', '.join(absent)} not trained yet"
            rows.append(row)
            continue
        a, b = (_series(results[p], families, c.kind) for p in (c.better, c.worse))
        d = paired_difference(a, b) if a is not None and b is not None else None
        if d is None:
            row["verdict"] = "not measured: no per-puzzle record of both audits"
        else:
            row.update(a=float(a.mean()), b=float(b.mean()), d=d, verdict=verdict(c.kind, d))
        rows.append(row)
    return rows


def _value(row: dict, key: str) -> str:
    value = row[key]
    if value is None:
        return "–"
    return f"{value:.2f} s" if row["kind"] == "faster" else f"{100 * value:.1f}"


def claims_table(rows: list[dict]) -> str:
    lines = ["| claim | point said higher (faster: the slower) | auto % (s / answer) | other point | auto % "
             "(s / answer) | paired difference [95 %] | verdict |", "|---|---|---:|---|---:|---|---|"]  # fmt: skip
    for r in rows:
        d = r["d"]
        diff = "–" if d is None else (d.text(1.0, " s") if r["kind"] == "faster" else d.text(100.0, " pt"))
        lines.append(f"| {r['claim']} | {r['better']} | {_value(r, 'a')} | {r['worse']} | {_value(r, 'b')} | {diff} "
                     f"| **{r['verdict']}** |")  # fmt: skip
    return "\n".join(lines)
