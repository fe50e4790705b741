"""What the app holds once per process: its settings, the example puzzles, the checkpoint registry and how a
checkpoint name is read; and, once the model stack has been imported behind the page (app/stack.py), the loaded
checkpoints (`service.models`, app/models.py).

    service = Service(ServiceConfig(checkpoint="tiny", gallery_per_family=4))
    service.start()                          # a thread imports the stack and loads the default checkpoint
    service.wait_default()                   # the default checkpoint loaded, or its CheckpointError
    service.resolve("sweep/k32-l1")          # what a name means, within HUB_TIMEOUT_S; CheckpointError otherwise
    loaded = service.load("tiny")            # service.models.load(service.resolve("tiny"))
    service.registered_problem("baseline/text-cot")   # "" when registered and there; else why not

This module imports no torch: the page is served while the stack loads, and anything that needs the model waits for
it (`service.models`). A request names its checkpoint, so one user switching checkpoints never changes what another
is running. Checkpoint names are read by `model.core.checkpoint.locate`, as `python -m model.generate` reads them
(`demo` is the trained model; relative folders are under the repository), with the registry's names (`sweep/k32-l1`
is a registered name, not a hub id); a hub id is looked up in the local cache, then on the hub with a short timeout
(the same lookup as the CLI's), so a name that cannot be reached fails in a second or two instead of holding an
answer slot while downloads time out (HF_HUB_OFFLINE=1: no lookup at all). The app shows a
folder inside the repository by its relative path and anything else as the user typed it, so no message names a
server path. When the default checkpoint folder (assets/checkpoints/demo) does not exist, the `demo` preset with
random weights (`demo-random`) stands in and the banner says so.
"""

import contextlib
import itertools
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from analysis.sweeps import load_registry
from app import stack
from app.example_puzzles import Example, load_examples
from app.request import BASELINES
from model.core.paths import DEFAULT_CHECKPOINT, DEFAULT_REGISTRY, RANDOM_PRESETS, ROOT, registered_folders, target

MAX_NAME_CHARS = 1024  # a checkpoint name longer than this is neither a path nor a hub id anyone types
QUIET_WAIT_S = 20.0  # the longest background work (a gallery) waits, each time, for the answers in flight
log = logging.getLogger("app")
checkpoint = stack.later("model.core.checkpoint")
models_module = stack.later("app.models")


@dataclass
class ServiceConfig:
    checkpoint: str = DEFAULT_CHECKPOINT  # what the app starts on: a folder, a preset name or a hub id
    cache_dir: str = "cache/app"  # gallery vectors and UMAP maps, one folder per gallery fingerprint
    event_store: str = "cache/events"  # every answer's switch events (model/generation/events.py)
    registry: str = DEFAULT_REGISTRY  # the checkpoint registry the Sweeps tab reads
    gallery_per_family: int = 40  # sketch-world instances per family whose pictures make up the gallery
    max_models: int = 3  # checkpoints kept loaded: the default (always) and the most recently used others
    device: str | None = None  # None: cuda when available, else cpu
    threads: int | None = None  # torch's CPU threads (each answer's); None: torch's default
    debug_sketch_bias: float = 0.0  # test-only: added to the ⟨START⟩ logit so that random weights sketch
    galleries: bool = True  # build each checkpoint's gallery and map (False: the model worker, which only answers)


@dataclass(frozen=True)
class Resolved:
    """What a checkpoint name means, found before anything is loaded."""

    key: str  # the cache key: a resolved folder, or the name
    shown: str  # how the app names it: a folder relative to the repository, or what the user typed
    spec: str  # what model.core.checkpoint.load_model is given
    folder: Path | None  # the checkpoint folder (None for presets and hub ids)
    banner: str = ""  # shown above the page while this checkpoint is in use (random weights)


def display_name(spec: str, path: Path | None) -> str:
    """A folder inside the repository by its relative path; anything else as typed (never a resolved server path)."""
    if path is not None:
        try:
            return str(path.resolve().relative_to(ROOT))
        except ValueError:
            pass
    return spec.strip()


