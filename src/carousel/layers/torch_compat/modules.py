"""Drop-in ``RNN``, ``LSTM`` and ``GRU``: torch.nn's signatures, arguments, shapes and state_dict keys.

carousel's options come as extra keywords: ``layer_norm``, ``peephole``, ``forget_gate`` and
``forget_bias`` for the LSTM, ``variant`` for the GRU, ``"identity"`` as an RNN nonlinearity, and
``residual``, ``skip_input``, ``variational`` (one ``dropout`` mask per sequence between layers, see
``Deep``) and ``backend`` for all three. A checkpoint of the matching torch.nn module loads as is:
``carousel.LSTM(...).load_state_dict(nn_lstm.state_dict())``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ...cells import ElmanCell, GRUCell, LSTMCell
from .arguments import no_projection
from .base import TorchCompatible


class RNN(TorchCompatible):
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
        proj_size: int = 0,
        backend: str = "auto",
        residual: bool = False,
        skip_input: bool = False,
        variational: bool = False,
    ) -> None:
        no_projection(proj_size, "RNN")
        self.nonlinearity = nonlinearity
        super().__init__(
            ElmanCell, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype,
            backend=backend, residual=residual, skip_input=skip_input, variational=variational,
            cell_options={"nonlinearity": nonlinearity},
        )


    @property
    def mode(self) -> str:
        """torch.nn's mode: ``"RNN_TANH"`` or ``"RNN_RELU"`` (``"RNN_IDENTITY"`` for carousel's linear units)."""
        cell = self.cells()[0]
        while not hasattr(cell, "nonlinearity") and hasattr(cell, "cell"):  # a regulariser's wrapper (RecurrentDropout)
            cell = cell.cell
        return f"RNN_{cell.nonlinearity.upper()}"


class GRU(TorchCompatible):
    """Drop-in for ``torch.nn.GRU``; ``variant="cho"`` gives the original form of Cho et al. 2014.

    Returns ``(output, h_n)`` with torch's shapes.
    """

    mode = "GRU"

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
        proj_size: int = 0,
        backend: str = "auto",
        residual: bool = False,
        skip_input: bool = False,
        variational: bool = False,
    ) -> None:
        no_projection(proj_size, "GRU")
        super().__init__(
            GRUCell, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype,
            backend=backend, residual=residual, skip_input=skip_input, variational=variational,
            cell_options={"variant": variant},
        )


class LSTM(TorchCompatible):
    """Drop-in for ``torch.nn.LSTM``, including ``proj_size``.

    Returns ``(output, (h_n, c_n))``: h_n (L*D, B, P or H), c_n (L*D, B, H). Extra keywords:
    ``forget_gate``, ``forget_bias``, ``peephole``, ``layer_norm`` (see ``LSTMCell``).
    """

    mode = "LSTM"

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
        options = dict(
            proj_size=proj_size, forget_gate=forget_gate, forget_bias=forget_bias, peephole=peephole, layer_norm=layer_norm
        )
        super().__init__(
            LSTMCell, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size, device,
            dtype, backend=backend, residual=residual, skip_input=skip_input, variational=variational,
            cell_options=options,
        )

    def _pack_hidden(self, fields: tuple[Tensor, ...]):
        return fields

    def _unpack_hidden(self, hx: Any) -> tuple[Tensor, ...]:
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise ValueError(f"expected the LSTM's initial state as a pair (h_0, c_0), got {type(hx).__name__}")
        return tuple(hx)
