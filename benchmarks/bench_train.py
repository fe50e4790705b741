"""Training-step benchmark: the demo recipe's stage-1 step as it ran before (float32, eager, padded random batches)
against the fast path, one technique at a time, on the same examples in one run; beside it this CPU's own matmul
peak, the step beside a second training process, and the audit's evaluation.

    python benchmarks/bench_train.py [--checkpoint assets/checkpoints/demo] [--data data/sketchworld]
                                     [--windows 6] [--window 8] [--skip-contention] [--skip-eval] [--write-readme]

(a) Peak: a 2048³ matmul in float32 and in bfloat16, best of 5 (GFLOP/s): what this CPU's cores can do at all.
(b) The step (`model/training/sft.py` `supervised_step`: forward and backward, in parts when the path splits its
    batches; then clipping, AdamW and the schedule, as the training loop runs them): stage 1 of
    `model/configs/sft_demo.yaml` with sequential sketches, batch 16, real sketch-world batches (the visual cache:
    the frozen encoder's targets are computed once per picture and stored, so no step encodes a picture), from
    `--checkpoint`. The paths: the step before, then bf16 autocast, torch.compile, each batch run in parts of like
    length (model/training/length_split.py: the same gradient), each added on top of the ones before; and, measured
    but left out of the recipes, fused AdamW and whole batches grouped by length (which changed what the recipe
    learned: docs/RESULTS.md › What we tried). Each path is a copy of the same model. The batches come in windows of
    `--window` batches: every path trains on the same examples of a window (the grouped path on the same examples
    sorted by length), windows taken in turn by path so that a noisy machine slows all of them alike. The first
    window is warm-up (its extra time over a steady window is reported as compilation); then `--windows` windows
    are measured: examples/s and positions/s (non-padding tokens) over all measured steps, the share of the
    positions run that are padding, the median step and its interquartile range, and GFLOP/s — the floating-point
    work of each path's own batches and parts (counted once, forward and backward, with torch.utils.flop_counter on
    an eager float32 copy) over its time — as a share of the peak of the precision its matmuls run in.
(c) Contention: the fast path's step alone at 2 and at 1 thread, and beside a second process training the same way
    with 1 thread each (what `pipeline.demo --jobs 2` does) and with 2 threads each (two jobs left to the default):
    two jobs one after the other against two at once.
(d) The audit (`python -m model.evaluate`, every mode, the pipeline's sampler and batch of 32, validation puzzles,
    start to finish) as a ladder: as it ran before (one process, 2 threads, each mode encoding its pictures again),
    then what the modes share computed once, then batches of one family, then one process of one thread per core (the
    pipeline's audit), then bf16 autocast; answers/s over the same puzzles, each path's answers against the first's.
`--sections train,eval` picks the parts (`eval` alone takes a few minutes); `--write-readme` puts the tables of the
parts run into README.md › Performance (the `train` and `train-eval` blocks).
"""

import argparse
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.doc_tables import markdown_table, write_section  # noqa: E402
from model.training.batch_stream import BatchStream  # noqa: E402
from model.training.compiled import compile_for_training  # noqa: E402
from model.training.loop import build_model, optimizer_and_schedule  # noqa: E402
from model.training.sft import loss_scale, supervised_data, supervised_step  # noqa: E402
from model.training.train_config import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "model" / "configs" / "sft_demo.yaml"


@dataclass
class StepPath:
    name: str
    bf16: bool
    compile: bool
    splits: int  # length_splits: parts of like length a batch runs in (1: whole)
    grouping: int = 0  # length_grouping window (0: random batches)
    fused: bool = False
    default: bool = False  # the demo recipes' setting (model/configs/*demo*.yaml)


def ladder(window: int) -> list[StepPath]:
    """The step before, then each technique added on top of the ones before; the last two are measured and left
    out of the recipes (fused AdamW: no gain; grouped batches: change what is learned, docs/RESULTS.md)."""
    return [
        StepPath("before: float32, eager, whole padded batches", False, False, 1),
        StepPath("+ bf16 autocast", True, False, 1),
        StepPath("+ torch.compile (language model, head blocks)", True, True, 1),
        StepPath("+ each batch in 2 parts of like length (the fast path)", True, True, 2, default=True),
        StepPath("… in 4 parts", True, True, 4),
        StepPath("… + fused AdamW", True, True, 2, fused=True),
        StepPath(f"… whole batches grouped by length (window {window}; not used)", True, True, 1, grouping=window),
    ]


