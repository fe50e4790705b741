"""The demo pipeline's bookkeeping (pipeline/layout.py) and shipping (pipeline/ship.py) on a tiny model."""

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

import pipeline.report as report
from model.core.checkpoint import build_preset, load_pretrained, save_pretrained
from pipeline.checkpoints import copy_model
from pipeline.layout import PREVIOUS_DEMO, PROFILES, SWEEP, Runs
from pipeline.report import check
from pipeline.ship import size_mb

# the demo profile with a phase 2 (transfer passes): the pipeline still supports it, the demo no longer uses it
PHASED = dataclasses.replace(PROFILES["demo"], transfer_passes=2)


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
    copy_model(source, tmp_path / "same")  # no sampler: the source's
    assert load_pretrained(tmp_path / "same").config.diffusion_steps == 10


def test_run_layout_and_timings(tmp_path):
    runs = Runs(PHASED, root=tmp_path)
    assert runs.final("sft") == tmp_path / "runs/demo/sft" / f"checkpoint-{PROFILES['demo'].sft_steps:06d}/model"
    assert runs.steps("sweep/k4-l1") == PROFILES["demo"].sweep_steps
    # a sweep point's chain: stage 1, then refine passes of refine_steps, with the point's knobs; stage 1 alone in
    # a profile without sweep passes
    point = SWEEP[0]
    alone = Runs(dataclasses.replace(PROFILES["demo"], sweep_passes=0), root=tmp_path)
    assert alone.sweep_stages(point) == ["sweep/k4-l1"] and alone.sweep_final(point) == alone.final("sweep/k4-l1")
    chained = Runs(PROFILES["demo"], root=tmp_path)  # the demo's grid: the demo's two refine passes
    chain = chained.sweep_stages(point)
    assert chain == ["sweep/k4-l1", "sweep/k4-l1/refine/1", "sweep/k4-l1/refine/2"]
    assert chained.steps(chain[0]) == PROFILES["demo"].sweep_steps
    assert all(chained.steps(s) == PROFILES["demo"].refine_steps for s in chain[1:])
    assert chained.sweep_final(point) == tmp_path / "runs/demo" / chain[-1] / (
        f"checkpoint-{PROFILES['demo'].refine_steps:06d}/model"
    )
    assert all(runs.data_for(s) == runs.data for s in chain)
    # the baselines get the steps of the model they are compared with: SFT, then refine, then transfer
    refine, transfer = runs.refine_stages(), runs.transfer_stages()
    assert refine == [f"refine/{i + 1}" for i in range(PROFILES["demo"].refine_passes)] and refine
    assert transfer == [f"transfer/{i + 1}" for i in range(PHASED.transfer_passes)] and transfer
    supervised = runs.steps("sft") + sum(runs.steps(r) for r in refine + transfer)
    assert runs.steps("textonly") == runs.steps("direct") == supervised
    assert runs.final("refine") == runs.final(refine[-1]) != runs.final("sft")
    assert runs.before_grpo() == runs.final(transfer[-1]) and runs.steps("transfer/grpo") == runs.steps("grpo")
    assert runs.after_grpo() == tmp_path / "runs/demo/transfer/grpo" / f"checkpoint-{runs.steps('grpo'):06d}/model"
    # phase 1 reads the early families' data, everything after it the default families'
    assert runs.early_data == tmp_path / "data/sketchworld-early"
    for stage in ["warmup", "sft", *refine, "grpo"]:
        assert runs.data_for(stage) == runs.early_data, stage
    for stage in [*transfer, "transfer/grpo", "textonly", "direct", "sweep/k4-l1"]:
        assert runs.data_for(stage) == runs.data, stage
    # a profile without phase 2: one dataset, and the audited models are the refine and GRPO ones
    single = Runs(PROFILES["demo"], root=tmp_path)  # the demo profile has none (sketch-world v5 on)
    assert single.early_data == single.data_for("sft") == single.data and single.transfer_stages() == []
    assert (single.before_grpo(), single.after_grpo()) == (single.final("refine"), single.final("grpo"))
    assert single.steps("textonly") == runs.steps("sft") + sum(runs.steps(r) for r in refine)
    assert runs.final(refine[0]) == tmp_path / "runs/demo/refine/1" / f"checkpoint-{runs.steps(refine[0]):06d}/model"
    assert runs.data == tmp_path / "data/sketchworld" and Runs(PROFILES["quick"], tmp_path).data.name.endswith("quick")
    runs.base.mkdir(parents=True)
    runs.record_time("sft", 10.04)
    runs.record_time("sft", 5.0)  # a resumed stage adds up
    runs.record_time("grpo", 1.0)
    assert json.loads(runs.timings.read_text()) == {"sft": 15.0, "grpo": 1.0}


