"""Evaluation harness: result table, baselines and scoring against independent computations, oracle latents, CLI."""

import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

from model.data.folders import select_rows
from model.data.zebra import Example, Sketch, load_examples
from model.evaluation.cli import main
from model.evaluation.harness import (
    BASELINES,
    OVERALL,
    baseline_scores,
    check_modes,
    evaluate,
    format_summary,
    latent_error,
    prediction_row,
    run_batch,
    train_answers_from,
    wilson,
    write_results,
)
from model.generation.answers import normalize_answer
from model.generation.engine import Engine, GenerationSettings
from model.generation.events import read_events
from model.generation.modes import mode_names
from model.generation.trace import SketchSegment, Trace
from model.sketchworld import DEFAULT_FAMILIES, load_split, write_dataset

NUM_EXAMPLES = len(DEFAULT_FAMILIES)  # one per family: select_rows takes rows round-robin over families


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sketchworld")
    write_dataset(str(out), per_family=4, seed=0, splits={"train": 0.5, "test": 0.5})
    return out


@pytest.fixture(scope="module")
def examples(data_dir):
    examples, report = load_examples(select_rows(load_split(str(data_dir), "test"), NUM_EXAMPLES))
    assert report.kept == NUM_EXAMPLES
    return examples


@pytest.fixture(scope="module")
def run(tiny_model, data_dir, examples, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    predictions, summary = evaluate(
        tiny_model,
        examples,
        mode_names(),
        batch_size=3,  # 8 examples: full batches and a partial one
        max_new_tokens=10,
        train_answers=train_answers_from(data_dir),
        event_log=str(out / "events"),
        run_id="eval-test",
        checkpoint="tiny",
        progress=False,
    )
    write_results(out, predictions, summary, {"checkpoint": "tiny", "split": "test"})
    return out, predictions, summary


def test_limit_takes_every_family(examples):
    assert sorted(ex.family for ex in examples) == sorted(DEFAULT_FAMILIES)


def test_summary_table_is_well_formed(run, examples):
    _, predictions, summary = run
    families = sorted({ex.family for ex in examples})
    for mode in mode_names() + list(BASELINES):
        of_mode = summary[summary["mode"] == mode].set_index("family")
        assert sorted(of_mode.index) == sorted(families + [OVERALL]), mode
        for family in families:
            assert of_mode.loc[family, "n"] == sum(ex.family == family for ex in examples)
        assert of_mode.loc[OVERALL, "n"] == len(examples)
    assert summary["accuracy"].between(0, 1).all()
    model_rows = summary[summary["mode"].isin(mode_names())]
    assert model_rows["start_rate"].between(0, 1).all() and model_rows["truncated_rate"].between(0, 1).all()
    assert len(predictions) == len(examples) * len(mode_names())
    assert set(predictions["mode"]) == set(mode_names())
    assert (predictions[predictions["mode"] == "direct"]["output"].str.startswith("The answer is")).all()
    table = format_summary(summary)
    assert table.count("\n") == len(families) + 2 and f"| overall | {NUM_EXAMPLES} |" in table


def test_scoring_and_summary_match_predictions(run):
    out, _, summary = run
    predictions = pd.read_parquet(out / "predictions.parquet")
    expected = [normalize_answer(a) == p for a, p in zip(predictions["answer"], predictions["prediction"])]
    assert predictions["correct"].tolist() == expected
    for (mode, family), group in predictions.groupby(["mode", "family"]):
        row = summary[(summary["mode"] == mode) & (summary["family"] == family)].iloc[0]
        assert row["accuracy"] == pytest.approx(np.mean(expected_of(group)))
        assert row["sketches_per_answer"] == pytest.approx(group["num_sketches"].mean())
        assert row["latency_p50_s"] == pytest.approx(group["latency_s"].median())
    for mode, group in predictions.groupby("mode"):
        row = summary[(summary["mode"] == mode) & (summary["family"] == OVERALL)].iloc[0]
        assert row["accuracy"] == pytest.approx(np.mean(expected_of(group)))


def expected_of(group: pd.DataFrame) -> list[bool]:
    return [normalize_answer(a) == p for a, p in zip(group["answer"], group["prediction"])]


def test_baselines_match_independent_computation(run, data_dir, examples):
    _, _, summary = run
    train, _ = load_examples(load_split(str(data_dir), "train"))
    train_by_family = {}
    for ex in train:
        train_by_family.setdefault(ex.family, []).append(normalize_answer(ex.answer))
    for family in {ex.family for ex in examples}:
        counts = Counter(train_by_family[family])
        top = max(counts.values())
        majority = sorted(a for a, c in counts.items() if c == top)[0]
        mine = [ex for ex in examples if ex.family == family]
        expected = np.mean([normalize_answer(ex.answer) == majority for ex in mine])
        random = np.mean([1 / len(set(ex.choices)) for ex in mine])  # sketch-world answers are among the choices
        got = summary.set_index(["mode", "family"])
        assert got.loc[("majority", family), "accuracy"] == pytest.approx(expected)
        assert got.loc[("random", family), "accuracy"] == pytest.approx(random)


def test_files_and_events(run, examples):
    out, predictions, _ = run
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["checkpoint"] == "tiny"
    assert len(results["summary"]) == len(pd.read_parquet(out / "summary.parquet"))
    assert pd.read_parquet(out / "predictions.parquet").shape == predictions.shape
    events = read_events(str(out / "events"))
    answers = events[events["event"] == "ANSWER"]
    assert len(answers) == len(examples) * len(mode_names())
    assert set(answers["mode"]) == set(mode_names())  # direct answers are logged as direct, not as text-only
    assert set(answers["run_id"]) == {"eval-test"} and answers["correct"].notna().all()
    assert set(answers["example_id"]) == {ex.id for ex in examples}


def test_prediction_row_scores_and_latent_error(examples):
    example = next(ex for ex in examples if ex.num_sketches == 2)
    rng = np.random.default_rng(0)
    true = torch.tensor(rng.normal(size=(2, 4, 8)), dtype=torch.float32)
    drawn = [rng.normal(size=(4, 8)).astype(np.float32) for _ in range(3)]  # one more than the true sketches
    sketches = [SketchSegment(i, 0, 5, 0, 4, "generated", 0.0, latents=d) for i, d in enumerate(drawn)]
    trace = Trace("q", "auto", segments=sketches, answer=normalize_answer(f"The {example.answer}."))
    row = prediction_row(example, "auto", trace, true)
    assert row["correct"] and row["num_sketches"] == 3
    pairs = [(drawn[i].astype(np.float64), true[i].double().numpy()) for i in range(2)]
    assert row["latent_mse"] == pytest.approx(np.mean([((g - t) ** 2).mean() for g, t in pairs]))
    cosines = [g[k] @ t[k] / np.linalg.norm(g[k]) / np.linalg.norm(t[k]) for g, t in pairs for k in range(4)]
    assert row["latent_cosine"] == pytest.approx(np.mean(cosines))
    assert latent_error(Trace("q", "auto"), true) == (None, None)
    assert latent_error(trace, None) == (None, None)
    assert not prediction_row(example, "auto", Trace("q", "auto", answer="nonsense"), None)["correct"]


def test_oracle_inserts_true_targets(sketchy_model, examples):
    model = sketchy_model
    with_sketches = [ex for ex in examples if ex.num_sketches > 0]
    traces = run_batch(Engine(model), with_sketches, "oracle", GenerationSettings(max_new_tokens=24))
    compared = 0
    for ex, trace in zip(with_sketches, traces):
        targets = model.sketch_targets(ex.reasoning_images)  # independent: straight from the encoder
        order = [s.image_index for s in ex.segments if isinstance(s, Sketch)]
        for i, sketch in enumerate(trace.sketches[: len(order)]):
            assert sketch.source == "oracle"
            np.testing.assert_allclose(sketch.latents, targets[order[i]].numpy(), atol=1e-5)
            compared += 1
    assert compared > 0, "the test needs the model to sketch"

    predictions, summary = evaluate(model, with_sketches, ["oracle", "auto"], max_new_tokens=24, progress=False)
    oracle = predictions[(predictions["mode"] == "oracle") & predictions["latent_mse"].notna()]
    assert len(oracle) > 0
    np.testing.assert_allclose(oracle["latent_mse"], 0, atol=1e-8)
    np.testing.assert_allclose(oracle["latent_cosine"], 1, atol=1e-5)
    drawn = predictions[(predictions["mode"] == "auto") & predictions["latent_mse"].notna()]
    assert len(drawn) > 0 and (drawn["latent_mse"] > 0).all()
    auto = summary[(summary["mode"] == "auto") & (summary["family"] == OVERALL)].iloc[0]
    assert auto["start_rate"] == pytest.approx((predictions[predictions["mode"] == "auto"]["num_sketches"] > 0).mean())


def test_check_modes():
    assert check_modes(["auto", " oracle", "auto"]) == ["auto", "oracle"]
    with pytest.raises(
        ValueError, match="unknown mode 'sketchy'; valid modes: auto, text-only, direct, noise-latents"
    ):
        check_modes(["sketchy"])
    with pytest.raises(ValueError, match="drop auto"):
        check_modes(["text-only", "auto"], language_only=True)


def test_cli_runs_on_tiny(data_dir, tmp_path):
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "model.evaluate", "--checkpoint", "tiny", "--data", str(data_dir)]
    cmd += ["--limit", "6", "--modes", "direct,auto", "--max-new-tokens", "6", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)  # generous: CI machines are shared
    assert done.returncode == 0, done.stderr
    assert "| overall | 6 |" in done.stdout
    for name in ("results.json", "summary.parquet", "predictions.parquet"):
        assert (out / name).is_file()
    config = json.loads((out / "results.json").read_text())["config"]
    assert config["run_id"] == "eval-tiny-test" and config["num_examples"] == 6 and config["majority_from"] == "train"
    assert len(read_events(str(out / "events"))) > 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--checkpoint", "no-such-model"], "error: unknown checkpoint 'no-such-model'"),
        (["--checkpoint", "../nope"], "error: checkpoint folder ../nope does not exist"),
        (["--split", "validation"], "error: no split 'validation' in {data}: found test, train"),
        (["--limit", "0"], "error: --limit must be positive, got 0"),
        (["--language-only", "--modes", "text-only,oracle"], "error: --language-only removes the latent head"),
        (["--modes", "auto,sketchy"], "error: unknown mode 'sketchy'"),
        (["--data", "/no/such/dir"], "error: data folder /no/such/dir does not exist"),
        (["--categories", "Visual Logic"], "error: no category folder 'Visual Logic' in {data}; it has no category"),
        (["--carve", "0.5"], "error: --carve must be between 0 and 0.25, got 0.5"),
        (["--temperature", "nan"], "error: --temperature must be between 0 and 10, got nan"),
        (["--device", "tpu"], "error: --device 'tpu' is not a device"),
    ],
)
def test_main_bad_input(data_dir, tmp_path, capsys, extra, message):
    """`python -m model.evaluate` in-process (no interpreter start-up per case): one `error:` line, exit status 2,
    nothing written. The unknown checkpoint is found after loading the data."""
    code = main(["--checkpoint", "tiny", "--data", str(data_dir), "--limit", "1", "--out", str(tmp_path)] + extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(message.format(data=data_dir)), err
    assert not (tmp_path / "results.json").exists()


def test_main_takes_the_solver_it_is_given(data_dir, tmp_path):
    """--diffusion-solver overrides the checkpoint's sampler for the run and is recorded; a bad one is refused."""
    args = [
        "--checkpoint",
        "tiny",
        "--data",
        str(data_dir),
        "--limit",
        "2",
        "--modes",
        "auto",
        "--max-new-tokens",
        "4",
    ]
    assert main(args + ["--diffusion-solver", "dpm++", "--diffusion-steps", "3", "--out", str(tmp_path / "a")]) == 0
    config = json.loads((tmp_path / "a" / "results.json").read_text())["config"]
    assert (config["diffusion_solver"], config["diffusion_steps"]) == ("dpm++", 3)
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "results.json").read_text())["config"]["diffusion_solver"] == "ddim"
    with pytest.raises(SystemExit) as exit_:
        main(args + ["--diffusion-solver", "euler", "--out", str(tmp_path / "c")])
    assert exit_.value.code == 2 and not (tmp_path / "c").exists()
    assert json.loads((tmp_path / "b" / "results.json").read_text())["config"]["sketch_temperature"] == 1.0
    assert main(args + ["--sketch-temperature", "0.25", "--out", str(tmp_path / "d")]) == 0
    assert json.loads((tmp_path / "d" / "results.json").read_text())["config"]["sketch_temperature"] == 0.25
    assert main(args + ["--sketch-temperature", "-1", "--out", str(tmp_path / "e")]) == 2
    assert not (tmp_path / "e").exists()


