"""Train the shipped demo model end to end on CPU, audit it, train the K / λ / head sweep, and ship the checkpoints.

    python -m pipeline.demo                       # everything; re-run it to continue after an interruption
    python -m pipeline.demo --quick               # every stage on a small scale (≤ 20 minutes), runs/quick/
    python -m pipeline.demo --stages sweep,ship,report

Stages, in order (sizes in pipeline/layout.py):
`data` sketch-world, 2000 puzzles per family (1600 / 200 / 200 train / validation / test), of the default families
and of phase 1's (data/sketchworld-early); a folder written by another generator version or family list is written
again;
`warmup` stage 0: descriptions and perception questions about every picture, half of them shown as sketches;
`describe` the stage-0 check: cells right in greedy descriptions of validation pictures (as images and as sketches);
`sft` stage 1, K = 64, λ = 1 (model/configs/sft_demo.yaml); `refine` stage 1b: stage 1's recipe again, in passes
of 600 steps, each from the previous model with a fresh warm-up and cosine at a lower rate (sft_refine_demo.yaml);
`grpo` stage 2 from it (grpo_demo.yaml);
`transfer` phase 2: the stages above (phase 1) train on EARLY_FAMILIES (tilt where the default families have sink);
the GRPO model, with the audit's sampler in its config, then takes refine passes on the default families and GRPO
again (the shipped demo: docs/RESULTS.md › What we tried, S1–S3);
`codebook` fits the final model's sketch codebook (model/training/fit_codebook.py) on the train split: the centroids
its drawn latents snap to in generation;
`textonly`, `direct` the baselines: SFT from the same stage-0 base, the steps of sft + refine + transfer and the
same batch, on the default families' text-only CoT traces and on direct answers;
`eval` the audit on the test split (every mode, n and 95 % intervals, sketch quality) for the model as shipped (GRPO
with its codebook, `test-demo`), for SFT and GRPO as trained (no snapping) and the baselines, plus the GRPO check on
the validation split (sampled and greedy, no snapping: GRPO trained without it);
`sweep` every point of the grid (K, λ, head) from the same stage-0 base: stage 1 with the point's K, λ and head, then
the profile's `sweep_passes` refine passes with them (the demo's two), each audited on the test split;
`--jobs N` trains N points at once (on a GPU keep N at 1 or 2: docs/GUIDE.md › Training);
`ship` copies the final model to assets/checkpoints/demo and the sweep in float16 to assets/checkpoints/sweep/,
and the evaluation summaries to assets/results/; `report` writes docs/RESULTS.md from them (pipeline/report.py).

Every training stage is a `python -m model.train ... --resume` subprocess, so an interrupted pipeline continues from
the last checkpoint of the stage it was in; a stage whose final checkpoint exists, or an evaluation whose
results.json exists for the same checkpoint, is skipped. Wall times go to runs/<profile>/timings.json.
"""

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from model.core.sketch_codebook import CODEBOOK_NAME
from model.generation import modes
from model.sketchworld import DEFAULT_FAMILIES, EARLY_FAMILIES
from model.sketchworld.schema import GENERATOR_VERSION
from pipeline.checkpoints import copy_model, sketch_decoding
from pipeline.layout import CONFIGS, PROFILES, ROOT, Runs

STAGES = ("data", "warmup", "describe", "sft", "refine", "grpo", "transfer", "codebook", "textonly", "direct",
          "eval", "sweep", "ship", "report")  # fmt: skip
AUDIT_MODES = ",".join(modes.AUDIT_MODES)  # every mode, the language-only ones first
SWEEP_MODES = "auto,oracle,noise-latents"  # drawing, reading, and whether the answers use the sketches
BASELINE_STYLES = {"textonly": "{text-only: 1.0}", "direct": "{direct: 1.0}"}


def sh(args: list[str], threads: int | None = None) -> None:
    # the project first; a PYTHONPATH set before (packages installed beside the environment's) stays after it
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    print("$", " ".join(map(str, args)), flush=True)
    subprocess.run([str(a) for a in args], check=True, cwd=ROOT, env=env)