def shown(path: str) -> str:
    """A path as the README shows it: relative to the repository when inside it."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path


def matmul_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def recipe(args, path: StepPath):
    overrides = ["--init", args.checkpoint, "--data", args.data, "--sketch_decoding", "sequential", "--batch_size",
                 "16", "--tracker", "none", "--mixed_precision", "bf16" if path.bf16 else "no",
                 "--length_grouping", str(path.grouping), "--length_splits", str(path.splits),
                 "--compile", str(path.compile).lower(), "--fused_optimizer", str(path.fused).lower()]  # fmt: skip
    return load_config(str(RECIPE), overrides)


class Trainer:
    """One path: its own copy of the model, optimiser and schedule, stepping as the training loop does."""

    def __init__(self, cfg, model, path: StepPath):
        self.cfg, self.model, self.path = cfg, model, path
        if path.compile:
            compile_for_training(model)
        self.optimizer, self.scheduler = optimizer_and_schedule(cfg, model)
        self.scale = None
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.step_index, self.times, self.losses = 0, [], []
        model.train()

    def autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.path.bf16)

    def step(self, batch: dict) -> float:
        start = time.perf_counter()
        losses = supervised_step(self.cfg, self.model, self.model, batch, self.step_index, 0, self.scale,
                                 self.autocast)  # fmt: skip
        torch.nn.utils.clip_grad_norm_(self.params, self.cfg.clip_grad)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.losses.append(losses["loss"])
        self.step_index += 1
        return time.perf_counter() - start


def step_flops(cfg, model, batch: dict) -> int:
    """Floating-point operations of one step's forward and backward on `batch` as `cfg` runs it (its parts), eager
    float32: the same count whatever the precision or compilation."""
    with FlopCounterMode(display=False) as counter:
        supervised_step(cfg, model, model, batch, 0)
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def executed_positions(batch: dict, parts: int) -> int:
    """Positions a step runs: each part of like length padded to its own longest row (length_split.py)."""
    lengths = sorted(batch["attention_mask"].sum(1).tolist())
    rows = len(lengths)
    groups = [lengths[i * rows // parts : (i + 1) * rows // parts] for i in range(min(parts, rows))]
    return sum(len(g) * max(g) for g in groups if g)


def fast_path(window: int) -> StepPath:
    return next(p for p in ladder(window) if p.default)


def prepared(args):
    """The starting model after the data's preparation (drawing probe, latent statistics), and the dataset."""
    cfg = recipe(args, ladder(args.window)[0])
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)
    phases = supervised_data(cfg, model, main=True)
    return cfg, model, phases[0][1]


def windows_of(dataset, pad_id: int, seed: int, window: int, count: int) -> dict:
    """{grouping: [[batch, …] per window]}: the same examples per window, padded at random or grouped by length."""
    out = {}
    for grouping in (0, window):
        stream = BatchStream(dataset, 16, pad_id, seed, length_grouping=grouping)
        out[grouping] = [[stream.next() for _ in range(window)] for _ in range(count)]
    return out


