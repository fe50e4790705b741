"""Building, saving and loading modal-mixed models.

One folder holds a whole model: `config.json` (ModalMixedConfig, backbone config inside), `model.safetensors` (all
weights and the latent statistics; never pickle), the tokenizer (`tokenizer.json`, `tokenizer_config.json`),
`preprocessor_config.json`, and optionally `sketch_codebook.safetensors` (model/core/sketch_codebook.py: the centroids
drawn sketches snap to; loaded as `model.sketch_codebook`, kept by save_pretrained). `save_pretrained` writes into a
temporary sibling folder and renames it into place (model/core/atomic.py), so a crash mid-save leaves the previous
checkpoint intact. `load_pretrained` checks each file and names the one that is missing or damaged.

`load_model(spec)` is what the CLIs and the app call: `spec` is a checkpoint folder, a from-scratch preset name (a
randomly initialised model for smoke runs), or a real Qwen2.5-VL checkpoint (preset name, hub id, or local folder of
one); `resolve(spec)` says which, the one place checkpoint names are interpreted. Errors name the checkpoint as the
user typed it.

`locate(name)` reads a name as a user types it, for the app (page and API) and `python -m model.generate` alike:
`demo` is the shipped trained model, `tiny` and `demo-random` the presets with random weights (model/core/paths.py),
registered names their folders, and a hub id is looked up on the hub for at most HUB_TIMEOUT_S (`hub_problem`)
before anything waits on a download that transformers would retry for most of a minute.

    located = locate("demo")                  # Located(kind="folder", spec=".../assets/checkpoints/demo", ...)
    model = load_model(located.spec)
    locate("nobody/no-such-model")            # CheckpointError within HUB_TIMEOUT_S when the hub cannot say
"""

import functools
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub
import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, HFValidationError, RepositoryNotFoundError
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, PreTrainedTokenizerFast, Qwen2_5_VLForConditionalGeneration
from transformers.initialization import no_init_weights

from model.core import vision
from model.core.atomic import atomic_folder
from model.core.modal_mixed import ModalMixedModel
from model.core.model_config import (
    PRETRAINED_IMAGE_SIZE,
    PRETRAINED_PRESETS,
    SCRATCH_PRESETS,
    ModalMixedConfig,
    preset_config,
)
from model.core.paths import RANDOM_PRESETS, ROOT, target
from model.core.sketch_codebook import CODEBOOK_NAME, CodebookError, load_codebook, save_codebook
from model.core.tokenizer import IM_END, add_sketch_tokens, token_id, train_tokenizer
from model.sketchworld import corpus_text

