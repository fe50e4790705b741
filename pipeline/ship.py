"""Copy the trained demo checkpoints into assets/ and write the checkpoint registry (the `ship` stage).

    python -m pipeline.ship [--profile demo]        # after the training and evaluation stages

- first the ship rule (pipeline/ship_rule.py, on the run's validation audits): the new demo replaces the shipped one
  only if its template `auto` is no worse than the shipped one's beyond the 95 % interval and its paraphrased `auto`
  is within 5 points of its template `auto`; otherwise nothing is shipped, the reasons are printed with their numbers,
  and the exit status is 3;
- assets/checkpoints/demo/: the final demo model (GRPO, else the chosen refine pass) in float32 (≤ 25 MB), with a
  latent decoder (analysis/latent_decoder.py) trained against its encoder, and its sketch codebook;
- assets/checkpoints/baselines/{text-cot,direct}/: the equal-compute baselines in float16 (≤ 12 MB), registered as
  baseline/text-cot and baseline/direct with their supervised steps (`recipe`);
- assets/checkpoints/sweep/<point>/: every sweep point trained in the run, in float16 (≤ 12 MB each), merged into the
  registered grid (pipeline/registry.py: earlier points stay, an earlier grid's point goes once one of this grid
  takes its role);
- every shipped folder carries `training_vocabulary.json`: the words of the questions of the data it trained on
  (model/data/vocabulary.py; the app names a question's unseen words);
- assets/checkpoints/registry.json: name, path, K, λ, head, decoding, stage, parent, recipe and audit metrics of
  each, and `sweep_grid` (the grid's recipe, its planned points, the missing ones);
- assets/results/<evaluation>.json: every evaluation's config, summary, sketch quality and per-puzzle record
  (pipeline/paired.py: the report's paired intervals), and timings.json, for pipeline/report.py.

    python -m pipeline.ship --results-only          # after re-running some evaluations (e.g. a baseline's)

copies only the evaluations and timings found in runs/<profile>/ into assets/results/, over the files of the same
name, and leaves every other result file, the checkpoints and the registry as they are. With `--into v6-4200` they go
to assets/results/v6-4200/ instead: the record of a run that was not shipped, beside the shipped demo's audit, which
the report keeps reading.

    python -m pipeline.ship --sweep-only            # whenever sweep points have finished

merges the run's finished sweep points into the registered grid (as the full ship does), copies their evaluations
(sweep-*) and sweep timings, and keeps everything else as shipped.

    python -m pipeline.ship --demo-only             # after re-running `grpo,eval` (or `refine`) alone

the run's final model (with a new latent decoder) replaces the shipped demo and its registry entry, if the ship rule
lets it; the evaluations are copied like `--results-only`, and the shipped sweep and baselines stay.

    python -m pipeline.ship --keep-demo [--profile parallel]    # a model registered beside the demo

the shipped demo model stays (its registry entry takes the run's `test-demo` audit when the run has one); the run's
final model ships beside it in float16 as `demo-<its decoding>` under assets/checkpoints/<its decoding>/, with its
audit `test-<its decoding>`, so that the app can compare the two; baselines the run trained replace the shipped ones.
"""

import argparse
import functools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from model.core.atomic import write_text
from model.data.folders import load_rows
from model.data.vocabulary import save_vocabulary, training_vocabulary
from model.sketchworld.schema import GENERATOR_VERSION
from pipeline import registry
from pipeline.checkpoints import copy_model, sketch_decoding
from pipeline.layout import ASSETS, PREVIOUS_DEMO, PROFILES, RECIPES, ROOT, Runs
from pipeline.paired import per_puzzle_record
from pipeline.ship_rule import decide_run

SIZE_CAPS_MB = {"demo": 25, "sweep": 12, "baseline": 12}
# registry name → (training stage, its audit, the mode its `accuracy` is): the equal-compute baselines, shipped so
# that the comparison can be re-run and shown in the app (float16, under assets/checkpoints/baselines/)
BASELINES = {"baseline/text-cot": ("textonly", "test-textonly", "text-only"),
             "baseline/direct": ("direct", "test-direct", "direct")}  # fmt: skip
