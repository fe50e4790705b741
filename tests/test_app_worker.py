"""The model worker (app/worker.py, its client app/worker_client.py, the routing in app/answers.py): it answers as
the app's own process does (the same Trace for the same seed, the same stream of steps, the same refusals, switch
events in the same store), a worker that ends before an answer leaves it to the app and one that ends midway fails
it in one line, and it never outlives the app: it ends once the app's own model is loaded, and with the app however
the app ends (Ctrl-C, SIGTERM, kill -9). The tests with a worker process are slow (each imports the model stack):
`python -m pytest -m slow tests/test_app_worker.py`."""

import os
import pickle
import queue
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import gradio as gr
import pytest
from gradio.utils import NamedString
from gradio_client import Client
from test_app_client import _free_port, _stop, wait_for_page

from app import answers, reason_tab, reasoning, render
from app.plumbing import is_user_error, user_error
from app.request import ApiInputs, Request
from app.service import Service, ServiceConfig
from app.worker_client import ModelWorker, WorkerCheckpoint, WorkerGone, WorkerJob, WorkerRefused, plain
from model.generation.events import read_events
from model.generation.trace import Trace, TraceEvent

ROOT = Path(__file__).resolve().parent.parent
READY_S = 240  # the worker imports the model stack on a busy 2-core machine
slow = pytest.mark.slow


def tiny_fields(work: Path) -> dict:
    """ServiceConfig's fields for the tiny preset, biased to sketch (as the live-server tests run it)."""
    return dict(checkpoint="tiny", cache_dir=str(work / "cache"), event_store=str(work / "events"), threads=1,
                registry=str(work / "registry.json"), gallery_per_family=1, debug_sketch_bias=4.0)  # fmt: skip


def comparable(trace) -> dict:
    """A Trace as a dict with its latents, without what wall time sets (timings, each sketch's seconds)."""
    out = trace.to_dict(include_latents=True)
    out.pop("timings")
    for segment in out["segments"]:
        segment.pop("seconds", None)
    return out


def wait_ready(worker: ModelWorker) -> None:
    deadline = time.monotonic() + READY_S
    while not worker.ready and worker.usable and time.monotonic() < deadline:
        time.sleep(0.1)
    assert worker.ready, worker.failure or f"the worker was not ready within {READY_S} s"


@pytest.fixture(scope="module")
def worker_and_fields(tmp_path_factory):
    fields = tiny_fields(tmp_path_factory.mktemp("worker"))
    worker = ModelWorker.start(fields)
    assert worker is not None
    wait_ready(worker)
    yield worker, fields
    worker.close()
    assert worker.process.returncode is not None


# ---- with a worker process ------------------------------------------------------------------------------------------
@slow
def test_a_worker_answers_as_this_process_does(worker_and_fields):
    worker, fields = worker_and_fields
    local = Service(ServiceConfig(**fields, galleries=False))
    for via in ("api", "page"):
        request = ApiInputs(example_id="maze-1", seed=7, max_new_tokens=48).request(local.examples)
        request.via = via
        remote = worker.prepare(request, f"run-worker-{via}", 5, local.examples["maze-1"])
        remote_events = list(answers.run(remote))
        job = reasoning.prepare(local, request, f"run-local-{via}")
        local_events = list(answers.run(job))
        assert remote.trace.num_sketches > 0, "the biased tiny model sketches"
        assert comparable(remote.trace) == comparable(job.trace)
        assert remote.trace.correct == job.trace.correct and remote.unseen_words == job.unseen_words
        assert [(e.kind, e.text) for e in remote_events] == [(e.kind, e.text) for e in local_events]
        assert remote.diffusion_steps == job.diffusion_steps and remote.settings == job.settings
        assert remote.loaded.name == job.loaded.name and remote.loaded.notes == job.loaded.notes
    events = read_events(fields["event_store"])
    logged = events[events["run_id"] == "run-worker-api"]
    assert set(logged["rollout"]) == {5} and (logged["event"] == "START").sum() == remote.trace.num_sketches


def _page_answer(service: Service) -> list[dict]:
    form = Request.from_page(checkpoint="tiny", example_id="maze-1", question=service.examples["maze-1"].question,
                             max_sketches=2, max_new_tokens=48, seed="11")  # fmt: skip
    return list(reason_tab.reason(service, form, None))


