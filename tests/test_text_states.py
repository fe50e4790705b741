"""The states a text-only-CoT trace writes, read back against the true trace (model/evaluation/text_states.py): cells
counted by hand on small boards written by sketch-world's own describe_grid."""

import numpy as np
import pandas as pd
import pytest

from model.evaluation import text_states
from model.sketchworld.grid import COLOR_NAMES, describe_grid


def board(colours: list[list[str]]) -> np.ndarray:
    return np.array([[COLOR_NAMES.index(c) for c in row] for row in colours], dtype=np.int8)


TRUE_A = board([["white", "red"], ["black", "blue"]])
TRUE_B = board([["green", "green"], ["white", "white"]])
TRUTH = (
    f"THOUGHT 1: Fill. State: {describe_grid(TRUE_A)}.\nTHOUGHT 2: Then. State: {describe_grid(TRUE_B)}.\nTHOUGHT 3: a"
)


def prediction(pid: str, family: str, output: str, correct: bool, positions: int = 10) -> dict:
    return {"id": pid, "family": family, "mode": "text-only", "output": output, "correct": correct,
            "num_positions": positions}  # fmt: skip


def test_states_are_read_leniently():
    assert text_states.states_of(TRUTH) == [{1: ["white", "red"], 2: ["black", "blue"]},
                                            {1: ["green", "green"], 2: ["white", "white"]}]  # fmt: skip
    assert text_states.states_of("State: row 2: red row 1: a b c row 2: x.") == [{2: ["red"], 1: ["a", "b", "c"]}]
    assert text_states.states_of("no state here") == [] and text_states.states_of(None) == []


def test_cells_and_states_counted_by_hand():
    wrong_cell = describe_grid(board([["white", "red"], ["black", "red"]]))  # one cell of four wrong
    short_row = "row 1: green row 2: white white"  # row 1 lacks its second cell
    predictions = pd.DataFrame([
        prediction("p1", "maze", TRUTH, True, 20),  # every state right
        prediction("p2", "maze", f"State: {wrong_cell}. State: {short_row}.", False, 30),  # 3/4 and 3/4
        prediction("p3", "fold", f"State: {describe_grid(TRUE_A)}.", True, 40),  # second state never written
        prediction("p4", "count", "THOUGHT 1: 3 cells.", False),  # count's true trace writes no state
        prediction("p5", "fold", TRUTH, True),  # no such puzzle in the data: skipped
    ])  # fmt: skip
    truths = {"p1": TRUTH, "p2": TRUTH, "p3": TRUTH, "p4": "THOUGHT 1: Count them."}
    per_answer = text_states.compare(predictions, truths)
    assert per_answer.id.tolist() == ["p1", "p2", "p3"]
    assert per_answer.cells_right.tolist() == [8, 6, 4] and per_answer.cells.tolist() == [8, 8, 8]
    assert per_answer.states_right.tolist() == [2, 0, 1]
    table = text_states.summarize(per_answer)
    assert table.loc["maze", "cells_right"] == pytest.approx(100 * 14 / 16)
    assert table.loc["maze", "states_right"] == pytest.approx(50.0)
    assert table.loc["maze", "accuracy_states_right"] == 100 and table.loc["maze", "accuracy_states_wrong"] == 0
    assert pd.isna(table.loc["fold", "accuracy_states_right"])  # no fold answer wrote every state right
    assert table.loc["fold", "accuracy_states_wrong"] == 100
    assert table.loc["overall", "cells_right"] == pytest.approx(100 * 18 / 24)
    assert table.loc["overall", "positions"] == pytest.approx(30.0)


def test_the_command_names_what_is_wrong(tmp_path, capsys):
    with pytest.raises(SystemExit):
        text_states.main(["--eval", str(tmp_path / "none"), "--data", str(tmp_path)])
    assert "predictions.parquet does not exist" in capsys.readouterr().err
    pd.DataFrame([prediction("p1", "maze", TRUTH, True)]).to_parquet(tmp_path / "predictions.parquet")
    with pytest.raises(SystemExit):
        text_states.main(["--eval", str(tmp_path), "--data", str(tmp_path), "--mode", "auto"])
    assert "no answers of mode 'auto'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        text_states.main(["--eval", str(tmp_path), "--data", str(tmp_path / "missing")])
    assert "is not a folder" in capsys.readouterr().err
