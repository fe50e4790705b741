"""The model worker: a second process that answers the app's first requests while the app's own process imports
gradio and serves the page. `python -m app` starts it first thing (app/worker_client.py, before gradio is imported),
with one end of a socket pair as its only link:

    python -m app.worker FD        # FD: its end of the socket pair; the app sends the ServiceConfig's fields first

Why a process: gradio's import (4-5 s) and the model stack's (torch, transformers, the model: 4-6 s) are both Python
bytecode, which one process runs one thread at a time (the GIL), so in one process the stack was imported only after
the page was up, and the first answer waited for both. Here the stack is imported and the default checkpoint loaded
on another core, meanwhile.

It answers with the same code as the app (app/service.py, app/reasoning.py: the same checks, the same Trace, switch
events appended to the same event store under the run id and rollout number the app gives), one thread per request,
on `--threads` torch threads, without a gallery or map (ServiceConfig.galleries = False). Messages, pickled over the
socket pair (multiprocessing.connection framing), from the app:

    ("answer", job, Request, run_id, rollout)       # → (job, "started", about), (job, "event", TraceEvent, picture)…,
                                                     #   (job, "end", log_error); or (job, "refused", message, is
                                                     #   checkpoint error) / (job, "fault", message)
    ("problems", job, Request)                       # → (job, "problems", {field: message})

and, unprompted, ("ready", about the default checkpoint) once it is loaded, or ("failed", why) before it exits.
`picture` is a sketch's decoded picture, for requests from the page (None otherwise). It ends as soon as the app
closes its end, or dies, whatever it is doing (a reader thread sees the end of the stream and calls os._exit), and
ignores Ctrl-C, which the terminal sends to the whole process group: the app ends it.
"""

import logging
import os
import signal
import sys
import threading
import traceback
from multiprocessing.connection import Connection

from app import stack
from app.service import Service, ServiceConfig

reasoning = stack.later("app.reasoning")
checkpoint = stack.later("model.core.checkpoint")
inputs = stack.later("model.generation.inputs")
log = logging.getLogger("app.worker")


class Link:
    """The worker's end of the socket pair: sends from any thread, one message at a time."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self._lock = threading.Lock()

    def send(self, *message) -> None:
        with self._lock:
            self.connection.send(message)


def about(loaded) -> dict:
    """What the page shows of a loaded checkpoint (app/worker_client.py WorkerCheckpoint's fields)."""
    return {"name": loaded.name, "notes": dict(loaded.notes), "description": loaded.describe()}


def is_user_error(err: Exception) -> bool:
    return isinstance(err, (inputs.InputError, checkpoint.CheckpointError))


def answer(service: Service, link: Link, job_id: int, request, run_id: str, rollout: int) -> None:
    """One request, from its checks to its finished trace, sent as it streams."""
    try:
        service.wait_default()
        job = reasoning.prepare(service, request, run_id)
        job.rollout = rollout  # the app's numbering: its event log never merges two answers
        link.send(job_id, "started", about(job.loaded), job.settings, job.unseen_words, job.diffusion_steps)
        for event in reasoning.run(job):
            picture = None
            if event.kind == "sketch_done" and request.via == "page":  # the page shows it; the API has no use for it
                picture = job.picture(event.sketch)
            link.send(job_id, "event", event, picture)
        link.send(job_id, "end", job.log_error)
        log.info("answered %s rollout %d in %.2f s", run_id, rollout, job.trace.timings.get("total_s", 0.0))
    except Exception as err:  # sent back: a user's error in one line, a fault with its traceback in this log
        if is_user_error(err):
            link.send(job_id, "refused", str(err), isinstance(err, checkpoint.CheckpointError))
        else:
            log.exception("answering failed")
            link.send(job_id, "fault", f"{type(err).__name__}: {err}")


def problems(service: Service, link: Link, job_id: int, request) -> None:
    """The request's problems by field, as the app's validators give them ({} when it can run)."""
    try:
        found = {name: str(err) for name, err in reasoning.request_problems(service, request).items()}
    except Exception as err:  # a fault: no verdict, the answer's own checks follow
        log.exception("checking a request failed")
        link.send(job_id, "fault", f"{type(err).__name__}: {err}")
        return
    link.send(job_id, "problems", found)


def listen(service: Service, link: Link) -> None:
    """The reader thread: each request in a thread of its own; the end of the stream (the app closed its end, or
    died) ends the process at once."""
    handlers = {"answer": answer, "problems": problems}
    while True:
        try:
            kind, *message = link.connection.recv()
        except (EOFError, OSError):
            os._exit(0)
        threading.Thread(target=handlers[kind], args=(service, link, *message), daemon=True).start()


def load(service: Service, link: Link) -> None:
    """Import the stack and load the default checkpoint; say so, or say why not and end."""
    try:
        loaded = service.wait_default()
    except Exception as err:  # the app loads it too, and ends with its message (exit status 2)
        message = str(err) if is_user_error(err) else "".join(traceback.format_exception_only(err)).strip()
        link.send("failed", message)
        os._exit(2)
    loaded.status = "gallery: built once the app has loaded the checkpoint itself"  # the page shows it meanwhile
    link.send("ready", about(loaded))
    log.info("checkpoint %s loaded; answering", loaded.name)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the app ends this one
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [model worker] %(name)s %(message)s")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    link = Link(Connection(int(argv[0])))
    try:
        fields = link.connection.recv()
    except (EOFError, OSError):
        return 0
    service = Service(ServiceConfig(**fields, galleries=False))
    threading.Thread(target=listen, args=(service, link), name="requests", daemon=True).start()
    service.start()
    load(service, link)
    threading.Event().wait()  # answers run in their threads until the app closes the link (listen ends us)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
