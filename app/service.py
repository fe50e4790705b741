"""What the app loads once per process: checkpoints (a small LRU cache), each with its gallery, UMAP map and latent
decoder; the example puzzles; the switch-event store and the checkpoint registry.

    service = Service(ServiceConfig(checkpoint="tiny", gallery_per_family=4))
    loaded = service.load()                       # the default checkpoint; service.load("assets/checkpoints/x")
    service.neighbours(loaded, latents, k=5)      # DataFrame from analysis.neighbours.top_k
    service.place(loaded, latents)                # (x, y) on the map, or None

A request names its checkpoint, so one user switching checkpoints never changes what another is running; the
`max_models` most recently used checkpoints stay loaded. Loading a checkpoint also builds (or reads from the cache
under `cache_dir`, keyed by `gallery_fingerprint`) its gallery of sketch-world pictures encoded with its own
`sketch_targets`, and fits (or reads) the UMAP map of that gallery.

When the default checkpoint folder (assets/checkpoints/demo) does not exist yet, the `demo` preset with random weights
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
import torch
from PIL import Image

from analysis.neighbours import Gallery, gallery_fingerprint, load_or_build_gallery, top_k
from analysis.projection import Projection, enable_umap_kernel_cache, load_or_fit_projection
from app import gallery as app_gallery
from app.examples import Example, load_examples
from model.core.checkpoint import WEIGHTS_NAME, CheckpointError, is_checkpoint_dir, load_model
from model.core.config import PRETRAINED_PRESETS, SCRATCH_PRESETS
from model.generation.cli import DEFAULT_CHECKPOINT
from model.generation.debug import bias_towards_sketching

try:  # Hugging Face ZeroGPU: borrows a GPU for the decorated call; a no-op elsewhere
    import spaces

    gpu = spaces.GPU
except ImportError:  # pragma: no cover - spaces is in requirements.txt

    def gpu(fn):
        return fn


ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REGISTRY = str(ROOT / "assets" / "checkpoints" / "registry.json")
log = logging.getLogger("app")


@dataclass
class ServiceConfig:
    checkpoint: str = DEFAULT_CHECKPOINT  # what the app starts on: a folder, a preset name or a hub id
    cache_dir: str = "cache/app"  # gallery vectors and UMAP maps, one folder per gallery fingerprint
    event_store: str = "cache/events"  # every answer's switch events (model/events.py)
    registry: str = DEFAULT_REGISTRY  # the checkpoint registry the Sweeps tab reads
    gallery_per_family: int = 40  # sketch-world instances per family whose pictures make up the gallery
    max_models: int = 2  # checkpoints kept loaded
    device: str | None = None  # None: cuda when available, else cpu
    debug_sketch_bias: float = 0.0  # test-only: added to the ⟨START⟩ logit so that random weights sketch


@dataclass(eq=False)
class Loaded:
    name: str  # how the app names the checkpoint: a folder relative to the repo, a preset or a hub id
    model: torch.nn.Module
    gallery: Gallery
    projection: Projection | None
    decoder: object | None  # analysis.latent_decoder.LatentDecoder
    notes: dict[str, str] = field(default_factory=dict)  # weights, decoder, map: shown to the user when set
    _points: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def points(self) -> pd.DataFrame | None:
        """Gallery metadata with map coordinates x, y (None without a map)."""
        if self._points is None and self.projection is not None:
            self._points = self.projection.points(self.gallery)
        return self._points

    def describe(self) -> str:
        config = self.model.config
        return (
            f"`{self.name}` · K = {config.latent_budget} latents per sketch · D = {config.hidden_size} · "
            f"T = {config.diffusion_steps} diffusion steps · gallery of {len(self.gallery)} pictures · "
            f"{'decoder' if self.decoder is not None else 'no decoder'}"
        )


def canonical(spec: str) -> str:
    """The name the app uses for a checkpoint: folders relative to the repository when inside it."""
    spec = spec.strip()
    path = Path(spec).expanduser()
    if not (path.exists() or path.is_absolute()):  # a preset name or a hub id
        return spec
    path = path.resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _looks_like_folder(spec: str) -> bool:
    # A hub id is "owner/name"; anything else with a slash, or starting like a path, is meant as a folder.
    if spec.startswith(("/", ".", "~")) or spec.count("/") > 1:
        return True
    return "/" in spec and Path(spec.split("/")[0]).is_dir()


def _folder(name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else ROOT / path


class Service:
    def __init__(self, config: ServiceConfig):
        self.config = config
        self.default_name = canonical(config.checkpoint)
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
    def load(self, name: str | None = None) -> Loaded:
        """The loaded checkpoint `name` (default: the app's); CheckpointError with the reason when it cannot load."""
        name = canonical(name) if name and name.strip() else self.default_name
        with self._lock:
            if name in self._models:
                self._models.move_to_end(name)
                return self._models[name]
            name_lock = self._loading.setdefault(name, threading.Lock())
        with name_lock:  # one load per checkpoint at a time; other checkpoints keep serving meanwhile
            with self._lock:
                if name in self._models:
                    return self._models[name]
            loaded = self._load(name)
            with self._lock:
                self._models[name] = loaded
                while len(self._models) > self.config.max_models:
                    evicted, _ = self._models.popitem(last=False)
                    log.info("unloaded checkpoint %s", evicted)
        return loaded

    def loaded_names(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def banner(self, loaded: Loaded) -> str:
        return loaded.notes.get("weights", "")

    def checkpoint_choices(self) -> list[str]:
        """The default, the registered checkpoints, whatever is loaded, and the from-scratch presets."""
        names = [self.default_name, *[e["path"] for e in self.registry_entries()], *self.loaded_names()]
        names += list(SCRATCH_PRESETS)
        return list(dict.fromkeys(names))

    def registry_entries(self) -> list[dict]:
        """The registry's checkpoint entries ([] when there is no registry or it cannot be read)."""
        from analysis.sweeps import load_registry

        if not Path(self.config.registry).is_file():
            return []
        try:
            return load_registry(self.config.registry)["checkpoints"]
        except ValueError as err:
            log.warning("%s", err)
            return []

    def _load(self, name: str) -> Loaded:
        notes = {}
        spec = name
        if name == canonical(DEFAULT_CHECKPOINT) and not is_checkpoint_dir(str(_folder(name))):
            spec = "demo"
            notes["weights"] = (
                f"⚠️ No trained checkpoint at `{name}` yet, so the app runs the `demo` preset with **random weights**: "
                "the answers are gibberish until a trained checkpoint ships there."
            )
        elif name in SCRATCH_PRESETS:
            notes["weights"] = (
                f"⚠️ `{name}` is a from-scratch preset with **random weights**: the answers are gibberish."
            )
        folder = _folder(spec) if is_checkpoint_dir(str(_folder(spec))) else None
        if folder is None and spec not in SCRATCH_PRESETS and spec not in PRETRAINED_PRESETS:
            if _looks_like_folder(spec):
                raise CheckpointError(f"checkpoint folder {spec!r} does not exist or has no config.json and weights")
            if "/" not in spec:
                raise CheckpointError(
                    f"unknown checkpoint {spec!r}: not a folder, and not one of the presets "
                    f"{', '.join([*SCRATCH_PRESETS, *PRETRAINED_PRESETS])}"
                )
        log.info("loading checkpoint %s on %s", spec, self.device)
        try:
            model = load_model(str(folder) if folder else spec, device=self.device).eval()
        except CheckpointError:
            raise
        except (OSError, ValueError, RuntimeError) as err:  # hub downloads and transformers' own checks
            raise CheckpointError(f"could not load checkpoint {spec!r}: {err}") from err
        if self.config.debug_sketch_bias:
            _add_sketch_bias(model, self.config.debug_sketch_bias)
        gallery = self._gallery(model, spec, folder)
        projection = None
        start = time.perf_counter()
        try:
            projection = load_or_fit_projection(self._cache_dir(gallery.fingerprint), gallery)
            log.info("UMAP map of the gallery ready in %.1f s", time.perf_counter() - start)
        except ValueError as err:  # e.g. a gallery smaller than UMAP's neighbourhood
            notes["map"] = f"no map: {err}"
        decoder, note = _load_decoder(folder)
        if note:
            notes["decoder"] = note
        return Loaded(name, model, gallery, projection, decoder, notes)

    def _cache_dir(self, fingerprint: str) -> Path:
        return Path(self.config.cache_dir) / "gallery" / fingerprint[:16]

    def _gallery(self, model, spec: str, folder: Path | None) -> Gallery:
        weights = folder / WEIGHTS_NAME if folder is not None else None
        # Presets and hub checkpoints have no weights file to hash: their name and config stand in for it.
        config_digest = hashlib.sha256(model.config.to_json_string().encode()).hexdigest()
        fingerprint = gallery_fingerprint(
            weights,
            app_gallery.DATASET_ID,
            model.config.latent_budget,
            per_family=self.config.gallery_per_family,
            checkpoint="" if weights else spec,
            config=config_digest,
        )
        per_family = self.config.gallery_per_family

        def build() -> Gallery:
            start = time.perf_counter()
            images = app_gallery.gallery_images(per_family)
            log.info("encoding a gallery of %d sketch-world pictures (once; then cached)", len(images))
            gallery = app_gallery.encode_gallery(model, images)
            log.info("gallery encoded in %.1f s", time.perf_counter() - start)
            return gallery

        return load_or_build_gallery(self._cache_dir(fingerprint), fingerprint, build)

    # ---- sketches -------------------------------------------------------------------------------------------------
    def neighbours(self, loaded: Loaded, latents: np.ndarray, k: int = 5) -> pd.DataFrame:
        """The k most similar gallery pictures of one sketch (K, D): rank, similarity, key, family, role, …"""
        return top_k(loaded.gallery, np.asarray(latents, dtype=np.float32), k)

    def place(self, loaded: Loaded, latents: np.ndarray) -> tuple[float, float] | None:
        if loaded.projection is None:
            return None
        x, y = loaded.projection.transform(np.asarray(latents, dtype=np.float32))[0]
        return float(x), float(y)

    def decode(self, loaded: Loaded, latents: np.ndarray) -> Image.Image | None:
        if loaded.decoder is None:
            return None
        from analysis.latent_decoder import decode_to_image

        return decode_to_image(loaded.decoder, np.asarray(latents, dtype=np.float32), size=224)

    def gallery_latents(self, loaded: Loaded, index: int) -> np.ndarray:
        """Gallery row `index` as (K, D) (unit length overall, which cosine similarity ignores)."""
        gallery = loaded.gallery
        return gallery.vectors[index].reshape(gallery.num_latents, gallery.dim)


@gpu
def stream_events(engine, prompt, settings):
    """The engine's TraceEvents for one prompt; on ZeroGPU this is the call that holds the GPU."""
    yield from engine.stream([prompt], settings)


def _load_decoder(folder: Path | None) -> tuple[object | None, str]:
    """(decoder, '') or (None, why there are no decoded pictures)."""
    if folder is None:
        return None, "presets and hub checkpoints have no latent decoder, so sketches have no decoded picture"
    try:
        from analysis.latent_decoder import load_decoder
    except ImportError as err:  # the decoder module is optional
        return None, f"no decoded pictures: the latent decoder module is not available ({err})"
    try:
        decoder = load_decoder(folder)
    except (ValueError, OSError) as err:
        return None, f"no decoded pictures: {err}"
    if decoder is None:
        return None, f"no decoded pictures: {canonical(str(folder))} has no latent decoder"
    return decoder, ""


def _add_sketch_bias(model, bias: float) -> None:
    """Test-only: make a random-weight model sketch (model/debug.py), with fitted latent statistics."""
    if bool((model.latent_std == 1).all()):  # statistics never fitted: fit them on a few gallery pictures
        images = [image for image, _ in app_gallery.gallery_images(1)[:8]]
        model.fit_latent_stats(model.sketch_targets(images).flatten(0, 1))
    bias_towards_sketching(model, bias)
