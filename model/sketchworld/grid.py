"""Cell grids: the one state type every sketch-world picture is drawn from.

A picture is a square array of palette indices: 8x8 on the standard boards, 16x16 on the big ones (connect16,
maze16). Every picture is 224x224 px, so a cell is a flat 28x28 block on an 8x8 board and 14x14 on a 16x16 one: the
image lines up exactly with the vision encoder's grid (14-px patches merged 2x2 -> 8x8 tokens: one token per cell of
an 8x8 board, four cells of a 16x16 one). No grid lines, no anti-aliasing and no text, so `read_grid` inverts
`render` exactly by sampling cell centres.

    from model.sketchworld.grid import render, read_grid, describe_grid
    cells = new_grid("white"); cells[2, 3] = color_index("red")
    assert (read_grid(render(cells)) == cells).all()
    big = new_grid("white", size=16); assert (read_grid(render(big), size=16) == big).all()

`describe_grid` is the single text form of a grid, used both for the dense image descriptions (warm-up stage) and for
the states written out in text-only traces.
"""

import io

import numpy as np
from PIL import Image

GRID_SIZE = 8  # cells per side of a standard board
IMAGE_PX = 224  # every picture, whatever its board size: 16x16 patches of 14 px, merged 2x2 into 8x8 tokens
CELL_PX = IMAGE_PX // GRID_SIZE  # 28: one merged token per cell of a standard board

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


def cell_px(size: int) -> int:
    """Pixels per cell side on a `size`x`size` board (28 at 8, 14 at 16); the board must tile the picture."""
    if size <= 0 or IMAGE_PX % size:
        raise ValueError(f"a {size}x{size} board does not tile a {IMAGE_PX}-px picture")
    return IMAGE_PX // size


def new_grid(fill: str = "white", size: int = GRID_SIZE) -> np.ndarray:
    return np.full((size, size), color_index(fill), dtype=np.int8)


def render(cells: np.ndarray) -> Image.Image:
    """(S, S) palette indices -> 224x224 RGB image, each cell a flat block of 224/S px."""
    size = cells.shape[0]
    assert cells.shape == (size, size), cells.shape
    px = cell_px(size)
    rgb = _RGB[cells]  # (S, S, 3)
    rgb = np.repeat(np.repeat(rgb, px, axis=0), px, axis=1)  # (224, 224, 3)
    return Image.fromarray(rgb, mode="RGB")


def read_grid(image: Image.Image, size: int = GRID_SIZE) -> np.ndarray:
    """Inverse of `render` for a `size`x`size` board: sample each cell centre and snap it to the nearest colour."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.int32)
    px = cell_px(size)
    centres = np.arange(size) * px + px // 2
    samples = rgb[centres][:, centres]  # (S, S, 3)
    dist = ((samples[:, :, None, :] - _RGB[None, None].astype(np.int32)) ** 2).sum(-1)  # (S, S, num_colors)
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
