"""The Reason tab: pick an example or upload images, ask, and watch the answer stream with its sketches.

Each finished sketch shows its decoded picture (when the checkpoint has a latent decoder), its nearest gallery
pictures with cosine similarities, and its place on the UMAP map of the gallery. The handlers are plain functions of
(service, inputs…) so the tests call them without a browser; `build` wires them to components.

Per-user state (`gr.State`, see `new_session`): the number of answers so far and every sketch of the session (label,
checkpoint, latents, map position), which the Explorer tab plots.
"""

import os
import time

import gradio as gr
import numpy as np
import pandas as pd

from analysis.figures import sketch_map
from app import render
from app.examples import true_sketch_images
from app.gallery import picture
from app.plumbing import bind, run_id_for, user_error
from app.reasoning import Request, prepare, run
from app.service import Loaded, Service
from model.core.checkpoint import CheckpointError
from model.generation.engine import MODES
from model.generation.inputs import InputError, load_image

NUM_NEIGHBOURS = 5
STREAM_EVERY_S = 0.1  # text updates are batched: one page update per token would flood the browser


def new_session() -> dict:
    return {"answers": 0, "sketches": []}


# ---- handlers ---------------------------------------------------------------------------------------------------
def on_example(service: Service, example_id: str | None):
    """Show an example's problem images and question; clears uploads."""
    example = service.examples.get(example_id or "")
    if example is None:
        return gr.skip(), gr.skip(), gr.skip()
    return list(example.problem_paths), example.question, None


def on_upload(files: list[str] | None):
    """Check uploads at once, so a broken file is reported before anyone presses the button."""
    good = []
    for path in files or []:
        try:
            load_image(path)
            good.append(path)
        except InputError as err:
            gr.Warning(f"{os.path.basename(path)}: {err}")
    if not files:
        return gr.skip(), gr.skip(), gr.skip()
    return good, None, (good or None)


def on_checkpoint(service: Service, name: str):
    """Load the chosen checkpoint (kept in a small cache) and say what it is."""
    try:
        loaded = service.load(name)
    except CheckpointError as err:
        raise user_error(err) from err
    banner = service.banner(loaded)
    return gr.update(value=banner, visible=bool(banner)), loaded.describe()


def sketch_entry(service: Service, loaded: Loaded, sketch, answer: int) -> dict:
    """What the page and the session keep of one finished sketch."""
    latents = np.asarray(sketch.latents, dtype=np.float32)  # (K, D)
    decoded = service.decode(loaded, latents)
    return {
        "label": f"answer {answer} · sketch {sketch.index + 1}",
        "short": f"s{sketch.index + 1}",
        "checkpoint": loaded.name,
        "latents": latents,
        "xy": service.place(loaded, latents),
        "decoded": decoded,
        "caption": render.sketch_caption(sketch, decoded is not None),
    }


def neighbour_items(service: Service, loaded: Loaded, latents: np.ndarray, k: int = NUM_NEIGHBOURS) -> list:
    frame = service.neighbours(loaded, latents, k)
    return [(picture(row), render.neighbour_caption(row)) for _, row in frame.iterrows()]


def map_figure(loaded: Loaded, entries: list[dict]):
    """The gallery map with the given sketches as stars (None without a map)."""
    points = loaded.points
    if points is None:
        return None
    placed = [e for e in entries if e["xy"] is not None]
    stars = pd.DataFrame(
        {"x": [e["xy"][0] for e in placed], "y": [e["xy"][1] for e in placed], "label": [e["short"] for e in placed]}
    )
    return sketch_map(points, stars)


