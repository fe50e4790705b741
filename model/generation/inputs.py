"""Checking what users hand to the engine: images and questions.

Every problem a user can cause raises `InputError` (a `ValueError`) whose message names the problem and the numbers,
so the CLI can print one line and the app can show it in the page. The edges (CLI, app) call these; the engine does
not check again. Caps: questions up to `MAX_QUESTION_CHARS`
characters, image files up to `MAX_IMAGE_BYTES`, images up to `MAX_IMAGE_PIXELS` pixels (checked from the header,
before decoding, so a decompression bomb is refused without allocating it).
"""

import io
import os
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

MAX_QUESTION_CHARS = 1000
MAX_IMAGES = 2  # sketch-world prompts have one or two problem images
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 4096 * 4096


class InputError(ValueError):
    """Bad user input: the message is meant to be shown as it is."""


def check_question(question) -> str:
    if not isinstance(question, str) or not question.strip():
        raise InputError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise InputError(f"the question has {len(question)} characters; the limit is {MAX_QUESTION_CHARS}")
    try:  # a lone surrogate: bytes that were not UTF-8 on the command line, or a broken string from a client
        question.encode("utf-8")
    except UnicodeEncodeError as err:
        where = f"character {err.start + 1} cannot be encoded"
        raise InputError(f"the question is not valid UTF-8 text ({where})") from None
    return question.strip()


def check_image_count(count: int) -> None:
    """Every prompt needs at least one image and at most MAX_IMAGES (the CLI and the app say the same)."""
    if count < 1:
        raise InputError("no image: give a problem image (an example, an upload, or --image PATH)")
    if count > MAX_IMAGES:
        raise InputError(f"got {count} images; the limit is {MAX_IMAGES}")


def check_seed(seed) -> int:
    """A whole number in [0, 2**63 - 1]; a fractional or out-of-range seed is refused rather than changed."""
    if isinstance(seed, bool) or not isinstance(seed, int | float):
        raise InputError(f"the seed must be a whole number, got {seed!r}")
    if isinstance(seed, float) and (not seed == seed or seed != int(seed)):  # NaN or fractional
        raise InputError(f"the seed must be a whole number, got {seed!r}")
    if not 0 <= seed <= 2**63 - 1:
        raise InputError(f"the seed must be between 0 and 2**63 - 1 = {2**63 - 1}, got {int(seed)}")
    if isinstance(seed, float) and seed > 2**53:
        raise InputError(f"the seed {seed!r} is beyond what a JSON number holds exactly (2**53); send it as text")
    return int(seed)


def check_device(device: str | None) -> str:
    """The device to run on: `device` as given (cpu, cuda, cuda:1, …) when this machine has it; None = cuda when
    available, else cpu."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise InputError(f"--device {device!r} is not a device; use cpu or cuda") from None
    if parsed.type not in ("cpu", "cuda"):
        raise InputError(f"--device {device!r}: only cpu and cuda are supported")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {device}: this machine has no CUDA device")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise InputError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


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
