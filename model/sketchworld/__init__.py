"""sketch-world: a generated task suite in the Zebra-CoT schema, drawn on an 8x8 grid of 28-px cells.

    from model.sketchworld import FAMILIES, generate_instance, write_dataset, load_split
    inst = generate_instance("sink", random.Random(0))   # Instance with PIL images, trace, answer, grids
    write_dataset("data/sketchworld", per_family=1000, seed=0)
    ds = load_split("data/sketchworld", "train")

or from the shell: `python -m model.sketchworld --out data/sketchworld --per-family 1000 --seed 0`.

Families (sketches per trace): count (0), connect (1), maze (1), fold (1), shift (1, two problem images), tilt (2),
sink (2). `DEFAULT_FAMILIES` (all but tilt) is what the dataset, the app's gallery, the latent decoder and the audit
use unless told otherwise. `EARLY_FAMILIES` (sink's place taken by tilt) are those the shipped demo learned first
(stage 0 to its first GRPO, pipeline/demo.py) and its tokenizer's corpus; tilt stays for `--families ...,tilt`.
"""

import random
from collections.abc import Callable

from model.sketchworld import wording
from model.sketchworld.families_logic import gen_count, gen_fold, gen_shift
from model.sketchworld.families_space import gen_connect, gen_maze, gen_sink, gen_tilt
from model.sketchworld.schema import DEFAULT_SPLITS, Instance, load_split, write_splits

FAMILIES: dict[str, Callable[[random.Random], Instance]] = {
    "count": gen_count,
    "connect": gen_connect,
    "maze": gen_maze,
    "fold": gen_fold,
    "shift": gen_shift,
    "tilt": gen_tilt,
    "sink": gen_sink,
}
DEFAULT_FAMILIES = ["count", "connect", "maze", "fold", "shift", "sink"]
EARLY_FAMILIES = ["count", "connect", "maze", "fold", "shift", "tilt"]

__all__ = [
    "DEFAULT_FAMILIES",
    "EARLY_FAMILIES",
    "FAMILIES",
    "Instance",
    "corpus_text",
    "generate_instance",
    "load_split",
    "write_dataset",
]


def generate_instance(family: str, rng: random.Random) -> Instance:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; valid families: {', '.join(FAMILIES)}")
    return FAMILIES[family](rng)


def write_dataset(
    out_dir: str,
    per_family: int,
    seed: int,
    families: list[str] | None = None,
    splits: dict[str, float] | None = None,
    progress: bool = False,
) -> dict:
    """Write OUT/{train,validation,test}.parquet and OUT/sketchworld.json; `per_family` is split by `splits`."""
    names = list(DEFAULT_FAMILIES) if families is None else list(families)
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown family {', '.join(unknown)}; valid families: {', '.join(FAMILIES)}")
    if per_family <= 0:
        raise ValueError(f"per_family must be positive, got {per_family}")
    generators = {n: FAMILIES[n] for n in names}
    return write_splits(out_dir, generators, per_family, seed, dict(splits or DEFAULT_SPLITS), progress=progress)


def corpus_text(num_per_family: int = 10, seed: int = 0) -> list[str]:
    """Representative lines from the default families (questions in every wording training may show, THOUGHTs,
    text-only states, descriptions) for a from-scratch tokenizer. Held-out wordings stay out, so their words are
    spelled from subwords, as a person's own words would be. (The demo shipped before version 5 of the generator
    keeps the tokenizer of its own folder, trained on the early families' template questions.)"""
    lines = []
    for family in DEFAULT_FAMILIES:
        for i in range(num_per_family):
            inst = generate_instance(family, random.Random(f"corpus/{seed}/{family}/{i}"))
            lines.append(inst.question)
            lines.extend(inst.reworded(k) for k in wording.paraphrase_indices(family, "train"))
            lines.extend(inst.trace.split("\n"))
            lines.extend(line for line in inst.text_only_trace.split("\n") if "State:" in line)
            lines.extend(inst.problem_image_descriptions)
            lines.append(" ".join(inst.choices))
    return lines
