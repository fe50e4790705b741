"""Pattern task families: count (no sketch), fold (mirror overlay), shift (slide and overlay, two problem images).

Each `gen_*(rng)` draws one Instance from a `random.Random`, drawing the wanted answer first so answers are balanced.
`count` is answered from the problem image alone: it gives a later RL stage a family where sketching is wasted work.
In `fold` and `shift` the move itself is a fixed re-indexing (a mirror, a slide by a given offset), but the answer
needs the moved cells compared with other content (the marks they land on) and the coincidences counted: two steps
composed, which the sketch does one at a time (each of its cells is a function of two cells of the problem).

    python -c "import random, model.sketchworld as sw; print(sw.generate_instance('fold', random.Random(0)).trace)"
"""

import random

from model.sketchworld.grid import GRID_SIZE, cell_name, cells_of, color_index, new_grid
from model.sketchworld.schema import Instance, Step, build_instance

HALF = GRID_SIZE // 2
MAX_DRAWS = 10_000  # rejection-sampling guard; typical draws are < 5

# ---------------------------------------------------------------- count

COUNT_COLORS = ["red", "blue", "green", "yellow", "purple"]
COUNT_CHOICES = [str(k) for k in range(10)]


def gen_count(rng: random.Random) -> Instance:
    """Scattered coloured cells; how many of one colour? No sketch: the problem image already holds the answer.

    The trace names the cells of that colour one by one in reading order, each with its running number, and the
    total is the last number: each step finds the next such cell and adds one. (Version 4 tallied cells per row and
    then summed the tally; the demo answered 7, 8 or 9 whatever the count, its tally wrong and its sum disagreeing
    with the tally: ../shared/FINDINGS.md, 4.)"""
    target = rng.choice(COUNT_COLORS)
    want = rng.randint(1, 9)
    counts = {name: rng.randint(0, 9) for name in COUNT_COLORS if name != target} | {target: want}
    cells = new_grid("white")
    spots = rng.sample(range(GRID_SIZE * GRID_SIZE), sum(counts.values()))
    for name in COUNT_COLORS:  # fixed colour order keeps the draw deterministic
        for _ in range(counts[name]):
            cells[divmod(spots.pop(), GRID_SIZE)] = color_index(name)
    listed = "; ".join(f"{i + 1} at {cell_name(rc)}" for i, rc in enumerate(cells_of(cells, target)))
    steps = [
        Step(f"Number the {target} cells in reading order: {listed}."),
        Step(f"That makes {want} {target} cell{'' if want == 1 else 's'} in total."),
    ]
    return build_instance("count", [cells], {"colour": target}, steps, str(want), COUNT_CHOICES, {"target": target})


# ---------------------------------------------------------------- fold

# fold name -> (which half moves, axis): the moving half is mirrored across the middle line onto the other half.
FOLDS = {
    "left": ("left", "right"),
    "right": ("right", "left"),
    "top": ("top", "bottom"),
    "bottom": ("bottom", "top"),
}
FOLD_CHOICES = [str(k) for k in range(6)]


def fold_mirror(rc: tuple[int, int], moving: str) -> tuple[int, int]:
    """Where a cell of the moving half lands after folding across the middle line."""
    r, c = rc
    return (r, GRID_SIZE - 1 - c) if moving in ("left", "right") else (GRID_SIZE - 1 - r, c)


def half_cells(side: str) -> list[tuple[int, int]]:
    rows = range(HALF) if side == "top" else range(HALF, GRID_SIZE) if side == "bottom" else range(GRID_SIZE)
    cols = range(HALF) if side == "left" else range(HALF, GRID_SIZE) if side == "right" else range(GRID_SIZE)
    return [(r, c) for r in rows for c in cols]


