"""The drop-ins' shared body: one constructor builds the stack, one forward runs it as torch.nn would.

A drop-in is built from carousel's own parts, cells in ``Recurrent`` layers (``Bidirectional``
pairs for both directions) in a ``Deep`` stack; a plain stack that one fused kernel computes runs
in one call, as ``torch.nn.LSTM/GRU/RNN`` do (``carousel.runners.resolve_stack`` decides), any
other runs layer by layer. torch's names (``names``), state layout (``hidden``) and cuDNN's weight
layout (``cudnn``) each have their own module.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from ..._checks import check_sequence_input, check_size, shape_str
from ...cells.base import Cell
from ...runners import check_backend, resolve_stack, run_fused_stack
from ..bidirectional import Bidirectional
from ..deep import Deep
from ..recurrent import Recurrent
from .cudnn import flatten_into_cudnn_buffer
from .hidden import check_hidden, join_hidden, split_hidden
from .names import from_torch_keys, internal_key, is_torch_name, to_torch_keys, torch_order


class TorchCompatible(nn.Module):
    """Shared body of ``carousel.RNN``, ``LSTM`` and ``GRU``: ``make_cell(input_size, hidden_size,
    **cell_options)`` builds each cell; the other arguments are torch.nn's (and carousel's ``backend``,
    ``residual``, ``skip_input``, ``variational``, see ``Deep``)."""

    def __init__(
        self,
        make_cell: Callable[..., Cell],
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bias: bool,
        batch_first: bool,
        dropout: float,
        bidirectional: bool,
        proj_size: int,
        device,
        dtype,
        *,
        backend: str,
        residual: bool,
        skip_input: bool,
        variational: bool,
        cell_options: dict,
    ) -> None:
        super().__init__()
        self.input_size = check_size(input_size, "input_size")
        self.hidden_size = check_size(hidden_size, "hidden_size")
        self.num_layers = check_size(num_layers, "num_layers")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.proj_size = int(proj_size)
        self.num_directions = 2 if bidirectional else 1
        self.backend = check_backend(backend)
        kw = dict(cell_options, bias=bias, device=device, dtype=dtype)
        layers = []
        size_in = input_size
        for _ in range(num_layers):
            forward = Recurrent(make_cell(size_in, hidden_size, **kw), backend=backend)
            if bidirectional:
                layers.append(Bidirectional(forward, Recurrent(make_cell(size_in, hidden_size, **kw), backend=backend)))
            else:
                layers.append(forward)
            size_in = layers[-1].output_size + (input_size if skip_input else 0)
        self.stack = Deep(
            layers, dropout=dropout, residual=residual, skip_input=skip_input, variational=variational, batch_first=batch_first
        )
        self.register_state_dict_post_hook(to_torch_keys)
        self.register_load_state_dict_pre_hook(from_torch_keys)

    @property
    def dropout(self) -> float:
        """torch's ``dropout`` attribute: the rate between layers, which the ``Deep`` stack owns."""
        return self.stack.dropout

    # ---- torch's names ---------------------------------------------------------------------
    def cells(self) -> list[Cell]:
        """Every cell, in torch's order: layer 0 forward, layer 0 reverse, layer 1 forward, ..."""
        return [m.cell for m in self.stack.modules() if isinstance(m, Recurrent)]  # a wrapped cell counts once

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if not is_torch_name(name):
                raise
            owner, _, attribute = internal_key(name, self.__dict__.get("bidirectional", False)).rpartition(".")
            try:  # the cell's attribute: a parameter, or the computed weight of a parametrised one
                return getattr(self.get_submodule(owner), attribute)
            except AttributeError:
                raise AttributeError(f"{type(self).__name__} has no attribute {name!r}") from None

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """As ``nn.Module.named_parameters``, in torch.nn's order (per layer and direction: ``weight_ih,
        weight_hh, bias_ih, bias_hh[, weight_hr]``), also when a weight is parametrised (weight drop)."""
        named = list(super().named_parameters(prefix, recurse, remove_duplicate))
        start = len(prefix) + 1 if prefix else 0
        order = sorted(range(len(named)), key=lambda i: torch_order(named[i][0][start:], i))
        return iter([named[i] for i in order])

    def flatten_parameters(self) -> None:
        """On a GPU, lay the weights of a plain stack out in one buffer in cuDNN's order, as
        torch.nn does, so that no call has to copy them (called after every move, like torch's).
        Elsewhere nothing happens: on the CPU, for computed weights (DropConnect, an orthogonal
        map: they are new tensors at every call) and for cells no fused kernel computes."""
        flatten_into_cudnn_buffer(
            self.cells(), input_size=self.input_size, hidden_size=self.hidden_size, proj_size=self.proj_size,
            num_layers=self.num_layers, batch_first=self.batch_first, bidirectional=self.bidirectional,
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
        mode = self.fused_stack_mode(like, cells)
        if mode is not None:  # the whole stack in one kernel call, as torch.nn runs it
            if isinstance(input, PackedSequence):
                check_sequence_input(input.data.unsqueeze(0), self.input_size, what="packed input")
            else:
                check_sequence_input(input, self.input_size, batch_first=self.batch_first)
            h0 = None if hx is None else self._hidden(hx, batch, unbatched)
            out, h_n = run_fused_stack(
                mode, cells, input, h0,
                num_layers=self.num_layers, bidirectional=self.bidirectional, batch_first=self.batch_first,
            )
        else:
            state = None if hx is None else self.split_hidden(hx, batch, unbatched)
            out, finals = self.stack(input, state)
            h_n = self.join_hidden(finals)
        if unbatched:
            out = out.squeeze(0 if self.batch_first else 1)
            h_n = tuple(s.squeeze(1) for s in h_n)
        return out, self._pack_hidden(h_n)

    def fused_stack_mode(self, like: Tensor, cells: list[Cell] | None = None) -> str | None:
        """The kernel that runs the whole stack in one call now, or None (then each layer runs on its own).

        Only a plain stack qualifies: no residual or input-skip connections and no dropout drawn
        between layers (the per-layer path draws it, so every backend sees the same masks).
        """
        plain = not (self.stack.residual or self.stack.skip_input or self.stack.drops_between)
        return resolve_stack(self.cells() if cells is None else cells, like, self.backend, plain=plain)

    def state_fields(self) -> list[tuple[str, int]]:
        """``(name, size)`` of each state field, in torch's order (``h``, then ``c`` for an LSTM)."""
        cell = self.cells()[0]
        return list(zip(cell.state_type._fields, cell.state_sizes))

    def split_hidden(self, hx: Any, batch: int, unbatched: bool = False) -> tuple:
        """torch's initial state ``hx`` (checked: each field (L*D, B, F)) as the stack's nested per-layer states."""
        fields = self._hidden(hx, batch, unbatched)
        return split_hidden(fields, self.cells()[0].state_type, self.num_layers, self.bidirectional)

    def join_hidden(self, finals: tuple) -> tuple[Tensor, ...]:
        """The stack's nested per-layer final states as torch's (L*D, B, F) tensors, one per field."""
        return join_hidden(finals, self.bidirectional)

    def _hidden(self, hx: Any, batch: int, unbatched: bool) -> tuple[Tensor, ...]:
        return check_hidden(self._unpack_hidden(hx), self.state_fields(), self.num_layers * self.num_directions, batch, unbatched)

    def _pack_hidden(self, fields: tuple[Tensor, ...]):
        """torch's return form of the state fields: ``h_n`` alone (the LSTM overrides: ``(h_n, c_n)``)."""
        return fields[0]

    def _unpack_hidden(self, hx: Any) -> tuple[Tensor, ...]:
        """The state fields of a user's ``hx`` (the LSTM overrides: a pair)."""
        return (hx,)

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
