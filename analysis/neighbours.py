"""Nearest real images to a sketch: a gallery of encoded images, exact cosine top-k, and recall@k.

A sketch is K latents in the model's vision-embedding space; a gallery image is encoded the same way (the model's
vision encoder, average-pooled to K tokens), so both flatten to K*D vectors and compare by cosine similarity.

    gallery = load_or_build_gallery("cache/gallery/ckpt-a", gallery_fingerprint(weights, "sketchworld-v1", 32),
                                    lambda: build_gallery(images_with_meta, encode))
    top_k(gallery, trace.sketches[0].latents, k=5)       # DataFrame: rank, similarity, example_id, family, role, ...
    recall_at_k(sketches, true_keys, gallery, ks=(1, 5))  # {"recall@1": ..., "recall@5": ..., "num_queries": B}

The on-disk cache (one per checkpoint directory) holds `gallery.safetensors` (the vectors), `gallery_meta.parquet`
and `gallery.json` (fingerprint, shapes and SHA-256 of the other two). No pickle anywhere. Each file is written to a
temporary name, fsynced and renamed; the manifest goes last and its checksums make a half-replaced set read as
damaged. A missing, stale (other fingerprint) or damaged cache is rebuilt with a `GalleryCacheWarning` saying why.

Exact search is one matrix product; a 10k x 8192 float32 gallery is 330 MB, so a single exact query is bound by
memory bandwidth (15-60 ms on a 2-core machine). `build_index` adds a reduced-dimension index for large galleries:

    index = build_index(gallery)                      # top principal directions of the gallery, and the rows in them
    top_k(gallery, sketch, k=5, index=index)          # candidates by the reduced vectors, re-ranked exactly

A query is projected onto the `dim` principal directions (uncentred, so inner products are kept), the
`num_candidates` best rows by the reduced inner product are gathered, and those are re-ranked by their exact cosine
similarity; the similarities returned are always exact. The index is approximate only in which rows reach the
re-ranking: `recall_of_index` measures that against the exact scan. On real encoder latents most of the energy lies
in few directions; on isotropic random vectors no reduction works (benchmarks/bench_analysis.py says which data it
uses). Plain numpy instead of faiss: the gallery is small enough, and the re-ranking keeps every number exact.
"""

import hashlib
import io
import json
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors

from model.core.atomic import write_bytes

META_COLUMNS = ("key", "example_id", "family", "role", "image_index", "split")
_VECTORS_FILE = "gallery.safetensors"
_META_FILE = "gallery_meta.parquet"
_MANIFEST_FILE = "gallery.json"
_CACHE_FORMAT = 1


class GalleryCacheWarning(UserWarning):
    """The gallery cache was missing, stale or damaged and is being rebuilt."""


