"""Each picture through the frozen vision encoder once per evaluation, however many modes ask it.

An audit asks the same puzzles in seven modes, and each mode's prefill used to run the puzzle pictures through the
encoder again (and oracle mode and the read-back probe their reasoning pictures): the same merged tokens, computed
seven times. While an `ImageMemo` is attached to a model (`remembering(model)`), `image_features` keys each picture
by its pixels and encodes only those it has not seen, in one batch, in the order given — the batch a run without
the memo would have encoded first, so the tokens are the same numbers.

    with remembering(model):
        tokens, grid = image_features(model, images)   # (N, G·G, D), (N, 3)

Nothing is remembered outside the `with` (training, the app): the encoder is frozen, but a model whose weights change
between calls must not be answered from an old encoding.
"""

import hashlib
from collections import OrderedDict
from contextlib import contextmanager

import torch
from PIL import Image


class ImageMemo:
    """Merged tokens and grid of each picture seen, keyed by its pixels; at most `capacity`, oldest out first."""

    def __init__(self, capacity: int = 8192):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.entries: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(image: Image.Image) -> str:
        """The picture's identity: its mode, size and a digest of its pixels."""
        digest = hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest()
        return f"{image.mode}:{image.size[0]}x{image.size[1]}:{digest}"

    def get(self, key: str):
        found = self.entries.get(key)
        if found is not None:
            self.entries.move_to_end(key)
        return found

    def put(self, key: str, tokens: torch.Tensor, grid: torch.Tensor) -> None:
        self.entries[key] = (tokens, grid)
        self.entries.move_to_end(key)
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)


@contextmanager
def remembering(model, capacity: int = 8192):
    """Attach a fresh ImageMemo to `model` for the block (a memo already attached is kept and reused)."""
    if getattr(model, "image_memo", None) is not None:
        yield model.image_memo
        return
    model.image_memo = ImageMemo(capacity)
    try:
        yield model.image_memo
    finally:
        del model.image_memo


@torch.no_grad()
def image_features(model, images: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Pictures → (merged tokens (N, G·G, D), image_grid_thw (N, 3)) through `model`'s encoder + merger; the
    pictures its memo has seen are not encoded again. Without a memo, exactly `encode_images(*pixels(images))`."""
    memo = getattr(model, "image_memo", None)
    if memo is None:
        pixel_values, grid = model.pixels(images)
        return model.encode_images(pixel_values, grid), grid
    keys = [ImageMemo.key(img) for img in images]
    known = {k: memo.get(k) for k in dict.fromkeys(keys)}
    missing = [k for k, found in known.items() if found is None]
    if missing:
        first = {k: images[keys.index(k)] for k in missing}
        pixel_values, grid = model.pixels(list(first.values()))
        tokens = model.encode_images(pixel_values, grid)
        for i, k in enumerate(missing):
            known[k] = (tokens[i], grid[i])
            memo.put(k, tokens[i], grid[i])
        memo.misses += len(missing)
    memo.hits += len(keys) - len(missing)
    return torch.stack([known[k][0] for k in keys]), torch.stack([known[k][1] for k in keys])
