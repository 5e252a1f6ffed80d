"""Backend resolution: which runner serves a cell, chosen explicitly and loudly, in one place.

``resolve_backend(cell, x, backend)`` decides for one cell; ``resolve_stack(cells, x, backend,
plain=...)`` decides whether a whole stack (the torch-compatible drop-ins) runs as one fused kernel
call. ``use_backend(name)`` is the documented way to override every layer's own choice inside a
block (diagnostics ask for ``"reference"``, whose steps they can record); nothing is rewritten.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor

from .._checks import check_lengths, check_sequence_input
from ..cells.base import Cell, check_cell
from .explicit import explicit_unsupported, run_explicit
from .fused import fused_unsupported, run_fused, stack_fused_mode
from .reference import run_reference
from .scan import run_scan, scan_unsupported

Runner = Callable[[Cell, Tensor, Any, "Tensor | None"], "tuple[Tensor, Any]"]


@dataclass(frozen=True)
class Backend:
    """A runner and the test of whether it can serve a configuration.

    ``unsupported(cell, x)`` returns None when the runner can serve, else a sentence saying why
    not (shown to the user who asked for this backend by name).
    """

    name: str
    runner: Runner
    unsupported: Callable[[Cell, Tensor], "str | None"]
    priority: int  # higher is tried first by "auto"


_BACKENDS: dict[str, Backend] = {}
_FORCED: ContextVar[str | None] = ContextVar("carousel_forced_backend", default=None)
# "loop" was the name of the explicit backend with the reference as its fallback
_RENAMED = {"loop"}
_WARNED: set[str] = set()  # old names already warned about in this process


def register_backend(backend: Backend) -> None:
    """Make ``backend`` available by name (and to ``"auto"`` by its priority)."""
    _BACKENDS[backend.name] = backend


def backend_names(*, renamed: bool = False) -> tuple[str, ...]:
    """``"auto"`` and every registered backend, the fastest first; with ``renamed``, also the old
    names still accepted (``"loop"``), so that configurations of earlier runs keep working."""
    names = ("auto", *sorted(_BACKENDS, key=lambda n: -_BACKENDS[n].priority))
    return names + tuple(sorted(_RENAMED)) if renamed else names


def check_backend(backend: object) -> str:
    """``backend`` if it names a backend (or ``"auto"``), else ``ValueError`` listing the valid names."""
    if backend not in backend_names() and backend not in _RENAMED:
        raise ValueError(f"unknown backend {backend!r}; expected one of: {', '.join(map(repr, backend_names()))}")
    return backend  # type: ignore[return-value]


@contextmanager
def use_backend(backend: str) -> Iterator[None]:
    """Run every cell inside the block on ``backend``, whatever its layer asks for.

    ``with use_backend("reference"): model(x)`` runs a whole model, drop-ins included, on the
    reference loop (what diagnostics do to record every step). Nested blocks: the innermost wins.
    """
    token = _FORCED.set(check_backend(backend))
    try:
        yield
    finally:
        _FORCED.reset(token)


def resolve_backend(cell: Cell, x: Tensor, backend: str = "auto") -> Backend:
    """The backend that will run ``cell`` over ``x``; raises ``ValueError`` saying why a named one cannot.

    A ``use_backend`` block overrides ``backend``.
    """
    backend = _FORCED.get() or check_backend(backend)
    if backend in _RENAMED:
        if backend not in _WARNED:
            _WARNED.add(backend)
            warnings.warn(
                f"backend {backend!r} is now called 'explicit' (an explicit backward, for the cells that offer one); "
                "'auto' picks it, and the 'reference' loop for the other cells",
                FutureWarning,
                stacklevel=3,
            )
        backend = "explicit" if explicit_unsupported(cell, x) is None else "reference"
    if backend == "auto":
        for candidate in sorted(_BACKENDS.values(), key=lambda b: -b.priority):
            if candidate.unsupported(cell, x) is None:
                return candidate
        raise ValueError(f"no backend can run {cell.kind}")  # the reference serves every cell
    chosen = _BACKENDS[backend]
    reason = chosen.unsupported(cell, x)
    if reason is not None:
        raise ValueError(f"backend {backend!r} cannot run {cell.kind}: {reason}")
    return chosen


def resolve_stack(cells: Sequence[Cell], x: Tensor, backend: str = "auto", *, plain: bool = True) -> str | None:
    """The fused kernel mode that runs a whole stack of ``cells`` in one call, or None (then each
    layer is resolved on its own with ``resolve_backend``).

    Only a ``plain`` stack qualifies (no residual or input-skip connections, no dropout drawn
    between layers: the per-layer path draws it, so every backend sees the same masks), with
    ``backend`` ``"auto"`` or ``"fused"`` and one kernel mode shared by every cell.
    """
    backend = _FORCED.get() or check_backend(backend)
    if backend not in ("auto", "fused") or not plain:
        return None
    return stack_fused_mode(cells, x)


def zero_padding(x: Tensor, lengths: Tensor | None) -> Tensor:
    """``x`` (B, T, I) with every step past each sequence's length set to 0.

    What sits in the padding (NaN, inf, huge values) then reaches no output, state or gradient on
    any path: every runner sees exactly what it sees for zero padding (the gradient of ``x`` there is 0).
    """
    if lengths is None:
        return x
    alive = (torch.arange(x.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)).to(x.device).unsqueeze(-1)  # (B, T, 1)
    return torch.where(alive, x, torch.zeros((), dtype=x.dtype, device=x.device))


def dispatch(cell: Cell, x: Tensor, state: Any, lengths: Tensor | None, backend: str = "auto") -> tuple[Tensor, Any]:
    """Run validated inputs (``x`` (B, T, I), a state of the cell's type, CPU int64 ``lengths`` or None)
    on the backend ``resolve_backend`` chooses, the padding zeroed first. Layers call this."""
    return resolve_backend(cell, x, backend).runner(cell, zero_padding(x, lengths), state, lengths)


def run(
    cell: Cell,
    x: Tensor,
    state: Any = None,
    lengths: Any = None,
    *,
    backend: str = "auto",
) -> tuple[Tensor, Any]:
    """Run ``cell`` over the batch-first sequence ``x`` of shape (B, T, I).

    Returns ``(outputs, final_state)``: outputs (B, T, H) are ``h`` at every step and zero past
    each sequence's length; the final state is the state at each sequence's last step (frozen
    past its end). ``state`` defaults to zeros; ``lengths`` (B,) to T for every sequence.
    ``backend`` is one of ``backend_names()``; ``"auto"`` picks the fastest that serves the cell.
    Raises ``TypeError`` for an object that is not a carousel cell (a ``torch.nn.LSTMCell``: use
    ``carousel.LSTMCell``), a state of the wrong kind and non-integer lengths; ``ValueError`` for a
    malformed input, state or lengths, an input, state or lengths of another dtype or device than the
    cell's parameters (naming both), and a named backend that cannot serve the cell (saying why).
    """
    check_cell(cell, "the cell to run")
    x = cell.check_input(check_sequence_input(x, cell.input_size))
    B, T, _ = x.shape
    lengths = check_lengths(lengths, B, T, device=x.device)
    state = cell.check_state(state, B, like=x)
    if lengths is not None and bool((lengths == T).all()):
        lengths = None
    return dispatch(cell, x, state, lengths, backend)


register_backend(Backend("reference", run_reference, lambda cell, x: None, priority=-1))
register_backend(Backend("explicit", run_explicit, explicit_unsupported, priority=10))
register_backend(Backend("scan", run_scan, scan_unsupported, priority=20))
register_backend(Backend("fused", run_fused, fused_unsupported, priority=30))
