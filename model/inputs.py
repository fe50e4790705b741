"""Checking what users hand to the engine: images and questions.

Every problem a user can cause raises `InputError` (a `ValueError`) whose message names the problem and the numbers,
so the CLI can print one line and the app can show it in the page. Caps: questions up to `MAX_QUESTION_CHARS`
characters, image files up to `MAX_IMAGE_BYTES`, images up to `MAX_IMAGE_PIXELS` pixels (checked from the header,
before decoding, so a decompression bomb is refused without allocating it).
"""

import io
import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

MAX_QUESTION_CHARS = 1000
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 4096 * 4096


class InputError(ValueError):
    """Bad user input: the message is meant to be shown as it is."""


def check_question(question) -> str:
    if not isinstance(question, str) or not question.strip():
        raise InputError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise InputError(f"the question has {len(question)} characters; the limit is {MAX_QUESTION_CHARS}")
    return question.strip()


def load_image(source) -> Image.Image:
    """A PIL image from a path, bytes or a PIL image, as RGB; InputError when it is not a usable image."""
    if isinstance(source, Image.Image):
        image = source
    else:
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.is_file():
                raise InputError(f"image file {path} does not exist")
            size = path.stat().st_size
            if size > MAX_IMAGE_BYTES:
                limit = MAX_IMAGE_BYTES // 2**20
                raise InputError(f"image file {path.name} is {size / 2**20:.1f} MB; the limit is {limit} MB")
            data, name = path.read_bytes(), path.name
        elif isinstance(source, (bytes, bytearray)):
            data, name = bytes(source), "upload"
            if len(data) > MAX_IMAGE_BYTES:
                raise InputError(f"image is {len(data) / 2**20:.1f} MB; the limit is {MAX_IMAGE_BYTES // 2**20} MB")
        else:
            raise InputError(f"expected an image, got {type(source).__name__}")
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as err:
            raise InputError(f"{name} is too large: {err}") from err
        except (UnidentifiedImageError, OSError) as err:
            raise InputError(f"{name} is not an image file PIL can read") from err
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise InputError(f"image is {width}×{height} pixels; the limit is {MAX_IMAGE_PIXELS:,} pixels")
    if width < 1 or height < 1:
        raise InputError(f"image is {width}×{height} pixels")
    try:
        return image.convert("RGB")
    except (OSError, ValueError) as err:  # truncated or corrupt data shows up when the pixels are decoded
        raise InputError(f"the image data is damaged: {err}") from err
