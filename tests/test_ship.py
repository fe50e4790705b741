"""Shipping (pipeline/ship.py) on a tiny model: the full ship behind its rule, --results-only, --sweep-only merging
points into the registered grid, --demo-only and --keep-demo, each touching nothing when refused; every shipped folder
carries its training vocabulary."""

import json

import pandas as pd
import pytest
import safetensors.torch
import torch

import pipeline.ship as ship
from model.core.checkpoint import build_preset, load_pretrained, save_pretrained
from model.data.vocabulary import VOCABULARY_FILE
from pipeline.layout import PREVIOUS_DEMO, PROFILES, SWEEP, Runs, SweepPoint

WORDS = ["green", "reach", "red"]


@pytest.fixture
def ship_in(tmp_path, monkeypatch):
    """pipeline.ship with its assets/ and runs/ under tmp_path, a stand-in vocabulary and no latent decoder training
    (tests/test_latent_decoder.py trains one)."""
    monkeypatch.setattr(ship, "ASSETS", tmp_path / "assets")
    monkeypatch.setattr(ship, "ROOT", tmp_path)
    monkeypatch.setattr(ship, "vocabulary_of", lambda folders: (WORDS, 12))
    monkeypatch.setattr(ship, "train_latent_decoder", lambda folder: None)
    return tmp_path


def choose(runs: Runs, passes: int) -> None:
    runs.choice_file.parent.mkdir(parents=True, exist_ok=True)
    runs.choice_file.write_text(json.dumps({"passes": passes}))


