"""The app's handlers without a server: the `tiny` preset biased towards ⟨START⟩ (the engine tests' trick, through
the service's test-only `debug_sketch_bias`), a gallery of 3 instances per family, everything under tmp_path.
Page handlers return dicts of named updates (app/plumbing.py), so the tests read outputs by name. Bad input is
checked by the validators (before the queue) and again by the handlers: tests/test_app_inputs.py."""

import inspect
import json
import re
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import pytest
import torch
from gradio.utils import get_function_description, get_function_params, get_type_hints
from PIL import Image

import app.galleries as galleries_module
from analysis.latent_decoder import save_decoder, train_decoder
from analysis.neighbours import Gallery, build_index, top_k
from app import api, explorer_tab, maps, reason_tab, render, stats_tab
from app.gallery import gallery_images
from app.models import NUM_NEIGHBOURS
from app.plumbing import bind, form_parameters, gather
from app.reason_tab import PAGE_FIELDS
from app.request import ApiInputs, Request, api_fields
from app.service import Service, ServiceConfig
from app.ui import build_demo
from model.core.checkpoint import build_preset, save_pretrained
from model.core.sketch_codebook import SketchCodebook
from model.core.tokenizer import prompt_ids
from model.generation.answers import normalize_answer
from model.generation.engine import Engine, GenerationSettings, Prompt
from model.generation.events import read_events
from model.generation.inputs import load_image
from model.generation.modes import mode_names
from model.generation.trace import Trace

QUESTION = "Follow the white corridors from green to red. Which colour lies on the way: blue, yellow or purple?"
ROOT = Path(__file__).resolve().parent.parent


def tiny_service(root: Path) -> Service:
    """The tiny preset, biased towards sketching, with its gallery and map built."""
    config = ServiceConfig(
        checkpoint="tiny",
        cache_dir=str(root / "cache"),
        event_store=str(root / "events"),
        registry=str(root / "registry.json"),  # absent
        gallery_per_family=3,
        debug_sketch_bias=4.0,
    )
    service = Service(config)
    assert service.load().wait_ready(300), "the tiny gallery and map should build within minutes"
    return service


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    return tiny_service(tmp_path_factory.mktemp("app"))


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
        seed="0",
        snap=True,
        session=session,
    )
    args.update(overrides)
    session = args.pop("session")
    return list(reason_tab.reason(service, Request.from_page(**args), session))


def final(updates: list[dict]) -> dict:
    """Every output's last value over a handler's updates."""
    out = {}
    for update in updates:
        out.update(update)
    return out


def captions(html: str) -> list[str]:
    """The captions of a strip of pictures (render.pictures_html), line breaks as newlines."""
    return [c.replace("<br>", "\n") for c in re.findall(r"<figcaption>(.*?)</figcaption>", html)]


