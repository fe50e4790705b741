"""The app's handlers without a server: the `tiny` preset biased towards ⟨START⟩ (the engine tests' trick, through
the service's test-only `debug_sketch_bias`), a gallery of 3 instances per family, everything under tmp_path."""

import inspect
import json
import re

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from app import api, explorer_tab, reason_tab, render, stats_tab, sweeps_tab
from app.plumbing import bind
from app.service import Service, ServiceConfig
from model.generation.engine import Engine, GenerationSettings, Prompt
from model.generation.events import read_events
from model.generation.inputs import load_image
from model.generation.trace import SketchSegment, Trace, TraceEvent

QUESTION = "Follow the white corridors from green to red. Which colour lies on the way: blue, yellow or purple?"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("app")
    config = ServiceConfig(
        checkpoint="tiny",
        cache_dir=str(root / "cache"),
        event_store=str(root / "events"),
        registry=str(root / "registry.json"),  # absent: the Sweeps tab says so
        gallery_per_family=3,
        debug_sketch_bias=4.0,
    )
    return Service(config)


def reason(service, session=None, **overrides):
    """All yields of the Reason tab's handler."""
    args = dict(
        checkpoint="tiny",
        example_id="maze-1",
        files=None,
        question=QUESTION,
        mode="auto",
        temperature=0.0,
        max_sketches=2,
        diffusion_steps=0,
        max_new_tokens=48,
        seed=0,
        session=session,
    )
    args.update(overrides)
    return list(reason_tab.reason(service, **args))


def test_reason_streams_sketches_neighbours_and_logs(service):
    updates = reason(service)
    assert len(updates) >= 3, "the answer should arrive in several steps"
    spans, answer_md, _, _, _, _, _, trace_dict, session = updates[-1]
    trace = Trace.from_dict(trace_dict)
    assert trace.num_sketches == 2, "the biased tiny model sketches as often as allowed"
    sketch_spans = [text for text, label in spans if label == render.SKETCH]
    assert len(sketch_spans) == 2 and all("⟨START⟩" in s and "⟨END⟩" in s for s in sketch_spans)
    assert "".join(text for text, label in spans if label is None) == trace.text
    assert "wrong" in answer_md or "right" in answer_md  # the example's answer is known
    assert [s["label"] for s in session["sketches"]] == ["answer 1 · sketch 1", "answer 1 · sketch 2"]

    # the update after the last sketch shows its neighbours: compare with cosine similarity computed here
    sketch_update = [u for u in updates if isinstance(u[5], list) and u[5]][-1]
    neighbours, figure = sketch_update[5], sketch_update[6]
    loaded = service.load("tiny")
    query = trace.sketches[-1]
    stored = session["sketches"][-1]["latents"]
    assert stored.shape == (loaded.gallery.num_latents, loaded.gallery.dim)
    q = stored.ravel() / np.linalg.norm(stored)
    sims = loaded.gallery.vectors @ q
    expected = np.sort(sims)[::-1][: reason_tab.NUM_NEIGHBOURS]
    shown = [float(re.search(r"cos (-?[\d.]+)", caption).group(1)) for _, caption in neighbours]
    np.testing.assert_allclose(shown, expected, atol=1e-3)
    assert all(isinstance(image, Image.Image) for image, _ in neighbours)
    assert query.index == 1
    stars = [t for t in figure.data if t.name == "sketches"]
    assert len(stars) == 1 and len(stars[0].x) == 2

    events = read_events(service.config.event_store, where="example_id = 'maze-1'")
    answers = events[events["event"] == "ANSWER"]
    assert len(answers) >= 1 and (answers["family"] == "maze").all() and answers["correct"].notna().all()
    assert (events["event"] == "START").sum() >= 2


def test_api_trace_equals_engine(service, tmp_path):
    """/reason returns exactly what the engine produces for the same prompt and settings."""
    path = "assets/examples/maze-1-problem-1.png"
    got = api.reason(service, image=path, question=QUESTION, seed=3, max_new_tokens=40, include_latents=True)
    model = service.load("tiny").model
    settings = GenerationSettings(max_new_tokens=40, max_sketches=4, seed=3)
    want = Engine(model).generate([Prompt(QUESTION, [load_image(path)])], settings)[0]
    got_trace = Trace.from_dict(got)
    assert got_trace.text == want.text and got_trace.answer == want.answer
    assert [s.start_position for s in got_trace.sketches] == [s.start_position for s in want.sketches]
    for a, b in zip(got_trace.sketches, want.sketches):
        np.testing.assert_allclose(a.latents, b.latents, atol=1e-5)
    json.dumps(got)  # the API's answer is plain JSON


