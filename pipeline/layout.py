"""Where the demo pipeline keeps things, and how big each stage is: recipes, profiles, run folders, the sweep grid.

    profile = PROFILES["demo"]          # or "parallel" (demo-parallel's recipe), "quick" (every stage, small)
    runs = Runs(profile)
    runs.final("sft")                   # runs/demo/sft/checkpoint-001200/model
    runs.final("refine")                # the refine pass chosen on validation (refine/choice.json)
    runs.eval_dir("test-grpo")          # runs/demo/eval/test-grpo

Both `pipeline/demo.py` (which trains and evaluates) and `pipeline/ship.py` (which copies into assets/) read the
layout from here, so neither imports the other.
"""

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from model.core.atomic import write_text
from model.sketchworld.schema import GENERATOR_VERSION

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "model" / "configs"
ASSETS = ROOT / "assets"
_TIMINGS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Recipe:
    """How a model draws its sketches, and the configs of its stage 1 and refine passes (model/configs/)."""

    sft: str
    refine: str
    # parallel sketches: the refinement passes inference runs (each trained pass draws the sketch, so fewer than
    # trained is a setting, chosen on validation: choice-parallel-r0 / -r1, auto 29.3 with none against 28.7 with
    # one, docs/RESULTS.md); None: every trained one
    inference_refine_passes: int | None = None


RECIPES = {
    "sequential": Recipe("sft_demo.yaml", "sft_refine_demo.yaml"),  # the demo's: won on validation
    "parallel": Recipe("sft_parallel.yaml", "sft_refine_parallel.yaml", inference_refine_passes=0),  # demo-parallel
}


@dataclass(frozen=True)
class SweepPoint:
    latent_budget: int  # K
    diffusion_loss_weight: float  # λ
    head_type: str = "diffusion"  # the paper's head ablation adds a regression head
    sketch_decoding: str = "sequential"  # the demo's; the decoding ablation adds parallel (RECIPES)

    @property
    def name(self) -> str:
        head = "" if self.head_type == "diffusion" else f"-{self.head_type}"
        decoding = "" if self.sketch_decoding == "sequential" else f"-{self.sketch_decoding}"
        return f"k{self.latent_budget}-l{self.diffusion_loss_weight:g}{head}{decoding}"

    @property
    def axis(self) -> str:
        """Which comparison the point belongs to: budget (K at λ = 1), lambda, head or decoding (at the demo's K)."""
        if self.head_type != "diffusion":
            return "head"
        if self.sketch_decoding != "sequential":
            return "decoding"
        return "budget" if self.diffusion_loss_weight == 1.0 else "lambda"

    @property
    def recipe(self) -> Recipe:
        return RECIPES[self.sketch_decoding]


DEMO_K = 64  # the demo's K: one latent per cell of sketch-world's 8×8 boards, four cells of a 16×16 one
DEMO_POINT = SweepPoint(DEMO_K, 1.0)  # the demo's own recipe: its stage 1 and first refine passes (issue 41)
# K ∈ {4, 8, 16, 32, 64} at λ = 1; λ ∈ {0.1, 10} at the demo's K (λ = 1 there is the K = 64 point); and at the demo's
# K the regression head and parallel decoding, each against the K = 64 point. In training order: the demo's own chain
# first (nothing to train once the demo has its first refine passes), then the most informative points (issue 41:
# K 16, K 4, λ 0.1, λ 10, regression, then K 8, K 32), then the parallel recipe
SWEEP = [DEMO_POINT, SweepPoint(16, 1.0), SweepPoint(4, 1.0), SweepPoint(DEMO_K, 0.1), SweepPoint(DEMO_K, 10.0),
         SweepPoint(DEMO_K, 1.0, "regression"), SweepPoint(8, 1.0), SweepPoint(32, 1.0),
         SweepPoint(DEMO_K, 1.0, sketch_decoding="parallel")]  # fmt: skip


