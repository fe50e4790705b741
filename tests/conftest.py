"""Shared fixtures: offline, seeded, CPU; the tiny preset built once per session."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # tiny tensors: threads cost more than they give, and CI has 2 cores


@pytest.fixture(scope="session")
def tiny_model():
    from model.core.checkpoint import build_preset

    model = build_preset("tiny", seed=0)
    model.eval()
    return model
