"""Path families at any board size: connect (flood fill) and maze (path tracing), on 8x8 and 16x16 boards.

    python -c "import random, model.sketchworld as sw; print(sw.generate_instance('maze16', random.Random(0)).trace)"

One generator per family, parameterised by a board spec (`ConnectBoard`, `MazeBoard`): `connect` and `maze` are the
8x8 boards of every earlier version (the same random draws, so the same puzzles), `connect16` and `maze16` the same
questions, answers and traces on 16x16 boards, where one merged vision token covers four cells (model/sketchworld/
grid.py) and the text-only trace writes 256 cells. The line after each sketch reads it by presence: is red gone
(connect), which marker is gone (maze).

The wanted answer is drawn first and the board re-drawn until it gives that answer, which balances answers. The specs'
safeguards keep the answer from being read off a small part of the board: green and red far apart, neither boxed in
(connect), a long green-to-red path and distractor markers as close to the straight route as the true one (maze).
tests/test_sketchworld.py measures what local shortcuts get at both sizes.
"""

import random
from collections import deque
from dataclasses import dataclass

import numpy as np

from model.sketchworld.grid import color_index, new_grid
from model.sketchworld.schema import Instance, Step, build_instance

BLACK, WHITE = color_index("black"), color_index("white")
MAX_DRAWS = 10_000  # rejection-sampling guard; typical draws are < 20
NEIGHBOURS = [(-1, 0), (1, 0), (0, -1), (0, 1)]


def inside(r: int, c: int, size: int) -> bool:
    return 0 <= r < size and 0 <= c < size


def flood(open_mask: np.ndarray, start: tuple[int, int]) -> set[tuple[int, int]]:
    """Cells of open_mask reachable from start by 4-neighbour steps (start itself excluded)."""
    size = open_mask.shape[0]
    seen, queue = {start}, deque([start])
    while queue:
        r, c = queue.popleft()
        for dr, dc in NEIGHBOURS:
            nr, nc = r + dr, c + dc
            if inside(nr, nc, size) and open_mask[nr, nc] and (nr, nc) not in seen:
                seen.add((nr, nc))
                queue.append((nr, nc))
    return seen - {start}


# ---------------------------------------------------------------- connect


@dataclass(frozen=True)
class ConnectBoard:
    family: str
    size: int  # cells per side
    walls: tuple[int, int]  # black cells, drawn in this range: near where yes and no are equally likely
    min_distance: int  # green and red at least this far apart (Manhattan)
    min_start_region: int  # the fill from green reaches at least this many cells: green is not boxed in
    min_goal_region: int  # and red's own region at least this many: "no" is not read off red's neighbours


CONNECT = ConnectBoard("connect", 8, (25, 29), 4, 3, 2)
# 16x16: a narrow wall band (40-42 %, where yes and no are about equally likely), green and red over half a board
# apart, and both regions big enough that no 5x5 window around either shows it closed
CONNECT16 = ConnectBoard("connect16", 16, (102, 108), 10, 14, 14)


def gen_connect(rng: random.Random, board: ConnectBoard = CONNECT) -> Instance:
    """Random black walls; can green reach red through white cells? Sketch: the flood fill from green in blue, red
    included when the fill reaches it, so the sketch answers the question by whether any red is left."""
    n = board.size
    want_yes = rng.random() < 0.5
    for _ in range(MAX_DRAWS):
        cells = new_grid("white", n)
        # A narrow wall count, near where yes and no are equally likely, so wall density hardly predicts the answer.
        for rc in rng.sample(range(n * n), rng.randint(*board.walls)):
            cells[divmod(rc, n)] = BLACK
        free = [(r, c) for r in range(n) for c in range(n) if cells[r, c] == WHITE]
        if len(free) < 2:
            continue
        start, goal = rng.sample(free, 2)
        if abs(start[0] - goal[0]) + abs(start[1] - goal[1]) < board.min_distance:
            continue  # adjacent or near pairs are answerable at a glance
        cells[start], cells[goal] = color_index("green"), color_index("red")
        reach = flood(cells == WHITE, start)
        if len(reach) < board.min_start_region or len(flood(cells == WHITE, goal)) < board.min_goal_region:
            continue  # a boxed-in start or goal would make "no" readable from its neighbourhood alone
        touches = any((goal[0] + dr, goal[1] + dc) in reach for dr, dc in NEIGHBOURS)
        if touches == want_yes:
            break
    else:
        raise RuntimeError(f"{board.family}: no draw matched the wanted answer")
    sketch = cells.copy()
    for rc in reach | ({goal} if want_yes else set()):
        sketch[rc] = color_index("blue")
    answer = "yes" if want_yes else "no"
    steps = [
        Step("Flood fill in blue every cell reachable from green, red included.", sketch),
        Step("Red is gone: the fill reached it." if want_yes else "Red is left: the fill did not reach it."),
    ]
    state = {"start": start, "goal": goal, "reachable": sorted(reach)}
    return build_instance(board.family, [cells], {}, steps, answer, ["yes", "no"], state)


