"""Where drawing fails: each sketch slot drawn teacher-forced, and what the state that draws it knows.

    python -m model.evaluation.drawing --checkpoint runs/demo/sft/checkpoint-001200/model --data data/sketchworld \
        --per-family 30 --out runs/exp/drawing.json

The audit reads back the sketches a model draws on its own (`auto`), where an error early in a sketch can spoil
every slot after it. This takes the errors apart, per family, on the validation split:

- `tf_cells_right`: each slot drawn by the head from the state of a teacher-forced pass (the true sketch before it),
  read back by the audit's cell probe (model/evaluation/audit.py); `tf_marked_right` the same over the cells that are
  not white (the marks the answer depends on). Far above the audit's `cells_right_drawn`: the sketch drifts on its
  own drawings. About equal: each slot is wrong by itself.
- `state_knows_slot`: a linear probe (multinomial logistic regression, half the sketches to fit, half to score) from
  the hidden state that draws slot k to the colour of sketch cell k. About equal to `tf_cells_right`: the head draws
  what the state knows, and the state is what lacks the cell.
- `state_knows_picture_next` / `state_knows_picture_own`: the same probe to the *problem picture's* cell k (the one
  slot k copies or moves) and cell k − 1 (the cell of the slot the state sits on). One picture per puzzle only.

Ground truth comes from the dense descriptions of the images (`reasoning_descriptions`, `problem_descriptions`).
Only K = G² (one latent per cell) is supported: every slot is one cell, so only boards of G×G cells are measured
(sketch-world's 8×8 families at K = 64; the 16×16 families, four cells a slot, are left out).
"""

import argparse
import json
import sys
import warnings
from collections import defaultdict

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from model.core import vision
from model.core.atomic import write_text
from model.core.checkpoint import CheckpointError, load_model
from model.data.batches import SFTDataset, collate
from model.data.encoding import encode_examples
from model.data.folders import load_rows
from model.data.warmup import parse_description
from model.data.zebra import load_examples
from model.evaluation.audit import CellProbe, sketch_grids

WHITE = "white"


def _linear_probe(features: np.ndarray, labels: np.ndarray) -> float:
    """Share right on the second half of a probe fitted on the first half; NaN when the first half has one label."""
    half = len(features) // 2
    if half == 0 or len(set(labels[:half])) < 2:
        return float("nan")
    with warnings.catch_warnings():  # a probe that has not converged in 300 iterations still answers the question
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(max_iter=300).fit(features[:half], labels[:half])
    return float(np.mean(clf.predict(features[half:]) == labels[half:]))


def _cells(grid: list[list[str]]) -> list[str]:
    return [colour for row in grid for colour in row]


@torch.no_grad()
def family_states(model, examples, steps: int = 5, seed: int = 0) -> dict:
    """Teacher-forced pass over the examples' interleaved traces: true latents, the drawing states and the head's
    draws, one (N, K, D) array each over the N sketches, with the sketches' grids (N lists of K colours)."""
    encoded, _ = encode_examples(model, examples, "interleaved")
    dataset = SFTDataset(encoded, visual="pixels", image_processor=model.image_processor,
                         image_size=model.config.image_size)  # fmt: skip
    batch = collate([dataset[i] for i in range(len(dataset))], model.tokenizer.pad_token_id)
    tokens = model.encode_images(batch.pop("sketch_pixel_values"), batch.pop("sketch_image_grid_thw"))
    K = model.latent_budget
    true = vision.pool_tokens(tokens, model.config.merged_grid, K)  # (N, K, D), the diffusion targets
    problem = dict(pixel_values=batch.get("pixel_values"), image_grid_thw=batch.get("image_grid_thw"))
    # the state each slot is drawn from: the position before it (sequential) or its query (parallel, first pass)
    states = model(batch["input_ids"], batch["attention_mask"], latents=true.flatten(0, 1), with_slot_states=True,
                   **problem).slot_states  # fmt: skip
    slots = model.latent_slots(batch["input_ids"])[2]
    generator = torch.Generator().manual_seed(seed)
    drawn = model.destandardize(
        model.head.sample(model.head.condition(states, slots), steps, generator=generator, solver="dpm++")
    )
    grids = [_cells(g) for ex in examples for g in sketch_grids(ex) if g is not None]
    pictures = [_cells(parse_description(ex.problem_descriptions[0])) if len(ex.problem_images) == 1 else None
                for ex in examples for g in sketch_grids(ex) if g is not None]  # fmt: skip
    shape = (-1, K, states.shape[-1])
    return dict(true=true.numpy(), states=states.view(shape).numpy(), drawn=drawn.view(shape).numpy(),
                grids=grids, pictures=pictures)  # fmt: skip