def audit(folder, accuracy: float, right=None, families=("maze", "fold"), mode="auto") -> None:
    """An evaluation folder: summary (`mode` at `accuracy` overall and per family), results.json and predictions."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"mode": mode, "family": f, "accuracy": accuracy, "ci_low": 0.1, "ci_high": 0.9, "latency_mean_s": 1.0,
             "start_rate": 1.0, "sketches_per_answer": 1.0} for f in (*families, "overall")]  # fmt: skip
    pd.DataFrame(rows).to_parquet(folder / "summary.parquet")
    (folder / "results.json").write_text(json.dumps({"config": {}, "name": folder.name}))
    right = right if right is not None else [i < 100 * accuracy for i in range(100)]
    rows = [{"id": f"p{i:03d}", "family": families[i % len(families)], "mode": mode, "correct": bool(c),
             "latency_s": 1.0} for i, c in enumerate(right)]  # fmt: skip
    pd.DataFrame(rows).to_parquet(folder / "predictions.parquet")


def registry(tmp_path) -> dict:
    return json.loads((tmp_path / "assets" / "checkpoints" / "registry.json").read_text())


def test_results_only_copy_merges_and_a_full_copy_replaces(ship_in):
    tmp_path = ship_in
    results = tmp_path / "assets" / "results"
    results.mkdir(parents=True)
    (results / "test-grpo.json").write_text('{"old": "grpo"}')
    (results / "test-parallel.json").write_text('{"kept": "demo-parallel"}')
    (results / "timings.json").write_text(json.dumps({"sft": 10.0, "textonly": 20.0}))
    runs = Runs(PROFILES["demo"], root=tmp_path)
    audit(runs.eval_dir("test-textonly"), 0.5)
    runs.eval_dir("test-direct").mkdir()  # an evaluation that did not finish: no results.json, nothing copied
    runs.record_time("textonly", 30.0)
    assert ship.main(["--results-only"]) == 0
    copied = json.loads((results / "test-textonly.json").read_text())
    assert copied["name"] == "test-textonly" and copied["per_puzzle"]["correct"]["auto"] == "1" * 50 + "0" * 50
    assert json.loads((results / "test-grpo.json").read_text()) == {"old": "grpo"}  # not in the run: kept
    assert not (results / "test-direct.json").exists()
    assert json.loads((results / "timings.json").read_text()) == {"sft": 10.0, "textonly": 30.0}
    # a full copy (what `ship` does) leaves only what the run has and what it is told to keep
    assert ship.copy_results(runs, keep={"test-parallel"}) == ["test-textonly"]
    assert sorted(p.name for p in results.iterdir()) == ["test-parallel.json", "test-textonly.json", "timings.json"]
    assert json.loads((results / "timings.json").read_text()) == {"textonly": 30.0}


def test_results_into_a_folder_leave_the_shipped_results_alone(ship_in):
    tmp_path = ship_in
    results = tmp_path / "assets" / "results"
    results.mkdir(parents=True)
    (results / "test-demo.json").write_text('{"shipped": "demo"}')
    (results / "timings.json").write_text(json.dumps({"sft": 10.0}))
    runs = Runs(PROFILES["demo"], root=tmp_path)
    audit(runs.eval_dir("test-demo"), 0.25)
    runs.record_time("sft", 99.0)
    assert ship.main(["--results-only", "--into", "v6-4200"]) == 0
    kept = json.loads((results / "v6-4200" / "test-demo.json").read_text())
    assert kept["per_puzzle"]["correct"]["auto"] == "1" * 25 + "0" * 75
    assert json.loads((results / "v6-4200" / "timings.json").read_text()) == {"sft": 99.0}
    assert json.loads((results / "test-demo.json").read_text()) == {"shipped": "demo"}  # the shipped audit stays
    assert json.loads((results / "timings.json").read_text()) == {"sft": 10.0}
    for bad in (["--into", "v6"], ["--results-only", "--into", "../x"], ["--results-only", "--into", "a/b"]):
        with pytest.raises(SystemExit):
            ship.main(bad)
    assert sorted(p.name for p in results.iterdir()) == ["test-demo.json", "timings.json", "v6-4200"]


def trained_point(runs: Runs, point: SweepPoint) -> None:
    model = build_preset("tiny")
    model.set_latent_budget(min(point.latent_budget, 16))  # the tiny preset pools a 4×4 grid
    model.config.diffusion_loss_weight = point.diffusion_loss_weight
    save_pretrained(model, runs.sweep_final(point))
    audit(runs.eval_dir(f"sweep-{point.name}"), 0.6)


def test_sweep_only_merges_points_into_the_registered_grid(ship_in):
    tmp_path = ship_in
    checkpoints, results = tmp_path / "assets" / "checkpoints", tmp_path / "assets" / "results"
    (checkpoints / "demo").mkdir(parents=True)
    (checkpoints / "demo" / "model.safetensors").write_bytes(b"demo weights")
    results.mkdir()
    (results / "test-demo.json").write_text('{"the shipped": "demo"}')
    v4 = {"latent_budget": 32, "diffusion_loss_weight": 1.0, "stage": "sft", "metrics": {}}  # no decoding: sequential
    old = [{"name": "demo", "path": "assets/checkpoints/demo", "latent_budget": 64, "diffusion_loss_weight": 1.0,
            "stage": "grpo", "metrics": {}}]  # fmt: skip
    for name, k, lam in (("k16-l1", 16, 1.0), ("k8-l1", 8, 1.0), ("k32-l0.1", 32, 0.1)):
        (checkpoints / "sweep" / name).mkdir(parents=True)
        old.append({**v4, "name": f"sweep/{name}", "path": f"assets/checkpoints/sweep/{name}", "latent_budget": k,
                    "diffusion_loss_weight": lam})  # fmt: skip
    (checkpoints / "registry.json").write_text(json.dumps({"checkpoints": old}))
    runs = Runs(PROFILES["demo"], root=tmp_path)
    with pytest.raises(SystemExit, match="no sweep point trained"):
        ship.main(["--sweep-only"])
    assert registry(tmp_path)["checkpoints"] == old  # a refused ship touches nothing
    k16 = next(p for p in SWEEP if p.name == "k16-l1")
    trained_point(runs, k16)
    audit(runs.eval_dir("test-demo"), 0.9)  # the run's new demo, not shipped: its audit must not be copied
    assert ship.main(["--sweep-only"]) == 0
    entries = {e["name"]: e for e in registry(tmp_path)["checkpoints"]}
    assert entries["sweep/k16-l1"]["recipe"] == runs.sweep_grid()  # the v4 point of that name replaced
    assert entries["sweep/k8-l1"]["recipe"] == "previous" and entries["sweep/k32-l0.1"]["recipe"] == "previous"
    stored = safetensors.torch.load_file(checkpoints / "sweep" / "k16-l1" / "model.safetensors")
    assert {t.dtype for t in stored.values() if t.is_floating_point()} == {torch.float16}
    assert json.loads((checkpoints / "sweep" / "k16-l1" / VOCABULARY_FILE).read_text())["words"] == WORDS
    assert load_pretrained(checkpoints / "sweep" / "k16-l1").config.diffusion_solver == "dpm++"
    assert json.loads((results / "test-demo.json").read_text()) == {"the shipped": "demo"}
    assert json.loads((results / "sweep-k16-l1.json").read_text())["name"] == "sweep-k16-l1"
    grid = registry(tmp_path)["sweep_grid"]
    assert grid["points"][0] == "sweep/k64-l1" and "sweep/k16-l1" not in grid["missing"]
    assert len(grid["missing"]) == len(SWEEP) - 1
    # later: another point finishes (the first one's run folder gone, say, packed off a GPU machine): both stay
    (runs.sweep_final(k16)).rename(tmp_path / "elsewhere")
    lam = next(p for p in SWEEP if p.name == "k64-l0.1")
    trained_point(runs, lam)
    assert ship.main(["--sweep-only"]) == 0
    entries = {e["name"]: e for e in registry(tmp_path)["checkpoints"]}
    assert entries["sweep/k16-l1"]["recipe"] == entries["sweep/k64-l0.1"]["recipe"] == runs.sweep_grid()
    assert "sweep/k32-l0.1" not in entries and not (checkpoints / "sweep" / "k32-l0.1").exists()  # its role taken
    assert entries["sweep/k8-l1"]["recipe"] == "previous" and (checkpoints / "sweep" / "k8-l1").is_dir()
    assert (checkpoints / "demo" / "model.safetensors").read_bytes() == b"demo weights"
    assert registry(tmp_path)["checkpoints"][0]["name"] == "demo"
    assert set(registry(tmp_path)["sweep_grid"]["missing"]) == {f"sweep/{p.name}" for p in SWEEP} - {
        "sweep/k16-l1", "sweep/k64-l0.1"}  # fmt: skip


def finished_run(tmp_path, shipped_demo: bool = True, paraphrased: float = 0.58) -> Runs:
    """A run with its final model, baselines, audits and the ship rule's validation audits; a shipped demo beside."""
    runs = Runs(PROFILES["demo"], root=tmp_path)
    choose(runs, 2)
    save_pretrained(build_preset("tiny"), runs.after_grpo())
    for stage in ("textonly", "direct"):
        save_pretrained(build_preset("tiny"), runs.final(runs.baseline_stages(stage)[-1]))
    for name, accuracy, mode in (("test-demo", 0.7, "auto"), ("test-textonly", 0.5, "text-only"),
                                 ("test-direct", 0.3, "direct")):  # fmt: skip
        audit(runs.eval_dir(name), accuracy, mode=mode)
    audit(runs.eval_dir("validation-demo"), 0.6)
    audit(runs.eval_dir("validation-demo-paraphrased"), paraphrased)
    if shipped_demo:
        checkpoints = tmp_path / "assets" / "checkpoints"
        save_pretrained(build_preset("tiny"), checkpoints / "demo")
        metrics = {"accuracy": {"maze": 0.6, "fold": 0.6, "overall": 0.6}}
        old = [{"name": "demo", "path": "assets/checkpoints/demo", "latent_budget": 64, "diffusion_loss_weight": 1.0,
                "stage": "grpo", "metrics": metrics, "recipe": PREVIOUS_DEMO}]  # fmt: skip
        (checkpoints / "registry.json").write_text(json.dumps({"checkpoints": old}))
        audit(runs.eval_dir("validation-shipped-demo"), 0.55)
    return runs


