"""Which checkpoint the app serves: registered names and the registry's endpoint, the Sweeps tab over a registry (the
points not trained yet named), the text-only-CoT model's room for its 16×16 traces, the fallback when the default
checkpoint is missing, an unknown name refused at start, and the page served from a process that has not imported
the model stack."""

import json
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sweep_grids import NEW_GRID, OLD_GRID, grid_registry

import app.service as service_module
from app import api, reason_tab, sweeps_tab
from app.main import main
from app.request import ApiInputs, Request
from app.service import Service, ServiceConfig
from model.core.checkpoint import CheckpointError, build_preset, save_pretrained
from model.generation.answers import normalize_answer
from model.generation.engine import Engine, GenerationSettings, Prompt
from model.generation.events import read_events
from model.generation.inputs import load_image
from model.generation.settings import TEXT_COT_MAX_NEW_TOKENS


def test_sweeps_tab(tmp_path):
    registry = tmp_path / "registry.json"
    message, drawn, table = sweeps_tab.panels(str(registry))  # absent: the tab says so, without the server's path
    assert "No checkpoint registry yet" in message and drawn == [] and str(tmp_path) not in message
    shown = sweeps_tab.show(str(registry))
    assert not any(shown[key]["visible"] for key in sweeps_tab.PLOTS) and not shown["table"]["visible"]

    registry.write_text(json.dumps(grid_registry(NEW_GRID)))
    shown = sweeps_tab.show(str(registry))
    assert all(shown[key]["visible"] for key in sweeps_tab.PLOTS), "every panel draws: no two points clash"
    assert str(tmp_path) not in json.dumps({k: v for k, v in shown.items() if "caption" in k or k == "message"})
    assert "**9 sweep point(s)** registered" in shown["message"]
    assert "demo, demo-sequential, baseline/text-cot are registered too" in shown["message"]
    # each caption names exactly the points its panel draws, and the figure draws exactly those
    head = shown["head_caption"]
    assert head.startswith("Draws 2 point(s): `sweep/k64-l1`, `sweep/k64-l1-regression`. Each trained: ")
    assert "K = 64 · λ = 1 · parallel decoding" in shown["head"]["value"].layout.title.text
    lam = shown["accuracy_vs_lambda"]["value"]
    # each point's own x value is in its hover (customdata[1]); drawn, the families sit a little apart around it
    assert sorted({float(c[1]) for trace in lam.data for c in trace.customdata}) == [0.1, 1.0, 10.0]
    by_k = shown["accuracy_vs_k"]["value"].data
    assert sorted({int(c[1]) for trace in by_k for c in trace.customdata}) == [4, 8, 16, 32, 64]
    assert "`demo`" not in json.dumps({k: v for k, v in shown.items() if k.endswith("caption")})
    assert shown["table"]["value"].set_index("name").loc["demo", "panels"] == ""
    overall = sweeps_tab.show(str(registry), sweeps_tab.OVERALL)
    assert [trace.name for trace in overall["accuracy_vs_k"]["value"].data] == ["overall"]

    registry.write_text(json.dumps(grid_registry(OLD_GRID, with_use=False)))
    shown = sweeps_tab.show(str(registry))
    assert not shown["decoding"]["visible"] and "nothing to compare" in shown["decoding_caption"]
    assert "have no `sketch_decoding` field" in shown["message"] and "sequential decoding" in (
        shown["accuracy_vs_k"]["value"].layout.title.text
    )
    entries = json.loads(registry.read_text())
    entries["checkpoints"][0]["recipe"] = "previous"  # a sweep point kept from an older recipe is called so
    registry.write_text(json.dumps(entries))
    assert "**1 sweep point(s) come from the previous training recipe**" in sweeps_tab.show(str(registry))["message"]
    registry.write_text("{not json")
    message = sweeps_tab.show(str(registry))["message"]
    assert "cannot be read" in message and str(tmp_path) not in message and "registry.json" in message


