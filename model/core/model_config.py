"""Configuration of the modal-mixed model, and its named presets.

`ModalMixedConfig` is a transformers `PreTrainedConfig` that holds the Qwen2.5-VL backbone config plus everything the
latent-sketch machinery needs: the token budget K, how targets are pooled, the diffusion head's shape and sampler, the
loss weight λ, and the special tokens. It saves to and loads from `config.json` like any transformers config.

Presets (see `preset_config`):
- `tiny`: < 1 M parameters, 56-px images (16 image tokens), K = 4. Used by the tests and smoke runs.
- `demo`: ~5 M parameters, 224-px images (8×8 = 64 merged image tokens, so K up to 64 pools exactly), K = 32. The
  model trained from scratch on CPU and shipped in assets/.
- `qwen2.5-vl-3b`, `qwen2.5-vl-7b`: the real checkpoints, loaded by hub id or local path in
  `model.checkpoint.from_backbone`; 448-px images (16×16 = 256 merged tokens), K = 32, as in the paper. Their
  architectures are written out in `PRETRAINED_TEXT` / `PRETRAINED_VISION` (random weights, no download).
"""

import math

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig, Qwen2_5_VLConfig

START_TOKEN = "<|sketch_start|>"
END_TOKEN = "<|sketch_end|>"
LATENT_TOKEN = "<|sketch_pad|>"  # placeholder id at latent slots; its embedding is replaced by the latent
SKETCH_DECODINGS = ("sequential", "parallel")
# Keys of experiments that were removed, with the one value every shipped checkpoint carries: a config.json written
# before their removal loads with that value and is refused with any other (docs/RESULTS.md › What we tried names the
# commit that still runs each experiment).
RETIRED_KEYS = {
    "draw_query": False,  # ⟨START⟩ and each slot also carried the next slot's cell position (E7 – E9)
    "latent_loss_to_backbone": True,  # False detached the head's condition: the diffusion loss trained the head only
    "diffusion_prediction": "v_prediction",  # "epsilon": the head predicted the noise
}
RETIRED_AT = "09b3544"  # the last commit with every retired experiment's code


@strict
class ModalMixedConfig(PreTrainedConfig):
    model_type = "modal_mixed"
    sub_configs_defaults = {"vlm_config": Qwen2_5_VLConfig}

    vlm_config: dict | PreTrainedConfig | None = None  # the Qwen2.5-VL config (text + vision)
    latent_budget: int = 32  # K: latent embeddings per sketch
    latent_pooling: str = "avg2d"  # how the merged image-token grid is reduced to K tokens
    image_size: int = 224  # every image is resized to image_size × image_size before the vision encoder
    head_type: str = "diffusion"  # diffusion (the paper's head) | regression (its ablation: direct MSE prediction)
    head_width: int = 256  # diffusion head hidden width
    head_depth: int = 3  # residual AdaLN blocks in the diffusion head
    diffusion_steps: int = 50  # T: sampling steps at inference
    diffusion_solver: str = "ddim"  # ddim | dpm++ (model/core/diffusion_head.py)
    # scale of the Gaussian noise each sketch draw starts from: 1 samples the trained distribution, < 1 draws nearer
    # its mode (0: one deterministic draw per state). Inference only; chosen on the validation split (docs/RESULTS.md)
    sketch_temperature: float = 1.0
    diffusion_train_steps: int = 1000  # discretisation of the noise schedule used for training
    diffusion_train_draws: int = 4  # noise draws per target per training step (MAR's diffusion_batch_mul)
    diffusion_schedule: str = "squaredcos_cap_v2"  # diffusers beta schedule name
    diffusion_loss_weight: float = 1.0  # λ in loss = CE + λ·diffusion
    cell_position_embedding: bool = False  # learned row + column embeddings added to image tokens and sketch slots
    sketch_gate: bool = False  # positions from a row's first ⟨END⟩ on cannot attend to the problem image tokens
    # colour names of the drawing probe's classes (a linear map from the state that draws slot k to the colour of
    # cell k, trained with `draw_weight` where the sketches are described); None: no probe
    cell_colours: list | None = None
    # how a sketch is drawn: sequential (the paper: slot k from the state after slots < k, one decode step each) |
    # parallel (all K slots from learned slot queries in one pass, then written into the KV cache in one pass:
    # no slot is drawn from the model's own earlier slots, so training sees exactly what inference does)
    sketch_decoding: str = "sequential"
    sketch_refine_passes: int = 0  # parallel only: R passes that re-draw all K slots from the previous drawing
    start_token: str = START_TOKEN
    end_token: str = END_TOKEN
    latent_token: str = LATENT_TOKEN
    start_token_id: int | None = None
    end_token_id: int | None = None
    latent_token_id: int | None = None
    eos_token_id: int | None = None  # ends an answer (<|im_end|>)
    pad_token_id: int | None = None
    preset: str = ""  # the preset this config was built from, for the record

    def __post_init__(self, **kwargs):
        for key in set(RETIRED_KEYS) & set(kwargs):
            check_retired(key, kwargs.pop(key))
        super().__post_init__(**kwargs)
        if self.latent_budget < 1:
            raise ValueError(f"latent_budget must be >= 1, got {self.latent_budget}")
        if self.latent_pooling != "avg2d":
            raise ValueError(f"latent_pooling must be 'avg2d', got {self.latent_pooling!r}")
        if self.diffusion_solver not in ("ddim", "dpm++"):
            raise ValueError(f"diffusion_solver must be 'ddim' or 'dpm++', got {self.diffusion_solver!r}")
        check_sketch_temperature(self.sketch_temperature)
        check_sketch_decoding(self.sketch_decoding, self.sketch_refine_passes)
        if self.head_type not in ("diffusion", "regression"):
            raise ValueError(f"head_type must be 'diffusion' or 'regression', got {self.head_type!r}")

    @property
    def text_config(self):
        return self.vlm_config.text_config

    @property
    def vision_config(self):
        return self.vlm_config.vision_config

    @property
    def hidden_size(self) -> int:
        return self.vlm_config.text_config.hidden_size

    @property
    def merged_grid(self) -> int:
        """Side of the merged image-token grid: 224 px / 14 px patches / 2×2 merge = 8."""
        vision = self.vlm_config.vision_config
        return self.image_size // (vision.patch_size * vision.spatial_merge_size)


