"""analysis/latent_decoder.py on the tiny preset: it learns on both board sizes, it round-trips through disk, old
grid-8 decoders load and paint as before, and it fails clearly."""

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from analysis.board_cells import board_sizes, read_cells
from analysis.latent_decoder import (
    MANIFEST_FILE,
    WEIGHTS_FILE,
    LatentDecoder,
    decode_to_image,
    load_decoder,
    main,
    save_decoder,
    sketchworld_images,
    train_decoder,
)
from model.core.checkpoint import save_pretrained
from model.core.sketch_codebook import load_codebook
from model.sketchworld import DEFAULT_FAMILIES, generate_instance
from model.sketchworld.grid import COLOR_NAMES, PALETTE, read_grid, render

SHIPPED_DEMO = Path(__file__).resolve().parents[1] / "assets" / "checkpoints" / "demo"

# A narrow decoder keeps the training test to a few seconds on a shared 2-core machine.
FAST_ARCH = dict(channels=32, num_blocks=1)


@pytest.fixture(scope="module")
def images():
    return sketchworld_images(340, seed=1)  # 20 rounds of the 8 families: 34 held out, 8 of them 16×16 boards


@pytest.fixture(scope="module")
def trained(tiny_model, images):
    return train_decoder(tiny_model, images, steps=300, batch_size=32, seed=0, progress=False, **FAST_ARCH)


@pytest.fixture
def checkpoint(tmp_path, tiny_model):
    return save_pretrained(tiny_model, tmp_path / "ckpt")


def test_decoder_beats_the_mean_image(trained, images):
    decoder, metrics = trained
    num_heldout = metrics["num_heldout"]
    assert num_heldout == 34 and metrics["num_train"] == 306
    # the baseline, computed here from the pictures alone: predict the mean training picture at the decoder's size
    size = decoder.image_size
    pixels = np.stack([np.asarray(img.convert("RGB").resize((size, size), Image.BOX)) for img in images]) / 255.0
    train, heldout = pixels[:-num_heldout], pixels[-num_heldout:]
    baseline = float(((heldout - train.mean(0)) ** 2).mean())
    assert metrics["heldout_mse_mean_image"] == pytest.approx(baseline, rel=1e-4)
    # measured 0.62-0.63 × baseline over seeds 0-3 (the tiny encoder pools 16 cells into each of its 4 tokens)
    assert metrics["heldout_mse"] < 0.75 * baseline, (metrics["heldout_mse"], baseline)


def test_decoder_beats_the_majority_colour_on_both_board_sizes(trained, images):
    decoder, metrics = trained
    num_heldout = metrics["num_heldout"]
    # the pictures per board size and the majority baselines, counted here from each picture's own board cells
    sizes = [16 if _is_16x16(image) else 8 for image in images]
    for board in (8, 16):
        train = [read_grid(im, board) for im, b in zip(images[:-num_heldout], sizes) if b == board]
        heldout = [read_grid(im, board) for im, b in zip(images[-num_heldout:], sizes[-num_heldout:]) if b == board]
        majority = np.bincount(np.concatenate([g.ravel() for g in train])).argmax()
        tag = f"heldout_{board}x{board}"
        assert metrics[f"{tag}_pictures"] == len(heldout) > 0
        assert metrics[f"{tag}_cell_accuracy_majority"] == pytest.approx(np.mean([g == majority for g in heldout]))
        # what the app shows, the head's colours: measured over seeds 0-3, 0.70-0.71 vs 0.63 (8×8), 0.69-0.72 vs 0.46
        assert metrics[f"{tag}_cell_accuracy_head"] > metrics[f"{tag}_cell_accuracy_majority"] + 0.04, (board, metrics)
    # the RGB picture read back: above the majority on 16×16 boards (0.54-0.56), not on 8×8 ones (0.58-0.60 vs 0.63),
    # where a cell counts only when all four of its fine cells read back right from a blurry 4-token picture
    assert metrics["heldout_16x16_cell_accuracy"] > metrics["heldout_16x16_cell_accuracy_majority"], metrics


