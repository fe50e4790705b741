"""Data loading: Zebra-CoT rows → examples → token layout → batches that ModalMixedModel.forward takes; warm-up pairs.

    python -m pytest -q tests/test_data.py

Expected layouts are written out here from the tokenizer and the special ids, not taken from model/data.py.
"""

import io
import logging
import warnings
from collections import Counter

import pytest
import torch
from datasets import Dataset, Features, Image, Value
from PIL import Image as PILImage

from model.core.tokenizer import encode_text, prompt_ids
from model.data.batches import SFTDataset, collate
from model.data.encoding import STYLES, encode_example, encode_examples
from model.data.visual_cache import VisualCache, fit_stats, load_or_compute, precompute_visuals
from model.data.warmup import parse_description, warmup_examples
from model.data.zebra import Sketch, SkipReason, load_examples
from model.sketchworld import load_split, write_dataset
from model.sketchworld.grid import COLOR_NAMES, read_grid
from model.training.recipe import forward_batch


def ph(kind, k):
    return f"<image_start>[{kind}_image_{k}]<image_end>"


def png(colour, size=32):
    buf = io.BytesIO()
    PILImage.new("RGB", (size, size), colour).save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def zebra_row(**overrides):
    """A Zebra-CoT-style row with only the core columns: one problem image, two reasoning images."""
    row = {
        "Question": f"{ph('problem', 1)} Where does the red piece end up?",
        "Text Reasoning Trace": (
            f"THOUGHT 1: Tilt down. {ph('reasoning', 1)}\nTHOUGHT 2: Tilt left. {ph('reasoning', 2)}\n"
            "THOUGHT 3: The answer is left."
        ),
        "Final Answer": "left",
        "problem_image_1": png("red"),
        "reasoning_image_1": png("blue"),
        "reasoning_image_2": png("green"),
    }
    row.update(overrides)
    return row


def zebra_dataset(rows):
    features = Features(
        {
            "Question": Value("string"),
            "Text Reasoning Trace": Value("string"),
            "Final Answer": Value("string"),
            "problem_image_1": Image(),
            "reasoning_image_1": Image(),
            "reasoning_image_2": Image(),
        }
    )
    return Dataset.from_dict({name: [row[name] for row in rows] for name in features}, features=features)


def sketch_ids(model):
    return [model.start_id] + [model.latent_id] * model.latent_budget + [model.end_id]


@pytest.fixture(scope="module")
def sketchworld(tmp_path_factory):
    out = tmp_path_factory.mktemp("sketchworld")
    write_dataset(str(out), per_family=2, seed=0)
    return load_split(str(out), "train")


def test_interleaved_layout_and_forward(tiny_model):
    model, tok = tiny_model, tiny_model.tokenizer
    examples, report = load_examples(zebra_dataset([zebra_row()]))
    assert report.kept == 1 and report.counts == {}
    example = examples[0]
    assert example.id == "row-0" and example.family == "" and example.choices == []
    assert example.segments[1] == Sketch(0) and example.segments[3] == Sketch(1)
    enc = encode_example(model, example, "interleaved")

    prompt = prompt_ids(tok, "Where does the red piece end up?", 1, model.tokens_per_image)
    response = (
        encode_text(tok, "THOUGHT 1: Tilt down. ")
        + sketch_ids(model)
        + encode_text(tok, "\nTHOUGHT 2: Tilt left. ")
        + sketch_ids(model)
        + encode_text(tok, "\nTHOUGHT 3: The answer is left.")
        + [model.eos_id]
    )
    assert enc.input_ids == prompt + response
    assert enc.input_ids.count(model.image_token_id) == model.tokens_per_image
    assert enc.input_ids.count(model.latent_id) == 2 * model.latent_budget
    no_loss = [i for i, label in enumerate(enc.labels) if label == -100]
    slots = [i for i, t in enumerate(enc.input_ids) if t == model.latent_id]
    assert no_loss == list(range(len(prompt))) + slots
    assert all(
        enc.labels[i] == enc.input_ids[i] for i in range(len(prompt), len(prompt) + len(response)) if i not in slots
    )
    assert enc.sketch_images == [0, 1]
    # the text tokens alone decode to the trace with its placeholders left out
    text = [t for t in response if t not in (model.start_id, model.end_id, model.latent_id, model.eos_id)]
    assert tok.decode(text) == "THOUGHT 1: Tilt down. \nTHOUGHT 2: Tilt left. \nTHOUGHT 3: The answer is left."

    cache = precompute_visuals(model, examples, progress=False, dtype=torch.float32)
    batch = collate([SFTDataset([enc], cache)[0]], tok.pad_token_id)
    assert batch["latents"].shape == (2 * model.latent_budget, model.config.hidden_size)
    assert batch["image_embeds"].shape == (model.tokens_per_image, model.config.hidden_size)
    expected = model.sketch_targets(example.reasoning_images).flatten(0, 1)
    torch.testing.assert_close(batch["latents"], expected)
    torch.manual_seed(0)
    loss = forward_batch(model, batch).loss
    assert torch.isfinite(loss)
    # cached encoder outputs give the same loss as running the encoder on pixels
    pixels = SFTDataset([enc], cache, "pixels", model.image_processor, model.config.image_size)
    torch.manual_seed(0)
    torch.testing.assert_close(forward_batch(model, collate([pixels[0]], tok.pad_token_id)).loss, loss)


