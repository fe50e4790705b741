"""The Reason tab: pick an example or upload images, ask, and watch the answer stream with its sketches; or compare
every mode on the same puzzle and seed.

The reasoning streams as steps (app/render.py): text, and each sketch a collapsible step with its decoded picture
(when the checkpoint has a latent decoder). Each finished sketch also shows its nearest gallery pictures with cosine
similarities and its place on the UMAP map of the gallery; clicking a point of the map shows that point's
neighbours. "Compare modes" runs the puzzle under auto, noise-latents, zero-latents, shuffled-latents, oracle and
text-only (app/compare.py) and shows them side by side.

The handlers are plain functions of (service, inputs…) that return or yield dicts of named updates (see
app/plumbing.py), so the tests call them without a browser; `build` wires them to components.

Per-user state (`gr.State`, see `new_session`): the number of answers so far and every sketch of the session (label,
checkpoint, latents, map position), which the maps and the Explorer tab plot.
"""

import os
import time

import gradio as gr
import numpy as np
import pandas as pd

from analysis.figures import sketch_map
from app import render
from app.compare import COMPARE_MODES, prepare_comparison, run_comparison
from app.examples import true_sketch_images
from app.plumbing import USER_ERRORS, neighbours_gallery, run_id_for, user_error, wire
from app.reasoning import MAX_NEW_TOKENS, MAX_TEMPERATURE, Request, prepare, run
from app.service import Loaded, Service
from model.generation.inputs import InputError, load_image
from model.generation.modes import MODES

STREAM_EVERY_S = 0.1  # text updates are batched: one page update per token would flood the browser


def new_session() -> dict:
    return {"answers": 0, "sketches": []}


def load(service: Service, name: str | None) -> Loaded:
    try:
        return service.load(name)
    except USER_ERRORS as err:
        raise user_error(err) from err


def request_from(
    checkpoint, example_id, files, question, mode, temperature, max_sketches, diffusion_steps, max_new_tokens, seed,
    snap=True,
) -> Request:  # fmt: skip
    return Request(
        question=question or "",
        files=list(files or []),
        example_id="" if files else (example_id or ""),  # uploads win over a still-selected example
        mode=mode or "auto",
        temperature=temperature,
        max_sketches=max_sketches,
        diffusion_steps=diffusion_steps,
        max_new_tokens=max_new_tokens,
        seed="0" if seed in (None, "") else seed,
        checkpoint=checkpoint or "",
        snap=True if snap is None else snap,
    )


# ---- handlers ---------------------------------------------------------------------------------------------------
def problem_updates(paths: list[str]) -> dict:
    """The two problem-image slots (the second hidden when there is one image)."""
    first, second = (list(paths) + [None, None])[:2]
    return {"problem_1": first, "problem_2": gr.update(value=second, visible=second is not None)}


def on_example(service: Service, example_id: str | None) -> dict:
    """Show an example's problem images, question and true sketches; clears uploads."""
    example = service.examples.get(example_id or "")
    if example is None:
        return {}
    truths = true_sketches_html(example)
    return {
        **problem_updates(example.problem_paths),
        "question": example.question,
        "uploads": None,
        "true_sketches": truths,
    }


def true_sketches_html(example) -> str:
    images = true_sketch_images(example) if example is not None else []
    if not images:
        return ""
    captions = [f"true sketch {i + 1} of {example.id}" for i in range(len(images))]
    return "<p><strong>The example's true sketches</strong> (what oracle inserts)</p>" + render.pictures_html(
        images, captions
    )


def on_upload(files: list[str] | None) -> dict:
    """Check uploads at once, so a broken file is reported before anyone presses the button."""
    if not files:
        return {}
    good = []
    for path in files:
        try:
            load_image(path)
            good.append(path)
        except InputError as err:
            gr.Warning(f"{os.path.basename(path)}: {err}")
    return {
        **problem_updates(good),
        "example": None,
        "uploads": good or None,
        "true_sketches": "",
    }


def on_checkpoint(service: Service, name: str) -> dict:
    """Load the chosen checkpoint (kept in a small cache) and say what it is; its gallery builds meanwhile."""
    loaded = load(service, name)
    banner = service.banner(loaded)
    return {
        "banner": gr.update(value=banner, visible=bool(banner)),
        "checkpoint_info": loaded.describe(),
        "gallery_status": gallery_status_text(loaded),
        "timer": gr.Timer(active=not loaded.ready.is_set()),
    }


def gallery_status_text(loaded: Loaded) -> str:
    mark = "✅" if loaded.ready.is_set() else "⏳"
    return f"{mark} `{loaded.name}`: {loaded.status}"


