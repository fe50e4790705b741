"""Choose the sketch sampler: accuracy and sketch use at few diffusion steps against T = 50, on the validation split.

    python benchmarks/bench_sampler.py [--checkpoint DIR] [--per-family 30] [--grid ddim:50,ddim:10,dpm++:10,...]
                                       [--write-readme]

For each (solver, T) of the grid: `auto` accuracy over the validation puzzles (greedy, n and 95 % Wilson interval),
its use (`auto` − `noise-latents` in points over the sketch families; `noise-latents` does not sample the head, so it
runs once), the share of answers that differ from the T = 50 reference, and the median wall time per answer (batched
as in the evaluation harness). A setting passes when its accuracy and its use both lie inside the reference's
interval; the recommended default is the passing setting with the fewest network evaluations (then the cheaper
solver). Settings are chosen here, on validation; the audit reports on test.
"""

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.doc_tables import markdown_table, write_section  # noqa: E402
from model.core.checkpoint import load_model  # noqa: E402
from model.data.folders import load_rows, select_rows  # noqa: E402
from model.data.zebra import load_examples  # noqa: E402
from model.evaluation.harness import evaluate, wilson  # noqa: E402
from model.generation.cli import DEFAULT_CHECKPOINT  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ("ddim", 50)


def parse_grid(text: str) -> list[tuple[str, int]]:
    grid = []
    for item in text.split(","):
        solver, _, steps = item.strip().partition(":")
        if solver not in ("ddim", "dpm++") or not steps.isdigit() or not 1 <= int(steps) <= 1000:
            raise SystemExit(f"error: grid entry {item!r} is not SOLVER:T with SOLVER ddim or dpm++ and T in 1..1000")
        grid.append((solver, int(steps)))
    return [REFERENCE] + [g for g in dict.fromkeys(grid) if g != REFERENCE]


def use_points(auto, noise, families) -> float:
    """Mean over sketch families of auto − noise-latents accuracy, in points."""
    gaps = [auto[auto.family == f].correct.mean() - noise[noise.family == f].correct.mean() for f in families]
    return 100 * statistics.fmean(gaps)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/bench_sampler.py", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    parser.add_argument("--data", default=str(ROOT / "data" / "sketchworld"))
    parser.add_argument("--split", default="validation")
    parser.add_argument("--per-family", type=int, default=30)
    parser.add_argument("--grid", default="ddim:10,ddim:5,dpm++:10,dpm++:5,dpm++:3")
    parser.add_argument("--batch-size", type=int, default=30)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args(argv)
    grid = parse_grid(args.grid)
    rows = load_rows(args.data, args.split)
    examples, _ = load_examples(select_rows(rows, len(set(rows["family"])) * args.per_family))  # per_family of each
    model = load_model(args.checkpoint).eval()
    kw = dict(batch_size=args.batch_size, progress=False)
    noise, _ = evaluate(model, examples, ["noise-latents"], **kw)
    sketchy = sorted({ex.family for ex in examples if ex.num_sketches})  # the families whose traces sketch
    results = {}
    for solver, steps in grid:
        model.config.diffusion_solver = solver
        predictions, _ = evaluate(model, examples, ["auto"], diffusion_steps=steps, **kw)
        results[solver, steps] = predictions.sort_values("id").reset_index(drop=True)
        print(f"{solver} T={steps}: auto {100 * predictions.correct.mean():.1f} %", flush=True)
    reference = results[REFERENCE]
    n, ref_acc = len(reference), reference.correct.mean()
    low, high = wilson(float(reference.correct.sum()), n)
    ref_use = use_points(reference, noise, sketchy)
    rows, passing = [], []
    for (solver, steps), preds in results.items():
        acc, use = preds.correct.mean(), use_points(preds, noise, sketchy)
        lo, hi = wilson(float(preds.correct.sum()), n)
        # the two figures' differences from the reference, against the reference interval's half-widths
        ok = low <= acc <= high and abs(use - ref_use) <= 100 * max(high - ref_acc, ref_acc - low)
        if ok:
            passing.append(((steps * (2 if solver == "ddim" else 1)), steps, solver))
        rows.append([f"{solver}, T = {steps}" + (" (reference)" if (solver, steps) == REFERENCE else ""),
                     f"{100 * acc:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]", f"{use:+.1f}",
                     f"{100 * (preds.prediction != reference.prediction).mean():.0f} %",
                     f"{1e3 * preds.latency_s.median():.0f} ms", "yes" if ok else "no"])  # fmt: skip
    table = markdown_table(["sampler", "`auto` % [95 % CI]", "use (pts)", "answers ≠ T = 50", "time / answer",
                            "inside T = 50's interval"], rows)  # fmt: skip
    best = min(passing, key=lambda p: (p[1], p[0]))
    table += (f"\n\nCheckpoint `{args.checkpoint}`; {n} {args.split} puzzles ({args.per_family} per family), "
              f"greedy, batches of {args.batch_size}; "
              f"`noise-latents` {100 * noise.correct.mean():.1f} %; use over {', '.join(sketchy)}. "
              f"Fewest steps inside the reference's interval: **{best[2]}, T = {best[1]}**.")  # fmt: skip
    print(table)
    if args.write_readme:
        write_section("sampler", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
