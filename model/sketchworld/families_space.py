"""Spatial task families: connect (flood fill), maze (path tracing), tilt and sink (pieces sliding, two sketches).

The line after each sketch reads the answer off it with the perception skills stage 0 teaches: whether a colour is
there (connect: is red gone; maze: which marker is gone; sink: which piece fell into a hole), or where a piece is
(tilt: its column). sink is tilt with gray holes and a presence read-out; it is opt-in (not in the default dataset)
until a demo is trained on it.

Each `gen_*(rng)` draws one Instance from a `random.Random`. The wanted answer is drawn first and the picture is
re-drawn until it produces that answer, which balances answers within the family. In all four the sketch is a
state that depends on the picture's content (walls, corridors, other pieces), not a fixed re-indexing of cells.

    python -c "import random, model.sketchworld as sw; print(sw.generate_instance('tilt', random.Random(0)).trace)"
"""

import random
from collections import deque

import numpy as np

from model.sketchworld.grid import GRID_SIZE, color_index, new_grid
from model.sketchworld.schema import Instance, Step, build_instance

BLACK, WHITE, HOLE = color_index("black"), color_index("white"), color_index("gray")
MAX_DRAWS = 10_000  # rejection-sampling guard; typical draws are < 20
NEIGHBOURS = [(-1, 0), (1, 0), (0, -1), (0, 1)]


def _inside(r: int, c: int) -> bool:
    return 0 <= r < GRID_SIZE and 0 <= c < GRID_SIZE


def _flood(open_mask: np.ndarray, start: tuple[int, int]) -> set[tuple[int, int]]:
    """Cells of open_mask reachable from start by 4-neighbour steps (start itself excluded)."""
    seen, queue = {start}, deque([start])
    while queue:
        r, c = queue.popleft()
        for dr, dc in NEIGHBOURS:
            nr, nc = r + dr, c + dc
            if _inside(nr, nc) and open_mask[nr, nc] and (nr, nc) not in seen:
                seen.add((nr, nc))
                queue.append((nr, nc))
    return seen - {start}


# ---------------------------------------------------------------- connect


def gen_connect(rng: random.Random) -> Instance:
    """Random black walls; can green reach red through white cells? Sketch: the flood fill from green in blue, red
    included when the fill reaches it, so the sketch answers the question by whether any red is left."""
    want_yes = rng.random() < 0.5
    for _ in range(MAX_DRAWS):
        cells = new_grid("white")
        # A narrow wall count, near where yes and no are equally likely, so wall density hardly predicts the answer.
        for rc in rng.sample(range(GRID_SIZE * GRID_SIZE), rng.randint(25, 29)):
            cells[divmod(rc, GRID_SIZE)] = BLACK
        free = [(r, c) for r in range(GRID_SIZE) for c in range(GRID_SIZE) if cells[r, c] == WHITE]
        if len(free) < 2:
            continue
        start, goal = rng.sample(free, 2)
        if abs(start[0] - goal[0]) + abs(start[1] - goal[1]) < 4:
            continue  # adjacent or near pairs are answerable at a glance
        cells[start], cells[goal] = color_index("green"), color_index("red")
        reach = _flood(cells == WHITE, start)
        if len(reach) < 3 or len(_flood(cells == WHITE, goal)) < 2:
            continue  # a boxed-in start or goal would make "no" readable from its four neighbours alone
        touches = any((goal[0] + dr, goal[1] + dc) in reach for dr, dc in NEIGHBOURS)
        if touches == want_yes:
            break
    else:
        raise RuntimeError("connect: no draw matched the wanted answer")
    sketch = cells.copy()
    for rc in reach | ({goal} if want_yes else set()):
        sketch[rc] = color_index("blue")
    answer = "yes" if want_yes else "no"
    steps = [
        Step("Flood fill in blue every cell reachable from green, red included.", sketch),
        Step("Red is gone: the fill reached it." if want_yes else "Red is left: the fill did not reach it."),
    ]
    state = {"start": start, "goal": goal, "reachable": sorted(reach)}
    return build_instance("connect", [cells], {}, steps, answer, ["yes", "no"], state)


# ---------------------------------------------------------------- maze

MAZE_MARKERS = ["blue", "yellow", "purple"]


