"""How answers look in the page: the reasoning as steps, the answer line, the mode comparison, captions, pictures.

Pure functions and one small accumulator (`LiveAnswer`); no Gradio here, so the tests check them on their own.
The reasoning is HTML for `gr.HTML`: text as it streams, and each sketch a collapsible step, as chat UIs show
thoughts — a `<details>` titled "sketch n · K latents · T steps · time", open with a "sketching…" badge while it
is drawn, closed once done, its decoded picture inside (large enough to read the cells, beside the example's true
sketch when there is one). Model text is escaped; pictures are inline PNG data URIs. Nothing here depends on an
emoji font (Debian's Chromium has none): right and wrong are words on coloured badges.
"""

import base64
import html
import io
from dataclasses import dataclass

import pandas as pd
from PIL import Image, ImageDraw

from model.generation.trace import SketchSegment, Trace, TraceEvent

START, END = "⟨START⟩", "⟨END⟩"
SKETCHING = "sketching…"
SKETCH_PX = 288  # a decoded or true sketch as the reasoning shows it: 10×10 cells of about 29 px
CSS = """
#reasoning .reasoning { white-space: pre-wrap; overflow-wrap: anywhere; line-height: 1.6; }
#reasoning details.sketch-step { border: 1px solid #fb923c; border-radius: 8px; margin: 6px 0; padding: 2px 10px;
  background: #fff7ed; white-space: normal; }
#reasoning details.sketch-step summary { cursor: pointer; font-weight: 600; color: #9a3412; }
#reasoning .badge { background: #fde68a; border-radius: 6px; padding: 0 6px; margin-left: 6px; font-weight: 400; }
#reasoning details.sketch-step img, #compare img, .pictures img { image-rendering: pixelated; border-radius: 4px; }
.pictures { display: flex; gap: 12px; flex-wrap: wrap; align-items: flex-start; }
.pictures figure { margin: 0; text-align: center; font-size: 0.85em; }
.pictures figcaption { max-width: 100%; white-space: normal; overflow-wrap: anywhere; line-height: 1.3; }
.verdict { border-radius: 6px; padding: 0 6px; font-weight: 600; font-size: 0.9em; }
.verdict.right { background: #dcfce7; color: #166534; }
.verdict.wrong { background: #fee2e2; color: #991b1b; }
#compare table { border-collapse: collapse; width: 100%; }
#compare th, #compare td { border: 1px solid #e5e7eb; padding: 4px 8px; text-align: center; vertical-align: top; }
"""


def picture_uri(image: Image.Image) -> str:
    """A PNG data URI of a picture, for inline <img> tags."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _text(text: str) -> str:
    return html.escape(text).replace("$", "&#36;")  # gr.HTML fills a ${value} template: keep model text inert


@dataclass
class SketchStep:
    sketch: SketchSegment
    diffusion_steps: int  # T used for this answer
    done: bool = False
    picture: str = ""  # data URI of the decoded picture ("" when the checkpoint has no decoder)
    truth: str = ""  # data URI of the example's true sketch at this place ("" for uploads)
    passes: int = 0  # drawings of all K latents so far (parallel decoding: 1 + refine_passes in all)

    def title(self) -> str:
        s = self.sketch
        total = s.refine_passes + 1
        took = (
            f"{s.seconds:.2f} s"
            if self.done
            else "drawing" + (f", pass {self.passes} of {total}" if self.passes else "")
        )
        source = (" · snapped" if s.snapped else "") if s.source == "generated" else f" · {s.source} latents"
        how = f" · all at once, {total} pass{'es' if total > 1 else ''}" if s.decoding == "parallel" else ""
        return f"sketch {s.index + 1} · {s.num_latents} latents{how} · {self.diffusion_steps} steps · {took}{source}"

    def html(self) -> str:
        badge = "" if self.done else f'<span class="badge">{SKETCHING}</span>'
        number = self.sketch.index + 1
        if not self.done:
            body = f"<em>drawing {self.sketch.num_latents} latents…</em>"
        else:
            figures = []
            if self.picture:
                figures.append(_figure(self.picture, f"decoded sketch {number}", SKETCH_PX))
            if self.truth:
                figures.append(_figure(self.truth, f"true sketch {number} (the example's)", SKETCH_PX))
            missing = "" if self.picture else "<em>no decoded picture (this checkpoint has no latent decoder)</em>"
            body = missing + (f'<div class="pictures">{"".join(figures)}</div>' if figures else "")
        return (
            f'<details class="sketch-step" data-sketch="{self.sketch.index + 1}"{"" if self.done else " open"}>'
            f"<summary>{START} {_text(self.title())} {END}{badge}</summary>{body}</details>"
        )


class LiveAnswer:
    """Collects a row's TraceEvents into text and sketch steps; `html()` renders them for `gr.HTML`."""

    def __init__(self, diffusion_steps: int, truths: list[Image.Image] | None = None):
        self.diffusion_steps = diffusion_steps
        self.truths = [picture_uri(t) for t in truths or []]  # the example's true sketches, in the trace's order
        self.parts: list[str | SketchStep] = []

    def add(self, event: TraceEvent, picture: Image.Image | None = None) -> None:
        if event.kind == "text":
            if self.parts and isinstance(self.parts[-1], str):
                self.parts[-1] += event.text
            else:
                self.parts.append(event.text)
        elif event.kind == "sketch_started":
            self.parts.append(SketchStep(event.sketch, self.diffusion_steps, truth=self._truth(event.sketch.index)))
        elif event.kind == "sketch_pass":  # parallel decoding: one drawing of all K latents done
            self.parts[-1].passes = (event.pass_index or 0) + 1
        elif event.kind == "sketch_done":
            # the open sketch is the last part: text never streams while a sketch is being drawn
            step = self.parts[-1]
            step.sketch, step.done = event.sketch, True
            step.picture = picture_uri(picture) if picture is not None else ""

    def _truth(self, index: int) -> str:
        return self.truths[index] if index < len(self.truths) else ""

    @property
    def steps(self) -> list[SketchStep]:
        return [p for p in self.parts if isinstance(p, SketchStep)]

    def html(self) -> str:
        body = "".join(_text(p) if isinstance(p, str) else p.html() for p in self.parts) or "…"
        return f'<div class="reasoning">{body}</div>'


