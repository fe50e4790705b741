"""The named API endpoints, for `gradio_client` (the page's own events are private).

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    trace = client.predict(image=handle_file("maze.png"), question="Which colour lies on the way?", mode="auto",
                           seed=0, api_name="/reason")                    # the Trace as a dict
    client.predict(example_id="maze-1", api_name="/reason")               # a shipped example, graded
    client.predict(example_id="maze-1", modes=["auto", "zero-latents"], api_name="/compare")
    client.predict(latents=trace_with_latents["segments"][1]["latents"], k=5, api_name="/neighbours")
    client.predict(by="family", api_name="/switching_stats")

- /reason: image (file), extra_image (file, optional), question, mode, seed (a number, or text for seeds above 2**53),
  temperature (0–2), max_sketches, diffusion_steps (0 = the checkpoint's), max_new_tokens, example_id, checkpoint
  ("" = the app's; a folder, a preset, a hub id or a registered name from /checkpoints), include_latents →
  `Trace.to_dict()` (`Trace.from_dict` reads it back). Logs the answer's switch events.
- /compare: the same parameters without mode, plus modes (a list; empty = all of app.compare.COMPARE_MODES) →
  {"modes": {mode: {answer, correct, num_sketches, total_s}}, "skipped": {mode: why}, "traces": {mode: Trace dict}}.
- /neighbours: latents (K × D list), k, checkpoint → nearest gallery pictures and the sketch's map position.
- /switching_stats: checkpoint, family, run (comma-separated filters, "" = all), by → the summary table as records.
- /examples → the shipped example puzzles; /checkpoints → the default, registered and loaded checkpoints (a
  registered checkpoint's folder is under "checkpoint": gradio_client would take a "path" key for a file).

Integer parameters are refused when fractional, never rounded. Bad input comes back as an error whose message is
the InputError's or CheckpointError's (gradio_client raises `AppError` with it).
"""

import gradio as gr
import numpy as np

from app.compare import COMPARE_MODES, prepare_comparison, run_comparison
from app.plumbing import USER_ERRORS, bind, run_id_for, user_error
from app.reasoning import Request, prepare, run, whole_number
from app.service import Service
from app.stats_tab import compute
from model.generation.inputs import InputError
from model.generation.modes import MODES

GALLERY_WAIT_S = 600  # /neighbours waits this long for a gallery that is still being built


def _request(service: Service, image, extra_image, question, mode, seed, temperature, max_sketches,
             diffusion_steps, max_new_tokens, example_id, checkpoint, snap=True) -> Request:  # fmt: skip
    example = service.examples.get(example_id or "")
    if not question and example is not None and not (image or extra_image):
        question = example.question  # an example alone is a complete request
    return Request(
        question=question or "",
        files=[f for f in (image, extra_image) if f],
        example_id=example_id or "",
        mode=mode or "auto",
        temperature=0.0 if temperature is None else temperature,
        max_sketches=4 if max_sketches is None else max_sketches,
        diffusion_steps=diffusion_steps or 0,
        max_new_tokens=256 if max_new_tokens is None else max_new_tokens,
        seed="0" if seed in (None, "") else seed,
        checkpoint=checkpoint or "",
        snap=True if snap is None else snap,
    )


def reason(
    service: Service,
    image: str | None = None,
    extra_image: str | None = None,
    question: str = "",
    mode: str = "auto",
    seed: str = "0",
    temperature: float = 0.0,
    max_sketches: float = 4,
    diffusion_steps: float = 0,
    max_new_tokens: float = 256,
    example_id: str = "",
    checkpoint: str = "",
    include_latents: bool = False,
    snap: bool = True,
    request: gr.Request = None,
) -> dict:
    """Answer one question about one or two images (or a shipped example); returns the Trace as a dict."""
    req = _request(service, image, extra_image, question, mode, seed, temperature, max_sketches, diffusion_steps,
                   max_new_tokens, example_id, checkpoint, snap)  # fmt: skip
    try:
        job = prepare(service, req, run_id_for(request))
        for _ in run(job):
            pass
    except USER_ERRORS as err:
        raise user_error(err) from err
    return job.trace.to_dict(include_latents=bool(include_latents))


def compare(
    service: Service,
    image: str | None = None,
    extra_image: str | None = None,
    question: str = "",
    seed: str = "0",
    temperature: float = 0.0,
    max_sketches: float = 4,
    diffusion_steps: float = 0,
    max_new_tokens: float = 256,
    example_id: str = "",
    checkpoint: str = "",
    include_latents: bool = False,
    modes: list[str] | None = None,
    snap: bool = True,
    request: gr.Request = None,
) -> dict:
    """The same puzzle and seed under several modes: per mode its answer, right/wrong, sketches and time."""
    req = _request(service, image, extra_image, question, "auto", seed, temperature, max_sketches, diffusion_steps,
                   max_new_tokens, example_id, checkpoint, snap)  # fmt: skip
    try:
        comparison = prepare_comparison(service, req, modes, run_id_for(request))
        for _ in run_comparison(service, comparison):
            pass
    except USER_ERRORS as err:
        raise user_error(err) from err
    outcomes = {m: comparison.outcomes[m] for m in comparison.modes}  # in the order asked for
    return {
        "checkpoint": comparison.job.loaded.name,
        "example_id": comparison.job.example.id if comparison.job.example is not None else "",
        "seed": str(comparison.job.settings.seed),  # text: a JSON number would round seeds above 2**53
        "modes": {m: o.summary() for m, o in outcomes.items() if o.trace is not None},
        "skipped": {m: o.skipped for m, o in outcomes.items() if o.trace is None},
        "traces": {m: o.trace.to_dict(bool(include_latents)) for m, o in outcomes.items() if o.trace is not None},
    }


