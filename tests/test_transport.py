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

POINTS = [SweepPoint(4, 1.0), SweepPoint(16, 1.0, "regression")]  # the tiny preset pools a 4×4 grid


def trained_like(runs: Runs, stage: str, point: SweepPoint, seed: int) -> None:
    """A model of the point's K and head at `stage` that differs from the stage-0 base everywhere but in the frozen
    encoder."""
    model = load_pretrained(runs.stage0())
    model.replace_head(point.head_type)
    model.set_latent_budget(point.latent_budget)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not name.startswith(VISION):
                param.add_(torch.randn(param.shape, generator=generator))
    save_pretrained(model, runs.final(stage))


@pytest.fixture
def grid(tmp_path):
    """A run with a stage-0 base and two finished sweep points of two stages each; the first point evaluated."""
    profile = dataclasses.replace(PROFILES["quick"], sweep=POINTS, sweep_passes=1)
    runs = Runs(profile, root=tmp_path / "there")
    save_pretrained(build_preset("tiny"), runs.stage0())
    for i, point in enumerate(POINTS):
        for j, stage in enumerate(runs.sweep_stages(point)):
            trained_like(runs, stage, point, seed=10 * i + j)
    eval_dir = runs.eval_dir(f"sweep-{POINTS[0].name}")
    eval_dir.mkdir(parents=True)
    config = {"checkpoint": str(runs.sweep_final(POINTS[0]))}
    (eval_dir / "results.json").write_text(json.dumps({"config": config, "summary": []}))
    pd.DataFrame({"mode": ["auto"], "accuracy": [0.5]}).to_parquet(eval_dir / "summary.parquet")
    pd.DataFrame({"id": ["maze-1"], "mode": ["auto"], "correct": [True]}).to_parquet(eval_dir / "predictions.parquet")
    return runs


@pytest.fixture
def here(grid, tmp_path):
    """Another checkout with the same stage-0 base and nothing else."""
    runs = Runs(grid.profile, root=tmp_path / "here")
    save_pretrained(load_pretrained(grid.stage0()), runs.stage0())
    return runs


def test_pack_then_unpack_rebuilds_every_final_model_and_its_evaluation(grid, here, tmp_path):
    tars = pack(grid, tmp_path / "out")
    assert sorted(p.name for p in tars) == sorted(f"sweep-{p.name}.tar" for p in POINTS)
    assert not [p for p in (tmp_path / "out").iterdir() if p not in tars]  # no temporary left beside them
    stale = here.eval_dir(f"sweep-{POINTS[1].name}")  # a local evaluation of some other model
    stale.mkdir(parents=True)
    (stale / "results.json").write_text("{}")
    unpack(here, tars)
    base = load_file(str(grid.stage0() / "model.safetensors"))
    for point in POINTS:
        original = load_file(str(grid.sweep_final(point) / "model.safetensors"))
        rebuilt = load_file(str(here.sweep_final(point) / "model.safetensors"))
        assert set(rebuilt) == set(original)
        for name, tensor in rebuilt.items():
            source = base[name] if name.startswith(VISION) else original[name]
            assert tensor.dtype == torch.float16 and torch.equal(tensor, source.half()), name
        config = load_pretrained(here.sweep_final(point)).config
        assert (config.head_type, config.latent_budget) == (point.head_type, point.latent_budget)
    results = json.loads((here.eval_dir(f"sweep-{POINTS[0].name}") / "results.json").read_text())
    assert results["config"]["checkpoint"] == str(here.sweep_final(POINTS[0]))  # where it lies here
    summary = pd.read_parquet(here.eval_dir(f"sweep-{POINTS[0].name}") / "summary.parquet")
    assert summary["accuracy"].tolist() == [0.5]
    predictions = pd.read_parquet(here.eval_dir(f"sweep-{POINTS[0].name}") / "predictions.parquet")
    assert predictions["correct"].tolist() == [True]  # per puzzle: the report's paired intervals need it
    assert not stale.exists()  # never evaluated there: the local one is of another model and goes


def test_an_evaluation_of_another_checkpoint_stays_behind(grid, here, tmp_path):
    results = grid.eval_dir(f"sweep-{POINTS[0].name}") / "results.json"
    earlier = grid.final(grid.sweep_stages(POINTS[0])[0])  # stage 1's model, not the point's final one
    results.write_text(json.dumps({"config": {"checkpoint": str(earlier)}, "summary": []}))
    tars = pack(grid, tmp_path / "out")
    with tarfile.open(tars[0]) as tar:
        assert "eval/results.json" not in tar.getnames()
        assert json.loads(tar.extractfile("transport.json").read())["evaluated"] is False
    unpack(here, tars)
    assert not here.eval_dir(f"sweep-{POINTS[0].name}").exists()


def test_pack_refuses_an_unfinished_point_or_a_trained_encoder_before_writing(grid, tmp_path):
    last = grid.sweep_stages(POINTS[1])[-1]
    model = load_pretrained(grid.final(last))
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if n.startswith(VISION)).add_(1.0)
    save_pretrained(model, grid.final(last))
    with pytest.raises(SystemExit, match="another vision encoder.*freeze_vision"):
        pack(grid, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # the first point's tar was not written either
    for f in grid.final(last).iterdir():
        f.unlink()
    grid.final(last).rmdir()
    with pytest.raises(SystemExit, match=f"not finished.*: {POINTS[1].name}; .*resumes"):
        pack(grid, tmp_path / "out")


def test_unpack_checks_every_tar_before_writing_any(grid, here, tmp_path):
    tars = pack(grid, tmp_path / "out")
    cut = tmp_path / "cut.tar"  # a transfer cut short: the manifest is the last member
    with tarfile.open(tars[1]) as tar, tarfile.open(cut, "w") as out:
        for member in tar.getmembers()[:-1]:
            out.addfile(member, tar.extractfile(member))
    with pytest.raises(SystemExit, match="not a whole packed sweep point"):
        unpack(here, [tars[0], cut])
    assert not (here.base / "sweep").exists() and not (here.base / "eval").exists()
    (tmp_path / "junk.tar").write_bytes(b"not a tar")
    with pytest.raises(SystemExit, match="cannot be read as a tar"):
        unpack(here, [tars[0], tmp_path / "junk.tar"])
    other = Runs(grid.profile, root=tmp_path / "other")
    base = load_pretrained(grid.stage0())
    with torch.no_grad():
        next(p for n, p in base.named_parameters() if n.startswith(VISION)).mul_(0.5)
    save_pretrained(base, other.stage0())
    with pytest.raises(SystemExit, match="another stage-0 base"):
        unpack(other, tars)
    assert not (other.base / "sweep").exists()


def test_pack_takes_some_points_and_refuses_unknown_ones(grid, tmp_path, monkeypatch, capsys):
    import pipeline.transport as transport

    monkeypatch.setattr(transport, "ROOT", grid.base.parent.parent)
    monkeypatch.setattr(transport, "PROFILES", {"quick": grid.profile})
    assert (
        transport.main(["--profile", "quick", "pack", "--out", str(tmp_path / "one"), "--points", POINTS[1].name]) == 0
    )
    assert [p.name for p in (tmp_path / "one").iterdir()] == [f"sweep-{POINTS[1].name}.tar"]
    with pytest.raises(SystemExit):
        transport.main(["--profile", "quick", "pack", "--out", str(tmp_path / "two"), "--points", "k7-l1"])
    assert "unknown sweep point k7-l1" in capsys.readouterr().err