@pytest.mark.parametrize(
    "point, name, axis",
    [(SWEEP[0], "k4-l1", "budget"), (SWEEP[5], "k64-l0.1", "lambda"), (SWEEP[-2], "k64-l1-regression", "head"),
     (SWEEP[-1], "k64-l1-sequential", "decoding")],
)  # fmt: skip
def test_sweep_point_names(point, name, axis):
    assert point.name == name and point.axis == axis
    assert len({p.name for p in SWEEP}) == len(SWEEP)


def test_the_demo_point_of_the_grid_is_the_demo_chain(tmp_path):
    """K = 64, λ = 1, diffusion, parallel with the demo's steps is the demo's own recipe: trained once for both."""
    runs = Runs(PROFILES["demo"], root=tmp_path)
    demo_point = next(p for p in SWEEP if p.name == "k64-l1")
    assert runs.sweep_stages(demo_point) == ["sft", *runs.refine_stages()]
    assert runs.sweep_final(demo_point) == runs.final("refine")
    other = Runs(dataclasses.replace(PROFILES["demo"], sweep_passes=1), root=tmp_path)  # other steps: its own chain
    assert other.sweep_stages(demo_point) == ["sweep/k64-l1", "sweep/k64-l1/refine/1"]
    for point in SWEEP:
        if point is not demo_point:
            assert runs.sweep_stages(point)[0] == f"sweep/{point.name}"


def test_target_check_counts_an_exact_margin_as_met():
    """59 % − 49 % is exactly the 10-point target even though the floats differ by an ulp; 9.9 points is not."""
    assert (0.59 - 0.49) < 0.10  # the float subtraction the check must see through
    assert check("use", 0.59 - 0.49, 0.10).startswith("- met")
    assert check("use", 0.099, 0.10).startswith("- **not met**")
    assert check("drift", 0.03, 0.02, at_least=False).startswith("- **not met**")
    assert check("x", None, 0.1) == "- x: not measured (target 10.0)."


def test_refine_passes_chain_from_stage_one_and_grpo_starts_from_the_last(tmp_path, monkeypatch):
    """Each refine pass starts from the model of the one before it (the first from stage 1), GRPO from the last."""
    from pipeline.demo import Pipeline

    runs = Runs(PHASED, root=tmp_path)
    calls = []

    def train(self, stage, config, *overrides, extra_key=None):
        calls.append((stage, config, overrides[overrides.index("--init") + 1], extra_key))
        return runs.final(stage)

    monkeypatch.setattr(Pipeline, "train", train)
    Pipeline(runs).run(["refine", "grpo"])
    passes = runs.refine_stages()
    assert [c[0] for c in calls] == [*passes, "grpo"]
    assert calls[0][2] == runs.final("sft")
    for (_, config, init, key), before in zip(calls[1:-1], passes):
        assert (config, init, key) == ("sft_refine_demo.yaml", runs.final(before), "refine")
    assert calls[-1][2] == runs.final(passes[-1]) == runs.final("refine")


