"""Cell grids: the one state type every sketch-world picture is drawn from.

A picture is an 8x8 array of palette indices. Rendering paints each cell as a flat 28x28 block, so a 224x224 image
lines up exactly with the vision encoder's token grid (14-px patches merged 2x2 -> one token per cell). No grid
lines, no anti-aliasing and no text, so `read_grid` can invert `render` exactly by sampling cell centres.

    from model.sketchworld.grid import render, read_grid, describe_grid
    cells = new_grid("white"); cells[2, 3] = color_index("red")
    assert (read_grid(render(cells)) == cells).all()

`describe_grid` is the single text form of a grid, used both for the dense image descriptions (warm-up stage) and for
the states written out in text-only traces.
"""

import io

import numpy as np
from PIL import Image

GRID_SIZE = 8  # cells per side
CELL_PX = 28  # 14-px patches merged 2x2
IMAGE_PX = GRID_SIZE * CELL_PX  # 224

# Strongly distinct flat colours; order fixes the index stored in the grids, so only append.
PALETTE = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "red": (220, 20, 20),
    "green": (20, 160, 40),
    "blue": (30, 70, 230),
    "yellow": (245, 210, 0),
    "purple": (140, 40, 180),
    "orange": (250, 130, 0),
}
COLOR_NAMES = list(PALETTE)
_RGB = np.array(list(PALETTE.values()), dtype=np.uint8)  # (num_colors, 3)


def color_index(name: str) -> int:
    return COLOR_NAMES.index(name)


def new_grid(fill: str = "white") -> np.ndarray:
    return np.full((GRID_SIZE, GRID_SIZE), color_index(fill), dtype=np.int8)


def render(cells: np.ndarray) -> Image.Image:
    """(8, 8) palette indices -> 224x224 RGB image, each cell a flat 28x28 block."""
    assert cells.shape == (GRID_SIZE, GRID_SIZE), cells.shape
    rgb = _RGB[cells]  # (8, 8, 3)
    rgb = np.repeat(np.repeat(rgb, CELL_PX, axis=0), CELL_PX, axis=1)  # (224, 224, 3)
    return Image.fromarray(rgb, mode="RGB")


def read_grid(image: Image.Image) -> np.ndarray:
    """Inverse of `render`: sample each cell centre and snap it to the nearest palette colour."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.int32)
    centres = np.arange(GRID_SIZE) * CELL_PX + CELL_PX // 2
    samples = rgb[centres][:, centres]  # (8, 8, 3)
    dist = ((samples[:, :, None, :] - _RGB[None, None].astype(np.int32)) ** 2).sum(-1)  # (8, 8, num_colors)
    return dist.argmin(-1).astype(np.int8)


def describe_grid(cells: np.ndarray) -> str:
    """Full raster description: 'row 1: white red ... row 2: ...'."""
    rows = [f"row {r + 1}: " + " ".join(COLOR_NAMES[v] for v in cells[r]) for r in range(cells.shape[0])]
    return " ".join(rows)


def png_bytes(image: Image.Image) -> bytes:
    """PNG with fixed settings and no metadata chunks, so equal images give equal bytes (byte-identical shards)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def grid_key(cells: np.ndarray) -> bytes:
    return np.ascontiguousarray(cells, dtype=np.int8).tobytes()


def cells_of(cells: np.ndarray, name: str) -> list[tuple[int, int]]:
    """Raster-ordered (row, col) positions holding colour `name`."""
    return [(int(r), int(c)) for r, c in zip(*np.nonzero(cells == color_index(name)))]


def cell_name(rc: tuple[int, int]) -> str:
    """1-based 'row r, column c', the one way questions and traces name a cell."""
    return f"row {rc[0] + 1}, column {rc[1] + 1}"