def trace_html(
    trace: Trace, diffusion_steps: int, pictures: list[Image.Image | None], truths: list[Image.Image] | None = None
) -> str:
    """The steps of a finished trace (what `LiveAnswer` ends with), with each sketch's decoded picture and the
    example's true sketch beside it."""
    live = LiveAnswer(diffusion_steps, truths)
    for seg in trace.segments:
        if seg.kind == "text":
            live.parts.append(seg.text)
        else:
            picture = pictures[seg.index] if seg.index < len(pictures) else None
            uri = picture_uri(picture) if picture else ""
            live.parts.append(SketchStep(seg, diffusion_steps, True, uri, live._truth(seg.index)))
    return live.html()


def answer_markdown(trace: Trace, correct: bool | None, expected: str | None) -> str:
    """The answer line: the extracted answer, right or wrong when known, why it stopped, and timings."""
    answer = f"`{trace.answer}`" if trace.answer else "*none given*"
    line = f"### Answer: {answer}"
    if correct is not None:
        line += f" {verdict(correct)} (expected `{expected}`)"
    ending = f"stopped at the limit of {trace.num_positions} positions" if trace.truncated else "finished"
    return (
        f"{line}\n\n{trace.num_sketches} sketch(es) · {trace.num_positions} positions · {ending}\n\n"
        + timings_line(trace)
    )


def unseen_words_markdown(unseen: list[str] | None, checkpoint: str, not_checked: str = "") -> str:
    """The line under the question: the words of it the checkpoint never saw in training, or, when it has no
    training vocabulary to check against, why (`not_checked`, e.g. "it has no training_vocabulary.json"); "" when
    there is nothing to say (every word seen, or a preset or hub checkpoint, which are not checked)."""
    if unseen:
        return f"**Words this checkpoint never saw in training:** {', '.join(unseen)} — its answer may be unreliable."
    if unseen is None and not_checked:
        return f"*Wording not checked:* `{checkpoint}`: {not_checked}, so words it never saw cannot be named."
    return ""


def verdict(correct: bool) -> str:
    """Right or wrong as a coloured badge (gr.Markdown and gr.HTML keep the span)."""
    word = "right" if correct else "wrong"
    return f'<span class="verdict {word}">{word}</span>'


def timings_line(trace: Trace) -> str:
    t = trace.timings
    if not t:
        return ""
    per_position = 1000 * t["decode_s"] / max(trace.num_positions, 1)
    return (
        f"Time: prefill {t['prefill_s']:.2f} s · decode {t['decode_s']:.2f} s ({per_position:.1f} ms/position) · "
        f"sketches {t['sketch_s']:.2f} s · total {t['total_s']:.2f} s"
    )


