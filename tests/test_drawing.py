"""The drawing diagnostic (model/evaluation/drawing.py): its probes against independent computations, the
teacher-forced states against the model's own forward, and one error line for a model it cannot measure."""

import json

import numpy as np
import pytest
import torch

from model.core.checkpoint import build_preset, save_pretrained
from model.evaluation import drawing
from model.evaluation.audit import sketch_grids
from model.sketchworld import write_dataset


def test_linear_probe_separable_and_constant():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 5))
    labels = np.where(features[:, 0] > 0, "red", "white")
    assert drawing._linear_probe(features, labels) > 0.95  # one direction separates the colours
    assert drawing._linear_probe(features, rng.permutation(labels)) < 0.7  # labels unrelated to the features
    assert np.isnan(drawing._linear_probe(features, np.array(["white"] * 400)))


@pytest.fixture(scope="module")
def cell_model():
    """A tiny model whose token grid is the 8×8 board (112 px), one latent per cell, latent stats fitted."""
    return build_preset("tiny", seed=1, image_size=112, latent_budget=64).eval()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sw")
    write_dataset(str(folder), per_family=10, seed=0, families=["connect", "maze"])
    return folder


def test_states_per_sketch_slot_and_batching(cell_model, data):
    fit, measure = drawing.pick_examples(str(data), "train", per_family=2, fit_per_family=3)
    assert {ex.family for ex in fit} == {"connect", "maze"} and all(len(v) == 2 for v in measure.values())
    assert not {ex.id for ex in fit} & {ex.id for v in measure.values() for ex in v}
    examples = measure["connect"]
    got = drawing.family_states(cell_model, examples)
    n = sum(g is not None for ex in examples for g in sketch_grids(ex))
    assert got["states"].shape == (n, 64, cell_model.config.hidden_size) and len(got["grids"]) == n
    # batching and padding change nothing: the first puzzle alone gives its states and targets again
    single = drawing.family_states(cell_model, examples[:1])
    np.testing.assert_allclose(single["states"][0], got["states"][0], atol=1e-4)
    np.testing.assert_allclose(single["true"][0], got["true"][0], atol=1e-5)
    assert got["pictures"][0] is not None and len(got["pictures"][0]) == 64


def test_cli_refuses_a_model_without_one_latent_per_cell(tmp_path, data, capsys):
    folder = save_pretrained(build_preset("tiny", seed=0), tmp_path / "m")  # K = 4 on a 4×4 token grid
    assert drawing.main(["--checkpoint", str(folder), "--data", str(data), "--split", "train"]) == 2
    assert "needs a latent head and K = 16" in capsys.readouterr().err


def test_cli_writes_one_row_per_family(tmp_path, cell_model, data):
    with torch.no_grad():
        cell_model.fit_latent_stats(torch.randn(64, cell_model.config.hidden_size))
    folder = save_pretrained(cell_model, tmp_path / "m")
    out = tmp_path / "drawing.json"
    args = ["--checkpoint", str(folder), "--data", str(data), "--split", "train", "--per-family", "2"]
    assert drawing.main(args + ["--fit-per-family", "4", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["family"] for r in rows] == ["connect", "maze"]
    for r in rows:
        assert 0 <= r["tf_cells_right"] <= 1 and r["sketches"] >= 2