def test_sweeps_tab_names_the_points_not_trained_yet(tmp_path):
    """The registry's `sweep_grid` (pipeline/registry.py grid_summary) lists the planned points not trained yet: the
    tab names them instead of silently drawing the others."""
    registry = tmp_path / "registry.json"
    grid = grid_registry(NEW_GRID)
    planned = [name for name, *_ in NEW_GRID]
    missing = ["sweep/k4-l1", "sweep/k64-l0.1"]  # planned, trained later: their entries are not there yet
    grid["checkpoints"] = [e for e in grid["checkpoints"] if e["name"] not in missing]
    grid["sweep_grid"] = {"recipe": {"supervised_steps": 2400}, "points": planned, "missing": missing}
    registry.write_text(json.dumps(grid))
    shown = sweeps_tab.show(str(registry))
    assert "**7 sweep point(s)** registered" in shown["message"]
    assert "**2 planned sweep point(s) not trained yet:** `sweep/k4-l1`, `sweep/k64-l0.1`" in shown["message"]
    assert "sweep/k4-l1" not in shown["accuracy_vs_k_caption"] and shown["accuracy_vs_k"]["visible"]
    grid["sweep_grid"]["missing"] = []  # every point in: nothing to say
    registry.write_text(json.dumps(grid))
    assert "not trained yet" not in sweeps_tab.show(str(registry))["message"]
    del grid["sweep_grid"]  # a registry from before the grid summary: nothing to say either
    registry.write_text(json.dumps(grid))
    assert "not trained yet" not in sweeps_tab.show(str(registry))["message"]
    grid["sweep_grid"] = {"missing": "sweep/k4-l1"}  # not a list: the registry is refused, naming the field
    registry.write_text(json.dumps(grid))
    message = sweeps_tab.show(str(registry))["message"]
    assert "cannot be read" in message and "'missing' is a list of names" in message


def test_the_text_cot_model_gets_room_for_its_16x16_traces(tmp_path):
    """The text-only-CoT model writes a 16×16 board out in 355–365 tokens: Compare's text-cot column and /reason give
    it at least 448 new positions whatever was asked (the pipeline's audits give it as many), and choosing it in the
    Checkpoint box or through Sweeps' "Use in the Reason tab" raises the page's Max new positions to 448."""
    assert TEXT_COT_MAX_NEW_TOKENS >= 448
    folder = save_pretrained(build_preset("tiny", seed=3), tmp_path / "baselines" / "text-cot")  # never stops
    service = _service_with_text_cot(tmp_path, folder, latent_budget=4)
    out = api.compare(service, ApiInputs(example_id="maze16-1", seed=1, max_new_tokens=24, modes=["text-only"]))
    words = out["baselines"]["text-cot"]
    assert out["modes"]["text-only"]["num_positions"] == 24, "the modes' columns keep the budget asked for"
    assert words["skipped"] == "" and words["num_positions"] == 448, "448, not the 24 asked: it runs to its budget"
    assert out["traces"]["text-cot"]["truncated"]
    asked = dict(example_id="maze16-1", seed=1, max_new_tokens=24, mode="text-only")
    assert api.reason(service, ApiInputs(**asked, checkpoint="baseline/text-cot"))["num_positions"] == 448, (
        "/reason gives it 448 as Compare does"
    )
    assert api.reason(service, ApiInputs(**asked))["num_positions"] == 24, "another checkpoint keeps what was asked"
    form = Request.from_page(checkpoint="tiny", example_id="maze-1", question="Which colour?", temperature=0.0,
                             max_sketches=1, diffusion_steps=0, max_new_tokens=8, seed="5")  # fmt: skip
    page = list(reason_tab.compare(service, form))[-1]["compare"]
    assert "same prompt, settings and seed in every column (the text-cot model at least 448 new positions)" in page
    assert f'<td data-mode="text-cot">{TEXT_COT_MAX_NEW_TOKENS}</td>' in page

    for name in ("baseline/text-cot", str(folder)):  # by its registered name or by its folder
        assert reason_tab.on_checkpoint(service, name, "tiny", 256)["max_new_tokens"] == 448
        assert "max_new_tokens" not in reason_tab.on_checkpoint(service, name, "tiny", 512), "more is kept"
    assert "max_new_tokens" not in reason_tab.on_checkpoint(service, "tiny", "tiny", 256), "others keep theirs"
    assert sweeps_tab.use_checkpoint(service, "baseline/text-cot", 100)["max_new_tokens"] == 448
    assert service.load().wait_ready(300)  # its gallery thread done before the interpreter exits
    assert service.load("baseline/text-cot").wait_ready(300)