def test_transfer_starts_from_the_grpo_model_with_the_audit_sampler_and_ends_in_grpo(tmp_path, monkeypatch):
    """Phase 2: phase 1's GRPO model is saved with the audit's sampler, each transfer pass starts from the one
    before it, and the last GRPO from the last pass; a second run finds the handoff and does not write it again."""
    from pipeline.demo import Pipeline

    runs = Runs(PHASED, root=tmp_path)
    model = build_preset("tiny")
    save_pretrained(model, runs.final("grpo"))
    calls = []

    def train(self, stage, config, *overrides, extra_key=None):
        calls.append((stage, config, overrides[overrides.index("--init") + 1], extra_key))
        return runs.final(stage)

    monkeypatch.setattr(Pipeline, "train", train)
    Pipeline(runs).run(["transfer"])
    passes = runs.transfer_stages()
    assert [c[0] for c in calls] == [*passes, "transfer/grpo"]
    assert [c[1] for c in calls] == ["sft_refine_demo.yaml"] * len(passes) + ["grpo_demo.yaml"]
    assert [c[3] for c in calls] == ["refine"] * len(passes) + ["grpo"]
    assert [c[2] for c in calls] == [runs.handoff()] + [runs.final(p) for p in passes]
    handed = load_pretrained(runs.handoff())
    assert (handed.config.diffusion_solver, handed.config.diffusion_steps) == PROFILES["demo"].sampler
    assert handed.config.sketch_temperature == PROFILES["demo"].sketch_temperature
    for (name, a), b in zip(model.state_dict().items(), handed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    stamp = (runs.handoff() / "model.safetensors").stat().st_mtime_ns
    Pipeline(runs).run(["transfer"])
    assert (runs.handoff() / "model.safetensors").stat().st_mtime_ns == stamp


def test_data_stage_writes_both_family_lists_and_rewrites_a_stale_folder(tmp_path, monkeypatch):
    from model.sketchworld import DEFAULT_FAMILIES, EARLY_FAMILIES
    from model.sketchworld.schema import GENERATOR_VERSION
    from pipeline.demo import Pipeline

    runs = Runs(PHASED, root=tmp_path)
    written = []
    monkeypatch.setattr(Pipeline, "timed", lambda self, name, args: written.append(args))
    p = PROFILES["demo"]
    record = {"generator_version": GENERATOR_VERSION, "per_family": p.per_family, "seed": p.data_seed}
    for folder, families in ((runs.early_data, EARLY_FAMILIES), (runs.data, DEFAULT_FAMILIES)):
        folder.mkdir(parents=True)
        (folder / "train.parquet").write_bytes(b"rows")
        (folder / "sketchworld.json").write_text(json.dumps({**record, "families": families}))
    Pipeline(runs).run(["data"])
    assert written == [] and (runs.data / "train.parquet").read_bytes() == b"rows"  # both current: kept
    (runs.data / "sketchworld.json").write_text(json.dumps({**record, "generator_version": "3",
                                                            "families": EARLY_FAMILIES}))  # fmt: skip
    Pipeline(runs).run(["data"])
    assert len(written) == 1 and not runs.data.exists()  # the stale folder is removed, then written again
    args = [str(a) for a in written[0]]
    assert args[args.index("--out") + 1] == str(runs.data)
    assert args[args.index("--families") + 1] == ",".join(DEFAULT_FAMILIES)
    assert (runs.early_data / "train.parquet").read_bytes() == b"rows"


def test_results_know_their_training_steps_and_flag_unequal_compute(tmp_path, monkeypatch):
    import pipeline.report as report

    monkeypatch.setattr(report, "RESULTS", tmp_path)
    summary = [{"mode": m, "family": f, "accuracy": a, "ci_low": None, "ci_high": None}
               for f in report.SKETCH_FAMILIES for m, a in (("text-only", 0.2), ("direct", 0.2))]  # fmt: skip
    for name, folder in (("short", "runs/demo/textonly/checkpoint-001200/model"), ("none", "assets/x")):
        (tmp_path / f"{name}.json").write_text(json.dumps({"config": {"checkpoint": folder}, "summary": summary}))
    short, none = report.Result("short"), report.Result("none")
    assert (short.steps, none.steps) == (1200, None)
    final = report.Result("none")  # stands in for the audited model: only the benefit lines are read here
    final.summary = pd.DataFrame([{"mode": "auto", "family": f, "accuracy": 0.5} for f in report.SKETCH_FAMILIES])
    lines = [x for x in report.targets(final, final, final, short, none, None) if "benefit" in x]
    assert "unequal compute" in lines[0] and "1200 SFT steps" in lines[0] and "unequal" not in lines[1]
    # 50 − 20 = 30 points over both, but only the equal-compute baseline can meet the target
    assert lines[0].startswith("- **not checked**") and lines[0].endswith(": 30.0 (target ≥ 10.0).")
    assert lines[1].startswith("- met")


def text_cot_benefit_line(results: Path, rows: list[dict]) -> str:
    """The report's benefit line for an audited model at 0.5 in every sketch family against a text-only-CoT result
    with `rows`, stored in `results` as trained for the demo profile's supervised steps."""
    checkpoint = f"runs/demo/textonly/checkpoint-{PROFILES['demo'].supervised_steps:06d}/model"
    (results / "baseline.json").write_text(json.dumps({"config": {"checkpoint": checkpoint}, "summary": rows}))
    final = report.Result("absent")
    final.summary = pd.DataFrame([{"mode": "auto", "family": f, "accuracy": 0.5} for f in report.SKETCH_FAMILIES])
    lines = report.targets(final, final, final, report.Result("baseline"), report.Result("absent"), None)
    return [x for x in lines if "text-only-CoT" in x][0]


def test_benefit_compares_the_families_both_were_measured_on_and_says_which_are_missing(tmp_path, monkeypatch):
    import pipeline.report as report

    monkeypatch.setattr(report, "RESULTS", tmp_path)
    ours, missing = report.SKETCH_FAMILIES[:-1], report.SKETCH_FAMILIES[-1]
    rows = [{"mode": "text-only", "family": f, "accuracy": 0.1 * i} for i, f in enumerate(ours)]
    rows.append({"mode": "text-only", "family": "tilt", "accuracy": 0.0})  # a family the audited model lacks
    line = text_cot_benefit_line(tmp_path, rows)
    expected = sum(0.5 - 0.1 * i for i in range(len(ours))) / len(ours)  # over the common families only
    assert f": {report.pct(expected)} (target" in line
    assert f"**{missing} not measured** for it: over {', '.join(ours)} only" in line and "unequal" not in line
    assert line.startswith("- **not checked**")


def test_grpo_check_compares_the_models_as_trained_not_the_snapped_one(tmp_path, monkeypatch):
    """The shipped (snapped) audit is `final`; GRPO's erosion check reads the GRPO and SFT audits without snapping."""
    monkeypatch.setattr(report, "RESULTS", tmp_path)

    def result(auto, noise):
        r = report.Result("absent")
        r.summary = pd.DataFrame([{"mode": m, "family": f, "accuracy": a} for f in report.SKETCH_FAMILIES
                                  for m, a in (("auto", auto), ("noise-latents", noise))])  # fmt: skip
        return r

    final, grpo, sft = result(0.9, 0.1), result(0.5, 0.2), result(0.6, 0.2)
    line = [x for x in report.targets(final, sft, grpo, final, final, None) if "GRPO keeps use" in x][0]
    assert f": {report.pct(-0.1)} (target" in line and "**not met**" in line  # (0.5 − 0.2) − (0.6 − 0.2)
    assert not [x for x in report.targets(final, sft, report.Result("absent"), final, final, None) if "GRPO" in x]


def test_report_figures_are_the_same_file_for_the_same_results(tmp_path, monkeypatch):
    import plotly.graph_objects as go

    import pipeline.report_figures as report_figures

    monkeypatch.setattr(report_figures, "FIGURES", tmp_path / "figures")
    monkeypatch.setattr(report_figures, "ASSETS", tmp_path)  # no registry: no sweep figures

    def no_png(*args, **kwargs):
        raise RuntimeError("no kaleido")

    monkeypatch.setattr(go.Figure, "write_image", no_png)  # the PNG export falls back to a link to the HTML
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "stale.html").write_text("an older run's figure")
    final = report.Result("absent")
    rows = [(f, m, a) for f in report.SKETCH_FAMILIES for m, a in (("auto", 0.6), ("oracle", 0.9))]
    final.summary = pd.DataFrame(
        [{"mode": m, "family": f, "accuracy": a, "ci_low": a - 0.1, "ci_high": a + 0.1} for f, m, a in rows]
    )
    assert report_figures.figures(final) == ["[audit_per_family](../assets/figures/audit_per_family.html)"]  # docs/
    first = (tmp_path / "figures" / "audit_per_family.html").read_bytes()
    report_figures.figures(final)
    assert (tmp_path / "figures" / "audit_per_family.html").read_bytes() == first
    assert b'id="audit_per_family"' in first
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["audit_per_family.html"]


