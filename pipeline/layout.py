"""Where the demo pipeline keeps things, and how big each stage is: profiles, run folders, the sweep grid, timings.

    profile = PROFILES["demo"]          # or "quick" (every stage, small: a smoke run)
    runs = Runs(profile)
    runs.final("sft")                   # runs/demo/sft/checkpoint-002000/model
    runs.eval_dir("test-grpo")          # runs/demo/eval/test-grpo

Both `pipeline/demo.py` (which trains and evaluates) and `pipeline/ship.py` (which copies into assets/) read the
layout from here, so neither imports the other.
"""

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from model.core.atomic import write_text

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "model" / "configs"
ASSETS = ROOT / "assets"
_TIMINGS_LOCK = threading.Lock()


@dataclass(frozen=True)
class SweepPoint:
    latent_budget: int  # K
    diffusion_loss_weight: float  # λ
    head_type: str = "diffusion"  # the paper's head ablation adds a regression head
    sketch_decoding: str = "parallel"  # the decoding ablation adds the paper's sequential one

    @property
    def name(self) -> str:
        head = "" if self.head_type == "diffusion" else f"-{self.head_type}"
        decoding = "" if self.sketch_decoding == "parallel" else f"-{self.sketch_decoding}"
        return f"k{self.latent_budget}-l{self.diffusion_loss_weight:g}{head}{decoding}"

    @property
    def axis(self) -> str:
        """Which comparison the point belongs to: budget (K at λ = 1), lambda, head or decoding (at the demo's K)."""
        if self.head_type != "diffusion":
            return "head"
        if self.sketch_decoding != "parallel":
            return "decoding"
        return "budget" if self.diffusion_loss_weight == 1.0 else "lambda"


DEMO_K = 64  # the demo's K: one latent per cell of sketch-world's 8×8 boards
# K ∈ {4, 8, 16, 32, 64} at λ = 1; λ ∈ {0.1, 10} at the demo's K (λ = 1 there is the K = 64 point); and at the demo's
# K the regression head and the sequential decoding, each against the K = 64 point (the demo's recipe itself)
SWEEP = [SweepPoint(k, 1.0) for k in (4, 8, 16, 32, DEMO_K)]
SWEEP += [SweepPoint(DEMO_K, 0.1), SweepPoint(DEMO_K, 10.0)]
SWEEP += [SweepPoint(DEMO_K, 1.0, "regression"), SweepPoint(DEMO_K, 1.0, sketch_decoding="sequential")]


@dataclass(frozen=True)
class Profile:
    name: str
    per_family: int  # sketch-world puzzles per family (80 / 10 / 10 % train / validation / test)
    warmup_steps: int  # stage 0
    sft_steps: int  # stage 1
    refine_steps: int  # stage 1b: stage 1's recipe again from its model, lower rate (sft_refine_demo.yaml), per pass
    refine_passes: int  # passes of refine_steps, each from the previous one's model (its own warm-up and cosine)
    grpo_steps: int
    # phase 2 (stage `transfer`): after phase 1 (stage 0 … GRPO on EARLY_FAMILIES), passes of refine_steps on the
    # default families, from phase 1's GRPO model with the audit's sampler in its config, then GRPO again; 0: none
    transfer_passes: int
    sweep_steps: int  # each sweep point: stage 1 from the same stage-0 base with its K, λ and head (sft_demo.yaml)
    eval_per_family: int  # test (and validation) puzzles evaluated per family
    probe_per_family: int  # validation puzzles per family the read-back probe is fitted on
    grpo_eval_per_family: int  # validation puzzles per family for the sampled (temperature 1) GRPO check
    sweep: list = field(default_factory=lambda: list(SWEEP))
    # then this many refine passes of refine_steps each (sft_refine_demo.yaml), as the demo has: the compute that made
    # the demo use its sketches (stage 1 alone did not: docs/RESULTS.md › What we tried, "Sweep on v4")
    sweep_passes: int = 0
    data_seed: int = 0
    # the sketch sampler the audit uses and the shipped config.json gets: the fewest steps inside T = 50's interval on
    # the validation split (benchmarks/bench_sampler.py, docs/RESULTS.md › Performance)
    sampler: tuple = ("dpm++", 5)
    # the scale of each sketch draw's starting noise, the same way: on 600 validation puzzles (the demo's SFT, E9) auto
    # got 30.2 % at 1, 33.0 at 0.5, 33.5 at 0.25, 32.7 at 0 (docs/RESULTS.md › What we tried)
    sketch_temperature: float = 0.25
    # parallel sketches: the refinement passes the audit runs and the shipped config gets (each trained pass draws the
    # sketch, so fewer than trained is a setting, chosen like the sampler on validation); None: all trained ones
    inference_refine_passes: int | None = None
    extra: dict = field(default_factory=dict)  # per-stage --key value overrides (quick runs shrink batches)

    @property
    def supervised_steps(self) -> int:
        """SFT steps of the demo model before its last GRPO: stage 1 + every refine and transfer pass (what each
        baseline gets)."""
        return self.sft_steps + (self.refine_passes + self.transfer_passes) * self.refine_steps


