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
_SIGMOID_BACKWARD = torch.ops.aten.sigmoid_backward.grad_input
_TANH_BACKWARD = torch.ops.aten.tanh_backward.grad_input


class LSTMExplicitStep:
    """Explicit step of an ``LSTMCell`` (any of its options); see ``carousel.runners.explicit`` for the protocol."""

    def __init__(self, cell) -> None:
        self.cell = cell
        self.H = cell.hidden_size
        self.forget_gate, self.peephole, self.layer_norm = cell.forget_gate, cell.peephole, cell.layer_norm
        self.proj = cell.weight_hr is not None

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
        if self.peephole:
            self.w_ci = next(it)
            self.w_cf = next(it) if self.forget_gate else None
            self.w_co = next(it)
        if self.layer_norm:
            self.g_hh, self.b_hh, self.g_c, self.b_c = next(it), next(it), next(it), next(it)
            self.eps_hh, self.eps_c = self.cell.ln_hh.eps, self.cell.ln_c.eps
        self.keep, self.c0 = keep, state[1]
        slots = T if keep else 2  # without a backward pass two alternating slots suffice
        self.A = _take((slots, B, G), px)  # gate activations i, f, g, o
        self.C = _take((slots, B, self.H), px)  # c_t
        self.K = _take((slots, B, self.H), px)  # k = tanh(LN(c_t))
        self.R = _take((slots, B, G), px) if self.layer_norm else None  # recurrent product r
        self.M = _take((slots, B, self.H), px) if self.proj else None  # m = o k
        if keep:  # these buffers are only ever read through this object: reuse them once it is gone
            weakref.finalize(self, _give, [b for b in (self.A, self.C, self.K, self.R, self.M) if b is not None])
        self.ln_stats: list[tuple[Tensor, ...]] = []  # per step: mean and 1/std of r and of c_t

    def _gates(self, a: Tensor) -> tuple[Tensor, Tensor | None, Tensor, Tensor]:
        H = self.H
        if self.forget_gate:
            return a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
        return a[:, :H], None, a[:, H : 2 * H], a[:, 2 * H :]

    def forward(self, t: int, px_t: Tensor, state: tuple[Tensor, ...], h_out: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h, c = state
        s = t if self.keep else t % 2
        a, c_new, k = self.A[s], self.C[s], self.K[s]  # (B, G), (B, H), (B, H)
        r = self.recurrent(h if self.h_mask is None else h * self.h_mask)  # (B, G)
        if self.layer_norm:
            self.R[s] = r
            y, mu_r, rs_r = torch.native_layer_norm(r, (r.shape[1],), self.g_hh, self.b_hh, self.eps_hh)
            torch.add(px_t, y, out=a)
        else:
            torch.add(px_t, r, out=a)
        i, f, g, o = self._gates(a)
        if self.peephole:
            i.addcmul_(self.w_ci, c)
            if f is not None:
                f.addcmul_(self.w_cf, c)
        if f is not None and not self.peephole:
            a[:, : 2 * self.H].sigmoid_()  # i and f together
        else:
            i.sigmoid_()
            if f is not None:
                f.sigmoid_()
        g.tanh_()
        if f is not None:
            torch.mul(f, c, out=c_new).addcmul_(i, g)  # c = f c + i g
        else:
            torch.addcmul(c, i, g, out=c_new)  # c = c + i g
        if self.peephole:
            o.addcmul_(self.w_co, c_new)
        o.sigmoid_()
        if self.layer_norm:
            lc, mu_c, rs_c = torch.native_layer_norm(c_new, (self.H,), self.g_c, self.b_c, self.eps_c)
            torch.tanh(lc, out=k)
            if self.keep:
                self.ln_stats.append((mu_r, rs_r, mu_c, rs_c))
        else:
            torch.tanh(c_new, out=k)
        if self.proj:
            m = torch.mul(o, k, out=self.M[s])
            return torch.mm(m, self.Wr.t(), out=h_out), c_new  # (B, P)
        return torch.mul(o, k, out=h_out), c_new

    # ---- backward ------------------------------------------------------------------------------
    def backward(self, t: int, grad: list[Tensor]) -> list[Tensor]:
        dh, dc = grad
        if t == len(self.A) - 1:
            self.dA = torch.empty_like(self.A)  # gradient of the gate pre-activations = of px
            self.dR: list[Tensor] = []
            self.dLN: list[tuple[Tensor, ...]] = []  # per step: gradients of the gains and biases of LN_c, LN_hh
            self.dH: list[Tensor] = []
        a, c_new, k, da = self.A[t], self.C[t], self.K[t], self.dA[t]
        c_prev = self.C[t - 1] if t > 0 else self.c0
        i, f, g, o = self._gates(a)
        di, df, dg, do = self._gates(da)
        if self.proj:
            self.dH.append(dh)
            dm = torch.mm(dh, self.Wr)  # (B, H)
        else:
            dm = dh
        torch.mul(dm, k, out=do)
        dl = dm * o  # dk
        _TANH_BACKWARD(dl, k, grad_input=dl)
        if self.layer_norm:
            mu_r, rs_r, mu_c, rs_c = self.ln_stats[t]
            dl, dg_c, db_c = _LN_BACKWARD(dl, c_new, (self.H,), mu_c, rs_c, self.g_c, self.b_c, [True, True, True])
            self.dLN.append((dg_c, db_c))
        dc = dc + dl
        _SIGMOID_BACKWARD(do, o, grad_input=do)
        if self.peephole:
            dc = torch.addcmul(dc, do, self.w_co)
        torch.mul(dc, g, out=di)
        torch.mul(dc, i, out=dg)
        if f is not None:
            torch.mul(dc, c_prev, out=df)
            _SIGMOID_BACKWARD(da[:, : 2 * self.H], a[:, : 2 * self.H], grad_input=da[:, : 2 * self.H])
            dc_prev = dc * f
        else:
            _SIGMOID_BACKWARD(di, i, grad_input=di)
            dc_prev = dc
        _TANH_BACKWARD(dg, g, grad_input=dg)
        if self.peephole:
            dc_prev = torch.addcmul(dc_prev, di, self.w_ci)
            if f is not None:
                dc_prev.addcmul_(df, self.w_cf)
        if self.layer_norm:
            dr, dg_hh, db_hh = _LN_BACKWARD(da, self.R[t], (da.shape[1],), mu_r, rs_r, self.g_hh, self.b_hh, [True, True, True])
            self.dR.append(dr)
            self.dLN[-1] += (dg_hh, db_hh)
        else:
            dr = da
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
            c_prev = torch.cat([self.c0.unsqueeze(0), self.C[:-1]])  # (T, B, H)
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
