"""The demo pipeline: train, audit, ship and report the shipped checkpoints (python -m pipeline.demo)."""
