"""The Gradio app: reason with a modal-mixed model in the browser, see its sketches, explore the sketch space.

    python -m app                                  # the shipped checkpoint (assets/checkpoints/demo), port 7860
    python -m app --checkpoint tiny --port 7861    # a preset, a checkpoint folder or a hub id

Tabs: Reason (streamed answers, decoded sketches, nearest gallery images, the UMAP map), Explorer (the map of the
gallery and of this session's sketches), Switching statistics (the event store), Sweeps (the checkpoint registry).
Named API endpoints for `gradio_client`: /reason, /neighbours, /switching_stats, /examples, /checkpoints.

UI code only lives here; the computation is `model/` (engine, checkpoints, events) and `analysis/` (neighbours,
projection, statistics, sweeps, figures). `service.py` holds what is loaded once per process.
"""
