"""The report (pipeline/report.py and its parts) on small fake results: targets, equal compute read from the registry,
the wording table and targets, the sweep as it stands with its missing points, and the claims' paired verdicts."""

import json

import pandas as pd
import pytest

import pipeline.report as report
import pipeline.results as results
from pipeline.claims import CLAIMS, check_claims, claims_table
from pipeline.layout import SWEEP
from pipeline.report_sweep import sweep_section
from pipeline.report_words import wording_section, wording_targets
from pipeline.results import SKETCH_FAMILIES, Result, check

FAMILIES = ["count", *SKETCH_FAMILIES]


@pytest.fixture
def stored(tmp_path, monkeypatch):
    """assets/results and the registry under tmp_path; returns the results folder."""
    folder = tmp_path / "assets" / "results"
    folder.mkdir(parents=True)
    (tmp_path / "assets" / "checkpoints").mkdir()
    monkeypatch.setattr(results, "RESULTS", folder)
    monkeypatch.setattr(report, "RESULTS", folder)
    return folder


def store(folder, name, accuracy: dict, mode="auto", config=None, per_puzzle=None, n=100):
    """A results file: `accuracy` per family (and its mean as overall) in `mode`, ±5 points intervals."""
    accuracy = {**accuracy, "overall": sum(accuracy.values()) / len(accuracy)}
    rows = [{"mode": mode, "family": f, "accuracy": a, "ci_low": a - 0.05, "ci_high": a + 0.05, "n": n,
             "latency_mean_s": 1.0} for f, a in accuracy.items()]  # fmt: skip
    data = {"config": config or {}, "summary": rows, "per_puzzle": per_puzzle}
    (folder / f"{name}.json").write_text(json.dumps(data))


def register(folder, entries: list[dict], **extra) -> None:
    (folder.parent / "checkpoints" / "registry.json").write_text(json.dumps({"checkpoints": entries, **extra}))


def test_target_check_counts_an_exact_margin_as_met():
    """59 % − 49 % is exactly the 10-point target even though the floats differ by an ulp; 9.9 points is not."""
    assert (0.59 - 0.49) < 0.10  # the float subtraction the check must see through
    assert check("use", 0.59 - 0.49, 0.10).startswith("- met")
    assert check("use", 0.099, 0.10).startswith("- **not met**")
    assert check("drift", 0.03, 0.02, at_least=False).startswith("- **not met**")
    assert check("x", None, 0.1) == "- x: not measured (target 10.0)."


def benefit_lines(folder) -> list[str]:
    final = Result("absent")
    final.summary = pd.DataFrame([{"mode": "auto", "family": f, "accuracy": 0.5} for f in SKETCH_FAMILIES])
    lines = report.targets(final, final, final, Result("test-textonly"), Result("test-direct"), None)
    return [x for x in lines if "benefit" in x]


def test_equal_compute_is_read_from_the_registry(stored):
    """A baseline's chain ends in a refine pass (its folder says 600 steps): its steps are its registry entry's."""
    folder = "runs/demo/textonly/refine/2/checkpoint-000600/model"
    store(stored, "test-textonly", dict.fromkeys(SKETCH_FAMILIES, 0.2), "text-only", {"checkpoint": folder})
    store(stored, "test-direct", dict.fromkeys(SKETCH_FAMILIES, 0.2), "direct", {"checkpoint": folder})
    register(stored, [{"name": "demo", "recipe": {"supervised_steps": 2400, "lineage": "its chain"}},
                      {"name": "baseline/text-cot", "recipe": {"supervised_steps": 2400}},
                      {"name": "baseline/direct", "recipe": {"supervised_steps": 1800}}])  # fmt: skip
    cot, direct = benefit_lines(stored)
    assert cot.startswith("- met") and cot.endswith(": 30.0 (target ≥ 10.0).")  # 50 − 20 over the sketch families
    assert direct.startswith("- **not checked**") and "it had 1800 SFT steps, this model 2400" in direct
    assert report.lineage() == "its chain"
    register(stored, [])  # nothing recorded: the folder's steps, and the demo's are unknown
    assert "it had 600 SFT steps, this model None" in benefit_lines(stored)[0]