def test_bad_rows_are_counted_by_reason(caplog):
    trace_7 = f"THOUGHT 1: Look. {ph('reasoning', 7)}\nTHOUGHT 2: The answer is left."
    rows = [
        zebra_row(),
        zebra_row(reasoning_image_2=None),
        zebra_row(reasoning_image_1={"bytes": b"\x89PNG not really", "path": None}),
        zebra_row(**{"Text Reasoning Trace": trace_7}),
        zebra_row(**{"Final Answer": "  "}),
        zebra_row(**{"Question": ph("problem", 1)}),
        zebra_row(**{"Question": f"{ph('reasoning', 1)} Where?"}),
        zebra_row(**{"Final Answer": "right"}),
    ]
    with caplog.at_level(logging.WARNING, logger="model.data"):
        examples, report = load_examples(zebra_dataset(rows))
    assert report.counts == {
        "missing image": 1,
        "unreadable image": 1,
        "no such column": 1,
        "empty answer": 1,
        "empty question": 1,
        "reasoning image in question": 1,
    }
    assert (report.total, report.kept) == (8, 2)
    assert [e.answer for e in examples] == ["left", "right"] and [e.id for e in examples] == ["row-0", "row-7"]
    assert "unreadable image 1" in str(report) and "kept 2 of 8" in str(report)
    assert any("missing image 1" in r.getMessage() for r in caplog.records)
    _, limited = load_examples(zebra_dataset(rows), limit=2)
    assert (limited.total, limited.counts) == (2, {"missing image": 1})


def test_collate_pads_and_orders_latents_by_slot(tiny_model):
    model, dim, budget = tiny_model, tiny_model.config.hidden_size, tiny_model.latent_budget
    short = zebra_row(**{"Text Reasoning Trace": f"THOUGHT 1: Go. {ph('reasoning', 1)}\nTHOUGHT 2: The answer is up."})
    examples, _ = load_examples(zebra_dataset([zebra_row(), short]))
    encoded = [encode_example(model, e, "interleaved") for e in examples]
    # distinct constants per sketch and per problem image, so each embedding tells where it came from
    cache = VisualCache(
        latent_budget=budget,
        problem_embeds=torch.stack([torch.full((model.tokens_per_image, dim), v) for v in (10.0, 20.0)]),
        problem_grid=torch.tensor([[1, 8, 8], [1, 8, 8]]),
        sketch_latents=torch.stack([torch.full((budget, dim), v) for v in (1.0, 2.0, 3.0)]),
        problem_index={("row-0", 0): 0, ("row-1", 0): 1},
        sketch_index={("row-0", 0): 0, ("row-0", 1): 1, ("row-1", 0): 2},
    )
    dataset = SFTDataset(encoded, cache)
    batch = collate([dataset[1], dataset[0]], pad_id=model.tokenizer.pad_token_id)
    lengths = [len(encoded[1].input_ids), len(encoded[0].input_ids)]
    assert lengths[0] < lengths[1] and batch["input_ids"].shape == (2, lengths[1])
    assert batch["attention_mask"].sum(1).tolist() == lengths
    assert (batch["input_ids"][0, lengths[0] :] == model.tokenizer.pad_token_id).all()
    assert (batch["labels"][0, lengths[0] :] == -100).all()
    with torch.no_grad():
        embeds = model.embed(batch["input_ids"], batch["latents"], image_embeds=batch["image_embeds"])
    # the model adds each slot's and each image token's cell position; what is left is the constant that says where
    # the embedding came from
    at_slots = embeds[batch["input_ids"] == model.latent_id] - model.cell_positions(budget).repeat(3, 1)  # row-major
    expected = torch.tensor([3.0] * budget + [1.0] * budget + [2.0] * budget)
    torch.testing.assert_close(at_slots, expected[:, None].expand(-1, dim))
    at_images = embeds[batch["input_ids"] == model.image_token_id] - model.cell_positions().repeat(2, 1)
    expected = torch.tensor([20.0] * model.tokens_per_image + [10.0] * model.tokens_per_image)
    torch.testing.assert_close(at_images, expected[:, None].expand(-1, dim))
    assert torch.isfinite(forward_batch(model, batch).loss)