def test_baselines_fall_back_without_train_answers():
    def example(i, family, answer, choices=()):
        return Example(f"{family}-{i}", "q?", [], ["t"], [], answer, family=family, choices=list(choices))

    examples = [example(0, "a", "x"), example(1, "a", "y"), example(2, "a", "y"), example(3, "b", "no", ["yes", "no"])]
    scores = baseline_scores(examples, None).set_index(["mode", "id"])
    assert scores.loc[("majority", "a-0"), "score"] == 0 and scores.loc[("majority", "a-1"), "score"] == 1
    assert "no train answers" in scores.loc[("majority", "a-0"), "note"]
    assert scores.loc[("random", "a-0"), "score"] == pytest.approx(1 / 2)  # no choices: 1 / #distinct answers
    assert scores.loc[("random", "b-3"), "score"] == pytest.approx(1 / 2)
    # a train split with a tie: the alphabetically first answer wins; a family the train split lacks falls back
    scores = baseline_scores(examples, {"a": ["x", "Y", "y", "x"]}).set_index(["mode", "id"])
    assert scores.loc[("majority", "a-0"), "score"] == 1 and scores.loc[("majority", "a-1"), "score"] == 0
    assert "no train answers" in scores.loc[("majority", "b-3"), "note"]


def test_wilson_interval_against_its_definition():
    def bisect(f, lo, hi):  # the root of a monotone f on [lo, hi]
        for _ in range(100):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if f(lo) * f(mid) > 0 else (lo, mid)
        return (lo + hi) / 2

    for k, n in [(0, 10), (3, 10), (10, 10), (57, 100), (1, 300)]:
        p_hat = k / n
        # the Wilson interval is {p : |p_hat − p| ≤ 1.96·sqrt(p(1 − p)/n)}: its ends solve the equality
        gap = lambda p, p_hat=p_hat, n=n: abs(p_hat - p) - 1.96 * np.sqrt(p * (1 - p) / n)  # noqa: E731
        low = 0.0 if k == 0 else bisect(gap, 0.0, p_hat - 1e-12)
        high = 1.0 if k == n else bisect(gap, p_hat + 1e-12, 1.0)
        assert wilson(k, n) == pytest.approx((low, high), abs=1e-9)
    assert all(np.isnan(wilson(0, 0)))


