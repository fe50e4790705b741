"""The example puzzles shipped in assets/examples/ (written by `python -m model.sketchworld.examples`).

    examples = load_examples()                      # {id: Example}, in the file's order
    examples["maze-1"].problem_paths                # the PNGs to show and to answer from
    as_zebra(examples["maze-1"])                    # the same puzzle as a model.data.zebra.Example

The true sketches of an example (oracle latents) are computed where every caller computes them,
`model.data.targets.true_sketches(model, [as_zebra(example)])`: this module only reads the folder.
"""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from model.data import zebra

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"


@dataclass(frozen=True)
class Example:
    id: str
    family: str
    question: str
    answer: str
    choices: tuple[str, ...]
    problem_paths: tuple[str, ...]  # absolute paths of the problem images
    reasoning_paths: tuple[str, ...]  # absolute paths of the true intermediate images (may be empty)
    trace: str = ""  # the Zebra-CoT reasoning trace, with [reasoning_image_n] placeholders
    sketch_order: tuple[int, ...] = field(default=())  # reasoning image drawn at each sketch of the trace, 0-based

    @property
    def has_sketches(self) -> bool:
        return bool(self.sketch_order)

    @property
    def label(self) -> str:
        return f"{self.id} · {self.question[:70]}{'…' if len(self.question) > 70 else ''}"


def load_examples(folder: str | Path = EXAMPLES_DIR) -> dict[str, Example]:
    """{} when the folder has no examples.json (the app still works with uploads)."""
    folder = Path(folder)
    path = folder / "examples.json"
    if not path.is_file():
        return {}
    out = {}
    for record in json.loads(path.read_text(encoding="utf-8")):
        reasoning = tuple(str(folder / name) for name in record.get("reasoning_images", []))
        # The trace names its sketches by placeholder; an image may be drawn twice, so follow the trace's order.
        order = [int(k) - 1 for k in re.findall(r"\[reasoning_image_(\d+)\]", record.get("trace", ""))]
        out[record["id"]] = Example(
            id=record["id"],
            family=record["family"],
            question=record["question"],
            answer=str(record["answer"]),
            choices=tuple(record.get("choices", [])),
            problem_paths=tuple(str(folder / name) for name in record["problem_images"]),
            reasoning_paths=reasoning,
            trace=record.get("trace", ""),
            sketch_order=tuple(i for i in order if 0 <= i < len(reasoning)),
        )
    return out


def as_zebra(example: Example) -> zebra.Example:
    """The example as a Zebra-CoT row parsed by `model.data.zebra.parse_row` (images read from their files)."""
    row = {"id": example.id, "Question": example.question, "Final Answer": example.answer, "family": example.family}
    row["Text Reasoning Trace"] = example.trace
    row["answer_choices"] = list(example.choices)
    row.update({f"problem_image_{i + 1}": path for i, path in enumerate(example.problem_paths)})
    row.update({f"reasoning_image_{i + 1}": path for i, path in enumerate(example.reasoning_paths)})
    parsed = zebra.parse_row(row)
    assert isinstance(parsed, zebra.Example), f"shipped example {example.id} does not parse: {parsed}"
    return parsed


def true_sketch_images(example: Example) -> list[Image.Image]:
    """The true intermediate images in the order the trace draws them."""
    return [Image.open(example.reasoning_paths[i]).convert("RGB") for i in example.sketch_order]
