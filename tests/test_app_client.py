"""The app as a user's program sees it: `python -m app --checkpoint tiny` in a subprocess on a free loopback port,
called with `gradio_client`. The server (shared with the browser test through `app_server`) is biased towards
⟨START⟩ with the test-only --debug-sketch-bias flag, so the tiny model with random weights sketches."""

import atexit
import functools
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
from PIL import Image

from model.generation.trace import Trace

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "assets" / "examples" / "maze-1-problem-1.png"
STARTUP_S = 180  # imports, the tiny model, its gallery and UMAP map on a busy 2-core machine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@functools.cache
def _start_server() -> tuple[str, subprocess.Popen, Path]:
    """One server per test session (the browser test uses it too); stopped at exit."""
    work = Path(tempfile.mkdtemp(prefix="app-test-"))
    port = _free_port()
    command = [sys.executable, "-m", "app", "--checkpoint", "tiny", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--cache-dir", str(work / "cache"), "--event-store", str(work / "events")]
    command += ["--registry", str(work / "registry.json"), "--gallery-per-family", "3", "--debug-sketch-bias", "4"]
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    log = open(work / "server.log", "w")
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    atexit.register(_stop, process)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return url, process, work
        except OSError:
            time.sleep(0.5)
    _stop(process)
    tail = (work / "server.log").read_text()[-3000:]
    raise RuntimeError(f"the app did not start on {url} within {STARTUP_S} s; its log ends with:\n{tail}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def app_server():
    url, process, work = _start_server()
    yield url
    _stop(process)


@pytest.fixture(scope="module")
def client(app_server):
    from gradio_client import Client

    return Client(app_server, verbose=False)


def test_reason_returns_a_trace(client):
    from gradio_client import handle_file

    question = "Which colour lies on the way: blue, yellow or purple?"
    result = client.predict(
        image=handle_file(str(EXAMPLE)), question=question, seed=1, max_new_tokens=48, api_name="/reason"
    )
    trace = Trace.from_dict(result)
    assert trace.question == question and trace.num_sketches >= 1
    assert result["num_sketches"] == trace.num_sketches and set(trace.timings) >= {"prefill_s", "total_s"}


def test_bad_inputs_are_errors_and_the_server_keeps_serving(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    not_image = tmp_path / "notes.txt"
    not_image.write_text("not a picture")
    huge = tmp_path / "huge.png"
    Image.new("L", (5000, 5000)).save(huge)
    cases = [
        (dict(question="What is this?"), "no image"),
        (dict(image=handle_file(str(not_image)), question="What is this?"), "not an image file"),
        (dict(image=handle_file(str(huge)), question="What is this?"), "5000×5000 pixels"),
        (dict(example_id="maze-1", question="x" * 5000), "5000 characters; the limit is 1000"),
        (dict(image=handle_file(str(EXAMPLE)), question=" "), "the question is empty"),
        (dict(example_id="maze-1", checkpoint="no-such-model"), "unknown checkpoint 'no-such-model'"),
        (dict(example_id="nope"), "unknown example 'nope'"),
    ]
    for kwargs, message in cases:
        with pytest.raises(AppError, match=message):
            client.predict(**kwargs, max_new_tokens=16, api_name="/reason")
    special = "<|sketch_start|><|im_end|> ⟨START⟩ which colour?"  # typed special tokens are plain text
    trace = client.predict(example_id="maze-1", question=special, max_new_tokens=16, api_name="/reason")
    assert trace["question"] == special
    trace = client.predict(example_id="tilt-1", max_new_tokens=32, api_name="/reason")
    assert trace["question"].startswith("Tilt the board")


def test_other_endpoints(client):
    trace = client.predict(example_id="maze-1", max_new_tokens=32, include_latents=True, api_name="/reason")
    latents = next(s["latents"] for s in trace["segments"] if s["kind"] == "sketch")
    found = client.predict(latents=latents, k=3, api_name="/neighbours")
    assert [n["rank"] for n in found["neighbours"]] == [1, 2, 3] and len(found["map_xy"]) == 2
    stats = client.predict(family="maze", api_name="/switching_stats")
    assert stats["num_answers"] >= 1 and stats["summary"][0]["family"] == "maze"
    examples = client.predict(api_name="/examples")
    assert {e["id"] for e in examples} >= {"maze-1", "tilt-1"}
    assert client.predict(api_name="/checkpoints")["default"] == "tiny"


def test_concurrent_clients(app_server):
    from gradio_client import Client

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