def test_zero_and_shuffled_latents(sketchy_model, data_dir):
    model = sketchy_model
    examples, _ = load_examples(load_split(str(data_dir), "test"))  # two puzzles per family
    with_sketches = [ex for ex in examples if ex.num_sketches > 0]
    traces: dict = {}
    predictions, summary = evaluate(model, with_sketches, ["zero-latents", "shuffled-latents"], max_new_tokens=24,
                                    progress=False, traces=traces)  # fmt: skip
    assert list(dict.fromkeys(predictions["mode"])) == ["zero-latents", "auto", "shuffled-latents"]
    zero = [s for ex in with_sketches for s in traces["zero-latents", ex.id].sketches]
    assert zero and all(s.source == "zero" and not s.latents.any() for s in zero)
    checked = 0
    for ex in with_sketches:
        other = next(o for o in with_sketches if o.family == ex.family and o.id != ex.id)  # the other of its family
        given = [s.latents for s in traces["auto", other.id].sketches]
        shuffled = traces["shuffled-latents", ex.id].sketches
        for i, sketch in enumerate(shuffled[: len(given)]):
            assert sketch.source == "shuffled"
            np.testing.assert_allclose(sketch.latents, given[i], atol=1e-6)
            checked += 1
    assert checked > 0, "the test needs the model to sketch"


