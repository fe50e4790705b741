"""Random pictures and the four prompts (two pictures, one, one, none) that the engine tests answer."""

import numpy as np
from PIL import Image

from model.generation.engine import Prompt


def image(seed, size=56):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8))


PROMPTS = [
    Prompt("How many red cells are there?", [image(1)]),
    Prompt("Is the green cell connected to the red one?", [image(2), image(3)]),
    Prompt("Which piece fits the gap?", [image(4)]),
    Prompt("What is in row 2, column 3?", []),
]
