"""Pattern task families: count (no sketch), fold (mirror overlay), jigsaw (symmetry completion, two problem images).

Each `gen_*(rng)` draws one Instance from a `random.Random`, drawing the wanted answer first so answers are balanced.
`count` is answered from the problem image alone: it gives a later RL stage a family where sketching is wasted work.
In `fold` and `jigsaw` the mirror itself is a fixed re-indexing, but the answer needs the mirrored cells compared
with other content (marks of the other half, candidate pieces), which the sketch brings next to each other.

    python -c "import random, model.sketchworld as sw; print(sw.generate_instance('fold', random.Random(0)).trace)"
"""

import random

import numpy as np

from model.sketchworld.grid import GRID_SIZE, cells_of, color_index, new_grid
from model.sketchworld.schema import Instance, Step, build_instance

HALF = GRID_SIZE // 2
MAX_DRAWS = 10_000  # rejection-sampling guard; typical draws are < 5

# ---------------------------------------------------------------- count

COUNT_COLORS = ["red", "blue", "green", "yellow", "purple"]
COUNT_CHOICES = [str(k) for k in range(10)]


def gen_count(rng: random.Random) -> Instance:
    """Scattered coloured cells; how many of one colour? No sketch: the problem image already holds the answer."""
    target = rng.choice(COUNT_COLORS)
    want = rng.randint(1, 9)
    counts = {name: rng.randint(0, 9) for name in COUNT_COLORS if name != target} | {target: want}
    cells = new_grid("white")
    spots = rng.sample(range(GRID_SIZE * GRID_SIZE), sum(counts.values()))
    for name in COUNT_COLORS:  # fixed colour order keeps the draw deterministic
        for _ in range(counts[name]):
            cells[divmod(spots.pop(), GRID_SIZE)] = color_index(name)
    per_row = {}
    for r, _ in cells_of(cells, target):
        per_row[r] = per_row.get(r, 0) + 1
    tally = ", ".join(f"row {r + 1} has {n}" for r, n in per_row.items())
    steps = [
        Step(f"Scan the rows for {target} cells: {tally}."),
        Step(f"That makes {want} {target} cells in total."),
    ]
    question = f"How many {target} cells are in the picture?"
    return build_instance("count", [cells], question, steps, str(want), COUNT_CHOICES, {"target": target})


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
    question = f"Fold the {moving} half of the paper onto the {staying} half. How many red cells land on blue cells?"
    state = {"moving": moving, "both": both, "red_only": red_only, "blue_only": blue_only}
    return build_instance("fold", [cells], question, steps, str(want), FOLD_CHOICES, state)


# ---------------------------------------------------------------- jigsaw

JIGSAW_COLORS = ["white", "black", "red", "blue", "green", "yellow"]
JIGSAW_CHOICES = ["A", "B", "C"]
PIECE_SLOTS = [(3, 0), (3, 3), (3, 6)]  # top-left cell of pieces A, B, C in the second problem image


def gen_jigsaw(rng: random.Random) -> Instance:
    """Mirror-symmetric picture with a 2x2 gray gap, three candidate pieces. Sketch: the gap filled by symmetry."""
    want = rng.choice(JIGSAW_CHOICES)
    for _ in range(MAX_DRAWS):
        left = np.array([[color_index(rng.choice(JIGSAW_COLORS)) for _ in range(HALF)] for _ in range(GRID_SIZE)])
        full = np.concatenate([left, left[:, ::-1]], axis=1).astype(np.int8)  # mirror symmetric left to right
        r, c = rng.randint(0, GRID_SIZE - 2), rng.choice([0, 1, 2, 4, 5, 6])  # gap never straddles the middle
        correct = full[r : r + 2, c : c + 2].copy()
        # One distractor is the source block copied without mirroring. The other is a near miss of either the answer
        # or that copy, so which piece sits "between" the other two does not give the answer away.
        unmirrored = correct[:, ::-1].copy()
        near = rng.choice([correct, unmirrored]).copy()
        if rng.random() < 0.5:
            near = near[::-1, :].copy()
        else:
            near[rng.randint(0, 1), rng.randint(0, 1)] = color_index(rng.choice(JIGSAW_COLORS))
        pieces = [correct, unmirrored, near]
        if all(not np.array_equal(a, b) for i, a in enumerate(pieces) for b in pieces[i + 1 :]):
            break
    else:
        raise RuntimeError("jigsaw: no draw gave three distinct pieces")
    slot = JIGSAW_CHOICES.index(want)
    distractors = [unmirrored, near]
    rng.shuffle(distractors)
    order = distractors[:slot] + [correct] + distractors[slot:]
    puzzle = full.copy()
    puzzle[r : r + 2, c : c + 2] = color_index("gray")
    tray = new_grid("gray")
    for (pr, pc), piece in zip(PIECE_SLOTS, order):
        tray[pr : pr + 2, pc : pc + 2] = piece
    steps = [
        Step("Mirror the matching cells from the other half into the gray gap.", full),
        Step(f"Piece {want} matches the filled gap."),
    ]
    question = (
        "The picture is mirror symmetric left to right. Which piece, A, B or C from left to right, fills the gray gap?"
    )
    state = {"gap": (r, c), "pieces": order}
    return build_instance("jigsaw", [puzzle, tray], question, steps, want, JIGSAW_CHOICES, state)
