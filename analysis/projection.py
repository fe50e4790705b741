"""A seeded 2-D UMAP map of the gallery, cached on disk without pickle, with new sketches placed by `transform`.

    projection = load_or_fit_projection("cache/gallery/ckpt-a", gallery)   # fits once, then reads the cache
    points = projection.points(gallery)                                      # meta + x, y for the scatter
    xy = projection.transform(sketches)                                      # (B, 2), no refit

How the map survives a new process although umap-learn models can only be persisted by pickling:

1. The k-nearest-neighbour graph is computed here, exactly (chunked matrix products on the unit vectors; Euclidean
   distance sqrt(2 - 2 cos)), and handed to UMAP as a sparse precomputed distance matrix. This also keeps
   pynndescent out of the way (its numba compilation cost about a minute per process here), and UMAP's small-data
   path, which calls a numba distance from Python for every pair (~10 s for 3000 points).
2. `fit_projection` runs the full seeded UMAP fit; the coordinates and the kNN graph (CSR arrays) are cached in one
   safetensors file with the cache key and a checksum as metadata.
3. A new process rebuilds a transform-capable model by fitting UMAP on the cached graph with
   `transform_mode="graph"`, which computes everything `transform` reads (fuzzy graph, a/b curve parameters,
   disconnection distance) and skips the layout optimisation, then setting `embedding_` to the cached coordinates.
   `transform` uses `embedding_` only as the fixed layout new points are optimised against, so the restored model
   places a sketch exactly where the originally fitted one does (tested). Refitting with `init=cached_coords`, the
   other idea, does not reproduce the cache: UMAP rescales an initial layout to a 10x10 box and optimises it again.

Cost (3000 x 8192 gallery, 2 busy cores): ~0.3 s to restore in a process where umap-learn's numba kernels are
already compiled; ~11 s in a new process, nearly all of it compiling them, since umap-learn caches almost none on
disk. `enable_umap_kernel_cache()` (opt-in, see there) brings a later new process down to ~0.7 s.

New sketches are placed from their n_neighbors nearest gallery vectors (exact), passed as a sparse distance row.
Within a process the restored `Projection` is memoised per cache file, so later calls do not redo any of this.

Simplified: the map is fitted on gallery images only; sketches are transformed into it, never fitted.
"""

import hashlib
import json
import os
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numba.core.dispatcher import Dispatcher
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

from analysis.neighbours import Gallery, flatten_normalise
from model.core.atomic import write_bytes

with warnings.catch_warnings():  # umap warns about tensorflow/parametric UMAP on import
    warnings.simplefilter("ignore")
    import umap

_DISTANCE_FLOOR = 1e-6  # stored distances must stay > 0: scipy drops explicit zeros and UMAP needs k per row


class ProjectionCacheWarning(UserWarning):
    """The cached projection was damaged and is being refitted."""


@dataclass(frozen=True)
class ProjectionParams:
    seed: int = 0  # UMAP random_state; fixing it also makes UMAP single-threaded and deterministic
    n_neighbors: int = 15  # neighbours per point in the kNN graph
    min_dist: float = 0.1  # UMAP's minimum distance between embedded points


@dataclass(eq=False)
class Projection:
    coords: np.ndarray  # (N, 2) float32, row i = gallery row i
    params: ProjectionParams
    gallery_fingerprint: str
    model: umap.UMAP = field(repr=False)  # transform-capable, with embedding_ == coords
    vectors: np.ndarray = field(repr=False)  # (N, K*D) the gallery vectors new sketches are compared with
    graph: sp.csr_matrix = field(repr=False)  # (N, N) the kNN distances the map was fitted on

    def transform(self, sketches: np.ndarray) -> np.ndarray:
        """Map coordinates (B, 2) for sketches (K, D) or (B, K, D)."""
        queries = flatten_normalise(sketches)
        if queries.shape[1] != self.vectors.shape[1]:
            raise ValueError(
                f"sketches flatten to width {queries.shape[1]}, the map was fit on {self.vectors.shape[1]}"
            )
        k = self.params.n_neighbors
        sims = queries @ self.vectors.T  # (B, N)
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        dist = _distance(np.take_along_axis(sims, idx, axis=1))
        rows = np.repeat(np.arange(len(queries)), k)
        distances = sp.csr_matrix((dist.ravel(), (rows, idx.ravel())), shape=(len(queries), len(self.vectors)))
        with warnings.catch_warnings():  # "Transforming new data with precomputed metric": that is the intent
            warnings.simplefilter("ignore")
            return np.asarray(self.model.transform(distances), dtype=np.float32)

    def points(self, gallery: Gallery) -> pd.DataFrame:
        """The gallery metadata with x, y columns, for plotting."""
        if len(gallery) != len(self.coords):
            raise ValueError(f"gallery has {len(gallery)} rows, the projection {len(self.coords)}")
        return gallery.meta.assign(x=self.coords[:, 0], y=self.coords[:, 1])


