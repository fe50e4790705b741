"""One answer, from what a user typed to logged switch events: shared by the Reason tab and the /reason endpoint.

    job = prepare(service, Request(question="…", example_id="maze-1"), run_id="app-1")  # InputError, CheckpointError
    for event in run(job): ...                     # the engine's TraceEvents; the finished trace is logged
    job.trace, job.correct, job.log_error

Everything a user can get wrong is checked in `prepare`, before the model answers, and raised as `InputError` (or
`CheckpointError`) with the values in the message; the handlers turn those into `gr.Error`. Integer settings are
refused when fractional (never rounded); a seed may come as text, so every seed up to 2**63 - 1 arrives exactly.
"""

import dataclasses
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from app.examples import Example, as_zebra
from app.service import Loaded, Service, generate_traces, stream_events
from model.data.targets import true_sketches
from model.generation.answers import normalize_answer
from model.generation.engine import Engine, GenerationSettings, Prompt
from model.generation.events import log_traces
from model.generation.inputs import InputError, check_image_count, check_question, check_seed, load_image
from model.generation.modes import INSERTING_MODES, MODES
from model.generation.trace import Trace, TraceEvent

MAX_NEW_TOKENS = 1024  # bounds the work one request can ask of a shared server
MAX_TEMPERATURE = 2.0  # beyond this sampling is uniform noise; the page's slider stops here too


@dataclass
class Request:
    question: str = ""
    files: list[str] = field(default_factory=list)  # uploaded image paths
    example_id: str = ""  # a shipped example (assets/examples) instead of uploads
    mode: str = "auto"  # one of model.generation.modes.MODES
    temperature: float = 0.0
    max_sketches: int = 4
    diffusion_steps: int = 0  # 0: the checkpoint's default T
    max_new_tokens: int = 256
    seed: int | str = 0  # text keeps seeds above 2**53 exact (a JSON number would round them)
    checkpoint: str = ""  # "": the app's default checkpoint
    snap: bool = True  # snap drawn latents to the checkpoint's codebook, when it has one (model/core/codebook.py)


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


def whole_number(name: str, value, low: int, high: int) -> int:
    """An integer setting: fractional values are refused, not rounded."""
    number = _number(name, value)
    if number != int(number) or not low <= number <= high:
        raise InputError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return int(number)


def parse_seed(value) -> int:
    """A seed from a number or from text; text keeps every digit, so 2**63 - 1 arrives exactly."""
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"\d+", text):
            try:
                number = float(text)
            except ValueError:
                number = None
            why = ""
            if number is not None and math.isfinite(number) and number == int(number) and number > 2**53:
                why = "; seeds above 2**53 lose digits as JSON numbers, so send a large seed as text"
            raise InputError(f"the seed must be a whole number written in digits, got {value!r}{why}")
        value = int(text)
    return check_seed(value)


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
    steps = whole_number("diffusion_steps", request.diffusion_steps, 0, 1000)
    temperature = _number("temperature", request.temperature)
    if not 0 <= temperature <= MAX_TEMPERATURE:
        raise InputError(f"temperature must be from 0 to {MAX_TEMPERATURE:g}, got {request.temperature!r}")
    if not isinstance(request.snap, bool):
        raise InputError(f"snap must be true or false, got {request.snap!r}")
    settings = GenerationSettings(
        mode=request.mode,
        max_new_tokens=whole_number("max_new_tokens", request.max_new_tokens, 1, MAX_NEW_TOKENS),
        max_sketches=whole_number("max_sketches", request.max_sketches, 0, 64),
        diffusion_steps=steps or None,
        temperature=temperature,
        seed=parse_seed(request.seed),
        snap=None if request.snap else False,  # None: snap when the checkpoint has a codebook
    )
    settings.check()
    return settings


def prepare(service: Service, request: Request, run_id: str) -> Job:
    """Check the request, load its checkpoint and build the prompt; the model runs only for the sketches a mode
    inserts (the encoder for oracle, a cached answer to another puzzle for shuffled-latents)."""
    example = None
    if request.example_id:
        example = service.examples.get(request.example_id)
        if example is None:
            raise InputError(f"unknown example {request.example_id!r}; the examples are {', '.join(service.examples)}")
    files = [f for f in (request.files or []) if f]
    if files and example is not None:
        raise InputError(f"got both the example {example.id!r} and {len(files)} uploaded image(s); give one of them")
    check_image_count(len(files) or (len(example.problem_paths) if example is not None else 0))
    images = [load_image(path) for path in (files or example.problem_paths)]
    question = check_question(request.question)
    settings = settings_from(request)
    loaded = service.load(request.checkpoint or None)
    inserted = inserted_sketches(service, loaded, example, settings) if settings.mode in INSERTING_MODES else None
    prompt = Prompt(question=question, images=images, oracle_latents=inserted)
    return Job(loaded, example, prompt, settings, Engine(loaded.model), run_id, next(service.rollouts),
               service.config.event_store)  # fmt: skip


