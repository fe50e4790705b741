"""The Sweeps tab: the registered sweep points (assets/checkpoints/registry.json) against K, λ, the head and the
decoding.

Six panels, computed by `analysis.sweeps.sweep_panels` and drawn by `analysis.figures.sweep_panel`: accuracy and use
(auto − noise-latents) against the token budget K, accuracy against the diffusion loss weight λ, latency against K,
and the head and decoding ablations as grouped bars, with 95 % intervals as error bars where the registry has them.
The registry's `sweep_grid` names the planned points not trained yet, and the message above the panels says which,
so that a point left out of a panel is never silently absent. Each panel holds the axes it does not draw at one
value and says which in its title; the caption under it names the points it draws and how they were trained
(supervised steps, GRPO or not, the task suite's version, as far as the registry records them:
`analysis.sweeps.training_text`), so no two points ever share a place; hovering a point says the same for it alone,
with its value and interval. Only `sweep/` entries are plotted: the demo, its sequential
twin and the baselines are listed in the table, loadable, never drawn. The page names the registry by its place in
the repository, never by a server path. "Use in the Reason tab" sets the Reason tab's checkpoint to a registered
one, which loads it (a few stay cached).
"""

from pathlib import Path

import gradio as gr
import pandas as pd

from analysis import figures, sweeps
from app.plumbing import page_problem, wire
from app.reason_tab import checkpoint_updates, new_tokens_update
from app.service import ROOT, Service

EVERY_FAMILY, OVERALL = "every family", "overall only"
PLOTS = tuple(spec.key for spec in sweeps.PANEL_SPECS)


def shown_path(registry: str) -> str:
    """The registry as the page names it: relative to the repository, or its file name alone."""
    path = Path(registry).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return path.name


def panels(registry: str, families: str = EVERY_FAMILY) -> tuple[str, list, pd.DataFrame]:
    """(message, [Panel or the ValueError that says why it cannot be drawn] in PANEL_SPECS order, table)."""
    if not Path(registry).is_file():
        message = (
            f"**No checkpoint registry yet** (`{shown_path(registry)}`): the panels fill in once trained checkpoints "
            "are registered (`python -m pipeline.ship` writes it)."
        )
        return message, [], pd.DataFrame()
    try:
        entries = sweeps.load_registry(registry)
    except ValueError as err:
        problem = str(err).replace(registry, shown_path(registry))
        return f"**The registry cannot be read:** {problem}", [], pd.DataFrame()
    table = sweeps.metrics_table(entries)
    drawn = sweeps.sweep_panels(table, entries, ["overall"] if families == OVERALL else None)
    message = _message(entries["checkpoints"], sweeps.missing_points(entries))
    return message, drawn, sweeps.points_table(entries, drawn)


def _message(entries: list[dict], missing: list[str]) -> str:
    points = [e for e in entries if e["name"].startswith(sweeps.SWEEP_PREFIX)]
    others = [e["name"] for e in entries if e not in points]
    message = f"**{len(points)} sweep point(s)** registered"
    if others:
        verb = "is" if len(others) == 1 else "are"
        message += f"; {', '.join(others)} {verb} registered too, listed in the table and never plotted"
    if missing:
        message += (
            f".\n\n**{len(missing)} planned sweep point(s) not trained yet:** {', '.join(f'`{m}`' for m in missing)}"
            ": the panels draw the registered points only (`python -m pipeline.demo --stages sweep --points …`, then "
            "`python -m pipeline.ship --sweep-only` adds them)"
        )
    previous = [e for e in points if e.get("recipe") == "previous"]
    if previous:
        message += (
            f".\n\n**{len(previous)} sweep point(s) come from the previous training recipe** (older task suite): "
            "compare them with each other, not with the demo model"
        )
    undated = [e for e in points if "sketch_decoding" not in e]
    if undated:
        message += (
            f".\n\n{len(undated)} sweep point(s) have no `sketch_decoding` field: they predate parallel decoding, "
            "so they decode sequentially (the checkpoint config's default) and are drawn as sequential"
        )
    return message + "."


