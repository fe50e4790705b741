"""The model stack: the modules that pull in torch, transformers and the model, imported behind the page.

`python -m app` serves the page from a process that has imported gradio and the app's light modules only (the page,
its handlers, render.py, service.py); a background thread then imports the modules named in `MODULES` and loads the
checkpoint, as the gallery already was built behind the page. The page's modules reach a stack module through
`later(name)`, a stand-in whose attributes are the module's: the first use imports it, or waits until the thread
importing the stack is done (one lock: two threads importing transformers at once get half-built modules), so a
handler that runs before the stack is ready simply waits.

    reasoning = later("app.reasoning")       # at the top of a page module; nothing is imported yet
    import_all()                             # in the loader thread (Service.start)
    reasoning.prepare(...)                   # in a handler: the real function

The gallery's map (umap-learn, `GALLERY_MODULES`) is imported later still, by the thread that builds it. This is the
one place where imports are deferred; tests/test_app_checkpoints.py (`test_the_page_needs_no_model_stack`) checks
that the page's modules import neither torch nor transformers.
"""

import importlib
import sys
import threading

MODULES = (  # in import order: what the app's heavy modules need comes first
    "torch",
    "transformers",
    "model.core.model_config",
    "model.core.checkpoint",
    "model.generation.inputs",
    "app.models",
    "app.reasoning",
    "app.compare",
)
GALLERY_MODULES = ("analysis.projection", "app.galleries")  # umap-learn: imported by the gallery thread, after the
# checkpoint has loaded, so that the first answer does not wait for it


_importing = threading.RLock()  # held while a stack module is imported
_imported: set[str] = set()  # fully imported: no need to wait for the lock


class Later:
    """A stack module by name; attribute access imports it (or waits for the import under way)."""

    def __init__(self, name: str):
        assert name in MODULES + GALLERY_MODULES, f"{name} is not a module of the stack; add it to MODULES"
        self._name = name
        self._module = None

    def __getattr__(self, attribute: str):
        if self._module is None:
            if self._name not in _imported:
                _import(self._name)
            self._module = sys.modules[self._name]
        return getattr(self._module, attribute)

    def __repr__(self) -> str:
        return f"<later {self._name}>"


def later(name: str) -> Later:
    return Later(name)


def import_all() -> None:
    """Import `MODULES` (what an answer needs), in order."""
    with _importing:
        for name in MODULES:
            _import(name)


def _import(name: str) -> None:
    with _importing:
        importlib.import_module(name)
        _imported.add(name)
