"""The pieces every training stage shares: the starting model, resumable batches, the accelerator, the optimiser and
its schedule, end-of-step logging and saving.

Data order is our own (model/training/batch_stream.py `BatchStream`): seeded, resumable, optionally grouped by
length; its position is two integers, saved with every checkpoint.
"""

import dataclasses
import importlib.util
import json
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.tuners_utils import cast_adapter_dtype
from transformers import get_cosine_with_min_lr_schedule_with_warmup

from model.core.checkpoint import load_model
from model.data.folders import load_rows
from model.training.state import cut_metrics
from model.training.train_config import TrainConfig

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def build_model(cfg: TrainConfig):
    """The starting model with the config's head, K, decoding and λ applied, and what stays frozen."""
    # on the accelerator's device from the start (run() makes the accelerator first, which selects this process's
    # GPU): the frozen encoder's outputs are computed before accelerator.prepare moves the model, on a CPU otherwise
    model = load_model(cfg.init, device=torch.cuda.current_device() if torch.cuda.is_available() else "cpu")
    if cfg.head_type:
        model.replace_head(cfg.head_type)
    if cfg.latent_budget:
        model.set_latent_budget(cfg.latent_budget)
    if cfg.sketch_decoding:
        passes = model.refine_passes if cfg.sketch_refine_passes < 0 else cfg.sketch_refine_passes
        model.set_sketch_decoding(cfg.sketch_decoding, passes if cfg.sketch_decoding == "parallel" else 0)
    elif cfg.sketch_refine_passes >= 0:
        model.set_sketch_decoding(model.config.sketch_decoding, cfg.sketch_refine_passes)
    if cfg.diffusion_loss_weight >= 0:
        model.config.diffusion_loss_weight = cfg.diffusion_loss_weight
    if cfg.stage != "warmup" and cfg.freeze_vision:
        model.backbone.model.visual.requires_grad_(False)
    if cfg.stage == "warmup":
        model.head.requires_grad_(False)  # no latents in stage 0
    if cfg.stage == "warmup" or not cfg.freeze_vision:
        model.sketch_codebook = None  # fitted to the encoder as it was; a trained encoder makes new targets
    if cfg.lora_rank:
        # LoRA on the language model's projections; and the rows of ⟨START⟩ and ⟨END⟩ in the input embeddings and
        # the output layer train too (peft's trainable tokens): a pretrained vocabulary never had them, and with the
        # embeddings frozen (tied to the output layer in the 3B) the model could never learn to open a sketch
        tokens = sorted({model.start_id, model.end_id})
        lora = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha,
                          target_modules=rf".*language_model\..*\.({'|'.join(LORA_TARGETS)})",
                          trainable_token_indices={"embed_tokens": tokens, "lm_head": tokens})  # fmt: skip
        model.backbone.model.language_model.requires_grad_(False)
        model.backbone.lm_head.requires_grad_(False)
        inject_adapter_in_model(lora, model.backbone)
        # peft makes the adapters in their base layer's dtype; on a bf16 backbone they train in float32, as
        # peft.get_peft_model keeps them (bf16 weights lose updates smaller than 1/256 of their size)
        cast_adapter_dtype(model.backbone, "default")
    return model


def training_rows(cfg: TrainConfig, split: str = "train"):
    """The split's rows, shuffled with the run's seed (sketch-world files are stored family by family, so
    `max_examples` must not take the first rows); Zebra-CoT folders and carving as in model/data/folders.py; with
    `data_families` only those families' rows (ValueError naming a family the data lacks)."""
    rows = load_rows(cfg.data, split, seed=cfg.seed, categories=cfg.data_categories or None, carve=cfg.carve)
    if not cfg.data_families:
        return rows
    if "family" not in rows.column_names:
        raise ValueError(f"data_families needs rows with a family column (sketch-world); {cfg.data} has none")
    present = set(rows.unique("family"))
    missing = sorted(set(cfg.data_families) - present)
    if missing:
        raise ValueError(f"data_families: {', '.join(missing)} not in {cfg.data}'s {split} split "
                         f"(it has {', '.join(sorted(present))})")  # fmt: skip
    wanted = set(cfg.data_families)
    return rows.filter(lambda family: family in wanted, input_columns=["family"])


def make_accelerator(cfg: TrainConfig) -> Accelerator:
    trackers = None if cfg.tracker == "none" else cfg.tracker
    if cfg.tracker == "tensorboard":
        if importlib.util.find_spec("tensorboard") is None:
            raise ValueError("tracker 'tensorboard' needs the tensorboard package: pip install tensorboard")
    return Accelerator(
        cpu=not torch.cuda.is_available(),  # several CPU processes (torchrun) then join through gloo: MULTI_CPU
        mixed_precision=cfg.mixed_precision,
        log_with=trackers,
        project_dir=cfg.output_dir,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )


def optimizer_and_schedule(cfg: TrainConfig, model):
    params = [p for p in model.parameters() if p.requires_grad]
    fused = True if cfg.fused_optimizer else None  # None: torch's default (foreach)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    scheduler = get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, cfg.warmup_steps, cfg.max_steps, min_lr_rate=0.1
    )
    return optimizer, scheduler


def end_of_step(cfg: TrainConfig, accelerator: Accelerator, step: int, metrics: dict, metrics_log, save) -> None:
    """Log every `log_every` steps (and the first and last); call `save()` on rank 0 every `save_every` steps."""
    if step % cfg.log_every == 0 or step == 1 or step == cfg.max_steps:
        metrics_log(step, metrics)
    if step % cfg.save_every == 0 or step == cfg.max_steps:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            save()
        accelerator.wait_for_everyone()


class MetricsLog:
    """Flat metric dicts to metrics.jsonl and the accelerate trackers; rank 0 only."""

    def __init__(self, cfg: TrainConfig, accelerator: Accelerator, resumed_step: int = 0):
        self.accelerator, self.path = accelerator, Path(cfg.output_dir) / "metrics.jsonl"
        if accelerator.is_main_process:  # a resumed run logs the steps after its checkpoint again: drop the old ones
            cut_metrics(self.path, resumed_step)
        if accelerator.is_main_process and cfg.tracker != "none":
            accelerator.init_trackers(cfg.project, config=dataclasses.asdict(cfg))

    def __call__(self, step: int, metrics: dict) -> None:
        if not self.accelerator.is_main_process:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        self.accelerator.log(metrics, step=step)
