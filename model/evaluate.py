"""Evaluation harness: exact-match accuracy of a checkpoint per task family under each generation mode, with baselines.

    python -m model.evaluate --checkpoint runs/sft --data data/sketchworld --split test \
        --modes direct,text-only,auto,noise-latents,oracle --out runs/sft/eval-test
    python -m model.evaluate --checkpoint tiny --data data/sketchworld --limit 18 --out /tmp/eval   # smoke run

From code (training scripts, the app):

    predictions, summary = evaluate(model, examples, ["text-only", "auto"], max_new_tokens=256, event_log="runs/ev")
    write_results("runs/sft/eval-test", predictions, summary, {"checkpoint": "runs/sft"})
    print(format_summary(summary))

Modes. `direct`: text-only decoding with the answer forced to begin "The answer is", so the model answers without
reasoning. `text-only`, `auto`, `noise-latents`: the engine's modes. `oracle`: the engine's oracle mode fed with the
example's true sketch targets (its reasoning images through `model.sketch_targets`, one (K, D) per sketch, in trace
order). Decoding is greedy. `--language-only` loads the checkpoint without its latent head; only direct and text-only
are allowed then.

Output (in `--out`): `predictions.parquet`, one row per example × mode (see `PREDICTION_COLUMNS`); `summary.parquet`,
one row per (mode, family) plus an `overall` family per mode (see `SUMMARY_COLUMNS`), with two baselines as extra
modes: `majority` (each family's most common TRAIN answer, ties to the alphabetically first) and `random` (the expected
accuracy of a uniform guess over the example's choices, or over the family's distinct answers when it has none);
`results.json`, the run's config and the summary table; `events/`, the switch events (unless `--event-log` points
elsewhere). Bad input gets one `error:` line on stderr and exit status 2.

Simplified: one greedy answer per example (no sampling, no pass@k); scoring is exact match after `normalize_answer`,
with no partial credit and no mapping of free-form answers onto the choices. Latency is the row's wall time inside
its batch (prefill of the whole batch included), so it depends on --batch-size. Latent error is measured in the
backbone's embedding space (the space the latents are fed in), not in the head's standardised space. `overall`
baselines are the per-family baselines averaged over all examples. `--limit N` takes the first N rows round-robin
over families (sketch-world splits are stored family by family, so the first N rows would be one or two families).
"""

import argparse
import hashlib
import json
import logging
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from model.answers import normalize_answer

MODES = ("direct", "text-only", "auto", "noise-latents", "zero-latents", "shuffled-latents", "oracle")
LANGUAGE_ONLY_MODES = ("direct", "text-only")  # the modes that need no latent head
BASELINES = ("majority", "random")
DIRECT_PREFIX = "The answer is"
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

logger = logging.getLogger(__name__)


# ---- choosing and reading data ----------------------------------------------------------------------------------
def check_modes(modes: list[str], language_only: bool = False) -> list[str]:
    """The modes, deduplicated in order; ValueError naming the bad one and the valid ones."""
    modes = list(dict.fromkeys(m.strip() for m in modes if m.strip()))
    if not modes:
        raise ValueError(f"no modes given; choose from {', '.join(MODES)}")
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}")
    if language_only:
        bad = [m for m in modes if m not in LANGUAGE_ONLY_MODES]
        if bad:
            raise ValueError(
                f"--language-only removes the latent head, so only {', '.join(LANGUAGE_ONLY_MODES)} can run; "
                f"drop {', '.join(bad)}"
            )
    return modes


def select_rows(dataset, limit: int | None):
    """At most `limit` rows, taken round-robin over the `family` column when there is one (else the first rows)."""
    if limit is None or limit >= len(dataset):
        return dataset
    if "family" not in dataset.column_names:
        return dataset.select(range(limit))
    by_family: dict[str, list[int]] = {}
    for index, family in enumerate(dataset["family"]):
        by_family.setdefault(family, []).append(index)
    queues, picked = list(by_family.values()), []
    for rank in range(max(len(q) for q in queues)):
        picked += [q[rank] for q in queues if rank < len(q)]
    return dataset.select(sorted(picked[:limit]))


def train_answers_from(data_dir: str | Path, split_file: str = "train.parquet") -> dict[str, list[str]] | None:
    """Family → answers of the train split, read from its answer columns only; None when there is no train split."""
    import pyarrow.parquet as pq

    path = Path(data_dir) / split_file
    if not path.is_file():
        return None
    columns = [c for c in ("Final Answer", "family") if c in pq.read_schema(path).names]
    table = pq.read_table(path, columns=columns).to_pydict()
    answers = table.get("Final Answer", [])
    families = table.get("family", [""] * len(answers))
    out: dict[str, list[str]] = {}
    for family, answer in zip(families, answers):
        if answer is not None and str(answer).strip():  # load_examples skips rows with empty answers too
            out.setdefault(family or "", []).append(str(answer).strip())
    return out


