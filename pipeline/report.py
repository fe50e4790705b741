"""Write docs/RESULTS.md, the README's headline and assets/figures/ from the stored evaluations: the audit, the
baselines, sketch quality, GRPO's effect, the sweep, the settings chosen on validation, and the targets checked.

    python -m pipeline.report            # after python -m pipeline.demo has shipped (assets/results/*.json)

Reads assets/results/<evaluation>.json (config, summary per mode and family with n and 95 % Wilson intervals,
sketch quality), assets/results/timings.json and assets/checkpoints/registry.json; rewrites the blocks between
`<!-- results:start -->` and `<!-- results:end -->` in docs/RESULTS.md and `<!-- headline:… -->` in README.md. No
number in either is typed by hand.
"""

import argparse
import json
import random
import re
import sys

import pandas as pd

from model.sketchworld import DEFAULT_FAMILIES, generate_instance
from pipeline.claims import check_claims, claims_table
from pipeline.layout import ASSETS, PROFILES, ROOT, SWEEP
from pipeline.report_figures import figures

RESULTS = ASSETS / "results"
AUDIT = ["auto", "oracle", "noise-latents", "zero-latents", "shuffled-latents", "text-only", "direct"]
# the default families whose traces draw sketches (all but count), in the dataset's order
SKETCH_FAMILIES = [f for f in DEFAULT_FAMILIES if generate_instance(f, random.Random(0)).num_sketches]
TARGETS = {"describe": 0.98, "oracle": 0.90, "use_mean": 0.40, "use_each": 0.10, "shuffled_mean": 0.10,
           "benefit": 0.10, "cells": 0.97, "spread": 0.5, "erosion": 0.02, "each_family": 0.85, "count": 0.60,
           "paraphrase_gap": 0.05}  # fmt: skip
# evaluations on the validation split that chose an inference setting (named choice-<what>)
CHOICES = "choice-"


class Result:
    """One stored evaluation: accuracy (and interval, n, …) by (mode, family), and its sketch quality."""

    def __init__(self, name: str):
        path = RESULTS / f"{name}.json"
        self.name, self.exists = name, path.exists()
        data = json.loads(path.read_text()) if self.exists else {"summary": [], "config": {}}
        self.config = data["config"]
        self.summary = pd.DataFrame(data["summary"])
        self.quality = pd.DataFrame(data.get("quality") or [])

    def get(self, mode: str, family: str = "overall", column: str = "accuracy"):
        if self.summary.empty:
            return None
        rows = self.summary[(self.summary["mode"] == mode) & (self.summary["family"] == family)]
        return None if rows.empty or pd.isna(rows.iloc[0][column]) else float(rows.iloc[0][column])

    def cell(self, mode: str, family: str) -> str:
        acc = self.get(mode, family)
        if acc is None:
            return "–"
        low, high = self.get(mode, family, "ci_low"), self.get(mode, family, "ci_high")
        return f"{pct(acc)} [{pct(low)}–{pct(high)}]" if low is not None else pct(acc)

    @property
    def steps(self) -> int | None:
        """The training steps of the evaluated checkpoint, read from its folder name (checkpoint-NNNNNN)."""
        found = re.search(r"checkpoint-(\d+)", str(self.config.get("checkpoint", "")))
        return int(found.group(1)) if found else None

    def families(self) -> list[str]:
        return [] if self.summary.empty else sorted(set(self.summary["family"]) - {"overall"})

    def margin(self, mode: str, other: str, family: str):
        a, b = self.get(mode, family), self.get(other, family)
        return None if a is None or b is None else a - b


def pct(x) -> str:
    return "–" if x is None or pd.isna(x) else f"{100 * x:.1f}"


def num(x, digits: int = 3) -> str:
    return "–" if x is None or pd.isna(x) else f"{x:.{digits}f}"


def points(x) -> str:
    return "–" if x is None else f"{100 * x:+.1f}"


