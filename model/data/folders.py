"""Finding a split's rows: sketch-world files, Hub-style Parquet shards, Zebra-CoT's category folders, or a hub id.

    rows = load_rows("data/sketchworld", "train", seed=0)                       # DIR/train.parquet
    rows = load_rows("/data/zebra-cot", "test", carve=0.05, categories=["Visual Logic"])

Layouts of a folder DIR (searched recursively; shards of one split are read together, in name order):
- `DIR/<split>.parquet` — what `python -m model.sketchworld` writes;
- `DIR/data/<split>-00000-of-00003.parquet` (most Hub datasets), or `<split>-*.parquet` anywhere below DIR, or
  `DIR/<split>/*.parquet`;
- `DIR/<Category>/train-00000-of-0000N.parquet` — Zebra-CoT: one folder per category, a train split only.
  `categories` keeps the named category folders (the first folder below DIR; a name not there is an error that
  lists the ones that are).

Zebra-CoT has only a train split. `carve=f` (0 < f ≤ 0.25) carves validation and test out of it: each row goes by a
SHA-256 hash of its question, trace and answer, so validation and test each get about an f share of the rows, the same
on every machine, in every run and whatever the shard order, and train keeps the rest. Asking for validation or test
of a folder without them, and without `carve`, is an error that names the splits found.

A source that is not a folder but looks like a hub id ("org/name") is loaded with `datasets.load_dataset`, which
works only where the network (or the local Hub cache) allows; failures are reported as ValueError naming the id.
Shards are read with pyarrow straight from the files (no datasets cache is written); shards whose columns differ
(Zebra-CoT categories have different numbers of image columns) are joined with missing columns as nulls.
"""

import hashlib
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

SPLITS = ("train", "validation", "test")
MAX_CARVE = 0.25
HASHED_COLUMNS = ("Question", "Text Reasoning Trace", "Final Answer")


def split_of(path: Path, root: Path) -> str | None:
    """The split a Parquet file holds, from its name or its folder: train.parquet, train-00000-of-00002.parquet,
    train/part-0.parquet → "train"; None when neither names one."""
    stem = path.stem
    for split in SPLITS + ("valid", "val", "dev"):
        if stem == split or stem.startswith(f"{split}-") or stem.startswith(f"{split}_"):
            return _canonical(split)
    parents = path.relative_to(root).parts[:-1]
    for part in reversed(parents):
        if part in SPLITS + ("valid", "val", "dev"):
            return _canonical(part)
    return None


def _canonical(split: str) -> str:
    return "validation" if split in ("valid", "val", "dev") else split


def shards(root: Path, categories: list[str] | None = None) -> dict[str, list[Path]]:
    """Split → its Parquet files under `root` (in path order), keeping only `categories` when given."""
    files = sorted(p for p in root.rglob("*.parquet") if not any(part.startswith(".") for part in p.parts))
    if categories:
        present = sorted({p.relative_to(root).parts[0] for p in files if len(p.relative_to(root).parts) > 1})
        missing = [c for c in categories if c not in present]
        if missing:
            raise ValueError(f"no category folder {', '.join(map(repr, missing))} in {root}; it has "
                             f"{', '.join(map(repr, present)) or 'no category folders'}")  # fmt: skip
        files = [p for p in files if p.relative_to(root).parts[0] in categories]
    out: dict[str, list[Path]] = {}
    for path in files:
        split = split_of(path, root)
        if split is not None:
            out.setdefault(split, []).append(path)
    return out


def carve_bucket(question, trace, answer, fraction: float) -> str:
    """ "validation", "test" or "train" for one row, from the hash of its text (see the module docstring)."""
    key = "\x00".join(str(x or "") for x in (question, trace, answer)).encode()
    u = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64
    return "validation" if u < fraction else "test" if u < 2 * fraction else "train"


def _read(paths: list[Path]) -> datasets.Dataset:
    tables = []
    for path in paths:
        try:
            tables.append(pq.read_table(path))
        except (pa.ArrowInvalid, OSError) as err:
            raise ValueError(f"{path} is not a readable Parquet file: {err}") from err
    table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    return datasets.Dataset(datasets.table.InMemoryTable(table))


def _carved(rows: datasets.Dataset, split: str, fraction: float) -> datasets.Dataset:
    missing = [c for c in HASHED_COLUMNS if c not in rows.column_names]
    if missing:
        raise ValueError(f"cannot carve splits: the rows lack the column(s) {missing}")
    keep = [i for i, values in enumerate(zip(*(rows[c] for c in HASHED_COLUMNS)))
            if carve_bucket(*values, fraction) == split]  # fmt: skip
    return rows.select(keep)


def load_rows(
    source: str | Path,
    split: str,
    *,
    seed: int | None = None,
    categories: list[str] | None = None,
    carve: float = 0.0,
) -> datasets.Dataset:
    """The rows of `split` (shuffled with `seed` when given: sketch-world files are stored family by family)."""
    if not 0 <= carve <= MAX_CARVE:
        raise ValueError(f"carve must be between 0 and {MAX_CARVE} (a share of the train rows), got {carve}")
    root = Path(source)
    if not root.exists():
        rows = _from_hub(str(source), split, carve, categories)
    else:
        if not root.is_dir():
            raise ValueError(f"data {root} is a file, not a folder")
        found = shards(root, categories)
        if carve:
            if "train" not in found:
                raise ValueError(f"cannot carve {split} out of {root}: it has no train split")
            rows = _carved(_read(found["train"]), split, carve)
        elif split in found:
            rows = _read(found[split])
        else:
            names = ", ".join(sorted(found)) or "no .parquet files of a known split"
            only_train = set(found) == {"train"}  # as Zebra-CoT: then carving is the way to a validation or test split
            hint = (
                " (Zebra-CoT has only train: pass carve to carve validation and test out of it)" if only_train else ""
            )
            raise ValueError(f"no split {split!r} in {root}: found {names}{hint}")
    return rows.shuffle(seed=seed) if seed is not None else rows


def _from_hub(source: str, split: str, carve: float, categories: list[str] | None) -> datasets.Dataset:
    if source.count("/") != 1 or source.startswith((".", "/", "~")):
        raise ValueError(f"data folder {source} does not exist")
    if categories:
        raise ValueError(f"categories apply to a downloaded folder; download {source} first")
    try:
        rows = datasets.load_dataset(source, split="train" if carve else split)
    except Exception as err:  # offline, no such dataset, no such split: datasets raises many types
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"could not load the hub dataset {source!r} (split {split!r}): {reason}") from err
    return _carved(rows, split, carve) if carve else rows


def select_rows(dataset, limit: int | None):
    """At most `limit` rows, taken round-robin over the `family` column when there is one (else the first rows)."""
    if limit is None or limit >= len(dataset):
        return dataset
    if "family" not in dataset.column_names:
        return dataset.select(range(limit))
    by_family: dict[str, list[int]] = {}
    for index, family in enumerate(dataset["family"]):
        by_family.setdefault(family, []).append(index)
    queues, picked = list(by_family.values()), []
    for rank in range(max(len(q) for q in queues)):
        picked += [q[rank] for q in queues if rank < len(q)]
    return dataset.select(sorted(picked[:limit]))