@slow
def test_the_reason_tab_streams_the_worker_s_answer_as_its_own(worker_and_fields):
    """The page's handler with the worker answering (this process has not loaded its model: no gallery yet) and
    with this process answering: the same steps, answer line and trace; what needs the gallery waits for it."""
    worker, fields = worker_and_fields
    remote = _page_answer(Service(ServiceConfig(**fields), worker))
    local = _page_answer(Service(ServiceConfig(**fields, galleries=False)))
    assert "[model worker]" not in str(remote)  # (nothing of the link shows)
    merged = [{k: v for u in updates for k, v in u.items()} for updates in (remote, local)]
    traces = [Trace.from_dict(m["trace"]) for m in merged]
    assert traces[0].num_sketches == 2 and comparable(traces[0]) == comparable(traces[1])

    def without_times(html: str) -> str:
        return re.sub(r"\d+\.\d+ (m?s\b|ms/)", "…", html)

    for key in ("reasoning", "answer", "note", "unseen_words", "banner"):
        assert without_times(str(merged[0][key])) == without_times(str(merged[1][key])), key
    assert merged[0]["checkpoint_info"] == "`tiny` · " + merged[0]["checkpoint_info"].split("` · ", 1)[1]
    sketching = [u for u in remote if "reasoning" in u and render.SKETCHING in u["reasoning"]]
    assert sketching, "each sketch streams as an open step while it is drawn"
    assert reason_tab.NO_GALLERY_YET in merged[0]["neighbours"] and merged[0]["map"] is None
    assert [s["label"] for s in merged[0]["session"]["sketches"]] == ["answer 1 · sketch 1", "answer 1 · sketch 2"]


@slow
def test_a_worker_refuses_as_this_process_does(worker_and_fields):
    worker, fields = worker_and_fields
    local = Service(ServiceConfig(**fields, galleries=False))
    bad = [Request(example_id="no-such-puzzle", via="api"), Request(example_id="maze-1", checkpoint="no-such-model"),
           Request(example_id="maze-1", temperature=5, seed="x", via="api")]  # fmt: skip
    for request in bad:
        expected = {name: str(err) for name, err in reasoning.request_problems(local, request).items()}
        assert expected and worker.problems(request) == expected
        with pytest.raises(WorkerRefused) as refused:
            worker.prepare(request, "run-refused", 0)
        assert str(refused.value) == next(iter(expected.values()))
        assert refused.value.checkpoint == ("checkpoint" in expected)
        assert is_user_error(refused.value) and user_error(refused.value).message == str(refused.value)


@slow
def test_a_worker_that_ends_before_an_answer_leaves_it_to_this_process(tmp_path):
    fields = tiny_fields(tmp_path)
    worker = ModelWorker.start(fields)
    worker.process.kill()  # while it imports the model stack
    service = Service(ServiceConfig(**fields), worker)
    try:
        request = ApiInputs(example_id="maze-1", max_new_tokens=16).request(service.examples)
        job = answers.prepare(service, request, "run")
        assert isinstance(job, reasoning.Job) and not worker.usable
        assert list(answers.run(job))[-1].kind == "finished" and job.trace.num_positions > 0
    finally:
        worker.close()
        service.wait_default().wait_ready(300)  # its gallery thread done before the interpreter exits


# ---- without one: the routing and the messages ----------------------------------------------------------------------
class FakeWorker:
    usable = True


def test_the_worker_answers_for_the_default_checkpoint_while_it_loads_here(tmp_path):
    service = Service(ServiceConfig(checkpoint="tiny", registry=str(tmp_path / "none.json")), FakeWorker())
    for name in ("", " ", "tiny"):
        assert answers.by_worker(service, Request(checkpoint=name)) is service.worker
    assert answers.by_worker(service, Request(checkpoint="demo-random")) is None  # only its own checkpoint
    service.worker.usable = False
    assert answers.by_worker(service, Request()) is None
    demo = Service(ServiceConfig(registry=str(tmp_path / "none.json")), FakeWorker())
    assert all(demo.is_default(name) for name in ("", "demo", demo.default_name, demo.config.checkpoint))
    assert not demo.is_default("sweep/k32-l1") and not demo.is_default("tiny")