def _bad_files(tmp_path) -> dict[str, str]:
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture")
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 64), "white").save(good)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(good.read_bytes()[:60])  # a valid header, then nothing
    huge = tmp_path / "huge.png"
    Image.new("L", (5000, 5000)).save(huge)  # 25 M pixels but a tiny file: refused from the header
    return {"text": str(text), "corrupt": str(corrupt), "huge": str(huge)}


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(example_id=None), "no image"),
        (dict(example_id=None, files=["text"]), "not an image file"),
        (dict(example_id=None, files=["corrupt"]), "damaged"),
        (dict(example_id=None, files=["huge"]), "5000×5000 pixels"),
        (dict(question=""), "the question is empty"),
        (dict(question="   "), "the question is empty"),
        (dict(question="x" * 1001), "1001 characters; the limit is 1000"),
        (dict(checkpoint="no-such-checkpoint"), "unknown checkpoint 'no-such-checkpoint'"),
        (dict(checkpoint="runs/no/such/folder"), "does not exist"),
        (dict(example_id="count-1", mode="oracle"), "has none"),
        (dict(mode="sideways"), "unknown mode 'sideways'"),
        (dict(max_new_tokens=5000), "from 1 to 1024, got 5000"),
        (dict(temperature=-1), "temperature must be >= 0, got -1"),
    ],
)
def test_bad_input_is_a_user_error(service, tmp_path, overrides, message):
    files = _bad_files(tmp_path)
    if overrides.get("files"):
        overrides["files"] = [files[name] for name in overrides["files"]]
    with pytest.raises(gr.Error, match=re.escape(message)):
        reason(service, **overrides)


def test_api_bad_input_then_good(service, tmp_path):
    with pytest.raises(gr.Error, match="no image"):
        api.reason(service, question="anything")
    with pytest.raises(gr.Error, match="not an image file"):
        api.reason(service, image=_bad_files(tmp_path)["text"], question="anything")
    trace = api.reason(service, example_id="connect-1", max_new_tokens=24)  # the example's own question
    assert trace["question"] == service.examples["connect-1"].question


def test_special_tokens_are_plain_text(service):
    question = "<|sketch_start|> <|im_end|> ⟨START⟩ <|image_pad|> which colour?"
    trace = api.reason(service, example_id="maze-1", question=question, max_new_tokens=24)
    assert trace["question"] == question
    from model.core.tokenizer import prompt_ids

    model = service.load("tiny").model
    ids = prompt_ids(model.tokenizer, question, 1, model.tokens_per_image)
    plain = prompt_ids(model.tokenizer, "which colour?", 1, model.tokens_per_image)
    for special in (model.start_id, model.eos_id, model.image_token_id):
        assert ids.count(special) == plain.count(special), "typed special tokens must stay text"


def test_oracle_mode_inserts_the_true_sketch(service):
    spans = reason(service, mode="oracle", max_sketches=1)[-1][0]
    assert any(label == render.SKETCH for _, label in spans)
    trace = Trace.from_dict(
        api.reason(
            service, example_id="maze-1", mode="oracle", max_sketches=1, include_latents=True, max_new_tokens=24
        )
    )
    sketch = trace.sketches[0]
    assert sketch.source == "oracle"
    model = service.load("tiny").model
    truth = model.sketch_targets([Image.open("assets/examples/maze-1-sketch-1.png").convert("RGB")])[0]
    np.testing.assert_allclose(sketch.latents, truth.numpy(), atol=1e-5)


def test_explorer_shows_session_sketches_and_neighbours(service):
    session = reason(service, max_sketches=1)[-1][-1]
    figure, choices, summary = explorer_tab.explore(service, "tiny", session)
    assert "1 sketch(es) from this session" in summary
    values = [value for _, value in choices["choices"]]
    assert values[0] == "s:0" and "g:0" in values
    image, text, neighbours = explorer_tab.show_point(service, "g:5", "tiny", session)
    assert isinstance(image, Image.Image) and len(neighbours) == reason_tab.NUM_NEIGHBOURS
    key = service.load("tiny").gallery.meta["key"].iloc[5]
    assert key in text and all(key not in caption for _, caption in neighbours)  # itself left out
    image, text, neighbours = explorer_tab.show_point(service, "s:0", "tiny", session)
    assert "answer 1 · sketch 1" in text and len(neighbours) == reason_tab.NUM_NEIGHBOURS
    assert len([t for t in figure.data if t.name == "sketches"][0].x) == 1


def test_switching_statistics_tab_and_api(service):
    reason(service, example_id="fold-1", question="How many purple cells?")
    stats = stats_tab.compute(service.config.event_store, by=["family"])
    assert {"maze", "fold"} <= set(stats.table["family"])
    assert stats.figures[0] is not None and stats.num_answers >= 2
    only_fold = stats_tab.compute(service.config.event_store, families=["fold"], by=["family", "mode"])
    assert set(only_fold.table["family"]) == {"fold"}
    *_, table, csv = stats_tab.show(service, None, ["fold"], None, ["family"])
    assert csv["visible"] and open(csv["value"]).read().startswith("family,")
    out = api.switching_stats(service, family="fold", by="family")
    assert out["summary"][0]["family"] == "fold" and json.dumps(out)
    with pytest.raises(gr.Error, match="unknown group column"):
        api.switching_stats(service, by="colour")


