"""Small helpers shared by the tabs and the API: binding handlers to the service, named outputs, one settings object
per request, validators, user errors, run ids.

Handlers are plain functions `handler(service, inputs…, request=None)` so that tests call them directly. A page
handler returns (or yields) a dict of *named* updates, `{"answer": "…", "trace": {...}}`; names it leaves out are not
updated. `wire` binds the handler and turns those names into the components Gradio expects (Gradio accepts
`{component: update}` dicts), so neither the handler nor its tests depend on the order of the outputs.

Gradio reads a handler's signature and type hints to find `gr.Request` parameters and API types, and
`inspect.isgeneratorfunction` to decide whether it streams; `functools.partial` hides all three, so `bind` builds a
real function (a generator function for generators) with the bound arguments removed from its signature.

A request's settings travel as one object (app/request.py: `Request` for the page, `ApiInputs` for the API), while
Gradio passes one value per input component: `gather` gives a handler `fn(form, …)` the signature Gradio reads, one
parameter per setting, and gathers the values back into the object before calling it.

User errors (InputError, CheckpointError) are checked twice over, with one wording: a `validator` runs the checks
before the answer queue (Gradio shows each message on its input and leaves the outputs as they were; gradio_client
raises ValidationError), and what only shows once the model runs is raised as `gr.Error` by the API
(`api_errors`) and shown as a warning by the page, which then updates nothing (`page_problem`). Each refusal is one
log line; tracebacks are for faults.
"""

import contextlib
import functools
import inspect
import logging
import os
from collections.abc import Callable
from typing import Any

import gradio as gr

from app import stack
from app.worker_client import WorkerRefused

inputs = stack.later("model.generation.inputs")
checkpoint = stack.later("model.core.checkpoint")
log = logging.getLogger("app")


def bind(fn, *bound, outputs: dict | None = None):
    """`fn` with its first parameters bound to `bound`, still inspectable by Gradio; with `outputs` ({name:
    component}), the dicts it returns or yields are keyed by component instead of by name."""

    def named(update):
        if outputs is None or not isinstance(update, dict):
            return update
        unknown = set(update) - set(outputs)
        assert not unknown, f"{fn.__name__} updates {sorted(unknown)}, which it was not wired to"
        if not update:  # nothing to update: Gradio reads an empty dict as one value for every output, and refuses it
            return {component: gr.skip() for component in outputs.values()}
        return {outputs[name]: value for name, value in update.items()}

    if inspect.isgeneratorfunction(fn):

        def wrapper(*args, **kwargs):
            for update in fn(*bound, *args, **kwargs):
                yield named(update)

    else:

        def wrapper(*args, **kwargs):
            return named(fn(*bound, *args, **kwargs))

    functools.update_wrapper(wrapper, fn)
    signature = inspect.signature(fn)
    wrapper.__signature__ = signature.replace(parameters=list(signature.parameters.values())[len(bound) :])
    del wrapper.__wrapped__  # or inspect would read the unbound signature again
    return wrapper


def gather(fn, parameters: list[inspect.Parameter], make: Callable[..., Any]):
    """`fn(form, *rest)` as Gradio calls an event: its first parameter spread into `parameters` (one per input,
    which is what Gradio reads: names, defaults, types), gathered back into `make(**values)`; fn's other parameters
    (a session, the gr.Request) follow as they are. A generator function stays one, so Gradio streams it."""
    rest = list(inspect.signature(fn).parameters.values())[1:]
    signature = inspect.Signature([*parameters, *rest], return_annotation=inspect.signature(fn).return_annotation)
    names = [p.name for p in parameters]

    def split(args, kwargs) -> tuple[Any, dict]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        return make(**{name: values.pop(name) for name in names}), values

    if inspect.isgeneratorfunction(fn):

        def wrapper(*args, **kwargs):
            form, others = split(args, kwargs)
            yield from fn(form, **others)

    else:

        def wrapper(*args, **kwargs):
            form, others = split(args, kwargs)
            return fn(form, **others)

    wrapper.__name__, wrapper.__qualname__, wrapper.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
    wrapper.__signature__ = signature
    typed = [p for p in signature.parameters.values() if p.annotation is not p.empty]
    wrapper.__annotations__ = {p.name: p.annotation for p in typed}
    return wrapper


