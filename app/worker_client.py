"""The app's side of the model worker (app/worker.py): start it before gradio is imported, send it requests, read
its answers back as they stream. Light on purpose (the standard library only): `python -m app` imports this and
starts the worker before anything else.

    worker = ModelWorker.start(config_fields)      # python -m app.worker, linked by a socket pair; None if it can't
    worker.ready                                   # its default checkpoint is loaded (worker.checkpoint says which)
    worker.wait_ready(timeout=60)                  # until it is, or cannot be
    job = worker.prepare(request, run_id, rollout) # WorkerJob once it started answering; WorkerRefused (a user's
    for event in job.run(): ...                    #   error, in one line), or WorkerGone: answer in this process
    worker.problems(request)                       # {field: message}, as the validators give them ({}: can't say)
    worker.retire()                                # the app's own model is loaded: it ends after the answers in flight
    worker.close()                                 # it ends now (also when this process ends, however it ends)

A reader thread takes every message off the link and hands it to the job it is about (a queue per job). The worker
ends when its end of the link closes: when `close` or `retire` closes it here, or when this process ends, a kill -9
included (the kernel closes the socket). When the worker ends first, every job waiting on it gets `WorkerGone`:
before it started answering the app answers in this process instead (app/answers.py); midway, the answer fails with a
one-line message.
"""

import dataclasses
import itertools
import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from model.core.paths import ROOT

PROBLEMS_WAIT_S = 5.0  # a validator waits this long for the worker's verdict, then leaves the checks to the answer
log = logging.getLogger("app")


class WorkerRefused(ValueError):
    """A user's error found by the worker (an InputError or a CheckpointError there), with its message."""

    def __init__(self, message: str, checkpoint: bool = False):
        super().__init__(message)
        self.checkpoint = checkpoint  # a CheckpointError: the page titles it so


class WorkerGone(RuntimeError):
    """The worker ended (or never could answer)."""


@dataclass
class WorkerCheckpoint:
    """A checkpoint the worker loaded, as the page shows it during an answer: a `Loaded` (app/models.py) without the
    model, gallery or map, which this process builds once it has loaded the checkpoint itself."""

    name: str
    notes: dict[str, str]
    description: str
    ready: threading.Event = field(default_factory=threading.Event)  # never set: the worker builds no gallery
    gallery = None
    projection = None
    points = None

    def describe(self) -> str:
        return self.description


@dataclass
class WorkerJob:
    """One answer the worker is giving: what the Reason tab and /reason read of a reasoning.Job."""

    loaded: WorkerCheckpoint
    example: object  # app.example_puzzles.Example or None
    settings: object  # model.generation.settings.GenerationSettings, as the worker checked it
    unseen_words: list[str] | None
    diffusion_steps: int  # T of its sketches: the request's, else the checkpoint's
    messages: queue.Queue
    trace: object = None  # the finished Trace (model/generation/trace.py), graded
    log_error: str = ""
    pictures: dict = field(default_factory=dict)  # sketch index → its decoded picture (None without a decoder)
    finish: Callable[[], None] = lambda: None  # called once the answer has ended, however it ended

    def picture(self, sketch):
        return self.pictures.get(sketch.index)

    def run(self):
        """The answer's TraceEvents as the worker streams them; WorkerGone when it ends midway."""
        try:
            while True:
                kind, *message = self.messages.get()
                if kind == "end":
                    self.log_error = message[0]
                    return
                if kind != "event":
                    raise _failure(kind, message)
                event, picture = message
                if event.kind == "sketch_done":
                    self.pictures[event.sketch.index] = picture
                if event.kind == "finished":
                    self.trace = event.trace
                yield event
        finally:
            self.finish()


def plain(request):
    """The request with gradio's str subclasses as plain str (an uploaded file's path is a gradio NamedString):
    unpickling one would import gradio in the worker, in a thread of its own while its model stack imports."""
    values = {}
    for name, value in vars(request).items():
        if isinstance(value, list | tuple):
            value = [str(v) if isinstance(v, str) else v for v in value]
        values[name] = str(value) if isinstance(value, str) else value
    return dataclasses.replace(request, **values)


def _failure(kind: str, message: list) -> Exception:
    if kind == "refused":
        return WorkerRefused(*message)
    if kind == "fault":
        return RuntimeError(f"the model worker failed: {message[0]}")
    return WorkerGone(message[0] if message else "the model worker ended")


