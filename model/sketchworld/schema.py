"""Zebra-CoT rows for sketch-world: the Instance type, its text format, and the Parquet splits.

An `Instance` is one generated puzzle with PIL images and cell grids. `build_instance` turns a family's plain steps
into the Zebra-CoT text format:

    Question:             "<image_start>[problem_image_1]<image_end> Can green reach red ...?"
    Text Reasoning Trace: "THOUGHT 1: Flood fill ... <image_start>[reasoning_image_1]<image_end>\nTHOUGHT 2: ..."

and `write_splits` / `load_split` store rows as one Parquet file per split through `datasets`, with the Zebra-CoT
columns (`Question`, `Text Reasoning Trace`, `Final Answer`, `problem_image_k`, `reasoning_image_k`) first and our
extra columns after them.

Simplified compared with Zebra-CoT: THOUGHTs are numbered from 1 and the last THOUGHT states the answer; a row has
at most `MAX_PROBLEM_IMAGES` / `MAX_REASONING_IMAGES` image columns (unused ones are None), fixed so that every split
and every family subset shares one schema.
"""

import hashlib
import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import datasets
import numpy as np
import pyarrow.parquet as pq
from datasets import Features, Image, List, Value
from PIL.Image import Image as PILImage
from tqdm import tqdm

from model.sketchworld import grammar
from model.sketchworld.grid import describe_grid, grid_key, png_bytes, render

# 2: shift replaces jigsaw; maze and connect sketches answer the question
# 3: the line after a sketch reads it by presence (maze, connect) or position (tilt asks for a piece's column)
# 4: sink takes tilt's place among the default families (tilt's puzzles are those of 3)
# 5: count's trace lists the cells one by one with a running number; every row carries a paraphrased question
# 6: paraphrases from a per-family grammar (held-out templates and synonyms, `paraphrase_kind`); 16x16 connect16
#    and maze16 among the default families (the 8x8 puzzles and their template questions are those of 5)
GENERATOR_VERSION = "6"
MAX_PROBLEM_IMAGES = 2
MAX_REASONING_IMAGES = 2
SPLIT_NAMES = ("train", "validation", "test")
DEFAULT_SPLITS = {"train": 0.8, "validation": 0.1, "test": 0.1}
MAX_ATTEMPTS_PER_ROW = 50  # redraws allowed per row when an instance duplicates an earlier one


def problem_placeholder(k: int) -> str:
    return f"<image_start>[problem_image_{k}]<image_end>"


def reasoning_placeholder(k: int) -> str:
    return f"<image_start>[reasoning_image_{k}]<image_end>"


@dataclass
class Step:
    text: str  # one short sentence
    sketch: np.ndarray | None = None  # (S, S) grid drawn right after the sentence, if any


@dataclass
class Instance:
    family: str
    question: str  # with problem-image placeholders
    trace: str  # THOUGHT lines with reasoning-image placeholders
    text_only_trace: str  # same THOUGHTs, each sketch replaced by describe_grid of its state
    answer: str
    choices: list[str]
    problem_grids: list[np.ndarray]
    reasoning_grids: list[np.ndarray]
    state: dict = field(default_factory=dict)  # family-specific underlying state (positions, directions, ...)
    question_fields: dict = field(default_factory=dict)  # what the family's wordings are filled with (grammar.py)

    def reworded(self, paraphrase: grammar.Paraphrase) -> str:
        """The question in another wording of its family's grammar (model/sketchworld/grammar.py), placeholders
        included."""
        return f"{self.placeholders} {grammar.wording(self.family, paraphrase, self.question_fields)}"

    @property
    def placeholders(self) -> str:
        return " ".join(problem_placeholder(k + 1) for k in range(len(self.problem_grids)))

    @property
    def problem_images(self) -> list[PILImage]:
        return [render(g) for g in self.problem_grids]

    @property
    def reasoning_images(self) -> list[PILImage]:
        return [render(g) for g in self.reasoning_grids]

    @property
    def problem_image_descriptions(self) -> list[str]:
        return [describe_grid(g) for g in self.problem_grids]

    @property
    def reasoning_image_descriptions(self) -> list[str]:
        return [describe_grid(g) for g in self.reasoning_grids]

    @property
    def num_sketches(self) -> int:
        return len(self.reasoning_grids)


