"""The drawing probe of the SFT recipe (`draw_weight`): slot labels read from the sketches' own pixels, the loss
against an independent cross-entropy, and the probe's save/load round trip; every loss term a recipe passes to the
model's forward reaches the loss."""

import dataclasses
import inspect

import pytest
import torch
import torch.nn.functional as F

from model.core.checkpoint import build_preset, load_pretrained, save_pretrained
from model.core.loss_terms import TERM_NAMES, LossTerms
from model.data.batches import SFTDataset, collate
from model.data.encoding import cell_labels, described_colours, encode_examples
from model.data.zebra import Sketch, load_examples
from model.sketchworld import load_split, write_dataset
from model.sketchworld.grid import COLOR_NAMES, read_grid
from model.training.recipe import forward_batch, split_batch


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sw")
    write_dataset(str(folder), per_family=10, seed=1, families=["fold", "maze", "count"])
    return load_examples(load_split(str(folder), "train"))[0]


@pytest.fixture(scope="module")
def cell_model(examples):
    """A tiny model with one latent per cell of the 8×8 board (112 px → an 8×8 token grid) and a drawing probe."""
    model = build_preset("tiny", seed=2, image_size=112, latent_budget=64)
    model.enable_draw_probe(described_colours(examples))
    return model


def test_labels_are_the_sketch_pictures_cells(examples, cell_model):
    colours = cell_model.config.cell_colours
    assert set(colours) <= set(COLOR_NAMES) and len(colours) >= 3
    checked = 0
    for ex in examples:
        for part in ex.segments:
            if isinstance(part, Sketch):
                pixels = read_grid(ex.reasoning_images[part.image_index])  # independent: the picture itself
                expected = [colours.index(COLOR_NAMES[v]) for v in pixels.flatten()]
                assert cell_labels(ex, part.image_index, 64, colours) == expected
                checked += 1
    assert checked >= 10
    sketchy = next(ex for ex in examples if ex.num_sketches)
    assert cell_labels(sketchy, 0, 32, colours) == [-100] * 32  # two cells a slot: no single colour
    assert cell_labels(sketchy, 0, 64, None) == [-100] * 64


def test_draw_loss_is_the_probes_cross_entropy(examples, cell_model):
    encoded, _ = encode_examples(cell_model, examples, "interleaved")
    assert all(len(e.slot_labels) == 64 * len(e.sketch_images) for e in encoded)
    data = SFTDataset(encoded, visual="pixels", image_processor=cell_model.image_processor, image_size=112)
    batch = collate(
        [data[i] for i in range(len(data)) if encoded[i].sketch_images][:4], cell_model.tokenizer.pad_token_id
    )
    torch.manual_seed(0)
    out = forward_batch(cell_model, batch, draw_loss_weight=2.0)
    rows, positions, _ = cell_model.latent_slots(batch["input_ids"])
    expected = F.cross_entropy(cell_model.draw_probe(out.hidden[rows, positions - 1]), batch["slot_labels"])
    torch.testing.assert_close(out.draw_loss, expected)
    torch.testing.assert_close(out.loss, out.text_loss + out.latent_loss + 2.0 * expected)
    # the loss reaches the backbone (it must teach the state the cell), not only the probe
    cell_model.zero_grad()
    out.draw_loss.backward()
    layer = cell_model.backbone.model.language_model.layers[0].mlp.down_proj.weight
    assert layer.grad is not None and float(layer.grad.abs().sum()) > 0
    without = forward_batch(cell_model, batch)  # weight 0 (the default): no draw loss in the total
    assert without.draw_loss is None


def test_probe_round_trips_and_needs_two_colours(tmp_path, cell_model):
    save_pretrained(cell_model, tmp_path / "m")
    loaded = load_pretrained(tmp_path / "m")
    assert loaded.config.cell_colours == cell_model.config.cell_colours
    torch.testing.assert_close(loaded.draw_probe.weight, cell_model.draw_probe.weight)
    with pytest.raises(ValueError, match="at least two colours"):
        build_preset("tiny").enable_draw_probe(["white"])


def test_every_loss_term_reaches_the_loss(examples, cell_model):
    """The recipe reaches forward as one typed object (model/core/loss_terms.py): each of its fields, changed alone,
    changes the outputs, so no term is read by a name that is not there (`sketch_image_grid_thw` only describes
    `sketch_pixel_values`). A field added to LossTerms without an entry here fails the test."""
    encoded, _ = encode_examples(cell_model, examples, "interleaved")
    data = SFTDataset(encoded, visual="pixels", image_processor=cell_model.image_processor, image_size=112)
    batch = collate(
        [data[i] for i in range(len(data)) if encoded[i].sketch_images][:3], cell_model.tokenizer.pad_token_id
    )
    inputs, terms = split_batch({**batch, "draw_loss_weight": 1.0})
    assert isinstance(terms, LossTerms) and terms.sketch_pixel_values is not None  # stage 0's pictures, latents None
    assert inspect.signature(type(cell_model).forward).parameters["terms"].annotation == LossTerms | None
    slots = int((batch["input_ids"] == cell_model.latent_id).sum())
    changed = {
        "label_weights": 1 + 4 * batch["answer_mask"],
        "answer_mask": torch.zeros_like(batch["answer_mask"]),
        "target_latents": torch.randn(slots, cell_model.config.hidden_size),
        "blind_rows": torch.tensor([True, False, False]),
        "slot_labels": batch["slot_labels"].roll(1),
        "draw_loss_weight": 3.0,
        "diffusion_loss_weight": 5.0,
        "text_norm": 7.0,
        "latent_norm": 7.0,
        "draw_norm": 7.0,
        "sketch_pixel_values": batch["sketch_pixel_values"].flip(0),
    }
    assert set(changed) == set(TERM_NAMES) - {"sketch_image_grid_thw"}

    def outputs(loss_terms):
        torch.manual_seed(0)  # the diffusion loss draws its noise levels
        with torch.no_grad():
            out = cell_model(**inputs, terms=loss_terms)
        return [float(getattr(out, k)) for k in ("loss", "text_loss", "latent_loss", "answer_loss", "draw_loss")]

    plain = outputs(terms)
    assert plain == outputs(dataclasses.replace(terms))
    for name, value in changed.items():
        assert outputs(dataclasses.replace(terms, **{name: value})) != plain, name
