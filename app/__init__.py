"""The Gradio app: reason with a modal-mixed model in the browser, see its sketches, explore the sketch space.

    python -m app                                  # the shipped checkpoint (assets/checkpoints/demo), port 7860
    python -m app --checkpoint tiny --port 7861    # a preset, a checkpoint folder or a hub id
    python -m app --mcp                            # the named endpoints as MCP tools too

Tabs: Reason (streamed answers with sketches as collapsible steps, Compare modes, nearest gallery images, the
clickable UMAP map), Explorer (the map of the gallery and of this session's sketches), Switching statistics (the
event store), Sweeps (the checkpoint registry). Named API endpoints for `gradio_client`: /reason, /compare,
/neighbours, /switching_stats, /examples, /checkpoints.

UI code only lives here; the computation is `model/` (engine, checkpoints, events) and `analysis/` (neighbours,
projection, statistics, sweeps, figures). The page is served before the model stack is imported (`stack.py` names the
modules that wait), and a second process, the model worker (`worker.py`, started first by `main.py`, reached through
`worker_client.py`), loads the default checkpoint meanwhile and answers for it until the app's own model is loaded
(`answers.py` says who answers): `service.py` holds what the page needs at once (settings, examples, registry,
checkpoint names), `models.py` the loaded checkpoints and `galleries.py` their galleries and maps, `request.py` what an
answer asks for, `reasoning.py` one answer from request to logged events, `compare.py` the same puzzle under every
mode, `render.py` how answers look and `maps.py` the sketch map. Tabs do not import each other; what two tabs share
lives in service.py, render.py, maps.py or plumbing.py.
"""