def inserted_sketches(service: Service, loaded: Loaded, example: Example | None, settings: GenerationSettings):
    """The sketches an inserting mode puts in: the example's true ones (oracle), or the model's own sketches for
    another shipped puzzle of the same family (shuffled-latents); InputError saying why when there are none."""
    if settings.mode == "oracle":
        if example is None or not example.has_sketches:
            what = f"example {example.id!r} has none" if example else "uploaded images have none"
            raise InputError(f"oracle mode inserts an example's true sketches, and the {what}; choose another mode")
        return oracle_latents(loaded, example)
    donor = donor_for(service, example)
    return donor_sketches(service, loaded, donor, settings)


def oracle_latents(loaded: Loaded, example: Example) -> list:
    """The example's true sketches as a list of (K, D) tensors, for Prompt.oracle_latents."""
    sketches = true_sketches(loaded.model, [as_zebra(example)])[0]
    return [] if sketches is None else list(sketches)


def donor_for(service: Service, example: Example | None) -> Example:
    """The shipped puzzle whose sketches shuffled-latents inserts: the next example of the same family."""
    if example is None:
        raise InputError("shuffled-latents inserts another puzzle of the same family, and uploads have no family")
    family = [ex for ex in service.examples.values() if ex.family == example.family]
    if len(family) < 2:
        raise InputError(f"shuffled-latents needs another {example.family} example, and there is none")
    return family[(family.index(example) + 1) % len(family)]


def donor_key(donor: Example, settings: GenerationSettings) -> tuple:
    return (donor.id, settings.max_new_tokens, settings.max_sketches, settings.diffusion_steps,
            settings.temperature, settings.seed, settings.snap)  # fmt: skip


def donor_sketches(service: Service, loaded: Loaded, donor: Example, settings: GenerationSettings) -> list:
    """The model's own sketches (auto, same settings) for `donor`, cached per checkpoint; InputError when it drew
    none. `remember_donor` fills the cache when an auto answer to the donor was made anyway (app/compare.py)."""
    key = donor_key(donor, settings)
    if key not in loaded.donor_sketches:
        auto = dataclasses.replace(settings, mode="auto")
        prompt = Prompt(donor.question, [load_image(p) for p in donor.problem_paths])
        remember_donor(loaded, donor, settings, generate_traces(Engine(loaded.model), [prompt], auto)[0])
    sketches = loaded.donor_sketches[key]
    if not sketches:
        raise InputError(f"shuffled-latents inserts the model's sketches for {donor.id}, and it drew none there")
    return sketches


def remember_donor(loaded: Loaded, donor: Example, settings: GenerationSettings, trace: Trace) -> None:
    loaded.donor_sketches[donor_key(donor, settings)] = [torch.from_numpy(s.latents) for s in trace.sketches]


def log_job_traces(job: Job, traces: list[Trace], rollouts: list[int]) -> None:
    """Append the traces' switch events to the store; a full disk must not cost the user the answer."""
    config, example, n = job.loaded.model.config, job.example, len(traces)
    try:
        log_traces(job.event_store, traces, run_id=job.run_id, checkpoint=job.loaded.name,
                   latent_budget=config.latent_budget, diffusion_loss_weight=config.diffusion_loss_weight,
                   families=[example.family if example else ""] * n, example_ids=[example.id if example else ""] * n,
                   rollouts=rollouts, answers=[example.answer if example else None] * n)  # fmt: skip
    except (OSError, ValueError) as err:
        job.log_error = f"switch events not logged: {err}"


def run(job: Job) -> Iterator[TraceEvent]:
    """Stream the answer; once finished, keep the trace on the job and append its switch events to the store."""
    for event in stream_events(job.engine, job.prompt, job.settings):
        if event.kind == "finished":
            job.trace = event.trace
            log_job_traces(job, [job.trace], [job.rollout])
        yield event
