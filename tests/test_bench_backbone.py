"""The Qwen2.5-VL path at its real size (benchmarks/bench_backbone.py) and the fixes it needed.

The slow test runs the benchmark at the real widths with one text and one vision layer on the CPU (~2 min, ~4 GB):
a random-weight folder laid out like the hub checkpoint, through build_model, train_supervised, the engine, the
LoRA-merged save and load_model. The fast ones check the written-out architectures against the parameter counts the
model cards give, and the head's dtype on a bf16 backbone.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from model.core.checkpoint import build_preset
from model.core.model_config import pretrained_vlm_config
from model.generation.debug import bias_towards_sketching
from model.generation.engine import Engine, GenerationSettings, Prompt

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("preset, billions", [("qwen2.5-vl-3b", 3.75), ("qwen2.5-vl-7b", 8.29)])
def test_architectures_have_the_model_cards_sizes(preset, billions):
    """The hub's model cards give 3.75 B and 8.29 B parameters; the vision tower is 0.67 B in both."""
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig.from_dict(pretrained_vlm_config(preset)))
    assert round(sum(p.numel() for p in model.parameters()) / 1e9, 2) == billions
    assert round(sum(p.numel() for p in model.model.visual.parameters()) / 1e9, 2) in (0.67, 0.68)
    short = pretrained_vlm_config(preset, text_layers=2, vision_layers=1)
    assert short["text_config"]["num_hidden_layers"] == 2 and short["vision_config"]["depth"] == 1
    with pytest.raises(ValueError, match="asked for 99"):
        pretrained_vlm_config(preset, text_layers=99)


def test_auto_answer_on_a_bf16_backbone_with_a_float32_head():
    """The engine feeds a bf16 backbone's hidden states to the float32 head outside autocast (as GRPO's rollouts and
    generation on a bf16 checkpoint do): the head takes them in its own dtype."""
    model = bias_towards_sketching(build_preset("tiny", seed=0).eval(), bias=1e4)
    model.backbone.to(torch.bfloat16)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (56, 56, 3), dtype=np.uint8))
    settings = GenerationSettings("auto", max_new_tokens=12, max_sketches=1)
    trace = Engine(model).generate([Prompt("How many red cells?", [image])], settings)[0]
    sketches = [s for s in trace.segments if s.kind == "sketch"]
    assert len(sketches) == 1 and np.isfinite(sketches[0].latents).all()


@pytest.mark.slow
def test_benchmark_at_real_width_reduced_depth(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_backbone.py"), "--text-layers", "1", "--vision-layers",
           "1", "--tokens", "400", "--steps", "1", "--new-tokens", "40", "--workdir", str(tmp_path)]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "adapters torch.float32, head torch.float32" in out  # LoRA trains in float32 on the bf16 backbone
    assert "backbone torch.bfloat16" in out
    assert "answer: 40 positions, 1 sketch" in out
    assert "LoRA weights as merged: 100.0%" in out  # saved as W + ΔW and loaded under the base layers' names
    assert "| (d) load it back" in out
