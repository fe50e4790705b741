"""Small helpers shared by the tabs and the API: binding handlers to the service, named outputs, user errors, run ids.

Handlers are plain functions `handler(service, inputs…, request=None)` so that tests call them directly. A page
handler returns (or yields) a dict of *named* updates, `{"answer": "…", "trace": {...}}`; names it leaves out are not
updated. `wire` binds the handler and turns those names into the components Gradio expects (Gradio accepts
`{component: update}` dicts), so neither the handler nor its tests depend on the order of the outputs.

Gradio reads a handler's signature and type hints to find `gr.Request` parameters and API types, and
`inspect.isgeneratorfunction` to decide whether it streams; `functools.partial` hides all three, so `bind` builds a
real function (a generator function for generators) with the bound arguments removed from its signature.
"""

import functools
import inspect
import os

import gradio as gr

from app.service import NUM_NEIGHBOURS
from model.core.checkpoint import CheckpointError
from model.generation.inputs import InputError


def bind(fn, *bound, outputs: dict | None = None):
    """`fn` with its first parameters bound to `bound`, still inspectable by Gradio; with `outputs` ({name:
    component}), the dicts it returns or yields are keyed by component instead of by name."""

    def named(update):
        if outputs is None or not isinstance(update, dict):
            return update
        unknown = set(update) - set(outputs)
        assert not unknown, f"{fn.__name__} updates {sorted(unknown)}, which it was not wired to"
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


def wire(trigger, fn, bound: tuple, inputs, outputs: dict, **kwargs):
    """`trigger(fn bound to *bound, inputs, the output components)`: a page event, private to the API."""
    kwargs.setdefault("api_visibility", "private")  # page plumbing; the API endpoints are in app/api.py
    kwargs.setdefault("api_name", f"page_{fn.__name__}")  # so that the API's /reason and /compare keep their names
    return trigger(bind(fn, *bound, outputs=outputs), inputs, list(outputs.values()), **kwargs)


def user_error(err: Exception) -> gr.Error:
    """The message a user sees for a problem they can fix (bad input, an unknown checkpoint)."""
    title = "Checkpoint" if isinstance(err, CheckpointError) else "Bad input"
    return gr.Error(str(err), title=title)


USER_ERRORS = (InputError, CheckpointError)  # what handlers turn into `user_error`


def run_id_for(request: gr.Request | None) -> str:
    """Switch events are logged under one run per browser session (per client connection for the API)."""
    session = getattr(request, "session_hash", None) if request is not None else None
    return f"app-{session[:8]}" if session else f"app-pid{os.getpid()}"


def neighbours_gallery(label: str, elem_id: str) -> gr.Gallery:
    """The row of nearest gallery pictures, as the Reason and Explorer tabs both show it."""
    return gr.Gallery(
        label=label, columns=NUM_NEIGHBOURS, height=220, object_fit="contain", fit_columns=False, elem_id=elem_id
    )
