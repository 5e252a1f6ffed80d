"""Variational dropout in every place of a recurrent layer: inputs, recurrent state, between layers, outputs."""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from .._checks import check_rate
from ..regularize import RecurrentDropout, VariationalDropout, Zoneout
from .base import SequenceLayer, check_layer
from .deep import Deep
from .recurrent import Recurrent
from .torch_compat import TorchCompatible

PLACES = ("input", "recurrent", "between", "output")


class VariationalLayer(SequenceLayer):
    """``layer`` with a variational mask (one per sequence) on its inputs and on its outputs.

    ``y = M_out * layer(M_in * x)`` with ``M_in`` of shape (B, 1, I) and ``M_out`` of shape
    (B, 1, O); the final state is the inner layer's, undropped. Outputs past a sequence's length
    stay zero.
    """

    def __init__(self, layer: SequenceLayer, *, input: float = 0.0, output: float = 0.0) -> None:
        check_layer(layer, "the layer of VariationalLayer")
        super().__init__(batch_first=layer.batch_first)
        self.layer = layer
        self.input_dropout = VariationalDropout(input)
        self.output_dropout = VariationalDropout(output)

    @property
    def input_size(self) -> int:  # type: ignore[override]
        return self.layer.input_size

    @property
    def output_size(self) -> int:  # type: ignore[override]
        return self.layer.output_size

    def forward_padded(self, x: Tensor, state: Any, lengths: Tensor | None) -> tuple[Tensor, Any]:
        out, final = self.layer.forward_padded(self.input_dropout(x), state, lengths)  # (B, T, O)
        return self.output_dropout(out), final


def _rates(p: float | Mapping[str, float]) -> tuple[dict[str, float], bool]:
    if isinstance(p, Mapping):
        bad = [k for k in p if not isinstance(k, str)]
        if bad:
            raise TypeError(f"expected dropout places as strings ({', '.join(map(repr, PLACES))}), got {bad[0]!r}")
        unknown = [k for k in p if k not in PLACES]
        if unknown:
            raise ValueError(f"unknown dropout place {unknown[0]!r}; expected some of: {', '.join(map(repr, PLACES))}")
        return {k: check_rate(v, f"p[{k!r}]") for k, v in p.items()}, True
    rate = check_rate(p, "p")
    return dict.fromkeys(PLACES, rate), False


def add_variational_dropout(layer: SequenceLayer | TorchCompatible, p: float | Mapping[str, float]) -> SequenceLayer | TorchCompatible:
    """Regularise a carousel layer with variational dropout (Gal & Ghahramani 2016) in every place.

    ``p`` is one rate for all four places or a mapping ``{place: rate}`` with places
    ``"input"`` and ``"output"`` (masks on the layer's inputs and outputs), ``"recurrent"`` (every
    cell inside becomes ``RecurrentDropout(cell, rate)``; inside a ``Zoneout`` the zoneout stays
    outermost) and ``"between"`` (every ``Deep`` stack inside uses one mask per sequence between
    its layers). The layer's cells and stacks are changed in place; the returned layer adds the
    input and output masks around it. A mapping naming ``"between"`` for a layer without a
    ``Deep`` stack is an error. Works with ``Recurrent``, ``Bidirectional``, ``Deep`` and any
    nesting of them, and with the drop-ins ``carousel.LSTM``, ``GRU`` and ``RNN``: a drop-in is
    changed in place and returned itself, its input and output masks inside it, so it keeps
    torch's forward, return form and keys. The state_dict keys do not change.

    Raises ``TypeError`` for a module that is neither (a cell: wrap it in ``Recurrent``) and for a
    rate that is not a number, ``ValueError`` for a rate outside [0, 1) or an unknown place.
    """
    drop_in = isinstance(layer, TorchCompatible)
    if not drop_in:
        check_layer(layer, "the layer to regularise")
    rates, explicit = _rates(p)
    recurrent, between = rates.get("recurrent", 0.0), rates.get("between", 0.0)
    stacks = [m for m in layer.modules() if isinstance(m, Deep)]
    if explicit and between > 0 and not stacks:
        raise ValueError(f"'between' dropout was asked for, but {type(layer).__name__} has no Deep stack inside")
    if recurrent > 0:
        for r in [m for m in layer.modules() if isinstance(m, Recurrent)]:
            holder, cell = r, r.cell
            while isinstance(cell, Zoneout):  # zoneout keeps the undropped previous state
                holder, cell = cell, cell.cell
            if isinstance(cell, RecurrentDropout):
                raise ValueError(f"{r.cell.kind} already has recurrent dropout")
            holder.cell = RecurrentDropout(cell, recurrent)
    if between > 0:
        for d in stacks:
            d.set_dropout(between, variational=True)
    if drop_in:
        layer.set_variational_io(rates.get("input", 0.0), rates.get("output", 0.0))
        return layer
    return VariationalLayer(layer, input=rates.get("input", 0.0), output=rates.get("output", 0.0))
