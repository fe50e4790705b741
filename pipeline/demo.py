"""Train, audit and ship the demo model, its equal-compute baselines and the K / λ / head / decoding sweep, on CPU.

    python -m pipeline.demo                       # everything; re-run it to continue after an interruption
    python -m pipeline.demo --quick               # every stage on a small scale (≤ 20 minutes), runs/quick/
    python -m pipeline.demo --profile parallel    # demo-parallel's recipe, from the demo's data and stage-0 base
    python -m pipeline.demo --stages sweep --points k16-l1,k4-l1

Stages, in order (sizes and recipes in pipeline/layout.py; the campaign's commands in docs/GUIDE.md):
`data` sketch-world (version 6: the eight default families, 16×16 boards among them, half the rows asked in another
wording), 2000 puzzles per family (1600 / 200 / 200 train / validation / test); a folder written by another generator
version or family list is written again;
`warmup` stage 0: descriptions and perception questions about every picture, half of them shown as sketches, first
on the 8×8 families alone (warmup_demo.yaml), then on every family, the 16×16 boards among them
(warmup_boards_demo.yaml, `warmup/boards`);
`describe` the stage-0 check: cells right in greedy descriptions of validation pictures (as images and as sketches);
`sft` stage 1, K = 64, λ = 1, the profile's recipe (demo: sequential sketches, sft_demo.yaml); `refine` stage 1b:
stage 1's recipe again in passes of 600 steps, each from the previous model with a fresh warm-up and cosine at a
lower rate, each audited on validation, their number chosen there (pipeline/refine_choice.py);
`grpo` stage 2 from the chosen pass (grpo_demo.yaml);
`transfer` phase 2 (a profile with `transfer_passes`: the stages above on EARLY_FAMILIES, then refine passes and
GRPO again on the default families; no profile uses it today);
`codebook` fits the final model's sketch codebook (model/training/fit_codebook.py) on the train split: the centroids
its drawn latents snap to in generation;
`textonly`, `direct` the baselines: the demo's chain (stage 1 and the chosen refine passes, the same steps and batch)
from the same stage-0 base, on the text-only CoT traces and on direct answers;
`eval` the audit on the test split (every mode, n and 95 % intervals, sketch quality) for the model as shipped (GRPO
with its codebook, `test-demo`), for SFT and GRPO as trained (no snapping) and the baselines; each of them asked in
each paraphrase kind (seen, held-out template, held-out synonym); the GRPO check on the validation split; and the
ship rule's validation audits (the new demo in template and paraphrased wording, the shipped demo beside it);
`sweep` every point of the grid (K, λ, head, decoding) from the same stage-0 base: stage 1 with the point's knobs and
recipe, then the profile's `sweep_passes` refine passes with them (the K = 64 point is the demo's own chain), each
audited on the test split; `--jobs N` trains N points at once (on a GPU keep N at 1 or 2: docs/GUIDE.md › Training);
`ship` copies the models into assets/ when the ship rule lets the new demo replace the old one (pipeline/ship.py);
`report` writes docs/RESULTS.md from them (pipeline/report.py).

A profile with a `base` (parallel) trains its own stage 1, refine passes and GRPO from the demo's data and stage-0
base, is audited as `test-<its decoding>`, and ships beside the demo (`pipeline.ship --keep-demo`).

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

from model.core.atomic import write_text
from model.core.sketch_codebook import CODEBOOK_NAME
from model.generation.modes import mode_names
from model.generation.settings import TEXT_COT_MAX_NEW_TOKENS
from model.sketchworld import DEFAULT_FAMILIES, EARLY_FAMILIES
from model.sketchworld.schema import GENERATOR_VERSION
from pipeline.checkpoints import copy_model, sketch_decoding
from pipeline.layout import ASSETS, CONFIGS, PROFILES, RECIPES, ROOT, Runs
from pipeline.refine_choice import CHOICE_MODES, another_pass_wanted, audit_name, choose

STAGES = ("data", "warmup", "describe", "sft", "refine", "grpo", "transfer", "codebook", "textonly", "direct",
          "eval", "sweep", "ship", "report")  # fmt: skip
# what a profile with a `base` (a model registered beside the demo) runs: its own chain, its audit, the ship beside
BESIDE_STAGES = ("data", "warmup", "sft", "refine", "grpo", "eval", "ship")
AUDIT_MODES = ",".join(mode_names())  # every mode, in the registry's order
SWEEP_MODES = "auto,oracle,noise-latents"  # drawing, reading, and whether the answers use the sketches
BASELINE_STYLES = {"textonly": "{text-only: 1.0}", "direct": "{direct: 1.0}"}
PARAPHRASE_KINDS = ("seen", "held-out-template", "held-out-synonym")  # model.evaluate --questions
SHIPPED_DEMO = ASSETS / "checkpoints" / "demo"  # the demo a new one must beat (pipeline/ship_rule.py)


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
        """`python -m model.evaluate` of `checkpoint` on `per_family` puzzles of every default family (the
        profile's eval_per_family by default), with the profile's sampler, into runs/<profile>/eval/<name>."""
        out = self.runs.eval_dir(name)
        if self.evals is not None and name not in self.evals:
            return
        done = self.runs.evaluated_checkpoint(name)
        if done == str(checkpoint):
            print(f"eval: {out} exists, skipping")
            return
        if done is not None:
            print(f"eval: {out} is of {done}, not of {checkpoint}; evaluating again")
        limit = len(DEFAULT_FAMILIES) * (per_family or self.profile.eval_per_family)
        self.timed(f"eval:{name}", [sys.executable, "-m", "model.evaluate", "--checkpoint", checkpoint, "--data",
                                    self.runs.data, "--split", split, "--modes", modes, "--limit", limit,
                                    "--batch-size", 32,
                                    "--probe-limit", len(DEFAULT_FAMILIES) * self.profile.probe_per_family,
                                    # every core for one evaluation; one each when jobs run side by side
                                    "--jobs", 1 if self.jobs > 1 else 0,
                                    "--diffusion-solver", self.profile.sampler[0],
                                    "--diffusion-steps", self.profile.sampler[1],
                                    "--sketch-temperature", self.profile.sketch_temperature,
                                    *self.refine_flag(checkpoint), "--out", out, *extra])  # fmt: skip

    def refine_flag(self, checkpoint) -> list:
        """`--refine-passes R` for a parallel-sketch checkpoint, R as its recipe chose it; nothing otherwise."""
        decoding = sketch_decoding(checkpoint)
        chosen = RECIPES[decoding].inference_refine_passes if decoding in RECIPES else None
        return ["--refine-passes", chosen] if decoding == "parallel" and chosen is not None else []

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

    def warmup(self) -> None:
        """Stage 0 from scratch on the 8×8 families, then (a profile with warmup_board_steps) on every family from
        that model."""
        model = self.train("warmup", "warmup_demo.yaml", "--init", "demo")
        if self.profile.warmup_board_steps:
            self.train("warmup/boards", "warmup_boards_demo.yaml", "--init", model, extra_key="warmup")

    def describe(self) -> None:
        out = self.runs.eval_dir("describe") / "results.json"
        if out.exists():
            print(f"describe: {out} exists, skipping")
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        self.timed("describe", [sys.executable, "-m", "model.describe_eval", "--checkpoint", self.runs.stage0(),
                                "--data", self.runs.data, "--limit",
                                len(DEFAULT_FAMILIES) * self.profile.probe_per_family, "--out", out])  # fmt: skip

    def refine(self) -> None:
        """The refine passes, each from the one before (the first from stage 1) and, when the profile chooses their
        number, audited on validation; then the choice (pipeline/refine_choice.py)."""
        p, previous, trained = self.profile, self.runs.final("sft"), 0
        choosing = p.min_refine_passes < p.max_refine_passes
        for i, stage in enumerate(self.runs.refine_stages(), start=1):
            if i > 1 and choosing and not another_pass_wanted(self.runs, i - 1):
                break
            previous = self.train(stage, p.recipe.refine, "--init", previous, extra_key="refine")
            if choosing:
                self.evaluate(audit_name(i), previous, CHOICE_MODES, "validation", p.choice_per_family)
            trained = i
        if choosing:
            choice = choose(self.runs, trained)
            print(f"refine: {trained} passes trained; chosen on validation: {choice['passes']} (auto "
                  + ", ".join(f"{100 * a:.1f}" for a in choice["auto"]) + ")")  # fmt: skip
        elif self.runs.chosen_refine_passes() != trained:
            record = {"passes": trained, "trained": trained, "rule": "fixed by the profile"}
            write_text(self.runs.choice_file, json.dumps(record, indent=1) + "\n")

    def baseline(self, stage: str) -> None:
        """A baseline: the demo's chain (stage 1, then its chosen refine and transfer passes: the same steps) from
        the same stage-0 base, on its own traces; it never sketches, so it decodes sequentially."""
        recipe, knobs = RECIPES["sequential"], ["--styles", BASELINE_STYLES[stage], "--sketch_decoding", "sequential"]
        first, *passes = self.runs.baseline_stages(stage)
        model = self.train(first, recipe.sft, "--init", self.runs.stage0(), *knobs, extra_key="sft")
        for name in passes:
            model = self.train(name, recipe.refine, "--init", model, *knobs, extra_key="refine")

    def codebook(self) -> None:
        final = self.runs.after_grpo()
        if (final / CODEBOOK_NAME).exists():
            print(f"codebook: {final / CODEBOOK_NAME} exists, skipping")
            return
        self.timed("codebook", [sys.executable, "-m", "model.codebook", "--checkpoint", final, "--data",
                                self.runs.data, "--per-family", 200])  # fmt: skip

    def audit(self) -> None:
        """The eval stage: the demo's audit, its baselines', the wordings, the GRPO check, the ship rule's evidence."""
        if self.profile.base:
            self.audit_beside()
            return
        # "sft" in the evaluation names is the model before the last GRPO: stage 1 + refine (+ transfer)
        p, sft, grpo, off = self.profile, self.runs.before_grpo(), self.runs.after_grpo(), ("--snap", "off")
        textonly, direct = (self.runs.final(self.runs.baseline_stages(b)[-1]) for b in ("textonly", "direct"))
        cot = ("--max-new-tokens", TEXT_COT_MAX_NEW_TOKENS)  # its 16×16 traces are longer than 256 tokens
        self.evaluate("test-demo", grpo, AUDIT_MODES)  # as shipped: drawn latents snap to its codebook
        self.evaluate("test-sft", sft, AUDIT_MODES, "test", None, *off)
        self.evaluate("test-grpo", grpo, AUDIT_MODES, "test", None, *off)
        self.evaluate("test-textonly", textonly, "text-only,direct", "test", None, *cot)
        self.evaluate("test-direct", direct, "direct")
        # the same test puzzles asked in other words, one kind at a time (a third of the rows each)
        for kind in PARAPHRASE_KINDS:
            words = (p.paraphrase_per_family, "--questions", kind)
            self.evaluate(f"test-demo-{kind}", grpo, "auto", "test", *words)
            self.evaluate(f"test-textonly-{kind}", textonly, "text-only", "test", *words, *cot)
            self.evaluate(f"test-direct-{kind}", direct, "direct", "test", *words)
        self.evaluate("test-sft-language-only", sft, "direct,text-only", "test", None, "--language-only")
        # GRPO's effect on the validation split: greedy, and sampled as in its rollouts (temperature 1)
        for name, checkpoint in (("sft", sft), ("grpo", grpo)):
            self.evaluate(f"validation-{name}", checkpoint, "auto,noise-latents", "validation",
                          p.grpo_eval_per_family, *off)  # fmt: skip
            self.evaluate(f"validation-{name}-sampled", checkpoint, "auto", "validation",
                          p.grpo_eval_per_family, "--temperature", "1", *off)  # fmt: skip
        # the ship rule (pipeline/ship_rule.py): the new demo as shipped, in both wordings, and the shipped demo, on
        # the same validation puzzles
        self.evaluate("validation-demo", grpo, "auto", "validation", p.choice_per_family)
        self.evaluate("validation-demo-paraphrased", grpo, "auto", "validation", p.choice_per_family,
                      "--questions", "paraphrased")  # fmt: skip
        if (SHIPPED_DEMO / "config.json").exists():
            self.evaluate("validation-shipped-demo", SHIPPED_DEMO, "auto", "validation", p.choice_per_family)

    def audit_beside(self) -> None:
        """A model registered beside the demo: its audit as `test-<its decoding>`, and in each paraphrase kind."""
        grpo = self.runs.after_grpo()
        name = f"test-{self.profile.sketch_decoding}"
        self.evaluate(name, grpo, AUDIT_MODES)
        for kind in PARAPHRASE_KINDS:
            self.evaluate(f"{name}-{kind}", grpo, "auto", "test", self.profile.paraphrase_per_family,
                          "--questions", kind)  # fmt: skip

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
            previous = self.train(name, self.profile.recipe.refine, "--init", previous, extra_key="refine")
        self.train("transfer/grpo", "grpo_demo.yaml", "--init", previous, extra_key="grpo")

    def sweep_point(self, point) -> None:
        """One grid point: stage 1 from the stage-0 base, then its refine passes, with the point's K, λ, head and
        decoding and its decoding's recipe (the point that is the demo's own recipe is the demo's stage 1 and first
        refine passes); then its audit: auto, oracle and noise-latents on the test split, 100 puzzles per family in
        the demo profile, with the latency of each answer."""
        knobs = ["--latent_budget", point.latent_budget, "--diffusion_loss_weight", point.diffusion_loss_weight,
                 "--head_type", point.head_type, "--sketch_decoding", point.sketch_decoding,
                 "--tracker", "none"]  # fmt: skip
        first, *passes = self.runs.sweep_stages(point)
        model = self.train(first, point.recipe.sft, "--init", self.runs.stage0(), *knobs, extra_key="sft")
        for stage in passes:
            model = self.train(stage, point.recipe.refine, "--init", model, *knobs, extra_key="refine")
        self.evaluate(f"sweep-{point.name}", model, SWEEP_MODES, "test", self.profile.eval_per_family)

    def sweep(self) -> None:
        """Every sweep point, in the profile's order; `--jobs N` trains N at once, the CPU threads split between
        them."""
        with ThreadPoolExecutor(self.jobs) as pool:
            for future in [pool.submit(self.sweep_point, point) for point in self.profile.sweep]:
                future.result()

    def ship(self) -> None:
        beside = ["--keep-demo"] if self.profile.base else []
        sh([sys.executable, "-m", "pipeline.ship", "--profile", self.profile.name, *beside])

    def run(self, stages: list[str]) -> None:
        steps = {"data": self.data, "describe": self.describe, "refine": self.refine, "transfer": self.transfer,
                 "codebook": self.codebook, "eval": self.audit, "sweep": self.sweep, "ship": self.ship,
                 "textonly": lambda: self.baseline("textonly"), "direct": lambda: self.baseline("direct"),
                 "report": lambda: sh([sys.executable, "-m", "pipeline.report"]),
                 "warmup": self.warmup,
                 "sft": lambda: self.train("sft", self.profile.recipe.sft, "--init", self.runs.stage0()),
                 "grpo": lambda: self.train("grpo", "grpo_demo.yaml", "--init", self.chosen_refine())}  # fmt: skip
        for stage in STAGES:
            if stage in stages:
                steps[stage]()

    def chosen_refine(self):
        """GRPO's start: the refine pass chosen on validation (the refine stage must have chosen)."""
        self.runs.refine_passes()  # ValueError naming the command when nothing is chosen yet
        return self.runs.final("refine")


def parse_stages(text: str, profile) -> list[str]:
    """The named stages, those a profile with a `base` does not run left out (said); ValueError for unknown ones."""
    stages = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise ValueError(f"unknown stage {', '.join(unknown) or '(none)'}; stages: {', '.join(STAGES)}")
    if profile.base:
        left = [s for s in stages if s not in BESIDE_STAGES]
        if left and text != ",".join(STAGES):
            print(f"the {profile.name} profile does not run {', '.join(left)} (the demo's)")
        stages = [s for s in stages if s in BESIDE_STAGES]
    return stages


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, from {', '.join(STAGES)}")
    parser.add_argument("--profile", default="demo", choices=sorted(PROFILES), help="sizes and recipe "
                        "(pipeline/layout.py): demo, parallel (demo-parallel's recipe) or quick")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="--profile quick: every stage small, in runs/quick/")
    parser.add_argument("--jobs", type=int, default=1, help="sweep points trained at the same time")
    parser.add_argument("--evals", default="", help="comma-separated: only these evaluations (e.g. test-sft), so "
                        "that parts of the audit can run side by side in two processes")  # fmt: skip
    parser.add_argument("--points", default="", help="comma-separated sweep points (e.g. k16-l1,k4-l1): the sweep "
                        "stage trains only these, in the grid's order (a few points per session)")  # fmt: skip
    args = parser.parse_args(argv)
    profile = PROFILES["quick" if args.quick else args.profile]
    try:
        stages = parse_stages(args.stages, profile)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if profile.name == "quick":
        stages = [s for s in stages if s not in ("ship", "report")]  # a smoke run never overwrites assets/
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
    except ValueError as err:  # a stage that needs another one's output first (the refine choice, its audits)
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
