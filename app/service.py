"""What the app loads once per process: checkpoints (a small LRU cache), each with its gallery, nearest-neighbour
index, UMAP map and latent decoder; the example puzzles; the switch-event store and the checkpoint registry.

    service = Service(ServiceConfig(checkpoint="tiny", gallery_per_family=4))
    loaded = service.load()                       # the model now; its gallery and map build in the background
    loaded.wait_ready(timeout=60)                 # or poll loaded.ready / loaded.status
    service.neighbours(loaded, latents, k=5)      # DataFrame from analysis.neighbours.top_k (None while building)
    service.place(loaded, latents)                # (x, y) on the map, or None

A request names its checkpoint, so one user switching checkpoints never changes what another is running; the
`max_models` most recently used checkpoints stay loaded. Checkpoint names are interpreted by
`model.core.checkpoint.resolve` (relative folders under the repository); the app shows a folder inside the
repository by its relative path and anything else as the user typed it, so no message names a server path.

Loading a checkpoint returns as soon as the model is loaded: the gallery of sketch-world pictures (encoded with the
checkpoint's own `sketch_targets`, cached under `cache_dir` by `gallery_fingerprint`) and its UMAP map are built in a
background thread, so the page is up in seconds and says how far the gallery is (`Loaded.status`); caches are
keyed to the weights, so a new checkpoint needs no shipped cache. Galleries above `EXACT_MAX_ROWS` rows get a
reduced-dimension index (analysis.neighbours.build_index) for fast single queries.

When the default checkpoint folder (assets/checkpoints/demo) does not exist, the `demo` preset with random weights
stands in and `banner()` says so. `--debug-sketch-bias` (test-only) adds a constant to the ⟨START⟩ logit, as the
engine tests do, so that a model with random weights sketches.
"""

import hashlib
import itertools
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import spaces
import torch
from PIL import Image

from analysis.latent_decoder import decode_to_image, load_decoder
from analysis.neighbours import Gallery, ReducedIndex, build_index, gallery_fingerprint, load_or_build_gallery, top_k
from analysis.projection import Projection, enable_umap_kernel_cache, load_or_fit_projection
from analysis.sweeps import load_registry
from app import gallery as app_gallery
from app.examples import Example, load_examples
from app.render import neighbour_caption, placeholder
from model.core.checkpoint import WEIGHTS_NAME, CheckpointError, load_model, resolve
from model.core.config import SCRATCH_PRESETS
from model.generation.cli import DEFAULT_CHECKPOINT
from model.generation.debug import bias_towards_sketching

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REGISTRY = str(ROOT / "assets" / "checkpoints" / "registry.json")
EXACT_MAX_ROWS = 4096  # up to here an exact scan is a few ms; above, the reduced-dimension index serves queries
NUM_NEIGHBOURS = 5  # gallery pictures shown per sketch
log = logging.getLogger("app")


@dataclass
class ServiceConfig:
    checkpoint: str = DEFAULT_CHECKPOINT  # what the app starts on: a folder, a preset name or a hub id
    cache_dir: str = "cache/app"  # gallery vectors and UMAP maps, one folder per gallery fingerprint
    event_store: str = "cache/events"  # every answer's switch events (model/generation/events.py)
    registry: str = DEFAULT_REGISTRY  # the checkpoint registry the Sweeps tab reads
    gallery_per_family: int = 40  # sketch-world instances per family whose pictures make up the gallery
    max_models: int = 2  # checkpoints kept loaded
    device: str | None = None  # None: cuda when available, else cpu
    debug_sketch_bias: float = 0.0  # test-only: added to the ⟨START⟩ logit so that random weights sketch


@dataclass(eq=False)
class Loaded:
    name: str  # how the app names the checkpoint: a folder relative to the repo, or what the user typed
    model: torch.nn.Module
    decoder: object | None  # analysis.latent_decoder.LatentDecoder
    weights: Path | None  # the weights file (None for presets and hub checkpoints)
    notes: dict[str, str] = field(default_factory=dict)  # weights, decoder, map: shown to the user when set
    # built in the background after loading (None until then):
    gallery: Gallery | None = None
    index: ReducedIndex | None = None  # only for galleries above EXACT_MAX_ROWS
    projection: Projection | None = None
    status: str = "gallery: waiting to start"
    ready: threading.Event = field(default_factory=threading.Event, repr=False)
    donor_sketches: dict = field(default_factory=dict, repr=False)  # app/compare.py: shuffled-latents donors
    _points: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def points(self) -> pd.DataFrame | None:
        """Gallery metadata with map coordinates x, y (None without a map)."""
        if self._points is None and self.projection is not None and self.gallery is not None:
            self._points = self.projection.points(self.gallery)
        return self._points

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self.ready.wait(timeout)

    def describe(self) -> str:
        config = self.model.config
        size = f"gallery of {len(self.gallery)} pictures" if self.gallery is not None else self.status
        snapped = ", snapped to its codebook" if self.model.sketch_codebook is not None else ""
        return (
            f"`{self.name}` · K = {config.latent_budget} latents per sketch · D = {config.hidden_size} · "
            f"T = {config.diffusion_steps} diffusion steps ({config.diffusion_solver}, sketch temperature "
            f"{config.sketch_temperature:g}{snapped}) · {size} · "
            f"{'decoder' if self.decoder is not None else 'no decoder'}"
        )


