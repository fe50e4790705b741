"""Copy the trained demo checkpoints into assets/ and write the checkpoint registry (the `ship` stage).

    python -m pipeline.ship [--profile demo]        # after the training and evaluation stages

- assets/checkpoints/demo/: the final demo model (GRPO, else SFT) in float32 (≤ 25 MB), with a latent decoder
  (analysis/latent_decoder.py) trained against its encoder;
- assets/checkpoints/sweep/<point>/: every model of the sweep grid in float16 (≤ 12 MB each);
- assets/checkpoints/registry.json: name, path, K, λ, head, stage, parent and audit metrics of each;
- assets/results/<evaluation>.json: every evaluation's config, summary and sketch quality, and timings.json, for
  pipeline/report.py.

    python -m pipeline.ship --results-only          # after re-running some evaluations (e.g. a baseline's)

copies only the evaluations and timings found in runs/<profile>/ into assets/results/, over the files of the same
name, and leaves every other result file, the checkpoints and the registry as they are.

    python -m pipeline.ship --sweep-only            # after `--stages warmup,sweep` alone

replaces the shipped sweep grid and its registry entries with the run's, copies the evaluations like
`--results-only`, and keeps the shipped demo model and its registry entry.

    python -m pipeline.ship --demo-only             # after re-running `grpo,eval` (or `refine`) alone

the other way round: the run's final model (with a new latent decoder) replaces the shipped demo and its registry
entry, the evaluations are copied like `--results-only`, and the shipped sweep stays.

    python -m pipeline.ship --keep-demo             # when the shipped demo won on validation against the run's model

the shipped demo model stays (its registry entry takes the run's `test-demo` audit, which must have been run on it,
e.g. `python -m model.evaluate --checkpoint assets/checkpoints/demo ... --out runs/demo/eval/test-demo`); the run's
final model ships beside it in float16 as `demo-<its decoding>` under assets/checkpoints/<its decoding>/, with its
audit `test-<its decoding>`, so that the app can compare the two; the baselines and the results as the full ship,
the sweep as shipped.
"""

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch

from model.core.atomic import write_text
from model.generation.modes import MODES
from pipeline.checkpoints import copy_model, sketch_decoding
from pipeline.layout import ASSETS, PREVIOUS_DEMO, PROFILES, ROOT, Runs

SIZE_CAPS_MB = {"demo": 25, "sweep": 12, "baseline": 12}
# registry name → (training stage, its audit, the mode its `accuracy` is): models shipped so that the comparison can
# be re-run and shown in the app (float16, under assets/checkpoints/baselines/)
BASELINES = {"baseline/text-cot": ("textonly", "test-textonly", "text-only")}
# entries a new ship keeps as they are when their folder is there (a model trained by an earlier recipe)
PRESERVED = ("demo-sequential",)
METRIC_MODES = MODES


def size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def registry_metrics(eval_dir: Path, main_mode: str = "auto") -> dict:
    """`accuracy` (of `main_mode`: auto, or text-only for the text-only-CoT baseline) and `accuracy_<mode>` per
    family, with `ci_low`/`ci_high` of it, and its latency, START rate and sketches per answer (analysis/sweeps.py and
    the app's Sweeps tab read these)."""
    summary = pd.read_parquet(eval_dir / "summary.parquet")
    out: dict = {}
    for row in summary.itertuples():
        if row.mode not in METRIC_MODES:
            continue
        key = "accuracy" if row.mode == main_mode else f"accuracy_{row.mode.replace('-', '_')}"
        out.setdefault(key, {})[row.family] = round(float(row.accuracy), 4)
        if row.mode == main_mode:
            out.setdefault("ci_low", {})[row.family] = round(float(row.ci_low), 4)
            out.setdefault("ci_high", {})[row.family] = round(float(row.ci_high), 4)
            if row.family == "overall":
                out["latency_s"] = round(float(row.latency_mean_s), 4)
                out["start_rate"] = round(float(row.start_rate), 4)
                out["sketches_per_answer"] = round(float(row.sketches_per_answer), 4)
    return out