def test_a_sweep_point_trains_its_chain_with_its_knobs_then_is_audited(tmp_path, monkeypatch):
    import pipeline.demo as demo

    runs = Runs(dataclasses.replace(PROFILES["demo"], sweep_passes=2), root=tmp_path)
    calls = []
    monkeypatch.setattr(demo, "sh", lambda args, threads=None: calls.append([str(a) for a in args]))
    point = SWEEP[-2]  # the regression head
    demo.Pipeline(runs).sweep_point(point)
    chain = runs.sweep_stages(point)
    assert len(chain) == 3
    trains, evals = calls[:-1], calls[-1]
    assert [c[c.index("--output_dir") + 1] for c in trains] == [str(runs.run_dir(s)) for s in chain]
    assert [c[c.index("--config") + 1].rsplit("/", 1)[1] for c in trains] == (
        ["sft_demo.yaml"] + ["sft_refine_demo.yaml"] * (len(chain) - 1)
    )
    inits = [c[c.index("--init") + 1] for c in trains]
    assert inits == [str(runs.final("warmup"))] + [str(runs.final(s)) for s in chain[:-1]]
    for c, stage in zip(trains, chain):
        names = ("--latent_budget", "--diffusion_loss_weight", "--head_type", "--sketch_decoding")
        knobs = {k: c[c.index(k) + 1] for k in names}
        assert knobs == {"--latent_budget": "64", "--diffusion_loss_weight": "1.0", "--head_type": "regression",
                         "--sketch_decoding": "parallel"}  # fmt: skip
        assert c[c.index("--max_steps") + 1] == str(runs.steps(stage))
    assert evals[evals.index("--checkpoint") + 1] == str(runs.sweep_final(point))
    assert evals[evals.index("--out") + 1] == str(runs.eval_dir(f"sweep-{point.name}"))


