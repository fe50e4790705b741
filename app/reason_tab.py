"""The Reason tab: pick an example or upload images, ask, and watch the answer stream with its sketches; or compare
every mode on the same puzzle and seed.

Each example puzzle is offered in its canonical wording and in a paraphrase (app/example_puzzles.py). When an answer
starts, a line under the question names its words the checkpoint never saw in training (its training vocabulary,
model/data/vocabulary.py), or says that a checkpoint folder without one cannot be checked. The reasoning streams
as steps (app/render.py): text, and each sketch a collapsible step with its decoded picture
(when the checkpoint has a latent decoder) beside the example's true sketch. Each finished sketch also shows its
nearest gallery pictures with cosine similarities and its place on the UMAP map of the gallery (app/maps.py);
clicking a point of the map shows that point's neighbours. "Compare modes" runs the puzzle under auto,
noise-latents, zero-latents, shuffled-latents, oracle and text-only, then the registered text-only-CoT model
(`baseline/text-cot`, "the same puzzle reasoned in words", given at least 448 new positions; app/compare.py), and
shows them side by side, under the answer, which it leaves as it was. Choosing that model in the Checkpoint box
raises Max new positions to 448 too (`new_tokens_update`).

The page is served before the model is loaded (app/stack.py): until then the status line says what is loading, and
a timer fills in the checkpoint's description, banner and gallery progress; those lines follow the checkpoint in
use (`checkpoint_updates`: after the Checkpoint box, the Sweeps tab's "Use in the Reason tab", each answer). Bad
input is refused before the answer queue by a validator, whose messages Gradio shows on the inputs concerned, leaving
the page as it was; the settings are number boxes, so a value out of range reaches it (a slider would clamp it
silently). A name the Checkpoint box cannot load is said in one line under the box, which goes back to the
checkpoint in use (`in_use`); a refused upload leaves the chosen example.

The handlers are plain functions of (service, inputs…) that return or yield dicts of named updates (see
app/plumbing.py), so the tests call them without a browser; Reason and Compare take the controls as one `Request`
(PAGE_FIELDS, gathered by plumbing.gather). `build` lays out the components (`_inputs`, `_outputs`) and wires them
(`_events`).

Per-user state (`gr.State`, see `new_session`): the number of answers so far and every sketch of the session (label,
checkpoint, latents, map position), which the maps and the Explorer tab plot.
"""

import itertools
import os
import time

import gradio as gr
import numpy as np

from app import answers, render, stack
from app.example_puzzles import true_sketch_images
from app.maps import map_figure
from app.plumbing import form_parameters, page_problem, refused, run_id_for, wire
from app.request import (
    BASELINES,
    MAX_DIFFUSION_STEPS,
    MAX_NEW_TOKENS,
    MAX_SKETCHES,
    MAX_TEMPERATURE,
    Request,
)
from app.service import Service
from model.generation.modes import mode_labels, mode_names

comparing = stack.later("app.compare")
inputs = stack.later("model.generation.inputs")
STREAM_EVERY_S = 0.1  # text updates are batched: one page update per token would flood the browser
NO_GALLERY_YET = "The gallery is still being built (see the status line); the nearest pictures appear here once it is."


def new_session() -> dict:
    return {"answers": 0, "sketches": [], "last": []}  # last: the session indices of the last answer's sketches


# The Reason tab's controls that make a Request, in the order the events pass them (named as Request's fields)
PAGE_FIELDS = ("checkpoint", "example_id", "files", "question", "mode", "temperature", "max_sketches",
               "diffusion_steps", "max_new_tokens", "seed", "snap")  # fmt: skip
REASON_FORM = (form_parameters(PAGE_FIELDS), Request.from_page)
COMPARE_FORM = (form_parameters(f for f in PAGE_FIELDS if f != "mode"), Request.from_page)  # compare runs from auto


# ---- validators (run before the queue; {parameter: message}) ---------------------------------------------------
def reason_problems(service: Service, session=None, **values) -> dict[str, str]:
    """{control: message} for the Reason and Compare buttons' inputs (PAGE_FIELDS, named as Request's fields)."""
    return answers.problems(service, Request.from_page(**values))


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
    return {**problem_updates(example.problem_paths), "question": example.question, "uploads": None,
            "true_sketches": truths}  # fmt: skip


def true_sketches_html(example) -> str:
    images = true_sketch_images(example) if example is not None else []
    if not images:
        return ""
    captions = [f"true sketch {i + 1} of {example.id}" for i in range(len(images))]
    return "<p><strong>The example's true sketches</strong> (what oracle inserts)</p>" + render.pictures_html(
        images, captions
    )