def test_reason_streams_steps_neighbours_and_logs(service):
    updates = reason(service)
    assert len(updates) >= 3, "the answer should arrive in several steps"
    last = final(updates)
    trace = Trace.from_dict(last["trace"])
    assert trace.num_sketches == 2, "the biased tiny model sketches as often as allowed"

    # while a sketch is drawn its step is open with the badge; once the answer is done no step is open or badged
    drawing = [u["reasoning"] for u in updates if "reasoning" in u and render.SKETCHING in u["reasoning"]]
    assert drawing and all("<details" in html and " open>" in html for html in drawing)
    steps = re.findall(r"<details[^>]*>.*?</details>", last["reasoning"])
    assert len(steps) == 2 and render.SKETCHING not in last["reasoning"] and " open>" not in last["reasoning"]
    k = service.load("tiny").model.config.latent_budget
    steps_t = service.load("tiny").model.config.diffusion_steps
    for number, (step, sketch) in enumerate(zip(steps, trace.sketches), start=1):
        title = f"sketch {number} · {k} latents · {steps_t} steps · {sketch.seconds:.2f} s"
        assert title in step and "⟨START⟩" in step and "⟨END⟩" in step
    text = re.sub(r"<details.*?</details>", "", last["reasoning"])
    assert re.sub(r"<[^>]+>", "", text) == render.html.escape(trace.text).replace("$", "&#36;")

    # the answer line and the trace agree with the example's answer (independently graded here)
    example = service.examples["maze-1"]
    verdict = "right" if trace.answer == normalize_answer(example.answer) else "wrong"
    other = {"right": "wrong", "wrong": "right"}[verdict]
    assert (f"Answer: `{trace.answer}`" if trace.answer else "Answer: *none given*") in last["answer"]
    assert f"{verdict}</span> (expected `{example.answer}`)" in last["answer"] and other not in last["answer"]
    assert trace.correct is (verdict == "right")
    # the example's true sketch sits beside the first step, at a size where its 10 × 10 cells can be read
    assert 'alt="true sketch 1 (the example&#x27;s)"' in steps[0] and f'width="{render.SKETCH_PX}"' in steps[0]
    assert not re.search("[\u2600-\u27bf\U0001f300-\U0001faff]", last["answer"] + last["reasoning"]), "no emoji"
    session = last["session"]
    assert [s["label"] for s in session["sketches"]] == ["answer 1 · sketch 1", "answer 1 · sketch 2"]

    # the update after the last sketch shows its neighbours: compare with cosine similarity computed here
    neighbours, figure = last["neighbours"], last["map"]
    loaded = service.load("tiny")
    stored = session["sketches"][-1]["latents"]
    assert stored.shape == (loaded.gallery.num_latents, loaded.gallery.dim)
    q = stored.ravel() / np.linalg.norm(stored)
    expected = np.sort(loaded.gallery.vectors @ q)[::-1][:NUM_NEIGHBOURS]
    shown = [float(re.search(r"cos (-?[\d.]+)", caption).group(1)) for caption in captions(neighbours)]
    np.testing.assert_allclose(shown, expected, atol=1e-3)
    assert neighbours.count("<img ") == NUM_NEIGHBOURS and 'src="data:image/png;base64,' in neighbours
    stars = [t for t in figure.data if t.name == "sketches"]
    assert len(stars) == 1 and list(stars[0].customdata) == ["s:0", "s:1"]

    events = read_events(service.config.event_store, where="example_id = 'maze-1'")
    answers = events[events["event"] == "ANSWER"]
    assert len(answers) >= 1 and (answers["family"] == "maze").all() and answers["correct"].notna().all()
    assert (events["event"] == "START").sum() >= 2


def test_the_tick_that_sees_the_gallery_ready_fills_in_the_page(service):
    """Answers made while the gallery was building have no neighbours yet; the status tick that finds it ready
    shows them (and the map), stops the timer and offers the presets; nothing says the gallery is not ready."""
    session = final(reason(service))["session"]
    out = reason_tab.on_tick(service, "tiny", None, session)
    assert out["timer"].active is False and "**Ready:** `tiny`" in out["gallery_status"]
    assert len(captions(out["neighbours"])) == NUM_NEIGHBOURS and "tiny" in out["checkpoint"]["choices"]
    assert list([t for t in out["map"].data if t.name == "sketches"][0].customdata) == ["s:0", "s:1"]
    assert "gallery" not in out["note"]
    fresh = Service(ServiceConfig(checkpoint="tiny"))  # nothing loaded: the status line says what is loading
    assert reason_tab.gallery_status_text(fresh, None).startswith("**Loading:** waiting to load the model code")


