"""A small image decoder for latent sketches: K pooled vision tokens (K, D) → an RGB picture, stored with a checkpoint.

A sketch is K latents in the vision-embedding space (`model.sketch_targets`), which has no pixel decoder of its own.
This module trains one on (pooled latent → image) pairs from sketch-world so the app can show any sketch, generated
or encoded, as a picture:

    decoder, metrics = train_decoder(model, images, steps=1500)   # holds out the last 10 % of images
    save_decoder(decoder, "assets/checkpoints/demo", metrics)    # latent_decoder.safetensors + latent_decoder.json
    decoder = load_decoder("assets/checkpoints/demo")            # None when the checkpoint has none
    decode_to_image(decoder, trace.sketches[0].latents, size=224)  # PIL image

or from the shell (generates sketch-world pictures from its own seed stream, trains, prints held-out metrics, saves):

    python -m analysis.latent_decoder --checkpoint assets/checkpoints/demo --images 2000 --steps 1500 --seed 0

Architecture (`LatentDecoder`, 0.16 M parameters for demo): latents are standardised with per-dimension statistics
of the training latents; one linear map shared by all tokens (plus a learned per-slot bias) turns each token into the
features of its block of a `grid`×`grid` map, laid out as the K tokens were pooled (the h×w `vision.budget_layout`,
raster order); a residual block of two 3×3 convs mixes neighbouring cells; a 1×1 conv + pixel shuffle + sigmoid
paints each cell's (S/grid)² pixels, RGB in [0, 1] at S×S (64; upsampled for display). A cell head (1×1 conv on the
same map, cross-entropy weight 0.1) classifies the cells into the palette, and `decode_to_image` shows its argmax
colours. The grid is 16, the finest sketch-world board: on demo each token paints its 2×2 block of fine cells, which
is one cell of an 8×8 board or four of a 16×16 one (connect16, maze16); the pictures are all of DEFAULT_FAMILIES,
both sizes, and the head's targets are `read_grid` at 16, an 8×8 board's cells repeated 2×2 (analysis/board_cells.py),
so an 8×8 board looks as before. Decoders saved at grid 8 (S = 56, 8×8 boards only: those shipped in assets/ until
the next ship) still load and paint 8×8 blocks.

Measured on a copy of the shipped demo (`python -m analysis.latent_decoder --checkpoint /tmp/dec-demo --images 2000
--steps 1500 --seed 0`, 2 CPU cores shared with a training run; 154 held-out 8×8 and 46 16×16 pictures): the head's
cells are right on 1.000 of the 8×8 boards' cells and 0.9997 of the 16×16 ones, the RGB read back 1.000 and 0.998
(majority colour: 0.62 and 0.46); the grid-8 decoder shipped with demo, scored by `evaluate_decoder` on the same
pictures, gets 1.000 on 8×8 and 0.47 on 16×16 (RGB 0.45), no better than the majority. Grid 16 runs the convs on 4× the
cells: a training step of 64 pictures takes 90 ms instead of 22 on one thread; 131 s for the 1500 steps. Earlier, at
grid 8 on 8×8 boards with a random-init encoder (3000 pictures): reading cells back from the RGB output got 0.71-0.76,
the head 0.81-0.83 (majority 0.45), at no measurable cost; two residual blocks instead of one fit the training set
better but not the held-out one (MSE 0.083 vs 0.063) and took 1.5× longer.

Simplified: the held-out set is the tail of `images` (so the pictures of one instance, generated together, do not
straddle the split) rather than a random draw; the decoder is trained against a frozen encoder, so it must be
retrained whenever the checkpoint's vision encoder changes (and `save_pretrained` replaces the whole folder, which
drops these two files). No perceptual or adversarial loss: flat colour cells need only pixel MSE.
"""

import argparse
import hashlib
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from tqdm import tqdm

