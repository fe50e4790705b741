"""Evaluation harness: exact-match accuracy of a checkpoint per task family under each generation mode, with baselines.

    predictions, summary = evaluate(model, examples, ["auto", "noise-latents", "oracle"], event_log="runs/ev")
    write_results("runs/sft/eval-test", predictions, summary, {"checkpoint": "runs/sft"})
    print(format_summary(summary))

The command line is model/evaluation/cli.py (`python -m model.evaluate`); sketch quality is model/evaluation/audit.py.

Modes (model/generation/modes.py): a mode whose sketches are given (its `given`) inserts the example's true sketch
targets (model/data/targets.py: `oracle`) or the sketches `auto` drew for another example of the same family
(`shuffled-latents`, so it runs after `auto`), each through the mode's `transform` when it has one.
A checkpoint loaded without its latent head runs only `direct` and `text-only`. Decoding is greedy unless a
temperature is given; each example has a seed of its own (`example_seed`), the same in every mode and batch.

Output: `predictions` has one row per example × mode (`PREDICTION_COLUMNS`); `summary` one row per (mode, family)
plus an `overall` family per mode (`SUMMARY_COLUMNS`: n, accuracy and its 95 % Wilson interval, …), with two
baselines as extra modes: `majority` (each family's most common TRAIN answer, ties to the alphabetically first) and
`random` (the expected accuracy of a uniform guess over the example's choices, or over the family's distinct answers
when it has none).

Simplified: one answer per example (no pass@k); scoring is exact match after `normalize_answer`, with no partial
credit and no mapping of free-form answers onto the choices. Latency is the row's wall time inside its batch
(prefill of the whole batch included), so it depends on the batch size. Latent error is measured in the backbone's
embedding space (the space the latents are fed in), not in the head's standardised space. `overall` baselines are
the per-family baselines averaged over all examples. `select_rows` takes rows round-robin over families
(sketch-world splits are stored family by family, so the first N rows would be one or two families).
"""

import hashlib
import json
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm import tqdm

from model.core.image_memo import remembering
from model.data.folders import load_rows
from model.data.targets import true_sketches
from model.evaluation.audit import shuffled_sketches
from model.generation.answers import normalize_answer
from model.generation.engine import Engine, Prompt
from model.generation.events import log_traces
from model.generation.modes import MODE_SPECS, check_mode
from model.generation.settings import GenerationSettings

BASELINES = ("majority", "random")
OVERALL = "overall"
PREDICTION_COLUMNS = [
    "id",
    "family",
    "mode",
    "prediction",  # the trace's normalised answer ("" when it gave none)
    "answer",  # the Final Answer as written in the data
    "correct",  # prediction == normalize_answer(answer)
    "num_sketches",
    "truncated",
    "latency_s",  # Trace.timings["total_s"]
    "num_positions",
    "latent_mse",  # mean squared error of generated vs true sketch latents; null without both
    "latent_cosine",  # mean cosine similarity per latent slot, same pairs
    "output",  # the reasoning as text, sketches shown as ⟨START⟩[sketch n: K latents]⟨END⟩
]
SUMMARY_COLUMNS = [
    "mode",
    "family",
    "n",
    "accuracy",
    "sketches_per_answer",
    "start_rate",  # fraction of answers with at least one sketch
    "ci_low",  # 95 % Wilson interval of the accuracy
    "ci_high",
    "latency_mean_s",
    "latency_p50_s",
    "latent_mse",
    "latent_cosine",
    "truncated_rate",
    "note",  # where a baseline's answers came from
]


# ---- choosing and reading data ----------------------------------------------------------------------------------
def check_modes(modes: list[str], language_only: bool = False) -> list[str]:
    """The modes, deduplicated in order; ValueError naming the bad one and the valid ones."""
    modes = list(dict.fromkeys(m.strip() for m in modes if m.strip()))
    if not modes:
        raise ValueError(f"no modes given; choose from {', '.join(MODE_SPECS)}")
    for mode in modes:
        check_mode(mode)
    if language_only:
        bad = [m for m in modes if not MODE_SPECS[m].language_only]
        if bad:
            allowed = [m for m, spec in MODE_SPECS.items() if spec.language_only]
            raise ValueError(
                f"--language-only removes the latent head, so only {', '.join(allowed)} can run; drop {', '.join(bad)}"
            )
    return modes


