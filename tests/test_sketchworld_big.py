"""Tests for sketch-world's big boards (connect16, maze16): the 8x8 families' questions on 16x16 boards, deterministic
per seed, and hard to answer from a small part of the board.

    python -m pytest -q tests/test_sketchworld_big.py

Answers are re-derived from the pictures by tests/test_sketchworld.py's independent checkers (a BFS, a depth-first
route); the shortcut predictors below are written here, read only the problem picture, and never look at
`Instance.state`.
"""

import random
from collections import Counter, deque

import numpy as np
import pytest
from test_sketchworld import check, find, neighbours, read_picture

from model.sketchworld import generate_instance

BIG = {"connect16": "connect", "maze16": "maze"}
N = 16
BOARD_OF = {"connect16": N, "maze16": N, "connect": 8, "maze": 8}
PUZZLES = 200


@pytest.fixture(scope="module")
def puzzles():
    return {f: [generate_instance(f, random.Random(f"big/{i}")) for i in range(PUZZLES)] for f in BIG}


def flood(grid, start, window=None):
    """White cells reachable from start (4-neighbours), optionally only inside window = (r0, r1, c0, c1)."""
    seen, queue = {start}, deque([start])
    while queue:
        for r, c in neighbours(*queue.popleft(), len(grid)):
            inside = window is None or (window[0] <= r < window[1] and window[2] <= c < window[3])
            if inside and grid[r][c] == "white" and (r, c) not in seen:
                seen.add((r, c))
                queue.append((r, c))
    return seen


def closed_nearby(grid, cell, radius):
    """Does the white region around `cell` end inside the (2·radius+1)² window around it (seen from the window)?"""
    n, (r, c) = len(grid), cell
    window = (max(0, r - radius), min(n, r + radius + 1), max(0, c - radius), min(n, c + radius + 1))
    edges = [(window[0], 0), (window[1] - 1, n - 1), (window[2], 0), (window[3] - 1, n - 1)]
    for rr, cc in flood(grid, cell, window):
        on_window_edge = [rr == edges[0][0], rr == edges[1][0], cc == edges[2][0], cc == edges[3][0]]
        board_edge = [rr == 0, rr == n - 1, cc == 0, cc == n - 1]
        if any(w and not b for w, b in zip(on_window_edge, board_edge)):
            return False  # the region leaves the window: the window cannot say
    return True


def local_connect_guess(grid, radius):
    """ "no" when green's or red's white region visibly ends within `radius` cells of it, else "yes"."""
    (green,), (red,) = find(grid, "green"), find(grid, "red")
    return "no" if closed_nearby(grid, green, radius) or closed_nearby(grid, red, radius) else "yes"


def maze_route(grid):
    """The green-to-red route through non-black cells (BFS parents), ends included."""
    (green,), (red,) = find(grid, "green"), find(grid, "red")
    parent, queue = {green: None}, deque([green])
    while queue:
        cell = queue.popleft()
        for nb in neighbours(*cell, len(grid)):
            if grid[nb[0]][nb[1]] != "black" and nb not in parent:
                parent[nb] = cell
                queue.append(nb)
    route, cell = [], red
    while cell is not None:
        route.append(cell)
        cell = parent[cell]
    return route


@pytest.mark.parametrize("family", list(BIG))
def test_big_boards_answer_like_their_8x8_family(family, puzzles):
    small = generate_instance(BIG[family], random.Random("big/0"))
    for inst in puzzles[family][:40]:
        check(family, inst.question, inst.problem_images, inst.reasoning_images, inst.answer)
        assert inst.question == small.question and inst.choices == small.choices  # same question, same choices
        assert all(g.shape == (N, N) for g in inst.problem_grids + inst.reasoning_grids)
        assert all(im.size == (224, 224) for im in inst.problem_images + inst.reasoning_images)
        assert [line.split(":")[0] for line in inst.trace.split("\n")] == ["THOUGHT 1", "THOUGHT 2", "THOUGHT 3"]
        state = inst.text_only_trace.split(" State: ")[1].split(".\n")[0]  # the sketch written row by row
        assert state.startswith("row 1: ") and f" row {N}: " in state and len(state.split()) == N * N + 2 * N