def test_checkpoints_endpoint_has_no_path_keys(tmp_path):
    registry = tmp_path / "registry.json"
    entry = dict(name="k8", stage="sft", parent=None, path="runs/x", latent_budget=8, diffusion_loss_weight=1.0)
    registry.write_text(json.dumps({"checkpoints": [dict(entry, metrics={})]}))
    other = Service(ServiceConfig(checkpoint="tiny", cache_dir=str(tmp_path / "c"), registry=str(registry)))
    out = api.checkpoints(other)
    assert out["registered"] == [dict(name="k8", checkpoint="runs/x", latent_budget=8, diffusion_loss_weight=1.0,
                                      stage="sft")]  # fmt: skip
    assert "path" not in json.dumps(out), "gradio_client downloads any dict with a 'path' key as a file"


def test_a_registered_name_loads_its_folder(tmp_path):
    folder = tmp_path / "points" / "k8"
    save_pretrained(build_preset("tiny"), folder)  # a real checkpoint folder, registered under a hub-id-like name
    registry = tmp_path / "registry.json"
    entry = dict(name="sweep/k8", stage="sft", parent=None, path=str(folder), latent_budget=8)
    entry["diffusion_loss_weight"] = 1.0
    registry.write_text(json.dumps({"checkpoints": [dict(entry, metrics={})]}))
    config = ServiceConfig(
        checkpoint="tiny", cache_dir=str(tmp_path / "c"), registry=str(registry), gallery_per_family=1
    )
    other = Service(config)
    assert other.registered_path("sweep/k8") == str(folder) and other.registered_path("sweep/k9") is None
    by_name, by_folder = other.load("sweep/k8"), other.load(str(folder))
    assert by_name is by_folder  # one model, not a hub lookup of "sweep/k8"
    with pytest.raises(CheckpointError, match="sweep/k9"):
        other.load("sweep/k9")  # an unregistered owner/name still means a hub id, and says which
    by_name.wait_ready(300)  # its gallery thread done before the interpreter exits


def test_compare_runs_the_registered_text_cot_model(tmp_path):
    """Compare's "reasoned in words" column: the registered baseline/text-cot checkpoint in text-only mode on the same
    puzzle, seed and settings, loaded by its registry name (no gallery: it never sketches); skipped with the reason
    when the folder is missing or the registry has no such entry."""
    folder = tmp_path / "baselines" / "text-cot"
    words = build_preset("tiny", seed=3)  # a model that stops at once (the app's tiny model writes 24 newlines):
    with torch.no_grad():  # a zero final norm makes every logit 0, and the first token, end of text, wins
        words.backbone.model.language_model.norm.weight.zero_()
    save_pretrained(words, folder)
    service = _service_with_text_cot(tmp_path, folder, latent_budget=32)
    registry = tmp_path / "registry.json"  # the helper's, emptied below
    out = api.compare(service, ApiInputs(example_id="maze-1", seed=5, max_new_tokens=24, max_sketches=1,
                                         modes=["auto"]))  # fmt: skip
    example = service.examples["maze-1"]
    prompt = Prompt(example.question, [load_image(p) for p in example.problem_paths])
    settings = GenerationSettings(mode="text-only", max_new_tokens=24, max_sketches=1, seed=5)
    baseline = service.load("baseline/text-cot", gallery=False)
    want = Engine(baseline.model).generate([prompt], settings)[0]
    mine = Engine(service.load("tiny").model).generate([prompt], settings)[0]
    assert (want.num_positions, mine.num_positions) == (1, 24), "the column must show the baseline's own answer"
    column = out["baselines"]["text-cot"]
    assert out["traces"]["text-cot"]["text"] == want.text and column["answer"] == want.answer
    assert column["num_positions"] == want.num_positions and column["num_sketches"] == 0
    assert column["correct"] == (want.answer == normalize_answer(example.answer)) and column["total_s"] > 0
    assert column["checkpoint"] == "baseline/text-cot" and set(out["modes"]) == {"auto"}
    assert not baseline.gallery_started, "a model that never sketches needs no gallery"
    logged = read_events(str(tmp_path / "events"))
    assert "text-only" in set(logged.loc[logged["checkpoint"] == baseline.name, "mode"])

    form = Request.from_page(checkpoint="tiny", example_id="maze-1", question=example.question, temperature=0.0,
                             max_sketches=1, diffusion_steps=0, max_new_tokens=24, seed="5")  # fmt: skip
    page = list(reason_tab.compare(service, form))[-1]["compare"]
    cell = re.search(r'<td data-mode="text-cot">(.*?)</td>', page).group(1)
    assert cell == "<em>none given</em>"
    assert f'<td data-mode="text-cot">{want.num_positions}</td>' in page

    shutil.rmtree(folder)  # registered, but not there
    out = api.compare(service, ApiInputs(example_id="maze-1", max_new_tokens=8, modes=["auto"]))
    skipped = out["baselines"]["text-cot"]["skipped"]
    assert skipped.startswith("'baseline/text-cot' is registered, but its folder") and "text-cot" not in out["traces"]
    registry.write_text(json.dumps({"checkpoints": []}))
    out = api.compare(service, ApiInputs(example_id="maze-1", max_new_tokens=8, modes=["auto"]))
    assert out["baselines"]["text-cot"]["skipped"] == "the checkpoint registry has no 'baseline/text-cot' entry"
    assert service.load().wait_ready(300)  # its gallery thread done before the interpreter exits


