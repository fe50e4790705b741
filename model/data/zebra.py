"""Zebra-CoT rows → examples: parsing one row, loading a dataset with skip counts.

    from model.data.zebra import load_examples
    examples, report = load_examples(load_split("data/sketchworld", "train"))  # or any Zebra-CoT subset

`parse_row` reads one row of the Zebra-CoT schema (only `Question`, `Text Reasoning Trace`, `Final Answer` and the
`problem_image_k` / `reasoning_image_k` columns are required; our extra columns are used when present). The trace
becomes an ordered list of text strings and `Sketch` markers. Images are decoded here, by us, so a damaged one skips
its row (counted by reason) instead of stopping iteration. model/data/encoding.py turns examples into token ids.

Simplified: every problem image goes at the start of the prompt (as `prompt_ids` lays them out), wherever its
placeholder stood in the question; problem images the question never names are appended after the named ones. A
problem-image placeholder inside the trace is dropped from the text; a reasoning image named in the question skips the
row. Images are held decoded in the examples (~150 KB per 224-px RGB image): pass `limit` for a large download.
"""

import io
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from datasets import Image as ImageFeature
from PIL import Image
from PIL.Image import Image as PILImage

logger = logging.getLogger(__name__)

CORE_COLUMNS = ("Question", "Text Reasoning Trace", "Final Answer")
# Zebra-CoT writes "<image_start>[reasoning_image_1]<image_end>"; the bare "[reasoning_image_1]" is accepted too.
PLACEHOLDER = re.compile(r"(?:<image_start>\s*)?\[(problem|reasoning)_image_(\d+)\](?:\s*<image_end>)?")
GAP = "\x00"  # stands where a placeholder was while the surrounding whitespace is tidied


class SkipReason(StrEnum):
    EMPTY_QUESTION = "empty question"
    EMPTY_ANSWER = "empty answer"
    EMPTY_TRACE = "empty trace"
    NO_SUCH_COLUMN = "no such column"  # a placeholder names an image column the dataset does not have
    MISSING_IMAGE = "missing image"  # the named column exists but is None in this row
    UNREADABLE_IMAGE = "unreadable image"
    REASONING_IN_QUESTION = "reasoning image in question"  # it would show the sketch before it is drawn
    DUPLICATE_ID = "duplicate id"  # cached targets are keyed by id, so a second row with the same id is dropped
    TOO_LONG = "too long"


@dataclass(frozen=True)
class Sketch:
    image_index: int  # index into Example.reasoning_images


@dataclass
class Example:
    id: str
    question: str  # placeholders removed
    problem_images: list[PILImage]  # in order of appearance in the question
    segments: list[str | Sketch]  # the interleaved trace: text exactly as written, each placeholder a Sketch
    reasoning_images: list[PILImage]  # in order of first appearance in the trace
    answer: str  # the Final Answer
    family: str = ""
    choices: list[str] = field(default_factory=list)
    text_only_trace: str | None = None
    problem_descriptions: list[str] = field(default_factory=list)  # aligned with problem_images when present
    reasoning_descriptions: list[str] = field(default_factory=list)  # aligned with reasoning_images when present
    paraphrased_question: str = ""  # the same question in other words (sketch-world's column), placeholders removed
    paraphrase_held_out: bool = False  # its wording is never shown in training (model/sketchworld/grammar.py)
    paraphrase_kind: str = ""  # "seen", "held-out-template" or "held-out-synonym" (grammar.py); "" without one

    @property
    def num_sketches(self) -> int:
        return sum(isinstance(s, Sketch) for s in self.segments)


@dataclass
class SkipReport:
    counts: dict[str, int]  # reason → rows skipped for it
    total: int  # rows (or examples) looked at
    kept: int

    def __str__(self) -> str:
        skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(self.counts.items()))
        return f"kept {self.kept} of {self.total}" + (
            f"; skipped {self.total - self.kept}: {skipped}" if skipped else ""
        )

    def warn(self, what: str) -> None:
        if self.counts:
            logger.warning("%s: %s", what, self)


# ---- parsing ----------------------------------------------------------------------------------------------------
class _Unreadable(Exception):
    pass


def decode_image(value) -> PILImage | None:
    """A datasets image cell (PIL, {"bytes", "path"}, bytes or a path) → decoded PIL image; None when empty."""
    if value is None or isinstance(value, PILImage):
        return value
    data, path = None, None
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        if data is None and not path:
            return None
    elif isinstance(value, bytes | bytearray):
        data = bytes(value)
    elif isinstance(value, str | os.PathLike):
        path = value
    else:
        raise _Unreadable(type(value).__name__)
    try:
        image = Image.open(io.BytesIO(data) if data is not None else path)
        image.load()  # decode now: a truncated file must fail here, not in the middle of training
    except Exception as err:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ValueError, ...
        raise _Unreadable(str(err)) from err
    return image


def drop_placeholders(text: str) -> str:
    """Text with image placeholders removed; a lone space keeps apart words the placeholder stood between."""
    return close_gaps(PLACEHOLDER.sub(GAP, text))


def close_gaps(marked: str) -> str:
    def tidy(match: re.Match) -> str:
        before, after = marked[: match.start()], marked[match.end() :]
        inside_line = before and after and before[-1] != "\n" and after[0] != "\n"
        return " " if inside_line else ""

    return re.sub(rf"[ \t]*{GAP}(?:[ \t]*{GAP})*[ \t]*", tidy, marked)