def test_probe_and_spread_on_constructed_sketches():
    from model.evaluation.audit import CellProbe, block_cells, spread

    rng = np.random.default_rng(0)
    colours = ["white", "red", "blue"]
    codes = rng.normal(size=(3, 16))  # one embedding per colour; a sketch token is its cell's code + noise
    grids = [[[colours[rng.integers(3)] for _ in range(4)] for _ in range(4)] for _ in range(60)]
    blocks = block_cells(16, 4)
    assert blocks[5] == [(1, 1)] and block_cells(4, 4)[1] == [(0, 2), (0, 3), (1, 2), (1, 3)]

    def latents_of(grid, noise):
        return np.stack([codes[colours.index(grid[r][c])] for r in range(4) for c in range(4)]) + noise

    from sklearn.linear_model import LogisticRegression

    train = [latents_of(g, rng.normal(scale=0.1, size=(16, 16))) for g in grids[:40]]
    features = np.concatenate(train)
    labels = [g[r][c] for g in grids[:40] for r in range(4) for c in range(4)]
    probe = CellProbe([LogisticRegression(max_iter=300).fit(features, labels)], blocks, np.zeros(16), np.ones(16), 40)
    test = [latents_of(g, rng.normal(scale=0.1, size=(16, 16))) for g in grids[40:]]
    assert probe.cell_accuracy(test, grids[40:]) == 1.0
    wrong = [latents_of(g, 0) for g in grids[41:] + grids[40:41]]  # every sketch paired with another's grid
    assert probe.cell_accuracy(wrong, grids[40:]) < 0.6
    same = [test[0]] * 5
    assert spread(same, np.zeros(16), np.ones(16)) == pytest.approx(0.0, abs=1e-9)
    orthogonal = [np.eye(4)[i].reshape(2, 2) for i in range(4)]
    assert spread(orthogonal, np.zeros(2), np.ones(2)) == pytest.approx(1.0)


