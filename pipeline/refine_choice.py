"""How many refine passes the demo gets, chosen on the validation split (issue 40: "choose the number of passes on
validation within the compute the note states").

    wanted = another_pass_wanted(runs, trained=2)     # after the audits of passes 1 … 2
    choice = choose(runs, trained=3)                   # writes runs/<profile>/refine/choice.json

The rule. After each refine pass i the pipeline audits its model on `choice_per_family` validation puzzles of every
family (auto, noise-latents, oracle: `validation-refine-<i>`). Passes 1 … `min_refine_passes` are always trained
(the sweep's K = 64 point is the demo after 2 of them). After that, pass i + 1 is trained only while validation `auto`
still rises beyond noise over the profile's `refine_window` last passes: pass i against pass i − window, the paired
95 % interval of the per-puzzle difference above zero (pipeline/paired.py); and never past `max_refine_passes`. The
demo's window is 2: one pass gains about 2 points (v6: 30.2, 29.0, 32.2, 36.1, 36.4 over passes 1–5), which a
paired interval over 800 puzzles cannot tell from noise (± 3), while two passes gain 4–7 (pass 5 − 3: +4.1
[+1.0, +7.2]); a window of 1 stopped the v6 chain at 5 passes with use (auto − noise) still rising +3 a pass.
The chosen number is the pass from `min_refine_passes` on with the highest validation `auto` (the fewer passes on a
tie; the first passes are the recipe's, E11a–e measured +3 to +7 points a pass): GRPO starts from it and the
baselines get its steps.
"""

import json

import pandas as pd

from model.core.atomic import write_text
from pipeline.layout import Runs
from pipeline.paired import correct_of, paired_difference, read_predictions

CHOICE_MODES = "auto,noise-latents,oracle"


def audit_name(refine_pass: int) -> str:
    return f"validation-refine-{refine_pass}"


def pass_auto(runs: Runs, refine_pass: int) -> pd.Series:
    """id → 1/0 of `auto` on the validation audit of refine pass `refine_pass`; ValueError naming the missing one."""
    folder = runs.eval_dir(audit_name(refine_pass))
    predictions = read_predictions(folder)
    if predictions is None:
        raise ValueError(f"{folder}/predictions.parquet is missing: the refine stage audits each pass on validation "
                         f"(python -m pipeline.demo --profile {runs.profile.name} --stages refine)")  # fmt: skip
    return correct_of(predictions, "auto")


def rise(runs: Runs, refine_pass: int, window: int = 1):
    """Difference (pipeline/paired.py) of validation auto, pass `refine_pass` − the pass `window` before it (pass 1
    at the earliest)."""
    return paired_difference(pass_auto(runs, refine_pass), pass_auto(runs, max(1, refine_pass - window)))


def another_pass_wanted(runs: Runs, trained: int) -> bool:
    """Whether pass `trained` + 1 is trained, `trained` passes having been trained and audited (see the module)."""
    p = runs.profile
    if trained < p.min_refine_passes:
        return True
    if trained >= p.max_refine_passes:
        return False
    gain = rise(runs, trained, p.refine_window)
    return gain is not None and gain.above_zero


def choose(runs: Runs, trained: int) -> dict:
    """The chosen number of passes among the `trained` ones, with what it was chosen on; written to
    runs.choice_file (atomically)."""
    autos = [pass_auto(runs, i) for i in range(1, trained + 1)]
    accuracy = [float(a.mean()) for a in autos]
    floor = min(runs.profile.min_refine_passes, trained)  # the recipe's passes are never undone
    best = max(range(floor - 1, trained), key=lambda i: (accuracy[i], -i)) + 1
    rises = []
    for i in range(2, trained + 1):
        gain = paired_difference(autos[i - 1], autos[i - 2])
        rises.append({"pass": i, "mean": gain.mean, "low": gain.low, "high": gain.high, "n": gain.n})
    p = runs.profile
    rule = (
        f"passes 1-{p.min_refine_passes} always; another while the last {p.refine_window} raised validation auto "
        f"beyond its paired 95 % interval, at most {p.max_refine_passes}; the best validation auto is chosen"
    )
    choice = {"passes": best, "trained": trained, "auto": accuracy, "rises": rises, "rule": rule}
    write_text(runs.choice_file, json.dumps(choice, indent=1) + "\n")
    return choice
