"""Generation engine: batching, KV-cache equivalence with teacher forcing, modes, limits, streaming; a row's
bookkeeping and the sequential decoding's step on their own; the edges' input checks; the CLI (`python -m
model.generate`): a Trace, and one error line for every bad input."""

import copy
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sample_prompts import PROMPTS, image

from model.core.checkpoint import load_pretrained, save_pretrained
from model.core.tokenizer import encode_text, prompt_ids
from model.generation import cli
from model.generation.engine import Engine, GenerationSettings, Prompt
from model.generation.events import log_traces, read_events
from model.generation.inputs import InputError, check_image_count, check_question, check_seed, load_image
from model.generation.modes import DIRECT_PREFIX, MODE_SPECS
from model.generation.rows import RowState, finish, write_token
from model.generation.sketching import SketchPlan, draw_sequential
from model.generation.trace import Trace


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
        # the segments tile the response positions (a text token one each, a sketch ⟨START⟩ + K slots + ⟨END⟩, then
        # ⟨eos⟩ unless the row was cut off), so every sketch was closed by ⟨END⟩ within the limit
        position = 0
        for segment in trace.segments:
            assert segment.start_position == position
            if segment.kind == "text":
                position += len(segment.token_ids)
            else:
                assert segment.end_position == segment.start_position + K + 1
                assert segment.latents.shape == (K, model.config.hidden_size)
                position = segment.end_position + 1
        assert trace.num_positions == position + (0 if trace.truncated else 1)


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


def test_sketch_temperature_scales_the_start_noise(sketchy_model, monkeypatch):
    """The head starts each draw from τ·ε (ε the row's seeded noise): τ = 0 draws one sketch whatever the seed."""
    model = copy.deepcopy(sketchy_model)
    starts, sample = [], model.head.sample

    def recording(cond, steps, noise=None, **kw):
        starts.append(noise.clone())
        return sample(cond, steps, noise=noise, **kw)

    monkeypatch.setattr(model.head, "sample", recording)
    engine = Engine(model)

    def run(tau, seed):
        model.config.sketch_temperature = tau
        starts.clear()
        traces = engine.generate(PROMPTS[:1], GenerationSettings(max_new_tokens=40, seed=seed))
        assert traces[0].num_sketches >= 1, "the test needs a sketch"
        return traces[0].sketches[0].latents, list(starts)

    one, noise_one = run(1.0, 5)
    half, noise_half = run(0.5, 5)
    torch.testing.assert_close(noise_half[0], 0.5 * noise_one[0])  # the first slot's state is the same for both
    zero_a, _ = run(0.0, 5)
    zero_b, _ = run(0.0, 6)
    np.testing.assert_array_equal(zero_a, zero_b)
    assert not np.allclose(run(1.0, 6)[0], one)  # at τ = 1 the seed matters
    assert not np.allclose(half, one)
    with pytest.raises(ValueError, match="sketch_temperature"):
        type(model.config)(**{**model.config.to_dict(), "sketch_temperature": -0.1})


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


def test_log_traces_records_each_answer_and_sketch(sketchy_model, tmp_path):
    """The engine writes nothing; callers log its Traces with log_traces, graded against the known answers."""
    traces = Engine(sketchy_model).generate(PROMPTS, GenerationSettings(max_new_tokens=40, seed=3))
    assert sum(t.num_sketches for t in traces) > 0, "the test needs sketches to be meaningful"
    answers = [traces[0].answer, "not what it said", traces[2].answer + "x", None]  # right, wrong, wrong, ungraded
    log_traces(tmp_path / "events", traces, run_id="r", checkpoint="tiny", latent_budget=4, diffusion_loss_weight=0.5,
               families=["f"] * 4, example_ids=[f"ex{i}" for i in range(4)], answers=answers)  # fmt: skip
    events = read_events(tmp_path / "events")
    rows = events[events.event == "ANSWER"].set_index("example_id").sort_index()
    assert rows.index.tolist() == ["ex0", "ex1", "ex2", "ex3"]
    assert [None if pd.isna(c) else bool(c) for c in rows["correct"]] == [True, False, False, None]
    assert rows["num_sketches"].tolist() == [t.num_sketches for t in traces]
    assert rows["answer_length"].tolist() == [t.num_positions for t in traces]
    starts = events[events.event == "START"].sort_values(["example_id", "token_index"])
    expected = [(f"ex{i}", s.start_position) for i, t in enumerate(traces) for s in t.sketches]
    assert list(zip(starts["example_id"], starts["token_index"])) == expected
    assert len(list((tmp_path / "events").iterdir())) == 1  # one part file per call, no temporary file left


