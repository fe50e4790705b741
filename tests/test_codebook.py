"""The sketch codebook: centroids against a direct computation, snapping against brute force, files, checkpoints,
the engine feeding snapped latents back, the CLI flags.

    python -m pytest -q tests/test_codebook.py
"""

import argparse
import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from model.core.checkpoint import CheckpointError, load_pretrained, save_pretrained
from model.core.sketch_codebook import CODEBOOK_NAME, CodebookError, SketchCodebook, load_codebook, save_codebook
from model.generation.engine import Engine, GenerationSettings, Prompt
from model.generation.sampler_flags import add_sampler_flags, apply_sampler_flags
from model.training.fit_codebook import fit_codebook, nearest_accuracy, slot_blocks

COLOURS = ["blue", "red", "white"]


def random_codebook(K=4, C=3, D=6, seed=0, absent=()):
    g = torch.Generator().manual_seed(seed)
    present = torch.ones(K, C, dtype=torch.bool)
    for k, c in absent:
        present[k, c] = False
    centroids = torch.randn(K, C, D, generator=g) * present[..., None]
    return SketchCodebook(centroids, present, torch.randn(D, generator=g), torch.rand(D, generator=g) + 0.5,
                          [f"s{c}" for c in range(C)])  # fmt: skip


def test_fit_centroids_are_the_means_of_each_slot_and_state():
    rng = np.random.default_rng(0)
    N, K, D = 40, 3, 5
    targets = rng.normal(size=(N, K, D)).astype(np.float32)
    labels = rng.integers(-1, 3, size=(N, K))
    labels[:, 2] = np.where(np.arange(N) < 2, 1, 0)  # slot 2: state 1 seen twice only, state 2 never
    book = SketchCodebook.fit(targets, labels, np.zeros(D), np.ones(D), COLOURS, min_count=3)
    for k in range(K):
        for c in range(3):
            rows = labels[:, k] == c
            assert bool(book.present[k, c]) == (rows.sum() >= 3)
            if rows.sum() >= 3:
                np.testing.assert_allclose(
                    book.centroids[k, c].numpy(), targets[rows, k].mean(0), rtol=1e-5, atol=1e-6
                )
    assert not book.present[2, 1] and not book.present[2, 2] and book.present[2, 0]


def test_fit_refuses_mismatched_shapes_and_a_slot_without_any_state():
    with pytest.raises(ValueError, match="do not match"):
        SketchCodebook.fit(np.zeros((4, 2, 3)), np.zeros((4, 3), dtype=int), np.zeros(3), np.ones(3), COLOURS)
    with pytest.raises(ValueError, match="slots \\[1\\]"):
        labels = np.zeros((4, 2), dtype=int)
        labels[:, 1] = -1
        SketchCodebook.fit(np.zeros((4, 2, 3)), labels, np.zeros(3), np.ones(3), COLOURS)


def test_snap_picks_the_nearest_present_centroid_in_standardised_space():
    book = random_codebook(K=4, C=3, D=6, absent=[(1, 0), (3, 2)])
    g = torch.Generator().manual_seed(5)
    latents, slots = torch.randn(50, 6, generator=g) * 2, torch.randint(0, 4, (50,), generator=g)
    out = book.snap(latents, slots)
    mean, std = book.mean.numpy(), book.std.numpy()
    for x, k, y in zip(latents.numpy(), slots.numpy(), out.numpy()):
        z = (x - mean) / std
        present = [c for c in range(3) if book.present[k, c]]
        best = min(present, key=lambda c: (((book.centroids[k, c].numpy() - mean) / std - z) ** 2).sum())
        np.testing.assert_allclose(y, book.centroids[k, best].numpy())
    # a centroid is its own snap
    np.testing.assert_allclose(book.snap(book.centroids[:, 1], torch.arange(4)).numpy(), book.centroids[:, 1].numpy())
    with pytest.raises(ValueError, match="slots must be"):
        book.snap(latents[:2], torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="latents must be"):
        book.snap(latents[:, :5], slots)