def test_the_full_ship_ships_the_demo_and_both_baselines_with_their_steps(ship_in, capsys):
    tmp_path = ship_in
    runs = finished_run(tmp_path)
    assert ship.main([]) == 0
    assert "passed: template auto, new − shipped over fold, maze" in capsys.readouterr().out
    entries = {e["name"]: e for e in registry(tmp_path)["checkpoints"]}
    assert list(entries)[0] == "demo" and entries["demo"]["recipe"]["supervised_steps"] == 2400 == (
        runs.supervised_steps())  # fmt: skip
    assert entries["demo"]["recipe"]["refine_passes"] == 2 and entries["demo"]["metrics"]["accuracy"]["overall"] == 0.7
    for name in ("baseline/text-cot", "baseline/direct"):
        assert entries[name]["recipe"]["supervised_steps"] == 2400
        assert entries[name]["path"] == f"assets/checkpoints/baselines/{name.split('/')[1]}"
        folder = tmp_path / entries[name]["path"]
        stored = safetensors.torch.load_file(folder / "model.safetensors")
        assert {t.dtype for t in stored.values() if t.is_floating_point()} == {torch.float16}
        assert json.loads((folder / VOCABULARY_FILE).read_text())["words"] == WORDS
    # each baseline's accuracy is its own mode's
    assert entries["baseline/text-cot"]["metrics"]["accuracy"]["overall"] == 0.5
    assert entries["baseline/direct"]["metrics"]["accuracy"]["overall"] == 0.3
    demo = tmp_path / "assets" / "checkpoints" / "demo"
    assert json.loads((demo / VOCABULARY_FILE).read_text())["data"] == "data/sketchworld"
    assert not list((tmp_path / "assets" / "checkpoints").glob(".*-new"))
    assert registry(tmp_path)["sweep_grid"]["missing"] == [f"sweep/{p.name}" for p in SWEEP]


