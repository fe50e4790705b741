"""The Explorer tab: the UMAP map of the gallery and of this session's sketches, and the neighbours of any point.

Click a point of the map (circles: problem pictures, diamonds: reasoning pictures, stars: this session's sketches
made with the checkpoint chosen in the Reason tab), or choose it in the dropdown, to see its picture (decoded for
sketches) and its nearest gallery pictures. Clicks reach the server through a small script (app/ui.py
MAP_CLICK_JS): Gradio's plotly component sends no click events, and its native scatter plot selects only an x range.
"""

import gradio as gr

from app import render
from app.maps import map_figure
from app.plumbing import page_problem, wire
from app.service import Service


def _session_sketches(session: dict | None, name: str) -> list[tuple[int, dict]]:
    return [(i, s) for i, s in enumerate((session or {}).get("sketches", [])) if s["checkpoint"] == name]


def explore(service: Service, checkpoint: str, session: dict | None) -> dict:
    """The map for the checkpoint and this session's sketches made with it, the point dropdown and a summary."""
    try:
        loaded = service.load(checkpoint)
    except ValueError as err:
        page_problem(err, "explorer")
        return {}
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
    models = service.models
    stars = []
    for i, s in mine:  # sketches made before the map was ready are placed now
        xy = s["xy"] or models.place(loaded, s["latents"])
        stars.append(dict(x=xy[0], y=xy[1], label=s["label"], point=f"s:{i}"))
    return {"map": map_figure(points, stars), "point": gr.update(choices=choices, value=None), "summary": summary}


def show_point(service: Service, value: str | None, checkpoint: str, session: dict | None) -> dict:
    """The chosen point's picture, what it is, and its nearest gallery pictures."""
    if not value:
        return {}
    try:
        loaded = service.load(checkpoint)
        point = service.models.point(loaded, value, (session or {}).get("sketches", []))
    except ValueError as err:  # an unknown point or checkpoint: say so, change nothing
        gr.Warning(str(err))
        return {}
    picture = point.picture if point.picture is not None else render.placeholder()
    return {"image": picture, "info": point.text, "neighbours": render.neighbours_html(point.neighbours)}


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
    gr.Markdown("**Nearest gallery pictures** (cosine similarity of the K latents)")
    neighbours = gr.HTML("", elem_id="explorer-neighbours")
    shown = {"image": image, "info": info, "neighbours": neighbours}
    for trigger in (tab.select, refresh.click):
        wire(trigger, explore, (service,), [checkpoint, session], {"map": the_map, "point": point, "summary": summary})
    wire(point.input, show_point, (service,), [point, checkpoint, session], shown)
    wire(click_go.click, show_point, (service,), [click, checkpoint, session], shown, api_name="page_clicked_point")