# ---- generation -------------------------------------------------------------------------------------------------
def true_sketches(model, examples) -> list:
    """Per example, its true sketch targets (num_sketches, K, D) on the CPU in trace order; None without sketches."""
    from model.data import Sketch

    images = [img for ex in examples for img in ex.reasoning_images]
    pooled = model.sketch_targets(images).float().cpu() if images else None  # (N, K, D), one encoder batch
    out, start = [], 0
    for ex in examples:
        mine = pooled[start : start + len(ex.reasoning_images)] if images else None
        start += len(ex.reasoning_images)
        order = [s.image_index for s in ex.segments if isinstance(s, Sketch)]  # an image may be drawn twice
        out.append(mine[order] if order else None)
    return out


def run_batch(engine, examples, mode: str, settings, true_latents: list | None = None) -> list:
    """Traces for one batch in one evaluation mode; the engine's event log (if any) gets their switch events.
    `true_latents`: per example the sketches to insert in oracle and shuffled-latents modes."""
    from model.engine import Prompt
    from model.inputs import InputError

    if mode == "oracle" and true_latents is None:
        true_latents = true_sketches(engine.model, examples)
    inserting = mode in ("oracle", "shuffled-latents")
    prompts = [
        Prompt(
            question=ex.question,
            images=ex.problem_images,
            oracle_latents=list(true_latents[i]) if inserting and true_latents[i] is not None else None,
            seed=example_seed(settings.seed, ex.id),
            example_id=ex.id,
            family=ex.family,
            answer=ex.answer,
            response_prefix=DIRECT_PREFIX if mode == "direct" else "",
        )
        for i, ex in enumerate(examples)
    ]
    # direct runs as text-only; its events are logged only after the traces are relabelled, so the event store
    # keeps direct answers apart from text-only ones
    event_log, engine.event_log = engine.event_log, None
    try:
        traces = engine.generate(prompts, replace(settings, mode="text-only" if mode == "direct" else mode))
    except InputError as err:
        raise InputError(f"examples {', '.join(ex.id for ex in examples)}: {err}") from err
    finally:
        engine.event_log = event_log
    for trace in traces:
        trace.mode = mode
    if event_log:
        engine.log_events(prompts, traces)
    return traces


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
    max_new_tokens: int = 256,
    max_sketches: int = 4,
    diffusion_steps: int | None = None,
    seed: int = 0,
    temperature: float = 0.0,
    train_answers: dict[str, list[str]] | None = None,
    event_log: str | None = None,
    run_id: str = "",
    checkpoint: str = "",
    progress: bool = True,
    traces: dict | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every mode over every example (greedy, in batches) → (predictions, summary) DataFrames.

    train_answers: family → answers for the majority baseline (see `train_answers_from`); None falls back to the
    evaluated examples' answers. event_log: a store folder for the switch events, logged under `run_id`.
    traces: a dict filled with every Trace, keyed by (mode, example id). `shuffled-latents` runs `auto` first (and
    reports it) because the sketches it inserts are auto's."""
    from tqdm import tqdm

    from model.engine import Engine, GenerationSettings

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
    )
    settings.check()
    engine = Engine(model, event_log=event_log, run_id=run_id, checkpoint=checkpoint)
    if "shuffled-latents" in modes:  # its sketches are auto's, so auto runs before it
        at = modes.index("shuffled-latents")
        if "auto" not in modes[:at]:
            modes = [m for m in modes[:at] if m != "auto"] + ["auto"] + [m for m in modes[at:] if m != "auto"]
    traces = {} if traces is None else traces
    rows = []
    for mode in modes:
        inserted = shuffled_sketches(examples, traces) if mode == "shuffled-latents" else None
        with tqdm(total=len(examples), desc=mode, unit="ex", disable=not progress) as bar:
            for start in range(0, len(examples), batch_size):
                batch = examples[start : start + batch_size]
                targets = true_sketches(model, batch) if mode == "oracle" else None
                given = inserted[start : start + batch_size] if inserted is not None else targets
                batch_traces = run_batch(engine, batch, mode, settings, given)
                if targets is None and any(t.num_sketches for t in batch_traces):  # to score drawn sketches
                    targets = true_sketches(model, batch)
                targets = targets or [None] * len(batch)
                for ex, tr, tg in zip(batch, batch_traces, targets):
                    traces[mode, ex.id] = tr
                    rows.append(prediction_row(ex, mode, tr, tg))
                bar.update(len(batch))
    predictions = pd.DataFrame(rows, columns=PREDICTION_COLUMNS)
    predictions = predictions.astype({"latent_mse": float, "latent_cosine": float, "latency_s": float})
    return predictions, summarize(predictions, baseline_scores(examples, train_answers))