def test_benefit_compares_the_families_both_were_measured_on_and_says_which_are_missing(stored):
    ours, missing = SKETCH_FAMILIES[:-1], SKETCH_FAMILIES[-1]
    store(stored, "test-textonly", {f: 0.1 * i for i, f in enumerate(ours)}, "text-only")
    register(stored, [{"name": "demo", "recipe": {"supervised_steps": 2400}},
                      {"name": "baseline/text-cot", "recipe": {"supervised_steps": 2400}}])  # fmt: skip
    line = benefit_lines(stored)[0]
    expected = sum(0.5 - 0.1 * i for i in range(len(ours))) / len(ours)  # over the common families only
    assert f": {report.pct(expected)} (target" in line
    assert f"**{missing} not measured** for it: over {', '.join(ours)} only" in line and "unequal" not in line


def test_grpo_check_compares_the_models_as_trained_not_the_snapped_one(stored):
    def result(auto, noise):
        r = Result("absent")
        r.summary = pd.DataFrame([{"mode": m, "family": f, "accuracy": a} for f in SKETCH_FAMILIES
                                  for m, a in (("auto", auto), ("noise-latents", noise))])  # fmt: skip
        return r

    final, grpo, sft = result(0.9, 0.1), result(0.5, 0.2), result(0.6, 0.2)
    line = [x for x in report.targets(final, sft, grpo, final, final, None) if "GRPO keeps use" in x][0]
    assert f": {report.pct(-0.1)} (target" in line and "**not met**" in line  # (0.5 − 0.2) − (0.6 − 0.2)


def test_the_wording_table_and_targets(stored):
    store(stored, "test-demo", dict.fromkeys(FAMILIES, 0.70))
    store(stored, "test-demo-seen", dict.fromkeys(FAMILIES, 0.68))
    held = dict.fromkeys(FAMILIES, 0.67)
    held["maze16"] = 0.55  # 15 points below its template accuracy
    store(stored, "test-demo-held-out-template", held)
    store(stored, "test-textonly", dict.fromkeys(FAMILIES, 0.6), "text-only")
    store(stored, "test-textonly-held-out-template", dict.fromkeys(FAMILIES, 0.3), "text-only")
    text = "\n".join(wording_section())
    assert "| demo (shipped) | maze16 | 70.0 [65.0–75.0] (n 100) |" in text
    assert "55.0 [50.0–60.0] (n 100) (-15.0)" in text and "(-30.0)" in text  # the text-only-CoT model's drop
    assert "held-out synonym (− template)" not in text  # a kind nobody was asked in is no column
    overall, worst = wording_targets()
    assert overall.startswith("- met") and "held-out-template auto, all families" in overall
    assert worst.startswith("- **not met**") and "(maze16): 15.0" in worst


def claim_record(right: int, latency: float, first: int = 0) -> dict:
    """A per-puzzle record: 100 puzzles per sketch family, puzzles first … first + right − 1 of each right."""
    ids, families, marks = [], [], ""
    for family in SKETCH_FAMILIES:
        for i in range(100):
            ids.append(f"{family}-{i:03d}")
            families.append(family)
            marks += "1" if first <= i < first + right else "0"
    return {"ids": ids, "families": families, "correct": {"auto": marks}, "latency_s": {"auto": [latency] * len(ids)}}


