"""Images in: preprocessing for the Qwen2.5-VL vision encoder, and pooling of its merged tokens to K sketch targets.

Self-reconstruction (paper §3.1): an intermediate image goes through the model's own frozen vision encoder + merger,
giving a G×G grid of tokens in the LLM's embedding space (224 px / 14-px patches / 2×2 merge → G = 8 for `demo`;
448 px → G = 16 for the real checkpoints), which is average-pooled to K tokens that keep the 2-D layout: K is laid
out as an h×w grid (as square as possible, h ≤ w) and each target token is the mean of a (G/h)×(G/w) block, read in
raster order. K must tile the grid exactly; otherwise `ValueError` says which numbers do not divide.

Every image is resized to image_size × image_size first, so each one gives the same number of tokens; the image
processor is transformers' PIL-backed `Qwen2VLImageProcessorPil` (no torchvision needed).
"""

import math

import torch
import torch.nn.functional as F
from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil


def make_image_processor(image_size: int, patch_size: int, merge_size: int = 2, temporal_patch_size: int = 2):
    if image_size % (patch_size * merge_size):
        raise ValueError(f"image_size {image_size} is not a multiple of patch {patch_size} × merge {merge_size}")
    pixels = image_size * image_size
    return Qwen2VLImageProcessorPil(
        patch_size=patch_size,
        merge_size=merge_size,
        temporal_patch_size=temporal_patch_size,
        size={"shortest_edge": pixels, "longest_edge": pixels},  # min_pixels = max_pixels: no resizing inside
    )


def to_pixels(images: list[Image.Image], processor, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PIL images → (pixel_values (num_patches, C·T·P·P), image_grid_thw (N, 3))."""
    if not images:
        raise ValueError("no images given")
    resized = [img.convert("RGB").resize((image_size, image_size), Image.BICUBIC) for img in images]
    out = processor(images=resized, return_tensors="pt")
    return out["pixel_values"], out["image_grid_thw"]


def budget_layout(latent_budget: int, grid: int) -> tuple[int, int]:
    """The h×w layout of K pooled tokens on a G×G grid: the most square factorisation whose sides divide G."""
    for h in range(math.isqrt(latent_budget), 0, -1):
        w = latent_budget // h
        if h * w == latent_budget and grid % h == 0 and grid % w == 0:
            return h, w
    raise ValueError(
        f"latent budget K={latent_budget} cannot be pooled from a {grid}×{grid} token grid: "
        f"K must be h×w with h and w dividing {grid}"
    )


def pool_tokens(tokens: torch.Tensor, grid: int, latent_budget: int) -> torch.Tensor:
    """Average-pool merged image tokens to K. tokens (N, G·G, D) in raster order → (N, K, D) in raster order."""
    num, count, dim = tokens.shape
    if count != grid * grid:
        raise ValueError(f"expected {grid}×{grid} = {grid * grid} image tokens per image, got {count}")
    h, w = budget_layout(latent_budget, grid)
    maps = tokens.transpose(1, 2).reshape(num, dim, grid, grid)  # (N, D, G, G)
    pooled = F.avg_pool2d(maps, kernel_size=(grid // h, grid // w))  # (N, D, h, w)
    return pooled.flatten(2).transpose(1, 2)  # (N, h·w, D)