def use_metrics(eval_dir: Path) -> dict:
    """`use` = auto − noise-latents per family and overall, with a 95 % interval for the paired difference (the same
    puzzles in both modes: mean of per-puzzle differences ± 1.96 standard errors); {} without both modes."""
    path = eval_dir / "predictions.parquet"
    if not path.exists():
        return {}
    predictions = pd.read_parquet(path, columns=["id", "family", "mode", "correct"])
    wide = predictions.pivot_table(index=["id", "family"], columns="mode", values="correct", aggfunc="first")
    if not {"auto", "noise-latents"} <= set(wide.columns):
        return {}
    wide = wide.dropna(subset=["auto", "noise-latents"]).reset_index()
    wide["diff"] = wide["auto"].astype(float) - wide["noise-latents"].astype(float)
    out: dict = {"use": {}, "use_ci_low": {}, "use_ci_high": {}}
    for family, diffs in [*wide.groupby("family")["diff"], ("overall", wide["diff"])]:
        mean, half = float(diffs.mean()), 1.96 * float(diffs.std(ddof=1) / len(diffs) ** 0.5) if len(diffs) > 1 else 0
        out["use"][family] = round(mean, 4)
        out["use_ci_low"][family], out["use_ci_high"][family] = round(mean - half, 4), round(mean + half, 4)
    return out


def entry(name: str, folder: Path, stage: str, parent: str, eval_dir: Path, main_mode: str = "auto") -> dict:
    config = json.loads((folder / "config.json").read_text())
    return {
        "name": name,
        "path": str(folder.relative_to(ROOT)),
        "latent_budget": config["latent_budget"],
        "diffusion_loss_weight": config["diffusion_loss_weight"],
        "head_type": config.get("head_type", "diffusion"),
        "sketch_decoding": sketch_decoding(folder),
        "stage": stage,
        "parent": parent,
        "size_mb": round(size_mb(folder), 2),
        "metrics": {**registry_metrics(eval_dir, main_mode), **use_metrics(eval_dir)}
        if (eval_dir / "summary.parquet").exists()
        else {},
    }


def copy_results(runs: Runs, replace: bool = True, timings: bool = True) -> list[str]:
    """Copy runs/<profile>/eval/<name>/results.json to assets/results/<name>.json and (`timings`) the stage timings;
    `replace` clears assets/results/ first (a new demo's files must not sit beside the old one's), else the copies go
    over the files of the same name, and the timings of stages found in the run override the shipped ones. Returns
    the names copied."""
    results = ASSETS / "results"
    if replace and results.exists():
        shutil.rmtree(results)
    results.mkdir(parents=True, exist_ok=True)
    found = sorted(p for p in (runs.base / "eval").glob("*") if (p / "results.json").exists())
    for eval_dir in found:
        write_text(results / f"{eval_dir.name}.json", (eval_dir / "results.json").read_text())
    if timings and runs.timings.exists():
        stages = json.loads(runs.timings.read_text())
        shipped = results / "timings.json"
        if not replace and shipped.exists():
            stages = {**json.loads(shipped.read_text()), **stages}
        write_text(shipped, json.dumps(stages, indent=1))
    return [p.name for p in found]


def ship_sweep(runs: Runs, grid: Path, sampling: dict) -> list[dict]:
    """Every sweep point trained in the run, in float16, into `grid`/<point>/; their registry entries."""
    entries = []
    for point in runs.profile.sweep:
        source = runs.sweep_final(point)
        if not source.is_dir():
            print(f"ship: {source} missing, skipped")
            continue
        target = grid / point.name
        copy_model(source, target, dtype=torch.float16, **sampling)
        stage = "refine" if runs.profile.sweep_passes else "sft"
        entries.append(entry(f"sweep/{point.name}", target, stage, "warmup", runs.eval_dir(f"sweep-{point.name}")))
    return entries


