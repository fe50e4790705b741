"""Train the shipped demo model end to end on CPU, evaluate it, train the K / λ sweep grid, and ship the checkpoints.

    python -m model.demo_pipeline                       # everything; re-run it to continue after an interruption
    python -m model.demo_pipeline --stages sweep --jobs 2
    python -m model.demo_pipeline --stages ship,report

Stages (in order): `data` (sketch-world, 1000 per family), `warmup` (stage 0), `sft` (stage 1, K = 32, λ = 1),
`grpo` (stage 2), `textonly` (the language-only baseline: SFT on text-only traces from the same stage-0 base), `eval`
(the held-out test split: every mode for SFT and GRPO, the language-only check, the text-only baseline), `sweep` (SFT
from the same stage-0 base at K ∈ {4, 8, 16, 64} with λ = 1 and λ ∈ {0.1, 10} with K = 32, each evaluated), `ship`
(copies the final model to assets/checkpoints/demo, the sweep grid in float16 to assets/checkpoints/sweep/, and writes
assets/checkpoints/registry.json), `report` (README results and figures, model/report.py).

Every training stage is a `python -m model.train ... --resume` subprocess, so an interrupted pipeline continues from
the last checkpoint of the stage it was in; a stage whose final checkpoint exists is skipped. Wall times go to
runs/demo/timings.json.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs"
DATA = ROOT / "data" / "sketchworld"
CONFIGS = ROOT / "model" / "configs"
TIMINGS = RUNS / "demo" / "timings.json"
STAGES = ("data", "warmup", "sft", "grpo", "textonly", "eval", "sweep", "ship", "report")
SWEEP = [(4, 1.0), (8, 1.0), (16, 1.0), (32, 1.0), (64, 1.0), (32, 0.1), (32, 10.0)]  # (K, λ)
# Sized for one 2-core CPU: the sweep runs are shorter than the main SFT run (sft_demo.yaml) and form their own
# series, K = 32, λ = 1 included, so that every point of a sweep curve had the same training.
SWEEP_STEPS = 120
TEXTONLY_STEPS = 200  # text-only traces are about twice as long as interleaved ones
EVAL_LIMIT = 60  # test examples per evaluation (10 per family)


def final_model(run: str, steps: int) -> Path:
    return RUNS / run / f"checkpoint-{steps:06d}" / "model"


def max_steps(config: str) -> int:
    import yaml

    return int(yaml.safe_load((CONFIGS / config).read_text())["max_steps"])


def record_time(stage: str, seconds: float) -> None:
    TIMINGS.parent.mkdir(parents=True, exist_ok=True)
    timings = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    timings[stage] = round(timings.get(stage, 0.0) + seconds, 1)  # resumed stages add up
    TIMINGS.write_text(json.dumps(timings, indent=1))


def sh(args: list[str], threads: int | None = None) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True, cwd=ROOT, env=env)


def train(
    stage: str, config: str, *overrides: str, run: str | None = None, threads: int | None = None, steps: int = 0
) -> Path:
    if steps:
        overrides = (*overrides, "--max_steps", str(steps), "--save_every", str(steps))
    steps = steps or max_steps(config)
    run = run or f"demo-{stage}"
    done = final_model(run, steps)
    if done.is_dir():
        print(f"{stage}: {done} exists, skipping")
        return done
    start = time.perf_counter()
    sh([sys.executable, "-m", "model.train", "--config", str(CONFIGS / config), "--resume",
        "--output_dir", str(RUNS / run), *overrides], threads)  # fmt: skip
    record_time(stage if run == f"demo-{stage}" else run, time.perf_counter() - start)
    return done


def evaluate(checkpoint: Path, out: Path, modes: str, *extra: str, threads: int | None = None) -> None:
    if (out / "results.json").exists():
        print(f"eval: {out} exists, skipping")
        return
    start = time.perf_counter()
    sh([sys.executable, "-m", "model.evaluate", "--checkpoint", str(checkpoint), "--data", str(DATA), "--split",
        "test", "--modes", modes, "--limit", str(EVAL_LIMIT), "--batch-size", "12", "--out", str(out), *extra],
       threads)  # fmt: skip
    record_time(f"eval:{out.name}", time.perf_counter() - start)


def stage_data() -> None:
    if (DATA / "train.parquet").exists():
        print(f"data: {DATA} exists, skipping")
        return
    start = time.perf_counter()
    sh([sys.executable, "-m", "model.sketchworld", "--out", str(DATA), "--per-family", "1000", "--seed", "0"])
    record_time("data", time.perf_counter() - start)


def warm_base() -> Path:
    return final_model("demo-warmup", max_steps("warmup_demo.yaml"))


def sft_model() -> Path:
    return final_model("demo-sft", max_steps("sft_demo.yaml"))


def stage_eval() -> None:
    every = "direct,text-only,auto,noise-latents,oracle"
    evaluate(sft_model(), RUNS / "demo-eval" / "sft", every)
    evaluate(final_model("demo-grpo", max_steps("grpo_demo.yaml")), RUNS / "demo-eval" / "grpo", every)
    evaluate(sft_model(), RUNS / "demo-eval" / "sft-language-only", "direct,text-only", "--language-only")
    evaluate(final_model("demo-textonly", TEXTONLY_STEPS), RUNS / "demo-eval" / "textonly", "direct,text-only")


def sweep_run(budget: int, weight: float, threads: int) -> None:
    name = f"demo-sweep-k{budget}-l{weight:g}"
    model = train("sweep", "sft_demo.yaml", "--init", str(warm_base()), "--latent_budget", str(budget),
                  "--diffusion_loss_weight", str(weight), "--tracker", "none", "--warmup_steps", "10", run=name,
                  threads=threads, steps=SWEEP_STEPS)  # fmt: skip
    evaluate(model, RUNS / "demo-eval" / name.removeprefix("demo-"), "auto,oracle", threads=threads)


def stage_sweep(jobs: int) -> None:
    threads = max(1, (os.cpu_count() or 2) // jobs)
    with ThreadPoolExecutor(jobs) as pool:
        for future in [pool.submit(sweep_run, k, lam, threads) for k, lam in SWEEP]:
            future.result()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.demo_pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, from {', '.join(STAGES)}")
    parser.add_argument("--jobs", type=int, default=1, help="sweep runs trained at the same time")
    args = parser.parse_args(argv)
    stages = args.stages.split(",")
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        print(f"error: unknown stage {', '.join(unknown)}; stages: {', '.join(STAGES)}", file=sys.stderr)
        return 2
    try:
        for stage in STAGES:
            if stage not in stages:
                continue
            if stage == "data":
                stage_data()
            elif stage == "warmup":
                train("warmup", "warmup_demo.yaml")
            elif stage == "sft":
                train("sft", "sft_demo.yaml", "--init", str(warm_base()))
            elif stage == "grpo":
                train("grpo", "grpo_demo.yaml", "--init", str(sft_model()))
            elif stage == "textonly":
                train("textonly", "sft_demo.yaml", "--init", str(warm_base()), "--styles", "{text-only: 1.0}",
                      "--tracker", "none", steps=TEXTONLY_STEPS)  # fmt: skip
            elif stage == "eval":
                stage_eval()
            elif stage == "sweep":
                stage_sweep(args.jobs)
            elif stage == "ship":
                from model.ship import ship

                ship(RUNS)
            elif stage == "report":
                sh([sys.executable, "-m", "model.report"])
    except subprocess.CalledProcessError as err:
        print(f"error: stage failed: {' '.join(map(str, err.cmd))} (exit {err.returncode})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