def test_the_ship_rule_keeps_the_shipped_demo_and_says_why(ship_in, capsys):
    tmp_path = ship_in
    finished_run(tmp_path, paraphrased=0.50)  # 10 points below its template auto
    before = (tmp_path / "assets" / "checkpoints" / "demo" / "model.safetensors").read_bytes()
    old = registry(tmp_path)
    assert ship.main([]) == ship.RULE_FAILED == 3
    out = capsys.readouterr().out
    assert "FAILED: paraphrased auto 50.0 against template auto 60.0 (all families): +10.0 points below" in out
    assert "the shipped demo stays; nothing was shipped" in out
    assert (tmp_path / "assets" / "checkpoints" / "demo" / "model.safetensors").read_bytes() == before
    assert registry(tmp_path) == old and not (tmp_path / "assets" / "results").exists()
    assert ship.main(["--demo-only"]) == 3  # the same rule
    audit(Runs(PROFILES["demo"], root=tmp_path).eval_dir("validation-demo-paraphrased"), 0.58)
    (tmp_path / "runs/demo/eval/validation-shipped-demo/predictions.parquet").unlink()
    with pytest.raises(SystemExit, match="needs the validation audits validation-shipped-demo"):
        ship.main(["--demo-only"])


def test_demo_only_replaces_the_demo_and_keeps_the_rest(ship_in):
    tmp_path = ship_in
    runs = finished_run(tmp_path)
    old = registry(tmp_path)["checkpoints"]
    point = {"name": "sweep/k8-l1", "path": "assets/checkpoints/sweep/k8-l1", "latent_budget": 8,
             "diffusion_loss_weight": 1.0, "stage": "sft", "metrics": {}}  # fmt: skip
    (tmp_path / "assets" / "checkpoints" / "registry.json").write_text(json.dumps({"checkpoints": [*old, point]}))
    assert ship.main(["--demo-only"]) == 0
    entries = registry(tmp_path)["checkpoints"]
    assert [e["name"] for e in entries] == ["demo", "sweep/k8-l1"] and entries[1] == point
    assert entries[0]["recipe"]["supervised_steps"] == runs.supervised_steps()
    shipped = load_pretrained(tmp_path / "assets" / "checkpoints" / "demo")
    assert shipped.config.diffusion_solver == "dpm++" and shipped.config.sketch_temperature == 0.25


