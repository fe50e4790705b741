"""`python -m model.evaluate`: the evaluation harness and the audit from the shell.

    python -m model.evaluate --checkpoint assets/checkpoints/demo --data data/sketchworld --split test \
        --modes direct,text-only,auto,noise-latents,zero-latents,shuffled-latents,oracle --out runs/eval-test
    python -m model.evaluate --checkpoint tiny --data data/sketchworld --limit 18 --out /tmp/eval   # smoke run
    python -m model.evaluate --checkpoint DIR --data /data/zebra-cot --categories "Visual Logic" --carve 0.05 ...

Writes into `--out`: predictions.parquet, summary.parquet, results.json (config + summary + sketch quality),
quality.parquet (cells read back by a probe fitted on `--probe-split`, and the sketches' spread; see
model/evaluation/audit.py), and `events/` (the switch events, unless `--event-log` points elsewhere). `--limit N`
takes N rows round-robin over families. `--language-only` loads the checkpoint without its latent head (only
direct and text-only then). Bad input gets one `error:` line on stderr and exit status 2.
"""

import argparse
import dataclasses
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import torch

from model.core.checkpoint import CheckpointError, load_model
from model.core.image_memo import ImageMemo
from model.core.threads import share_cores
from model.data.folders import MAX_CARVE, load_rows, select_rows
from model.data.zebra import load_examples
from model.evaluation.audit import probe_quality
from model.evaluation.harness import (
    baseline_scores,
    check_modes,
    evaluate,
    format_summary,
    summarize,
    train_answers_from,
    write_results,
)
from model.evaluation.parallel import collect, mode_groups, start_workers, stop
from model.generation.inputs import check_device
from model.generation.modes import mode_names
from model.generation.sampler_flags import add_sampler_flags, apply_sampler_flags, check_sampler_flags
from model.generation.settings import GenerationSettings


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m model.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder, preset name or hub id")
    parser.add_argument(
        "--data",
        required=True,
        help="a data folder (sketch-world, Hub shards, Zebra-CoT category folders) or a hub id",
    )
    parser.add_argument("--categories", default="", help="Zebra-CoT: comma-separated category folders to keep")
    parser.add_argument(
        "--carve",
        type=float,
        default=0.0,
        help="Zebra-CoT has only train: carve validation and test out of it, this share each",
    )
    parser.add_argument("--split", default="test")
    every = ",".join(mode_names())
    parser.add_argument("--modes", default=every, help=f"comma-separated, from {every.replace(',', ', ')}")
    parser.add_argument("--limit", type=int, default=None, help="evaluate at most N examples")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=GenerationSettings.max_new_tokens)
    parser.add_argument("--max-sketches", type=int, default=GenerationSettings.max_sketches)
    add_sampler_flags(parser)
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
    parser.add_argument(
        "--questions",
        choices=QUESTION_FORMS,
        default="template",
        help="ask each puzzle in its template wording, in its paraphrased wording (sketch-world's "
        "paraphrased_question), or only the puzzles whose paraphrase is of one kind, in it: seen (the training "
        "grammar), held-out (a held-out template or synonym), held-out-template, held-out-synonym",
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="bf16: the decoding's matmuls and attention under bf16 autocast (faster on CPUs with AVX-512 bf16; "
        "benchmarks/bench_train.py checks the answers against fp32's)",
    )
    parser.add_argument(
        "--reuse",
        choices=("on", "off"),
        default="on",
        help="on: what the modes share is computed once (each picture through the vision encoder, each batch's "
        "prompts through the language model); off: every mode computes them again, as before (for benchmarks); "
        "the answers are the same",
    )
    parser.add_argument(
        "--batches",
        choices=("by-family", "as-given"),
        default="by-family",
        help="by-family: each batch of one family where it can be (rows of like length; a batch steps until its "
        "longest row ends); as-given: batches in the split's order, families mixed, as before (for benchmarks)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="processes of one thread each, the modes split among them (model/evaluation/parallel.py); 0 = one "
        "per CPU core (one on a GPU, or while a training run is going)",
    )
    parser.add_argument("--out", required=True, help="output folder")
    return parser.parse_args(argv)


# template: the canonical question; paraphrased: every row's paraphrase; the others: rows whose paraphrase is of that
# kind (sketch-world's paraphrase_kind, model/sketchworld/grammar.py); held-out: either held-out kind
QUESTION_FORMS = ("template", "paraphrased", "seen", "held-out", "held-out-template", "held-out-synonym")


def reword(examples: list, questions: str, data: str) -> list:
    """The examples asked as `--questions` says (ValueError when the data has no paraphrases)."""
    if questions == "template":
        return examples
    if not any(e.paraphrased_question for e in examples):
        raise ValueError(f"--questions {questions}: {data} has no paraphrased questions (sketch-world version >= 5)")
    kinds = {"paraphrased": None, "held-out": ("held-out-template", "held-out-synonym")}.get(questions, (questions,))
    kept = [e for e in examples if e.paraphrased_question and (kinds is None or e.paraphrase_kind in kinds)]
    return [dataclasses.replace(e, question=e.paraphrased_question) for e in kept]


