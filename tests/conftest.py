"""Shared fixtures: offline, seeded, CPU; the tiny preset built once per session.

`tiny_model` and `sketchy_model` are shared by every test of the session, so no test may change them: one that fits
latent statistics, sets an attribute or trains takes `tiny_copy` (a deep copy of its own) or builds a model. Both
fixtures check this when the session ends and fail naming what changed. `shifted_mode` adds a generation mode in the
one place a mode is defined (model/generation/modes.py `MODE_SPECS`), for the tests that look for it everywhere else.
"""

import copy
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from accelerate.state import AcceleratorState  # noqa: E402
from PIL import Image  # noqa: E402

from model.core.checkpoint import build_preset  # noqa: E402
from model.core.model_config import preset_config  # noqa: E402
from model.core.tokenizer import train_tokenizer  # noqa: E402
from model.generation import modes  # noqa: E402
from model.generation.debug import bias_towards_sketching  # noqa: E402

torch.set_num_threads(1)  # tiny tensors: threads cost more than they give, and CI has 2 cores


def random_image(seed: int, size: int = 56) -> Image.Image:
    """An RGB picture of seeded noise."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8))


def _fingerprint(model) -> dict:
    """What a test could change: every tensor of the state dict, the config, and per module its attributes and
    train/eval flag (a monkeypatched method shows up as a new instance attribute)."""
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "config": model.config.to_json_string(),
        "modules": {name: (sorted(vars(m)), m.training) for name, m in model.named_modules()},
        "attributes": sorted(vars(model)),
    }


def _changes(model, before: dict) -> list[str]:
    after = _fingerprint(model)
    changed = [
        k for k, v in before["state"].items() if k not in after["state"] or not torch.equal(v, after["state"][k])
    ]
    changed += [f"module {n or '(root)'}" for n, v in before["modules"].items() if after["modules"].get(n) != v]
    if after["config"] != before["config"]:
        changed.append("config")
    if after["attributes"] != before["attributes"]:
        changed.append(f"attributes {sorted(set(after['attributes']) ^ set(before['attributes']))}")
    return changed


def _guarded(model, name: str):
    before = _fingerprint(model)
    yield model
    changed = _changes(model, before)
    assert not changed, f"a test changed the shared {name}: {changed[:8]}; give it its own copy (tiny_copy)"


@pytest.fixture(scope="session")
def tiny_model():
    """The tiny preset, random weights, eval mode; shared: never change it."""
    yield from _guarded(build_preset("tiny", seed=0).eval(), "tiny_model")


@pytest.fixture
def tiny_copy(tiny_model):
    """A deep copy of the tiny model that the test may change."""
    return copy.deepcopy(tiny_model)


@pytest.fixture(scope="session")
def sketchy_model():
    """A tiny model biased towards ⟨START⟩ (model/generation/debug.py), so that random weights still sketch, with
    latent statistics fitted on four pictures' targets; shared: never change it."""
    model = bias_towards_sketching(build_preset("tiny", seed=7).eval())
    with torch.no_grad():
        model.fit_latent_stats(model.sketch_targets([random_image(i) for i in range(4)]).flatten(0, 1))
    yield from _guarded(model, "sketchy_model")


@pytest.fixture(scope="session")
def tiny_qwen_folder(tmp_path_factory):
    """A folder laid out like a Qwen2.5-VL hub checkpoint (the real classes, tiny sizes, a stand-in tokenizer
    without the sketch tokens), as `from_backbone` and `load_model` take it."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    folder = tmp_path_factory.mktemp("qwen")
    tokenizer = train_tokenizer(["a plain corpus for a stand-in Qwen tokenizer"] * 20, 300)
    tokenizer = type(tokenizer)(
        tokenizer_object=tokenizer.backend_tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    vocab = tokenizer.get_vocab()
    cfg = preset_config("tiny").vlm_config.to_dict()
    cfg["image_token_id"], cfg["video_token_id"] = vocab["<|image_pad|>"], vocab["<|video_pad|>"]
    cfg["vision_start_token_id"], cfg["vision_end_token_id"] = vocab["<|vision_start|>"], vocab["<|vision_end|>"]
    torch.manual_seed(0)
    qwen = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig.from_dict(cfg))
    qwen.resize_token_embeddings(len(tokenizer) - 3)  # the stand-in vocab lacks the 3 sketch tokens' rows
    qwen.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """accelerate keeps one state per process, and refuses an Accelerator with other settings (a bf16 run after a
    float32 one) while it stands: each test starts without it, as each training run starts in its own process."""
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def shift_one_cell(sketch: torch.Tensor) -> torch.Tensor:
    """A sketch (K, D) moved one cell on: slot k gets the latent of slot k − 1 (raster order), the first the last's."""
    return sketch.roll(1, dims=0)


@pytest.fixture
def shifted_mode(monkeypatch):
    """`shifted-oracle`: the true sketches, each shifted by one cell — an inserting mode that exists only in the
    tests, added as one entry of the registry."""
    spec = modes.Mode("shifted-oracle", "the true sketches shifted by one cell", source="shifted", given="true",
                      transform=shift_one_cell)  # fmt: skip
    monkeypatch.setitem(modes.MODE_SPECS, spec.name, spec)
    return spec