def test_stage_commands_keep_a_pythonpath_set_before(monkeypatch):
    import pipeline.demo as demo

    seen = {}
    monkeypatch.setenv("PYTHONPATH", "/opt/wheels")
    monkeypatch.setattr(demo.subprocess, "run", lambda args, check, cwd, env: seen.update(env))
    demo.sh(["true"])
    assert seen["PYTHONPATH"].split(":") == [str(demo.ROOT), "/opt/wheels"]


def test_the_sweep_recipe_is_read_from_the_evaluated_checkpoint():
    def result(checkpoint):
        r = report.Result("no-such-evaluation")
        r.config = {"checkpoint": checkpoint}
        return r

    p = PROFILES["demo"]
    chained = report.sweep_recipe(result("/x/runs/demo/sweep/k4-l1/refine/2/checkpoint-000600/model"))
    assert f"{p.sweep_steps} steps" in chained and "then 2 refine passes of 600 steps" in chained
    assert f"{p.sweep_steps + 1200} steps in all" in chained
    single = report.sweep_recipe(result("/x/runs/demo/sweep/k4-l1/refine/1/checkpoint-000400/model"))
    assert "then 1 refine pass of 400 steps" in single and f"{p.sweep_steps + 400} steps in all" in single
    alone = report.sweep_recipe(result("/x/runs/demo/sweep/k4-l1/checkpoint-000300/model"))
    assert alone.startswith("300 steps") and "no refine passes" in alone


def test_an_evaluation_is_skipped_only_when_it_is_of_the_same_checkpoint(tmp_path, monkeypatch):
    import pipeline.demo as demo

    runs = Runs(PROFILES["demo"], root=tmp_path)
    calls = []
    monkeypatch.setattr(demo, "sh", lambda args, threads=None: calls.append([str(a) for a in args]))
    out = runs.eval_dir("sweep-k4-l1")
    out.mkdir(parents=True)
    model = runs.final("sweep/k4-l1")
    (out / "results.json").write_text(json.dumps({"config": {"checkpoint": str(model)}}))
    pipeline = demo.Pipeline(runs)
    pipeline.evaluate("sweep-k4-l1", model, "auto")
    assert calls == []
    other = runs.final("sweep/k8-l1")  # say, a grid unpacked over it: the stored results are of another model
    pipeline.evaluate("sweep-k4-l1", other, "auto")
    assert len(calls) == 1 and calls[0][calls[0].index("--checkpoint") + 1] == str(other)


