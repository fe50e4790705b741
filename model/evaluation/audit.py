"""Sketch quality for the audit: cells read back from sketches by a probe, how far sketches collapse, and the
other puzzles' sketches the shuffled-latents mode inserts.

    probe = CellProbe.fit(model, validation_examples)            # logistic regression on true sketch targets
    probe.cell_accuracy(latents, grids)                           # share of cells read back right
    probes = BoardProbes.fit(model, validation_examples)         # one probe per board size (8×8, 16×16)
    spread(sketches)                                              # 1 − mean pairwise cosine, standardised latents

The probe reads a sketch the way the model's space allows: each of the K latent tokens pools a block of cells
(one cell at K = G², 2 at K = 32 on an 8×8 grid, 4 at K = 64 on a 16×16 board, …); the probe has one multinomial
logistic regression per cell of a block, trained on the true targets (the frozen encoder's pooled tokens of the true
reasoning images) of examples that are not evaluated. Read back from the true targets it gives the ceiling of what
the target space keeps; read back from generated sketches it says how much of the drawing is right. Ground truth
comes from the dense descriptions of the reasoning images (`reasoning_descriptions`); examples without them are left
out. Boards of different sizes (sketch-world's 8×8 and 16×16 families) get one probe each (`BoardProbes`), and a
family's or the overall share is the mean over sketches of the share of their cells read back right, so a 16×16
sketch weighs as much as an 8×8 one.

Spread is 1 − the mean cosine similarity between every pair of sketches of one family, each sketch flattened to a
(K·D) vector of standardised latents (the checkpoint's per-dimension mean and std), so a head that draws the same
sketch whatever the puzzle scores 0 and independent sketches score about 1.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression

from model.core import vision
from model.data.folders import load_rows, select_rows
from model.data.targets import true_sketches
from model.data.warmup import parse_description
from model.data.zebra import Sketch, load_examples

OVERALL = "overall"


def sketch_grids(example) -> list[list[list[str]] | None]:
    """The true cell colours of each sketch of an example, in trace order (None where no description)."""
    grids = [parse_description(d) if d else None for d in example.reasoning_descriptions]
    grids += [None] * (len(example.reasoning_images) - len(grids))
    return [grids[s.image_index] for s in example.segments if isinstance(s, Sketch)]


def block_cells(latent_budget: int, grid: int, cells: int | None = None) -> list[list[tuple[int, int]]]:
    """For each of the K pooled tokens of a `grid`×`grid` token grid, the (row, column) cells of a `cells`×`cells`
    board (default: one cell per token) it covers, in raster order."""
    h, w = vision.budget_layout(latent_budget, grid)
    cells = cells or grid
    if cells % h or cells % w:
        raise ValueError(f"a {cells}×{cells} board does not split into the {h}×{w} layout of K={latent_budget}")
    bh, bw = cells // h, cells // w
    return [[(i * bh + a, j * bw + b) for a in range(bh) for b in range(bw)] for i in range(h) for j in range(w)]


@dataclass
class CellProbe:
    classifiers: list  # one per cell position inside a block
    blocks: list[list[tuple[int, int]]]
    mean: np.ndarray  # (D,) standardisation of the features
    std: np.ndarray
    train_sketches: int

    @classmethod
    def fit(cls, model, examples, max_iter: int = 300, board: int | None = None) -> "CellProbe | None":
        """Fit on the true targets of the `board`×`board` sketches of `examples` (default: the size of the first
        described one); None when there are none, or when K's layout does not split such a board."""
        grids, images = [], []
        for ex in examples:
            for grid, image in zip(_image_grids(ex), ex.reasoning_images):
                if grid is not None and len(grid) == (board or len(grid)):
                    board = len(grid)
                    grids.append(grid)
                    images.append(image)
        if not grids:
            return None
        targets = _targets(model, images)  # (N, K, D)
        try:
            blocks = block_cells(model.latent_budget, model.config.merged_grid, len(grids[0]))
        except ValueError:  # the model's token grid does not line up with the board (e.g. the tiny preset)
            return None
        mean = model.latent_mean.float().cpu().numpy()
        std = model.latent_std.float().cpu().numpy()
        features = ((targets - mean) / std).reshape(-1, targets.shape[-1])  # (N·K, D)
        classifiers = []
        for cell in range(len(blocks[0])):
            labels = np.array([g[blocks[k][cell][0]][blocks[k][cell][1]] for g in grids for k in range(len(blocks))])
            if len(set(labels)) == 1:
                classifiers.append(labels[0])  # one colour only: a constant
                continue
            classifiers.append(LogisticRegression(max_iter=max_iter, C=1.0).fit(features, labels))
        return cls(classifiers, blocks, mean, std, len(grids))

    def read(self, latents: np.ndarray) -> list[list[str]]:
        """(K, D) latents in embedding space → the grid of colour names read back."""
        features = (latents - self.mean) / self.std
        out = [[""] * self.board for _ in range(self.board)]
        for cell, classifier in enumerate(self.classifiers):
            names = [classifier] * len(features) if isinstance(classifier, str) else classifier.predict(features)
            for k, name in enumerate(names):
                r, c = self.blocks[k][cell]
                out[r][c] = str(name)
        return out

    @property
    def board(self) -> int:
        return max(r for block in self.blocks for r, _ in block) + 1

    def cell_accuracy(self, sketches: list[np.ndarray], grids: list[list[list[str]]]) -> float:
        """Mean over pairs of (K, D) sketch and true grid of the share of its cells read back right."""
        shares = [self.cells_right(latents, grid) for latents, grid in zip(sketches, grids)]
        return float(np.mean(shares)) if shares else float("nan")

    def cells_right(self, latents: np.ndarray, grid: list[list[str]]) -> float:
        """Share of one sketch's cells read back right."""
        guess = self.read(np.asarray(latents, dtype=np.float32))
        return float(np.mean([guess[r][c] == grid[r][c] for r in range(len(grid)) for c in range(len(grid[0]))]))


