"""The app's sketch-space gallery: sketch-world pictures encoded with the checkpoint's own `model.sketch_targets`.

    images = gallery_images(per_family=40)                  # [(PIL image, meta)], problem and reasoning pictures
    gallery = encode_gallery(model, images)                  # analysis.neighbours.Gallery
    picture(gallery.meta.iloc[3])                            # the PIL image of a gallery row, regenerated

Pictures are never stored: each gallery row names its family and instance number, and the instance is generated
again from its seed when the app shows it (sketch-world is deterministic and draws an instance in about a
millisecond), so the on-disk cache holds only vectors and metadata. The seed stream (`app-gallery/…`) differs from
the dataset splits' and the shipped examples', so gallery images are not training instances.
"""

import functools
import random
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from PIL import Image

from analysis.neighbours import Gallery, build_gallery
from model.sketchworld import DEFAULT_FAMILIES, generate_instance
from model.sketchworld.schema import GENERATOR_VERSION

# part of the cache fingerprint: the generator's version and families change the pictures; v1 the gallery's recipe
DATASET_ID = f"sketchworld-{GENERATOR_VERSION}-{'-'.join(DEFAULT_FAMILIES)}-app-gallery-v1"
ENCODE_BATCH = 32  # images per sketch_targets call


def _instance(family: str, number: int):
    return generate_instance(family, random.Random(f"app-gallery/{family}/{number}"))


def gallery_images(per_family: int) -> list[tuple[Image.Image, dict]]:
    """Problem and reasoning pictures of `per_family` instances of every family, with gallery metadata."""
    if per_family < 1:
        raise ValueError(f"per_family must be >= 1, got {per_family}")
    out = []
    for family in DEFAULT_FAMILIES:
        for number in range(per_family):
            inst = _instance(family, number)
            for role, images in (("problem", inst.problem_images), ("reasoning", inst.reasoning_images)):
                for index, image in enumerate(images):
                    meta = dict(
                        example_id=f"{family}-{number:04d}",
                        family=family,
                        role=role,
                        image_index=index,
                        split=DATASET_ID,
                        instance=number,
                    )
                    out.append((image, meta))
    return out


def encode_gallery(
    model, images: list[tuple[Image.Image, dict]], progress: Callable[[int], None] | None = None
) -> Gallery:
    """Encode the pictures with the model's frozen encoder, pooled to K, exactly as sketch targets are;
    `progress(number encoded so far)` after each batch."""
    done = 0

    def encode(batch: list[Image.Image]) -> np.ndarray:
        nonlocal done
        with torch.no_grad():
            out = model.sketch_targets(batch).float().cpu().numpy()  # (n, K, D)
        done += len(batch)
        if progress is not None:
            progress(done)
        return out

    return build_gallery(images, encode, batch_size=ENCODE_BATCH)


@functools.lru_cache(maxsize=2048)
def _picture(family: str, number: int, role: str, index: int) -> Image.Image:
    inst = _instance(family, number)
    return (inst.problem_images if role == "problem" else inst.reasoning_images)[index]


def picture(row: pd.Series) -> Image.Image:
    """The picture of one gallery metadata row."""
    return _picture(str(row["family"]), int(row["instance"]), str(row["role"]), int(row["image_index"]))