def train_section(args, cfg0, model0, dataset, peaks: dict) -> tuple[list, dict]:
    paths = ladder(args.window)
    trainers = [Trainer(recipe(args, p), copy.deepcopy(model0), p) for p in paths]
    for t in trainers:  # grouped batches divide by constants (model/training/loss_scale.py), as training does
        t.scale = loss_scale(t.cfg, t.model, dataset)
    batches = windows_of(dataset, model0.tokenizer.pad_token_id, cfg0.seed, args.window, args.windows + 1)
    warm = {}
    for t in trainers:  # window 0: warm-up, compilation included
        times = [t.step(b) for b in batches[t.path.grouping][0]]
        warm[t.path.name] = times
        print(f"warm-up  {t.path.name}: first step {times[0]:.2f} s, window {sum(times):.1f} s", flush=True)
    for w in range(1, args.windows + 1):
        order = trainers[w % len(trainers) :] + trainers[: w % len(trainers)]
        for t in order:
            t.times.extend(t.step(b) for b in batches[t.path.grouping][w])
        print(f"window {w}/{args.windows}: " + ", ".join(f"{statistics.median(t.times):.3f}" for t in trainers))
    counter_model, flops = copy.deepcopy(model0), {}
    for t in trainers:  # counted once per batching and split, on an eager float32 copy
        key = (t.path.grouping, t.path.splits)
        if key not in flops:
            eager = recipe(args, StepPath("count", False, False, t.path.splits, t.path.grouping))
            flops[key] = sum(step_flops(eager, counter_model, b) for ws in batches[key[0]][1:] for b in ws)
    rows, summary = [], {}
    base_rate = None
    for t in trainers:
        measured = [b for ws in batches[t.path.grouping][1:] for b in ws]
        seconds = sum(t.times)
        examples = sum(b["input_ids"].shape[0] for b in measured)
        real = sum(int(b["attention_mask"].sum()) for b in measured)
        total = sum(executed_positions(b, t.path.splits) for b in measured)
        rate = examples / seconds
        base_rate = base_rate or rate
        q = statistics.quantiles(t.times, n=4)
        steady = statistics.median(t.times)
        compile_s = max(0.0, warm[t.path.name][0] - steady) if t.path.compile else 0.0
        gflops = flops[(t.path.grouping, t.path.splits)] / seconds / 1e9
        peak = peaks["bf16" if t.path.bf16 else "fp32"]
        rows.append([t.path.name, f"{rate:.1f}", f"{rate / base_rate:.2f}×", f"{real / seconds:,.0f}",
                     f"{100 * (1 - real / total):.1f} %", f"{steady:.3f} [{q[0]:.3f}–{q[2]:.3f}]",
                     f"{compile_s:.0f}" if t.path.compile else "–", f"{gflops:.0f}",
                     f"{100 * gflops / peak:.1f} % of {'bf16' if t.path.bf16 else 'fp32'}",
                     f"{statistics.mean(t.losses[-len(t.times):]):.3f}"])  # fmt: skip
        summary[t.path.name] = {"rate": rate, "gflops": gflops, "peak": peak, "step": steady}
    return rows, summary


# ---- contention --------------------------------------------------------------------------------------------------
def busy(args) -> None:
    """`--busy N`: train the fast path at N threads until killed (the second process of the contention section)."""
    torch.set_num_threads(args.busy)
    cfg, model, dataset = prepared(args)
    path = fast_path(args.window)
    trainer = Trainer(recipe(args, path), model, path)
    trainer.scale = loss_scale(trainer.cfg, model, dataset)
    stream = BatchStream(dataset, 16, model.tokenizer.pad_token_id, cfg.seed + 1)
    for _ in range(args.window):
        trainer.step(stream.next())
    print("ready", flush=True)
    while True:
        trainer.step(stream.next())


def contention_section(args, trainer: Trainer, batches: list) -> tuple[list, dict]:
    def window_at(threads: int) -> float:
        torch.set_num_threads(threads)
        trainer.step(batches[0])  # settle at this thread count
        return statistics.median(trainer.step(b) for b in batches)

    results = {"alone, 2 threads": window_at(2), "alone, 1 thread": window_at(1)}
    for threads in (1, 2):
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, __file__, "--busy", str(threads), "--checkpoint", args.checkpoint, "--data", args.data,
               "--window", str(args.window)]  # fmt: skip
        other = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            while (line := other.stdout.readline()) and line.strip() != "ready":
                pass
            if other.poll() is not None:
                raise RuntimeError("the second training process ended before it was ready")
            results[f"beside a second job, {threads} thread{'s' if threads > 1 else ''} each"] = window_at(threads)
        finally:
            other.kill()
            other.wait()
    torch.set_num_threads(2)
    alone = results["alone, 2 threads"]
    rows = [[name, f"{s:.3f}", f"{s / alone:.2f}×"] for name, s in results.items()]
    one_after_other = 2 * 16 / (2 * alone)  # two jobs' examples per second of wall time, one job at a time
    at_once = 2 * 16 / results["beside a second job, 1 thread each"]
    return rows, {"sequential": one_after_other, "together": at_once}


# ---- evaluation --------------------------------------------------------------------------------------------------
AUDIT_MODES = "direct,text-only,auto,noise-latents,zero-latents,shuffled-latents,oracle"


@dataclass
class AuditPath:
    name: str
    jobs: int  # model.evaluate --jobs (1: one process; 0: one process of one thread per core)
    reuse: str  # --reuse
    batches: str  # --batches
    precision: str  # --precision
    used: bool = False  # the pipeline's audit (pipeline/demo.py)


