"""Training checkpoints without pickle: model folder + optimizer tensors in safetensors + everything else in JSON.

    runs/x/checkpoint-000050/
        model/                      save_pretrained folder (loadable by model.generate, the app, the evaluator)
        optimizer.safetensors       every optimizer state tensor ("<param index>.<name>")
        trainer_state.json          step, data position, optimizer param groups, scheduler state, RNG states
        train_config.yaml           the resolved TrainConfig

accelerate's `save_state` pickles the optimizer, scheduler and RNG states; we write them as tensors and JSON so that
loading never unpickles. The folder is built under a temporary name and renamed into place (model/core/atomic.py), so
a run killed while saving leaves the previous checkpoint as the latest one. Resuming from a damaged checkpoint raises
ResumeError naming the file; a resumed run cuts metrics.jsonl back to the step it resumes from.
"""

import json
import random
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
from peft.tuners.lora import LoraLayer
from peft.tuners.trainable_tokens import TrainableTokensLayer
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from model.core.atomic import atomic_folder, write_text
from model.core.checkpoint import save_pretrained

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


def merged_state_dict(model) -> dict:
    """The model's weights with every peft LoRA layer merged into its base weight, under the base layer's own names
    (no `base_layer.`, no `lora_` keys), so the saved folder is a plain checkpoint that loads without peft. Only the
    merged weights are new tensors, made one at a time and kept on the CPU; the model is not copied (a deep copy
    merged in place held a second model on the device: 7.5 GB more at 3B in bf16) and not changed (merging in place
    and unmerging after the save would round the bf16 base weights at every checkpoint)."""
    lora = {name: module for name, module in model.named_modules() if isinstance(module, LoraLayer)}
    # trainable tokens (the sketch tokens' rows, model/training/loop.py): the wrapper's key is `<owner>.token_adapter`
    tokens = {name.removesuffix(".token_adapter"): module for name, module in model.named_modules()
              if isinstance(module, TrainableTokensLayer)}  # fmt: skip
    state = {}
    for key, tensor in model.state_dict().items():
        owner, is_base, rest = key.partition(".base_layer.")
        if is_base and owner in lora:
            key, tensor = f"{owner}.{rest}", _merged(lora[owner]) if rest == "weight" else tensor
        elif key.partition(".lora_")[0] in lora:
            continue  # the adapter's own weights
        elif is_base and owner.removesuffix(".token_adapter") in tokens:
            layer = tokens[owner.removesuffix(".token_adapter")]
            key = f"{owner.removesuffix('.token_adapter')}.{rest}"
            if rest == "weight":
                tensor = layer.get_merged_weights(layer.active_adapters).detach().to(tensor.dtype).cpu()
        elif ".trainable_tokens_delta." in key:
            continue
        state[key] = tensor
    return state


def _merged(layer) -> torch.Tensor:
    """W + ΔW of one LoRA layer, summed in float32 and stored in W's dtype (as peft's `merge` does in place)."""
    weight = layer.get_base_layer().weight.detach()
    if layer.merged:
        return weight
    merged = weight.float()
    for adapter in layer.active_adapters:
        if adapter in layer.lora_A:
            merged = merged + layer.get_delta_weight(adapter).float()
    return merged.to(weight.dtype).cpu()


def save_checkpoint(
    output_dir, step: int, model, optimizer, scheduler, data_state: dict, config_yaml: str, keep_last=2
):
    """Write output_dir/checkpoint-{step:06d} atomically; delete all but the newest `keep_last`.
    A model with LoRA adapters is saved merged (see `merged_state_dict`)."""
    output_dir = Path(output_dir)
    final = output_dir / f"checkpoint-{step:06d}"
    with atomic_folder(final) as staging:
        save_pretrained(model, staging / "model", state_dict=merged_state_dict(model))
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
    """Complete checkpoints, oldest first (temporary folders of an interrupted save are ignored). A checkpoint folder
    without its trainer_state.json is left out with a warning that names it."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = sorted((p for p in output_dir.iterdir() if p.is_dir() and CHECKPOINT_RE.match(p.name)),
                   key=lambda p: int(CHECKPOINT_RE.match(p.name).group(1)))  # fmt: skip
    for p in found:
        if not (p / "trainer_state.json").is_file():
            warnings.warn(f"{p} has no trainer_state.json, so it cannot be resumed from; it is skipped", stacklevel=2)
    return [p for p in found if (p / "trainer_state.json").is_file()]


def latest_checkpoint(output_dir) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


class ResumeError(ValueError):
    """A training checkpoint that cannot be resumed from; the message names the file."""


def _read_state(checkpoint: Path) -> dict:
    path = checkpoint / "trainer_state.json"
    try:
        state = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ResumeError(f"{path} is damaged: not valid JSON ({err})") from err
    except OSError as err:
        raise ResumeError(f"{path} cannot be read: {err}") from err
    keys = ("step", "data", "optimizer", "scheduler", "rng")
    missing = [k for k in keys if not isinstance(state, dict) or k not in state]
    if missing:
        raise ResumeError(f"{path} is damaged: it lacks {', '.join(missing)}")
    return state


def _tensors(path: Path) -> dict:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ResumeError(f"{path} is damaged: {err}") from err


def load_training_state(checkpoint: Path, optimizer, scheduler, restore_optimizer: bool = True) -> dict:
    """Restore optimizer, scheduler and RNG states; returns trainer_state.json (step, data position).
    restore_optimizer=False (LoRA runs: the saved model is merged and the adapters start afresh) keeps the new
    optimizer's empty state. ResumeError names the file when one is missing or damaged."""
    state = _read_state(checkpoint)
    if not restore_optimizer:
        optimizer = None
    try:
        if optimizer is not None:
            tensors = _tensors(checkpoint / "optimizer.safetensors")
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
    except (KeyError, ValueError, TypeError) as err:
        if isinstance(err, ResumeError):
            raise
        raise ResumeError(f"{checkpoint}: the optimizer or scheduler state does not fit this run ({err})") from err
    rng = _tensors(checkpoint / "rng.safetensors")
    torch.set_rng_state(rng["torch"])
    cuda = [rng[k] for k in sorted(rng) if k.startswith("cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    py = state["rng"]["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = state["rng"]["numpy"]
    np.random.set_state((np_state[0], np.array(np_state[1], dtype=np.uint32), *np_state[2:]))
    return state


def cut_metrics(path: Path, step: int) -> int:
    """Drop the lines of metrics.jsonl logged after `step` (a resumed run logs those steps again); returns how many
    were dropped. Lines that are not JSON (a line cut by the kill) go too."""
    path = Path(path)
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
            keep = isinstance(record, dict) and int(record.get("step", step + 1)) <= step
        except (json.JSONDecodeError, TypeError, ValueError):
            keep = False
        if keep:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        write_text(path, "".join(line + "\n" for line in kept))
    return dropped
