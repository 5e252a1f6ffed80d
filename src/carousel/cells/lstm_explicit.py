r"""The LSTM step and its derivative written out, for the ``"explicit"`` backend (``carousel.runners.explicit``).

Forward, in ``LSTMCell``'s letters (``r`` is the recurrent product, ``m`` the unprojected output):

.. math::
    r &= (h_{t-1} \odot m) W_{hh}^\top, \quad a = px_t + (\mathrm{LN}_{hh}(r) \text{ or } r) \\
    i, f, g, o &= \sigma(a_i + w_{ci} c_{t-1}), \sigma(a_f + w_{cf} c_{t-1}), \tanh(a_g), a_o \\
    c_t &= f c_{t-1} + i g, \quad o \leftarrow \sigma(o + w_{co} c_t) \\
    k &= \tanh(\mathrm{LN}_c(c_t) \text{ or } c_t), \quad m = o k, \quad h_t = m W_{hr}^\top \text{ or } m

Backward, given ``dh`` and ``dc`` reaching ``h_t`` and ``c_t``:

.. math::
    dm &= dh W_{hr} \text{ or } dh, \quad do = dm\,k, \quad dk = dm\,o, \quad dl = dk (1 - k^2) \\
    dc &\mathrel{+}= \mathrm{LN}_c'(dl) \text{ or } dl, \quad da_o = do\, o (1 - o), \quad dc \mathrel{+}= da_o w_{co} \\
    da_i &= dc\, g\, i (1 - i), \quad da_f = dc\, c_{t-1} f (1 - f), \quad da_g = dc\, i (1 - g^2) \\
    dc_{t-1} &= dc\, f + da_i w_{ci} + da_f w_{cf}, \quad dr = \mathrm{LN}_{hh}'(da) \text{ or } da, \quad
    dh_{t-1} = (dr\, W_{hh}) \odot m

``da`` is the gradient of ``px_t``. The weight gradients are sums over all steps, taken at the
end in one product each: ``dW_hh = dR^T H_prev``, ``dW_hr = dH^T M``, the peepholes and the layer
norms' gains and biases from the kept activations. Without a forget gate ``f = 1`` and the
gates are ``i, g, o``. ``m`` is a recurrent-dropout mask fixed for the sequence (1 without one),
and ``dW_hh = dR^T (H_prev * m)``.
"""

from __future__ import annotations

import weakref
from typing import Callable

import torch
from torch import Tensor

from .._compiled import compiled, compiling_on

_LN_BACKWARD = torch.ops.aten.native_layer_norm_backward
_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")


# Buffers of finished runs, kept for the next run of the same shape: fresh memory costs a page
# fault per 4 kB on first touch, which on a small CPU is a sizeable part of a training step.
_FREE: dict[tuple, list[Tensor]] = {}
_FREE_SHAPES = 8  # at most this many shapes are kept (the oldest is dropped), two buffers each


def _take(shape: tuple[int, ...], like: Tensor) -> Tensor:
    free = _FREE.get((shape, like.dtype, like.device))
    return free.pop() if free else torch.empty(shape, dtype=like.dtype, device=like.device)


def _give(buffers: list[Tensor]) -> None:
    for t in buffers:
        key = (tuple(t.shape), t.dtype, t.device)
        if key not in _FREE and len(_FREE) >= _FREE_SHAPES:
            del _FREE[next(iter(_FREE))]
        free = _FREE.setdefault(key, [])
        if len(free) < 2:
            free.append(t)


def packed_weight(W: Tensor, rows: int) -> Tensor | None:
    """``W`` prepacked for oneDNN's linear (``torch.ops.mkldnn._linear_pointwise``) when that is the
    faster kernel for ``v @ W^T`` with ``v`` of ``rows`` rows, else None.

    On CPU, oneDNN's linear with a prepacked weight beats the BLAS ``mm`` by about 1.5x on the
    products of a large recurrent layer (B=32, H=256) and loses on small ones (B=16, H=64).
    """
    if _ONEDNN and W.dtype == torch.float32 and W.device.type == "cpu" and rows * W.numel() >= 1 << 21:
        return torch.ops.mkldnn._reorder_linear_weight(W.detach(), rows)
    return None


def right_product(W: Tensor, rows: int) -> Callable[[Tensor], Tensor]:
    """``v -> v @ W^T`` for ``v`` of ``rows`` rows, by the fastest CPU kernel for its size (``packed_weight``)."""
    packed = packed_weight(W, rows)
    if packed is not None:
        linear = torch.ops.mkldnn._linear_pointwise
        return lambda v: linear(v, packed, None, "none", [], "")
    Wt = W.t()
    return lambda v: torch.mm(v, Wt)