def test_nearest_in_chunks_is_nearest_at_once():
    """Many latents are matched a chunk at a time (the (n, C, D) distances of a whole check split do not fit in
    memory); the states picked are the ones picked all at once, at every chunk size, a chunk's edge included."""
    book = random_codebook(K=4, C=5, D=6, absent=[(2, 1)])
    g = torch.Generator().manual_seed(9)
    latents, slots = torch.randn(103, 6, generator=g) * 2, torch.randint(0, 4, (103,), generator=g)
    at_once = book.nearest(latents, slots, chunk=1000)
    for chunk in (1, 7, 50, 103):
        assert torch.equal(book.nearest(latents, slots, chunk=chunk), at_once)
    assert not bool((at_once[slots == 2] == 1).any()), "an absent centroid is never picked"


def test_standardisation_changes_which_centroid_is_nearest():
    centroids = torch.tensor([[[2.0, 0.0], [0.0, 1.0]]])  # one slot, two states
    present = torch.ones(1, 2, dtype=torch.bool)
    x = torch.tensor([[1.4, 0.6]])
    plain = SketchCodebook(centroids, present, torch.zeros(2), torch.ones(2), ["a", "b"])
    wide_first = SketchCodebook(centroids, present, torch.zeros(2), torch.tensor([10.0, 1.0]), ["a", "b"])
    assert int(plain.nearest(x, torch.tensor([0]))) == 0  # |x − a|² = 0.72 < |x − b|² = 2.12
    assert int(wide_first.nearest(x, torch.tensor([0]))) == 1  # first axis / 10: 0.3636 > 0.1796


def test_file_round_trip_and_errors_that_name_the_file(tmp_path):
    book = random_codebook(absent=[(2, 1)])
    path = save_codebook(book, tmp_path / CODEBOOK_NAME)
    back = load_codebook(path, num_latents=4, dim=6)
    for name in ("centroids", "present", "mean", "std"):
        assert torch.equal(getattr(back, name), getattr(book, name))
    assert back.labels == book.labels and not list(tmp_path.glob(".*tmp"))
    with pytest.raises(CodebookError, match="K=4, D=6; the model has K=8"):
        load_codebook(path, num_latents=8, dim=6)
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(CodebookError, match=f"{CODEBOOK_NAME} is damaged"):
        load_codebook(path, num_latents=4, dim=6)


def test_a_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_codebook(random_codebook(seed=1), tmp_path / CODEBOOK_NAME)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("model.core.sketch_codebook.save_file", broken)
    with pytest.raises(OSError):
        save_codebook(random_codebook(seed=2), path)
    assert path.read_bytes() == before


def tiny_book(model, seed=0):
    K, D = model.latent_budget, model.config.hidden_size
    book = random_codebook(K=K, C=3, D=D, seed=seed)
    book.mean, book.std = model.latent_mean.float().clone(), model.latent_std.float().clone()
    return book


def test_checkpoints_keep_the_codebook_and_name_a_damaged_one(tiny_copy, tmp_path):
    tiny_copy.sketch_codebook = tiny_book(tiny_copy)
    save_pretrained(tiny_copy, tmp_path / "ckpt")
    back = load_pretrained(tmp_path / "ckpt")
    assert torch.equal(back.sketch_codebook.centroids, tiny_copy.sketch_codebook.centroids)
    assert load_pretrained(tmp_path / "ckpt", with_latent_head=False).sketch_codebook is None
    (tmp_path / "ckpt" / CODEBOOK_NAME).write_bytes(b"\0" * 10)
    with pytest.raises(CheckpointError, match=f"ckpt/{CODEBOOK_NAME} is damaged"):
        load_pretrained(tmp_path / "ckpt")
    tiny_copy.set_latent_budget(1)  # a new K: the per-slot centroids no longer apply
    assert tiny_copy.sketch_codebook is None


def centroid_of_slot(book, latent, slot) -> bool:
    return any(torch.allclose(latent, book.centroids[slot, c], atol=1e-5) for c in range(book.centroids.shape[1]))


