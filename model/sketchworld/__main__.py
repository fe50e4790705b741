"""Command line: write the sketch-world splits as Parquet.

    python -m model.sketchworld --out data/sketchworld --per-family 1000 --seed 0
    python -m model.sketchworld --out /tmp/sw --per-family 50 --seed 1 --families maze,tilt \
        --splits train=0.8,validation=0.1,test=0.1 --overwrite

`--per-family N` is the number of instances per family over all splits, divided by the `--splits` fractions.
Bad arguments print one `error: ...` line and exit with status 2, without a traceback.
"""

import argparse
import os
import sys

from model.sketchworld import DEFAULT_FAMILIES, FAMILIES, write_dataset
from model.sketchworld.schema import SPLIT_NAMES


class UsageError(Exception):
    pass


class _OneLineParser(argparse.ArgumentParser):
    # argparse prints the usage block before its message; we want a single line a user can read at once.
    def error(self, message):
        raise UsageError(message)


def parse_splits(text: str) -> dict[str, float]:
    splits = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in SPLIT_NAMES:
            raise UsageError(
                f"bad --splits entry {part!r}; expected name=fraction with name in {', '.join(SPLIT_NAMES)}"
            )
        try:
            splits[name] = float(value)
        except ValueError:
            raise UsageError(f"bad fraction {value!r} for split {name!r} in --splits") from None
    if any(v < 0 for v in splits.values()) or abs(sum(splits.values()) - 1.0) > 1e-6:
        raise UsageError(f"--splits fractions must be >= 0 and sum to 1, got {splits}")
    return splits


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = _OneLineParser(prog="python -m model.sketchworld", description="Write sketch-world Parquet splits.")
    parser.add_argument("--out", required=True, help="output directory for <split>.parquet and sketchworld.json")
    parser.add_argument("--per-family", type=int, required=True, help="instances per family, over all splits")
    parser.add_argument("--seed", type=int, default=0, help="base seed; same seed gives byte-identical files")
    parser.add_argument(
        "--families", default=",".join(DEFAULT_FAMILIES), help=f"comma-separated, of {', '.join(FAMILIES)}"
    )
    parser.add_argument("--splits", default="train=0.8,validation=0.1,test=0.1", help="name=fraction,...")
    parser.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    args.families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = [f for f in args.families if f not in FAMILIES]
    if unknown or not args.families:
        raise UsageError(
            f"unknown family {', '.join(unknown) or '(none given)'}; valid families: {', '.join(FAMILIES)}"
        )
    if args.per_family <= 0:
        raise UsageError(f"--per-family must be a positive integer, got {args.per_family}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out!r} exists and is not a directory")
    if os.path.isdir(args.out) and os.listdir(args.out) and not args.overwrite:
        raise UsageError(f"--out {args.out!r} exists and is not empty; pass --overwrite to write into it")
    args.splits = parse_splits(args.splits)
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    record = write_dataset(
        args.out, args.per_family, args.seed, args.families, args.splits, progress=not args.no_progress
    )
    summary = ", ".join(f"{split}={sum(c.values())}" for split, c in record["counts"].items())
    print(f"wrote {summary} rows to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
