"""Which checkpoint the app serves: registered names and the registry's endpoint, the Sweeps tab over a registry,
the fallback when the default checkpoint is missing, an unknown name refused at start, and the page served from a
process that has not imported the model stack."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import app.service as service_module
from app import api, sweeps_tab
from app.main import main
from app.service import Service, ServiceConfig
from model.core.checkpoint import CheckpointError, build_preset, save_pretrained


def test_sweeps_tab(tmp_path):
    registry = tmp_path / "registry.json"
    message, *plots, table = sweeps_tab.panels(str(registry))  # absent: the tab says so
    assert "No registry yet" in message and plots == [None, None, None]
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
    shown = sweeps_tab.show(str(registry), *defaults)
    assert shown["vs_k"]["visible"] and shown["table"]["visible"]
    assert "previous training recipe" not in message
    entries[0]["recipe"] = "previous"  # a sweep point kept from an older recipe is called so
    registry.write_text(json.dumps({"checkpoints": entries}))
    assert "**1 sweep point(s) come from the previous training recipe**" in sweeps_tab.panels(str(registry))[0]


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


def test_default_checkpoint_missing_falls_back_with_banner(tmp_path, monkeypatch):
    missing = tmp_path / "assets" / "checkpoints" / "demo"
    monkeypatch.setattr(service_module, "DEFAULT_CHECKPOINT", str(missing))
    config = ServiceConfig(checkpoint=str(missing), cache_dir=str(tmp_path / "c"), gallery_per_family=1)
    fallback = Service(config)
    loaded = fallback.load()
    assert "random weights" in fallback.resolve().banner and loaded.model.config.latent_budget == 32
    assert loaded.notes["weights"] == fallback.resolve().banner
    assert loaded.wait_ready(300)
    assert "map" in loaded.notes  # 13 gallery pictures are too few for a UMAP map; the page says so
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
