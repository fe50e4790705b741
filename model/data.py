"""Zebra-CoT rows → SFT batches: parsing, answer targets in three styles, cached visual targets, collation, warm-up.

    from model.data import load_examples, encode_examples, precompute_visuals, fit_stats, SFTDataset, collate
    examples, report = load_examples(load_split("data/sketchworld", "train"))  # or any Zebra-CoT subset
    encoded, _ = encode_examples(model, examples, styles={"interleaved": 0.8, "text-only": 0.2}, seed=0)
    cache = precompute_visuals(model, examples)  # frozen encoder: every image once, under no_grad
    fit_stats(model, cache)
    loader = DataLoader(SFTDataset(encoded, cache), batch_size=8, collate_fn=partial(collate, pad_id=pad_id))
    loss = model(**next(iter(loader))).loss

How. `parse_row` reads one row of the Zebra-CoT schema (only `Question`, `Text Reasoning Trace`, `Final Answer` and
the `problem_image_k` / `reasoning_image_k` columns are required; our extra columns are used when present). The trace
becomes an ordered list of text strings and `Sketch` markers. `encode_example` lays out prompt + response as the model
reads it: each sketch is ⟨START⟩ + K latent slots + ⟨END⟩, labels are unshifted and -100 over the prompt and the slots.
Images are decoded here, by us, so a damaged one skips its row (counted by reason) instead of stopping iteration.
`precompute_visuals` stores the frozen encoder's outputs in float16: half of float32's memory (demo preset: 32 KB per
problem image, 16 KB per sketch target; Qwen2.5-VL-7B at 448 px: 1.8 MB and 229 KB), and the rounding (measured under
5e-4 of the largest value) is far below the noise the diffusion head is trained with.

Simplified: every problem image goes at the start of the prompt (as `prompt_ids` lays them out), wherever its
placeholder stood in the question; problem images the question never names are appended after the named ones. A
problem-image placeholder inside the trace is dropped from the text; a reasoning image named in the question skips the
row. Images are held decoded in the examples (~150 KB per 224-px RGB image): pass `limit` for a large download.
"""

import io
import logging
import os
import random
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from enum import StrEnum

import torch
from datasets import Image as ImageFeature
from PIL import Image
from PIL.Image import Image as PILImage
from tqdm import tqdm

from model import vision
from model.tokenizer import prompt_ids

logger = logging.getLogger(__name__)

STYLES = ("interleaved", "text-only", "direct", "read-sketch")
READ_SKETCH_PROMPT = "Describe the sketch."
CORE_COLUMNS = ("Question", "Text Reasoning Trace", "Final Answer")
# Zebra-CoT writes "<image_start>[reasoning_image_1]<image_end>"; the bare "[reasoning_image_1]" is accepted too.
PLACEHOLDER = re.compile(r"(?:<image_start>\s*)?\[(problem|reasoning)_image_(\d+)\](?:\s*<image_end>)?")
_GAP = "\x00"  # stands where a placeholder was while the surrounding whitespace is tidied


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
    return _close_gaps(PLACEHOLDER.sub(_GAP, text))


def _close_gaps(marked: str) -> str:
    def tidy(match: re.Match) -> str:
        before, after = marked[: match.start()], marked[match.end() :]
        inside_line = before and after and before[-1] != "\n" and after[0] != "\n"
        return " " if inside_line else ""

    return re.sub(rf"[ \t]*{_GAP}(?:[ \t]*{_GAP})*[ \t]*", tidy, marked)


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
    trace = _close_gaps(PLACEHOLDER.sub(lambda m: _GAP if m[1] == "problem" else m[0], trace))

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
    )


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


# ---- answer targets ---------------------------------------------------------------------------------------------
def response_segments(example: Example, style: str) -> list[str | Sketch]:
    """The answer in one style, before tokenization (the eos id is added by encode_example)."""
    if style == "interleaved":
        return list(example.segments)
    if style == "text-only":
        if example.text_only_trace:
            return [example.text_only_trace]
        return [_close_gaps("".join(s if isinstance(s, str) else _GAP for s in example.segments))]
    if style == "direct":
        return [f"The answer is {example.answer}."]
    if style == "read-sketch":  # one of the example's true sketches, then its dense description
        index = read_sketch_index(example)
        return [Sketch(index), "\n" + example.reasoning_descriptions[index]]
    raise ValueError(f"unknown answer style {style!r}; valid styles: {', '.join(STYLES)}")


def read_sketch_index(example: Example) -> int:
    """The reasoning image a read-sketch answer describes: a seeded choice among the described ones."""
    described = [i for i, d in enumerate(example.reasoning_descriptions) if d]
    return random.Random(f"read-sketch/{example.id}").choice(described)


def can_read_sketch(example: Example) -> bool:
    return any(example.reasoning_descriptions) and bool(example.reasoning_images)


