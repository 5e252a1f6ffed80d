"""Validation at the library's boundaries: plain-word errors that say what was expected and what was given."""

from __future__ import annotations

import difflib
from typing import Sequence

import torch
from torch import Tensor


class ShapeError(ValueError, RuntimeError):
    """A tensor of the wrong shape. A ``ValueError`` like every carousel input error, and a
    ``RuntimeError`` like torch.nn's shape errors, so that either ``except`` catches it."""


def shape_str(shape: Sequence[int | str]) -> str:
    """``(3, 4)``; a one-element shape keeps Python's trailing comma, ``(3,)``."""
    inner = ", ".join(str(s) for s in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def check_sequence_input(x: object, input_size: int, *, batch_first: bool = True, what: str = "input") -> Tensor:
    """Check a (B, T, I) tensor (or (T, B, I) when not ``batch_first``) whose feature size is ``input_size``."""
    layout = f"(B, T, {input_size})" if batch_first else f"(T, B, {input_size})"
    if not isinstance(x, Tensor):
        raise TypeError(f"expected {what} to be a torch.Tensor of shape {layout}, got {type(x).__name__}")
    if x.dim() != 3 or x.shape[-1] != input_size:
        raise ShapeError(f"expected {what} of shape {layout}, got {shape_str(x.shape)}")
    if x.shape[1 if batch_first else 0] == 0:
        raise ShapeError(f"expected {what} with at least one time step, got {shape_str(x.shape)}")
    if not (x.is_floating_point() or x.is_complex()):
        raise ValueError(f"expected a floating-point {what}, got dtype {x.dtype}")
    return x


def check_lengths(lengths: object, batch_size: int, max_len: int) -> Tensor | None:
    """Return ``lengths`` as a CPU int64 tensor of shape (B,), each in [1, T], or raise ValueError.

    ``None`` means every sequence is ``max_len`` long and is returned unchanged.
    """
    if lengths is None:
        return None
    if isinstance(lengths, Tensor):
        if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
            raise ValueError(f"expected integer lengths, got a tensor of dtype {lengths.dtype}")
        lengths = lengths.detach().to("cpu", torch.int64)
    else:
        try:
            lengths = torch.as_tensor(list(lengths), dtype=torch.int64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"expected lengths as a sequence of integers, got {lengths!r}") from err
    if lengths.dim() != 1 or lengths.shape[0] != batch_size:
        raise ShapeError(
            f"expected lengths of shape ({batch_size},), one per sequence in the batch, got {shape_str(lengths.shape)}"
        )
    if batch_size == 0:
        return lengths
    low, high = int(lengths.min()), int(lengths.max())
    if low < 1:
        raise ValueError(f"expected every length to be at least 1, got a length of {low}")
    if high > max_len:
        raise ValueError(f"expected every length to be at most the padded length T={max_len}, got a length of {high}")
    return lengths


def check_rate(p: object, name: str = "p", *, allow_one: bool = False) -> float:
    """A rate in [0, 1) (a dropout probability) or in [0, 1] with ``allow_one`` (zoneout may freeze a unit)."""
    ok = isinstance(p, (int, float)) and not isinstance(p, bool) and 0.0 <= float(p) <= 1.0
    if not ok or (not allow_one and float(p) == 1.0):
        interval = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"expected {name} in {interval}, got {p!r}")
    return float(p)


def check_choice(value: object, choices: Sequence[str], name: str) -> str:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of: {', '.join(map(repr, choices))}")
    return value  # type: ignore[return-value]


def check_size(value: object, name: str, *, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"expected {name} to be an integer >= {minimum}, got {value!r}")
    return value


def unknown_message(what: str, given: str, valid: Sequence[str]) -> str:
    """``unknown cell 'lsmt' (did you mean 'lstm'?); valid: lstm, gru, ...``: a name that is not one of ``valid``."""
    close = difflib.get_close_matches(given.replace("-", "_"), list(valid), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {what} {given!r}{hint}; valid: {', '.join(valid)}"
