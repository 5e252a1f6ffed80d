"""The fused runner: torch's recurrent kernels (oneDNN on CPU, cuDNN on GPU) on carousel's parameters.

A cell says which kernel computes it exactly through ``cell.fused_mode()`` (``"lstm"``,
``"gru"``, ``"rnn_tanh"``, ``"rnn_relu"``, or a reason why none does) and which tensors it reads
through ``cell.fused_weights()`` (torch's ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``,
and ``weight_hr`` for an LSTM projection); this runner knows nothing else of its equations. The
weights are read once, inside ``parametrize.cached()``, so computed weights (orthogonal,
DropConnect) enter as the matrices the reference loop would use. Variable lengths go through the kernel's packed form: sequences sorted by
length, each stopping at its own end, outputs zero past it.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import torch
from torch import Tensor, _VF
from torch.nn.utils import parametrize
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..cells.base import Cell
from .reference import run_reference

_KERNELS = {"lstm": _VF.lstm, "gru": _VF.gru, "rnn_tanh": _VF.rnn_tanh, "rnn_relu": _VF.rnn_relu}
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def fused_unsupported(cell: Cell, x: Tensor) -> str | None:
    """None when a fused kernel can run ``cell`` over ``x``, else the reason it cannot."""
    mode, reason = cell.fused_mode()
    if mode is None:
        return reason
    if x.dtype not in _DTYPES:
        return f"fused needs a real floating-point input; dtype {x.dtype} was given"
    return None


def fused_call(
    mode: str,
    x: Tensor,
    hx: tuple[Tensor, ...],
    weights: Sequence[Tensor],
    *,
    has_biases: bool,
    num_layers: int = 1,
    bidirectional: bool = False,
    batch_first: bool = True,
    batch_sizes: Tensor | None = None,
    dropout: float = 0.0,
    train: bool | None = None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One kernel call over a whole stack: ``x`` padded (or packed data with ``batch_sizes``).

    ``hx`` holds the state fields, each (L*D, B, F) in torch's layer-major order; ``weights`` the
    flat per-(layer, direction) parameter lists. Returns the outputs and the final state fields.
    ``train`` (default: whether autograd records) is the kernel's training mode: it switches the
    kernel's own between-layer ``dropout`` on, and cuDNN keeps what its backward needs only in it.
    """
    if train is None:
        train = torch.is_grad_enabled()
    kernel = _KERNELS[mode]
    h0 = hx if mode == "lstm" else hx[0]
    args = (x, h0) if batch_sizes is None else (x, batch_sizes, h0)
    flags = (has_biases, num_layers, dropout, train, bidirectional) + ((batch_first,) if batch_sizes is None else ())
    if x.is_cuda:
        with warnings.catch_warnings():
            # cuDNN copies weights that are not one buffer in its layout at every call, and says
            # so each time. The drop-ins keep theirs in one (flatten_parameters); computed weights
            # (DropConnect, an orthogonal map) and single Recurrent layers take the copy.
            warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
            result = kernel(*args, list(weights), *flags)
        return result[0], tuple(result[1:])
    low = _low_precision(x)
    if low is None or ("cpu", low) not in _NO_KERNEL:
        try:
            result = kernel(*args, list(weights), *flags)
            return result[0], tuple(result[1:])
        except RuntimeError as err:
            if low is None or "could not create a primitive" not in str(err):
                raise
            _NO_KERNEL.add(("cpu", low))
            warnings.warn(
                f"this CPU has no {low} recurrent kernel (oneDNN: {str(err).splitlines()[0]}); carousel runs its fused "
                f"{mode} kernels in float32 and returns {low} results. For {low} speed, a CPU with avx512_bf16 or AMX "
                "is needed",
                RuntimeWarning,
                stacklevel=2,
            )
    return _in_float32(kernel, args, weights, flags, low)


_NO_KERNEL: set[tuple[str, torch.dtype]] = set()  # (device type, dtype) without a oneDNN recurrent kernel
_LOW = (torch.bfloat16, torch.float16)


def _low_precision(x: Tensor) -> torch.dtype | None:
    """The half-precision dtype the kernel would compute in (the input's, or CPU autocast's), or None."""
    if x.dtype in _LOW:
        return x.dtype
    if torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") in _LOW:
        return torch.get_autocast_dtype("cpu")
    return None


def _in_float32(kernel: Any, args: tuple, weights: Sequence[Tensor], flags: tuple, dtype: torch.dtype):
    """The kernel call in float32 (autocast off), its floating-point results cast to ``dtype``."""
    wide = lambda t: t.float() if isinstance(t, Tensor) and t.is_floating_point() else t  # noqa: E731
    with torch.autocast("cpu", enabled=False):
        args = tuple(tuple(map(wide, a)) if isinstance(a, tuple) else wide(a) for a in args)
        result = kernel(*args, [w.float() for w in weights], *flags)
    return result[0].to(dtype), tuple(r.to(dtype) for r in result[1:])