def test_map_tells_roles_apart_and_clips_nothing(service):
    points = service.load("tiny").points
    figure = maps.map_figure(points, [])
    symbols = {t.name.split(" · ")[1]: t.marker.symbol for t in figure.data}
    assert symbols == {"problem": "circle", "reasoning": "diamond"}
    assert all(str(point).startswith("g:") for t in figure.data for point in t.customdata)
    # a star at the edge of the gallery: the axes reach past it, with room above for its label
    far = dict(x=float(points["x"].max()), y=float(points["y"].max()), label="s1", point="s:0")
    figure = maps.map_figure(points, [far])
    (x0, x1), (y0, y1) = figure.layout.xaxis.range, figure.layout.yaxis.range
    span_x, span_y = points["x"].max() - points["x"].min(), points["y"].max() - points["y"].min()
    assert x1 - far["x"] >= 0.05 * span_x and y1 - far["y"] >= 0.1 * span_y and x0 < points["x"].min()
    assert y0 < points["y"].min()
    stars = next(t for t in figure.data if t.name == "sketches")
    assert stars.cliponaxis is False and figure.layout.legend.orientation == "h" and figure.layout.legend.y < 0


def test_api_trace_equals_engine(service):
    """/reason returns exactly what the engine produces for the same prompt and settings."""
    path = "assets/examples/maze-1-problem-1.png"
    got = api.reason(
        service, ApiInputs(image=path, question=QUESTION, seed=3, max_new_tokens=40, include_latents=True)
    )
    model = service.load("tiny").model
    settings = GenerationSettings(max_new_tokens=40, max_sketches=4, seed=3)
    want = Engine(model).generate([Prompt(QUESTION, [load_image(path)])], settings)[0]
    got_trace = Trace.from_dict(got)
    assert got_trace.text == want.text and got_trace.answer == want.answer
    assert got["correct"] is None, "an uploaded picture has no known answer"
    assert [s.start_position for s in got_trace.sketches] == [s.start_position for s in want.sketches]
    for a, b in zip(got_trace.sketches, want.sketches):
        np.testing.assert_allclose(a.latents, b.latents, atol=1e-5)
    json.dumps(got)  # the API's answer is plain JSON


def test_snap_setting_reaches_the_engine(service, tmp_path):
    """A checkpoint with a codebook snaps its drawn sketches unless the request says snap=False; a snap that is not
    a boolean is refused by name."""
    model = build_preset("tiny", seed=0)
    K, D = model.latent_budget, model.config.hidden_size
    centroids = torch.randn(K, 2, D, generator=torch.Generator().manual_seed(0))
    model.sketch_codebook = SketchCodebook(centroids, torch.ones(K, 2, dtype=torch.bool), torch.zeros(D),
                                           torch.ones(D), ["a", "b"])  # fmt: skip
    save_pretrained(model, tmp_path / "with-codebook")
    folder = str(tmp_path / "with-codebook")
    snapped = api.reason(
        service, ApiInputs(example_id="maze-1", checkpoint=folder, max_new_tokens=48, include_latents=True)
    )
    plain = api.reason(service, ApiInputs(example_id="maze-1", checkpoint=folder, max_new_tokens=48, snap=False,
                       include_latents=True))  # fmt: skip
    sketches = [s for s in snapped["segments"] if s["kind"] == "sketch"]
    assert sketches and all(s["snapped"] for s in sketches)
    for s in sketches:  # every fed-back latent is one of its slot's two centroids
        latents = torch.tensor(s["latents"])
        assert all(min(float((latents[k] - centroids[k, c]).abs().max()) for c in range(2)) < 1e-5 for k in range(K))
    assert not any(s["snapped"] for s in plain["segments"] if s["kind"] == "sketch")
    with pytest.raises(gr.Error, match="snap must be true or false, got 'yes'"):
        api.reason(service, ApiInputs(example_id="maze-1", checkpoint=folder, snap="yes"))


def test_the_largest_seed_is_accepted_exactly(service):
    largest = str(2**63 - 1)
    trace = api.reason(service, ApiInputs(example_id="maze-1", seed=largest, max_new_tokens=16))
    assert trace["seed"] == 2**63 - 1
    assert Trace.from_dict(final(reason(service, seed=2**63 - 1, max_new_tokens=16))["trace"]).seed == 2**63 - 1


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


