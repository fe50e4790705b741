"""Carry a trained sweep grid off a machine whose outgoing files are few and small (a lent GPU machine returns at
most 8 files of 16 MiB, 64 MiB in all), and back into this checkout's run folders.

    python -m pipeline.transport pack --out DIR [--points a,b]  # there, after `pipeline.demo --stages sweep`
    python -m pipeline.transport unpack DIR/*.tar     # here: runs/demo/sweep/… and runs/demo/eval/sweep-*

`pack` writes one tar per sweep point (so nothing else may go under DIR when the machine returns 8 files): the point's
final model in float16 and without the vision encoder, which stage 1 freezes (`freeze_vision`, on in every demo recipe)
and so holds the stage-0 base's tensors (a K = 64 point: 8.0 MB instead of 9.7), and its evaluation (results.json,
summary.parquet, and predictions.parquet for the report's paired intervals) when that evaluated the same model. It
refuses a grid with an unfinished point (let the pipeline resume it) or a point whose encoder is not the base's, before
writing anything; each tar is written atomically. `unpack` checks every tar first (complete, and trained from the local
stage-0 base: a fingerprint of the encoder's tensors), then writes each model folder at once with the encoder put back,
and replaces the point's evaluation folder with the packed one or removes a local one (it would be of another model).
"""

import argparse
import dataclasses
import hashlib
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

from safetensors.torch import load, load_file, save

from model.core.atomic import atomic_file, atomic_folder
from pipeline.layout import PROFILES, ROOT, Runs

VISION = "backbone.model.visual."
MANIFEST = "transport.json"
EVAL_FILES = ("results.json", "summary.parquet", "predictions.parquet")  # predictions: the paired claims
MODEL_FILES = ("config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json")
REQUIRED = ["model/model.safetensors"] + [f"model/{name}" for name in MODEL_FILES]