def ship_baselines(runs: Runs, folder: Path) -> list[dict]:
    """Every baseline the run trained (BASELINES), in float16, into `folder`/<name>/; their registry entries. Its
    `stage` says what it is: answers in words alone, no sketch."""
    entries = []
    for name, (stage, evaluation, mode) in BASELINES.items():
        source = runs.final(stage)
        if not source.is_dir():
            print(f"ship: {source} missing, baseline {name} not shipped")
            continue
        target = folder / name.split("/", 1)[1]
        copy_model(source, target, dtype=torch.float16)
        what = f"{mode} SFT ({runs.steps(stage)} steps, the demo's data written out in words; never sketches)"
        entries.append(entry(name, target, what, "warmup", runs.eval_dir(evaluation), mode))
    return entries


def preserved_entries(registry: Path) -> list[dict]:
    """The registry entries a new ship keeps (PRESERVED) whose folders are there."""
    if not registry.exists():
        return []
    old = json.loads(registry.read_text())["checkpoints"]
    return [e for e in old if e["name"] in PRESERVED and (ROOT / e["path"]).is_dir()]


def check_caps(entries: list[dict]) -> None:
    for item in entries:
        kind = item["name"].split("/")[0]
        cap = SIZE_CAPS_MB.get(kind, SIZE_CAPS_MB["demo" if item["name"].startswith("demo") else "sweep"])
        if item["size_mb"] > cap:
            raise SystemExit(f"error: {item['path']} is {item['size_mb']:.1f} MB, over the {cap} MB cap")


def train_latent_decoder(folder: Path) -> None:
    """The latent decoder is trained against the shipped model's own encoder (analysis/latent_decoder.py)."""
    subprocess.run([sys.executable, "-m", "analysis.latent_decoder", "--checkpoint", str(folder), "--images", "2000",
                    "--steps", "1500"], check=True, cwd=ROOT)  # fmt: skip


def final_model(runs: Runs) -> tuple[Path, str]:
    """The model the run would ship as the demo and its stage: the last GRPO's checkpoint, else the model before it
    (the last transfer pass, or the last refine pass without a phase 2)."""
    grpo, before = runs.after_grpo(), runs.before_grpo()
    return (grpo, "grpo") if grpo.is_dir() else (before, "refine")


def ship_demo(runs: Runs, target: Path, sampling: dict) -> dict:
    """The run's final model, with a latent decoder, into `target`; its registry entry (named "demo")."""
    final, stage = final_model(runs)
    copy_model(final, target, **sampling)
    train_latent_decoder(target)
    parent = "sft" if stage == "refine" else ("transfer" if runs.profile.transfer_passes else "refine")
    shipped = runs.eval_dir("test-demo")  # the audit with its codebook, as it ships
    audit = (
        shipped
        if (shipped / "results.json").exists()
        else runs.eval_dir("test-grpo" if stage == "grpo" else "test-sft")
    )
    return entry("demo", target, stage, parent, audit)


def sampling_of(runs: Runs) -> dict:
    """The sampler every shipped config.json gets as its default: the one the audit ran with."""
    p = runs.profile
    return dict(sampler=p.sampler, sketch_temperature=p.sketch_temperature, refine_passes=p.inference_refine_passes)


def ship(runs: Runs) -> None:
    copy_results(runs)
    checkpoints = ASSETS / "checkpoints"
    registry = checkpoints / "registry.json"
    # a sweep that was not trained again keeps the shipped one, marked as the previous recipe's (not silently mixed)
    new_sweep = any(runs.sweep_final(point).is_dir() for point in runs.profile.sweep)
    kept = []
    if not new_sweep and registry.exists():
        kept = [{**e, "recipe": "previous"} for e in json.loads(registry.read_text())["checkpoints"]
                if e["name"].startswith("sweep/") and (ROOT / e["path"]).is_dir()]  # fmt: skip
        print(f"ship: no sweep point trained in {runs.base}; keeping the {len(kept)} shipped ones, marked previous")
    kept += preserved_entries(registry)
    for old in (checkpoints / "demo", checkpoints / "baselines") + ((checkpoints / "sweep",) if new_sweep else ()):
        if old.exists():
            shutil.rmtree(old)
    sampling = sampling_of(runs)
    entries = [ship_demo(runs, checkpoints / "demo", sampling)]
    entries += ship_sweep(runs, checkpoints / "sweep", sampling) + kept
    entries += ship_baselines(runs, checkpoints / "baselines")
    check_caps(entries)
    write_text(registry, json.dumps({"checkpoints": entries}, indent=1) + "\n")
    print(f"shipped {len(entries)} checkpoints; registry: {registry.relative_to(ROOT)}")


