"""Random masks shared by every regulariser: how they are drawn, how long they live, how to hold them.

A mask lives for one *unit*: one sequence for variational and recurrent dropout, one forward
pass over the weights for DropConnect, one forward call for embedding dropout. Runners make a
run one unit (``cell.project`` is called once per run, computed weights are evaluated once
inside ``parametrize.cached()``), so nothing has to be done for whole sequences.

Code that calls a model one step at a time (decoding, scheduled sampling) would start a new unit
at every call. ``with hold_masks(model):`` keeps every mask drawn inside the block until the block
ends, so all the calls see the masks of one sequence; leaving the block forgets them.

Masks come from torch's random number generator of the tensor's device: ``torch.manual_seed``
reproduces them.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn

from .._checks import check_rate, shape_str


def bernoulli_mask(shape: Sequence[int], p: float, like: Tensor) -> Tensor:
    """Inverted dropout mask of ``shape``: ``m = z / (1 - p)``, ``z ~ Bernoulli(1 - p)``, so ``E[m] = 1``
    (all zeros for ``p = 1``)."""
    keep = 1.0 - p
    if keep == 0.0:
        return torch.zeros(tuple(shape), device=like.device, dtype=like.dtype)
    return torch.empty(tuple(shape), device=like.device, dtype=like.dtype).bernoulli_(keep).div_(keep)


class Stochastic(nn.Module):
    """Marker base of carousel's regularisers: random in training mode, deterministic in evaluation.

    ``carousel.mc_dropout`` switches every such module (and torch's dropout modules) back to
    training mode while the rest of the model stays in evaluation mode.
    """

    # whether one mask is shared by every row of a batch (then MC samples cannot be batched)
    shares_mask_across_batch: bool = False


class MaskHolder(Stochastic):
    """A regulariser whose mask lives for one unit (a sequence, a forward pass) and can be held.

    Subclasses call ``_new_unit()`` where a unit starts and ``_unit_mask(shape, like, p)`` where
    the mask is used: the first call of a unit draws, later calls of the same unit reuse it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._mask: Tensor | None = None
        self._holding = False

    @property
    def current_mask(self) -> Tensor | None:
        """The mask of the current unit (the last one drawn, or the held one); None before any draw."""
        return self._mask

    def _new_unit(self) -> None:
        """A new unit starts: forget the last mask, unless masks are held."""
        if not self._holding:
            self._mask = None

    def _unit_mask(self, shape: Sequence[int], like: Tensor, p: float) -> Tensor:
        """The mask of the current unit, drawn on first use; converted to ``like``'s device and dtype."""
        shape = tuple(shape)
        m = self._mask
        if m is not None and tuple(m.shape) != shape:
            if self._holding:
                raise ValueError(
                    f"{type(self).__name__} holds a mask of shape {shape_str(m.shape)} but this call needs "
                    f"{shape_str(shape)} (a different batch?); leave hold_masks() to draw new masks"
                )
            m = None
        if m is None:
            m = self._mask = bernoulli_mask(shape, p, like)
        if m.device != like.device or m.dtype != like.dtype:
            m = self._mask = m.to(device=like.device, dtype=like.dtype)
        return m

    def _hold(self, on: bool) -> None:
        self._holding = on
        if not on:
            self._mask = None


@contextlib.contextmanager
def hold_masks(module: nn.Module) -> Iterator[nn.Module]:
    """Keep the masks of every regulariser in ``module`` from their first draw until the block ends.

    Use it around a decoding loop that calls a model one step at a time, so that every step of a
    sequence shares its masks, as a runner's single call over the whole sequence would::

        with carousel.hold_masks(model):
            for t in range(steps):
                y, state = model(x_t, state)

    Nested blocks keep the outer block's masks. Zoneout draws afresh at every step by design and
    is not affected.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(module).__name__}")
    holders = [m for m in module.modules() if isinstance(m, MaskHolder)]
    before = [m._holding for m in holders]
    for m in holders:
        if not m._holding:
            m._mask = None  # a mask left from an earlier unit is not part of this block
        m._hold(True)
    try:
        yield module
    finally:
        for m, was in zip(holders, before):
            m._hold(was)
