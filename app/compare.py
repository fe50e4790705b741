"""Compare modes on one puzzle: the same prompt, settings and seed under several modes, side by side. Shared by the
Reason tab's Compare button and the /compare endpoint.

    comparison = prepare_comparison(service, request, modes=None, run_id="app-1")   # InputError, CheckpointError
    for outcome in run_comparison(service, comparison): ...                      # one Outcome per mode, in order
    comparison.summary()        # {mode: {answer, correct, num_sketches, num_positions, total_s}}
    for outcome in run_baselines(service, comparison): ...                       # one Outcome per baseline column

Modes (the modes registry's `compare` entries, `mode_names(compare=True)`): auto, text-only, noise-latents,
zero-latents, shuffled-latents (the model's own sketches for another shipped puzzle of the same family, cached per
checkpoint) and oracle (examples with true sketches). A mode that cannot run for this puzzle (oracle without true
sketches, shuffled-latents for an upload) is reported with the reason instead of failing the comparison.

Baselines (BASELINES in app/request.py): other registered models on the same prompt, settings and seed in one mode
each; today `text-cot`, the text-only-CoT model (`baseline/text-cot`) in text-only mode, "the same puzzle reasoned
in words", given at least 448 new positions whatever was asked (its 16×16 traces are 355–365 tokens:
`baseline_settings`). Each is loaded by its registry name like any checkpoint (the LRU cache of app/models.py,
without a gallery: it never sketches); when the registry has no such entry or its folder is missing, the column is
skipped with the reason.

Batching: the engine takes one GenerationSettings per call, and the mode is a setting, so the modes run one engine
call each; what shares settings is batched — auto on the puzzle and auto on the donor of the modes that insert
another puzzle's sketches (when it is not cached yet) are one call. Every mode's trace is logged to the event store
like any answer.
"""

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field

from app.models import generate_traces
from app.reasoning import (
    Job,
    check_given,
    donor_key,
    inserted_sketches,
    log_job_traces,
    prepare,
    remember_donor,
    unseen_in,
)
from app.request import BASELINES, Baseline, Request
from app.service import Service
from model.core.checkpoint import CheckpointError
from model.generation.engine import Engine, Prompt
from model.generation.inputs import InputError, load_image
from model.generation.modes import MODE_SPECS, mode_names
from model.generation.settings import GenerationSettings
from model.generation.trace import Trace


@dataclass
class Outcome:
    mode: str  # the mode, or a baseline's key (BASELINES)
    trace: Trace | None = None
    correct: bool | None = None  # None when the puzzle's answer is unknown (uploads) or the mode did not run
    skipped: str = ""  # why the mode did not run

    def summary(self) -> dict:
        trace = self.trace
        if trace is None:
            empty = dict.fromkeys(("answer", "correct", "num_sketches", "num_positions", "total_s"))
            return {**empty, "skipped": self.skipped}
        return {
            "answer": trace.answer,
            "correct": self.correct,
            "num_sketches": trace.num_sketches,
            "num_positions": trace.num_positions,
            "total_s": round(trace.timings.get("total_s", 0.0), 4),
        }


@dataclass
class Comparison:
    job: Job  # the checked request (its prompt and settings, with mode auto)
    modes: list[str]
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    baselines: dict[str, Outcome] = field(default_factory=dict)  # key of BASELINES -> its column

    def summary(self) -> dict[str, dict]:
        return {mode: self.outcomes[mode].summary() for mode in self.modes if mode in self.outcomes}


def check_modes(modes) -> list[str]:
    """The modes to compare, in the order given (every `compare` mode when none are); InputError for others."""
    columns = mode_names(compare=True)
    if not modes:
        return columns
    if isinstance(modes, str):
        modes = [part.strip() for part in modes.split(",") if part.strip()]
    unknown = [m for m in modes if m not in columns]
    if unknown:
        raise InputError(f"cannot compare mode(s) {', '.join(map(repr, unknown))}; choose from {', '.join(columns)}")
    return list(dict.fromkeys(modes))


def prepare_comparison(service: Service, request: Request, modes, run_id: str) -> Comparison:
    modes = check_modes(modes)
    job = prepare(service, dataclasses.replace(request, mode="auto"), run_id)
    return Comparison(job, modes)


