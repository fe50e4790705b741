"""The named API endpoints, for `gradio_client` and, with `--mcp`, as MCP tools (the page's own events are private).

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    trace = client.predict(image=handle_file("maze.png"), question="Which colour lies on the way?", mode="auto",
                           seed=0, api_name="/reason")                    # the Trace as a dict
    client.predict(example_id="maze-1", api_name="/reason")               # a shipped example, graded
    client.predict(example_id="maze-1", modes=["auto", "zero-latents"], api_name="/compare")
    client.predict(latents=trace_with_latents["segments"][1]["latents"], k=5, api_name="/neighbours")
    client.predict(by="family", api_name="/switching_stats")

Each endpoint's docstring says what its parameters mean (Gradio's API page and the MCP tool list read it).

Bad input to /reason and /compare is refused before the answer queue by a validator (gradio_client raises
`ValidationError` naming each bad parameter; over REST the POST answers 422 with the messages), so a checkpoint
name that cannot be reached never holds an answer slot (/neighbours and the others need none). What only shows once
the model runs (a damaged checkpoint folder, latents of the wrong shape) comes back as an error with the
InputError's or CheckpointError's message (`AppError`). Integer parameters are refused when fractional, never
rounded.
"""

import inspect

import gradio as gr
import numpy as np

from app import stack
from app.plumbing import api_errors, bind, run_id_for, user_error, validator
from app.request import COMPARE_MODES, Request
from app.service import Service
from app.stats_tab import compute
from model.generation.modes import MODES

reasoning = stack.later("app.reasoning")
comparing = stack.later("app.compare")
inputs = stack.later("model.generation.inputs")
GALLERY_WAIT_S = 600  # /neighbours waits this long for a gallery that is still being built
MAX_K = 100


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
        seed=seed,
        checkpoint=checkpoint or "",
        snap=True if snap is None else snap,
        via="api",
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
    """Answer a question about one or two puzzle images (or a shipped example) with the modal-mixed model, which
    reasons in text and latent sketches. Returns the Trace as a dict: text, answer, correct (for examples), sketches.

    Args:
        image: the puzzle picture (PNG or JPEG, at most 4096×4096 pixels and 20 MB); leave empty with example_id.
        extra_image: a second picture, for puzzles that have two (optional).
        question: the question about the picture(s); with example_id it defaults to the example's question.
        mode: auto (the model decides when to sketch), text-only, direct, noise-, zero-, shuffled-latents or oracle.
        seed: a whole number from 0 to 2**63 - 1, as text or an integer; not empty.
        temperature: sampling temperature from 0 (greedy) to 2.
        max_sketches: the most sketches the answer may draw, a whole number from 0 to 64.
        diffusion_steps: steps T of the sketch sampler, a whole number from 0 to 1000; 0 uses the checkpoint's own.
        max_new_tokens: the most positions the answer may write, a whole number from 1 to 1024.
        example_id: a shipped example puzzle (see the examples tool), used instead of image.
        checkpoint: "" for the app's, or a folder, a preset, a hub id or a registered name (see checkpoints).
        include_latents: true to include each sketch's K × D latents (needed by the neighbours tool).
        snap: true to snap drawn latents to the checkpoint's codebook (if any); false to feed them back as drawn.
    """
    req = _request(service, image, extra_image, question, mode, seed, temperature, max_sketches, diffusion_steps,
                   max_new_tokens, example_id, checkpoint, snap)  # fmt: skip
    with service.answering(), api_errors("reason"):
        job = reasoning.prepare(service, req, run_id_for(request))
        for _ in reasoning.run(job):
            pass
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
    """Answer the same puzzle with the same seed under several modes, to see whether the sketches matter. Returns
    per mode its answer, right/wrong, number of sketches and time, the modes that could not run and why, and traces.

    Args:
        image: the puzzle picture (PNG or JPEG); leave empty with example_id.
        extra_image: a second picture, for puzzles that have two (optional).
        question: the question about the picture(s); with example_id it defaults to the example's question.
        seed: a whole number from 0 to 2**63 - 1, as text or an integer; not empty.
        temperature: sampling temperature from 0 (greedy) to 2.
        max_sketches: the most sketches each answer may draw, a whole number from 0 to 64.
        diffusion_steps: steps T of the sketch sampler, a whole number from 0 to 1000; 0 uses the checkpoint's own.
        max_new_tokens: the most positions each answer may write, a whole number from 1 to 1024.
        example_id: a shipped example puzzle (see the examples tool), used instead of image.
        checkpoint: "" for the app's, or a folder, a preset, a hub id or a registered name (see checkpoints).
        include_latents: true to include each sketch's latents in the traces.
        modes: the modes to run: auto, text-only, noise-latents, zero-latents, shuffled-latents, oracle; [] = all.
        snap: true to snap drawn latents to the checkpoint's codebook when it has one.
    """
    req = _request(service, image, extra_image, question, "auto", seed, temperature, max_sketches, diffusion_steps,
                   max_new_tokens, example_id, checkpoint, snap)  # fmt: skip
    with service.answering(), api_errors("compare"):
        comparison = comparing.prepare_comparison(service, req, modes, run_id_for(request))
        for _ in comparing.run_comparison(service, comparison):
            pass
    outcomes = {m: comparison.outcomes[m] for m in comparison.modes}  # in the order asked for
    return {
        "checkpoint": comparison.job.loaded.name,
        "example_id": comparison.job.example.id if comparison.job.example is not None else "",
        "seed": str(comparison.job.settings.seed),  # text: a JSON number would round seeds above 2**53 in browsers
        "modes": {m: o.summary() for m, o in outcomes.items() if o.trace is not None},
        "skipped": {m: o.skipped for m, o in outcomes.items() if o.trace is None},
        "traces": {m: o.trace.to_dict(bool(include_latents)) for m, o in outcomes.items() if o.trace is not None},
    }