@dataclass(eq=False)  # numpy fields: equality would be ambiguous
class Gallery:
    vectors: np.ndarray  # (N, K*D) float32, each row L2-normalised
    meta: pd.DataFrame  # N rows: key (unique), example_id, family, role ("problem" | "reasoning"), image_index, split
    num_latents: int  # K
    dim: int  # D
    fingerprint: str = ""  # what the vectors were built from; set by load_or_build_gallery
    _key_index: dict[str, int] | None = field(default=None, init=False, repr=False)
    _columns: dict[str, np.ndarray] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        n, width = self.vectors.shape
        if width != self.num_latents * self.dim:
            raise ValueError(f"vectors have width {width}, expected K*D = {self.num_latents}*{self.dim}")
        if len(self.meta) != n:
            raise ValueError(f"gallery has {n} vectors but {len(self.meta)} metadata rows")
        missing = [c for c in META_COLUMNS if c not in self.meta.columns]
        if missing:
            raise ValueError(f"gallery metadata lacks column(s) {missing}")

    def __len__(self) -> int:
        return len(self.vectors)

    def meta_rows(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The metadata of `rows` as numpy columns (building a DataFrame from these is ~20x faster than iloc)."""
        if self._columns is None:
            self._columns = {c: self.meta[c].to_numpy() for c in self.meta.columns}
        return {c: values[rows] for c, values in self._columns.items()}

    def index_of(self, keys: Sequence[str]) -> np.ndarray:
        """Row numbers of the given keys; ValueError listing keys that are not in the gallery."""
        if self._key_index is None:
            self._key_index = {k: i for i, k in enumerate(self.meta["key"])}
        unknown = [k for k in keys if k not in self._key_index]
        if unknown:
            raise ValueError(f"{len(unknown)} key(s) not in the gallery, e.g. {unknown[:3]}")
        return np.array([self._key_index[k] for k in keys], dtype=np.int64)


def flatten_normalise(latents: np.ndarray) -> np.ndarray:
    """(B, K, D) or (K, D) -> (B, K*D) float32 rows of unit length (zero rows stay zero)."""
    x = np.asarray(latents, dtype=np.float32)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"expected latents of shape (K, D) or (B, K, D), got {x.shape}")
    x = x.reshape(len(x), -1)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def build_gallery(
    images_with_meta: Iterable[tuple[Any, dict]],
    encode: Callable[[list], np.ndarray],
    batch_size: int = 32,
) -> Gallery:
    """Encode every (image, meta) pair with `encode(list_of_images) -> (n, K, D)` and normalise.

    `meta` needs example_id and role; family, image_index (0) and split ("") default; key defaults to
    "example_id/role/image_index" and must be unique.
    """
    vectors, rows, batch, shape = [], [], [], None

    def flush() -> None:
        nonlocal shape
        out = np.asarray(encode([image for image, _ in batch]))
        if out.ndim != 3 or len(out) != len(batch):
            raise ValueError(f"encode() returned shape {out.shape} for {len(batch)} images; expected (n, K, D)")
        if shape is not None and out.shape[1:] != shape:
            raise ValueError(f"encode() returned (K, D) = {out.shape[1:]} after {shape} in an earlier batch")
        shape = out.shape[1:]
        vectors.append(flatten_normalise(out))
        batch.clear()

    for image, meta in images_with_meta:
        if "example_id" not in meta or "role" not in meta:
            raise ValueError(f"gallery metadata needs example_id and role, got keys {sorted(meta)}")
        row = {"family": "", "image_index": 0, "split": "", **meta}
        row.setdefault("key", f"{row['example_id']}/{row['role']}/{row['image_index']}")
        rows.append(row)
        batch.append((image, meta))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    if not rows:
        raise ValueError("build_gallery got no images")
    meta = pd.DataFrame(rows)
    meta = meta[[*META_COLUMNS, *[c for c in meta.columns if c not in META_COLUMNS]]]
    duplicated = meta["key"][meta["key"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"gallery keys must be unique; repeated: {duplicated[:5]}")
    return Gallery(np.concatenate(vectors), meta, num_latents=shape[0], dim=shape[1])


@dataclass(eq=False)
class ReducedIndex:
    basis: np.ndarray  # (K*D, dim) orthonormal columns: the gallery's top principal directions (uncentred)
    reduced: np.ndarray  # (N, dim) the gallery rows in that basis
    num_candidates: int  # rows re-ranked exactly per query

    def candidates(self, queries: np.ndarray) -> np.ndarray:
        """(B, n) gallery rows with the largest reduced inner products, n = min(num_candidates, N), unordered."""
        approx = (queries @ self.basis) @ self.reduced.T  # (B, N)
        n = min(self.num_candidates, approx.shape[1])
        return np.argpartition(-approx, n - 1, axis=1)[:, :n]


def build_index(
    gallery: Gallery, dim: int = 128, num_candidates: int = 64, sample: int = 1024, seed: int = 0
) -> ReducedIndex:
    """A reduced-dimension index of the gallery: the top `dim` right singular vectors of (a seeded sample of at most
    `sample` of) its rows, found from the sample's Gram matrix, and every row projected onto them."""
    if dim < 1 or num_candidates < 1:
        raise ValueError(f"dim and num_candidates must be >= 1, got {dim} and {num_candidates}")
    rows = gallery.vectors
    if len(rows) > sample:
        rows = rows[np.sort(np.random.default_rng(seed).choice(len(rows), sample, replace=False))]
    dim = min(dim, len(rows), rows.shape[1])
    # S = U Σ Vᵀ; S Sᵀ = U Σ² Uᵀ is (n, n), small; V = Sᵀ U Σ⁻¹ gives the directions without a (W, W) matrix.
    eigenvalues, eigenvectors = np.linalg.eigh((rows @ rows.T).astype(np.float64))  # (n, n) Gram in float32 first
    top = np.argsort(eigenvalues)[::-1][:dim]
    sigma = np.sqrt(np.maximum(eigenvalues[top], 1e-12))
    basis = rows.T @ (eigenvectors[:, top] / sigma).astype(np.float32)  # (W, dim)
    return ReducedIndex(basis, gallery.vectors @ basis, num_candidates)


def nearest(
    gallery: Gallery, queries: np.ndarray, k: int, index: ReducedIndex | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, similarities), each (B, k), best first, for unit queries (B, K*D): exact, or re-ranked candidates."""
    k = min(k, len(gallery))
    if index is None:
        sims = queries @ gallery.vectors.T  # (B, N)
        rows = np.broadcast_to(np.arange(len(gallery)), sims.shape)
    else:
        rows = index.candidates(queries)  # (B, n)
        sims = np.matmul(gallery.vectors[rows], queries[:, :, None])[..., 0]  # exact cosine of the candidates only
        k = min(k, rows.shape[1])
    # argpartition finds the k best in O(N); only those k get sorted.
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1, kind="stable")
    best = np.take_along_axis(part, order, axis=1)
    return np.take_along_axis(rows, best, axis=1), np.take_along_axis(sims, best, axis=1)


def recall_of_index(gallery: Gallery, index: ReducedIndex, sketches: np.ndarray, k: int = 5) -> float:
    """Fraction of the exact top-k rows that the index also returns in its top k, over the sketches."""
    queries = _queries(gallery, sketches)
    exact, _ = nearest(gallery, queries, k)
    approx, _ = nearest(gallery, queries, k, index)
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)]))


def top_k(gallery: Gallery, sketches: np.ndarray, k: int = 5, index: ReducedIndex | None = None) -> pd.DataFrame:
    """The k most cosine-similar gallery images per sketch; sketch (K, D) or batch (B, K, D). With `index`, the
    candidates come from the reduced-dimension index (similarities are still exact).

    Columns: query (batch row), rank (1 = nearest), similarity, gallery_index, then the gallery metadata.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    queries = _queries(gallery, sketches)
    idx, sims = nearest(gallery, queries, k, index)  # (B, k) each
    k = idx.shape[1]
    columns = {
        "query": np.repeat(np.arange(len(queries)), k),
        "rank": np.tile(np.arange(1, k + 1), len(queries)),
        "similarity": sims.ravel(),
        "gallery_index": idx.ravel(),
    }
    return pd.DataFrame({**columns, **gallery.meta_rows(idx.ravel())})


def recall_at_k(
    sketches: np.ndarray, true_keys: Sequence[str], gallery: Gallery, ks: Sequence[int] = (1, 5)
) -> dict[str, float]:
    """Fraction of sketches whose true intermediate image ranks within the top k, for each k in `ks`.

    Rank = number of gallery images strictly more similar than the true one, so ties count in the sketch's favour.
    """
    queries = _queries(gallery, sketches)
    if len(true_keys) != len(queries):
        raise ValueError(f"got {len(queries)} sketches but {len(true_keys)} true keys")
    truth = gallery.index_of(list(true_keys))
    ranks = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), 256):  # bounds the (chunk, N) similarity matrix
        sims = queries[start : start + 256] @ gallery.vectors.T
        true_sim = sims[np.arange(len(sims)), truth[start : start + 256]]
        ranks[start : start + 256] = (sims > true_sim[:, None]).sum(axis=1)
    out = {f"recall@{k}": float(np.mean(ranks < k)) for k in ks}
    out["num_queries"] = len(queries)
    return out


