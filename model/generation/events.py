"""Switching events: one row per ⟨START⟩ / ⟨END⟩ the model wrote, kept in an append-only Parquet store.

Every finished `Trace` becomes a few rows (see `EVENT_SCHEMA` for the columns):

- one `ANSWER` row per answer, whether or not it sketched (token_index = -1, sketch_index = -1, sketch_length = 0,
  relative_position null), so that answers with zero sketches still count in the denominators of rates;
- one `START` row per sketch (token_index = response position of ⟨START⟩);
- one `END` row per sketch whose ⟨END⟩ was written (token_index = response position of ⟨END⟩). A row truncated in the
  middle of a sketch has a START without its END; `analysis/switching.py` reports those as unclosed.

An answer is identified by (run_id, checkpoint, latent_budget, diffusion_loss_weight, family, mode, example_id,
rollout): log a second generation of the same example under another rollout number or run_id.

The store is a directory of `part-*.parquet` files, one per `append_events` call (`log_traces` is the one way callers
log finished Traces). A batch is written atomically (model/core/atomic.py): a writer killed mid-write loses only its
in-flight batch, and readers only ever see whole files. Several
processes may append to the same store at once; names carry time, pid and a counter so they never collide.

Read it back with `read_events(path)` (a DataFrame) or `connect(path)` (DuckDB with a view `events`):

    con = connect("runs/events")
    con.sql("SELECT family, count(*) FROM events WHERE event = 'START' GROUP BY family").show()

Simplified: no compaction of small part files (thousands of parts read fine with DuckDB), and no schema evolution:
every part must have exactly `EVENT_SCHEMA`.
"""

import glob
import itertools
import os
import time
import warnings
from datetime import UTC, datetime

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from model.core.atomic import atomic_file
from model.generation.answers import normalize_answer
from model.generation.trace import Trace

EVENT_KINDS = ("START", "END", "ANSWER")

EVENT_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("checkpoint", pa.string(), nullable=False),
        pa.field("latent_budget", pa.int32(), nullable=False),  # K the checkpoint was trained with
        pa.field("diffusion_loss_weight", pa.float32(), nullable=False),  # λ
        pa.field("family", pa.string(), nullable=False),  # task family, "" when unknown
        pa.field("example_id", pa.string(), nullable=False),
        pa.field("rollout", pa.int32(), nullable=False),  # which sample of a group; 0 normally
        pa.field("mode", pa.string(), nullable=False),  # Trace.mode
        pa.field("event", pa.string(), nullable=False),  # START | END | ANSWER
        pa.field("token_index", pa.int32(), nullable=False),  # response position of the marker; -1 for ANSWER
        pa.field("relative_position", pa.float32()),  # token_index / answer_length; null for ANSWER
        pa.field("sketch_index", pa.int32(), nullable=False),  # 0-based; -1 for ANSWER
        pa.field("sketch_length", pa.int32(), nullable=False),  # latents in this sketch; 0 for ANSWER
        pa.field("num_sketches", pa.int32(), nullable=False),  # sketches in the whole answer
        pa.field("answer_length", pa.int32(), nullable=False),  # Trace.num_positions
        pa.field("correct", pa.bool_()),  # null when the answer was not graded
        pa.field("truncated", pa.bool_(), nullable=False),
        pa.field("latency_s", pa.float32()),  # whole-answer latency, Trace.timings["total_s"]; null if not timed
        pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),  # when the row was logged
    ]
)

PART_GLOB = "part-*.parquet"
_part_counter = itertools.count()  # next() on itertools.count is atomic under the GIL, so threads get unique names