def swap_in(staged: Path, target: Path) -> None:
    """Replace `target` by the fully written `staged` folder."""
    if target.exists():
        shutil.rmtree(target)
    staged.rename(target)


def fresh(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    return folder


def reship(runs: Runs, folder: str, ours, build) -> None:
    """Replace one shipped part, assets/checkpoints/`folder`, and its registry entries (those whose name `ours`
    accepts): `build(staged)` writes the new part into a folder beside the shipped one and returns its entries; the
    caps are checked before the swap, the other entries and every result file the run does not have are kept."""
    checkpoints = ASSETS / "checkpoints"
    registry = checkpoints / "registry.json"
    kept = [e for e in json.loads(registry.read_text())["checkpoints"] if not ours(e["name"])] \
        if registry.exists() else []  # fmt: skip
    staged = fresh(checkpoints / f".{folder}-new")
    entries = build(staged)
    check_caps(entries)
    swap_in(staged, checkpoints / folder)
    copy_results(runs, replace=False)
    entries = [{**e, "path": e["path"].replace(f".{folder}-new", folder)} for e in entries]
    ordered = sorted(kept + entries, key=lambda e: e["name"] != "demo")  # the demo first, the grid in its order
    write_text(registry, json.dumps({"checkpoints": ordered}, indent=1) + "\n")


def ship_demo_only(runs: Runs) -> None:
    """The `--demo-only` ship: the run's final model replaces the shipped demo (folder and registry entry); the
    shipped sweep, its registry entries and every result file the run does not have stay as they are."""
    final, _ = final_model(runs)
    if not final.is_dir():
        raise SystemExit(f"error: no final model to ship: neither {runs.after_grpo()} nor {final} exists")
    reship(runs, "demo", lambda name: name == "demo", lambda staged: [ship_demo(runs, staged, sampling_of(runs))])
    print(f"shipped the demo ({final}) beside the kept sweep; registry: assets/checkpoints/registry.json")


def ship_sweep_only(runs: Runs) -> None:
    """The `--sweep-only` ship: the run's sweep replaces the shipped one (folder and registry entries); the shipped
    demo, its registry entry and every result file the run does not have stay as they are."""
    if not any(runs.sweep_final(point).is_dir() for point in runs.profile.sweep):
        raise SystemExit(f"error: no sweep point trained under {runs.base / 'sweep'}")
    reship(runs, "sweep", lambda name: name.startswith("sweep/"),
           lambda staged: ship_sweep(runs, staged, sampling_of(runs)))  # fmt: skip
    print("shipped the sweep points beside the kept demo; registry: assets/checkpoints/registry.json")


def ship_beside_demo(runs: Runs) -> None:
    """The `--keep-demo` ship: the shipped demo stays; the run's final model is registered beside it."""
    checkpoints = ASSETS / "checkpoints"
    registry, demo = checkpoints / "registry.json", checkpoints / "demo"
    final, stage = final_model(runs)
    for needed in (demo / "config.json", registry, final / "config.json"):
        if not needed.exists():
            raise SystemExit(f"error: {needed} is missing: --keep-demo needs a shipped demo and the run's final model")
    decoding = sketch_decoding(final)
    if decoding == sketch_decoding(demo):
        raise SystemExit(f"error: the run's model decodes sketches as the shipped demo does ({decoding}); "
                         "ship it as the demo (`--demo-only`) instead")  # fmt: skip
    audit = runs.eval_dir("test-demo")
    if not (audit / "summary.parquet").exists():
        raise SystemExit(f"error: {audit} is missing: audit the shipped demo first (python -m model.evaluate "
                         f"--checkpoint assets/checkpoints/demo --split test ... --out {audit})")  # fmt: skip
    old = json.loads(registry.read_text())["checkpoints"]
    before = next((e for e in old if e["name"] == "demo"), {})
    kept = [e for e in old if e["name"].startswith("sweep/") and (ROOT / e["path"]).is_dir()]
    staged = fresh(checkpoints / f".{decoding}-new")
    copy_model(final, staged, dtype=torch.float16, **sampling_of(runs))
    parent = "sft" if stage == "refine" else "refine"
    other = entry(f"demo-{decoding}", staged, stage, parent, runs.eval_dir(f"test-{decoding}"))
    kept_demo = entry("demo", demo, before.get("stage", "grpo"), before.get("parent", "refine"), audit)
    # the demo's own recipe, not the run's profile: the report's lineage and equal-compute check read it
    kept_demo["recipe"] = before["recipe"] if isinstance(before.get("recipe"), dict) else dict(PREVIOUS_DEMO)
    entries = [kept_demo, other]
    baselines = ship_baselines(runs, fresh(checkpoints / ".baselines-new"))
    if not baselines:  # the run trained none: the shipped ones stay
        baselines = [e for e in old if e["name"].startswith("baseline/") and (ROOT / e["path"]).is_dir()]
    entries += baselines
    check_caps(entries)
    # the kept demo's other results (its audit without the codebook, before GRPO, its stage timings) stay; the run's
    # evaluations go over those of the same name; the run's stage timings are another model's, not the demo's
    copy_results(runs, replace=False, timings=False)
    swap_in(staged, checkpoints / decoding)
    if (checkpoints / ".baselines-new").exists():
        swap_in(checkpoints / ".baselines-new", checkpoints / "baselines")
    for folder in (decoding, "baselines"):  # the entries were made from the staged folders
        entries = [{**e, "path": e["path"].replace(f".{folder}-new", folder)} for e in entries]
    write_text(registry, json.dumps({"checkpoints": entries + kept}, indent=1) + "\n")
    print(f"kept the shipped demo; shipped {final} beside it as demo-{decoding}; registry: {registry}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.ship", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="demo", choices=sorted(PROFILES))
    parser.add_argument("--results-only", action="store_true", help="copy only the evaluations and timings found in "
                        "the run into assets/results/; checkpoints and registry stay as shipped")  # fmt: skip
    parser.add_argument("--sweep-only", action="store_true", help="ship the run's sweep grid (checkpoints, registry "
                        "entries, evaluations) and keep the shipped demo model as it is")  # fmt: skip
    parser.add_argument("--demo-only", action="store_true", help="ship the run's final model as the demo (checkpoint, "
                        "latent decoder, registry entry, evaluations) and keep the shipped sweep")  # fmt: skip
    parser.add_argument("--keep-demo", action="store_true", help="keep the shipped demo model (it won on validation) "
                        "and ship the run's final model beside it as demo-<its decoding>")  # fmt: skip
    args = parser.parse_args(argv)
    runs = Runs(PROFILES[args.profile], root=ROOT)
    if args.results_only + args.sweep_only + args.demo_only + args.keep_demo > 1:
        parser.error("--results-only, --sweep-only, --demo-only and --keep-demo exclude each other")
    if args.keep_demo:
        ship_beside_demo(runs)
        return 0
    if args.sweep_only:
        ship_sweep_only(runs)
    elif args.demo_only:
        ship_demo_only(runs)
    elif args.results_only:
        copied = copy_results(runs, replace=False)
        if not copied:
            raise SystemExit(f"error: no evaluation with a results.json under {runs.base / 'eval'}")
        print(f"ship: copied {', '.join(copied)} into {(ASSETS / 'results').relative_to(ROOT)}")
    else:
        ship(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
