"""The generation modes are one registry (model/generation/modes.py): a toy mode added there, in one place, is run by
the engine (sequential and parallel sketches), the audit and the app's Compare view."""

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from model.evaluation.harness import check_modes, evaluate
from model.generation import modes
from model.generation.engine import Engine, GenerationSettings, Prompt
from model.sketchworld import write_dataset


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
    from model.data.folders import load_rows
    from model.data.zebra import load_examples

    write_dataset(str(tmp_path), per_family=10, seed=0, families=["connect", "fold"])
    examples, _ = load_examples(load_rows(str(tmp_path), "test"))
    assert check_modes(["auto", "half-noise"]) == ["auto", "half-noise"]
    with pytest.raises(ValueError, match="half-noise"):  # not language-only: refused without the head
        check_modes(["half-noise"], language_only=True)
    predictions, summary = evaluate(sketchy_model, examples, ["half-noise"], max_new_tokens=30, progress=False)
    assert set(predictions["mode"]) == {"half-noise"} and "half-noise" in set(summary["mode"])
    assert modes.check_mode("half-noise") == "half-noise"