_MEMO: dict[str, Projection] = {}


def forget_restored() -> None:
    """Drop the projections memoised in this process, so the next load reads its cache file again (benchmarks
    measure a restore as a new process would see it)."""
    _MEMO.clear()


def enable_umap_kernel_cache() -> int:
    """Opt in to numba's on-disk cache for umap-learn's kernels; returns how many kernels were switched over.

    umap-learn compiles its numba kernels (parallel ones among them) afresh in every process and caches almost none:
    restoring a map and placing the first sketch cost ~11 s in a new process on a 2-core machine, nearly all of it
    compilation. With this called before the first fit or transform, the second and later processes load the
    compiled code instead (~0.7 s measured). `Dispatcher.enable_caching` is public numba API; the files go where
    numba puts its caches (the package's __pycache__, a user cache directory, or $NUMBA_CACHE_DIR). Numba serialises
    those files itself (with pickle); no data of ours is stored that way, which is why this is opt-in.
    """
    count = 0
    for module in (umap.umap_, umap.layouts, umap.utils):
        for value in vars(module).values():
            if isinstance(value, Dispatcher) and value.__module__ == module.__name__:
                value.enable_caching()
                count += 1
    return count


def knn_graph(vectors: np.ndarray, n_neighbors: int, chunk: int = 1024) -> sp.csr_matrix:
    """Symmetric sparse (N, N) Euclidean distances to each row's exact n_neighbors nearest other rows."""
    n = len(vectors)
    if n <= n_neighbors:
        raise ValueError(f"need more than n_neighbors={n_neighbors} gallery rows for a map, got {n}")
    rows, cols = [], []
    for start in range(0, n, chunk):
        sims = vectors[start : start + chunk] @ vectors.T  # (chunk, N)
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf  # exclude self
        rows.append(np.repeat(np.arange(start, start + len(sims)), n_neighbors))
        cols.append(np.argpartition(-sims, n_neighbors - 1, axis=1)[:, :n_neighbors].ravel())
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    # UMAP wants a symmetric pattern; union i->j and j->i, with the distance recomputed per pair.
    pairs = np.unique(np.concatenate([np.stack([rows, cols], 1), np.stack([cols, rows], 1)]), axis=0)
    dots = np.einsum("ij,ij->i", vectors[pairs[:, 0]], vectors[pairs[:, 1]])
    return sp.csr_matrix((_distance(dots), (pairs[:, 0], pairs[:, 1])), shape=(n, n))


def fit_projection(gallery: Gallery, params: ProjectionParams = ProjectionParams()) -> Projection:
    """Full seeded UMAP fit of the gallery vectors."""
    graph = knn_graph(gallery.vectors, params.n_neighbors)
    model = _fit(_umap(params), graph)
    return Projection(model.embedding_.astype(np.float32), params, gallery.fingerprint, model, gallery.vectors, graph)


def restore_projection(
    gallery: Gallery, coords: np.ndarray, graph: sp.csr_matrix, params: ProjectionParams
) -> Projection:
    """A transform-capable Projection from cached coordinates and kNN graph, without re-optimising the layout."""
    coords = np.asarray(coords, dtype=np.float32)
    # Graph mode builds what transform reads (fuzzy graph, a/b, disconnection distance) and skips the layout.
    model = _fit(_umap(params, transform_mode="graph"), graph)
    model.transform_mode = "embedding"
    model.embedding_ = coords.copy()
    model._n_features_out = coords.shape[1]  # what fit sets in embedding mode (sklearn's output-feature count)
    return Projection(coords, params, gallery.fingerprint, model, gallery.vectors, graph)


