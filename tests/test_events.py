"""Event rows from Traces, and the append-only Parquet store: round trip, validation, concurrent readers, damaged
part files skipped and named."""

import os
import threading
import time
import warnings
from datetime import UTC, datetime
from itertools import accumulate
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model.generation.events import (
    EVENT_SCHEMA,
    append_events,
    connect,
    events_from_trace,
    read_events,
    validate_events,
)
from model.generation.trace import SketchSegment, TextSegment, Trace

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _sketch(index: int, start: int, num_latents: int = 4) -> SketchSegment:
    return SketchSegment(index, start, start + num_latents + 1, 0, num_latents, "generated", 0.01)


def _trace(sketch_starts=(3, 12), num_positions=40, truncated=False) -> Trace:
    segments = [TextSegment("think", [1, 2, 3], 0, 0)] + [_sketch(i, s) for i, s in enumerate(sketch_starts)]
    return Trace("q?", "auto", segments, truncated=truncated, num_positions=num_positions, timings={"total_s": 2.5})


def _events(trace: Trace, **kwargs) -> pd.DataFrame:
    args = dict(
        run_id="run1",
        checkpoint="ck",
        latent_budget=4,
        diffusion_loss_weight=0.5,
        family="maze",
        example_id="ex1",
        correct=True,
        now=NOW,
    )
    return events_from_trace(trace, **{**args, **kwargs})


def test_events_from_trace_rows():
    frame = _events(_trace())
    assert list(frame.columns) == EVENT_SCHEMA.names
    assert frame["event"].tolist() == ["ANSWER", "START", "END", "START", "END"]
    assert frame["token_index"].tolist() == [-1, 3, 8, 12, 17]
    assert frame["sketch_index"].tolist() == [-1, 0, 0, 1, 1]
    assert frame["sketch_length"].tolist() == [0, 4, 4, 4, 4]
    assert pd.isna(frame["relative_position"].iloc[0])
    assert frame["relative_position"].iloc[1:].tolist() == pytest.approx([3 / 40, 8 / 40, 12 / 40, 17 / 40])
    assert (frame["num_sketches"] == 2).all() and (frame["answer_length"] == 40).all()
    assert frame["correct"].all() and not frame["truncated"].any()
    assert frame["latency_s"].tolist() == pytest.approx([2.5] * 5)
    assert (frame["time"] == pd.Timestamp(NOW)).all() and (frame["mode"] == "auto").all()
    assert (frame["rollout"] == 0).all() and (frame["family"] == "maze").all()


def test_zero_sketches_and_truncated_mid_sketch():
    plain = _events(_trace(sketch_starts=()), correct=None)
    assert plain["event"].tolist() == ["ANSWER"]
    assert plain["num_sketches"].tolist() == [0] and pd.isna(plain["correct"].iloc[0])
    # The second sketch starts at 37 with K=4: its ⟨END⟩ would sit at 42, past the 40 positions written.
    cut = _events(_trace(sketch_starts=(3, 37), truncated=True))
    assert cut["event"].tolist() == ["ANSWER", "START", "END", "START"]
    with pytest.raises(ValueError, match="num_positions=10"):
        _events(_trace(sketch_starts=(12,), num_positions=10))


def test_append_read_round_trip(tmp_path):
    store = tmp_path / "events"
    first, second = _events(_trace()), _events(_trace(sketch_starts=()), example_id="ex2", correct=None)
    for frame in (first, second):
        append_events(store, frame)
    back = read_events(store)
    order = ["example_id", "event", "token_index"]
    expected = pd.concat([first, second]).sort_values(order).reset_index(drop=True)
    pd.testing.assert_frame_equal(back.sort_values(order).reset_index(drop=True), expected)
    assert len(read_events(store, where="event = 'START'")) == 2
    counts = dict(connect(store).sql("SELECT example_id, count(*) FROM events GROUP BY 1").fetchall())
    assert counts == {"ex1": 5, "ex2": 1}


def test_empty_or_missing_store(tmp_path):
    for path in (tmp_path / "missing", tmp_path):
        frame = read_events(path)
        assert frame.empty and list(frame.columns) == EVENT_SCHEMA.names
        assert connect(path).sql("SELECT count(*) FROM events").fetchall() == [(0,)]


