"""Runners: how a cell meets time. ``run(cell, x, state, lengths, backend=...)`` is the entry point."""

from .backend import Backend, backend_names, register_backend, resolve_backend, run
from .loop import run_loop

__all__ = ["run", "run_loop", "Backend", "register_backend", "resolve_backend", "backend_names"]