@dataclass
class BoardProbes:
    """One CellProbe per board size (sketch-world's 8×8 and 16×16 boards); sketches of a size without one (its
    board does not split into K's layout) are left out of the shares."""

    probes: dict[int, CellProbe]

    @classmethod
    def fit(cls, model, examples, max_iter: int = 300) -> "BoardProbes | None":
        sizes = sorted({len(g) for ex in examples for g in _image_grids(ex) if g is not None})
        probes = {size: CellProbe.fit(model, examples, max_iter, board=size) for size in sizes}
        probes = {size: probe for size, probe in probes.items() if probe is not None}
        return cls(probes) if probes else None

    def cell_accuracy(self, sketches: list[np.ndarray], grids: list[list[list[str]]]) -> float:
        """Mean over sketches of the share of cells right, each read by the probe of its board's size."""
        shares = [self.probes[len(grid)].cells_right(latents, grid)
                  for latents, grid in zip(sketches, grids) if len(grid) in self.probes]  # fmt: skip
        return float(np.mean(shares)) if shares else float("nan")


def _image_grids(example) -> list:
    grids = [parse_description(d) if d else None for d in example.reasoning_descriptions]
    return grids + [None] * (len(example.reasoning_images) - len(grids))


def _targets(model, images, batch_size: int = 64) -> np.ndarray:
    parts = [model.sketch_targets(images[i : i + batch_size]).float().cpu().numpy()
             for i in range(0, len(images), batch_size)]  # fmt: skip
    return np.concatenate(parts)


def spread(sketches: list[np.ndarray], mean: np.ndarray, std: np.ndarray) -> float:
    """1 − mean pairwise cosine of flattened standardised sketches; NaN for fewer than two."""
    if len(sketches) < 2:
        return float("nan")
    flat = np.stack([((np.asarray(s, dtype=np.float64) - mean) / std).ravel() for s in sketches])
    flat /= np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)
    cosine = flat @ flat.T
    n = len(flat)
    return float(1.0 - (cosine.sum() - n) / (n * (n - 1)))


def shuffled_sketches(examples, traces: dict) -> list:
    """Per example, the sketches (m, K, D) that `auto` drew for the next example of the same family that drew any
    (in order, wrapping around), so each puzzle gets another puzzle's own generated sketches; None when its family
    has no other example with sketches."""
    by_family: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        by_family.setdefault(ex.family, []).append(i)
    drawn = [[s.latents for s in traces["auto", ex.id].sketches] for ex in examples]
    out: list = [None] * len(examples)
    for members in by_family.values():
        for rank, i in enumerate(members):
            for step in range(1, len(members)):
                j = members[(rank + step) % len(members)]
                if drawn[j]:
                    out[i] = torch.as_tensor(np.stack(drawn[j]))
                    break
    return out


def sketch_quality(model, examples, traces: dict, probe) -> pd.DataFrame:
    """Per family (and overall): cells read back right by `probe` from auto's sketches and from the true targets,
    and the spread (1 − mean pairwise cosine) of both. Pairs a drawn sketch with the true one of the same index."""
    mean, std = model.latent_mean.float().cpu().numpy(), model.latent_std.float().cpu().numpy()
    rows = []
    families = sorted({ex.family for ex in examples})
    for family in families + [OVERALL]:
        members = [ex for ex in examples if family in (OVERALL, ex.family)]
        truths = true_sketches(model, members)
        drawn, true, grids_drawn, grids_true = [], [], [], []
        for ex, target in zip(members, truths):
            grids = sketch_grids(ex)
            trace = traces.get(("auto", ex.id))
            generated = [s.latents for s in trace.sketches] if trace is not None else []
            for k, grid in enumerate(grids):
                if grid is None:
                    continue
                true.append(target[k].numpy())
                grids_true.append(grid)
                if k < len(generated):
                    drawn.append(generated[k])
                    grids_drawn.append(grid)
        if not true:
            continue
        spread_true, spread_drawn = spread(true, mean, std), spread(drawn, mean, std)
        rows.append(
            dict(
                family=family,
                sketches=len(true),
                drawn=len(drawn),
                cells_right_drawn=probe.cell_accuracy(drawn, grids_drawn) if probe and drawn else float("nan"),
                cells_right_true=probe.cell_accuracy(true, grids_true) if probe else float("nan"),
                spread_drawn=spread_drawn,
                spread_true=spread_true,
                spread_ratio=spread_drawn / spread_true if spread_true > 0 else float("nan"),
                cosine_drawn=1 - spread_drawn,
                cosine_true=1 - spread_true,
            )
        )
    return pd.DataFrame(rows)


def probe_quality(model, data, split: str, limit: int, examples, traces: dict, rows_kw=None) -> pd.DataFrame | None:
    """Fit the read-back probe on `split` of `data` (when it exists) and measure auto's sketches with it."""
    try:
        rows = load_rows(data, split, **(rows_kw or {}))
    except ValueError as err:
        print(f"note: sketch quality is not measured ({err})")
        return None
    probe_examples, _ = load_examples(select_rows(rows, limit))
    probe = BoardProbes.fit(model, probe_examples)
    if probe is None:
        print(f"note: the {split} split has no described sketches; sketch quality is not measured")
        return None
    return sketch_quality(model, examples, traces, probe)