def build_instance(family, problem_grids, fields, steps, answer, choices, state) -> Instance:
    """Number the steps as THOUGHTs, add placeholders, and append the final 'The answer is X.' THOUGHT. The question
    is the family's canonical wording filled with `fields` (model/sketchworld/grammar.py)."""
    assert answer in choices, (answer, choices)
    assert 1 <= len(problem_grids) <= MAX_PROBLEM_IMAGES
    placeholders = " ".join(problem_placeholder(k + 1) for k in range(len(problem_grids)))
    question = grammar.question(family, fields)
    lines, text_lines, sketches = [], [], []
    for i, step in enumerate(steps + [Step(f"The answer is {answer}.")]):
        line = text_line = f"THOUGHT {i + 1}: {step.text}"
        if step.sketch is not None:
            sketches.append(step.sketch.copy())
            line += " " + reasoning_placeholder(len(sketches))
            text_line += f" State: {describe_grid(step.sketch)}."
        lines.append(line)
        text_lines.append(text_line)
    assert len(sketches) <= MAX_REASONING_IMAGES
    return Instance(
        family=family,
        question=f"{placeholders} {question}",
        trace="\n".join(lines),
        text_only_trace="\n".join(text_lines),
        answer=answer,
        choices=list(choices),
        problem_grids=[g.copy() for g in problem_grids],
        reasoning_grids=sketches,
        state=state,
        question_fields=dict(fields),
    )


def instance_key(inst: Instance) -> str:
    """Identity for de-duplication: same pictures and same question means the same task."""
    h = hashlib.sha256(inst.question.encode())
    for g in inst.problem_grids:
        h.update(grid_key(g))
    return h.hexdigest()


def features() -> Features:
    cols = {"Question": Value("string"), "Text Reasoning Trace": Value("string"), "Final Answer": Value("string")}
    cols |= {f"problem_image_{k + 1}": Image() for k in range(MAX_PROBLEM_IMAGES)}
    cols |= {f"reasoning_image_{k + 1}": Image() for k in range(MAX_REASONING_IMAGES)}
    cols |= {
        "id": Value("string"),
        "family": Value("string"),
        "text_only_trace": Value("string"),
        "answer_choices": List(Value("string")),
        "problem_image_descriptions": List(Value("string")),
        "reasoning_image_descriptions": List(Value("string")),
        "num_sketches": Value("int64"),
        "paraphrased_question": Value("string"),
        "paraphrase_held_out": Value("bool"),
        "paraphrase_kind": Value("string"),
    }
    return Features(cols)


def instance_to_row(inst: Instance, row_id: str, paraphrase: grammar.Paraphrase | None = None) -> dict:
    """One Parquet row; `paraphrase` is the wording (model/sketchworld/grammar.py) of its `paraphrased_question`,
    None for a row without one."""
    # Images go in as PNG bytes we encoded ourselves, so the Parquet bytes never depend on datasets' encoder choices.
    row = {"Question": inst.question, "Text Reasoning Trace": inst.trace, "Final Answer": inst.answer}
    for prefix, images, limit in [
        ("problem_image", inst.problem_images, MAX_PROBLEM_IMAGES),
        ("reasoning_image", inst.reasoning_images, MAX_REASONING_IMAGES),
    ]:
        for k in range(limit):
            row[f"{prefix}_{k + 1}"] = {"bytes": png_bytes(images[k]), "path": None} if k < len(images) else None
    row |= {
        "id": row_id,
        "family": inst.family,
        "text_only_trace": inst.text_only_trace,
        "answer_choices": inst.choices,
        "problem_image_descriptions": inst.problem_image_descriptions,
        "reasoning_image_descriptions": inst.reasoning_image_descriptions,
        "num_sketches": inst.num_sketches,
        "paraphrased_question": None if paraphrase is None else inst.reworded(paraphrase),
        "paraphrase_held_out": None if paraphrase is None else paraphrase.held_out,
        "paraphrase_kind": None if paraphrase is None else paraphrase.kind,
    }
    return row