def check_retired(key: str, value) -> None:
    """ValueError unless a removed experiment's key has the value every shipped checkpoint has (`RETIRED_KEYS`)."""
    if value != RETIRED_KEYS[key]:
        raise ValueError(f"{key} = {value!r} is a removed experiment: only {RETIRED_KEYS[key]!r} loads here; the "
                         f"code that runs it is at commit {RETIRED_AT} (docs/RESULTS.md › What we tried)")  # fmt: skip


def check_sketch_temperature(value: float, name: str = "sketch_temperature") -> float:
    """`value` when it is a finite number >= 0 (a scale of the sketch head's start noise), else a ValueError that
    names it as `name` (the config field, or the CLI flag the user typed)."""
    if not 0 <= value < math.inf:  # also refuses NaN
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def check_sketch_decoding(decoding: str, refine_passes: int) -> None:
    """ValueError unless `decoding` is a known way to draw sketches and `refine_passes` fits it."""
    if decoding not in SKETCH_DECODINGS:
        raise ValueError(f"sketch_decoding must be one of {', '.join(SKETCH_DECODINGS)}, got {decoding!r}")
    if refine_passes < 0 or (refine_passes and decoding != "parallel"):
        raise ValueError(
            f"sketch_refine_passes must be >= 0, and 0 unless sketch_decoding is parallel; got {refine_passes} "
            f"with {decoding}"
        )


def _backbone(
    vocab_size, hidden, layers, heads, kv_heads, ffn, vision_hidden, vision_layers, vision_heads, patch, window
) -> dict:
    head_dim = hidden // heads
    # mrope splits the head_dim/2 rotary frequencies over (time, height, width) as Qwen does: [16, 24, 24] for 128
    mrope = [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16]
    return dict(
        text_config=dict(
            vocab_size=vocab_size,
            hidden_size=hidden,
            intermediate_size=ffn,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            max_position_embeddings=4096,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope},
            tie_word_embeddings=True,
            bos_token_id=None,
            eos_token_id=None,
        ),
        vision_config=dict(
            depth=vision_layers,
            hidden_size=vision_hidden,
            intermediate_size=vision_hidden * 2,
            num_heads=vision_heads,
            out_hidden_size=hidden,
            patch_size=patch,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=window,
            fullatt_block_indexes=list(range(vision_layers)),
        ),
        tie_word_embeddings=True,
    )


