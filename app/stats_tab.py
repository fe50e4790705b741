"""The Switching-statistics tab: the event store (every answer's ⟨START⟩/⟨END⟩ events) as plots and a table.

Filters by checkpoint, family, run (one run per browser session or API client, see `plumbing.run_id_for`) and mode
(`auto` by default: Compare's ablation runs replace the model's sketches, and pooled with `auto` they would blur
what the model itself does); plots the START rate per family, where sketches start, and accuracy against the
number of sketches; the summary table (`analysis.switching.summary`, grouped as chosen, always with the mode as a
column) downloads as CSV. Answers to uploaded images have no family and show as "(upload)". Damaged part files of
the store are skipped (model/generation/events.py) and named here.
"""

import os
import tempfile
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from analysis import figures, switching
from app.plumbing import wire
from app.service import Service
from model.generation.events import read_events

UPLOAD_FAMILY = "(upload)"
DEFAULT_MODES = ("auto",)
FILTERS = {"checkpoint": "checkpoints", "family": "families", "run_id": "runs", "mode": "modes"}  # column: page name


@dataclass
class Stats:
    num_answers: int
    choices: dict[str, list[str]]  # checkpoint / family / run_id / mode -> values in the store
    table: pd.DataFrame  # switching.summary of the filtered events
    figures: tuple  # start rate, START positions, accuracy vs sketches (None each when there is nothing)
    message: str


def compute(
    store: str,
    checkpoints: list[str] | None = None,
    families: list[str] | None = None,
    runs: list[str] | None = None,
    by: list[str] | None = None,
    modes: list[str] | None = DEFAULT_MODES,
) -> Stats:
    """Statistics of the answers in the store that match every non-empty filter, grouped by `by` and the mode.
    ValueError (with the filter's name) for a filter value that is not text."""
    wanted = {"checkpoint": checkpoints, "family": families, "run_id": runs, "mode": modes}
    for column, values in wanted.items():
        _check_text(FILTERS[column], values or [])
    by = switching.check_by(by if by is not None else ["family"])
    by = by if "mode" in by else [*by, "mode"]
    events = read_events(store)
    skipped = events.attrs.get("skipped_parts", [])
    events["family"] = events["family"].replace("", UPLOAD_FAMILY)
    choices = {c: sorted(events[c].unique().tolist()) for c in FILTERS}
    events = switching.filter_events(events, wanted)
    num_answers = int((events["event"] == "ANSWER").sum())
    if events.empty:
        where = "in the store" if not any(choices.values()) else "matching these filters"
        message = f"No answers {where} (`{store}`) yet: answer something in the Reason tab, then refresh."
        return Stats(0, choices, pd.DataFrame(), (None, None, None), message + _skipped_note(skipped))
    rates = switching.start_rate(events, by=["family"])
    positions = switching.start_position_histogram(events, by=["family"])
    accuracy = switching.accuracy_vs_sketches(events, by=["family"])
    plots = (
        figures.start_rate_bar(rates),
        figures.start_position_histogram(positions) if (positions["count"] > 0).any() else None,
        figures.accuracy_vs_sketches(accuracy) if accuracy["num_graded"].sum() else None,
    )
    message = f"{num_answers} answer(s) from `{store}`"
    if plots[1] is None:
        message += " · no sketches yet, so no START positions"
    if plots[2] is None:
        message += " · no graded answers (examples with a known answer) yet, so no accuracy"
    return Stats(num_answers, choices, switching.summary(events, by), plots, message + _skipped_note(skipped))


def _check_text(name: str, values: list) -> None:
    for value in values:
        try:
            str(value).encode("utf-8")
        except UnicodeEncodeError as err:
            where = f"character {err.start + 1} cannot be encoded"
            raise ValueError(f"the {name} filter {value!r} is not valid UTF-8 text ({where})") from None


def _skipped_note(skipped: list[str]) -> str:
    if not skipped:
        return ""
    names = ", ".join(os.path.basename(str(part)) for part in skipped[:3]) + (" …" if len(skipped) > 3 else "")
    return f" · **{len(skipped)} damaged part file(s) skipped:** {names}"


def show(service: Service, checkpoints, families, runs, modes, by):
    try:
        stats = compute(service.config.event_store, checkpoints, families, runs, by or [], modes)
    except ValueError as err:
        gr.Warning(str(err))
        return {}
    csv = gr.update(visible=False)
    if not stats.table.empty:
        path = os.path.join(tempfile.mkdtemp(prefix="switching-"), "switching_summary.csv")
        stats.table.to_csv(path, index=False)
        csv = gr.update(value=path, visible=True)
    chosen = {"checkpoint": checkpoints, "family": families, "run_id": runs, "mode": modes}
    out = {
        FILTERS[column]: gr.update(choices=stats.choices[column], value=[v for v in (values or [])
                                                                         if v in stats.choices[column]])
        for column, values in chosen.items()
    }  # fmt: skip
    for name, fig in zip(("rate", "positions", "accuracy"), stats.figures):
        out[name] = gr.update(value=fig, visible=fig is not None)  # blank panels hidden
    out["table"] = gr.update(value=stats.table.round(4), visible=not stats.table.empty)
    return {**out, "message": stats.message, "csv": csv}


def build(service: Service, tab: gr.Tab) -> None:
    gr.Markdown(
        "Every answer of this app (and of `python -m model.generate --event-log`, evaluations, …) appends its "
        f"switch events to the store `{service.config.event_store}`. Empty filters keep everything; the mode filter "
        "starts at `auto`, since Compare's other modes replace the model's sketches."
    )
    with gr.Row():
        checkpoints = gr.Dropdown([], multiselect=True, label="Checkpoints")
        families = gr.Dropdown([], multiselect=True, label="Families")
        runs = gr.Dropdown([], multiselect=True, label="Runs")
        modes = gr.Dropdown(list(DEFAULT_MODES), value=list(DEFAULT_MODES), multiselect=True, label="Modes",
                            elem_id="stats-modes")  # fmt: skip
        by = gr.Dropdown(list(switching.GROUP_COLUMNS), value=["family"], multiselect=True, label="Table grouped by")
    with gr.Row():
        message = gr.Markdown(elem_id="stats-message")
        refresh = gr.Button("Refresh", scale=0)
    with gr.Row():
        rate = gr.Plot(label="START rate per family")
        positions = gr.Plot(label="Where sketches start (relative position in the answer)")
    accuracy = gr.Plot(label="Accuracy vs number of sketches")
    table = gr.Dataframe(label="Summary", interactive=False, elem_id="stats-table")
    csv = gr.DownloadButton("Download CSV", visible=False)
    inputs = [checkpoints, families, runs, modes, by]
    outputs = dict(checkpoints=checkpoints, families=families, runs=runs, modes=modes, message=message, rate=rate)
    outputs.update(positions=positions, accuracy=accuracy, table=table, csv=csv)
    # the API's /switching_stats returns the table as records; these are the page's own events
    for number, trigger in enumerate((tab.select, refresh.click, *[c.input for c in inputs])):
        wire(trigger, show, (service,), inputs, outputs, api_name=f"page_stats_{number}")
