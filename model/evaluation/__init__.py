"""Evaluation: the harness (accuracy per family and mode, the audit), sketch quality, the stage-0 check."""