def sketch_gallery(entries: list[dict], truths: list) -> list:
    items = [(e["decoded"] or render.placeholder(), e["caption"]) for e in entries]
    return items + [(image, f"true sketch {i + 1}") for i, image in enumerate(truths)]


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
    seed: int,
    session: dict | None,
    request: gr.Request = None,
):
    """Stream one answer. Yields (reasoning, answer, sketches, note, pick, neighbours, map, trace JSON, session)."""
    session = dict(session or new_session())
    req = Request(
        question=question or "",
        files=list(files or []),
        example_id="" if files else (example_id or ""),  # uploads win over a still-selected example
        mode=mode,
        temperature=temperature,
        max_sketches=max_sketches,
        diffusion_steps=diffusion_steps,
        max_new_tokens=max_new_tokens,
        seed=seed,
        checkpoint=checkpoint or "",
    )
    try:
        job = prepare(service, req, run_id_for(request))
    except (InputError, CheckpointError) as err:
        raise user_error(err) from err
    loaded, answer = job.loaded, session["answers"] + 1
    truths = true_sketch_images(job.example) if job.example is not None else []
    note = loaded.notes.get("decoder", "") + ("\n\n" + loaded.notes["map"] if "map" in loaded.notes else "")
    live, entries, last = render.LiveAnswer(), [], 0.0
    pick = gr.update(choices=[], value=None)
    yield (
        live.highlighted(),
        "*generating…*",
        sketch_gallery([], truths),
        note,
        pick,
        [],
        map_figure(loaded, []),
        None,
        session,
    )
    skip = gr.skip()
    try:
        for event in run(job):
            live.add(event)
            if event.kind == "sketch_done":
                entry = sketch_entry(service, loaded, event.sketch, answer)
                entries.append(entry)
                first = len(session["sketches"])
                choices = [(e["label"], first + i) for i, e in enumerate(entries)]
                yield (
                    live.highlighted(),
                    render.progress_markdown(len(entries)),
                    sketch_gallery(entries, truths),
                    skip,
                    gr.update(choices=choices, value=first + len(entries) - 1),
                    neighbour_items(service, loaded, entry["latents"]),
                    map_figure(loaded, entries),
                    skip,
                    skip,
                )
            elif event.kind == "finished":
                continue  # the trace is on the job (and logged); the final update follows the loop
            elif event.kind == "sketch_started" or time.perf_counter() - last > STREAM_EVERY_S:
                last = time.perf_counter()
                yield live.highlighted(), render.progress_markdown(len(entries)), *[skip] * 7
    except (InputError, CheckpointError) as err:
        raise user_error(err) from err
    trace = job.trace
    if job.log_error:
        gr.Warning(job.log_error)
    for entry in entries:  # the session keeps what the Explorer needs, not the pictures
        session["sketches"].append({k: entry[k] for k in ("label", "checkpoint", "latents", "xy")})
    session["answers"] = answer
    expected = job.example.answer if job.example is not None else None
    yield (
        render.trace_spans(trace),
        render.answer_markdown(trace, job.correct, expected),
        skip,
        skip,
        skip,
        skip,
        skip,
        trace.to_dict(),
        session,
    )


def show_neighbours(service: Service, index: int | None, session: dict | None):
    """The neighbours of a sketch of this session, chosen in the dropdown."""
    sketches = (session or {}).get("sketches", [])
    if index is None or not 0 <= int(index) < len(sketches):
        return gr.skip()
    entry = sketches[int(index)]
    try:
        loaded = service.load(entry["checkpoint"])
    except CheckpointError as err:
        raise user_error(err) from err
    return neighbour_items(service, loaded, entry["latents"])


