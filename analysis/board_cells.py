"""A sketch-world picture's cells on one fine grid, whatever its board size (for analysis/latent_decoder.py).

Sketch-world draws 8×8 boards (28-px cells) and 16×16 boards (14-px cells, connect16 and maze16) on the same 224-px
picture. Read at the finest board's 16×16 cell centres, an 8×8 board comes out as its cells repeated 2×2, so one
(N, 16, 16) tensor of palette indices holds both sizes; the decoder's cell head classifies those fine cells, and its
held-out accuracy is counted per board size, an 8×8 board's cell right only when all four fine cells it covers are.

    fine = read_cells(images, FINE_GRID)                 # (N, 16, 16) palette indices
    sizes = board_sizes(fine)                            # (N,) 8 or 16
    board_accuracy(predicted == fine, 8)                 # on 8×8 boards: the fraction of their 64 cells right
"""

import numpy as np
import torch
from PIL import Image

from model.sketchworld.grid import GRID_SIZE, IMAGE_PX, read_grid

FINE_GRID = 16  # the finest sketch-world board: the decoder's cells; an 8×8 board's cell is 2×2 of them
BOARD_SIZES = (GRID_SIZE, FINE_GRID)  # the board sizes held-out metrics are reported for


def read_cells(images: list[Image.Image], grid: int) -> torch.Tensor:
    """PIL images → (N, grid, grid) palette indices, read the way sketch-world reads a picture back (cell centres)."""
    grids = [read_grid(img.convert("RGB").resize((IMAGE_PX, IMAGE_PX), Image.NEAREST), grid) for img in images]
    return torch.from_numpy(np.stack(grids).astype(np.int64))


def board_sizes(fine: torch.Tensor) -> torch.Tensor:
    """(N, 16, 16) fine cells → (N,) board sizes: 8 where the cells come in 2×2 blocks, else 16. A 16×16 board whose
    cells all pair up is the same picture as an 8×8 board and counts as one (none of the 468 among the 2000 pictures
    of `python -m analysis.latent_decoder` did)."""
    coarse = fine[:, ::2, ::2].repeat_interleave(2, 1).repeat_interleave(2, 2)
    return torch.where((fine == coarse).flatten(1).all(1), GRID_SIZE, FINE_GRID)


def to_fine(cells: torch.Tensor) -> torch.Tensor:
    """(N, g, g) cells on any grid that tiles the picture → (N, 16, 16): each fine cell takes the cell its centre falls
    in (read_grid's rule), so a grid-8 decoder's cell becomes 2×2 fine cells."""
    index = (2 * torch.arange(FINE_GRID) + 1) * cells.shape[-1] // (2 * FINE_GRID)  # centre (i + ½)/16 → its cell
    return cells[:, index][:, :, index]


def board_accuracy(hits: torch.Tensor, board: int) -> float:
    """(N, 16, 16) fine cells right or not, on boards of size `board` → the fraction of board cells right, a board
    cell right when every fine cell it covers is."""
    k = FINE_GRID // board
    return float(hits.view(-1, board, k, board, k).all(4).all(2).float().mean())
