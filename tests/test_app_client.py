"""The app as a user's program sees it: `python -m app --checkpoint tiny` in a subprocess on a free loopback port,
called with `gradio_client` (and, for what gradio_client cannot send — NaN, a lone surrogate, an exact large JSON
integer — with the documented REST API). The server (shared with the browser test through `app_server`) is biased
towards ⟨START⟩ with the test-only --debug-sketch-bias flag, so the tiny model with random weights sketches, and
serves a registry that is not empty. It runs without HF_HUB_OFFLINE and with HF_ENDPOINT pointing at a socket
that accepts connections and never answers: a hub that cannot be reached, at its slowest. Slow: run with
`python -m pytest -m slow tests/test_app_client.py`. APP_URL=http://… uses a running server of the same kind
instead of starting one (the tests that read its log then skip)."""

import atexit
import copy
import functools
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError, ValidationError
from PIL import Image
from sweep_grids import NEW_GRID, grid_registry

from model.core.checkpoint import build_preset, save_pretrained
from model.data.vocabulary import save_vocabulary
from model.generation.modes import mode_names
from model.generation.trace import Trace

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "assets" / "examples" / "maze-1-problem-1.png"
STARTUP_S = 180  # imports, the tiny model, its gallery and UMAP map on a busy 2-core machine
TINY_REGISTERED = {
    "name": "tiny-registered",
    "path": "tiny",
    "stage": "sft",
    "parent": None,
    "latent_budget": 4,
    "diffusion_loss_weight": 1.0,
    "metrics": {"accuracy": {"maze": 0.5}},
}
# a registered preset, the new sweep grid for the Sweeps tab (its folders are not there; one more point planned and
# not trained yet), and baseline/text-cot, whose folder _start_server writes (a tiny model that never stops) for
# Compare's "reasoned in words" column
NOT_TRAINED = "sweep/k128-l1"
REGISTRY = {
    "checkpoints": [TINY_REGISTERED, *grid_registry(NEW_GRID)["checkpoints"]],
    "sweep_grid": {"recipe": {}, "points": [p[0] for p in NEW_GRID] + [NOT_TRAINED], "missing": [NOT_TRAINED]},
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


def silent_hub() -> str:
    """A loopback URL whose socket accepts connections (the kernel completes them) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    atexit.register(sock.close)
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


def wait_for_page(url: str, process: subprocess.Popen, log: Path, timeout_s: float = STARTUP_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    _stop(process)
    raise RuntimeError(
        f"the app did not start on {url} within {timeout_s} s; its log ends with:\n{log.read_text()[-3000:]}"
    )


@functools.cache
def _start_server() -> SimpleNamespace:
    """One server per test session (the browser test uses it too); stopped at exit."""
    if os.environ.get("APP_URL"):
        return SimpleNamespace(url=os.environ["APP_URL"], process=None, log=None)
    work = Path(tempfile.mkdtemp(prefix="app-test-"))
    registry = copy.deepcopy(REGISTRY)
    baseline = next(e for e in registry["checkpoints"] if e["name"] == "baseline/text-cot")
    baseline["path"] = str(work / "text-cot")
    save_pretrained(build_preset("tiny", seed=3), baseline["path"])
    (work / "registry.json").write_text(json.dumps(registry))
    port = _free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="1", HF_ENDPOINT=silent_hub())
    env.pop("HF_HUB_OFFLINE", None)
    log = work / "server.log"
    process = subprocess.Popen(server_command(port, work), cwd=ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                               env=env)  # fmt: skip
    atexit.register(_stop, process)
    url = f"http://127.0.0.1:{port}/"
    wait_for_page(url, process, log)
    return SimpleNamespace(url=url, process=process, log=log)


def _stop(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def app_server():
    server = _start_server()
    yield server.url
    _stop(server.process)


@pytest.fixture(scope="session")
def server_log(app_server) -> Path:
    log = _start_server().log
    if log is None:
        pytest.skip("APP_URL: the server's log is not ours to read")
    return log


@pytest.fixture(scope="module")
def client(app_server):
    return Client(app_server, verbose=False)


def rest_call(url: str, endpoint: str, body: str) -> tuple[str, dict]:
    """The documented REST API (`curl -X POST …/gradio_api/call/<endpoint>`): (event, data) of the result, or
    ("refused", the validator's messages by parameter) when the POST is answered 422."""
    request = urllib.request.Request(
        f"{url}gradio_api/call/{endpoint}", data=body.encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            event_id = json.loads(response.read())["event_id"]
    except urllib.error.HTTPError as err:
        if err.code != 422:
            raise
        detail = json.loads(err.read())["detail"]
        return "refused", {d["parameter_name"]: d["message"] for d in detail if not d["is_valid"]}
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
    assert trace.correct is None  # an upload has no known answer; an example's is graded:
    graded = client.predict(example_id="maze-1", max_new_tokens=32, api_name="/reason")
    assert graded["correct"] is (graded["answer"] == "purple")


def test_bad_inputs_are_errors_and_the_server_keeps_serving(client, tmp_path):
    not_image = tmp_path / "notes.txt"
    not_image.write_text("not a picture")
    huge = tmp_path / "huge.png"
    Image.new("L", (5000, 5000)).save(huge)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("[]")
    (broken / "model.safetensors").write_bytes(b"")
    refused = ValidationError  # by the validator, before the queue
    cases = [
        (dict(question="What is this?"), refused, "image: no image: send image (a file) or example_id"),
        (dict(image=handle_file(str(not_image)), question="What is this?"), refused, "not an image file"),
        (dict(image=handle_file(str(huge)), question="What is this?"), refused, "5000×5000 pixels"),
        (dict(example_id="maze-1", question="x" * 5000), refused, "5000 characters; the limit is 1000"),
        (dict(image=handle_file(str(EXAMPLE)), question=" "), refused, "question: the question is empty"),
        (dict(example_id="maze-1", checkpoint="no-such-model"), refused, "unknown checkpoint 'no-such-model'"),
        (dict(example_id="maze-1", checkpoint="c" * 5000), refused, "the checkpoint name has 5000 characters"),
        (dict(example_id="maze-1", checkpoint=str(broken)), AppError, "config.json is damaged: expected a JSON"),
        (dict(example_id="maze-1", checkpoint="../x"), refused, "checkpoint folder ../x does not exist"),
        (dict(example_id="maze-1", checkpoint="~/x"), refused, "checkpoint folder ~/x does not exist"),
        (dict(example_id="nope"), refused, "unknown example 'nope'"),
        (dict(example_id="maze-1", seed=1.5), refused, "the seed must be a whole number"),
        (dict(example_id="maze-1", seed=""), refused, "seed: the seed is empty"),
        (dict(example_id="maze-1", seed=2**63), refused, "between 0 and 2**63 - 1"),
        (dict(example_id="maze-1", max_sketches=2.5), refused, "max_sketches must be a whole number from 0 to 64"),
        (dict(example_id="maze-1", temperature=1e9), refused, "temperature must be from 0 to 2"),
    ]
    for kwargs, error, message in cases:
        kwargs.setdefault("max_new_tokens", 16)
        with pytest.raises(error, match=re.escape(message)) as caught:
            client.predict(**kwargs, api_name="/reason")
        shown = str(caught.value).replace(str(kwargs.get("checkpoint", "")), "")  # what the user typed may appear
        assert str(ROOT.parent) not in shown and str(Path.home()) + "/" not in shown, shown  # server paths may not
        assert "--image" not in shown, "the API's words, not the CLI's"
    with pytest.raises(refused, match=re.escape("max_new_tokens must be a whole number from 1 to 1024, got 20.5")):
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
        "refused",
        {"question": "the question is not valid UTF-8 text (character 7 cannot be encoded)"},
    )
    latents = [[0.5] * 64 for _ in range(4)]  # tiny: K = 4, D = 64
    for token in ("NaN", "Infinity", "1e999"):
        body = json.dumps({"data": [latents, 3, ""]}).replace("0.5", token, 1)
        event, data = rest_call(app_server, "neighbours", body)
        assert event == "error" and data["error"] == "latents must be finite numbers; 1 of 256 are NaN or infinite"
    event, data = rest_call(app_server, "switching_stats", '{"data":["","fo\\ud800ld","","family","auto"]}')
    assert event == "error" and data["error"] == (
        "the families filter 'fo\\ud800ld' is not valid UTF-8 text (character 3 cannot be encoded)"
    )
    # a seed past 2**53 sent as an exact JSON integer arrives whole; sent as a float it may not have, so it is refused
    body = '{"data":[null,null,"","auto",9007199254740993,0,4,0,8,"maze-1","",false,true]}'
    event, data = rest_call(app_server, "reason", body)
    assert event == "complete" and data[0]["seed"] == 9007199254740993
    event, data = rest_call(app_server, "reason", body.replace("9007199254740993", "9007199254740994.0"))
    assert event == "refused" and "seeds above 2**53 lose digits as JSON floats" in data["seed"]


def test_a_hub_that_cannot_be_reached_does_not_stall_the_queue(app_server):
    """Two requests naming a hub id (the server's hub hangs) and a good one, sent together: the bad ones are refused
    within seconds, before the queue, and the good one takes as long as it takes alone."""
    good = dict(example_id="fold-1", seed=3, max_new_tokens=24, api_name="/reason")
    start = time.perf_counter()
    Client(app_server, verbose=False).predict(**good)
    alone = time.perf_counter() - start
    results = {}

    def ask(name: str, **kwargs) -> None:
        client = Client(app_server, verbose=False)
        begin = time.perf_counter()
        try:
            client.predict(**kwargs)
            results[name] = ("answered", time.perf_counter() - begin)
        except Exception as err:  # collected and checked below
            results[name] = (err, time.perf_counter() - begin)

    bad = dict(example_id="fold-1", checkpoint="nobody/no-such-model", api_name="/reason")
    threads = [threading.Thread(target=ask, args=(f"bad{i}",), kwargs=bad) for i in range(2)]
    threads.append(threading.Thread(target=ask, args=("good",), kwargs=good))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results["good"][0] == "answered" and results["good"][1] < alone + 5, (alone, results)
    for name in ("bad0", "bad1"):
        err, took = results[name]
        assert isinstance(err, ValidationError) and "the Hugging Face hub did not answer within 1.5 s" in str(err), err
        assert took < 3.5, f"{name} took {took:.1f} s to be refused"  # the lookup gives up after 1.5 s


def test_user_errors_are_one_log_line_each(client, server_log):
    before = server_log.read_text()
    for kwargs in (dict(question="x"), dict(example_id="maze-1", seed=""), dict(example_id="nope")):
        with pytest.raises(ValidationError):
            client.predict(**kwargs, api_name="/reason")
    with pytest.raises(AppError):
        client.predict(by="colour", api_name="/switching_stats")
    time.sleep(0.5)
    added = server_log.read_text()[len(before) :]
    assert added.count("refused ") == 4 and "Traceback" not in added, added
    assert len([line for line in added.splitlines() if line.strip()]) <= 6, added


def test_compare_through_the_client(client):
    out = client.predict(example_id="maze-1", max_new_tokens=48, max_sketches=1, seed=2, api_name="/compare")
    assert list(out["modes"]) == mode_names(compare=True) and out["skipped"] == {}
    for mode, summary in out["modes"].items():
        trace = Trace.from_dict(out["traces"][mode])
        assert summary["answer"] == trace.answer and summary["num_sketches"] == trace.num_sketches
        assert isinstance(summary["correct"], bool) and summary["total_s"] > 0
    assert out["modes"]["text-only"]["num_sketches"] == 0
    words = out["baselines"]["text-cot"]  # the registered text-only-CoT model on the same puzzle and seed
    trace = Trace.from_dict(out["traces"]["text-cot"])
    assert words["checkpoint"] == "baseline/text-cot" and words["answer"] == trace.answer and words["skipped"] == ""
    assert (
        words["num_positions"] == trace.num_positions > 0 and words["num_sketches"] == 0 and trace.mode == "text-only"
    )
    assert words["num_positions"] == 448, "the text-only-CoT model gets 448 new positions, not the 48 asked"
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
    assert {row["mode"] for row in stats["summary"]} == {"auto"}  # the default mode filter
    examples = client.predict(api_name="/examples")
    assert {e["id"] for e in examples} >= {"maze-1", "sink-1"}
    checkpoints = client.predict(api_name="/checkpoints")  # HTTP 403 when records carried a "path" key
    assert checkpoints["default"] == "tiny" and checkpoints["registered"][0]["name"] == "tiny-registered"
    assert checkpoints["registered"][0]["checkpoint"] == "tiny"


def test_paraphrased_examples_and_the_words_a_checkpoint_never_saw(client, tmp_path):
    """Each example in a paraphrase too (the 16×16 families included); /reason's unseen_words names the question's
    words the checkpoint's training vocabulary lacks, and is null for a checkpoint without one."""
    examples = {e["id"]: e for e in client.predict(api_name="/examples")}
    assert {"connect16-1", "maze16-1", "maze-1-paraphrased", "maze16-2-paraphrased"} <= set(examples)
    reworded = examples["maze-1-paraphrased"]
    assert reworded["wording"] == "held-out-synonym" and reworded["puzzle"] == "maze-1"
    assert reworded["question"] != examples["maze-1"]["question"] and examples["maze-1"]["wording"] == "template"
    trace = client.predict(example_id="maze-1-paraphrased", max_new_tokens=8, api_name="/reason")
    assert trace["question"] == reworded["question"] and isinstance(trace["correct"], bool)
    assert trace["unseen_words"] is None, "the tiny preset has no training vocabulary: not checked"
    folder = save_pretrained(build_preset("tiny", seed=4), tmp_path / "knows")
    save_vocabulary(["can", "the", "green", "reach", "red", "at"], str(folder))
    question = "Can the green box arrive at red?"
    trace = client.predict(example_id="maze-1", question=question, checkpoint=str(folder), max_new_tokens=4,
                           api_name="/reason")  # fmt: skip
    assert trace["unseen_words"] == ["box", "arrive"] and Trace.from_dict(trace).unseen_words == ["box", "arrive"]


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


def test_what_is_not_a_filter_or_a_mode_is_named_through_the_client(client, app_server, server_log):
    before = server_log.read_text()
    text = 'must be text (comma-separated names, "" for all), got '
    for kwargs, message in [(dict(mode=123), f"mode {text}123"), (dict(family=["a"]), f"family {text}['a']")]:
        with pytest.raises(AppError, match=re.escape(message)):
            client.predict(**kwargs, api_name="/switching_stats")
    unknown = "mode: unknown mode 'bogus'; valid modes: auto, text-only"
    with pytest.raises(ValidationError, match=re.escape(unknown)):  # Gradio's own check answered a bare 400
        client.predict(example_id="maze-1", mode="bogus", api_name="/reason")
    with pytest.raises(ValidationError, match=re.escape("modes: cannot compare mode(s) 'bogus'")):
        client.predict(example_id="maze-1", modes=["bogus"], api_name="/compare")
    body = '{"data":[null,null,"","bogus","0",0,4,0,8,"maze-1","",false,true]}'
    event, data = rest_call(app_server, "reason", body)
    assert event == "refused" and data["mode"].startswith("unknown mode 'bogus'")
    time.sleep(0.5)
    added = server_log.read_text()[len(before) :]
    assert added.count("refused ") == 5 and "Traceback" not in added, added


def test_no_user_error_wrote_a_traceback(server_log):
    """Last: everything this module (and the browser test, when run together) sent, bad input included."""
    assert "Traceback" not in server_log.read_text()
