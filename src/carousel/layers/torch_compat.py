"""Drop-in ``RNN``, ``LSTM`` and ``GRU``: torch.nn's arguments, shapes and state_dict keys.

They are built from carousel's own parts (cells in ``Recurrent`` layers, ``Bidirectional`` pairs,
a ``Deep`` stack), so carousel's options come as extra keywords: ``layer_norm``, ``peephole``,
``forget_gate`` and ``forget_bias`` for the LSTM, ``variant`` for the GRU, ``"identity"`` as an
RNN nonlinearity, and ``residual``, ``skip_input``, ``variational`` (one ``dropout`` mask per
sequence between layers, see ``Deep``) and ``backend`` for all three. A checkpoint of
the matching torch.nn module loads as is: ``carousel.LSTM(...).load_state_dict(nn_lstm.state_dict())``.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.rnn import PackedSequence

from .._checks import check_sequence_input, check_size, shape_str
from ..cells import ElmanCell, GRUCell, LSTMCell
from ..cells.base import Cell
from ..run.fused import fused_weights, run_fused_stack, stack_fused_mode
from .bidirectional import Bidirectional
from .deep import Deep
from .recurrent import Recurrent

_INTERNAL = re.compile(r"^stack\.layers\.(\d+)\.(?:(forward_layer|backward_layer)\.)?cell\.([^.]+)(\..+)?$")
_TORCH = re.compile(r"^([A-Za-z_]+?)_l(\d+)(_reverse)?(\..+)?$")


_CUDNN_MODES = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN_TANH", "rnn_relu": "RNN_RELU"}


class _TorchCompatible(nn.Module):
    """Shared body of the drop-ins; subclasses say how to build one cell."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bias: bool,
        batch_first: bool,
        dropout: float,
        bidirectional: bool,
        device,
        dtype,
        *,
        backend: str,
        residual: bool,
        skip_input: bool,
        cell_options: dict,
        variational: bool = False,
    ) -> None:
        super().__init__()
        self.input_size = check_size(input_size, "input_size")
        self.hidden_size = check_size(hidden_size, "hidden_size")
        self.num_layers = check_size(num_layers, "num_layers")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self.backend = backend
        kw = dict(cell_options, bias=bias, device=device, dtype=dtype)
        layers = []
        size_in = input_size
        for _ in range(num_layers):
            forward = Recurrent(self._make_cell(size_in, hidden_size, **kw), backend=backend)
            if bidirectional:
                layers.append(Bidirectional(forward, Recurrent(self._make_cell(size_in, hidden_size, **kw), backend=backend)))
            else:
                layers.append(forward)
            size_in = layers[-1].output_size + (input_size if skip_input else 0)
        self.stack = Deep(
            layers, dropout=dropout, residual=residual, skip_input=skip_input, variational=variational, batch_first=batch_first
        )
        self.register_state_dict_post_hook(_to_torch_keys)
        self.register_load_state_dict_pre_hook(_from_torch_keys)

    def _make_cell(self, input_size: int, hidden_size: int, **kw) -> Cell:
        raise NotImplementedError

    # ---- torch's names ---------------------------------------------------------------------
    def cells(self) -> list[Cell]:
        """Every cell, in torch's order: layer 0 forward, layer 0 reverse, layer 1 forward, ..."""
        return [m.cell for m in self.stack.modules() if isinstance(m, Recurrent)]  # a wrapped cell counts once

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            m = _TORCH.match(name)
            if m is None or m.group(4) is not None:
                raise
            internal = _internal_key(name, self.__dict__.get("bidirectional", False))
            try:
                return self.get_parameter(internal)
            except AttributeError:
                raise AttributeError(f"{type(self).__name__} has no attribute {name!r}") from None

    def flatten_parameters(self) -> None:
        """On a GPU, lay the weights of a plain stack out in one buffer in cuDNN's order, as
        torch.nn does, so that no call has to copy them (called after every move, like torch's).
        Elsewhere nothing happens: on the CPU, for computed weights (DropConnect, an orthogonal
        map: they are new tensors at every call) and for cells no fused kernel computes."""
        cells = self.cells()
        if any(parametrize.is_parametrized(c) for c in cells):
            return
        weights = [w for c in cells for w in fused_weights(c)]
        first = weights[0]
        if not first.is_cuda or not torch.backends.cudnn.is_acceptable(first):
            return
        mode = stack_fused_mode(cells, first)
        if mode is None or any(not isinstance(w, nn.Parameter) or w.dtype != first.dtype or w.device != first.device for w in weights):
            return
        if len({w.data_ptr() for w in weights}) != len(weights) or not torch._use_cudnn_rnn_flatten_weight():
            return  # shared weights, or a build without the flat layout
        from torch.backends.cudnn import rnn

        with torch.cuda.device_of(first), torch.no_grad():  # the parameters become views of one new buffer
            torch._cudnn_rnn_flatten_weight(
                weights, len(fused_weights(cells[0])), self.input_size, rnn.get_cudnn_mode(_CUDNN_MODES[mode]),
                self.hidden_size, getattr(self, "proj_size", 0), self.num_layers, self.batch_first, self.bidirectional,
            )

    def _apply(self, fn, recurse: bool = True):
        result = super()._apply(fn, recurse)
        self.flatten_parameters()
        return result

    # ---- forward ---------------------------------------------------------------------------
    def forward(self, input: Tensor | PackedSequence, hx: Any = None):
        unbatched = isinstance(input, Tensor) and input.dim() == 2
        if unbatched:
            input = input.unsqueeze(0 if self.batch_first else 1)
        if isinstance(input, PackedSequence):
            batch = int(input.batch_sizes[0])
            like = input.data
        else:
            if input.dim() != 3:
                raise ValueError(
                    f"expected input of shape ({'B, T' if self.batch_first else 'T, B'}, {self.input_size}) "
                    f"or unbatched (T, {self.input_size}), got {shape_str(input.shape)}"
                )
            batch = input.shape[0 if self.batch_first else 1]
            like = input
        cells = self.cells()
        mode = self._fused_stack_mode(like, cells)
        if mode is not None:  # the whole stack in one kernel call, as torch.nn runs it
            if isinstance(input, PackedSequence):
                check_sequence_input(input.data.unsqueeze(0), self.input_size, what="packed input")
            else:
                check_sequence_input(input, self.input_size, batch_first=self.batch_first)
            h0 = None if hx is None else self._hidden_tensors(hx, batch, unbatched)
            out, h_n = run_fused_stack(
                mode, cells, input, h0,
                num_layers=self.num_layers, bidirectional=self.bidirectional, batch_first=self.batch_first,
            )
        else:
            state = None if hx is None else self._split_state(hx, batch, unbatched)
            out, finals = self.stack(input, state)
            h_n = self._join_state(finals, like)
        if unbatched:
            out = out.squeeze(0 if self.batch_first else 1)
            h_n = tuple(s.squeeze(1) for s in h_n)
        return out, self._pack_hidden(h_n)

    def _state_fields(self) -> list[tuple[str, int]]:
        cell = self.cells()[0]
        return list(zip(cell.state_type._fields, cell.state_sizes))

    def _pack_hidden(self, fields: tuple[Tensor, ...]):
        return fields[0]

    def _unpack_hidden(self, hx: Any) -> tuple[Tensor, ...]:
        return (hx,)

    def _fused_stack_mode(self, like: Tensor, cells: list[Cell] | None = None) -> str | None:
        """The kernel that can run the whole stack at once, or None (then each layer runs on its own).

        Only a plain stack qualifies: no residual or input-skip connections and no dropout drawn
        between layers (the per-layer path draws it, so every backend sees the same masks).
        """
        if self.backend not in ("auto", "fused") or self.stack.residual or self.stack.skip_input:
            return None
        if self.stack.dropout > 0 and self.stack.drop.training:  # the stack's own module: MC dropout turns on only it
            return None
        return stack_fused_mode(self.cells() if cells is None else cells, like)

    def _hidden_tensors(self, hx: Any, batch: int, unbatched: bool) -> tuple[Tensor, ...]:
        """The initial state fields, each checked to be (L*D, B, F) (unbatched ones get B = 1)."""
        tensors = self._unpack_hidden(hx)
        LD = self.num_layers * self.num_directions
        checked = []
        for (name, size), t in zip(self._state_fields(), tensors):
            want = (LD, size) if unbatched else (LD, batch, size)
            if not isinstance(t, Tensor) or tuple(t.shape) != want:
                got = shape_str(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(f"expected initial state {name!r} of shape {shape_str(want)}, got {got}")
            checked.append(t.unsqueeze(1) if unbatched else t)
        return tuple(checked)

    def _split_state(self, hx: Any, batch: int, unbatched: bool) -> tuple:
        """torch's (L*D, B, H) tensors -> carousel's nested per-layer states."""
        per_field = [t.unbind(0) for t in self._hidden_tensors(hx, batch, unbatched)]
        state_type = self.cells()[0].state_type
        states = [state_type(*parts) for parts in zip(*per_field)]  # one per (layer, direction)
        if self.bidirectional:
            return tuple((states[2 * i], states[2 * i + 1]) for i in range(self.num_layers))
        return tuple(states)

    def _join_state(self, finals: tuple, like: Tensor) -> tuple[Tensor, ...]:
        flat = [s for layer in finals for s in (layer if self.bidirectional else (layer,))]
        return tuple(torch.stack([s[k] for s in flat], dim=0) for k in range(len(flat[0])))  # (L*D, B, H)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


def _torch_key(internal: str) -> str | None:
    m = _INTERNAL.match(internal)
    if m is None:
        return None
    layer, direction, name, rest = m.groups()
    return f"{name}_l{layer}{'_reverse' if direction == 'backward_layer' else ''}{rest or ''}"


def _internal_key(key: str, bidirectional: bool) -> str:
    name, layer, reverse, rest = _TORCH.match(key).groups()
    where = ("backward_layer." if reverse else "forward_layer.") if (bidirectional or reverse) else ""
    return f"stack.layers.{layer}.{where}cell.{name}{rest or ''}"


def _to_torch_keys(module: _TorchCompatible, state_dict: dict, prefix: str, local_metadata: Any) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + "stack.")]:
        new = _torch_key(key[len(prefix):])
        if new is not None:
            state_dict[prefix + new] = state_dict.pop(key)