def load_or_fit_projection(
    cache_dir: str | os.PathLike, gallery: Gallery, params: ProjectionParams = ProjectionParams()
) -> Projection:
    """The projection for this gallery and params: from memory, else from the cache file, else a fresh fit."""
    if not gallery.fingerprint:
        raise ValueError("gallery has no fingerprint; load it with load_or_build_gallery so the cache can be keyed")
    key = hashlib.sha256(json.dumps([gallery.fingerprint, asdict(params)], sort_keys=True).encode()).hexdigest()
    path = os.path.join(cache_dir, f"projection-{key[:16]}.safetensors")
    if path in _MEMO:
        return _MEMO[path]
    projection = None
    if os.path.exists(path):
        try:
            coords, graph = _read_cache(path, key, len(gallery))
            try:
                projection = restore_projection(gallery, coords, graph, params)
            except ValueError as err:  # UMAP rejects a graph that is not symmetric or short of neighbours
                raise _CacheMiss(f"damaged: UMAP rejected the cached graph ({err})") from None
        except _CacheMiss as miss:
            warnings.warn(f"projection cache {path!r}: {miss}; refitting", ProjectionCacheWarning, stacklevel=2)
    if projection is None:
        projection = fit_projection(gallery, params)
        os.makedirs(cache_dir, exist_ok=True)
        _write_cache(path, key, projection)
    _MEMO[path] = projection
    return projection


class _CacheMiss(Exception):
    pass


def _write_cache(path: str, key: str, projection: Projection) -> None:
    graph = projection.graph
    tensors = {
        "coords": np.ascontiguousarray(projection.coords, dtype=np.float32),
        "knn_indptr": graph.indptr.astype(np.int64),
        "knn_indices": graph.indices.astype(np.int64),
        "knn_distances": graph.data.astype(np.float32),
    }
    meta = {
        "key": key,
        "sha256": _digest(tensors),
        "gallery_fingerprint": projection.gallery_fingerprint,
        "params": json.dumps(asdict(projection.params)),
    }
    write_bytes(path, save(tensors, metadata=meta))


def _read_cache(path: str, key: str, num_rows: int) -> tuple[np.ndarray, sp.csr_matrix]:
    try:
        with safe_open(path, framework="numpy") as handle:
            meta = handle.metadata() or {}
            found, expected_digest = meta.get("key"), meta.get("sha256")
            coords, indptr = handle.get_tensor("coords"), handle.get_tensor("knn_indptr")
            indices, distances = handle.get_tensor("knn_indices"), handle.get_tensor("knn_distances")
    except (OSError, ValueError, KeyError, SafetensorError) as err:
        raise _CacheMiss(f"damaged ({type(err).__name__}: {err})") from None
    if found != key:
        raise _CacheMiss(f"damaged: file is for key {found!r}")
    tensors = {"coords": coords, "knn_indptr": indptr, "knn_indices": indices, "knn_distances": distances}
    if _digest(tensors) != expected_digest:
        raise _CacheMiss("damaged: contents do not match their checksum")
    if coords.shape != (num_rows, 2) or indptr.shape != (num_rows + 1,) or len(indices) != len(distances):
        raise _CacheMiss(f"damaged: coords {coords.shape}, indptr {indptr.shape} for a gallery of {num_rows} rows")
    if indptr[-1] != len(indices) or (len(indices) and (indices.min() < 0 or indices.max() >= num_rows)):
        raise _CacheMiss("damaged: kNN graph arrays are inconsistent")
    if not np.all(np.isfinite(coords)) or not np.all(distances > 0):
        raise _CacheMiss("damaged: non-finite coordinates or non-positive distances")
    return coords, sp.csr_matrix((distances, indices, indptr), shape=(num_rows, num_rows))


def _digest(tensors: dict[str, np.ndarray]) -> str:
    # Bit flips inside a tensor still parse; a checksum over the bytes catches them.
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode() + np.ascontiguousarray(tensors[name]).tobytes())
    return digest.hexdigest()


def _umap(params: ProjectionParams, transform_mode: str = "embedding") -> umap.UMAP:
    return umap.UMAP(
        n_components=2,
        n_neighbors=params.n_neighbors,
        min_dist=params.min_dist,
        metric="precomputed",
        random_state=params.seed,
        transform_mode=transform_mode,
        n_jobs=1,  # what a fixed random_state forces anyway; saying so silences UMAP's warning
    )


def _fit(model: umap.UMAP, graph: sp.csr_matrix) -> umap.UMAP:
    with warnings.catch_warnings():  # we never inverse_transform, so UMAP's warning about it is noise
        warnings.filterwarnings("ignore", message="using precomputed metric")
        return model.fit(graph)


def _distance(dots: np.ndarray) -> np.ndarray:
    # Euclidean distance between unit vectors from their dot product.
    return np.maximum(np.sqrt(np.maximum(2.0 - 2.0 * dots, 0.0)), _DISTANCE_FLOOR).astype(np.float32)