def test_the_claims_are_judged_by_paired_intervals_and_name_missing_points(stored):
    points = {
        "k4-l1": 30,
        "k8-l1": 50,
        "k16-l1": 52,
        "k32-l1": 70,
        "k64-l1": 71,
        "k64-l0.1": 40,
        "k64-l1-parallel": 60,
    }  # right of 100 in every sketch family; k64-l10 and the regression head missing
    latency = {"k64-l1": 5.0, "k64-l1-parallel": 2.0}
    for name, right in points.items():
        record = claim_record(right, latency.get(name, 3.0), first={"k16-l1": 10, "k64-l1": 5}.get(name, 0))
        store(stored, f"sweep-{name}", {"maze": right / 100}, per_puzzle=record)
    found = {name: Result(f"sweep-{name}") for name in [*points, "k64-l10", "k64-l1-regression"]}
    rows = {(r["better"], r["worse"], r["kind"]): r for r in check_claims(found, SKETCH_FAMILIES, {"k64-l10"})}
    assert rows[("k8-l1", "k4-l1", "higher")]["verdict"] == "holds"  # +20 points on 700 paired puzzles
    # +2: 12 puzzles won and 10 lost of each 100 (a nested +2 with none lost would hold)
    assert rows[("k16-l1", "k8-l1", "higher")]["verdict"] == "within noise"
    assert rows[("k64-l1", "k32-l1", "saturates")]["verdict"] == "holds"  # +1: no gain beyond noise
    assert rows[("k64-l1", "k64-l0.1", "higher")]["verdict"] == "holds"
    assert rows[("k64-l1", "k64-l10", "higher")]["verdict"] == "not measured: k64-l10 not trained yet"
    assert rows[("k64-l1", "k64-l1-regression", "higher")]["verdict"].startswith("not measured: k64-l1-regression")
    assert rows[("k64-l1", "k64-l1-parallel", "higher")]["verdict"] == "holds"  # parallel costs 11 points
    faster = rows[("k64-l1", "k64-l1-parallel", "faster")]
    assert faster["verdict"] == "holds" and faster["d"].mean == pytest.approx(3.0)  # 5 s − 2 s an answer
    d = rows[("k8-l1", "k4-l1", "higher")]["d"]
    assert d.n == 100 * len(SKETCH_FAMILIES) and d.mean == pytest.approx(0.2)
    table = claims_table(check_claims(found, SKETCH_FAMILIES, {"k64-l10"}))
    assert table.count("\n") == len(CLAIMS) + 1 and "+20.0 pt [" in table and "+3.0 s [" in table
    store(stored, "sweep-k4-l1", {"maze": 0.3})  # an audit stored without its per-puzzle record
    row = check_claims({**found, "k4-l1": Result("sweep-k4-l1")}, SKETCH_FAMILIES)[0]
    assert row["verdict"] == "not measured: no per-puzzle record of both audits"


def test_the_sweep_section_shows_the_grid_as_it_stands(stored):
    store(stored, "sweep-k16-l1", {"maze": 0.6}, config={"num_examples": 800})
    store(stored, "sweep-k4-l1", {"maze": 0.3})  # an earlier grid's audit of the same name: not this grid's
    grid = {"supervised_steps": 2400, "lineage": "1200 SFT steps, then 2 × 600 refine steps"}
    missing = ["sweep/k64-l1", "sweep/k4-l1", "sweep/k64-l0.1", "sweep/k64-l10", "sweep/k64-l1-regression",
               "sweep/k8-l1", "sweep/k32-l1", "sweep/k64-l1-parallel"]  # fmt: skip
    register(stored, [], sweep_grid={"recipe": grid, "points": [f"sweep/{p.name}" for p in SWEEP],
                                     "missing": missing})  # fmt: skip
    text = "\n".join(sweep_section())
    assert "Each point: 1200 SFT steps, then 2 × 600 refine steps; 2400 supervised steps" in text
    assert "**Not trained yet: k64-l1, k4-l1, k64-l0.1" in text
    assert "| k16-l1 | 16 | 1 | diffusion | sequential | 60.0 [55.0–65.0] |" in text
    assert "| k4-l1 | 4 | 1 | diffusion | sequential | *not trained yet* |" in text
    assert "not measured: k64-l1, k32-l1 not trained yet" in text or "not measured: k64-l1" in text
    register(stored, [], sweep_grid={"recipe": grid, "points": ["sweep/k16-l1", "sweep/k8-l1"], "missing": []})
    assert "| k4-l1 | 4 | 1 | diffusion | sequential | *not trained yet* |" in "\n".join(sweep_section())  # unplanned
    register(stored, [])  # no grid registered and no audit of it: no section
    (stored / "sweep-k16-l1.json").unlink()
    (stored / "sweep-k4-l1.json").unlink()
    assert sweep_section() == []


def test_the_report_writes_its_blocks_and_refuses_a_document_without_them(tmp_path, capsys):
    doc = tmp_path / "RESULTS.md"
    doc.write_text("# Results\n<!-- results:start -->\nold\n<!-- results:end -->\nafter\n")
    assert report.replace_block(doc, "results", "new table")
    assert doc.read_text() == "# Results\n<!-- results:start -->\nnew table\n<!-- results:end -->\nafter\n"
    plain = tmp_path / "README.md"
    plain.write_text("no markers\n")
    assert not report.replace_block(plain, "headline", "x") and plain.read_text() == "no markers\n"
    assert "has no <!-- headline:start -->" in capsys.readouterr().err


