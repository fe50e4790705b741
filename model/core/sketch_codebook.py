"""The sketch codebook: per slot, one centroid for each cell state the true sketches show there; drawn latents snap.

    codebook = SketchCodebook.fit(targets, labels, mean, std)   # targets (N, K, D) true sketches, labels (N, K)
    snapped = codebook.snap(latents, slots)                     # (n, D) drawn latents, (n,) slot index → (n, D)
    save_codebook(codebook, "ckpt/sketch_codebook.safetensors"); load_codebook(path, num_latents=K, dim=D)

Why: the audit shows the demo reads true sketches almost perfectly (oracle 99–100 % on every sketch family) but
loses 20–50 points on the sketches it draws itself. A drawn latent lies off the set of latents the frozen encoder
ever produces, and the error feeds into every slot after it. Snapping replaces each drawn latent, as soon as it is
drawn and before it is fed back, by the nearest centroid of its slot (standardised squared distance, the space the
head draws in): the diffusion head still chooses the cell state, the reader only ever sees latents of the kind it was
trained on. This is vector quantisation after the fact (as in VQ-VAE's nearest-code lookup), not in the paper; the
paper feeds the head's samples back as they are. Generation snaps when the checkpoint has a codebook, unless told not
to (`--snap off`; model/generation/engine.py).

A centroid is the mean of the true targets of one slot whose cells all have one label (a colour, for sketch-world,
where each of the K slots covers one board cell); a state seen fewer than `min_count` times gets none. The file holds
the centroids, which states exist, the standardisation, and the labels (safetensors metadata); no pickle.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from model.core.atomic import atomic_file

CODEBOOK_NAME = "sketch_codebook.safetensors"


class CodebookError(ValueError):
    """A codebook file that cannot be used with a model; the message names the file and the mismatch."""


@dataclass
class SketchCodebook:
    centroids: torch.Tensor  # (K, C, D) in the backbone's embedding space; rows of absent states are zero
    present: torch.Tensor  # (K, C) bool: slot k has a centroid for state c
    mean: torch.Tensor  # (D,) the standardisation the distance is measured in (the model's latent statistics)
    std: torch.Tensor  # (D,)
    labels: list[str]  # the C state names (sketch-world: cell colours)

    def __post_init__(self):
        K, C, D = self.centroids.shape
        assert self.present.shape == (K, C) and self.mean.shape == (D,) and self.std.shape == (D,), "codebook shapes"
        assert len(self.labels) == C, "one label per state"
        if not bool(self.present.any(dim=1).all()):
            empty = [int(k) for k in torch.nonzero(~self.present.any(dim=1)).flatten()[:5]]
            raise ValueError(f"every slot needs at least one centroid; slots {empty} have none")

    @property
    def num_latents(self) -> int:
        return self.centroids.shape[0]

    @property
    def dim(self) -> int:
        return self.centroids.shape[2]

    @classmethod
    def fit(cls, targets, labels, mean, std, names: list[str], min_count: int = 3) -> "SketchCodebook":
        """targets (N, K, D) true sketches; labels (N, K) the state index (into `names`) of each slot, −1 unknown."""
        targets = torch.as_tensor(np.asarray(targets), dtype=torch.float32)
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if targets.ndim != 3 or labels.shape != targets.shape[:2]:
            raise ValueError(f"targets (N, K, D) and labels (N, K) do not match: {tuple(targets.shape)}, "
                             f"{tuple(labels.shape)}")  # fmt: skip
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        N, K, D = targets.shape
        C = len(names)
        onehot = torch.zeros(N, K, C)
        known = labels >= 0
        onehot[known] = torch.nn.functional.one_hot(labels[known], C).float()
        counts = onehot.sum(0)  # (K, C)
        sums = torch.einsum("nkc,nkd->kcd", onehot, targets)
        present = counts >= min_count
        centroids = torch.where(present[..., None], sums / counts.clamp(min=1)[..., None], torch.zeros(()))
        return cls(centroids, present, torch.as_tensor(mean).float(), torch.as_tensor(std).float(), list(names))

    def nearest(self, latents: torch.Tensor, slots: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
        """(n,) the state index of the centroid of each latent's slot nearest to it (standardised squared distance),
        `chunk` latents at a time: each needs its slot's C centroids beside it, (chunk, C, D) floats."""
        if len(latents) > chunk:
            parts = [
                self.nearest(latents[i : i + chunk], slots[i : i + chunk], chunk)
                for i in range(0, len(latents), chunk)
            ]
            return torch.cat(parts)
        dev = latents.device
        mean, std = self.mean.to(dev), self.std.to(dev)
        z = (latents.float() - mean) / std  # (n, D)
        codes = (self.centroids.to(dev)[slots] - mean) / std  # (n, C, D)
        dist = ((codes - z[:, None]) ** 2).sum(-1)  # (n, C)
        dist = dist.masked_fill(~self.present.to(dev)[slots], float("inf"))
        return dist.argmin(dim=1)

    def snap(self, latents: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """(n, D) latents, (n,) slot indices → (n, D): each replaced by the nearest centroid of its slot."""
        if latents.ndim != 2 or latents.shape[1] != self.dim:
            raise ValueError(f"latents must be (n, {self.dim}), got {tuple(latents.shape)}")
        slots = slots.to(latents.device).long()
        if slots.shape != latents.shape[:1] or bool((slots < 0).any() | (slots >= self.num_latents).any()):
            raise ValueError(f"slots must be {latents.shape[0]} indices in 0…{self.num_latents - 1}")
        picked = self.nearest(latents, slots)
        return self.centroids.to(latents.device)[slots, picked].to(latents.dtype)


def save_codebook(codebook: SketchCodebook, path: str | os.PathLike) -> Path:
    """Write the codebook to one safetensors file, atomically."""
    tensors = {
        "centroids": codebook.centroids.float().contiguous(),
        "present": codebook.present.to(torch.uint8).contiguous(),
        "mean": codebook.mean.float().contiguous(),
        "std": codebook.std.float().contiguous(),
    }
    with atomic_file(path) as tmp:
        save_file(tensors, str(tmp), metadata={"labels": json.dumps(codebook.labels)})
    return Path(path)


def load_codebook(path: str | os.PathLike, num_latents: int, dim: int, shown: str | None = None) -> SketchCodebook:
    """The codebook in `path`, checked against the model's K and D; CodebookError naming the file otherwise."""
    shown = shown or str(path)
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            labels = json.loads((handle.metadata() or {}).get("labels", "null"))
        codebook = SketchCodebook(
            tensors["centroids"], tensors["present"].bool(), tensors["mean"], tensors["std"], labels
        )
    except (SafetensorError, OSError, KeyError, TypeError, ValueError, AssertionError) as err:
        raise CodebookError(f"{shown} is damaged: {err or type(err).__name__}") from err
    if codebook.num_latents != num_latents or codebook.dim != dim:
        raise CodebookError(
            f"{shown} is for K={codebook.num_latents}, D={codebook.dim}; the model has K={num_latents}, D={dim}"
        )
    return codebook