def test_model_without_head_runs_text_only_and_says_so(tiny_model, tmp_path):
    plain = load_pretrained(save_pretrained(tiny_model, tmp_path / "ckpt"), with_latent_head=False)
    engine = Engine(plain)
    for mode in ("auto", "noise-latents", "oracle"):
        trace = engine.generate([PROMPTS[0]], GenerationSettings(mode=mode, max_new_tokens=12))[0]
        assert (trace.mode, trace.num_sketches) == ("text-only", 0), mode
    assert engine.generate([PROMPTS[0]], GenerationSettings(mode="direct", max_new_tokens=12))[0].mode == "direct"


def test_direct_mode_forces_the_answer_prefix(sketchy_model):
    traces = Engine(sketchy_model).generate(PROMPTS, GenerationSettings(mode="direct", max_new_tokens=12, seed=1))
    for trace in traces:
        assert trace.mode == "direct" and trace.num_sketches == 0
        assert trace.text.startswith(DIRECT_PREFIX)


def test_edges_check_user_input(tmp_path):
    """The CLI and the app check questions and images with model/generation/inputs.py; the engine does not."""
    (tmp_path / "not.png").write_text("plain text")
    Image.new("L", (4100, 4100)).save(tmp_path / "huge.png")
    image(0).save(tmp_path / "ok.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "ok.png").read_bytes()[:200])
    cases = [
        ("the question is empty", lambda: check_question("   ")),
        ("1001 characters; the limit is 1000", lambda: check_question("x" * 1001)),
        (r"not valid UTF-8 text \(character 3 cannot", lambda: check_question("ab\udcff")),
        ("not.png is not an image file", lambda: load_image(tmp_path / "not.png")),
        ("4100×4100 pixels; the limit", lambda: load_image(tmp_path / "huge.png")),
        ("missing.png does not exist", lambda: load_image(tmp_path / "missing.png")),
        ("the image data is damaged", lambda: load_image(tmp_path / "cut.png")),
        ("no image", lambda: check_image_count(0)),
        ("got 3 images; the limit is 2", lambda: check_image_count(3)),
        (r"between 0 and 2\*\*63 - 1", lambda: check_seed(2**64)),
        ("whole number, got 1.5", lambda: check_seed(1.5)),
    ]
    for message, check in cases:
        with pytest.raises(InputError, match=message):
            check()
    assert check_question("  Which colour?  ") == "Which colour?"
    assert load_image(tmp_path / "ok.png").size == (56, 56)
    with pytest.raises(ValueError, match="unknown mode 'dream'"):
        GenerationSettings(mode="dream").check()
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="temperature must be between 0 and 100"):
            GenerationSettings(temperature=bad).check()


# ---- the CLI ----------------------------------------------------------------------------------------------------
def run_cli(*args: str | bytes) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "model.generate", *args], capture_output=True, timeout=300)


