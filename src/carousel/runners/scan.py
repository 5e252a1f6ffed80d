r"""The scan runner, for cells whose recurrence is linear in the state (minGRU, minLSTM).

Such a cell says so (``cell.scan_unsupported()`` is None) and gives ``coefficients(px) -> (a, b)`` with

.. math::
    h_t = a_t \odot h_{t-1} + b_t ,

so no step needs a matrix product and the recurrence can be evaluated without the per-step
overhead of autograd. On a CPU the cost of this work is memory traffic, not arithmetic (the
textbook log-space parallel scan does several times the work and is slower than ``nn.GRU``),
so this runner is built to touch each number few times and to stay in cache:

* time is cut into blocks of a few hundred steps (``block_steps``); each block's projection,
  coefficients and scan are computed while the block is in cache, and the state is carried
  from block to block;
* inside a block, :class:`LinearScan` (a custom ``autograd.Function``) evaluates the recurrence
  exactly: chunks of ``C`` steps run side by side from a zero state (``u``), then one short
  loop carries the state across chunks and one product adds it back,
  ``h_{kC+j} = u_{k,j} + P_{k,j} s_k`` with ``P_{k,j} = a_{kC} \cdots a_{kC+j}`` and ``s_k`` the
  state entering chunk ``k``; no logarithm, no division, nothing that can underflow into an error;
* the backward pass is the same recurrence run backwards in time,
  ``g_t = \partial L/\partial h_t + a_{t+1} g_{t+1}``, giving ``\partial L/\partial b_t = g_t``,
  ``\partial L/\partial a_t = g_t h_{t-1}`` and ``\partial L/\partial h_{-1} = a_0 g_0``.

Past a sequence's length ``a = 1`` and ``b = 0``, so its state is frozen; its outputs are zeroed.

On a CPU, minGRU and minLSTM blocks run in carousel's compiled kernels where they build
(``carousel.runners.native``: coefficients and recurrence in one pass), else as above. On a CUDA
device the whole sequence is one associative scan (``carousel.runners.device_scan``), where a
launch per step of a chunk would cost more than the arithmetic.
"""

from __future__ import annotations

from typing import Any, Callable

import weakref

import torch
from torch import Tensor
from torch.nn.utils import parametrize

from .._compiled import compiled, compiling_on
from ..cells.base import Cell
from ..cells.lstm_explicit import _give, _take
from . import native
from .device_scan import associative_linear_scan, device_scan_available

CHUNK = 16  # steps per chunk inside a block (the length of the in-chunk loop)
# the compiled scan runs a whole run in one parallel region, a batch row at a time, when there are at
# least this many rows per thread (else block after block, each block's rows and units side by side)
ROWS_PER_THREAD = 2
BLOCK_ELEMENTS = 1 << 19  # about B * steps * H numbers per block: 2 MB in float32


def scan_unsupported(cell: Cell, x: Tensor) -> str | None:
    """None when the scan can run ``cell``, else the reason it cannot."""
    if functorch_active():
        return "its autograd functions have no torch.func (vmap, grad, jacrev) rules"
    reason = cell.scan_unsupported()
    if reason is not None:
        return reason
    if len(cell.state_type._fields) != 1:
        return f"scan needs a cell whose state is h alone; {cell.kind} has {cell.state_type._fields}"
    if not x.is_floating_point():
        return f"scan needs a real floating-point input; dtype {x.dtype} was given"
    return None


def functorch_active() -> bool:
    """Whether a torch.func transform (vmap, grad, jacrev, ...) is running: custom autograd functions
    without functorch rules cannot serve then, and "auto" takes a backend built from torch operations."""
    return bool(torch._C._are_functorch_transforms_active())


