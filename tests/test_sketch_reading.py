"""What makes sketches readable and necessary: cell positions, the sketch gate, blind rows, answer marks, the SFT
batch recipe (self-feeding), the regression head.

    python -m pytest -q tests/test_sketch_reading.py
"""

import random

import numpy as np
import pytest
import torch
from PIL import Image

from model.core import vision
from model.core.checkpoint import build_preset
from model.core.tokenizer import encode_text, prompt_ids
from model.data.batches import collate
from model.data.encoding import encode_example
from model.data.zebra import load_examples
from model.sketchworld import generate_instance
from model.sketchworld.schema import instance_to_row
from model.training.recipe import forward_batch
from model.training.sft_batch import prepare_batch
from model.training.train_config import TrainConfig


@pytest.fixture(scope="module")
def model():
    m = build_preset("tiny", seed=3)
    torch.manual_seed(0)
    with torch.no_grad():  # a spread-out head, so that sampled latents differ from one another
        for p in m.head.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m.eval()


def sequence(model, text_before="Trace.", text_after="The answer is red.", rows=2):
    """A batch of identical rows: prompt (one image) + text + sketch + text; latents random."""
    K = model.latent_budget
    prompt = prompt_ids(model.tokenizer, "What?", 1, model.tokens_per_image)
    response = encode_text(model.tokenizer, text_before) + [model.start_id] + [model.latent_id] * K + [model.end_id]
    response += encode_text(model.tokenizer, text_after) + [model.eos_id]
    ids = torch.tensor([prompt + response] * rows)
    labels = ids.clone()
    labels[:, : len(prompt)] = -100
    generator = torch.Generator().manual_seed(1)
    latents = torch.randn(rows * K, model.config.hidden_size, generator=generator)
    pixel_values, grid = model.pixels([Image.new("RGB", (56, 56), (200, 30, 30))] * rows)
    return dict(input_ids=ids, labels=labels, latents=latents, pixel_values=pixel_values, image_grid_thw=grid)


def test_cell_positions_are_pooled_like_the_targets(model):
    grid = model.config.merged_grid
    table = (model.cell_rows[:, None] + model.cell_cols[None]).reshape(grid, grid, -1)
    assert torch.allclose(model.cell_positions(), table.reshape(grid * grid, -1))
    for budget in (1, 2, 4, 8, 16):
        h, w = vision.budget_layout(budget, grid)
        bh, bw = grid // h, grid // w
        expected = torch.stack([table[r * bh : (r + 1) * bh, c * bw : (c + 1) * bw].mean(dim=(0, 1))
                                for r in range(h) for c in range(w)])  # fmt: skip
        torch.testing.assert_close(model.cell_positions(budget), expected)
    tokens = torch.zeros(2 * grid * grid, model.config.hidden_size)
    torch.testing.assert_close(model.image_inputs(tokens), table.reshape(grid * grid, -1).repeat(2, 1))
    slots = torch.tensor([0, 3, 1])
    latents = torch.ones(3, model.config.hidden_size)
    torch.testing.assert_close(
        model.latent_inputs(latents, slots), 1 + model.cell_positions(model.latent_budget)[slots]
    )


def test_gate_mask_matches_a_loop(model):
    batch = sequence(model)
    ids = batch["input_ids"]
    attention = torch.ones_like(ids)
    attention[1, -2:] = 0  # right padding on the second row
    mask = model.gate_mask(ids, attention, blind_rows=torch.tensor([False, True]))
    end = int((ids[0] == model.end_id).nonzero()[0])
    image = ids[0] == model.image_token_id
    for row in range(2):
        for q in range(ids.shape[1]):
            for k in range(ids.shape[1]):
                allowed = k <= q and bool(attention[row, k])
                if image[k] and (row == 1 or q >= end):  # gated after ⟨END⟩; a blind row never sees the image
                    allowed = False
                assert bool(mask[row, 0, q, k]) == allowed, (row, q, k)


def test_blind_rows_know_nothing_of_the_image(model):
    batch = sequence(model)
    other = dict(batch, pixel_values=torch.randn_like(batch["pixel_values"]))
    blind = torch.tensor([True, False])
    with torch.no_grad():
        a = forward_batch(model, {k: v for k, v in batch.items() if k != "labels"}, blind_rows=blind).hidden
        b = forward_batch(model, {k: v for k, v in other.items() if k != "labels"}, blind_rows=blind).hidden
    text = batch["input_ids"][0] != model.image_token_id
    torch.testing.assert_close(a[0][text], b[0][text])  # every non-image position of the blind row is unchanged
    assert (a[1][text] - b[1][text]).abs().max() > 1e-3  # the seeing row does depend on the picture


def test_blind_rows_take_no_diffusion_loss(model):
    batch = sequence(model)
    single = dict(sequence(model, rows=1), latents=batch["latents"][: model.latent_budget])
    torch.manual_seed(5)
    with torch.no_grad():
        only_first = forward_batch(model, single)
    torch.manual_seed(5)
    with torch.no_grad():
        blind_second = forward_batch(model, batch, blind_rows=torch.tensor([False, True]))
    torch.testing.assert_close(blind_second.latent_loss, only_first.latent_loss)