# ---- layout -----------------------------------------------------------------------------------------------------
def build(service: Service, session: gr.State, banner: gr.Markdown) -> dict:
    """The tab's components and events; returns the components other tabs use."""
    examples = service.examples
    first = "maze-1" if "maze-1" in examples else next(iter(examples), None)
    with gr.Row():
        with gr.Column(scale=4):
            checkpoint = gr.Dropdown(
                service.checkpoint_choices(),
                value=service.default_name,
                allow_custom_value=True,
                label="Checkpoint",
                info="a checkpoint folder, a preset (tiny, demo) or a hub id; the Sweeps tab lists registered ones",
                elem_id="checkpoint",
            )
            checkpoint_info = gr.Markdown(elem_id="checkpoint-info")
            example = gr.Dropdown(
                [(ex.label, ex.id) for ex in examples.values()],
                value=first,
                label="Example puzzle",
                elem_id="example",
            )
            uploads = gr.File(
                label="… or upload image(s) (PNG/JPEG, at most 2)",
                file_count="multiple",
                file_types=["image"],
                type="filepath",
                height=110,
                elem_id="uploads",
            )
            problem = gr.Gallery(
                list(examples[first].problem_paths) if first else None,
                label="Problem image(s)",
                columns=2,
                height=230,
                object_fit="contain",
                interactive=False,
                elem_id="problem",
            )
            question = gr.Textbox(
                examples[first].question if first else "", label="Question", lines=2, elem_id="question"
            )
            with gr.Accordion("Settings", open=False):
                mode = gr.Radio(
                    list(MODES),
                    value="auto",
                    label="Mode",
                    info="auto: the model decides; text-only: no sketches; noise-latents: sketches replaced by noise; "
                    "oracle: the example's true sketches inserted (examples with sketches only)",
                )
                temperature = gr.Slider(0, 2, value=0, step=0.05, label="Temperature (0 = greedy)")
                max_sketches = gr.Slider(0, 8, value=4, step=1, label="Max sketches")
                diffusion_steps = gr.Slider(0, 200, value=0, step=1, label="Diffusion steps T (0 = the checkpoint's)")
                max_new_tokens = gr.Slider(16, 1024, value=256, step=16, label="Max new positions")
                seed = gr.Number(0, precision=0, label="Seed", minimum=0)
            go = gr.Button("Reason", variant="primary", elem_id="run")
        with gr.Column(scale=6):
            reasoning = gr.HighlightedText(
                label="Reasoning: text, and sketches marked ⟨START⟩ … ⟨END⟩",
                color_map=render.COLOR_MAP,
                combine_adjacent=False,
                show_legend=True,
                elem_id="reasoning",
            )
            answer = gr.Markdown(elem_id="answer")
            sketches = gr.Gallery(
                label="Sketches: decoded pictures, then the example's true sketches",
                columns=4,
                height=250,
                fit_columns=False,  # one picture stays one column wide instead of filling the row
                elem_id="sketches",
            )
            note = gr.Markdown(elem_id="sketch-note")
            pick = gr.Dropdown([], label="Nearest gallery pictures of", elem_id="pick")
            neighbours = gr.Gallery(
                label="Nearest gallery pictures (cosine similarity of the K latents)",
                columns=NUM_NEIGHBOURS,
                height=220,
                fit_columns=False,
                elem_id="neighbours",
            )
            the_map = gr.Plot(label="Sketch map: UMAP of the gallery, stars = this answer's sketches", elem_id="map")
            with gr.Accordion("Trace (JSON, as the /reason endpoint returns it)", open=False):
                trace_json = gr.JSON(elem_id="trace-json")

    private = {"api_visibility": "private"}  # page plumbing; the API endpoints are in app/api.py
    example.input(bind(on_example, service), example, [problem, question, uploads], **private)
    uploads.upload(on_upload, uploads, [problem, example, uploads], **private)
    uploads.clear(lambda: [], None, problem, **private)
    checkpoint.input(bind(on_checkpoint, service), checkpoint, [banner, checkpoint_info], **private)
    inputs = [checkpoint, example, uploads, question, mode, temperature, max_sketches, diffusion_steps]
    inputs += [max_new_tokens, seed, session]
    outputs = [reasoning, answer, sketches, note, pick, neighbours, the_map, trace_json, session]
    go.click(
        bind(reason, service),
        inputs,
        outputs,
        show_progress="minimal",
        api_name="reason_page",  # named, so that the API's /reason keeps its name
        **private,  # the API's /reason returns the Trace; this one streams page updates
    )
    pick.input(bind(show_neighbours, service), [pick, session], neighbours, **private)
    return {"checkpoint": checkpoint, "checkpoint_info": checkpoint_info}