def shuffled_sketches(examples, traces: dict) -> list:
    """Per example, the sketches (m, K, D) that `auto` drew for the next example of the same family that drew any
    (in order, wrapping around), so each puzzle gets another puzzle's own generated sketches; None when its family
    has no other example with sketches."""
    import torch

    by_family: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        by_family.setdefault(ex.family, []).append(i)
    drawn = [[s.latents for s in traces["auto", ex.id].sketches] for ex in examples]
    out: list = [None] * len(examples)
    for members in by_family.values():
        for rank, i in enumerate(members):
            for step in range(1, len(members)):
                j = members[(rank + step) % len(members)]
                if drawn[j]:
                    out[i] = torch.as_tensor(np.stack(drawn[j]))
                    break
    return out


def sketch_quality(model, examples, traces: dict, probe) -> pd.DataFrame:
    """Per family (and overall): cells read back right by `probe` from auto's sketches and from the true targets,
    and the spread (1 − mean pairwise cosine) of both. Pairs a drawn sketch with the true one of the same index."""
    from model.sketch_audit import sketch_grids, spread

    mean, std = model.latent_mean.float().cpu().numpy(), model.latent_std.float().cpu().numpy()
    rows = []
    families = sorted({ex.family for ex in examples})
    for family in families + [OVERALL]:
        members = [ex for ex in examples if family in (OVERALL, ex.family)]
        truths = true_sketches(model, members)
        drawn, true, grids_drawn, grids_true = [], [], [], []
        for ex, target in zip(members, truths):
            grids = sketch_grids(ex)
            trace = traces.get(("auto", ex.id))
            generated = [s.latents for s in trace.sketches] if trace is not None else []
            for k, grid in enumerate(grids):
                if grid is None:
                    continue
                true.append(target[k].numpy())
                grids_true.append(grid)
                if k < len(generated):
                    drawn.append(generated[k])
                    grids_drawn.append(grid)
        if not true:
            continue
        spread_true, spread_drawn = spread(true, mean, std), spread(drawn, mean, std)
        rows.append(
            dict(
                family=family,
                sketches=len(true),
                drawn=len(drawn),
                cells_right_drawn=probe.cell_accuracy(drawn, grids_drawn) if probe and drawn else float("nan"),
                cells_right_true=probe.cell_accuracy(true, grids_true) if probe else float("nan"),
                spread_drawn=spread_drawn,
                spread_true=spread_true,
                spread_ratio=spread_drawn / spread_true if spread_true > 0 else float("nan"),
                cosine_drawn=1 - spread_drawn,
                cosine_true=1 - spread_true,
            )
        )
    return pd.DataFrame(rows)


# ---- output -----------------------------------------------------------------------------------------------------
def probe_quality(model, data: str, split: str, limit: int, examples, traces: dict) -> pd.DataFrame | None:
    """Fit the read-back probe on `split` of `data` (when it exists) and measure auto's sketches with it."""
    from model.data import load_examples
    from model.sketch_audit import CellProbe
    from model.sketchworld import load_split

    if not (Path(data) / f"{split}.parquet").is_file():
        print(f"note: no {split} split in {data}; sketch quality is not measured")
        return None
    probe_examples, _ = load_examples(select_rows(load_split(data, split), limit))
    probe = CellProbe.fit(model, probe_examples)
    if probe is None:
        print(f"note: the {split} split has no described sketches; sketch quality is not measured")
        return None
    return sketch_quality(model, examples, traces, probe)


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