def gen_connect16(rng: random.Random) -> Instance:
    return gen_connect(rng, CONNECT16)


# ---------------------------------------------------------------- maze

MAZE_MARKERS = ["blue", "yellow", "purple"]


@dataclass(frozen=True)
class MazeBoard:
    family: str
    size: int  # cells per side; rooms sit at odd coordinates, so (size / 2)² rooms
    min_inner: int  # cells of the green-to-red path between its ends, at least
    num_candidates: int  # distractors are drawn among this many off-path cells nearest the true marker's detour


MAZE = MazeBoard("maze", 8, 5, 4)
# 16x16: 64 rooms, 127 corridor cells; a path of at least 24 cells between the ends (a fifth of the corridors, as
# 5 of 31 on 8x8 — most draws are far longer), distractors as close to the straight route as the true marker
MAZE16 = MazeBoard("maze16", 16, 24, 4)


def carve_maze(rng: random.Random, size: int) -> np.ndarray:
    """Perfect maze: rooms at odd coordinates, walls carved by a randomised depth-first search."""
    cells = new_grid("black", size)
    rooms = [(r, c) for r in range(1, size, 2) for c in range(1, size, 2)]
    start = rng.choice(rooms)
    cells[start] = WHITE
    stack = [start]
    while stack:
        r, c = stack[-1]
        options = [(r + 2 * dr, c + 2 * dc, dr, dc) for dr, dc in NEIGHBOURS if inside(r + 2 * dr, c + 2 * dc, size)]
        options = [o for o in options if cells[o[0], o[1]] == BLACK]
        if not options:
            stack.pop()
            continue
        nr, nc, dr, dc = rng.choice(options)
        cells[r + dr, c + dc] = cells[nr, nc] = WHITE
        stack.append((nr, nc))
    return cells


def tree_path(cells: np.ndarray, start, goal) -> list[tuple[int, int]]:
    """The unique corridor path start -> goal in a perfect maze (BFS parents), both ends included."""
    size = cells.shape[0]
    parent = {start: None}
    queue = deque([start])
    while queue:
        cur = queue.popleft()
        for dr, dc in NEIGHBOURS:
            nxt = (cur[0] + dr, cur[1] + dc)
            if inside(*nxt, size) and cells[nxt] != BLACK and nxt not in parent:
                parent[nxt] = cur
                queue.append(nxt)
    path, cur = [], goal
    while cur is not None:
        path.append(cur)
        cur = parent[cur]
    return path[::-1]


def gen_maze(rng: random.Random, board: MazeBoard = MAZE) -> Instance:
    """Perfect maze with three coloured markers, one on the green->red path. Sketch: that path in orange, painted
    over the marker on it, so the sketch answers the question by which marker is gone."""
    n = board.size
    want = rng.choice(MAZE_MARKERS)
    for _ in range(MAX_DRAWS):
        cells = carve_maze(rng, n)
        rooms = [(r, c) for r in range(1, n, 2) for c in range(1, n, 2)]
        start, goal = rng.sample(rooms, 2)
        path = tree_path(cells, start, goal)
        inner = path[1:-1]
        off_path = [(r, c) for r in range(n) for c in range(n) if cells[r, c] == WHITE]
        off_path = [rc for rc in off_path if rc not in path]
        if len(inner) >= board.min_inner and len(off_path) >= 2:
            break
    else:
        raise RuntimeError(f"{board.family}: no draw had a long enough path")
    on_path = rng.choice(inner)

    def detour(rc):  # how far a cell is from the straight route; on-path cells tend to score low
        return abs(rc[0] - start[0]) + abs(rc[1] - start[1]) + abs(rc[0] - goal[0]) + abs(rc[1] - goal[1])

    # Distractors about as close to the route as the true marker, so "the marker between them" is no shortcut.
    off_path.sort(key=lambda rc: (abs(detour(rc) - detour(on_path)), rc))
    distractors = rng.sample(off_path[: board.num_candidates], 2)
    markers = {want: on_path}
    for name, rc in zip([m for m in MAZE_MARKERS if m != want], distractors):
        markers[name] = rc
    cells[start], cells[goal] = color_index("green"), color_index("red")
    for name, rc in markers.items():
        cells[rc] = color_index(name)
    sketch = cells.copy()
    for rc in inner:
        sketch[rc] = color_index("orange")
    steps = [
        Step("Trace in orange the corridor path from green to red, over any marker on it.", sketch),
        Step(", ".join(f"{name} is {'gone' if name == want else 'left'}" for name in MAZE_MARKERS).capitalize() + "."),
    ]
    state = {"start": start, "goal": goal, "path": path, "markers": markers}
    return build_instance(board.family, [cells], {}, steps, want, list(MAZE_MARKERS), state)


def gen_maze16(rng: random.Random) -> Instance:
    return gen_maze(rng, MAZE16)