def _scan_into(a: Tensor, b: Tensor, h0: Tensor, out: Tensor, chunk: int = CHUNK) -> None:
    """Write ``out_t = a_t * out_{t-1} + b_t`` (``out_{-1} = h0``) into contiguous ``out`` (B, T, H)."""
    B, T, H = a.shape
    n = T // chunk if T >= 2 * chunk else 0
    done = n * chunk
    if n:
        a4 = a[:, :done].reshape(B, n, chunk, H)  # (B, n, C, H)
        b4 = b[:, :done].reshape(B, n, chunk, H)
        u = out[:, :done].view(B, n, chunk, H)
        u_j, a_j, b_j = u.unbind(2), a4.unbind(2), b4.unbind(2)  # C views of (B, n, H)
        prev = u_j[0].copy_(b_j[0])
        for j in range(1, chunk):  # every chunk from a zero state, side by side
            prev = torch.addcmul(b_j[j], a_j[j], prev, out=u_j[j])
        P = torch.cumprod(a4, dim=2)  # (B, n, C, H): P[:, k, j] = a_{kC} ... a_{kC+j}
        S = torch.empty(B, n, H, dtype=out.dtype, device=out.device)  # state entering chunk k
        s = h0
        for s_k, P_k, u_k in zip(S.unbind(1), P[:, :, -1].unbind(1), u_j[-1].unbind(1)):
            s_k.copy_(s)
            s = torch.addcmul(u_k, P_k, s)
        torch.addcmul(u, P, S.unsqueeze(2), out=u)  # h = u + P * s_k
        h0 = out[:, done - 1]
    prev = h0
    for a_t, b_t, o_t in zip(a[:, done:].unbind(1), b[:, done:].unbind(1), out[:, done:].unbind(1)):
        prev = torch.addcmul(b_t, a_t, prev, out=o_t)


def _scan_reverse_into(c: Tensor, d: Tensor, out: Tensor, end: Tensor | None = None, chunk: int = CHUNK) -> None:
    """Write ``out_t = d_t + c_t * out_{t+1}`` (``out_T = end``, or 0), backwards in time, into contiguous ``out``.

    The mirror image of :func:`_scan_into`: chunks run side by side from a zero state at their
    right end (``u``), with ``Q_{k,j} = c_{kC+j} ... c_{kC+C-1}`` the factor that carries the
    value entering chunk ``k`` from the right; the ragged tail after the last chunk runs first.
    """
    B, T, H = c.shape
    n = T // chunk if T >= 2 * chunk else 0
    done = n * chunk
    nxt = end
    for t in range(T - 1, done - 1, -1):  # the tail, step by step
        o = out[:, t]
        nxt = o.copy_(d[:, t]) if nxt is None else torch.addcmul(d[:, t], c[:, t], nxt, out=o)
    if not n:
        return
    c4 = c[:, :done].reshape(B, n, chunk, H)  # (B, n, C, H)
    d4 = d[:, :done].reshape(B, n, chunk, H)
    u = out[:, :done].view(B, n, chunk, H)
    Q = torch.empty_like(u)
    u_j, Q_j, c_j, d_j = u.unbind(2), Q.unbind(2), c4.unbind(2), d4.unbind(2)
    u_j[-1].copy_(d_j[-1])
    Q_j[-1].copy_(c_j[-1])
    for j in range(chunk - 2, -1, -1):  # every chunk from a zero state at its right end, side by side
        torch.addcmul(d_j[j], c_j[j], u_j[j + 1], out=u_j[j])
        torch.mul(c_j[j], Q_j[j + 1], out=Q_j[j])
    G = torch.empty(B, n, H, dtype=out.dtype, device=out.device)  # value entering chunk k from the right
    g = nxt if nxt is not None else torch.zeros_like(G[:, 0])
    for G_k, Q_k, u_k in zip(reversed(G.unbind(1)), reversed(Q_j[0].unbind(1)), reversed(u_j[0].unbind(1))):
        G_k.copy_(g)
        g = torch.addcmul(u_k, Q_k, g)
    torch.addcmul(u, Q, G.unsqueeze(2), out=u)  # out = u + Q * G