def _carve_maze(rng: random.Random) -> np.ndarray:
    """Perfect maze: 4x4 rooms at odd coordinates, walls carved by a randomised depth-first search."""
    cells = new_grid("black")
    rooms = [(r, c) for r in range(1, GRID_SIZE, 2) for c in range(1, GRID_SIZE, 2)]
    start = rng.choice(rooms)
    cells[start] = WHITE
    stack = [start]
    while stack:
        r, c = stack[-1]
        options = [(r + 2 * dr, c + 2 * dc, dr, dc) for dr, dc in NEIGHBOURS if _inside(r + 2 * dr, c + 2 * dc)]
        options = [o for o in options if cells[o[0], o[1]] == BLACK]
        if not options:
            stack.pop()
            continue
        nr, nc, dr, dc = rng.choice(options)
        cells[r + dr, c + dc] = cells[nr, nc] = WHITE
        stack.append((nr, nc))
    return cells


def _tree_path(cells: np.ndarray, start, goal) -> list[tuple[int, int]]:
    """The unique corridor path start -> goal in a perfect maze (BFS parents), both ends included."""
    parent = {start: None}
    queue = deque([start])
    while queue:
        cur = queue.popleft()
        for dr, dc in NEIGHBOURS:
            nxt = (cur[0] + dr, cur[1] + dc)
            if _inside(*nxt) and cells[nxt] != BLACK and nxt not in parent:
                parent[nxt] = cur
                queue.append(nxt)
    path, cur = [], goal
    while cur is not None:
        path.append(cur)
        cur = parent[cur]
    return path[::-1]


def gen_maze(rng: random.Random) -> Instance:
    """Perfect maze with three coloured markers, one on the green->red path. Sketch: that path in orange, painted
    over the marker on it, so the sketch answers the question by which marker is gone."""
    want = rng.choice(MAZE_MARKERS)
    for _ in range(MAX_DRAWS):
        cells = _carve_maze(rng)
        rooms = [(r, c) for r in range(1, GRID_SIZE, 2) for c in range(1, GRID_SIZE, 2)]
        start, goal = rng.sample(rooms, 2)
        path = _tree_path(cells, start, goal)
        inner = path[1:-1]
        off_path = [(r, c) for r in range(GRID_SIZE) for c in range(GRID_SIZE) if cells[r, c] == WHITE]
        off_path = [rc for rc in off_path if rc not in path]
        if len(inner) >= 5 and len(off_path) >= 2:
            break
    else:
        raise RuntimeError("maze: no draw had a long enough path")
    on_path = rng.choice(inner)

    def detour(rc):  # how far a cell is from the straight route; on-path cells tend to score low
        return abs(rc[0] - start[0]) + abs(rc[1] - start[1]) + abs(rc[0] - goal[0]) + abs(rc[1] - goal[1])

    # Distractors about as close to the route as the true marker, so "the marker between them" is no shortcut.
    off_path.sort(key=lambda rc: (abs(detour(rc) - detour(on_path)), rc))
    distractors = rng.sample(off_path[:4], 2)
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
    return build_instance("maze", [cells], {}, steps, want, list(MAZE_MARKERS), state)


# ---------------------------------------------------------------- tilt

PIECES = ["red", "blue", "green", "yellow"]
DIRECTIONS = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
TILT_COLUMNS = [str(c) for c in range(1, GRID_SIZE + 1)]


def tilt(
    walls: np.ndarray, pieces: dict[str, tuple[int, int]], direction: str, holes: frozenset = frozenset()
) -> dict[str, tuple[int, int]]:
    """Slide every piece in `direction` until blocked by the edge, a wall or a piece that has already stopped; a piece
    that moves onto one of `holes` falls in and is left out of the result (the hole stays open for the next one).

    Pieces are moved front-most first, so each one stops against the final position of the one ahead of it.
    """
    dr, dc = DIRECTIONS[direction]
    order = sorted(pieces, key=lambda name: -(pieces[name][0] * dr + pieces[name][1] * dc))
    placed: dict[str, tuple[int, int]] = {}
    for name in order:
        r, c = pieces[name]
        while _inside(r + dr, c + dc) and not walls[r + dr, c + dc] and (r + dr, c + dc) not in placed.values():
            r, c = r + dr, c + dc
            if (r, c) in holes:
                break
        if (r, c) not in holes:
            placed[name] = (r, c)
    return {name: placed[name] for name in pieces if name in placed}


def _draw_pieces(walls: np.ndarray, pieces: dict[str, tuple[int, int]], holes=frozenset()) -> np.ndarray:
    cells = np.where(walls, BLACK, WHITE).astype(np.int8)
    for rc in holes:
        cells[rc] = HOLE
    for name, rc in pieces.items():
        cells[rc] = color_index(name)
    return cells


