"""Can a checkpoint's frozen vision encoder tell a board's cells apart? A linear probe from one merged token to the
cells it covers.

    python -m model.evaluation.board_probe --checkpoint assets/checkpoints/demo --size 16
    python -m model.evaluation.board_probe --checkpoint assets/checkpoints/demo --size 8 --boards random

A 224-px picture gives G×G merged tokens (G = 8 for the demo: 14-px patches merged 2×2). On an 8×8 board one token
covers one cell, on a 16×16 board a 2×2 block of four (issue 39). This encodes `--train` + `--test` boards with the
encoder + merger (`model.encode_images`, no pooling) and fits one multinomial logistic regression per cell position
of a block (1 at 8×8, 4 at 16×16), from the token (standardised with the training tokens' mean and std) to that
cell's colour, on the training boards; it prints the held-out accuracy per position and overall, over the cells
that are neither white nor black ("marked", where the answers are), and what always answering the commonest
training colour of that position gets.

`--boards sketchworld` (default): the problem and sketch pictures of the families drawn on that board size (8×8:
connect, maze, fold, shift, sink, count; 16×16: connect16, maze16), from their own seed stream, the held-out boards
from later puzzles than the training ones. `--boards random`: every cell an independent uniform draw over the nine
palette colours — the hardest case for telling neighbouring cells apart.
"""

import argparse
import json
import random
import sys
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from model.core.checkpoint import CheckpointError, load_model
from model.evaluation.audit import block_cells
from model.sketchworld import DEFAULT_FAMILIES, generate_instance
from model.sketchworld.grid import COLOR_NAMES, IMAGE_PX, render

ENCODE_BATCH = 32  # pictures per encoder call
UNMARKED = {COLOR_NAMES.index("white"), COLOR_NAMES.index("black")}


def families_of_size(size: int) -> list[str]:
    """The default families whose boards are size×size (read off one generated puzzle of each)."""
    return [f for f in DEFAULT_FAMILIES if generate_instance(f, random.Random(0)).problem_grids[0].shape[0] == size]


def sketchworld_boards(size: int, count: int, seed: int) -> list[np.ndarray]:
    """`count` grids: the problem and sketch pictures of puzzles of the size's families, in order of generation."""
    families, grids, i = families_of_size(size), [], 0
    while len(grids) < count:
        for family in families:
            inst = generate_instance(family, random.Random(f"board-probe/{seed}/{family}/{i}"))
            grids.extend(inst.problem_grids + inst.reasoning_grids)
        i += 1
    return grids[:count]


def random_boards(size: int, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, len(COLOR_NAMES), size=(size, size)).astype(np.int8) for _ in range(count)]


@torch.no_grad()
def merged_tokens(model, grids: list[np.ndarray]) -> np.ndarray:
    """(N, G·G, D) the encoder + merger's tokens of the rendered grids, raster order."""
    parts = []
    for start in range(0, len(grids), ENCODE_BATCH):
        images = [render(g) for g in grids[start : start + ENCODE_BATCH]]
        parts.append(model.encode_images(*model.pixels(images)).float().cpu().numpy())
    return np.concatenate(parts)


def probe(tokens: np.ndarray, grids: list[np.ndarray], num_train: int, merged_grid: int, max_iter: int = 500) -> dict:
    """Held-out accuracy of one logistic regression per cell position of a token's block (see the module doc)."""
    size = grids[0].shape[0]
    blocks = block_cells(merged_grid * merged_grid, merged_grid, size)  # token k → its cells, raster order in block
    labels = np.array([[[g[blocks[k][p]] for p in range(len(blocks[0]))] for k in range(len(blocks))] for g in grids])
    train, test = tokens[:num_train].reshape(-1, tokens.shape[-1]), tokens[num_train:].reshape(-1, tokens.shape[-1])
    mean, std = train.mean(0), train.std(0) + 1e-6
    train, test = (train - mean) / std, (test - mean) / std
    y_train = labels[:num_train].reshape(-1, labels.shape[-1])  # (N·K, cells a token)
    y_test = labels[num_train:].reshape(-1, labels.shape[-1])
    positions, right, marked_right, marked = {}, 0, 0, 0
    for p in range(y_train.shape[1]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = LogisticRegression(max_iter=max_iter).fit(train, y_train[:, p])
        guess = clf.predict(test)
        hit = guess == y_test[:, p]
        is_marked = ~np.isin(y_test[:, p], list(UNMARKED))
        commonest = np.bincount(y_train[:, p]).argmax()
        positions[f"cell {p + 1} of {y_train.shape[1]}"] = {
            "accuracy": float(hit.mean()),
            "marked_accuracy": float(hit[is_marked].mean()) if is_marked.any() else float("nan"),
            "commonest_colour": float((y_test[:, p] == commonest).mean()),
        }
        right, marked_right, marked = right + hit.sum(), marked_right + hit[is_marked].sum(), marked + is_marked.sum()
    return {"board": size, "cells_a_token": y_train.shape[1], "train_boards": num_train,
            "test_boards": len(grids) - num_train, "accuracy": float(right / y_test.size),
            "marked_accuracy": float(marked_right / marked) if marked else float("nan"),
            "marked_cells": int(marked), "per_position": positions}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.evaluation.board_probe", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="assets/checkpoints/demo", help="checkpoint folder or preset name")
    parser.add_argument("--size", type=int, default=16, help="cells per board side (8 or 16)")
    parser.add_argument("--boards", choices=("sketchworld", "random"), default="sketchworld")
    parser.add_argument("--train", type=int, default=600, help="boards the probe is fitted on")
    parser.add_argument("--test", type=int, default=200, help="held-out boards it is scored on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the result as JSON here")
    args = parser.parse_args(argv)
    try:
        model = load_model(args.checkpoint).eval()
        grid = model.config.merged_grid
        if model.config.image_size != IMAGE_PX or args.size % grid or args.train < 1 or args.test < 1:
            raise ValueError(
                f"needs a {IMAGE_PX}-px checkpoint, --size a multiple of its {grid}×{grid} token grid "
                f"and positive --train/--test; got {model.config.image_size} px, --size {args.size}"
            )
        if args.boards == "sketchworld" and not families_of_size(args.size):
            raise ValueError(f"no sketch-world family is drawn on {args.size}×{args.size} boards")
    except (CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    make = sketchworld_boards if args.boards == "sketchworld" else random_boards
    grids = make(args.size, args.train + args.test, args.seed)
    result = probe(merged_tokens(model, grids), grids, args.train, grid)
    result |= {"checkpoint": args.checkpoint, "boards": args.boards}
    print(f"{args.checkpoint}, {args.boards} {args.size}×{args.size} boards ({result['cells_a_token']} cells a token):"
          f" held-out accuracy {100 * result['accuracy']:.2f} %, marked cells {100 * result['marked_accuracy']:.2f} %"
          f" of {result['marked_cells']}")  # fmt: skip
    for name, row in result["per_position"].items():
        print(f"  {name}: {100 * row['accuracy']:.2f} % (marked {100 * row['marked_accuracy']:.2f} %; commonest "
              f"colour {100 * row['commonest_colour']:.2f} %)")  # fmt: skip
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
