"""How answers look in the page: the reasoning with its sketches marked, captions, the answer line, placeholders.

Pure functions and one small accumulator (`LiveAnswer`); no Gradio here, so the tests can check them on their own.
Text spans carry no label and sketches the label "sketch" (the open one "sketching…"), which `gr.HighlightedText`
colours with `COLOR_MAP`; each sketch reads ⟨START⟩ sketch n · K latents ⟨END⟩, so it stays marked in plain text.
"""

import pandas as pd
from PIL import Image, ImageDraw

from model.generation.trace import SketchSegment, Trace, TraceEvent

START, END = "⟨START⟩", "⟨END⟩"
SKETCH, SKETCHING = "sketch", "sketching…"
COLOR_MAP = {SKETCH: "#fb923c", SKETCHING: "#fde68a"}


def sketch_span(sketch: SketchSegment, done: bool) -> tuple[str, str]:
    if not done:
        return f" {START} sketch {sketch.index + 1} … ", SKETCHING
    return f" {START} sketch {sketch.index + 1} · {sketch.num_latents} latents {END} ", SKETCH


class LiveAnswer:
    """Collects a row's TraceEvents into (text, label) spans for `gr.HighlightedText`."""

    def __init__(self):
        self.spans: list[tuple[str, str | None]] = []
        self.num_positions = 0

    def add(self, event: TraceEvent) -> None:
        if event.kind == "text":
            if self.spans and self.spans[-1][1] is None:
                self.spans[-1] = (self.spans[-1][0] + event.text, None)
            else:
                self.spans.append((event.text, None))
        elif event.kind == "sketch_started":
            self.spans.append(sketch_span(event.sketch, done=False))
        elif event.kind == "sketch_done":
            # the open sketch is the last span: text never streams while a sketch is being drawn
            self.spans[-1] = sketch_span(event.sketch, done=True)

    def highlighted(self) -> list[tuple[str, str | None]]:
        return list(self.spans) or [("…", None)]


def trace_spans(trace: Trace) -> list[tuple[str, str | None]]:
    """The spans of a finished trace (what `LiveAnswer` ends with)."""
    return [(seg.text, None) if seg.kind == "text" else sketch_span(seg, done=True) for seg in trace.segments]


def answer_markdown(trace: Trace, correct: bool | None, expected: str | None) -> str:
    """The answer line: the extracted answer, right or wrong when known, why it stopped, and timings."""
    answer = f"`{trace.answer}`" if trace.answer else "*none given*"
    line = f"### Answer: {answer}"
    if correct is True:
        line += f" ✅ right (expected `{expected}`)"
    elif correct is False:
        line += f" ❌ wrong (expected `{expected}`)"
    ending = f"stopped at the limit of {trace.num_positions} positions" if trace.truncated else "finished"
    return (
        f"{line}\n\n{trace.num_sketches} sketch(es) · {trace.num_positions} positions · {ending}\n\n"
        + timings_line(trace)
    )


def timings_line(trace: Trace) -> str:
    t = trace.timings
    if not t:
        return ""
    per_position = 1000 * t["decode_s"] / max(trace.num_positions, 1)
    return (
        f"⏱ prefill {t['prefill_s']:.2f} s · decode {t['decode_s']:.2f} s ({per_position:.1f} ms/position) · "
        f"sketches {t['sketch_s']:.2f} s · total {t['total_s']:.2f} s"
    )


def progress_markdown(num_sketches: int) -> str:
    return f"*generating… {num_sketches} sketch(es) so far*"


def sketch_caption(sketch: SketchSegment, decoded: bool) -> str:
    picture = "decoded" if decoded else "no decoded picture"
    return f"sketch {sketch.index + 1} · {sketch.source} · {sketch.seconds:.2f} s · {picture}"


def neighbour_caption(row: pd.Series) -> str:
    return f"#{row['rank']} · {row['family']} {row['role']} · cos {row['similarity']:.3f}"


def placeholder(text: str = "no decoded picture", size: int = 224) -> Image.Image:
    """A grey tile standing in for a picture that cannot be shown."""
    image = Image.new("RGB", (size, size), (226, 232, 240))
    draw = ImageDraw.Draw(image)
    box = draw.textbbox((0, 0), text)
    draw.text(((size - box[2]) / 2, (size - box[3]) / 2), text, fill=(71, 85, 105))
    return image
