"""The parts every model is built from: cells by name or factory, a recurrent stack, token input, readouts.

A model with a head is an input map (an embedding of token ids, or the raw features), a
``Deep`` stack of ``Recurrent`` layers built by :func:`recurrent_stack`, a readout (every step,
or each sequence's last step: :func:`last_step`) and a linear head.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from .._checks import ShapeError, check_lengths, check_rate, check_size, shape_str
from ..cells import Cell, make_cell
from ..layers import Deep, Recurrent
from ..regularize import RecurrentDropout, Zoneout

CellFactory = Callable[[int, int], Cell]


def cell_factory(cell: str | CellFactory, options: dict[str, Any] | None = None) -> CellFactory:
    """A factory ``(input_size, hidden_size) -> Cell`` from a registered cell name or a callable.

    An unknown name or option raises at once (``ValueError`` listing the registered names); the
    check builds a throwaway cell without drawing from torch's generator.
    """
    if options is not None and not isinstance(options, Mapping):
        raise TypeError(f"expected cell options as a dict of keyword arguments, got {type(options).__name__}")
    options = dict(options or {})
    if isinstance(cell, str):
        with torch.random.fork_rng(devices=[]):
            plain = make_cell(cell, 1, 1)  # fails early, listing the valid names, on an unknown one
            known = [n for n, p in inspect.signature(type(plain)).parameters.items() if p.kind is p.KEYWORD_ONLY]
            unknown = [n for n in options if n not in known]
            if unknown:
                raise ValueError(f"cell {cell!r} has no option {unknown[0]!r}; expected some of: {', '.join(known)}")
            make_cell(cell, 1, 1, **options)  # checks the values
        return lambda i, h: make_cell(cell, i, h, **options)
    if callable(cell):
        return lambda i, h: cell(i, h, **options)
    raise TypeError(f"expected cell as a name such as 'lstm' or a factory (input_size, hidden_size) -> Cell, got {type(cell).__name__}")


def recurrent_stack(
    make: CellFactory,
    input_size: int,
    sizes: Sequence[int],
    *,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    zoneout_h: float = 0.0,
    zoneout_c: float = 0.0,
    backend: str = "auto",
) -> Deep:
    """A ``Deep`` stack with one ``Recurrent(make(size_in, size))`` per entry of ``sizes``.

    ``dropout``: variational dropout between layers (one mask per sequence); ``recurrent_dropout``
    wraps every cell in ``RecurrentDropout``, ``zoneout_h``/``zoneout_c`` in ``Zoneout`` (outermost).
    Raises ``TypeError`` when the factory does not return a carousel ``Cell``.
    """
    recurrent_dropout = check_rate(recurrent_dropout, "recurrent_dropout")
    zoneout_h, zoneout_c = check_rate(zoneout_h, "zoneout_h"), check_rate(zoneout_c, "zoneout_c")
    layers, size = [], check_size(input_size, "input_size")
    for h in sizes:
        c = make(size, check_size(h, "hidden_size"))
        if not isinstance(c, Cell):
            raise TypeError(f"the cell factory must return a carousel Cell, got {type(c).__name__}")
        size = c.output_size
        if recurrent_dropout:
            c = RecurrentDropout(c, recurrent_dropout)
        if zoneout_h or zoneout_c:
            c = Zoneout(c, zoneout_h, zoneout_c)
        layers.append(Recurrent(c, backend=backend))
    return Deep(layers, dropout=dropout, variational=True)


def check_token_ids(x: object, what: str = "token ids", like: Tensor | None = None, vocab_size: int | None = None) -> Tensor:
    """``x`` if it is an integer tensor of shape (B, T) (on ``like``'s device when given), else
    ``ValueError`` saying what was given. With ``vocab_size``, ids on the CPU are also checked to lie
    in [0, V) (on an accelerator that check would wait for the device, so it is left to the embedding)."""
    if not isinstance(x, Tensor) or x.dim() != 2 or x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        got = f"shape {tuple(x.shape)}, dtype {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"expected {what} of shape (B, T) and an integer dtype, got {got}")
    if like is not None and x.device != like.device:
        raise ValueError(f"expected {what} on {like.device} (where the model's parameters are), got a tensor on {x.device}; move one of them")
    if vocab_size is not None and x.device.type == "cpu" and x.numel():
        low, high = int(x.min()), int(x.max())
        if low < 0 or high >= vocab_size:
            raise ValueError(f"expected {what} in [0, {vocab_size}) (the vocabulary size), got ids from {low} to {high}")
    return x


def last_step(y: Tensor, lengths: Any = None) -> Tensor:
    """Each sequence's output at its last step: ``y`` (B, T, H) -> (B, H); ``lengths`` (B,) or None (all T)."""
    if not isinstance(y, Tensor) or y.dim() != 3:
        raise ShapeError(f"expected outputs y of shape (B, T, H), got {shape_str(y.shape) if isinstance(y, Tensor) else type(y).__name__}")
    if lengths is None:
        return y[:, -1]  # (B, H)
    last = check_lengths(lengths, y.shape[0], y.shape[1], device=y.device).to(y.device) - 1  # integers in [1, T], else raise
    return y[torch.arange(y.shape[0], device=y.device), last]  # (B, H)


def bridge_maps(stack: Deep, in_size: int) -> tuple[nn.ModuleList, list]:
    r"""The learned bridge from a vector (B, D) to every layer's initial state of a ``Deep`` stack of
    ``Recurrent`` layers: one ``nn.Linear(D, size)`` per layer and per state component (h, and c for
    an LSTM), and each layer's state type (None where the state is one tensor). ``bridge_state``
    applies them: :math:`s^{l,k}_0 = \tanh(W_{l,k} c + b_{l,k})`, the decoder initialisation of Cho
    et al. 2014 ("Learning Phrase Representations using RNN Encoder-Decoder", :math:`\tanh(V' c)`)."""
    in_size = check_size(in_size, "the bridge's input size")
    maps, kinds = nn.ModuleList(), []
    for layer in stack.layers:
        s = layer.cell.initial_state(0)
        parts = tuple(s) if isinstance(s, tuple) else (s,)
        kinds.append(type(s) if isinstance(s, tuple) else None)
        maps.append(nn.ModuleList(nn.Linear(in_size, p.shape[-1]) for p in parts))
    return maps, kinds


def bridge_state(maps: nn.ModuleList, kinds: list, cond: Tensor) -> tuple:
    """The stack's initial state from ``cond`` (B, D) through ``bridge_maps``' maps: one entry per
    layer in its cell's state form, every component ``tanh(W c + b)`` (B, H)."""
    states = []
    for layer_maps, kind in zip(maps, kinds):
        parts = [torch.tanh(m(cond)) for m in layer_maps]
        states.append(kind(*parts) if kind is not None else parts[0])
    return tuple(states)
