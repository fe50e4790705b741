"""The example puzzles shipped in assets/examples/ (written by `python -m model.sketchworld.examples`).

    examples = load_examples()                      # {id: Example}, in the file's order
    examples["maze-1"].problem_paths                # the PNGs to show and to answer from
    examples["maze-1-paraphrased"].question         # the same puzzle in another wording (its `wording` says which)

Each puzzle is offered twice: in its canonical wording (`maze-1`, the question every checkpoint was trained on) and
in the paraphrase examples.json holds for it (`maze-1-paraphrased`: a wording training shows, a sentence shape it
never shows, or a word it never shows; model/sketchworld/examples.py), so a visitor sees how an answer holds up
when the question is put in other words. Both share the puzzle's pictures, answer and true sketches.

The true sketches of an example (oracle latents) are computed where every caller computes them,
`model.data.targets.true_sketches(model, [as_zebra(example)])` (app/reasoning.py, behind the page: model.data pulls in
the datasets library, a fifth of a second the page need not wait for): this module only reads the folder.
"""

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"
PARAPHRASED = "-paraphrased"  # the id suffix of a puzzle asked in its paraphrase
WORDING_LABELS = {"seen": "seen wording", "held-out-template": "held-out sentence",
                  "held-out-synonym": "held-out word"}  # fmt: skip


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
    # "template" (the canonical question), or the kind of paraphrase it is asked in (model/sketchworld/grammar.py)
    wording: str = "template"
    puzzle: str = ""  # the id of the puzzle whose pictures it shows (its own for the canonical wording)

    @property
    def has_sketches(self) -> bool:
        return bool(self.sketch_order)

    @property
    def label(self) -> str:
        wording = f"{WORDING_LABELS.get(self.wording, self.wording)} · " if self.wording != "template" else ""
        return f"{self.id} · {wording}{self.question[:70]}{'…' if len(self.question) > 70 else ''}"


def load_examples(folder: str | Path = EXAMPLES_DIR) -> dict[str, Example]:
    """Each puzzle in its canonical wording, then in its paraphrase when the record has one; {} when the folder has
    no examples.json (the app still works with uploads)."""
    folder = Path(folder)
    path = folder / "examples.json"
    if not path.is_file():
        return {}
    out = {}
    for record in json.loads(path.read_text(encoding="utf-8")):
        reasoning = tuple(str(folder / name) for name in record.get("reasoning_images", []))
        # The trace names its sketches by placeholder; an image may be drawn twice, so follow the trace's order.
        order = [int(k) - 1 for k in re.findall(r"\[reasoning_image_(\d+)\]", record.get("trace", ""))]
        example = Example(
            id=record["id"],
            family=record["family"],
            question=record["question"],
            answer=str(record["answer"]),
            choices=tuple(record.get("choices", [])),
            problem_paths=tuple(str(folder / name) for name in record["problem_images"]),
            reasoning_paths=reasoning,
            trace=record.get("trace", ""),
            sketch_order=tuple(i for i in order if 0 <= i < len(reasoning)),
            puzzle=record["id"],
        )
        out[example.id] = example
        if record.get("paraphrased_question"):
            wording = record.get("paraphrase_kind") or "paraphrase"
            reworded = replace(example, id=example.id + PARAPHRASED, wording=wording,
                               question=record["paraphrased_question"])  # fmt: skip
            out[reworded.id] = reworded
    return out


def true_sketch_images(example: Example) -> list[Image.Image]:
    """The true intermediate images in the order the trace draws them."""
    return [Image.open(example.reasoning_paths[i]).convert("RGB") for i in example.sketch_order]