def test_answer_marks_cover_the_reading_line_and_the_answer():
    model = build_preset("tiny")
    for family, reading in [("fold", "There"), ("maze", " is gone"), ("connect", "the fill")]:
        inst = generate_instance(family, random.Random(2))
        example = load_examples([instance_to_row(inst, "x")])[0][0]
        encoded = encode_example(model, example, "interleaved")
        marked = model.tokenizer.decode([t for t, m in zip(encoded.input_ids, encoded.answer_mask) if m])
        line = inst.trace.split("\n")[1]  # THOUGHT 2: the line right after the sketch
        # (spaces aside: the tiny tokenizer may keep the space before the answer as a token of its own)
        assert marked.replace(" ", "") == (line + inst.answer).replace(" ", ""), (family, marked)
        assert reading in marked
        direct = encode_example(model, example, "direct")
        assert model.tokenizer.decode([t for t, m in zip(direct.input_ids, direct.answer_mask) if m]).strip() == (
            inst.answer
        )


def test_answer_weight_changes_only_the_weighting(model):
    batch = sequence(model)
    batch["answer_mask"] = torch.zeros_like(batch["input_ids"])
    batch["answer_mask"][:, -3] = 1
    with torch.no_grad():
        plain = forward_batch(model, {k: v for k, v in batch.items() if k != "answer_mask"})
        weighted = forward_batch(model, batch, label_weights=1 + 4 * batch["answer_mask"])
    logits, labels = plain.logits[:, :-1], batch["labels"][:, 1:]
    losses = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), labels.flatten(), reduction="none", ignore_index=-100
    )
    losses = losses.view(labels.shape)
    counted = (labels != -100) & (labels != model.latent_id)
    weights = counted.float() * (1 + 4 * batch["answer_mask"][:, 1:].float())
    torch.testing.assert_close(weighted.text_loss, (losses * weights).sum() / weights.sum())


def test_self_feeding_replaces_only_chosen_rows_and_keeps_targets(model):
    batch = sequence(model, rows=6)
    cfg = TrainConfig(self_feed_fraction=0.5, self_feed_steps=2, max_steps=10, seed=0)
    out = prepare_batch(cfg, model, batch, step=3)
    again = prepare_batch(cfg, model, batch, step=3)
    torch.testing.assert_close(out["latents"], again["latents"])  # the same step draws the same rows and noise
    assert out["target_latents"] is batch["latents"]
    K = model.latent_budget
    changed = [not torch.equal(out["latents"][r * K : (r + 1) * K], batch["latents"][r * K : (r + 1) * K])
               for r in range(6)]  # fmt: skip
    assert 0 < sum(changed) < 6
    assert np.isfinite(out["latents"].numpy()).all()
    # what replaces a row's latents is the head's draw from the teacher-forced condition of that row: with a
    # regression head the draw takes no noise, so it can be recomputed here value for value
    regression = build_preset("tiny", seed=3, head_type="regression").eval()
    with torch.no_grad():
        for p in regression.head.parameters():  # away from the zero-initialised output, so rows differ
            p.add_(torch.randn_like(p) * 0.05)
        fed = prepare_batch(cfg, regression, batch, step=3)["latents"]
        hidden = regression(**{k: v for k, v in batch.items() if k != "labels"}).hidden
        slot_rows, positions, slot_index = regression.latent_slots(batch["input_ids"])
        for row in range(6):
            given, mine = batch["latents"][row * K : (row + 1) * K], fed[row * K : (row + 1) * K]
            take = slot_rows == row
            cond = regression.head.condition(hidden[row, positions[take] - 1], slot_index[take])
            drawn = regression.destandardize(regression.head.sample(cond, cfg.self_feed_steps))
            torch.testing.assert_close(mine, drawn if changed[row] else given)  # the same rows as the diffusion run
    late = prepare_batch(TrainConfig(self_feed_fraction=0.5, self_feed_start=0.5, max_steps=10), model, batch, step=3)
    assert "target_latents" not in late  # before self_feed_start nothing is replaced


def test_regression_head_predicts_one_latent_per_condition():
    model = build_preset("tiny", head_type="regression").train()
    batch = sequence(model)
    batch["latents"] = batch["latents"][: model.latent_budget].repeat(2, 1)  # one sketch: learnable from the slots
    optimizer = torch.optim.Adam(model.head.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        loss = forward_batch(model, batch).latent_loss
        first = first if first is not None else float(loss.detach())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.2 * first
    cond = torch.randn(3, model.config.head_width)
    torch.testing.assert_close(model.head.sample(cond, 5), model.head.sample(cond, 50))  # no noise, no steps


def test_collate_carries_answer_marks():
    model = build_preset("tiny")
    inst = generate_instance("fold", random.Random(0))
    example = load_examples([instance_to_row(inst, "x")])[0][0]
    encoded = encode_example(model, example, "direct")
    item = {"input_ids": torch.tensor(encoded.input_ids), "labels": torch.tensor(encoded.labels),
            "answer_mask": torch.tensor(encoded.answer_mask)}  # fmt: skip
    batch = collate([item, {k: v[:-2] for k, v in item.items()}], pad_id=0)
    assert batch["answer_mask"][0].tolist() == encoded.answer_mask
    assert batch["answer_mask"][1, -2:].tolist() == [0, 0]