AUDIT_LADDER = [
    AuditPath(
        "before: one process, 2 threads, every mode encodes its pictures again, families mixed in a batch",
        1,
        "off",
        "as-given",
        "fp32",
    ),  # fmt: skip
    AuditPath(
        "+ what the modes share computed once (`--reuse on`: pictures encoded, prompts prefilled)",
        1,
        "on",
        "as-given",
        "fp32",
    ),  # fmt: skip
    AuditPath("+ a batch of one family (`--batches by-family`: rows of like length)", 1, "on", "by-family", "fp32"),
    AuditPath(
        "+ `--jobs 0`: one process of one thread per core (the pipeline's audit)", 0, "on", "by-family", "fp32", True
    ),  # fmt: skip
    AuditPath("+ `--precision bf16`", 0, "on", "by-family", "bf16"),
]


def audit_seconds(args, path: AuditPath, out: Path) -> float:
    """Wall time of `python -m model.evaluate` (the demo's audit: every mode, the pipeline's sampler, batch 32, the
    probe), start to finish, model and data loading included, on 2 threads."""
    cmd = [sys.executable, "-m", "model.evaluate", "--checkpoint", args.checkpoint, "--data", args.data, "--split",
           "validation", "--modes", AUDIT_MODES, "--limit", str(args.eval_puzzles), "--batch-size", "32",
           "--probe-limit", "120", "--diffusion-solver", "dpm++", "--diffusion-steps", "5", "--sketch-temperature",
           "0.25", "--jobs", str(path.jobs), "--reuse", path.reuse, "--batches", path.batches, "--precision",
           path.precision,
           "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def eval_section(args, scratch: Path) -> tuple[list, float, str]:
    """Each step of the audit's ladder, the paths taken in turn `--eval-repeats` times; each path's answers against
    the path before's (the same puzzles, modes and sampler). → (table rows, the pipeline's ratio, a sentence)."""
    answers = args.eval_puzzles * len(AUDIT_MODES.split(","))
    times = {p.name: [] for p in AUDIT_LADDER}
    for rep in range(args.eval_repeats):
        for i, path in enumerate(AUDIT_LADDER):
            times[path.name].append(audit_seconds(args, path, scratch / str(i)))
            print(f"audit, repeat {rep + 1}: {times[path.name][-1]:.1f} s  {path.name}", flush=True)
    before = statistics.median(times[AUDIT_LADDER[0].name])
    rows, used, note = [], None, ""
    for i, path in enumerate(AUDIT_LADDER):
        seconds = statistics.median(times[path.name])
        differ = _differing_predictions(scratch / "0", scratch / str(i))
        same = "yes" if differ == 0 else f"no: {differ} of {answers} differ"
        rows.append([path.name, f"{seconds:.1f}", f"{answers / seconds:.2f}", f"{before / seconds:.2f}×", same])
        if path.used:
            used = before / seconds
        elif path.precision == "bf16":
            note = (
                f"bf16 changed {differ} of {answers} answers, so the pipeline audits in float32"
                if differ
                else "bf16 gave the same answers here; the pipeline still audits in float32"
            )
    return rows, used, note


def _differing_predictions(a: Path, b: Path) -> int:
    """How many (puzzle, mode) answers differ between two runs of the audit (all of them when the runs differ in
    what they answered)."""
    left, right = (pd.read_parquet(p / "predictions.parquet")[["id", "mode", "prediction"]] for p in (a, b))
    merged = left.merge(right, on=["id", "mode"], suffixes=("_a", "_b"))
    if not len(merged) == len(left) == len(right):
        return max(len(left), len(right))
    return int((merged.prediction_a != merged.prediction_b).sum())


# ---- the report ----------------------------------------------------------------------------------------------------
def markdown(train_rows, peaks, contention, choice, args) -> str:
    header = ["path", "examples/s", "× before", "positions/s", "padding", "step s, median [IQR]", "compile s",
              "GFLOP/s", "of peak", "loss"]  # fmt: skip
    parts = [
        f"Stage 1 of the demo recipe (sequential sketches, batch 16, from `{shown(args.checkpoint)}`), "
        f"{args.windows} windows of {args.window} steps after one of warm-up, the same examples on every path; "
        f"this CPU's matmul peak in the same run: {peaks['fp32']:.0f} GFLOP/s float32, {peaks['bf16']:.0f} GFLOP/s "
        f"bfloat16 "
        f"({torch.get_num_threads()} threads). GFLOP/s: each path's own work (forward and backward) over its time.",
        "",
        markdown_table(header, train_rows),
    ]
    if contention:
        rows, rates = contention
        parts += ["", "The fast path's step with a second training job on the same two cores:", "",
                  markdown_table(["setting", "step s", "× alone at 2 threads"], rows), "",
                  f"Two jobs one after the other (2 threads each): {rates['sequential']:.1f} examples/s together; "
                  f"both at once with one thread each: {rates['together']:.1f} examples/s ({choice})."]  # fmt: skip
    return "\n".join(parts)


def eval_markdown(eval_rows, note, args) -> str:
    return "\n".join(
        [
            f"The audit (`python -m model.evaluate`, {AUDIT_MODES.count(',') + 1} modes × {args.eval_puzzles} "
            "validation puzzles, the probe included, start to finish, 2 cores; each step adds to the ones above "
            "it; same answers: against the first row's):",
            "",
            markdown_table(["run", "seconds", "answers/s", "× before", "same answers"], eval_rows),
            "",
            f"{note}.",
        ]
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/bench_train.py", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "assets" / "checkpoints" / "demo"))
    parser.add_argument("--data", default=str(ROOT / "data" / "sketchworld"))
    parser.add_argument(
        "--sections",
        default="train,eval",
        help="comma-separated: train (the step's ladder and contention), eval (the audit's ladder)",
    )
    parser.add_argument("--windows", type=int, default=6, help="measured windows (after one of warm-up)")
    parser.add_argument("--window", type=int, default=8, help="batches per window (and the grouping window)")
    parser.add_argument("--skip-contention", action="store_true")
    parser.add_argument("--eval-puzzles", type=int, default=600, help="validation puzzles of the audit (the "
                        "pipeline's audits are 600–800)")  # fmt: skip
    parser.add_argument("--eval-repeats", type=int, default=1, help="runs of each path (the median is reported)")
    parser.add_argument("--busy", type=int, default=0, help=argparse.SUPPRESS)  # the contention section's 2nd job
    parser.add_argument(
        "--write-readme", action="store_true", help="write the tables of the sections run into README.md › Performance"
    )
    args = parser.parse_args(argv)
    sections = [x.strip() for x in args.sections.split(",") if x.strip()]
    if not sections or set(sections) - {"train", "eval"}:
        raise SystemExit(f"--sections takes train and/or eval, got {args.sections!r}")
    if not Path(args.data, "train.parquet").exists():
        raise SystemExit(f"no sketch-world data at {args.data}: python -m pipeline.demo --stages data")
    if args.write_readme and args.skip_contention and "train" in sections:
        raise SystemExit("--write-readme needs the train section whole (no --skip-contention)")
    if args.busy:
        busy(args)
        return 0
    if "train" in sections:
        peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
        print(f"matmul peak: {peaks['fp32']:.0f} GFLOP/s float32, {peaks['bf16']:.0f} bfloat16", flush=True)
        cfg, model, dataset = prepared(args)
        train_rows, summary = train_section(args, cfg, model, dataset, peaks)
        contention, choice = None, ""
        if not args.skip_contention:
            path = fast_path(args.window)
            trainer = Trainer(recipe(args, path), copy.deepcopy(model), path)
            trainer.scale = loss_scale(trainer.cfg, trainer.model, dataset)
            stream = BatchStream(dataset, 16, model.tokenizer.pad_token_id, cfg.seed + 2)
            contention = contention_section(args, trainer, [stream.next() for _ in range(args.window)])
            rates = contention[1]
            choice = ("one after the other is faster: `pipeline.demo --jobs 2` runs its jobs in turn"
                      if rates["sequential"] >= rates["together"] else
                      "both at once is faster: `pipeline.demo --jobs 2` runs two jobs of one thread each")  # fmt: skip
        text = markdown(train_rows, peaks, contention, choice, args)
        print("\n" + text)
        if args.write_readme:
            write_section("train", text)
    if "eval" in sections:
        with tempfile.TemporaryDirectory() as scratch:
            eval_rows, ratio, note = eval_section(args, Path(scratch))
        text = eval_markdown(eval_rows, note, args)
        print("\n" + text)
        if args.write_readme:
            write_section("train-eval", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
