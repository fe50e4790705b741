"""What the page shows about the checkpoint in use and what it does with input it refuses, without a server (the
live page: tests/test_app_browser.py): a name the Checkpoint box cannot load is one line under the box, which goes
back to the checkpoint in use; the app's default checkpoint stays loaded, so a new page always describes it; "Use in
the Reason tab" and an answer move the status and description lines to the checkpoint in use; settings out of range
are refused, never clamped; a refused upload leaves the chosen example; a statistics filter that is not text is
named. Gradio's own plumbing: a single input's validator and a handler that updates nothing."""

import json
import logging
import os
from pathlib import Path

import gradio as gr
import pytest
from test_app_handlers import _bad_files, reason, tiny_service

from app import api, reason_tab, sweeps_tab
from app.plumbing import bind, validator
from app.service import Service, ServiceConfig
from app.ui import build_demo
from model.core.checkpoint import build_preset, save_pretrained

ROOT = Path(__file__).resolve().parent.parent
GOOD = str(ROOT / "assets" / "examples" / "maze-1-problem-1.png")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    return tiny_service(tmp_path_factory.mktemp("app"))


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory) -> list[str]:
    """Three checkpoint folders of the tiny preset (different seeds), as other checkpoints to switch to."""
    root = tmp_path_factory.mktemp("folders")
    return [str(save_pretrained(build_preset("tiny", seed=seed), root / f"tiny-{seed}")) for seed in (1, 2, 3)]


def test_a_checkpoint_the_box_cannot_load_is_one_line_under_it(service, caplog):
    caplog.set_level(logging.INFO, logger="app")
    passwd = os.path.relpath("/etc/passwd")  # a file that exists, reached upwards from wherever the suite runs
    for typed, message in [
        (passwd, f"checkpoint {passwd} is a file, not a folder"),
        ("nobody/no-such-model", "not in the local Hugging Face cache, and HF_HUB_OFFLINE is set"),
        ("no-such-model", "unknown checkpoint 'no-such-model'"),
    ]:
        caplog.clear()
        out = reason_tab.on_checkpoint(service, typed, "tiny")
        assert set(out) == {"checkpoint", "checkpoint_message"}, "banner, description and status stay as they were"
        assert out["checkpoint"] == "tiny", "the box goes back to the checkpoint in use"
        shown = out["checkpoint_message"]
        assert shown["visible"] and message in shown["value"] and "Still using `tiny`" in shown["value"]
        assert str(ROOT.parent) not in shown["value"]
        lines = [r.getMessage() for r in caplog.records]
        assert lines == [f"refused checkpoint: {lines[0].split(': ', 1)[1]}"] and message in lines[0]
        assert not any(r.exc_info for r in caplog.records), "a user's error is one line, no traceback"
    good = reason_tab.on_checkpoint(service, "tiny", "tiny")
    assert good["checkpoint"] == good["in_use"] == "tiny" and not good["checkpoint_message"]["visible"]
    assert "K = 4 latents per sketch" in good["checkpoint_info"] and good["gallery_status"].startswith("**Ready:**")


def test_gradio_plumbing_for_one_input_and_for_no_update():
    """Gradio wraps a single input's validator answer in a list itself (a list of one was read as "valid", and the
    handler then ran), and reads an empty dict as one value for every output (refused with a traceback)."""

    def handler(name):
        return {}

    check = validator(handler, lambda name: {"name": "no such thing"} if name == "bad" else {})
    assert check("bad") == gr.validate(False, "no such thing") and check("good") == gr.validate(True, "")
    a, b = gr.Markdown(), gr.Markdown()
    assert bind(handler, outputs={"a": a, "b": b})("x") == {a: gr.skip(), b: gr.skip()}


def test_the_default_checkpoint_stays_loaded_and_new_pages_show_it(tmp_path, tiny_folders):
    config = ServiceConfig(checkpoint="tiny", cache_dir=str(tmp_path / "c"), event_store=str(tmp_path / "events"),
                           registry=str(tmp_path / "none.json"), gallery_per_family=1, max_models=2)  # fmt: skip
    service = Service(config)
    service.start()
    default = service.wait_default(300)
    for folder in tiny_folders:  # three other checkpoints, one after the other, with room for one beside the default
        service.load(folder, gallery=False)
    assert service.peek(None) is default and len(service.loaded_names()) == 2
    assert default.wait_ready(300)
    page = reason_tab.on_tick(service, service.default_name, None, None)  # a page opened now: its first tick
    assert page["gallery_status"].startswith("**Ready:** `tiny`") and "K = 4" in page["checkpoint_info"]
    evicted = reason_tab.gallery_status_text(service, tiny_folders[0])
    assert evicted.startswith("**Not loaded:**") and "the next answer loads it again" in evicted
    assert reason_tab.on_tick(service, tiny_folders[0], None, None)["timer"].active is False