def gallery_fingerprint(
    weights_path: str | os.PathLike | None, dataset_id: str, latent_budget: int, **extra: Any
) -> str:
    """SHA-256 over the checkpoint weights file's bytes, the dataset id, K and any extra JSON-able settings."""
    digest = hashlib.sha256()
    if weights_path is not None:
        with open(weights_path, "rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    parts = {"dataset_id": dataset_id, "latent_budget": latent_budget, **extra}
    digest.update(json.dumps(parts, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def load_or_build_gallery(cache_dir: str | os.PathLike, fingerprint: str, build_fn: Callable[[], Gallery]) -> Gallery:
    """The cached gallery if whole and built for `fingerprint`; otherwise `build_fn()`, then saved to the cache."""
    try:
        return _load_gallery(cache_dir, fingerprint)
    except _CacheMiss as miss:
        warnings.warn(f"gallery cache {os.fspath(cache_dir)!r}: {miss}; rebuilding", GalleryCacheWarning, stacklevel=2)
    gallery = build_fn()
    gallery.fingerprint = fingerprint
    save_gallery(cache_dir, gallery)
    return gallery


def save_gallery(cache_dir: str | os.PathLike, gallery: Gallery) -> None:
    """Write the three cache files atomically, manifest last."""
    os.makedirs(cache_dir, exist_ok=True)
    vectors = save_safetensors({"vectors": np.ascontiguousarray(gallery.vectors, dtype=np.float32)})
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(gallery.meta, preserve_index=False), buffer)
    meta = buffer.getvalue()
    manifest = {
        "format": _CACHE_FORMAT,
        "fingerprint": gallery.fingerprint,
        "num_rows": len(gallery),
        "num_latents": gallery.num_latents,
        "dim": gallery.dim,
        "vectors_sha256": hashlib.sha256(vectors).hexdigest(),
        "meta_sha256": hashlib.sha256(meta).hexdigest(),
    }
    write_bytes(os.path.join(cache_dir, _VECTORS_FILE), vectors)
    write_bytes(os.path.join(cache_dir, _META_FILE), meta)
    write_bytes(os.path.join(cache_dir, _MANIFEST_FILE), json.dumps(manifest, indent=1).encode())


class _CacheMiss(Exception):
    pass


def _load_gallery(cache_dir: str | os.PathLike, expected: str) -> Gallery:
    manifest_path = os.path.join(cache_dir, _MANIFEST_FILE)
    if not os.path.exists(manifest_path):
        raise _CacheMiss("no cache yet")
    try:
        with open(manifest_path, "rb") as handle:
            manifest = json.loads(handle.read())
        found = manifest["fingerprint"]
        shape = (manifest["num_rows"], manifest["num_latents"] * manifest["dim"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise _CacheMiss(f"damaged manifest ({type(err).__name__}: {err})") from None
    if found != expected:
        raise _CacheMiss(f"stale: built for fingerprint {found[:12]}…, wanted {expected[:12]}…")
    blobs = {}
    for name, checksum in ((_VECTORS_FILE, "vectors_sha256"), (_META_FILE, "meta_sha256")):
        try:
            with open(os.path.join(cache_dir, name), "rb") as handle:
                blobs[name] = handle.read()
        except OSError as err:
            raise _CacheMiss(f"damaged: cannot read {name} ({err})") from None
        if hashlib.sha256(blobs[name]).hexdigest() != manifest.get(checksum):
            raise _CacheMiss(f"damaged: {name} does not match its checksum")
    try:
        vectors = load_safetensors(blobs[_VECTORS_FILE])["vectors"]
        meta = pq.read_table(io.BytesIO(blobs[_META_FILE])).to_pandas()
    except Exception as err:  # any parse failure means the same thing: rebuild
        raise _CacheMiss(f"damaged: unreadable ({type(err).__name__}: {err})") from None
    if vectors.shape != shape or vectors.dtype != np.float32 or len(meta) != shape[0]:
        raise _CacheMiss(f"damaged: vectors {vectors.shape} / {len(meta)} metadata rows, manifest says {shape}")
    try:
        return Gallery(vectors, meta, manifest["num_latents"], manifest["dim"], fingerprint=found)
    except ValueError as err:
        raise _CacheMiss(f"damaged: {err}") from None


def _queries(gallery: Gallery, sketches: np.ndarray) -> np.ndarray:
    x = np.asarray(sketches)
    if x.shape[-2:] != (gallery.num_latents, gallery.dim):
        raise ValueError(
            f"sketch shape {x.shape} does not end in the gallery's (K, D) = ({gallery.num_latents}, {gallery.dim})"
        )
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise ValueError(f"latents must be finite numbers; {bad} of {x.size} are NaN or infinite")
    return flatten_normalise(x)