# entries a full ship keeps as they are when their folder is there (models trained by an earlier recipe), with their
# results (test-<decoding>*.json)
PRESERVED = ("demo-sequential", "demo-parallel")
RULE_FAILED = 3  # the exit status when the ship rule keeps the shipped demo


def check_caps(entries: list[dict]) -> None:
    for item in entries:
        kind = item["name"].split("/")[0]
        cap = SIZE_CAPS_MB.get(kind, SIZE_CAPS_MB["demo" if item["name"].startswith("demo") else "sweep"])
        if item["size_mb"] > cap:
            raise SystemExit(f"error: {item['path']} is {item['size_mb']:.1f} MB, over the {cap} MB cap")


def copy_results(
    runs: Runs, replace: bool = True, timings: bool = True, prefix: str = "", keep=(), into: str | None = None
) -> list[str]:
    """Copy runs/<profile>/eval/<name>/results.json (with its per-puzzle record) to assets/results/<name>.json and
    (`timings`) the stage timings; only evaluations whose name starts with `prefix` (and the timings of their
    stages). `replace` clears assets/results/ first but for the names in `keep` (a new demo's files must not sit
    beside the old one's), else the copies go over the files of the same name and the run's timings override the
    shipped ones. `into`: a folder under assets/results/ instead (a run kept for the record, not shipped: what the
    report reads stays as it is). Returns the names copied."""
    results = ASSETS / "results" / (into or "")
    if replace and results.exists():
        for old in results.glob("*.json"):
            if old.stem not in keep:
                old.unlink()
    results.mkdir(parents=True, exist_ok=True)
    found = sorted(p for p in (runs.base / "eval").glob(f"{prefix}*") if (p / "results.json").exists())
    for eval_dir in found:
        stored = json.loads((eval_dir / "results.json").read_text())
        stored["per_puzzle"] = per_puzzle_record(eval_dir)
        write_text(results / f"{eval_dir.name}.json", json.dumps(stored, indent=1))
    if timings and runs.timings.exists():
        stages = {k: v for k, v in json.loads(runs.timings.read_text()).items()
                  if not prefix or k.startswith((prefix, f"eval:{prefix}"))}  # fmt: skip
        shipped = results / "timings.json"
        if not replace and shipped.exists():
            stages = {**json.loads(shipped.read_text()), **stages}
        write_text(shipped, json.dumps(stages, indent=1))
    return [p.name for p in found]


@functools.cache
def vocabulary_of(folders: tuple[str, ...]) -> tuple[list[str], int]:
    """(the training vocabulary of these data folders' train splits together, their train rows)."""
    words, rows = set(), 0
    for folder in folders:
        if not Path(folder, "train.parquet").exists():
            raise SystemExit(f"error: {folder}/train.parquet is missing: a shipped checkpoint carries the "
                             "vocabulary of its training data (python -m pipeline.demo --stages data)")  # fmt: skip
        words.update(training_vocabulary(folder))
        rows += len(load_rows(folder, "train"))
    return sorted(words), rows


def ship_vocabulary(folder: Path, runs: Runs) -> None:
    """The vocabulary of what the model in `folder` trained on (stage 0's data and the default families' data) into
    folder/training_vocabulary.json."""
    folders = tuple(sorted({str(runs.early_data), str(runs.data)}))
    words, rows = vocabulary_of(folders)
    save_vocabulary(words, str(folder), ",".join(str(Path(f).relative_to(ROOT)) for f in folders), "train", rows)


def sampling_of(runs: Runs, source: Path) -> dict:
    """The sampler a shipped config.json gets as its default: the one the audit ran with."""
    p, decoding = runs.profile, sketch_decoding(source)
    return dict(sampler=p.sampler, sketch_temperature=p.sketch_temperature,
                refine_passes=RECIPES[decoding].inference_refine_passes if decoding in RECIPES else None)  # fmt: skip


def ship_model(runs: Runs, source: Path, target: Path, dtype=None) -> None:
    """Copy a trained model to `target` with the audit's sampler and its training vocabulary."""
    copy_model(source, target, dtype=dtype, **sampling_of(runs, source))
    ship_vocabulary(target, runs)