@dataclass
class Point:
    """What the page shows for a chosen map point."""

    picture: Image.Image  # the gallery picture, or the sketch decoded (a placeholder without a decoder)
    text: str  # markdown: what the point is
    neighbours: list[tuple[Image.Image, str]]  # its nearest gallery pictures with captions


def display_name(spec: str, path: Path | None) -> str:
    """A folder inside the repository by its relative path; anything else as typed (never a resolved server path)."""
    if path is not None:
        try:
            return str(path.resolve().relative_to(ROOT))
        except ValueError:
            pass
    return spec.strip()


class Service:
    def __init__(self, config: ServiceConfig):
        self.config = config
        self.default_name = self._key(config.checkpoint)[1]
        self.device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.examples: dict[str, Example] = load_examples()
        self.rollouts = itertools.count()  # each answer gets its own number, so the event log never merges two
        self._models: OrderedDict[str, Loaded] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        # umap-learn compiles its numba kernels afresh in every process (~11 s on 2 cores); cached, a restart
        # takes ~1 s. numba pickles its own cache files; none of our data is stored that way.
        enable_umap_kernel_cache()

    # ---- checkpoints ----------------------------------------------------------------------------------------------
    def _key(self, spec: str) -> tuple[str, str]:
        """(cache key, display name) of a checkpoint name; CheckpointError naming `spec` when it means nothing."""
        spec = spec.strip()
        if _falls_back(spec):
            return spec, display_name(spec, Path(spec))
        kind, path = resolve(spec, ROOT)
        if kind == "folder":
            return str(path.resolve()), display_name(spec, path)
        return spec, spec

    def load(self, name: str | None = None) -> Loaded:
        """The loaded checkpoint `name` (default: the app's); CheckpointError with the reason when it cannot load.
        Returns once the model is loaded; the gallery and map follow in a background thread (`Loaded.ready`)."""
        spec = name if name and name.strip() else self.config.checkpoint
        spec = self.registered_path(spec) or spec
        key, shown = self._key(spec)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            name_lock = self._loading.setdefault(key, threading.Lock())
        with name_lock:  # one load per checkpoint at a time; other checkpoints keep serving meanwhile
            with self._lock:
                if key in self._models:
                    return self._models[key]
            loaded = self._load(spec.strip(), shown)
            with self._lock:
                self._models[key] = loaded
                while len(self._models) > self.config.max_models:
                    evicted, _ = self._models.popitem(last=False)
                    log.info("unloaded checkpoint %s", evicted)
        threading.Thread(target=self._build_gallery, args=(loaded,), name=f"gallery {shown}", daemon=True).start()
        return loaded

    def loaded_names(self) -> list[str]:
        with self._lock:
            return [loaded.name for loaded in self._models.values()]

    def banner(self, loaded: Loaded) -> str:
        return loaded.notes.get("weights", "")

    def checkpoint_choices(self) -> list[str]:
        """The default, the registered checkpoints, whatever is loaded, and the from-scratch presets."""
        names = [self.default_name, *[e["path"] for e in self.registry_entries()], *self.loaded_names()]
        names += list(SCRATCH_PRESETS)
        return list(dict.fromkeys(names))

    def registered_path(self, name: str) -> str | None:
        """The folder of the registered checkpoint called `name` (as /checkpoints lists it: "sweep/k32-l1" would
        otherwise be taken for a hub id); None when none is."""
        return next((e["path"] for e in self.registry_entries() if e["name"] == name.strip()), None)

    def registry_entries(self) -> list[dict]:
        """The registry's checkpoint entries ([] when there is no registry or it cannot be read)."""
        if not Path(self.config.registry).is_file():
            return []
        try:
            return load_registry(self.config.registry)["checkpoints"]
        except ValueError as err:
            log.warning("%s", err)
            return []

    def _load(self, spec: str, shown: str) -> Loaded:
        notes = {}
        if _falls_back(spec):
            notes["weights"] = (
                f"⚠️ No trained checkpoint at `{shown}` yet, so the app runs the `demo` preset with **random "
                "weights**: the answers are gibberish until a trained checkpoint ships there."
            )
            spec = "demo"
        elif spec in SCRATCH_PRESETS:
            notes["weights"] = (
                f"⚠️ `{spec}` is a from-scratch preset with **random weights**: the answers are gibberish."
            )
        kind, folder = resolve(spec, ROOT)
        log.info("loading checkpoint %s on %s", shown, self.device)
        try:
            model = load_model(spec, device=self.device, root=ROOT).eval()
        except CheckpointError:
            raise
        except (OSError, ValueError, RuntimeError) as err:  # hub downloads and transformers' own checks
            raise CheckpointError(f"could not load checkpoint {shown}: {_without_server_paths(err)}") from err
        if self.config.debug_sketch_bias:
            _add_sketch_bias(model, self.config.debug_sketch_bias)
        decoder, note = _load_decoder(folder if kind == "folder" else None, shown)
        if note:
            notes["decoder"] = note
        weights = folder / WEIGHTS_NAME if kind == "folder" else None
        return Loaded(shown, model, decoder, weights, notes)

    def _cache_dir(self, fingerprint: str) -> Path:
        return Path(self.config.cache_dir) / "gallery" / fingerprint[:16]

    def _build_gallery(self, loaded: Loaded) -> None:
        """Gallery, index and map of a loaded checkpoint (the background thread `load` starts)."""
        try:
            loaded.gallery = self._gallery(loaded)
            if len(loaded.gallery) > EXACT_MAX_ROWS:
                loaded.status = f"gallery: indexing {len(loaded.gallery)} pictures"
                loaded.index = build_index(loaded.gallery)
            loaded.status = f"map: fitting UMAP on {len(loaded.gallery)} pictures (once; then cached)"
            start = time.perf_counter()
            try:
                loaded.projection = load_or_fit_projection(self._cache_dir(loaded.gallery.fingerprint), loaded.gallery)
                log.info("UMAP map of the gallery ready in %.1f s", time.perf_counter() - start)
            except ValueError as err:  # e.g. a gallery smaller than UMAP's neighbourhood
                loaded.notes["map"] = f"no map: {err}"
            loaded.status = f"gallery of {len(loaded.gallery)} pictures ready"
        except Exception as err:  # a background thread must say why it stopped, in the page and the log
            log.exception("building the gallery of %s failed", loaded.name)
            loaded.status = f"gallery failed: {type(err).__name__}: {err}"
            loaded.notes["map"] = "no gallery, so no neighbours and no map (see the server log)"
        finally:
            loaded.ready.set()

    def _gallery(self, loaded: Loaded) -> Gallery:
        model = loaded.model
        # Presets and hub checkpoints have no weights file to hash: their name and config stand in for it.
        config_digest = hashlib.sha256(model.config.to_json_string().encode()).hexdigest()
        fingerprint = gallery_fingerprint(
            loaded.weights,
            app_gallery.DATASET_ID,
            model.config.latent_budget,
            per_family=self.config.gallery_per_family,
            checkpoint="" if loaded.weights else loaded.name,
            config=config_digest,
            debug_sketch_bias=self.config.debug_sketch_bias,
        )
        per_family = self.config.gallery_per_family

        def build() -> Gallery:
            start = time.perf_counter()
            images = app_gallery.gallery_images(per_family)
            log.info("encoding a gallery of %d sketch-world pictures (once; then cached)", len(images))

            def progress(done: int) -> None:
                loaded.status = f"gallery: encoding pictures, {done} of {len(images)} done (once; then cached)"

            gallery = app_gallery.encode_gallery(model, images, progress)
            log.info("gallery encoded in %.1f s", time.perf_counter() - start)
            return gallery

        loaded.status = "gallery: reading the cache"
        return load_or_build_gallery(self._cache_dir(fingerprint), fingerprint, build)

    # ---- sketches -------------------------------------------------------------------------------------------------
    def neighbours(self, loaded: Loaded, latents: np.ndarray, k: int = NUM_NEIGHBOURS) -> pd.DataFrame | None:
        """The k most similar gallery pictures of one sketch (K, D): rank, similarity, key, family, role, …;
        None while the gallery is being built."""
        if loaded.gallery is None:
            return None
        return top_k(loaded.gallery, np.asarray(latents, dtype=np.float32), k, index=loaded.index)

    def place(self, loaded: Loaded, latents: np.ndarray) -> tuple[float, float] | None:
        if loaded.projection is None:
            return None
        x, y = loaded.projection.transform(np.asarray(latents, dtype=np.float32))[0]
        return float(x), float(y)

    def decode(self, loaded: Loaded, latents: np.ndarray) -> Image.Image | None:
        if loaded.decoder is None:
            return None
        return decode_to_image(loaded.decoder, np.asarray(latents, dtype=np.float32), size=224)

    def gallery_latents(self, loaded: Loaded, index: int) -> np.ndarray:
        """Gallery row `index` as (K, D) (unit length overall, which cosine similarity ignores)."""
        gallery = loaded.gallery
        return gallery.vectors[index].reshape(gallery.num_latents, gallery.dim)

    def neighbour_pictures(
        self, loaded: Loaded, latents: np.ndarray, k: int = NUM_NEIGHBOURS, skip_row: int | None = None
    ) -> list[tuple[Image.Image, str]]:
        """(picture, caption) of the k nearest gallery pictures ([] while the gallery is being built); `skip_row`
        leaves a gallery picture out of its own neighbours."""
        frame = self.neighbours(loaded, latents, k + (skip_row is not None))
        if frame is None:
            return []
        if skip_row is not None:
            frame = frame[frame["gallery_index"] != skip_row].head(k)
        return [(app_gallery.picture(row), neighbour_caption(row)) for _, row in frame.iterrows()]

    def point(self, loaded: Loaded, value: str, sketches: list[dict]) -> Point:
        """A point of the map chosen by its id: "g:<row>" (a gallery picture) or "s:<i>" (sketch i of the
        session's `sketches`, made with this checkpoint); ValueError naming the id when there is no such point."""
        kind, _, number = (value or "").partition(":")
        if kind not in ("g", "s") or not number.isdigit():
            raise ValueError(f"{value!r} is not a map point (g:<gallery row> or s:<sketch>)")
        number = int(number)
        if kind == "s":
            if number >= len(sketches) or sketches[number]["checkpoint"] != loaded.name:
                raise ValueError(f"sketch {number} is not one of this session's sketches with {loaded.name}")
            entry = sketches[number]
            where = "" if entry["xy"] is None else f" at ({entry['xy'][0]:.2f}, {entry['xy'][1]:.2f})"
            text = f"**{entry['label']}**{where}"
            if "decoder" in loaded.notes:
                text += f"\n\n{loaded.notes['decoder']}"
            picture = self.decode(loaded, entry["latents"]) or placeholder()
            return Point(picture, text, self.neighbour_pictures(loaded, entry["latents"]))
        if loaded.gallery is None or number >= len(loaded.gallery):
            size = 0 if loaded.gallery is None else len(loaded.gallery)
            raise ValueError(f"gallery row {number} does not exist; the gallery has {size} rows ({loaded.status})")
        row = loaded.gallery.meta.iloc[number]
        text = f"**{row['key']}** · {row['family']} · {row['role']} picture"
        latents = self.gallery_latents(loaded, number)
        return Point(app_gallery.picture(row), text, self.neighbour_pictures(loaded, latents, skip_row=number))