def test_text_only_and_direct_have_no_sketch_tokens(tiny_model, sketchworld):
    model = tiny_model
    examples, _ = load_examples(sketchworld)
    sketch_tokens = {model.start_id, model.end_id, model.latent_id}
    sink = next(e for e in examples if e.family == "sink")
    for style in ("text-only", "direct"):
        enc = encode_example(model, sink, style)
        assert not sketch_tokens & set(enc.input_ids) and enc.sketch_images == []
        response = model.tokenizer.decode(enc.input_ids[enc.prompt_length : -1])
        assert response == (sink.text_only_trace if style == "text-only" else f"The answer is {sink.answer}.")
    # without the text_only_trace column: the trace with placeholders left out, no stray spaces
    sink.text_only_trace = None
    enc = encode_example(model, sink, "text-only")
    text = model.tokenizer.decode(enc.input_ids[enc.prompt_length : -1])
    assert text.startswith("THOUGHT 1: Tilt") and "<image_start>" not in text and " \n" not in text
    assert text.count("THOUGHT") == 4
    with pytest.raises(ValueError, match="unknown answer style 'sketchy'"):
        encode_example(model, sink, "sketchy")


def test_every_sketchworld_family_encodes_interleaved(tiny_copy, sketchworld):
    model = tiny_copy  # fit_stats changes the model's latent statistics
    examples, report = load_examples(sketchworld)
    assert report.kept == len(sketchworld) and {e.family for e in examples} >= {"count", "sink", "maze", "shift"}
    encoded, _ = encode_examples(model, examples, "interleaved")
    for e, enc, row in zip(examples, encoded, sketchworld):
        assert e.num_sketches == row["num_sketches"] == enc.input_ids.count(model.start_id)
        assert enc.input_ids.count(model.end_id) == e.num_sketches
        assert enc.input_ids.count(model.image_token_id) == model.tokens_per_image * len(e.problem_images)
        assert e.choices == row["answer_choices"] and e.answer in e.choices
        if e.family == "sink":
            assert e.num_sketches == 2 and enc.sketch_images == [0, 1]
    cache = precompute_visuals(model, examples, progress=False)
    assert cache.problem_embeds.dtype == torch.float16
    fit_stats(model, cache)
    targets = cache.sketch_latents.flatten(0, 1).float()  # (num_sketches · K, D)
    torch.testing.assert_close(model.latent_mean, targets.mean(0))
    torch.testing.assert_close(model.latent_std, targets.std(0).clamp_min(1e-4))
    dataset = SFTDataset(encoded, cache)
    batch = collate([dataset[i] for i in range(len(dataset))], model.tokenizer.pad_token_id)
    assert batch["latents"].shape[0] == sum(e.num_sketches for e in examples) * model.latent_budget
    assert torch.isfinite(forward_batch(model, batch).loss)