def on_upload(files: list[str] | None) -> dict:
    """Check uploads at once, so a broken file is reported before anyone presses the button: one warning per file
    refused; when none is a picture, the upload box empties and the page stays as it was (the chosen example too)."""
    if not files:
        return {}
    good = []
    for path in files:
        try:
            inputs.load_image(path)
            good.append(path)
        except ValueError as err:  # InputError
            name = os.path.basename(path)
            message = str(err) if name in str(err) else f"{name}: {err}"
            refused("upload", message)
            gr.Warning(message, title="Upload refused")
    if not good:
        return {"uploads": None}
    return {**problem_updates(good), "example": None, "uploads": good, "true_sketches": ""}


def on_checkpoint(service: Service, name: str, in_use: str | None, max_new_tokens=None) -> dict:
    """Load the checkpoint typed or chosen in the box (kept in a small cache) and say what it is; its gallery builds
    meanwhile. One that cannot be used is named in one line under the box, which goes back to the checkpoint in
    use: the rest of the page stays as it was. Max new positions rises to what the checkpoint needs
    (`new_tokens_update`)."""
    in_use = in_use or service.default_name
    try:
        loaded = service.load(name)
    except ValueError as err:  # CheckpointError; a fault is raised again
        page_problem(err, "checkpoint", warn=False)
        message = f"**Not loaded:** {err}. Still using `{in_use}`."
        return {"checkpoint": in_use, "checkpoint_message": gr.update(value=message, visible=True)}
    return {"checkpoint": loaded.name, "in_use": loaded.name, **checkpoint_updates(service, loaded),
            **new_tokens_update(service, loaded, max_new_tokens)}  # fmt: skip


def new_tokens_update(service: Service, loaded, max_new_tokens) -> dict:
    """The Max new positions box raised to the fewest the checkpoint needs (the text-only-CoT model's 448: it writes
    a 16×16 board out in 355–365 tokens; Service.min_new_tokens), with a note, when it holds fewer; {} otherwise. A
    value typed afterwards is the user's to choose."""
    need = service.min_new_tokens(loaded)
    try:
        enough = float(max_new_tokens) >= need
    except (TypeError, ValueError):
        enough = False
    if not need or enough:
        return {}
    gr.Info(f"Max new positions raised to {need}: {loaded.name} writes its reasoning in words (a 16×16 board "
            "takes 355–365 tokens)")  # fmt: skip
    return {"max_new_tokens": need}


def checkpoint_updates(service: Service, loaded) -> dict:
    """The page's lines about the checkpoint in use: banner, description, gallery status (its timer runs while the
    gallery builds), and no leftover message about a name that could not be loaded."""
    banner = loaded.notes.get("weights", "")
    return {
        "banner": gr.update(value=banner, visible=bool(banner)),
        "checkpoint_info": loaded.describe(),
        "gallery_status": gallery_status_text(service, loaded.name),
        "timer": gr.Timer(active=not loaded.ready.is_set()),
        "checkpoint_message": gr.update(value="", visible=False),
    }


def gallery_status_text(service: Service, name: str | None) -> str:
    """What the page can do now: the model code or checkpoint still loading, the gallery's progress, ready, or (a
    checkpoint unloaded to make room for others) that the next answer loads it again."""
    loaded = service.peek(name)
    if loaded is not None:
        state = "Ready" if loaded.ready.is_set() else "Building"
        return f"**{state}:** `{loaded.name}`: {loaded.status}"
    if service.loading or not service.stack_ready:
        return f"**Loading:** {service.stage}"
    return f"**Not loaded:** `{name}` was unloaded to make room for other checkpoints; the next answer loads it again"


def on_tick(service: Service, name: str, pick: int | None, session: dict | None) -> dict:
    """While the model loads and its gallery builds: their progress, the checkpoint's description and banner.
    The tick that sees the gallery ready stops the timer, adds the presets to the checkpoint choices and fills in
    the neighbours and the map of the last answer."""
    loaded = service.peek(name)
    out = {"gallery_status": gallery_status_text(service, name), "timer": gr.Timer(active=True)}
    if loaded is None:
        if not service.loading:  # unloaded meanwhile: the next answer loads it (and restarts the timer)
            out["timer"] = gr.Timer(active=False)
        return out
    banner = loaded.notes.get("weights", "")
    out.update(checkpoint_info=loaded.describe(), banner=gr.update(value=banner, visible=bool(banner)))
    if loaded.ready.is_set():
        out.update(timer=gr.Timer(active=False), note=notes(loaded), checkpoint=gr.update(
            choices=service.checkpoint_choices()), **gallery_updates(service, loaded, pick, session))  # fmt: skip
    return out


