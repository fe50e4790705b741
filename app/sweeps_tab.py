"""The Sweeps tab: the registered checkpoints (assets/checkpoints/registry.json) against K and λ.

Three panels from `analysis.sweeps` and `analysis.figures`: accuracy per family against the token budget K,
accuracy per family against the diffusion loss weight λ, and latency against K. Each panel can be narrowed to one
stage and to one λ (the K panel) or one K (the λ panel); a panel whose checkpoints clash (two with the same K at
different λ, say) says how to narrow it instead of plotting. "Use in the Reason tab" sets the Reason tab's
checkpoint to the chosen registered one, which loads it (a few stay cached).
"""

from pathlib import Path

import gradio as gr
import pandas as pd

from analysis import figures, sweeps
from app.plumbing import page_problem, wire
from app.service import Service

ANY = "any"


def _choice(value):
    return None if value in (None, "", ANY) else value


def panels(registry: str, stage=None, diffusion_loss_weight=None, latent_budget=None):
    """(message, accuracy vs K, accuracy vs λ, latency vs K, checkpoint table); figures are None when empty."""
    if not Path(registry).is_file():
        message = (
            f"**No registry yet** (`{registry}`): the sweep panels fill in once trained checkpoints are registered "
            "(`python -m model.ship` writes it)."
        )
        return message, None, None, None, pd.DataFrame()
    try:
        entries = sweeps.load_registry(registry)
        table = sweeps.metrics_table(entries)
    except ValueError as err:
        return f"**The registry cannot be read:** {err}", None, None, None, pd.DataFrame()
    stage, lam, k = _choice(stage), _choice(diffusion_loss_weight), _choice(latent_budget)
    notes, out = [], []
    specs = [
        ("accuracy vs K", "accuracy", sweeps.vs_budget, {"diffusion_loss_weight": lam}, figures.metric_vs_budget),
        ("accuracy vs λ", "accuracy", sweeps.vs_lambda, {"latent_budget": k}, figures.metric_vs_lambda),
        ("latency vs K", "latency_s", sweeps.vs_budget, {"diffusion_loss_weight": lam}, None),
    ]
    for title, metric, pivot, narrow, figure in specs:
        try:
            frame = pivot(table, metric, stage=stage, **{key: _number(v) for key, v in narrow.items()})
        except ValueError as err:
            notes.append(f"{title}: {err}")
            out.append(None)
            continue
        if frame.empty:
            notes.append(f"{title}: no checkpoints match")
            out.append(None)
        else:
            out.append(figures.latency_vs_budget(frame) if figure is None else figure(frame, metric))
    names = table.drop_duplicates("name")[["name", "latent_budget", "diffusion_loss_weight", "stage"]]
    message = f"{len(names)} registered checkpoint(s) in `{registry}`" + "".join(f"\n\n- {n}" for n in notes)
    previous = [e["name"] for e in entries["checkpoints"] if e.get("recipe") == "previous"]
    if previous:
        message += (
            f"\n\n**{len(previous)} sweep point(s) come from the previous training recipe** (older task "
            "suite, no sketch gate or cell positions): compare them with each other, not with the demo model."
        )
    return message, *out, names.reset_index(drop=True)


def _number(value):
    return None if value is None else float(value)


def filter_choices(registry: str) -> tuple[list, list, list, tuple]:
    """Stages, λ values and K values in the registry (each led by "any"), and the default of each filter.

    A sweep over K holds λ fixed and one over λ holds K fixed, so the defaults are the most common λ and K (and
    the stage "sft" when there is one): the panels then show the two sweeps instead of clashing."""
    empty = [ANY], [ANY], [ANY], (ANY, ANY, ANY)
    if not Path(registry).is_file():
        return empty
    try:
        entries = sweeps.load_registry(registry)["checkpoints"]
    except ValueError:
        return empty
    stages = sorted({e["stage"] for e in entries})
    lams = pd.Series([float(e["diffusion_loss_weight"]) for e in entries])
    ks = pd.Series([int(e["latent_budget"]) for e in entries])
    defaults = ("sft" if "sft" in stages else ANY, lams.mode().iloc[0].item(), ks.mode().iloc[0].item())
    return [ANY, *stages], [ANY, *sorted(lams.unique().tolist())], [ANY, *sorted(ks.unique().tolist())], defaults


def show(registry: str, stage, diffusion_loss_weight, latent_budget) -> dict:
    """`panels` for the page: empty panels are hidden rather than drawn blank."""
    message, *plots, table = panels(registry, stage, diffusion_loss_weight, latent_budget)
    out = {name: gr.update(value=fig, visible=fig is not None) for name, fig in zip(PLOTS, plots)}
    return {**out, "message": message, "table": gr.update(value=table, visible=not table.empty)}


PLOTS = ("vs_k", "vs_lambda", "latency")


def use_checkpoint(service: Service, name: str | None) -> dict:
    """Set the Reason tab's checkpoint to a registered one and load it."""
    entries = {e["name"]: e["path"] for e in service.registry_entries()}
    if name not in entries:
        gr.Warning(f"choose a registered checkpoint first; the registry has {', '.join(entries) or 'none'}")
        return {}
    try:
        loaded = service.load(entries[name])
    except ValueError as err:
        page_problem(err, "sweeps")
        return {}
    gr.Info(f"The Reason tab now uses {entries[name]}")
    banner = service.resolve(entries[name], look_up_hub=False).banner
    return {
        "checkpoint": entries[name],
        "banner": gr.update(value=banner, visible=bool(banner)),
        "checkpoint_info": loaded.describe(),
    }


def build(service: Service, tab: gr.Tab, checkpoint: gr.Dropdown, checkpoint_info, banner) -> None:
    registry = service.config.registry
    stages, lams, ks, defaults = filter_choices(registry)
    with gr.Row():
        stage = gr.Dropdown(stages, value=defaults[0], label="Stage")
        lam = gr.Dropdown(lams, value=defaults[1], label="λ (for the panels against K)")
        k = gr.Dropdown(ks, value=defaults[2], label="K (for the panel against λ)")
    message = gr.Markdown(elem_id="sweeps-message")
    with gr.Row():
        vs_k = gr.Plot(label="Accuracy per family vs K")
        vs_lambda = gr.Plot(label="Accuracy per family vs λ")
    latency = gr.Plot(label="Latency vs K")
    table = gr.Dataframe(label="Registered checkpoints", interactive=False)
    with gr.Row():
        names = [e["name"] for e in service.registry_entries()]
        chosen = gr.Dropdown(names, value=None, label="Registered checkpoint")
        use = gr.Button("Use in the Reason tab", scale=0)
    outputs = {"message": message, "vs_k": vs_k, "vs_lambda": vs_lambda, "latency": latency, "table": table}
    for number, trigger in enumerate((tab.select, stage.input, lam.input, k.input)):
        wire(trigger, show, (registry,), [stage, lam, k], outputs, api_name=f"page_sweeps_{number}")
    shown = {"checkpoint": checkpoint, "banner": banner, "checkpoint_info": checkpoint_info}
    wire(use.click, use_checkpoint, (service,), chosen, shown)