def test_batches_of_one_family_answer_as_mixed_ones_in_the_examples_order(sketchy_model, data_dir, monkeypatch):
    """family_batches groups the rows of a family into a batch (rows of like length) and gives back the rows in the
    examples' order, with the same answers as batches in the given order."""
    from model.evaluation import harness

    examples, _ = load_examples(select_rows(load_split(str(data_dir), "test"), 2 * NUM_EXAMPLES))
    examples = examples[::2] + examples[1::2]  # the families interleaved
    assert len({ex.family for ex in examples[:2]}) == 2
    seen = []
    real = harness.run_batch
    monkeypatch.setattr(
        harness, "run_batch", lambda e, batch, *a: seen.append([x.family for x in batch]) or real(e, batch, *a)
    )
    runs = {}
    for grouped in (False, True):
        seen.clear()
        runs[grouped], _ = evaluate(sketchy_model, examples, ["auto", "shuffled-latents"], batch_size=2,
                                    max_new_tokens=24, progress=False, family_batches=grouped)  # fmt: skip
        mixed = sum(len(set(families)) > 1 for families in seen)
        assert (mixed == 0) if grouped else (mixed > 0), seen
    columns = [c for c in runs[False].columns if c != "latency_s"]
    pd.testing.assert_frame_equal(runs[False][columns], runs[True][columns])
    assert list(runs[True]["id"][: len(examples)]) == [ex.id for ex in examples]
