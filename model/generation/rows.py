"""One row of a generation batch: its small state between decode steps, and how what it writes becomes its Trace.

    row = RowState(generator, forced=deque(prefix_ids))
    yield from write_token(model, b, row, token)      # TraceEvents: text, sketch_started, sketch_done, finished
    yield from finish(model.tokenizer, b, row, Trace(question, mode, seed=seed), truncated=True, clock=clock)

As in nanochat's engine, each row carries only what it needs to go on: its random generator, the tokens it must
write next, how many positions it has written, its finished segments, the text span and the sketch it is in. The
engine (model/generation/engine.py) chooses each row's next token or latent; the functions here turn what was chosen
into segments and stream events. A sketch's latents (and the head's conditions) collect in its `Drawing` while it
is drawn, one a step (sequential) or all K at once (parallel), and become its SketchSegment's arrays at ⟨END⟩.
"""

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from model.generation.answers import extract_answer
from model.generation.trace import SketchSegment, TextSegment, Trace, TraceEvent


@dataclass
class Drawing:
    """The sketch a row is inside: its segment, and what has been drawn of it so far."""

    segment: SketchSegment
    started: float  # perf_counter at ⟨START⟩
    latents: list = field(default_factory=list)  # (D,) each, on the CPU: the slots written so far
    conditions: list = field(default_factory=list)  # (W,) each: the head's condition of each slot, when it had one


@dataclass
class RowState:
    generator: torch.Generator  # the row's own sampling: tokens and diffusion noise
    forced: deque = field(default_factory=deque)  # tokens the row must write next (a prefix; ⟨END⟩ after K latents)
    positions: int = 0  # response positions written
    segments: list = field(default_factory=list)  # finished text spans and sketches
    text_ids: list[int] = field(default_factory=list)  # the current text span's tokens
    text_start: int = 0  # response position where the current text span began
    emitted: str = ""  # text of the current span already streamed
    drawing: Drawing | None = None  # the sketch being drawn; None in text
    finished: bool = False

    @property
    def num_sketches(self) -> int:
        return sum(1 for s in self.segments if s.kind == "sketch")

    @property
    def slots_done(self) -> int:
        """Latent slots of the current sketch written so far (0 outside a sketch)."""
        return len(self.drawing.latents) if self.drawing is not None else 0


def write_token(model, b: int, row: RowState, token: int) -> Iterator[TraceEvent]:
    """Book `token`, written by row `b` at its next response position: ⟨eos⟩ finishes the row (the caller's
    `finish`), ⟨START⟩ opens a sketch, ⟨END⟩ closes it, anything else joins the text span (streamed once it
    decodes to whole characters). Yields the events; returns True when the row wrote ⟨eos⟩."""
    K, position = model.latent_budget, row.positions
    row.positions += 1
    if token == model.eos_id:
        return True
    if token == model.start_id:
        yield from close_text(model.tokenizer, b, row)
        text_chars = sum(len(s.text) for s in row.segments if s.kind == "text")
        segment = SketchSegment(index=row.num_sketches, start_position=position, end_position=position + K + 1,
                                char_position=text_chars, num_latents=K, source="generated", seconds=0.0)  # fmt: skip
        row.drawing = Drawing(segment, time.perf_counter())
        yield TraceEvent(row=b, kind="sketch_started", sketch=segment)
    elif token == model.end_id:
        drawing, sketch = row.drawing, row.drawing.segment
        sketch.latents = torch.stack(drawing.latents).numpy()
        sketch.conditions = torch.stack(drawing.conditions).numpy() if drawing.conditions else None
        sketch.seconds = time.perf_counter() - drawing.started
        row.segments.append(sketch)
        row.drawing, row.text_start = None, row.positions
        yield TraceEvent(row=b, kind="sketch_done", sketch=sketch)
    else:
        if not row.text_ids:
            row.text_start = position
        row.text_ids.append(token)
        text = model.tokenizer.decode(row.text_ids)
        if not text.endswith("\ufffd") and len(text) > len(row.emitted):  # wait for whole UTF-8 characters
            delta, row.emitted = text[len(row.emitted) :], text
            yield TraceEvent(row=b, kind="text", text=delta)
    return False


def close_text(tokenizer, b: int, row: RowState) -> Iterator[TraceEvent]:
    """End the current text span: stream what is left of it and keep it as a segment."""
    if not row.text_ids:
        return
    text = tokenizer.decode(row.text_ids)
    if len(text) > len(row.emitted):
        yield TraceEvent(row=b, kind="text", text=text[len(row.emitted) :])
    start_char = sum(len(s.text) for s in row.segments if s.kind == "text")
    row.segments.append(TextSegment(text, list(row.text_ids), row.text_start, start_char))
    row.text_ids, row.emitted = [], ""


def finish(tokenizer, b: int, row: RowState, trace: Trace, truncated: bool, clock: tuple) -> Iterator[TraceEvent]:
    """Close the row: `trace` (its question, mode and seed) gets the row's segments, text, answer, positions and
    timings (`clock`: the call's perf_counter at its start, and its prefill seconds), and goes out as `finished`."""
    yield from close_text(tokenizer, b, row)
    row.finished = True
    started, prefill_s = clock
    trace.segments = row.segments
    trace.text = "".join(s.text for s in row.segments if s.kind == "text")
    trace.answer, trace.truncated, trace.num_positions = extract_answer(trace.text), truncated, row.positions
    total = time.perf_counter() - started
    sketch_s = sum(s.seconds for s in row.segments if s.kind == "sketch")
    trace.timings = {"prefill_s": prefill_s, "decode_s": total - prefill_s, "sketch_s": sketch_s, "total_s": total}
    yield TraceEvent(row=b, kind="finished", trace=trace)