# Shapes of the from-scratch presets. The vocabulary size is a cap: the trained tokenizer decides the final size.
SCRATCH_PRESETS = {
    "tiny": dict(
        backbone=dict(
            vocab_size=512, hidden=64, layers=2, heads=4, kv_heads=2, ffn=128,
            vision_hidden=32, vision_layers=1, vision_heads=2, patch=7, window=28,
        ),
        image_size=56, latent_budget=4, head_width=64, head_depth=2, diffusion_steps=10,
        cell_position_embedding=True, sketch_gate=True,
    ),
    "demo": dict(
        backbone=dict(
            vocab_size=1024, hidden=256, layers=4, heads=4, kv_heads=2, ffn=512,
            vision_hidden=128, vision_layers=2, vision_heads=4, patch=14, window=112,
        ),
        image_size=224, latent_budget=32, head_width=256, head_depth=3, diffusion_steps=50,
        cell_position_embedding=True, sketch_gate=True,
    ),
}  # fmt: skip

# Real checkpoints: the hub id used when the user gives the preset name instead of a path.
PRETRAINED_PRESETS = {
    "qwen2.5-vl-3b": "Qwen/Qwen2.5-VL-3B-Instruct",
    "qwen2.5-vl-7b": "Qwen/Qwen2.5-VL-7B-Instruct",
}
PRETRAINED_IMAGE_SIZE = 448  # 448 px / 14 / 2 = 16 → 256 merged tokens, pooled to K = 32 in the paper

# The real checkpoints' architectures, written out so that they can be built with random weights and no download
# (benchmarks/bench_backbone.py). Numbers from each checkpoint's config.json on the hub:
# https://huggingface.co/Qwen/Qwen2.5-VL-3B-Instruct/blob/main/config.json and
# https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct/blob/main/config.json (head_dim 128 in both: 2048/16, 3584/28).
PRETRAINED_TEXT = {
    "qwen2.5-vl-3b": dict(
        vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
        num_key_value_heads=2, max_window_layers=70, tie_word_embeddings=True,
    ),
    "qwen2.5-vl-7b": dict(
        vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
        num_key_value_heads=4, max_window_layers=28, tie_word_embeddings=False,
    ),
}  # fmt: skip
# the same vision tower in both (out_hidden_size is the text width); window attention except in the listed blocks
PRETRAINED_VISION = dict(
    depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, patch_size=14, spatial_merge_size=2,
    temporal_patch_size=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2,
)  # fmt: skip


def pretrained_vlm_config(name: str, text_layers: int | None = None, vision_layers: int | None = None) -> dict:
    """The Qwen2.5-VL config (as a dict) of a real checkpoint's architecture; `text_layers` / `vision_layers` keep
    only the first layers (the same widths), as a cheaper stand-in for the whole model."""
    if name not in PRETRAINED_TEXT:
        raise ValueError(f"no architecture for {name!r}; known: {', '.join(PRETRAINED_TEXT)}")
    text = dict(PRETRAINED_TEXT[name])
    tie = text.pop("tie_word_embeddings")
    text.update(
        hidden_act="silu", max_position_embeddings=128000, rms_norm_eps=1e-6, use_sliding_window=False,
        sliding_window=32768, attention_dropout=0.0, tie_word_embeddings=tie,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
    )  # fmt: skip
    vision = dict(PRETRAINED_VISION, out_hidden_size=text["hidden_size"])
    for config, key, layers in ((text, "num_hidden_layers", text_layers), (vision, "depth", vision_layers)):
        if layers is not None:
            if not 1 <= layers <= config[key]:
                raise ValueError(f"{name} has {config[key]} {key}; asked for {layers}")
            config[key] = layers
    return dict(text_config=text, vision_config=vision, tie_word_embeddings=tie)


PRESETS = tuple(SCRATCH_PRESETS) + tuple(PRETRAINED_PRESETS)


def preset_config(name: str, vocab_size: int | None = None, **overrides) -> ModalMixedConfig:
    """The config of a from-scratch preset; `vocab_size` is the trained tokenizer's size."""
    if name not in SCRATCH_PRESETS:
        if name in PRETRAINED_PRESETS:
            raise ValueError(f"preset {name!r} starts from a real checkpoint: use ModalMixedModel.from_backbone")
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    spec = dict(SCRATCH_PRESETS[name])
    backbone = dict(spec.pop("backbone"))
    if vocab_size is not None:
        backbone["vocab_size"] = vocab_size
    spec.update(overrides)
    return ModalMixedConfig(vlm_config=_backbone(**backbone), preset=name, **spec)