def test_api_bad_input_then_good(service, tmp_path):
    with pytest.raises(gr.Error, match="no image"):
        api.reason(service, ApiInputs(question="anything"))
    with pytest.raises(gr.Error, match="not an image file"):
        api.reason(service, ApiInputs(image=_bad_files(tmp_path)["text"], question="anything"))
    trace = api.reason(service, ApiInputs(example_id="connect-1", max_new_tokens=24))  # the example's own question
    assert trace["question"] == service.examples["connect-1"].question


def test_neighbours_endpoint_refuses_bad_latents(service):
    config = service.load("tiny").model.config
    good = np.zeros((config.latent_budget, config.hidden_size))
    good[0, 0] = 1.0
    found = api.neighbours(service, good.tolist(), k=3)
    assert [n["rank"] for n in found["neighbours"]] == [1, 2, 3]
    for value in (float("nan"), float("inf")):
        bad = good.copy()
        bad[1, 2] = value
        with pytest.raises(gr.Error, match=r"latents must be finite numbers; 1 of \d+ are NaN or infinite"):
            api.neighbours(service, bad.tolist(), k=3)
    with pytest.raises(gr.Error, match="k must be a whole number from 1 to 100, got 2.5"):
        api.neighbours(service, good.tolist(), k=2.5)
    with pytest.raises(gr.Error, match=re.escape(f"needs (K, D) = ({config.latent_budget}, {config.hidden_size})")):
        api.neighbours(service, good[:3].tolist())


def test_special_tokens_are_plain_text(service):
    question = "<|sketch_start|> <|im_end|> ⟨START⟩ <|image_pad|> which colour?"
    trace = api.reason(service, ApiInputs(example_id="maze-1", question=question, max_new_tokens=24))
    assert trace["question"] == question
    model = service.load("tiny").model
    ids = prompt_ids(model.tokenizer, question, 1, model.tokens_per_image)
    plain = prompt_ids(model.tokenizer, "which colour?", 1, model.tokens_per_image)
    for special in (model.start_id, model.eos_id, model.image_token_id):
        assert ids.count(special) == plain.count(special), "typed special tokens must stay text"


def test_oracle_mode_inserts_the_true_sketch(service):
    steps = final(reason(service, mode="oracle", max_sketches=1))["reasoning"]
    assert "oracle latents" in steps
    trace = Trace.from_dict(
        api.reason(
            service,
            ApiInputs(example_id="maze-1", mode="oracle", max_sketches=1, include_latents=True, max_new_tokens=24),
        )
    )
    sketch = trace.sketches[0]
    assert sketch.source == "oracle"
    model = service.load("tiny").model
    truth = model.sketch_targets([Image.open("assets/examples/maze-1-sketch-1.png").convert("RGB")])[0]
    np.testing.assert_allclose(sketch.latents, truth.numpy(), atol=1e-5)


def test_compare_runs_every_mode_on_the_same_seed(service):
    out = api.compare(
        service, ApiInputs(example_id="maze-1", seed=5, max_new_tokens=48, max_sketches=1, include_latents=True)
    )
    assert set(out["modes"]) == set(mode_names(compare=True)) and out["skipped"] == {}
    model = service.load("tiny").model
    example = service.examples["maze-1"]
    images = [load_image(p) for p in example.problem_paths]
    engine = Engine(model)
    for mode in ("auto", "zero-latents", "text-only"):  # each column is what the engine gives for that mode alone
        want = engine.generate([Prompt(example.question, images)], GenerationSettings(mode=mode, max_new_tokens=48,
                               max_sketches=1, seed=5))[0]  # fmt: skip
        assert out["traces"][mode]["text"] == want.text, mode
        summary = out["modes"][mode]
        assert summary["answer"] == want.answer and summary["num_sketches"] == want.num_sketches
        assert summary["num_positions"] == want.num_positions
        assert summary["correct"] == (want.answer == normalize_answer(example.answer))
    assert out["modes"]["text-only"]["num_sketches"] == 0
    zero = Trace.from_dict(out["traces"]["zero-latents"]).sketches
    assert zero and all(not s.latents.any() and s.source == "zero" for s in zero)
    # shuffled-latents inserts the model's own sketch for maze-2, made with the same settings
    donor = service.examples["maze-2"]
    donor_trace = engine.generate([Prompt(donor.question, [load_image(p) for p in donor.problem_paths])],
                                  GenerationSettings(max_new_tokens=48, max_sketches=1, seed=5))[0]  # fmt: skip
    shuffled = Trace.from_dict(out["traces"]["shuffled-latents"]).sketches[0]
    assert shuffled.source == "shuffled"
    np.testing.assert_allclose(shuffled.latents, donor_trace.sketches[0].latents, atol=1e-5)
    assert Trace.from_dict(out["traces"]["oracle"]).sketches[0].source == "oracle"
    # the service's registry does not exist: the text-cot column says so instead of failing the comparison
    assert out["baselines"]["text-cot"]["skipped"] == "the checkpoint registry has no 'baseline/text-cot' entry"
    assert out["baselines"]["text-cot"]["answer"] is None and "text-cot" not in out["traces"]
    json.dumps(out)