# the demo shipped before sketch-world v5 (sequential sketches; stage 1, 4 refine passes, GRPO on the early families,
# then 2 refine passes and GRPO again on the default ones): what `ship --keep-demo` records for it and the report says
PREVIOUS_DEMO = {
    "supervised_steps": 1200 + 4 * 600 + 2 * 600,
    "lineage": "1200 SFT steps, then 4 × 600 refine steps and 20 GRPO steps on the early families (tilt in sink's "
    "place), then 2 × 600 refine steps on these families and 20 GRPO steps again (sketch-world v4, sequential "
    "sketches, template wording only)",
}

PROFILES = {
    # sized for the 2-core CPU: see docs/RESULTS.md for the wall time of each stage
    "demo": Profile("demo", per_family=2000, warmup_steps=900, sft_steps=1200, refine_steps=600, refine_passes=2,
                    grpo_steps=20, transfer_passes=0, sweep_steps=1200, eval_per_family=100, probe_per_family=50,
                    grpo_eval_per_family=100, sweep_passes=2,
                    # chosen on validation (choice-parallel-r0 / -r1, 600 puzzles after the 2 refine passes):
                    # auto 29.3 without the trained refinement pass, 28.7 with it (within noise; the cheaper one)
                    inference_refine_passes=0),
    # every stage on a small scale (≤ 20 minutes): checks that the pipeline runs, not what it learns
    "quick": Profile("quick", per_family=60, warmup_steps=30, sft_steps=30, refine_steps=6, refine_passes=2,
                     grpo_steps=2, transfer_passes=1, sweep_steps=8, eval_per_family=4, probe_per_family=4,
                     grpo_eval_per_family=2, sweep_passes=1,
                     sweep=[SweepPoint(16, 1.0), SweepPoint(64, 1.0, "regression")],
                     extra={"warmup": ["--batch_size", "8", "--max_examples", "120"],
                            "sft": ["--batch_size", "8"], "refine": ["--batch_size", "8"],
                            "grpo": ["--grpo_prompts", "2", "--grpo_group_size", "2",
                                     "--grpo_max_new_tokens", "100"]}),
}  # fmt: skip


