"""Write docs/RESULTS.md, the README's headline and assets/figures/ from the stored evaluations: the audit, the
equal-compute baselines, sketch quality, GRPO's effect, the refine passes, the sweep and its claims, the wordings,
the settings chosen on validation, and the targets checked.

    python -m pipeline.report            # after python -m pipeline.ship (assets/results/*.json, the registry)

Reads assets/results/<evaluation>.json (config, summary per mode and family with n and 95 % Wilson intervals,
sketch quality, per-puzzle record), assets/results/timings.json and assets/checkpoints/registry.json (what each
shipped model was trained with: the equal-compute line reads the demo's and the baselines' supervised steps there;
the sweep grid's missing points); rewrites the blocks between `<!-- results:start -->` and `<!-- results:end -->` in
docs/RESULTS.md and `<!-- headline:… -->` in README.md. No number in either is typed by hand. The sweep section is
pipeline/report_sweep.py, the wording section pipeline/report_words.py.
"""

import argparse
import json
import re
import sys

import pandas as pd

from model.generation.modes import mode_names
from pipeline.layout import PROFILES, ROOT
from pipeline.paired import correct_of, paired_difference
from pipeline.report_figures import figures
from pipeline.report_sweep import refine_section, sweep_section
from pipeline.report_words import wording_section, wording_targets
from pipeline.results import RESULTS, SKETCH_FAMILIES, Result, check, mean, num, pct, points, recipe_of

# the sketch families on 8×8 boards (issue 40's accuracy target is theirs; the 16×16 ones are new)
SMALL_BOARD = [f for f in SKETCH_FAMILIES if not f.endswith("16")]
TARGETS = {"describe": 0.98, "oracle": 0.95, "use_mean": 0.40, "use_each": 0.10, "shuffled_mean": 0.10,
           "benefit": 0.10, "cells": 0.95, "spread": 0.5, "erosion": 0.02, "each_family": 0.70}  # fmt: skip
# evaluations on the validation split that chose an inference setting (named choice-<what>)
CHOICES = "choice-"
# the registry names of the baselines and the audits of them the report reads
BASELINE_AUDITS = {"test-textonly": "baseline/text-cot", "test-direct": "baseline/direct"}


def audit_table(result: Result, baselines: dict[str, tuple[Result, str]]) -> str:
    """Accuracy % [95 % interval] per family: every audit mode (in the registry's order), then the baselines' models
    and chance."""
    modes = [m for m in mode_names() if result.get(m) is not None]
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


def number(value) -> float | None:
    """A stored figure as a float; None for a missing one (a model that drew no sketch has no read-back)."""
    return None if value is None or pd.isna(value) else float(value)


def steps_of(result: Result) -> int | None:
    """The supervised steps of an audited baseline: its registry entry's recipe (a baseline's chain ends in a refine
    pass, whose folder name counts that pass only), else the checkpoint folder's."""
    recipe = recipe_of(BASELINE_AUDITS.get(result.name, ""))
    return recipe["supervised_steps"] if recipe and "supervised_steps" in recipe else result.steps


def targets(final: Result, sft: Result, grpo: Result, textonly: Result, direct: Result, describe: dict | None
            ) -> list[str]:  # fmt: skip
    out = []
    if describe:
        out.append(check("stage 0, dense descriptions, cells right (images)", describe.get("cell_accuracy"),
                         TARGETS["describe"]))  # fmt: skip
        sketch = describe.get("as_sketch") or {}
        out.append(check("stage 0, dense descriptions, cells right (shown as sketches)", sketch.get("cell_accuracy"),
                         TARGETS["describe"]))  # fmt: skip
    for family in SMALL_BOARD:
        out.append(check(f"accuracy: auto on {family} (8×8)", final.get("auto", family), TARGETS["each_family"]))
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
        steps = steps_of(other)
        notes = [f"**unequal compute**: it had {steps} SFT steps, this model {ours}"
                 for _ in [0] if steps is not None and steps != ours]  # fmt: skip
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
                         number(quality.loc["overall", "cells_right_drawn"]), TARGETS["cells"]))  # fmt: skip
        ratios = {f: number(quality.loc[f, "spread_ratio"]) for f in SKETCH_FAMILIES if f in quality.index}
        ratios = {f: r for f, r in ratios.items() if r is not None}  # a family that drew no sketch has none
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


