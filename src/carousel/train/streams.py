"""A long corpus as B parallel streams, cut into truncated-BPTT windows.

``Streams(inputs, targets, batch_size)`` lays a corpus of N items out as B contiguous streams
of ``L = N // B`` items (the rest is dropped): stream ``b`` is ``inputs[b*L : (b+1)*L]``, a row of
the (B, L, ...) layout, and consecutive windows of a row continue the same text, so the
recurrent state can be carried from one window to the next. ``starts`` (N,) marks where a
document begins; there the state of that stream (row) is reset. Every row starts a document at
its first position, so an epoch begins from a zero state.

``StreamBatches(streams, bptt=k1, bptt_back=k2)`` yields ``Window``s implementing TBPTT(k1, k2)
(Williams & Peng 1990, "An Efficient Gradient-Based Algorithm for On-Line Training of Recurrent
Network Trajectories"): every k1 steps an update whose gradient flows back k2 >= k1 steps. The
loss regions ``[p, p + k)`` of consecutive windows tile each stream; a window reaches back to
``start = max(0, min(p, p + k - k2))`` (so the gradient of the loss at its last step flows k2 steps
back), and the state to carry is the one at the next window's start, ``carry_at`` steps in.
Without ``bptt_back`` a window is just its loss region. ``random=True`` draws each k as in
Merity, Keskar & Socher 2018, "Regularizing and Optimizing LSTM Language Models", section 4.1:
the base length is k1 with probability 0.95 and k1/2 otherwise, then a length from N(base, 5),
at least 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import torch
from torch import Tensor

from .._checks import check_size
from .batches import derive_seed
from .config import option
from .task import Shard


@dataclass(frozen=True)
class StreamOptions:
    """TBPTT options for stream tasks: inherit them in a task's ``Options`` dataclass."""

    bptt: int = option(70, "k1: time steps per window, between two updates")
    bptt_back: int = option(0, "k2 >= bptt: time steps the gradient flows back from an update (0: the window only)")
    bptt_random: bool = option(False, "draw each window's length at random (Merity et al. 2018, section 4.1)")

    def __post_init__(self) -> None:
        self.check_windows()

    def check_windows(self) -> None:
        """``ValueError`` unless ``bptt >= 1`` and ``bptt_back`` is 0 or at least ``bptt`` (a subclass
        with its own ``__post_init__`` calls this)."""
        check_size(self.bptt, "bptt (time steps per window)")
        if isinstance(self.bptt_back, bool) or not isinstance(self.bptt_back, int) or self.bptt_back < 0:
            raise ValueError(f"expected bptt_back to be 0 (the window only) or an integer >= bptt={self.bptt}, got {self.bptt_back!r}")
        if 0 < self.bptt_back < self.bptt:
            raise ValueError(f"expected bptt_back (k2) to be 0 or >= bptt (k1) = {self.bptt}, got {self.bptt_back}")


class Window(NamedTuple):
    """One TBPTT window of every stream of this rank: ``x`` (b, W, ...), ``y`` (b, W, ...) or None,
    ``starts`` (b, W) bool (reset the state of a row before that step), loss on positions
    ``[loss_from, W)``, the next window's state taken after ``carry_at`` steps."""

    x: Tensor
    y: Tensor | None
    starts: Tensor
    loss_from: int
    carry_at: int
    epoch: int
    position: int