def test_a_worker_that_ends_midway_fails_the_answer_in_one_line():
    messages = queue.Queue()
    ended = []
    job = WorkerJob(
        WorkerCheckpoint("tiny", {}, "`tiny`"), None, None, None, 50, messages, finish=lambda: ended.append(1)
    )
    messages.put(("event", TraceEvent(row=0, kind="text", text="THOUGHT"), None))
    messages.put(("gone", "the model worker ended (exit status -9)"))
    stream = answers.run(job)
    assert next(stream).text == "THOUGHT"
    with pytest.raises(gr.Error) as failed:
        next(stream)
    assert failed.value.message.startswith("the model worker ended (exit status -9) while answering; please ask again")
    assert ended == [1], "the job's queue is let go"
    messages = queue.Queue()
    messages.put(("refused", "the question is empty", False))
    job = WorkerJob(WorkerCheckpoint("tiny", {}, ""), None, None, None, 50, messages)
    with pytest.raises(WorkerRefused, match="the question is empty"):
        list(job.run())
    with pytest.raises(WorkerGone):
        list(WorkerJob(WorkerCheckpoint("t", {}, ""), None, None, None, 50, _queue_of(("gone",))).run())


def test_a_request_reaches_the_worker_without_gradio_s_types():
    """An uploaded file's path arrives as gradio's NamedString: unpickled in the worker it would import gradio."""
    request = Request.from_page(files=[NamedString("/tmp/upload.png")], question=NamedString("Which?"), seed="0")
    assert b"gradio" in pickle.dumps(request)
    sent = plain(request)
    assert b"gradio" not in pickle.dumps(sent) and sent == request and type(sent.files[0]) is str


def _queue_of(*messages) -> queue.Queue:
    out = queue.Queue()
    for message in messages:
        out.put(message)
    return out


# ---- the whole app --------------------------------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; its parent has not read its status yet


def _start_app(work: Path, port: int) -> tuple[subprocess.Popen, Path, int]:
    """`python -m app --checkpoint tiny` in a session of its own (a Ctrl-C reaches only it); its worker's pid."""
    command = [sys.executable, "-m", "app", "--checkpoint", "tiny", "--host", "127.0.0.1", "--port", str(port),
               "--cache-dir", str(work / "cache"), "--event-store", str(work / "events"), "--gallery-per-family", "1",
               "--debug-sketch-bias", "4"]  # fmt: skip
    log = work / "server.log"
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    process = subprocess.Popen(command, cwd=ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env,
                               start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not (workers := _children(process.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(workers) == 1, f"the app started {len(workers)} worker process(es)"
    return process, log, workers[0]


def _ended(pid: int, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _alive(pid)


@slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "kill -9"])
def test_the_worker_ends_with_the_app(tmp_path, how):
    port = _free_port()
    process, log, worker = _start_app(tmp_path, port)
    try:
        wait_for_page(f"http://127.0.0.1:{port}/", process, log)
        assert _alive(worker), "the worker is still answering for the app (its model is not loaded yet)"
        sending = {"ctrl-c": (os.killpg, signal.SIGINT), "sigterm": (os.kill, signal.SIGTERM),
                   "kill -9": (os.kill, signal.SIGKILL)}  # fmt: skip
        send, number = sending[how]
        send(process.pid, number)  # Ctrl-C: the terminal signals the whole process group
        process.wait(timeout=60)
        assert _ended(worker), f"the worker outlived the app ({how}); the app's log:\n{log.read_text()[-2000:]}"
    finally:
        _stop(process)
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)
    assert "Traceback" not in log.read_text() or how == "ctrl-c"


@slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_the_first_answer_by_the_worker_is_the_app_s_own(tmp_path):
    """Asked as soon as the page answers, the worker answers; once the app has loaded its own model the worker ends
    and the app answers the same question with the same seed the same way."""
    port = _free_port()
    process, log, worker = _start_app(tmp_path, port)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_page(url, process, log)
        client = Client(url, verbose=False)
        first = client.predict(example_id="maze-1", seed=3, include_latents=True, api_name="/reason")
        assert "[model worker] app.worker answered" in log.read_text(), "answered by the worker"
        deadline = time.monotonic() + 240
        while "loaded; serving" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _ended(worker), "the worker ends once the app's own model is loaded"
        assert process.poll() is None
        second = client.predict(example_id="maze-1", seed=3, include_latents=True, api_name="/reason")
        assert log.read_text().count("app.worker answered") == 1, "the second answer is the app's own"
    finally:
        _stop(process)
    for trace in (first, second):
        trace.pop("timings")
        for segment in trace["segments"]:
            segment.pop("seconds", None)
    assert first == second and first["num_sketches"] > 0
    events = read_events(tmp_path / "events")
    assert sorted(events[events["event"] == "ANSWER"]["rollout"]) == [0, 1], "two answers, numbered by the app"
