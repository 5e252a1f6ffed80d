"""Validation at the library's boundaries: plain-word errors that say what was expected and what was given."""

from __future__ import annotations

import difflib
import math
import numbers
from typing import Any, Sequence

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


def check_lengths(lengths: object, batch_size: int, max_len: int, *, device: torch.device | None = None) -> Tensor | None:
    """Return ``lengths`` as a CPU int64 tensor of shape (B,), each in [1, T], or raise.

    ``lengths`` is a sequence of Python (or numpy) integers or an integer tensor, on the CPU or on
    ``device`` (the input's). ``None`` means every sequence is ``max_len`` long and is returned
    unchanged. A float, a bool or a float tensor is refused even when integral (``TypeError``), as
    is a tensor on another device (``ValueError``); so are lengths below 1 or above T (``ValueError``)
    and a count other than B (``ShapeError``).
    """
    if lengths is None:
        return None
    if isinstance(lengths, Tensor):
        if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
            raise TypeError(f"expected integer lengths (an int64 tensor or a list of ints), got a tensor of dtype {lengths.dtype}")
        ok = lengths.device.type == "cpu" or (device is not None and lengths.device == torch.device(device) and lengths.device.type != "meta")
        if not ok:
            where = "cpu" if device is None or torch.device(device).type in ("cpu", "meta") else f"cpu or {device} (where the input is)"
            raise ValueError(f"expected lengths on {where}, got a tensor on {lengths.device}")
        lengths = lengths.detach().to("cpu", torch.int64)
    else:
        if isinstance(lengths, (str, bytes)) or not hasattr(lengths, "__iter__"):
            raise TypeError(f"expected lengths as a sequence of integers or an integer tensor of shape (B,), got {type(lengths).__name__} {lengths!r}")
        values = list(lengths)
        for i, v in enumerate(values):
            if isinstance(v, Tensor) and v.dim() == 0 and not (v.is_floating_point() or v.is_complex() or v.dtype == torch.bool):
                values[i] = int(v)
            elif not isinstance(v, numbers.Integral) or isinstance(v, bool):
                raise TypeError(
                    f"expected integer lengths, got {type(v).__name__} {v!r} at position {i}"
                    + ("; lengths count steps, so a fraction cannot be one" if isinstance(v, float) else "")
                )
        lengths = torch.tensor([int(v) for v in values], dtype=torch.int64)
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


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return ""


def check_number(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
    finite: bool = True,
) -> Any:
    """``value`` if it is a real number (an integer with ``integer``) within the bounds, else raise.

    ``TypeError`` for anything that is not a number (a string, None, a tensor; ``bool`` is not
    a number here), ``ValueError`` for NaN, an infinity (unless ``finite=False``) or a value out of
    ``[low, high]`` (an end excluded with ``low_open``/``high_open``). The message names the
    option, the range expected and what was given: ``expected input_std >= 0, got -1.0``.
    Returns ``value`` as ``int`` (with ``integer``) or ``float``.
    """
    interval = _interval(low, high, low_open, high_open)
    kind = "an integer" if integer else "a real number"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral if integer else numbers.Real):
        raise TypeError(f"expected {name} to be {kind}{' ' + interval if interval else ''}, got {type(value).__name__} {value!r}")
    v = int(value) if integer else float(value)
    if math.isnan(v) or (finite and math.isinf(v)):
        raise ValueError(f"expected {name} to be a finite number{' ' + interval if interval else ''}, got {value!r}")
    if (low is not None and (v < low or (low_open and v == low))) or (high is not None and (v > high or (high_open and v == high))):
        raise ValueError(f"expected {name} {interval}, got {value!r}")
    return v


def check_flag(value: object, name: str) -> bool:
    """``value`` if it is a ``bool``, else ``TypeError`` (as torch.nn's recurrent modules check ``bias``)."""
    if not isinstance(value, bool):
        raise TypeError(f"expected {name} to be True or False, got {type(value).__name__} {value!r}")
    return value


def factory_kwargs(device: object, dtype: object) -> dict[str, Any]:
    """``{"device": device, "dtype": dtype}`` for a module's parameters, checked: a floating-point dtype
    (``ValueError`` for an integer or complex one: recurrent weights need gradients and real
    activations; ``TypeError`` for something that is not a ``torch.dtype``) and a device torch knows."""
    if dtype is not None:
        if not isinstance(dtype, torch.dtype):
            raise TypeError(f"expected dtype to be a torch.dtype such as torch.float32, got {type(dtype).__name__} {dtype!r}")
        if not dtype.is_floating_point:
            raise ValueError(f"expected a floating-point dtype for the parameters (torch.float32, float64, bfloat16, float16), got {dtype}")
    if device is not None:
        try:
            torch.device(device)  # type: ignore[arg-type]
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"expected a device such as 'cpu' or 'cuda:0', got {device!r}") from err
    return {"device": device, "dtype": dtype}


def check_same_kind(t: Tensor, ref: Tensor, what: str, of: str) -> None:
    """``ValueError`` when ``t`` lives on another device than ``ref``, or has another floating dtype
    (unless autocast is on for that device: then it decides the arithmetic). Attribute reads only:
    no synchronisation."""
    if ref.numel() == 0 and not ref.is_floating_point():
        return  # a module without parameters or buffers
    if t.device != ref.device:
        raise ValueError(f"expected {what} on {ref.device} (where {of} are), got a tensor on {t.device}; move one of them")
    if t.dtype != ref.dtype and not torch.is_autocast_enabled(t.device.type):
        raise ValueError(f"expected {what} of dtype {ref.dtype} (that of {of}), got {t.dtype}; convert one of them")


def check_instance(value: object, cls: type | tuple[type, ...], what: str, expected: str, hints: Sequence[tuple[Any, str]] = ()) -> Any:
    """``value`` if it is a ``cls``, else ``TypeError``: ``expected {what} to be {expected}, got {type}``,
    followed by the advice of the first ``(class or predicate, advice)`` of ``hints`` that matches
    (a cell where a layer belongs: "wrap the cell in Recurrent")."""
    if isinstance(value, cls):
        return value
    message = f"expected {what} to be {expected}, got {type(value).__name__}"
    for match, advice in hints:
        hit = isinstance(value, match) if isinstance(match, (type, tuple)) else match(value)
        if hit:
            message += f"; {advice}"
            break
    raise TypeError(message)


def check_rate(p: object, name: str = "p", *, allow_one: bool = False) -> float:
    """A rate in [0, 1) (a dropout probability) or in [0, 1] with ``allow_one`` (zoneout may freeze a unit).

    ``TypeError`` for a value that is not a number (``bool`` included), ``ValueError`` for one outside the range.
    """
    return check_number(p, name, low=0.0, high=1.0, high_open=not allow_one)


def check_choice(value: object, choices: Sequence[str], name: str) -> str:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of: {', '.join(map(repr, choices))}")
    return value  # type: ignore[return-value]


def check_size(value: object, name: str, *, minimum: int = 1) -> int:
    """An integer >= ``minimum``: ``TypeError`` for a float, a string or a bool, ``ValueError`` for a smaller one."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"expected {name} to be an integer >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"expected {name} to be an integer >= {minimum}, got {value!r}")
    return int(value)


def unknown_message(what: str, given: str, valid: Sequence[str]) -> str:
    """``unknown cell 'lsmt' (did you mean 'lstm'?); valid: lstm, gru, ...``: a name that is not one of ``valid``."""
    close = difflib.get_close_matches(given.replace("-", "_"), list(valid), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {what} {given!r}{hint}; valid: {', '.join(valid)}"
