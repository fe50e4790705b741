"""Training configuration: one typed dataclass, YAML recipes under model/configs/, `--key value` overrides.

    cfg = load_config("model/configs/sft_tiny.yaml", ["--lr", "3e-4", "--output_dir", "runs/x"])

Unknown keys and values of the wrong type fail with a message naming the key (and the file it came from). The
resolved config is written as `train_config.yaml` beside every checkpoint. A key of a removed experiment
(`RETIRED_KEYS`) is read at the value that left it off, as a recipe written before its removal has it, and refused
at any other.
"""

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

STAGES = ("warmup", "sft", "grpo")
# recipe keys of removed experiments and the value that leaves each off (docs/RESULTS.md › What we tried)
RETIRED_KEYS = {
    "draw_query": False,  # ⟨START⟩ and each slot also carried the next slot's cell position (E7 – E9)
    "latent_loss_to_backbone": True,  # False: the diffusion loss trained the head only
    "self_feed_passes": 1,  # > 1: self-feeding over several teacher-forced passes (E10)
    "rollout_bank": "",  # the model's own free-running sketches, banked and fed in SFT (E11b)
    "rollout_fraction": 0.0,
    "warmup_locate_questions": False,  # stage 0 also asked a one-cell colour's row or column (T1)
}
RETIRED_AT = "09b3544"  # the last commit with their code