def test_use_in_the_registry_is_the_paired_difference_with_its_interval(tmp_path):
    """auto − noise per family from the predictions, the interval from the per-puzzle differences (by hand here)."""
    from pipeline.ship import use_metrics

    auto = [1, 1, 1, 0, 1, 0]  # maze puzzles m0..m5, then fold f0..f1
    noise = [0, 1, 0, 0, 0, 0]
    rows = [dict(id=f"m{i}", family="maze", mode=mode, correct=bool(v))
            for i in range(4) for mode, v in (("auto", auto[i]), ("noise-latents", noise[i]))]  # fmt: skip
    rows += [dict(id=f"f{i}", family="fold", mode=mode, correct=bool(v))
             for i in range(2) for mode, v in (("auto", auto[4 + i]), ("noise-latents", noise[4 + i]))]  # fmt: skip
    pd.DataFrame(rows).to_parquet(tmp_path / "predictions.parquet")
    got = use_metrics(tmp_path)
    maze = [1, 0, 1, 0]  # differences
    mean, sd = 0.5, (sum((d - 0.5) ** 2 for d in maze) / 3) ** 0.5
    assert got["use"]["maze"] == 0.5 and got["use"]["fold"] == 0.5
    assert got["use_ci_low"]["maze"] == pytest.approx(mean - 1.96 * sd / 2, abs=1e-4)
    assert got["use_ci_high"]["maze"] == pytest.approx(mean + 1.96 * sd / 2, abs=1e-4)
    assert got["use"]["overall"] == pytest.approx(3 / 6, abs=1e-4)
    pd.DataFrame([r for r in rows if r["mode"] == "auto"]).to_parquet(tmp_path / "predictions.parquet")
    assert use_metrics(tmp_path) == {}  # no noise-latents run: no use


def test_the_report_writes_its_blocks_and_refuses_a_document_without_them(tmp_path, capsys):
    from pipeline.report import replace_block

    doc = tmp_path / "RESULTS.md"
    doc.write_text("# Results\n<!-- results:start -->\nold\n<!-- results:end -->\nafter\n")
    assert replace_block(doc, "results", "new table")
    assert doc.read_text() == "# Results\n<!-- results:start -->\nnew table\n<!-- results:end -->\nafter\n"
    plain = tmp_path / "README.md"
    plain.write_text("no markers\n")
    assert not replace_block(plain, "headline", "x") and plain.read_text() == "no markers\n"
    assert "has no <!-- headline:start -->" in capsys.readouterr().err


def test_a_chosen_refinement_count_reaches_the_shipped_config_and_the_audit(tmp_path, monkeypatch):
    import pipeline.demo as demo
    from pipeline.checkpoints import copy_model

    model = build_preset("tiny")
    model.set_sketch_decoding("parallel", 2)
    save_pretrained(model, tmp_path / "parallel")
    copy_model(tmp_path / "parallel", tmp_path / "shipped", refine_passes=1)
    assert load_pretrained(tmp_path / "shipped").refine_passes == 1
    with pytest.raises(ValueError, match="trained with 2 refinement passes, not 3"):
        copy_model(tmp_path / "parallel", tmp_path / "other", refine_passes=3)
    save_pretrained(build_preset("tiny"), tmp_path / "sequential")
    calls = []
    monkeypatch.setattr(demo, "sh", lambda args, threads=None: calls.append([str(a) for a in args]))
    runs = Runs(dataclasses.replace(PROFILES["demo"], inference_refine_passes=1), root=tmp_path)
    pipe = demo.Pipeline(runs)
    pipe.evaluate("a", tmp_path / "parallel", "auto")
    pipe.evaluate("b", tmp_path / "sequential", "auto")
    parallel, sequential = calls
    assert parallel[parallel.index("--refine-passes") + 1] == "1" and "--refine-passes" not in sequential


