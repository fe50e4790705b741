"""Tests for model/sketchworld: determinism, the Zebra-CoT schema, and answers re-derived from the pictures.

    python -m pytest -q tests/test_sketchworld.py

The checkers below read pictures back by sampling pixels and solve each task with their own small code (a BFS, a
step-by-step slide, a mirror); they never call the generators' solvers or read `Instance.state`.
"""

import json
import random
import re
import subprocess
import sys
from collections import Counter, deque

import numpy as np
import pytest

from model.sketchworld import (
    DEFAULT_FAMILIES,
    EARLY_FAMILIES,
    FAMILIES,
    corpus_text,
    generate_instance,
    load_split,
    wording,
    write_dataset,
)
from model.sketchworld.__main__ import main as cli_main
from model.sketchworld.grid import PALETTE, describe_grid, read_grid, render

N = 8  # cells per side
PX = 28
NAME_OF_RGB = {rgb: name for name, rgb in PALETTE.items()}


# ---------------------------------------------------------------- independent reading and solving


def read_picture(image) -> list[list[str]]:
    """Colour names per cell; also asserts each 28x28 block is one flat palette colour."""
    assert image.size == (N * PX, N * PX)
    rgb = np.asarray(image.convert("RGB"))
    out = []
    for r in range(N):
        row = []
        for c in range(N):
            block = rgb[r * PX : (r + 1) * PX, c * PX : (c + 1) * PX].reshape(-1, 3)
            assert (block == block[0]).all(), f"cell {r},{c} is not flat"
            row.append(NAME_OF_RGB[tuple(int(v) for v in rgb[r * PX + PX // 2, c * PX + PX // 2])])
        out.append(row)
    return out


def find(grid, name):
    return [(r, c) for r in range(N) for c in range(N) if grid[r][c] == name]


def neighbours(r, c):
    for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        if 0 <= r + dr < N and 0 <= c + dc < N:
            yield r + dr, c + dc


def check_count(question, problems, sketches):
    colour = re.search(r"How many (\w+) cells", question).group(1)
    assert not sketches
    return str(len(find(problems[0], colour)))


def check_connect(question, problems, sketches):
    grid = problems[0]
    (green,), (red,) = find(grid, "green"), find(grid, "red")
    seen, queue = set(), deque([green])
    while queue:
        for nb in neighbours(*queue.popleft()):
            if grid[nb[0]][nb[1]] == "white" and nb not in seen:
                seen.add(nb)
                queue.append(nb)
    reached = any(nb in seen for nb in neighbours(*red))
    painted = seen | ({red} if reached else set())
    expected = [[("blue" if (r, c) in painted else grid[r][c]) for c in range(N)] for r in range(N)]
    assert sketches == [expected]
    assert ("red" in sum(sketches[0], [])) == (not reached)  # the sketch alone answers the question
    return "yes" if reached else "no"


def check_maze(question, problems, sketches):
    grid = problems[0]
    (green,), (red,) = find(grid, "green"), find(grid, "red")

    def dfs(cell, visited):  # the maze is a tree, so the first route found is the only one
        if cell == red:
            return [cell]
        visited.add(cell)
        for nb in neighbours(*cell):
            if grid[nb[0]][nb[1]] != "black" and nb not in visited:
                rest = dfs(nb, visited)
                if rest:
                    return [cell] + rest
        return None

    path = dfs(green, set())
    on_path = [grid[r][c] for r, c in path if grid[r][c] in ("blue", "yellow", "purple")]
    assert len(on_path) == 1
    expected = [row[:] for row in grid]
    for r, c in path[1:-1]:
        expected[r][c] = "orange"
    assert sketches == [expected]
    left = {name for name in ("blue", "yellow", "purple") if name in sum(sketches[0], [])}
    assert left == {"blue", "yellow", "purple"} - {on_path[0]}  # the sketch alone answers the question
    return on_path[0]


PIECES = ("red", "blue", "green", "yellow")
STEPS = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}


def slide(grid, direction):
    """tilt and sink: move pieces one cell at a time until nothing can move; a piece that steps onto gray (a hole)
    is gone and the gray stays."""
    grid = [row[:] for row in grid]
    dr, dc = STEPS[direction]
    moved = True
    while moved:
        moved = False
        for r in range(N):
            for c in range(N):
                if grid[r][c] in PIECES:
                    nr, nc = r + dr, c + dc
                    if 0 <= nr < N and 0 <= nc < N and grid[nr][nc] in ("white", "gray"):
                        if grid[nr][nc] == "white":
                            grid[nr][nc] = grid[r][c]
                        grid[r][c] = "white"
                        moved = True
    return grid


def check_tilt(question, problems, sketches):
    m = re.search(r"Tilt the board (\w+), then (\w+);.* does the (\w+) piece end\?", question)
    assert m.group(1) in ("up", "down") and m.group(2) in ("left", "right")

    mid = slide(problems[0], m.group(1))
    end = slide(mid, m.group(2))
    assert sketches == [mid, end]
    (where,) = find(end, m.group(3))
    alone = slide(problems[0], m.group(2))
    assert find(alone, m.group(3))[0][1] != where[1]  # the first tilt matters for the answer
    return str(where[1] + 1)


def check_sink(question, problems, sketches):
    first, second = re.search(r"Tilt the board (\w+), then (\w+);.* Which piece falls in\?", question).group(1, 2)
    assert first in ("up", "down") and second in ("left", "right")

    def present(grid):
        return {name for name in PIECES if find(grid, name)}

    start = problems[0]
    assert present(start) == set(PIECES) and 2 <= len(find(start, "gray")) <= 3
    mid = slide(start, first)
    end = slide(mid, second)
    assert sketches == [mid, end]
    assert mid != start and present(mid) == set(PIECES)  # the first tilt moves pieces and drops none
    (fallen,) = set(PIECES) - present(end)
    assert set(PIECES) - present(slide(start, second)) != {fallen}  # the first tilt matters for the answer
    return fallen


def check_fold(question, problems, sketches):
    moving, staying = re.search(r"Fold the (\w+) half of the paper onto the (\w+) half", question).group(1, 2)
    grid = problems[0]

    def in_half(r, c, side):
        return {"left": c < 4, "right": c >= 4, "top": r < 4, "bottom": r >= 4}[side]

    def mirror(r, c):
        return (r, N - 1 - c) if moving in ("left", "right") else (N - 1 - r, c)

    assert all(in_half(r, c, moving) for r, c in find(grid, "red"))
    assert all(in_half(r, c, staying) for r, c in find(grid, "blue"))
    landed = {mirror(r, c) for r, c in find(grid, "red")}
    expected = [["gray" if in_half(r, c, moving) else grid[r][c] for c in range(N)] for r in range(N)]
    for r, c in landed:
        expected[r][c] = "purple" if grid[r][c] == "blue" else "red"
    assert sketches == [expected]
    return str(sum(grid[r][c] == "blue" for r, c in landed))


def check_shift(question, problems, sketches):
    amount, direction = re.search(r"red marks of the first picture (\d) cells? (\w+) ", question).group(1, 2)
    dr, dc = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}[direction]
    reds, blues = problems
    assert set(sum(reds, [])) <= {"white", "red"} and set(sum(blues, [])) <= {"white", "blue"}
    landed = [(r + int(amount) * dr, c + int(amount) * dc) for r, c in find(reds, "red")]
    assert all(0 <= r < N and 0 <= c < N for r, c in landed)
    expected = [row[:] for row in blues]
    for r, c in landed:
        expected[r][c] = "purple" if blues[r][c] == "blue" else "red"
    assert sketches == [expected]
    return str(sum(blues[r][c] == "blue" for r, c in landed))


CHECKERS = {
    "count": check_count,
    "connect": check_connect,
    "maze": check_maze,
    "fold": check_fold,
    "shift": check_shift,
    "tilt": check_tilt,
    "sink": check_sink,
}


def check(family, question, problem_images, reasoning_images, answer):
    problems = [read_picture(im) for im in problem_images]
    sketches = [read_picture(im) for im in reasoning_images]
    assert CHECKERS[family](question, problems, sketches) == answer


# ---------------------------------------------------------------- tests


def test_every_family_has_a_checker():
    assert set(CHECKERS) == set(FAMILIES)
    assert len(FAMILIES) >= 6


@pytest.mark.parametrize("family", list(FAMILIES))
def test_answers_rederived_from_pictures(family):
    for i in range(20):
        inst = generate_instance(family, random.Random(f"test/{i}"))
        check(family, inst.question, inst.problem_images, inst.reasoning_images, inst.answer)
        assert inst.answer in inst.choices
        for grid, image, text in zip(inst.problem_grids, inst.problem_images, inst.problem_image_descriptions):
            assert (read_grid(image) == grid).all()
            assert text == " ".join(f"row {r + 1}: " + " ".join(row) for r, row in enumerate(read_picture(image)))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_traces(family):
    for i in range(10):
        inst = generate_instance(family, random.Random(f"trace/{i}"))
        placeholders = re.findall(r"<image_start>\[reasoning_image_(\d+)\]<image_end>", inst.trace)
        assert [int(k) for k in placeholders] == list(range(1, inst.num_sketches + 1))
        assert "<image_start>" not in inst.text_only_trace and "image_" not in inst.text_only_trace
        for description in inst.reasoning_image_descriptions:  # each sketch is spelled out in the text-only trace
            assert description in inst.text_only_trace
        lines = inst.trace.split("\n")
        assert [line.split(":")[0] for line in lines] == [f"THOUGHT {k + 1}" for k in range(len(lines))]
        assert lines[-1].endswith(f"The answer is {inst.answer}.")
        assert len(inst.question.split()) <= 30


def test_sketch_counts_cover_zero_and_two():
    counts = {f: generate_instance(f, random.Random(0)).num_sketches for f in FAMILIES}
    assert 0 in counts.values() and max(counts.values()) >= 2


BALANCE_BOUND = {"count": 0.25, "connect": 0.62, "maze": 0.45, "fold": 0.3, "shift": 0.3, "tilt": 0.32, "sink": 0.36}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_answer_balance(family):
    answers = Counter(generate_instance(family, random.Random(f"balance/{i}")).answer for i in range(200))
    assert answers.most_common(1)[0][1] / 200 < BALANCE_BOUND[family], answers


def test_render_roundtrip_and_description():
    grid = np.random.default_rng(0).integers(0, len(PALETTE), size=(N, N)).astype(np.int8)
    assert (read_grid(render(grid)) == grid).all()
    assert describe_grid(grid).startswith("row 1: ") and " row 8: " in describe_grid(grid)


def test_corpus_text():
    lines = corpus_text()
    assert 200 <= len(lines) <= 3000
    assert any("State: row 1:" in line for line in lines)
    for family in DEFAULT_FAMILIES:  # every default family's template and training wordings appear
        inst = generate_instance(family, random.Random("corpus/0/" + family + "/0"))
        assert inst.question in lines
        for k in wording.paraphrase_indices(family, "train"):
            assert inst.reworded(k) in lines
    held_out = [w.text.split("{")[0] for f in DEFAULT_FAMILIES for w in wording.WORDINGS[f] if w.held_out]
    assert not any(line.endswith(text) or text in line for text in held_out if len(text) > 12 for line in lines)


def test_wordings_fill_every_field_and_keep_the_puzzle(tmp_path):
    for family in FAMILIES:
        inst = generate_instance(family, random.Random(f"wording/{family}"))
        wordings = wording.WORDINGS[family]
        assert inst.reworded(0) == inst.question
        texts = {inst.reworded(k) for k in range(len(wordings))}
        assert len(texts) == len(wordings)  # every wording differs
        assert not any("{" in t or "}" in t for t in texts)
        for name, value in inst.question_fields.items():  # every paraphrase names the puzzle's own parameters
            if name != "cells":  # "cell" / "cells": grammar, not a parameter
                assert all(str(value).lower() in t.lower() for t in texts), (family, name)
        assert any(w.held_out for w in wordings) and any(not w.held_out for w in wordings[1:])
    with pytest.raises(ValueError, match="wordings 0.."):
        wording.question("maze", 99)
    with pytest.raises(ValueError, match="fields"):
        wording.question("fold", 0, moving="left")


def test_rows_carry_a_paraphrase_held_out_wordings_only_outside_train(tmp_path):
    write_dataset(str(tmp_path), per_family=40, seed=0, families=["count", "fold"])
    for split in ("train", "validation", "test"):
        rows = load_split(str(tmp_path), split)
        for row in rows:
            assert row["paraphrased_question"] != row["Question"]
            assert row["paraphrased_question"].startswith("<image_start>[problem_image_1]<image_end> ")
            if split == "train":
                assert not row["paraphrase_held_out"]
            if row["family"] == "count":  # the Question stays the template: the independent checker reads it
                check("count", row["Question"], [row["problem_image_1"]], [], row["Final Answer"])
    test_rows = load_split(str(tmp_path), "test")
    assert any(test_rows["paraphrase_held_out"]) and not all(test_rows["paraphrase_held_out"])


def test_count_trace_numbers_each_cell_in_reading_order():
    for i in range(30):
        inst = generate_instance("count", random.Random(f"count-trace/{i}"))
        colour = inst.question_fields["colour"]
        listed = re.findall(r"(\d+) at row (\d+), column (\d+)", inst.trace)
        truth = [(r + 1, c + 1) for r, c in find(read_picture(inst.problem_images[0]), colour)]
        assert [(int(r), int(c)) for _, r, c in listed] == truth  # every cell of the colour, raster order
        assert [int(n) for n, _, _ in listed] == list(range(1, len(truth) + 1))
        assert f"That makes {len(truth)} {colour} cell" in inst.trace and inst.answer == str(len(truth))


def test_sink_replaces_tilt_by_default_and_tilt_is_opt_in(tmp_path):
    assert set(DEFAULT_FAMILIES) == set(FAMILIES) - {"tilt"}
    assert [f.replace("tilt", "sink") for f in EARLY_FAMILIES] == DEFAULT_FAMILIES  # same order, one swapped
    write_dataset(str(tmp_path / "default"), per_family=10, seed=0)
    assert set(load_split(str(tmp_path / "default"), "train")["family"]) == set(DEFAULT_FAMILIES)
    write_dataset(str(tmp_path / "with"), per_family=10, seed=0, families=["maze", "tilt"])
    rows = load_split(str(tmp_path / "with"), "train")
    assert set(rows["family"]) == {"maze", "tilt"}
    default_maze = [r["Question"] for r in load_split(str(tmp_path / "default"), "train") if r["family"] == "maze"]
    assert [r["Question"] for r in rows if r["family"] == "maze"] == default_maze  # rows seeded per family


def test_tilt_with_holes():
    from model.sketchworld.families_space import tilt

    walls = np.zeros((N, N), dtype=bool)
    walls[0, 6] = True
    pieces = {"red": (3, 2), "blue": (5, 2), "green": (3, 6), "yellow": (7, 7)}
    # no holes: red stops at the edge and blue under it; green stops under the wall
    assert tilt(walls, pieces, "up") == {"red": (0, 2), "blue": (1, 2), "green": (1, 6), "yellow": (0, 7)}
    # a hole at (1, 2): red falls in, and blue, sliding after it, falls into the same hole; (6, 7) takes yellow
    holes = frozenset({(1, 2), (6, 7)})
    assert tilt(walls, pieces, "up", holes) == {"green": (1, 6)}
    # tilted down nothing reaches a hole: the same board as without holes
    assert tilt(walls, pieces, "down", holes) == tilt(walls, pieces, "down")
    assert tilt(walls, pieces, "down") == {"red": (6, 2), "blue": (7, 2), "green": (7, 6), "yellow": (7, 7)}
    # holes do not block: green slides through the cell red fell from and into the same hole
    assert tilt(walls, pieces, "left", frozenset({(3, 0)})) == {"blue": (5, 0), "yellow": (7, 0)}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("sw")
    write_dataset(str(out / "a"), per_family=10, seed=3)
    write_dataset(str(out / "b"), per_family=10, seed=3)
    write_dataset(str(out / "c"), per_family=10, seed=4)
    return out


def test_same_seed_byte_identical(written):
    for name in ["train.parquet", "validation.parquet", "test.parquet", "sketchworld.json"]:
        assert (written / "a" / name).read_bytes() == (written / "b" / name).read_bytes(), name
    assert (written / "a" / "train.parquet").read_bytes() != (written / "c" / "train.parquet").read_bytes()


def test_schema_roundtrip(written):
    out = str(written / "a")
    keys = {}
    for split, expected_rows in [("train", 8 * 6), ("validation", 6), ("test", 6)]:
        ds = load_split(out, split)
        assert len(ds) == expected_rows
        assert ds.column_names[:3] == ["Question", "Text Reasoning Trace", "Final Answer"]
        keys[split] = set()
        for row in ds:
            problem = sorted(int(k) for k in re.findall(r"\[problem_image_(\d+)\]", row["Question"]))
            reasoning = sorted(int(k) for k in re.findall(r"\[reasoning_image_(\d+)\]", row["Text Reasoning Trace"]))
            assert problem == [k for k in (1, 2) if row[f"problem_image_{k}"] is not None]
            assert reasoning == [k for k in (1, 2) if row[f"reasoning_image_{k}"] is not None]
            assert row["num_sketches"] == len(reasoning) == len(row["reasoning_image_descriptions"])
            images = [row[f"problem_image_{k}"] for k in problem] + [row[f"reasoning_image_{k}"] for k in reasoning]
            assert all(im.size == (224, 224) and im.mode == "RGB" for im in images)
            assert row["Final Answer"] in row["answer_choices"]
            assert row["id"].startswith(f"{row['family']}-{split}-")
            check(
                row["family"],
                row["Question"],
                [row[f"problem_image_{k}"] for k in problem],
                [row[f"reasoning_image_{k}"] for k in reasoning],
                row["Final Answer"],
            )
            keys[split].add((row["Question"], tuple(row["problem_image_descriptions"])))
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["validation"]


def test_cli(tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "model.sketchworld", "--out", str(out), "--per-family", "3", "--no-progress"]
    done = subprocess.run(cmd + ["--families", "count,tilt"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert {p.name for p in out.iterdir()} == {
        "train.parquet",
        "validation.parquet",
        "test.parquet",
        "sketchworld.json",
    }
    bad = subprocess.run(cmd + ["--families", "nope", "--overwrite"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0
    assert bad.stderr.strip().count("\n") == 0 and "nope" in bad.stderr and "maze" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--per-family", "0"], "positive"),
        (["--per-family", "2", "--splits", "train=0.5,test=0.2"], "sum to 1"),
        (["--per-family", "2", "--splits", "dev=1"], "bad --splits"),
        (["--per-family"], "expected one argument"),
    ],
)
def test_cli_errors_in_process(tmp_path, capsys, args, message):
    assert cli_main(["--out", str(tmp_path / "x")] + args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and err.count("\n") == 1


def test_cli_refuses_non_empty_out(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    assert cli_main(["--out", str(tmp_path), "--per-family", "2"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_examples_list_the_default_families_and_drop_an_earlier_lists_pictures(tmp_path):
    from model.sketchworld.examples import write_examples

    (tmp_path / "tilt-1-problem-1.png").write_bytes(b"stale")  # from a family list without sink
    (tmp_path / "notes.png").write_bytes(b"not an example picture")
    records = write_examples(str(tmp_path), per_family=1, seed=7)
    assert [r["family"] for r in records] == DEFAULT_FAMILIES
    listed = {name for r in records for name in r["problem_images"] + r["reasoning_images"]}
    assert {p.name for p in tmp_path.glob("*-*-*.png")} == listed  # every listed picture, and only those
    assert (tmp_path / "notes.png").exists() and json.loads((tmp_path / "examples.json").read_text()) == records