def on_tick(service: Service, name: str) -> dict:
    """The gallery's progress while it builds; the timer stops once it is ready (or the checkpoint cannot load:
    on_checkpoint has said why already)."""
    try:
        loaded = service.load(name)
    except USER_ERRORS:
        return {"timer": gr.Timer(active=False)}
    ready = loaded.ready.is_set()
    return {
        "gallery_status": gallery_status_text(loaded),
        "checkpoint_info": loaded.describe(),
        "timer": gr.Timer(active=not ready),
    }


def sketch_entry(service: Service, loaded: Loaded, sketch, answer: int, number: int) -> dict:
    """What the page and the session keep of one finished sketch; `number` is its place in the session."""
    latents = np.asarray(sketch.latents, dtype=np.float32)  # (K, D)
    return {
        "label": f"answer {answer} · sketch {sketch.index + 1}",
        "short": f"s{sketch.index + 1}",
        "point": f"s:{number}",
        "checkpoint": loaded.name,
        "latents": latents,
        "xy": service.place(loaded, latents),
        "decoded": service.decode(loaded, latents),
    }


def map_figure(loaded: Loaded, entries: list[dict]):
    """The gallery map with the given sketches as stars (None without a map)."""
    points = loaded.points
    if points is None:
        return None
    placed = [e for e in entries if e["xy"] is not None]
    stars = pd.DataFrame(
        {
            "x": [e["xy"][0] for e in placed],
            "y": [e["xy"][1] for e in placed],
            "label": [e["short"] for e in placed],
            "point": [e["point"] for e in placed],
        }
    )
    return sketch_map(points, stars)


def notes(loaded: Loaded) -> str:
    parts = [loaded.notes.get("decoder", ""), loaded.notes.get("map", "")]
    if not loaded.ready.is_set():
        parts.append(f"Neighbours and the map appear once the gallery is ready ({loaded.status}).")
    return "\n\n".join(p for p in parts if p)


def reason(
    service: Service,
    checkpoint: str,
    example_id: str | None,
    files: list[str] | None,
    question: str,
    mode: str,
    temperature: float,
    max_sketches: int,
    diffusion_steps: int,
    max_new_tokens: int,
    seed: str,
    snap: bool,
    session: dict | None,
    request: gr.Request = None,
):
    """Stream one answer as named updates: reasoning, answer, note, pick, neighbours, map, trace, session."""
    session = dict(session or new_session())
    session["sketches"] = list(session["sketches"])
    req = request_from(checkpoint, example_id, files, question, mode, temperature, max_sketches, diffusion_steps,
                       max_new_tokens, seed, snap)  # fmt: skip
    try:
        job = prepare(service, req, run_id_for(request))
    except USER_ERRORS as err:
        raise user_error(err) from err
    loaded, answer = job.loaded, session["answers"] + 1
    live = render.LiveAnswer(job.settings.diffusion_steps or loaded.model.config.diffusion_steps)
    entries, last = [], 0.0
    yield {
        "reasoning": live.html(),
        "answer": "*generating…*",
        "compare": "",
        "note": notes(loaded),
        "pick": gr.update(choices=[], value=None),
        "neighbours": [],
        "map": map_figure(loaded, []),
        "trace": None,
    }
    try:
        for event in run(job):
            if event.kind == "sketch_done":
                entry = sketch_entry(service, loaded, event.sketch, answer, len(session["sketches"]))
                live.add(event, entry["decoded"])
                entries.append(entry)
                session["sketches"].append({k: entry[k] for k in ("label", "checkpoint", "latents", "xy")})
                first = len(session["sketches"]) - len(entries)
                yield {
                    "reasoning": live.html(),
                    "answer": render.progress_markdown(len(entries)),
                    "pick": gr.update(
                        choices=[(e["label"], first + i) for i, e in enumerate(entries)],
                        value=len(session["sketches"]) - 1,
                    ),
                    "neighbours": service.neighbour_pictures(loaded, entry["latents"]),
                    "map": map_figure(loaded, entries),
                }
            elif event.kind == "finished":
                continue  # the trace is on the job (and logged); the final update follows the loop
            else:
                live.add(event)
                if event.kind == "sketch_started" or time.perf_counter() - last > STREAM_EVERY_S:
                    last = time.perf_counter()
                    yield {"reasoning": live.html(), "answer": render.progress_markdown(len(entries))}
    except USER_ERRORS as err:
        raise user_error(err) from err
    trace = job.trace
    if job.log_error:
        gr.Warning(job.log_error)
    session["answers"] = answer
    expected = job.example.answer if job.example is not None else None
    pictures = [e["decoded"] for e in entries]
    final = {
        "reasoning": render.trace_html(trace, live.diffusion_steps, pictures),
        "session": session,
        "answer": render.answer_markdown(trace, job.correct, expected),
        "trace": trace.to_dict(),
        "note": notes(loaded),
    }
    if entries and loaded.ready.is_set():  # the gallery may have become ready during the answer
        final["neighbours"] = service.neighbour_pictures(loaded, entries[-1]["latents"])
        final["map"] = map_figure(loaded, [dict(e, xy=service.place(loaded, e["latents"])) for e in entries])
    yield final