class LinearScan(torch.autograd.Function):
    """``h = LinearScan.apply(a, b, h0)``: ``h_t = a_t * h_{t-1} + b_t`` over dim 1 of (B, T, H)."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), h0.dtype)
        a, b, h0 = a.to(dtype), b.to(dtype), h0.to(dtype)
        h = torch.empty(b.shape, dtype=dtype, device=b.device)  # (B, T, H)
        _scan_into(a, b, h0, h)
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    def backward(ctx, grad_h: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        a, h, h0 = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: the same backward in differentiable operations
            return _differentiable_scan_backward(ctx.needs_input_grad, a, h, h0, grad_h)
        # g_t = grad_h_t + a_{t+1} g_{t+1}: the same recurrence backwards in time, with c_t = a_{t+1}
        c = torch.empty_like(a)
        c[:, :-1] = a[:, 1:]
        c[:, -1].zero_()
        g = torch.empty_like(h)  # (B, T, H)
        _scan_reverse_into(c, grad_h, g)
        grad_a = grad_h0 = None
        if ctx.needs_input_grad[0]:
            grad_a = torch.empty_like(a)
            torch.mul(g[:, 1:], h[:, :-1], out=grad_a[:, 1:])  # g_t h_{t-1}
            torch.mul(g[:, 0], h0, out=grad_a[:, 0])
        if ctx.needs_input_grad[2]:
            grad_h0 = a[:, 0] * g[:, 0]
        return grad_a, (g if ctx.needs_input_grad[1] else None), grad_h0


def _differentiable_scan_backward(needs: tuple[bool, ...], a: Tensor, h: Tensor, h0: Tensor, grad_h: Tensor):
    """LinearScan's backward written with operations autograd records (the reverse recurrence is a
    LinearScan of the flipped sequence), so that second derivatives are exact."""
    c = torch.cat([a[:, 1:], torch.zeros_like(a[:, :1])], dim=1)  # c_t = a_{t+1}
    g = LinearScan.apply(c.flip(1), grad_h.flip(1), torch.zeros_like(h0)).flip(1)  # (B, T, H)
    h_prev = torch.cat([h0.unsqueeze(1), h[:, :-1]], dim=1)  # h_{t-1}
    return (g * h_prev if needs[0] else None), (g if needs[1] else None), (a[:, 0] * g[:, 0] if needs[2] else None)


def refuse_double_backward(backend: str) -> None:
    """Raise when a written-out backward is asked to build a graph (``create_graph=True``)."""
    if torch.is_grad_enabled():
        raise RuntimeError(
            f"second derivatives (create_graph=True) cannot go through carousel's {backend!r} backend: its backward "
            "is written out by hand, without a graph. Run the layer with backend='reference' (or the whole model "
            "inside carousel.runners.use_backend('reference')) to differentiate twice"
        )


def _hold_past_lengths(a: Tensor, b: Tensor, alive: Tensor) -> tuple[Tensor, Tensor]:
    """``a`` 1 and ``b`` 0 (the identity map, so the state holds) where ``alive`` (B, T, 1) is False."""
    return (torch.where(alive, a, torch.ones((), dtype=a.dtype, device=a.device)),
            torch.where(alive, b, torch.zeros((), dtype=b.dtype, device=b.device)))


class _ExplicitScan(torch.autograd.Function):
    """A block of a cell whose ``explicit_coefficients()`` offers the derivative: coefficients and scan in one node.

    ``(h, h_last) = apply(coefficients, alive, px, h0)``; ``alive`` (B, T, 1) or None marks the
    steps inside each sequence (elsewhere ``a = 1``, ``b = 0``: the state is frozen).
    """

    @staticmethod
    def forward(ctx, coefficients, alive: Tensor | None, px: Tensor, h0: Tensor):
        a, b = coefficients.forward(px)  # (B, T, H) each
        if alive is not None:
            a, b = _hold_past_lengths(a, b, alive)
        h0 = h0.to(a.dtype)
        h = torch.empty(b.shape, dtype=a.dtype, device=a.device)  # (B, T, H)
        _scan_into(a, b, h0, h)
        ctx.coefficients, ctx.alive, ctx.px_shape = coefficients, alive, px.shape
        ctx.save_for_backward(a, h, h0)
        return h, h[:, -1].clone()  # the last state apart: its gradient then arrives as (B, H)

    @staticmethod
    def backward(ctx, grad_h: Tensor, grad_last: Tensor):
        refuse_double_backward("scan")
        a, h, h0 = ctx.saved_tensors
        c = torch.empty_like(a)  # c_t = a_{t+1}; h_{T-1} also receives grad_last directly
        c[:, :-1] = a[:, 1:]
        c[:, -1].fill_(1.0)
        g = torch.empty_like(h)
        _scan_reverse_into(c, grad_h, g, end=grad_last)
        grad_a = torch.empty_like(a)
        torch.mul(g[:, 1:], h[:, :-1], out=grad_a[:, 1:])  # g_t h_{t-1}
        torch.mul(g[:, 0], h0, out=grad_a[:, 0])
        grad_b = g
        if ctx.alive is not None:
            grad_a.masked_fill_(~ctx.alive, 0.0)
            grad_b = g.masked_fill(~ctx.alive, 0.0)
        grad_px = torch.empty(ctx.px_shape, dtype=a.dtype, device=a.device)
        ctx.coefficients.backward(grad_a, grad_b, grad_px)
        return None, None, grad_px, a[:, 0] * g[:, 0]


class _Holder:
    """An object that dies with the autograd node holding it (a finaliser hangs on it)."""


class _NativeScan(torch.autograd.Function):
    """A whole minGRU or minLSTM run in carousel's compiled CPU kernels (``carousel.runners.native``), the
    input projection included, block by block (``steps`` at a time, so that each block's ``px = x W^T + b``
    is still in cache when the kernel reads it): coefficients and recurrence in one pass forward and one
    backward, the same values as ``cell.project`` and ``_ExplicitScan``. The projections of all blocks
    live in one buffer reused from run to run, and the gradient of ``px`` in one block-sized buffer (fresh
    memory costs a page fault per 4 kB); it leaves as the gradients of ``x``, ``W`` and ``b``.

    ``(h, h_last) = apply(lstm, lengths, steps, x, W, b, h0)``: ``x`` (B, T, I), ``h`` (B, T, H) with the
    state frozen (not zeroed) past each row's length; ``lengths`` (B,) int64 or None.
    """

    @staticmethod
    def forward(ctx, lstm: bool, lengths: Tensor | None, steps: int, x: Tensor, W: Tensor, b: Tensor | None, h0: Tensor):
        B, T, _ = x.shape
        G = W.shape[0]
        ops = native.ops()
        px_all = _take((B * T * G,), x)  # every block's projection, block after block
        h = torch.empty(B, T, G // (3 if lstm else 2), dtype=x.dtype, device=x.device)
        h_in = h0.to(x.dtype).contiguous()
        ctx.lstm, ctx.steps, ctx.has_bias, ctx.lengths = lstm, steps, b is not None, lengths
        ctx.rows = B >= ROWS_PER_THREAD * torch.get_num_threads()
        ctx.holder = _Holder()  # lives as long as this node: then px_all goes back to the pool
        weakref.finalize(ctx.holder, _give, [px_all])
        if ctx.rows:  # one parallel region for the whole run, a batch row at a time
            x = x.contiguous()
            ops.scan_run_forward(x, W, b, h_in, lengths, lstm, steps, px_all.view(B, T, G), h)
            ctx.blocks = None
            ctx.save_for_backward(x, W, px_all, h, h_in)
            return h, h[:, -1].clone()
        blocks = []
        for t0 in range(0, T, steps):
            t1 = min(T, t0 + steps)
            px = px_all[B * t0 * G : B * t1 * G].view(B, t1 - t0, G)
            x_block = x[:, t0:t1].reshape(-1, x.shape[-1])  # (B * Tb, I)
            if b is not None:
                torch.addmm(b, x_block, W.t(), out=px.view(-1, G))
            else:
                torch.mm(x_block, W.t(), out=px.view(-1, G))
            left = None if lengths is None else (lengths - t0).clamp(0, t1 - t0)  # (B,) steps of this block each row lives
            ops.scan_forward(px, h_in, left, lstm, h[:, t0:t1])
            blocks.append((t0, t1, left))
            h_in = h[:, t1 - 1].contiguous()
        ctx.blocks = blocks
        ctx.save_for_backward(x, W, px_all, h, h0.to(x.dtype))
        return h, h_in.clone()

    @staticmethod
    def backward(ctx, grad_h: Tensor, grad_last: Tensor):
        refuse_double_backward("scan")
        x, W, px_all, h, h0 = ctx.saved_tensors
        B, T, I = x.shape
        G = W.shape[0]
        ops = native.ops()
        grad_h = grad_h.to(h.dtype)
        if not grad_h.is_contiguous():  # the kernel reads (B, T, H) rows with unit strides over T and H
            grad_h = grad_h.contiguous()
        carry = grad_last.to(h.dtype).contiguous()
        if ctx.rows:
            grad_x, grad_W, grad_b, grad_h0 = ops.scan_run_backward(
                x, W, px_all.view(B, T, G), h, h0, grad_h, carry, ctx.lengths, ctx.lstm, ctx.steps,
                ctx.needs_input_grad[3], ctx.has_bias and ctx.needs_input_grad[5],
            )
            return (None, None, None, grad_x if ctx.needs_input_grad[3] else None,
                    grad_W if ctx.needs_input_grad[4] else None, grad_b if ctx.has_bias and ctx.needs_input_grad[5] else None, grad_h0)
        t0_max, t1_max, _ = ctx.blocks[0]
        block_buffer = _take((B * (t1_max - t0_max) * G,), h)  # the gradient of one block's px
        grad_x = torch.empty_like(x) if ctx.needs_input_grad[3] else None
        grad_W = torch.zeros_like(W) if ctx.needs_input_grad[4] else None
        grad_b = torch.zeros(G, dtype=h.dtype, device=h.device) if ctx.has_bias and ctx.needs_input_grad[5] else None
        for t0, t1, left in reversed(ctx.blocks):
            px = px_all[B * t0 * G : B * t1 * G].view(B, t1 - t0, G)
            grad_px = block_buffer[: B * (t1 - t0) * G].view(B, t1 - t0, G)
            prev = h0 if t0 == 0 else h[:, t0 - 1].contiguous()
            _, carry = ops.scan_backward(px, h[:, t0:t1], prev, grad_h[:, t0:t1], carry, left, ctx.lstm, grad_px)
            flat = grad_px.view(-1, G)  # (B*Tb, G)
            if grad_x is not None:
                grad_x[:, t0:t1] = (flat @ W).view(B, t1 - t0, I)
            if grad_W is not None:
                grad_W.addmm_(flat.t(), x[:, t0:t1].reshape(-1, I))
            if grad_b is not None:
                grad_b += flat.sum(0)
        _give([block_buffer])
        return None, None, None, grad_x, grad_W, grad_b, carry


@torch.compiler.disable  # carousel's compiled kernels have no tracing rules: torch.compile calls them as they are
def _native_scan(*args):
    return _NativeScan.apply(*args)


def _native_kind(coefficients, x: Tensor) -> bool | None:
    """``True`` (minLSTM) or ``False`` (minGRU) when the compiled CPU kernels can run a block of ``x``, else None."""
    kind = coefficients.native_kind  # "mingru", "minlstm" or None (see carousel.cells.minimal_explicit)
    if kind is None or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return None
    if native.ops() is None:
        return None
    return kind == "minlstm"


def linear_scan(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """``h_t = a_t * h_{t-1} + b_t`` for t = 0..T-1 with ``h_{-1} = h0``; ``a``, ``b`` (B, T, H), ``h0`` (B, H)."""
    return LinearScan.apply(a, b, h0)


def block_steps(batch_size: int, width: int) -> int:
    """Steps per block so that a block of ``(B, steps, width)`` numbers stays in cache."""
    return max(2 * CHUNK, BLOCK_ELEMENTS // max(1, batch_size * width))


def _masked_and_padded(out: Tensor, h: Tensor, alive: Tensor | None, total: int, cell: Cell) -> tuple[Tensor, Any]:
    """Outputs (B, T', H) of the steps run, zeroed past each length (``alive`` (B, T', 1)) and padded with
    zeros to ``total`` steps; the final state ``h`` (B, H) as the cell's state."""
    out = out if alive is None else out * alive
    if out.shape[1] < total:
        out = torch.cat([out, h.new_zeros(out.shape[0], total - out.shape[1], h.shape[-1])], dim=1)
    return out, cell.state_type(h)