class Streams:
    """See the module docstring. This rank keeps its rows ``shard.rows(batch_size)``."""

    def __init__(
        self,
        inputs: Tensor,
        targets: Tensor | None,
        batch_size: int,
        shard: Shard = Shard(),
        *,
        starts: Tensor | None = None,
    ) -> None:
        check_size(batch_size, "batch_size")
        N = inputs.shape[0]
        if targets is not None and targets.shape[0] != N:
            raise ValueError(f"expected as many targets as inputs, got {targets.shape[0]} and {N}")
        L = N // batch_size
        if L < 1:
            raise ValueError(f"a corpus of {N} items cannot fill {batch_size} streams (batch_size); expected a batch_size of at most {N}")
        rows = shard.rows(batch_size)

        def lay_out(t: Tensor) -> Tensor:
            return t[: batch_size * L].reshape(batch_size, L, *t.shape[1:])[rows]  # (b, L, ...)

        self.x = lay_out(inputs)
        self.y = None if targets is None else lay_out(targets)
        s = torch.zeros(N, dtype=torch.bool) if starts is None else torch.as_tensor(starts, dtype=torch.bool)
        if s.shape != (N,):
            raise ValueError(f"expected starts of shape ({N},), got {tuple(s.shape)}")
        self.starts = lay_out(s).clone()  # (b, L)
        self.starts[:, 0] = True
        self.length = L
        self.total, self.batch_size = N, batch_size  # items in the corpus (before the layout dropped its rest), streams

    @classmethod
    def from_documents(
        cls, inputs: Sequence[Tensor], targets: Sequence[Tensor] | None, batch_size: int, shard: Shard = Shard()
    ) -> "Streams":
        """Streams over documents laid end to end; the state resets where each document begins."""
        if not inputs:
            raise ValueError("expected at least one document")
        starts = torch.zeros(sum(d.shape[0] for d in inputs), dtype=torch.bool)
        offsets = torch.tensor([0] + [d.shape[0] for d in inputs[:-1]]).cumsum(0)
        starts[offsets] = True
        y = None if targets is None else torch.cat(list(targets))
        return cls(torch.cat(list(inputs)), y, batch_size, shard, starts=starts)


class StreamBatches:
    """TBPTT(k1, k2) windows over ``streams``, epoch after epoch; the position is (epoch, window)."""

    def __init__(self, streams: Streams, bptt: int, bptt_back: int = 0, *, random: bool = False, seed: int = 0) -> None:
        self.k1 = check_size(bptt, "bptt")
        self.k2 = None if bptt_back == 0 else check_size(bptt_back, "bptt_back")
        if self.k2 is not None and self.k2 < self.k1:
            raise ValueError(f"expected bptt_back (k2) >= bptt (k1) or 0, got k2={bptt_back} < k1={bptt}")
        if streams.length < self.k1:
            raise ValueError(
                f"batch_size={streams.batch_size} streams of a corpus of {streams.total} items hold only "
                f"{streams.length} items each, fewer than one window of bptt={self.k1}; expected a batch_size of at most "
                f"{streams.total // self.k1} for this corpus (or a smaller bptt)"
            )
        self.streams, self.random, self.seed = streams, bool(random), seed
        self.epoch, self.window, self._plan = 0, 0, self._lengths(0)

    def _lengths(self, epoch: int) -> list[tuple[int, int]]:
        """(position, length) of every window's loss region in an epoch, drawn from (seed, epoch) when random."""
        g = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
        plan, p, L = [], 0, self.streams.length
        while p < L:
            k = self.k1
            if self.random:
                base = self.k1 if float(torch.rand((), generator=g)) < 0.95 else self.k1 / 2
                k = max(1, round(float(torch.normal(float(base), 5.0, (), generator=g))))
            k = min(k, L - p)
            plan.append((p, k))
            p += k
        return plan

    def _start(self, u: int) -> int:
        p, k = self._plan[u]
        return p if self.k2 is None else max(0, min(p, p + k - self.k2))

    @property
    def plan(self) -> list[tuple[int, int]]:
        """``(position, length)`` of the loss region of every window of the current epoch."""
        return list(self._plan)

    def __iter__(self) -> "StreamBatches":
        return self

    def __next__(self) -> Window:
        u, epoch = self.window, self.epoch
        p, k = self._plan[u]
        start, end = self._start(u), p + k
        carry = self._start(u + 1) if u + 1 < len(self._plan) else end  # the next epoch starts from zero anyway
        self.window += 1
        if self.window == len(self._plan):  # move on at once, so that plan and state_dict show what comes next
            self.epoch, self.window, self._plan = epoch + 1, 0, self._lengths(epoch + 1)
        s = self.streams
        return Window(
            x=s.x[:, start:end],
            y=None if s.y is None else s.y[:, start:end],
            starts=s.starts[:, start:end],
            loss_from=p - start,
            carry_at=carry - start,
            epoch=epoch,
            position=p,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "window": self.window}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.window = int(state["epoch"]), int(state["window"])
        self._plan = self._lengths(self.epoch)