def check_args(args: argparse.Namespace) -> list[str]:
    """The cheap checks, before anything heavy is imported or loaded; ValueError with the offending value."""
    modes = check_modes(args.modes.split(","), args.language_only)
    if args.limit is not None and args.limit <= 0:
        raise ValueError(f"--limit must be positive, got {args.limit}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not 0 <= args.temperature <= 10:  # NaN fails both comparisons
        raise ValueError(f"--temperature must be between 0 and 10, got {args.temperature}")
    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    if args.max_sketches < 0:
        raise ValueError(f"--max-sketches must be >= 0, got {args.max_sketches}")
    check_sampler_flags(args)
    if args.event_log and Path(args.event_log).exists() and not Path(args.event_log).is_dir():
        raise ValueError(f"--event-log {args.event_log} is a file, not a folder")
    if args.jobs < 0:
        raise ValueError(f"--jobs must be >= 0 (0: one per core), got {args.jobs}")
    if not 0 <= args.carve <= MAX_CARVE:
        raise ValueError(f"--carve must be between 0 and {MAX_CARVE}, got {args.carve}")
    return modes


def jobs_for(args: argparse.Namespace, device: str) -> int:
    """--jobs, with 0 resolved: one per CPU core on a CPU, one on a GPU; one (and one thread) beside a training run."""
    if share_cores("evaluation"):
        return 1
    if args.jobs:
        return args.jobs
    return 1 if device != "cpu" else max(1, os.cpu_count() or 1)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        modes = check_args(args)
        device = check_device(args.device)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    started, clock = datetime.now(UTC), time.perf_counter()
    try:  # data first: a bad split should not wait for the model to load
        rows_kw = dict(categories=[c for c in args.categories.split(",") if c.strip()] or None, carve=args.carve)
        examples, report = load_examples(select_rows(load_rows(args.data, args.split, **rows_kw), args.limit))
        examples = reword(examples, args.questions, args.data)
        if report.counts:
            print(f"{args.split}: {report}", file=sys.stderr)
        if not examples:
            raise ValueError(f"no usable examples in split {args.split!r} of {args.data} ({report})")
        train_answers = train_answers_from(args.data, rows_kw)
        model = load_model(args.checkpoint, device=device, with_latent_head=not args.language_only).eval()
        apply_sampler_flags(model, args, args.checkpoint)
        if args.reuse == "on":  # only evaluated here: each picture encoded once for the modes and the probe
            model.image_memo = ImageMemo()
    except (CheckpointError, ValueError) as err:  # load_examples raises ValueError for a non-Zebra-CoT file
        print(f"error: {err}", file=sys.stderr)
        return 2
    if train_answers is None:
        print(f"note: no train split in {args.data}; the majority baseline uses the evaluated answers")
    name = Path(args.checkpoint.rstrip("/")).name or args.checkpoint
    run_id = f"eval-{name}-{args.split}"
    event_log = args.event_log or str(Path(args.out) / "events")
    traces: dict = {}
    groups = mode_groups(modes, jobs_for(args, device))
    workers = start_workers(argv if argv is not None else sys.argv[1:], groups[1:], args.out, event_log)
    if workers:
        torch.set_num_threads(1)
        print(f"modes {', '.join(groups[0])} here, " + "; ".join(", ".join(g) for g in groups[1:]) + " in workers")
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    try:
        with autocast:
            predictions, summary = evaluate(
                model,
                examples,
                groups[0],
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
                reuse=args.reuse == "on",
                family_batches=args.batches == "by-family",
            )
        if workers:
            predictions = pd.concat([predictions, collect(workers)], ignore_index=True)
            predictions = predictions.sort_values("mode", key=lambda m: m.map(modes.index), kind="stable")
            summary = summarize(predictions.reset_index(drop=True), baseline_scores(examples, train_answers))
    except (ValueError, RuntimeError) as err:  # the event store is not a folder, a worker failed, …
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        stop(workers)
    config = {
        "checkpoint": args.checkpoint,
        "data": args.data,
        "split": args.split,
        "modes": modes,
        "questions": args.questions,
        "latent_budget": model.config.latent_budget,  # K
        "sketch_decoding": model.config.sketch_decoding,
        "sketch_refine_passes": model.config.sketch_refine_passes,
        "diffusion_loss_weight": model.config.diffusion_loss_weight,  # λ
        "language_only": args.language_only,
        "limit": args.limit,
        "num_examples": len(examples),
        "skipped_rows": report.total - report.kept,
        "seed": args.seed,
        "temperature": args.temperature,
        "batch_size": args.batch_size,
        "jobs": len(groups),
        "precision": args.precision,
        "batches": args.batches,
        "reuse": args.reuse,
        "max_new_tokens": args.max_new_tokens,
        "max_sketches": args.max_sketches,
        "diffusion_steps": args.diffusion_steps or model.config.diffusion_steps,
        "diffusion_solver": model.config.diffusion_solver,
        "sketch_temperature": model.config.sketch_temperature,
        "sketch_snap": model.sketch_codebook is not None,
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
        quality = probe_quality(model, args.data, probe_split, args.probe_limit, examples, traces, rows_kw)
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
