"""The ship rule (pipeline/ship_rule.py) on small fake validation predictions whose numbers are worked out by hand."""

import pandas as pd
import pytest

from pipeline.ship_rule import decide


def predictions(right: dict[str, int], n: int = 100, first: int = 0) -> pd.DataFrame:
    """`n` puzzles per family, puzzles first … first + right[family] − 1 of a family answered right."""
    rows = [{"id": f"{family}-{i:03d}", "family": family, "mode": "auto", "correct": first <= i < first + count}
            for family, count in right.items() for i in range(n)]  # fmt: skip
    return pd.DataFrame(rows)


OLD_FAMILIES = {"maze": 60, "fold": 60}


def test_a_new_demo_as_good_and_as_good_in_other_words_ships():
    new = predictions({"maze": 62, "fold": 58, "maze16": 40})
    words = predictions({"maze": 60, "fold": 56, "maze16": 37})
    decision = decide(new, words, predictions({**OLD_FAMILIES, "maze16": 5}), ["fold", "maze"])
    assert decision.ship, decision.lines
    assert decision.lines[0].startswith("passed: template auto, new − shipped over fold, maze: +0.0 [")
    assert "paraphrased auto 51.0 against template auto 53.3" in decision.lines[1]  # 153 / 300 and 160 / 300


def test_worse_beyond_the_interval_on_the_old_families_keeps_the_old_demo():
    new = predictions({"maze": 45, "fold": 45, "maze16": 90})  # far better on the new family, 15 worse on the old
    decision = decide(new, new, predictions({**OLD_FAMILIES, "maze16": 0}), ["fold", "maze"])
    assert not decision.ship
    assert decision.lines[0].startswith("FAILED: template auto, new − shipped over fold, maze: -15.0 [")
    assert "worse beyond the 95 % interval" in decision.lines[0]
    # over every family both have, the new family would hide the loss: the rule takes the old demo's families
    assert decide(new, new, predictions({**OLD_FAMILIES, "maze16": 0}), None).ship


def test_a_small_loss_within_noise_still_ships():
    new = predictions({"maze": 58, "fold": 58}, first=3)  # 2 points lower, and not on the same puzzles
    decision = decide(new, new, predictions(OLD_FAMILIES), ["fold", "maze"])
    assert decision.ship and "not worse beyond" in decision.lines[0]


@pytest.mark.parametrize("paraphrased, ships", [(55, True), (54, False), (70, True)])
def test_paraphrased_auto_within_five_points_of_template(paraphrased, ships):
    new = predictions({"maze": 60, "fold": 60})
    decision = decide(new, predictions({"maze": paraphrased, "fold": paraphrased}), None, None)
    assert decision.ship is ships
    assert decision.lines[0] == "no shipped demo: nothing to compare with"
    assert decision.lines[1].startswith("passed" if ships else "FAILED")


def test_audits_of_other_puzzles_are_refused():
    new = predictions({"maze": 60})
    other = predictions({"maze": 60}).assign(id=lambda f: "x" + f["id"])
    with pytest.raises(ValueError, match="share no puzzle"):
        decide(new, new, other, ["maze"])