def time_line(final: Result, textonly: Result) -> str:
    """Seconds per answer of the demo (auto) beside the text-only-CoT model's, as the audits measured them."""
    ours, theirs = (
        final.get("auto", "overall", "latency_mean_s"),
        textonly.get("text-only", "overall", "latency_mean_s"),
    )
    ratio = f" ({ours / theirs:.2f}×)" if ours and theirs else ""
    return (f"Seconds per answer in the audits (batches of 32, the same machine and test puzzles): the demo in `auto` "
            f"{num(ours, 2)}, the text-only-CoT model {num(theirs, 2)}{ratio}; one answer at a time: "
            "`python benchmarks/bench_decode.py` (docs/RESULTS.md › Performance).")  # fmt: skip


def snap_lines() -> list[str]:
    """Snapping as measured on validation: the shipped model's `auto` with its codebook (validation-demo) and without
    (validation-grpo) on the same puzzles, per family, with the paired difference; [] without both records."""
    snapped, plain = Result("validation-demo").predictions(), Result("validation-grpo").predictions()
    if snapped is None or plain is None:
        return []
    lines = ["| family | auto with the codebook | without | difference, points [95 %] |", "|---|---:|---:|---|"]
    for family in [*sorted(set(snapped["family"])), None]:
        chosen = None if family is None else [family]
        a, b = correct_of(snapped, "auto", chosen), correct_of(plain, "auto", chosen)
        d = paired_difference(a, b)
        if d is not None:
            lines.append(f"| {family or 'overall'} | {pct(a.mean())} | {pct(b.mean())} | {d.text(100.0)} |")
    return ["### Snapping on the validation split", "",
            "The shipped model answering the same validation puzzles with its sketch codebook (drawn latents snap to "
            "the nearest centroid of their slot; a 16×16 board's slot to its nearest 2×2 pattern) and without it. "
            "Snapping ships on; where it costs a family beyond the interval, ship without the codebook.", "",
            "\n".join(lines), ""]  # fmt: skip


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
    """The registry's record of the shipped demo's recipe (supervised steps, lineage), as ship wrote it."""
    return recipe_of("demo")


def supervised_steps() -> int | None:
    """SFT steps of the shipped demo before its last GRPO: its recorded recipe's (None when not recorded)."""
    recipe = shipped_recipe()
    return recipe.get("supervised_steps") if recipe else None


def lineage() -> str:
    """The shipped model's training, in words: its recorded recipe's."""
    recipe = shipped_recipe()
    return recipe["lineage"] if recipe and "lineage" in recipe else "a training not recorded in the registry"


def wall_times(timings: dict) -> list[str]:
    parts = ["### Wall time of each stage (2-core CPU)", "", "| stage | minutes |", "|---|---:|"]
    parts += [f"| {k} | {v / 60:.1f} |" for k, v in timings.items()]
    core = [k for k in timings if k in ("data", "warmup", "sft", "grpo") or k.startswith(("refine", "transfer"))]
    total = sum(timings[k] for k in core) / 60
    chain = "data → stage 0 → SFT → refine → GRPO" + (" → transfer → GRPO" if PROFILES["demo"].transfer_passes else "")
    return parts + [f"| **{chain}** | **{total:.1f}** |", ""]


def beside_sections(others: list[tuple[str, Result]]) -> list[str]:
    parts = []
    for decoding, other in others:
        if other.exists:
            parts += [f"### The {decoding}-sketch model registered beside the demo (`demo-{decoding}`), same split",
                      "", "The same recipe's other decoding, trained by the pipeline and not chosen on validation "
                      "(Settings chosen on the validation split, below); shipped so that the app can compare the two.",
                      "", audit_table(other, {}), ""]  # fmt: skip
    return parts


