"""The live answer's HTML (app/render.py) as streamed events arrive: text escaped, each sketch a step that opens while
it is drawn and closes with its picture, a parallel sketch's passes counted."""

from PIL import Image

from app import render
from model.generation.trace import SketchSegment, TraceEvent


def test_live_answer_steps():
    live = render.LiveAnswer(diffusion_steps=7)
    sketch = SketchSegment(0, 3, 8, 5, 4, "generated", 0.0)
    for event in [
        TraceEvent(0, "text", text="Trace <b>"),
        TraceEvent(0, "text", text="it."),
        TraceEvent(0, "sketch_started", sketch=sketch),
    ]:
        live.add(event)
    html = live.html()
    assert "Trace &lt;b&gt;it." in html and render.SKETCHING in html
    assert '<details class="sketch-step" data-sketch="1" open>' in html and "sketch 1 · 4 latents · 7 steps" in html
    done = SketchSegment(0, 3, 8, 5, 4, "generated", 0.25)
    live.add(TraceEvent(0, "sketch_done", sketch=done), Image.new("RGB", (8, 8)))
    html = live.html()
    assert render.SKETCHING not in html and " open>" not in html and "data:image/png;base64," in html
    assert "sketch 1 · 4 latents · 7 steps · 0.25 s" in html
    parallel = SketchSegment(1, 9, 14, 5, 4, "generated", 0.0, decoding="parallel", refine_passes=1)
    live.add(TraceEvent(0, "sketch_started", sketch=parallel))
    live.add(TraceEvent(0, "sketch_pass", pass_index=0, sketch=parallel))
    assert "sketch 2 · 4 latents · all at once, 2 passes · 7 steps · drawing, pass 1 of 2" in live.html()