def test_keep_demo_registers_the_runs_model_beside_the_shipped_one(ship_in):
    """`--keep-demo` (the parallel profile's ship): the shipped (sequential) demo stays byte for byte; the run's
    parallel model ships in float16 as demo-parallel; refused, touching nothing, when a piece is missing."""
    tmp_path = ship_in
    checkpoints = tmp_path / "assets" / "checkpoints"
    save_pretrained(build_preset("tiny"), checkpoints / "demo")
    before = (checkpoints / "demo" / "model.safetensors").read_bytes()
    old = [{"name": "demo", "path": "assets/checkpoints/demo", "stage": "grpo", "parent": "refine",
            "latent_budget": 64, "diffusion_loss_weight": 1.0, "metrics": {"accuracy": {"overall": 0.7}},
            "recipe": {"supervised_steps": 2400, "lineage": "the new demo"}}]  # fmt: skip
    (checkpoints / "registry.json").write_text(json.dumps({"checkpoints": old}))
    runs = Runs(PROFILES["parallel"], root=tmp_path)
    with pytest.raises(SystemExit, match="run's final model"):
        ship.main(["--keep-demo", "--profile", "parallel"])
    choose(runs, 2)
    parallel = build_preset("tiny")
    parallel.set_sketch_decoding("parallel", 1)
    save_pretrained(parallel, runs.after_grpo())
    audit(runs.eval_dir("test-parallel"), 0.25)
    with pytest.raises(SystemExit):
        ship.main(["--keep-demo", "--demo-only"])
    assert ship.main(["--keep-demo", "--profile", "parallel"]) == 0
    assert (checkpoints / "demo" / "model.safetensors").read_bytes() == before
    assert load_pretrained(checkpoints / "parallel").parallel
    assert load_pretrained(checkpoints / "parallel").refine_passes == 0  # its recipe's inference setting
    entries = {e["name"]: e for e in registry(tmp_path)["checkpoints"]}
    assert entries["demo"] == old[0]  # not re-audited by this run: as registered
    assert entries["demo-parallel"]["metrics"]["accuracy"]["overall"] == 0.25
    assert entries["demo-parallel"]["path"] == "assets/checkpoints/parallel"
    assert json.loads((checkpoints / "parallel" / VOCABULARY_FILE).read_text())["words"] == WORDS
    assert json.loads((tmp_path / "assets/results/test-parallel.json").read_text())["name"] == "test-parallel"
    assert not list(checkpoints.glob(".*-new"))
    save_pretrained(build_preset("tiny"), runs.after_grpo())  # sequential, as the shipped demo
    with pytest.raises(SystemExit, match="decodes sketches as the shipped demo does"):
        ship.main(["--keep-demo", "--profile", "parallel"])


def test_a_shipped_folder_carries_the_vocabulary_of_its_training_data(tmp_path, monkeypatch):
    """The real vocabulary (model/data/vocabulary.py) of a small sketch-world folder, written beside a shipped
    model; and a missing data folder is an error that names the command."""
    from model.sketchworld import write_dataset

    monkeypatch.setattr(ship, "ROOT", tmp_path)
    runs = Runs(PROFILES["quick"], root=tmp_path)
    write_dataset(str(runs.data), per_family=4, seed=0, families=["connect", "maze16"])
    save_pretrained(build_preset("tiny"), tmp_path / "model")
    ship.ship_model(runs, tmp_path / "model", tmp_path / "shipped")
    record = json.loads((tmp_path / "shipped" / VOCABULARY_FILE).read_text())
    assert record["data"] == "data/sketchworld-quick" and record["rows"] > 0
    assert {"green", "cell", "corridors"} <= set(record["words"])  # connect's and maze's training wording
    assert not {"box", "trail", "obstacle"} & set(record["words"])  # held-out synonyms never appear in training
    missing = Runs(PROFILES["parallel"], root=tmp_path / "elsewhere")
    with pytest.raises(SystemExit, match="train.parquet is missing"):
        ship.ship_vocabulary(tmp_path / "shipped", missing)


def test_a_demo_over_its_size_cap_ships_nothing(ship_in, monkeypatch):
    tmp_path = ship_in
    finished_run(tmp_path)
    before = registry(tmp_path)
    monkeypatch.setitem(ship.SIZE_CAPS_MB, "demo", 0.01)
    with pytest.raises(SystemExit, match="over the 0.01 MB cap"):
        ship.main([])
    assert registry(tmp_path) == before and not (tmp_path / "assets" / "results").exists()
