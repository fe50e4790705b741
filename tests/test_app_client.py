"""The app as a user's program sees it: `python -m app --checkpoint tiny` in a subprocess on a free loopback port,
called with `gradio_client` (and, for what gradio_client cannot send — NaN, a lone surrogate — with the documented
REST API). The server (shared with the browser test through `app_server`) is biased towards ⟨START⟩ with the
test-only --debug-sketch-bias flag, so the tiny model with random weights sketches, and serves a registry that is
not empty. Slow: run with `python -m pytest -m slow tests/test_app_client.py`. APP_URL=http://… uses a running
server of the same kind instead of starting one."""

import atexit
import functools
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from app.compare import COMPARE_MODES
from model.generation.trace import Trace

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "assets" / "examples" / "maze-1-problem-1.png"
STARTUP_S = 180  # imports, the tiny model, its gallery and UMAP map on a busy 2-core machine
REGISTRY = {
    "checkpoints": [
        {
            "name": "tiny-registered",
            "path": "tiny",
            "stage": "sft",
            "parent": None,
            "latent_budget": 4,
            "diffusion_loss_weight": 1.0,
            "metrics": {"accuracy": {"maze": 0.5}},
        }  # fmt: skip
    ]
}

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(port: int, work: Path) -> list[str]:
    command = [sys.executable, "-m", "app", "--checkpoint", "tiny", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--cache-dir", str(work / "cache"), "--event-store", str(work / "events")]
    command += ["--registry", str(work / "registry.json"), "--gallery-per-family", "3", "--debug-sketch-bias", "4"]
    return command


@functools.cache
def _start_server() -> tuple[str, subprocess.Popen | None]:
    """One server per test session (the browser test uses it too); stopped at exit."""
    if os.environ.get("APP_URL"):
        return os.environ["APP_URL"], None
    work = Path(tempfile.mkdtemp(prefix="app-test-"))
    (work / "registry.json").write_text(json.dumps(REGISTRY))
    port = _free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    log = open(work / "server.log", "w")
    process = subprocess.Popen(server_command(port, work), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    atexit.register(_stop, process)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return url, process
        except OSError:
            time.sleep(0.5)
    _stop(process)
    tail = (work / "server.log").read_text()[-3000:]
    raise RuntimeError(f"the app did not start on {url} within {STARTUP_S} s; its log ends with:\n{tail}")


def _stop(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def app_server():
    url, process = _start_server()
    yield url
    _stop(process)


@pytest.fixture(scope="module")
def client(app_server):
    return Client(app_server, verbose=False)


def rest_call(url: str, endpoint: str, body: str) -> tuple[str, dict]:
    """The documented REST API (`curl -X POST …/gradio_api/call/<endpoint>`): (event, data) of the result."""
    request = urllib.request.Request(
        f"{url}gradio_api/call/{endpoint}", data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        event_id = json.loads(response.read())["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/{endpoint}/{event_id}", timeout=120) as response:
        lines = response.read().decode().splitlines()
    event = next(line.split(": ", 1)[1] for line in lines if line.startswith("event: "))
    data = next(line.split(": ", 1)[1] for line in lines if line.startswith("data: "))
    return event, json.loads(data)


def test_reason_returns_a_trace(client):
    question = "Which colour lies on the way: blue, yellow or purple?"
    result = client.predict(
        image=handle_file(str(EXAMPLE)), question=question, seed=1, max_new_tokens=48, api_name="/reason"
    )
    trace = Trace.from_dict(result)
    assert trace.question == question and trace.num_sketches >= 1
    assert result["num_sketches"] == trace.num_sketches and set(trace.timings) >= {"prefill_s", "total_s"}


def test_bad_inputs_are_errors_and_the_server_keeps_serving(client, tmp_path):
    not_image = tmp_path / "notes.txt"
    not_image.write_text("not a picture")
    huge = tmp_path / "huge.png"
    Image.new("L", (5000, 5000)).save(huge)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("[]")
    (broken / "model.safetensors").write_bytes(b"")
    cases = [
        (dict(question="What is this?"), "no image"),
        (dict(image=handle_file(str(not_image)), question="What is this?"), "not an image file"),
        (dict(image=handle_file(str(huge)), question="What is this?"), "5000×5000 pixels"),
        (dict(example_id="maze-1", question="x" * 5000), "5000 characters; the limit is 1000"),
        (dict(image=handle_file(str(EXAMPLE)), question=" "), "the question is empty"),
        (dict(example_id="maze-1", checkpoint="no-such-model"), "unknown checkpoint 'no-such-model'"),
        (dict(example_id="maze-1", checkpoint=str(broken)), "config.json is damaged: expected a JSON object"),
        (dict(example_id="maze-1", checkpoint="../x"), "checkpoint folder ../x does not exist"),
        (dict(example_id="maze-1", checkpoint="~/x"), "checkpoint folder ~/x does not exist"),
        (dict(example_id="nope"), "unknown example 'nope'"),
        (dict(example_id="maze-1", seed=1.5), "the seed must be a whole number"),
        (dict(example_id="maze-1", seed=2**63), "between 0 and 2\\*\\*63 - 1"),
        (dict(example_id="maze-1", max_sketches=2.5), "max_sketches must be a whole number from 0 to 64, got 2.5"),
        (dict(example_id="maze-1", temperature=1e9), "temperature must be from 0 to 2"),
    ]
    for kwargs, message in cases:
        kwargs.setdefault("max_new_tokens", 16)
        with pytest.raises(AppError, match=message) as caught:
            client.predict(**kwargs, api_name="/reason")
        shown = str(caught.value).replace(str(kwargs.get("checkpoint", "")), "")  # what the user typed may appear
        assert str(ROOT.parent) not in shown and str(Path.home()) + "/" not in shown, shown  # server paths may not
    with pytest.raises(AppError, match="max_new_tokens must be a whole number from 1 to 1024, got 20.5"):
        client.predict(example_id="maze-1", max_new_tokens=20.5, api_name="/reason")
    trace = client.predict(example_id="maze-1", seed=str(2**63 - 1), max_new_tokens=16, api_name="/reason")
    assert trace["seed"] == 2**63 - 1  # the stated maximum, exactly
    special = "<|sketch_start|><|im_end|> ⟨START⟩ which colour?"  # typed special tokens are plain text
    trace = client.predict(example_id="maze-1", question=special, max_new_tokens=16, api_name="/reason")
    assert trace["question"] == special
    trace = client.predict(example_id="sink-1", max_new_tokens=32, api_name="/reason")
    assert trace["question"].startswith("Tilt the board")


def test_what_gradio_client_cannot_send_gets_clear_errors_over_rest(app_server):
    # gradio_client refuses to encode NaN and lone surrogates itself; a curl user can send both.
    body = '{"data":[null,null,"which \\ud800 colour?","auto","0",0,4,0,16,"maze-1","",false,true]}'
    assert rest_call(app_server, "reason", body) == (
        "error",
        {
            "error": "the question is not valid UTF-8 text (character 7 cannot be encoded)",
            "duration": 10,
            "visible": True,
            "title": "Bad input",
        },  # fmt: skip
    )
    latents = [[0.5] * 64 for _ in range(4)]  # tiny: K = 4, D = 64
    for token in ("NaN", "Infinity", "1e999"):
        body = json.dumps({"data": [latents, 3, ""]}).replace("0.5", token, 1)
        event, data = rest_call(app_server, "neighbours", body)
        assert event == "error" and data["error"] == "latents must be finite numbers; 1 of 256 are NaN or infinite"


def test_compare_through_the_client(client):
    out = client.predict(example_id="maze-1", max_new_tokens=48, max_sketches=1, seed=2, api_name="/compare")
    assert list(out["modes"]) == list(COMPARE_MODES) and out["skipped"] == {}
    for mode, summary in out["modes"].items():
        trace = Trace.from_dict(out["traces"][mode])
        assert summary["answer"] == trace.answer and summary["num_sketches"] == trace.num_sketches
        assert isinstance(summary["correct"], bool) and summary["total_s"] > 0
    assert out["modes"]["text-only"]["num_sketches"] == 0
    some = client.predict(example_id="count-1", modes=["auto", "oracle"], max_new_tokens=24, api_name="/compare")
    assert list(some["modes"]) == ["auto"] and "has none" in some["skipped"]["oracle"]


def test_other_endpoints(client):
    trace = client.predict(example_id="maze-1", max_new_tokens=32, include_latents=True, api_name="/reason")
    latents = next(s["latents"] for s in trace["segments"] if s["kind"] == "sketch")
    found = client.predict(latents=latents, k=3, api_name="/neighbours")
    assert [n["rank"] for n in found["neighbours"]] == [1, 2, 3] and len(found["map_xy"]) == 2
    with pytest.raises(AppError, match="k must be a whole number from 1 to 100, got 2.5"):
        client.predict(latents=latents, k=2.5, api_name="/neighbours")
    stats = client.predict(family="maze", api_name="/switching_stats")
    assert stats["num_answers"] >= 1 and stats["summary"][0]["family"] == "maze"
    examples = client.predict(api_name="/examples")
    assert {e["id"] for e in examples} >= {"maze-1", "sink-1"}
    checkpoints = client.predict(api_name="/checkpoints")  # HTTP 403 when records carried a "path" key
    assert checkpoints["default"] == "tiny" and checkpoints["registered"][0]["name"] == "tiny-registered"
    assert checkpoints["registered"][0]["checkpoint"] == "tiny"


def test_concurrent_clients(app_server):
    results, errors = [], []

    def ask(seed: int) -> None:
        try:
            client = Client(app_server, verbose=False)
            results.append(client.predict(example_id="fold-1", seed=seed, max_new_tokens=24, api_name="/reason"))
        except Exception as err:  # collected and reported below
            errors.append(err)

    threads = [threading.Thread(target=ask, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and len(results) == 4
