"""Training checkpoints without pickle: model folder + optimizer tensors in safetensors + everything else in JSON.

    runs/x/checkpoint-000050/
        model/                      save_pretrained folder (loadable by model.generate, the app, the evaluator)
        optimizer.safetensors       every optimizer state tensor ("<param index>.<name>")
        trainer_state.json          step, data position, optimizer param groups, scheduler state, RNG states
        train_config.yaml           the resolved TrainConfig

accelerate's `save_state` pickles the optimizer, scheduler and RNG states; we write them as tensors and JSON so that
loading never unpickles. The folder is built under a temporary name and renamed into place, so a run killed while
saving leaves the previous checkpoint as the latest one.
"""

import copy
import json
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from model.checkpoint import save_pretrained

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def _optimizer_tensors(optimizer) -> tuple[dict, dict]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, slots in state["state"].items():
        for name, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _rng_state() -> tuple[dict, dict]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    py = random.getstate()
    np_state = np.random.get_state()
    return tensors, {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }


def merge_lora(model):
    """A copy of `model` with every peft LoRA layer merged into its base weight and replaced by it, so the saved
    folder is a plain checkpoint that loads without peft."""
    from peft.tuners.lora import LoraLayer

    if not any(isinstance(m, LoraLayer) for m in model.modules()):
        return model
    merged = copy.deepcopy(model)
    for parent in list(merged.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LoraLayer):
                child.merge()
                setattr(parent, name, child.get_base_layer())
    return merged


def save_checkpoint(
    output_dir, step: int, model, optimizer, scheduler, data_state: dict, config_yaml: str, keep_last=2
):
    """Write output_dir/checkpoint-{step:06d} atomically; delete all but the newest `keep_last`.
    A model with LoRA adapters is saved merged (see `merge_lora`)."""
    output_dir = Path(output_dir)
    final = output_dir / f"checkpoint-{step:06d}"
    staging = output_dir / f".checkpoint-{step:06d}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_pretrained(merge_lora(model), staging / "model")
    opt_tensors, opt_meta = _optimizer_tensors(optimizer)
    rng_tensors, rng_meta = _rng_state()
    save_file(opt_tensors, str(staging / "optimizer.safetensors"))
    save_file(rng_tensors, str(staging / "rng.safetensors"))
    state = {
        "step": step,
        "data": data_state,
        "optimizer": opt_meta,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_meta,
    }
    (staging / "trainer_state.json").write_text(json.dumps(state, default=_jsonable))
    (staging / "train_config.yaml").write_text(config_yaml)
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    for old in list_checkpoints(output_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _jsonable(value):
    if torch.is_tensor(value):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in trainer_state.json")


def list_checkpoints(output_dir) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders of an interrupted save are ignored)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.iterdir() if p.is_dir() and CHECKPOINT_RE.match(p.name)]
    found = [p for p in found if (p / "trainer_state.json").is_file()]
    return sorted(found, key=lambda p: int(CHECKPOINT_RE.match(p.name).group(1)))


def latest_checkpoint(output_dir) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def load_training_state(checkpoint: Path, optimizer, scheduler, restore_optimizer: bool = True) -> dict:
    """Restore optimizer, scheduler and RNG states; returns trainer_state.json (step, data position).
    restore_optimizer=False (LoRA runs: the saved model is merged and the adapters start afresh) keeps the new
    optimizer's empty state."""
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    if not restore_optimizer:
        optimizer = None
    if optimizer is not None:
        tensors = load_file(str(checkpoint / "optimizer.safetensors"))
        meta = state["optimizer"]
        slots: dict[int, dict] = {}
        for key, value in tensors.items():
            index, name = key.split(".", 1)
            slots.setdefault(int(index), {})[name] = value
        for key, value in meta["scalars"].items():
            index, name = key.split(".", 1)
            slots.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": slots, "param_groups": meta["param_groups"]})
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    rng = load_file(str(checkpoint / "rng.safetensors"))
    torch.set_rng_state(rng["torch"])
    cuda = [rng[k] for k in sorted(rng) if k.startswith("cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    py = state["rng"]["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = state["rng"]["numpy"]
    np.random.set_state((np_state[0], np.array(np_state[1], dtype=np.uint32), *np_state[2:]))
    return state