def run_comparison(service: Service, comparison: Comparison) -> Iterator[Outcome]:
    """Run every mode; yields each Outcome as it is finished (skipped modes at once)."""
    job, modes = comparison.job, comparison.modes
    loaded, example = job.loaded, job.example
    for mode in modes:
        if not MODE_SPECS[mode].inserts:
            continue
        try:  # say at once what cannot run; the sketches themselves are computed below
            check_given(service, example, mode)
        except InputError as err:
            comparison.outcomes[mode] = Outcome(mode, skipped=str(err))
            yield comparison.outcomes[mode]

    for group in _groups(service, comparison):
        settings = dataclasses.replace(job.settings, mode=group[0])
        prompts = [dataclasses.replace(job.prompt, oracle_latents=None)]
        if MODE_SPECS[group[0]].inserts:
            try:
                prompts[0].oracle_latents = inserted_sketches(service, loaded, example, settings)
            except InputError as err:  # e.g. the donor drew no sketch
                comparison.outcomes[group[0]] = Outcome(group[0], skipped=str(err))
                yield comparison.outcomes[group[0]]
                continue
        donor = group[1] if len(group) > 1 else None
        if donor is not None:  # auto on the donor of the modes that insert its sketches rides along in the same batch
            prompts.append(Prompt(donor.question, [load_image(p) for p in donor.problem_paths]))
        traces = generate_traces(job.engine, prompts, settings)
        if donor is not None:
            remember_donor(loaded, donor, job.settings, traces[1])
        trace = traces[0]
        trace.correct, trace.unseen_words = job.grade(trace), job.unseen_words
        log_job_traces(job, [trace], [next(service.rollouts)])
        comparison.outcomes[group[0]] = Outcome(group[0], trace, trace.correct)
        yield comparison.outcomes[group[0]]


def run_baselines(service: Service, comparison: Comparison) -> Iterator[Outcome]:
    """Each baseline column (BASELINES) on the job's prompt, settings and seed; yields each Outcome when done."""
    for key in BASELINES:
        comparison.baselines[key] = run_baseline(service, comparison.job, key)
        yield comparison.baselines[key]


def run_baseline(service: Service, job: Job, key: str) -> Outcome:
    """One baseline column: its registered model in its mode on the job's prompt (the sketches an inserting mode
    put in left out); skipped, with the reason, when the model is not registered, not there, or does not load."""
    baseline = BASELINES[key]
    name = baseline.checkpoint
    problem = service.registered_problem(name)
    if problem:
        return Outcome(key, skipped=problem)
    try:
        loaded = service.load(name, gallery=False)
    except CheckpointError as err:
        return Outcome(key, skipped=f"{name} cannot be loaded: {err}")
    settings = baseline_settings(job.settings, baseline)
    prompt = dataclasses.replace(job.prompt, oracle_latents=None)
    trace = generate_traces(Engine(loaded.model), [prompt], settings)[0]
    trace.correct, trace.unseen_words = job.grade(trace), unseen_in(loaded, prompt.question)
    log_job_traces(job, [trace], [next(service.rollouts)], loaded)
    return Outcome(key, trace, trace.correct)


def baseline_settings(settings: GenerationSettings, baseline: Baseline) -> GenerationSettings:
    """The job's settings in the baseline's mode, with at least its new positions (the text-only-CoT model's 16×16
    traces are longer than the default budget)."""
    budget = max(settings.max_new_tokens, baseline.min_new_tokens)
    return dataclasses.replace(settings, mode=baseline.mode, max_new_tokens=budget)


def _groups(service: Service, comparison: Comparison) -> list[tuple]:
    """(mode,) per engine call, with the donor example added to auto's call when a mode that inserts another
    puzzle's sketches (shuffled-latents) needs them."""
    job, todo = comparison.job, [m for m in comparison.modes if m not in comparison.outcomes]
    groups = [(mode,) for mode in todo]
    others = [m for m in todo if MODE_SPECS[m].given == "other"]
    if "auto" in todo and others:
        donor = check_given(service, job.example, others[0])
        if donor_key(donor, job.settings) not in job.loaded.donor_sketches:
            for mode in others:  # they need the donor's sketches, so they run right after auto
                groups.remove((mode,))
            at = groups.index(("auto",))
            groups[at : at + 1] = [("auto", donor), *((mode,) for mode in others)]
    return groups