def gallery_updates(service: Service, loaded, pick: int | None, session: dict | None) -> dict:
    """Neighbours of the chosen sketch and the map of the last answer, once the gallery is ready."""
    sketches = (session or {}).get("sketches", [])
    last = [sketches[i] for i in (session or {}).get("last", []) if sketches[i]["checkpoint"] == loaded.name]
    if not last:
        return {}
    models = service.models
    entries = [dict(e, xy=models.place(loaded, e["latents"]), point=f"s:{i}") for i, e in enumerate(sketches)]
    stars = [entries[i] for i in session["last"] if entries[i]["checkpoint"] == loaded.name]
    chosen = sketches[pick] if pick is not None and 0 <= pick < len(sketches) else last[-1]
    pictures = models.neighbour_pictures(loaded, chosen["latents"])
    return {"neighbours": render.neighbours_html(pictures), "map": _map(loaded, stars)}


def _map(loaded, entries: list[dict]):
    """The gallery map with the given sketches as stars (None without a map)."""
    if loaded.points is None:
        return None
    stars = [dict(x=e["xy"][0], y=e["xy"][1], label=e["short"], point=e["point"]) for e in entries if e["xy"]]
    return map_figure(loaded.points, stars)


def sketch_entry(service: Service, job, sketch, answer: int, number: int) -> dict:
    """What the page and the session keep of one finished sketch; `number` is its place in the session."""
    latents = np.asarray(sketch.latents, dtype=np.float32)  # (K, D)
    loaded = job.loaded
    return {
        "label": f"answer {answer} · sketch {sketch.index + 1}",
        "short": f"s{sketch.index + 1}",
        "point": f"s:{number}",
        "checkpoint": loaded.name,
        "latents": latents,
        "xy": None if loaded.projection is None else service.models.place(loaded, latents),
        "decoded": job.picture(sketch),
    }


def notes(loaded) -> str:
    return "\n\n".join(p for p in (loaded.notes.get("decoder", ""), loaded.notes.get("map", "")) if p)


def _neighbours(service: Service, loaded, latents) -> str:
    pictures = [] if loaded.gallery is None else service.models.neighbour_pictures(loaded, latents)
    return render.neighbours_html(pictures, NO_GALLERY_YET)


def reason(service: Service, form: Request, session: dict | None, request: gr.Request = None):
    """Stream one answer as named updates: reasoning, answer, note, pick, neighbours, map, trace, session."""
    session = dict(session or new_session())
    session["sketches"] = list(session["sketches"])
    with service.answering():  # the gallery waits for answers in flight
        try:
            job = answers.prepare(service, form, run_id_for(request))
        except ValueError as err:
            page_problem(err, "reason")
            yield {}  # the page stays as it was
            return
        yield from _answer(service, job, session)


