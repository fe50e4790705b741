"""When a newly trained demo replaces the shipped one (issue 40, item 5), judged on the validation split.

    decision = decide(new_template, new_paraphrased, shipped, families)    # predictions (id, family, mode, correct)
    decision.ship, decision.lines                                            # the verdict, and why with the numbers
    decision = decide_run(runs, families)                                    # from the run's evaluation folders

The new demo replaces the old one only if both hold:
1. its template `auto` is no worse than the shipped demo's beyond the 95 % interval: the paired difference new −
   shipped over the same validation puzzles (pipeline/paired.py) does not lie wholly below zero. It is taken over
   the families the shipped demo was trained on (its registry entry's audit families: a model never taught a family
   would lose there by default, which says nothing about the new one);
2. its paraphrased `auto` is within 5 points of its own template `auto` (template − paraphrased ≤ 5 points, all
   families, the same puzzles asked in their other wording).
With no shipped demo the first check passes (there is nothing to keep).
"""

from dataclasses import dataclass, field

import pandas as pd

from pipeline.layout import Runs
from pipeline.paired import correct_of, paired_difference, read_predictions

PARAPHRASE_GAP = 0.05  # the most paraphrased auto may fall below template auto
EVALUATIONS = ("validation-demo", "validation-demo-paraphrased", "validation-shipped-demo")


@dataclass
class Decision:
    ship: bool
    lines: list[str] = field(default_factory=list)  # one per check: passed or failed, with its numbers


def decide(new_template: pd.DataFrame, new_paraphrased: pd.DataFrame, shipped: pd.DataFrame | None,
           families: list[str] | None) -> Decision:  # fmt: skip
    """The rule on the validation predictions of the new demo (template and paraphrased wording) and of the shipped
    demo (None: there is none); `families` the shipped demo's (None: every family both have)."""
    lines, ok = [], True
    new = correct_of(new_template, "auto")
    if shipped is None:
        lines.append("no shipped demo: nothing to compare with")
    else:
        chosen = families or sorted(set(new_template["family"]) & set(shipped["family"]))
        d = paired_difference(correct_of(new_template, "auto", chosen), correct_of(shipped, "auto", chosen))
        if d is None:
            raise ValueError("the new and the shipped demo's validation audits share no puzzle: run both on the same "
                             "split and --limit")  # fmt: skip
        worse = d.below_zero
        ok &= not worse
        lines.append(f"{'FAILED' if worse else 'passed'}: template auto, new − shipped over "
                     f"{', '.join(chosen)}: {d.text()} points ({'worse beyond' if worse else 'not worse beyond'} the "
                     f"95 % interval)")  # fmt: skip
    template, paraphrased = float(new.mean()), float(correct_of(new_paraphrased, "auto").mean())
    gap = template - paraphrased
    far = gap > PARAPHRASE_GAP + 1e-9  # shares of n: 0.60 − 0.55 is 5 points, not 5.000…1
    ok &= not far
    lines.append(f"{'FAILED' if far else 'passed'}: paraphrased auto {100 * paraphrased:.1f} against template auto "
                 f"{100 * template:.1f} (all families): {100 * gap:+.1f} points below, the most allowed "
                 f"{100 * PARAPHRASE_GAP:.0f}")  # fmt: skip
    return Decision(ok, lines)


def decide_run(runs: Runs, families: list[str] | None, shipped_exists: bool) -> Decision:
    """The rule on the run's validation audits (pipeline/demo.py's eval stage); ValueError naming the missing one."""
    needed = EVALUATIONS if shipped_exists else EVALUATIONS[:2]
    found = {name: read_predictions(runs.eval_dir(name)) for name in needed}
    missing = [name for name, frame in found.items() if frame is None]
    if missing:
        raise ValueError(f"the ship rule needs the validation audits {', '.join(missing)} under {runs.base / 'eval'}: "
                         f"python -m pipeline.demo --stages eval --evals {','.join(missing)}")  # fmt: skip
    return decide(found["validation-demo"], found["validation-demo-paraphrased"],
                  found.get("validation-shipped-demo"), families)  # fmt: skip
