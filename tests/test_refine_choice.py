"""The number of refine passes chosen on validation (pipeline/refine_choice.py) and the paired intervals it rests on
(pipeline/paired.py), on small fake audits whose numbers are worked out by hand."""

import dataclasses
import json

import pandas as pd
import pytest

from pipeline.layout import PROFILES, Runs
from pipeline.paired import correct_of, paired_difference, per_puzzle_record, record_frame
from pipeline.refine_choice import another_pass_wanted, audit_name, choose


def audit(runs: Runs, refine_pass: int, right: list[int]) -> None:
    """A validation audit of refine pass `refine_pass`: puzzle i right when right[i]."""
    folder = runs.eval_dir(audit_name(refine_pass))
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"p{i:03d}", "family": "maze" if i % 2 else "fold", "mode": "auto", "correct": bool(c),
             "latency_s": 1.0} for i, c in enumerate(right)]  # fmt: skip
    pd.DataFrame(rows).to_parquet(folder / "predictions.parquet")


def test_the_paired_difference_and_its_interval_by_hand():
    a = pd.Series([1, 1, 0, 1], index=["w", "x", "y", "z"], dtype=float)
    b = pd.Series([0, 1, 0, 0, 1], index=["w", "x", "y", "z", "extra"], dtype=float)  # "extra": not in both
    d = paired_difference(a, b)
    diffs = [1, 0, 0, 1]
    sd = (sum((x - 0.5) ** 2 for x in diffs) / 3) ** 0.5
    assert d.n == 4 and d.mean == 0.5
    assert d.low == pytest.approx(0.5 - 1.96 * sd / 2) and d.high == pytest.approx(0.5 + 1.96 * sd / 2)
    assert not d.above_zero and not d.below_zero  # +50 points on 4 puzzles: within noise
    assert paired_difference(a, pd.Series([1.0], index=["other"])) is None


def test_the_per_puzzle_record_round_trips(tmp_path):
    rows = [{"id": "b", "family": "maze", "mode": "auto", "correct": True, "latency_s": 2.0},
            {"id": "a", "family": "fold", "mode": "auto", "correct": False, "latency_s": 1.5},
            {"id": "a", "family": "fold", "mode": "oracle", "correct": True, "latency_s": 0.5}]  # fmt: skip
    pd.DataFrame(rows).to_parquet(tmp_path / "predictions.parquet")
    record = per_puzzle_record(tmp_path)
    assert record["ids"] == ["a", "b"] and record["correct"] == {"auto": "01", "oracle": "1-"}
    back = record_frame(json.loads(json.dumps(record)))
    assert len(back) == 3  # b has no oracle answer
    assert correct_of(back, "auto").to_dict() == {"a": 0.0, "b": 1.0}
    assert correct_of(back, "auto", ["maze"], "latency_s").to_dict() == {"b": 2.0}


@pytest.fixture
def runs(tmp_path):
    """The demo profile with 2 passes always, at most 4, and a window of 1 pass (the rule's numbers below are worked
    out for those; the demo's own are 4, 10 and 2: tests/test_pipeline.py)."""
    profile = dataclasses.replace(PROFILES["demo"], min_refine_passes=2, max_refine_passes=4, refine_window=1)
    return Runs(profile, root=tmp_path)


def test_the_first_two_passes_are_always_trained_then_only_while_auto_rises_beyond_noise(runs):
    assert another_pass_wanted(runs, 0) and another_pass_wanted(runs, 1)  # nothing audited needed before pass 2
    n = 200
    audit(runs, 1, [0] * n)
    audit(runs, 2, [1] * 40 + [0] * (n - 40))  # +20 points on the same puzzles: far beyond noise
    assert another_pass_wanted(runs, 2)
    audit(runs, 3, [1] * 42 + [0] * (n - 42))  # +1 point: within noise
    assert not another_pass_wanted(runs, 3)
    audit(runs, 4, [1] * 100 + [0] * (n - 100))
    assert not another_pass_wanted(runs, 4)  # the profile's most: 4
    with pytest.raises(ValueError, match="validation-refine-5/predictions.parquet is missing"):
        another_pass_wanted(runs, 5) or choose(runs, 5)


def test_a_window_of_two_passes_measures_the_rise_over_two(runs, tmp_path):
    """Each pass wins 20 puzzles and loses 10 of 600 (+1.7 points, within noise); over two passes that is +3.3,
    beyond it (intervals worked out in pipeline/paired.py's terms: ±1.8 and ±2.5 points)."""
    two = Runs(dataclasses.replace(runs.profile, refine_window=2), root=tmp_path / "two")
    n, right = 600, set(range(120))
    for i in range(1, 5):
        if i > 1:
            right = (right - set(range(10 * (i - 2), 10 * (i - 1)))) | set(range(100 + 20 * i, 120 + 20 * i))
        for r in (runs, two):
            audit(r, i, [int(k in right) for k in range(n)])
    assert not another_pass_wanted(runs, 3)  # window 1: pass 3 − pass 2, within noise
    assert not another_pass_wanted(two, 2)  # pass 2 − pass 1: the window reaches no further back
    assert another_pass_wanted(two, 3)  # pass 3 − pass 1: beyond noise
    assert not another_pass_wanted(two, 4)  # the profile's most: 4
    assert "the last 2 raised" in choose(two, 4)["rule"]


def test_the_choice_is_the_best_validation_auto_and_is_recorded(runs):
    audit(runs, 1, [1] * 10 + [0] * 90)
    audit(runs, 2, [1] * 30 + [0] * 70)
    audit(runs, 3, [1] * 25 + [0] * 75)  # lower than pass 2: pass 2 is chosen
    choice = choose(runs, 3)
    assert choice["passes"] == 2 and runs.chosen_refine_passes() == 2
    assert choice["auto"] == [0.1, 0.3, 0.25] and [r["pass"] for r in choice["rises"]] == [2, 3]
    assert choice["rises"][0]["mean"] == pytest.approx(0.2) and choice["rises"][1]["mean"] == pytest.approx(-0.05)
    assert json.loads(runs.choice_file.read_text())["passes"] == 2
    audit(runs, 3, [1] * 30 + [0] * 70)  # a tie: the fewer passes
    assert choose(runs, 3)["passes"] == 2
    audit(runs, 2, [1] * 5 + [0] * 95)  # worse than pass 1: still 2, the recipe's passes are never undone
    audit(runs, 3, [1] * 4 + [0] * 96)
    assert choose(runs, 3)["passes"] == 2
    audit(runs, 3, [1] * 6 + [0] * 94)
    assert choose(runs, 3)["passes"] == 3