def events_from_trace(
    trace: Trace,
    *,
    run_id: str,
    checkpoint: str,
    latent_budget: int,
    diffusion_loss_weight: float,
    family: str = "",
    example_id: str = "",
    rollout: int = 0,
    correct: bool | None = None,
    now: datetime | None = None,
) -> pd.DataFrame:
    """The event rows of one finished Trace: one ANSWER row, then START (and END when written) per sketch."""
    now = now if now is not None else datetime.now(UTC)
    num_positions = trace.num_positions
    sketches = sorted(trace.sketches, key=lambda s: s.start_position)
    for sketch in sketches:
        if sketch.start_position >= num_positions:
            raise ValueError(
                f"sketch {sketch.index} starts at response position {sketch.start_position} but the trace has only "
                f"num_positions={num_positions}; set Trace.num_positions to the positions written"
            )
    latency = trace.timings.get("total_s")
    common = {
        "run_id": run_id,
        "checkpoint": checkpoint,
        "latent_budget": latent_budget,
        "diffusion_loss_weight": diffusion_loss_weight,
        "family": family,
        "example_id": example_id,
        "rollout": rollout,
        "mode": trace.mode,
        "num_sketches": len(sketches),
        "answer_length": num_positions,
        "correct": correct,
        "truncated": trace.truncated,
        "latency_s": latency,
        "time": now,
    }
    answer_row = {
        "event": "ANSWER",
        "token_index": -1,
        "relative_position": None,
        "sketch_index": -1,
        "sketch_length": 0,
    }
    rows = [{**common, **answer_row}]
    for sketch in sketches:
        markers = [("START", sketch.start_position)]
        # ⟨END⟩ sits at end_position; a row cut off by max_new_tokens never wrote it.
        if sketch.end_position < num_positions:
            markers.append(("END", sketch.end_position))
        for event, position in markers:
            rows.append(
                {
                    **common,
                    "event": event,
                    "token_index": position,
                    "relative_position": position / num_positions,
                    "sketch_index": sketch.index,
                    "sketch_length": sketch.num_latents,
                }
            )
    return _to_pandas(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA))


def empty_events() -> pd.DataFrame:
    """A frame with no rows and the event columns and dtypes."""
    return _to_pandas(EVENT_SCHEMA.empty_table())


def validate_events(frame: pd.DataFrame) -> pa.Table:
    """The frame as an Arrow table with `EVENT_SCHEMA`; ValueError naming the offending column otherwise."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame of events, got {type(frame).__name__}")
    missing = [name for name in EVENT_SCHEMA.names if name not in frame.columns]
    extra = [str(name) for name in frame.columns if name not in EVENT_SCHEMA.names]
    if missing or extra:
        raise ValueError(f"event frame columns do not match EVENT_SCHEMA: missing {missing}, unexpected {extra}")
    bad_kinds = sorted({str(v) for v in frame["event"].unique()} - set(EVENT_KINDS))
    if bad_kinds:
        raise ValueError(f"column 'event' has values {bad_kinds}; allowed values are {list(EVENT_KINDS)}")
    arrays = []
    for field in EVENT_SCHEMA:
        try:
            array = pa.array(frame[field.name], type=field.type, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as err:
            raise ValueError(f"column {field.name!r} cannot be stored as {field.type}: {err}") from None
        if not field.nullable and array.null_count:
            raise ValueError(f"column {field.name!r} has {array.null_count} null value(s) but may not be null")
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)


def append_events(path: str | os.PathLike, frame: pd.DataFrame) -> str | None:
    """Write one batch as a new part file in the store directory `path`; returns the part's path (None if empty)."""
    table = validate_events(frame)  # before touching the disk: a bad batch writes nothing
    if table.num_rows == 0:
        return None
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"event store {path} is a file, not a folder")
    name = f"part-{time.time_ns():020d}-{os.getpid()}-{next(_part_counter):06d}.parquet"
    final = os.path.join(path, name)
    with atomic_file(final) as tmp:  # hidden until renamed: invisible to the part-*.parquet glob readers use
        pq.write_table(table, tmp)
    return final


