"""How long sketch-world rows are in a checkpoint's tokens, per family: do they fit training's `max_length`?

    python -m model.evaluation.row_lengths --checkpoint assets/checkpoints/demo --per-family 50
    python -m model.evaluation.row_lengths --checkpoint demo     # the demo preset: a tokenizer of today's corpus

Writes `--per-family` puzzles of each family (`write_dataset` with `--seed`, one train split, into a temporary
folder), loads them as training does, and prints a Markdown table of median and largest lengths: the canonical
question, its paraphrase, the interleaved trace (each sketch K + 2 positions), the text-only trace and one picture's
dense description, all as text only; then whole encoded rows exactly as `model.data.encoding.encode_example` builds
them (prompt with its image tokens + response + eos): `interleaved`, `text-only`, `direct` and stage 0's describe
pair ("Describe the image." → the description). The last column counts the rows of each kind over `--max-length`,
which training skips.
A preset name builds a random-weight model whose tokenizer is trained on the current sketch-world corpus (what a
from-scratch stage 0 starts from); a checkpoint folder keeps the tokenizer it was trained with.
"""

import argparse
import sys
import tempfile

import numpy as np

from model.core.checkpoint import CheckpointError, load_model
from model.data.encoding import encode_example
from model.data.warmup import DESCRIBE_PROMPT, warmup_examples
from model.data.zebra import Example, Sketch, load_examples
from model.sketchworld import DEFAULT_FAMILIES, FAMILIES, load_split, write_dataset

TEXTS = ("question", "paraphrase", "interleaved trace", "text-only trace", "description")
ROWS = ("interleaved", "text-only", "direct", "describe")


def text_lengths(model, example: Example) -> dict[str, int]:
    """Token counts of an example's texts (no prompt, no eos); a sketch counts K + 2 positions."""

    def count(text: str) -> int:
        return len(model.tokenizer(text, add_special_tokens=False)["input_ids"])

    trace = sum(model.latent_budget + 2 if isinstance(s, Sketch) else count(s) for s in example.segments)
    return {
        "question": count(example.question),
        "paraphrase": count(example.paraphrased_question),
        "interleaved trace": trace,
        "text-only trace": count(example.text_only_trace or ""),
        "description": count(example.problem_descriptions[0]) if example.problem_descriptions else 0,
    }


def row_lengths(model, example: Example) -> dict[str, int]:
    """Whole encoded rows (prompt + response + eos) in each style, and the describe pair of its first picture."""
    out = {style: len(encode_example(model, example, style).input_ids) for style in ("interleaved", "text-only",
                                                                                     "direct")}  # fmt: skip
    describe = [e for e in warmup_examples([example], questions_per_image=0) if e.question == DESCRIBE_PROMPT]
    out["describe"] = len(encode_example(model, describe[0], "interleaved").input_ids)
    return out


def measure(model, families: list[str], per_family: int, seed: int) -> dict[str, list[dict[str, int]]]:
    """family → one dict of text and row lengths per generated puzzle."""
    with tempfile.TemporaryDirectory() as folder:
        write_dataset(folder, per_family, seed, families, splits={"train": 1.0})
        examples, _ = load_examples(load_split(folder, "train"))
    out: dict[str, list[dict[str, int]]] = {family: [] for family in families}
    for example in examples:
        out[example.family].append(text_lengths(model, example) | row_lengths(model, example))
    return out


def table(lengths: dict[str, list[dict[str, int]]], max_length: int) -> str:
    """Markdown: per family, median / largest of each length, and the rows over max_length per kind."""
    head = [f"{k} (tokens)" for k in TEXTS] + [f"row: {k}" for k in ROWS] + [f"rows over {max_length}"]
    lines = ["| family | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    for family, items in lengths.items():
        cells = []
        for key in TEXTS + ROWS:
            values = np.array([item[key] for item in items])
            cells.append(f"{int(np.median(values))} / {values.max()}")
        over = [f"{k} {sum(item[k] > max_length for item in items)}" for k in ROWS]
        over = [o for o in over if not o.endswith(" 0")]
        lines.append(f"| {family} | " + " | ".join(cells) + f" | {', '.join(over) or 'none'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.evaluation.row_lengths", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="assets/checkpoints/demo", help="checkpoint folder or preset name")
    parser.add_argument("--families", default=",".join(DEFAULT_FAMILIES), help=f"of {', '.join(FAMILIES)}")
    parser.add_argument("--per-family", type=int, default=50, help="puzzles measured per family")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-length", type=int, default=512, help="training's max_length, to count rows over")
    args = parser.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or args.per_family < 1:
        print(f"error: need known families and --per-family >= 1; got {unknown or args.per_family}", file=sys.stderr)
        return 2
    try:
        model = load_model(args.checkpoint).eval()
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.checkpoint}: K = {model.latent_budget}, {model.tokens_per_image} image tokens a picture, "
          f"vocabulary {len(model.tokenizer)}; median / largest over {args.per_family} puzzles a family")  # fmt: skip
    print(table(measure(model, families, args.per_family, args.seed), args.max_length))
    return 0


if __name__ == "__main__":
    sys.exit(main())
