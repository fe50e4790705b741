"""The loaded checkpoints (a small LRU cache), each with its gallery, nearest-neighbour index, UMAP map and latent
decoder: the heavy half of the app's service, imported behind the page (app/stack.py) and reached as
`service.models`.

    models = Models(config, service.wait_quiet)        # app/service.py builds it in its loader thread
    loaded = models.load(resolved)                     # the model now; its gallery and map build in the background
    loaded.wait_ready(timeout=60)                      # or poll loaded.ready / loaded.status
    models.neighbours(loaded, latents, k=5)            # DataFrame from analysis.neighbours.top_k (None while building)
    models.place(loaded, latents)                      # (x, y) on the map, or None

Names are resolved by `Service.resolve` before anything is loaded here (the `Resolved` it returns says what the name
means and how the page shows it); the app's default checkpoint stays loaded (`pin`), with the most recently used
others up to `max_models` in all, and one user switching checkpoints never changes what another is running.

Loading a checkpoint returns as soon as the model is loaded: the gallery of sketch-world pictures (encoded with the
checkpoint's own `sketch_targets`, cached under `cache_dir` by `gallery_fingerprint`) and its UMAP map are built in a
background thread, and the page says how far they are (`Loaded.status`); caches are keyed to the weights, so a new
checkpoint needs no shipped cache. Galleries above `EXACT_MAX_ROWS` rows get a reduced-dimension index
(analysis.neighbours.build_index) for fast single queries. `debug_sketch_bias` (test-only) adds a constant to the
⟨START⟩ logit, as the engine tests do, so that a model with random weights sketches.
"""

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import spaces
import torch
from PIL import Image

from analysis.latent_decoder import decode_to_image, load_decoder
from analysis.neighbours import Gallery, ReducedIndex, top_k
from app import gallery as app_gallery
from app import stack
from app.service import ROOT, Resolved, ServiceConfig
from model.core.checkpoint import WEIGHTS_NAME, CheckpointError, load_model
from model.data.vocabulary import VOCABULARY_FILE, load_vocabulary
from model.generation.debug import bias_towards_sketching

log = logging.getLogger("app")
galleries = stack.later("app.galleries")
NUM_NEIGHBOURS = 5  # gallery pictures looked up per sketch


@dataclass(eq=False)
class Loaded:
    name: str  # how the app names the checkpoint: a folder relative to the repo, or what the user typed
    model: torch.nn.Module
    decoder: object | None  # analysis.latent_decoder.LatentDecoder
    weights: Path | None  # the weights file (None for presets and hub checkpoints)
    # weights, decoder, map, vocabulary (why a folder's question words are not checked): shown to the user when set
    notes: dict[str, str] = field(default_factory=dict)
    vocabulary: set[str] | None = None  # the words of its training questions (training_vocabulary.json), if it has one
    # built in the background after loading (None until then):
    gallery: Gallery | None = None
    index: ReducedIndex | None = None  # only for galleries above EXACT_MAX_ROWS
    projection: object | None = None  # analysis.projection.Projection
    status: str = "gallery: not started"
    ready: threading.Event = field(default_factory=threading.Event, repr=False)
    gallery_started: bool = False  # Models.load starts the gallery thread once
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

    picture: Image.Image | None  # the gallery picture, or the sketch decoded (None without a decoder)
    text: str  # markdown: what the point is
    neighbours: list[tuple[Image.Image, pd.Series]]  # its nearest gallery pictures with their rows of `neighbours`


