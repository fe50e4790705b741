"""One answer, from what a user typed to logged switch events: shared by the Reason tab and the /reason endpoint.

    problems = request_problems(service, Request(question="…", example_id="maze-1"))   # {field: InputError, …}
    job = prepare(service, request, run_id="app-1")   # the first problem raised, or the Job
    for event in run(job): ...                        # the engine's TraceEvents; the finished trace is logged
    job.trace, job.trace.correct, job.log_error
    job.unseen_words                                  # the question's words the checkpoint never saw (None: unchecked)

Everything a user can get wrong is checked by `check_request`, each field on its own so that all of them are
reported at once: Gradio runs it as the events' validator (`request_problems`), before the answer queue
(app/plumbing.py `validator`), and `prepare` raises the first problem again for callers that skip the page. The
request comes out as the engine's types: one checked GenerationSettings (model/generation/settings.py, where each
default is written) and a Prompt, which the Job carries to the engine. Problems are `InputError`s (or a
`CheckpointError`) with the values in the message. Integer settings are refused when fractional (never rounded);
a seed may come as text, so every seed up to 2**63 - 1 arrives exactly, and a JSON integer arrives exactly too
(Python reads it whole); a float seed above 2**53 is refused, since it may have lost digits on the way; an empty
seed is refused rather than read as 0.
"""

import dataclasses
import functools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from PIL import Image

from app.example_puzzles import Example
from app.models import Loaded, decoded_picture, generate_traces, stream_events
from app.request import MAX_DIFFUSION_STEPS, MAX_NEW_TOKENS, MAX_SKETCHES, MAX_TEMPERATURE, Request
from app.service import Service
from model.core.checkpoint import CheckpointError
from model.data import zebra
from model.data.targets import true_sketches
from model.data.vocabulary import unseen_words
from model.generation.answers import normalize_answer
from model.generation.engine import Engine, Prompt
from model.generation.events import log_traces
from model.generation.inputs import MAX_IMAGES, InputError, check_question, check_seed, load_image
from model.generation.modes import MODE_SPECS
from model.generation.settings import GenerationSettings
from model.generation.trace import Trace, TraceEvent

NO_IMAGE = {  # in the words of the surface the request came through
    "page": "no image: choose an example puzzle or upload an image",
    "api": "no image: send image (a file) or example_id (one of /examples)",
}


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
    unseen_words: list[str] | None = None  # the question's words the checkpoint never saw (None: not checked)

    def grade(self, trace: Trace) -> bool | None:
        """Right or wrong when the example's answer is known; None otherwise."""
        return None if self.example is None else trace.answer == normalize_answer(self.example.answer)

    @property
    def diffusion_steps(self) -> int:
        """T of its sketches: the request's, else the checkpoint's."""
        return self.settings.diffusion_steps or self.loaded.model.config.diffusion_steps

    def picture(self, sketch) -> Image.Image | None:
        """A finished sketch as the checkpoint's latent decoder draws it (None without a decoder)."""
        return decoded_picture(self.loaded, sketch.latents)


def whole_number(name: str, value, low: int, high: int) -> int:
    """An integer setting: fractional values are refused, not rounded."""
    number = _number(name, value)
    if number != int(number) or not low <= number <= high:
        raise InputError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return int(number)


def parse_seed(value) -> int:
    """A seed from a number or from text; text keeps every digit, so 2**63 - 1 arrives exactly."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InputError("the seed is empty: give a whole number from 0 to 2**63 - 1 (0 is the usual one)")
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"\d+", text):
            try:
                number = float(text)
            except ValueError:
                number = None
            why = ""
            if number is not None and math.isfinite(number) and number == int(number) and number > 2**53:
                why = "; seeds above 2**53 lose digits as JSON floats, so send a large seed as text or an integer"
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


def _temperature(value) -> float:
    temperature = _number("temperature", value)
    if not 0 <= temperature <= MAX_TEMPERATURE:
        raise InputError(f"temperature must be from 0 to {MAX_TEMPERATURE:g}, got {value!r}")
    return temperature


def _snap(value) -> bool | None:
    """The page's and the API's snap (true: when the checkpoint has a codebook) as the engine's (None: the same)."""
    if not isinstance(value, bool):
        raise InputError(f"snap must be true or false, got {value!r}")
    return None if value else False


def _diffusion_steps(value) -> int | None:
    """0 (the checkpoint's T) as the engine's None."""
    return whole_number("diffusion_steps", value, 0, MAX_DIFFUSION_STEPS) or None


# each generation setting but the mode, read from what the user sent into the engine's type with the app's limits
# (InputError naming the setting and the value); the mode is checked with the rest by GenerationSettings.problems
READERS = {
    "temperature": _temperature,
    "max_sketches": functools.partial(whole_number, "max_sketches", low=0, high=MAX_SKETCHES),
    "diffusion_steps": _diffusion_steps,
    "max_new_tokens": functools.partial(whole_number, "max_new_tokens", low=1, high=MAX_NEW_TOKENS),
    "seed": parse_seed,
    "snap": _snap,
}
# the order a request's problems are reported in (and the first one raised)
FIELDS = ("checkpoint", "example_id", "files", "question", "mode", *READERS)


