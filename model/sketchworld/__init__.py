"""sketch-world: a generated task suite in the Zebra-CoT schema, drawn on 8x8 boards of 28-px cells (16x16 boards of
14-px cells for the big-board families), every picture 224 px.

    from model.sketchworld import FAMILIES, generate_instance, write_dataset, load_split
    inst = generate_instance("sink", random.Random(0))   # Instance with PIL images, trace, answer, grids
    write_dataset("data/sketchworld", per_family=1000, seed=0)
    ds = load_split("data/sketchworld", "train")

or from the shell: `python -m model.sketchworld --out data/sketchworld --per-family 1000 --seed 0`.

Families (sketches per trace): count (0), connect (1), maze (1), fold (1), shift (1, two problem images), tilt (2),
sink (2), and on 16x16 boards connect16 (1) and maze16 (1). `DEFAULT_FAMILIES` (all but tilt) is what the dataset,
the app's gallery and the audit use unless told otherwise. `EARLY_FAMILIES` (the v4 list, sink's place taken by
tilt, no big boards) are those the shipped demo learned first (stage 0 to its first GRPO, pipeline/demo.py); tilt
stays for `--families ...,tilt`. Questions are worded by a per-family grammar (model/sketchworld/grammar.py).
"""

import random
from collections.abc import Callable

from model.sketchworld import grammar
from model.sketchworld.families_logic import gen_count, gen_fold, gen_shift
from model.sketchworld.families_paths import gen_connect, gen_connect16, gen_maze, gen_maze16
from model.sketchworld.families_space import gen_sink, gen_tilt
from model.sketchworld.schema import DEFAULT_SPLITS, Instance, load_split, write_splits

FAMILIES: dict[str, Callable[[random.Random], Instance]] = {
    "count": gen_count,
    "connect": gen_connect,
    "maze": gen_maze,
    "fold": gen_fold,
    "shift": gen_shift,
    "tilt": gen_tilt,
    "sink": gen_sink,
    "connect16": gen_connect16,
    "maze16": gen_maze16,
}
# the big boards are default: the next campaign's demo and both baselines train on them (issues 39 and 40)
DEFAULT_FAMILIES = ["count", "connect", "maze", "fold", "shift", "sink", "connect16", "maze16"]
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
    """Representative lines from the default families (questions in training wordings, THOUGHTs, text-only
    states, descriptions) for a from-scratch tokenizer: the first puzzle of each family in wordings that use every
    training template and synonym (grammar.training_lines), the others in two drawn training wordings. Held-out
    templates and synonyms stay out, so their words are spelled from subwords, as a person's own words would be.
    (The demo shipped before version 5 of the generator keeps the tokenizer of its own folder.)"""
    lines = []
    for family in DEFAULT_FAMILIES:
        for i in range(num_per_family):
            inst = generate_instance(family, random.Random(f"corpus/{seed}/{family}/{i}"))
            lines.append(inst.question)
            if i == 0:
                lines.extend(grammar.training_lines(family, inst.question_fields))
            rng = random.Random(f"corpus-wording/{seed}/{family}/{i}")
            lines.extend(inst.reworded(grammar.pick(family, rng, "train")) for _ in range(2))
            lines.extend(inst.trace.split("\n"))
            lines.extend(line for line in inst.text_only_trace.split("\n") if "State:" in line)
            lines.extend(inst.problem_image_descriptions)
            lines.append(" ".join(inst.choices))
    return lines
