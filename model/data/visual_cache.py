"""The frozen vision encoder's outputs, computed once: problem-image tokens and sketch targets, cached on disk.

    cache = load_or_compute(model, examples, "data/sketchworld/.visual-cache")   # or precompute_visuals(model, …)
    fit_stats(model, cache)                                                     # the targets' standardisation

SFT freezes the vision encoder + merger, so the problem images' tokens and the sketch targets depend only on the
encoder's weights and the images. The K / λ sweep trains many models from one stage-0 base; encoding the training
images takes minutes on a CPU core, so it is done once and stored as

    DATA/.visual-cache/<key>.safetensors + <key>.json

`key` hashes the vision encoder's weights and the example ids. Sketch targets are stored at full resolution (G×G
tokens, K = G²); any other K is pooled from them, which equals pooling the encoder output directly because every
pooled block averages whole blocks of equal size (average of averages). Tensors are stored in float16: half of
float32's memory (demo preset: 32 KB per problem image and per full sketch target; Qwen2.5-VL-7B at 448 px: 1.8 MB),
and the rounding (measured under 5e-4 of the largest value) is far below the noise the diffusion head is trained
with. Writes are atomic; a cache file that cannot be read is a miss (reported, then rebuilt).
"""

import hashlib
import json
import os
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from model.core import vision


@dataclass
class VisualCache:
    """Frozen-encoder outputs keyed by (example id, image index), stacked into one tensor per kind."""

    latent_budget: int  # K the sketch targets were pooled to
    problem_embeds: torch.Tensor  # (num_problem_images, G·G, D) merged image tokens, raster order
    problem_grid: torch.Tensor  # (num_problem_images, 3) image_grid_thw of each, for the 3-D rotary positions
    sketch_latents: torch.Tensor  # (num_reasoning_images, K, D) pooled self-reconstruction targets
    problem_index: dict[tuple[str, int], int]  # (id, index into Example.problem_images) → row above
    sketch_index: dict[tuple[str, int], int]  # (id, index into Example.reasoning_images) → row above


def _encode_in_batches(images: list, batch_size: int, encode, dtype: torch.dtype, bar) -> torch.Tensor | None:
    """Run `encode` over batches of images into one preallocated CPU tensor (no second copy from torch.cat)."""
    out = None
    for start in range(0, len(images), batch_size):
        chunk = encode(images[start : start + batch_size])
        stored = chunk.to("cpu", dtype)
        if not torch.isfinite(stored).all() and torch.isfinite(chunk).all():
            raise ValueError(f"encoder outputs reach {chunk.abs().max().item():.3g}, beyond {dtype}: use float32")
        if out is None:
            out = torch.empty((len(images), *stored.shape[1:]), dtype=dtype)
        out[start : start + len(stored)] = stored
        bar.update(len(stored))
    return out


@torch.no_grad()
def precompute_visuals(
    model,
    examples: list,
    latent_budget: int | None = None,
    batch_size: int = 32,
    progress: bool = True,
    dtype: torch.dtype = torch.float16,
) -> VisualCache:
    """Every problem image → encode_images (G·G, D); every reasoning image → sketch_targets (K, D); stored on CPU."""
    budget = latent_budget or model.latent_budget
    ids = [e.id for e in examples]
    if len(set(ids)) != len(ids):
        repeated = sorted(k for k, n in Counter(ids).items() if n > 1)
        raise ValueError(f"example ids must be unique to key the cache; repeated: {repeated[:5]}")
    problem_keys = [(e.id, i) for e in examples for i in range(len(e.problem_images))]
    sketch_keys = [(e.id, i) for e in examples for i in range(len(e.reasoning_images))]
    problem_images = [image for e in examples for image in e.problem_images]
    sketch_images = [image for e in examples for image in e.reasoning_images]
    dim, tokens = model.config.hidden_size, model.tokens_per_image
    grids = []

    def encode_problem(images):
        pixel_values, grid = model.pixels(images)
        grids.append(grid.cpu())
        return model.encode_images(pixel_values, grid)  # (N, G·G, D)

    bar = tqdm(total=len(problem_images) + len(sketch_images), desc="visual targets", unit="img", disable=not progress)
    with bar:
        problem = _encode_in_batches(problem_images, batch_size, encode_problem, dtype, bar)
        sketch = _encode_in_batches(sketch_images, batch_size, lambda b: model.sketch_targets(b, budget), dtype, bar)
    return VisualCache(
        latent_budget=budget,
        problem_embeds=problem if problem is not None else torch.zeros(0, tokens, dim, dtype=dtype),
        problem_grid=torch.cat(grids) if grids else torch.zeros(0, 3, dtype=torch.long),
        sketch_latents=sketch if sketch is not None else torch.zeros(0, budget, dim, dtype=dtype),
        problem_index={key: row for row, key in enumerate(problem_keys)},
        sketch_index={key: row for row, key in enumerate(sketch_keys)},
    )