WEIGHTS_NAME = "model.safetensors"
HUB_TIMEOUT_S = 1.5  # how long a hub id may take to be found on the hub before it is refused
REQUIRED_FILES = ("config.json", WEIGHTS_NAME, "tokenizer.json", "preprocessor_config.json")


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be loaded; the message names the file."""


def _processor_for(config: ModalMixedConfig):
    v = config.vision_config
    return vision.make_image_processor(config.image_size, v.patch_size, v.spatial_merge_size, v.temporal_patch_size)


def _link_token_ids(config: ModalMixedConfig, tokenizer) -> None:
    config.start_token_id = token_id(tokenizer, config.start_token)
    config.end_token_id = token_id(tokenizer, config.end_token)
    config.latent_token_id = token_id(tokenizer, config.latent_token)
    config.eos_token_id = token_id(tokenizer, IM_END)
    config.pad_token_id = tokenizer.pad_token_id
    vlm = config.vlm_config
    for name, token in [("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>")]:
        setattr(vlm, name, token_id(tokenizer, token))
    vlm.vision_start_token_id = token_id(tokenizer, "<|vision_start|>")
    vlm.vision_end_token_id = token_id(tokenizer, "<|vision_end|>")


@functools.cache
def default_corpus() -> tuple[str, ...]:
    """Sketch-world text for the preset tokenizers (rendered once per process)."""
    return tuple(corpus_text())


def build_preset(name: str, texts: list[str] | None = None, seed: int = 0, **overrides) -> ModalMixedModel:
    """A randomly initialised from-scratch preset with a BPE tokenizer trained on `texts` (default: sketch-world)."""
    if name not in SCRATCH_PRESETS:
        preset_config(name)  # raises the helpful error
    if texts is None:
        texts = default_corpus()
    vocab_cap = SCRATCH_PRESETS[name]["backbone"]["vocab_size"]
    tokenizer = train_tokenizer(texts, vocab_cap)
    config = preset_config(name, vocab_size=len(tokenizer), **overrides)
    _link_token_ids(config, tokenizer)
    torch.manual_seed(seed)
    return ModalMixedModel(config, tokenizer, _processor_for(config))


def from_backbone(path_or_hub_id: str, dtype: torch.dtype | None = None, **overrides) -> ModalMixedModel:
    """Start from a real Qwen2.5-VL checkpoint: add the sketch tokens, resize embeddings, attach a fresh head."""
    path_or_hub_id = PRETRAINED_PRESETS.get(path_or_hub_id, path_or_hub_id)
    backbone = Qwen2_5_VLForConditionalGeneration.from_pretrained(path_or_hub_id, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(path_or_hub_id)
    add_sketch_tokens(tokenizer)
    if len(tokenizer) > backbone.get_input_embeddings().num_embeddings:
        backbone.resize_token_embeddings(len(tokenizer))
    settings = dict(image_size=PRETRAINED_IMAGE_SIZE, latent_budget=32, head_width=1024, head_depth=3)
    settings.update(overrides)
    config = ModalMixedConfig(vlm_config=backbone.config.to_dict(), preset=str(path_or_hub_id), **settings)
    _link_token_ids(config, tokenizer)
    backbone.config.image_token_id = config.vlm_config.image_token_id
    model = ModalMixedModel(config, tokenizer, _processor_for(config), backbone=backbone)
    if dtype is not None:
        model.head.to(dtype)
    return model


def save_pretrained(
    model: ModalMixedModel,
    directory: str | os.PathLike,
    dtype: torch.dtype | None = None,
    state_dict: dict | None = None,
) -> Path:
    """Write the model folder atomically (model/core/atomic.py): a staging folder, then a rename. `dtype` (e.g.
    float16) stores the floating-point weights in that type; loading casts them back to the model's type.
    `state_dict` is written instead of the model's own (model/training/state.py: the weights with LoRA merged in)."""
    directory = Path(directory)
    with atomic_folder(directory) as staging:
        model.config.save_pretrained(staging)
        state = model.state_dict() if state_dict is None else state_dict
        save_file(_storable(state, dtype), str(staging / WEIGHTS_NAME), metadata={"format": "pt"})
        model.tokenizer.save_pretrained(staging)
        model.image_processor.save_pretrained(staging)
        if model.sketch_codebook is not None:
            save_codebook(model.sketch_codebook, staging / CODEBOOK_NAME)
    return directory


def _storable(state: dict, dtype: torch.dtype | None) -> dict:
    """The tensors as safetensors stores them: a tensor tied to another (the same storage, as tied embeddings are)
    once, under the first of its names in sorted order, as safetensors.save_model keeps it (`_load_state` fills the
    others back in); contiguous; floating-point ones cast to `dtype` one at a time when it is given (no copy of the
    whole model: at 3B size that is a second model's memory)."""
    out, seen = {}, set()
    for name in sorted(state):
        tensor = state[name]
        tie = (tensor.device, tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if tensor.numel() and tie in seen:
            continue
        seen.add(tie)
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        out[name] = tensor.contiguous()
    return out


def read_config_json(directory: str | os.PathLike, shown: str | None = None) -> dict:
    """config.json of a checkpoint folder as a dict; CheckpointError naming the file (as `shown`, the folder as the
    user typed it) when it is not valid JSON or not a JSON object."""
    path = Path(directory) / "config.json"
    where = f"{shown}/config.json" if shown else str(path)
    try:
        data = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{where} is damaged: not valid JSON ({err})") from err
    except OSError as err:
        raise CheckpointError(f"{where} cannot be read: {err.strerror or err}") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"{where} is damaged: expected a JSON object, got {type(data).__name__}")
    return data