def staged(target: Path) -> Path:
    """A fresh folder beside `target` to write into before it is swapped in."""
    folder = target.with_name(f".{target.name}-new")
    if folder.exists():
        shutil.rmtree(folder)
    return folder


def swap_in(folder: Path, target: Path) -> None:
    """Replace `target` by the fully written `folder`."""
    if target.exists():
        shutil.rmtree(target)
    folder.rename(target)


def ship_sweep(runs: Runs, old: list[dict]) -> list[dict]:
    """Every sweep point trained in the run, in float16, into assets/checkpoints/sweep/<point>/, merged into the
    registry's entries `old` (pipeline/registry.py); the folders of dropped points are removed."""
    grid, new, waiting = runs.sweep_grid(), [], []
    for point in runs.profile.sweep:
        source = runs.sweep_final(point)
        if not source.is_dir():
            waiting.append(point.name)
            continue
        target = ASSETS / "checkpoints" / "sweep" / point.name
        folder = staged(target)
        ship_model(runs, source, folder, dtype=torch.float16)
        stage = "refine" if runs.profile.sweep_passes else "sft"
        item = registry.entry(f"sweep/{point.name}", folder, ROOT, stage, "warmup",
                              runs.eval_dir(f"sweep-{point.name}"), recipe=grid)  # fmt: skip
        check_caps([item])
        swap_in(folder, target)
        new.append({**item, "path": str(target.relative_to(ROOT))})
    entries, dropped = registry.merge_sweep(old, new, grid)
    for item in dropped:
        print(f"ship: {item['name']} (an earlier grid's) goes: this grid has a point in its place")
        if (ROOT / item["path"]).is_dir():
            shutil.rmtree(ROOT / item["path"])
    print(f"ship: {len(new)} sweep points shipped: {', '.join(e['name'] for e in new) or 'none'}; not trained in "
          f"{runs.base} yet: {', '.join(waiting) or 'none'}")  # fmt: skip
    return entries


def baseline_recipe(runs: Runs, stage: str) -> dict:
    p, passes = runs.profile, runs.refine_passes() + runs.profile.transfer_passes
    return {"supervised_steps": runs.supervised_steps(), "data_version": GENERATOR_VERSION,
            "lineage": f"the demo's chain on {BASELINE_WORDS[stage]}: {p.sft_steps} SFT steps, then {passes} × "
                       f"{p.refine_steps} refine steps, no GRPO (sketch-world v{GENERATOR_VERSION}, half the "
                       "questions paraphrased); never sketches"}  # fmt: skip


BASELINE_WORDS = {"textonly": "text-only CoT traces (each sketch written out in words)", "direct": "direct answers"}


def ship_baselines(runs: Runs, folder: Path) -> list[dict]:
    """Every baseline the run trained (BASELINES), in float16, into `folder`/<name>/; their registry entries, each
    with its supervised steps (the report's equal-compute line reads them)."""
    entries = []
    for name, (stage, evaluation, mode) in BASELINES.items():
        source = runs.final(runs.baseline_stages(stage)[-1])
        if not source.is_dir():
            print(f"ship: {source} missing, baseline {name} not shipped")
            continue
        target = folder / name.split("/", 1)[1]
        ship_model(runs, source, target, dtype=torch.float16)
        what = f"{mode} SFT ({runs.supervised_steps()} steps, the demo's data; never sketches)"
        entries.append(registry.entry(name, target, ROOT, what, "warmup", runs.eval_dir(evaluation), mode,
                                      recipe=baseline_recipe(runs, stage)))  # fmt: skip
    return entries


def train_latent_decoder(folder: Path) -> None:
    """The latent decoder is trained against the shipped model's own encoder (analysis/latent_decoder.py)."""
    subprocess.run([sys.executable, "-m", "analysis.latent_decoder", "--checkpoint", str(folder), "--images", "2000",
                    "--steps", "1500"], check=True, cwd=ROOT)  # fmt: skip


