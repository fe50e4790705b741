"""analysis/latent_decoder.py on the tiny preset: it learns, it round-trips through disk, and it fails clearly."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

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
from model.sketchworld.grid import read_grid

# A narrow decoder keeps the training test to a few seconds on a shared 2-core machine.
FAST_ARCH = dict(channels=32, num_blocks=1)


@pytest.fixture(scope="module")
def images():
    return sketchworld_images(200, seed=1)


@pytest.fixture(scope="module")
def trained(tiny_model, images):
    return train_decoder(tiny_model, images, steps=200, batch_size=32, seed=0, progress=False, **FAST_ARCH)


@pytest.fixture
def checkpoint(tmp_path, tiny_model):
    return save_pretrained(tiny_model, tmp_path / "ckpt")


def test_decoder_beats_the_mean_image(trained, images):
    decoder, metrics = trained
    num_heldout = metrics["num_heldout"]
    assert num_heldout == 20 and metrics["num_train"] == 180
    # the baseline, computed here from the pictures alone: predict the mean training picture at the decoder's size
    size = decoder.image_size
    pixels = np.stack([np.asarray(img.convert("RGB").resize((size, size), Image.BOX)) for img in images]) / 255.0
    train, heldout = pixels[:-num_heldout], pixels[-num_heldout:]
    baseline = float(((heldout - train.mean(0)) ** 2).mean())
    assert metrics["heldout_mse_mean_image"] == pytest.approx(baseline, rel=1e-4)
    # measured ≈ 0.6 × baseline over seeds 0-3 (the tiny encoder pools 16 cells into each of its 4 tokens)
    assert metrics["heldout_mse"] < 0.75 * baseline, (metrics["heldout_mse"], baseline)
    assert metrics["heldout_cell_accuracy"] > metrics["heldout_cell_accuracy_majority"]
    assert metrics["heldout_cell_accuracy_head"] > metrics["heldout_cell_accuracy_majority"] + 0.1


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


def test_cell_head_paints_palette_colours(tiny_model):
    decoder = LatentDecoder(4, 64, (2, 2), cell_head=True, **FAST_ARCH).eval()
    image = decode_to_image(decoder, torch.randn(4, 64), size=64)
    from model.sketchworld.grid import PALETTE

    assert {tuple(c) for c in np.asarray(image).reshape(-1, 3)} <= set(PALETTE.values())


def test_cli_missing_checkpoint(tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1


def test_cli_trains_and_saves(checkpoint, capsys):
    assert main(["--checkpoint", str(checkpoint), "--images", "12", "--steps", "2", "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "heldout_mse" in out and "saved" in out
    assert load_decoder(checkpoint).num_latents == 4


def test_training_pictures_are_8x8_boards(images):
    """The cell head names one colour a token: the big boards (16×16, four cells a token) are left out."""
    for image in images:
        assert (np.kron(read_grid(image), np.ones((2, 2), dtype=np.int8)) == read_grid(image, 16)).all()