def _from_torch_keys(module: _TorchCompatible, state_dict: dict, prefix: str, *args: Any) -> None:
    for key in [k for k in state_dict if k.startswith(prefix)]:
        local = key[len(prefix):]
        if _TORCH.match(local) and not local.startswith("stack."):
            state_dict[prefix + _internal_key(local, module.bidirectional)] = state_dict.pop(key)


class RNN(_TorchCompatible):
    """Drop-in for ``torch.nn.RNN`` (Elman cells); ``nonlinearity`` may also be ``"identity"``.

    Returns ``(output, h_n)`` with torch's shapes: output (T, B, D*H) or (B, T, D*H), h_n (L*D, B, H).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        backend: str = "auto",
        residual: bool = False,
        skip_input: bool = False,
        variational: bool = False,
    ) -> None:
        self.nonlinearity = nonlinearity
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device, dtype,
            backend=backend, residual=residual, skip_input=skip_input, cell_options={"nonlinearity": nonlinearity},
            variational=variational,
        )

    def _make_cell(self, input_size: int, hidden_size: int, **kw) -> Cell:
        return ElmanCell(input_size, hidden_size, **kw)


class GRU(_TorchCompatible):
    """Drop-in for ``torch.nn.GRU``; ``variant="cho"`` gives the original form of Cho et al. 2014."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        variant: str = "torch",
        backend: str = "auto",
        residual: bool = False,
        skip_input: bool = False,
        variational: bool = False,
    ) -> None:
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device, dtype,
            backend=backend, residual=residual, skip_input=skip_input, cell_options={"variant": variant},
            variational=variational,
        )

    def _make_cell(self, input_size: int, hidden_size: int, **kw) -> Cell:
        return GRUCell(input_size, hidden_size, **kw)