# ---- command line -----------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m model.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder, preset name or hub id")
    parser.add_argument("--data", required=True, help="folder with <split>.parquet files (sketch-world layout)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, from {', '.join(MODES)}")
    parser.add_argument("--limit", type=int, default=None, help="evaluate at most N examples")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--max-sketches", type=int, default=4)
    parser.add_argument("--diffusion-steps", type=int, default=None, help="T (default: the checkpoint's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy; > 0 samples (seeded per example)")
    parser.add_argument("--language-only", action="store_true", help="load the checkpoint without its latent head")
    parser.add_argument("--event-log", default=None, help="switch-event store folder (default: OUT/events)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument(
        "--probe-split",
        default="validation",
        help="split whose true sketch targets train the read-back probe ('' = no sketch quality)",
    )
    parser.add_argument("--probe-limit", type=int, default=600, help="examples of the probe split to fit it on")
    parser.add_argument("--out", required=True, help="output folder")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> list[str]:
    """The cheap checks, before anything heavy is imported or loaded; ValueError with the offending value."""
    modes = check_modes(args.modes.split(","), args.language_only)
    if args.limit is not None and args.limit <= 0:
        raise ValueError(f"--limit must be positive, got {args.limit}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not 0 <= args.temperature <= 10:
        raise ValueError(f"--temperature must be between 0 and 10, got {args.temperature}")
    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    if args.max_sketches < 0:
        raise ValueError(f"--max-sketches must be >= 0, got {args.max_sketches}")
    if args.diffusion_steps is not None and not 1 <= args.diffusion_steps <= 1000:
        raise ValueError(f"--diffusion-steps must be between 1 and 1000, got {args.diffusion_steps}")
    data = Path(args.data)
    if not data.is_dir():
        raise ValueError(f"data folder {data} does not exist")
    if not (data / f"{args.split}.parquet").is_file():
        found = sorted(p.stem for p in data.glob("*.parquet"))
        raise ValueError(f"no split {args.split!r} in {data}: found {', '.join(found) or 'no .parquet files'}")
    return modes


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        modes = check_args(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    import torch

    from model.checkpoint import CheckpointError, load_model
    from model.data import load_examples
    from model.inputs import InputError
    from model.sketchworld import load_split

    started, clock = datetime.now(UTC), time.perf_counter()
    try:  # data first: a bad split should not wait for the model to load
        examples, report = load_examples(select_rows(load_split(args.data, args.split), args.limit))
        if report.counts:
            print(f"{args.split}: {report}", file=sys.stderr)
        if not examples:
            raise ValueError(f"no usable examples in split {args.split!r} of {args.data} ({report})")
        train_answers = train_answers_from(args.data)
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = load_model(args.checkpoint, device=device, with_latent_head=not args.language_only).eval()
    except (CheckpointError, ValueError) as err:  # load_examples raises ValueError for a non-Zebra-CoT file
        print(f"error: {err}", file=sys.stderr)
        return 2
    if train_answers is None:
        print(f"note: no train split in {args.data}; the majority baseline uses the evaluated answers")
    name = Path(args.checkpoint.rstrip("/")).name or args.checkpoint
    run_id = f"eval-{name}-{args.split}"
    event_log = args.event_log or str(Path(args.out) / "events")
    traces: dict = {}
    try:
        predictions, summary = evaluate(
            model,
            examples,
            modes,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            max_sketches=args.max_sketches,
            diffusion_steps=args.diffusion_steps,
            seed=args.seed,
            temperature=args.temperature,
            train_answers=train_answers,
            event_log=event_log,
            run_id=run_id,
            checkpoint=args.checkpoint,
            traces=traces,
        )
    except InputError as err:  # an example the engine refuses (e.g. a question over the length cap)
        print(f"error: {err}", file=sys.stderr)
        return 2
    config = {
        "checkpoint": args.checkpoint,
        "data": args.data,
        "split": args.split,
        "modes": modes,
        "latent_budget": model.config.latent_budget,  # K
        "diffusion_loss_weight": model.config.diffusion_loss_weight,  # λ
        "language_only": args.language_only,
        "limit": args.limit,
        "num_examples": len(examples),
        "skipped_rows": report.total - report.kept,
        "seed": args.seed,
        "temperature": args.temperature,
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "max_sketches": args.max_sketches,
        "diffusion_steps": args.diffusion_steps or model.config.diffusion_steps,
        "majority_from": "train" if train_answers is not None else args.split,
        "run_id": run_id,
        "event_log": event_log,
        "device": device,
        "time": started.isoformat(timespec="seconds"),
        "elapsed_s": round(time.perf_counter() - clock, 2),
    }
    quality = None
    probe_split = args.probe_split if args.probe_split != args.split else ""
    if probe_split and model.has_latent_head and any(mode == "auto" for mode, _ in traces):
        quality = probe_quality(model, args.data, probe_split, args.probe_limit, examples, traces)
        config["probe_split"] = probe_split
    out = write_results(args.out, predictions, summary, config, quality)
    print(format_summary(summary))
    if quality is not None and len(quality):
        print("\nsketch quality (cells read back right by the probe; spread = 1 − mean pairwise cosine):")
        print(quality.round(3).to_string(index=False))
    print(f"\nwrote {out / 'results.json'}, summary.parquet, predictions.parquet; events in {event_log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