def form_parameters(names) -> list[inspect.Parameter]:
    """Plain parameters named `names`, for `gather` (the page's private events need no defaults or types)."""
    return [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names]


def validator(handler, check):
    """A Gradio validator for the event that calls `handler`: `check(**inputs by handler's parameter names)` returns
    {parameter: message} for the inputs it refuses. Gradio runs it before the queue, with the handler's inputs."""
    names = list(inspect.signature(handler).parameters)

    def validate(*args):
        problems = check(**dict(zip(names, args)))
        if problems:  # one log line per refused request
            refused(handler.__name__, "; ".join(f"{name}: {message}" for name, message in problems.items()))
        checks = [gr.validate(name not in problems, problems.get(name, "")) for name in names[: len(args)]]
        return checks[0] if len(checks) == 1 else checks  # Gradio wraps a single input's answer in a list itself

    return validate


def wire(trigger, fn, bound: tuple, inputs, outputs: dict, check=None, form=None, **kwargs):
    """`trigger(fn bound to *bound, inputs, the output components)`: a page event, private to the API; `check`
    (`check(*bound, **inputs by name)`, see `validator`) refuses bad inputs before the queue; `form` (parameters,
    make) gathers the first inputs into one object for fn (see `gather`)."""
    kwargs.setdefault("api_visibility", "private")  # page plumbing; the API endpoints are in app/api.py
    kwargs.setdefault("api_name", f"page_{fn.__name__}")  # so that the API's /reason and /compare keep their names
    handler = bind(fn, *bound, outputs=outputs)
    if form is not None:
        handler = gather(handler, *form)
    if check is not None:
        kwargs["validator"] = validator(handler, functools.partial(check, *bound))
    return trigger(handler, inputs, list(outputs.values()), **kwargs)


def is_user_error(err: Exception) -> bool:
    """A problem the user can fix (bad input, a checkpoint that cannot be used, either found by the model worker);
    anything else is a fault. A worker's refusal is told apart first: the stack may still be importing here."""
    if isinstance(err, WorkerRefused):
        return True
    return isinstance(err, ValueError) and isinstance(err, (inputs.InputError, checkpoint.CheckpointError))


def is_checkpoint_error(err: Exception) -> bool:
    if isinstance(err, WorkerRefused):
        return err.checkpoint
    return isinstance(err, checkpoint.CheckpointError)


def refused(where: str, message: str) -> None:
    log.info("refused %s: %s", where, message.splitlines()[0] if message else "")


def user_error(err: Exception, where: str = "request") -> gr.Error:
    """The message a user sees for a problem they can fix, logged in one line (no traceback)."""
    refused(where, str(err))
    title = "Checkpoint" if is_checkpoint_error(err) else "Bad input"
    return gr.Error(str(err), title=title, print_exception=False)


@contextlib.contextmanager
def api_errors(where: str):
    """User errors raised inside become `gr.Error` (gradio_client: AppError); faults pass through."""
    try:
        yield
    except ValueError as err:
        if not is_user_error(err):
            raise
        raise user_error(err, where) from None


def page_problem(err: Exception, where: str, warn: bool = True) -> None:
    """A user error in a page event, logged in one line: a warning in the page (the caller then updates nothing),
    or, with `warn=False`, nothing more (the caller shows the message itself); faults re-raised."""
    if not is_user_error(err):
        raise err
    refused(where, str(err))
    if warn:
        gr.Warning(str(err), title="Checkpoint" if is_checkpoint_error(err) else "Cannot do that")


def run_id_for(request: gr.Request | None) -> str:
    """Switch events are logged under one run per browser session (per client connection for the API)."""
    session = getattr(request, "session_hash", None) if request is not None else None
    return f"app-{session[:8]}" if session else f"app-pid{os.getpid()}"
