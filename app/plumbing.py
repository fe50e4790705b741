"""Small helpers shared by the tabs and the API: binding handlers to the service, user errors, run ids.

Handlers are plain functions `handler(service, inputs…, request=None)` so that tests call them directly. Gradio
reads a handler's signature and type hints to find `gr.Request` parameters and API types, and
`inspect.isgeneratorfunction` to decide whether it streams; `functools.partial` hides all three, so `bind` builds a
real function (a generator function for generators) with the service argument removed from its signature.
"""

import functools
import inspect
import os

import gradio as gr

from model.generation.inputs import InputError


def bind(fn, service):
    """`fn` with its first parameter bound to `service`, still inspectable by Gradio."""
    if inspect.isgeneratorfunction(fn):

        def bound(*args, **kwargs):
            yield from fn(service, *args, **kwargs)

    else:

        def bound(*args, **kwargs):
            return fn(service, *args, **kwargs)

    functools.update_wrapper(bound, fn)
    signature = inspect.signature(fn)
    bound.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
    del bound.__wrapped__  # or inspect would read the unbound signature again
    return bound


def user_error(err: Exception) -> gr.Error:
    """The message a user sees for a problem they can fix (bad input, an unknown checkpoint)."""
    return gr.Error(str(err), title="Bad input" if isinstance(err, InputError) else "Checkpoint")


def run_id_for(request: gr.Request | None) -> str:
    """Switch events are logged under one run per browser session (per client connection for the API)."""
    session = getattr(request, "session_hash", None) if request is not None else None
    return f"app-{session[:8]}" if session else f"app-pid{os.getpid()}"
