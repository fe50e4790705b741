"""The named API endpoints, for `gradio_client` and, with `--mcp`, as MCP tools (the page's own events are private).

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    trace = client.predict(image=handle_file("maze.png"), question="Which colour lies on the way?", mode="auto",
                           seed=0, api_name="/reason")                    # the Trace as a dict
    client.predict(example_id="maze-1", api_name="/reason")               # a shipped example, graded
    client.predict(example_id="maze-1", modes=["auto", "zero-latents"], api_name="/compare")
    client.predict(latents=trace_with_latents["segments"][1]["latents"], k=5, api_name="/neighbours")
    client.predict(by="family", api_name="/switching_stats")

Each endpoint's docstring says what its parameters mean (Gradio's API page and the MCP tool list read it). /reason and
/compare take the fields of one dataclass, app/request.py `ApiInputs` (each with its help), exposed by `endpoint`.

Bad input to /reason and /compare is refused before the answer queue by a validator (gradio_client raises
`ValidationError` naming each bad parameter; over REST the POST answers 422 with the messages), so a checkpoint
name that cannot be reached never holds an answer slot (/neighbours and the others need none). What only shows once
the model runs (a damaged checkpoint folder, latents of the wrong shape) comes back as an error with the
InputError's or CheckpointError's message (`AppError`). Integer parameters are refused when fractional, never
rounded.
"""

import dataclasses
import functools
import inspect
import itertools

import gradio as gr
import numpy as np

from app import answers, stack
from app.plumbing import api_errors, bind, gather, run_id_for, user_error, validator
from app.request import BASELINES, ApiInputs, api_fields, help_of
from app.service import Service
from app.stats_tab import compute
from model.generation.modes import mode_names

reasoning = stack.later("app.reasoning")
comparing = stack.later("app.compare")
inputs = stack.later("model.generation.inputs")
GALLERY_WAIT_S = 600  # /neighbours waits this long for a gallery that is still being built
MAX_K = 100


def reason(service: Service, inputs: ApiInputs, request: gr.Request = None) -> dict:
    """Answer a question about one or two puzzle images (or a shipped example) with the modal-mixed model, which
    reasons in text and latent sketches. Returns the Trace as a dict: text, answer, correct (for examples), sketches.
    """
    with service.answering(), api_errors("reason"):
        job = answers.prepare(service, inputs.request(service.examples), run_id_for(request))
        for _ in answers.run(job):
            pass
    return job.trace.to_dict(include_latents=bool(inputs.include_latents))