@dataclass
class EncodedExample:
    id: str
    style: str
    input_ids: list[int]  # prompt + response
    labels: list[int]  # unshifted; -100 over the prompt and the latent slots
    prompt_length: int
    latent_budget: int  # K latent slots per sketch
    sketch_images: list[int]  # the reasoning image (index into Example.reasoning_images) of each sketch, in order
    problem_images: list[PILImage]  # for visual="pixels"; the cache is keyed by (id, index) instead
    answer_mask: list[int] = field(default_factory=list)  # 1 on tokens that carry the answer (see answer_spans)
    reasoning_images: list[PILImage] = field(default_factory=list)  # for visual="pixels": sketches from the encoder


def answer_spans(text: str, after_sketch: bool, answer: str) -> list[tuple[int, int]]:
    """Character spans of `text` (one text piece of a response) that carry the answer: the line right after a
    sketch (where the sketch is read: "There are 3 purple cells."), the line right after a state written out in
    words (text-only traces: "… State: row 1: … .\nTHOUGHT 2: There are 3 purple cells."), and the X of the final
    "The answer is X."."""
    spans = []
    if after_sketch:
        start = len(text) - len(text.lstrip("\n"))
        end = text.find("\n", start)
        spans.append((start, len(text) if end < 0 else end))
    lines, offset = text.split("\n"), 0
    for line, following in zip(lines, lines[1:]):
        offset += len(line) + 1
        if " State: " in line:  # the next line, up to its own state if it has one
            cut = following.find(" State: ")
            spans.append((offset, offset + (len(following) if cut < 0 else cut)))
    cut = text.lower().rfind("answer is")
    if cut >= 0 and answer:
        found = text.find(answer, cut)
        if found >= 0:
            spans.append((found, found + len(answer)))
    return spans