class Pipeline:
    def __init__(self, runs: Runs, jobs: int = 1, evals: set[str] | None = None):
        self.runs, self.profile, self.jobs, self.evals = runs, runs.profile, jobs, evals
        self.threads = max(1, (os.cpu_count() or 2) // jobs) if jobs > 1 else None

    def timed(self, name: str, args: list) -> None:
        start = time.perf_counter()
        sh(args, self.threads)
        self.runs.record_time(name, time.perf_counter() - start)

    def train(self, stage: str, config: str, *overrides: str, extra_key: str | None = None):
        done = self.runs.final(stage)
        if done.is_dir():
            print(f"{stage}: {done} exists, skipping")
            return done
        steps = self.runs.steps(stage)
        extra = self.profile.extra.get(extra_key or stage.split("/")[0], [])
        self.timed(stage, [sys.executable, "-m", "model.train", "--config", CONFIGS / config, "--resume",
                           "--data", self.runs.data_for(stage), "--output_dir", self.runs.run_dir(stage),
                           "--max_steps", steps, "--save_every", max(1, min(steps, 250)), *overrides,
                           *extra])  # fmt: skip
        return done

    def evaluate(self, name: str, checkpoint, modes: str, split: str = "test", per_family: int | None = None, *extra):
        out = self.runs.eval_dir(name)
        if self.evals is not None and name not in self.evals:
            return
        done = self.runs.evaluated_checkpoint(name)
        if done == str(checkpoint):
            print(f"eval: {out} exists, skipping")
            return
        if done is not None:
            print(f"eval: {out} is of {done}, not of {checkpoint}; evaluating again")
        limit = 6 * (per_family or self.profile.eval_per_family)
        self.timed(f"eval:{name}", [sys.executable, "-m", "model.evaluate", "--checkpoint", checkpoint, "--data",
                                    self.runs.data, "--split", split, "--modes", modes, "--limit", limit,
                                    "--batch-size", 32, "--probe-limit", 6 * self.profile.probe_per_family,
                                    # every core for one evaluation; one each when jobs run side by side
                                    "--jobs", 1 if self.jobs > 1 else 0,
                                    "--diffusion-solver", self.profile.sampler[0],
                                    "--diffusion-steps", self.profile.sampler[1],
                                    "--sketch-temperature", self.profile.sketch_temperature,
                                    *self.refine_flag(checkpoint), "--out", out, *extra])  # fmt: skip

    def refine_flag(self, checkpoint) -> list:
        """`--refine-passes R` for a parallel-sketch checkpoint when the profile chose R; nothing otherwise."""
        chosen = self.profile.inference_refine_passes
        return ["--refine-passes", chosen] if sketch_decoding(checkpoint) == "parallel" and chosen is not None else []

    # ---- the stages ----------------------------------------------------------------------------------------
    def data(self) -> None:
        datasets = [(self.runs.data, DEFAULT_FAMILIES)]
        if self.runs.early_data != self.runs.data:
            datasets.insert(0, (self.runs.early_data, EARLY_FAMILIES))
        for folder, families in datasets:
            wanted = {"generator_version": GENERATOR_VERSION, "families": list(families),
                      "per_family": self.profile.per_family, "seed": self.profile.data_seed}  # fmt: skip
            record = folder / "sketchworld.json"
            if record.exists() and (folder / "train.parquet").exists():
                found = json.loads(record.read_text())
                if all(found.get(k) == v for k, v in wanted.items()):
                    print(f"data: {folder} exists, skipping")
                    continue
                print(f"data: {folder} holds {', '.join(f'{k} {found.get(k)}' for k in wanted)}; "
                      f"writing it again with {', '.join(f'{k} {v}' for k, v in wanted.items())}")  # fmt: skip
            if folder.exists():
                shutil.rmtree(folder)
            self.timed("data", [sys.executable, "-m", "model.sketchworld", "--out", folder, "--per-family",
                                self.profile.per_family, "--seed", self.profile.data_seed,
                                "--families", ",".join(families)])  # fmt: skip

    def describe(self) -> None:
        out = self.runs.eval_dir("describe") / "results.json"
        if out.exists():
            print(f"describe: {out} exists, skipping")
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        self.timed("describe", [sys.executable, "-m", "model.describe_eval", "--checkpoint", self.runs.final("warmup"),
                                "--data", self.runs.data, "--limit", 6 * self.profile.probe_per_family,
                                "--out", out])  # fmt: skip

    def baseline(self, stage: str) -> None:
        self.train(
            stage,
            "sft_demo.yaml",
            "--init",
            self.runs.final("warmup"),
            "--styles",
            BASELINE_STYLES[stage],
            "--sketch_decoding",
            "sequential",
            extra_key="sft",
        )  # fmt: skip (no sketches: nothing to decode)

    def codebook(self) -> None:
        final = self.runs.after_grpo()
        if (final / CODEBOOK_NAME).exists():
            print(f"codebook: {final / CODEBOOK_NAME} exists, skipping")
            return
        self.timed("codebook", [sys.executable, "-m", "model.codebook", "--checkpoint", final, "--data",
                                self.runs.data, "--per-family", 200])  # fmt: skip

    def audit(self) -> None:
        # "sft" in the evaluation names is the model before the last GRPO: stage 1 + refine (+ transfer)
        sft, grpo, off = self.runs.before_grpo(), self.runs.after_grpo(), ("--snap", "off")
        self.evaluate("test-demo", grpo, AUDIT_MODES)  # as shipped: drawn latents snap to its codebook
        self.evaluate("test-sft", sft, AUDIT_MODES, "test", None, *off)
        self.evaluate("test-grpo", grpo, AUDIT_MODES, "test", None, *off)
        self.evaluate("test-textonly", self.runs.final("textonly"), "text-only,direct")
        # the same puzzles asked in other words (sketch-world's paraphrased_question; some wordings never trained)
        self.evaluate("test-demo-paraphrased", grpo, "auto", "test", None, "--questions", "paraphrased")
        self.evaluate("test-textonly-paraphrased", self.runs.final("textonly"), "text-only", "test", None,
                      "--questions", "paraphrased")  # fmt: skip
        self.evaluate("test-direct", self.runs.final("direct"), "direct")
        self.evaluate("test-sft-language-only", sft, "direct,text-only", "test", None, "--language-only")
        # GRPO's effect on the validation split: greedy, and sampled as in its rollouts (temperature 1)
        for name, checkpoint in (("sft", sft), ("grpo", grpo)):
            self.evaluate(f"validation-{name}", checkpoint, "auto,noise-latents", "validation",
                          self.profile.grpo_eval_per_family, *off)  # fmt: skip
            self.evaluate(f"validation-{name}-sampled", checkpoint, "auto", "validation",
                          self.profile.grpo_eval_per_family, "--temperature", "1", *off)  # fmt: skip

    def transfer(self) -> None:
        """Phase 2: refine passes on the default families from phase 1's GRPO model (saved with the audit's
        sampler, as it was shipped), then GRPO on them."""
        passes = self.runs.transfer_stages()
        if not passes:
            return
        previous = self.runs.handoff()
        if not previous.is_dir() and not self.runs.final(passes[0]).is_dir():
            print(f"transfer: {previous} from {self.runs.final('grpo')}", flush=True)
            copy_model(self.runs.final("grpo"), previous, sampler=self.profile.sampler,
                       sketch_temperature=self.profile.sketch_temperature)  # fmt: skip
        for name in passes:
            previous = self.train(name, "sft_refine_demo.yaml", "--init", previous, extra_key="refine")
        self.train("transfer/grpo", "grpo_demo.yaml", "--init", previous, extra_key="grpo")

    def sweep_point(self, point) -> None:
        """One grid point: stage 1 from the stage-0 base, then its refine passes, each with the point's K, λ, head
        and decoding (the point that is the demo's own recipe is the demo's stage 1 and refine passes); then its
        audit: auto, oracle and noise-latents on the test split, 100 puzzles per family in the demo profile."""
        knobs = ["--latent_budget", point.latent_budget, "--diffusion_loss_weight", point.diffusion_loss_weight,
                 "--head_type", point.head_type, "--sketch_decoding", point.sketch_decoding,
                 "--tracker", "none"]  # fmt: skip
        first, *passes = self.runs.sweep_stages(point)
        model = self.train(first, "sft_demo.yaml", "--init", self.runs.final("warmup"), *knobs, extra_key="sft")
        for stage in passes:
            model = self.train(stage, "sft_refine_demo.yaml", "--init", model, *knobs, extra_key="refine")
        self.evaluate(f"sweep-{point.name}", model, SWEEP_MODES, "test", self.profile.eval_per_family)

    def sweep(self) -> None:
        """Every sweep point; `--jobs N` trains N at once, the CPU threads split between them."""
        with ThreadPoolExecutor(self.jobs) as pool:
            for future in [pool.submit(self.sweep_point, point) for point in self.profile.sweep]:
                future.result()

    def run(self, stages: list[str]) -> None:
        for stage in STAGES:
            if stage not in stages:
                continue
            if stage == "data":
                self.data()
            elif stage == "warmup":
                self.train("warmup", "warmup_demo.yaml", "--init", "demo")
            elif stage == "describe":
                self.describe()
            elif stage == "sft":
                self.train("sft", "sft_demo.yaml", "--init", self.runs.final("warmup"))
            elif stage == "refine":
                previous = self.runs.final("sft")
                for name in self.runs.refine_stages():
                    previous = self.train(name, "sft_refine_demo.yaml", "--init", previous, extra_key="refine")
            elif stage == "grpo":
                self.train("grpo", "grpo_demo.yaml", "--init", self.runs.final("refine"))
            elif stage == "transfer":
                self.transfer()
            elif stage == "codebook":
                self.codebook()
            elif stage in BASELINE_STYLES:
                self.baseline(stage)
            elif stage == "eval":
                self.audit()
            elif stage == "sweep":
                self.sweep()
            elif stage == "ship":
                sh([sys.executable, "-m", "pipeline.ship", "--profile", self.profile.name])
            elif stage == "report":
                sh([sys.executable, "-m", "pipeline.report"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, from {', '.join(STAGES)}")
    parser.add_argument("--quick", action="store_true", help="every stage on a small scale, in runs/quick/")
    parser.add_argument("--jobs", type=int, default=1, help="sweep points trained at the same time")
    parser.add_argument("--evals", default="", help="comma-separated: only these evaluations (e.g. test-sft), so "
                        "that parts of the audit can run side by side in two processes")  # fmt: skip
    parser.add_argument("--points", default="", help="comma-separated sweep points (e.g. k64-l1-sequential): the "
                        "sweep stage trains only these (a few points per session)")  # fmt: skip
    args = parser.parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        print(f"error: unknown stage {', '.join(unknown) or '(none)'}; stages: {', '.join(STAGES)}", file=sys.stderr)
        return 2
    if args.quick:
        stages = [s for s in stages if s not in ("ship", "report")]  # a smoke run never overwrites assets/
    profile = PROFILES["quick" if args.quick else "demo"]
    points = [p.strip() for p in args.points.split(",") if p.strip()]
    names = [p.name for p in profile.sweep]
    if [p for p in points if p not in names]:
        print(f"error: unknown sweep point {', '.join(p for p in points if p not in names)}; points: "
              f"{', '.join(names)}", file=sys.stderr)  # fmt: skip
        return 2
    if points:
        profile = dataclasses.replace(profile, sweep=[p for p in profile.sweep if p.name in points])
    try:
        evals = {e.strip() for e in args.evals.split(",") if e.strip()} or None
        Pipeline(Runs(profile), max(1, args.jobs), evals).run(stages)
    except subprocess.CalledProcessError as err:
        print(f"error: stage failed: {' '.join(map(str, err.cmd))} (exit {err.returncode})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
