"""Tests for reading boards of two sizes: the audit's per-size read-back probes (model/evaluation/audit.py
BoardProbes), the encoder's linear board probe (model/evaluation/board_probe.py) and the row-length table
(model/evaluation/row_lengths.py).

    python -m pytest -q tests/test_board_probe.py
"""

from types import SimpleNamespace

import numpy as np
import torch

from model.data.zebra import load_examples
from model.evaluation.audit import BoardProbes, CellProbe, sketch_grids
from model.evaluation.board_probe import probe, random_boards, sketchworld_boards
from model.evaluation.row_lengths import measure, table
from model.sketchworld import load_split, write_dataset
from model.sketchworld.grid import COLOR_NAMES, read_grid


class FakeEncoder:
    """Stands in for a model: K = 4 tokens, each the one-hot colours of its quarter of the picture sampled on a
    16×16 grid (so an 8×8 board's cell is 2×2 samples), which a linear probe can read exactly."""

    latent_budget = 4
    config = SimpleNamespace(merged_grid=2)
    latent_mean = torch.zeros(64 * len(COLOR_NAMES))
    latent_std = torch.ones(64 * len(COLOR_NAMES))

    def sketch_targets(self, images):
        out = []
        for image in images:
            samples = read_grid(image, 16)
            onehot = np.eye(len(COLOR_NAMES), dtype=np.float32)[samples]  # (16, 16, C)
            blocks = [onehot[r : r + 8, c : c + 8].reshape(-1) for r in (0, 8) for c in (0, 8)]
            out.append(np.stack(blocks))
        return torch.from_numpy(np.stack(out))  # (N, 4, 64·C)


def test_board_probes_read_each_board_size_with_its_own_probe(tmp_path):
    write_dataset(str(tmp_path), per_family=12, seed=0, families=["connect", "connect16"], splits={"train": 1.0})
    examples, _ = load_examples(load_split(str(tmp_path), "train"))
    model = FakeEncoder()
    probes = BoardProbes.fit(model, examples)
    assert sorted(probes.probes) == [8, 16]
    assert len(probes.probes[8].classifiers) == 16 and len(probes.probes[16].classifiers) == 64  # cells a token
    assert CellProbe.fit(model, examples, board=16).board == 16
    sketches = [(model.sketch_targets([ex.reasoning_images[0]])[0].numpy(), sketch_grids(ex)[0]) for ex in examples]
    latents, grids = zip(*sketches)
    assert probes.cell_accuracy(list(latents), list(grids)) > 0.99  # fitted on these: the ceiling
    for size in (8, 16):  # each grid read from another puzzle's sketch of its size: far from it
        zs, gs = zip(*[(z, g) for z, g in sketches if len(g) == size])
        assert probes.cell_accuracy(list(zs[1:] + zs[:1]), list(gs)) < 0.9
    assert np.isnan(BoardProbes({8: probes.probes[8]}).cell_accuracy([latents[-1]], [grids[-1]]))  # no 16×16 probe


def test_linear_board_probe_on_separable_and_on_uninformative_tokens():
    grids = random_boards(16, 120, seed=0)
    # tokens: each of the 8×8 tokens the one-hot colours of its 2×2 cells (separable), or noise
    onehot = np.eye(len(COLOR_NAMES), dtype=np.float32)
    tokens = np.stack([np.stack([np.concatenate([onehot[g[2 * i + a, 2 * j + b]] for a in (0, 1) for b in (0, 1)])
                                 for i in range(8) for j in range(8)]) for g in grids])  # fmt: skip
    result = probe(tokens, grids, 90, merged_grid=8)
    assert result["cells_a_token"] == 4 and result["test_boards"] == 30
    assert result["accuracy"] == 1.0 and set(result["per_position"]) == {f"cell {p} of 4" for p in (1, 2, 3, 4)}
    noise = probe(np.random.default_rng(1).standard_normal(tokens.shape).astype(np.float32), grids, 90, 8)
    assert noise["accuracy"] < 0.3  # nine colours: about chance
    boards = sketchworld_boards(16, 6, seed=0)
    assert len(boards) == 6 and all(b.shape == (16, 16) for b in boards)
    assert all(b.shape == (8, 8) for b in sketchworld_boards(8, 4, seed=0))


def test_row_lengths_table(tiny_model):
    lengths = measure(tiny_model, ["connect", "connect16"], per_family=2, seed=0)
    small, big = lengths["connect"][0], lengths["connect16"][0]
    assert big["description"] > 3 * small["description"] and big["text-only trace"] > 2 * small["text-only trace"]
    assert abs(big["interleaved trace"] - small["interleaved trace"]) <= 2  # a sketch: K + 2 positions at any size
    assert big["question"] == small["question"]
    text = table(lengths, max_length=100)
    assert text.count("\n") == 3 and "| connect16 |" in text and "text-only" in text.splitlines()[-1]
    assert measure(tiny_model, ["connect16"], per_family=2, seed=0)["connect16"] == lengths["connect16"]