def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def audit_table(result: Result, baselines: dict[str, tuple[Result, str]]) -> str:
    """Accuracy % [95 % interval] per family: every audit mode, then the baselines' models and chance."""
    modes = [m for m in AUDIT if result.get(m) is not None]
    head = modes + list(baselines) + ["majority", "random"]
    lines = ["| family | n | " + " | ".join(head) + " |", "|---|---:|" + "---|" * len(head)]
    for family in result.families() + ["overall"]:
        n = result.get("auto", family, "n")
        cells = [result.cell(m, family) for m in modes]
        cells += [other.cell(mode, family) for other, mode in baselines.values()]
        cells += [pct(result.get(b, family)) for b in ("majority", "random")]
        lines.append(f"| {family} | {int(n) if n else '–'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def use_table(results: dict[str, Result]) -> str:
    """auto − noise / zero / shuffled per sketch family, in points, for each named result."""
    lines = ["| model | family | auto − noise | auto − zero | auto − shuffled | oracle − auto |",
             "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for name, r in results.items():
        for family in SKETCH_FAMILIES + ["mean of sketch families"]:
            if family.startswith("mean"):
                cells = [mean([r.margin("auto", o, f) for f in SKETCH_FAMILIES]) for o in
                         ("noise-latents", "zero-latents", "shuffled-latents")]  # fmt: skip
                cells.append(mean([r.margin("oracle", "auto", f) for f in SKETCH_FAMILIES]))
            else:
                cells = [r.margin("auto", o, family) for o in ("noise-latents", "zero-latents", "shuffled-latents")]
                cells.append(r.margin("oracle", "auto", family))
            lines.append(f"| {name} | {family} | " + " | ".join(points(c) for c in cells) + " |")
    return "\n".join(lines)


def quality_table(results: dict[str, Result]) -> str:
    lines = ["| model | family | sketches | cells right, drawn | cells right, true (ceiling) | spread drawn | "
             "spread true | ratio |", "|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, r in results.items():
        for row in r.quality.itertuples():
            lines.append(f"| {name} | {row.family} | {row.drawn} | {pct(row.cells_right_drawn)} | "
                         f"{pct(row.cells_right_true)} | {num(row.spread_drawn)} | {num(row.spread_true)} | "
                         f"{num(row.spread_ratio, 2)} |")  # fmt: skip
    return "\n".join(lines)


def grpo_table(before: Result, after: Result, before_sampled: Result, after_sampled: Result) -> str:
    lines = ["| family | reward (T = 1) SFT → GRPO | START rate (T = 1) SFT → GRPO | auto (greedy) SFT → GRPO | "
             "auto − noise SFT → GRPO |", "|---|---|---|---|---|"]  # fmt: skip
    for family in before.families() + ["overall"]:
        reward = f"{pct(before_sampled.get('auto', family))} → {pct(after_sampled.get('auto', family))}"
        start = (f"{pct(before_sampled.get('auto', family, 'start_rate'))} → "
                 f"{pct(after_sampled.get('auto', family, 'start_rate'))}")  # fmt: skip
        greedy = f"{pct(before.get('auto', family))} → {pct(after.get('auto', family))}"
        use = f"{points(before.margin('auto', 'noise-latents', family))} → "
        use += points(after.margin("auto", "noise-latents", family))
        lines.append(f"| {family} | {reward} | {start} | {greedy} | {use} |")
    return "\n".join(lines)


def sweep_table() -> str:
    lines = ["| point | K | λ | head | decoding | auto % [95 %] | oracle % | sketch families: auto | sketch families: "
             "auto − noise | seconds / answer |", "|---|---:|---:|---|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for point in SWEEP:
        r = Result(f"sweep-{point.name}")
        if not r.exists:
            continue
        auto = mean([r.get("auto", f) for f in SKETCH_FAMILIES])
        use = mean([r.margin("auto", "noise-latents", f) for f in SKETCH_FAMILIES])
        lines.append(f"| {point.name} | {point.latent_budget} | {point.diffusion_loss_weight:g} | {point.head_type} | "
                     f"{r.config.get('sketch_decoding', 'sequential')} | {r.cell('auto', 'overall')} | "
                     f"{pct(r.get('oracle'))} | {pct(auto)} | {points(use)} | "
                     f"{num(r.get('auto', 'overall', 'latency_mean_s'), 2)} |")  # fmt: skip
    return "\n".join(lines)


def sweep_recipe(result: Result) -> str:
    """What a sweep point's evaluated checkpoint was trained with, read from its folder: stage 1 alone
    (sweep/<point>/checkpoint-N) or stage 1 then refine passes (sweep/<point>/refine/<i>/checkpoint-N)."""
    found = re.search(r"/refine/(\d+)/checkpoint-(\d+)", str(result.config.get("checkpoint", "")))
    profile = PROFILES["demo"]
    if not found:
        return f"{result.steps or '?'} steps of the demo's stage-1 recipe (`sft_demo.yaml`), no refine passes"
    passes, steps = int(found.group(1)), int(found.group(2))
    plural = "pass" if passes == 1 else "passes"
    return (
        f"{profile.sweep_steps} steps of the demo's stage-1 recipe (`sft_demo.yaml`), then {passes} refine "
        f"{plural} of {steps} steps (`sft_refine_demo.yaml`): {profile.sweep_steps + passes * steps} steps in all"
    )


def check(label: str, value, target: float, at_least: bool = True) -> str:
    if value is None:
        return f"- {label}: not measured (target {pct(target)})."
    slack = 1e-9  # accuracies are shares of n: 0.59 - 0.49 is 10 points, not 9.999…
    met = value >= target - slack if at_least else value <= target + slack
    sign = "≥" if at_least else "≤"
    return f"- {'met' if met else '**not met**'} — {label}: {pct(value)} (target {sign} {pct(target)})."


def targets(final: Result, sft: Result, grpo: Result, textonly: Result, direct: Result, describe: dict | None
            ) -> list[str]:  # fmt: skip
    out = []
    if describe:
        out.append(check("stage 0, dense descriptions, cells right (images)", describe.get("cell_accuracy"),
                         TARGETS["describe"]))  # fmt: skip
        sketch = describe.get("as_sketch") or {}
        out.append(check("stage 0, dense descriptions, cells right (shown as sketches)", sketch.get("cell_accuracy"),
                         TARGETS["describe"]))  # fmt: skip
    for family in SKETCH_FAMILIES:
        out.append(check(f"reading: oracle on {family}", final.get("oracle", family), TARGETS["oracle"]))
    use = [final.margin("auto", "noise-latents", f) for f in SKETCH_FAMILIES]
    out.append(check("use: auto − noise-latents, mean over sketch families", mean(use), TARGETS["use_mean"]))
    for family, value in zip(SKETCH_FAMILIES, use):
        out.append(check(f"use: auto − noise-latents on {family}", value, TARGETS["use_each"]))
    shuffled = mean([final.margin("auto", "shuffled-latents", f) for f in SKETCH_FAMILIES])
    out.append(check("use: auto − shuffled-latents, mean over sketch families", shuffled, TARGETS["shuffled_mean"]))
    baselines = (("text-only-CoT model", textonly, "text-only"), ("direct-answer model", direct, "direct"))
    ours = supervised_steps()
    for name, other, mode in baselines:
        # the same families on both sides: a baseline evaluated on other families is compared where both were
        common = [f for f in SKETCH_FAMILIES if final.get("auto", f) is not None and other.get(mode, f) is not None]
        notes = [f"**unequal compute**: it had {other.steps} SFT steps, this model {ours}"
                 for _ in [0] if other.steps is not None and other.steps != ours]  # fmt: skip
        missing = [f for f in SKETCH_FAMILIES if f not in common]
        if common and missing:
            notes.append(f"**{', '.join(missing)} not measured** for it: over {', '.join(common)} only")
        benefit = mean([final.get("auto", f) - other.get(mode, f) for f in common]) if common else None
        line = check(f"benefit: auto − the {name}, mean over sketch families", benefit, TARGETS["benefit"])
        if notes and benefit is not None:  # a margin, but not the comparison the target asks for
            line = f"- **not checked** ({'; '.join(notes)}) — {line.split(' — ', 1)[1]}"
        out.append(line)
    quality = final.quality.set_index("family") if not final.quality.empty else None
    if quality is not None and "overall" in quality.index:
        out.append(check("quality: cells read back right from drawn sketches (all sketch families)",
                         float(quality.loc["overall", "cells_right_drawn"]), TARGETS["cells"]))  # fmt: skip
        ratios = {f: float(quality.loc[f, "spread_ratio"]) for f in SKETCH_FAMILIES if f in quality.index}
        worst = min(ratios, key=ratios.get) if ratios else None
        out.append(check(f"no collapse: spread of drawn / true sketches, lowest family ({worst})",
                         ratios.get(worst), TARGETS["spread"]))  # fmt: skip
    # GRPO trained without the codebook: its effect is measured on the GRPO model as trained (no snapping)
    before = mean([sft.margin("auto", "noise-latents", f) for f in SKETCH_FAMILIES])
    after = mean([grpo.margin("auto", "noise-latents", f) for f in SKETCH_FAMILIES])
    if before is not None and after is not None:
        out.append(check("GRPO keeps use: (auto − noise after GRPO) − (before), mean over sketch families, both "
                         "without the codebook", after - before, -TARGETS["erosion"]))  # fmt: skip
    return out


def accuracy_targets(final: Result, paraphrased: Result) -> list[str]:
    """The one-pass-sketches issue's accuracy targets: every sketch family, count, and questions in other words."""
    out = [check(f"accuracy: auto on {family}", final.get("auto", family), TARGETS["each_family"])
           for family in SKETCH_FAMILIES]  # fmt: skip
    out.append(check("accuracy: count (answered from the picture, no sketch)", final.get("auto", "count"),
                     TARGETS["count"]))  # fmt: skip
    template, other = final.get("auto"), paraphrased.get("auto")
    gap = None if template is None or other is None else abs(template - other)
    out.append(check("words: |auto on template questions − auto on paraphrased ones|, all families", gap,
                     TARGETS["paraphrase_gap"], at_least=False))  # fmt: skip
    return out


def paraphrase_table(rows: list[tuple[str, Result, Result, str]]) -> str:
    """Accuracy % [95 %] per family on the template questions and on the same puzzles reworded."""
    lines = ["| model | family | template wording | paraphrased | difference |", "|---|---|---|---|---:|"]
    for name, template, paraphrased, mode in rows:
        for family in template.families() + ["overall"]:
            a, b = template.get(mode, family), paraphrased.get(mode, family)
            diff = None if a is None or b is None else b - a
            lines.append(f"| {name} | {family} | {template.cell(mode, family)} | {paraphrased.cell(mode, family)} | "
                         f"{points(diff)} |")  # fmt: skip
    return "\n".join(lines)


def choice_table() -> str | None:
    """Every stored choice-* evaluation (validation split): what it ran and its auto / oracle / noise accuracy over
    the sketch families, and count's; None when there is none."""
    found = sorted(RESULTS.glob(f"{CHOICES}*.json"))
    if not found:
        return None
    lines = ["| evaluation | checkpoint | decoding | refinement passes | snap | n/family | auto (sketch families) | "
             "use | oracle | count | seconds / answer |",
             "|---|---|---|---:|---|---:|---|---:|---:|---:|---:|"]  # fmt: skip
    for path in found:
        r = Result(path.stem)
        c = r.config
        auto = mean([r.get("auto", f) for f in SKETCH_FAMILIES])
        use = mean([r.margin("auto", "noise-latents", f) for f in SKETCH_FAMILIES])
        oracle = mean([r.get("oracle", f) for f in SKETCH_FAMILIES])
        n = r.get("auto", SKETCH_FAMILIES[0], "n")
        lines.append(f"| {path.stem} | {c.get('checkpoint', '?')} | {c.get('sketch_decoding', 'sequential')} | "
                     f"{c.get('sketch_refine_passes', 0)} | {'on' if c.get('sketch_snap') else 'off'} | "
                     f"{int(n) if n else '–'} | {pct(auto)} | {points(use)} | {pct(oracle)} | "
                     f"{pct(r.get('auto', 'count'))} | {num(r.get('auto', 'overall', 'latency_mean_s'), 2)} |"
                     )  # fmt: skip
    return "\n".join(lines)


def shipped_recipe() -> dict | None:
    """The registry's record of the shipped demo's own recipe when it is not the profile's (`ship --keep-demo`)."""
    registry = RESULTS.parent / "checkpoints" / "registry.json"  # beside the results the report reads
    if not registry.exists():
        return None
    demo = next((e for e in json.loads(registry.read_text())["checkpoints"] if e["name"] == "demo"), {})
    return demo.get("recipe") if isinstance(demo.get("recipe"), dict) else None


def supervised_steps() -> int:
    """SFT steps of the shipped demo before its last GRPO: its recorded recipe's, else the demo profile's."""
    recipe = shipped_recipe()
    return recipe["supervised_steps"] if recipe else PROFILES["demo"].supervised_steps


def lineage() -> str:
    """The shipped model's training, in words: its recorded recipe's, else from the demo profile."""
    recipe = shipped_recipe()
    if recipe:
        return recipe["lineage"]
    p = PROFILES["demo"]
    said = f"{p.sft_steps} SFT steps, then {p.refine_passes} × {p.refine_steps} refine steps"
    if p.transfer_passes:
        said += (f" and {p.grpo_steps} GRPO steps on the early families (tilt in sink's place), then "
                 f"{p.transfer_passes} × {p.refine_steps} refine steps on these families (`transfer`) and "
                 f"{p.grpo_steps} GRPO steps again")  # fmt: skip
    return said


def results_block() -> str | None:
    shipped, grpo, sft = Result("test-demo"), Result("test-grpo"), Result("test-sft")
    final = shipped if shipped.exists else grpo if grpo.exists else sft
    if not final.exists:
        return None
    textonly, direct = Result("test-textonly"), Result("test-direct")
    timings_path = RESULTS / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    describe_path = RESULTS / "describe.json"
    describe = json.loads(describe_path.read_text()) if describe_path.exists() else None
    n = final.get("auto", final.families()[0], "n") if final.families() else None
    parts = ["### Wall time of each stage (2-core CPU)", "", "| stage | minutes |", "|---|---:|"]
    parts += [f"| {k} | {v / 60:.1f} |" for k, v in timings.items()]
    core = [k for k in timings if k in ("data", "warmup", "sft", "grpo") or k.startswith(("refine", "transfer"))]
    total = sum(timings[k] for k in core) / 60
    chain = "data → stage 0 → SFT → refine → GRPO" + (" → transfer → GRPO" if PROFILES["demo"].transfer_passes else "")
    parts += [f"| **{chain}** | **{total:.1f}** |", ""]
    if describe:
        per = ", ".join(f"{f} {pct(v)}" for f, v in sorted(describe["per_family"].items()))
        sketch = describe.get("as_sketch", {})
        parts += [f"Stage-0 check (`python -m model.evaluation.describe`, {describe['images']} validation pictures): "
                  f"greedy dense descriptions get **{pct(describe['cell_accuracy'])} %** of the cells right "
                  f"({per}); shown as sketches (true latents, no picture) **{pct(sketch.get('cell_accuracy'))} %**.",
                  ""]  # fmt: skip
    what = "GRPO, drawn latents snapped to its codebook" if final is shipped else "GRPO" if final is grpo else "SFT"
    parts += [f"### The audit: the shipped model ({what}), test split",
              "",
              f"{int(n) if n else '?'} unseen puzzles per family, greedy, accuracy % with its 95 % Wilson interval. "
              "`auto`: the model's own sketches; `oracle`: the true sketches (the reasoning images through the "
              "frozen encoder); `noise-latents` / `zero-latents`: every latent replaced by Gaussian noise with the "
              "targets' statistics / by zeros; `shuffled-latents`: the sketches the model drew for another puzzle "
              "of the same family; `text-only`: this model with ⟨START⟩ banned; `direct`: answering at once. The "
              "two baseline columns are separate models trained from stage 0 re-run with the same recipe and seed, "
              "with the batch of SFT: "
              f"on text-only CoT traces (decoded text-only; {textonly.steps or '?'} steps) and on direct answers "
              f"({direct.steps or '?'} steps); the shipped model had {lineage()}.",
              "", audit_table(final, {"text-only-CoT model": (textonly, "text-only"),
                                      "direct-answer model": (direct, "direct")}), ""]  # fmt: skip
    if final is shipped and grpo.exists:
        parts += ["### The same model without its codebook (`--snap off`), same split", "",
                  "Each latent the head draws is fed back as drawn (model/core/sketch_codebook.py says what snapping "
                  "does).", "", audit_table(grpo, {}), ""]  # fmt: skip
    if grpo.exists and sft.exists:
        parts += ["### Before the last GRPO (no codebook), same split", "", audit_table(sft, {}), ""]
    others = [(decoding, Result(f"test-{decoding}")) for decoding in ("parallel", "sequential")]
    for decoding, other in others:
        if other.exists:
            parts += [f"### The {decoding}-sketch model registered beside the demo (`demo-{decoding}`), same split",
                      "", "The same recipe's other decoding, trained by the pipeline and not chosen on validation "
                      "(Settings chosen on the validation split, below); shipped so that the app can compare the two.",
                      "", audit_table(other, {}), ""]  # fmt: skip
    compared = (("shipped (snapped)", shipped), ("GRPO", grpo), ("SFT", sft), *((f"demo-{d}", o) for d, o in others))
    parts += ["### Do the answers use the sketches?", "", "Differences in accuracy points, test split.", "",
              use_table({k: v for k, v in compared if v.exists}), ""]  # fmt: skip
    if not final.quality.empty:
        parts += ["### Sketch quality", "",
                  "Cells read back right by a probe (one logistic regression per cell of a pooled token) fitted on "
                  "the true sketch targets of validation puzzles, applied to the sketches drawn in `auto` and to "
                  "the true ones (the ceiling of the target space); spread = 1 − mean pairwise cosine of the "
                  "standardised sketches of one family (0 = every sketch the same).", "",
                  quality_table({"final": final}), ""]  # fmt: skip
    names = ("validation-sft", "validation-grpo", "validation-sft-sampled", "validation-grpo-sampled")
    vals = [Result(n) for n in names]
    if all(v.exists for v in vals):
        parts += ["### GRPO's effect (validation split)", "",
                  "Reward = accuracy of answers sampled at temperature 1, as in the rollouts; START rate of those "
                  "answers; greedy accuracy; use (auto − noise-latents), in points.", "",
                  grpo_table(*vals), ""]  # fmt: skip
    sweep = sweep_table()
    if sweep.count("\n") > 1:
        first = Result(f"sweep-{SWEEP[0].name}")
        older = sorted(set(first.families()) - set(final.families()))
        parts += ["### The sweep: K, λ and the head", ""]
        if older:  # the grid was trained on an earlier family list than the shipped model's
            parts += [f"**Not yet re-run on the shipped model's families**: these points were trained and audited "
                      f"on data with {', '.join(older)} (the previous dataset), so their sketch-family columns "
                      "are not comparable with the audit above.", ""]  # fmt: skip
        parts += [f"Each point is trained from the same stage-0 base by {sweep_recipe(first)}, with the point's K, "
                  f"λ, head and decoding; no GRPO ({first.config.get('num_examples', '?')} test puzzles each, "
                  f"audited on {first.config.get('device', '?')}).", "",
                  sweep, ""]  # fmt: skip
        rows = check_claims({p.name: Result(f"sweep-{p.name}") for p in SWEEP})
        parts += ["#### The paper's claims, checked on this grid", "",
                  "`auto` accuracy over the named families, each point's 95 % interval; holds / does not hold: the "
                  "intervals do not overlap, in the claimed direction / the other; within noise: they overlap "
                  "(pipeline/claims.py).", "", claims_table(rows), ""]  # fmt: skip
    paraphrased, textonly_words = Result("test-demo-paraphrased"), Result("test-textonly-paraphrased")
    if paraphrased.exists:
        rows = [("shipped", final, paraphrased, "auto")]
        rows += [("text-only-CoT model", textonly, textonly_words, "text-only")] if textonly_words.exists else []
        for decoding, other in others:  # the model registered beside the demo, asked the same way
            if other.exists and Result(f"test-{decoding}-paraphrased").exists:
                rows.append((f"demo-{decoding}", other, Result(f"test-{decoding}-paraphrased"), "auto"))
        parts += ["### Asked in other words (test split)", "",
                  "The same puzzles, each question in its paraphrased wording (sketch-world's "
                  "`paraphrased_question`: one of the family's other wordings; some never shown in training), "
                  "against the template wording the audit above uses.", "", paraphrase_table(rows), ""]  # fmt: skip
    choices = choice_table()
    if choices:
        parts += ["### Settings chosen on the validation split", "",
                  "Each row one evaluation on validation puzzles (`python -m model.evaluate --split validation`): the "
                  "decoding, the refinement passes run at inference (each trained pass draws the sketch, so fewer "
                  "than trained is a valid setting) and snapping; `use` = auto − noise-latents in points; the time "
                  "is the mean per answer in batches of 32.", "", choices, ""]  # fmt: skip
    parts += ["### The targets, checked", ""]
    parts += targets(final, sft, grpo, textonly, direct, describe) + accuracy_targets(final, paraphrased) + [""]
    parts += ["### Figures", ""] + figures(final)
    return "\n".join(parts)


def headline() -> str | None:
    """The README's few lines: the shipped model against its ablations and the text-only-CoT model, overall and
    over the sketch families, with a pointer to the full results."""
    shipped, textonly, words = Result("test-demo"), Result("test-textonly"), Result("test-demo-paraphrased")
    if not shipped.exists:
        return None
    lines = ["| | auto | oracle | noise-latents | text-only-CoT model | auto, paraphrased questions |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for label, family in (("overall", "overall"), *((f, f) for f in SKETCH_FAMILIES), ("count", "count")):
        lines.append(f"| {label} | {shipped.cell('auto', family)} | {pct(shipped.get('oracle', family))} | "
                     f"{pct(shipped.get('noise-latents', family))} | {pct(textonly.get('text-only', family))} | "
                     f"{pct(words.get('auto', family))} |")  # fmt: skip
    n = shipped.get("auto", "overall", "n")
    steps, ours = textonly.steps, supervised_steps()
    compute = ""
    if steps is not None:
        compute = f" ({steps} SFT steps, as many as the demo's)" if steps == ours else \
            f" ({steps} SFT steps against the demo's {ours}: not equal compute)"  # fmt: skip
    return (f"The shipped demo on {int(n) if n else '?'} unseen test puzzles (accuracy %, 95 % interval for `auto`): "
            "its own sketches, the true sketches, noise in their place, and a model of the same size trained to write "
            f"the same states in words{compute}. The audit, the intervals and the targets: "
            "[docs/RESULTS.md](docs/RESULTS.md).\n\n" + "\n".join(lines))  # fmt: skip


def replace_block(path, name: str, content: str) -> bool:
    """Write `content` between `<!-- name:start -->` and `<!-- name:end -->` in `path`; False when it has none."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text()
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        print(f"error: {path.name} has no {start} … {end} block", file=sys.stderr)
        return False
    path.write_text(pattern.sub(lambda _: f"{start}\n{content}\n{end}", text))
    return True


def main(argv=None) -> int:
    argparse.ArgumentParser(prog="python -m pipeline.report", description=__doc__.split("\n\n")[0]).parse_args(argv)
    block = results_block()
    if block is None:
        print("error: assets/results/test-grpo.json or test-sft.json is missing; run python -m pipeline.demo "
              "first", file=sys.stderr)  # fmt: skip
        return 2
    if not replace_block(ROOT / "docs" / "RESULTS.md", "results", block):
        return 2
    top = headline()
    if top is not None and not replace_block(ROOT / "README.md", "headline", top):
        return 2
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