def caption(drawn) -> str:
    """What a panel draws, in words: its points and how each was trained (once, when they all were trained alike),
    or why it draws nothing."""
    if isinstance(drawn, Exception):
        return f"*Not drawn:* {drawn}"
    if drawn.note:
        return f"*Not drawn:* {drawn.note}."
    training = drawn.data.drop_duplicates("name").set_index("name")["training"]
    text = f"Draws {len(drawn.names)} point(s): "
    if training.nunique() == 1:
        return text + ", ".join(f"`{name}`" for name in drawn.names) + f". Each trained: {training.iloc[0]}."
    return text + "; ".join(f"`{name}` ({training[name]})" for name in drawn.names) + "."


def show(registry: str, families: str = EVERY_FAMILY) -> dict:
    """`panels` as named page updates: a panel that draws nothing is hidden, and its caption says why."""
    message, drawn, table = panels(registry, families)
    out = {"message": message, "table": gr.update(value=table, visible=not table.empty)}
    for key, panel in zip(PLOTS, drawn or [None] * len(PLOTS)):
        figure = None
        if isinstance(panel, sweeps.Panel) and not panel.note:
            figure = figures.sweep_panel(panel)
        out[key] = gr.update(value=figure, visible=figure is not None)
        out[f"{key}_caption"] = "" if panel is None else caption(panel)
    return out


def use_checkpoint(service: Service, name: str | None, max_new_tokens=None) -> dict:
    """Set the Reason tab's checkpoint to a registered one and load it: its box, the status and description lines
    that follow the checkpoint in use (the gallery's progress while it builds), and Max new positions raised to what
    it needs (reason_tab.new_tokens_update: the text-only-CoT model's 448)."""
    entries = {e["name"]: e["path"] for e in service.registry_entries()}
    if name not in entries:
        gr.Warning(f"choose a registered checkpoint first; the registry has {', '.join(entries) or 'none'}")
        return {}
    try:
        loaded = service.load(entries[name])
    except ValueError as err:
        page_problem(err, "sweeps")
        return {}
    gr.Info(f"The Reason tab now uses {loaded.name}")
    return {"checkpoint": loaded.name, "in_use": loaded.name, **checkpoint_updates(service, loaded),
            **new_tokens_update(service, loaded, max_new_tokens)}  # fmt: skip


def _layout(service: Service) -> dict:
    c = {"families": gr.Radio([EVERY_FAMILY, OVERALL], value=EVERY_FAMILY, label="Families")}
    c["message"] = gr.Markdown(elem_id="sweeps-message")
    for left, right in zip(PLOTS[::2], PLOTS[1::2]):
        with gr.Row():
            for key in (left, right):
                with gr.Column():
                    c[key] = gr.Plot(show_label=False, elem_id=f"sweeps-{key}")
                    c[f"{key}_caption"] = gr.Markdown(elem_id=f"sweeps-{key}-caption")
    c["table"] = gr.Dataframe(label="Registered checkpoints (panels: where each is drawn)", interactive=False)
    with gr.Row():
        names = [e["name"] for e in service.registry_entries()]
        c["chosen"] = gr.Dropdown(names, value=None, label="Registered checkpoint", elem_id="sweeps-chosen")
        c["use"] = gr.Button("Use in the Reason tab", scale=0, elem_id="sweeps-use")
    return c


def build(service: Service, tab: gr.Tab, reason: dict) -> None:
    """The tab's components and events; `reason` holds the Reason tab's components, which "Use in the Reason tab"
    updates."""
    c = _layout(service)
    outputs = {key: c[key] for key in ("message", "table", *PLOTS, *(f"{k}_caption" for k in PLOTS))}
    registry = service.config.registry
    for number, trigger in enumerate((tab.select, c["families"].input)):
        wire(trigger, show, (registry,), [c["families"]], outputs, api_name=f"page_sweeps_{number}")
    names = ("checkpoint", "in_use", "max_new_tokens", "banner", "checkpoint_info", "gallery_status", "timer",
             "checkpoint_message")  # fmt: skip
    wire(c["use"].click, use_checkpoint, (service,), [c["chosen"], reason["max_new_tokens"]],
         {name: reason[name] for name in names})  # fmt: skip