def progress_markdown(num_sketches: int) -> str:
    return f"*generating… {num_sketches} sketch(es) so far*"


@dataclass
class CompareColumn:
    """One mode of a comparison (or a baseline model's column), as the table shows it."""

    mode: str  # the mode, or a baseline's key
    trace: Trace | None = None  # None while it runs, or when skipped
    correct: bool | None = None
    skipped: str = ""  # why the mode did not run
    pictures: tuple[Image.Image | None, ...] = ()  # decoded sketches
    subtitle: str = ""  # under the column's name: what a baseline column is


def compare_html(columns: list[CompareColumn], expected: str | None, header: str = "") -> str:
    """The modes side by side under `header`: answer, right/wrong, number of sketches, decoded sketches, positions
    written (tokens and latent slots), time."""

    def cell(column: CompareColumn, row: str) -> str:
        trace = column.trace
        if trace is None:  # skipped (say why) or still running
            if row != "answer":
                return ""
            return f"<em>{_text(column.skipped)}</em>" if column.skipped else "<em>running…</em>"
        if row == "answer":
            return f"<code>{_text(trace.answer)}</code>" if trace.answer else "<em>none given</em>"
        if row == "right":
            return "–" if column.correct is None else verdict(column.correct)
        if row == "sketches":
            return str(trace.num_sketches)
        if row == "positions":
            return str(trace.num_positions)
        if row == "decoded":
            shown = [p for p in column.pictures if p is not None]
            if not shown:
                return "–" if trace.num_sketches == 0 else "<em>no decoder</em>"
            return "".join(f'<img src="{picture_uri(p)}" width="120" alt="decoded sketch">' for p in shown)
        return f"{trace.timings.get('total_s', 0.0):.2f} s"

    rows = [("answer", "answer"), ("right", "right / wrong"), ("sketches", "sketches")]
    rows += [("decoded", "decoded sketches"), ("positions", "positions (tokens)"), ("time", "time")]
    head = "".join(f'<th data-mode="{c.mode}">{c.mode}{_subtitle(c.subtitle)}</th>' for c in columns)
    body = "".join(
        f"<tr><th>{title}</th>" + "".join(f'<td data-mode="{c.mode}">{cell(c, row)}</td>' for c in columns) + "</tr>"
        for row, title in rows
    )
    caption = f"<p>expected answer: <code>{_text(expected)}</code></p>" if expected else ""
    return f"{header}{caption}<table><tr><th></th>{head}</tr>{body}</table>"


def _subtitle(text: str) -> str:
    return f'<br><small class="subtitle">{_text(text)}</small>' if text else ""


def _figure(uri: str, caption: str, width: int) -> str:
    text = _text(caption).replace("\n", "<br>")
    return (
        f'<figure style="width: {width}px"><img src="{uri}" width="{width}" alt="{_text(caption)}">'
        f"<figcaption>{text}</figcaption></figure>"
    )


def pictures_html(pictures: list[Image.Image], captions: list[str], width: int = 160) -> str:
    """A row of whole pictures with captions under them (no cropping; a caption wraps, and a line break in one
    starts a new line)."""
    cells = "".join(_figure(picture_uri(p), c, width) for p, c in zip(pictures, captions))
    return f'<div class="pictures">{cells}</div>'


def neighbours_html(pictures: list[tuple[Image.Image, pd.Series]], empty: str = "") -> str:
    """The nearest gallery pictures of a sketch (app.models.Models.neighbour_pictures: picture and its row) as a
    strip of whole pictures with captions; `empty` when there are none (yet)."""
    if not pictures:
        return f"<p><em>{_text(empty)}</em></p>" if empty else ""
    return pictures_html([p for p, _ in pictures], [neighbour_caption(row) for _, row in pictures], width=120)


def neighbour_caption(row: pd.Series) -> str:
    return f"#{row['rank']} · {row['family']} {row['role']}\ncos {row['similarity']:.3f}"


def placeholder(text: str = "no decoded picture", size: int = 224) -> Image.Image:
    """A grey tile standing in for a picture that cannot be shown."""
    image = Image.new("RGB", (size, size), (226, 232, 240))
    draw = ImageDraw.Draw(image)
    box = draw.textbbox((0, 0), text)
    draw.text(((size - box[2]) / 2, (size - box[3]) / 2), text, fill=(71, 85, 105))
    return image
