"""torch.nn's checks of a recurrent module's arguments, with the same error classes (code that catches
torch's errors catches carousel's) and the same warning for a dropout that does nothing."""

from __future__ import annotations

import numbers
import warnings

import torch
from torch import Tensor

from ..._checks import ShapeError


def check_arguments(
    input_size: object, hidden_size: object, num_layers: object, bias: object, batch_first: object, dropout: object,
    bidirectional: object, proj_size: object,
) -> None:
    """Raise ``TypeError`` for a wrong type and ``ValueError`` for a wrong value, as ``torch.nn.RNNBase`` does."""
    if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
        raise ValueError(f"expected dropout to be a number in [0, 1] (the probability of zeroing an element), got {dropout!r}")
    for name, value in (("bias", bias), ("batch_first", batch_first)):  # torch takes any truth value for bidirectional
        if not isinstance(value, bool):
            raise TypeError(f"expected {name} to be a bool, got {type(value).__name__} {value!r}")
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers),
                        ("proj_size", proj_size)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"expected {name} to be an int, got {type(value).__name__} {value!r}")
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
        if value <= 0:
            raise ValueError(f"expected {name} to be greater than zero, got {value}")
    if proj_size < 0:
        raise ValueError(f"expected proj_size to be a positive integer, or zero for no projection, got {proj_size}")
    if proj_size >= hidden_size:
        raise ValueError(f"expected proj_size smaller than hidden_size={hidden_size}, got {proj_size}")
    if dropout > 0 and num_layers == 1:
        warnings.warn(
            f"dropout={dropout} acts between stacked layers only, and there is one (num_layers=1): it does nothing",
            UserWarning,
            stacklevel=4,
        )


def no_projection(proj_size: int, kind: str) -> None:
    """RNN and GRU have no projection: a ``proj_size`` is refused as torch.nn refuses it."""
    if proj_size:
        raise ValueError(f"proj_size is only supported by LSTM, not by {kind}; got proj_size={proj_size}")


def check_input(x: Tensor, input_size: int, weight: Tensor, *, packed: bool, batch_first: bool, unbatched: bool) -> None:
    """The input as the user gave it: its dtype matches the weights' (unless autocast decides), its
    feature size is ``input_size``. Errors name the shape and dtype that were given."""
    if x.device != weight.device:
        raise ValueError(
            f"expected input on {weight.device} (where the weights are), got a tensor on {x.device}; move the input "
            f"(input.to('{weight.device}')) or the module (module.to('{x.device}'))"
        )
    if not x.is_floating_point():
        raise ValueError(f"expected a floating-point input, got dtype {x.dtype}")
    if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
        raise ValueError(
            f"expected input of dtype {weight.dtype} (the weights' dtype), got {x.dtype}; convert the input "
            f"(input.to({weight.dtype})) or the module (module.to({x.dtype}))"
        )
    if packed:
        if x.dim() != 2 or x.shape[-1] != input_size:
            raise ShapeError(f"expected packed input with {input_size} features, got packed data of shape {tuple(x.shape)}")
        return
    layout = "(B, T, {0})" if batch_first else "(T, B, {0})"
    if x.dim() not in (2, 3):
        raise ValueError(f"expected input of shape {layout.format(input_size)} or unbatched (T, {input_size}), got a {x.dim()}-D tensor of shape {tuple(x.shape)}")
    if x.shape[-1] != input_size:
        want = f"(T, {input_size})" if unbatched else layout.format(input_size)
        raise ShapeError(f"expected input of shape {want}, got {tuple(x.shape)}")