def _is_16x16(image: Image.Image) -> bool:
    """A 16×16 board: some pair of fine cells inside one 28-px block differ (read from the pixels, not board_sizes)."""
    pixels = np.asarray(image.convert("RGB"))
    centres = np.arange(16) * 14 + 7
    fine = pixels[centres][:, centres]
    return not (fine == np.repeat(np.repeat(fine[::2, ::2], 2, 0), 2, 1)).all()


def test_save_load_round_trip(trained, checkpoint, tiny_model, images):
    decoder, metrics = trained
    save_decoder(decoder, checkpoint, metrics)
    loaded = load_decoder(checkpoint)
    latents = tiny_model.sketch_targets(images[:5])
    with torch.no_grad():
        assert torch.equal(decoder(latents)[0], loaded(latents)[0])
    manifest = json.loads((checkpoint / MANIFEST_FILE).read_text())
    assert (manifest["num_latents"], manifest["dim"]) == (4, 64)
    assert manifest["metrics"]["heldout_mse"] == metrics["heldout_mse"]
    assert not [p.name for p in checkpoint.iterdir() if ".tmp-" in p.name]  # no temp files left behind


def test_absent_decoder_is_none(checkpoint):
    assert load_decoder(checkpoint) is None


def test_damaged_weights_name_the_file(trained, checkpoint):
    save_decoder(trained[0], checkpoint)
    path = checkpoint / WEIGHTS_FILE
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=WEIGHTS_FILE):
        load_decoder(checkpoint)


def test_damaged_manifest_names_the_file(trained, checkpoint):
    save_decoder(trained[0], checkpoint)
    (checkpoint / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=MANIFEST_FILE):
        load_decoder(checkpoint)


def test_latent_budget_mismatch_raises(checkpoint):
    # a decoder for K=2 (layout 1×2) saved beside a K=4 checkpoint
    save_decoder(LatentDecoder(2, 64, (1, 2), **FAST_ARCH), checkpoint)
    with pytest.raises(ValueError, match=r"K=2.*K=4"):
        load_decoder(checkpoint)


def test_decode_to_image_size(trained, tiny_model, images):
    decoder = trained[0]
    latents = tiny_model.sketch_targets(images[:1])[0]
    for size, z, use_cells in [(224, latents, None), (100, latents.numpy(), False)]:
        image = decode_to_image(decoder, z, size=size, use_cells=use_cells)
        assert isinstance(image, Image.Image) and image.size == (size, size) and image.mode == "RGB"
    with pytest.raises(ValueError, match=r"\(3, 64\)"):
        decode_to_image(decoder, latents[:3])


def test_cell_head_paints_16x16_palette_cells():
    decoder = LatentDecoder(4, 64, (2, 2), cell_head=True, **FAST_ARCH).eval()
    z = torch.randn(4, 64)
    image = np.asarray(decode_to_image(decoder, z, size=224))
    assert {tuple(c) for c in image.reshape(-1, 3)} <= set(PALETTE.values())
    with torch.no_grad():
        cells = decoder(z[None])[1][0].argmax(0).numpy()  # (16, 16)
    assert cells.shape == (16, 16) and len(np.unique(cells)) > 1
    assert np.array_equal(image, np.asarray(render(cells.astype(np.int8))))  # 14-px flat cells, the argmax colours


