"""Bad input to the app, without a server: each problem is found by the validator Gradio runs before the answer
queue (named by the input it is about, in the page's own words), and again by the handler for callers that skip
validation: the page then warns and changes nothing, the API raises `gr.Error`. Checkpoint names that cannot be
reached (a hub id without the hub) are refused within seconds, and HF_HUB_OFFLINE at once. A mode added to the
registry alone is compared, and skipped with the reason where the puzzle lacks what it inserts."""

import dataclasses
import re
import time
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from test_app_handlers import _bad_files, reason, tiny_service

import app.models as models_module
import app.service as service_module
import model.core.checkpoint as checkpoint_module
from app import api, compare, reason_tab
from app.request import ApiInputs
from model.core import paths
from model.core.checkpoint import CheckpointError
from model.generation import cli
from model.generation.trace import Trace

ROOT = Path(__file__).resolve().parent.parent
PAGE = dict(checkpoint="tiny", example_id="maze-1", files=None, question="Which colour?", mode="auto",
            temperature=0.0, max_sketches=2, diffusion_steps=0, max_new_tokens=48, seed="0", snap=True)  # fmt: skip

CASES = [  # (overrides of PAGE, the input refused, its message)
    (dict(example_id=None), "files", "no image: choose an example puzzle or upload an image"),
    (dict(example_id=None, files=["text"]), "files", "not an image file"),
    (dict(example_id=None, files=["corrupt"]), "files", "damaged"),
    (dict(example_id=None, files=["huge"]), "files", "5000×5000 pixels"),
    (dict(question=""), "question", "the question is empty"),
    (dict(question="   "), "question", "the question is empty"),
    (dict(question="x" * 1001), "question", "1001 characters; the limit is 1000"),
    (dict(question="which \ud800 colour?"), "question", "not valid UTF-8 text (character 7"),
    (dict(checkpoint="no-such-checkpoint"), "checkpoint", "unknown checkpoint 'no-such-checkpoint'"),
    (dict(checkpoint="runs/no/such/folder"), "checkpoint", "checkpoint folder runs/no/such/folder does not exist"),
    (dict(checkpoint="c" * 5000), "checkpoint", "the checkpoint name has 5000 characters; the limit is 1024"),
    (dict(checkpoint="c" * 300), "checkpoint", "cannot be used: File name too long"),
    (dict(checkpoint="nobody/no-such-model"), "checkpoint", "not in the local Hugging Face cache, and HF_HUB_OFFLINE"),
    (dict(example_id="count-1", mode="oracle"), "mode", "has none"),
    (dict(example_id=None, files=["good"], mode="shuffled-latents"), "mode", "uploads have no family"),
    (dict(mode="sideways"), "mode", "unknown mode 'sideways'"),
    (dict(max_new_tokens=5000), "max_new_tokens", "from 1 to 1024, got 5000"),
    (dict(max_new_tokens=48.5), "max_new_tokens", "max_new_tokens must be a whole number from 1 to 1024, got 48.5"),
    (dict(max_sketches=1.5), "max_sketches", "max_sketches must be a whole number"),
    (dict(temperature=-1), "temperature", "temperature must be from 0 to 2, got -1"),
    (dict(temperature=1e9), "temperature", "temperature must be from 0 to 2, got 1000000000.0"),
    (dict(temperature=float("nan")), "temperature", "temperature must be a finite number"),
    (dict(seed=""), "seed", "the seed is empty: give a whole number from 0 to 2**63 - 1"),
    (dict(seed="1.5"), "seed", "the seed must be a whole number written in digits, got '1.5'"),
    (dict(seed=1.5), "seed", "the seed must be a whole number, got 1.5"),
    (dict(seed=str(2**63)), "seed", f"between 0 and 2**63 - 1 = {2**63 - 1}, got {2**63}"),
    (dict(seed=float(2**60)), "seed", "beyond what a JSON number holds exactly (2**53); send it as text"),
    (dict(seed="1.152921504606847e+18"), "seed", "seeds above 2**53 lose digits as JSON floats"),
]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    return tiny_service(tmp_path_factory.mktemp("app"))


def _page(tmp_path, overrides: dict) -> dict:
    files = dict(_bad_files(tmp_path), good=str(ROOT / "assets/examples/maze-1-problem-1.png"))
    values = dict(PAGE, **overrides)
    if values["files"]:
        values["files"] = [files[name] for name in values["files"]]
    return values


@pytest.mark.parametrize("overrides, field, message", CASES)
def test_the_validator_names_the_input_and_the_handler_changes_nothing(service, tmp_path, overrides, field, message):
    values = _page(tmp_path, overrides)
    problems = reason_tab.reason_problems(service, **values, session=None)
    assert list(problems) == [field] and message in problems[field], problems
    with pytest.warns(UserWarning, match=re.escape(message)):  # gr.Warning outside a request: the page's toast
        assert reason(service, **values) == [{}], "a refused request leaves every output as it was"


def test_the_api_refuses_with_its_own_words(service):
    problems = api.reason_problems(service, question="anything", seed="0")
    assert problems == {"image": "no image: send image (a file) or example_id (one of /examples)"}
    assert "--image" not in str(problems)  # the CLI's flag is not the API's parameter
    with pytest.raises(gr.Error, match=re.escape("no image: send image (a file) or example_id")):
        api.reason(service, ApiInputs(question="anything"))
    problems = api.compare_problems(service, example_id="maze-1", seed="", modes=["auto", "sideways"])
    assert set(problems) == {"seed", "modes"} and "cannot compare mode(s) 'sideways'" in problems["modes"]