@pytest.mark.parametrize("family", list(BIG))
def test_big_boards_are_deterministic_per_seed(family):
    a, b = (generate_instance(family, random.Random("seed/7")) for _ in range(2))
    c = generate_instance(family, random.Random("seed/8"))
    assert a.trace == b.trace and all((x == y).all() for x, y in zip(a.problem_grids, b.problem_grids))
    assert not (a.problem_grids[0] == c.problem_grids[0]).all()


def connect_shortcuts(family: str) -> dict[str, float]:
    """Share of PUZZLES answered right by the local-window guesses and by the best cut on the wall count."""
    insts = [generate_instance(family, random.Random(f"big/{i}")) for i in range(PUZZLES)]
    n = BOARD_OF[family]
    answers = [inst.answer for inst in insts]
    grids = [read_picture(inst.problem_images[0], n) for inst in insts]
    out = {}
    for r in (2, 3):
        out[f"window {2 * r + 1}x{2 * r + 1}"] = float(np.mean([local_connect_guess(g, r) == a
                                                               for g, a in zip(grids, answers)]))  # fmt: skip
    walls = np.array([sum(row.count("black") for row in g) for g in grids])
    yes = np.array([a == "yes" for a in answers])
    out["wall count"] = float(max(np.mean((walls < cut) == yes) for cut in range(walls.min(), walls.max() + 2)))
    out["commonest answer"] = max(Counter(answers).values()) / PUZZLES
    return out


def maze_shortcuts(family: str) -> dict[str, float]:
    """The green-to-red path's inner length (smallest, median) and how often the marker nearest the straight
    route is the answer."""
    lengths, nearest_right, answers = [], [], []
    for i in range(PUZZLES):
        inst = generate_instance(family, random.Random(f"big/{i}"))
        grid = read_picture(inst.problem_images[0], BOARD_OF[family])
        lengths.append(len(maze_route(grid)) - 2)
        ends = find(grid, "green") + find(grid, "red")
        detour = {name: sum(abs(r - er) + abs(c - ec) for er, ec in ends) for name in inst.choices
                  for r, c in find(grid, name)}  # fmt: skip
        nearest_right.append(min(detour, key=lambda name: (detour[name], name)) == inst.answer)
        answers.append(inst.answer)
    return {"shortest path": float(min(lengths)), "median path": float(np.median(lengths)),
            "nearest marker": float(np.mean(nearest_right)),
            "commonest answer": max(Counter(answers).values()) / PUZZLES}  # fmt: skip


def test_connect16_is_not_read_off_a_neighbourhood(puzzles):
    """`pytest -s -k neighbourhood` prints the shortcuts at both sizes (8x8 connect: 62 % and 74 % by the windows)."""
    big, small = connect_shortcuts("connect16"), connect_shortcuts("connect")
    print(f"\nconnect16 {big}\nconnect {small}")
    assert big["commonest answer"] < 0.6 and big["wall count"] < 0.6  # the number of walls says little
    assert big["window 5x5"] < 0.6 and big["window 7x7"] < 0.6  # "closed nearby" is no guide: chance
    for inst in puzzles["connect16"]:  # green and red over half a board apart
        g = read_picture(inst.problem_images[0], N)
        (green,), (red,) = find(g, "green"), find(g, "red")
        assert abs(green[0] - red[0]) + abs(green[1] - red[1]) >= 10


def test_maze16_needs_a_long_path_and_its_markers_no_shortcut():
    """`pytest -s -k maze16_needs` prints the same measures for 8x8 maze beside it."""
    big, small = maze_shortcuts("maze16"), maze_shortcuts("maze")
    print(f"\nmaze16 {big}\nmaze {small}")
    assert big["shortest path"] >= 24 and big["median path"] >= 35  # the path crosses much of the board
    assert big["nearest marker"] < 0.45  # the marker nearest the straight route: about chance (1/3)
    assert big["commonest answer"] < 0.45
