"""A loaded checkpoint's gallery, nearest-neighbour index and UMAP map, built in the background after it loads.

    build(loaded, config, wait_quiet)    # sets loaded.gallery, .index, .projection and .status, then loaded.ready

The gallery of sketch-world pictures is encoded with the checkpoint's own `sketch_targets` and cached under
`config.cache_dir` by `gallery_fingerprint` (keyed to the weights, so a new checkpoint needs no shipped cache);
galleries above `EXACT_MAX_ROWS` rows get a reduced-dimension index (analysis.neighbours.build_index) for fast single
queries. This module imports umap-learn (numba, scipy, pynndescent: seconds of imports), so app/stack.py leaves it to
the gallery thread, after the checkpoint has loaded and the first answer could run; between batches of pictures the
build yields to running answers (`wait_quiet`).
"""

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from analysis.neighbours import Gallery, build_index, gallery_fingerprint, load_or_build_gallery
from analysis.projection import enable_umap_kernel_cache, load_or_fit_projection
from app import gallery as app_gallery
from app.service import ServiceConfig

EXACT_MAX_ROWS = 4096  # up to here an exact scan is a few ms; above, the reduced-dimension index serves queries
log = logging.getLogger("app")

# umap-learn compiles its numba kernels afresh in every process (~11 s on 2 cores); cached, a restart takes ~1 s.
# numba pickles its own cache files; none of our data is stored that way.
enable_umap_kernel_cache()


def build(loaded, config: ServiceConfig, wait_quiet: Callable[[], None]) -> None:
    """Gallery, index and map of a loaded checkpoint (app.models.Loaded); never raises: a failure is its status."""
    try:
        loaded.gallery = _gallery(loaded, config, wait_quiet)
        if len(loaded.gallery) > EXACT_MAX_ROWS:
            loaded.status = f"gallery: indexing {len(loaded.gallery)} pictures"
            loaded.index = build_index(loaded.gallery)
        loaded.status = f"map: fitting UMAP on {len(loaded.gallery)} pictures (once; then cached)"
        start = time.perf_counter()
        try:
            loaded.projection = load_or_fit_projection(_cache_dir(config, loaded.gallery.fingerprint), loaded.gallery)
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


def _cache_dir(config: ServiceConfig, fingerprint: str) -> Path:
    return Path(config.cache_dir) / "gallery" / fingerprint[:16]


def _gallery(loaded, config: ServiceConfig, wait_quiet: Callable[[], None]) -> Gallery:
    model = loaded.model
    # Presets and hub checkpoints have no weights file to hash: their name and config stand in for it.
    config_digest = hashlib.sha256(model.config.to_json_string().encode()).hexdigest()
    fingerprint = gallery_fingerprint(
        loaded.weights,
        app_gallery.DATASET_ID,
        model.config.latent_budget,
        per_family=config.gallery_per_family,
        checkpoint="" if loaded.weights else loaded.name,
        config=config_digest,
        debug_sketch_bias=config.debug_sketch_bias,
    )

    def build() -> Gallery:
        start = time.perf_counter()
        images = app_gallery.gallery_images(config.gallery_per_family)
        log.info("encoding a gallery of %d sketch-world pictures (once; then cached)", len(images))

        def progress(done: int) -> None:
            loaded.status = f"gallery: encoding pictures, {done} of {len(images)} done (once; then cached)"
            wait_quiet()

        gallery = app_gallery.encode_gallery(model, images, progress)
        log.info("gallery encoded in %.1f s", time.perf_counter() - start)
        return gallery

    loaded.status = "gallery: reading the cache"
    return load_or_build_gallery(_cache_dir(config, fingerprint), fingerprint, build)
