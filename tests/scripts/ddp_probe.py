"""Run a few SFT steps under `accelerate launch`, then write each rank's parameter checksum (for tests/test_train.py).

accelerate launch --cpu --num_processes 2 tests/scripts/ddp_probe.py CONFIG.yaml OUT_DIR
"""

import sys
from pathlib import Path

import torch
from accelerate import PartialState

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from model.training import cli  # noqa: E402
from model.training.train_config import load_config  # noqa: E402

torch.set_num_threads(1)
cfg = load_config(sys.argv[1], ["--output_dir", sys.argv[2]])
captured = {}
build = cli.build_model


def keep(cfg):
    captured["model"] = build(cfg)
    return captured["model"]


cli.build_model = keep  # run() builds its model through this name
cli.run(cfg)
state = PartialState()
flat = torch.cat([p.detach().flatten().double() for p in captured["model"].parameters()])
Path(sys.argv[2], f"rank{state.process_index}.txt").write_text(
    f"{state.num_processes} {flat.sum().item():.12e} {flat.abs().sum().item():.12e}"
)
