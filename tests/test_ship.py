"""Shipping (pipeline/ship.py) on a tiny model: the full ship, --results-only, --sweep-only, --demo-only and
--keep-demo, each touching nothing when refused."""

import json

import pandas as pd
import pytest
import safetensors.torch
import torch

import pipeline.ship as ship
from model.core.checkpoint import build_preset, load_pretrained, save_pretrained
from pipeline.layout import PREVIOUS_DEMO, PROFILES, SWEEP, Runs


@pytest.fixture
def ship_in(tmp_path, monkeypatch):
    """pipeline.ship with its assets/ and runs/ under tmp_path."""
    monkeypatch.setattr(ship, "ASSETS", tmp_path / "assets")
    monkeypatch.setattr(ship, "ROOT", tmp_path)
    return tmp_path


def test_results_only_copy_merges_and_a_full_ship_replaces(ship_in):
    tmp_path = ship_in
    results = tmp_path / "assets" / "results"
    results.mkdir(parents=True)
    (results / "test-grpo.json").write_text('{"old": "grpo"}')
    (results / "test-textonly.json").write_text('{"old": "textonly"}')
    (results / "timings.json").write_text(json.dumps({"sft": 10.0, "textonly": 20.0}))
    runs = Runs(PROFILES["demo"], root=tmp_path)
    (runs.eval_dir("test-textonly")).mkdir(parents=True)
    (runs.eval_dir("test-textonly") / "results.json").write_text('{"new": "textonly"}')
    runs.eval_dir("test-direct").mkdir()  # an evaluation that did not finish: no results.json, nothing copied
    runs.record_time("textonly", 30.0)
    assert ship.main(["--results-only"]) == 0
    assert json.loads((results / "test-textonly.json").read_text()) == {"new": "textonly"}
    assert json.loads((results / "test-grpo.json").read_text()) == {"old": "grpo"}  # not in the run: kept
    assert not (results / "test-direct.json").exists()
    assert json.loads((results / "timings.json").read_text()) == {"sft": 10.0, "textonly": 30.0}
    # a full copy (what `ship` does) leaves only what the run has
    assert ship.copy_results(runs) == ["test-textonly"]
    assert sorted(p.name for p in results.iterdir()) == ["test-textonly.json", "timings.json"]
    assert json.loads((results / "timings.json").read_text()) == {"textonly": 30.0}


def test_results_only_copy_with_nothing_evaluated_is_an_error(ship_in):
    tmp_path = ship_in
    (tmp_path / "runs" / "demo" / "eval").mkdir(parents=True)
    with pytest.raises(SystemExit, match="no evaluation with a results.json"):
        ship.main(["--results-only"])


def test_sweep_only_ship_replaces_the_grid_and_keeps_the_demo(ship_in):
    tmp_path = ship_in
    checkpoints, results = tmp_path / "assets" / "checkpoints", tmp_path / "assets" / "results"
    (checkpoints / "demo").mkdir(parents=True)
    (checkpoints / "demo" / "model.safetensors").write_bytes(b"demo weights")
    (checkpoints / "sweep" / "k8-l1").mkdir(parents=True)  # the previous recipe's grid: replaced wholesale
    results.mkdir()
    (results / "test-grpo.json").write_text('{"kept": true}')
    demo_entry = {"name": "demo", "path": "assets/checkpoints/demo", "metrics": {"accuracy": {"overall": 0.5}}}
    old_point = {"name": "sweep/k8-l1", "path": "assets/checkpoints/sweep/k8-l1", "recipe": "previous"}
    (checkpoints / "registry.json").write_text(json.dumps({"checkpoints": [demo_entry, old_point]}))
    runs = Runs(PROFILES["demo"], root=tmp_path)
    with pytest.raises(SystemExit, match="no sweep point trained"):
        ship.main(["--sweep-only"])
    assert (checkpoints / "sweep" / "k8-l1").is_dir()  # a refused ship touches nothing
    point = SWEEP[0]
    save_pretrained(build_preset("tiny"), runs.sweep_final(point))
    (runs.eval_dir(f"sweep-{point.name}")).mkdir(parents=True)
    (runs.eval_dir(f"sweep-{point.name}") / "results.json").write_text('{"sweep": 1}')
    assert ship.main(["--sweep-only"]) == 0
    assert (checkpoints / "demo" / "model.safetensors").read_bytes() == b"demo weights"
    assert sorted(p.name for p in (checkpoints / "sweep").iterdir()) == [point.name]
    assert not (checkpoints / ".sweep-new").exists()
    shipped = load_pretrained(checkpoints / "sweep" / point.name)
    assert next(shipped.parameters()).dtype == torch.float32 and shipped.config.diffusion_solver == "dpm++"
    entries = json.loads((checkpoints / "registry.json").read_text())["checkpoints"]
    assert entries[0] == demo_entry
    assert [(e["name"], e["path"]) for e in entries[1:]] == [
        (f"sweep/{point.name}", f"assets/checkpoints/sweep/{point.name}")
    ]
    assert json.loads((results / "test-grpo.json").read_text()) == {"kept": True}
    assert json.loads((results / f"sweep-{point.name}.json").read_text()) == {"sweep": 1}