def fused_padded(
    mode: str,
    x: Tensor,
    hx: tuple[Tensor, ...],
    weights: Sequence[Tensor],
    lengths: Tensor | None,
    **options: Any,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """:func:`fused_call` on batch-first padded ``x`` (B, T, I) with optional ``lengths`` (B,).

    With lengths the batch is packed (sorted by length), run, and padded back with zeros.
    """
    if lengths is None:
        return fused_call(mode, x, hx, weights, batch_first=True, **options)
    T = x.shape[1]
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    hx = tuple(h.index_select(1, packed.sorted_indices) for h in hx)  # (L*D, B, F) in length order
    data, final = fused_call(mode, packed.data, hx, weights, batch_sizes=packed.batch_sizes, **options)
    out, _ = pad_packed_sequence(
        PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices),
        batch_first=True,
        total_length=T,
    )  # (B, T, D*H), original order
    return out, tuple(h.index_select(1, packed.unsorted_indices) for h in final)


def run_fused(cell: Cell, x: Tensor, state: Any, lengths: Tensor | None = None) -> tuple[Tensor, Any]:
    """Run a cell that ``cell.fused_mode()`` names a kernel for; same contract as the loop runner."""
    mode, reason = cell.fused_mode()
    if mode is None:
        raise ValueError(f"backend 'fused' cannot run {cell.kind}: {reason}")
    if x.shape[1] == 1 and x.device.type == "cpu":
        # One step (decoding, sampling): the CPU kernel's set-up (oneDNN reorders the weights at
        # every call) costs far more than the step itself; 1.2 ms against 0.05 ms for a step of
        # an LSTM of 512 units. The cell's own step computes the same function.
        return run_reference(cell, x, state, lengths)
    with parametrize.cached():
        weights = cell.fused_weights()
    hx = tuple(s.unsqueeze(0) for s in state)  # (1, B, F) per field
    out, final = fused_padded(mode, x, hx, weights, lengths, has_biases=cell.bias_ih is not None)
    return out, cell.state_type(*(h.squeeze(0) for h in final))


def stack_fused_mode(cells: Sequence[Cell], like: Tensor) -> str | None:
    """The kernel mode shared by every cell of a stack, or None when some cell has no fused form."""
    modes = set()
    for cell in cells:
        if fused_unsupported(cell, like) is not None:
            return None
        modes.add(cell.fused_mode()[0])
    return modes.pop() if len(modes) == 1 else None


def run_fused_stack(
    mode: str,
    cells: Sequence[Cell],
    x: Tensor | PackedSequence,
    hx: tuple[Tensor, ...] | None,
    *,
    num_layers: int,
    bidirectional: bool,
    batch_first: bool,
) -> tuple[Tensor | PackedSequence, tuple[Tensor, ...]]:
    """A whole stack in one kernel call, as ``torch.nn.LSTM/GRU/RNN`` run it.

    ``cells`` in torch's order (layer 0 forward, layer 0 reverse, layer 1 forward, ...); ``x``
    padded (time-major unless ``batch_first``) or packed; ``hx`` the state fields, each
    (L*D, B, F), or None for zeros. Returns the outputs in the layout of ``x`` and the final
    state fields (L*D, B, F) in the batch's original order.
    """
    with parametrize.cached():
        weights = [w for cell in cells for w in cell.fused_weights()]
    options = {"has_biases": cells[0].bias_ih is not None, "num_layers": num_layers, "bidirectional": bidirectional}
    data = x.data if isinstance(x, PackedSequence) else x
    if hx is None:
        B = int(x.batch_sizes[0]) if isinstance(x, PackedSequence) else x.shape[0 if batch_first else 1]
        LD = num_layers * (2 if bidirectional else 1)
        hx = tuple(data.new_zeros(LD, B, size) for size in cells[0].state_sizes)
    if not isinstance(x, PackedSequence):
        return fused_call(mode, x, hx, weights, batch_first=batch_first, **options)
    if x.sorted_indices is not None:
        hx = tuple(h.index_select(1, x.sorted_indices) for h in hx)  # into the packed (sorted) order
    out, final = fused_call(mode, x.data, hx, weights, batch_sizes=x.batch_sizes, **options)
    if x.unsorted_indices is not None:
        final = tuple(h.index_select(1, x.unsorted_indices) for h in final)
    return PackedSequence(out, x.batch_sizes, x.sorted_indices, x.unsorted_indices), final