def _split(a: Tensor, H: int, forget_gate: bool) -> tuple[Tensor, Tensor | None, Tensor, Tensor]:
    """The gates of ``a`` (B, G): i, f, g, o (f None without a forget gate)."""
    if forget_gate:
        return a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
    return a[:, :H], None, a[:, H : 2 * H], a[:, 2 * H :]


def pointwise_forward(px_t: Tensor, r: Tensor, c: Tensor, a_out: Tensor, c_out: Tensor, k_out: Tensor,
                      r_out: Tensor | None, m_out: Tensor | None, c_in_out: Tensor | None,
                      params: tuple, flags: tuple) -> tuple[Tensor, tuple | None]:
    """Everything of one LSTM step after the recurrent product ``r`` (B, G): the module docstring's
    forward from ``a`` to ``m``, computed in the step's buffers (gate activations ``a_out`` (B, G),
    ``c_out`` and ``k_out`` (B, H); ``r_out`` keeps the product for layer norm's backward, ``c_in_out``
    the ``c`` entering the step), returning ``m`` (in ``m_out`` when given) with the layer norms'
    statistics (mean and 1/std of ``r`` and of ``c_t``, or None). ``params`` = (w_ci, w_cf, w_co,
    g_hh, b_hh, g_c, b_c), None where absent; ``flags`` = (forget_gate, peephole, layer_norm, H,
    eps_hh, eps_c). Written in place, as fast as it goes eagerly on the CPU; on a GPU it is compiled
    into a few fused kernels (``step_kernels``; torch.compile turns the in-place writes into stores).
    """
    forget_gate, peephole, layer_norm, H, eps_hh, eps_c = flags
    w_ci, w_cf, w_co, g_hh, b_hh, g_c, b_c = params
    if c_in_out is not None:
        c_in_out.copy_(c)
    stats = None
    if layer_norm:
        r_out.copy_(r)
        y, mu_r, rs_r = torch.native_layer_norm(r, (r.shape[1],), g_hh, b_hh, eps_hh)
        torch.add(px_t, y, out=a_out)
    else:
        torch.add(px_t, r, out=a_out)
    i, f, g, o = _split(a_out, H, forget_gate)
    if peephole:
        i.addcmul_(w_ci, c)
        if forget_gate:
            f.addcmul_(w_cf, c)
    if forget_gate and not peephole:
        a_out[:, : 2 * H].sigmoid_()  # i and f together
    else:
        i.sigmoid_()
        if forget_gate:
            f.sigmoid_()
    g.tanh_()
    if forget_gate:
        torch.mul(f, c, out=c_out).addcmul_(i, g)  # c = f c + i g
    else:
        torch.addcmul(c, i, g, out=c_out)  # c = c + i g
    if peephole:
        o.addcmul_(w_co, c_out)
    o.sigmoid_()
    if layer_norm:
        lc, mu_c, rs_c = torch.native_layer_norm(c_out, (H,), g_c, b_c, eps_c)
        torch.tanh(lc, out=k_out)
        stats = (mu_r, rs_r, mu_c, rs_c)
    else:
        torch.tanh(c_out, out=k_out)
    return (o * k_out if m_out is None else torch.mul(o, k_out, out=m_out)), stats


def pointwise_backward(dm: Tensor, dc: Tensor, a: Tensor, c_new: Tensor, c_prev: Tensor, k: Tensor, r: Tensor | None,
                       stats: tuple | None, da_out: Tensor, params: tuple, flags: tuple) -> tuple[Tensor, Tensor, tuple | None]:
    """The derivative of :func:`pointwise_forward` (the module docstring's backward from ``dm`` to
    ``dr``): given ``dm`` (B, H) and ``dc`` (B, H) reaching ``m`` and ``c_t``, writes ``da`` (the
    gradient of ``px_t``) into ``da_out`` (B, G) and returns ``(dr, dc_prev, ln_grads)``: the
    gradient of the recurrent product (``da_out`` itself without layer norm), of ``c_{t-1}``, and
    the step's gradients of the layer norms' (g_c, b_c, g_hh, b_hh) or None. Out-of-place but for the
    one write into ``da_out`` (compiled, in-place writes into views of the inputs here gave wrong
    gradients).
    """
    forget_gate, peephole, layer_norm, H, eps_hh, eps_c = flags
    w_ci, w_cf, w_co, g_hh, b_hh, g_c, b_c = params
    i, f, g, o = _split(a, H, forget_gate)
    do = dm * k * o * (1 - o)
    dl = dm * o * (1 - k * k)
    ln_grads = None
    if layer_norm:
        mu_r, rs_r, mu_c, rs_c = stats
        dl, dg_c, db_c = _LN_BACKWARD(dl, c_new, (H,), mu_c, rs_c, g_c, b_c, [True, True, True])
    dc = dc + dl
    if peephole:
        dc = dc + do * w_co
    di = dc * g * i * (1 - i)
    dg = dc * i * (1 - g * g)
    if forget_gate:
        df = dc * c_prev * f * (1 - f)
        dc_prev = dc * f
    else:
        df, dc_prev = None, dc
    if peephole:
        dc_prev = dc_prev + di * w_ci
        if forget_gate:
            dc_prev = dc_prev + df * w_cf
    torch.cat([di, df, dg, do] if forget_gate else [di, dg, do], dim=1, out=da_out)
    if layer_norm:
        dr, dg_hh, db_hh = _LN_BACKWARD(da_out, r, (da_out.shape[1],), mu_r, rs_r, g_hh, b_hh, [True, True, True])
        ln_grads = (dg_c, db_c, dg_hh, db_hh)
        return dr, dc_prev, ln_grads
    return da_out, dc_prev, ln_grads


