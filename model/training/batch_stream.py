"""Seeded, resumable training batches, optionally grouped by length so that little of a batch is padding.

    stream = BatchStream(dataset, batch_size=16, pad_id=0, seed=0, length_grouping=8)
    batch = stream.next()            # a collated batch (model/data/batches.py collate)
    stream.position                  # {"epoch": e, "batch": i}: saved with every checkpoint, `restore` takes it back

Epoch e is a permutation of the dataset seeded by (seed, e); each global batch (batch_size × processes) is split
across processes by rank. With `length_grouping` = W, every window of W consecutive global batches of that
permutation is sorted by row length, cut into W global batches again, and the W batches are visited in an order
seeded by (seed, e, window): the same examples in the same window, so each epoch still visits every example once and
the data position stays two integers, but rows of like length share a batch. This is the `group_by_length` of
transformers' Trainer done within a window: on sketch-world (rows of 110–330 tokens) a third of a padded random
batch is padding, and a window of 8 cuts that to about 6 % (benchmarks/bench_train.py measures both). Batches stay
of `batch_size` rows, so the optimiser sees the same batch size; what changes is which rows meet in a batch.
"""

import torch

from model.data.batches import collate


def grouped_window(indices: list[int], lengths: list[int], batch: int, generator: torch.Generator) -> list[list]:
    """`indices` (a window of whole batches) sorted by `lengths[i]` (ties by position), cut into batches of `batch`,
    the batches in a seeded order."""
    ranked = sorted(range(len(indices)), key=lambda k: (lengths[indices[k]], k))
    batches = [[indices[k] for k in ranked[s : s + batch]] for s in range(0, len(ranked), batch)]
    order = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in order]


class BatchStream:
    """Seeded, resumable batches: epoch e is a permutation seeded by (seed, e); rank r takes its slice of each
    global batch. `position` is (epoch, batch index) of the next batch. `length_grouping` W > 0 sorts each window of
    W global batches by length (module docstring); 0 keeps the permutation's order."""

    def __init__(
        self,
        dataset,
        batch_size: int,
        pad_id: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        length_grouping: int = 0,
    ):
        global_batch = batch_size * world
        if len(dataset) < global_batch:
            raise ValueError(f"{len(dataset)} training examples cannot fill one batch of {global_batch}")
        if length_grouping < 0:
            raise ValueError(f"length_grouping must be >= 0 (0: off), got {length_grouping}")
        self.dataset, self.batch_size, self.pad_id, self.seed = dataset, batch_size, pad_id, seed
        self.rank, self.world, self.epoch, self.index = rank, world, 0, 0
        self.per_epoch = len(dataset) // global_batch
        self.window = length_grouping
        self._windows = {}  # (epoch, window) → its global batches, cached for the window being read

    @property
    def position(self) -> dict:
        return {"epoch": self.epoch, "batch": self.index}

    def restore(self, position: dict) -> None:
        self.epoch, self.index = position["epoch"], position["batch"]

    def global_batch(self, epoch: int, index: int) -> list[int]:
        """The dataset indices of global batch `index` of `epoch` (every rank's rows, rank 0's first)."""
        size = self.batch_size * self.world
        order = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
        if not self.window:
            return order[index * size : (index + 1) * size].tolist()
        window = index // self.window
        key = (epoch, window)
        if key not in self._windows:
            first, last = window * self.window, min((window + 1) * self.window, self.per_epoch)
            members = order[first * size : last * size].tolist()
            generator = torch.Generator().manual_seed((self.seed * 100_003 + epoch) * 10_007 + window)
            self._windows = {key: grouped_window(members, self.lengths, size, generator)}
        return self._windows[key][index % self.window]

    @property
    def lengths(self) -> list[int]:
        if not hasattr(self, "_lengths"):
            self._lengths = [self.dataset.length(i) for i in range(len(self.dataset))]
        return self._lengths

    def next(self) -> dict:
        if self.index >= self.per_epoch:
            self.epoch, self.index = self.epoch + 1, 0
        rows = self.global_batch(self.epoch, self.index)
        self.index += 1
        mine = rows[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
        return collate([self.dataset[i] for i in mine], self.pad_id)
