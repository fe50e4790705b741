"""The generation Trace: the one record that flows from `model/` to `analysis/` to `app/`.

A Trace is what one row of a generation batch produced: an ordered list of segments — text spans and latent
sketches — plus the final answer, whether the row hit a limit, and timings. Positions are counted in *response
positions*: every position the model wrote after the prompt (text tokens, ⟨START⟩, each latent slot, ⟨END⟩), so a
sketch of K latents occupies K + 2 positions. Character positions index `Trace.text`, the reasoning with the sketches
left out (a ⟨START⟩ sits between two characters).

Streaming interfaces receive `TraceEvent`s while the row is being decoded; the finished Trace is the last event's
payload. `Trace.to_json()` serialises everything (latents only on request); `Trace.from_json()` reads it back.
"""

import json
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np


@dataclass
class TextSegment:
    text: str  # decoded text of this span
    token_ids: list[int]  # the tokens the model wrote for it
    start_position: int  # response position of its first token
    start_char: int  # offset of its first character in Trace.text
    kind: Literal["text"] = "text"


@dataclass
class SketchSegment:
    index: int  # 0-based sketch number within the answer
    start_position: int  # response position of ⟨START⟩
    end_position: int  # response position of ⟨END⟩ (= start_position + num_latents + 1)
    char_position: int  # offset in Trace.text where the sketch sits
    num_latents: int  # K
    source: str  # where the latents came from: "generated" (the head), or the `source` of the mode that replaced them
    seconds: float  # wall time spent on this sketch (K backbone steps + K head samplings)
    latents: np.ndarray | None = None  # (K, D) in the backbone's input-embedding space
    conditions: np.ndarray | None = None  # (K, W) the head's condition vectors c_k
    snapped: bool = False  # the drawn latents were snapped to the checkpoint's codebook (core/sketch_codebook.py)
    # sequential: one latent per decode step, each fed back before the next; parallel: all K drawn at once from
    # slot queries (model/core/modal_mixed.py), then `refine_passes` re-drawings of all K
    decoding: Literal["sequential", "parallel"] = "sequential"
    refine_passes: int = 0
    kind: Literal["sketch"] = "sketch"


Segment = TextSegment | SketchSegment


@dataclass
class Trace:
    question: str
    mode: str  # the generation mode it ran (model/generation/modes.py MODE_SPECS)
    segments: list[Segment] = field(default_factory=list)
    text: str = ""  # the reasoning text, sketches left out
    answer: str = ""  # the final answer extracted from the text ("" when none was given)
    truncated: bool = False  # True when the row stopped at max_new_tokens instead of ⟨eos⟩
    num_positions: int = 0  # response positions written (text tokens + 2 + K per sketch)
    seed: int | None = None
    timings: dict[str, float] = field(default_factory=dict)  # prefill_s, decode_s, sketch_s, total_s
    correct: bool | None = None  # graded against a known answer (an example puzzle); None when there is none
    # the question's words the checkpoint's training vocabulary lacks (model/data/vocabulary.py), set where the
    # answer is asked (the app); None when not checked (a checkpoint without a training vocabulary)
    unseen_words: list[str] | None = None

    @property
    def sketches(self) -> list[SketchSegment]:
        return [s for s in self.segments if s.kind == "sketch"]

    @property
    def num_sketches(self) -> int:
        return len(self.sketches)

    def to_dict(self, include_latents: bool = False) -> dict:
        out = asdict(self)
        for seg, raw in zip(out["segments"], self.segments):
            if raw.kind != "sketch":
                continue
            for key in ("latents", "conditions"):
                value = getattr(raw, key)
                seg[key] = value.tolist() if include_latents and value is not None else None
        out["num_sketches"] = self.num_sketches
        return out

    def to_json(self, include_latents: bool = False, **kwargs) -> str:
        return json.dumps(self.to_dict(include_latents), **kwargs)

    @classmethod
    def from_dict(cls, data: dict) -> "Trace":
        data = dict(data)
        data.pop("num_sketches", None)
        segments = []
        for seg in data.pop("segments", []):
            seg = dict(seg)
            if seg.get("kind") == "sketch":
                for key in ("latents", "conditions"):
                    if seg.get(key) is not None:
                        seg[key] = np.asarray(seg[key], dtype=np.float32)
                segments.append(SketchSegment(**seg))
            else:
                segments.append(TextSegment(**seg))
        return cls(segments=segments, **data)

    @classmethod
    def from_json(cls, text: str) -> "Trace":
        return cls.from_dict(json.loads(text))

    def render(self, start_marker: str = "⟨START⟩", end_marker: str = "⟨END⟩") -> str:
        """The reasoning as plain text with each sketch shown as ⟨START⟩[K latents]⟨END⟩."""
        parts = []
        for seg in self.segments:
            if seg.kind == "text":
                parts.append(seg.text)
            else:
                parts.append(f"{start_marker}[sketch {seg.index + 1}: {seg.num_latents} latents]{end_marker}")
        return "".join(parts)


@dataclass
class TraceEvent:
    """One step of a streaming generation, for one row of the batch."""

    row: int
    kind: Literal["text", "sketch_started", "sketch_pass", "sketch_done", "finished"]
    text: str = ""  # the new text for kind == "text"
    pass_index: int | None = None  # for sketch_pass (parallel decoding): 0 = the first drawing, r = refinement r
    sketch: SketchSegment | None = None  # for sketch_started (no latents yet), sketch_pass and sketch_done
    trace: Trace | None = None  # for kind == "finished"