from analysis.board_cells import BOARD_SIZES, FINE_GRID, board_accuracy, board_sizes, read_cells, to_fine
from model.core.atomic import write_bytes
from model.core.checkpoint import CheckpointError, is_checkpoint_dir, load_pretrained, read_config
from model.core.vision import budget_layout
from model.sketchworld import DEFAULT_FAMILIES, generate_instance
from model.sketchworld.grid import IMAGE_PX, PALETTE, read_grid

WEIGHTS_FILE = "latent_decoder.safetensors"
MANIFEST_FILE = "latent_decoder.json"
FORMAT_VERSION = 1
HELDOUT_FRACTION = 0.1
ENCODE_BATCH = 64  # images per sketch_targets call: bounds memory, keeps the progress bar moving
_PALETTE_RGB = torch.tensor(list(PALETTE.values()), dtype=torch.float32) / 255.0  # (num_colors, 3)


class LatentDecoder(nn.Module):
    """(B, K, D) latents in the backbone's embedding space → (B, 3, S, S) RGB in [0, 1]."""

    def __init__(
        self,
        num_latents: int,
        dim: int,
        layout: tuple[int, int],
        grid: int = FINE_GRID,
        image_size: int = 64,
        channels: int = 64,
        num_blocks: int = 1,
        cell_head: bool = True,
        num_colors: int = len(PALETTE),
    ):
        super().__init__()
        h, w = layout
        if h * w != num_latents:
            raise ValueError(f"layout {h}×{w} holds {h * w} tokens, but num_latents is {num_latents}")
        if grid % h or grid % w:
            raise ValueError(f"layout {h}×{w} does not tile the {grid}×{grid} decoder grid")
        if image_size % grid:
            raise ValueError(f"image_size {image_size} is not a multiple of the decoder grid {grid}")
        if cell_head and IMAGE_PX % grid:
            raise ValueError(f"cell_head needs grid cells that tile the {IMAGE_PX}-px picture, got grid = {grid}")
        self.args = dict(
            num_latents=num_latents, dim=dim, layout=[h, w], grid=grid, image_size=image_size, channels=channels,
            num_blocks=num_blocks, cell_head=cell_head, num_colors=num_colors,
        )  # fmt: skip
        self.block = (grid // h, grid // w)  # grid cells covered by one token
        self.register_buffer("latent_mean", torch.zeros(dim))
        self.register_buffer("latent_std", torch.ones(dim))
        per_token = channels * self.block[0] * self.block[1]
        self.project = nn.Linear(dim, per_token)
        self.slot_bias = nn.Parameter(torch.zeros(num_latents, per_token))  # where a token sits, beyond conv padding
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.GroupNorm(8, channels),
                nn.GELU(),
                nn.Conv2d(channels, channels, 3, padding=1),
                nn.GELU(),
                nn.Conv2d(channels, channels, 3, padding=1),
            )
            for _ in range(num_blocks)
        )
        # MAE-style unpatchify: every grid cell's S/grid × S/grid pixels come from one 1×1 conv + pixel shuffle. Any
        # layer at full resolution costs ~6× the whole rest of the step on CPU (measured: a 16-channel 3×3 conv at
        # 56² takes 92 ms fwd+bwd for 64 images vs 11 ms for this), and flat-colour cells need no pixel-level mixing.
        self.scale = image_size // grid
        self.to_pixels = nn.Conv2d(channels, 3 * self.scale**2, 1)
        self.cells = nn.Conv2d(channels, num_colors, 1) if cell_head else None

    @property
    def num_latents(self) -> int:
        return self.args["num_latents"]

    @property
    def dim(self) -> int:
        return self.args["dim"]

    @property
    def image_size(self) -> int:
        return self.args["image_size"]

    @property
    def grid(self) -> int:
        return self.args["grid"]

    def features(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, K, D) → (B, C, grid, grid)."""
        b = latents.shape[0]
        (h, w), (bh, bw), c = self.args["layout"], self.block, self.args["channels"]
        x = (latents.float() - self.latent_mean) / self.latent_std
        x = self.project(x) + self.slot_bias  # (B, K, C·bh·bw)
        x = x.view(b, h, w, c, bh, bw).permute(0, 3, 1, 4, 2, 5)  # (B, C, h, bh, w, bw): token blocks in raster order
        x = x.reshape(b, c, h * bh, w * bw)
        for block in self.blocks:
            x = x + block(x)
        return x

    def forward(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, K, D) → (rgb (B, 3, S, S) in [0, 1], cell logits (B, num_colors, grid, grid) or None)."""
        x = self.features(latents)
        logits = self.cells(x) if self.cells is not None else None
        rgb = F.pixel_shuffle(self.to_pixels(x), self.scale)  # (B, 3, S, S)
        return torch.sigmoid(rgb), logits


