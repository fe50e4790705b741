"""The sketch codebook on boards of several sizes (sketch-world v6: 8×8 and 16×16 boards in one data set): each
sketch's slots are labelled by its own board's cells, a slot over a 2×2 block by the block's pattern, and snapping
keeps the state of both sizes. On the tiny preset (K = 4 over a 56-px picture) a 2×2 board has one cell a slot and a
4×4 board a 2×2 block a slot: the same shapes as 8×8 and 16×16 boards at K = 64.

    python -m pytest -q tests/test_codebook_boards.py
"""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from model.training.fit_codebook import fit_codebook, nearest_accuracy, sketch_labels, slot_blocks, slot_label

RGB = {"blue": (30, 30, 220), "red": (220, 30, 30), "white": (250, 250, 250)}


def example(grid):
    """A stand-in example with one described sketch of `grid`, drawn at 56 px (no grid lines, as sketch-world)."""
    size = len(grid)
    image = Image.new("RGB", (size, size))
    image.putdata([RGB[c] for row in grid for c in row])
    description = " ".join(f"row {r + 1}: {' '.join(row)}" for r, row in enumerate(grid))
    return SimpleNamespace(reasoning_images=[image.resize((56, 56), Image.NEAREST)],
                           reasoning_descriptions=[description])  # fmt: skip


def small(rng):  # one cell a slot
    return [[str(rng.choice(list(RGB))) for _ in range(2)] for _ in range(2)]


def big(rng):
    """A 4×4 board whose 2×2 blocks are each uniform or one of two patterns (a few states, each seen often)."""
    patterns = [lambda c: [[c, c], [c, c]], lambda c: [[c, "white"], ["white", "white"]],
                lambda c: [["white", c], [c, "white"]]]  # fmt: skip
    grid = [[None] * 4 for _ in range(4)]
    for bi in range(2):
        for bj in range(2):
            block = patterns[rng.integers(3)](str(rng.choice(["blue", "red"])))
            for a in range(2):
                for b in range(2):
                    grid[2 * bi + a][2 * bj + b] = block[a][b]
    return grid


def test_each_slot_is_labelled_by_the_cells_it_covers_on_its_own_board(tiny_copy):
    top_left_blue = [["blue", "blue", "red", "white"],
                     ["blue", "blue", "white", "white"],
                     ["white", "red", "red", "red"],
                     ["red", "white", "red", "red"]]  # fmt: skip
    two = [["red", "white"], ["blue", "blue"]]
    # the 16×16-like board first: the old fit sized every slot from grids[0]'s board and read an 8×8 board's cells
    # (here: a 2×2 board's) from the top-left quarter of every bigger one
    labels = sketch_labels(tiny_copy, [top_left_blue, two])
    assert labels[0] == ["blue", "red+white+white+white", "white+red+red+white", "red"]
    assert labels[1] == ["red", "white", "blue", "blue"]
    assert slot_blocks(tiny_copy, 4)[1] == [(0, 2), (0, 3), (1, 2), (1, 3)]
    assert slot_label(top_left_blue, [(0, 0), (0, 1), (1, 0), (1, 1)]) == "blue"  # uniform: the colour itself


def test_a_uniform_block_is_the_same_picture_as_one_cell_of_the_small_board(tiny_copy):
    """Why a uniform 2×2 block shares the colour's label: the encoder sees the very same pixels in its slot."""
    grid = [["blue"] * 4 for _ in range(4)]
    small_board = example([["blue", "blue"], ["blue", "blue"]]).reasoning_images[0]
    assert np.array_equal(np.asarray(example(grid).reasoning_images[0]), np.asarray(small_board))


def test_fit_on_mixed_boards_keeps_the_state_of_both_sizes(tiny_copy):
    rng = np.random.default_rng(0)
    train = [example(big(rng) if i % 2 else small(rng)) for i in range(160)]
    train.insert(0, example(big(rng)))  # a big board first
    with torch.no_grad():
        images = [ex.reasoning_images[0] for ex in train]
        tiny_copy.fit_latent_stats(tiny_copy.sketch_targets(images).flatten(0, 1))
    book = fit_codebook(tiny_copy, train, progress=False)
    assert {"blue", "red", "white"} <= set(book.labels)
    assert any("+" in label for label in book.labels)  # the big board's patterns are states of their own
    assert bool(book.present.any(dim=0).all())  # states no slot saw min_count times are left out of the file
    check = [example(big(rng)) for _ in range(20)] + [example(small(rng)) for _ in range(20)]
    shares = nearest_accuracy(tiny_copy, book, check, progress=False)
    assert set(shares) == {"overall", "2×2", "4×4"}
    assert shares["2×2"] > 0.9 and shares["4×4"] > 0.9, shares


def test_a_slot_over_more_than_four_cells_is_refused(tiny_copy):
    with pytest.raises(ValueError, match="at most 4 board cells a slot"):
        fit_codebook(tiny_copy, [example([["white"] * 8 for _ in range(8)])], progress=False)
    with pytest.raises(ValueError, match="whole board cells"):
        slot_blocks(tiny_copy, 3)