def train_answers_from(data: str | Path, rows_kw: dict | None = None) -> dict[str, list[str]] | None:
    """Family → answers of the train split (only its answer columns are read); None when there is no train split."""
    path = Path(data) / "train.parquet"
    if path.is_file():  # sketch-world: read two columns, not the images
        columns = [c for c in ("Final Answer", "family") if c in pq.read_schema(path).names]
        table = pq.read_table(path, columns=columns).to_pydict()
    else:
        try:
            rows = load_rows(data, "train", **(rows_kw or {}))
        except ValueError:
            return None
        table = {c: rows[c] for c in ("Final Answer", "family") if c in rows.column_names}
    answers = table.get("Final Answer", [])
    families = table.get("family", [""] * len(answers))
    out: dict[str, list[str]] = {}
    for family, answer in zip(families, answers):
        if answer is not None and str(answer).strip():  # load_examples skips rows with empty answers too
            out.setdefault(family or "", []).append(str(answer).strip())
    return out


# ---- generation -------------------------------------------------------------------------------------------------
def run_batch(engine, examples, mode: str, settings, inserted: list | None = None) -> list:
    """Traces for one batch in one mode. `inserted`: per example the sketches (m, K, D) of the mode's `given` source
    (the true ones by default when that is "true"), inserted through the mode's transform."""
    spec = MODE_SPECS[mode]
    if spec.given == "true" and inserted is None:
        inserted = true_sketches(engine.model, examples)
    use = spec.inserts and inserted is not None
    prompts = [
        Prompt(
            question=ex.question,
            images=ex.problem_images,
            oracle_latents=spec.insertable(inserted[i]) if use else None,
            seed=example_seed(settings.seed, ex.id),
        )
        for i, ex in enumerate(examples)
    ]
    return engine.generate(prompts, replace(settings, mode=mode))


def example_seed(seed: int, example_id: str) -> int:
    """A row seed of its own for each example (sampling, noise latents), the same in every mode and batch."""
    digest = hashlib.sha256(f"{seed}/{example_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def latent_error(trace, targets) -> tuple[float | None, float | None]:
    """(MSE, mean per-slot cosine) of generated sketch i vs true sketch i for i < min(#generated, #true)."""
    if targets is None or not trace.sketches:
        return None, None
    n = min(len(trace.sketches), len(targets))
    generated = np.stack([s.latents for s in trace.sketches[:n]]).astype(np.float64)  # (n, K, D)
    true = targets[:n].numpy().astype(np.float64)
    mse = float(((generated - true) ** 2).mean())
    norms = np.linalg.norm(generated, axis=-1) * np.linalg.norm(true, axis=-1)
    cosine = float(((generated * true).sum(-1) / np.maximum(norms, 1e-12)).mean())
    return mse, cosine


def prediction_row(example, mode: str, trace, targets) -> dict:
    mse, cosine = latent_error(trace, targets)
    return {
        "id": example.id,
        "family": example.family,
        "mode": mode,
        "prediction": trace.answer,
        "answer": example.answer,
        "correct": trace.answer == normalize_answer(example.answer),
        "num_sketches": trace.num_sketches,
        "truncated": trace.truncated,
        "latency_s": trace.timings.get("total_s"),
        "num_positions": trace.num_positions,
        "latent_mse": mse,
        "latent_cosine": cosine,
        "output": trace.render(),
    }


# ---- baselines and summary --------------------------------------------------------------------------------------
def _majority(answers: list[str]) -> str:
    counts = Counter(answers)
    return min(counts, key=lambda a: (-counts[a], a))  # most common; ties go to the alphabetically first


def baseline_scores(examples, train_answers: dict[str, list[str]] | None) -> pd.DataFrame:
    """Per example, the expected score of the `majority` and `random` baselines (columns id, family, mode, score,
    note). A family with no train answers falls back to the evaluated examples' answers, and says so in `note`."""
    evaluated: dict[str, list[str]] = {}
    for ex in examples:
        evaluated.setdefault(ex.family, []).append(normalize_answer(ex.answer))
    rows = []
    for ex in examples:
        pool = [normalize_answer(a) for a in (train_answers or {}).get(ex.family, [])]
        note = "train answers"
        if not pool:
            pool, note = evaluated[ex.family], "evaluated answers (no train answers for this family)"
        gold = normalize_answer(ex.answer)
        rows.append(dict(id=ex.id, family=ex.family, mode="majority", score=float(_majority(pool) == gold), note=note))
        if ex.choices:
            guesses, note = {normalize_answer(c) for c in ex.choices}, "uniform over the choices"
        else:
            guesses = set(pool)
            note = "uniform over the family's " + note
        rows.append(
            dict(id=ex.id, family=ex.family, mode="random", score=float(gold in guesses) / len(guesses), note=note)
        )
    return pd.DataFrame(rows, columns=["id", "family", "mode", "score", "note"])


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95 % by default); (nan, nan) for n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def _summary_row(mode: str, family: str, group: pd.DataFrame) -> dict:
    if "score" in group:  # a baseline: only accuracy means anything
        notes = sorted(set(group["note"]))
        return dict(mode=mode, family=family, n=len(group), accuracy=group["score"].mean(), note="; ".join(notes))
    latency = group["latency_s"].astype(float)
    low, high = wilson(float(group["correct"].sum()), len(group))
    return dict(
        mode=mode,
        family=family,
        n=len(group),
        accuracy=group["correct"].mean(),
        ci_low=low,
        ci_high=high,
        sketches_per_answer=group["num_sketches"].mean(),
        start_rate=(group["num_sketches"] > 0).mean(),
        latency_mean_s=latency.mean(),
        latency_p50_s=latency.median(),
        latent_mse=group["latent_mse"].astype(float).mean(),  # NaN-skipping: over answers that have a value
        latent_cosine=group["latent_cosine"].astype(float).mean(),
        truncated_rate=group["truncated"].mean(),
        note="",
    )