def test_mixed_styles_are_seeded_and_long_examples_skipped(tiny_model, sketchworld):
    model = tiny_model
    examples, _ = load_examples(sketchworld)
    mix = {"interleaved": 0.5, "text-only": 0.5}
    first, _ = encode_examples(model, examples, mix, seed=3)
    again, _ = encode_examples(model, list(reversed(examples)), mix, seed=3)
    styles = {e.id: e.style for e in first}
    assert styles == {e.id: e.style for e in again} and set(styles.values()) == set(mix)
    lengths = sorted(len(e.input_ids) for e in first)
    kept, report = encode_examples(model, examples, mix, seed=3, max_length=lengths[5])
    assert report.counts == {"too long": len(examples) - len(kept)} and len(kept) >= 6
    assert all(len(e.input_ids) <= lengths[5] for e in kept)
    assert set(STYLES) == {"interleaved", "text-only", "direct", "read-sketch"}


def test_special_token_spelling_in_question_stays_text(tiny_model):
    model = tiny_model
    question = f"{ph('problem', 1)} What does <|sketch_start|> <|sketch_pad|> <|im_end|> mean?"
    examples, _ = load_examples(zebra_dataset([zebra_row(Question=question)]))
    enc = encode_example(model, examples[0], "direct")
    prompt = enc.input_ids[: enc.prompt_length]
    assert model.start_id not in prompt and model.latent_id not in prompt
    assert prompt.count(model.eos_id) == 1  # only the one that closes the user turn
    assert enc.input_ids.count(model.latent_id) == 0


def picture_colours(pair) -> list[list[str]]:
    """The colour names of a warm-up pair's picture (the problem image, or the sketch's image), read off its pixels
    (16x16 cells for the big-board families, connect16 and maze16, 8x8 for the others)."""
    picture = pair.problem_images[0] if pair.problem_images else pair.reasoning_images[0]
    return [[COLOR_NAMES[v] for v in row] for row in read_grid(picture, 16 if pair.family.endswith("16") else 8)]


def test_warmup_answers_are_read_off_the_picture(tiny_model, sketchworld):
    """Every warm-up answer (the description and the cell, count and presence questions) checked against the grid
    read back from the picture's pixels (model/sketchworld/grid.py), not against the description it came from."""
    model = tiny_model
    examples, _ = load_examples(sketchworld)
    warmup = warmup_examples(examples, questions_per_image=3, sketch_share=0.5)
    num_images = sum(len(e.problem_images) + len(e.reasoning_images) for e in examples)
    describe = [w for w in warmup if w.question in ("Describe the image.", "Describe the sketch.")]
    assert len(describe) == num_images and len(warmup) == 4 * num_images
    kinds = Counter()
    for w in warmup:
        as_sketch = not w.problem_images
        if as_sketch:  # no picture in the prompt: the true sketch of it opens the answer
            assert w.segments == [Sketch(0), "\n" + w.answer] and len(w.reasoning_images) == 1
            assert w.question.endswith(("of the sketch?", "Describe the sketch."))
        names = picture_colours(w)
        question = w.question.removesuffix(" of the sketch?").removesuffix("?")
        if w.question.startswith("Describe"):
            kind, expected = "describe", w.answer
            assert parse_description(w.answer) == names
        elif question.startswith("What colour is at row "):
            r, c = (int(s) for s in question.removeprefix("What colour is at row ").split(", column "))
            kind, expected = "cell", names[r - 1][c - 1]
        elif question.startswith("How many "):
            colour = question.removeprefix("How many ").removesuffix(" cells are there")
            kind, expected = "count", str(sum(row.count(colour) for row in names))
        else:
            colour = question.removeprefix("Is there a ").removesuffix(" cell")
            kind, expected = "presence", "yes" if any(colour in row for row in names) else "no"
        assert w.answer == expected, (w.question, w.answer, expected)
        kinds[kind, as_sketch] += 1
    assert all(kinds[kind, shown] > 0 for kind in ("describe", "cell", "count", "presence") for shown in (0, 1))
    assert {w.answer for w in warmup if w.question.startswith("What colour")} - {"white"}  # not only the background
    assert {w.answer for w in warmup if w.question.startswith("Is there")} == {"yes", "no"}
    assert parse_description("a red square") is None
    again = warmup_examples(list(reversed(examples)), questions_per_image=3, sketch_share=0.5)
    assert sorted((w.id, w.question, w.answer) for w in again) == sorted((w.id, w.question, w.answer) for w in warmup)

    warmup = [w for w in warmup if w.problem_images]  # shown as pictures: the encoder sees pixels
    encoded, _ = encode_examples(model, warmup[:8], "interleaved")
    dataset = SFTDataset(
        encoded, visual="pixels", image_processor=model.image_processor, image_size=model.config.image_size
    )
    batch = collate([dataset[i] for i in range(len(dataset))], model.tokenizer.pad_token_id)
    assert batch["image_embeds"] is None and batch["latents"] is None
    assert batch["pixel_values"] is not None and batch["image_grid_thw"].shape == (8, 3)
    assert torch.isfinite(forward_batch(model, batch).loss)


