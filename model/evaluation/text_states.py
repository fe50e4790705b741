"""How well a text-only-CoT model writes its states out: the cells of each "State:" of its traces against the true
trace's, per family — the words' counterpart of the sketches' "drawn cells read back".

    python -m model.evaluation.text_states --eval runs/demo/eval/test-textonly --data data/sketchworld [--split test]
                                           [--mode text-only] [--out FILE]

Sketch-world's text-only traces write each state a sketch would draw as "State: row 1: white red … row 2: …" (one
colour word a cell, model/sketchworld/schema.py). For every answer of `--mode` in the evaluation folder
(predictions.parquet) the k-th state written is compared with the k-th state of the same puzzle's true trace, cell by
cell: a cell is right when the word at its row and column is the true colour; cells of rows or states never written
(the trace stopped, or ran out of new positions) count as wrong. Per family: cells right, states wholly right, the
accuracy of answers whose every state was right against the others, and the positions the trace took.
"""

import argparse
import json
import re
import sys
from pathlib import Path

import pandas as pd

from model.core.atomic import write_text
from model.data.folders import load_rows

STATE = re.compile(r"State:\s*([^.\n]*)")
ROW = re.compile(r"row (\d+):")


def states_of(trace: str) -> list[dict[int, list[str]]]:
    """The states a trace writes, each {row number: colour words}; lenient: a row may be short, long or missing (a
    row number written twice keeps its first)."""
    states = []
    for body in STATE.findall(trace or ""):
        parts = ROW.split(body)
        rows: dict[int, list[str]] = {}
        for number, words in zip(parts[1::2], parts[2::2]):
            rows.setdefault(int(number), words.split())
        states.append(rows)
    return states


def cells_right(written: dict[int, list[str]] | None, truth: dict[int, list[str]]) -> tuple[int, int]:
    """(cells right, cells) of one written state against the true one; None written: every cell wrong."""
    right = total = 0
    for number, colours in truth.items():
        row = (written or {}).get(number, [])
        right += sum(c < len(row) and row[c] == colour for c, colour in enumerate(colours))
        total += len(colours)
    return right, total


def compare(predictions: pd.DataFrame, truths: dict[str, str]) -> pd.DataFrame:
    """One row per answer with a true trace that writes states: id, family, correct, positions, cells right, cells,
    states, states wholly right."""
    rows = []
    for p in predictions.itertuples():
        true_states = states_of(truths.get(p.id, ""))
        if not true_states:
            continue  # a family whose trace writes no state (count)
        written = states_of(p.output)
        counts = [cells_right(written[k] if k < len(written) else None, t) for k, t in enumerate(true_states)]
        rows.append({"id": p.id, "family": p.family, "correct": bool(p.correct), "positions": p.num_positions,
                     "cells_right": sum(r for r, _ in counts), "cells": sum(n for _, n in counts),
                     "states": len(true_states), "states_right": sum(r == n for r, n in counts)})  # fmt: skip
    return pd.DataFrame(rows)


def summarize(per_answer: pd.DataFrame) -> pd.DataFrame:
    """Per family and overall: answers, cells right (%), states wholly right (%), accuracy when every state was
    right / when one was not (%, empty without such answers), mean positions."""

    def one(frame: pd.DataFrame) -> dict:
        clean = frame.states_right == frame.states
        return {"answers": len(frame), "cells_right": 100 * frame.cells_right.sum() / frame.cells.sum(),
                "states_right": 100 * frame.states_right.sum() / frame.states.sum(),
                "accuracy_states_right": 100 * frame.correct[clean].mean() if clean.any() else None,
                "accuracy_states_wrong": 100 * frame.correct[~clean].mean() if (~clean).any() else None,
                "positions": frame.positions.mean()}  # fmt: skip

    table = {family: one(frame) for family, frame in per_answer.groupby("family")}
    table["overall"] = one(per_answer)
    return pd.DataFrame(table).T


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.evaluation.text_states", description=__doc__.split("\n")[0])
    parser.add_argument("--eval", required=True, help="an evaluation folder (python -m model.evaluate --out)")
    parser.add_argument("--data", required=True, help="the sketch-world folder it was evaluated on")
    parser.add_argument("--split", default="test")
    parser.add_argument("--mode", default="text-only", help="which mode's answers (default text-only)")
    parser.add_argument("--out", help="write the table as JSON here")
    args = parser.parse_args(argv)
    found = Path(args.eval) / "predictions.parquet"
    if not found.exists():
        parser.error(f"{found} does not exist: --eval takes a folder written by python -m model.evaluate --out")
    predictions = pd.read_parquet(found)
    predictions = predictions[predictions["mode"] == args.mode]
    if predictions.empty:
        parser.error(f"{found} has no answers of mode {args.mode!r}")
    if not Path(args.data).is_dir():
        parser.error(f"--data {args.data} is not a folder (a sketch-world folder: python -m model.sketchworld --out)")
    try:
        rows = load_rows(args.data, args.split).select_columns(["id", "text_only_trace"])
    except (FileNotFoundError, KeyError, ValueError) as err:
        parser.error(f"--data {args.data} --split {args.split}: {err}")
    truths = dict(zip(rows["id"], rows["text_only_trace"]))
    per_answer = compare(predictions, truths)
    if per_answer.empty:
        parser.error(f"no answer of {found} matches a puzzle of {args.data}'s {args.split} split with states")
    table = summarize(per_answer)
    print(table.round(1).to_string())
    if args.out:
        write_text(Path(args.out), json.dumps(table.round(2).to_dict(orient="index"), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