def fit_stats(model, cache: VisualCache, max_vectors: int = 262_144, seed: int = 0) -> None:
    """model.fit_latent_stats on the cached sketch targets (a seeded sample of max_vectors rows when more)."""
    flat = cache.sketch_latents.flatten(0, 1)  # (num_reasoning_images·K, D)
    if len(flat) < 2:
        raise ValueError(f"need at least 2 cached sketch target vectors to fit statistics, the cache has {len(flat)}")
    if len(flat) > max_vectors:  # per-dimension mean and std settle long before this; saves a float32 copy of all
        flat = flat[torch.randperm(len(flat), generator=torch.Generator().manual_seed(seed))[:max_vectors]]
    model.fit_latent_stats(flat.to(model.device, torch.float32))


def cache_key(model, examples) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.backbone.model.visual.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().numpy().tobytes())
    digest.update("\n".join(e.id for e in examples).encode())
    digest.update(str(model.config.image_size).encode())
    return digest.hexdigest()[:20]


def _pooled(full: VisualCache, grid: int, latent_budget: int) -> VisualCache:
    if full.latent_budget == latent_budget:
        return full
    sketches = full.sketch_latents
    pooled = vision.pool_tokens(sketches.float(), grid, latent_budget).to(sketches.dtype) if len(sketches) else (
        sketches.new_zeros(0, latent_budget, sketches.shape[-1]))  # fmt: skip
    return VisualCache(latent_budget, full.problem_embeds, full.problem_grid, pooled, full.problem_index,
                         full.sketch_index)  # fmt: skip


def load_or_compute(model, examples, cache_dir: str | os.PathLike, progress: bool = True) -> VisualCache:
    """The VisualCache for `examples` at the model's K, from disk when the key matches, else computed and stored."""
    grid = model.config.merged_grid
    cache_dir = Path(cache_dir)
    key = cache_key(model, examples)
    tensors_path, index_path = cache_dir / f"{key}.safetensors", cache_dir / f"{key}.json"
    if tensors_path.exists() and index_path.exists():
        try:
            tensors = load_file(str(tensors_path))
            index = json.loads(index_path.read_text())
            full = VisualCache(
                grid * grid,
                tensors["problem_embeds"],
                tensors["problem_grid"],
                tensors["sketch_latents"],
                {(k, i): row for k, i, row in index["problem"]},
                {(k, i): row for k, i, row in index["sketch"]},
            )
            return _pooled(full, grid, model.latent_budget)
        except Exception as err:  # a truncated or corrupt file: rebuild it
            warnings.warn(f"visual cache {tensors_path} is damaged ({err}); recomputing", stacklevel=2)
    full = precompute_visuals(model, examples, latent_budget=grid * grid, progress=progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{key}.{os.getpid()}.tmp"
    save_file({"problem_embeds": full.problem_embeds.contiguous(), "problem_grid": full.problem_grid.contiguous(),
               "sketch_latents": full.sketch_latents.contiguous()}, str(tmp))  # fmt: skip
    os.replace(tmp, tensors_path)
    index = {"problem": [[k, i, r] for (k, i), r in full.problem_index.items()],
             "sketch": [[k, i, r] for (k, i), r in full.sketch_index.items()]}  # fmt: skip
    tmp.write_text(json.dumps(index))
    os.replace(tmp, index_path)
    return _pooled(full, grid, model.latent_budget)
