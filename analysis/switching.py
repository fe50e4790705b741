"""Switching statistics: when does the model open a sketch, how many does it write, and does it get stuck?

Pure functions over an event frame (`model/events.py`: one ANSWER row per answer, START/END rows per sketch). Each
takes `by`, a list of answer-level columns to group on (family, checkpoint, run_id, mode, latent_budget,
diffusion_loss_weight, example_id; empty = one overall row), and returns a tidy DataFrame sorted by the group columns.

- `per_answer`: one row per answer with its sketch count and loop flags (the base of everything else)
- `start_rate`: fraction of answers with at least one sketch
- `start_position_histogram`: where in the answer sketches start (relative_position bins)
- `sketch_count_distribution`: how many sketches per answer
- `accuracy_vs_sketches`: accuracy of graded answers by number of sketches
- `loop_report`: unclosed sketches, truncations in the middle of a sketch, and repeated sketching (more than
  `max_sketches` in one answer, or two sketches back to back with no text between: END + 1 == next START)
- `summary`: one row per group combining the above
- `filter_events`: the events of the answers that match filters such as {"mode": ["auto"]}; the ablation modes
  (noise-, zero-, shuffled-latents, oracle) replace the model's sketches, so pooling them with `auto` mixes its own
  behaviour with the ablations': filter by mode or group by it

Command line (prints the summary table; exit status 2 with a one-line error for a bad path or --by column):

    python -m analysis.switching --db runs/events --by family,checkpoint [--mode auto] [--csv summary.csv]

Simplified: answers are counted from every row they left (ANSWER, START or END), so a store missing ANSWER rows
still works, but then answers without sketches are invisible and the START rate reads 1.
"""

import argparse
import os
import sys
from collections.abc import Sequence

import duckdb
import numpy as np
import pandas as pd

from model.generation.events import read_events

ANSWER_KEY = (
    "run_id",
    "checkpoint",
    "latent_budget",
    "diffusion_loss_weight",
    "family",
    "mode",
    "example_id",
    "rollout",
)
GROUP_COLUMNS = ("family", "checkpoint", "run_id", "mode", "latent_budget", "diffusion_loss_weight", "example_id")
DEFAULT_MAX_SKETCHES = 8  # more sketches than this in one answer counts as repeated sketching
_NEEDED = (
    *ANSWER_KEY,
    "event",
    "token_index",
    "relative_position",
    "sketch_index",
    "answer_length",
    "correct",
    "truncated",
    "latency_s",
)


def per_answer(events: pd.DataFrame, max_sketches: int = DEFAULT_MAX_SKETCHES) -> pd.DataFrame:
    """One row per answer: key columns, num_sketches, answer_length, correct, truncated, latency_s and loop flags."""
    (out,) = _run(events, [f"SELECT * FROM answers ORDER BY {', '.join(ANSWER_KEY)}"], max_sketches)
    return out.astype(
        {"correct": "boolean", "num_sketches": "int64", "num_unclosed": "int64", "num_back_to_back": "int64"}
    )