def test_demo_only_ship_replaces_the_demo_and_keeps_the_sweep(ship_in, monkeypatch):
    tmp_path = ship_in
    checkpoints, results = tmp_path / "assets" / "checkpoints", tmp_path / "assets" / "results"
    (checkpoints / "demo").mkdir(parents=True)
    (checkpoints / "demo" / "model.safetensors").write_bytes(b"old demo")
    (checkpoints / "sweep" / "k8-l1").mkdir(parents=True)
    (checkpoints / "sweep" / "k8-l1" / "model.safetensors").write_bytes(b"sweep weights")
    results.mkdir()
    (results / "sweep-k8-l1.json").write_text('{"kept": true}')
    point_entry = {"name": "sweep/k8-l1", "path": "assets/checkpoints/sweep/k8-l1", "metrics": {}}
    old_demo = {"name": "demo", "path": "assets/checkpoints/demo", "stage": "grpo", "metrics": {}}
    (checkpoints / "registry.json").write_text(json.dumps({"checkpoints": [old_demo, point_entry]}))
    decoded = []  # the latent decoder's own training is tested in tests/test_latent_decoder.py
    monkeypatch.setattr(ship, "train_latent_decoder", lambda folder: decoded.append(folder))
    runs = Runs(PROFILES["demo"], root=tmp_path)
    with pytest.raises(SystemExit, match="no final model to ship"):
        ship.main(["--demo-only"])
    assert (checkpoints / "demo" / "model.safetensors").read_bytes() == b"old demo"  # a refused ship touches nothing
    model = build_preset("tiny")
    save_pretrained(model, runs.after_grpo())
    (runs.eval_dir("test-grpo")).mkdir(parents=True)
    (runs.eval_dir("test-grpo") / "results.json").write_text('{"grpo": 1}')
    with pytest.raises(SystemExit):  # argparse: two ship modes at once
        ship.main(["--demo-only", "--sweep-only"])
    assert ship.main(["--demo-only"]) == 0
    assert decoded == [checkpoints / ".demo-new"] and not (checkpoints / ".demo-new").exists()
    shipped = load_pretrained(checkpoints / "demo")
    assert shipped.config.diffusion_solver == "dpm++" and shipped.config.sketch_temperature == 0.25
    for (name, a), b in zip(model.state_dict().items(), shipped.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert (checkpoints / "sweep" / "k8-l1" / "model.safetensors").read_bytes() == b"sweep weights"
    entries = json.loads((checkpoints / "registry.json").read_text())["checkpoints"]
    assert [(e["name"], e["path"], e.get("stage")) for e in entries] == [
        ("demo", "assets/checkpoints/demo", "grpo"),
        ("sweep/k8-l1", "assets/checkpoints/sweep/k8-l1", None),
    ]
    assert entries[1] == point_entry
    assert json.loads((results / "test-grpo.json").read_text()) == {"grpo": 1}
    assert json.loads((results / "sweep-k8-l1.json").read_text()) == {"kept": True}


def test_keep_demo_ship_registers_the_runs_model_beside_the_shipped_one(ship_in, monkeypatch):
    """`--keep-demo`: the shipped (sequential) demo stays byte for byte and takes the run's test-demo audit; the run's
    parallel model ships in float16 as demo-parallel; refused, touching nothing, when a piece is missing."""
    tmp_path = ship_in
    checkpoints = tmp_path / "assets" / "checkpoints"
    save_pretrained(build_preset("tiny"), checkpoints / "demo")
    before = (checkpoints / "demo" / "model.safetensors").read_bytes()
    old = [{"name": "demo", "path": "assets/checkpoints/demo", "stage": "grpo", "parent": "transfer"}]
    (checkpoints / "registry.json").write_text(json.dumps({"checkpoints": old}))
    runs = Runs(PROFILES["demo"], root=tmp_path)
    with pytest.raises(SystemExit, match="run's final model"):
        ship.main(["--keep-demo"])
    parallel = build_preset("tiny")
    parallel.set_sketch_decoding("parallel", 1)
    save_pretrained(parallel, runs.after_grpo())
    with pytest.raises(SystemExit, match="audit the shipped demo first"):
        ship.main(["--keep-demo"])
    assert json.loads((checkpoints / "registry.json").read_text())["checkpoints"] == old
    for name, auto in (("test-demo", 0.75), ("test-parallel", 0.25)):
        runs.eval_dir(name).mkdir(parents=True)
        rows = [{"mode": "auto", "family": "overall", "accuracy": auto, "ci_low": 0.1, "ci_high": 0.9,
                 "latency_mean_s": 1.0, "start_rate": 1.0, "sketches_per_answer": 1.0}]  # fmt: skip
        pd.DataFrame(rows).to_parquet(runs.eval_dir(name) / "summary.parquet")
        (runs.eval_dir(name) / "results.json").write_text(json.dumps({"name": name}))
    results = tmp_path / "assets" / "results"
    results.mkdir(parents=True)
    (results / "test-grpo.json").write_text('{"the kept demo": "without its codebook"}')
    (results / "timings.json").write_text('{"sft": 1.0}')
    runs.record_time("sft", 2.0)  # the run's model's stage, not the kept demo's
    with pytest.raises(SystemExit):
        ship.main(["--keep-demo", "--demo-only"])
    assert ship.main(["--keep-demo"]) == 0
    assert (checkpoints / "demo" / "model.safetensors").read_bytes() == before
    assert load_pretrained(checkpoints / "parallel").parallel
    stored = safetensors.torch.load_file(checkpoints / "parallel" / "model.safetensors")
    assert {t.dtype for t in stored.values() if t.is_floating_point()} == {torch.float16}
    entries = {e["name"]: e for e in json.loads((checkpoints / "registry.json").read_text())["checkpoints"]}
    assert entries["demo"]["metrics"]["accuracy"] == {"overall": 0.75} and entries["demo"]["parent"] == "transfer"
    assert entries["demo-parallel"]["metrics"]["accuracy"] == {"overall": 0.25}
    assert entries["demo-parallel"]["path"] == "assets/checkpoints/parallel"
    assert entries["demo-parallel"]["sketch_decoding"] == "parallel" and "recipe" not in entries["demo-parallel"]
    assert entries["demo"]["recipe"]["supervised_steps"] == PREVIOUS_DEMO["supervised_steps"]
    assert not list(checkpoints.glob(".*-new"))
    assert json.loads((results / "test-parallel.json").read_text()) == {"name": "test-parallel"}
    assert json.loads((results / "test-grpo.json").read_text()) == {"the kept demo": "without its codebook"}
    assert json.loads((results / "timings.json").read_text()) == {"sft": 1.0}
    parallel_demo = build_preset("tiny")  # a run whose model decodes as the shipped demo does: ship it as the demo
    save_pretrained(parallel_demo, runs.after_grpo())
    with pytest.raises(SystemExit, match="decodes sketches as the shipped demo does"):
        ship.main(["--keep-demo"])