def results_block() -> str | None:
    shipped, grpo, sft = Result("test-demo"), Result("test-grpo"), Result("test-sft")
    final = shipped if shipped.exists else grpo if grpo.exists else sft
    if not final.exists:
        return None
    textonly, direct = Result("test-textonly"), Result("test-direct")
    timings_path = RESULTS / "timings.json"
    describe_path = RESULTS / "describe.json"
    describe = json.loads(describe_path.read_text()) if describe_path.exists() else None
    n = final.get("auto", final.families()[0], "n") if final.families() else None
    parts = wall_times(json.loads(timings_path.read_text()) if timings_path.exists() else {})
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
              "two baseline columns are separate models trained from the same stage-0 base with the demo's chain "
              "and batch: on text-only CoT traces (decoded text-only, up to 448 new tokens; "
              f"{steps_of(textonly) or '?'} steps) and on direct answers ({steps_of(direct) or '?'} steps); the "
              f"shipped model had {lineage()}.",
              "", audit_table(final, {"text-only-CoT model": (textonly, "text-only"),
                                      "direct-answer model": (direct, "direct")}), "",
              time_line(final, textonly), ""]  # fmt: skip
    if final is shipped and grpo.exists:
        parts += ["### The same model without its codebook (`--snap off`), same split", "",
                  "Each latent the head draws is fed back as drawn (model/core/sketch_codebook.py says what snapping "
                  "does).", "", audit_table(grpo, {}), ""]  # fmt: skip
    if grpo.exists and sft.exists:
        parts += ["### Before the last GRPO (no codebook), same split", "", audit_table(sft, {}), ""]
    others = [(decoding, Result(f"test-{decoding}")) for decoding in ("parallel", "sequential")]
    parts += beside_sections(others)
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
    parts += refine_section() + snap_lines() + sweep_section() + wording_section()
    choices = choice_table()
    if choices:
        parts += ["### Settings chosen on the validation split", "",
                  "Each row one evaluation on validation puzzles (`python -m model.evaluate --split validation`): the "
                  "decoding, the refinement passes run at inference (each trained pass draws the sketch, so fewer "
                  "than trained is a valid setting) and snapping; `use` = auto − noise-latents in points; the time "
                  "is the mean per answer in batches of 32.", "", choices, ""]  # fmt: skip
    parts += ["### The targets, checked", ""]
    parts += targets(final, sft, grpo, textonly, direct, describe) + wording_targets() + [""]
    parts += ["### Figures", ""] + figures(final)
    return "\n".join(parts)


def headline() -> str | None:
    """The README's few lines: the shipped model against its ablations and the text-only-CoT model, overall and
    over the sketch families, and in a held-out wording, with a pointer to the full results."""
    shipped, textonly = Result("test-demo"), Result("test-textonly")
    if not shipped.exists:
        return None
    words = Result("test-demo-held-out-template")
    said = "auto, held-out question templates"
    if not words.exists:  # an audit from before the paraphrase kinds
        words, said = Result("test-demo-paraphrased"), "auto, paraphrased questions"
    lines = [f"| | auto | oracle | noise-latents | text-only-CoT model | {said} |", "|---|---|---|---|---|---|"]
    for label, family in (("overall", "overall"), *((f, f) for f in SKETCH_FAMILIES), ("count", "count")):
        lines.append(f"| {label} | {shipped.cell('auto', family)} | {pct(shipped.get('oracle', family))} | "
                     f"{pct(shipped.get('noise-latents', family))} | {pct(textonly.get('text-only', family))} | "
                     f"{pct(words.get('auto', family))} |")  # fmt: skip
    n = shipped.get("auto", "overall", "n")
    steps, ours = steps_of(textonly), supervised_steps()
    compute = ""
    if steps is not None:
        compute = f" ({steps} SFT steps, as many as the demo's)" if steps == ours else \
            f" ({steps} SFT steps against the demo's {ours or '?'}: not equal compute)"  # fmt: skip
    return (f"The shipped demo on {int(n) if n else '?'} unseen test puzzles per family (accuracy %, 95 % interval "
            "for `auto`): its own sketches, the true sketches, noise in their place, a model of the same size trained "
            f"to write the same states in words{compute}, and the same puzzles asked in a sentence shape training "
            "never showed. The audit, the intervals and the targets: [docs/RESULTS.md](docs/RESULTS.md).\n\n"
            + "\n".join(lines))  # fmt: skip


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
