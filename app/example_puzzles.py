"""The example puzzles shipped in assets/examples/ (written by `python -m model.sketchworld.examples`).

    examples = load_examples()                      # {id: Example}, in the file's order
    examples["maze-1"].problem_paths                # the PNGs to show and to answer from

The true sketches of an example (oracle latents) are computed where every caller computes them,
`model.data.targets.true_sketches(model, [as_zebra(example)])` (app/reasoning.py, behind the page: model.data pulls in
the datasets library, a fifth of a second the page need not wait for): this module only reads the folder.
"""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

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


def true_sketch_images(example: Example) -> list[Image.Image]:
    """The true intermediate images in the order the trace draws them."""
    return [Image.open(example.reasoning_paths[i]).convert("RGB") for i in example.sketch_order]