def final_model(runs: Runs) -> tuple[Path, str]:
    """The model the run would ship as the demo and its stage: the last GRPO's checkpoint, else the model before it
    (the last transfer pass, or the chosen refine pass without a phase 2)."""
    grpo, before = runs.after_grpo(), runs.before_grpo()
    return (grpo, "grpo") if grpo.is_dir() else (before, "refine")


def demo_recipe(runs: Runs) -> dict:
    """What the run's demo was trained with, as its registry entry records it."""
    p, passes = runs.profile, runs.refine_passes()
    return {"supervised_steps": runs.supervised_steps(), "refine_passes": passes, "data_version": GENERATOR_VERSION,
            "lineage": f"{p.sft_steps} SFT steps, then {passes} × {p.refine_steps} refine steps (their number chosen "
                       f"on validation), then {p.grpo_steps} GRPO steps (sketch-world v{GENERATOR_VERSION}, "
                       f"{p.sketch_decoding} sketches, half the questions paraphrased)"}  # fmt: skip


def ship_demo(runs: Runs, target: Path) -> dict:
    """The run's final model, with a latent decoder, into `target`; its registry entry (named "demo")."""
    final, stage = final_model(runs)
    ship_model(runs, final, target)
    train_latent_decoder(target)
    parent = "sft" if stage == "refine" else ("transfer" if runs.profile.transfer_passes else "refine")
    shipped = runs.eval_dir("test-demo")  # the audit with its codebook, as it ships
    audit = shipped if (shipped / "results.json").exists() else runs.eval_dir(f"test-{stage}")
    return registry.entry("demo", target, ROOT, stage, parent, audit, recipe=demo_recipe(runs))


def read_registry() -> dict:
    path = ASSETS / "checkpoints" / "registry.json"
    return json.loads(path.read_text()) if path.exists() else {"checkpoints": []}


def write_registry(entries: list[dict], runs: Runs, before: dict) -> None:
    """The registry: the demo first, then the entries in their order, and the grid's summary (the profile's grid,
    or the one registered before when the profile has none)."""
    entries = sorted(entries, key=lambda e: e["name"] != "demo")
    out = {"checkpoints": entries}
    grid = PROFILES["demo"] if not runs.profile.sweep else runs.profile
    if runs.profile.sweep or "sweep_grid" not in before:
        out["sweep_grid"] = registry.grid_summary(entries, [p.name for p in grid.sweep], Runs(grid).sweep_grid())
    else:
        out["sweep_grid"] = before["sweep_grid"]
    write_text(ASSETS / "checkpoints" / "registry.json", json.dumps(out, indent=1) + "\n")


def rule_allows(runs: Runs, before: dict) -> bool:
    """The ship rule on the run's validation audits (pipeline/ship_rule.py), printed; True when the new demo may
    replace the shipped one."""
    demo = next((e for e in before["checkpoints"] if e["name"] == "demo"), None)
    exists = demo is not None and (ROOT / demo["path"] / "config.json").exists()
    families = sorted(set(demo["metrics"].get("accuracy", {})) - {"overall"}) if exists else None
    try:
        decision = decide_run(runs, families or None, exists)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    print("ship rule (validation):\n  " + "\n  ".join(decision.lines))
    if not decision.ship:
        print("ship: the shipped demo stays; nothing was shipped (python -m pipeline.ship --keep-demo registers the "
              "run's model beside it when it decodes otherwise; --sweep-only ships the grid)")  # fmt: skip
    return decision.ship


def kept_results(entries: list[dict]) -> set[str]:
    """The result files (names) of registered entries a full ship keeps: sweep points not trained again, and the
    preserved models' audits."""
    names = {f"sweep-{e['name'].split('/', 1)[1]}" for e in entries if e["name"].startswith("sweep/")}
    for item in entries:
        if item["name"] in PRESERVED:
            decoding = item["name"].split("-", 1)[1]
            kinds = ("paraphrased", "seen", "held-out-template", "held-out-synonym")
            names |= {f"test-{decoding}", *(f"test-{decoding}-{kind}" for kind in kinds)}
    return names


