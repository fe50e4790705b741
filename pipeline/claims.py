"""The paper's claims about K, λ and the head, checked on the sweep grid's audits, each with its 95 % intervals.

    rows = check_claims(results)        # results: point name → Result (pipeline/report.py)
    claims_table(rows)                  # markdown for docs/RESULTS.md

A verdict compares two points' accuracies (Wilson intervals from the audit): **holds** when the claimed one is higher
and the intervals do not overlap, **does not hold** when the other one is higher and they do not overlap, **within
noise** when they overlap, **not measured** when a point has no audit. Accuracy is `auto` over the families a claim is
about (mean of the per-family accuracies and of their interval ends: a summary, not a new interval).
"""

from dataclasses import dataclass

SPATIAL = ["connect", "maze", "sink"]  # the families whose sketch is a search or a slide (the paper's "spatial")


@dataclass(frozen=True)
class Comparison:
    claim: str  # the paper's sentence, shortened
    better: str  # the point the claim says is higher
    worse: str
    families: tuple[str, ...] | None = None  # None: every family the audit has (overall)


CLAIMS = [
    Comparison("K = 32 balances compression and expressivity: above K = 16", "k32-l1", "k16-l1"),
    Comparison("K = 32 balances compression and expressivity: above K = 64", "k32-l1", "k64-l1"),
    Comparison("spatial tasks peak at K = 64: above K = 32", "k64-l1", "k32-l1", tuple(SPATIAL)),
    Comparison("spatial tasks drop sharply under K = 16: K = 16 above K = 8", "k16-l1", "k8-l1", tuple(SPATIAL)),
    Comparison("λ = 10 degrades reasoning: λ = 1 above λ = 10", "k64-l1", "k64-l10"),
    Comparison("λ = 0.1 favours text over sketches: λ = 1 above λ = 0.1", "k64-l1", "k64-l0.1"),
    Comparison("a diffusion head beats a regression head", "k64-l1", "k64-l1-regression"),
    Comparison("(ours) parallel sketches beat sequential ones", "k64-l1", "k64-l1-sequential"),
]


def summary(result, families) -> tuple[float, float, float] | None:
    """(accuracy, low, high) of `auto` over `families` (None: overall); None when not measured."""
    if result is None or not result.exists:
        return None
    if families is None:
        values = [result.get("auto", "overall", c) for c in ("accuracy", "ci_low", "ci_high")]
        return None if None in values else tuple(values)
    rows = [[result.get("auto", f, c) for c in ("accuracy", "ci_low", "ci_high")] for f in families]
    if any(None in row for row in rows):
        return None
    return tuple(sum(col) / len(col) for col in zip(*rows))


def verdict(better: tuple | None, worse: tuple | None) -> str:
    if better is None or worse is None:
        return "not measured"
    if better[1] > worse[2]:
        return "holds"
    if worse[1] > better[2]:
        return "does not hold"
    return "within noise"


def check_claims(results: dict) -> list[dict]:
    """One row per claim: the two points' accuracy [interval] and the verdict."""
    rows = []
    for c in CLAIMS:
        a, b = summary(results.get(c.better), c.families), summary(results.get(c.worse), c.families)
        rows.append({"claim": c.claim, "better": c.better, "worse": c.worse,
                     "families": ", ".join(c.families) if c.families else "all", "a": a, "b": b,
                     "verdict": verdict(a, b)})  # fmt: skip
    return rows


def _cell(value) -> str:
    return "–" if value is None else f"{100 * value[0]:.1f} [{100 * value[1]:.1f}–{100 * value[2]:.1f}]"


def claims_table(rows: list[dict]) -> str:
    lines = ["| claim | families | point said higher | auto % [95 %] | other point | auto % [95 %] | verdict |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['claim']} | {r['families']} | {r['better']} | {_cell(r['a'])} | {r['worse']} | "
                     f"{_cell(r['b'])} | **{r['verdict']}** |")  # fmt: skip
    return "\n".join(lines)