def read_config(directory: str | os.PathLike, shown: str | None = None) -> ModalMixedConfig:
    """The ModalMixedConfig of a checkpoint folder; CheckpointError naming config.json when it is damaged."""
    where = f"{shown}/config.json" if shown else str(Path(directory) / "config.json")
    data = read_config_json(directory, shown)
    try:
        return ModalMixedConfig.from_dict(data)
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise CheckpointError(f"{where} is not a modal-mixed config: {err}") from err


def load_pretrained(
    directory: str | os.PathLike,
    with_latent_head: bool = True,
    device: str | torch.device = "cpu",
    dtype=None,
    shown: str | None = None,
) -> ModalMixedModel:
    """Load a folder written by save_pretrained. with_latent_head=False gives the language-only model. Errors name
    the folder as `shown` (what the user typed) when given."""
    directory = Path(directory)
    shown = shown or str(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint folder {shown} does not exist")
    for name in REQUIRED_FILES:
        if not (directory / name).is_file():
            raise CheckpointError(f"checkpoint {shown} is missing {name}")
    config = read_config(directory, shown)
    try:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(directory)
    except Exception as err:  # tokenizers raises its own exception types for a damaged file
        raise CheckpointError(f"{shown}/tokenizer.json is damaged: {err}") from err
    tokenizer.split_special_tokens = True
    try:
        processor = type(_processor_for(config)).from_pretrained(directory)
    except Exception as err:
        raise CheckpointError(f"{shown}/preprocessor_config.json is damaged: {err}") from err
    with no_init_weights():  # every weight comes from the file (checked below): no random init first (~1 min at 3B)
        model = ModalMixedModel(config, tokenizer, processor)
    model.backbone.tie_weights()  # done by the init skipped above
    weights_path = directory / WEIGHTS_NAME
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{shown}/{WEIGHTS_NAME} is damaged: {err}") from err
    if not with_latent_head:
        model.remove_latent_head()
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    _load_state(model, state, f"{shown}/{WEIGHTS_NAME}")
    if with_latent_head and (directory / CODEBOOK_NAME).is_file():
        try:
            model.sketch_codebook = load_codebook(directory / CODEBOOK_NAME, model.latent_budget,
                                                  config.hidden_size, shown=f"{shown}/{CODEBOOK_NAME}")  # fmt: skip
        except CodebookError as err:
            raise CheckpointError(str(err)) from err
    return model.to(device=device, dtype=dtype) if dtype is not None else model.to(device)


def _load_state(model: ModalMixedModel, state: dict, weights_path: str) -> None:
    expected = model.state_dict()
    # tied weights are stored once (`_storable`); they are filled back in from the surviving name
    stored_ptrs = {expected[k].data_ptr() for k in state if k in expected}
    shared = {k for k, v in expected.items() if k not in state and v.data_ptr() in stored_ptrs}
    missing = sorted(set(expected) - set(state) - shared)
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{weights_path} does not match the config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for key, value in state.items():
        if expected[key].shape != value.shape:
            raise CheckpointError(
                f"{weights_path}: {key} has shape {tuple(value.shape)}, the config needs {tuple(expected[key].shape)}"
            )
    model.load_state_dict(state, strict=False)


def is_checkpoint_dir(spec: str | os.PathLike) -> bool:
    return Path(spec).is_dir() and (Path(spec) / "config.json").is_file() and (Path(spec) / WEIGHTS_NAME).is_file()


def resolve(spec: str, root: str | os.PathLike | None = None) -> tuple[str, Path | None]:
    """What a checkpoint name means: ("folder", path) for a checkpoint folder (relative ones under `root`, default
    the working folder), ("preset", None) for a preset name, ("hub", None) for an "owner/name" hub id. CheckpointError
    names `spec` as the user typed it, never the path it resolved to."""
    spec = spec.strip() if isinstance(spec, str) else spec
    if not spec:
        raise CheckpointError("no checkpoint given")
    path = Path(spec).expanduser()
    if not path.is_absolute() and root is not None:
        path = Path(root) / path
    if path.is_dir():
        if not (path / "config.json").is_file() or not (path / WEIGHTS_NAME).is_file():
            raise CheckpointError(f"checkpoint folder {spec} has no config.json and {WEIGHTS_NAME}")
        return "folder", path
    if path.exists():
        raise CheckpointError(f"checkpoint {spec} is a file, not a folder")
    if spec in SCRATCH_PRESETS or spec in PRETRAINED_PRESETS:
        return "preset", None
    # "owner/name" is a hub id, unless it ends in "/" or "owner" is a local folder: then it is a missing folder
    owner, _, name = spec.partition("/")
    local_owner = (Path(root) / owner if root is not None else Path(owner)).is_dir() if owner else False
    if owner and name and "/" not in name and not spec.startswith((".", "~")) and not local_owner:
        return "hub", None
    if local_owner and name and "/" not in name:
        raise CheckpointError(f"checkpoint folder {spec} does not exist ({owner}/ is a local folder, so {spec} is not "
                              "read as a hub id)")  # fmt: skip
    if "/" in spec or spec.startswith((".", "~")):
        raise CheckpointError(f"checkpoint folder {spec} does not exist")
    raise CheckpointError(
        f"unknown checkpoint {spec!r}: not a folder, and not one of the presets "
        f"{', '.join(list(SCRATCH_PRESETS) + list(PRETRAINED_PRESETS))}"
    )


def load_model(
    spec: str,
    device: str | torch.device = "cpu",
    with_latent_head: bool = True,
    root: str | os.PathLike | None = None,
) -> ModalMixedModel:
    """A checkpoint folder, a from-scratch preset name (random init), or a real Qwen2.5-VL checkpoint (preset name,
    hub id, or a local folder of one). Every failure is a CheckpointError that names the checkpoint as typed."""
    kind, path = resolve(spec, root)
    if kind == "folder":
        config = read_config_json(path, spec)
        if config.get("model_type") == "modal_mixed":
            return load_pretrained(path, with_latent_head=with_latent_head, device=device, shown=spec)
        _check_backbone_config(config, f"{spec}/config.json")
        model = _backbone_or_error(str(path), spec)  # a plain Qwen2.5-VL folder
    elif spec in SCRATCH_PRESETS:
        model = build_preset(spec)
    else:
        model = _backbone_or_error(spec, spec)
    if not with_latent_head:
        model.remove_latent_head()
    return model.to(device)


def _check_backbone_config(config: dict, where: str) -> None:
    """A folder that is not modal-mixed must hold a Qwen2.5-VL config with its sizes: transformers would build the
    default (7B) model from a config without them, which takes minutes and tens of GB before failing."""
    if config.get("model_type") != "qwen2_5_vl":
        raise CheckpointError(
            f"{where} has model_type {config.get('model_type')!r}; expected 'modal_mixed' (a checkpoint of this "
            "project) or 'qwen2_5_vl' (a Qwen2.5-VL checkpoint)"
        )
    text = config.get("text_config")
    if "hidden_size" not in config and not (isinstance(text, dict) and "hidden_size" in text):
        raise CheckpointError(f"{where} is damaged: a Qwen2.5-VL config without the model's sizes (hidden_size)")


def _damaged_weights(folder: Path) -> str | None:
    """The first .safetensors file of a folder whose header cannot be read, or None."""
    for file in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="pt"):
                pass
        except (SafetensorError, OSError):
            return file.name
    return None


