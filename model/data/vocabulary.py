"""A checkpoint's training vocabulary (the words of the questions it was trained on) and the words of a new
question it never saw.

    words = training_vocabulary("data/sketchworld")               # sorted words of the train split's questions
    save_vocabulary(words, "runs/demo/final/model", "data/sketchworld")    # → training_vocabulary.json beside it
    unseen_words("Can the green box arrive at red?", load_vocabulary("runs/demo/final/model"))  # ["box", "arrive"]

or from the shell: `python -m model.data.vocabulary --data data/sketchworld --out CHECKPOINT_DIR` (and
`--question "…"` to list a question's unseen words against CHECKPOINT_DIR's file).

A from-scratch model cannot know a word it never read; a person who types one should be told (issue 40). The
vocabulary is every word of the split's `Question` and `paraphrased_question` columns (training shows a share of
rows in their paraphrase) and of stage 0's perception questions ("What colour is at row 3, column 5?", …, built
from the split's first rows), saved as `training_vocabulary.json` (`{"words": [...], "data": ..., "split": ...,
"rows": N}`) in the checkpoint folder. Words are lower-cased runs of letters of any script ("café"; an apostrophe
inside a word is kept: "don't"; a possessive "'s" is dropped: "picture's" → "picture"; hyphens split). Numbers (digits,
"3rd") are never reported: they are values, not words. The palette's colour names (model/sketchworld/grid.py) are
always known: stage 0 names every colour in its descriptions; a colour outside the palette ("pink") is reported.
"""

import argparse
import json
import re
import sys
from pathlib import Path

from model.core.atomic import write_text
from model.data.folders import load_rows
from model.data.warmup import warmup_examples
from model.data.zebra import drop_placeholders, load_examples
from model.sketchworld.grid import COLOR_NAMES

VOCABULARY_FILE = "training_vocabulary.json"
QUESTION_COLUMNS = ("Question", "paraphrased_question")
WARMUP_ROWS = 60  # rows whose stage-0 perception questions join the vocabulary (their words repeat row after row)
TOKEN = re.compile(r"\d+(?:st|nd|rd|th)?|[^\W\d_]+(?:'[^\W\d_]+)*")  # a number, or letters (any script)
NUMBER = re.compile(r"\d")


def question_words(text: str) -> list[str]:
    """The words of `text` in order, lower-cased, punctuation stripped, numbers left out (see the module doc)."""
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    words = []
    for token in TOKEN.findall(text):
        if NUMBER.match(token):
            continue
        words.append(token.removesuffix("'s"))
    return words


def training_vocabulary(data: str, split: str = "train") -> list[str]:
    """Sorted words of the split's questions and paraphrases and of stage 0's questions about its first rows."""
    rows = load_rows(data, split)
    words = set()
    for column in QUESTION_COLUMNS:
        if column in rows.column_names:
            for text in rows[column]:
                words.update(question_words(drop_placeholders(text or "")))
    examples, _ = load_examples(rows.select(range(min(WARMUP_ROWS, len(rows)))))
    for pair in warmup_examples(examples, questions_per_image=3, sketch_share=0.5):
        words.update(question_words(pair.question))
    return sorted(words)


def save_vocabulary(words: list[str], checkpoint: str, data: str = "", split: str = "train", rows: int = 0) -> Path:
    """Write CHECKPOINT/training_vocabulary.json (atomically); returns its path."""
    path = Path(checkpoint) / VOCABULARY_FILE
    record = {"words": sorted(set(words)), "data": str(data), "split": split, "rows": rows}
    write_text(path, json.dumps(record, indent=1) + "\n")
    return path


def load_vocabulary(checkpoint: str) -> set[str] | None:
    """The words of CHECKPOINT/training_vocabulary.json; None when the checkpoint has no such file."""
    path = Path(checkpoint) / VOCABULARY_FILE
    if not path.is_file():
        return None
    try:
        words = json.loads(path.read_text())["words"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a training vocabulary ({{'words': [...]}}): {err}") from err
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise ValueError(f"{path}: 'words' must be a list of strings")
    return set(words)


def unseen_words(question: str, vocabulary: set[str]) -> list[str]:
    """The words of `question` not in `vocabulary`, each once, in order of first appearance; colour names of the
    palette and numbers are never reported."""
    known = vocabulary | set(COLOR_NAMES)
    out = []
    for word in question_words(question):
        if word not in known and word not in out:
            out.append(word)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.data.vocabulary", description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="data folder whose split's questions make the vocabulary")
    parser.add_argument("--split", default="train")
    parser.add_argument("--out", required=True, help="checkpoint folder: its training_vocabulary.json")
    parser.add_argument("--question", help="print this question's words the vocabulary lacks")
    args = parser.parse_args(argv)
    try:
        if args.data:
            words = training_vocabulary(args.data, args.split)
            path = save_vocabulary(words, args.out, args.data, args.split, len(load_rows(args.data, args.split)))
            print(f"wrote {len(words)} words to {path}")
        if args.question is not None:
            vocabulary = load_vocabulary(args.out)
            if vocabulary is None:
                raise ValueError(f"{args.out} has no {VOCABULARY_FILE}; write one with --data")
            print(json.dumps(unseen_words(args.question, vocabulary)))
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