def _coefficients(cell: Cell, px: Tensor) -> tuple[Tensor, Tensor]:
    return cell.coefficients(px)


def device_coefficients(device: torch.device, cell: Cell) -> Callable[[Cell, Tensor], tuple[Tensor, Tensor]]:
    """``(cell, px) -> cell.coefficients(px)`` for the device scan: compiled by ``torch.compile`` on
    CUDA, one compiled copy per cell class (minLSTM's gates in log space are a dozen elementwise
    operations over (B, T, 3H), forward and backward; compiled, a few fused kernels), as written
    elsewhere (``carousel._compiled``)."""
    if not compiling_on(device):
        return _coefficients
    return compiled(_coefficients, (device.type, type(cell)), "a scan cell's coefficients")


@torch.compiler.disable  # its own compiled code and Triton kernels: torch.compile runs it as it is, outside the graph
def _run_device_scan(cell: Cell, x: Tensor, h: Tensor, alive_all: Tensor | None, T: int) -> tuple[Tensor, Any]:
    """``run_scan`` on a device with the device scan: projection, coefficients (compiled on CUDA), then
    the whole sequence as one scan; ``alive_all`` (B, T_x, 1) marks the steps inside each length."""
    with parametrize.cached():
        px = cell.project(x[:, :T])
    a, b = device_coefficients(x.device, cell)(cell, px)  # (B, T, H) each
    if alive_all is not None:
        a, b = _hold_past_lengths(a, b, alive_all[:, :T])
    out = associative_linear_scan(a, b, h)
    return _masked_and_padded(out, out[:, -1], None if alive_all is None else alive_all[:, :T], x.shape[1], cell)