def call_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """model.generation.cli.main in this process: (exit status, stdout, stderr)."""
    try:
        code = cli.main(argv)
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_prints_the_trace_and_logs_it(tmp_path):
    image(0).save(tmp_path / "x.png")
    ok = run_cli("--checkpoint", "tiny", "--image", str(tmp_path / "x.png"), "--question", "How many?",
                 "--max-new-tokens", "8", "--json", "--event-log", str(tmp_path / "events"))  # fmt: skip
    assert ok.returncode == 0, ok.stderr.decode()
    trace = Trace.from_json(ok.stdout.decode())
    assert trace.num_positions == 8 and trace.question == "How many?"
    events = read_events(tmp_path / "events")
    assert events["event"].tolist() == ["ANSWER"] + ["START", "END"] * trace.num_sketches
    assert set(events["run_id"]) == {"cli"} and set(events["checkpoint"]) == {"tiny"}


def test_cli_sketch_temperature(sketchy_model, tmp_path, monkeypatch, capsys):
    """--sketch-temperature 0 draws the same sketch whatever the seed; the checkpoint's τ (1) does not. (In process,
    with the sketch-biased tiny model standing in for the loaded checkpoint: its bias is not stored in a folder.)"""
    monkeypatch.setattr(cli, "load_model", lambda *a, **kw: copy.deepcopy(sketchy_model))
    image(0).save(tmp_path / "x.png")

    def first_sketch(seed, *tau):
        argv = ["--checkpoint", "tiny", "--image", str(tmp_path / "x.png"), "--question", "How many?",
                "--max-new-tokens", "40", "--json", "--latents", "--seed", seed, *tau]  # fmt: skip
        assert cli.main(argv) == 0
        sketches = Trace.from_json(capsys.readouterr().out).sketches
        assert sketches, "the test needs a sketch"
        return sketches[0].latents

    tau0 = ("--sketch-temperature", "0")
    np.testing.assert_array_equal(first_sketch("1", *tau0), first_sketch("2", *tau0))
    assert not np.allclose(first_sketch("1"), first_sketch("2"))


def test_cli_refuses_a_question_that_is_not_utf8(tmp_path):
    """Bytes that are not UTF-8 reach Python's argv as lone surrogates: one error line, exit status 2."""
    image(0).save(tmp_path / "x.png")
    bad = run_cli("--checkpoint", "tiny", "--image", str(tmp_path / "x.png"), "--question", b"caf\xe9?")
    assert bad.returncode == 2 and bad.stdout == b""
    assert bad.stderr.decode() == "error: the question is not valid UTF-8 text (character 4 cannot be encoded)\n"


QWEN_DAMAGED = "could not load '{folder}' as a Qwen2.5-VL checkpoint: {folder}/model.safetensors is damaged"