def start_rate(events: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Per group: num_answers, num_with_sketch and start_rate (fraction of answers with >= 1 sketch)."""
    by = check_by(by)
    sql = f"""SELECT {_select(by)} count(*) AS num_answers,
                  count(*) FILTER (WHERE num_sketches > 0) AS num_with_sketch,
                  avg(CAST(num_sketches > 0 AS DOUBLE)) AS start_rate
              FROM answers {_group_by(by)} {_order_by(by)}"""
    return _run(events, [sql])[0]


def start_position_histogram(events: pd.DataFrame, by: Sequence[str] = (), bins: int = 10) -> pd.DataFrame:
    """Per group and bin of relative position in [0, 1]: count and fraction of START events (empty bins included)."""
    by = check_by(by)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    # Bins from the integer positions, not the float32 relative_position: 45/50 stored as 0.8999999 would fall
    # into the bin below 0.9.
    sql = f"""SELECT {_select(by)} CAST(least((token_index * {bins}) // answer_length, {bins - 1}) AS INTEGER) AS bin,
                  count(*) AS count
              FROM ev WHERE event = 'START' AND answer_length > 0 GROUP BY ALL"""
    counts = _run(events, [sql], max_sketches=None)[0]
    groups = counts[by].drop_duplicates() if by else pd.DataFrame(index=[0])
    grid = groups.merge(pd.DataFrame({"bin": np.arange(bins, dtype="int32")}), how="cross")
    out = grid.merge(counts, on=[*by, "bin"], how="left")
    out["count"] = out["count"].fillna(0).astype("int64")
    totals = out.groupby(by)["count"].transform("sum") if by else out["count"].sum()
    out["fraction"] = out["count"] / totals
    out.insert(len(by) + 1, "bin_start", out["bin"] / bins)
    out.insert(len(by) + 2, "bin_end", (out["bin"] + 1) / bins)
    return out.sort_values([*by, "bin"]).reset_index(drop=True)


def sketch_count_distribution(events: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Per group and number of sketches: num_answers and fraction of the group's answers."""
    by = check_by(by)
    partition = f"PARTITION BY {', '.join(by)}" if by else ""
    sql = f"""SELECT {_select(by)} num_sketches, count(*) AS num_answers,
                  count(*) / sum(count(*)) OVER ({partition}) AS fraction
              FROM answers {_group_by([*by, "num_sketches"])} {_order_by([*by, "num_sketches"])}"""
    return _run(events, [sql])[0]


def accuracy_vs_sketches(events: pd.DataFrame, by: Sequence[str] = (), cap: int | None = None) -> pd.DataFrame:
    """Per group and number of sketches: num_answers, num_graded and accuracy over graded answers.

    With `cap`, answers with more than `cap` sketches are pooled into the row num_sketches == cap (read it as ">=").
    """
    by = check_by(by)
    count = f"least(num_sketches, {int(cap)})" if cap is not None else "num_sketches"
    sql = f"""SELECT {_select(by)} {count} AS num_sketches, count(*) AS num_answers, count(correct) AS num_graded,
                  avg(CAST(correct AS DOUBLE)) AS accuracy
              FROM answers GROUP BY ALL {_order_by([*by, "num_sketches"])}"""
    return _run(events, [sql])[0]


def loop_report(
    events: pd.DataFrame, by: Sequence[str] = (), max_sketches: int = DEFAULT_MAX_SKETCHES
) -> pd.DataFrame:
    """Per group: counts and rates of unclosed sketches, mid-sketch truncations and repeated sketching."""
    by = check_by(by)
    flags = ("unclosed", "truncated_mid_sketch", "too_many_sketches", "back_to_back", "repeated")
    counts = ", ".join(f"count(*) FILTER (WHERE {f}) AS num_{f}" for f in flags)
    rates = ", ".join(f"avg(CAST({f} AS DOUBLE)) AS {f}_rate" for f in flags)
    sql = (
        f"SELECT {_select(by)} count(*) AS num_answers, {counts}, {rates} FROM answers {_group_by(by)} {_order_by(by)}"
    )
    return _run(events, [sql], max_sketches)[0]


def summary(events: pd.DataFrame, by: Sequence[str] = (), max_sketches: int = DEFAULT_MAX_SKETCHES) -> pd.DataFrame:
    """One row per group: answers, START rate, sketches per answer, START position, accuracy, loops, latency."""
    by = check_by(by)
    join = f"LEFT JOIN positions USING ({', '.join(by)})" if by else "CROSS JOIN positions"
    sql = f"""
        WITH groups AS (
            SELECT {_select(by)}
                count(*) AS num_answers,
                avg(CAST(num_sketches > 0 AS DOUBLE)) AS start_rate,
                avg(num_sketches) AS mean_sketches,
                max(num_sketches) AS max_sketches,
                avg(CAST(correct AS DOUBLE)) AS accuracy,
                avg(CAST(correct AS DOUBLE)) FILTER (WHERE num_sketches > 0) AS accuracy_with_sketch,
                avg(CAST(correct AS DOUBLE)) FILTER (WHERE num_sketches = 0) AS accuracy_without_sketch,
                avg(CAST(truncated AS DOUBLE)) AS truncated_rate,
                avg(CAST(unclosed AS DOUBLE)) AS unclosed_rate,
                avg(CAST(truncated_mid_sketch AS DOUBLE)) AS truncated_mid_sketch_rate,
                avg(CAST(repeated AS DOUBLE)) AS repeated_rate,
                avg(latency_s) AS mean_latency_s
            FROM answers {_group_by(by)}
        ),
        positions AS (
            SELECT {_select(by)} avg(relative_position) AS mean_start_position
            FROM ev WHERE event = 'START' {_group_by(by)}
        )
        SELECT {_select(by)} num_answers, start_rate, mean_sketches, max_sketches, mean_start_position, accuracy,
            accuracy_with_sketch, accuracy_without_sketch, truncated_rate, unclosed_rate, truncated_mid_sketch_rate,
            repeated_rate, mean_latency_s
        FROM groups {join} {_order_by(by)}
    """
    return _run(events, [sql], max_sketches)[0]


def filter_events(events: pd.DataFrame, filters: dict[str, Sequence[str]]) -> pd.DataFrame:
    """The rows whose every filtered column holds one of the wanted values ({column: values}; empty values keep
    everything). ValueError naming a column that is not a group column."""
    check_by(list(filters))
    for column, wanted in filters.items():
        if wanted:
            events = events[events[column].isin(list(wanted))]
    return events


def check_by(by: Sequence[str] | str) -> list[str]:
    """`by` as a list of valid group columns; accepts "family,checkpoint". ValueError naming unknown columns."""
    if isinstance(by, str):
        by = [b.strip() for b in by.split(",") if b.strip()]
    by = list(by)
    unknown = [b for b in by if b not in GROUP_COLUMNS]
    if unknown:
        raise ValueError(f"unknown group column(s) {unknown}; choose from {list(GROUP_COLUMNS)}")
    return by


def _answers_sql(max_sketches: int) -> str:
    """SQL for the per-answer table over the event view `ev`, in a single GROUP BY (joins were 2x slower at 1M rows).

    Unclosed sketches = STARTs minus ENDs: an END row is only ever logged for a sketch whose START was logged.
    Back to back: START positions are distinct within an answer and so are END + 1 positions; a value shared by
    both lists is an END at p - 1 followed by a START at p. Each answer must be logged once (see model/events.py).
    """
    key = ", ".join(ANSWER_KEY)
    marker = "CASE WHEN event = 'START' THEN token_index WHEN event = 'END' THEN token_index + 1 END"
    markers = f"list({marker}) FILTER (WHERE event IN ('START', 'END'))"
    return f"""
        SELECT *,
            num_unclosed > 0 AS unclosed,
            coalesce(truncated, false) AND num_unclosed > 0 AS truncated_mid_sketch,
            num_sketches > {int(max_sketches)} AS too_many_sketches,
            num_back_to_back > 0 AS back_to_back,
            num_sketches > {int(max_sketches)} OR num_back_to_back > 0 AS repeated
        FROM (
            SELECT {key},
                count(*) FILTER (WHERE event = 'START') AS num_sketches,
                max(answer_length) AS answer_length,
                bool_or(correct) AS correct,
                bool_or(truncated) AS truncated,
                max(latency_s) AS latency_s,
                count(*) FILTER (WHERE event = 'START') - count(*) FILTER (WHERE event = 'END') AS num_unclosed,
                coalesce(len({markers}) - len(list_distinct({markers})), 0) AS num_back_to_back
            FROM ev GROUP BY {key}
        )
    """


def _run(events: pd.DataFrame, queries: list[str], max_sketches: int | None = DEFAULT_MAX_SKETCHES) -> list:
    """Run queries over views `ev` (the events) and, unless max_sketches is None, table `answers` (per answer)."""
    missing = [c for c in _NEEDED if c not in events.columns]
    if missing:
        raise ValueError(f"event frame lacks column(s) {missing}; build it with model.events")
    # A private connection per call keeps the functions pure and safe to call from several threads.
    with duckdb.connect() as con:
        con.register("ev", events[list(_NEEDED)])
        if max_sketches is not None:
            con.execute(f"CREATE TEMP TABLE answers AS {_answers_sql(max_sketches)}")
        return [con.sql(sql).df() for sql in queries]


def _select(by: list[str]) -> str:
    return "".join(f"{b}, " for b in by)


def _group_by(by: list[str]) -> str:
    return "GROUP BY " + ", ".join(by) if by else ""


def _order_by(by: list[str]) -> str:
    return "ORDER BY " + ", ".join(by) if by else ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.switching", description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True, help="event store directory (part-*.parquet files)")
    parser.add_argument("--by", default="", help=f"comma-separated group columns from {', '.join(GROUP_COLUMNS)}")
    parser.add_argument("--mode", default="", help="comma-separated modes to keep (default: all; e.g. auto)")
    parser.add_argument("--csv", default=None, help="also write the summary table to this CSV file")
    parser.add_argument("--max-sketches", type=int, default=DEFAULT_MAX_SKETCHES, help="more counts as repeated")
    args = parser.parse_args(argv)

    try:
        by = check_by(args.by)
    except ValueError as err:
        print(f"switching: error: {err}", file=sys.stderr)
        return 2
    if not os.path.isdir(args.db):
        print(
            f"switching: error: no event store at {args.db!r} (expected a directory of part-*.parquet files)",
            file=sys.stderr,
        )
        return 2
    events = read_events(args.db)  # a damaged part file is skipped with a warning naming it
    skipped = events.attrs.get("skipped_parts", [])
    if skipped:
        print(f"switching: skipped {len(skipped)} damaged part file(s) of {args.db!r}: {', '.join(skipped)}",
              file=sys.stderr)  # fmt: skip
    events = filter_events(events, {"mode": [m.strip() for m in args.mode.split(",") if m.strip()]})
    if events.empty:
        print(f"no events in {args.db!r}" + (f" with mode {args.mode}" if args.mode else ""))
        return 0
    table = summary(events, by, args.max_sketches)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
