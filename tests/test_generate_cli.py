"""Checkpoint names in `python -m model.generate` mean what they mean in the app (model.core.checkpoint.locate, one
lookup for both): `demo` is the shipped trained model, `tiny` and `demo-random` the from-scratch presets with random
weights, which say so beside their text; registered names are their folders; a hub id the hub cannot confirm is
refused within HUB_TIMEOUT_S, before anything downloads."""

import time
from pathlib import Path

import pytest

import model.core.checkpoint as checkpoint_module
from app.service import Service, ServiceConfig
from model.core.checkpoint import CheckpointError, load_model, locate
from model.core.paths import DEFAULT_CHECKPOINT, DEFAULT_REGISTRY, registered_folders
from model.generation import cli

ROOT = Path(__file__).resolve().parent.parent
IMAGE = str(ROOT / "assets" / "examples" / "maze-1-problem-1.png")
QUESTION = "Follow the white corridors from green to red. Which colour lies on the way: blue, yellow or purple?"
NOTE = "is a from-scratch preset with random weights: its text is gibberish (the trained model is demo)"


def call_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """model.generation.cli.main in this process: (exit status, stdout, stderr)."""
    try:
        code = cli.main(argv)
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_names_mean_one_thing_in_the_cli_and_the_app(tmp_path):
    app = Service(ServiceConfig(checkpoint="tiny", cache_dir=str(tmp_path), registry=DEFAULT_REGISTRY))
    demo = locate("demo")
    assert demo.kind == "folder" and demo.folder == Path(DEFAULT_CHECKPOINT) and not demo.note
    assert app.resolve("demo").folder == demo.folder and not app.resolve("demo").banner
    for name, preset in (("tiny", "tiny"), ("demo-random", "demo")):
        located = locate(name)
        assert (located.kind, located.spec) == ("preset", preset) and located.note == f"{name} {NOTE}"
        assert app.resolve(name).spec == preset and "**random weights**" in app.resolve(name).banner
    registered = registered_folders()
    if "demo-parallel" in registered:  # the shipped registry names the other decoding's model
        assert locate("demo-parallel", registered=registered).folder == ROOT / registered["demo-parallel"]
    assert app.checkpoint_choices()[0] == app.default_name and {"tiny", "demo-random"} <= set(app.checkpoint_choices())
    named = Service(ServiceConfig(checkpoint="demo", cache_dir=str(tmp_path), registry=DEFAULT_REGISTRY))
    assert named.default_name == "assets/checkpoints/demo"  # python -m app --checkpoint demo: shown as its folder


def test_a_registered_name_whose_folder_is_gone_names_it_in_the_repository(tmp_path):
    with pytest.raises(CheckpointError) as caught:
        locate("sweep/k9", registered={"sweep/k9": "assets/checkpoints/sweep/k9-gone"})
    message = str(caught.value)
    assert message.startswith("'sweep/k9' names assets/checkpoints/sweep/k9-gone, which cannot be loaded")
    assert str(ROOT) not in message


def test_cli_demo_is_the_trained_model(capsys, monkeypatch):
    loaded = []
    monkeypatch.setattr(cli, "load_model", lambda spec, **kw: loaded.append(spec) or load_model(spec, **kw))
    argv = ["--checkpoint", "demo", "--image", IMAGE, "--question", QUESTION, "--max-new-tokens", "16"]
    code, out, err = call_cli(argv, capsys)
    assert code == 0 and err == "" and "note:" not in out and out.strip().splitlines()[-1].startswith("answer: ")
    assert loaded == [DEFAULT_CHECKPOINT], "the shipped trained model, not the preset of the same name"


def test_cli_says_random_weights_beside_the_text(capsys):
    argv = ["--checkpoint", "tiny", "--image", IMAGE, "--question", "Which colour?", "--max-new-tokens", "4"]
    code, out, err = call_cli(argv, capsys)
    assert code == 0 and out.splitlines()[0] == f"note: tiny {NOTE}" and err == ""
    code, out, err = call_cli([*argv, "--json"], capsys)  # stdout stays JSON: the note goes beside it, to stderr
    assert code == 0 and out.startswith("{") and err == f"note: tiny {NOTE}\n"


def test_cli_asks_the_hub_with_the_apps_timeout(capsys, monkeypatch):
    """Without HF_HUB_OFFLINE, a hub that never answers: refused after HUB_TIMEOUT_S, not after transformers'
    retries (~46 s), and nothing is loaded."""
    monkeypatch.setattr(checkpoint_module.hub_constants, "is_offline_mode", lambda: False)
    asked = []

    def hangs(repo_id, timeout):
        asked.append((repo_id, timeout))
        time.sleep(30)

    def never(*args, **kwargs):
        raise AssertionError("the checkpoint must not be loaded")

    monkeypatch.setattr(checkpoint_module.huggingface_hub, "model_info", hangs)
    monkeypatch.setattr(cli, "load_model", never)
    argv = ["--checkpoint", "nobody/no-such-model", "--image", IMAGE, "--question", "Which colour?"]
    code, out, err = call_cli(argv, capsys)
    assert code == 2 and out == "" and asked == [("nobody/no-such-model", checkpoint_module.HUB_TIMEOUT_S)]
    assert err == (
        "error: could not load 'nobody/no-such-model' as a Qwen2.5-VL checkpoint: the Hugging Face hub did not "
        "answer within 1.5 s\n"
    )
    monkeypatch.setattr(checkpoint_module.hub_constants, "is_offline_mode", lambda: True)
    code, out, err = call_cli(argv, capsys)  # HF_HUB_OFFLINE: the local cache only, at once
    assert code == 2 and "not in the local Hugging Face cache, and HF_HUB_OFFLINE is set" in err and len(asked) == 1