class LSTM(_TorchCompatible):
    """Drop-in for ``torch.nn.LSTM``, including ``proj_size``.

    Returns ``(output, (h_n, c_n))``: h_n (L*D, B, P or H), c_n (L*D, B, H). Extra keywords:
    ``forget_gate``, ``forget_bias``, ``peephole``, ``layer_norm`` (see ``LSTMCell``).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        forget_gate: bool = True,
        forget_bias: float | None = None,
        peephole: bool = False,
        layer_norm: bool = False,
        backend: str = "auto",
        residual: bool = False,
        skip_input: bool = False,
        variational: bool = False,
    ) -> None:
        self.proj_size = int(proj_size)
        options = dict(
            proj_size=proj_size, forget_gate=forget_gate, forget_bias=forget_bias, peephole=peephole, layer_norm=layer_norm
        )
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device, dtype,
            backend=backend, residual=residual, skip_input=skip_input, cell_options=options,
            variational=variational,
        )

    def _make_cell(self, input_size: int, hidden_size: int, **kw) -> Cell:
        return LSTMCell(input_size, hidden_size, **kw)

    def _pack_hidden(self, fields: tuple[Tensor, ...]):
        return fields

    def _unpack_hidden(self, hx: Any) -> tuple[Tensor, ...]:
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise ValueError(f"expected the LSTM's initial state as a pair (h_0, c_0), got {type(hx).__name__}")
        return tuple(hx)