def test_compare_on_the_page_and_skipped_modes(service):
    form = Request.from_page(checkpoint="tiny", example_id="count-1", question="How many red cells?", temperature=0.0,
                             max_sketches=1, diffusion_steps=0, max_new_tokens=32, seed="0")  # fmt: skip
    updates = list(reason_tab.compare(service, form))
    assert all(set(update) == {"compare"} for update in updates), "the answer above is left as it was"
    last = final(updates)["compare"]
    assert "Compared 6 modes and the text-cot model on count-1 · seed 0" in last
    assert "same prompt, settings and seed" in last and "<th>positions (tokens)</th>" in last
    for mode in mode_names(compare=True):
        assert f'<th data-mode="{mode}">{mode}</th>' in last
    # oracle needs true sketches, and count puzzles have none
    assert render.html.escape("example 'count-1' has none") in last
    assert '<th data-mode="text-cot">text-cot<br><small class="subtitle">the same puzzle reasoned in words' in last
    assert render.html.escape("has no 'baseline/text-cot' entry") in last
    assert (
        last.count('class="verdict ') == len(mode_names(compare=True)) - 1
    )  # right or wrong, as words, per mode that ran
    with pytest.raises(gr.Error, match="cannot compare mode"):
        api.compare(service, ApiInputs(example_id="maze-1", modes=["auto", "direct"]))


def test_explorer_shows_session_sketches_and_neighbours(service):
    session = final(reason(service, max_sketches=1))["session"]
    shown = explorer_tab.explore(service, "tiny", session)
    assert "1 sketch(es) from this session" in shown["summary"]
    values = [value for _, value in shown["point"]["choices"]]
    assert values[0] == "s:0" and "g:0" in values
    point = explorer_tab.show_point(service, "g:5", "tiny", session)
    assert isinstance(point["image"], Image.Image) and len(captions(point["neighbours"])) == NUM_NEIGHBOURS
    loaded = service.load("tiny")
    key = loaded.gallery.meta["key"].iloc[5]
    others = service.models.neighbours(loaded, service.models.gallery_latents(loaded, 5), NUM_NEIGHBOURS + 1)
    assert 5 in others["gallery_index"].tolist()  # its own nearest picture, which the strip leaves out:
    assert key in point["info"] and len(set(captions(point["neighbours"]))) == NUM_NEIGHBOURS
    clicked = reason_tab.on_map_click(service, "g:5", "tiny", session)  # a click on the Reason tab's map
    assert clicked["neighbours"] == point["neighbours"] and key in clicked["note"]
    point = explorer_tab.show_point(service, "s:0", "tiny", session)
    assert "answer 1 · sketch 1" in point["info"] and len(captions(point["neighbours"])) == NUM_NEIGHBOURS
    assert len([t for t in shown["map"].data if t.name == "sketches"][0].x) == 1
    with pytest.warns(UserWarning, match="not a map point"):  # gr.Warning outside a request
        assert explorer_tab.show_point(service, "x:1", "tiny", session) == {}


