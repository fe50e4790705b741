"""On-disk cache of the frozen vision encoder's outputs, shared by every SFT run that starts from the same base.

SFT freezes the vision encoder + merger, so the problem images' tokens and the sketch targets depend only on the
encoder's weights and the images. The K / λ sweep trains seven models from one stage-0 base; encoding the 10 k
training images takes ~10 min on one CPU core, so it is done once and stored here:

    DATA/.visual-cache/<key>.safetensors + <key>.json

`key` hashes the vision encoder's weights and the example ids. Sketch targets are stored at full resolution (G×G
tokens, K = G²); any other K is pooled from them, which equals pooling the encoder output directly because every
pooled block averages whole blocks of equal size (average of averages). Writes are atomic (temporary file + rename);
a damaged cache file is reported and rebuilt.
"""

import hashlib
import json
import os
import warnings
from pathlib import Path

from safetensors.torch import load_file, save_file

from model import data as D
from model import vision


def cache_key(model, examples) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.backbone.model.visual.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().numpy().tobytes())
    digest.update("\n".join(e.id for e in examples).encode())
    digest.update(str(model.config.image_size).encode())
    return digest.hexdigest()[:20]


def _pooled(full: D.VisualCache, grid: int, latent_budget: int) -> D.VisualCache:
    if full.latent_budget == latent_budget:
        return full
    sketches = full.sketch_latents
    pooled = vision.pool_tokens(sketches.float(), grid, latent_budget).to(sketches.dtype) if len(sketches) else (
        sketches.new_zeros(0, latent_budget, sketches.shape[-1]))  # fmt: skip
    return D.VisualCache(latent_budget, full.problem_embeds, full.problem_grid, pooled, full.problem_index,
                         full.sketch_index)  # fmt: skip


def load_or_compute(model, examples, cache_dir: str | os.PathLike, progress: bool = True) -> D.VisualCache:
    """The VisualCache for `examples` at the model's K, from disk when the key matches, else computed and stored."""
    grid = model.config.merged_grid
    cache_dir = Path(cache_dir)
    key = cache_key(model, examples)
    tensors_path, index_path = cache_dir / f"{key}.safetensors", cache_dir / f"{key}.json"
    if tensors_path.exists() and index_path.exists():
        try:
            tensors = load_file(str(tensors_path))
            index = json.loads(index_path.read_text())
            full = D.VisualCache(
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
    full = D.precompute_visuals(model, examples, latent_budget=grid * grid, progress=progress)
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