def summarize(predictions: pd.DataFrame, baselines: pd.DataFrame) -> pd.DataFrame:
    """One row per (mode, family) and per (mode, overall); modes in their order of appearance, baselines last."""
    rows = []
    for frame in (predictions, baselines):
        for mode in frame["mode"].unique():
            of_mode = frame[frame["mode"] == mode]
            for family in sorted(of_mode["family"].unique()):
                rows.append(_summary_row(mode, family, of_mode[of_mode["family"] == family]))
            rows.append(_summary_row(mode, OVERALL, of_mode))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS).astype({"n": int})


def evaluate(
    model,
    examples: list,
    modes: list[str],
    *,
    batch_size: int = 8,
    max_new_tokens: int = GenerationSettings.max_new_tokens,
    max_sketches: int = GenerationSettings.max_sketches,
    diffusion_steps: int | None = GenerationSettings.diffusion_steps,
    seed: int = GenerationSettings.seed,
    temperature: float = GenerationSettings.temperature,
    train_answers: dict[str, list[str]] | None = None,
    event_log: str | None = None,
    run_id: str = "",
    checkpoint: str = "",
    progress: bool = True,
    traces: dict | None = None,
    reuse: bool = True,
    family_batches: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every mode over every example (greedy, in batches) → (predictions, summary) DataFrames.

    train_answers: family → answers for the majority baseline (see `train_answers_from`); None falls back to the
    evaluated examples' answers. event_log: a store folder for the switch events, logged under `run_id`.
    traces: a dict filled with every Trace, keyed by (mode, example id). A mode that inserts other puzzles' sketches
    (`shuffled-latents`) runs `auto` first (and reports it) because the sketches it inserts are auto's.
    reuse: what the modes share is computed once: each picture through the encoder (model/core/image_memo.py) and
    each batch's prompts through the language model (the modes of a batch run one after another, each from a copy of
    its KV cache); False computes them again in every mode, as before. family_batches: batches of one family where
    they can be (rows of like length), False: batches in the examples' order, as before. Neither changes an answer."""
    modes = check_modes(modes, language_only=not model.has_latent_head)
    if not examples:
        raise ValueError("no examples to evaluate")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    settings = GenerationSettings(
        max_new_tokens=max_new_tokens,
        max_sketches=max_sketches,
        diffusion_steps=diffusion_steps,
        seed=seed,
        temperature=temperature,
    ).check()
    engine = Engine(model, reuse_prefill=reuse)
    others = [i for i, m in enumerate(modes) if MODE_SPECS[m].given == "other"]
    if others and "auto" not in modes[: others[0]]:  # their sketches are auto's, so auto runs before them
        at = others[0]
        modes = [m for m in modes[:at] if m != "auto"] + ["auto"] + [m for m in modes[at:] if m != "auto"]
    order = range(len(examples))
    if family_batches:  # stable: within a family as given
        order = sorted(order, key=lambda i: examples[i].family)
    batches = [list(order)[start : start + batch_size] for start in range(0, len(examples), batch_size)]
    run = _Run(model, engine, examples, settings, traces={} if traces is None else traces, event_log=event_log,
               run_id=run_id, checkpoint=checkpoint)  # fmt: skip
    own = [m for m in modes if MODE_SPECS[m].given != "other"]  # those that need auto's sketches of every puzzle after
    with remembering(model) if reuse else nullcontext(), tqdm(total=len(examples) * len(modes), unit="answer",
                                                              disable=not progress) as bar:  # fmt: skip
        if reuse:  # a batch's modes one after another: its prefill is kept between them
            for chosen in batches:
                for mode in own:
                    bar.set_description(mode)
                    run.batch(mode, chosen, None)
                    bar.update(len(chosen))
        for mode in modes:
            if reuse and mode in own:
                continue
            bar.set_description(mode)
            inserted = shuffled_sketches(examples, run.traces) if MODE_SPECS[mode].given == "other" else None
            for chosen in batches:
                run.batch(mode, chosen, inserted)
                bar.update(len(chosen))
    rows = [run.rows[mode, i] for mode in modes for i in range(len(examples))]
    predictions = pd.DataFrame(rows, columns=PREDICTION_COLUMNS)
    predictions = predictions.astype({"latent_mse": float, "latent_cosine": float, "latency_s": float})
    return predictions, summarize(predictions, baseline_scores(examples, train_answers))


