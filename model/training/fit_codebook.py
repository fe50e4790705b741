"""Fitting a checkpoint's sketch codebook (model/core/sketch_codebook.py) on the true sketches of a training split.

    python -m model.codebook --checkpoint assets/checkpoints/demo --data data/sketchworld [--per-family 200]

Reads the first `--per-family` described puzzles of each family of `--split` (default train), sends every described
reasoning image through the checkpoint's frozen encoder and pooling (the sketch targets), labels each slot with the
state of the board cells it covers (from the image's dense description), and writes one centroid per (slot, state)
to CHECKPOINT/sketch_codebook.safetensors, atomically. Then it reports how often the nearest centroid of a true
target of `--check-split` (default validation) has the right state, per board size: the ceiling of what snapping
can keep.

Boards of several sizes mix (sketch-world v6: 8×8 and 16×16 boards, both 224 px): each sketch's slots are labelled
by its own board's cells. A slot covering one cell is labelled by that cell's colour; a slot covering a 2×2 block
(a 16×16 board at K = 64) by the block's pattern, its four colours in raster order joined by "+" — or by the one
colour when all four are the same, since a uniform block of four 14-px cells is the very 28-px patch of one cell of
an 8×8 board (no grid lines: model/sketchworld/grid.py). A slot covering more cells (K < 64, say) raises: the
patterns grow too many to be seen a few times each. States no slot sees `--min-count` times get no centroid and are
left out of the file.
"""

import argparse
import sys
from collections import defaultdict

import numpy as np
import torch
from tqdm.auto import tqdm

from model.core.checkpoint import CheckpointError, load_pretrained
from model.core.sketch_codebook import CODEBOOK_NAME, SketchCodebook, save_codebook
from model.data.folders import load_rows
from model.data.warmup import parse_description
from model.data.zebra import load_examples
from model.evaluation.audit import block_cells


def described_sketches(examples) -> tuple[list, list]:
    """(images, grids): every reasoning image that has a dense description, with its cell colours."""
    images, grids = [], []
    for ex in examples:
        for image, description in zip(ex.reasoning_images, ex.reasoning_descriptions):
            grid = parse_description(description) if description else None
            if grid is not None:
                images.append(image)
                grids.append(grid)
    return images, grids


MAX_CELLS_PER_SLOT = 4  # a 2×2 block: a 16×16 board at K = 64


def slot_blocks(model, board: int) -> list[list[tuple[int, int]]]:
    """The board cells each of the model's K slots covers on a `board`×`board` board (raster order); ValueError when
    K's layout does not split the board or a slot covers more than MAX_CELLS_PER_SLOT cells."""
    try:
        blocks = block_cells(model.latent_budget, model.config.merged_grid, board)
    except ValueError as err:
        raise ValueError(f"a codebook needs whole board cells in every slot: {err}") from err
    if len(blocks[0]) > MAX_CELLS_PER_SLOT:
        raise ValueError(f"a codebook needs at most {MAX_CELLS_PER_SLOT} board cells a slot: K={model.latent_budget} "
                         f"on a {board}×{board} board covers {len(blocks[0])}")  # fmt: skip
    return blocks


def slot_label(grid, block: list[tuple[int, int]]) -> str:
    """The state of the cells a slot covers: their colour when they all have one, else their colours joined by "+"."""
    colours = [grid[r][c] for r, c in block]
    return colours[0] if len(set(colours)) == 1 else "+".join(colours)


def sketch_labels(model, grids) -> list[list[str]]:
    """(N, K) the state of each slot of each sketch, every sketch by its own board size."""
    blocks = {}
    out = []
    for grid in grids:
        if len(grid) not in blocks:
            blocks[len(grid)] = slot_blocks(model, len(grid))
        out.append([slot_label(grid, block) for block in blocks[len(grid)]])
    return out


@torch.no_grad()
def sketch_targets(model, images, batch_size: int = 64, progress: bool = True) -> torch.Tensor:
    """(N, K, D) true sketch targets of `images`, in batches."""
    parts = []
    for start in tqdm(range(0, len(images), batch_size), desc="targets", unit="batch", disable=not progress):
        parts.append(model.sketch_targets(images[start : start + batch_size]).float().cpu())
    return torch.cat(parts)