def vision_fingerprint(tensors: dict) -> str:
    """sha256 over the vision encoder's tensors (names and float32 values, sorted by name)."""
    digest = hashlib.sha256()
    for name in sorted(k for k in tensors if k.startswith(VISION)):
        digest.update(name.encode())
        digest.update(tensors[name].detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def pack(runs: Runs, out: Path) -> list[Path]:
    """One tar per sweep point in `out` (see the module's docstring); returns their paths."""
    missing = [point.name for point in runs.profile.sweep if not runs.sweep_final(point).is_dir()]
    if missing:
        raise SystemExit(f"error: sweep points not finished under {runs.base / 'sweep'}: {', '.join(missing)}; "
                         "python -m pipeline.demo --stages sweep resumes them")  # fmt: skip
    fingerprint = vision_fingerprint(load_file(str(runs.stage0() / "model.safetensors")))
    models = {}
    for point in runs.profile.sweep:  # every check before anything is written
        tensors = load_file(str(runs.sweep_final(point) / "model.safetensors"))
        if vision_fingerprint(tensors) != fingerprint:
            raise SystemExit(f"error: {runs.sweep_final(point)} has another vision encoder than the stage-0 base "
                             "(trained with freeze_vision off?); pack refuses the grid")  # fmt: skip
        models[point.name] = tensors
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for point in runs.profile.sweep:
        model_dir = runs.sweep_final(point)
        kept = {k: (v.half() if v.is_floating_point() else v) for k, v in models.pop(point.name).items()
                if not k.startswith(VISION)}  # fmt: skip
        eval_dir = runs.eval_dir(f"sweep-{point.name}")
        evaluated = runs.evaluated_checkpoint(f"sweep-{point.name}") == str(model_dir)
        manifest = {"point": point.name, "model": str(model_dir.relative_to(runs.base)),
                    "vision_fingerprint": fingerprint, "evaluated": evaluated}  # fmt: skip
        path = out / f"sweep-{point.name}.tar"
        with atomic_file(path) as tmp, tarfile.open(tmp, "w") as tar:
            _add(tar, "model/model.safetensors", save(kept))
            for name in MODEL_FILES:
                _add(tar, f"model/{name}", (model_dir / name).read_bytes())
            if evaluated:
                for name in EVAL_FILES:
                    _add(tar, f"eval/{name}", (eval_dir / name).read_bytes())
            _add(tar, MANIFEST, json.dumps(manifest, indent=1).encode())  # last: a cut tar has none
        written.append(path)
        size = path.stat().st_size / 2**20
        print(f"pack: {point.name} ({model_dir.relative_to(runs.base)}) -> {path} ({size:.1f} MiB)")
    return written


def read_packed(path: Path, fingerprint: str) -> tuple[dict, dict]:
    """The manifest and members of one packed point, after checking that it is whole and from this base."""
    try:
        with tarfile.open(path) as tar:
            files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    except (tarfile.TarError, OSError) as err:
        raise SystemExit(f"error: {path} cannot be read as a tar ({err})") from None
    if MANIFEST not in files:
        raise SystemExit(f"error: {path} is not a whole packed sweep point (no {MANIFEST}: cut short?)")
    manifest = json.loads(files[MANIFEST])
    needed = REQUIRED + ([f"eval/{name}" for name in EVAL_FILES] if manifest["evaluated"] else [])
    lacking = [name for name in needed if name not in files]
    if lacking:
        raise SystemExit(f"error: {path} lacks {', '.join(lacking)}")
    if manifest["vision_fingerprint"] != fingerprint:
        raise SystemExit(f"error: {path} was trained from another stage-0 base than the local one")
    return manifest, files


def unpack(runs: Runs, tars: list[Path]) -> None:
    """Rebuild each packed point's model (the local stage-0 base's vision encoder put back) and its evaluation in
    the run folders; every tar is checked before anything is written."""
    base = load_file(str(runs.stage0() / "model.safetensors"))
    fingerprint = vision_fingerprint(base)
    packed = [read_packed(path, fingerprint) for path in tars]
    for manifest, files in packed:
        tensors = load(files["model/model.safetensors"])
        tensors.update({k: v.half() for k, v in base.items() if k.startswith(VISION)})
        model_dir = runs.base / manifest["model"]
        with atomic_folder(model_dir) as staging:
            for name in MODEL_FILES:
                (staging / name).write_bytes(files[f"model/{name}"])
            (staging / "model.safetensors").write_bytes(save(tensors))
        eval_dir = runs.eval_dir(f"sweep-{manifest['point']}")
        if manifest["evaluated"]:
            results = json.loads(files["eval/results.json"])
            results["config"]["checkpoint"] = str(model_dir)  # where it lies here
            with atomic_folder(eval_dir) as staging:
                for name in EVAL_FILES[1:]:
                    (staging / name).write_bytes(files[f"eval/{name}"])
                (staging / "results.json").write_text(json.dumps(results, indent=1))
        elif eval_dir.exists():
            shutil.rmtree(eval_dir)  # an evaluation of another model than the one now here
        print(f"unpack: {manifest['point']} -> {model_dir}"
              + (" (with its evaluation)" if manifest["evaluated"] else " (not evaluated)"))  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.transport", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="demo", choices=sorted(PROFILES))
    sub = parser.add_subparsers(dest="command", required=True)
    packing = sub.add_parser("pack", help="one tar per sweep point into --out")
    packing.add_argument("--out", type=Path, required=True)
    packing.add_argument("--points", default="", help="comma-separated: only these points (at most 8 files a trip)")
    sub.add_parser("unpack", help="packed tars into the run folders").add_argument("tars", type=Path, nargs="+")
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    points = [p.strip() for p in getattr(args, "points", "").split(",") if p.strip()]
    unknown = [p for p in points if p not in {q.name for q in profile.sweep}]
    if unknown:
        parser.error(f"unknown sweep point {', '.join(unknown)}; points: {', '.join(q.name for q in profile.sweep)}")
    if points:
        profile = dataclasses.replace(profile, sweep=[q for q in profile.sweep if q.name in points])
    runs = Runs(profile, root=ROOT)
    if not runs.stage0().is_dir():
        parser.error(f"the stage-0 base {runs.stage0()} is missing; python -m pipeline.demo --stages "
                     "warmup makes it")  # fmt: skip
    if args.command == "pack":
        pack(runs, args.out)
    else:
        missing = [str(p) for p in args.tars if not p.is_file()]
        if missing:
            parser.error(f"no such file: {', '.join(missing)}")
        unpack(runs, args.tars)
    return 0


if __name__ == "__main__":
    sys.exit(main())