def compare(
    service: Service,
    checkpoint: str,
    example_id: str | None,
    files: list[str] | None,
    question: str,
    temperature: float,
    max_sketches: int,
    diffusion_steps: int,
    max_new_tokens: int,
    seed: str,
    snap: bool = True,
    request: gr.Request = None,
):
    """Every mode on the same puzzle and seed, side by side; yields the table as each mode finishes."""
    req = request_from(
        checkpoint,
        example_id,
        files,
        question,
        "auto",
        temperature,
        max_sketches,
        diffusion_steps,
        max_new_tokens,
        seed,
        snap,
    )
    try:
        comparison = prepare_comparison(service, req, COMPARE_MODES, run_id_for(request))
    except USER_ERRORS as err:
        raise user_error(err) from err
    job = comparison.job
    expected = job.example.answer if job.example is not None else None
    columns = {mode: render.CompareColumn(mode) for mode in comparison.modes}
    what = job.example.id if job.example is not None else "the uploaded image(s)"
    header = f"### Compared {len(columns)} modes on {what} · seed {job.settings.seed}"
    yield {"compare": render.compare_html(list(columns.values()), expected), "answer": f"{header}\n\n*running…*"}
    try:
        for outcome in run_comparison(service, comparison):
            pictures = ()
            if outcome.trace is not None:
                pictures = tuple(service.decode(job.loaded, s.latents) for s in outcome.trace.sketches)
            columns[outcome.mode] = render.CompareColumn(
                outcome.mode, outcome.trace, outcome.correct, outcome.skipped, pictures
            )
            yield {"compare": render.compare_html(list(columns.values()), expected)}
    except USER_ERRORS as err:
        raise user_error(err) from err
    if job.log_error:
        gr.Warning(job.log_error)
    traces = {m: o.trace.to_dict() for m, o in comparison.outcomes.items() if o.trace is not None}
    yield {"answer": f"{header}\n\nsame prompt, settings and seed in every column", "trace": traces}


def show_neighbours(service: Service, index: int | None, session: dict | None) -> dict:
    """The neighbours of a sketch of this session, chosen in the dropdown."""
    sketches = (session or {}).get("sketches", [])
    if index is None or not 0 <= int(index) < len(sketches):
        return {}
    entry = sketches[int(index)]
    return {"neighbours": service.neighbour_pictures(load(service, entry["checkpoint"]), entry["latents"])}


def on_map_click(service: Service, value: str, checkpoint: str, session: dict | None) -> dict:
    """A point of the map was clicked: its nearest gallery pictures."""
    loaded = load(service, checkpoint)
    try:
        point = service.point(loaded, value, (session or {}).get("sketches", []))
    except ValueError as err:
        raise gr.Error(str(err)) from err
    return {"neighbours": point.neighbours, "note": point.text}


