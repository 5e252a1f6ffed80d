"""Backend resolution: which runner serves a cell, chosen explicitly and loudly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import Tensor

from .._checks import check_lengths, check_sequence_input
from ..cells.base import Cell
from .bptt import run_fast_loop
from .fused import fused_unsupported, run_fused
from .loop import run_loop
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


def register_backend(backend: Backend) -> None:
    _BACKENDS[backend.name] = backend


def backend_names() -> tuple[str, ...]:
    return ("auto", *_BACKENDS)


def resolve_backend(cell: Cell, x: Tensor, backend: str = "auto") -> Backend:
    """The backend that will run ``cell`` over ``x``; raises ``ValueError`` saying why a named one cannot."""
    if backend == "auto":
        for candidate in sorted(_BACKENDS.values(), key=lambda b: -b.priority):
            if candidate.unsupported(cell, x) is None:
                return candidate
        raise ValueError(f"no backend can run {type(cell).__name__}")  # the loop serves every cell
    if backend not in _BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of: {', '.join(map(repr, backend_names()))}")
    chosen = _BACKENDS[backend]
    reason = chosen.unsupported(cell, x)
    if reason is not None:
        raise ValueError(f"backend {backend!r} cannot run {cell.kind}: {reason}")
    return chosen


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
    """
    x = check_sequence_input(x, cell.input_size)
    B, T, _ = x.shape
    lengths = check_lengths(lengths, B, T)
    state = cell.check_state(state, B, like=x)
    if lengths is not None and bool((lengths == T).all()):
        lengths = None
    return resolve_backend(cell, x, backend).runner(cell, x, state, lengths)


register_backend(Backend("reference", run_loop, lambda cell, x: None, priority=-1))
register_backend(Backend("loop", run_fast_loop, lambda cell, x: None, priority=0))
register_backend(Backend("scan", run_scan, scan_unsupported, priority=20))
register_backend(Backend("fused", run_fused, fused_unsupported, priority=30))