def test_use_in_the_reason_tab_and_answers_move_the_status_lines(tmp_path, tiny_folders, service):
    registry = tmp_path / "registry.json"
    entry = dict(name="sweep/k4", path=tiny_folders[1], latent_budget=4, diffusion_loss_weight=1.0, stage="sft",
                 parent="warmup", metrics={})  # fmt: skip
    registry.write_text(json.dumps({"checkpoints": [entry]}))
    config = ServiceConfig(checkpoint="tiny", cache_dir=str(tmp_path / "c"), event_store=str(tmp_path / "events"),
                           registry=str(registry), gallery_per_family=1)  # fmt: skip
    other = Service(config)
    out = sweeps_tab.use_checkpoint(other, "sweep/k4")
    loaded = other.load(tiny_folders[1])
    assert out["checkpoint"] == out["in_use"] == loaded.name == tiny_folders[1]
    assert f"`{loaded.name}`" in out["gallery_status"] and "K = 4" in out["checkpoint_info"]
    assert out["timer"].active == (not loaded.ready.is_set()), "the timer follows its gallery while it builds"
    assert loaded.wait_ready(300)
    tick = reason_tab.on_tick(other, loaded.name, None, None)
    assert tick["gallery_status"].startswith(f"**Ready:** `{loaded.name}`") and tick["timer"].active is False
    assert "gallery of" in tick["checkpoint_info"], "the description says the gallery is there, not 'waiting'"

    first = reason(service, checkpoint="tiny", max_new_tokens=8)[0]  # an answer names the checkpoint it runs on
    assert first["gallery_status"].startswith("**Ready:** `tiny`") and "K = 4" in first["checkpoint_info"]
    assert not first["checkpoint_message"]["visible"]


@pytest.mark.parametrize(
    "control, typed, message",
    [
        ("temperature", 5, "temperature must be from 0 to 2, got 5"),
        ("max_sketches", -1, "max_sketches must be a whole number from 0 to 64, got -1"),
        ("diffusion_steps", 5000, "diffusion_steps must be a whole number from 0 to 1000, got 5000"),
        ("max_new_tokens", 0, "max_new_tokens must be a whole number from 1 to 1024, got 0"),
    ],
)
def test_settings_out_of_range_are_refused_not_clamped(service, control, typed, message):
    values = dict(checkpoint="tiny", example_id="maze-1", files=None, question="Which colour?", mode="auto",
                  temperature=0.0, max_sketches=2, diffusion_steps=0, max_new_tokens=48, seed="0",
                  snap=True)  # fmt: skip
    assert reason_tab.reason_problems(service, **dict(values, **{control: typed})) == {control: message}


def test_the_settings_are_number_boxes_without_bounds(service):
    """A slider clamps what is typed into its box (5 → 2) before any check sees it; a number box passes it on."""
    demo = build_demo(service)
    boxes = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    for elem_id in ("temperature", "max-sketches", "diffusion-steps", "max-new-tokens"):
        box = boxes[elem_id]
        assert isinstance(box, gr.Number) and box.minimum is None and box.maximum is None, elem_id


def test_a_refused_upload_keeps_the_page_as_it_was(tmp_path):
    bad = _bad_files(tmp_path)
    with pytest.warns(UserWarning, match="notes.png.*not an image file"):
        assert reason_tab.on_upload([bad["text"]]) == {"uploads": None}, "the example and its pictures stay"
    with pytest.warns(UserWarning, match="corrupt.png"):
        out = reason_tab.on_upload([bad["corrupt"], GOOD])  # one picture: it is shown, the example set aside
    assert out["problem_1"] == GOOD and out["uploads"] == [GOOD] and out["example"] is None


@pytest.mark.parametrize(
    "parameters, message",
    [
        (dict(mode=123), 'mode must be text (comma-separated names, "" for all), got 123'),
        (dict(family=["a"]), "family must be text (comma-separated names, \"\" for all), got ['a']"),
        (dict(by=None, checkpoint=1.5), "checkpoint must be text"),
    ],
)
def test_a_statistics_filter_that_is_not_text_is_named(service, caplog, parameters, message):
    caplog.set_level(logging.INFO, logger="app")
    with pytest.raises(gr.Error) as caught:
        api.switching_stats(service, **parameters)
    assert message in caught.value.message
    assert not any(r.exc_info for r in caplog.records)
