"""Finding a split's rows in a data folder (model/data/folders.py): sketch-world files, Hub shards, Zebra-CoT category
folders, the category filter, carving validation and test out of train, and the errors that name what was found.

    python -m pytest -q tests/test_folders.py

Folders are built here from sketch-world files (copied into each layout) and from text-only tables; expected rows
are read straight from the files written, and carving is checked against the hash rule written out again here.
"""

import hashlib
import shutil
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model.data.folders import MAX_CARVE, load_rows, select_rows, shards, split_of
from model.evaluation import cli as evaluate_cli
from model.sketchworld import write_dataset

COLUMNS = ("Question", "Text Reasoning Trace", "Final Answer")


def text_rows(n: int, prefix: str) -> pa.Table:
    """A text-only table in the Zebra-CoT columns, every row distinct."""
    return pa.table(
        {
            "Question": [f"{prefix} question {i}?" for i in range(n)],
            "Text Reasoning Trace": [f"THOUGHT 1: look at {prefix} {i}." for i in range(n)],
            "Final Answer": [str(i % 7) for i in range(n)],
        }
    )


def questions(rows) -> list[str]:
    return list(rows["Question"])


def expected_bucket(question: str, trace: str, answer: str, fraction: float) -> str:
    """The carving rule of model/data/folders.py, written out again: SHA-256 of the three texts, first 8 bytes."""
    u = int.from_bytes(hashlib.sha256("\x00".join((question, trace, answer)).encode()).digest()[:8], "big") / 2**64
    return "validation" if u < fraction else "test" if u < 2 * fraction else "train"