def test_problem_image_in_trace_and_iterable_datasets():
    trace = f"THOUGHT 1: Look at {ph('problem', 1)} again.\nTHOUGHT 2: Draw. {ph('reasoning', 2)}\nTHOUGHT 3: Up."
    rows = [zebra_row(**{"Text Reasoning Trace": trace}), zebra_row(problem_image_1={"bytes": b"x", "path": None})]
    examples, report = load_examples(zebra_dataset(rows).to_iterable_dataset())
    assert report.counts == {"unreadable image": 1} and len(examples) == 1
    example = examples[0]
    assert example.segments == [
        "THOUGHT 1: Look at again.\nTHOUGHT 2: Draw. ",
        Sketch(0),
        "\nTHOUGHT 3: Up.",
    ]
    assert example.reasoning_images[0].getpixel((0, 0)) == (0, 128, 0)  # reasoning_image_2 is the green one


def test_duplicate_ids_and_missing_columns():
    rows = [zebra_row(), zebra_row()]
    dataset = zebra_dataset(rows).add_column("id", ["same", "same"])
    examples, report = load_examples(dataset)
    assert len(examples) == 1 and report.counts == {str(SkipReason.DUPLICATE_ID): 1}
    with pytest.raises(ValueError, match="Final Answer"):
        load_examples(zebra_dataset(rows).remove_columns("Final Answer"))


def test_visual_cache_on_disk_pools_to_any_budget(tiny_model, tmp_path):
    """Targets pooled from the stored full-resolution grid equal targets computed directly at each K."""
    write_dataset(str(tmp_path / "sw"), per_family=2, seed=0, families=["connect", "tilt"])
    examples, _ = load_examples(load_split(str(tmp_path / "sw"), "train"))
    first = load_or_compute(tiny_model, examples, tmp_path / "cache", progress=False)
    again = load_or_compute(tiny_model, examples, tmp_path / "cache", progress=False)  # from disk
    direct = precompute_visuals(tiny_model, examples, progress=False)
    for cache in (first, again):
        assert cache.latent_budget == tiny_model.latent_budget and cache.sketch_index == direct.sketch_index
        torch.testing.assert_close(cache.sketch_latents.float(), direct.sketch_latents.float(), atol=2e-3, rtol=0)
        torch.testing.assert_close(cache.problem_embeds, direct.problem_embeds)
    stored = next((tmp_path / "cache").glob("*.safetensors"))
    stored.write_bytes(stored.read_bytes()[:100])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rebuilt = load_or_compute(tiny_model, examples, tmp_path / "cache", progress=False)
    assert any("damaged" in str(w.message) for w in caught)
    torch.testing.assert_close(rebuilt.sketch_latents, first.sketch_latents)


def test_training_rows_of_some_families(tmp_path):
    """data_families keeps only those families' rows, in the run's shuffled order, and names a family the data
    lacks (stage 0 of the demo recipe learns pictures on the 8×8 boards first)."""
    from model.training.loop import training_rows
    from model.training.train_config import TrainConfig

    write_dataset(str(tmp_path / "sw"), per_family=5, seed=0, families=["connect", "maze", "fold"],
                  splits={"train": 1.0})  # fmt: skip
    every = training_rows(TrainConfig(data=str(tmp_path / "sw"), seed=3))
    some = training_rows(TrainConfig(data=str(tmp_path / "sw"), seed=3, data_families=["maze", "fold"]))
    assert sorted(set(every["family"])) == ["connect", "fold", "maze"] and len(every) == 15
    assert some["id"] == [i for i, f in zip(every["id"], every["family"]) if f in ("maze", "fold")]
    with pytest.raises(ValueError, match=r"data_families: count, sink not in .* \(it has connect, fold, maze\)"):
        training_rows(TrainConfig(data=str(tmp_path / "sw"), data_families=["maze", "count", "sink"]))