def slot_labels(labels: list[list[str]], names: list[str]) -> np.ndarray:
    """(N, K) the index in `names` of each slot's state, −1 for a state not in `names`."""
    index = {name: i for i, name in enumerate(names)}
    return np.array([[index.get(label, -1) for label in row] for row in labels], dtype=np.int64)


def fit_codebook(model, examples, min_count: int = 3, progress: bool = True) -> SketchCodebook:
    """The codebook of `model` from the described sketches of `examples` (of any board sizes its K splits)."""
    images, grids = described_sketches(examples)
    if not grids:
        raise ValueError("no described sketches in these examples: a codebook needs dense descriptions")
    labels = sketch_labels(model, grids)
    names = sorted({label for row in labels for label in row})
    targets = sketch_targets(model, images, progress=progress)
    book = SketchCodebook.fit(targets, slot_labels(labels, names), model.latent_mean.float().cpu(),
                              model.latent_std.float().cpu(), names, min_count=min_count)  # fmt: skip
    seen = torch.nonzero(book.present.any(dim=0)).flatten()  # states with a centroid in some slot: the file is K×C×D
    return SketchCodebook(book.centroids[:, seen], book.present[:, seen], book.mean, book.std,
                          [names[i] for i in seen.tolist()])  # fmt: skip


def nearest_accuracy(model, codebook: SketchCodebook, examples, progress: bool = True) -> dict[str, float]:
    """Share of slots of true targets whose nearest centroid has the slot's true state, overall and per board size
    ("8×8", "16×16"); a state the codebook lacks counts as missed. {} without described sketches."""
    images, grids = described_sketches(examples)
    if not grids:
        return {}
    labels = torch.as_tensor(slot_labels(sketch_labels(model, grids), codebook.labels))  # (N, K)
    targets = sketch_targets(model, images, progress=progress)  # (N, K, D)
    slots = torch.arange(codebook.num_latents).repeat(len(targets))
    picked = codebook.nearest(targets.reshape(-1, codebook.dim), slots).view(labels.shape)
    right = (picked == labels).float().mean(dim=1)  # (N,) per sketch
    sizes = torch.tensor([len(grid) for grid in grids])
    out = {"overall": float(right.mean())}
    for size in sorted(set(sizes.tolist())):
        out[f"{size}×{size}"] = float(right[sizes == size].mean())
    return out


def pick_per_family(data: str, split: str, per_family: int) -> list:
    """The first `per_family` examples of each family that have a described sketch."""
    examples, _ = load_examples(load_rows(data, split))
    kept = defaultdict(list)
    for ex in examples:
        if len(kept[ex.family]) < per_family and any(ex.reasoning_descriptions):
            kept[ex.family].append(ex)
    return [ex for group in kept.values() for ex in group]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.codebook", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a checkpoint folder; the codebook is written into it")
    parser.add_argument("--data", required=True, help="a data folder with dense descriptions (sketch-world)")
    parser.add_argument("--split", default="train", help="the split the centroids are fitted on")
    parser.add_argument("--per-family", type=int, default=200, help="described puzzles per family to fit on")
    parser.add_argument("--min-count", type=int, default=3, help="fewest sightings of a (slot, colour) for a centroid")
    parser.add_argument("--check-split", default="validation", help="split for the nearest-centroid check ('' = none)")
    args = parser.parse_args(argv)
    if args.per_family < 1:
        parser.error(f"--per-family must be >= 1, got {args.per_family}")
    if args.min_count < 1:
        parser.error(f"--min-count must be >= 1, got {args.min_count}")
    try:
        model = load_pretrained(args.checkpoint, shown=args.checkpoint).eval()
        codebook = fit_codebook(model, pick_per_family(args.data, args.split, args.per_family), args.min_count)
        path = save_codebook(codebook, f"{args.checkpoint}/{CODEBOOK_NAME}")
        patterns = sum("+" in label for label in codebook.labels)
        print(f"wrote {path}: K={codebook.num_latents}, {int(codebook.present.sum())} centroids over "
              f"{len(codebook.labels)} states ({patterns} of them 2×2 patterns)")  # fmt: skip
        if args.check_split:
            check = pick_per_family(args.data, args.check_split, args.per_family)
            accuracy = nearest_accuracy(model, codebook, check)
            shares = ", ".join(f"{board} {100 * share:.2f} %" for board, share in accuracy.items())
            print(f"nearest centroid of a true {args.check_split} target has its state: {shares}")
    except (CheckpointError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