# ---- data ---------------------------------------------------------------------------------------------------------
def _pixels(images: list[Image.Image], size: int) -> torch.Tensor:
    """PIL images → (N, 3, size, size) uint8. BOX resampling keeps 224-px flat cells flat at 56 px."""
    arrays = [np.asarray(img.convert("RGB").resize((size, size), Image.BOX)) for img in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def encode_images(model, images: list[Image.Image], progress: bool = True) -> torch.Tensor:
    """model.sketch_targets in batches. → (N, K, D) float32 on the CPU."""
    out = []
    with tqdm(total=len(images), desc="encode", unit="img", disable=not progress) as bar:
        for start in range(0, len(images), ENCODE_BATCH):
            batch = images[start : start + ENCODE_BATCH]
            out.append(model.sketch_targets(batch).float().cpu())
            bar.update(len(batch))
    return torch.cat(out)


# ---- training -----------------------------------------------------------------------------------------------------
def train_decoder(
    model,
    images: list[Image.Image],
    steps: int = 1500,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    progress: bool = True,
    cell_head: bool = True,
    cell_loss_weight: float = 0.1,
    **arch,
) -> tuple[LatentDecoder, dict]:
    """Train a LatentDecoder on `images` encoded by `model`; the last 10 % of `images` are held out.

    arch: extra LatentDecoder arguments (grid, image_size, channels, num_blocks). Returns the decoder (eval mode,
    CPU) and flat metrics: held-out pixel MSE, and per board size the cells read back right, each beside a trivial
    baseline. ValueError when a cell head's grid is coarser than a picture's board.
    """
    num_heldout = max(1, math.ceil(HELDOUT_FRACTION * len(images)))
    if len(images) - num_heldout < 1:
        raise ValueError(f"need at least 2 images to train and hold out, got {len(images)}")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got steps={steps}, batch_size={batch_size}")
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    latents = encode_images(model, images, progress)  # (N, K, D)
    encode_seconds = time.perf_counter() - t0
    num_latents, dim = latents.shape[1:]
    layout = budget_layout(num_latents, model.config.merged_grid)
    decoder = LatentDecoder(num_latents, dim, layout, cell_head=cell_head, **arch)
    pixels, fine = _pixels(images, decoder.image_size), read_cells(images, FINE_GRID)
    cells = fine if decoder.grid == FINE_GRID else read_cells(images, decoder.grid)  # the cell head's targets
    lost = int((to_fine(cells) != fine).flatten(1).any(1).sum())
    if cell_head and lost:
        raise ValueError(f"{lost} of the pictures have cells finer than the grid-{decoder.grid} decoder's cell head "
                         f"(a 16×16 board needs grid {FINE_GRID})")  # fmt: skip
    num_train = len(images) - num_heldout
    train_latents = latents[:num_train]
    flat = train_latents.reshape(-1, dim)
    decoder.latent_mean.copy_(flat.mean(0))
    decoder.latent_std.copy_(flat.std(0).clamp_min(1e-6))  # random-init encoders give std ~0.02: rescale

    optimizer = torch.optim.AdamW(decoder.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.05)
    generator = torch.Generator().manual_seed(seed)
    decoder.train()
    t0 = time.perf_counter()
    with tqdm(total=steps, desc="decoder", unit="step", disable=not progress) as bar:
        for step in range(steps):
            index = torch.randint(num_train, (min(batch_size, num_train),), generator=generator)
            rgb, logits = decoder(train_latents[index])
            loss = mse = F.mse_loss(rgb, pixels[index].float() / 255.0)
            if logits is not None:
                loss = mse + cell_loss_weight * F.cross_entropy(logits, cells[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if step % 20 == 0 or step == steps - 1:
                bar.set_postfix(mse=f"{mse.item():.4f}")
            bar.update(1)
    train_seconds = time.perf_counter() - t0
    decoder.eval()

    metrics = dict(
        num_images=len(images), num_train=num_train, num_heldout=num_heldout, steps=steps, batch_size=batch_size,
        lr=lr, seed=seed, train_mse=mse.item(), encode_seconds=round(encode_seconds, 2),
        train_seconds=round(train_seconds, 2),
    )  # fmt: skip
    heldout = (latents[num_train:], pixels[num_train:], fine[num_train:])
    metrics |= evaluate_decoder(decoder, *heldout, train_pixels=pixels[:num_train], train_fine=fine[:num_train])
    return decoder, metrics


@torch.no_grad()
def evaluate_decoder(
    decoder: LatentDecoder,
    latents: torch.Tensor,
    pixels: torch.Tensor,
    fine: torch.Tensor,
    train_pixels: torch.Tensor,
    train_fine: torch.Tensor,
) -> dict:
    """Held-out metrics. latents (N, K, D); pixels (N, 3, S, S) uint8; fine (N, 16, 16) cells; train_* for baselines.

    Per board size (8×8, 16×16): heldout_{b}x{b}_cell_accuracy reads the decoded picture back as the app shows it
    (decode_to_image at 224 px, then read_grid at 16), _head takes the cell head's argmax; an 8×8 board's cell counts
    as right only when all four fine cells it covers are (board_cells.board_accuracy). The baselines: the mean training
    image (MSE) and the majority colour of the training pictures of that board size (cells). Works for old grid-8
    decoders too.
    """
    target = pixels.float() / 255.0
    rgb, logits = decoder(latents)
    mean_image = (train_pixels.float() / 255.0).mean(0, keepdim=True)
    out = dict(
        heldout_mse=F.mse_loss(rgb, target).item(),
        heldout_mse_mean_image=F.mse_loss(mean_image.expand_as(target), target).item(),
    )
    pictures = [decode_to_image(decoder, z, size=IMAGE_PX, use_cells=False) for z in latents]
    shown = torch.from_numpy(np.stack([read_grid(p, FINE_GRID) for p in pictures]).astype(np.int64))
    head = to_fine(logits.argmax(1)) if logits is not None else None
    sizes, train_sizes = board_sizes(fine), board_sizes(train_fine)
    for board in BOARD_SIZES:
        rows, train_rows = sizes == board, train_sizes == board
        tag = f"heldout_{board}x{board}"
        out[f"{tag}_pictures"] = int(rows.sum())
        if not rows.any():
            continue
        majority = int((train_fine[train_rows] if train_rows.any() else train_fine).flatten().mode().values)
        truth = fine[rows]
        out[f"{tag}_cell_accuracy"] = board_accuracy(shown[rows] == truth, board)
        out[f"{tag}_cell_accuracy_majority"] = board_accuracy(truth == majority, board)
        if head is not None:
            out[f"{tag}_cell_accuracy_head"] = board_accuracy(head[rows] == truth, board)
    return out


# ---- display ------------------------------------------------------------------------------------------------------
@torch.no_grad()
def decode_to_image(decoder: LatentDecoder, latents, size: int = 224, use_cells: bool | None = None) -> Image.Image:
    """One sketch (K, D) (numpy or tensor) → a size×size RGB PIL image.

    use_cells: paint each cell the argmax palette colour of the cell head (default: when the decoder has one).
    """
    z = torch.as_tensor(np.asarray(latents) if not torch.is_tensor(latents) else latents).detach().float().cpu()
    if z.shape != (decoder.num_latents, decoder.dim):
        raise ValueError(
            f"latents have shape {tuple(z.shape)}, the decoder needs ({decoder.num_latents}, {decoder.dim})"
        )
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    device = decoder.latent_mean.device
    rgb, logits = decoder(z.unsqueeze(0).to(device))
    if use_cells is None:
        use_cells = logits is not None
    if use_cells:
        if logits is None:
            raise ValueError("use_cells=True but this decoder has no cell head")
        colors = _PALETTE_RGB.to(device)[logits[0].argmax(0)]  # (grid, grid, 3)
        array = (colors * 255).round().byte().cpu().numpy()
        return Image.fromarray(array).resize((size, size), Image.NEAREST)  # flat cells stay flat
    array = (rgb[0].permute(1, 2, 0) * 255).round().clamp(0, 255).byte().cpu().numpy()
    return Image.fromarray(array).resize((size, size), Image.BILINEAR)


# ---- persistence --------------------------------------------------------------------------------------------------
def save_decoder(decoder: LatentDecoder, checkpoint_dir: str | os.PathLike, metrics: dict | None = None) -> Path:
    """Write CHECKPOINT/latent_decoder.safetensors, then CHECKPOINT/latent_decoder.json (which names its hash)."""
    directory = Path(checkpoint_dir)
    if not directory.is_dir():
        raise ValueError(f"checkpoint folder {directory} does not exist")
    state = {k: v.detach().cpu().contiguous() for k, v in decoder.state_dict().items()}
    blob = save_safetensors(state)
    manifest = dict(
        format_version=FORMAT_VERSION,
        args=decoder.args,
        num_latents=decoder.num_latents,
        dim=decoder.dim,
        weights_sha256=hashlib.sha256(blob).hexdigest(),
        metrics=metrics or {},
    )
    # weights first, manifest last: the hash check turns a crash between the two renames into a clear "damaged"
    write_bytes(directory / WEIGHTS_FILE, blob)
    write_bytes(directory / MANIFEST_FILE, (json.dumps(manifest, indent=2) + "\n").encode())
    return directory / WEIGHTS_FILE


def read_manifest(checkpoint_dir: str | os.PathLike) -> dict | None:
    """The decoder's JSON (architecture, K, D, metrics), or None when the checkpoint has no decoder."""
    path = Path(checkpoint_dir) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is damaged: not valid JSON ({err})") from err
    keys = {"args", "num_latents", "dim", "weights_sha256"}
    if not isinstance(manifest, dict) or not keys <= set(manifest) or not isinstance(manifest["args"], dict):
        raise ValueError(f"{path} is damaged: expected keys args, num_latents, dim, weights_sha256")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} has format_version {manifest.get('format_version')}, expected {FORMAT_VERSION}")
    return manifest


def _checkpoint_shape(directory: Path) -> tuple[int, int, tuple[int, int]] | None:
    """(K, D, layout) from the checkpoint's config.json; None when the folder holds no model config."""
    if not (directory / "config.json").is_file():
        return None
    config = read_config(directory)  # names config.json when it is damaged
    return config.latent_budget, config.hidden_size, budget_layout(config.latent_budget, config.merged_grid)


def load_decoder(checkpoint_dir: str | os.PathLike) -> LatentDecoder | None:
    """The checkpoint's decoder (eval mode, CPU), or None when it has none. ValueError naming the file when damaged
    or when its K / D / layout differ from the checkpoint's config.json (checked only when that file is there)."""
    directory = Path(checkpoint_dir)
    weights_path, manifest_path = directory / WEIGHTS_FILE, directory / MANIFEST_FILE
    manifest = read_manifest(directory)
    if manifest is None:
        if weights_path.exists():
            raise ValueError(f"{weights_path} has no {MANIFEST_FILE} beside it; retrain or re-save the decoder")
        return None
    if not weights_path.is_file():
        raise ValueError(f"{manifest_path} names a decoder, but {weights_path} is missing")
    expected = _checkpoint_shape(directory)
    if expected is not None:
        num_latents, dim, layout = expected
        got = (manifest["num_latents"], manifest["dim"], tuple(manifest["args"].get("layout", ())))
        if got != (num_latents, dim, layout):
            raise ValueError(
                f"{manifest_path} is for K={got[0]}, D={got[1]}, layout {got[2]}, but the checkpoint has "
                f"K={num_latents}, D={dim}, layout {layout}; retrain it with "
                f"python -m analysis.latent_decoder --checkpoint {directory}"
            )
    blob = weights_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != manifest["weights_sha256"]:
        raise ValueError(f"{weights_path} is damaged: its SHA-256 does not match {manifest_path}")
    try:
        state = load_safetensors(blob)
        args = dict(manifest["args"], layout=tuple(manifest["args"]["layout"]))
        decoder = LatentDecoder(**args)
        decoder.load_state_dict(state)
    except (SafetensorError, RuntimeError, TypeError, KeyError, ValueError) as err:
        raise ValueError(f"{weights_path} does not match {manifest_path}: {err}") from err
    return decoder.eval()


# ---- command line -------------------------------------------------------------------------------------------------
def sketchworld_images(num_images: int, seed: int) -> list[Image.Image]:
    """Problem + reasoning pictures, families interleaved, one instance at a time (so an instance's pictures stay
    together at the train / held-out boundary). The seed prefix differs from the dataset splits' ('sketchworld/').
    All of DEFAULT_FAMILIES, both board sizes: 4 of every 17 pictures are 16×16 boards (connect16, maze16)."""
    images, i = [], 0
    while len(images) < num_images:
        for family in DEFAULT_FAMILIES:
            inst = generate_instance(family, random.Random(f"latent-decoder/{seed}/{family}/{i}"))
            images.extend(inst.problem_images + inst.reasoning_images)
        i += 1
    return images[:num_images]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.latent_decoder", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder; the decoder is saved into it")
    parser.add_argument("--images", type=int, default=2000, help="sketch-world pictures to generate (10 %% held out)")
    parser.add_argument("--steps", type=int, default=1500, help="optimiser steps")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (one-cycle schedule)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the pictures, the initialisation and the batches")
    parser.add_argument(
        "--no-cell-head", action="store_true", help="RGB output only (no per-cell palette-colour classifier)"
    )
    args = parser.parse_args(argv)

    if not is_checkpoint_dir(args.checkpoint):
        print(
            f"error: {args.checkpoint!r} is not a checkpoint folder (no config.json and model.safetensors)",
            file=sys.stderr,
        )
        return 2
    if args.images < 2 or args.steps < 1 or args.batch_size < 1:
        print(f"error: need --images >= 2, --steps >= 1, --batch-size >= 1; got {args.images}, {args.steps}, "
              f"{args.batch_size}", file=sys.stderr)  # fmt: skip
        return 2
    try:
        model = load_pretrained(args.checkpoint).eval()
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    images = sketchworld_images(args.images, args.seed)
    decoder, metrics = train_decoder(
        model,
        images,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        cell_head=not args.no_cell_head,
    )
    for key, value in metrics.items():
        print(f"{key:38s} {value:.4f}" if isinstance(value, float) else f"{key:38s} {value}")
    path = save_decoder(decoder, args.checkpoint, metrics)
    print(f"saved {path} and {path.with_name(MANIFEST_FILE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
