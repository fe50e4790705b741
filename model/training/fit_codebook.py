"""Fitting a checkpoint's sketch codebook (model/core/sketch_codebook.py) on the true sketches of a training split.

    python -m model.codebook --checkpoint assets/checkpoints/demo --data data/sketchworld [--per-family 200]

Reads the first `--per-family` described puzzles of each family of `--split` (default train), sends every described
reasoning image through the checkpoint's frozen encoder and pooling (the sketch targets), labels each slot with the
colour of the board cell it covers (from the image's dense description), and writes one centroid per (slot, colour)
to CHECKPOINT/sketch_codebook.safetensors, atomically. Then it reports how often the nearest centroid of a true
target of `--check-split` (default validation) has the right colour: the ceiling of what snapping can keep.

Only layouts with one latent per board cell (K = G², e.g. K = 64 on sketch-world's 8×8 boards) are supported: a
slot covering several cells would need a state per colour combination.
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


def slot_cells(model, board: int) -> list[tuple[int, int]]:
    """The one board cell each of the model's K slots covers; ValueError when a slot covers more or fewer."""
    try:
        blocks = block_cells(model.latent_budget, model.config.merged_grid, board)
    except ValueError as err:
        raise ValueError(f"a codebook needs one latent per board cell: {err}") from err
    if any(len(block) != 1 for block in blocks):
        raise ValueError(
            f"a codebook needs one latent per board cell: K={model.latent_budget} on a {board}×{board} board covers "
            f"{len(blocks[0])} cells a slot"
        )
    return [block[0] for block in blocks]


@torch.no_grad()
def sketch_targets(model, images, batch_size: int = 64, progress: bool = True) -> torch.Tensor:
    """(N, K, D) true sketch targets of `images`, in batches."""
    parts = []
    for start in tqdm(range(0, len(images), batch_size), desc="targets", unit="batch", disable=not progress):
        parts.append(model.sketch_targets(images[start : start + batch_size]).float().cpu())
    return torch.cat(parts)


def slot_labels(grids, cells, names: list[str]) -> np.ndarray:
    """(N, K) the index in `names` of each slot's cell colour, −1 for a colour not in `names`."""
    index = {name: i for i, name in enumerate(names)}
    return np.array([[index.get(grid[r][c], -1) for r, c in cells] for grid in grids], dtype=np.int64)


def fit_codebook(model, examples, min_count: int = 3, progress: bool = True) -> SketchCodebook:
    """The codebook of `model` from the described sketches of `examples`."""
    images, grids = described_sketches(examples)
    if not grids:
        raise ValueError("no described sketches in these examples: a codebook needs dense descriptions")
    cells = slot_cells(model, len(grids[0]))
    names = sorted({colour for grid in grids for row in grid for colour in row})
    targets = sketch_targets(model, images, progress=progress)
    return SketchCodebook.fit(targets, slot_labels(grids, cells, names), model.latent_mean.float().cpu(),
                              model.latent_std.float().cpu(), names, min_count=min_count)  # fmt: skip


def nearest_accuracy(model, codebook: SketchCodebook, examples, progress: bool = True) -> float:
    """Share of slots of true targets whose nearest centroid has the slot's true colour (NaN with none)."""
    images, grids = described_sketches(examples)
    if not grids:
        return float("nan")
    cells = slot_cells(model, len(grids[0]))
    targets = sketch_targets(model, images, progress=progress)  # (N, K, D)
    labels = torch.as_tensor(slot_labels(grids, cells, codebook.labels))
    slots = torch.arange(codebook.num_latents).repeat(len(targets))
    picked = codebook.nearest(targets.reshape(-1, codebook.dim), slots).view(labels.shape)
    return float((picked == labels).float().mean())


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
        print(f"wrote {path}: K={codebook.num_latents}, {int(codebook.present.sum())} centroids over "
              f"{len(codebook.labels)} colours")  # fmt: skip
        if args.check_split:
            check = pick_per_family(args.data, args.check_split, args.per_family)
            accuracy = nearest_accuracy(model, codebook, check)
            print(f"nearest centroid of a true {args.check_split} target has its colour: {100 * accuracy:.2f} %")
    except (CheckpointError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