def ship(runs: Runs) -> int:
    before = read_registry()
    if not rule_allows(runs, before):
        return RULE_FAILED
    checkpoints = ASSETS / "checkpoints"
    old = before["checkpoints"]
    preserved = [e for e in old if e["name"] in PRESERVED and (ROOT / e["path"]).is_dir()]
    sweep = [e for e in old if e["name"].startswith("sweep/") and (ROOT / e["path"]).is_dir()]
    demo = staged(checkpoints / "demo")
    item = ship_demo(runs, demo)
    baselines = ship_baselines(runs, staged(checkpoints / "baselines"))
    check_caps([item, *baselines])  # before anything shipped is touched
    entries = ship_sweep(runs, sweep + preserved)
    copy_results(runs, keep=kept_results(entries))
    swap_in(demo, checkpoints / "demo")
    if baselines:
        swap_in(checkpoints / ".baselines-new", checkpoints / "baselines")
    else:  # the run trained none: the shipped ones stay
        baselines = [e for e in old if e["name"].startswith("baseline/") and (ROOT / e["path"]).is_dir()]
    fixed = [{**e, "path": e["path"].replace(".demo-new", "demo").replace(".baselines-new", "baselines")}
             for e in [item, *baselines]]  # fmt: skip
    write_registry(fixed + entries, runs, before)
    print(f"shipped {len(fixed + entries)} checkpoints; registry: assets/checkpoints/registry.json")
    return 0


def ship_demo_only(runs: Runs) -> int:
    """The `--demo-only` ship: the run's final model replaces the shipped demo (folder and registry entry) if the
    ship rule lets it; the other entries and every result file the run does not have stay as they are."""
    final, _ = final_model(runs)
    if not final.is_dir():
        raise SystemExit(f"error: no final model to ship: neither {runs.after_grpo()} nor {final} exists")
    before = read_registry()
    if not rule_allows(runs, before):
        return RULE_FAILED
    checkpoints = ASSETS / "checkpoints"
    demo = staged(checkpoints / "demo")
    item = ship_demo(runs, demo)
    check_caps([item])
    swap_in(demo, checkpoints / "demo")
    copy_results(runs, replace=False)
    item["path"] = item["path"].replace(".demo-new", "demo")
    write_registry([item, *(e for e in before["checkpoints"] if e["name"] != "demo")], runs, before)
    print(f"shipped the demo ({final}) beside the kept sweep; registry: assets/checkpoints/registry.json")
    return 0


def ship_sweep_only(runs: Runs) -> int:
    """The `--sweep-only` ship: the run's finished sweep points merged into the registered grid; their evaluations
    and timings copied; the demo, the baselines and every other result stay as they are."""
    if not any(runs.sweep_final(point).is_dir() for point in runs.profile.sweep):
        raise SystemExit(f"error: no sweep point trained under {runs.base / 'sweep'} (nor the demo's K = 64 chain)")
    before = read_registry()
    entries = ship_sweep(runs, before["checkpoints"])
    copy_results(runs, replace=False, prefix="sweep")
    write_registry(entries, runs, before)
    print("shipped the sweep points beside the kept demo; registry: assets/checkpoints/registry.json")
    return 0


