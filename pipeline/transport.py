"""Carry a trained sweep grid off a machine whose outgoing files are few and small (a lent GPU machine returns at
most 8 files of 16 MiB, 64 MiB in all), and back into this checkout's run folders.

    python -m pipeline.transport pack --out DIR       # there, after `python -m model.demo_pipeline --stages sweep`
    python -m pipeline.transport unpack DIR/*.tar     # here: runs/demo/sweep/… and runs/demo/eval/sweep-*

`pack` writes one tar per sweep point: its model at the deepest stage of the chain that *every* point finished (so
a grid cut short by a deadline is still one recipe), in float16 and without the vision encoder, which is frozen
after stage 0 and so holds the stage-0 base's tensors (a K = 64 point: 8.0 MB instead of 9.7); its evaluation
(results.json, summary.parquet) when that evaluated the same checkpoint; and the run's stage timings. `unpack` puts
the encoder back from the local stage-0 base after checking that it is the one the point was trained from (a
fingerprint of its tensors), and writes the model and evaluation where the pipeline would have.
"""

import argparse
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

from safetensors.torch import load, load_file, save

from model.core.atomic import write_bytes, write_text
from pipeline.layout import PROFILES, ROOT, Runs

VISION = "backbone.model.visual."
MANIFEST = "transport.json"
EVAL_FILES = ("results.json", "summary.parquet")
MODEL_FILES = ("config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json")


def vision_fingerprint(tensors: dict) -> str:
    """sha256 over the vision encoder's tensors (names and float32 values, sorted by name)."""
    digest = hashlib.sha256()
    for name in sorted(k for k in tensors if k.startswith(VISION)):
        digest.update(name.encode())
        digest.update(tensors[name].detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def finished_depth(runs: Runs, point) -> int:
    """How many stages of the point's chain have their final checkpoint (0: none)."""
    depth = 0
    for stage in runs.sweep_stages(point):
        if not runs.final(stage).is_dir():
            break
        depth += 1
    return depth


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def pack(runs: Runs, out: Path) -> list[Path]:
    """One tar per sweep point in `out` (see the module's docstring); returns their paths."""
    depth = min(finished_depth(runs, point) for point in runs.profile.sweep)
    if depth == 0:
        raise SystemExit(f"error: some sweep point has no finished stage under {runs.base / 'sweep'}; nothing to pack")
    base = load_file(str(runs.final("warmup") / "model.safetensors"))
    fingerprint = vision_fingerprint(base)
    timings = runs.timings.read_bytes() if runs.timings.exists() else b"{}"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for point in runs.profile.sweep:
        stage = runs.sweep_stages(point)[depth - 1]
        model_dir = runs.final(stage)
        tensors = load_file(str(model_dir / "model.safetensors"))
        if vision_fingerprint(tensors) != fingerprint:
            raise SystemExit(f"error: {model_dir} has another vision encoder than the stage-0 base; pack refuses")
        kept = {k: (v.half() if v.is_floating_point() else v) for k, v in tensors.items() if not k.startswith(VISION)}
        eval_dir = runs.eval_dir(f"sweep-{point.name}")
        results = eval_dir / "results.json"
        evaluated = results.exists() and Path(json.loads(results.read_text())["config"]["checkpoint"]) == model_dir
        manifest = {"point": point.name, "stage": stage, "model": str(model_dir.relative_to(runs.base)),
                    "vision_fingerprint": fingerprint, "evaluated": evaluated, "depth": depth}  # fmt: skip
        path = out / f"sweep-{point.name}.tar"
        with tarfile.open(path, "w") as tar:
            _add(tar, MANIFEST, json.dumps(manifest, indent=1).encode())
            _add(tar, "model/model.safetensors", save(kept))
            for name in MODEL_FILES:
                if (model_dir / name).exists():
                    _add(tar, f"model/{name}", (model_dir / name).read_bytes())
            if evaluated:
                for name in EVAL_FILES:
                    _add(tar, f"eval/{name}", (eval_dir / name).read_bytes())
            _add(tar, "timings.json", timings)
        written.append(path)
        print(f"pack: {point.name} at {stage} -> {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return written


def unpack(runs: Runs, tars: list[Path]) -> None:
    """Rebuild each packed point's model (the local stage-0 base's vision encoder put back) and its evaluation in
    the run folders; the packed timings are added to the run's own for stages it has not timed."""
    base = load_file(str(runs.final("warmup") / "model.safetensors"))
    fingerprint = vision_fingerprint(base)
    for path in tars:
        with tarfile.open(path) as tar:
            files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
        if MANIFEST not in files:
            raise SystemExit(f"error: {path} is not a packed sweep point (no {MANIFEST})")
        manifest = json.loads(files[MANIFEST])
        if manifest["vision_fingerprint"] != fingerprint:
            raise SystemExit(f"error: {path} was trained from another stage-0 base than {runs.final('warmup')}")
        tensors = load(files["model/model.safetensors"])
        tensors.update({k: v.half() for k, v in base.items() if k.startswith(VISION)})
        model_dir = runs.base / manifest["model"]
        for name in MODEL_FILES:
            if f"model/{name}" in files:
                write_bytes(model_dir / name, files[f"model/{name}"])
        write_bytes(model_dir / "model.safetensors", save(tensors))
        if manifest["evaluated"]:
            eval_dir = runs.eval_dir(f"sweep-{manifest['point']}")
            results = json.loads(files["eval/results.json"])
            results["config"]["checkpoint"] = str(model_dir)  # where it lies here
            write_bytes(eval_dir / "summary.parquet", files["eval/summary.parquet"])
            write_text(eval_dir / "results.json", json.dumps(results, indent=1))
        timed = json.loads(runs.timings.read_text()) if runs.timings.exists() else {}
        packed = json.loads(files.get("timings.json", b"{}"))
        if any(k not in timed for k in packed):
            write_text(runs.timings, json.dumps({**packed, **timed}, indent=1))
        print(f"unpack: {manifest['point']} at {manifest['stage']} -> {model_dir}"
              + (" (with its evaluation)" if manifest["evaluated"] else " (not evaluated)"))  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.transport", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="demo", choices=sorted(PROFILES))
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("pack", help="one tar per sweep point into --out").add_argument("--out", type=Path, required=True)
    sub.add_parser("unpack", help="packed tars into the run folders").add_argument("tars", type=Path, nargs="+")
    args = parser.parse_args(argv)
    runs = Runs(PROFILES[args.profile], root=ROOT)
    if not runs.final("warmup").is_dir():
        parser.error(f"the stage-0 base {runs.final('warmup')} is missing; python -m model.demo_pipeline --stages "
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
