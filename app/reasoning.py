"""One answer, from what a user typed to logged switch events: shared by the Reason tab and the /reason endpoint.

    job = prepare(service, Request(question="…", example_id="maze-1"), run_id="app-1")  # InputError, CheckpointError
    for event in run(job): ...                     # the engine's TraceEvents; the finished trace is logged
    job.trace, job.correct, job.log_error

Everything a user can get wrong is checked in `prepare`, before the model runs, and raised as `InputError` (or
`CheckpointError`) with the values in the message; the handlers turn those into `gr.Error`.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from app.examples import Example, oracle_latents
from app.service import Loaded, Service, stream_events
from model.generation.answers import normalize_answer
from model.generation.engine import Engine, GenerationSettings, Prompt
from model.generation.events import log_traces
from model.generation.inputs import MAX_IMAGES, InputError, check_question, load_image
from model.generation.modes import MODES
from model.generation.trace import Trace, TraceEvent

MAX_NEW_TOKENS = 1024  # bounds the work one request can ask of a shared server


@dataclass
class Request:
    question: str = ""
    files: list[str] = field(default_factory=list)  # uploaded image paths
    example_id: str = ""  # a shipped example (assets/examples) instead of uploads
    mode: str = "auto"  # auto | text-only | noise-latents | oracle
    temperature: float = 0.0
    max_sketches: int = 4
    diffusion_steps: int = 0  # 0: the checkpoint's default T
    max_new_tokens: int = 256
    seed: int = 0
    checkpoint: str = ""  # "": the app's default checkpoint


@dataclass
class Job:
    loaded: Loaded
    example: Example | None
    prompt: Prompt
    settings: GenerationSettings
    engine: Engine
    run_id: str = ""
    rollout: int = 0
    event_store: str = ""
    trace: Trace | None = None
    log_error: str = ""  # set when the answer could not be logged (the answer itself is fine)

    @property
    def correct(self) -> bool | None:
        """Right or wrong when the example's answer is known; None otherwise."""
        if self.trace is None or self.example is None:
            return None
        return self.trace.answer == normalize_answer(self.example.answer)


def _integer(name: str, value, low: int, high: int) -> int:
    number = _number(name, value)
    if number != int(number) or not low <= number <= high:
        raise InputError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return int(number)


def _number(name: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    return number


def settings_from(request: Request) -> GenerationSettings:
    if request.mode not in MODES:
        raise InputError(f"unknown mode {request.mode!r}; choose one of {', '.join(MODES)}")
    steps = _integer("diffusion_steps", request.diffusion_steps, 0, 1000)
    settings = GenerationSettings(
        mode=request.mode,
        max_new_tokens=_integer("max_new_tokens", request.max_new_tokens, 1, MAX_NEW_TOKENS),
        max_sketches=_integer("max_sketches", request.max_sketches, 0, 64),
        diffusion_steps=steps or None,
        temperature=_number("temperature", request.temperature),
        seed=_integer("seed", request.seed, 0, 2**63 - 1),
    )
    settings.check()
    return settings


def prepare(service: Service, request: Request, run_id: str) -> Job:
    """Check the request, load its checkpoint and build the prompt; nothing runs the model yet."""
    example = None
    if request.example_id:
        example = service.examples.get(request.example_id)
        if example is None:
            raise InputError(f"unknown example {request.example_id!r}; the examples are {', '.join(service.examples)}")
    files = [f for f in (request.files or []) if f]
    if files and example is not None:
        raise InputError(f"got both the example {example.id!r} and {len(files)} uploaded image(s); give one of them")
    if not files and example is None:
        raise InputError("no image: choose an example or upload an image")
    if len(files) > MAX_IMAGES:
        raise InputError(f"got {len(files)} images; the limit is {MAX_IMAGES}")
    images = [load_image(path) for path in (files or example.problem_paths)]
    question = check_question(request.question)
    settings = settings_from(request)
    loaded = service.load(request.checkpoint or None)
    oracle = None
    if settings.mode == "oracle":
        if example is None or not example.has_sketches:
            what = f"example {example.id!r} has none" if example else "uploaded images have none"
            raise InputError(f"oracle mode inserts an example's true sketches, and the {what}; choose another mode")
        oracle = oracle_latents(loaded.model, example)
    prompt = Prompt(question=question, images=images, oracle_latents=oracle)
    return Job(loaded, example, prompt, settings, Engine(loaded.model), run_id, next(service.rollouts),
               service.config.event_store)  # fmt: skip


def run(job: Job) -> Iterator[TraceEvent]:
    """Stream the answer; once finished, keep the trace on the job and append its switch events to the store."""
    for event in stream_events(job.engine, job.prompt, job.settings):
        if event.kind == "finished":
            job.trace = event.trace
            try:
                config, example = job.loaded.model.config, job.example
                log_traces(job.event_store, [job.trace], run_id=job.run_id, checkpoint=job.loaded.name,
                           latent_budget=config.latent_budget, diffusion_loss_weight=config.diffusion_loss_weight,
                           families=[example.family if example else ""], example_ids=[example.id if example else ""],
                           rollouts=[job.rollout], answers=[example.answer if example else None])  # fmt: skip
            except (OSError, ValueError) as err:  # a full disk must not cost the user the answer
                job.log_error = f"switch events not logged: {err}"
        yield event