class Models:
    def __init__(self, config: ServiceConfig, wait_quiet=lambda **_: None):
        self.config = config
        self.wait_quiet = wait_quiet  # returns once no answer is running or pending (Service.wait_quiet(on_wait=…))
        self.device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._models: OrderedDict[str, Loaded] = OrderedDict()
        self._pinned: set[str] = set()  # never unloaded: the app's default checkpoint
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    # ---- checkpoints ----------------------------------------------------------------------------------------------
    def load(self, resolved: Resolved, gallery: bool = True, pin: bool = False) -> Loaded:
        """The loaded checkpoint; CheckpointError with the reason when it cannot load. Returns once the model is
        loaded; the gallery and map follow in a background thread (`Loaded.ready`). `gallery=False` (a Compare
        column of a model that never sketches) leaves the gallery for a later load that asks for it. `pin` keeps it
        loaded for good (the app's default: every new page shows it); the others make room in LRU order."""
        key = resolved.key
        with self._lock:
            if pin:
                self._pinned.add(key)
            loaded = self._models.get(key)
            if loaded is not None:
                self._models.move_to_end(key)
            name_lock = self._loading.setdefault(key, threading.Lock())
        if loaded is None:
            with name_lock:  # one load per checkpoint at a time; other checkpoints keep serving meanwhile
                loaded = self.peek(key)  # loaded by the thread this one waited for, or not yet
                loaded = loaded if loaded is not None else self._load(resolved)
                with self._lock:
                    self._models[key] = loaded
                    self._models.move_to_end(key)
                    self._make_room()
        if gallery and self.config.galleries:
            self._start_gallery(loaded)
        return loaded

    def _make_room(self) -> None:
        """Unload the least recently used checkpoints that are not pinned, down to `max_models` (under the lock)."""
        for key in [k for k in self._models if k not in self._pinned]:
            if len(self._models) <= self.config.max_models:
                return
            log.info("unloaded checkpoint %s", self._models.pop(key).name)

    def _start_gallery(self, loaded: Loaded) -> None:
        with self._lock:
            if loaded.gallery_started:
                return
            loaded.gallery_started = True
        threading.Thread(
            target=self._build_gallery, args=(loaded,), name=f"gallery {loaded.name}", daemon=True
        ).start()

    def peek(self, key: str) -> Loaded | None:
        """The checkpoint if it is loaded now (never loads)."""
        with self._lock:
            return self._models.get(key)

    def loaded_names(self) -> list[str]:
        with self._lock:
            return [loaded.name for loaded in self._models.values()]

    def _load(self, resolved: Resolved) -> Loaded:
        shown = resolved.shown
        log.info("loading checkpoint %s on %s", shown, self.device)
        try:
            model = load_model(resolved.spec, device=self.device, root=ROOT).eval()
        except CheckpointError:
            raise
        except (OSError, ValueError, RuntimeError) as err:  # hub downloads and transformers' own checks
            raise CheckpointError(f"could not load checkpoint {shown}: {_without_server_paths(err)}") from err
        if self.config.debug_sketch_bias:
            _add_sketch_bias(model, self.config.debug_sketch_bias)
        notes = {"weights": resolved.banner} if resolved.banner else {}
        decoder, note = _load_decoder(resolved.folder, shown)
        if note:
            notes["decoder"] = note
        weights = resolved.folder / WEIGHTS_NAME if resolved.folder is not None else None
        vocabulary, note = _load_vocabulary(resolved.folder, shown)
        if note:
            notes["vocabulary"] = note
        return Loaded(shown, model, decoder, weights, notes, vocabulary=vocabulary)

    def _build_gallery(self, loaded: Loaded) -> None:
        """The background thread `load` starts: once no answer is running (answers come first), the gallery,
        index and map (app/galleries.py, which imports umap-learn: the first answer does not wait for it)."""
        loaded.status = "gallery: starting"

        def waiting() -> None:
            loaded.status = "gallery: waiting for the answers in flight"

        self.wait_quiet(on_wait=waiting)
        galleries.build(loaded, self.config, self.wait_quiet)

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
        return decoded_picture(loaded, latents)

    def gallery_latents(self, loaded: Loaded, index: int) -> np.ndarray:
        """Gallery row `index` as (K, D) (unit length overall, which cosine similarity ignores)."""
        gallery = loaded.gallery
        return gallery.vectors[index].reshape(gallery.num_latents, gallery.dim)

    def neighbour_pictures(
        self, loaded: Loaded, latents: np.ndarray, k: int = NUM_NEIGHBOURS, skip_row: int | None = None
    ) -> list[tuple[Image.Image, pd.Series]]:
        """(picture, its row of `neighbours`: rank, similarity, family, role, …) of the k nearest gallery pictures
        ([] while the gallery is being built); `skip_row` leaves a gallery picture out of its own neighbours."""
        frame = self.neighbours(loaded, latents, k + (skip_row is not None))
        if frame is None:
            return []
        if skip_row is not None:
            frame = frame[frame["gallery_index"] != skip_row].head(k)
        return [(app_gallery.picture(row), row) for _, row in frame.iterrows()]

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
            latents = entry["latents"]
            return Point(self.decode(loaded, latents), text, self.neighbour_pictures(loaded, latents))
        if loaded.gallery is None or number >= len(loaded.gallery):
            size = 0 if loaded.gallery is None else len(loaded.gallery)
            raise ValueError(f"gallery row {number} does not exist; the gallery has {size} rows ({loaded.status})")
        row = loaded.gallery.meta.iloc[number]
        text = f"**{row['key']}** · {row['family']} · {row['role']} picture"
        latents = self.gallery_latents(loaded, number)
        return Point(app_gallery.picture(row), text, self.neighbour_pictures(loaded, latents, skip_row=number))


def decoded_picture(loaded: Loaded, latents: np.ndarray) -> Image.Image | None:
    """One sketch (K, D) as its checkpoint's latent decoder draws it; None without a decoder."""
    if loaded.decoder is None:
        return None
    return decode_to_image(loaded.decoder, np.asarray(latents, dtype=np.float32), size=224)


# On Hugging Face ZeroGPU these two calls borrow a GPU while they run; elsewhere `spaces.GPU` does nothing.
@spaces.GPU
def stream_events(engine, prompt, settings):
    """The engine's TraceEvents for one prompt."""
    yield from engine.stream([prompt], settings)


@spaces.GPU
def generate_traces(engine, prompts, settings):
    """The engine's Traces for prompts that share settings (one batch)."""
    return engine.generate(prompts, settings)


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


def _load_vocabulary(folder: Path | None, shown: str) -> tuple[set[str] | None, str]:
    """(the checkpoint's training vocabulary, '') or (None, why its questions' words cannot be checked). Presets and
    hub checkpoints are not checked and say nothing: the random-weight presets carry a banner, and a pretrained
    Qwen2.5-VL read far more words than any question holds."""
    if folder is None:
        return None, ""
    try:
        vocabulary = load_vocabulary(folder)
    except (ValueError, OSError) as err:
        return None, f"its {VOCABULARY_FILE} cannot be read ({str(err).replace(str(folder), shown)})"
    if vocabulary is None:
        return None, f"it has no {VOCABULARY_FILE} (the words of the questions it was trained on)"
    return vocabulary, ""


def _add_sketch_bias(model, bias: float) -> None:
    """Test-only: make a random-weight model sketch (model/generation/debug.py), with fitted latent statistics."""
    if bool((model.latent_std == 1).all()):  # statistics never fitted: fit them on a few gallery pictures
        images = [image for image, _ in app_gallery.gallery_images(1)[:8]]
        model.fit_latent_stats(model.sketch_targets(images).flatten(0, 1))
    bias_towards_sketching(model, bias)