@dataclass
class TrainConfig:
    # what to train
    stage: str = "sft"  # warmup (stage 0: align a from-scratch vision encoder) | sft (stage 1) | grpo (stage 2)
    init: str = "tiny"  # preset name (tiny, demo, qwen2.5-vl-3b, …), hub id, or checkpoint folder to start from
    output_dir: str = "runs/sft"  # checkpoints, metrics.jsonl and the resolved config go here
    # data
    data: str = "data/sketchworld"  # a folder of Zebra-CoT-schema Parquet (sketch-world, Hub shards, categories)
    data_categories: list = field(default_factory=list)  # Zebra-CoT: only these category folders ([] = all)
    data_families: list = field(default_factory=list)  # sketch-world: only the rows of these families ([] = all)
    carve: float = 0.0  # > 0: validation and test carved out of train, this share each (model/data/folders.py)
    max_examples: int = 0  # 0 = all training rows
    styles: dict = field(default_factory=lambda: {"interleaved": 1.0})  # answer styles and their shares
    max_length: int = 512  # longer examples are skipped (and counted), never cut mid-sketch
    # share of the examples that carry a paraphrased question (sketch-world) asked in those words, not the template's
    paraphrase_share: float = 0.0
    warmup_describe_fraction: float = 0.6  # stage 0: first this share of steps on dense descriptions only
    warmup_questions_per_image: int = 3  # stage 0: perception questions per image after the description phase
    warmup_sketch_share: float = 0.0  # stage 0: share of pairs shown as a sketch (latents at slots), not an image
    # model
    latent_budget: int = 0  # K; 0 = keep the checkpoint's. A different K rebuilds the head's slot embeddings
    diffusion_loss_weight: float = -1.0  # λ; < 0 = keep the checkpoint's
    head_type: str = ""  # diffusion | regression: a different type than the checkpoint's starts a fresh head
    diffusion_steps: int = 0  # T used in GRPO rollouts; 0 = the checkpoint's (the saved default is not changed)
    sketch_decoding: str = ""  # sequential | parallel (model/core/slot_queries.py); "" = keep the checkpoint's
    sketch_refine_passes: int = -1  # parallel: refinement passes R; < 0 = keep the checkpoint's
    freeze_vision: bool = True  # vision encoder + merger frozen (always False in stage 0)
    lora_rank: int = 0  # > 0: train LoRA adapters (peft) on the language model instead of all its weights
    lora_alpha: int = 16
    # stage 1 recipe (model/sft_batch.py)
    answer_weight: float = 1.0  # weight in the text loss of the tokens that carry the answer (others weigh 1)
    blind_fraction: float = 0.0  # share of rows whose sketch slots cannot see the problem image (no diffusion loss)
    self_feed_fraction: float = 0.0  # share of rows fed the head's own latents instead of the true ones
    self_feed_start: float = 0.0  # self-feeding starts after this share of max_steps
    self_feed_steps: int = 5  # denoising steps T of the self-fed samples
    draw_weight: float = 0.0  # > 0: the drawing probe's loss (ModalMixedModel.forward, slot_labels) with this weight
    # optimisation
    batch_size: int = 8  # per process
    grad_accum: int = 1
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 20  # linear LR warm-up, then cosine decay to 10 % of lr
    max_steps: int = 100  # optimizer steps
    clip_grad: float = 1.0
    mixed_precision: str = "no"  # no | bf16 | fp16 (accelerate; bf16 where the device supports it)
    # > 0: sort each window of this many global batches by row length before cutting it into batches (stage 0 and 1;
    # model/training/batch_stream.py): far less padding, the same examples each epoch
    length_grouping: int = 0
    # > 1: run each stage-1 batch in this many parts of like length, each padded to its own longest row, whose losses
    # add up to the batch's (model/training/length_split.py): the same gradient, less padding
    length_splits: int = 1
    compile: bool = False  # torch.compile the language model and the head's blocks (stages 0 and 1; dynamic shapes)
    fused_optimizer: bool = False  # AdamW's fused kernel (one kernel over every parameter) instead of foreach
    seed: int = 0
    num_workers: int = 0
    # checkpoints and logging
    save_every: int = 50  # steps between checkpoints (and one at the end)
    keep_last: int = 2  # older checkpoints are deleted
    log_every: int = 5
    tracker: str = "trackio"  # trackio | tensorboard | none (metrics.jsonl is always written)
    project: str = "modal-mixed-cot"
    eval_limit: int = 0  # > 0: evaluate this many validation examples (auto mode) after training
    # stage 2: GRPO
    grpo_prompts: int = 4  # prompts per step
    grpo_group_size: int = 4  # G rollouts per prompt
    grpo_beta: float = 0.04  # KL coefficient to the frozen reference
    grpo_clip: float = 0.2  # ε of the clipped ratio objective
    grpo_temperature: float = 1.0
    grpo_max_new_tokens: int = 128
    grpo_inner_steps: int = 1  # optimizer steps per batch of rollouts
    rewards: list = field(default_factory=lambda: ["accuracy"])  # names in model.rewards.REWARDS, summed
    grpo_anchor_weight: float = 0.0  # > 0: + this × stage 1's text loss on traces fed their true sketches
    grpo_anchor_batch: int = 16  # rows of that anchor batch per step (per process)

    def check(self) -> None:
        if self.sketch_decoding not in ("", "sequential", "parallel"):
            raise ValueError(f"sketch_decoding must be sequential or parallel, got {self.sketch_decoding!r}")
        if self.head_type not in ("", "diffusion", "regression"):
            raise ValueError(f"head_type must be diffusion or regression, got {self.head_type!r}")
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        for name in (
            "batch_size",
            "grad_accum",
            "max_steps",
            "save_every",
            "max_length",
            "grpo_group_size",
            "grpo_anchor_batch",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be no, bf16 or fp16, got {self.mixed_precision!r}")
        if self.tracker not in ("trackio", "tensorboard", "none"):
            raise ValueError(f"tracker must be trackio, tensorboard or none, got {self.tracker!r}")
        if not 0 <= self.carve <= 0.25:
            raise ValueError(f"carve must be between 0 and 0.25, got {self.carve}")
        names = ("blind_fraction", "self_feed_fraction", "self_feed_start", "warmup_sketch_share", "paraphrase_share")
        for name in names:
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if not 1 <= self.length_splits <= self.batch_size:
            raise ValueError(
                f"length_splits must be from 1 to batch_size ({self.batch_size}), got {self.length_splits}"
            )
        if self.length_grouping < 0:
            raise ValueError(f"length_grouping must be >= 0 (0: off), got {self.length_grouping}")
        if self.grpo_anchor_weight < 0:
            raise ValueError(f"grpo_anchor_weight must be >= 0, got {self.grpo_anchor_weight}")
        if self.answer_weight <= 0 or self.self_feed_steps < 1:
            raise ValueError(
                f"answer_weight must be > 0 and self_feed_steps >= 1, got {self.answer_weight}, {self.self_feed_steps}"
            )
        if not self.styles or any(v < 0 for v in self.styles.values()):
            raise ValueError(f"styles must map style names to non-negative shares, got {self.styles}")


def _coerce(name: str, kind, value, source: str):
    """Check (and for strings from the command line, convert) one value against the field's declared type."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
        origin = typing.get_origin(kind)
    if isinstance(value, str) and kind is not str:
        try:
            value = yaml.safe_load(value)  # "3e-4" → 0.0003, "true" → True, "[a, b]" → list
        except yaml.YAMLError as err:
            raise ValueError(f"{source}: {name} = {value!r} is not valid YAML ({err})") from err
    base = origin or kind
    if base in (int, float) and isinstance(value, str):
        try:  # YAML 1.1 reads "3e-4" (no dot) as a string
            value = base(value)
        except ValueError:
            pass
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, base) and not (base in (int, float) and isinstance(value, bool))
    if not ok:
        raise ValueError(f"{source}: {name} must be {base.__name__}, got {value!r} ({type(value).__name__})")
    return value


def _check_retired(key: str, value, source: str) -> None:
    """A removed experiment's key is read only at the value that leaves it off; ValueError naming the commit else."""
    off = RETIRED_KEYS[key]
    if _coerce(key, type(off), value, source) != off:
        raise ValueError(f"{source}: {key} = {value!r} is a removed experiment (only {off!r} is read); its code is at "
                         f"commit {RETIRED_AT} (docs/RESULTS.md › What we tried)")  # fmt: skip


def load_config(path: str | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """YAML file + ['--key', 'value', …] overrides → a checked TrainConfig."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    hints = typing.get_type_hints(TrainConfig)
    values = {}
    if path is not None:
        if not Path(path).is_file():
            raise ValueError(f"config file {path} does not exist")
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of keys to values")
        for key, value in data.items():
            if key in RETIRED_KEYS:
                _check_retired(key, value, path)
            elif key not in fields:
                raise ValueError(f"{path}: unknown key {key!r}")
            else:
                values[key] = _coerce(key, hints[key], value, path)
    overrides = list(overrides or [])
    if len(overrides) % 2:
        raise ValueError(f"overrides must be --key value pairs, got {overrides}")
    for flag, value in zip(overrides[::2], overrides[1::2]):
        key = flag.removeprefix("--").replace("-", "_")
        if flag.startswith("--") and key in RETIRED_KEYS:
            _check_retired(key, value, "command line")
        elif not flag.startswith("--") or key not in fields:
            raise ValueError(f"command line: unknown key {flag!r}")
        else:
            values[key] = _coerce(key, hints[key], value, "command line")
    cfg = TrainConfig(**values)
    cfg.check()
    return cfg
