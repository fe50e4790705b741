"""The Explorer tab: the UMAP map of the gallery and of this session's sketches, and the neighbours of any point.

Plotly click events do not reach the server through `gr.Plot`, so a point is chosen in a dropdown: this session's
sketches first (made with the checkpoint shown), then every gallery picture by key.
"""

import gradio as gr
import numpy as np
import pandas as pd

from analysis.figures import sketch_map
from app import render
from app.gallery import picture
from app.plumbing import bind, user_error
from app.reason_tab import NUM_NEIGHBOURS
from app.service import Service
from model.core.checkpoint import CheckpointError

SESSION, GALLERY = "s", "g"  # prefixes of the dropdown values


def _load(service: Service, checkpoint: str):
    try:
        return service.load(checkpoint)
    except CheckpointError as err:
        raise user_error(err) from err


def _session_sketches(session: dict | None, name: str) -> list[tuple[int, dict]]:
    return [(i, s) for i, s in enumerate((session or {}).get("sketches", [])) if s["checkpoint"] == name]


def explore(service: Service, checkpoint: str, session: dict | None):
    """(map figure, point dropdown, summary) for the checkpoint and this session's sketches made with it."""
    loaded = _load(service, checkpoint)
    mine = _session_sketches(session, loaded.name)
    choices = [(s["label"], f"{SESSION}:{i}") for i, s in mine]
    choices += [(key, f"{GALLERY}:{i}") for i, key in enumerate(loaded.gallery.meta["key"])]
    summary = f"{loaded.describe()} · {len(mine)} sketch(es) from this session"
    points = loaded.points
    if points is None:
        return None, gr.update(choices=choices, value=None), f"{summary}\n\n{loaded.notes.get('map', 'no map')}"
    placed = [s for _, s in mine if s["xy"] is not None]
    stars = pd.DataFrame(
        {"x": [s["xy"][0] for s in placed], "y": [s["xy"][1] for s in placed], "label": [s["label"] for s in placed]}
    )
    return sketch_map(points, stars), gr.update(choices=choices, value=None), summary


def show_point(service: Service, value: str | None, checkpoint: str, session: dict | None):
    """(picture, description, neighbours) of the chosen point."""
    if not value:
        return gr.skip(), gr.skip(), gr.skip()
    loaded = _load(service, checkpoint)
    kind, _, number = value.partition(":")
    number = int(number)
    if kind == SESSION:
        sketches = (session or {}).get("sketches", [])
        if not 0 <= number < len(sketches) or sketches[number]["checkpoint"] != loaded.name:
            raise gr.Error(f"sketch {number} is not one of this session's sketches with {loaded.name}")
        entry = sketches[number]
        latents = entry["latents"]
        image = service.decode(loaded, latents) or render.placeholder()
        where = "" if entry["xy"] is None else f" at ({entry['xy'][0]:.2f}, {entry['xy'][1]:.2f})"
        text = f"**{entry['label']}**{where}" + (f"\n\n{loaded.notes['decoder']}" if "decoder" in loaded.notes else "")
        skip_self = False
    else:
        if not 0 <= number < len(loaded.gallery):
            raise gr.Error(f"gallery row {number} does not exist; the gallery has {len(loaded.gallery)} rows")
        row = loaded.gallery.meta.iloc[number]
        latents = service.gallery_latents(loaded, number)
        image = picture(row)
        text = f"**{row['key']}** · {row['family']} · {row['role']} picture"
        skip_self = True
    frame = service.neighbours(loaded, np.asarray(latents), NUM_NEIGHBOURS + int(skip_self))
    if skip_self:  # a gallery picture is its own nearest neighbour
        frame = frame[frame["gallery_index"] != number].head(NUM_NEIGHBOURS)
    items = [(picture(row), render.neighbour_caption(row)) for _, row in frame.iterrows()]
    return image, text, items


def build(service: Service, session: gr.State, checkpoint: gr.Dropdown, tab: gr.Tab) -> None:
    gr.Markdown(
        "The map places every gallery picture by UMAP of its K pooled latents; stars are the sketches of this "
        "session made with the checkpoint chosen in the Reason tab. Choose a point to see its nearest pictures."
    )
    with gr.Row():
        summary = gr.Markdown(elem_id="explorer-summary")
        refresh = gr.Button("Refresh", scale=0)
    the_map = gr.Plot(label="Sketch map", elem_id="explorer-map")
    point = gr.Dropdown([], label="Point (this session's sketches, then gallery pictures)", elem_id="explorer-point")
    with gr.Row():
        image = gr.Image(label="Picture (decoded for sketches)", interactive=False, height=240, scale=1)
        info = gr.Markdown()
    neighbours = gr.Gallery(label="Nearest gallery pictures", columns=NUM_NEIGHBOURS, height=220, fit_columns=False)
    private = {"api_visibility": "private"}
    for trigger in (tab.select, refresh.click):
        trigger(bind(explore, service), [checkpoint, session], [the_map, point, summary], **private)
    point.input(bind(show_point, service), [point, checkpoint, session], [image, info, neighbours], **private)