def _backbone_or_error(source: str, spec: str) -> ModalMixedModel:
    try:
        return from_backbone(source)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, SafetensorError) as err:
        # not cached and no network, no such repository, damaged weights, a config transformers cannot read
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        damaged = _damaged_weights(Path(source)) if Path(source).is_dir() else None
        if damaged is not None:
            reason = f"{spec}/{damaged} is damaged ({reason})"
        raise CheckpointError(f"could not load {spec!r} as a Qwen2.5-VL checkpoint: {reason}") from err


# ---- names as a user types them ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Located:
    """What a checkpoint name means, found before anything is loaded."""

    kind: str  # "folder", "preset" or "hub"
    spec: str  # what load_model takes: a folder, a preset's own name or a hub id
    folder: Path | None  # the checkpoint folder (None for presets and hub ids)
    note: str = ""  # for a preset with random weights, what to say wherever its text appears


def random_weights_note(name: str) -> str:
    """What the app's banner and the CLI say beside the text of a from-scratch preset."""
    return f"{name} is a from-scratch preset with random weights: its text is gibberish (the trained model is demo)"


def locate(
    name: str,
    root: str | os.PathLike | None = None,
    registered: dict[str, str] | None = None,
    look_up_hub: bool = True,
) -> Located:
    """What a checkpoint name typed by a user means (model/core/paths.py: `demo` the shipped trained model, `tiny` and
    `demo-random` the presets with random weights, `registered` names their folders, written relative to the
    repository); anything else as `resolve` reads it, relative folders under `root`. A hub id (or a pretrained
    preset's) is looked up on the hub first (`hub_problem`, unless `look_up_hub` is False). CheckpointError naming
    the checkpoint as typed, never the folder it resolved to."""
    shown = name.strip() if isinstance(name, str) else ""
    if shown in RANDOM_PRESETS:
        return Located("preset", RANDOM_PRESETS[shown], None, random_weights_note(shown))
    spec = target(shown, registered)
    try:
        kind, folder = resolve(spec, ROOT if spec != shown else root)
    except OSError as err:  # e.g. a name longer than the file system allows
        raise CheckpointError(f"checkpoint {_short(shown)} cannot be used: {err.strerror or err}") from None
    except CheckpointError as err:
        if spec == shown:
            raise
        where = _in_repository(spec)
        raise CheckpointError(
            f"{shown!r} names {where}, which cannot be loaded: {str(err).replace(spec, where)}"
        ) from None
    hub_id = PRETRAINED_PRESETS.get(spec, spec) if kind != "folder" else None
    if look_up_hub and hub_id is not None and "/" in hub_id:
        problem = hub_problem(hub_id)
        if problem:
            raise CheckpointError(f"could not load {shown!r} as a Qwen2.5-VL checkpoint: {problem}")
    note = random_weights_note(shown) if spec in SCRATCH_PRESETS and kind == "preset" else ""
    return Located(kind, str(folder) if folder is not None else spec, folder, note)