# On Hugging Face ZeroGPU these two calls borrow a GPU while they run; elsewhere `spaces.GPU` does nothing.
@spaces.GPU
def stream_events(engine, prompt, settings):
    """The engine's TraceEvents for one prompt."""
    yield from engine.stream([prompt], settings)


@spaces.GPU
def generate_traces(engine, prompts, settings):
    """The engine's Traces for prompts that share settings (one batch)."""
    return engine.generate(prompts, settings)


def _falls_back(spec: str) -> bool:
    """The default checkpoint folder does not exist yet: the demo preset stands in (with a banner)."""
    return spec == DEFAULT_CHECKPOINT and not Path(spec).is_dir()


def _without_server_paths(err: Exception) -> str:
    """An error's first line with the repository and home folders written as . and ~."""
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return text.replace(str(ROOT), ".").replace(str(Path.home()), "~")


def _load_decoder(folder: Path | None, shown: str) -> tuple[object | None, str]:
    """(decoder, '') or (None, why there are no decoded pictures)."""
    if folder is None:
        return None, "presets and hub checkpoints have no latent decoder, so sketches have no decoded picture"
    try:
        decoder = load_decoder(folder)
    except (ValueError, OSError) as err:
        return None, f"no decoded pictures: {str(err).replace(str(folder), shown)}"
    if decoder is None:
        return None, f"no decoded pictures: {shown} has no latent decoder"
    return decoder, ""


def _add_sketch_bias(model, bias: float) -> None:
    """Test-only: make a random-weight model sketch (model/generation/debug.py), with fitted latent statistics."""
    if bool((model.latent_std == 1).all()):  # statistics never fitted: fit them on a few gallery pictures
        images = [image for image, _ in app_gallery.gallery_images(1)[:8]]
        model.fit_latent_stats(model.sketch_targets(images).flatten(0, 1))
    bias_towards_sketching(model, bias)
