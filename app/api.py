"""The named API endpoints, for `gradio_client` (the page's own events are private).

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    trace = client.predict(image=handle_file("maze.png"), question="Which colour lies on the way?", mode="auto",
                           seed=0, api_name="/reason")                    # the Trace as a dict
    client.predict(example_id="maze-1", api_name="/reason")               # a shipped example, graded
    client.predict(latents=trace_with_latents["segments"][1]["latents"], k=5, api_name="/neighbours")
    client.predict(by="family", api_name="/switching_stats")

- /reason: image (file), extra_image (file, optional), question, mode, seed, temperature, max_sketches,
  diffusion_steps (0 = the checkpoint's), max_new_tokens, example_id, checkpoint ("" = the app's),
  include_latents → `Trace.to_dict()` (`Trace.from_dict` reads it back). Logs the answer's switch events.
- /neighbours: latents (K × D list), k, checkpoint → nearest gallery pictures and the sketch's map position.
- /switching_stats: checkpoint, family, run (comma-separated filters, "" = all), by → the summary table as records.
- /examples → the shipped example puzzles; /checkpoints → the default, registered and loaded checkpoints.

Bad input comes back as an error whose message is the InputError's (gradio_client raises `AppError`).
"""

import gradio as gr
import numpy as np

from app.plumbing import bind, run_id_for, user_error
from app.reasoning import Request, prepare, run
from app.service import Service
from app.stats_tab import compute
from model.core.checkpoint import CheckpointError
from model.generation.engine import MODES
from model.generation.inputs import InputError


def reason(
    service: Service,
    image: str | None = None,
    extra_image: str | None = None,
    question: str = "",
    mode: str = "auto",
    seed: int = 0,
    temperature: float = 0.0,
    max_sketches: int = 4,
    diffusion_steps: int = 0,
    max_new_tokens: int = 256,
    example_id: str = "",
    checkpoint: str = "",
    include_latents: bool = False,
    request: gr.Request = None,
) -> dict:
    """Answer one question about one or two images (or a shipped example); returns the Trace as a dict."""
    example = service.examples.get(example_id or "")
    if not question and example is not None and not (image or extra_image):
        question = example.question  # an example alone is a complete request
    req = Request(
        question=question or "",
        files=[f for f in (image, extra_image) if f],
        example_id=example_id or "",
        mode=mode or "auto",
        temperature=0.0 if temperature is None else temperature,
        max_sketches=4 if max_sketches is None else max_sketches,
        diffusion_steps=diffusion_steps or 0,
        max_new_tokens=256 if max_new_tokens is None else max_new_tokens,
        seed=0 if seed is None else seed,
        checkpoint=checkpoint or "",
    )
    try:
        job = prepare(service, req, run_id_for(request))
        for _ in run(job):
            pass
    except (InputError, CheckpointError) as err:
        raise user_error(err) from err
    return job.trace.to_dict(include_latents=bool(include_latents))


def neighbours(service: Service, latents: list[list[float]], k: int = 5, checkpoint: str = "") -> dict:
    """Nearest gallery pictures of one sketch's latents (K × D), with cosine similarities and its map position."""
    try:
        loaded = service.load(checkpoint or None)
    except CheckpointError as err:
        raise user_error(err) from err
    gallery = loaded.gallery
    try:
        array = np.asarray(latents, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise gr.Error(f"latents must be a K × D list of numbers: {err}") from err
    if array.shape != (gallery.num_latents, gallery.dim):
        raise gr.Error(
            f"latents have shape {array.shape}; {loaded.name} needs (K, D) = ({gallery.num_latents}, {gallery.dim})"
        )
    if not 1 <= int(k) <= 100:
        raise gr.Error(f"k must be from 1 to 100, got {k}")
    frame = service.neighbours(loaded, array, int(k))
    columns = ["rank", "similarity", "key", "example_id", "family", "role", "image_index"]
    xy = service.place(loaded, array)
    return {"checkpoint": loaded.name, "neighbours": frame[columns].to_dict("records"), "map_xy": xy}


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
    """The app's default checkpoint, the registered ones and those loaded now."""
    return {
        "default": service.default_name,
        "registered": [
            {k: e[k] for k in ("name", "path", "latent_budget", "diffusion_loss_weight", "stage")}
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
        seed = gr.Number(0, precision=0, label="seed")
        temperature = gr.Number(0.0, label="temperature")
        max_sketches = gr.Number(4, precision=0, label="max_sketches")
        diffusion_steps = gr.Number(0, precision=0, label="diffusion_steps")
        max_new_tokens = gr.Number(256, precision=0, label="max_new_tokens")
        example_id = gr.Textbox("", label="example_id")
        checkpoint = gr.Textbox("", label="checkpoint")
        include_latents = gr.Checkbox(False, label="include_latents")
        trace = gr.JSON(label="trace")
        button = gr.Button()
    inputs = [image, extra_image, question, mode, seed, temperature, max_sketches, diffusion_steps, max_new_tokens]
    inputs += [example_id, checkpoint, include_latents]
    button.click(bind(reason, service), inputs, trace, api_name="reason")
    for fn in (neighbours, switching_stats, examples, checkpoints):  # typed functions: gr.api reads the hints
        gr.api(bind(fn, service), api_name=fn.__name__)