@dataclass
class _Run:
    """One evaluation's batches: it answers a batch in a mode, scores and logs it, and keeps the rows and traces."""

    model: object
    engine: Engine
    examples: list
    settings: GenerationSettings
    traces: dict
    event_log: str | None
    run_id: str
    checkpoint: str
    rows: dict = field(default_factory=dict)  # (mode, example index) → its prediction row

    def batch(self, mode: str, chosen: list[int], inserted: list | None) -> None:
        """The examples at `chosen` in `mode`; `inserted`: per example (all of them) the sketches a mode that takes
        other puzzles' sketches inserts."""
        model, batch = self.model, [self.examples[i] for i in chosen]
        targets = true_sketches(model, batch) if MODE_SPECS[mode].given == "true" else None
        given = [inserted[i] for i in chosen] if inserted is not None else targets
        batch_traces = run_batch(self.engine, batch, mode, self.settings, given)
        if targets is None and any(t.num_sketches for t in batch_traces):  # to score drawn sketches
            targets = true_sketches(model, batch)
        targets = targets or [None] * len(batch)
        for i, ex, tr, tg in zip(chosen, batch, batch_traces, targets):
            self.traces[mode, ex.id] = tr
            self.rows[mode, i] = prediction_row(ex, mode, tr, tg)
        if self.event_log:
            log_traces(self.event_log, batch_traces, run_id=self.run_id, checkpoint=self.checkpoint,
                       latent_budget=model.config.latent_budget,
                       diffusion_loss_weight=model.config.diffusion_loss_weight,
                       families=[ex.family for ex in batch], example_ids=[ex.id for ex in batch],
                       answers=[ex.answer for ex in batch])  # fmt: skip


# ---- output -----------------------------------------------------------------------------------------------------
def write_results(
    out_dir: str | Path, predictions: pd.DataFrame, summary: pd.DataFrame, config: dict, quality=None
) -> Path:
    """Write results.json (config + summary [+ quality]), summary.parquet, predictions.parquet [and
    quality.parquet] into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    predictions.to_parquet(out / "predictions.parquet", index=False)
    summary.to_parquet(out / "summary.parquet", index=False)
    table = json.loads(summary.to_json(orient="records"))  # to_json writes NaN as null, which json.dumps would not
    results = {"config": config, "summary": table}
    if quality is not None:
        quality.to_parquet(out / "quality.parquet", index=False)
        results["quality"] = json.loads(quality.to_json(orient="records"))
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
    return out


def format_summary(summary: pd.DataFrame) -> str:
    """A markdown table of accuracy, one row per family (overall last), one column per mode, plus n."""
    modes = list(dict.fromkeys(summary["mode"]))
    families = sorted(set(summary["family"]) - {OVERALL}) + [OVERALL]
    cell = {(r.mode, r.family): r for r in summary.itertuples()}
    lines = ["| family | n | " + " | ".join(modes) + " |", "|---|---:|" + "---:|" * len(modes)]
    for family in families:
        n = next((cell[m, family].n for m in modes if (m, family) in cell), 0)
        values = [f"{cell[m, family].accuracy:.3f}" if (m, family) in cell else "-" for m in modes]
        lines.append(f"| {family or '(none)'} | {n} | " + " | ".join(values) + " |")
    return "\n".join(lines)
