"""The demo pipeline: train, audit, ship and report the shipped checkpoints (python -m model.demo_pipeline)."""