def test_default_checkpoint_missing_falls_back_with_banner(tmp_path, monkeypatch):
    missing = tmp_path / "assets" / "checkpoints" / "demo"
    monkeypatch.setattr(service_module, "DEFAULT_CHECKPOINT", str(missing))
    config = ServiceConfig(checkpoint=str(missing), cache_dir=str(tmp_path / "c"), gallery_per_family=1)
    fallback = Service(config)
    loaded = fallback.load()
    assert "random weights" in fallback.resolve().banner and loaded.model.config.latent_budget == 32
    assert loaded.notes["weights"] == fallback.resolve().banner
    assert loaded.wait_ready(300)
    assert (loaded.projection is None) == ("map" in loaded.notes)  # a gallery too small for UMAP: the page says so
    assert "decoder" in loaded.notes  # and a preset has no latent decoder


def test_main_refuses_an_unknown_checkpoint(tmp_path, capsys):
    """The page comes up first; a default checkpoint that cannot load then ends the process with its message."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = ["--checkpoint", "no-such-model", "--cache-dir", str(tmp_path), "--host", "127.0.0.1", "--port", str(port)]
    assert main(args + ["--event-store", str(tmp_path / "events")]) == 2
    assert "unknown checkpoint 'no-such-model'" in capsys.readouterr().err


def test_the_page_needs_no_model_stack():
    """Everything `python -m app` imports before it serves the page leaves torch and transformers to the loader
    thread (app/stack.py); the stack's modules are the ones app/stack.py names."""
    code = (
        "import sys, app.main, app.ui; from app import stack\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'umap', *stack.MODULES) if m in sys.modules)\n"
        "print(','.join(heavy))"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported before the page is up: {out.stdout.strip()}"


def _service_with_text_cot(tmp_path, folder, latent_budget: int) -> Service:
    """A service on the tiny preset whose registry names `folder` as baseline/text-cot."""
    registry = tmp_path / "registry.json"
    entry = dict(name="baseline/text-cot", path=str(folder), latent_budget=latent_budget, diffusion_loss_weight=1.0,
                 stage="text-only SFT", parent="warmup", metrics={})  # fmt: skip
    registry.write_text(json.dumps({"checkpoints": [entry]}))
    config = ServiceConfig(checkpoint="tiny", cache_dir=str(tmp_path / "c"), event_store=str(tmp_path / "events"),
                           registry=str(registry), gallery_per_family=1)  # fmt: skip
    return Service(config)