@dataclass(frozen=True)
class Profile:
    name: str
    per_family: int  # sketch-world puzzles per family (80 / 10 / 10 % train / validation / test)
    warmup_steps: int  # stage 0, on the 8×8 families (warmup_demo.yaml's data_families)
    sft_steps: int  # stage 1
    refine_steps: (
        int  # stage 1b: stage 1's recipe again from its model, lower rate (the recipe's refine config), per pass
    )
    # refine passes, each from the previous one's model (its own warm-up and cosine): the first `min_refine_passes`
    # always (the sweep's K = 64 point is the demo after `sweep_passes` of them), then one more, up to
    # `max_refine_passes`, only while the last `refine_window` of them raised validation auto beyond noise
    # (pipeline/refine_choice.py)
    min_refine_passes: int
    max_refine_passes: int
    grpo_steps: int
    # phase 2 (stage `transfer`): after phase 1 (stage 0 … GRPO on EARLY_FAMILIES), passes of refine_steps on the
    # default families, from phase 1's GRPO model with the audit's sampler in its config, then GRPO again; 0: none
    transfer_passes: int
    sweep_steps: int  # each sweep point: stage 1 from the same stage-0 base with its K, λ, head and decoding
    eval_per_family: int  # test (and validation) puzzles evaluated per family
    probe_per_family: int  # validation puzzles per family the read-back probe is fitted on
    grpo_eval_per_family: int  # validation puzzles per family for the sampled (temperature 1) GRPO check
    choice_per_family: int  # validation puzzles per family of each refine pass's audit and of the ship rule
    # test puzzles per family from which each paraphrase kind is asked (seen, held-out template, held-out synonym: a
    # third of the rows each, so about a third of these per kind)
    paraphrase_per_family: int
    sketch_decoding: str = "sequential"  # the recipe (RECIPES) of stage 1 and the refine passes
    base: str | None = None  # another profile whose data and stage-0 base this one starts from (parallel: the demo's)
    sweep: list = field(default_factory=lambda: list(SWEEP))
    # then this many refine passes of refine_steps each, as the demo has: the compute that made the demo use its
    # sketches (stage 1 alone did not: docs/RESULTS.md › What we tried, "Sweep on v4")
    sweep_passes: int = 0
    # stage 0's second phase (`warmup/boards`): every family, the 16×16 boards among them, from the first phase's
    # model (warmup_boards_demo.yaml). With the 16×16 boards in stage 0 from the start, v6's base read 67 % of the
    # cells of 8×8 pictures after 900 steps (its loss stalled at 0.35); on the 8×8 families alone the same 900 steps
    # read 100 % (docs/RESULTS.md › What we tried, "Stage 0 on v6"); 0: no second phase
    warmup_board_steps: int = 0
    refine_window: int = 1  # how many passes back the refine rule measures the rise in validation auto
    data_seed: int = 0
    # the sketch sampler the audit uses and the shipped config.json gets: the fewest steps inside T = 50's interval on
    # the validation split (benchmarks/bench_sampler.py, docs/RESULTS.md › Performance)
    sampler: tuple = ("dpm++", 5)
    # the scale of each sketch draw's starting noise, the same way: on 600 validation puzzles (the demo's SFT, E9) auto
    # got 30.2 % at 1, 33.0 at 0.5, 33.5 at 0.25, 32.7 at 0 (docs/RESULTS.md › What we tried)
    sketch_temperature: float = 0.25
    extra: dict = field(default_factory=dict)  # per-stage --key value overrides (quick runs shrink batches)

    def __post_init__(self):
        # the pass choice compares each pass with the one before it, both audited: the first choice is after pass 2
        assert 2 <= self.min_refine_passes <= self.max_refine_passes, "refine passes: 2 ≤ min ≤ max"
        assert self.refine_window >= 1, "refine_window: at least 1 pass"
        assert self.sketch_decoding in RECIPES, self.sketch_decoding

    @property
    def recipe(self) -> Recipe:
        return RECIPES[self.sketch_decoding]


# the demo shipped before sketch-world v5 (sequential sketches; stage 1, 4 refine passes, GRPO on the early families,
# then 2 refine passes and GRPO again on the default ones): what `ship --keep-demo` records for it and the report says
PREVIOUS_DEMO = {
    "supervised_steps": 1200 + 4 * 600 + 2 * 600,
    "lineage": "1200 SFT steps, then 4 × 600 refine steps and 20 GRPO steps on the early families (tilt in sink's "
    "place), then 2 × 600 refine steps on these families and 20 GRPO steps again (sketch-world v4, sequential "
    "sketches, template wording only)",
}