def _answer(service: Service, job, session: dict):
    """The updates of one checked answer: its steps as they stream, each sketch's neighbours and place on the map,
    then the answer line, right or wrong, timings and the trace."""
    loaded, answer = job.loaded, session["answers"] + 1  # loaded: a WorkerCheckpoint when the worker answers
    truths = true_sketch_images(job.example) if job.example is not None else []
    live = render.LiveAnswer(job.diffusion_steps, truths)
    entries, last = [], 0.0
    unseen = render.unseen_words_markdown(job.unseen_words, loaded.name, loaded.notes.get("vocabulary", ""))
    yield {"reasoning": live.html(), "answer": "*generating…*", "compare": "", "note": notes(loaded),
           "pick": gr.update(choices=[], value=None), "neighbours": "", "map": _map(loaded, []), "trace": None,
           "unseen_words": gr.update(value=unseen, visible=bool(unseen)),
           **checkpoint_updates(service, loaded)}  # fmt: skip
    for event in answers.run(job):
        if event.kind == "sketch_done":
            entry = sketch_entry(service, job, event.sketch, answer, len(session["sketches"]))
            live.add(event, entry["decoded"])
            entries.append(entry)
            session["sketches"].append({k: entry[k] for k in ("label", "short", "checkpoint", "latents", "xy")})
            first = len(session["sketches"]) - len(entries)
            choices = [(e["label"], first + i) for i, e in enumerate(entries)]
            yield {"reasoning": live.html(), "answer": render.progress_markdown(len(entries)),
                   "pick": gr.update(choices=choices, value=len(session["sketches"]) - 1),
                   "neighbours": _neighbours(service, loaded, entry["latents"]),
                   "map": _map(loaded, entries)}  # fmt: skip
        elif event.kind != "finished":  # the finished trace is on the job (and logged); the final update follows
            live.add(event)
            if event.kind == "sketch_started" or time.perf_counter() - last > STREAM_EVERY_S:
                last = time.perf_counter()
                yield {"reasoning": live.html(), "answer": render.progress_markdown(len(entries))}
    trace = job.trace
    if job.log_error:
        gr.Warning(job.log_error)
    count = len(session["sketches"])
    session.update(answers=answer, last=list(range(count - len(entries), count)))
    expected = job.example.answer if job.example is not None else None
    final = {
        "reasoning": render.trace_html(trace, live.diffusion_steps, [e["decoded"] for e in entries], truths),
        "session": session,
        "answer": render.answer_markdown(trace, trace.correct, expected),
        "trace": trace.to_dict(),
        "note": notes(loaded),
    }
    if entries and loaded.ready.is_set():  # the gallery may have become ready during the answer
        final["neighbours"] = _neighbours(service, loaded, entries[-1]["latents"])
        final["map"] = _map(loaded, [dict(e, xy=service.models.place(loaded, e["latents"])) for e in entries])
    yield final


def compare(service: Service, form: Request, request: gr.Request = None):
    """Every mode on the same puzzle and seed, then the baseline models (BASELINES), side by side under the answer;
    yields the table as each column finishes (the answer above is left as it was)."""
    with service.answering():  # the gallery waits for answers in flight
        try:
            comparison = comparing.prepare_comparison(service, form, None, run_id_for(request))  # every mode
        except ValueError as err:
            page_problem(err, "compare")
            yield {}
            return
        job = comparison.job
        columns = {mode: render.CompareColumn(mode) for mode in comparison.modes}
        columns.update({key: render.CompareColumn(key, subtitle=b.about) for key, b in BASELINES.items()})
        table = _compare_table(job, comparison.modes)
        yield {"compare": table(columns, running=True)}
        outcomes = itertools.chain(comparing.run_comparison(service, comparison),
                                   comparing.run_baselines(service, comparison))  # fmt: skip
        for outcome in outcomes:
            pictures = ()
            if outcome.mode in comparison.modes and outcome.trace is not None:
                pictures = tuple(service.models.decode(job.loaded, s.latents) for s in outcome.trace.sketches)
            column = columns[outcome.mode]
            columns[outcome.mode] = render.CompareColumn(outcome.mode, outcome.trace, outcome.correct,
                                                         outcome.skipped, pictures, column.subtitle)  # fmt: skip
            yield {"compare": table(columns, running=True)}
        if job.log_error:
            gr.Warning(job.log_error)
        yield {"compare": table(columns, running=False)}


def _compare_table(job, modes: list[str]):
    """`table(columns, running)`: Compare's HTML with its title, the expected answer and whether it is done."""
    expected = job.example.answer if job.example is not None else None
    what = job.example.id if job.example is not None else "the uploaded image(s)"
    models = ", ".join(f"the {key} model" for key in BASELINES)
    seed = job.settings.seed
    title = f"<h3>Compared {len(modes)} modes and {models} on {render.html.escape(what)} · seed {seed}</h3>"

    more = [f"the {key} model at least {b.min_new_tokens} new positions" for key, b in BASELINES.items()
            if b.min_new_tokens > job.settings.max_new_tokens]  # fmt: skip
    same = "same prompt, settings and seed in every column" + (f" ({', '.join(more)})" if more else "")

    def table(columns: dict, running: bool) -> str:
        status = "<p><em>running…</em></p>" if running else f"<p>{same}</p>"
        return render.compare_html(list(columns.values()), expected, title + status)

    return table


def show_neighbours(service: Service, index: int | None, session: dict | None) -> dict:
    """The neighbours of a sketch of this session, chosen in the dropdown."""
    sketches = (session or {}).get("sketches", [])
    if index is None or not 0 <= int(index) < len(sketches):
        return {}
    entry = sketches[int(index)]
    try:
        loaded = service.load(entry["checkpoint"])
    except ValueError as err:
        page_problem(err, "neighbours")
        return {}
    return {"neighbours": _neighbours(service, loaded, entry["latents"])}