@pytest.mark.parametrize(
    "change, column",
    [
        (lambda f: f.drop(columns=["family"]), "family"),
        (lambda f: f.assign(colour="red"), "colour"),
        (lambda f: f.assign(event=["ANSWER", "BEGIN", "END", "START", "END"]), "BEGIN"),
        (lambda f: f.assign(token_index=["a", "b", "c", "d", "e"]), "token_index"),
        (lambda f: f.assign(truncated=[False, None, False, False, False]), "truncated"),
        (lambda f: f.assign(latent_budget=2**40), "latent_budget"),
    ],
)
def test_bad_frames_raise_naming_the_column(tmp_path, change, column):
    bad = change(_events(_trace()))
    with pytest.raises(ValueError, match=column):
        append_events(tmp_path / "events", bad)
    assert not (tmp_path / "events").exists()  # nothing written for a rejected batch


def test_readers_see_only_whole_batches(tmp_path):
    store = tmp_path / "events"
    row = _events(_trace(sketch_starts=()))
    # A killed writer leaves its hidden temporary file, here a Parquet file cut in half: readers must skip it.
    store.mkdir()
    whole_file = tmp_path / "whole.parquet"
    pq.write_table(validate_events(_events(_trace())), whole_file)
    (store / ".part-00000000000000000001-1-000000.parquet.tmp").write_bytes(whole_file.read_bytes()[:300])

    sizes = [3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41]  # distinct sizes: a torn batch would show in the count
    whole = set(accumulate(sizes, initial=0))
    done = threading.Event()

    def writer():
        for size in sizes:
            append_events(store, pd.concat([row] * size, ignore_index=True))
            time.sleep(0.02)  # lets the reader interleave with the writer
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    seen = []
    while not done.is_set():
        seen.append(len(read_events(store)))
    thread.join()
    seen.append(len(read_events(store)))
    assert set(seen) <= whole, sorted(set(seen) - whole)
    assert seen[-1] == sum(sizes) and len(set(seen)) >= 3  # the reads did overlap the writes
    assert sorted(os.listdir(store))[0].startswith(".part-")  # the stale temp file is still there, ignored


def _damage_pages(path: Path) -> None:
    """Flip bytes in the middle of a part: the footer still reads, the data pages do not."""
    data = bytearray(path.read_bytes())
    for k in range(200, 1200):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damaged_parts_are_skipped_and_named(tmp_path):
    store = tmp_path / "events"
    frames = [_events(_trace(), example_id=f"ex{i}") for i in range(5)]
    for frame in frames:
        append_events(store, frame)
    parts = sorted(store.glob("part-*.parquet"))
    parts[1].write_bytes(parts[1].read_bytes()[:-100])  # truncated: no footer
    _damage_pages(parts[2])  # a footer, but pages that do not decode
    other = store / "part-99999999999999999999-1-000000.parquet"  # a Parquet file of another schema
    pq.write_table(pa.table({"colour": ["red"]}), other)
    with pytest.warns(UserWarning) as caught:
        events = read_events(store)
    named = {str(w.message).removeprefix("event store: skipping ").split(": ")[0] for w in caught}
    assert named == {str(parts[1]), str(parts[2]), str(other)}
    assert events.attrs["skipped_parts"] == sorted([str(parts[1]), str(parts[2]), str(other)])
    good = pd.concat([frames[0], frames[3], frames[4]], ignore_index=True)  # every row of the whole parts
    order = ["example_id", "event", "token_index"]
    back = events.sort_values(order).reset_index(drop=True)
    pd.testing.assert_frame_equal(back, good.sort_values(order).reset_index(drop=True))
    with pytest.warns(UserWarning, match="skipping"):
        assert len(read_events(store, where="event = 'START'")) == 6
    # connect's view is lazy: it leaves out parts whose footer or schema is wrong (a part with damaged pages only
    # fails the queries that read them; read_events is the reader that finds those)
    parts[2].unlink()
    with pytest.warns(UserWarning) as caught:
        con = connect(store)
    assert sorted(str(w.message).split(" ")[3].rstrip(":") for w in caught) == [str(parts[1]), str(other)]
    counts = dict(con.sql("SELECT example_id, count(*) FROM events GROUP BY 1").fetchall())
    assert counts == {"ex0": 5, "ex3": 5, "ex4": 5}


def test_a_clean_store_skips_nothing(tmp_path):
    append_events(tmp_path / "events", _events(_trace()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        events = read_events(tmp_path / "events")
    assert events.attrs["skipped_parts"] == [] and len(events) == 5
    with pytest.raises(duckdb.Error):  # a bad filter is the caller's error, not a damaged part
        read_events(tmp_path / "events", where="no_such_column = 1")