def _image_column(row: dict, kind: str, number: int) -> PILImage | SkipReason:
    column = f"{kind}_image_{number}"
    if column not in row:
        return SkipReason.NO_SUCH_COLUMN
    try:
        image = decode_image(row[column])
    except _Unreadable:
        return SkipReason.UNREADABLE_IMAGE
    return SkipReason.MISSING_IMAGE if image is None else image


def _aligned(descriptions, numbers: list[int]) -> list[str]:
    if descriptions is None:
        return []
    return [descriptions[k - 1] if k - 1 < len(descriptions) and descriptions[k - 1] else "" for k in numbers]


def parse_row(row: dict, row_index: int | None = None) -> Example | SkipReason:
    """One Zebra-CoT row → Example, or the reason it cannot be used. Ids default to "row-<row_index>"."""
    question, trace = row.get("Question") or "", row.get("Text Reasoning Trace") or ""
    answer = str(row.get("Final Answer") or "").strip()
    if not drop_placeholders(question).strip():
        return SkipReason.EMPTY_QUESTION
    if not answer:
        return SkipReason.EMPTY_ANSWER
    if not trace.strip():
        return SkipReason.EMPTY_TRACE
    question_refs = [(m[1], int(m[2])) for m in PLACEHOLDER.finditer(question)]
    if any(kind == "reasoning" for kind, _ in question_refs):
        return SkipReason.REASONING_IN_QUESTION
    # A trace that points back at a problem image needs no sketch (the image is in the prompt): the mention goes.
    trace = close_gaps(PLACEHOLDER.sub(lambda m: GAP if m[1] == "problem" else m[0], trace))

    problem_numbers = list(dict.fromkeys(k for _, k in question_refs))
    unnamed = sorted(int(c.rsplit("_", 1)[1]) for c in row if re.fullmatch(r"problem_image_\d+", c))
    problem_numbers += [k for k in unnamed if k not in problem_numbers and row[f"problem_image_{k}"] is not None]
    problem_images = []
    for k in problem_numbers:
        image = _image_column(row, "problem", k)
        if isinstance(image, SkipReason):
            return image
        problem_images.append(image)

    reasoning_numbers: list[int] = []
    reasoning_images, segments, cursor = [], [], 0
    for match in PLACEHOLDER.finditer(trace):
        number = int(match[2])
        if number not in reasoning_numbers:
            image = _image_column(row, "reasoning", number)
            if isinstance(image, SkipReason):
                return image
            reasoning_numbers.append(number)
            reasoning_images.append(image)
        if match.start() > cursor:
            segments.append(trace[cursor : match.start()])
        segments.append(Sketch(reasoning_numbers.index(number)))
        cursor = match.end()
    if cursor < len(trace):
        segments.append(trace[cursor:])

    row_id = row.get("id")
    return Example(
        id=str(row_id) if row_id not in (None, "") else f"row-{row_index if row_index is not None else 0}",
        question=drop_placeholders(question).strip(),
        problem_images=problem_images,
        segments=segments,
        reasoning_images=reasoning_images,
        answer=answer,
        family=row.get("family") or "",
        choices=list(row.get("answer_choices") or []),
        text_only_trace=row.get("text_only_trace") or None,
        problem_descriptions=_aligned(row.get("problem_image_descriptions"), problem_numbers),
        reasoning_descriptions=_aligned(row.get("reasoning_image_descriptions"), reasoning_numbers),
        paraphrased_question=drop_placeholders(row.get("paraphrased_question") or "").strip(),
        paraphrase_held_out=bool(row.get("paraphrase_held_out")),
        paraphrase_kind=paraphrase_kind(row),
    )


def paraphrase_kind(row: dict) -> str:
    """The row's `paraphrase_kind`; for sketch-world version 5 (no such column) "held-out-template" for a held-out
    wording (v5 held out whole wordings) and "seen" for the others; "" for a row without a paraphrase."""
    if not row.get("paraphrased_question"):
        return ""
    return row.get("paraphrase_kind") or ("held-out-template" if row.get("paraphrase_held_out") else "seen")


def _undecoded(dataset):
    """The same dataset with every Image column set to decode=False, so bad bytes reach parse_row undecoded."""
    features = getattr(dataset, "features", None) or {}
    for name, feature in features.items():
        if isinstance(feature, ImageFeature) and feature.decode:
            dataset = dataset.cast_column(name, ImageFeature(decode=False))
    return dataset


def load_examples(dataset, limit: int | None = None) -> tuple[list[Example], SkipReport]:
    """Parse a Zebra-CoT dataset (datasets.Dataset / IterableDataset, or a list of row dicts), reading at most
    `limit` rows. Unusable rows are skipped, counted by reason, and logged as one warning."""
    columns = getattr(dataset, "column_names", None)
    if columns is not None and not set(CORE_COLUMNS) <= set(columns):
        missing = [c for c in CORE_COLUMNS if c not in columns]
        raise ValueError(f"dataset lacks the Zebra-CoT columns {missing}; it has {list(columns)}")
    examples, counts, seen, total = [], Counter(), set(), 0
    for index, row in enumerate(_undecoded(dataset)):
        if limit is not None and index >= limit:
            break
        total += 1
        example = parse_row(row, index)
        if not isinstance(example, SkipReason) and example.id in seen:
            example = SkipReason.DUPLICATE_ID
        if isinstance(example, SkipReason):
            counts[str(example)] += 1
            continue
        seen.add(example.id)
        examples.append(example)
    report = SkipReport(dict(counts), total, len(examples))
    report.warn("load_examples")
    return examples, report