def _encode_marked(tokenizer, text: str, spans: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Token ids of `text` and a 0/1 mark per token: 1 when the token overlaps one of the character spans."""
    enc = tokenizer(text, add_special_tokens=False, split_special_tokens=True, return_offsets_mapping=True)
    marks = [int(any(a < e and s < b for s, e in spans)) for a, b in enc["offset_mapping"]]
    return enc["input_ids"], marks


def encode_example(model, example: Example, style: str, max_length: int | None = None) -> EncodedExample | SkipReason:
    """Prompt + response token ids and labels; SkipReason.TOO_LONG when longer than max_length (never cut)."""
    tokenizer, budget = model.tokenizer, model.latent_budget
    if style == "read-sketch":  # no picture: the sketch is all there is to read
        example = replace(example, question=READ_SKETCH_PROMPT, problem_images=[], answer="")
    prompt = prompt_ids(tokenizer, example.question, len(example.problem_images), model.tokens_per_image)
    response, labels, sketch_images, marks = [], [], [], []
    after_sketch = False
    for part in response_segments(example, style):
        if isinstance(part, Sketch):
            response += [model.start_id] + [model.latent_id] * budget + [model.end_id]
            labels += [model.start_id] + [-100] * budget + [model.end_id]
            marks += [0] * (budget + 2)
            sketch_images.append(part.image_index)
            after_sketch = style != "read-sketch"  # a description is auxiliary reading, not the answer
        elif part:
            # each text piece on its own: decoding them in a row gives the text
            ids, part_marks = _encode_marked(tokenizer, part, answer_spans(part, after_sketch, example.answer))
            response += ids
            labels += ids
            marks += part_marks
            after_sketch = False
    response.append(model.eos_id)
    labels.append(model.eos_id)
    marks.append(0)
    if max_length is not None and len(prompt) + len(response) > max_length:
        return SkipReason.TOO_LONG
    return EncodedExample(
        id=example.id,
        style=style,
        input_ids=prompt + response,
        labels=[-100] * len(prompt) + labels,
        prompt_length=len(prompt),
        latent_budget=budget,
        sketch_images=sketch_images,
        problem_images=list(example.problem_images),
        answer_mask=[0] * len(prompt) + marks,
        reasoning_images=list(example.reasoning_images),
    )


def pick_style(example_id: str, styles: dict[str, float], seed: int) -> str:
    """A style drawn with the given weights from a stream seeded by (seed, id): independent of order and process."""
    draw = random.Random(f"style/{seed}/{example_id}").random() * sum(styles.values())
    for style, weight in styles.items():
        draw -= weight
        if draw < 0:
            return style
    return next(s for s, w in reversed(styles.items()) if w > 0)


def encode_examples(
    model, examples: list[Example], styles: str | dict[str, float] = "interleaved", seed: int = 0, max_length=None
) -> tuple[list[EncodedExample], SkipReport]:
    """Encode every example in one style, or a seeded mix such as {"interleaved": 0.8, "text-only": 0.2}."""
    weights = {styles: 1.0} if isinstance(styles, str) else dict(styles)
    unknown = [s for s in weights if s not in STYLES]
    if unknown or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"styles must map {', '.join(STYLES)} to non-negative weights with a positive sum: {styles}")
    encoded, counts = [], Counter()
    for example in examples:
        style = pick_style(example.id, weights, seed)
        if style == "read-sketch" and not can_read_sketch(example):
            style = "interleaved"  # a family without sketches has nothing to read
        item = encode_example(model, example, style, max_length)
        if isinstance(item, SkipReason):
            counts[str(item)] += 1
        else:
            encoded.append(item)
    report = SkipReport(dict(counts), len(examples), len(encoded))
    report.warn(f"encode_examples (max_length={max_length})")
    return encoded, report


# ---- cached visual targets --------------------------------------------------------------------------------------
@dataclass
class VisualCache:
    """Frozen-encoder outputs keyed by (example id, image index), stacked into one tensor per kind."""

    latent_budget: int  # K the sketch targets were pooled to
    problem_embeds: torch.Tensor  # (num_problem_images, G·G, D) merged image tokens, raster order
    problem_grid: torch.Tensor  # (num_problem_images, 3) image_grid_thw of each, for the 3-D rotary positions
    sketch_latents: torch.Tensor  # (num_reasoning_images, K, D) pooled self-reconstruction targets
    problem_index: dict[tuple[str, int], int]  # (id, index into Example.problem_images) → row above
    sketch_index: dict[tuple[str, int], int]  # (id, index into Example.reasoning_images) → row above

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.problem_embeds, self.problem_grid, self.sketch_latents))


def _encode_in_batches(images: list, batch_size: int, encode, dtype: torch.dtype, bar) -> torch.Tensor | None:
    """Run `encode` over batches of images into one preallocated CPU tensor (no second copy from torch.cat)."""
    out = None
    for start in range(0, len(images), batch_size):
        chunk = encode(images[start : start + batch_size])
        stored = chunk.to("cpu", dtype)
        if not torch.isfinite(stored).all() and torch.isfinite(chunk).all():
            raise ValueError(f"encoder outputs reach {chunk.abs().max().item():.3g}, beyond {dtype}: use float32")
        if out is None:
            out = torch.empty((len(images), *stored.shape[1:]), dtype=dtype)
        out[start : start + len(stored)] = stored
        bar.update(len(stored))
    return out


@torch.no_grad()
def precompute_visuals(
    model,
    examples: list[Example],
    latent_budget: int | None = None,
    batch_size: int = 32,
    progress: bool = True,
    dtype: torch.dtype = torch.float16,
) -> VisualCache:
    """Every problem image → encode_images (G·G, D); every reasoning image → sketch_targets (K, D); stored on CPU."""
    budget = latent_budget or model.latent_budget
    ids = [e.id for e in examples]
    if len(set(ids)) != len(ids):
        repeated = sorted(k for k, n in Counter(ids).items() if n > 1)
        raise ValueError(f"example ids must be unique to key the cache; repeated: {repeated[:5]}")
    problem_keys = [(e.id, i) for e in examples for i in range(len(e.problem_images))]
    sketch_keys = [(e.id, i) for e in examples for i in range(len(e.reasoning_images))]
    problem_images = [image for e in examples for image in e.problem_images]
    sketch_images = [image for e in examples for image in e.reasoning_images]
    dim, tokens = model.config.hidden_size, model.tokens_per_image
    grids = []

    def encode_problem(images):
        pixel_values, grid = model.pixels(images)
        grids.append(grid.cpu())
        return model.encode_images(pixel_values, grid)  # (N, G·G, D)

    bar = tqdm(total=len(problem_images) + len(sketch_images), desc="visual targets", unit="img", disable=not progress)
    with bar:
        problem = _encode_in_batches(problem_images, batch_size, encode_problem, dtype, bar)
        sketch = _encode_in_batches(sketch_images, batch_size, lambda b: model.sketch_targets(b, budget), dtype, bar)
    return VisualCache(
        latent_budget=budget,
        problem_embeds=problem if problem is not None else torch.zeros(0, tokens, dim, dtype=dtype),
        problem_grid=torch.cat(grids) if grids else torch.zeros(0, 3, dtype=torch.long),
        sketch_latents=sketch if sketch is not None else torch.zeros(0, budget, dim, dtype=dtype),
        problem_index={key: row for row, key in enumerate(problem_keys)},
        sketch_index={key: row for row, key in enumerate(sketch_keys)},
    )


def fit_stats(model, cache: VisualCache, max_vectors: int = 262_144, seed: int = 0) -> None:
    """model.fit_latent_stats on the cached sketch targets (a seeded sample of max_vectors rows when more)."""
    flat = cache.sketch_latents.flatten(0, 1)  # (num_reasoning_images·K, D)
    if len(flat) < 2:
        raise ValueError(f"need at least 2 cached sketch target vectors to fit statistics, the cache has {len(flat)}")
    if len(flat) > max_vectors:  # per-dimension mean and std settle long before this; saves a float32 copy of all
        flat = flat[torch.randperm(len(flat), generator=torch.Generator().manual_seed(seed))[:max_vectors]]
    model.fit_latent_stats(flat.to(model.device, torch.float32))


# ---- dataset and batches ----------------------------------------------------------------------------------------
class SFTDataset(torch.utils.data.Dataset):
    """Encoded examples with their visual inputs: cached encoder outputs (frozen encoder) or pixels (trained one).

    visual="cached": image_embeds + image_grid_thw from the cache, latents from the cache. visual="pixels":
    pixel_values + image_grid_thw made from the PIL images with `image_processor` at `image_size`, and the sketches'
    pictures as sketch_pixel_values + sketch_image_grid_thw, so the model computes their latents with the encoder it
    is training (stage 0).
    """

    def __init__(
        self,
        encoded: list[EncodedExample],
        cache: VisualCache | None = None,
        visual: str = "cached",
        image_processor=None,
        image_size: int | None = None,
    ):
        if visual not in ("cached", "pixels"):
            raise ValueError(f"visual must be 'cached' or 'pixels', got {visual!r}")
        if visual == "pixels" and (image_processor is None or image_size is None):
            raise ValueError("visual='pixels' needs image_processor and image_size (model.config.image_size)")
        self.encoded, self.cache, self.visual = encoded, cache, visual
        self.image_processor, self.image_size = image_processor, image_size
        for e in encoded:
            needs = [("sketch", (e.id, i)) for i in e.sketch_images] if visual == "cached" else []
            if visual == "cached":
                needs += [("problem", (e.id, i)) for i in range(len(e.problem_images))]
            if needs and cache is None:
                raise ValueError(f"example {e.id!r} needs cached {needs[0][0]} targets but no cache was given")
            for kind, key in needs:
                if key not in (cache.sketch_index if kind == "sketch" else cache.problem_index):
                    raise ValueError(f"the cache has no {kind} target for example {key[0]!r}, image {key[1]}")
            if e.sketch_images and visual == "cached" and cache.latent_budget != e.latent_budget:
                raise ValueError(
                    f"example {e.id!r} has {e.latent_budget} latent slots per sketch but the cache holds "
                    f"K={cache.latent_budget} targets"
                )

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, index: int) -> dict:
        e = self.encoded[index]
        item = {"input_ids": torch.tensor(e.input_ids), "labels": torch.tensor(e.labels)}
        if e.answer_mask:
            item["answer_mask"] = torch.tensor(e.answer_mask)
        if e.sketch_images and self.visual == "cached":
            rows = [self.cache.sketch_index[(e.id, i)] for i in e.sketch_images]
            item["latents"] = self.cache.sketch_latents[rows].flatten(0, 1).float()  # (m·K, D)
        elif e.sketch_images:
            item["sketch_pixel_values"], item["sketch_image_grid_thw"] = vision.to_pixels(
                [e.reasoning_images[i] for i in e.sketch_images], self.image_processor, self.image_size
            )
        if e.problem_images and self.visual == "cached":
            rows = [self.cache.problem_index[(e.id, i)] for i in range(len(e.problem_images))]
            item["image_embeds"] = self.cache.problem_embeds[rows].flatten(0, 1).float()  # (n·G·G, D)
            item["image_grid_thw"] = self.cache.problem_grid[rows]
        elif e.problem_images:
            item["pixel_values"], item["image_grid_thw"] = vision.to_pixels(
                e.problem_images, self.image_processor, self.image_size
            )
        return item


def collate(batch: list[dict], pad_id: int) -> dict:
    """Right-pad to the longest row; latents and image features concatenated in row-major order, as forward wants.

    Tensors stay on the CPU in float32; cast pixel_values to the model's dtype on a half-precision model.
    """
    length = max(len(item["input_ids"]) for item in batch)
    input_ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), length), -100, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), length), dtype=torch.long)
    answer_mask = torch.zeros((len(batch), length), dtype=torch.long)
    for row, item in enumerate(batch):
        n = len(item["input_ids"])
        input_ids[row, :n], labels[row, :n], attention_mask[row, :n] = item["input_ids"], item["labels"], 1
        if "answer_mask" in item:
            answer_mask[row, :n] = item["answer_mask"]
    out = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, "answer_mask": answer_mask}
    for key in (
        "latents",
        "image_embeds",
        "pixel_values",
        "image_grid_thw",
        "sketch_pixel_values",
        "sketch_image_grid_thw",
    ):
        parts = [item[key] for item in batch if key in item]
        out[key] = torch.cat(parts) if parts else None
    return out