def gen_tilt(rng: random.Random) -> Instance:
    """Walls and four pieces; tilt up or down, then left or right; in which column does one piece end? Sketches:
    the board after each tilt. The column is drawn first (balanced over 1–8); the piece must move in both tilts and
    end elsewhere than the second tilt alone would take it, so both sketches matter."""
    want = rng.randint(1, GRID_SIZE)
    for _ in range(MAX_DRAWS):
        walls = np.zeros((GRID_SIZE, GRID_SIZE), dtype=bool)
        for rc in rng.sample(range(GRID_SIZE * GRID_SIZE), rng.randint(6, 12)):
            walls[divmod(rc, GRID_SIZE)] = True
        free = [(r, c) for r in range(GRID_SIZE) for c in range(GRID_SIZE) if not walls[r, c]]
        pieces = dict(zip(PIECES, rng.sample(free, len(PIECES))))
        first, second = rng.choice(["up", "down"]), rng.choice(["left", "right"])
        piece = rng.choice(PIECES)
        mid = tilt(walls, pieces, first)
        end = tilt(walls, mid, second)
        if mid == pieces or end == mid or end[piece][1] + 1 != want:
            continue  # each tilt must change the board; the piece must end in the wanted column
        if mid[piece] == pieces[piece] or end[piece] == mid[piece]:
            continue  # the asked piece moves in both tilts
        if tilt(walls, pieces, second)[piece][1] == end[piece][1]:
            continue  # the second tilt alone would give the same column: the first would not matter
        break
    else:
        raise RuntimeError("tilt: no draw matched the wanted answer")
    steps = [
        Step(f"Tilt {first}: every piece slides {first} until blocked.", _draw_pieces(walls, mid)),
        Step(f"Tilt {second}: every piece slides {second} until blocked.", _draw_pieces(walls, end)),
        Step(f"{piece.capitalize()} ends in column {want}."),
    ]
    fields = {"first": first, "second": second, "piece": piece}
    state = {"walls": walls, "start": pieces, "after_first": mid, "after_second": end, "piece": piece}
    state |= {"directions": [first, second]}
    return build_instance("tilt", [_draw_pieces(walls, pieces)], fields, steps, str(want), TILT_COLUMNS, state)


# ---------------------------------------------------------------- sink


def gen_sink(rng: random.Random) -> Instance:
    """tilt with two or three gray holes: tilt up or down, then left or right; which piece falls into a hole?
    Sketches: the board after each tilt. The piece is drawn first (balanced over the four); no piece falls in the
    first tilt, exactly that one falls in the second, and the second tilt alone would not drop exactly it, so the
    answer needs the first sketch to draw the second, and the second is read by which colour is gone."""
    want = rng.choice(PIECES)
    for _ in range(MAX_DRAWS):
        num_walls, num_holes = rng.randint(6, 12), rng.randint(2, 3)
        spots = rng.sample(range(GRID_SIZE * GRID_SIZE), len(PIECES) + num_holes + num_walls)
        spots = [divmod(rc, GRID_SIZE) for rc in spots]
        pieces = dict(zip(PIECES, spots[: len(PIECES)]))
        holes = frozenset(spots[len(PIECES) : len(PIECES) + num_holes])
        walls = np.zeros((GRID_SIZE, GRID_SIZE), dtype=bool)
        for rc in spots[len(PIECES) + num_holes :]:
            walls[rc] = True
        first, second = rng.choice(["up", "down"]), rng.choice(["left", "right"])
        mid = tilt(walls, pieces, first, holes)
        end = tilt(walls, mid, second, holes)
        if mid == pieces or len(mid) != len(PIECES) or set(mid) - set(end) != {want}:
            continue  # the first tilt moves something and drops nothing; the second drops exactly the wanted piece
        if set(pieces) - set(tilt(walls, pieces, second, holes)) == {want}:
            continue  # the second tilt alone would drop the same piece: the first would not matter
        break
    else:
        raise RuntimeError("sink: no draw matched the wanted answer")
    steps = [
        Step(f"Tilt {first}: pieces slide {first} until blocked or into a hole.", _draw_pieces(walls, mid, holes)),
        Step(f"Tilt {second}: pieces slide {second} until blocked or into a hole.", _draw_pieces(walls, end, holes)),
        Step(", ".join(f"{name} is {'gone' if name == want else 'left'}" for name in PIECES).capitalize() + "."),
    ]
    fields = {"first": first, "second": second}
    state = {"walls": walls, "holes": sorted(holes), "start": pieces, "after_first": mid, "after_second": end}
    state |= {"directions": [first, second]}
    return build_instance("sink", [_draw_pieces(walls, pieces, holes)], fields, steps, want, list(PIECES), state)