def test_old_grid8_decoder_loads_and_paints_8x8_blocks(checkpoint):
    """A grid-8 decoder saved as before (the shipped demo args) loads and paints each 28-px cell its argmax colour."""
    old = LatentDecoder(4, 64, (2, 2), grid=8, image_size=56, channels=32, num_blocks=1, cell_head=True).eval()
    save_decoder(old, checkpoint)
    manifest = json.loads((checkpoint / MANIFEST_FILE).read_text())
    assert (manifest["format_version"], manifest["args"]["grid"], manifest["args"]["image_size"]) == (1, 8, 56)
    loaded = load_decoder(checkpoint)
    z = torch.randn(4, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        rgb, logits = old(z[None])
    cells = logits[0].argmax(0).numpy().astype(np.int8)
    assert cells.shape == (8, 8) and len(np.unique(cells)) > 1
    before = np.kron(np.asarray(list(PALETTE.values()), dtype=np.uint8)[cells], np.ones((28, 28, 1), dtype=np.uint8))
    assert np.array_equal(np.asarray(decode_to_image(loaded, z, size=224)), before)
    rgb_before = Image.fromarray((rgb[0].permute(1, 2, 0) * 255).round().byte().numpy()).resize(
        (224, 224), Image.BILINEAR
    )
    assert np.array_equal(np.asarray(decode_to_image(loaded, z, size=224, use_cells=False)), np.asarray(rgb_before))


@pytest.mark.skipif(not (SHIPPED_DEMO / MANIFEST_FILE).is_file(), reason="no shipped demo decoder")
def test_shipped_grid8_decoder_still_decodes_codebook_sketches():
    """The demo's shipped decoder (grid 8, trained before 16×16 boards) reads a sketch made of its codebook's centroids
    (each slot the centroid of one colour, a scrambled pattern) back to that pattern, in flat 28-px blocks, as the code
    before grid 16 did (checked then: the same pictures bit for bit)."""
    decoder = load_decoder(SHIPPED_DEMO)
    if decoder.grid != 8:
        pytest.skip(f"the shipped decoder is grid {decoder.grid} now, no longer an old one")
    codebook = load_codebook(SHIPPED_DEMO / "sketch_codebook.safetensors", decoder.num_latents, decoder.dim)
    slots = torch.arange(decoder.num_latents)
    states = torch.stack([codebook.present[k].nonzero()[(k * 7) % int(codebook.present[k].sum()), 0] for k in slots])
    pattern = np.array([COLOR_NAMES.index(codebook.labels[int(s)]) for s in states]).reshape(8, 8)
    latents = codebook.centroids[slots, states]  # (K, D)
    image = decode_to_image(decoder, latents, size=224)
    assert np.array_equal(np.asarray(image), np.asarray(render(pattern.astype(np.int8))))
    assert np.array_equal(read_grid(decode_to_image(decoder, latents, size=224, use_cells=False)), pattern)


def test_cli_missing_checkpoint(tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1


def test_cli_trains_and_saves(checkpoint, capsys):
    # 40 pictures, 8 of them 16×16 boards (all in training): the 4 held out are 8×8, and the 16×16 count (0) is printed
    assert main(["--checkpoint", str(checkpoint), "--images", "40", "--steps", "2", "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "heldout_mse" in out and "saved" in out
    assert "heldout_8x8_cell_accuracy " in out and "heldout_16x16_pictures " in out
    decoder = load_decoder(checkpoint)
    assert decoder.num_latents == 4 and decoder.grid == 16
    assert json.loads((checkpoint / MANIFEST_FILE).read_text())["args"]["grid"] == 16


def test_fine_cells_of_both_board_sizes():
    """Read at 16×16 cell centres, an 8×8 board is its cells repeated 2×2 and a 16×16 board is itself; board_sizes
    tells them apart on every family's pictures."""
    for family in DEFAULT_FAMILIES:
        inst = generate_instance(family, random.Random(f"test/{family}"))
        pictures = inst.problem_images + inst.reasoning_images
        board = inst.problem_grids[0].shape[0]
        fine = read_cells(pictures, 16)
        for image, cells in zip(pictures, fine.numpy()):
            expected = read_grid(image, board)
            if board == 8:
                expected = np.kron(expected, np.ones((2, 2), dtype=np.int8))
            assert np.array_equal(cells, expected), family
        assert board_sizes(fine).tolist() == [board] * len(pictures), family


def test_training_pictures_hold_both_board_sizes(images):
    sizes = board_sizes(read_cells(images, 16))
    assert set(sizes.tolist()) == {8, 16}


def test_a_grid8_cell_head_refuses_16x16_boards(tiny_model, images):
    with pytest.raises(ValueError, match=r"grid-8 decoder's cell head.*grid 16"):
        train_decoder(tiny_model, images[:40], steps=1, progress=False, grid=8, image_size=56, **FAST_ARCH)
    with pytest.raises(ValueError, match=r"tile the 224-px picture, got grid = 12"):
        LatentDecoder(4, 64, (2, 2), grid=12, image_size=48)
