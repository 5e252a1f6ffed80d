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

from ...cells.base import Cell
from ...regularize import VariationalDropout
from ...runners import check_backend, resolve_stack, run_fused_stack
from ..bidirectional import Bidirectional
from ..deep import Deep
from ..recurrent import Recurrent
from .arguments import check_arguments, check_input
from .cudnn import flatten_into_cudnn_buffer
from .hidden import check_hidden, join_hidden, split_hidden
from .names import TorchNames, from_torch_keys, to_torch_keys


class TorchCompatible(TorchNames):
    """Shared body of ``carousel.RNN``, ``LSTM`` and ``GRU``: ``make_cell(input_size, hidden_size,
    **cell_options)`` builds each cell; the other arguments are torch.nn's (and carousel's ``backend``,
    ``residual``, ``skip_input``, ``variational``, see ``Deep``)."""

    mode: str  # torch.nn's name of the kernel: "LSTM", "GRU", "RNN_TANH", "RNN_RELU"

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
        check_arguments(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.bidirectional, self.proj_size = bias, batch_first, bool(bidirectional), proj_size
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

    def set_variational_io(self, input: float, output: float) -> None:
        """Variational dropout (one mask per sequence) on the inputs and on the outputs, around the stack;
        the rate 0 removes it. ``carousel.add_variational_dropout`` calls it: the module keeps torch's
        forward, return form and ``state_dict`` keys (the masks store nothing)."""
        for name, p in (("input_dropout", input), ("output_dropout", output)):
            if p:
                setattr(self, name, VariationalDropout(p, batch_first=self.batch_first))
            elif name in self._modules:
                delattr(self, name)

    @property
    def dropout(self) -> float:
        """torch's ``dropout`` attribute: the rate between layers, which the ``Deep`` stack owns;
        assigning it changes the stack's rate (0 stops the dropout)."""
        return self.stack.dropout

    @dropout.setter
    def dropout(self, p: float) -> None:
        check_arguments(self.input_size, self.hidden_size, self.num_layers, self.bias, self.batch_first, p,
                        self.bidirectional, self.proj_size)
        self.stack.set_dropout(p, variational=self.stack.variational)

    def cells(self) -> list[Cell]:
        """Every cell, in torch's order: layer 0 forward, layer 0 reverse, layer 1 forward, ..."""
        return [m.cell for m in self.stack.modules() if isinstance(m, Recurrent)]  # a wrapped cell counts once

    def flatten_parameters(self) -> None:
        """On a GPU, lay the weights of a plain stack out in one buffer in cuDNN's order, as
        torch.nn does, so that no call has to copy them (called after every move, like torch's).
        Elsewhere nothing happens: on the CPU, for computed weights (DropConnect, an orthogonal
        map: they are new tensors at every call) and for cells no fused kernel computes."""
        flatten_into_cudnn_buffer(
            self.cells(), input_size=self.input_size, hidden_size=self.hidden_size, proj_size=self.proj_size,
            num_layers=self.num_layers, batch_first=self.batch_first, bidirectional=self.bidirectional,
        )

    def to_torch(self) -> nn.Module:
        """The torch.nn module that computes the same function, with these weights (for code that needs
        ``isinstance(m, torch.nn.LSTM)``: exporters, initialisers). Raises ``ValueError`` when carousel's
        own options (a cell no torch kernel computes, residual or input-skip connections, variational
        dropout) make it a different function."""
        kind = {"LSTM": "LSTM", "GRU": "GRU", "RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(self.mode)
        extras = [n for n in ("residual", "skip_input", "variational") if getattr(self.stack, n)]
        if kind is None or extras or any(c.fused_mode()[0] is None for c in self.cells()):
            reasons = [f"{n}=True" for n in extras] + [why for c in self.cells()[:1] for mode, why in [c.fused_mode()] if mode is None and why]
            raise ValueError(f"{type(self).__name__} with {', '.join(extras) or self.cells()[0].kind} has no torch.nn equivalent"
                             + (f" ({'; '.join(reasons)})" if reasons else "") + "; expected torch.nn's own options only")
        options = {"nonlinearity": self.mode[4:].lower()} if kind == "RNN" else {"proj_size": self.proj_size} if kind == "LSTM" else {}
        weight = next(self.parameters())
        module = getattr(nn, kind)(self.input_size, self.hidden_size, self.num_layers, bias=self.bias, batch_first=self.batch_first,
                                   dropout=self.dropout, bidirectional=self.bidirectional, device=weight.device, dtype=weight.dtype, **options)
        module.load_state_dict({k: v.detach() for k, v in zip(self._flat_weights_names, (w for ws in self.all_weights for w in ws))})
        return module.train(self.training)

    def _apply(self, fn, recurse: bool = True):
        result = super()._apply(fn, recurse)
        self.flatten_parameters()
        return result

    # ---- forward ---------------------------------------------------------------------------
    def forward(self, input: Tensor | PackedSequence, hx: Any = None):
        packed = isinstance(input, PackedSequence)
        if not packed and not isinstance(input, Tensor):
            raise TypeError(f"expected a tensor or a PackedSequence as input, got {type(input).__name__}")
        unbatched = not packed and input.dim() == 2
        cells = self.cells()
        # the first cell's own first parameter: named_parameters here sorts every parameter into torch's order
        check_input(input.data if packed else input, self.input_size, next(cells[0].parameters()), packed=packed,
                    batch_first=self.batch_first, unbatched=unbatched)
        if unbatched:
            input = input.unsqueeze(0 if self.batch_first else 1)
        if "input_dropout" in self._modules:  # set by add_variational_dropout
            input = self._modules["input_dropout"](input)
        if packed:
            batch, like = int(input.batch_sizes[0]), input.data
        else:
            batch, like = input.shape[0 if self.batch_first else 1], input
        mode = self.fused_stack_mode(like, cells)
        if mode is not None:  # the whole stack in one kernel call, as torch.nn runs it
            h0 = None if hx is None else self._hidden(hx, batch, unbatched, like)
            out, h_n = run_fused_stack(
                mode, cells, input, h0,
                num_layers=self.num_layers, bidirectional=self.bidirectional, batch_first=self.batch_first,
            )
        else:
            state = None if hx is None else self.split_hidden(hx, batch, unbatched, like)
            out, finals = self.stack(input, state)
            h_n = self.join_hidden(finals)
        if "output_dropout" in self._modules:
            out = self._modules["output_dropout"](out)
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

    def split_hidden(self, hx: Any, batch: int, unbatched: bool = False, like: Tensor | None = None) -> tuple:
        """torch's initial state ``hx`` (checked: each field (L*D, B, F), of ``like``'s dtype and device when
        given) as the stack's nested per-layer states."""
        fields = self._hidden(hx, batch, unbatched, like)
        return split_hidden(fields, self.cells()[0].state_type, self.num_layers, self.bidirectional)

    def join_hidden(self, finals: tuple) -> tuple[Tensor, ...]:
        """The stack's nested per-layer final states as torch's (L*D, B, F) tensors, one per field."""
        return join_hidden(finals, self.bidirectional)

    def _hidden(self, hx: Any, batch: int, unbatched: bool, like: Tensor | None = None) -> tuple[Tensor, ...]:
        return check_hidden(self._unpack_hidden(hx), self.state_fields(), self.num_layers * self.num_directions, batch, unbatched,
                            like)

    def _pack_hidden(self, fields: tuple[Tensor, ...]):
        """torch's return form of the state fields: ``h_n`` alone (the LSTM overrides: ``(h_n, c_n)``)."""
        return fields[0]

    def _unpack_hidden(self, hx: Any) -> tuple[Tensor, ...]:
        """The state fields of a user's ``hx`` (the LSTM overrides: a pair)."""
        return (hx,)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s
