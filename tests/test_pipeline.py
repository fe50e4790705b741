"""The demo pipeline's bookkeeping (pipeline/layout.py) and its stages (pipeline/demo.py) on a tiny model, with the
training and evaluation subprocesses replaced by records of their command lines."""

import dataclasses
import json

import pytest
import torch
import yaml

import pipeline.demo as demo
from model.core.checkpoint import build_preset, load_pretrained, save_pretrained
from model.generation.settings import TEXT_COT_MAX_NEW_TOKENS
from model.sketchworld import DEFAULT_FAMILIES
from pipeline.checkpoints import copy_model
from pipeline.layout import CONFIGS, DEMO_POINT, PROFILES, SWEEP, Runs, SweepPoint
from pipeline.registry import size_mb

# the demo profile with a phase 2 (transfer passes): the pipeline still supports it, the demo no longer uses it
PHASED = dataclasses.replace(PROFILES["demo"], transfer_passes=2)


def choose(runs: Runs, passes: int) -> None:
    """Record `passes` as the refine stage's choice (what pipeline/refine_choice.py writes)."""
    runs.choice_file.parent.mkdir(parents=True, exist_ok=True)
    runs.choice_file.write_text(json.dumps({"passes": passes}))


def arg(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


@pytest.fixture
def commands(monkeypatch):
    """The command lines the pipeline would run (nothing runs)."""
    calls = []
    monkeypatch.setattr(demo, "sh", lambda args, threads=None: calls.append([str(a) for a in args]))
    return calls


def test_copy_model_sets_the_sampler_and_keeps_the_weights(tmp_path):
    source = save_pretrained(build_preset("tiny"), tmp_path / "source")
    (source / "latent_decoder.json").write_text("{}")  # the decoder's files travel with the model
    copy_model(source, tmp_path / "half", dtype=torch.float16, sampler=("dpm++", 3), sketch_temperature=0.5)
    shipped, original = load_pretrained(tmp_path / "half"), load_pretrained(source)
    assert (shipped.config.diffusion_solver, shipped.config.diffusion_steps) == ("dpm++", 3)
    assert (original.config.diffusion_solver, original.config.diffusion_steps) == ("ddim", 10)
    assert (shipped.config.sketch_temperature, original.config.sketch_temperature) == (0.5, 1.0)
    assert (tmp_path / "half" / "latent_decoder.json").read_text() == "{}"
    for (name, a), (_, b) in zip(original.state_dict().items(), shipped.state_dict().items()):
        torch.testing.assert_close(b, a.half().to(a.dtype), msg=name)  # float16 storage, cast back on load
    assert size_mb(tmp_path / "half") < size_mb(source)


def test_profiles_name_their_recipes_and_the_demo_is_sequential():
    demo_profile, parallel = PROFILES["demo"], PROFILES["parallel"]
    assert demo_profile.recipe.sft == "sft_demo.yaml" and demo_profile.recipe.refine == "sft_refine_demo.yaml"
    assert parallel.recipe.sft == "sft_parallel.yaml" and parallel.recipe.refine == "sft_refine_parallel.yaml"
    assert (parallel.base, parallel.sweep, parallel.min_refine_passes, parallel.max_refine_passes) == (
        "demo",
        [],
        2,
        2,
    )
    assert (demo_profile.min_refine_passes, demo_profile.max_refine_passes, demo_profile.sweep_passes) == (4, 10, 2)
    assert demo_profile.refine_window == 2
    from model.training.train_config import load_config

    for profile, decoding in ((demo_profile, "sequential"), (parallel, "parallel")):
        for config in (profile.recipe.sft, profile.recipe.refine):
            loaded = load_config(str(demo.CONFIGS / config))
            assert loaded.sketch_decoding == decoding, config
            # the training fast path stays in every stage-1 recipe
            fast = (loaded.mixed_precision, loaded.length_splits, loaded.length_grouping, loaded.compile)
            assert fast == ("bf16", 2, 0, True), config
            assert loaded.paraphrase_share == 0.5
    with pytest.raises(AssertionError):
        dataclasses.replace(demo_profile, min_refine_passes=1)  # the choice compares two audited passes


def test_run_layout_steps_and_timings(tmp_path):
    runs = Runs(PROFILES["demo"], root=tmp_path)
    p = PROFILES["demo"]
    assert runs.final("sft") == tmp_path / "runs/demo/sft" / f"checkpoint-{p.sft_steps:06d}/model"
    assert runs.refine_stages() == [f"refine/{i}" for i in range(1, p.max_refine_passes + 1)]
    assert runs.chosen_refine_passes() is None
    assert runs.final("refine") == runs.final(f"refine/{p.min_refine_passes}")  # before the choice
    with pytest.raises(ValueError, match="--stages refine chooses it"):
        runs.baseline_stages("textonly")
    choose(runs, 3)
    assert runs.final("refine") == runs.final("refine/3") and runs.before_grpo() == runs.final("refine/3")
    # the baselines train the demo's chain on their own traces: the same steps
    chain = runs.baseline_stages("textonly")
    assert chain == ["textonly", "textonly/refine/1", "textonly/refine/2", "textonly/refine/3"]
    assert sum(runs.steps(s) for s in chain) == runs.supervised_steps() == p.sft_steps + 3 * p.refine_steps
    assert runs.data_for("textonly/refine/2") == runs.data and runs.steps("direct") == p.sft_steps
    # a sweep point: stage 1, then sweep_passes refine passes
    point = SweepPoint(4, 1.0)
    chain = runs.sweep_stages(point)
    assert chain == ["sweep/k4-l1", "sweep/k4-l1/refine/1", "sweep/k4-l1/refine/2"]
    assert [runs.steps(s) for s in chain] == [p.sweep_steps, p.refine_steps, p.refine_steps]
    assert runs.sweep_grid()["supervised_steps"] == p.sweep_steps + 2 * p.refine_steps
    runs.base.mkdir(parents=True, exist_ok=True)
    runs.record_time("sft", 10.04)
    runs.record_time("sft", 5.0)  # a resumed stage adds up
    runs.record_time("grpo", 1.0)
    assert json.loads(runs.timings.read_text()) == {"sft": 15.0, "grpo": 1.0}


def test_a_profile_with_a_base_shares_its_data_and_stage_zero(tmp_path):
    parallel, runs = Runs(PROFILES["parallel"], root=tmp_path), Runs(PROFILES["demo"], root=tmp_path)
    assert parallel.data == runs.data == tmp_path / "data/sketchworld"
    assert parallel.final("warmup") == runs.final("warmup") and parallel.stage0() == runs.stage0()
    assert parallel.final("sft") == tmp_path / "runs/parallel/sft/checkpoint-001200/model"
    assert Runs(PROFILES["quick"], tmp_path).data.name == "sketchworld-quick"


def test_stage_zero_learns_the_8x8_boards_first_then_every_family(tmp_path, commands):
    """Stage 0 in two phases (the 16×16 boards from the start left 8×8 pictures read at 67 %): warmup from scratch on
    the 8×8 families, then warmup/boards from its model on every family; stage 1 starts from the second."""
    runs = Runs(PROFILES["demo"], root=tmp_path)
    assert runs.warmup_stages() == ["warmup", "warmup/boards"]
    assert [runs.steps(s) for s in runs.warmup_stages()] == [900, 300]
    assert runs.stage0() == tmp_path / "runs/demo/warmup/boards/checkpoint-000300/model"
    demo.Pipeline(runs).run(["warmup", "sft"])
    first, second, sft = commands
    assert [arg(c, "--config").rsplit("/", 1)[1] for c in commands] == [
        "warmup_demo.yaml", "warmup_boards_demo.yaml", "sft_demo.yaml"]  # fmt: skip
    assert [arg(c, "--init") for c in commands] == ["demo", str(runs.final("warmup")), str(runs.stage0())]
    assert [arg(c, "--max_steps") for c in (first, second)] == ["900", "300"]
    phase1 = yaml.safe_load((CONFIGS / "warmup_demo.yaml").read_text())
    phase2 = yaml.safe_load((CONFIGS / "warmup_boards_demo.yaml").read_text())
    assert sorted(phase1["data_families"]) == sorted(f for f in DEFAULT_FAMILIES if not f.endswith("16"))
    assert not phase2.get("data_families") and phase2["stage"] == "warmup" and phase2["lr"] < phase1["lr"]
    one_phase = Runs(dataclasses.replace(PROFILES["demo"], warmup_board_steps=0), root=tmp_path / "one")
    assert one_phase.warmup_stages() == ["warmup"] and one_phase.stage0() == one_phase.final("warmup")


def test_the_phase_two_layout_still_holds(tmp_path):
    runs = Runs(PHASED, root=tmp_path)
    choose(runs, 2)
    transfer = runs.transfer_stages()
    assert transfer == ["transfer/1", "transfer/2"]
    assert runs.supervised_steps() == PHASED.sft_steps + 4 * PHASED.refine_steps
    assert len(runs.baseline_stages("direct")) == 1 + 2 + 2
    assert runs.before_grpo() == runs.final("transfer/2")
    assert runs.after_grpo() == tmp_path / "runs/demo/transfer/grpo" / f"checkpoint-{runs.steps('grpo'):06d}/model"
    assert runs.early_data == tmp_path / "data/sketchworld-early"
    for stage in ["warmup", "sft", "refine/1", "grpo"]:
        assert runs.data_for(stage) == runs.early_data, stage
    for stage in [*transfer, "transfer/grpo", "textonly", "direct", "sweep/k4-l1"]:
        assert runs.data_for(stage) == runs.data, stage


@pytest.mark.parametrize(
    "point, name, axis",
    [(SWEEP[0], "k64-l1", "budget"), (SWEEP[1], "k16-l1", "budget"), (SWEEP[3], "k64-l0.1", "lambda"),
     (SWEEP[5], "k64-l1-regression", "head"), (SWEEP[-1], "k64-l1-parallel", "decoding")],
)  # fmt: skip
def test_sweep_points_in_training_order(point, name, axis):
    assert point.name == name and point.axis == axis
    assert [p.name for p in SWEEP] == ["k64-l1", "k16-l1", "k4-l1", "k64-l0.1", "k64-l10", "k64-l1-regression",
                                       "k8-l1", "k32-l1", "k64-l1-parallel"]  # fmt: skip
    assert SWEEP[-1].recipe.sft == "sft_parallel.yaml" and SWEEP[0].recipe.sft == "sft_demo.yaml"


def test_the_demo_point_of_the_grid_is_the_demos_first_refine_passes(tmp_path):
    """K = 64, λ = 1, diffusion, sequential with the demo's steps is the demo's own recipe: trained once for both,
    whatever number of refine passes the demo then chooses."""
    runs = Runs(PROFILES["demo"], root=tmp_path)
    assert runs.sweep_stages(DEMO_POINT) == ["sft", "refine/1", "refine/2"]
    choose(runs, 4)
    assert runs.sweep_final(DEMO_POINT) == runs.final("refine/2") != runs.final("refine")
    other = Runs(dataclasses.replace(PROFILES["demo"], sweep_steps=600), root=tmp_path)  # other steps: its own chain
    assert other.sweep_stages(DEMO_POINT)[0] == "sweep/k64-l1"
    parallel_point = SweepPoint(64, 1.0, sketch_decoding="parallel")
    assert runs.sweep_stages(parallel_point)[0] == "sweep/k64-l1-parallel"


def refine_pipeline(tmp_path, monkeypatch, gains: list[bool], profile=PROFILES["demo"]):
    """Run the refine stage with training and audits recorded, pass i raising auto beyond noise when
    gains[i - min_refine_passes]."""
    runs = Runs(profile, root=tmp_path)
    trained, audited = [], []

    def train(self, stage, config, *overrides, extra_key=None):
        trained.append((stage, config, overrides[overrides.index("--init") + 1], extra_key))
        return runs.final(stage)

    monkeypatch.setattr(demo.Pipeline, "train", train)
    monkeypatch.setattr(demo.Pipeline, "evaluate", lambda self, name, *a, **k: audited.append((name, a)))
    monkeypatch.setattr(demo, "another_pass_wanted", lambda r, n: n < profile.min_refine_passes or
                        (n < profile.max_refine_passes and gains[n - profile.min_refine_passes]))  # fmt: skip
    monkeypatch.setattr(demo, "choose", lambda r, n: refine_choice_record(r, n))
    demo.Pipeline(runs).run(["refine"])
    return runs, trained, audited


def refine_choice_record(runs, trained):
    choose(runs, trained)
    return {"passes": trained, "auto": [0.5] * trained}


@pytest.mark.parametrize("gains, more", [([False], 0), ([True, False], 1), ([True, True, False], 2), ([True] * 7, 6)])
def test_refine_passes_chain_are_audited_and_stop_when_validation_stops_rising(tmp_path, monkeypatch, gains, more):
    """The demo profile's first passes always, then one more each time the last rose, never past its maximum (2
    more: 4 always, at most 10)."""
    profile = PROFILES["demo"]
    assert profile.max_refine_passes - profile.min_refine_passes == 6
    passes = profile.min_refine_passes + more
    runs, trained, audited = refine_pipeline(tmp_path, monkeypatch, gains)
    assert [t[0] for t in trained] == [f"refine/{i}" for i in range(1, passes + 1)]
    assert trained[0][2] == runs.final("sft")
    for (_, config, init, key), before in zip(trained[1:], trained):
        assert (config, init, key) == ("sft_refine_demo.yaml", runs.final(before[0]), "refine")
    assert [a[0] for a in audited] == [f"validation-refine-{i}" for i in range(1, passes + 1)]
    assert all(a[1][1:] == ("auto,noise-latents,oracle", "validation", 100) for a in audited)
    assert [a[1][0] for a in audited] == [runs.final(f"refine/{i}") for i in range(1, passes + 1)]
    assert runs.chosen_refine_passes() == passes


def test_a_profile_with_fixed_passes_trains_them_unaudited(tmp_path, monkeypatch):
    runs, trained, audited = refine_pipeline(tmp_path, monkeypatch, [], PROFILES["parallel"])
    assert [t[0] for t in trained] == ["refine/1", "refine/2"] and audited == []
    assert [t[1] for t in trained] == ["sft_refine_parallel.yaml"] * 2
    assert runs.chosen_refine_passes() == 2


def test_grpo_starts_from_the_chosen_pass_and_refuses_without_a_choice(tmp_path, commands):
    runs = Runs(PROFILES["demo"], root=tmp_path)
    pipeline = demo.Pipeline(runs)
    with pytest.raises(ValueError, match="no refine pass chosen yet"):
        pipeline.run(["grpo"])
    choose(runs, 3)
    pipeline.run(["grpo"])
    assert arg(commands[-1], "--init") == str(runs.final("refine/3"))
    assert arg(commands[-1], "--config").endswith("grpo_demo.yaml")


def test_baselines_train_the_demos_chain_on_their_own_traces(tmp_path, commands):
    runs = Runs(PROFILES["demo"], root=tmp_path)
    choose(runs, 3)
    demo.Pipeline(runs).run(["textonly"])
    assert [arg(c, "--output_dir") for c in commands] == [
        str(runs.run_dir(s)) for s in runs.baseline_stages("textonly")
    ]
    assert [arg(c, "--config").rsplit("/", 1)[1] for c in commands] == ["sft_demo.yaml"] + ["sft_refine_demo.yaml"] * 3
    assert [arg(c, "--init") for c in commands] == [str(runs.stage0())] + [
        str(runs.final(s)) for s in runs.baseline_stages("textonly")[:-1]
    ]
    assert all(arg(c, "--styles") == "{text-only: 1.0}" for c in commands)
    assert sum(int(arg(c, "--max_steps")) for c in commands) == runs.supervised_steps() == 1200 + 3 * 600


def test_the_audit_asks_every_wording_and_gives_the_text_cot_model_room(tmp_path, commands, monkeypatch):
    runs = Runs(PROFILES["demo"], root=tmp_path)
    choose(runs, 2)
    monkeypatch.setattr(demo, "SHIPPED_DEMO", tmp_path / "shipped")
    save_pretrained(build_preset("tiny"), tmp_path / "shipped")
    demo.Pipeline(runs).run(["eval"])
    by_name = {arg(c, "--out").rsplit("/", 1)[1]: c for c in commands}
    for kind in ("seen", "held-out-template", "held-out-synonym"):
        for model in ("demo", "textonly", "direct"):
            command = by_name[f"test-{model}-{kind}"]
            assert arg(command, "--questions") == kind
            assert arg(command, "--limit") == str(len(DEFAULT_FAMILIES) * PROFILES["demo"].paraphrase_per_family)
    textonly = [c for name, c in by_name.items() if name.startswith("test-textonly")]
    assert len(textonly) == 4
    for command in textonly:  # a 16×16 text-only trace is 355–365 tokens
        assert arg(command, "--checkpoint") == str(runs.final("textonly/refine/2"))
        assert int(arg(command, "--max-new-tokens")) == TEXT_COT_MAX_NEW_TOKENS >= 448
    assert "--max-new-tokens" not in by_name["test-demo"]
    assert arg(by_name["test-demo"], "--limit") == str(8 * 100) == str(len(DEFAULT_FAMILIES) * 100)
    # the ship rule's evidence: the new demo in both wordings and the shipped demo, on the same validation puzzles
    rule = [by_name[n] for n in ("validation-demo", "validation-demo-paraphrased", "validation-shipped-demo")]
    assert {arg(c, "--limit") for c in rule} == {str(len(DEFAULT_FAMILIES) * 100)}
    assert {arg(c, "--split") for c in rule} == {"validation"}
    assert arg(rule[1], "--questions") == "paraphrased" and arg(rule[2], "--checkpoint") == str(tmp_path / "shipped")


def test_a_sweep_point_trains_its_chain_with_its_knobs_and_recipe_then_is_audited(tmp_path, commands):
    runs = Runs(PROFILES["demo"], root=tmp_path)
    for point, sft, refine in ((SWEEP[5], "sft_demo.yaml", "sft_refine_demo.yaml"),
                               (SWEEP[-1], "sft_parallel.yaml", "sft_refine_parallel.yaml")):  # fmt: skip
        commands.clear()
        demo.Pipeline(runs).sweep_point(point)
        chain = runs.sweep_stages(point)
        trains, evals = commands[:-1], commands[-1]
        assert [arg(c, "--output_dir") for c in trains] == [str(runs.run_dir(s)) for s in chain]
        assert [arg(c, "--config").rsplit("/", 1)[1] for c in trains] == [sft, refine, refine]
        assert [arg(c, "--init") for c in trains] == [str(runs.stage0())] + [str(runs.final(s)) for s in
                                                                                    chain[:-1]]  # fmt: skip
        for c, stage in zip(trains, chain):
            names = ("--latent_budget", "--diffusion_loss_weight", "--head_type", "--sketch_decoding")
            assert [arg(c, k) for k in names] == ["64", "1.0", point.head_type, point.sketch_decoding]
            assert arg(c, "--max_steps") == str(runs.steps(stage))
        assert arg(evals, "--checkpoint") == str(runs.sweep_final(point))
        assert arg(evals, "--out") == str(runs.eval_dir(f"sweep-{point.name}"))
        assert arg(evals, "--limit") == str(len(DEFAULT_FAMILIES) * 100)


def test_the_sweep_stage_trains_only_the_named_points_in_the_grids_order(monkeypatch, capsys):
    trained = []
    monkeypatch.setattr(demo.Pipeline, "sweep_point", lambda self, point: trained.append(point.name))
    assert demo.main(["--stages", "sweep", "--points", "k64-l1-parallel,k16-l1,k4-l1"]) == 0
    assert trained == ["k16-l1", "k4-l1", "k64-l1-parallel"]
    assert demo.main(["--stages", "sweep", "--points", "k7-l1"]) == 2
    assert "unknown sweep point k7-l1" in capsys.readouterr().err


def test_the_parallel_profile_runs_its_chain_and_ships_beside_the_demo(monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(demo.Pipeline, "run", lambda self, stages: ran.append((self.profile.name, stages)))
    assert demo.main(["--profile", "parallel"]) == 0
    assert ran == [("parallel", list(demo.BESIDE_STAGES))]
    assert demo.main(["--profile", "parallel", "--stages", "sweep,eval"]) == 0
    assert ran[-1] == ("parallel", ["eval"]) and "does not run sweep" in capsys.readouterr().out
    assert demo.main(["--quick", "--stages", "eval,ship,report"]) == 0
    assert ran[-1] == ("quick", ["eval"])  # a smoke run never writes assets/


def test_transfer_starts_from_the_grpo_model_with_the_audit_sampler_and_ends_in_grpo(tmp_path, monkeypatch):
    """Phase 2: phase 1's GRPO model is saved with the audit's sampler, each transfer pass starts from the one
    before it, and the last GRPO from the last pass; a second run finds the handoff and does not write it again."""
    runs = Runs(PHASED, root=tmp_path)
    model = build_preset("tiny")
    save_pretrained(model, runs.final("grpo"))
    calls = []

    def train(self, stage, config, *overrides, extra_key=None):
        calls.append((stage, config, overrides[overrides.index("--init") + 1], extra_key))
        return runs.final(stage)

    monkeypatch.setattr(demo.Pipeline, "train", train)
    demo.Pipeline(runs).run(["transfer"])
    passes = runs.transfer_stages()
    assert [c[0] for c in calls] == [*passes, "transfer/grpo"]
    assert [c[1] for c in calls] == ["sft_refine_demo.yaml"] * len(passes) + ["grpo_demo.yaml"]
    assert [c[2] for c in calls] == [runs.handoff()] + [runs.final(p) for p in passes]
    handed = load_pretrained(runs.handoff())
    assert (handed.config.diffusion_solver, handed.config.diffusion_steps) == PROFILES["demo"].sampler
    for (name, a), b in zip(model.state_dict().items(), handed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    stamp = (runs.handoff() / "model.safetensors").stat().st_mtime_ns
    demo.Pipeline(runs).run(["transfer"])
    assert (runs.handoff() / "model.safetensors").stat().st_mtime_ns == stamp


def test_data_stage_writes_both_family_lists_and_rewrites_a_stale_folder(tmp_path, monkeypatch):
    from model.sketchworld import EARLY_FAMILIES
    from model.sketchworld.schema import GENERATOR_VERSION

    runs = Runs(PHASED, root=tmp_path)
    written = []
    monkeypatch.setattr(demo.Pipeline, "timed", lambda self, name, args: written.append(args))
    p = PROFILES["demo"]
    record = {"generator_version": GENERATOR_VERSION, "per_family": p.per_family, "seed": p.data_seed}
    for folder, families in ((runs.early_data, EARLY_FAMILIES), (runs.data, DEFAULT_FAMILIES)):
        folder.mkdir(parents=True)
        (folder / "train.parquet").write_bytes(b"rows")
        (folder / "sketchworld.json").write_text(json.dumps({**record, "families": families}))
    demo.Pipeline(runs).run(["data"])
    assert written == [] and (runs.data / "train.parquet").read_bytes() == b"rows"  # both current: kept
    (runs.data / "sketchworld.json").write_text(json.dumps({**record, "generator_version": "3",
                                                            "families": EARLY_FAMILIES}))  # fmt: skip
    demo.Pipeline(runs).run(["data"])
    assert len(written) == 1 and not runs.data.exists()  # the stale folder is removed, then written again
    args = [str(a) for a in written[0]]
    assert arg(args, "--out") == str(runs.data) and arg(args, "--families") == ",".join(DEFAULT_FAMILIES)
    assert (runs.early_data / "train.parquet").read_bytes() == b"rows"


def test_stage_commands_keep_a_pythonpath_set_before(monkeypatch):
    seen = {}
    monkeypatch.setenv("PYTHONPATH", "/opt/wheels")
    monkeypatch.setattr(demo.subprocess, "run", lambda args, check, cwd, env: seen.update(env))
    demo.sh(["true"])
    assert seen["PYTHONPATH"].split(":") == [str(demo.ROOT), "/opt/wheels"]


def test_an_evaluation_is_skipped_only_when_it_is_of_the_same_checkpoint(tmp_path, commands):
    runs = Runs(PROFILES["demo"], root=tmp_path)
    out = runs.eval_dir("sweep-k4-l1")
    out.mkdir(parents=True)
    model = runs.final("sweep/k4-l1")
    (out / "results.json").write_text(json.dumps({"config": {"checkpoint": str(model)}}))
    pipeline = demo.Pipeline(runs)
    pipeline.evaluate("sweep-k4-l1", model, "auto")
    assert commands == []
    other = runs.final("sweep/k8-l1")  # say, a grid unpacked over it: the stored results are of another model
    pipeline.evaluate("sweep-k4-l1", other, "auto")
    assert len(commands) == 1 and arg(commands[0], "--checkpoint") == str(other)


def test_a_parallel_checkpoint_is_audited_with_its_recipes_refinement_count(tmp_path, commands):
    model = build_preset("tiny")
    model.set_sketch_decoding("parallel", 2)
    save_pretrained(model, tmp_path / "parallel")
    copy_model(tmp_path / "parallel", tmp_path / "shipped", refine_passes=1)
    assert load_pretrained(tmp_path / "shipped").refine_passes == 1
    with pytest.raises(ValueError, match="trained with 2 refinement passes, not 3"):
        copy_model(tmp_path / "parallel", tmp_path / "other", refine_passes=3)
    save_pretrained(build_preset("tiny"), tmp_path / "sequential")
    pipe = demo.Pipeline(Runs(PROFILES["demo"], root=tmp_path))
    pipe.evaluate("a", tmp_path / "parallel", "auto")
    pipe.evaluate("b", tmp_path / "sequential", "auto")
    parallel, sequential = commands
    assert arg(parallel, "--refine-passes") == "0" and "--refine-passes" not in sequential