@pytest.fixture(scope="module")
def sketchworld(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sw")
    write_dataset(
        str(out), per_family=4, seed=0, families=["count", "connect", "tilt"], splits={"train": 0.5, "test": 0.5}
    )
    return out


@pytest.fixture(scope="module")
def zebra(tmp_path_factory) -> Path:
    """DIR/<Category>/train-0000i-of-00002.parquet, as Zebra-CoT is laid out: a train split only. The two categories
    have different columns (as Zebra-CoT's categories have different numbers of image columns)."""
    root = tmp_path_factory.mktemp("zebra")
    for category, n in [("Visual Logic", 150), ("Spatial Reasoning", 250)]:
        table = text_rows(n, category)
        if category == "Spatial Reasoning":
            table = table.append_column("extra", pa.array([f"x{i}" for i in range(n)]))
        (root / category).mkdir()
        pq.write_table(table.slice(0, n // 2), root / category / "train-00000-of-00002.parquet")
        pq.write_table(table.slice(n // 2), root / category / "train-00001-of-00002.parquet")
    return root


def test_sketchworld_files_and_hub_shards_give_the_same_rows(sketchworld, tmp_path):
    written = pq.read_table(sketchworld / "test.parquet")
    hub = tmp_path / "hub"
    (hub / "data").mkdir(parents=True)
    shutil.copy(sketchworld / "test.parquet", hub / "data" / "test-00000-of-00001.parquet")
    shutil.copy(sketchworld / "train.parquet", hub / "data" / "train-00000-of-00001.parquet")
    by_folder = tmp_path / "by-folder"
    (by_folder / "test").mkdir(parents=True)
    shutil.copy(sketchworld / "test.parquet", by_folder / "test" / "part-0.parquet")
    for source in (sketchworld, hub, by_folder):
        rows = load_rows(source, "test")
        assert questions(rows) == written.column("Question").to_pylist(), source
        assert rows.column_names == written.column_names
    assert sorted(shards(hub)) == ["test", "train"]
    shuffled = load_rows(hub, "test", seed=0)
    assert questions(shuffled) != questions(load_rows(hub, "test"))  # shuffled …
    assert sorted(questions(shuffled)) == sorted(written.column("Question").to_pylist())  # … a permutation
    assert questions(load_rows(hub, "test", seed=0)) == questions(shuffled)  # the same one every time


def test_split_names_in_file_and_folder_names():
    root = Path("/d")
    cases = {
        "/d/train.parquet": "train",
        "/d/data/validation-00001-of-00002.parquet": "validation",
        "/d/val.parquet": "validation",
        "/d/Visual Logic/train-00000-of-00003.parquet": "train",
        "/d/test/part-0.parquet": "test",
        "/d/dev/x.parquet": "validation",
        "/d/other/x.parquet": None,
        "/d/trainer.parquet": None,
    }
    for path, split in cases.items():
        assert split_of(Path(path), root) == split, path


def test_zebra_category_folders_read_every_shard_in_order(zebra):
    rows = load_rows(zebra, "train")
    # category folders in name order, each category's shards in name order, the rows of each shard in order
    expected = [f"Spatial Reasoning question {i}?" for i in range(250)] + [
        f"Visual Logic question {i}?" for i in range(150)
    ]
    assert questions(rows) == expected
    extra = list(rows["extra"])
    assert extra[:250] == [f"x{i}" for i in range(250)] and extra[250:] == [None] * 150  # missing columns are nulls


def test_category_filter_and_its_error(zebra):
    rows = load_rows(zebra, "train", categories=["Visual Logic"])
    assert questions(rows) == [f"Visual Logic question {i}?" for i in range(150)]
    both = load_rows(zebra, "train", categories=["Visual Logic", "Spatial Reasoning"])
    assert len(both) == 400
    with pytest.raises(ValueError) as err:
        load_rows(zebra, "train", categories=["Visual Logic", "Geometry"])
    assert str(err.value) == f"no category folder 'Geometry' in {zebra}; it has 'Spatial Reasoning', 'Visual Logic'"


def test_a_missing_split_names_the_splits_found(zebra, sketchworld):
    with pytest.raises(ValueError, match=r"no split 'test' in .*: found train \(Zebra-CoT has only train: pass carve"):
        load_rows(zebra, "test")
    with pytest.raises(ValueError, match=r"no split 'validation' in .*: found test, train$"):
        load_rows(sketchworld, "validation")


def test_carving_is_disjoint_complete_and_stable(zebra, tmp_path):
    fraction = 0.1
    carved = {split: load_rows(zebra, split, carve=fraction) for split in ("validation", "test", "train")}
    sets = {split: set(questions(rows)) for split, rows in carved.items()}
    everything = questions(load_rows(zebra, "train"))
    assert sum(len(s) for s in sets.values()) == len(everything) == 400  # disjoint …
    assert set().union(*sets.values()) == set(everything)  # … and together every train row
    for split in ("validation", "test"):
        assert abs(len(sets[split]) / 400 - fraction) < 0.04, (split, len(sets[split]))
    # each row goes where its hash sends it, written out independently
    table = pq.read_table(zebra / "Visual Logic" / "train-00000-of-00002.parquet").to_pylist()
    for row in table:
        bucket = expected_bucket(*(row[c] for c in COLUMNS), fraction)
        assert row["Question"] in sets[bucket]
    # the same rows in a second call, and with the shards in the other order
    assert {s: set(questions(load_rows(zebra, s, carve=fraction))) for s in sets} == sets
    swapped = tmp_path / "swapped"
    for shard in zebra.rglob("*.parquet"):
        other = "00001" if "train-00000" in shard.name else "00000"
        target = swapped / shard.parent.name / f"train-{other}-of-00002.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shard, target)
    assert questions(load_rows(swapped, "train")) != everything  # the order really changed
    assert {s: set(questions(load_rows(swapped, s, carve=fraction))) for s in sets} == sets
    # carving within one category keeps that category's rows only, split by the same rule
    logic = set(questions(load_rows(zebra, "test", carve=fraction, categories=["Visual Logic"])))
    assert logic == {q for q in sets["test"] if q.startswith("Visual Logic")}


def test_carving_errors(zebra, sketchworld, tmp_path):
    with pytest.raises(ValueError, match=f"carve must be between 0 and {MAX_CARVE}"):
        load_rows(zebra, "test", carve=0.3)
    (tmp_path / "only-test").mkdir()
    shutil.copy(sketchworld / "test.parquet", tmp_path / "only-test" / "test.parquet")
    with pytest.raises(ValueError, match=r"cannot carve test out of .*only-test: it has no train split"):
        load_rows(tmp_path / "only-test", "test", carve=0.1)
    no_answers = tmp_path / "no-answers"
    no_answers.mkdir()
    pq.write_table(text_rows(10, "x").drop(["Final Answer"]), no_answers / "train.parquet")
    with pytest.raises(ValueError, match=r"lack the column\(s\) \['Final Answer'\]"):
        load_rows(no_answers, "validation", carve=0.1)


def test_bad_sources_are_named(tmp_path):
    with pytest.raises(ValueError, match="data folder /no/such/dir does not exist"):
        load_rows("/no/such/dir", "train")
    (tmp_path / "file.parquet").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        load_rows(tmp_path / "file.parquet", "train")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "train.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ValueError, match=r"train\.parquet is not a readable Parquet file"):
        load_rows(tmp_path / "d", "train")
    with pytest.raises(ValueError, match="could not load the hub dataset 'nobody/no-such-data'"):
        load_rows("nobody/no-such-data", "train")  # HF_HUB_OFFLINE=1: the hub is never contacted


def test_select_rows_takes_families_round_robin(sketchworld):
    rows = load_rows(sketchworld, "train")  # stored family by family
    for limit in (3, 4, 5):
        picked = select_rows(rows, limit)
        counts = Counter(picked["family"])
        assert len(picked) == limit and set(counts) == {"count", "connect", "tilt"}
        assert max(counts.values()) - min(counts.values()) <= 1, counts
        order = [questions(rows).index(q) for q in questions(picked)]
        assert order == sorted(order)  # in the order they are stored
    assert len(select_rows(rows, None)) == len(rows) == len(select_rows(rows, 10_000))


def test_evaluate_cli_reads_hub_shards(sketchworld, tmp_path, capsys):
    data = tmp_path / "hub"
    (data / "data").mkdir(parents=True)
    shutil.copy(sketchworld / "test.parquet", data / "data" / "test-00000-of-00001.parquet")
    out = tmp_path / "eval"
    argv = ["--checkpoint", "tiny", "--data", str(data), "--limit", "6", "--max-new-tokens", "6", "--out", str(out)]
    assert evaluate_cli.main(argv) == 0  # every mode
    printed = capsys.readouterr().out
    assert "| overall | 6 |" in printed
    assert "no train split" in printed  # the majority baseline falls back to the evaluated answers
    assert (out / "results.json").is_file() and (out / "predictions.parquet").is_file()