def test_engine_feeds_back_snapped_latents_only_when_snapping(sketchy_model):
    model = copy.deepcopy(sketchy_model)
    model.sketch_codebook = tiny_book(model, seed=3)
    prompt = Prompt("What is drawn?", images=[Image.new("RGB", (56, 56), (200, 30, 30))], seed=4)
    engine = Engine(model)
    snapped = engine.generate([prompt], GenerationSettings(max_new_tokens=40))[0]
    plain = engine.generate([prompt], GenerationSettings(max_new_tokens=40, snap=False))[0]
    assert snapped.sketches and plain.sketches
    for sketch in snapped.sketches:
        assert sketch.snapped
        for k, latent in enumerate(torch.as_tensor(sketch.latents)):
            assert centroid_of_slot(model.sketch_codebook, latent, k)
    assert not plain.sketches[0].snapped
    assert not all(centroid_of_slot(model.sketch_codebook, torch.as_tensor(x), k)
                   for k, x in enumerate(plain.sketches[0].latents))  # fmt: skip
    noise = engine.generate([prompt], GenerationSettings(max_new_tokens=40, mode="noise-latents"))[0]
    assert noise.sketches and not noise.sketches[0].snapped  # replacements are inserted as they are
    model.sketch_codebook = None
    with pytest.raises(ValueError, match="has none"):
        engine.generate([prompt], GenerationSettings(snap=True))


def test_snap_flag_of_the_clis(tiny_copy):
    parser = argparse.ArgumentParser()
    add_sampler_flags(parser)
    tiny_copy.sketch_codebook = tiny_book(tiny_copy)
    apply_sampler_flags(tiny_copy, parser.parse_args([]), "ckpt")
    assert tiny_copy.sketch_codebook is not None
    apply_sampler_flags(tiny_copy, parser.parse_args(["--snap", "off"]), "ckpt")
    assert tiny_copy.sketch_codebook is None
    with pytest.raises(ValueError, match="ckpt has no sketch codebook"):
        apply_sampler_flags(tiny_copy, parser.parse_args(["--snap", "on"]), "ckpt")
    with pytest.raises(ValueError, match="trained with 0 refinement passes"):
        apply_sampler_flags(tiny_copy, parser.parse_args(["--refine-passes", "1"]), "ckpt")


def board_example(rng, size=2):
    """A stand-in example with one described 2×2 sketch: the colours of its cells, and a picture of them."""
    grid = [[COLOURS[rng.integers(3)] for _ in range(size)] for _ in range(size)]
    rgb = {"blue": (30, 30, 220), "red": (220, 30, 30), "white": (250, 250, 250)}
    image = Image.new("RGB", (size, size))
    image.putdata([rgb[c] for row in grid for c in row])
    description = " ".join(f"row {r + 1}: {' '.join(row)}" for r, row in enumerate(grid))
    return SimpleNamespace(reasoning_images=[image.resize((56, 56), Image.NEAREST)],
                           reasoning_descriptions=[description], grid=grid)  # fmt: skip


def test_fit_codebook_from_described_sketches_reads_true_targets_back(tiny_copy):
    rng = np.random.default_rng(0)
    examples = [board_example(rng) for _ in range(60)]
    with torch.no_grad():
        tiny_copy.fit_latent_stats(tiny_copy.sketch_targets([ex.reasoning_images[0] for ex in examples]).flatten(0, 1))
    book = fit_codebook(tiny_copy, examples, progress=False)
    assert book.labels == COLOURS and book.num_latents == tiny_copy.latent_budget
    # the true target of every slot snaps to the centroid of its own colour (the encoder is deterministic)
    assert nearest_accuracy(tiny_copy, book, [board_example(rng) for _ in range(20)], progress=False)["overall"] > 0.9
    with pytest.raises(ValueError, match="at most 4 board cells a slot: K=4 on a 8×8 board covers 16"):
        slot_blocks(tiny_copy, 8)
    with pytest.raises(ValueError, match="no described sketches"):
        fit_codebook(tiny_copy, [SimpleNamespace(reasoning_images=[], reasoning_descriptions=[])], progress=False)