def test_the_headline_says_whether_the_text_cot_model_had_equal_compute(stored):
    store(stored, "test-demo", dict.fromkeys(FAMILIES, 0.7))
    store(stored, "test-textonly", dict.fromkeys(FAMILIES, 0.5), "text-only")
    store(stored, "test-demo-held-out-template", dict.fromkeys(FAMILIES, 0.65))
    register(stored, [{"name": "demo", "recipe": {"supervised_steps": 2400}},
                      {"name": "baseline/text-cot", "recipe": {"supervised_steps": 2400}}])  # fmt: skip
    top = report.headline()
    assert "(2400 SFT steps, as many as the demo's)" in top and "auto, held-out question templates" in top
    assert "| maze16 | 70.0 [65.0–75.0] | – | – | 50.0 | 65.0 |" in top
    register(stored, [{"name": "demo", "recipe": {"supervised_steps": 3000}},
                      {"name": "baseline/text-cot", "recipe": {"supervised_steps": 2400}}])  # fmt: skip
    assert "(2400 SFT steps against the demo's 3000: not equal compute)" in report.headline()


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
    final = Result("absent")
    rows = [(f, m, a) for f in SKETCH_FAMILIES for m, a in (("auto", 0.6), ("oracle", 0.9))]
    final.summary = pd.DataFrame(
        [{"mode": m, "family": f, "accuracy": a, "ci_low": a - 0.1, "ci_high": a + 0.1} for f, m, a in rows]
    )
    assert report_figures.figures(final) == ["[audit_per_family](../assets/figures/audit_per_family.html)"]
    first = (tmp_path / "figures" / "audit_per_family.html").read_bytes()
    report_figures.figures(final)
    assert (tmp_path / "figures" / "audit_per_family.html").read_bytes() == first
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["audit_per_family.html"]


def test_use_in_the_registry_is_the_paired_difference_with_its_interval(tmp_path):
    """auto − noise per family from the predictions, the interval from the per-puzzle differences (by hand here)."""
    from pipeline.registry import use_metrics

    auto, noise = [1, 1, 1, 0, 1, 0], [0, 1, 0, 0, 0, 0]  # maze puzzles m0..m3, then fold f0..f1
    rows = [dict(id=f"m{i}", family="maze", mode=mode, correct=bool(v))
            for i in range(4) for mode, v in (("auto", auto[i]), ("noise-latents", noise[i]))]  # fmt: skip
    rows += [dict(id=f"f{i}", family="fold", mode=mode, correct=bool(v))
             for i in range(2) for mode, v in (("auto", auto[4 + i]), ("noise-latents", noise[4 + i]))]  # fmt: skip
    pd.DataFrame(rows).to_parquet(tmp_path / "predictions.parquet")
    got = use_metrics(tmp_path)
    maze = [1, 0, 1, 0]  # differences
    sd = (sum((d - 0.5) ** 2 for d in maze) / 3) ** 0.5
    assert got["use"]["maze"] == 0.5 and got["use"]["fold"] == 0.5
    assert got["use_ci_low"]["maze"] == pytest.approx(0.5 - 1.96 * sd / 2, abs=1e-4)
    assert got["use"]["overall"] == pytest.approx(3 / 6, abs=1e-4)
    pd.DataFrame([r for r in rows if r["mode"] == "auto"]).to_parquet(tmp_path / "predictions.parquet")
    assert use_metrics(tmp_path) == {}  # no noise-latents run: no use


def test_report_help_builds_and_writes_nothing(monkeypatch):
    monkeypatch.setattr(report, "results_block", lambda: pytest.fail("--help must not build the report"))
    with pytest.raises(SystemExit) as exited:
        report.main(["--help"])
    assert exited.value.code == 0


def test_snapping_is_compared_on_the_same_validation_puzzles(stored):
    def record(right_maze16: int) -> dict:
        ids = [f"{f}-{i}" for f in ("maze", "maze16") for i in range(100)]
        marks = "1" * 60 + "0" * 40 + "1" * right_maze16 + "0" * (100 - right_maze16)
        return {"ids": ids, "families": [i.rsplit("-", 1)[0] for i in ids], "correct": {"auto": marks}}

    store(stored, "validation-demo", {"maze": 0.6}, per_puzzle=record(20))  # the codebook loses 16×16 puzzles
    store(stored, "validation-grpo", {"maze": 0.6}, per_puzzle=record(50))
    text = "\n".join(report.snap_lines())
    assert "| maze | 60.0 | 60.0 | +0.0 [+0.0, +0.0] (n = 100) |" in text
    assert "| maze16 | 20.0 | 50.0 | -30.0 [" in text and "| overall | 40.0 | 55.0 | -15.0 [" in text
    (stored / "validation-grpo.json").unlink()
    assert report.snap_lines() == []