def step_kernels(device: torch.device, key: tuple = ()) -> tuple[Callable, Callable]:
    """``(pointwise_forward, pointwise_backward)`` as they run on ``device``: compiled by
    ``torch.compile`` on CUDA (a dozen small kernels per step become a few fused ones), one compiled
    copy per ``key`` (the step's flags and dtype), as written elsewhere; ``CAROUSEL_COMPILE``
    changes this (``carousel._compiled``)."""
    if not compiling_on(device):
        return pointwise_forward, pointwise_backward
    key = (device.type, *key)
    return (compiled(pointwise_forward, key, "the LSTM step's pointwise part"),
            compiled(pointwise_backward, key, "the LSTM step's pointwise derivative"))


class LSTMExplicitStep:
    """Explicit step of an ``LSTMCell`` (any of its options); see ``carousel.runners.explicit`` for the protocol."""

    def __init__(self, cell) -> None:
        self.cell = cell
        self.H = cell.hidden_size
        self.forget_gate, self.peephole, self.layer_norm = cell.forget_gate, cell.peephole, cell.layer_norm
        self.proj = cell.weight_hr is not None
        # set by a wrapper that changes the state between steps (zoneout): then c_{t-1} is not the
        # previous step's c_t, and the c entering each step is kept (C_in) for the backward
        self.track_c_in = False

    @property
    def tensors(self) -> tuple[Tensor, ...]:
        cell = self.cell
        out = [cell.weight_hh]
        if self.proj:
            out.append(cell.weight_hr)
        if self.peephole:
            out += [cell.weight_ci] + ([cell.weight_cf] if self.forget_gate else []) + [cell.weight_co]
        if self.layer_norm:
            out += [cell.ln_hh.weight, cell.ln_hh.bias, cell.ln_c.weight, cell.ln_c.bias]
        return tuple(out)

    # ---- forward -------------------------------------------------------------------------------
    def begin(
        self, px: Tensor, tensors: tuple[Tensor, ...], state: tuple[Tensor, ...], keep: bool, h_mask: Tensor | None = None
    ) -> None:
        self.h_mask = h_mask  # the recurrence reads h_{t-1} * h_mask (recurrent dropout)
        it = iter(tensors)
        self.W = next(it)
        B, T, G = px.shape
        self.recurrent = right_product(self.W, B)  # h -> h W^T
        self.recurrent_back = right_product(self.W.t(), B)  # dr -> dr W
        self.Wr = next(it) if self.proj else None
        w_ci = w_cf = w_co = g_hh = b_hh = g_c = b_c = None
        eps_hh = eps_c = None
        if self.peephole:
            w_ci = next(it)
            w_cf = next(it) if self.forget_gate else None
            w_co = next(it)
        if self.layer_norm:
            g_hh, b_hh, g_c, b_c = next(it), next(it), next(it), next(it)
            eps_hh, eps_c = self.cell.ln_hh.eps, self.cell.ln_c.eps
        self.params = (w_ci, w_cf, w_co, g_hh, b_hh, g_c, b_c)
        self.flags = (self.forget_gate, self.peephole, self.layer_norm, self.H, eps_hh, eps_c)
        self.pointwise_forward, self.pointwise_backward = step_kernels(px.device, (self.flags, px.dtype))
        self.keep, self.c0 = keep, state[1]
        slots = T if keep else 2  # without a backward pass two alternating slots suffice
        self.A = _take((slots, B, G), px)  # gate activations i, f, g, o
        self.C = _take((slots, B, self.H), px)  # c_t
        self.K = _take((slots, B, self.H), px)  # k = tanh(LN(c_t))
        self.R = _take((slots, B, G), px) if self.layer_norm else None  # recurrent product r
        self.M = _take((slots, B, self.H), px) if self.proj else None  # m = o k
        self.C_in = _take((slots, B, self.H), px) if self.track_c_in else None  # c entering each step
        if keep:  # these buffers are only ever read through this object: reuse them once it is gone
            weakref.finalize(self, _give, [b for b in (self.A, self.C, self.K, self.R, self.M, self.C_in) if b is not None])
        self.ln_stats: list[tuple[Tensor, ...]] = []  # per step: mean and 1/std of r and of c_t

    def _gates(self, a: Tensor) -> tuple[Tensor, Tensor | None, Tensor, Tensor]:
        return _split(a, self.H, self.forget_gate)

    def forward(self, t: int, px_t: Tensor, state: tuple[Tensor, ...], h_out: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h, c = state
        s = t if self.keep else t % 2
        r = self.recurrent(h if self.h_mask is None else h * self.h_mask)  # (B, G)
        m, stats = self.pointwise_forward(
            px_t, r, c, self.A[s], self.C[s], self.K[s], self.R[s] if self.layer_norm else None,
            self.M[s] if self.proj else h_out, None if self.C_in is None else self.C_in[s], self.params, self.flags,
        )
        if self.layer_norm and self.keep:
            self.ln_stats.append(stats)
        if self.proj:
            return torch.mm(m, self.Wr.t(), out=h_out), self.C[s]  # (B, P)
        return m, self.C[s]

    # ---- backward ------------------------------------------------------------------------------
    def backward(self, t: int, grad: list[Tensor]) -> list[Tensor]:
        dh, dc = grad
        if t == len(self.A) - 1:
            self.dA = torch.empty_like(self.A)  # gradient of the gate pre-activations = of px
            self.dR: list[Tensor] = []
            self.dLN: list[tuple[Tensor, ...]] = []  # per step: gradients of the gains and biases of LN_c, LN_hh
            self.dH: list[Tensor] = []
        c_prev = self.C_in[t] if self.C_in is not None else (self.C[t - 1] if t > 0 else self.c0)
        if self.proj:
            self.dH.append(dh)
            dm = torch.mm(dh, self.Wr)  # (B, H)
        else:
            dm = dh
        dr, dc_prev, ln_grads = self.pointwise_backward(
            dm, dc, self.A[t], self.C[t], c_prev, self.K[t], self.R[t] if self.layer_norm else None,
            self.ln_stats[t] if self.layer_norm else None, self.dA[t], self.params, self.flags,
        )
        if self.layer_norm:
            self.dR.append(dr)
            self.dLN.append(ln_grads)
        dh_prev = self.recurrent_back(dr)
        return [dh_prev if self.h_mask is None else dh_prev * self.h_mask, dc_prev]

    def finish(self, h_prev: Tensor) -> tuple[Tensor, list[Tensor]]:
        T, B, G = self.dA.shape
        dA = self.dA
        dR = torch.stack(self.dR[::-1]) if self.layer_norm else dA  # (T, B, G)
        if self.h_mask is not None:
            h_prev = h_prev * self.h_mask  # (T, B, F): what the recurrence read
        grads = [dR.reshape(T * B, G).t() @ h_prev.reshape(T * B, -1)]  # dW_hh (G, F)
        if self.proj:
            dH = torch.stack(self.dH[::-1]).reshape(T * B, -1)  # (T*B, P)
            grads.append(dH.t() @ self.M.reshape(T * B, self.H))  # dW_hr (P, H)
        if self.peephole:
            c_prev = self.C_in if self.C_in is not None else torch.cat([self.c0.unsqueeze(0), self.C[:-1]])  # (T, B, H)
            di, df, _, do = self._gates(dA.reshape(T * B, G))
            grads.append((di * c_prev.reshape(T * B, self.H)).sum(0))
            if df is not None:
                grads.append((df * c_prev.reshape(T * B, self.H)).sum(0))
            grads.append((do * self.C.reshape(T * B, self.H)).sum(0))
        if self.layer_norm:
            dg_c, db_c, dg_hh, db_hh = (torch.stack(g).sum(0) for g in zip(*self.dLN))
            grads += [dg_hh, db_hh, dg_c, db_c]
        grad_px = dA.transpose(0, 1)  # (B, T, G)
        self.dA, self.dR, self.dLN, self.dH = None, [], [], []
        return grad_px, grads