class ModelWorker:
    def __init__(self, process: subprocess.Popen, link: socket.socket):
        self.process = process
        self.link = link  # shut down to end the worker: that also wakes the reader thread
        self.connection = Connection(os.dup(link.fileno()))  # pickled messages, framed
        self.checkpoint: WorkerCheckpoint | None = None  # the default checkpoint, once loaded
        self.failure = ""  # why it cannot answer, once it cannot
        self.retired = False
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._jobs: dict[int, queue.Queue] = {}
        self._numbers = itertools.count()
        self._send_lock = threading.Lock()
        threading.Thread(target=self._read, name="model worker link", daemon=True).start()

    @classmethod
    def start(cls, config_fields: dict) -> "ModelWorker | None":
        """Start `python -m app.worker` on the app's settings (ServiceConfig's fields); None when it cannot start."""
        ours, theirs = socket.socketpair()
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        try:
            process = subprocess.Popen([sys.executable, "-m", "app.worker", str(theirs.fileno())],
                                       pass_fds=[theirs.fileno()], env=dict(os.environ, PYTHONPATH=path))  # fmt: skip
        except OSError as err:
            log.warning("the model worker could not start (%s); answering in this process only", err)
            ours.close()
            return None
        finally:
            theirs.close()
        worker = cls(process, ours)
        worker._send(config_fields)
        return worker

    # ---- state ----------------------------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """Its default checkpoint is loaded and it still answers."""
        return self._ready.is_set() and self.usable

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until its default checkpoint is loaded (True), it cannot answer, or `timeout` passes (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.usable and not self._ready.wait(0.1):
            if deadline is not None and time.monotonic() > deadline:
                break
        return self.ready

    @property
    def usable(self) -> bool:
        """It may still answer (loading, or loaded): not failed, gone or retired."""
        return not (self.failure or self.retired)

    # ---- requests -------------------------------------------------------------------------------------------------
    def prepare(self, request, run_id: str, rollout: int, example=None) -> WorkerJob:
        """Send one request; returns once the worker has checked it and starts answering (it waits for its model
        first). WorkerRefused for a user's error, WorkerGone when the worker ended before it started."""
        number, messages = self._open()
        try:
            self._send(("answer", number, plain(request), run_id, rollout))
            kind, *message = messages.get()
        except WorkerGone:
            self._done(number)
            raise
        if kind != "started":
            self._done(number)
            raise _failure(kind, message)
        about, settings, unseen_words, diffusion_steps = message
        return WorkerJob(WorkerCheckpoint(**about), example, settings, unseen_words, diffusion_steps, messages,
                         finish=lambda: self._done(number))  # fmt: skip

    def problems(self, request) -> dict[str, str]:
        """The request's problems by field ({} when it has none, or when the worker cannot say in PROBLEMS_WAIT_S)."""
        if not self.ready:
            return {}
        number, messages = self._open()
        try:
            self._send(("problems", number, plain(request)))
            kind, *message = messages.get(timeout=PROBLEMS_WAIT_S)
        except (queue.Empty, WorkerGone):
            return {}
        finally:
            self._done(number)
        return message[0] if kind == "problems" else {}

    # ---- the end --------------------------------------------------------------------------------------------------
    def retire(self) -> None:
        """No new requests; it ends once the answers in flight are done."""
        with self._lock:
            self.retired = True
            idle = not self._jobs
        if idle:
            self.close()

    def close(self) -> None:
        """End it now (its answers in flight fail with WorkerGone)."""
        with self._lock:
            self.retired = True
        try:
            self.link.shutdown(socket.SHUT_RDWR)  # the worker reads the end of the stream and exits
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    # ---- plumbing -------------------------------------------------------------------------------------------------
    def _open(self) -> tuple[int, queue.Queue]:
        with self._lock:
            if not self.usable:
                raise WorkerGone(self.failure or "the model worker has retired")
            number, messages = next(self._numbers), queue.Queue()
            self._jobs[number] = messages
        return number, messages

    def _done(self, number: int) -> None:
        with self._lock:
            self._jobs.pop(number, None)
            idle = self.retired and not self._jobs
        if idle:
            self.close()

    def _send(self, message) -> None:
        try:
            with self._send_lock:
                self.connection.send(message)
        except (OSError, ValueError) as err:  # closed: the worker has ended
            raise WorkerGone(self.failure or f"the model worker ended ({err})") from None

    def _read(self) -> None:
        """Every message off the link to the job it is about, until the link ends."""
        while True:
            try:
                message = self.connection.recv()
            except (EOFError, OSError):
                break
            if message[0] == "ready":
                self.checkpoint = WorkerCheckpoint(**message[1])
                self._ready.set()
            elif message[0] == "failed":
                self.failure = f"the model worker could not load its checkpoint: {message[1]}"
            else:
                with self._lock:
                    messages = self._jobs.get(message[0])
                if messages is not None:
                    messages.put(message[1:])
        if not self.retired:
            try:
                status = self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                status = "none yet"
            self.failure = self.failure or f"the model worker ended (exit status {status})"
            log.warning("%s; answering in this process", self.failure)
        with self._lock:
            self.failure = self.failure or "the model worker has retired"
            waiting = list(self._jobs.values())
        for messages in waiting:
            messages.put(("gone", self.failure))
        self.connection.close()
        self.link.close()