def read_settings(request: Request, problems: dict) -> GenerationSettings | None:
    """The request's settings as one checked GenerationSettings: each read on its own (READERS), then checked
    together (GenerationSettings.problems: a known mode, …); every problem goes into `problems` by field. None when
    there is one."""
    values, bad = {"mode": request.mode}, len(problems)
    for name, read in READERS.items():
        try:
            values[name] = read(getattr(request, name))
        except InputError as err:
            problems[name] = err
    settings = GenerationSettings(**values)  # an unreadable setting at its default, so the others are still checked
    problems.update({name: InputError(message) for name, message in settings.problems().items()})
    return settings if len(problems) == bad else None


def _example(service: Service, request: Request) -> Example | None:
    if not request.example_id:
        return None
    example = service.examples.get(request.example_id)
    if example is None:
        raise InputError(f"unknown example {request.example_id!r}; the examples are {', '.join(service.examples)}")
    return example


def _images(service: Service, request: Request) -> list:
    """The problem images: the uploads, or the example's pictures."""
    files = [f for f in (request.files or []) if f]
    example = service.examples.get(request.example_id or "")
    if files and example is not None:
        raise InputError(f"got both the example {example.id!r} and {len(files)} uploaded image(s); give one of them")
    paths = files or (list(example.problem_paths) if example is not None else [])
    if not paths:
        raise InputError(NO_IMAGE.get(request.via, NO_IMAGE["page"]))
    if len(paths) > MAX_IMAGES:
        raise InputError(f"got {len(paths)} images; the limit is {MAX_IMAGES}")
    return [load_image(path) for path in paths]


@dataclass
class Checked:
    """A request whose every field passed its check, in the engine's types."""

    checkpoint: object  # what Service.resolve made of the checkpoint name
    example: Example | None
    prompt: Prompt  # the question and pictures (the sketches a mode inserts join once the model is loaded)
    settings: GenerationSettings


def check_request(service: Service, request: Request) -> tuple[Checked | None, dict[str, Exception]]:
    """The request checked field by field, so that every problem is found at once: (Checked, {}) when it can run,
    else (None, {Request field: InputError or CheckpointError}) in FIELDS order."""
    problems = {}

    def attempt(name: str, check, *args):
        try:
            return check(*args)
        except (InputError, CheckpointError) as err:
            problems[name] = err

    checkpoint = attempt("checkpoint", service.resolve, request.checkpoint)
    example = attempt("example_id", _example, service, request)
    images = question = None
    if "example_id" not in problems:  # an unknown example is one problem, not three (no pictures, no question)
        images = attempt("files", _images, service, request)
        question = attempt("question", check_question, request.question)
    settings = read_settings(request, problems)
    if "mode" not in problems:  # what the mode inserts: the puzzle's true sketches, or another puzzle's
        attempt("mode", check_given, service, service.examples.get(request.example_id or ""), request.mode)
    if problems:
        return None, {name: problems[name] for name in FIELDS if name in problems}
    return Checked(checkpoint, example, Prompt(question=question, images=images), settings), {}


def request_problems(service: Service, request: Request) -> dict[str, Exception]:
    """Every problem of the request, by the Request field it is about ({} when it can run)."""
    return check_request(service, request)[1]


def prepare(service: Service, request: Request, run_id: str) -> Job:
    """Check the request (its first problem raised), load its checkpoint and build the prompt; the model runs only
    for the sketches a mode inserts (the encoder for oracle, a cached answer to another puzzle for
    shuffled-latents)."""
    checked, problems = check_request(service, request)
    if problems:
        raise next(iter(problems.values()))
    example, settings, prompt = checked.example, checked.settings, checked.prompt
    loaded = service.models.load(checked.checkpoint)
    if request.via == "api":  # as Compare's column: a model whose traces are longer is given the positions they need
        need = service.min_new_tokens(loaded)  # (the page raises its box instead, and leaves a smaller value typed)
        settings = dataclasses.replace(settings, max_new_tokens=max(settings.max_new_tokens, need))
    if MODE_SPECS[settings.mode].inserts:
        prompt.oracle_latents = inserted_sketches(service, loaded, example, settings)
    return Job(loaded, example, prompt, settings, Engine(loaded.model), run_id, next(service.rollouts),
               service.config.event_store, unseen_words=unseen_in(loaded, prompt.question))  # fmt: skip


def unseen_in(loaded: Loaded, question: str) -> list[str] | None:
    """The words of `question` the checkpoint's training vocabulary lacks ([] when it knows them all), or None when
    it has no vocabulary to check against (model/data/vocabulary.py: numbers and palette colours always pass)."""
    return None if loaded.vocabulary is None else unseen_words(question, loaded.vocabulary)


