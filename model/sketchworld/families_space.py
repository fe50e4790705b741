"""Sliding families: tilt and sink (pieces slide until blocked, two sketches); connect and maze are in
model/sketchworld/families_paths.py.

The line after each sketch reads the answer off it with the perception skills stage 0 teaches: which piece fell into
a hole (sink, by presence), or where a piece is (tilt: its column). sink is tilt with gray holes and a presence
read-out; it took tilt's place among the default families in version 4.

Each `gen_*(rng)` draws one Instance from a `random.Random`. The wanted answer is drawn first and the picture is
re-drawn until it produces that answer, which balances answers within the family. The sketch is a state that depends
on the picture's content (walls, holes, other pieces), not a fixed re-indexing of cells.

    python -c "import random, model.sketchworld as sw; print(sw.generate_instance('tilt', random.Random(0)).trace)"
"""

import random

import numpy as np

from model.sketchworld.grid import GRID_SIZE, color_index
from model.sketchworld.schema import Instance, Step, build_instance

BLACK, WHITE, HOLE = color_index("black"), color_index("white"), color_index("gray")
MAX_DRAWS = 10_000  # rejection-sampling guard; typical draws are < 20


def _inside(r: int, c: int) -> bool:
    return 0 <= r < GRID_SIZE and 0 <= c < GRID_SIZE


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