def compare(service: Service, inputs: ApiInputs, request: gr.Request = None) -> dict:
    """Answer the same puzzle with the same seed under several modes, to see whether the sketches matter, and with
    the registered text-only-CoT model (baseline/text-cot), the same puzzle reasoned in words. Returns {checkpoint,
    example_id, seed, modes: {mode: {answer, correct, num_sketches, num_positions, total_s}}, skipped: {mode: why},
    baselines: {"text-cot": {checkpoint, answer, correct, num_sketches, num_positions, total_s, skipped}} (skipped
    says why when the registry has no such model or its folder is missing, and the other values are then null; ""
    when it ran), traces: {mode or "text-cot": Trace dict}}.
    """
    with service.answering(), api_errors("compare"):
        comparison = comparing.prepare_comparison(
            service, inputs.request(service.examples, mode="auto"), inputs.modes, run_id_for(request)
        )
        for _ in itertools.chain(comparing.run_comparison(service, comparison),
                                 comparing.run_baselines(service, comparison)):  # fmt: skip
            pass
    outcomes = {m: comparison.outcomes[m] for m in comparison.modes}  # in the order asked for
    baselines = comparison.baselines
    ran = {**outcomes, **baselines}
    return {
        "checkpoint": comparison.job.loaded.name,
        "example_id": comparison.job.example.id if comparison.job.example is not None else "",
        "seed": str(comparison.job.settings.seed),  # text: a JSON number would round seeds above 2**53 in browsers
        "modes": {m: o.summary() for m, o in outcomes.items() if o.trace is not None},
        "skipped": {m: o.skipped for m, o in outcomes.items() if o.trace is None},
        "baselines": {
            k: {**o.summary(), "skipped": o.skipped, "checkpoint": BASELINES[k].checkpoint}
            for k, o in baselines.items()
        },
        "traces": {m: o.trace.to_dict(bool(inputs.include_latents)) for m, o in ran.items() if o.trace is not None},
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

    try:
        values = {"checkpoint": checkpoint, "family": family, "run": run, "by": by, "mode": mode}
        wanted = {name: _comma_list(name, value) for name, value in values.items()}
        stats = compute(service.config.event_store, wanted["checkpoint"], wanted["family"], wanted["run"],
                        wanted["by"], wanted["mode"])  # fmt: skip
    except ValueError as err:
        raise user_error(err, "switching_stats") from None
    table = stats.table.astype(object).where(stats.table.notna(), None)  # NaN is not JSON
    return {"num_answers": stats.num_answers, "message": stats.message, "summary": table.to_dict("records")}


def _comma_list(name: str, text) -> list[str]:
    """A comma-separated filter as its names; ValueError naming the parameter when it is not text."""
    if text is None:
        return []
    if not isinstance(text, str):
        raise ValueError(f'{name} must be text (comma-separated names, "" for all), got {text!r}')
    return [part.strip() for part in text.split(",") if part.strip()]


def examples(service: Service) -> list[dict]:
    """The shipped example puzzles: id (for example_id), family, question, wording ("template" for the canonical
    question; seen, held-out-template or held-out-synonym for the same puzzle asked in a paraphrase, whose id ends
    in -paraphrased), puzzle (the id of the puzzle whose pictures it shows), answer, choices, number of true
    sketches."""
    return [
        {
            "id": ex.id,
            "family": ex.family,
            "question": ex.question,
            "wording": ex.wording,
            "puzzle": ex.puzzle or ex.id,
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
    return _problems(service, ApiInputs(**values), None)


def compare_problems(service: Service, **values) -> dict[str, str]:
    inputs = ApiInputs(**values)
    problems = _problems(service, inputs, "auto")
    if service.stack_ready:
        try:
            comparing.check_modes(inputs.modes)
        except ValueError as err:  # InputError
            problems["modes"] = str(err)
    return problems


def _problems(service: Service, inputs: ApiInputs, mode: str | None) -> dict[str, str]:
    problems = answers.problems(service, inputs.request(service.examples, mode))
    files = "image" if inputs.image or not inputs.extra_image else "extra_image"
    return {files if name == "files" else name: message for name, message in problems.items()}


def endpoint(fn, service: Service, leave_out: str):
    """`fn(service, inputs, request)` as Gradio and the MCP tools read an endpoint: one parameter per field of
    ApiInputs but `leave_out` (its name, default and type), and the docstring's Args from each field's help."""
    fields = api_fields(leave_out)
    parameters = [inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=f.default,
                                    annotation=f.type) for f in fields]  # fmt: skip
    handler = gather(bind(fn, service), parameters, ApiInputs)
    args = "".join(f"\n    {f.name}: {help_of(f)}" for f in fields)
    handler.__doc__ = f"{inspect.getdoc(fn)}\n\nArgs:{args}"
    return handler


def _component(field) -> gr.components.Component:
    """The hidden component an ApiInputs field arrives through (the API's type for it)."""
    if field.name in ("image", "extra_image"):
        return gr.File(type="filepath", label=field.name)
    # custom values pass through to the validator, which names a bad mode (Gradio's own check answers a bare 400)
    if field.name == "mode":
        return gr.Dropdown(mode_names(), value=field.default, label=field.name, allow_custom_value=True)
    if field.name == "modes":
        columns = mode_names(compare=True)
        return gr.Dropdown(columns, value=columns, multiselect=True, label=field.name, allow_custom_value=True)
    if field.type is bool:
        return gr.Checkbox(field.default, label=field.name)
    if field.type is float:  # no precision: fractional values are refused, not rounded
        return gr.Number(field.default, label=field.name)
    return gr.Textbox(field.default, label=field.name)  # the seed as text: every seed up to 2**63 - 1 arrives exactly


def register(service: Service, concurrency: int = 2) -> None:
    """Add the endpoints to the Blocks being built (call inside `with gr.Blocks()`); /reason and /compare share the
    page's `concurrency` answer slots."""
    with gr.Column(visible=False):  # components only the API uses
        components = {field.name: _component(field) for field in dataclasses.fields(ApiInputs)}
        outputs = {"reason": gr.JSON(label="trace"), "compare": gr.JSON(label="comparison")}
        buttons = {"reason": gr.Button(), "compare": gr.Button()}
    answers = dict(concurrency_limit=concurrency, concurrency_id="answers")
    for fn, check, leave_out in ((reason, reason_problems, "modes"), (compare, compare_problems, "mode")):
        handler = endpoint(fn, service, leave_out)
        inputs = [components[field.name] for field in api_fields(leave_out)]
        buttons[fn.__name__].click(handler, inputs, outputs[fn.__name__], api_name=fn.__name__,
                     validator=validator(handler, functools.partial(check, service)), **answers)  # fmt: skip
    for fn in (neighbours, switching_stats, examples, checkpoints):  # typed functions: gr.api reads the hints
        gr.api(bind(fn, service), api_name=fn.__name__)  # no answer slot: a slow checkpoint name stalls no answer