def test_switching_statistics_tab_and_api(service):
    reason(service)  # maze-1
    reason(service, example_id="fold-1", question="How many purple cells?")
    form = Request.from_page(checkpoint="tiny", example_id="fold-1", question="How many purple cells?", max_sketches=1,
                             temperature=0.0, diffusion_steps=0, max_new_tokens=32, seed="0")  # fmt: skip
    list(reason_tab.compare(service, form))
    stats = stats_tab.compute(service.config.event_store, by=["family"])
    assert {"maze", "fold"} <= set(stats.table["family"])
    assert stats.figures[0] is not None and stats.num_answers >= 2
    assert set(stats.table["mode"]) == {"auto"}, "auto by default, and the mode is a column of the summary"
    every = stats_tab.compute(service.config.event_store, families=["fold"], by=["family"], modes=[])
    assert set(every.table["family"]) == {"fold"} and set(every.table["mode"]) >= set(mode_names(compare=True)) - {
        "oracle"
    }
    assert every.table.groupby("mode")["num_answers"].sum()["noise-latents"] >= 1  # Compare's runs, counted apart
    shown = stats_tab.show(service, None, ["fold"], None, ["auto"], ["family"])
    assert shown["csv"]["visible"] and open(shown["csv"]["value"]).read().startswith("family,mode,")
    assert shown["modes"]["value"] == ["auto"] and "zero-latents" in shown["modes"]["choices"]
    out = api.switching_stats(service, family="fold", by="family")
    assert [(r["family"], r["mode"]) for r in out["summary"]] == [("fold", "auto")] and json.dumps(out)
    out = api.switching_stats(service, family="fold", by="family", mode="")
    assert {r["mode"] for r in out["summary"]} >= {"auto", "zero-latents"}
    with pytest.raises(gr.Error, match="unknown group column"):
        api.switching_stats(service, by="colour")
    with pytest.raises(
        gr.Error, match=re.escape("filter 'fo") + ".*" + re.escape("is not valid UTF-8 text (character 3")
    ):
        api.switching_stats(service, family="fo\ud800ld")


def test_demo_builds_with_named_endpoints(service):
    demo = build_demo(service)
    named = demo.get_api_info()["named_endpoints"]
    assert {"/reason", "/compare", "/neighbours", "/switching_stats", "/examples", "/checkpoints"} <= set(named)
    assert not any(name.startswith(("/page_", "/reason_", "/compare_")) for name in named), "page events stay private"
    params = [p["parameter_name"] for p in named["/reason"]["parameters"]]
    assert params[:4] == ["image", "extra_image", "question", "mode"]
    assert all(p["parameter_has_default"] for p in named["/reason"]["parameters"])
    assert [p["parameter_name"] for p in named["/compare"]["parameters"]][-2:] == ["modes", "snap"]


def test_bind_keeps_what_gradio_inspects(service):
    bound = bind(reason_tab.reason, service)
    assert inspect.isgeneratorfunction(bound)
    assert "service" not in inspect.signature(bound).parameters
    assert get_type_hints(bound)["request"] is gr.Request
    names = [name for name, *_ in get_function_params(bind(api.neighbours, service))]
    assert names == ["latents", "k", "checkpoint"]
    with gr.Blocks():
        box = gr.Markdown()
    named = bind(lambda service, x: {"box": x}, service, outputs={"box": box})
    assert named(3) == {box: 3}