def log_traces(
    path: str | os.PathLike,
    traces: list[Trace],
    *,
    run_id: str,
    checkpoint: str,
    latent_budget: int,
    diffusion_loss_weight: float,
    families: list[str] | None = None,
    example_ids: list[str] | None = None,
    rollouts: list[int] | None = None,
    answers: list[str | None] | None = None,
) -> str | None:
    """Append the switch events of finished traces to the store at `path`, one part file per call: the one way every
    caller (CLI, evaluation, GRPO, app) logs. `answers` (the known answer of each trace, None where there is none)
    make the ANSWER rows record whether the trace got it right."""
    n = len(traces)
    families, example_ids = families or [""] * n, example_ids or [""] * n
    rollouts, answers = rollouts or [0] * n, answers or [None] * n
    frames = [
        events_from_trace(
            trace,
            run_id=run_id,
            checkpoint=checkpoint,
            latent_budget=latent_budget,
            diffusion_loss_weight=diffusion_loss_weight,
            family=family,
            example_id=example_id,
            rollout=rollout,
            correct=None if answer is None else trace.answer == normalize_answer(answer),
        )
        for trace, family, example_id, rollout, answer in zip(traces, families, example_ids, rollouts, answers)
    ]
    return append_events(path, pd.concat(frames, ignore_index=True)) if frames else None


def read_events(path: str | os.PathLike, where: str | None = None) -> pd.DataFrame:
    """All events in the store (optionally filtered by a SQL `where` clause), with `EVENT_SCHEMA` dtypes.

    A part file that cannot be read (damaged, truncated, another schema; its footer or its data) is skipped with a
    warning that names it; `read_events(...).attrs["skipped_parts"]` lists them, so a caller can say how much was
    left out."""
    parts, skipped = readable_parts(path)
    try:
        table = _query_parts(parts, where)
    except duckdb.Error:
        # a part whose footer reads but whose data pages do not: find it by reading each part alone, then skip it
        # (a bad `where` clause fails again below, with DuckDB's own message)
        damaged = [part for part in parts if not _data_reads(part)]
        for part in damaged:
            warnings.warn(f"event store: skipping {part}: its data cannot be read", stacklevel=2)
        parts, skipped = [p for p in parts if p not in damaged], sorted(skipped + damaged)
        table = _query_parts(parts, where)
    frame = empty_events() if table is None else _to_pandas(_conform(table))
    frame.attrs["skipped_parts"] = skipped
    return frame


def _query_parts(parts: list[str], where: str | None) -> pa.Table | None:
    if not parts:
        return None
    sql = f"SELECT * FROM read_parquet({_file_list(parts)})"
    if where:
        sql += f" WHERE {where}"
    with duckdb.connect() as con:
        return con.sql(sql).to_arrow_table()


def _data_reads(part: str) -> bool:
    try:
        with duckdb.connect() as con:
            con.sql(f"SELECT * FROM read_parquet({_file_list([part])})").to_arrow_table()
        return True
    except duckdb.Error:
        return False


def connect(path: str | os.PathLike) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a view `events` over the store's readable part files (parts whose footer
    or schema is damaged are skipped with a warning, as in `read_events`; the view is lazy, so a part whose footer
    reads but whose data pages do not makes queries that read those pages fail: `read_events` finds and skips it).
    Parts appended later need a new connection."""
    con = duckdb.connect()
    parts, _ = readable_parts(path)
    if parts:
        con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet({_file_list(parts)})")
    else:
        con.register("_events_empty", EVENT_SCHEMA.empty_table())
        con.execute("CREATE VIEW events AS SELECT * FROM _events_empty")
    return con


def readable_parts(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(part files whose footer reads and whose schema is EVENT_SCHEMA, the others), each sorted; a warning names
    every file left out."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"event store {path} is a file, not a folder")
    good, bad = [], []
    for part in sorted(glob.glob(os.path.join(glob.escape(os.fspath(path)), PART_GLOB))):
        try:
            schema = pq.read_schema(part)
            ok = [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in EVENT_SCHEMA]
        except (pa.ArrowException, OSError):
            ok = False
        (good if ok else bad).append(part)
    for part in bad:
        warnings.warn(f"event store: skipping {part}: not a readable part with the event schema", stacklevel=3)
    return good, bad


def _file_list(parts: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in parts) + "]"


def _conform(table: pa.Table) -> pa.Table:
    # DuckDB hands back nullable fields and its session time zone; cast to our exact schema.
    return pa.Table.from_arrays([table[f.name].cast(f.type) for f in EVENT_SCHEMA], schema=EVENT_SCHEMA)


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    # Nullable booleans, so an ungraded answer stays <NA> instead of becoming False or object.
    return table.to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get)