def hub_problem(repo_id: str, timeout_s: float = HUB_TIMEOUT_S) -> str:
    """Why the hub id cannot be loaded now ("" when it is in the local cache or the hub has it), found within
    `timeout_s`: transformers' own download would retry for most of a minute before giving up. HF_HUB_OFFLINE=1:
    the local cache only, at once."""
    try:
        if isinstance(huggingface_hub.try_to_load_from_cache(repo_id, "config.json"), str):
            return ""
    except HFValidationError as err:
        return f"not a valid hub id ({err})"
    if hub_constants.is_offline_mode():
        return "it is not in the local Hugging Face cache, and HF_HUB_OFFLINE is set"
    # The HTTP timeout bounds each phase of the request, not name resolution or the whole: the wait has its own, in a
    # daemon thread, so that neither a server nor a CLI waits for a lookup it has given up on.
    outcome: list = []
    done = threading.Event()

    def look() -> None:
        try:
            huggingface_hub.model_info(repo_id, timeout=timeout_s)
            outcome.append(None)
        except Exception as err:  # handed to the caller below
            outcome.append(err)
        done.set()

    threading.Thread(target=look, name="hub lookup", daemon=True).start()
    if not done.wait(timeout_s):
        return f"the Hugging Face hub did not answer within {timeout_s:g} s"
    err = outcome[0]
    if err is None:
        return ""
    if isinstance(err, RepositoryNotFoundError | GatedRepoError):
        return "the Hugging Face hub has no such model, or it is private or gated"
    if isinstance(err, HfHubHTTPError):
        return f"the Hugging Face hub refused it ({_short(str(err).splitlines()[0], 120)})"
    # no network, no DNS, a timeout: the HTTP stack raises its own types for each
    return f"the Hugging Face hub cannot be reached ({type(err).__name__}: {_short(str(err), 120)})"


def _in_repository(path: str) -> str:
    """A folder inside the repository by its relative path; anything else as written."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except (ValueError, OSError):
        return path


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
