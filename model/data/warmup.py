"""Stage-0 warm-up data: image → text pairs that teach a from-scratch model to see sketch-world pictures, both as
problem images and as sketches.

Each described image (problem and reasoning images alike) gives "Describe the image." → its dense raster
description ("row 1: white red … row 2: …"), and `questions_per_image` perception questions read off that
description: the colour of one cell, how many cells of a colour there are, whether a colour is there at all (the
three ways sketch-world answers read a sketch: look a cell up, count, check presence). Colours are drawn uniformly
among those present (or, for presence, among all colours), so "white" does not dominate.

Every pair is shown either as a problem image in the prompt, or — with probability `sketch_share` — as a sketch:
no image in the prompt, the question about "the sketch", and the answer opening with ⟨START⟩ + the image's K pooled
encoder tokens as latents + ⟨END⟩ (the true sketch of that picture, computed by the encoder being trained). The model
so learns to read latents at sketch slots the way it reads image tokens, before SFT asks it to read sketches it has
to draw. model/train.py uses the descriptions alone first, then everything ("dense descriptions first, questions
after"); model/describe_eval.py scores descriptions cell by cell.
"""

import random
import re
from collections import Counter

from model.data.zebra import Example, Sketch
from model.sketchworld.grid import cell_name

DESCRIBE_PROMPT = "Describe the image."
DESCRIBE_SKETCH_PROMPT = "Describe the sketch."
COLOURS = ("white", "black", "gray", "red", "green", "blue", "yellow", "purple", "orange")


def parse_description(text: str) -> list[list[str]] | None:
    """'row 1: white red ... row 2: ...' → colour names per row; None when the text is not in that form."""
    parts = re.split(r"row (\d+):", text)
    if len(parts) < 3 or parts[0].strip():
        return None
    rows = [content.split() for content in parts[2::2]]
    numbers = [int(n) for n in parts[1::2]]
    if numbers != list(range(1, len(rows) + 1)) or not rows[0] or any(len(r) != len(rows[0]) for r in rows):
        return None
    return rows


def _pair(example_id: str, image, question: str, answer: str, family: str, description: str, as_sketch: bool):
    """One warm-up Example. The answer is the whole trace, so "interleaved" gives exactly it (+ eos)."""
    if as_sketch:
        return Example(
            id=example_id,
            question=question,
            problem_images=[],
            segments=[Sketch(0), "\n" + answer],
            reasoning_images=[image],
            answer=answer,
            family=family,
            reasoning_descriptions=[description],
        )
    return Example(
        id=example_id,
        question=question,
        problem_images=[image],
        segments=[answer],
        reasoning_images=[],
        answer=answer,
        family=family,
        text_only_trace=answer,
        problem_descriptions=[description],
    )


def _question(grid: list[list[str]], rng: random.Random, where: str) -> tuple[str, str]:
    """A perception question about `grid` and its answer; `where` is "" or " of the sketch"."""
    cells = [(r, c) for r in range(len(grid)) for c in range(len(grid[0]))]
    present = sorted({grid[r][c] for r, c in cells})
    counts = Counter(grid[r][c] for r, c in cells)  # absent colours count 0
    kind = rng.choice(["cell", "count", "presence"])
    if kind == "cell":
        colour = rng.choice(present)
        r, c = rng.choice([(r, c) for r, c in cells if grid[r][c] == colour])
        return f"What colour is at {cell_name((r, c))}{where}?", colour
    if kind == "count":
        colour = rng.choice([name for name in COLOURS if counts[name] <= 9])
        return f"How many {colour} cells are there{where}?", str(counts[colour])
    colour = rng.choice(COLOURS)
    return f"Is there a {colour} cell{where}?", "yes" if colour in present else "no"


def warmup_examples(
    examples: list[Example],
    questions_per_image: int = 3,
    seed: int = 0,
    sketch_share: float = 0.0,
) -> list[Example]:
    """Image → text pairs from every described problem and reasoning image: a description and
    `questions_per_image` perception questions each, a `sketch_share` of them shown as sketches."""
    out = []
    for e in examples:
        for kind, images, descriptions in (
            ("problem", e.problem_images, e.problem_descriptions),
            ("reasoning", e.reasoning_images, e.reasoning_descriptions),
        ):
            for i, (image, description) in enumerate(zip(images, descriptions)):
                if not description:
                    continue
                base = f"{e.id}/{kind}{i + 1}"
                rng = random.Random(f"warmup/{seed}/{base}")
                as_sketch = rng.random() < sketch_share
                prompt = DESCRIBE_SKETCH_PROMPT if as_sketch else DESCRIBE_PROMPT
                out.append(_pair(f"{base}/describe", image, prompt, description, e.family, description, as_sketch))
                grid = parse_description(description)
                if grid is None:
                    continue
                for j in range(questions_per_image):
                    as_sketch = rng.random() < sketch_share
                    question, answer = _question(grid, rng, " of the sketch" if as_sketch else "")
                    out.append(_pair(f"{base}/q{j + 1}", image, question, answer, e.family, description, as_sketch))
    return out


def is_description(example: Example) -> bool:
    return example.question in (DESCRIBE_PROMPT, DESCRIBE_SKETCH_PROMPT)