def neighbours(service: Service, latents: list[list[float]], k: float = 5, checkpoint: str = "") -> dict:
    """Nearest gallery pictures of one sketch's latents (K × D), with cosine similarities and its map position."""
    try:
        loaded = service.load(checkpoint or None)
        k = whole_number("k", k, 1, 100)
        try:
            array = np.asarray(latents, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise InputError(f"latents must be a K × D list of numbers: {err}") from err
        config = loaded.model.config
        if array.shape != (config.latent_budget, config.hidden_size):
            shape = (config.latent_budget, config.hidden_size)
            raise InputError(f"latents have shape {array.shape}; {loaded.name} needs (K, D) = {shape}")
        if not np.isfinite(array).all():
            bad = int((~np.isfinite(array)).sum())
            raise InputError(f"latents must be finite numbers; {bad} of {array.size} are NaN or infinite")
    except USER_ERRORS as err:
        raise user_error(err) from err
    if not loaded.wait_ready(GALLERY_WAIT_S) or loaded.gallery is None:
        raise gr.Error(f"no gallery for {loaded.name}: {loaded.status}")
    frame = service.neighbours(loaded, array, k)
    columns = ["rank", "similarity", "key", "example_id", "family", "role", "image_index"]
    return {
        "checkpoint": loaded.name,
        "neighbours": frame[columns].to_dict("records"),
        "map_xy": service.place(loaded, array),
    }


def switching_stats(
    service: Service, checkpoint: str = "", family: str = "", run: str = "", by: str = "family"
) -> dict:
    """Switching statistics of the answers in the event store, as summary records (grouped by `by`)."""

    def split(text: str) -> list[str]:
        return [part.strip() for part in (text or "").split(",") if part.strip()]

    try:
        stats = compute(service.config.event_store, split(checkpoint), split(family), split(run), split(by))
    except ValueError as err:
        raise gr.Error(str(err)) from err
    table = stats.table.astype(object).where(stats.table.notna(), None)  # NaN is not JSON
    return {"num_answers": stats.num_answers, "message": stats.message, "summary": table.to_dict("records")}


def examples(service: Service) -> list[dict]:
    """The shipped example puzzles: id, family, question, answer, choices, number of true sketches."""
    return [
        {
            "id": ex.id,
            "family": ex.family,
            "question": ex.question,
            "answer": ex.answer,
            "choices": list(ex.choices),
            "num_true_sketches": len(ex.sketch_order),
        }
        for ex in service.examples.values()
    ]


def checkpoints(service: Service) -> dict:
    """The app's default checkpoint, the registered ones and those loaded now. A registered checkpoint's folder is
    under "checkpoint" (what the `checkpoint` parameter of /reason takes): a "path" key would make gradio_client
    try to download it as a file."""
    return {
        "default": service.default_name,
        "registered": [
            {
                "name": e["name"],
                "checkpoint": e["path"],
                "latent_budget": e["latent_budget"],
                "diffusion_loss_weight": e["diffusion_loss_weight"],
                "stage": e["stage"],
            }  # fmt: skip
            for e in service.registry_entries()
        ],
        "loaded": service.loaded_names(),
    }


def register(service: Service) -> None:
    """Add the endpoints to the Blocks being built (call inside `with gr.Blocks()`)."""
    with gr.Column(visible=False):  # components only the API uses
        image = gr.File(type="filepath", label="image")
        extra_image = gr.File(type="filepath", label="extra_image")
        question = gr.Textbox("", label="question")
        mode = gr.Dropdown(list(MODES), value="auto", label="mode")
        seed = gr.Textbox("0", label="seed")  # text: every seed up to 2**63 - 1 arrives exactly
        temperature = gr.Number(0.0, label="temperature")
        max_sketches = gr.Number(4, label="max_sketches")  # no precision: fractional values are refused, not rounded
        diffusion_steps = gr.Number(0, label="diffusion_steps")
        max_new_tokens = gr.Number(256, label="max_new_tokens")
        example_id = gr.Textbox("", label="example_id")
        checkpoint = gr.Textbox("", label="checkpoint")
        include_latents = gr.Checkbox(False, label="include_latents")
        snap = gr.Checkbox(True, label="snap")
        modes = gr.Dropdown(list(COMPARE_MODES), value=list(COMPARE_MODES), multiselect=True, label="modes")
        trace = gr.JSON(label="trace")
        comparison = gr.JSON(label="comparison")
        reason_button, compare_button = gr.Button(), gr.Button()
    settings = [seed, temperature, max_sketches, diffusion_steps, max_new_tokens, example_id, checkpoint]
    reason_button.click(bind(reason, service), [image, extra_image, question, mode, *settings, include_latents, snap],
                        trace, api_name="reason")  # fmt: skip
    compare_inputs = [image, extra_image, question, *settings, include_latents, modes, snap]
    compare_button.click(bind(compare, service), compare_inputs, comparison, api_name="compare")
    for fn in (neighbours, switching_stats, examples, checkpoints):  # typed functions: gr.api reads the hints
        gr.api(bind(fn, service), api_name=fn.__name__)