def drawing_report(model, examples_by_family: dict, probe: CellProbe, steps: int = 5) -> pd.DataFrame:
    """One row per family: teacher-forced read-back and the drawing state's probes (see the module docstring)."""
    out = []
    for family, examples in sorted(examples_by_family.items()):
        got = family_states(model, examples, steps)
        grids, K = got["grids"], model.latent_budget
        if len(grids) != len(got["drawn"]):
            raise ValueError(f"{family}: {len(got['drawn'])} sketches drawn but {len(grids)} described")
        read = [_cells(probe.read(lat)) for lat in got["drawn"]]
        right = np.array([[a == b for a, b in zip(r, g)] for r, g in zip(read, grids)])
        marked = np.array([[b != WHITE for b in g] for g in grids])
        states = got["states"].reshape(-1, got["states"].shape[-1])
        row = dict(
            family=family,
            sketches=len(grids),
            tf_cells_right=float(right.mean()),
            tf_marked_right=float(right[marked].mean()) if marked.any() else float("nan"),
            state_knows_slot=_linear_probe(states, np.array([c for g in grids for c in g])),
        )
        if all(p is not None for p in got["pictures"]):
            pictures = got["pictures"]
            own = np.array([p[k - 1] if k else "none" for p in pictures for k in range(K)])
            row["state_knows_picture_next"] = _linear_probe(states, np.array([c for p in pictures for c in p]))
            row["state_knows_picture_own"] = _linear_probe(states, own)
        out.append(row)
    return pd.DataFrame(out)


def pick_examples(data: str, split: str, per_family: int, fit_per_family: int, board: int | None = None):
    """(probe-fitting examples, examples to measure by family): the first `fit_per_family` sketch examples of each
    family fit the read-back probe, the next `per_family` are measured; with `board`, only examples whose sketches
    are all `board`×`board` (one cell a slot: sketch-world's 16×16 families are left out at K = 64)."""
    examples, _ = load_examples(load_rows(data, split))
    fit, measure = defaultdict(list), defaultdict(list)
    for ex in examples:
        grids = [g for g in sketch_grids(ex) if g is not None]
        if not grids or (board is not None and any(len(g) != board for g in grids)):
            continue
        if len(fit[ex.family]) < fit_per_family:
            fit[ex.family].append(ex)
        elif len(measure[ex.family]) < per_family:
            measure[ex.family].append(ex)
    return [ex for group in fit.values() for ex in group], dict(measure)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.evaluation.drawing", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", default="data/sketchworld")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--per-family", type=int, default=30, help="sketch puzzles measured per family")
    parser.add_argument("--fit-per-family", type=int, default=40, help="puzzles per family the read-back probe fits")
    parser.add_argument("--diffusion-steps", type=int, default=5, help="DPM-Solver++ steps of each draw")
    parser.add_argument("--out", help="write the table as JSON here")
    args = parser.parse_args(argv)
    try:
        model = load_model(args.checkpoint).eval()
        if model.head is None or model.latent_budget != model.config.merged_grid**2:
            raise ValueError(f"{args.checkpoint}: needs a latent head and K = {model.config.merged_grid**2}")
        board = model.config.merged_grid  # K = G²: one cell a slot on a G×G board
        fit, measure = pick_examples(args.data, args.split, args.per_family, args.fit_per_family, board)
        probe = CellProbe.fit(model, fit)
        if probe is None or not measure:
            raise ValueError(f"{args.data} ({args.split}) has no described sketches")
    except (CheckpointError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = drawing_report(model, measure, probe, args.diffusion_steps)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        write_text(args.out, json.dumps(table.to_dict(orient="records"), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