def on_map_click(service: Service, value: str, checkpoint: str, session: dict | None) -> dict:
    """A point of the map was clicked: its nearest gallery pictures."""
    try:
        loaded = service.load(checkpoint)
        point = service.models.point(loaded, value, (session or {}).get("sketches", []))
    except ValueError as err:  # a point that is not there is the page's fault, not the user's: say so anyway
        gr.Warning(str(err))
        return {}
    return {"neighbours": render.neighbours_html(point.neighbours, NO_GALLERY_YET), "note": point.text}


# ---- layout -----------------------------------------------------------------------------------------------------
def build(service: Service, session: gr.State, banner: gr.Markdown, concurrency: int = 2) -> dict:
    """The tab's components and events; returns the components other tabs use. Answers (Reason, Compare) share
    `concurrency` slots of the queue; the page's other events need no slot."""
    c = {"banner": banner, "session": session}
    with gr.Row():
        with gr.Column(scale=4):
            _inputs(service, c)
        with gr.Column(scale=6):
            _outputs(service, c)
    _events(service, c, concurrency)
    return c


def _inputs(service: Service, c: dict) -> None:
    examples = service.examples
    first = "maze-1" if "maze-1" in examples else next(iter(examples), None)
    c["checkpoint"] = gr.Dropdown(service.checkpoint_choices(), value=service.default_name, allow_custom_value=True,
                                  label="Checkpoint", elem_id="checkpoint",
                                  info="demo (the trained model), a registered name (Sweeps tab), a checkpoint "
                                  "folder, a hub id, or tiny / demo-random (random weights); Enter loads it",
                                  )  # fmt: skip
    c["checkpoint_message"] = gr.Markdown("", visible=False, elem_id="checkpoint-message")  # a name not loaded
    c["in_use"] = gr.State(service.default_name)  # the checkpoint this page uses (the box goes back to it)
    c["checkpoint_info"] = gr.Markdown(f"`{service.default_name}`", elem_id="checkpoint-info")
    c["gallery_status"] = gr.Markdown(gallery_status_text(service, None), elem_id="gallery-status")
    c["timer"] = gr.Timer(1.0, active=True)
    c["example"] = gr.Dropdown([(ex.label, ex.id) for ex in examples.values()], value=first, label="Example puzzle",
                               elem_id="example")  # fmt: skip
    c["uploads"] = gr.File(label="… or upload image(s) (PNG/JPEG, at most 2)", file_count="multiple",
                           file_types=["image"], type="filepath", height=110, elem_id="uploads")  # fmt: skip
    paths = list(examples[first].problem_paths) if first else []
    with gr.Row():  # whole pictures: gr.Image keeps the aspect ratio, where gallery thumbnails crop
        c["problem_1"] = gr.Image(paths[0] if paths else None, label="Problem image", type="filepath",
                                  interactive=False, height=320, elem_id="problem")  # fmt: skip
        c["problem_2"] = gr.Image(paths[1] if len(paths) > 1 else None, label="Second problem image",
                                  type="filepath", interactive=False, height=320, visible=len(paths) > 1,
                                  elem_id="problem-2")  # fmt: skip
    c["question"] = gr.Textbox(examples[first].question if first else "", label="Question", lines=2,
                               elem_id="question")  # fmt: skip
    c["unseen_words"] = gr.Markdown("", visible=False, elem_id="unseen-words")  # the words the checkpoint never saw
    with gr.Accordion("Settings", open=True):
        c["mode"] = gr.Radio(mode_names(), value=Request.mode, label="Mode", elem_id="mode", info=mode_labels())
        # number boxes, not sliders: a slider clamps a typed value silently, where the checks name it (as the API's)
        with gr.Row():
            c["temperature"] = gr.Number(Request.temperature, step=0.05, elem_id="temperature",
                                         label=f"Temperature (0 = greedy … {MAX_TEMPERATURE:g})")  # fmt: skip
            c["max_sketches"] = gr.Number(Request.max_sketches, step=1, elem_id="max-sketches",
                                          label=f"Max sketches (0 … {MAX_SKETCHES})")  # fmt: skip
        with gr.Row():
            steps = f"Diffusion steps T (0 = checkpoint's … {MAX_DIFFUSION_STEPS})"
            c["diffusion_steps"] = gr.Number(Request.diffusion_steps, step=1, label=steps, elem_id="diffusion-steps")
            c["max_new_tokens"] = gr.Number(Request.max_new_tokens, step=16, elem_id="max-new-tokens",
                                            label=f"Max new positions (1 … {MAX_NEW_TOKENS})")  # fmt: skip
        c["seed"] = gr.Textbox(str(Request.seed), label="Seed (a whole number from 0 to 2**63 - 1)", elem_id="seed")
        c["snap"] = gr.Checkbox(Request.snap, label="Snap each drawn latent to the checkpoint's codebook",
                                info="when it has one; off: the head's samples are fed back as drawn")  # fmt: skip
    with gr.Row():
        c["go"] = gr.Button("Reason", variant="primary", elem_id="run")
        c["compare_button"] = gr.Button("Compare modes", elem_id="compare-run")