@pytest.fixture(scope="module")
def broken_checkpoints(tiny_model, tiny_qwen_folder, tmp_path_factory):
    """Checkpoint folders, each damaged in one way: name → folder."""
    root = tmp_path_factory.mktemp("broken")
    folders = {}
    configs = {"config-not-json": "{not json", "config-a-list": "[]", "config-other-model": '{"model_type": "bert"}',
               "config-no-sizes": '{"model_type": "qwen2_5_vl"}'}  # fmt: skip
    for name, text in configs.items():
        folder = save_pretrained(tiny_model, root / name)
        (folder / "config.json").write_text(text)
        folders[name] = folder
    weights = (tiny_qwen_folder / "model.safetensors").read_bytes()
    for name, kept in [("qwen-truncated", len(weights) // 2), ("qwen-header-cut", 12)]:
        folders[name] = shutil.copytree(tiny_qwen_folder, root / name)
        (folders[name] / "model.safetensors").write_bytes(weights[:kept])
    return folders


@pytest.mark.parametrize(
    "case, message",
    [
        ("config-not-json", "{folder}/config.json is damaged: not valid JSON"),
        ("config-a-list", "{folder}/config.json is damaged: expected a JSON object, got list"),
        ("config-other-model", "{folder}/config.json has model_type 'bert'; expected 'modal_mixed'"),
        ("config-no-sizes", "{folder}/config.json is damaged: a Qwen2.5-VL config without the model's sizes"),
        (
            "qwen-truncated",
            "could not load '{folder}' as a Qwen2.5-VL checkpoint: {folder}/model.safetensors is damaged",
        ),
        (
            "qwen-header-cut",
            "could not load '{folder}' as a Qwen2.5-VL checkpoint: {folder}/model.safetensors is damaged",
        ),
    ],
)
def test_cli_names_a_damaged_checkpoint_in_one_line(broken_checkpoints, tmp_path, capsys, case, message):
    image(0).save(tmp_path / "x.png")
    folder = str(broken_checkpoints[case])
    code, out, err = call_cli(["--checkpoint", folder, "--image", str(tmp_path / "x.png"), "--question", "q"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: " + message.format(folder=folder)) and err.count("\n") == 1, err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--temperature", "nan"], "--temperature and --top-p must be finite numbers, got nan, 1.0"),
        (["--temperature", "inf"], "--temperature and --top-p must be finite numbers, got inf, 1.0"),
        (["--top-p", "nan"], "--temperature and --top-p must be finite numbers, got 0.0, nan"),
        (["--seed", str(2**64)], f"the seed must be between 0 and 2**63 - 1 = {2**63 - 1}, got {2**64}"),
        (["--seed", "-1"], "the seed must be between 0 and 2**63 - 1"),
        (["--seed", "abc"], "argument --seed: invalid int value: 'abc'"),
        (["--question", "caf\udce9?"], "the question is not valid UTF-8 text (character 4 cannot be encoded)"),
        (["--question", "  "], "the question is empty"),
        (["--event-log", "{tmp}/file.txt"], "--event-log {tmp}/file.txt is a file, not a folder"),
        (["--no-image"], "no image: give a problem image"),
        (["--image", "{tmp}/x.png", "--image", "{tmp}/x.png"], "got 3 images; the limit is 2"),
        (["--no-image", "--image", "{tmp}/file.txt"], "file.txt is not an image file PIL can read"),
        (["--mode", "oracle"], "argument --mode: invalid choice: 'oracle'"),
        (["--max-new-tokens", "0"], "max_new_tokens must be >= 1, got 0"),
        (["--diffusion-steps", "0"], "--diffusion-steps must be between 1 and 1000, got 0"),
        (["--sketch-temperature", "-0.5"], "--sketch-temperature must be a finite number >= 0, got -0.5"),
        (["--sketch-temperature", "nan"], "--sketch-temperature must be a finite number >= 0, got nan"),
        (["--device", "tpu"], "--device 'tpu'"),
        (["--checkpoint", "../nope"], "checkpoint folder ../nope does not exist"),
        (["--checkpoint", "nope/"], "checkpoint folder nope/ does not exist"),
        (["--checkpoint", ""], "no checkpoint given"),
    ],
)
def test_cli_bad_input_is_one_error_line(tmp_path, capsys, args, message):
    """Each refused with one `error:` line and exit status 2, before anything is generated."""
    image(0).save(tmp_path / "x.png")
    (tmp_path / "file.txt").write_text("not a folder, not an image")
    args = [a.format(tmp=tmp_path) for a in args]
    argv = ["--checkpoint", "tiny", "--question", "q"]
    if "--no-image" in args:
        args.remove("--no-image")
    else:
        argv += ["--image", str(tmp_path / "x.png")]
    code, out, err = call_cli(argv + args, capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: " + message.format(tmp=tmp_path)) and err.count("\n") == 1, err


def test_response_prefix_is_forced(sketchy_model):
    prompt = Prompt(PROMPTS[0].question, PROMPTS[0].images, response_prefix="The answer is")
    trace = Engine(sketchy_model).generate([prompt], GenerationSettings(max_new_tokens=12, seed=1))[0]
    assert trace.text.startswith("The answer is")


def test_trace_carries_right_or_wrong():
    trace = Trace(question="q", mode="auto", answer="red", correct=True, seed=3)
    assert Trace.from_dict(json.loads(trace.to_json())).correct is True
    old = trace.to_dict()
    del old["correct"]  # a Trace stored before the field existed reads back as ungraded
    assert Trace.from_dict(old).correct is None


def test_a_rows_tokens_become_its_segments(sketchy_model):
    """rows.write_token books what a row writes, position by position: text spans with their first position and
    character, a sketch from ⟨START⟩ to ⟨END⟩ with the latents it was given, ⟨eos⟩ ending the row."""
    model, K = sketchy_model, sketchy_model.latent_budget
    row = RowState(torch.Generator())
    first, second = encode_text(model.tokenizer, "Trace it."), encode_text(model.tokenizer, " Yes.")
    latents = torch.randn(K, model.config.hidden_size)
    events = []
    for token in first + [model.start_id]:
        events += list(write_token(model, 0, row, token))
    for latent in latents:  # what a decoding records while it draws
        row.drawing.latents.append(latent)
        row.positions += 1
    for token in [model.end_id, *second]:
        events += list(write_token(model, 0, row, token))
    ended = write_token(model, 0, row, model.eos_id)
    assert next(ended, "done") == "done"  # ⟨eos⟩ streams nothing itself
    trace = Trace("q", "auto", seed=1)
    events += list(finish(model.tokenizer, 0, row, trace, False, (0.0, 0.0)))
    text, sketch, after = trace.segments
    assert (text.start_position, text.start_char, text.token_ids) == (0, 0, first)
    assert (sketch.start_position, sketch.end_position, sketch.char_position) == (len(first), len(first) + K + 1,
                                                                                 len(text.text))  # fmt: skip
    np.testing.assert_array_equal(sketch.latents, latents.numpy())
    assert (after.start_position, after.start_char) == (len(first) + K + 2, len(text.text))
    assert trace.num_positions == len(first) + K + 2 + len(second) + 1 and not trace.truncated
    assert "".join(e.text for e in events if e.kind == "text") == trace.text == text.text + after.text
    assert [e.kind for e in events if e.kind != "text"] == ["sketch_started", "sketch_done", "finished"]


def test_draw_sequential_draws_each_slot_from_the_state_before_it(sketchy_model):
    """The sequential decoding's one step, against the head sampled here: the head's condition of the state and
    slot, the row's own noise at the model's sketch temperature, destandardised, recorded on the row, and returned
    as the backbone reads it (with its slot's position)."""
    model, D = sketchy_model, sketchy_model.config.hidden_size
    rows = [RowState(torch.Generator().manual_seed(s)) for s in (3, 4)]
    for row in rows:
        list(write_token(model, 0, row, model.start_id))
    rows[1].drawing.latents.append(torch.zeros(D))  # its second slot
    hidden = torch.randn(2, D, generator=torch.Generator().manual_seed(0))
    plan = SketchPlan(MODE_SPECS["auto"], steps=3, snap=False, passes=0)
    prompts = [Prompt("q"), Prompt("q")]
    got = draw_sequential(model, hidden, [0, 1], rows, prompts, plan)
    slot = torch.tensor([0, 1])
    noise = torch.stack([torch.randn(D, generator=torch.Generator().manual_seed(s)) for s in (3, 4)])
    cond = model.head.condition(hidden, slot)
    want = model.destandardize(model.head.sample(cond, 3, noise=noise * model.config.sketch_temperature,
                                                 solver=model.config.diffusion_solver))  # fmt: skip
    torch.testing.assert_close(torch.stack([rows[0].drawing.latents[0], rows[1].drawing.latents[1]]), want)
    torch.testing.assert_close(got, model.latent_inputs(want, slot))
    assert rows[1].slots_done == 2 and rows[0].drawing.conditions[0].shape == cond[0].shape
