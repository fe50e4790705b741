"""The Explorer tab: the UMAP map of the gallery and of this session's sketches, and the neighbours of any point.

Click a point of the map (circles: problem pictures, diamonds: reasoning pictures, stars: this session's sketches
made with the checkpoint chosen in the Reason tab), or choose it in the dropdown, to see its picture (decoded for
sketches) and its nearest gallery pictures. Clicks reach the server through a small script (app/ui.py
MAP_CLICK_JS): Gradio's plotly component sends no click events, and its native scatter plot selects only an x range.
"""

import gradio as gr
import pandas as pd

from analysis.figures import sketch_map
from app.plumbing import USER_ERRORS, neighbours_gallery, user_error, wire
from app.service import Service


def _load(service: Service, checkpoint: str):
    try:
        return service.load(checkpoint)
    except USER_ERRORS as err:
        raise user_error(err) from err


def _session_sketches(session: dict | None, name: str) -> list[tuple[int, dict]]:
    return [(i, s) for i, s in enumerate((session or {}).get("sketches", [])) if s["checkpoint"] == name]


def explore(service: Service, checkpoint: str, session: dict | None) -> dict:
    """The map for the checkpoint and this session's sketches made with it, the point dropdown and a summary."""
    loaded = _load(service, checkpoint)
    mine = _session_sketches(session, loaded.name)
    choices = [(s["label"], f"s:{i}") for i, s in mine]
    gallery = loaded.gallery
    if gallery is not None:
        choices += [(key, f"g:{i}") for i, key in enumerate(gallery.meta["key"])]
    summary = f"{loaded.describe()} · {len(mine)} sketch(es) from this session"
    points = loaded.points
    if points is None:
        why = loaded.notes.get("map", "no map") if loaded.ready.is_set() else f"no map yet: {loaded.status}"
        return {"map": None, "point": gr.update(choices=choices, value=None), "summary": f"{summary}\n\n{why}"}
    placed = [(i, s) for i, s in mine if s["xy"] is not None]
    stars = pd.DataFrame(
        {
            "x": [s["xy"][0] for _, s in placed],
            "y": [s["xy"][1] for _, s in placed],
            "label": [s["label"] for _, s in placed],
            "point": [f"s:{i}" for i, _ in placed],
        }
    )
    return {"map": sketch_map(points, stars), "point": gr.update(choices=choices, value=None), "summary": summary}


def show_point(service: Service, value: str | None, checkpoint: str, session: dict | None) -> dict:
    """The chosen point's picture, what it is, and its nearest gallery pictures."""
    if not value:
        return {}
    loaded = _load(service, checkpoint)
    try:
        point = service.point(loaded, value, (session or {}).get("sketches", []))
    except ValueError as err:
        raise gr.Error(str(err)) from err
    return {"image": point.picture, "info": point.text, "neighbours": point.neighbours}


def build(service: Service, session: gr.State, checkpoint: gr.Dropdown, tab: gr.Tab) -> None:
    gr.Markdown(
        "The map places every gallery picture by UMAP of its K pooled latents (circles: problem pictures, diamonds: "
        "reasoning pictures); stars are the sketches of this session made with the checkpoint chosen in the Reason "
        "tab. Click a point, or choose it below, to see its nearest pictures."
    )
    with gr.Row():
        summary = gr.Markdown(elem_id="explorer-summary")
        refresh = gr.Button("Refresh", scale=0)
    the_map = gr.Plot(label="Sketch map", elem_id="explorer-map")
    click = gr.Textbox(visible="hidden", elem_id="explorer-map-click")
    click_go = gr.Button(visible="hidden", elem_id="explorer-map-click-go")
    point = gr.Dropdown([], label="Point (this session's sketches, then gallery pictures)", elem_id="explorer-point")
    with gr.Row():
        image = gr.Image(label="Picture (decoded for sketches)", interactive=False, height=240, scale=1)
        info = gr.Markdown(elem_id="explorer-info")
    neighbours = neighbours_gallery("Nearest gallery pictures", "explorer-neighbours")
    shown = {"image": image, "info": info, "neighbours": neighbours}
    for trigger in (tab.select, refresh.click):
        wire(trigger, explore, (service,), [checkpoint, session], {"map": the_map, "point": point, "summary": summary})
    wire(point.input, show_point, (service,), [point, checkpoint, session], shown)
    wire(click_go.click, show_point, (service,), [click, checkpoint, session], shown, api_name="page_clicked_point")