def _outputs(service: Service, c: dict) -> None:
    examples = service.examples
    first = "maze-1" if "maze-1" in examples else next(iter(examples), None)
    c["reasoning"] = gr.HTML(label="Reasoning", elem_id="reasoning", value='<div class="reasoning">…</div>',
                             min_height=80)  # fmt: skip
    c["answer"] = gr.Markdown(elem_id="answer")
    c["compare"] = gr.HTML("", elem_id="compare")
    c["true_sketches"] = gr.HTML(true_sketches_html(examples.get(first)), elem_id="true-sketches")
    c["note"] = gr.Markdown("", elem_id="sketch-note")
    c["pick"] = gr.Dropdown([], label="Nearest gallery pictures of", elem_id="pick")
    gr.Markdown("**Nearest gallery pictures** (cosine similarity of the K latents)")
    c["neighbours"] = gr.HTML("", elem_id="neighbours")
    c["map"] = gr.Plot(label="Sketch map: UMAP of the gallery (circles problem, diamonds reasoning pictures), stars = "
                       "this answer's sketches; click a point for its neighbours", elem_id="map")  # fmt: skip
    c["click"] = gr.Textbox(visible="hidden", elem_id="map-click")
    c["click_go"] = gr.Button(visible="hidden", elem_id="map-click-go")
    with gr.Accordion("Trace (JSON, as the /reason endpoint returns it)", open=False):
        c["trace"] = gr.JSON(elem_id="trace-json")


def _events(service: Service, c: dict, concurrency: int) -> None:
    def out(*names):
        return {name: c[name] for name in names}

    answers = dict(concurrency_limit=concurrency, concurrency_id="answers", show_progress="minimal")
    wire(c["example"].input, on_example, (service,), c["example"],
         out("problem_1", "problem_2", "question", "uploads", "true_sketches"))  # fmt: skip
    wire(c["uploads"].upload, on_upload, (), c["uploads"],
         out("problem_1", "problem_2", "example", "uploads", "true_sketches"))  # fmt: skip
    c["uploads"].clear(lambda: (None, gr.update(visible=False)), None, [c["problem_1"], c["problem_2"]],
                       api_visibility="private")  # fmt: skip
    shown = ("banner", "checkpoint_info", "gallery_status", "timer", "checkpoint_message")  # checkpoint_updates
    wire(c["checkpoint"].input, on_checkpoint, (service,), [c["checkpoint"], c["in_use"], c["max_new_tokens"]],
         out("checkpoint", "in_use", "max_new_tokens", *shown))  # fmt: skip
    wire(c["timer"].tick, on_tick, (service,), [c["checkpoint"], c["pick"], c["session"]],
         out("gallery_status", "checkpoint_info", "banner", "checkpoint", "timer", "note", "neighbours", "map"),
         show_progress="hidden")  # fmt: skip
    controls = {"example_id": c["example"], "files": c["uploads"]}  # the others are named as the fields
    form = [controls.get(name, c.get(name)) for name in PAGE_FIELDS]
    wire(c["go"].click, reason, (service,), [*form, c["session"]],
         out("reasoning", "answer", "compare", "note", "pick", "neighbours", "map", "trace", "session",
             "unseen_words", *shown),
         check=reason_problems, form=REASON_FORM, **answers)  # fmt: skip
    wire(c["compare_button"].click, compare, (service,), [f for f in form if f is not c["mode"]], out("compare"),
         check=reason_problems, form=COMPARE_FORM, **answers)  # fmt: skip
    wire(c["pick"].input, show_neighbours, (service,), [c["pick"], c["session"]], out("neighbours"))
    wire(c["click_go"].click, on_map_click, (service,), [c["click"], c["checkpoint"], c["session"]],
         out("neighbours", "note"))  # fmt: skip