def split_counts(per_family: int, splits: dict[str, float]) -> dict[str, int]:
    """Largest-remainder rounding of per_family * fraction, so the counts always add up to per_family."""
    raw = {name: per_family * frac for name, frac in splits.items()}
    counts = {name: int(v) for name, v in raw.items()}
    by_remainder = sorted(splits, key=lambda name: (-(raw[name] - counts[name]), list(splits).index(name)))
    for name in by_remainder[: per_family - sum(counts.values())]:
        counts[name] += 1
    return counts


def write_splits(
    out_dir: str,
    generators: dict[str, Callable[[random.Random], Instance]],
    per_family: int,
    seed: int,
    splits: dict[str, float],
    progress: bool = False,
) -> dict:
    """Generate and write OUT/<split>.parquet plus OUT/sketchworld.json; returns the json record.

    Every row draws from its own `random.Random` seeded by (seed, split, family, row, attempt), so splits use
    different streams and a row does not depend on the rows before it; its paraphrased question (a wording other
    than the canonical one; held-out templates and synonyms only outside train: grammar.pick) from another, seeded
    by (seed, split, family, row).
    Evaluation splits are generated first and train skips anything already seen, which keeps test instances out of
    train.
    """
    os.makedirs(out_dir, exist_ok=True)
    order = [s for s in ("test", "validation", "train") if s in splits] + [s for s in splits if s not in SPLIT_NAMES]
    counts = split_counts(per_family, splits)
    seen: set[str] = set()
    record_counts: dict[str, dict[str, int]] = {}
    bar = tqdm(total=per_family * len(generators), desc="sketchworld", unit="inst", disable=not progress)
    bars_were_disabled = datasets.utils.are_progress_bars_disabled()
    datasets.utils.disable_progress_bars()  # datasets' own "Creating parquet" bars would interleave with ours
    try:
        for split in order:
            rows = []
            for family, gen in generators.items():
                for i in range(counts[split]):
                    inst = _fresh_instance(gen, seed, split, family, i, seen)
                    # the paraphrase has its own stream, so the puzzles are those of a generator without them
                    paraphrase = grammar.pick(family, random.Random(f"wording/{seed}/{split}/{family}/{i}"), split)
                    rows.append(instance_to_row(inst, f"{family}-{split}-{i:05d}", paraphrase))
                    bar.update(1)
            columns = {name: [row[name] for row in rows] for name in features()}
            datasets.Dataset.from_dict(columns, features=features()).to_parquet(
                os.path.join(out_dir, f"{split}.parquet")
            )
            record_counts[split] = {family: counts[split] for family in generators}
    finally:
        bar.close()
        if not bars_were_disabled:
            datasets.utils.enable_progress_bars()
    record = {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "per_family": per_family,
        "families": list(generators),
        "splits": {s: splits[s] for s in splits},
        "counts": {s: record_counts[s] for s in splits},
    }
    with open(os.path.join(out_dir, "sketchworld.json"), "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
        f.write("\n")
    return record


def _fresh_instance(gen, seed: int, split: str, family: str, i: int, seen: set[str]) -> Instance:
    for attempt in range(MAX_ATTEMPTS_PER_ROW):
        # str seeds are hashed with sha512 by random.Random, so they are stable across processes and platforms.
        inst = gen(random.Random(f"sketchworld/{seed}/{split}/{family}/{i}/{attempt}"))
        key = instance_key(inst)
        if key not in seen:
            seen.add(key)
            return inst
    raise RuntimeError(f"family {family!r}: {MAX_ATTEMPTS_PER_ROW} duplicate draws in a row for {split} row {i}")


def load_split(out_dir: str, split: str) -> datasets.Dataset:
    """Read OUT/<split>.parquet back as a datasets.Dataset (features restored from the file, no cache written)."""
    path = os.path.join(out_dir, f"{split}.parquet")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no split {split!r} in {out_dir!r}: {path} does not exist")
    return datasets.Dataset(datasets.table.InMemoryTable(pq.read_table(path)))
