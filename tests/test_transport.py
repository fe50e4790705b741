"""Carrying a sweep grid off a size-capped machine and back (pipeline/transport.py), on tiny models."""

import dataclasses
import json
import tarfile

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from model.core.checkpoint import build_preset, load_pretrained, save_pretrained
from pipeline.layout import PROFILES, Runs, SweepPoint
from pipeline.transport import VISION, pack, unpack

POINTS = [SweepPoint(16, 1.0), SweepPoint(64, 1.0, "regression")]


@pytest.fixture
def grid(tmp_path):
    """A run with a stage-0 base and two sweep points: the first finished both stages of its chain (and was
    evaluated at the second), the second only its first stage."""
    profile = dataclasses.replace(PROFILES["quick"], sweep=POINTS, sweep_passes=1)
    runs = Runs(profile, root=tmp_path)
    torch.manual_seed(0)
    base = build_preset("tiny")
    save_pretrained(base, runs.final("warmup"))
    for i, point in enumerate(POINTS):
        stages = runs.sweep_stages(point)
        for stage in stages if i == 0 else stages[:1]:
            model = load_pretrained(runs.final("warmup"))
            with torch.no_grad():  # training changes everything but the frozen encoder
                for name, param in model.named_parameters():
                    if not name.startswith(VISION):
                        param.add_(torch.randn_like(param))
            save_pretrained(model, runs.final(stage))
    evaluated = runs.final(runs.sweep_stages(POINTS[0])[1])
    eval_dir = runs.eval_dir(f"sweep-{POINTS[0].name}")
    eval_dir.mkdir(parents=True)
    (eval_dir / "results.json").write_text(json.dumps({"config": {"checkpoint": str(evaluated)}, "summary": []}))
    pd.DataFrame({"mode": ["auto"], "accuracy": [0.5]}).to_parquet(eval_dir / "summary.parquet")
    runs.timings.write_text(json.dumps({"sweep/k16-l1": 12.0}))
    return runs


def test_pack_takes_the_depth_every_point_finished_and_unpack_rebuilds_it(grid, tmp_path):
    runs = grid
    tars = pack(runs, tmp_path / "out")
    assert sorted(p.name for p in tars) == [f"sweep-{p.name}.tar" for p in POINTS]
    with tarfile.open(tars[0]) as tar:
        manifest = json.loads(tar.extractfile("transport.json").read())
        packed = set(tar.getnames())
    # the second point finished only stage 1, so both ship at stage 1: the first point's evaluation (of its
    # refine pass) is not of the packed model and stays behind
    assert manifest["stage"] == f"sweep/{POINTS[0].name}" and manifest["depth"] == 1 and not manifest["evaluated"]
    assert "eval/results.json" not in packed
    originals = {p.name: load_file(str(runs.final(f"sweep/{p.name}") / "model.safetensors")) for p in POINTS}
    base = load_file(str(runs.final("warmup") / "model.safetensors"))
    for point in POINTS:
        folder = runs.final(f"sweep/{point.name}")
        for f in folder.iterdir():
            f.unlink()
    runs.timings.unlink()
    unpack(runs, tars)
    for point in POINTS:
        rebuilt = load_file(str(runs.final(f"sweep/{point.name}") / "model.safetensors"))
        assert set(rebuilt) == set(originals[point.name])
        for name, tensor in rebuilt.items():
            source = base[name] if name.startswith(VISION) else originals[point.name][name]
            assert tensor.dtype == torch.float16 and torch.equal(tensor, source.half()), name
        load_pretrained(runs.final(f"sweep/{point.name}"))  # loads as a model
    assert json.loads(runs.timings.read_text()) == {"sweep/k16-l1": 12.0}


def test_an_evaluation_of_the_packed_model_travels_with_it(grid, tmp_path):
    runs = grid
    second = runs.sweep_stages(POINTS[1])[1]
    save_pretrained(load_pretrained(runs.final(f"sweep/{POINTS[1].name}")), runs.final(second))
    tars = pack(runs, tmp_path / "out")
    unpacked = Runs(runs.profile, root=tmp_path / "here")
    save_pretrained(load_pretrained(runs.final("warmup")), unpacked.final("warmup"))
    unpack(unpacked, tars)
    results = json.loads(unpacked.eval_dir(f"sweep-{POINTS[0].name}").joinpath("results.json").read_text())
    assert results["config"]["checkpoint"] == str(unpacked.final(runs.sweep_stages(POINTS[0])[1]))
    summary = pd.read_parquet(unpacked.eval_dir(f"sweep-{POINTS[0].name}") / "summary.parquet")
    assert summary["accuracy"].tolist() == [0.5]
    assert not unpacked.eval_dir(f"sweep-{POINTS[1].name}").exists()  # never evaluated


def test_a_changed_encoder_or_another_base_is_refused(grid, tmp_path):
    runs = grid
    other = Runs(runs.profile, root=tmp_path / "other")
    base = load_pretrained(runs.final("warmup"))
    with torch.no_grad():
        next(p for n, p in base.named_parameters() if n.startswith(VISION)).mul_(0.5)
    save_pretrained(base, other.final("warmup"))
    tars = pack(runs, tmp_path / "out")
    with pytest.raises(SystemExit, match="another stage-0 base"):
        unpack(other, tars[:1])
    assert not other.final(f"sweep/{POINTS[0].name}").exists()  # nothing written
    path = runs.final(f"sweep/{POINTS[1].name}")
    model = load_pretrained(path)
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if n.startswith(VISION)).add_(1.0)
    save_pretrained(model, path)
    with pytest.raises(SystemExit, match="another vision encoder"):
        pack(runs, tmp_path / "out2")