class Runs:
    """The run folders of one profile: runs/<profile>/<stage>/checkpoint-NNNNNN/model, runs/<profile>/eval/…"""

    def __init__(self, profile: Profile, root: Path = ROOT):
        self.profile = profile
        self.base = root / "runs" / profile.name
        self.data = root / "data" / ("sketchworld" if profile.name == "demo" else f"sketchworld-{profile.name}")
        # phase 1's data: EARLY_FAMILIES (the same folder as `data` when the profile has no transfer passes)
        self.early_data = self.data.with_name(f"{self.data.name}-early") if profile.transfer_passes else self.data
        self.timings = self.base / "timings.json"

    def steps(self, stage: str) -> int:
        """Optimizer steps of a stage; the text-only-CoT and direct-answer baselines get those of SFT + refine (the
        same compute as the model they are compared with)."""
        p = self.profile
        if stage.startswith("sweep/"):
            return p.refine_steps if "/refine/" in stage else p.sweep_steps
        if stage.startswith("refine/") or stage in self.transfer_stages():
            return p.refine_steps
        steps = {"warmup": p.warmup_steps, "grpo": p.grpo_steps, "transfer/grpo": p.grpo_steps, "sft": p.sft_steps}
        return steps.get(stage, p.supervised_steps)

    def refine_stages(self) -> list[str]:
        """The refine passes in order: refine/1 … refine/N."""
        return [f"refine/{i}" for i in range(1, self.profile.refine_passes + 1)]

    def transfer_stages(self) -> list[str]:
        """Phase 2's refine passes in order: transfer/1 … transfer/N (its GRPO is transfer/grpo)."""
        return [f"transfer/{i}" for i in range(1, self.profile.transfer_passes + 1)]

    def sweep_stages(self, point: SweepPoint) -> list[str]:
        """A sweep point's chain in order: sweep/<point> (stage 1), then sweep/<point>/refine/1 … /N; the point whose
        knobs and steps are the demo's own is the demo's chain (sft, refine/1 … /N), trained once for both."""
        if self.is_demo_point(point):
            return ["sft", *self.refine_stages()]
        first = f"sweep/{point.name}"
        return [first] + [f"{first}/refine/{i}" for i in range(1, self.profile.sweep_passes + 1)]

    def is_demo_point(self, point: SweepPoint) -> bool:
        p = self.profile
        same_steps = (p.sweep_steps, p.sweep_passes) == (p.sft_steps, p.refine_passes)
        return point == SweepPoint(DEMO_K, 1.0) and same_steps and not p.transfer_passes

    def sweep_final(self, point: SweepPoint) -> Path:
        """The model folder of a sweep point's last stage (it exists once the point is trained)."""
        return self.final(self.sweep_stages(point)[-1])

    def data_for(self, stage: str) -> Path:
        """The dataset a training stage reads: phase 1 (stage 0, stage 1, refine passes, the first GRPO) the early
        one, everything after it (transfer, the baselines, the sweep) the default one."""
        early = stage in ("warmup", "sft", "grpo") or stage.startswith("refine/")
        return self.early_data if early else self.data

    def handoff(self) -> Path:
        """Where phase 1's GRPO model is saved with the audit's sampler for phase 2 to start from (the form in which
        it was shipped before phase 2 existed)."""
        return self.base / "transfer" / "start" / "model"

    def before_grpo(self) -> Path:
        """The audited model before its (last) GRPO: the last transfer pass, or the last refine pass."""
        passes = self.transfer_stages()
        return self.final(passes[-1]) if passes else self.final("refine")

    def after_grpo(self) -> Path:
        """The model of the last GRPO stage: transfer/grpo, or grpo without a phase 2."""
        return self.final("transfer/grpo" if self.profile.transfer_passes else "grpo")

    def run_dir(self, stage: str) -> Path:
        return self.base / stage

    def final(self, stage: str) -> Path:
        """The model folder of a stage's last checkpoint (it exists once the stage is done). "refine" is its last
        pass, or stage 1 itself with no refine passes."""
        if stage == "refine":
            passes = self.refine_stages()
            return self.final(passes[-1]) if passes else self.final("sft")
        return self.run_dir(stage) / f"checkpoint-{self.steps(stage):06d}" / "model"

    def eval_dir(self, name: str) -> Path:
        return self.base / "eval" / name

    def evaluated_checkpoint(self, name: str) -> str | None:
        """The checkpoint that evaluation `name` is of, as its results.json records it; None when there is none."""
        results = self.eval_dir(name) / "results.json"
        return json.loads(results.read_text())["config"].get("checkpoint") if results.exists() else None

    def record_time(self, stage: str, seconds: float) -> None:
        """Add a stage's wall time (resumed stages add up), written atomically; safe from several threads."""
        with _TIMINGS_LOCK:
            timings = json.loads(self.timings.read_text()) if self.timings.exists() else {}
            timings[stage] = round(timings.get(stage, 0.0) + seconds, 1)
            write_text(self.timings, json.dumps(timings, indent=1))
