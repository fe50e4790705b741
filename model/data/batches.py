"""Encoded examples → training batches: the dataset (cached encoder outputs or pixels) and the collator.

loader = DataLoader(SFTDataset(encoded, cache), batch_size=8, collate_fn=partial(collate, pad_id=pad_id))
loss = model(**next(iter(loader))).loss
"""

import torch

from model.core import vision
from model.data.encoding import EncodedExample
from model.data.visual_cache import VisualCache


class SFTDataset(torch.utils.data.Dataset):
    """Encoded examples with their visual inputs: cached encoder outputs (frozen encoder) or pixels (trained one).

    visual="cached": image_embeds + image_grid_thw from the cache, latents from the cache. visual="pixels":
    pixel_values + image_grid_thw made from the PIL images with `image_processor` at `image_size`, and the sketches'
    pictures as sketch_pixel_values + sketch_image_grid_thw, so the model computes their latents with the encoder it
    is training (stage 0).
    """

    def __init__(
        self,
        encoded: list[EncodedExample],
        cache: VisualCache | None = None,
        visual: str = "cached",
        image_processor=None,
        image_size: int | None = None,
    ):
        if visual not in ("cached", "pixels"):
            raise ValueError(f"visual must be 'cached' or 'pixels', got {visual!r}")
        if visual == "pixels" and (image_processor is None or image_size is None):
            raise ValueError("visual='pixels' needs image_processor and image_size (model.config.image_size)")
        self.encoded, self.cache, self.visual = encoded, cache, visual
        self.image_processor, self.image_size = image_processor, image_size
        for e in encoded:
            needs = [("sketch", (e.id, i)) for i in e.sketch_images] if visual == "cached" else []
            if visual == "cached":
                needs += [("problem", (e.id, i)) for i in range(len(e.problem_images))]
            if needs and cache is None:
                raise ValueError(f"example {e.id!r} needs cached {needs[0][0]} targets but no cache was given")
            for kind, key in needs:
                if key not in (cache.sketch_index if kind == "sketch" else cache.problem_index):
                    raise ValueError(f"the cache has no {kind} target for example {key[0]!r}, image {key[1]}")
            if e.sketch_images and visual == "cached" and cache.latent_budget != e.latent_budget:
                raise ValueError(
                    f"example {e.id!r} has {e.latent_budget} latent slots per sketch but the cache holds "
                    f"K={cache.latent_budget} targets"
                )

    def __len__(self) -> int:
        return len(self.encoded)

    def length(self, index: int) -> int:
        """Tokens in row `index` (what length-grouped batches sort by, model/training/batch_stream.py)."""
        return len(self.encoded[index].input_ids)

    def __getitem__(self, index: int) -> dict:
        e = self.encoded[index]
        item = {"input_ids": torch.tensor(e.input_ids), "labels": torch.tensor(e.labels)}
        if e.answer_mask:
            item["answer_mask"] = torch.tensor(e.answer_mask)
        if e.slot_labels:
            item["slot_labels"] = torch.tensor(e.slot_labels)
        if e.sketch_images and self.visual == "cached":
            rows = [self.cache.sketch_index[(e.id, i)] for i in e.sketch_images]
            item["latents"] = self.cache.sketch_latents[rows].flatten(0, 1).float()  # (m·K, D)
        elif e.sketch_images:
            item["sketch_pixel_values"], item["sketch_image_grid_thw"] = vision.to_pixels(
                [e.reasoning_images[i] for i in e.sketch_images], self.image_processor, self.image_size
            )
        if e.problem_images and self.visual == "cached":
            rows = [self.cache.problem_index[(e.id, i)] for i in range(len(e.problem_images))]
            item["image_embeds"] = self.cache.problem_embeds[rows].flatten(0, 1).float()  # (n·G·G, D)
            item["image_grid_thw"] = self.cache.problem_grid[rows]
        elif e.problem_images:
            item["pixel_values"], item["image_grid_thw"] = vision.to_pixels(
                e.problem_images, self.image_processor, self.image_size
            )
        return item


def collate(batch: list[dict], pad_id: int) -> dict:
    """Right-pad to the longest row; latents and image features concatenated in row-major order, as forward wants.

    Tensors stay on the CPU in float32; cast pixel_values to the model's dtype on a half-precision model.
    """
    length = max(len(item["input_ids"]) for item in batch)
    input_ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), length), -100, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), length), dtype=torch.long)
    answer_mask = torch.zeros((len(batch), length), dtype=torch.long)
    for row, item in enumerate(batch):
        n = len(item["input_ids"])
        input_ids[row, :n], labels[row, :n], attention_mask[row, :n] = item["input_ids"], item["labels"], 1
        if "answer_mask" in item:
            answer_mask[row, :n] = item["answer_mask"]
    out = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, "answer_mask": answer_mask}
    for key in (
        "latents",
        "image_embeds",
        "pixel_values",
        "image_grid_thw",
        "sketch_pixel_values",
        "sketch_image_grid_thw",
        "slot_labels",
    ):
        parts = [item[key] for item in batch if key in item]
        out[key] = torch.cat(parts) if parts else None
    return out