def test_sweeps_tab(service, tmp_path):
    message, *plots, table = sweeps_tab.panels(service.config.registry)
    assert "No registry yet" in message and plots == [None, None, None]
    registry = tmp_path / "registry.json"
    entry = dict(stage="sft", parent=None, path="runs/x")
    entries = [
        dict(entry, name="k8", latent_budget=8, diffusion_loss_weight=1.0, metrics={"accuracy": {"maze": 0.5}}),
        dict(entry, name="k16", latent_budget=16, diffusion_loss_weight=1.0, metrics={"accuracy": {"maze": 0.6}}),
        dict(entry, name="k16-l05", latent_budget=16, diffusion_loss_weight=0.5, metrics={"accuracy": {"maze": 0.7}}),
    ]
    for e in entries:
        e["metrics"]["latency_s"] = e["latent_budget"] / 10
    registry.write_text(json.dumps({"checkpoints": entries}))
    *_, defaults = sweeps_tab.filter_choices(str(registry))
    assert defaults == ("sft", 1.0, 16)
    message, vs_k, vs_lambda, latency, table = sweeps_tab.panels(str(registry), *defaults)
    assert list(vs_k.data[0].x) == [8, 16] and list(vs_lambda.data[0].x) == [0.5, 1.0] and latency is not None
    assert len(table) == 3
    message, vs_k, *_ = sweeps_tab.panels(str(registry))  # no filters: two checkpoints share K = 16
    assert vs_k is None and "narrow with" in message


def test_default_checkpoint_missing_falls_back_with_banner(tmp_path, monkeypatch):
    import app.service as service_module

    missing = tmp_path / "assets" / "checkpoints" / "demo"
    monkeypatch.setattr(service_module, "DEFAULT_CHECKPOINT", str(missing))
    config = ServiceConfig(checkpoint=str(missing), cache_dir=str(tmp_path / "c"), gallery_per_family=1)
    fallback = Service(config)
    loaded = fallback.load()
    assert "random weights" in fallback.banner(loaded) and loaded.model.config.latent_budget == 32
    assert "map" in loaded.notes  # 13 gallery pictures are too few for a UMAP map; the page says so
    assert "decoder" in loaded.notes  # and a preset has no latent decoder


def test_demo_builds_with_named_endpoints(service):
    from app.ui import build_demo

    demo = build_demo(service)
    named = demo.get_api_info()["named_endpoints"]
    assert {"/reason", "/neighbours", "/switching_stats", "/examples", "/checkpoints"} <= set(named)
    assert not any(name.startswith("/reason_") for name in named), "page events stay private"
    params = [p["parameter_name"] for p in named["/reason"]["parameters"]]
    assert params[:4] == ["image", "extra_image", "question", "mode"]
    assert all(p["parameter_has_default"] for p in named["/reason"]["parameters"])


def test_bind_keeps_what_gradio_inspects(service):
    from gradio.utils import get_function_params, get_type_hints

    bound = bind(reason_tab.reason, service)
    assert inspect.isgeneratorfunction(bound)
    assert "service" not in inspect.signature(bound).parameters
    assert get_type_hints(bound)["request"] is gr.Request
    names = [name for name, *_ in get_function_params(bind(api.neighbours, service))]
    assert names == ["latents", "k", "checkpoint"]


def test_live_answer_spans():
    live = render.LiveAnswer()
    sketch = SketchSegment(0, 3, 8, 5, 4, "generated", 0.1)
    for event in [
        TraceEvent(0, "text", text="Trace "),
        TraceEvent(0, "text", text="it."),
        TraceEvent(0, "sketch_started", sketch=sketch),
    ]:
        live.add(event)
    assert live.highlighted() == [("Trace it.", None), (" ⟨START⟩ sketch 1 … ", render.SKETCHING)]
    live.add(TraceEvent(0, "sketch_done", sketch=sketch))
    assert live.highlighted()[-1] == (" ⟨START⟩ sketch 1 · 4 latents ⟨END⟩ ", render.SKETCH)


def test_main_refuses_an_unknown_checkpoint(tmp_path, capsys):
    from app.main import main

    assert main(["--checkpoint", "no-such-model", "--cache-dir", str(tmp_path)]) == 2
    assert "unknown checkpoint 'no-such-model'" in capsys.readouterr().err


def test_folder_checkpoint_with_a_latent_decoder(service, tmp_path):
    from analysis.latent_decoder import save_decoder, train_decoder
    from app.gallery import gallery_images
    from model.core.checkpoint import save_pretrained

    tiny = service.load("tiny")
    folder = tmp_path / "checkpoint"
    save_pretrained(tiny.model, folder)
    images = [image for image, _ in gallery_images(1)]
    decoder, _ = train_decoder(tiny.model, images, steps=2, batch_size=8, progress=False)
    save_decoder(decoder, folder)

    updates = reason(service, checkpoint=str(folder), max_sketches=1)
    loaded = service.load(str(folder))
    assert loaded.decoder is not None and "decoder" not in loaded.notes and "weights" not in loaded.notes
    captions = [caption for _, caption in [u for u in updates if isinstance(u[2], list)][-1][2]]
    assert captions[0].startswith("sketch 1") and captions[0].endswith("· decoded")
    assert service.load("tiny") is tiny, "both checkpoints stay loaded (max_models=2)"
    assert set(service.loaded_names()) == {"tiny", loaded.name}
