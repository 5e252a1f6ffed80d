"""Ready-made training batches that know their position (see ``carousel.train.Batches``).

* ``SeededBatches(make)``: batch ``i`` is ``make(i)``, a pure function of its index (synthetic
  tasks generate batch ``i`` from a seed derived from ``i``); the position is one integer.
* ``ShuffledBatches(tensors, batch_size, shard, seed)``: a fixed dataset, reshuffled every epoch
  from ``(seed, epoch)``; batch ``i`` is again a pure function of ``i``.
"""

from __future__ import annotations

import hashlib
import numbers
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from .task import Shard


def derive_seed(*parts: int) -> int:
    """A 62-bit seed from integers (seed, rank, step, ...): different tuples give unrelated seeds."""
    for k, p in enumerate(parts):  # a float would be truncated silently, a string fail inside int()
        if isinstance(p, bool) or not isinstance(p, numbers.Integral):
            raise TypeError(f"expected integer seed parts, got {type(p).__name__} {p!r} at position {k}")
    digest = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 2


class SeededBatches:
    """Batch ``i`` is ``make(i)``; ``state_dict()`` is ``{"index": i}`` of the next batch."""

    def __init__(self, make: Callable[[int], Any], start: int = 0) -> None:
        self.make = make
        self.index = int(start)

    def __iter__(self) -> "SeededBatches":
        return self

    def __next__(self) -> Any:
        batch = self.make(self.index)
        self.index += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"index": self.index}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.index = int(state["index"])


def generated_batches(generate: Callable[..., Any], batch_size: int, length: int, rows: slice, seed: int) -> SeededBatches:
    """Batch ``i`` is the global batch ``generate(batch_size, length, seed=derive_seed(seed, i))``,
    of which this rank keeps ``rows`` (each tensor of the tuple indexed by them)."""

    def make(i: int) -> tuple:
        return tuple(t[rows] for t in generate(batch_size, length, seed=derive_seed(seed, i)))

    return SeededBatches(make)


class ShuffledBatches(SeededBatches):
    """Global batches of ``batch_size`` rows drawn without replacement from ``tensors`` (equal first
    dimension N), reshuffled each epoch; an epoch is ``N // batch_size`` batches (the rest is
    dropped, a different rest each epoch). This rank receives its rows ``shard.rows(batch_size)``
    of each global batch as a tuple of tensors."""

    def __init__(self, tensors: Sequence[Tensor], batch_size: int, shard: Shard = Shard(), *, seed: int = 0) -> None:
        tensors = tuple(tensors)
        if not tensors:
            raise ValueError("ShuffledBatches needs at least one tensor")
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError(f"expected tensors with equal first dimensions, got {[t.shape[0] for t in tensors]}")
        if batch_size > n:
            raise ValueError(f"batch_size {batch_size} is larger than the dataset ({n} items)")
        self.tensors, self.batch_size, self.rows, self.seed = tensors, batch_size, shard.rows(batch_size), seed
        self.per_epoch = n // batch_size
        self._epoch, self._order = -1, None
        super().__init__(self._batch)

    def _batch(self, i: int) -> tuple[Tensor, ...]:
        epoch, j = divmod(i, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
            self._epoch, self._order = epoch, torch.randperm(self.tensors[0].shape[0], generator=g)
        idx = self._order[j * self.batch_size : (j + 1) * self.batch_size][self.rows]  # (b,)
        return tuple(t[idx] for t in self.tensors)