_DEMO_SIZES = dict(per_family=2000, warmup_steps=900, warmup_board_steps=300, sft_steps=1200, refine_steps=600,
                   grpo_steps=20, transfer_passes=0, sweep_steps=1200, eval_per_family=100, probe_per_family=50,
                   grpo_eval_per_family=100, choice_per_family=100, paraphrase_per_family=200)  # fmt: skip
PROFILES = {
    # sized for the 2-core CPU (docs/GUIDE.md › The campaign: the wall time of each stage); sequential sketches, 4
    # refine passes and up to 10 chosen on validation, rising over the last 2 (at most 7200 supervised steps, 1.5×
    # the v4 demo's 4800 on 6 families and one wording; v6's 8 families and wordings stood 20 points below it at
    # 4200, use still rising: docs/RESULTS.md), the sweep grid's stage 1 + 2 refine passes
    "demo": Profile("demo", min_refine_passes=4, max_refine_passes=10, refine_window=2, sweep_passes=2,
                    **_DEMO_SIZES),
    # demo-parallel's recipe (parallel sketches, 2 refine passes, GRPO), from the demo's data and stage-0 base, in
    # runs/parallel/; no sweep of its own (the grid's parallel point is its first 2400 steps)
    "parallel": Profile("parallel", min_refine_passes=2, max_refine_passes=2, sketch_decoding="parallel", base="demo",
                        sweep=[], **_DEMO_SIZES),
    # every stage on a small scale (≤ 20 minutes): checks that the pipeline runs, not what it learns
    "quick": Profile("quick", per_family=60, warmup_steps=30, warmup_board_steps=6, sft_steps=30, refine_steps=6,
                     min_refine_passes=2, max_refine_passes=3, grpo_steps=2, transfer_passes=0, sweep_steps=8,
                     eval_per_family=4, probe_per_family=4, grpo_eval_per_family=2, choice_per_family=3,
                     paraphrase_per_family=6,
                     sweep_passes=1, sweep=[SweepPoint(16, 1.0), SweepPoint(DEMO_K, 1.0, sketch_decoding="parallel")],
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
        shared = profile.base or profile.name  # the profile whose data and stage-0 base this one uses
        self.shared = root / "runs" / shared
        self.data = root / "data" / ("sketchworld" if shared == "demo" else f"sketchworld-{shared}")
        # phase 1's data: EARLY_FAMILIES (the same folder as `data` when the profile has no transfer passes)
        self.early_data = self.data.with_name(f"{self.data.name}-early") if profile.transfer_passes else self.data
        self.timings = self.base / "timings.json"

    def steps(self, stage: str) -> int:
        """Optimizer steps of a stage. The text-only-CoT and direct-answer baselines train the demo's chain (stage 1,
        then the chosen number of refine passes and any transfer passes) on their own traces: the same steps."""
        p = self.profile
        if stage.startswith("sweep/"):
            return p.refine_steps if "/refine/" in stage else p.sweep_steps
        if "refine/" in stage or stage in self.transfer_stages():
            return p.refine_steps
        named = {"warmup": p.warmup_steps, "warmup/boards": p.warmup_board_steps, "grpo": p.grpo_steps,
                 "transfer/grpo": p.grpo_steps}  # fmt: skip
        return named.get(stage, p.sft_steps)

    def refine_stages(self) -> list[str]:
        """Every refine pass the profile may train, in order: refine/1 … refine/<max>."""
        return [f"refine/{i}" for i in range(1, self.profile.max_refine_passes + 1)]

    @property
    def choice_file(self) -> Path:
        """Where the refine stage records the number of passes it chose on validation (pipeline/refine_choice.py)."""
        return self.base / "refine" / "choice.json"

    def chosen_refine_passes(self) -> int | None:
        """The number of refine passes chosen on validation; None before the refine stage has chosen."""
        return json.loads(self.choice_file.read_text())["passes"] if self.choice_file.exists() else None

    def refine_passes(self) -> int:
        """The chosen number of refine passes; ValueError naming the command when none is chosen yet."""
        chosen = self.chosen_refine_passes()
        if chosen is None:
            raise ValueError(f"no refine pass chosen yet ({self.choice_file} is missing): python -m pipeline.demo "
                             f"--profile {self.profile.name} --stages refine chooses it")  # fmt: skip
        return chosen

    def supervised_steps(self) -> int:
        """SFT steps of the model before its last GRPO: stage 1 + the chosen refine passes + every transfer pass
        (what each baseline gets)."""
        return (
            self.profile.sft_steps + (self.refine_passes() + self.profile.transfer_passes) * self.profile.refine_steps
        )

    def baseline_stages(self, stage: str) -> list[str]:
        """A baseline's chain, the demo's steps on its own traces: textonly, textonly/refine/1 … /N (N: the chosen
        refine passes and the transfer passes)."""
        passes = self.refine_passes() + self.profile.transfer_passes
        return [stage] + [f"{stage}/refine/{i}" for i in range(1, passes + 1)]

    def transfer_stages(self) -> list[str]:
        """Phase 2's refine passes in order: transfer/1 … transfer/N (its GRPO is transfer/grpo)."""
        return [f"transfer/{i}" for i in range(1, self.profile.transfer_passes + 1)]

    def sweep_stages(self, point: SweepPoint) -> list[str]:
        """A sweep point's chain in order: sweep/<point> (stage 1), then sweep/<point>/refine/1 … /N; the point whose
        knobs and steps are the demo's own is the demo's chain (sft, refine/1 … /N), trained once for both."""
        if self.is_demo_point(point):
            return ["sft", *self.refine_stages()[: self.profile.sweep_passes]]
        first = f"sweep/{point.name}"
        return [first] + [f"{first}/refine/{i}" for i in range(1, self.profile.sweep_passes + 1)]

    def is_demo_point(self, point: SweepPoint) -> bool:
        """The point is the demo's own recipe: its K, λ, head and decoding, stage 1's steps, and no more refine passes
        than the demo always trains (and the demo's chain on the same data: no phase 2)."""
        p = self.profile
        same_recipe = point == DEMO_POINT and point.sketch_decoding == p.sketch_decoding
        same_steps = p.sweep_steps == p.sft_steps and p.sweep_passes <= p.min_refine_passes
        return same_recipe and same_steps and not p.transfer_passes

    def sweep_final(self, point: SweepPoint) -> Path:
        """The model folder of a sweep point's last stage (it exists once the point is trained)."""
        return self.final(self.sweep_stages(point)[-1])

    def sweep_grid(self) -> dict:
        """What every point of this profile's grid was trained with, as the registry records it (`recipe`)."""
        p = self.profile
        lineage = (f"{p.sweep_steps} SFT steps, then {p.sweep_passes} × {p.refine_steps} refine steps from the demo's "
                   f"stage-0 base, the point's K, λ, head and decoding (sketch-world v{GENERATOR_VERSION}, half the "
                   "questions paraphrased), no GRPO")  # fmt: skip
        steps = p.sweep_steps + p.sweep_passes * p.refine_steps
        return {"supervised_steps": steps, "data_version": GENERATOR_VERSION, "lineage": lineage}

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
        """The audited model before its (last) GRPO: the last transfer pass, or the chosen refine pass."""
        passes = self.transfer_stages()
        return self.final(passes[-1]) if passes else self.final("refine")

    def after_grpo(self) -> Path:
        """The model of the last GRPO stage: transfer/grpo, or grpo without a phase 2."""
        return self.final("transfer/grpo" if self.profile.transfer_passes else "grpo")

    def run_dir(self, stage: str) -> Path:
        """A stage's folder; stage 0 (both phases) lies with the profile whose base this one shares."""
        return (self.shared if stage.split("/")[0] == "warmup" else self.base) / stage

    def warmup_stages(self) -> list[str]:
        """Stage 0's phases in order: warmup (the 8×8 families), then warmup/boards (every family) if the profile
        has one."""
        return ["warmup", "warmup/boards"] if self.profile.warmup_board_steps else ["warmup"]

    def stage0(self) -> Path:
        """The stage-0 base every stage 1 starts from (the demo's, its baselines' and the sweep's): the last phase
        of stage 0."""
        return self.final(self.warmup_stages()[-1])

    def final(self, stage: str) -> Path:
        """The model folder of a stage's last checkpoint (it exists once the stage is done). "refine" is the chosen
        pass (before the choice: the last pass every run trains, `min_refine_passes`)."""
        if stage == "refine":
            return self.final(f"refine/{self.chosen_refine_passes() or self.profile.min_refine_passes}")
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