class Service:
    def __init__(self, config: ServiceConfig, worker=None):
        self.config = config
        self.worker = worker  # app.worker_client.ModelWorker: answers for the default checkpoint until it loads here
        default = target(config.checkpoint, registered_folders(config.registry))  # "demo": the shipped folder
        self.default_name = display_name(default, _as_path(default))
        self.examples: dict[str, Example] = load_examples()
        self.rollouts = itertools.count()  # each answer gets its own number, so the event log never merges two
        self.stage = "waiting to load the model code"  # what the loader thread is doing, for the page
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stack_ready, self._default_done = threading.Event(), threading.Event()
        self._models = None  # app.models.Models, once the stack is imported
        self._stack_error: str = ""
        self._default_error: Exception | None = None
        self._answering = 0  # answers in flight, from the handler's start (waiting for the model included)
        self._answering_lock = threading.Lock()

    # ---- the model stack ------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Import the model stack and load the default checkpoint in a background thread (once)."""
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._load_stack, name="model stack", daemon=True)
                self._thread.start()

    def _load_stack(self) -> None:
        try:
            self.stage = "importing the model code (torch, transformers)"
            start = time.perf_counter()
            stack.import_all()
            if self.config.threads:  # every thread's ops, the answers' and the gallery's (torch's setting is global)
                stack.later("torch").set_num_threads(self.config.threads)
            self._models = models_module.Models(self.config, self.wait_quiet)
            log.info("model code imported in %.1f s", time.perf_counter() - start)
        except Exception as err:  # the page says so; every request that needs the model refuses with it
            log.exception("importing the model code failed")
            self._stack_error = f"{type(err).__name__}: {err}"
            self._default_error = RuntimeError(f"the model code could not be imported: {self._stack_error}")
            self.stage = str(self._default_error)
            return
        finally:
            self._stack_ready.set()
            if self._stack_error:
                self._default_done.set()
        try:
            self.stage = f"loading checkpoint {self.default_name}"
            self.load()
            self.stage = "ready"
        except Exception as err:  # a CheckpointError is the user's (main() prints it); anything else is a fault
            if not isinstance(err, checkpoint.CheckpointError):
                log.exception("loading checkpoint %s failed", self.default_name)
            self._default_error = err
            self.stage = f"checkpoint {self.default_name} could not be loaded: {err}"
        finally:
            self._default_done.set()

    @property
    def loading(self) -> bool:
        """The model code or the default checkpoint is still loading."""
        return not self._default_done.is_set()

    @property
    def stack_ready(self) -> bool:
        return self._stack_ready.is_set() and not self._stack_error

    @property
    def models(self):
        """The loaded checkpoints (app.models.Models); waits for the model stack, starting it if need be."""
        self.start()
        self._stack_ready.wait()
        if self._stack_error:
            raise RuntimeError(f"the model code could not be imported: {self._stack_error}")
        return self._models

    def wait_default(self, timeout: float | None = None):
        """The default checkpoint once loaded (app.models.Loaded); its CheckpointError when it cannot load."""
        self.start()
        if not self._default_done.wait(timeout):
            raise TimeoutError(f"checkpoint {self.default_name} is still loading after {timeout} s")
        if self._default_error is not None:
            raise self._default_error
        return self.load()

    @contextlib.contextmanager
    def answering(self):
        """Around one answer, from its handler's start: background work waits while any is in flight."""
        with self._answering_lock:
            self._answering += 1
        try:
            yield
        finally:
            with self._answering_lock:
                self._answering -= 1

    def wait_quiet(self, limit_s: float = QUIET_WAIT_S, on_wait=None) -> None:
        """Return once no answer is in flight, or after `limit_s`: background work (the gallery, its map) yields to
        answers (the first one after a cold start above all), but a steady stream of them never starves it.
        `on_wait()` is called first when it does wait (to say so)."""
        if self._answering and on_wait is not None:
            on_wait()
        deadline = time.monotonic() + limit_s
        while self._answering and time.monotonic() < deadline:
            time.sleep(0.05)

    # ---- checkpoints ----------------------------------------------------------------------------------------------
    def load(self, name: str | None = None, gallery: bool = True):
        """The loaded checkpoint `name` (default: the app's), as app.models.Loaded; CheckpointError saying why when
        it cannot load. Returns once the model is loaded; the gallery and map follow (`Loaded.ready`) unless
        `gallery` is False (a model only Compare's baseline column runs). The app's own stays loaded for good (every
        new page shows it)."""
        is_default = not (isinstance(name, str) and name.strip())
        return self.models.load(self.resolve(name), gallery, pin=is_default)

    def peek(self, name: str | None = None):
        """The checkpoint if it is loaded now (never loads, never waits); None otherwise."""
        if not self.stack_ready:
            return None
        try:
            return self._models.peek(self.resolve(name, look_up_hub=False).key)
        except checkpoint.CheckpointError:
            return None

    def resolve(self, name: str | None = None, look_up_hub: bool = True) -> Resolved:
        """What a checkpoint name means ("" or None: the app's), read by model.core.checkpoint.locate as the CLI reads
        it (`demo` the trained model, `tiny` / `demo-random` random weights), registered names first; CheckpointError
        naming it as typed when it means nothing, or names a hub id that cannot be reached now (found within
        HUB_TIMEOUT_S; a hub checkpoint already loaded is not looked up again)."""
        spec = name.strip() if isinstance(name, str) and name.strip() else self.config.checkpoint
        if len(spec) > MAX_NAME_CHARS:
            raise checkpoint.CheckpointError(
                f"the checkpoint name has {len(spec)} characters; the limit is {MAX_NAME_CHARS}"
            )
        registered = self.registered_folders()
        if _falls_back(target(spec, registered)):
            banner = (
                f"**Note:** no trained checkpoint at `{self.default_name}` yet, so the app runs the `demo-random` "
                "preset with **random weights**: the answers are gibberish until a trained checkpoint ships there."
            )
            return Resolved(DEFAULT_CHECKPOINT, self.default_name, RANDOM_PRESETS["demo-random"], None, banner)
        loaded = self._models is not None and self._models.peek(target(spec, registered)) is not None
        located = checkpoint.locate(spec, ROOT, registered, look_up_hub=look_up_hub and not loaded)
        if located.kind == "folder":
            folder = located.folder
            return Resolved(str(folder.resolve()), display_name(located.spec, folder), located.spec, folder)
        banner = f"**Note:** {located.note.replace('random weights', '**random weights**')}." if located.note else ""
        return Resolved(located.spec, spec, located.spec, None, banner)

    def is_default(self, name: str | None) -> bool:
        """The name means the app's default checkpoint ("", as shown, `demo`, its folder, its registered name), read
        without the model stack (a name that resolves there otherwise, e.g. a symlink, may say False)."""
        if not (isinstance(name, str) and name.strip()) or name.strip() == self.default_name:
            return True
        registered = self.registered_folders()
        return target(name, registered) == target(self.config.checkpoint, registered)

    def registered_folders(self) -> dict[str, str]:
        """{registered name: its folder as the registry writes it} ({} without a readable registry)."""
        return registered_folders(self.config.registry)

    def loaded_names(self) -> list[str]:
        return self._models.loaded_names() if self.stack_ready else []

    def checkpoint_choices(self) -> list[str]:
        """The default, the registered checkpoints, whatever is loaded, the from-scratch presets (random weights)."""
        names = [self.default_name, *[e["path"] for e in self.registry_entries()], *self.loaded_names()]
        return list(dict.fromkeys([*names, *RANDOM_PRESETS]))

    def registered_path(self, name: str) -> str | None:
        """The folder of the registered checkpoint called `name` (as /checkpoints lists it: "sweep/k32-l1" would
        otherwise be taken for a hub id); None when none is."""
        return self.registered_folders().get(name.strip())

    def registered_problem(self, name: str) -> str:
        """Why the registered checkpoint `name` cannot be loaded now ("" when its folder is there): no such entry,
        or a registered folder that is missing (named as the registry has it, relative to the repository)."""
        path = self.registered_path(name)
        if path is None:
            return f"the checkpoint registry has no {name!r} entry"
        folder = _as_path(path)
        if folder is None or not folder.is_dir():
            return f"{name!r} is registered, but its folder {display_name(path, None)} is not there"
        return ""

    def min_new_tokens(self, loaded) -> int:
        """The fewest new positions an answer of the loaded checkpoint (app.models.Loaded) needs: a registered
        baseline's when it is one (BASELINES: the text-only-CoT model writes a 16×16 board out in 355–365 tokens),
        else 0."""
        if loaded.weights is None:
            return 0
        folder = loaded.weights.parent.resolve()
        for baseline in BASELINES.values():
            path = self.registered_path(baseline.checkpoint)
            where = _as_path(path) if path is not None else None
            if where is not None and where.resolve() == folder:
                return baseline.min_new_tokens
        return 0

    def registry_entries(self) -> list[dict]:
        """The registry's checkpoint entries ([] when there is no registry or it cannot be read)."""
        if not Path(self.config.registry).is_file():
            return []
        try:
            return load_registry(self.config.registry)["checkpoints"]
        except ValueError as err:
            log.warning("%s", err)
            return []


def _falls_back(spec: str) -> bool:
    """The default checkpoint folder does not exist yet: the demo preset stands in (with a banner)."""
    return spec == DEFAULT_CHECKPOINT and not Path(spec).is_dir()


def _as_path(spec: str) -> Path | None:
    """The folder a name would be (relative ones under the repository), for display; None when it is not one."""
    path = Path(spec).expanduser()
    path = path if path.is_absolute() else ROOT / path
    try:
        return path if path.is_dir() or spec == DEFAULT_CHECKPOINT else None
    except OSError:
        return None