def inserted_sketches(service: Service, loaded: Loaded, example: Example | None, settings: GenerationSettings):
    """The sketches an inserting mode puts in (modes.py `given`, through its `transform`): the example's true ones
    (oracle), or the model's own sketches for another shipped puzzle of the same family (shuffled-latents);
    InputError saying why when there are none."""
    spec = MODE_SPECS[settings.mode]
    donor = check_given(service, example, settings.mode)
    if spec.given == "true":
        return spec.insertable(oracle_latents(loaded, example))
    return spec.insertable(donor_sketches(service, loaded, donor, settings))


def check_given(service: Service, example: Example | None, mode: str) -> Example | None:
    """InputError unless the puzzle has what `mode` inserts: its true sketches, or another shipped puzzle of its
    family (returned: the donor). Nothing to check for a mode that inserts none."""
    given = MODE_SPECS[mode].given
    if given == "true":
        check_true_sketches(example, mode)
    return donor_for(service, example, mode) if given == "other" else None


def check_true_sketches(example: Example | None, mode: str) -> None:
    """InputError unless the puzzle has true sketches for `mode` to insert."""
    if example is None or not example.has_sketches:
        what = f"example {example.id!r} has none" if example else "uploaded images have none"
        raise InputError(f"{mode} mode inserts an example's true sketches, and the {what}; choose another mode")


def oracle_latents(loaded: Loaded, example: Example) -> list:
    """The example's true sketches as a list of (K, D) tensors, for Prompt.oracle_latents."""
    sketches = true_sketches(loaded.model, [as_zebra(example)])[0]
    return [] if sketches is None else list(sketches)


def as_zebra(example: Example) -> zebra.Example:
    """The example as a Zebra-CoT row parsed by `model.data.zebra.parse_row` (images read from their files)."""
    row = {"id": example.id, "Question": example.question, "Final Answer": example.answer, "family": example.family}
    row["Text Reasoning Trace"] = example.trace
    row["answer_choices"] = list(example.choices)
    row.update({f"problem_image_{i + 1}": path for i, path in enumerate(example.problem_paths)})
    row.update({f"reasoning_image_{i + 1}": path for i, path in enumerate(example.reasoning_paths)})
    parsed = zebra.parse_row(row)
    assert isinstance(parsed, zebra.Example), f"shipped example {example.id} does not parse: {parsed}"
    return parsed


def donor_for(service: Service, example: Example | None, mode: str) -> Example:
    """The shipped puzzle whose sketches `mode` (shuffled-latents) inserts: the next puzzle of the same family, in
    its canonical wording (never the same puzzle in other words)."""
    if example is None:
        raise InputError(f"{mode} inserts another puzzle of the same family, and uploads have no family")
    family = [ex for ex in service.examples.values() if ex.family == example.family and ex.wording == "template"]
    puzzles, own = [ex.id for ex in family], example.puzzle or example.id
    if own not in puzzles or len(family) < 2:
        raise InputError(f"{mode} needs another {example.family} puzzle, and there is none")
    return family[(puzzles.index(own) + 1) % len(family)]


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
        raise InputError(f"{settings.mode} inserts the model's sketches for {donor.id}, and it drew none there")
    return sketches


def remember_donor(loaded: Loaded, donor: Example, settings: GenerationSettings, trace: Trace) -> None:
    loaded.donor_sketches[donor_key(donor, settings)] = [torch.from_numpy(s.latents) for s in trace.sketches]


def log_job_traces(job: Job, traces: list[Trace], rollouts: list[int], loaded: Loaded | None = None) -> None:
    """Append the traces' switch events to the store, under `loaded` (the model that wrote them when it is not the
    job's: a Compare baseline column); a full disk must not cost the user the answer."""
    loaded = loaded if loaded is not None else job.loaded
    config, example, n = loaded.model.config, job.example, len(traces)
    try:
        log_traces(job.event_store, traces, run_id=job.run_id, checkpoint=loaded.name,
                   latent_budget=config.latent_budget, diffusion_loss_weight=config.diffusion_loss_weight,
                   families=[example.family if example else ""] * n, example_ids=[example.id if example else ""] * n,
                   rollouts=rollouts, answers=[example.answer if example else None] * n)  # fmt: skip
    except (OSError, ValueError) as err:
        job.log_error = f"switch events not logged: {err}"


def run(job: Job) -> Iterator[TraceEvent]:
    """Stream the answer; once finished, keep the trace on the job, graded when its answer is known, and append its
    switch events to the store."""
    for event in stream_events(job.engine, job.prompt, job.settings):
        if event.kind == "finished":
            job.trace = event.trace
            job.trace.correct = job.grade(job.trace)
            job.trace.unseen_words = job.unseen_words
            log_job_traces(job, [job.trace], [job.rollout])
        yield event
