"""Examples → token ids: the answer in one of four styles, the prompt + response layout, the answer marks.

    from model.data.encoding import encode_examples
    encoded, report = encode_examples(model, examples, styles={"interleaved": 0.8, "direct": 0.2}, seed=0)

`encode_example` lays out prompt + response as the model reads it: each sketch is ⟨START⟩ + K latent slots + ⟨END⟩,
labels are unshifted and -100 over the prompt and the slots. Styles: `interleaved` (the trace with its sketches),
`text-only` (every sketch written out in words), `direct` ("The answer is X."), `read-sketch` (no picture: one true
sketch, then its dense description — reading practice). `answer_mask` marks the tokens that carry the answer (the
line that reads a sketch or a written-out state, and the final answer), which the SFT loss can weigh up.
"""

import random
from collections import Counter
from dataclasses import dataclass, field, replace

from PIL.Image import Image as PILImage

from model.core.tokenizer import prompt_ids
from model.data.warmup import parse_description
from model.data.zebra import GAP, Example, Sketch, SkipReason, SkipReport, close_gaps

STYLES = ("interleaved", "text-only", "direct", "read-sketch")
READ_SKETCH_PROMPT = "Describe the sketch."


def response_segments(example: Example, style: str) -> list[str | Sketch]:
    """The answer in one style, before tokenization (the eos id is added by encode_example)."""
    if style == "interleaved":
        return list(example.segments)
    if style == "text-only":
        if example.text_only_trace:
            return [example.text_only_trace]
        return [close_gaps("".join(s if isinstance(s, str) else GAP for s in example.segments))]
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
    slot_labels: list[int] = field(default_factory=list)  # per latent slot: its cell's colour index (-100: unknown)


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


def cell_labels(example: Example, image_index: int, budget: int, colours: list[str] | None) -> list[int]:
    """The colour index of each of a sketch's K cells, from its dense description, when K is one slot per cell
    and the description parses; -100 for every slot otherwise (or for a colour outside `colours`)."""
    descriptions = example.reasoning_descriptions
    grid = parse_description(descriptions[image_index]) if colours and image_index < len(descriptions) else None
    if grid is None or len(grid) * len(grid[0]) != budget:
        return [-100] * budget
    index = {name: i for i, name in enumerate(colours)}
    return [index.get(name, -100) for row in grid for name in row]


def described_colours(examples: list[Example]) -> list[str]:
    """Every colour name the examples' sketch descriptions use, sorted: the drawing probe's classes."""
    names = set()
    for example in examples:
        for text in example.reasoning_descriptions:
            grid = parse_description(text) if text else None
            names.update(name for row in grid or [] for name in row)
    return sorted(names)


def encode_example(model, example: Example, style: str, max_length: int | None = None) -> EncodedExample | SkipReason:
    """Prompt + response token ids and labels; SkipReason.TOO_LONG when longer than max_length (never cut)."""
    tokenizer, budget = model.tokenizer, model.latent_budget
    if style == "read-sketch":  # no picture: the sketch is all there is to read
        example = replace(example, question=READ_SKETCH_PROMPT, problem_images=[], answer="")
    prompt = prompt_ids(tokenizer, example.question, len(example.problem_images), model.tokens_per_image)
    response, labels, sketch_images, marks, slot_labels = [], [], [], [], []
    after_sketch = False
    for part in response_segments(example, style):
        if isinstance(part, Sketch):
            response += [model.start_id] + [model.latent_id] * budget + [model.end_id]
            labels += [model.start_id] + [-100] * budget + [model.end_id]
            marks += [0] * (budget + 2)
            sketch_images.append(part.image_index)
            slot_labels += cell_labels(example, part.image_index, budget, model.config.cell_colours)
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
        slot_labels=slot_labels if model.config.cell_colours else [],
    )


def pick_style(example_id: str, styles: dict[str, float], seed: int) -> str:
    """A style drawn with the given weights from a stream seeded by (seed, id): independent of order and process."""
    draw = random.Random(f"style/{seed}/{example_id}").random() * sum(styles.values())
    for style, weight in styles.items():
        draw -= weight
        if draw < 0:
            return style
    return next(s for s, w in reversed(styles.items()) if w > 0)


def asked(example: Example, paraphrase_share: float, seed: int) -> Example:
    """The example as training asks it: in a seeded `paraphrase_share` of the examples that carry a paraphrase
    (sketch-world's `paraphrased_question`), with that wording instead of the template."""
    if not example.paraphrased_question or paraphrase_share <= 0:
        return example
    if random.Random(f"paraphrase/{seed}/{example.id}").random() >= paraphrase_share:
        return example
    return replace(example, question=example.paraphrased_question)


def encode_examples(
    model,
    examples: list[Example],
    styles: str | dict[str, float] = "interleaved",
    seed: int = 0,
    max_length=None,
    paraphrase_share: float = 0.0,
) -> tuple[list[EncodedExample], SkipReport]:
    """Encode every example in one style, or a seeded mix such as {"interleaved": 0.8, "text-only": 0.2}; a
    `paraphrase_share` of them asked in their paraphrased wording (`asked`)."""
    weights = {styles: 1.0} if isinstance(styles, str) else dict(styles)
    unknown = [s for s in weights if s not in STYLES]
    if unknown or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"styles must map {', '.join(STYLES)} to non-negative weights with a positive sum: {styles}")
    encoded, counts = [], Counter()
    for example in examples:
        style = pick_style(example.id, weights, seed)
        if style == "read-sketch" and not can_read_sketch(example):
            style = "interleaved"  # a family without sketches has nothing to read
        item = encode_example(model, asked(example, paraphrase_share, seed), style, max_length)
        if isinstance(item, SkipReason):
            counts[str(item)] += 1
        else:
            encoded.append(item)
    report = SkipReport(dict(counts), len(examples), len(encoded))
    report.warn(f"encode_examples (max_length={max_length})")
    return encoded, report
