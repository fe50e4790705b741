"""Tests for model/sketchworld: determinism, the Zebra-CoT schema, and answers re-derived from the pictures.

    python -m pytest -q tests/test_sketchworld.py

The checkers below read pictures back by sampling pixels and solve each task with their own small code (a BFS, a
step-by-step slide, a mirror); they never call the generators' solvers or read `Instance.state`. The big boards'
own checks (local shortcuts, path lengths) are in tests/test_sketchworld_big.py, the wording grammar's in
tests/test_sketchworld_grammar.py.
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
    generate_instance,
    load_split,
    write_dataset,
)
from model.sketchworld.__main__ import main as cli_main
from model.sketchworld.grid import PALETTE, describe_grid, read_grid, render

N = 8  # cells per side of a standard board
BOARD = {"connect16": 16, "maze16": 16}  # the big boards; every other family is N x N
IMAGE = 224  # every picture, whatever its board
NAME_OF_RGB = {rgb: name for name, rgb in PALETTE.items()}


# ---------------------------------------------------------------- independent reading and solving


def read_picture(image, n: int = N) -> list[list[str]]:
    """Colour names per cell of an n x n board; also asserts each cell's block is one flat palette colour."""
    assert image.size == (IMAGE, IMAGE)
    px = IMAGE // n
    rgb = np.asarray(image.convert("RGB"))
    out = []
    for r in range(n):
        row = []
        for c in range(n):
            block = rgb[r * px : (r + 1) * px, c * px : (c + 1) * px].reshape(-1, 3)
            assert (block == block[0]).all(), f"cell {r},{c} is not flat"
            row.append(NAME_OF_RGB[tuple(int(v) for v in rgb[r * px + px // 2, c * px + px // 2])])
        out.append(row)
    return out


def find(grid, name):
    return [(r, c) for r in range(len(grid)) for c in range(len(grid)) if grid[r][c] == name]


def neighbours(r, c, n=N):
    for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        if 0 <= r + dr < n and 0 <= c + dc < n:
            yield r + dr, c + dc


def check_count(question, problems, sketches):
    colour = re.search(r"How many (\w+) cells", question).group(1)
    assert not sketches
    return str(len(find(problems[0], colour)))


def check_connect(question, problems, sketches):
    grid = problems[0]
    n = len(grid)
    (green,), (red,) = find(grid, "green"), find(grid, "red")
    seen, queue = set(), deque([green])
    while queue:
        for nb in neighbours(*queue.popleft(), n):
            if grid[nb[0]][nb[1]] == "white" and nb not in seen:
                seen.add(nb)
                queue.append(nb)
    reached = any(nb in seen for nb in neighbours(*red, n))
    painted = seen | ({red} if reached else set())
    expected = [[("blue" if (r, c) in painted else grid[r][c]) for c in range(n)] for r in range(n)]
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
        for nb in neighbours(*cell, len(grid)):
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
    "connect16": check_connect,  # the same checks on a 16 x 16 board
    "maze16": check_maze,
}


def check(family, question, problem_images, reasoning_images, answer):
    n = BOARD.get(family, N)
    problems = [read_picture(im, n) for im in problem_images]
    sketches = [read_picture(im, n) for im in reasoning_images]
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
        n = BOARD.get(family, N)
        for grid, image, text in zip(inst.problem_grids, inst.problem_images, inst.problem_image_descriptions):
            assert grid.shape == (n, n) and (read_grid(image, n) == grid).all()
            assert text == " ".join(f"row {r + 1}: " + " ".join(row) for r, row in enumerate(read_picture(image, n)))


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
BALANCE_BOUND |= {"connect16": BALANCE_BOUND["connect"], "maze16": BALANCE_BOUND["maze"]}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_answer_balance(family):
    answers = Counter(generate_instance(family, random.Random(f"balance/{i}")).answer for i in range(200))
    assert answers.most_common(1)[0][1] / 200 < BALANCE_BOUND[family], answers


@pytest.mark.parametrize("n", [N, 16])
def test_render_roundtrip_and_description(n):
    grid = np.random.default_rng(0).integers(0, len(PALETTE), size=(n, n)).astype(np.int8)
    image = render(grid)
    assert image.size == (IMAGE, IMAGE) and (read_grid(image, n) == grid).all()
    assert [[PALETTE[name] for name in row] for row in read_picture(image, n)] == [
        [tuple(int(v) for v in list(PALETTE.values())[k]) for k in row] for row in grid
    ]
    assert describe_grid(grid).startswith("row 1: ") and f" row {n}: " in describe_grid(grid)
    assert len(describe_grid(grid).split()) == n * n + 2 * n  # "row", "k:" and n colours a row


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
    big = ["connect16", "maze16"]  # the big boards follow the v4 list, sink in tilt's place
    assert [f.replace("tilt", "sink") for f in EARLY_FAMILIES] + big == DEFAULT_FAMILIES
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
    families = len(DEFAULT_FAMILIES)
    for split, expected_rows in [("train", 8 * families), ("validation", families), ("test", families)]:
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
    from model.sketchworld.examples import EXAMPLE_KINDS, write_examples

    (tmp_path / "tilt-1-problem-1.png").write_bytes(b"stale")  # from a family list without sink
    (tmp_path / "notes.png").write_bytes(b"not an example picture")
    records = write_examples(str(tmp_path), per_family=1, seed=7)
    assert [r["family"] for r in records] == DEFAULT_FAMILIES
    # each asked in a paraphrase too, the kinds taken in turn over the families (EXAMPLE_KINDS)
    assert [r["paraphrase_kind"] for r in records] == [EXAMPLE_KINDS[f % 3] for f in range(len(records))]
    assert all(r["paraphrased_question"] and r["paraphrased_question"] != r["question"] for r in records)
    listed = {name for r in records for name in r["problem_images"] + r["reasoning_images"]}
    assert {p.name for p in tmp_path.glob("*-*-*.png")} == listed  # every listed picture, and only those
    assert (tmp_path / "notes.png").exists() and json.loads((tmp_path / "examples.json").read_text()) == records