def gen_fold(rng: random.Random) -> Instance:
    """Red marks on one half, blue on the other; fold; how many red land on blue? Sketch: the folded half."""
    want = rng.randint(0, 5)
    moving = rng.choice(list(FOLDS))
    staying = FOLDS[moving][1]
    # Totals drawn apart from the answer, so the number of red or blue marks says nothing about the overlap.
    num_red_only, num_blue_only = rng.randint(6, 9) - want, rng.randint(6, 9) - want
    # Positions are chosen on the staying half; red marks are then drawn at their mirror on the moving half.
    spots = rng.sample(half_cells(staying), want + num_red_only + num_blue_only)
    both, red_only, blue_only = spots[:want], spots[want : want + num_red_only], spots[want + num_red_only :]
    cells = new_grid("white")
    for rc in both + blue_only:
        cells[rc] = color_index("blue")
    for rc in both + red_only:
        cells[fold_mirror(rc, moving)] = color_index("red")
    sketch = new_grid("white")
    for rc in half_cells(moving):
        sketch[rc] = color_index("gray")  # folded away: only the back of the paper is left there
    for rcs, name in [(blue_only, "blue"), (red_only, "red"), (both, "purple")]:
        for rc in rcs:
            sketch[rc] = color_index(name)
    steps = [
        Step(
            f"Fold {moving} onto {staying}: red marks mirror across the middle, purple where red meets blue.", sketch
        ),
        Step(f"There {'is' if want == 1 else 'are'} {want} purple cell{'' if want == 1 else 's'}."),
    ]
    fields = {"moving": moving, "staying": staying}
    state = {"moving": moving, "both": both, "red_only": red_only, "blue_only": blue_only}
    return build_instance("fold", [cells], fields, steps, str(want), FOLD_CHOICES, state)


# ---------------------------------------------------------------- shift

SHIFTS = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
SHIFT_CHOICES = [str(k) for k in range(6)]


def gen_shift(rng: random.Random) -> Instance:
    """Red marks on a first picture, blue marks on a second; slide the red marks n cells and lay them on the
    second picture; how many land on blue? Sketch: the second picture with the slid red marks on it (purple where
    red meets blue)."""
    want = rng.randint(0, 5)
    direction, amount = rng.choice(list(SHIFTS)), rng.randint(1, 3)
    dr, dc = SHIFTS[direction]
    # every red mark stays on the board after the slide: draw the landing cells, then place the marks behind them
    landing = [(r, c) for r in range(GRID_SIZE) for c in range(GRID_SIZE)
               if 0 <= r - amount * dr < GRID_SIZE and 0 <= c - amount * dc < GRID_SIZE]  # fmt: skip
    # totals drawn apart from the answer, so the number of red or blue marks says nothing about the overlap
    num_red_only, num_blue_only = rng.randint(6, 9) - want, rng.randint(6, 9) - want
    both_and_red = rng.sample(landing, want + num_red_only)
    both, red_only = both_and_red[:want], both_and_red[want:]
    rest = [(r, c) for r in range(GRID_SIZE) for c in range(GRID_SIZE) if (r, c) not in both_and_red]
    blue_only = rng.sample(rest, num_blue_only)
    red_picture, blue_picture = new_grid("white"), new_grid("white")
    for r, c in both + red_only:
        red_picture[r - amount * dr, c - amount * dc] = color_index("red")
    for rc in both + blue_only:
        blue_picture[rc] = color_index("blue")
    sketch = blue_picture.copy()
    for rcs, name in [(red_only, "red"), (both, "purple")]:
        for rc in rcs:
            sketch[rc] = color_index(name)
    cells = "cell" if amount == 1 else "cells"
    steps = [
        Step(f"Slide the red marks {amount} {cells} {direction} onto the second picture, purple where red meets blue.",
             sketch),
        Step(f"There {'is' if want == 1 else 'are'} {want} purple cell{'' if want == 1 else 's'}."),
    ]  # fmt: skip
    fields = {"amount": amount, "direction": direction}
    state = {"direction": direction, "amount": amount, "both": both, "red_only": red_only, "blue_only": blue_only}
    return build_instance("shift", [red_picture, blue_picture], fields, steps, str(want), SHIFT_CHOICES, state)
