"""Each picture through the encoder once per evaluation (model/core/image_memo.py): the memo gives the encoder's own
numbers, encodes only pictures it has not seen, forgets outside its block, and an audit with it answers exactly as
one without it (and without the prefill kept between modes); the CLI's --reuse and --precision."""

import copy
import json

import pandas as pd
import pytest
import torch
from conftest import random_image

from model.core.image_memo import ImageMemo, image_features, remembering
from model.data.folders import select_rows
from model.data.zebra import load_examples
from model.evaluation.cli import main
from model.evaluation.harness import evaluate
from model.sketchworld import DEFAULT_FAMILIES, load_split, write_dataset


class CountingEncoder:
    """Counts the pictures that reach `model.encode_images` (through `model.pixels`) while installed."""

    def __init__(self, model, monkeypatch):
        self.pictures = 0
        original = model.pixels

        def pixels(images):
            self.pictures += len(images)
            return original(images)

        monkeypatch.setattr(model, "pixels", pixels)


def test_the_memo_gives_the_encoders_numbers_and_encodes_each_picture_once(tiny_copy, monkeypatch):
    model = tiny_copy
    pictures = [random_image(i) for i in range(3)]
    asked = [pictures[0], pictures[1], pictures[0], pictures[2]]  # a repeat inside one call
    expected = model.encode_images(*model.pixels(asked))  # independent: straight through the encoder
    counter = CountingEncoder(model, monkeypatch)
    with remembering(model) as memo:
        first, grid = image_features(model, asked)
        assert counter.pictures == 3, "the repeat is encoded once"
        again, _ = image_features(model, [pictures[2], pictures[1]])
        assert counter.pictures == 3, "pictures seen before are not encoded again"
        assert (memo.misses, memo.hits) == (3, 3)
    torch.testing.assert_close(first, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(again, torch.stack([expected[3], expected[1]]))
    assert grid.shape == (4, 3) and (grid == grid[0]).all()
    assert getattr(model, "image_memo", None) is None, "nothing is remembered after the block"
    image_features(model, [pictures[0]])
    assert counter.pictures == 4, "outside the block every call encodes"


def test_a_picture_is_known_by_its_pixels_and_the_oldest_leave_first(tiny_copy):
    a, b = random_image(1), random_image(2)
    assert ImageMemo.key(a) == ImageMemo.key(a.copy()) != ImageMemo.key(b)
    assert ImageMemo.key(a) != ImageMemo.key(a.convert("L"))
    memo = ImageMemo(capacity=2)
    for name in ("x", "y", "z"):
        memo.put(name, torch.zeros(1), torch.zeros(3))
    assert list(memo.entries) == ["y", "z"]
    memo.get("y")
    memo.put("w", torch.zeros(1), torch.zeros(3))
    assert list(memo.entries) == ["y", "w"], "a picture asked again stays; the least recently asked leaves"
    with pytest.raises(ValueError, match="capacity must be >= 1, got 0"):
        ImageMemo(capacity=0)


def test_an_outer_memo_is_kept_by_an_inner_block(tiny_copy):
    with remembering(tiny_copy) as outer:
        with remembering(tiny_copy) as inner:
            assert inner is outer
        assert tiny_copy.image_memo is outer, "the inner block does not take away the outer memo"
    assert getattr(tiny_copy, "image_memo", None) is None


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sketchworld")
    write_dataset(str(out), per_family=2, seed=3, splits={"train": 0.5, "test": 0.5})
    return out


def test_an_audit_answers_the_same_with_and_without_the_memo(sketchy_model, data_dir, monkeypatch):
    sketchy_model = copy.deepcopy(sketchy_model)  # the shared one is not to be changed
    examples, _ = load_examples(select_rows(load_split(str(data_dir), "test"), len(DEFAULT_FAMILIES)))
    modes = ["direct", "auto", "oracle", "shuffled-latents"]
    kwargs = dict(batch_size=3, max_new_tokens=24, progress=False)
    counter = CountingEncoder(sketchy_model, monkeypatch)
    without, _ = evaluate(sketchy_model, examples, modes, reuse=False, **kwargs)
    encoded_without, counter.pictures = counter.pictures, 0
    with_memo, _ = evaluate(sketchy_model, examples, modes, **kwargs)
    assert getattr(sketchy_model, "image_memo", None) is None
    columns = [c for c in without.columns if c != "latency_s"]
    pd.testing.assert_frame_equal(without[columns], with_memo[columns])
    assert with_memo["num_sketches"].sum() > 0, "the test needs the model to sketch"
    pictures = {ImageMemo.key(img) for ex in examples for img in ex.problem_images + ex.reasoning_images}
    assert counter.pictures <= len(pictures) < encoded_without


def test_the_cli_records_precision_and_runs_without_the_memo(data_dir, tmp_path):
    args = ["--checkpoint", "tiny", "--data", str(data_dir), "--limit", "3", "--modes", "direct,auto",
            "--max-new-tokens", "6", "--probe-split", "", "--jobs", "1"]  # fmt: skip
    assert main(args + ["--precision", "bf16", "--out", str(tmp_path / "bf16")]) == 0
    assert json.loads((tmp_path / "bf16" / "results.json").read_text())["config"]["precision"] == "bf16"
    assert main(args + ["--reuse", "off", "--out", str(tmp_path / "off")]) == 0
    config = json.loads((tmp_path / "off" / "results.json").read_text())["config"]
    assert (config["precision"], config["reuse"]) == ("fp32", "off")
    with pytest.raises(SystemExit) as exit_:
        main(args + ["--precision", "fp16", "--out", str(tmp_path / "fp16")])
    assert exit_.value.code == 2 and not (tmp_path / "fp16").exists()


def test_a_kept_prefill_answers_as_a_fresh_one_in_every_mode(sketchy_model, data_dir):
    """Engine(reuse_prefill=True) runs the language model over the same prompts once, however many modes follow,
    and each mode's traces equal a fresh engine's (decoding writes into a copy, never into the kept cache)."""
    from model.evaluation.harness import run_batch
    from model.generation.engine import Engine, GenerationSettings

    examples, _ = load_examples(select_rows(load_split(str(data_dir), "test"), 4))
    settings = GenerationSettings(max_new_tokens=24)
    keeping = Engine(sketchy_model, reuse_prefill=True)
    calls = []
    real = keeping._prefill
    keeping._prefill = lambda prompts: calls.append(len(prompts)) or real(prompts)
    for mode in ["auto", "oracle", "noise-latents", "auto"]:
        kept = run_batch(keeping, examples, mode, settings)
        fresh = run_batch(Engine(sketchy_model), examples, mode, settings)
        for a, b in zip(kept, fresh):
            assert (a.text, a.answer, a.num_positions) == (b.text, b.answer, b.num_positions)
            for x, y in zip(a.sketches, b.sketches):
                torch.testing.assert_close(torch.as_tensor(x.latents), torch.as_tensor(y.latents), rtol=0, atol=0)
    assert calls == [len(examples)], "one prefill for the four runs"
    assert any(t.num_sketches for t in kept), "the test needs the model to sketch"
    run_batch(keeping, examples[:2], "auto", settings)
    assert calls == [len(examples), 2], "other prompts are prefilled anew"