def test_the_papers_claims_are_judged_by_their_intervals(tmp_path, monkeypatch):
    """Each claim compares two points: non-overlapping intervals in the claimed direction hold, the other way do
    not hold, overlapping ones are within noise, a point without an audit is not measured."""
    import pipeline.report as report
    from pipeline.claims import CLAIMS, check_claims, claims_table

    monkeypatch.setattr(report, "RESULTS", tmp_path)

    def audit(name, accuracy, half):
        rows = [{"mode": "auto", "family": f, "accuracy": accuracy, "ci_low": accuracy - half,
                 "ci_high": accuracy + half} for f in [*report.SKETCH_FAMILIES, "overall"]]  # fmt: skip
        (tmp_path / f"sweep-{name}.json").write_text(json.dumps({"config": {}, "summary": rows}))

    audit("k32-l1", 0.6, 0.05)
    audit("k16-l1", 0.4, 0.05)  # K = 32 above 16, clear: holds
    audit("k64-l1", 0.8, 0.05)  # 64 above 32, clear: "32 above 64" does not hold, "spatial peak at 64" holds
    audit("k64-l10", 0.77, 0.05)  # overlapping: within noise
    results = {p.name: report.Result(f"sweep-{p.name}") for p in SWEEP}
    verdicts = {(r["better"], r["worse"], r["families"]): r["verdict"] for r in check_claims(results)}
    assert verdicts[("k32-l1", "k16-l1", "all")] == "holds"
    assert verdicts[("k32-l1", "k64-l1", "all")] == "does not hold"
    assert verdicts[("k64-l1", "k32-l1", "connect, maze, sink")] == "holds"
    assert verdicts[("k64-l1", "k64-l10", "all")] == "within noise"
    assert verdicts[("k64-l1", "k64-l1-regression", "all")] == "not measured"
    table = claims_table(check_claims(results))
    assert table.count("\n") == len(CLAIMS) + 1 and "60.0 [55.0–65.0]" in table


def test_the_sweep_stage_trains_only_the_named_points(monkeypatch, capsys):
    import pipeline.demo as demo

    trained = []
    monkeypatch.setattr(demo.Pipeline, "sweep_point", lambda self, point: trained.append(point.name))
    assert demo.main(["--stages", "sweep", "--points", "k64-l1-sequential,k8-l1"]) == 0
    assert sorted(trained) == ["k64-l1-sequential", "k8-l1"]
    assert demo.main(["--stages", "sweep", "--points", "k7-l1"]) == 2
    assert "unknown sweep point k7-l1" in capsys.readouterr().err


def test_a_kept_demo_is_described_and_compared_by_its_own_recipe(tmp_path, monkeypatch):
    """After `ship --keep-demo` the registry records the demo's recipe: the report's lineage and equal-compute check
    use its steps, not the profile's (a baseline at the profile's steps is then unequal compute)."""
    results = tmp_path / "assets" / "results"
    results.mkdir(parents=True)
    monkeypatch.setattr(report, "RESULTS", results)
    assert report.supervised_steps() == PROFILES["demo"].supervised_steps and report.shipped_recipe() is None
    registry = tmp_path / "assets" / "checkpoints" / "registry.json"
    registry.parent.mkdir()
    registry.write_text(json.dumps({"checkpoints": [{"name": "demo", "recipe": PREVIOUS_DEMO}]}))
    assert report.supervised_steps() == PREVIOUS_DEMO["supervised_steps"] != PROFILES["demo"].supervised_steps
    assert report.lineage() == PREVIOUS_DEMO["lineage"]
    line = text_cot_benefit_line(results, [{"mode": "text-only", "family": f, "accuracy": 0.2}
                                           for f in report.SKETCH_FAMILIES])  # fmt: skip
    steps, kept = PROFILES["demo"].supervised_steps, PREVIOUS_DEMO["supervised_steps"]
    assert line.startswith("- **not checked**") and f"it had {steps} SFT steps, this model {kept}" in line


def test_report_help_builds_and_writes_nothing(monkeypatch):
    monkeypatch.setattr(report, "results_block", lambda: pytest.fail("--help must not build the report"))
    with pytest.raises(SystemExit) as exited:
        report.main(["--help"])
    assert exited.value.code == 0
