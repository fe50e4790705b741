"""Generation engine: batching, KV-cache equivalence with teacher forcing, modes, limits, streaming, bad input, CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from model.core.checkpoint import build_preset
from model.generation.debug import bias_towards_sketching
from model.generation.engine import Engine, GenerationSettings, Prompt
from model.generation.events import read_events
from model.generation.inputs import InputError
from model.core.tokenizer import prompt_ids
from model.generation.trace import Trace


def image(seed, size=56):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def sketchy_model():
    """The tiny model with a bias towards ⟨START⟩, so that random weights still sketch now and then."""
    model = bias_towards_sketching(build_preset("tiny", seed=7).eval())
    with torch.no_grad():
        model.fit_latent_stats(model.sketch_targets([image(i) for i in range(4)]).flatten(0, 1))
    return model


PROMPTS = [
    Prompt("How many red cells are there?", [image(1)]),
    Prompt("Is the green cell connected to the red one?", [image(2), image(3)]),
    Prompt("Which piece fits the gap?", [image(4)]),
    Prompt("What is in row 2, column 3?", []),
]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_batch_equals_single_runs(sketchy_model, temperature):
    engine = Engine(sketchy_model)
    settings = GenerationSettings(max_new_tokens=40, temperature=temperature, seed=11)
    batched = engine.generate(PROMPTS, settings)
    singles = [engine.generate([p], settings)[0] for p in PROMPTS]
    assert sum(t.num_sketches for t in batched) > 0, "the test needs sketches to be meaningful"
    for a, b in zip(batched, singles):
        assert [s.token_ids for s in a.segments if s.kind == "text"] == [
            s.token_ids for s in b.segments if s.kind == "text"
        ]
        assert [(s.start_position, s.end_position) for s in a.sketches] == [
            (s.start_position, s.end_position) for s in b.sketches
        ]
        for sa, sb in zip(a.sketches, b.sketches):
            np.testing.assert_allclose(sa.latents, sb.latents, atol=1e-4)


def test_incremental_states_equal_teacher_forcing(sketchy_model):
    """Rebuild the generated sequence and run it teacher-forced: greedy tokens are the argmax of the full forward's
    logits, and each sketch slot's condition equals the one computed from the full forward's hidden states."""
    model = sketchy_model
    prompt = PROMPTS[0]
    settings = GenerationSettings(max_new_tokens=40, max_sketches=100, seed=3)
    trace = Engine(model).generate([prompt], settings)[0]
    assert trace.num_sketches >= 1
    ids = prompt_ids(model.tokenizer, prompt.question, 1, model.tokens_per_image)
    prompt_len, latents, kinds = len(ids), [], []
    for seg in trace.segments:
        if seg.kind == "text":
            ids += seg.token_ids
            kinds += ["text"] * len(seg.token_ids)
        else:
            ids += [model.start_id] + [model.latent_id] * seg.num_latents + [model.end_id]
            kinds += ["start"] + ["slot"] * seg.num_latents + ["end"]
            latents.append(torch.from_numpy(seg.latents))
    input_ids = torch.tensor([ids])
    pixel_values, grid = model.pixels(prompt.images)
    with torch.no_grad():
        out = model(input_ids, latents=torch.cat(latents), pixel_values=pixel_values, image_grid_thw=grid)
    logits = model.logits(out.hidden)[0]
    for offset, kind in enumerate(kinds):
        pos = prompt_len + offset
        if kind in ("text", "start"):  # sampled greedily from the previous position's logits
            masked = logits[pos - 1].clone()
            masked[Engine(model).banned_ids + [model.end_id]] = float("-inf")
            if settings.max_new_tokens - offset < model.latent_budget + 2:  # no room left for a sketch
                masked[model.start_id] = float("-inf")
            assert int(masked.argmax()) == ids[pos], f"response position {offset}"
    slot_positions = [prompt_len + i for i, k in enumerate(kinds) if k == "slot"]
    conditions = np.concatenate([s.conditions for s in trace.sketches])
    slot_index = torch.arange(model.latent_budget).repeat(trace.num_sketches)
    with torch.no_grad():
        expected = model.head.condition(out.hidden[0, [p - 1 for p in slot_positions]], slot_index)
    np.testing.assert_allclose(conditions, expected.numpy(), atol=1e-4, rtol=1e-4)


def test_text_only_never_starts_a_sketch(sketchy_model):
    traces = Engine(sketchy_model).generate(PROMPTS, GenerationSettings(mode="text-only", max_new_tokens=30))
    for trace in traces:
        assert trace.num_sketches == 0
        assert all(sketchy_model.start_id not in s.token_ids for s in trace.segments)


def test_limits_truncation_and_closed_sketches(sketchy_model):
    model = sketchy_model
    K = model.latent_budget
    settings = GenerationSettings(max_new_tokens=23, max_sketches=2, temperature=1.0, seed=5)
    for trace in Engine(model).generate(PROMPTS * 2, settings):
        assert trace.num_positions <= settings.max_new_tokens
        if trace.truncated:
            assert trace.num_positions == settings.max_new_tokens
        assert trace.num_sketches <= 2
        for sketch in trace.sketches:
            assert sketch.end_position == sketch.start_position + K + 1
            assert sketch.latents.shape == (K, model.config.hidden_size)
            assert sketch.end_position < trace.num_positions or sketch.end_position == trace.num_positions - 1


def test_row_that_never_ends_is_truncated(sketchy_model):
    trace = Engine(sketchy_model).generate([PROMPTS[0]], GenerationSettings(mode="text-only", max_new_tokens=7))[0]
    assert trace.truncated and trace.num_positions == 7 and trace.answer == ""


def test_same_seed_same_output_other_seed_differs(sketchy_model):
    engine = Engine(sketchy_model)
    run = lambda seed: engine.generate(PROMPTS[:2], GenerationSettings(temperature=1.0, seed=seed, max_new_tokens=30))
    a, b, c = run(1), run(1), run(2)
    for x, y in zip(a, b):
        assert x.render() == y.render() and x.text == y.text
        for sx, sy in zip(x.sketches, y.sketches):
            np.testing.assert_array_equal(sx.latents, sy.latents)
    assert any(x.render() != y.render() for x, y in zip(a, c))


def test_oracle_and_noise_latents(sketchy_model):
    model = sketchy_model
    K, D = model.latent_budget, model.config.hidden_size
    oracle = [torch.full((K, D), 0.5), torch.full((K, D), -0.5)]
    prompt = Prompt(PROMPTS[0].question, PROMPTS[0].images, oracle_latents=oracle)
    trace = Engine(model).generate([prompt], GenerationSettings(mode="oracle", max_new_tokens=40, seed=3))[0]
    assert trace.num_sketches >= 1
    for sketch in trace.sketches[:2]:
        assert sketch.source == "oracle"
        np.testing.assert_allclose(sketch.latents, oracle[sketch.index].numpy())
    noisy = Engine(model).generate([PROMPTS[0]] * 6, GenerationSettings(mode="noise-latents", temperature=1.0))
    latents = np.concatenate([s.latents for t in noisy for s in t.sketches])
    assert latents.shape[0] >= 4 * K
    z = (latents - model.latent_mean.numpy()) / model.latent_std.numpy()
    assert abs(z.mean()) < 0.1 and abs(z.std() - 1) < 0.1  # Gaussian with the targets' statistics


def test_streaming_events_and_json_roundtrip(sketchy_model):
    engine = Engine(sketchy_model)
    settings = GenerationSettings(max_new_tokens=40, seed=3)
    events = list(engine.stream(PROMPTS[:2], settings))
    for row in range(2):
        mine = [e for e in events if e.row == row]
        assert mine[-1].kind == "finished"
        trace = mine[-1].trace
        assert "".join(e.text for e in mine if e.kind == "text") == trace.text
        starts = [e.sketch.index for e in mine if e.kind == "sketch_started"]
        dones = [e.sketch.index for e in mine if e.kind == "sketch_done"]
        assert starts == dones == list(range(trace.num_sketches))
        again = Trace.from_json(trace.to_json(include_latents=True))
        assert again.render() == trace.render() and again.num_positions == trace.num_positions
        for s1, s2 in zip(again.sketches, trace.sketches):
            np.testing.assert_allclose(s1.latents, s2.latents, rtol=1e-6)
        assert json.loads(trace.to_json())["segments"][0]["kind"] in ("text", "sketch")


def test_event_log(sketchy_model, tmp_path):
    engine = Engine(sketchy_model, event_log=str(tmp_path / "events"), checkpoint="tiny")
    prompts = [
        Prompt(p.question, p.images, example_id=f"ex{i}", family="f", answer="3") for i, p in enumerate(PROMPTS)
    ]
    traces = engine.generate(prompts, GenerationSettings(max_new_tokens=40, seed=3))
    events = read_events(tmp_path / "events")
    assert (events.event == "ANSWER").sum() == 4
    assert (events.event == "START").sum() == sum(t.num_sketches for t in traces)


def test_bad_input_raises_typed_errors(sketchy_model, tmp_path):
    engine = Engine(sketchy_model)
    (tmp_path / "not.png").write_text("plain text")
    Image.new("L", (4100, 4100)).save(tmp_path / "huge.png")
    cases = {
        "the question is empty": Prompt("   ", []),
        "not an image file": Prompt("q", [tmp_path / "not.png"]),
        "4100×4100 pixels; the limit": Prompt("q", [tmp_path / "huge.png"]),
        "1001 characters; the limit is 1000": Prompt("x" * 1001, []),
        "does not exist": Prompt("q", [tmp_path / "missing.png"]),
    }
    for message, prompt in cases.items():
        with pytest.raises(InputError, match=message):
            engine.generate([prompt])
    with pytest.raises(InputError, match="unknown mode"):
        engine.generate([PROMPTS[0]], GenerationSettings(mode="dream"))


def test_cli_prints_reasoning_and_fails_in_one_line(tmp_path):
    image(0).save(tmp_path / "x.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    run = lambda *a: subprocess.run(
        [sys.executable, "-m", "model.generate", "--checkpoint", "tiny", *a], capture_output=True, text=True
    )
    ok = run("--image", str(tmp_path / "x.png"), "--question", "How many?", "--max-new-tokens", "8", "--json")
    assert ok.returncode == 0, ok.stderr
    assert Trace.from_json(ok.stdout).num_positions == 8
    for args in [("--image", str(tmp_path / "bad.png"), "--question", "q"), ("--question", "")]:
        bad = run(*args)
        assert bad.returncode == 2
        assert bad.stderr.strip().count("\n") == 0 and bad.stderr.startswith("error:"), bad.stderr


def test_response_prefix_is_forced(sketchy_model):
    prompt = Prompt(PROMPTS[0].question, PROMPTS[0].images, response_prefix="The answer is")
    trace = Engine(sketchy_model).generate([prompt], GenerationSettings(max_new_tokens=12, seed=1))[0]
    assert trace.text.startswith("The answer is")