def test_seeds_arrive_exactly_or_are_refused(service):
    exact = 2**53 + 1  # a JSON integer: Python reads every digit, so it is used as sent
    assert api.reason(service, ApiInputs(example_id="maze-1", seed=exact, max_new_tokens=8))["seed"] == exact
    assert "seed" in api.reason_problems(service, example_id="maze-1", seed=float(exact + 1))  # a float may be rounded
    with pytest.raises(gr.Error, match="the seed is empty"):
        api.reason(service, ApiInputs(example_id="maze-1", seed="", max_new_tokens=8))


@pytest.mark.parametrize("typed", ["../x-no-such-checkpoint", "~/x-no-such-checkpoint"])
def test_checkpoint_errors_name_what_was_typed(service, typed):
    with pytest.raises(gr.Error) as caught:
        api.reason(service, ApiInputs(example_id="maze-1", checkpoint=typed))
    message = str(caught.value)
    assert typed in message and str(ROOT.parent) not in message and str(Path.home()) not in message


def test_a_damaged_checkpoint_shows_when_it_loads(service, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text("[]")
    (folder / "model.safetensors").write_bytes(b"")
    assert reason_tab.reason_problems(service, **dict(PAGE, checkpoint=str(folder)), session=None) == {}
    message = f"{folder}/config.json is damaged: expected a JSON object, got list"
    with pytest.warns(UserWarning, match=re.escape(message)):
        assert reason(service, checkpoint=str(folder)) == [{}]
    with pytest.raises(gr.Error, match="expected a JSON object"):
        api.reason(service, ApiInputs(example_id="maze-1", checkpoint=str(folder)))


def test_a_hub_that_cannot_be_reached_is_refused_within_seconds(service, monkeypatch):
    """Without HF_HUB_OFFLINE and without a hub, transformers' own download retries for most of a minute: the app
    asks the hub itself, with a timeout (model.core.checkpoint.hub_problem, the CLI's lookup too)."""
    monkeypatch.setattr(checkpoint_module.hub_constants, "is_offline_mode", lambda: False)
    asked = []

    def no_network(repo_id, timeout):
        asked.append((repo_id, timeout))
        raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.setattr(checkpoint_module.huggingface_hub, "model_info", no_network)
    with pytest.raises(CheckpointError, match="the Hugging Face hub cannot be reached") as caught:
        service.resolve("nobody/no-such-model")
    assert asked == [("nobody/no-such-model", checkpoint_module.HUB_TIMEOUT_S)]
    assert "'nobody/no-such-model'" in str(caught.value)
    with pytest.raises(CheckpointError, match="cannot be reached"):  # a pretrained preset is a hub id too
        service.resolve("qwen2.5-vl-3b")
    assert asked[-1][0] == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert service.resolve("tiny").spec == "tiny" and len(asked) == 2, "presets and folders never ask the hub"

    def hangs(repo_id, timeout):
        time.sleep(30)

    monkeypatch.setattr(checkpoint_module.huggingface_hub, "model_info", hangs)
    with pytest.raises(CheckpointError, match=r"the Hugging Face hub did not answer within 1\.5 s"):
        service.resolve("nobody/slow-model")


def test_default_checkpoint_is_the_clis():
    """One constant, in a module without torch (the page imports it), that the CLI and the app both import."""
    assert service_module.DEFAULT_CHECKPOINT is paths.DEFAULT_CHECKPOINT
    assert cli.DEFAULT_CHECKPOINT is paths.DEFAULT_CHECKPOINT
    assert paths.DEFAULT_CHECKPOINT == str(ROOT / "assets" / "checkpoints" / "demo")
    assert "model.generation.cli" not in Path(service_module.__file__).read_text()
    assert "app.render" not in Path(models_module.__file__).read_text(), "loading knows nothing of rendering"


def test_compare_runs_a_registered_inserting_mode(service, shifted_mode):
    """A mode added to the registry alone (`shifted-oracle`, tests/conftest.py) is a Compare column by default: it
    inserts the example's true sketches shifted by one cell (oracle's, moved), and is skipped with the reason where
    the puzzle has none."""
    inputs = ApiInputs(example_id="maze-1", seed=5, max_new_tokens=48, max_sketches=1, include_latents=True)
    out = api.compare(service, dataclasses.replace(inputs, modes=["oracle", "shifted-oracle"]))
    assert list(out["modes"]) == ["oracle", "shifted-oracle"] and out["skipped"] == {}
    oracle = Trace.from_dict(out["traces"]["oracle"]).sketches[0]
    shifted = Trace.from_dict(out["traces"]["shifted-oracle"]).sketches[0]
    assert shifted.source == "shifted"
    np.testing.assert_allclose(shifted.latents, np.roll(oracle.latents, 1, axis=0), atol=1e-6)
    assert "shifted-oracle" in compare.check_modes(None)
    out = api.compare(service, dataclasses.replace(inputs, example_id="count-1", modes=["shifted-oracle"]))
    assert "shifted-oracle mode inserts an example's true sketches" in out["skipped"]["shifted-oracle"]