def ship_beside_demo(runs: Runs) -> int:
    """The `--keep-demo` ship: the shipped demo stays; the run's final model is registered beside it."""
    checkpoints = ASSETS / "checkpoints"
    demo = checkpoints / "demo"
    final, stage = final_model(runs)
    for needed in (demo / "config.json", checkpoints / "registry.json", final / "config.json"):
        if not needed.exists():
            raise SystemExit(f"error: {needed} is missing: --keep-demo needs a shipped demo and the run's final model")
    decoding = sketch_decoding(final)
    if decoding == sketch_decoding(demo):
        raise SystemExit(f"error: the run's model decodes sketches as the shipped demo does ({decoding}); "
                         "ship it as the demo (`--demo-only`) instead")  # fmt: skip
    before = read_registry()
    old = before["checkpoints"]
    kept_demo = next((e for e in old if e["name"] == "demo"), None) or {"name": "demo", "stage": "grpo"}
    audit = runs.eval_dir("test-demo")  # the shipped demo re-audited by this run, when it was
    if (audit / "summary.parquet").exists():
        stage, parent = kept_demo.get("stage", "grpo"), kept_demo.get("parent", "refine")
        kept_demo = {**registry.entry("demo", demo, ROOT, stage, parent, audit), "recipe": kept_demo.get("recipe")}
    if not isinstance(kept_demo.get("recipe"), dict):  # the report's lineage and equal-compute check read it
        kept_demo["recipe"] = dict(PREVIOUS_DEMO)
    target = checkpoints / decoding
    ship_model(runs, final, staged(target), dtype=torch.float16)
    parent = "sft" if stage == "refine" else "refine"
    other = registry.entry(f"demo-{decoding}", target.with_name(f".{decoding}-new"), ROOT, stage, parent,
                           runs.eval_dir(f"test-{decoding}"))  # fmt: skip
    baselines = [] if runs.chosen_refine_passes() is None else ship_baselines(runs, staged(checkpoints / "baselines"))
    check_caps([other, *baselines])
    # the kept demo's other results (its audit without the codebook, before GRPO, its stage timings) stay; the run's
    # evaluations go over those of the same name; the run's stage timings are another model's, not the demo's
    copy_results(runs, replace=False, timings=False)
    swap_in(target.with_name(f".{decoding}-new"), target)
    if baselines:
        swap_in(checkpoints / ".baselines-new", checkpoints / "baselines")
    else:  # the run trained none: the shipped ones stay
        baselines = [e for e in old if e["name"].startswith("baseline/") and (ROOT / e["path"]).is_dir()]
    moved = [{**e, "path": e["path"].replace(f".{decoding}-new", decoding).replace(".baselines-new", "baselines")}
             for e in [other, *baselines]]  # fmt: skip
    rest = [e for e in old if e["name"] not in {"demo", other["name"], *(b["name"] for b in moved)}]
    write_registry([kept_demo, *moved, *rest], runs, before)
    print(f"kept the shipped demo; shipped {final} beside it as demo-{decoding}; registry: {checkpoints}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.ship", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="demo", choices=sorted(PROFILES))
    parser.add_argument("--results-only", action="store_true", help="copy only the evaluations and timings found in "
                        "the run into assets/results/; checkpoints and registry stay as shipped")  # fmt: skip
    parser.add_argument("--sweep-only", action="store_true", help="merge the run's finished sweep points into the "
                        "registered grid (checkpoints, registry entries, evaluations); the rest stays")  # fmt: skip
    parser.add_argument("--demo-only", action="store_true", help="ship the run's final model as the demo (checkpoint, "
                        "latent decoder, registry entry, evaluations) if the ship rule lets it")  # fmt: skip
    parser.add_argument("--keep-demo", action="store_true", help="keep the shipped demo model and ship the run's "
                        "final model beside it as demo-<its decoding>")  # fmt: skip
    parser.add_argument("--into", metavar="FOLDER", help="with --results-only: copy into assets/results/FOLDER/ (the "
                        "record of a run that was not shipped), leaving the shipped results as they are")  # fmt: skip
    args = parser.parse_args(argv)
    if args.into is not None and not args.results_only:
        parser.error("--into goes with --results-only")
    if args.into is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", args.into):  # no "/": stays inside
        parser.error(f"--into {args.into!r}: one folder name (letters, digits, '.', '_', '-')")
    runs = Runs(PROFILES[args.profile], root=ROOT)
    if args.results_only + args.sweep_only + args.demo_only + args.keep_demo > 1:
        parser.error("--results-only, --sweep-only, --demo-only and --keep-demo exclude each other")
    if args.keep_demo:
        return ship_beside_demo(runs)
    if args.sweep_only:
        return ship_sweep_only(runs)
    if args.demo_only:
        return ship_demo_only(runs)
    if args.results_only:
        copied = copy_results(runs, replace=False, into=args.into)
        if not copied:
            raise SystemExit(f"error: no evaluation with a results.json under {runs.base / 'eval'}")
        print(f"ship: copied {', '.join(copied)} into {(ASSETS / 'results' / (args.into or '')).relative_to(ROOT)}")
        return 0
    return ship(runs)


if __name__ == "__main__":
    sys.exit(main())
