"""The generation modes are one registry (model/generation/modes.py): a mode added there, in one place, is run by the
engine (sequential and parallel sketches), the audit (the harness, its process split, the report's audit table) and
shown by the API's help; the app's Compare view runs it too (tests/test_app_handlers.py). Two modes: `half-noise`
replaces latents, `shifted-oracle` (tests/conftest.py) inserts the true sketches shifted by one cell."""

import copy

import numpy as np
import pytest
import torch
from conftest import shift_one_cell
from PIL import Image

from app import api
from model.data.folders import load_rows
from model.data.targets import true_sketches
from model.data.zebra import load_examples
from model.evaluation.harness import check_modes, evaluate
from model.evaluation.parallel import mode_groups
from model.generation import modes
from model.generation.engine import Engine, GenerationSettings, Prompt
from model.sketchworld import write_dataset
from pipeline import report
from pipeline.results import Result


def _scaled_noise(model, noise):
    return model.latent_mean + 0.5 * model.latent_std * noise


@pytest.fixture
def toy_mode(monkeypatch):
    """`half-noise`: sketches of noise at half the targets' spread, a mode that exists only in this test."""
    spec = modes.Mode("half-noise", "half-spread noise sketches", source="half", replace=_scaled_noise)
    monkeypatch.setitem(modes.MODE_SPECS, spec.name, spec)
    return spec


def image(seed, size=56):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8))


@pytest.mark.parametrize("decoding", ["sequential", "parallel"])
def test_the_engine_runs_a_registered_mode(toy_mode, sketchy_model, decoding):
    model = sketchy_model
    if decoding == "parallel":
        model = copy.deepcopy(sketchy_model)
        model.set_sketch_decoding("parallel")
    prompts = [Prompt("How many red cells are there?", [image(1)]), Prompt("Is it?", [image(2)])]
    settings = GenerationSettings(mode="half-noise", max_new_tokens=30, seed=3)
    traces = Engine(model).generate(prompts, settings)
    sketches = [s for t in traces for s in t.sketches]
    assert sketches and all(t.mode == "half-noise" for t in traces)
    for sketch in sketches:
        assert sketch.source == "half"
        spread = ((torch.from_numpy(sketch.latents) - model.latent_mean) / model.latent_std).std()
        assert 0.3 < float(spread) < 0.7  # half the targets' spread, not the head's drawing
    noise = Engine(model).generate(prompts, GenerationSettings(mode="noise-latents", max_new_tokens=30, seed=3))
    for a, b in zip(traces, noise):  # the same noise draw, scaled: the registry entry is all that differs
        for sa, sb in zip(a.sketches, b.sketches):
            np.testing.assert_allclose(sa.latents - model.latent_mean.numpy(),
                                       0.5 * (sb.latents - model.latent_mean.numpy()), atol=1e-5)  # fmt: skip


def test_the_audit_runs_a_registered_mode(toy_mode, sketchy_model, tmp_path):
    write_dataset(str(tmp_path), per_family=10, seed=0, families=["connect", "fold"])
    examples, _ = load_examples(load_rows(str(tmp_path), "test"))
    assert check_modes(["auto", "half-noise"]) == ["auto", "half-noise"]
    with pytest.raises(ValueError, match="half-noise"):  # not language-only: refused without the head
        check_modes(["half-noise"], language_only=True)
    predictions, summary = evaluate(sketchy_model, examples, ["half-noise"], max_new_tokens=30, progress=False)
    assert set(predictions["mode"]) == {"half-noise"} and "half-noise" in set(summary["mode"])
    assert modes.check_mode("half-noise") == "half-noise"


def _decoding(model, decoding):
    if decoding == "sequential":
        return model
    parallel = copy.deepcopy(model)
    parallel.set_sketch_decoding("parallel")
    return parallel


@pytest.mark.parametrize("decoding", ["sequential", "parallel"])
def test_the_engine_inserts_a_registered_modes_given_sketches(shifted_mode, sketchy_model, decoding):
    """The engine inserts what the mode's `given` source supplies, through its transform: here the true sketches
    (random stand-ins) each shifted by one cell, marked with the mode's source, in both decodings."""
    model = _decoding(sketchy_model, decoding)
    K, D = model.latent_budget, model.config.hidden_size
    true = torch.randn(2, K, D, generator=torch.Generator().manual_seed(0))
    assert shifted_mode.inserts and modes.mode_names(given="true") == ["oracle", "shifted-oracle"]
    prompt = Prompt("How many red cells are there?", [image(1)], oracle_latents=shifted_mode.insertable(true))
    trace = Engine(model).generate([prompt], GenerationSettings(mode="shifted-oracle", max_new_tokens=40, seed=3))[0]
    assert trace.mode == "shifted-oracle" and trace.num_sketches >= 1
    for k, sketch in enumerate(trace.sketches[:2]):
        assert sketch.source == "shifted" and sketch.decoding == decoding
        np.testing.assert_allclose(sketch.latents[1:], true[k, :-1].numpy(), atol=1e-6)  # one cell on
        np.testing.assert_allclose(sketch.latents[0], true[k, -1].numpy(), atol=1e-6)
    for sketch in trace.sketches[2:]:  # more sketches than were given: the head's own
        assert sketch.source == "generated"


def test_the_audit_and_its_report_run_a_registered_inserting_mode(shifted_mode, sketchy_model, tmp_path):
    """The harness inserts each example's true sketches shifted by one cell (checked against true_sketches itself),
    the process split and the evaluation's mode list include the mode, and the report's audit table has its column."""
    write_dataset(str(tmp_path), per_family=10, seed=0, families=["connect", "fold"])
    examples, _ = load_examples(load_rows(str(tmp_path), "test"))
    traces = {}
    predictions, summary = evaluate(sketchy_model, examples, ["auto", "shifted-oracle"], max_new_tokens=40,
                                    max_sketches=1, progress=False, traces=traces)  # fmt: skip
    assert set(predictions["mode"]) == {"auto", "shifted-oracle"}
    inserted = 0
    for ex, true in zip(examples, true_sketches(sketchy_model, examples)):
        for sketch in traces["shifted-oracle", ex.id].sketches:
            assert sketch.source == "shifted"
            np.testing.assert_allclose(sketch.latents, shift_one_cell(true[0]).numpy(), atol=1e-5)
            inserted += 1
    assert inserted >= 2, "the test needs sketches to be meaningful"
    assert "shifted-oracle" in modes.mode_names() and "shifted-oracle" in check_modes(["shifted-oracle"])
    assert sum(mode_groups(modes.mode_names(), jobs=2), []).count("shifted-oracle") == 1
    result = Result("absent")
    result.summary = summary
    header = report.audit_table(result, {}).splitlines()[0]
    assert "| shifted-oracle |" in header and header.index("| auto |") < header.index("| shifted-oracle |")


def test_the_api_help_names_a_registered_mode(shifted_mode):
    """/reason's `mode` and /compare's `modes` help (Gradio's API page, the MCP tool list) read the registry."""
    reason_doc = api.endpoint(api.reason, None, "modes").__doc__
    compare_doc = api.endpoint(api.compare, None, "mode").__doc__
    assert "shifted-oracle: the true sketches shifted by one cell" in reason_doc
    modes_help = next(line for line in compare_doc.splitlines() if line.strip().startswith("modes:"))
    assert "shifted-oracle" in modes_help and "direct" not in modes_help  # direct is no Compare column