# ---- layout -----------------------------------------------------------------------------------------------------
def build(service: Service, session: gr.State, banner: gr.Markdown) -> dict:
    """The tab's components and events; returns the components other tabs use."""
    examples = service.examples
    first = "maze-1" if "maze-1" in examples else next(iter(examples), None)
    loaded = service.load()
    c = {"banner": banner, "session": session}
    with gr.Row():
        with gr.Column(scale=4):
            c["checkpoint"] = gr.Dropdown(
                service.checkpoint_choices(),
                value=service.default_name,
                allow_custom_value=True,
                label="Checkpoint",
                info="a checkpoint folder, a preset (tiny, demo), a hub id or a registered name (Sweeps tab)",
                elem_id="checkpoint",
            )
            c["checkpoint_info"] = gr.Markdown(loaded.describe(), elem_id="checkpoint-info")
            c["gallery_status"] = gr.Markdown(gallery_status_text(loaded), elem_id="gallery-status")
            c["timer"] = gr.Timer(1.0, active=not loaded.ready.is_set())
            c["example"] = gr.Dropdown(
                [(ex.label, ex.id) for ex in examples.values()], value=first, label="Example puzzle", elem_id="example"
            )
            c["uploads"] = gr.File(
                label="… or upload image(s) (PNG/JPEG, at most 2)",
                file_count="multiple",
                file_types=["image"],
                type="filepath",
                height=110,
                elem_id="uploads",
            )
            paths = list(examples[first].problem_paths) if first else []
            with gr.Row():  # whole pictures: gr.Image keeps the aspect ratio, where gallery thumbnails crop
                c["problem_1"] = gr.Image(
                    paths[0] if paths else None,
                    label="Problem image",
                    type="filepath",
                    interactive=False,
                    height=320,
                    elem_id="problem",
                )
                c["problem_2"] = gr.Image(
                    paths[1] if len(paths) > 1 else None,
                    label="Second problem image",
                    type="filepath",
                    interactive=False,
                    height=320,
                    visible=len(paths) > 1,
                    elem_id="problem-2",
                )
            c["question"] = gr.Textbox(
                examples[first].question if first else "", label="Question", lines=2, elem_id="question"
            )
            with gr.Accordion("Settings", open=False):
                c["mode"] = gr.Radio(
                    list(MODES),
                    value="auto",
                    label="Mode",
                    info="auto: the model decides; text-only / direct: no sketches; noise- / zero-latents: sketches "
                    "replaced; shuffled-latents: another puzzle's sketches; oracle: the example's true sketches",
                )
                c["temperature"] = gr.Slider(0, MAX_TEMPERATURE, value=0, step=0.05, label="Temperature (0 = greedy)")
                c["max_sketches"] = gr.Slider(0, 8, value=4, step=1, label="Max sketches")
                c["diffusion_steps"] = gr.Slider(0, 200, value=0, step=1, label="Diffusion steps T (0 = checkpoint's)")
                c["max_new_tokens"] = gr.Slider(16, MAX_NEW_TOKENS, value=256, step=16, label="Max new positions")
                c["seed"] = gr.Textbox("0", label="Seed (a whole number from 0 to 2**63 - 1)", elem_id="seed")
                c["snap"] = gr.Checkbox(
                    True,
                    label="Snap each drawn latent to the checkpoint's codebook",
                    info="when it has one; off: the head's samples are fed back as drawn",
                )
            with gr.Row():
                go = gr.Button("Reason", variant="primary", elem_id="run")
                compare_button = gr.Button("Compare modes", elem_id="compare-run")
        with gr.Column(scale=6):
            c["reasoning"] = gr.HTML(
                label="Reasoning", elem_id="reasoning", value='<div class="reasoning">…</div>', min_height=80
            )
            c["answer"] = gr.Markdown(elem_id="answer")
            c["compare"] = gr.HTML("", elem_id="compare")
            c["true_sketches"] = gr.HTML(true_sketches_html(examples.get(first)), elem_id="true-sketches")
            c["note"] = gr.Markdown(notes(loaded), elem_id="sketch-note")
            c["pick"] = gr.Dropdown([], label="Nearest gallery pictures of", elem_id="pick")
            c["neighbours"] = neighbours_gallery(
                "Nearest gallery pictures (cosine similarity of the K latents)", "neighbours"
            )
            c["map"] = gr.Plot(
                label="Sketch map: UMAP of the gallery (circles problem, diamonds reasoning pictures), stars = this "
                "answer's sketches; click a point for its neighbours",
                elem_id="map",
            )
            c["click"] = gr.Textbox(visible="hidden", elem_id="map-click")
            click_go = gr.Button(visible="hidden", elem_id="map-click-go")
            with gr.Accordion("Trace (JSON, as the /reason endpoint returns it)", open=False):
                c["trace"] = gr.JSON(elem_id="trace-json")

    def out(*names):
        return {name: c[name] for name in names}

    wire(
        c["example"].input,
        on_example,
        (service,),
        c["example"],
        out("problem_1", "problem_2", "question", "uploads", "true_sketches"),
    )
    wire(
        c["uploads"].upload,
        on_upload,
        (),
        c["uploads"],
        out("problem_1", "problem_2", "example", "uploads", "true_sketches"),
    )
    c["uploads"].clear(
        lambda: (None, gr.update(visible=False)), None, [c["problem_1"], c["problem_2"]], api_visibility="private"
    )
    checkpoint_outputs = out("banner", "checkpoint_info", "gallery_status", "timer")
    wire(c["checkpoint"].input, on_checkpoint, (service,), c["checkpoint"], checkpoint_outputs)
    wire(c["timer"].tick, on_tick, (service,), c["checkpoint"], out("gallery_status", "checkpoint_info", "timer"))
    settings = [c[n] for n in ("temperature", "max_sketches", "diffusion_steps", "max_new_tokens", "seed", "snap")]
    head = [c["checkpoint"], c["example"], c["uploads"], c["question"]]
    wire(
        go.click,
        reason,
        (service,),
        [*head, c["mode"], *settings, session],
        out("reasoning", "answer", "compare", "note", "pick", "neighbours", "map", "trace", "session"),
        show_progress="minimal",
    )
    wire(
        compare_button.click,
        compare,
        (service,),
        [*head, *settings],
        out("compare", "answer", "trace"),
        show_progress="minimal",
    )
    wire(c["pick"].input, show_neighbours, (service,), [c["pick"], session], out("neighbours"))
    wire(click_go.click, on_map_click, (service,), [c["click"], c["checkpoint"], session], out("neighbours", "note"))
    return c