def run_scan(cell: Cell, x: Tensor, state: Any, lengths: Tensor | None = None, *, steps: int | None = None) -> tuple[Tensor, Any]:
    """Run a linear-recurrence cell block by block; same contract as the loop runner."""
    B, T, _ = x.shape
    steps = steps or block_steps(B, cell.hidden_size)
    h = state[0]
    if lengths is not None:
        alive_all = (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).to(x.device).unsqueeze(-1)  # (B, T, 1)
        T = int(lengths.max())  # nothing happens after the longest sequence ends
    if device_scan_available(x) is None:  # a GPU: the whole sequence as one parallel scan, no blocks
        return _run_device_scan(cell, x, h, None if lengths is None else alive_all, T)
    coefficients = cell.explicit_coefficients()
    lstm = None if coefficients is None else _native_kind(coefficients, x)
    if lstm is not None:
        with parametrize.cached():
            projection = cell.linear_projection()
            if projection is not None:  # carousel's CPU kernels, projection included
                L = None if lengths is None else lengths.to(device="cpu", dtype=torch.int64).contiguous()
                out, h = _native_scan(lstm, L, steps, x if T == x.shape[1] else x[:, :T], *projection, h)
        if projection is not None:
            return _masked_and_padded(out, h, alive_all[:, :T] if lengths is not None else None, x.shape[1], cell)
    outputs = []
    with parametrize.cached():
        # one split (one autograd node whose backward concatenates) rather than a slice per block, whose
        # backward would fill a zero tensor the size of x for every block
        for t0, x_block in zip(range(0, T, steps), (x if T == x.shape[1] else x[:, :T]).split(steps, dim=1)):
            t1 = min(T, t0 + steps)
            alive = None if lengths is None else alive_all[:, t0:t1]
            px = cell.project(x_block)  # (B, t1 - t0, G)
            coefficients = cell.explicit_coefficients()  # a fresh one per block: it keeps what its backward needs
            if coefficients is not None:
                out, h = _ExplicitScan.apply(coefficients, alive, px, h)  # (B, t1 - t0, H), (B, H)
            else:
                a, b = cell.coefficients(px)  # (B, t1 - t0, H) each
                if alive is not None:
                    a, b = _hold_past_lengths(a, b, alive)
                out = linear_scan(a, b, h)
                h = out[:, -1]
            outputs.append(out if alive is None else out * alive)
    if T < x.shape[1]:
        outputs.append(h.new_zeros(B, x.shape[1] - T, h.shape[-1]))
    out = torch.cat(outputs, dim=1) if len(outputs) > 1 else outputs[0]  # (B, T, H)
    return out, cell.state_type(h)