def test_one_settings_dataclass_makes_both_endpoints_and_the_page_form(service):
    """/reason and /compare take ApiInputs' fields as their parameters (names, defaults, help), gathered back into one
    ApiInputs; the page's controls are gathered into a Request the same way (plumbing.gather)."""
    handler = api.endpoint(api.reason, service, "modes")
    params = get_function_params(handler)
    assert [name for name, *_ in params] == [f.name for f in api_fields("modes")]
    assert dict((name, default) for name, _, default, _ in params)["max_new_tokens"] == 256
    assert get_type_hints(handler)["request"] is gr.Request
    _, described, _ = get_function_description(handler)
    assert (
        described["seed"] == ApiInputs.__dataclass_fields__["seed"].metadata["help"]
        and "2**63 - 1" in described["seed"]
    )
    got = handler(example_id="maze-1", max_new_tokens=8, seed="4")  # keywords, as gradio_client sends them
    assert got["seed"] == 4 and got["num_positions"] <= 8
    assert "mode" not in [name for name, *_ in get_function_params(api.endpoint(api.compare, service, "mode"))]
    with pytest.raises(TypeError):
        ApiInputs(sedd="4")  # an unknown parameter fails loudly

    seen = []
    page = gather(lambda form, session, request=None: seen.append((form, session)), form_parameters(PAGE_FIELDS),
                  Request.from_page)  # fmt: skip
    assert list(inspect.signature(page).parameters) == [*PAGE_FIELDS, "session", "request"]
    page("tiny", "maze-1", ["up.png"], "Which?", None, 0.5, 2, 0, 64, "3", None, {"answers": 1})
    form, session = seen[0]
    assert form == Request(question="Which?", files=["up.png"], example_id="", mode="auto", temperature=0.5,
                           max_sketches=2, max_new_tokens=64, seed="3", checkpoint="tiny", snap=True)  # fmt: skip
    assert session == {"answers": 1}, "uploads win over a still-selected example; empty controls take defaults"


def test_folder_checkpoint_with_a_latent_decoder(service, tmp_path):
    tiny = service.load("tiny")
    folder = tmp_path / "checkpoint"
    save_pretrained(tiny.model, folder)
    images = [image for image, _ in gallery_images(1)]
    decoder, _ = train_decoder(tiny.model, images, steps=2, batch_size=8, progress=False)
    save_decoder(decoder, folder)

    updates = reason(service, checkpoint=str(folder), max_sketches=1)
    loaded = service.load(str(folder))
    assert loaded.decoder is not None and "decoder" not in loaded.notes and "weights" not in loaded.notes
    assert 'alt="decoded sketch 1"' in final(updates)["reasoning"]
    assert service.load("tiny") is tiny, "both checkpoints stay loaded"
    assert {"tiny", loaded.name} <= set(service.loaded_names())
    assert len(service.loaded_names()) <= service.config.max_models


def test_large_galleries_get_the_reduced_index(tmp_path, monkeypatch):
    monkeypatch.setattr(galleries_module, "EXACT_MAX_ROWS", 10)  # the tiny gallery of 39 pictures counts as large
    config = ServiceConfig(checkpoint="tiny", cache_dir=str(tmp_path / "c"), gallery_per_family=3)
    loaded = Service(config).load()
    assert loaded.wait_ready(300) and loaded.index is not None

    # on structured vectors (a few directions carry most of the energy, as encoder latents do) the re-ranked
    # candidates give the exact scan's top 5, similarities included
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.standard_normal((8 * 64, 16)))[0]
    vectors = rng.standard_normal((3000, 16)) @ basis.T + 0.01 * rng.standard_normal((3000, 8 * 64))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    keys = [f"r{i}" for i in range(3000)]
    meta = dict(key=keys, example_id=keys, family="f", role="problem", image_index=0, split="")
    gallery = Gallery(vectors, pd.DataFrame(meta), 8, 64)
    index = build_index(gallery, dim=32, num_candidates=64)
    queries = (vectors[:20] + 0.05 * rng.standard_normal((20, 8 * 64)).astype(np.float32)).reshape(20, 8, 64)
    exact, approx = top_k(gallery, queries, 5), top_k(gallery, queries, 5, index=index)
    assert exact["gallery_index"].tolist() == approx["gallery_index"].tolist()
    np.testing.assert_allclose(exact["similarity"], approx["similarity"], atol=1e-5)
