"""Who answers a request: the model worker (app/worker.py) while this process is still importing the model stack
and loading its default checkpoint, then this process (app/reasoning.py). The Reason tab and /reason go through here;
Compare and everything else wait for this process's model, as before.

    problems(service, request)                 # {field: message}, for the validators: this process's checks once its
                                               #   stack is in, else the worker's once it is ready (for any
                                               #   checkpoint: a name is resolved, not loaded), else {}
    job = prepare(service, request, run_id)    # a reasoning.Job, or a worker_client.WorkerJob: the first problem
    for event in run(job): ...                 #   raised; then the TraceEvents; job.trace, job.log_error,
    job.picture(sketch), job.diffusion_steps   #   job.unseen_words and these read the same either way

Only requests for the default checkpoint go to the worker (the only one it loads). The rollout number comes from
this process's counter either way, so the event store never merges two answers. A worker that ends before it
starts an answer leaves that answer to this process (which waits for its own model); one that ends midway fails the
answer with a one-line message, and the next one is answered here.
"""

import logging

import gradio as gr

from app import stack
from app.request import Request
from app.service import Service
from app.worker_client import ModelWorker, WorkerGone, WorkerJob

reasoning = stack.later("app.reasoning")
log = logging.getLogger("app")


def by_worker(service: Service, request: Request) -> ModelWorker | None:
    """The worker, when it is the one to answer `request` now; None when this process is."""
    worker = service.worker
    if worker is None or not worker.usable or not service.loading or not service.is_default(request.checkpoint):
        return None
    return worker


def problems(service: Service, request: Request) -> dict[str, str]:
    """The request's problems by Request field ({} when it can run, or when nobody can check it yet: the answer's
    own checks follow). A validator must not hold the POST while a model loads."""
    if service.stack_ready:
        return {name: str(err) for name, err in reasoning.request_problems(service, request).items()}
    worker = service.worker  # it checks a request for any checkpoint (names are resolved, not loaded)
    return worker.problems(request) if worker is not None else {}


def prepare(service: Service, request: Request, run_id: str):
    """The checked request as a job that is ready to run, answered by the worker or by this process."""
    worker = by_worker(service, request)
    if worker is not None:
        example = service.examples.get(request.example_id) if request.example_id else None
        try:
            return worker.prepare(request, run_id, next(service.rollouts), example)
        except WorkerGone:  # it ended (said in the log when it did) or retired: this process answers
            pass
    return reasoning.prepare(service, request, run_id)


def run(job):
    """The answer's TraceEvents; once finished the trace is on the job, graded and logged."""
    if not isinstance(job, WorkerJob):
        yield from reasoning.run(job)
        return
    try:
        yield from job.run()
    except WorkerGone as err:
        log.warning("%s while answering", err)
        message = f"{err} while answering; please ask again (the app answers in its own process now)"
        raise gr.Error(message, title="Model worker", print_exception=False) from None
