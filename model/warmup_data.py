"""Stage-0 warm-up data: image → text pairs that teach a from-scratch vision encoder to see sketch-world pictures.

Each described image (problem and reasoning images alike) gives "Describe the image." → its dense raster
description ("row 1: white red … row 2: …"), and a few "What colour is at row r, column c?" → colour questions read
from that description. model/train.py uses the descriptions alone first, then both ("dense descriptions first,
questions after"); model/describe_eval.py scores descriptions cell by cell.
"""

import random
import re

from model.data import Example

DESCRIBE_PROMPT = "Describe the image."


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


def _warmup_example(example_id: str, image, question: str, answer: str, family: str, description: str) -> Example:
    # The answer is the whole trace, so "interleaved" and "text-only" both give exactly `answer` + eos.
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


def warmup_examples(examples: list[Example], questions_per_image: int = 3, seed: int = 0) -> list[Example]:
    """Image → text pairs from every described problem and reasoning image: "Describe the image." → the description,
    and `questions_per_image` "What colour is at row r, column c?" → colour questions from a grid description.

    Colours are drawn uniformly among those present before a cell of that colour, so "white" does not dominate.
    """
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
                out.append(
                    _warmup_example(f"{base}/describe", image, DESCRIBE_PROMPT, description, e.family, description)
                )
                grid = parse_description(description)
                if grid is None:
                    continue
                rng = random.Random(f"warmup/{seed}/{base}")
                cells = [(r, c) for r in range(len(grid)) for c in range(len(grid[0]))]
                for j in range(min(questions_per_image, len(cells))):
                    colour = rng.choice(sorted({grid[r][c] for r, c in cells}))
                    r, c = rng.choice([(r, c) for r, c in cells if grid[r][c] == colour])
                    cells.remove((r, c))
                    question = f"What colour is at row {r + 1}, column {c + 1}?"
                    out.append(_warmup_example(f"{base}/cell{j + 1}", image, question, colour, e.family, description))
    return out