def neighbours(service: Service, latents: list[list[float]], k: float = 5, checkpoint: str = "") -> dict:
    """The gallery pictures nearest to one sketch (cosine similarity of its latents) and its place on the map.

    Args:
        latents: one sketch's latents, a K × D list of numbers (reason with include_latents=true gives them).
        k: how many neighbours, a whole number from 1 to 100.
        checkpoint: the checkpoint that drew the sketch; "" for the app's.
    """
    with api_errors("neighbours"):
        loaded = service.load(checkpoint or None)
        k = reasoning.whole_number("k", k, 1, MAX_K)
        array = _latents(latents)
        config = loaded.model.config
        if array.shape != (config.latent_budget, config.hidden_size):
            shape = (config.latent_budget, config.hidden_size)
            raise inputs.InputError(f"latents have shape {array.shape}; {loaded.name} needs (K, D) = {shape}")
    if not loaded.wait_ready(GALLERY_WAIT_S) or loaded.gallery is None:
        raise gr.Error(f"no gallery for {loaded.name}: {loaded.status}")
    frame = service.models.neighbours(loaded, array, k)
    columns = ["rank", "similarity", "key", "example_id", "family", "role", "image_index"]
    return {
        "checkpoint": loaded.name,
        "neighbours": frame[columns].to_dict("records"),
        "map_xy": service.models.place(loaded, array),
    }


def _latents(latents) -> np.ndarray:
    try:
        array = np.asarray(latents, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise inputs.InputError(f"latents must be a K × D list of numbers: {err}") from err
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise inputs.InputError(f"latents must be finite numbers; {bad} of {array.size} are NaN or infinite")
    return array


def switching_stats(
    service: Service, checkpoint: str = "", family: str = "", run: str = "", by: str = "family", mode: str = "auto"
) -> dict:
    """Switching statistics of the answers in the app's event store: how often and where the model starts a sketch,
    and accuracy by number of sketches, as summary records grouped by `by` and the mode.

    Args:
        checkpoint: comma-separated checkpoint names to keep; "" keeps all.
        family: comma-separated puzzle families to keep (e.g. maze,fold); "" keeps all.
        run: comma-separated run ids to keep (one per browser session or API client); "" keeps all.
        by: comma-separated columns to group by, from family, checkpoint, run_id, mode, latent_budget, example_id.
        mode: comma-separated modes to keep; "auto" by default (Compare's other modes replace sketches); "" = all.
    """

    def split(text: str) -> list[str]:
        return [part.strip() for part in (text or "").split(",") if part.strip()]

    try:
        stats = compute(service.config.event_store, split(checkpoint), split(family), split(run), split(by),
                        split(mode))  # fmt: skip
    except ValueError as err:
        raise user_error(err, "switching_stats") from None
    table = stats.table.astype(object).where(stats.table.notna(), None)  # NaN is not JSON
    return {"num_answers": stats.num_answers, "message": stats.message, "summary": table.to_dict("records")}


def examples(service: Service) -> list[dict]:
    """The shipped example puzzles: id (for example_id), family, question, answer, choices, number of true sketches."""
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
    """The app's default checkpoint, the registered ones (name, checkpoint folder, K, λ, stage) and those loaded now;
    any of these names can be given as the checkpoint of reason, compare and neighbours."""
    # A registered checkpoint's folder is under "checkpoint": a "path" key would make gradio_client download it.
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


# ---- validators (run before the queue; {parameter: message}) ---------------------------------------------------
def reason_problems(service: Service, **values) -> dict[str, str]:
    if not service.stack_ready:  # the handler checks again; a validator must not hold the POST while the model loads
        return {}
    values = {**_defaults(reason), **values}  # the validator gives every input; a direct call may not
    values = {k: v for k, v in values.items() if k not in ("include_latents", "modes", "request")}
    problems = reasoning.request_problems(service, _request(service, **values))
    files = "image" if values.get("image") or not values.get("extra_image") else "extra_image"
    return {files if name == "files" else name: str(err) for name, err in problems.items()}


def _defaults(fn) -> dict:
    return {n: p.default for n, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}


def compare_problems(service: Service, **values) -> dict[str, str]:
    problems = reason_problems(service, **values)
    if not service.stack_ready:
        return problems
    try:
        comparing.check_modes(values.get("modes"))
    except ValueError as err:  # InputError
        problems["modes"] = str(err)
    return problems


def register(service: Service, concurrency: int = 2) -> None:
    """Add the endpoints to the Blocks being built (call inside `with gr.Blocks()`); /reason and /compare share the
    page's `concurrency` answer slots."""
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
    answers = dict(concurrency_limit=concurrency, concurrency_id="answers")
    settings = [seed, temperature, max_sketches, diffusion_steps, max_new_tokens, example_id, checkpoint]
    reason_button.click(bind(reason, service), [image, extra_image, question, mode, *settings, include_latents, snap],
                        trace, api_name="reason", validator=validator(reason, reason_problems, service),
                        **answers)  # fmt: skip
    compare_inputs = [image, extra_image, question, *settings, include_latents, modes, snap]
    compare_button.click(bind(compare, service), compare_inputs, comparison, api_name="compare",
                         validator=validator(compare, compare_problems, service), **answers)  # fmt: skip
    for fn in (neighbours, switching_stats, examples, checkpoints):  # typed functions: gr.api reads the hints
        gr.api(bind(fn, service), api_name=fn.__name__)  # no answer slot: a slow checkpoint name stalls no answer
