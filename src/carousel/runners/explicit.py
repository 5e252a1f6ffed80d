"""The ``"explicit"`` backend: a whole run as one ``autograd.Function`` with an explicit backward through time.

The reference loop (``run_reference``) records a dozen autograd nodes per step; on small layers the
bookkeeping costs more than the arithmetic. A cell that knows the derivative of its own step can
offer an *explicit step* (``cell.explicit_step()``), an object that

* ``tensors``: the tensors its steps read besides the projected input and the state (weights,
  read once inside ``parametrize.cached()``), in a fixed order;
* ``begin(px, tensors, state, keep, h_mask)``: prepares a run over ``px`` (B, T, G); ``keep`` says
  whether a backward pass will follow (then it keeps what the backward needs, in time-major
  buffers); ``h_mask`` (B, F) or None: the recurrence reads ``h_{t-1} * h_mask`` (the cell's
  ``recurrent_mask``, e.g. recurrent dropout) while the state and outputs keep ``h_t`` itself;
* ``forward(t, px_t, state, h_out) -> state``: one step, without autograd; ``h_out`` (B, F), when
  given, is where ``h_t`` must be written (the returned ``h`` is then ``h_out``);
* ``backward(t, grad_state) -> grad_state_prev``: the step's derivative, given the gradient
  reaching the state after step t (the output's gradient already added to ``h``);
* ``finish(h_prev) -> (grad_px, grads)``: the gradient of ``px`` (B, T, G) and of every tensor in
  ``tensors``; ``h_prev`` (T, B, F) holds the state ``h`` entering every step, so that weight
  gradients are accumulated in one matrix product over all steps at the end.

This module knows only time: the loop, the masking of finished sequences (their state is
frozen and their outputs are zero, and the gradient of a frozen state passes straight through),
and the plumbing into autograd. It must agree with ``run_reference`` on outputs, final state and
every gradient (tests/runners/test_explicit.py); the backward is first-order only and refuses
``create_graph=True`` with an error that names ``backend="reference"``, which serves double backward.

On CUDA the same two loops are captured once per configuration and replayed as CUDA graphs
(``carousel.runners.graphs``: one launch per run instead of a dozen per step); there, with lengths,
every step takes the masked path (one graph for any lengths). ``CAROUSEL_CUDA_GRAPHS=0`` or
``use_cuda_graphs(False)`` runs the loops uncaptured; on the CPU nothing is captured unless a test
asks for the recorder's test double (``use_cuda_graphs(recorder=ReplayRecorder())``).
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils import parametrize

from ..cells.base import Cell
from ..cells.lstm_explicit import LSTMExplicitStep, _give, _take, packed_weight
from . import graphs, native
from .scan import functorch_active, refuse_double_backward


def explicit_unsupported(cell: Cell, x: Tensor) -> str | None:
    """None when ``cell`` offers an explicit step (``cell.explicit_step()``), else the reason it does not."""
    if functorch_active():
        return "its autograd function has no torch.func (vmap, grad, jacrev) rules"
    return None if cell.explicit_step() is not None else f"{cell.kind} has no explicit step in this configuration"


def _forward_loop(step, px: Tensor, state: tuple, hs: Tensor, alive: Tensor | None, shortest: int) -> tuple:
    """Run ``step.forward`` over every step of ``px`` (B, T, G) from ``state``; ``h`` of step t goes to
    ``hs[t + 1]`` (zero past a sequence's end); returns the final state. Steps from ``shortest`` on are
    masked with ``alive`` (T, B): a finished sequence's state is frozen."""
    zero = torch.zeros((), dtype=px.dtype, device=px.device)
    for t, px_t in enumerate(px.unbind(1)):
        if t < shortest:
            state = step.forward(t, px_t, state, hs[t + 1])  # h_t written in place
        else:
            new = step.forward(t, px_t, state, None)
            a = alive[t].unsqueeze(1)  # (B, 1)
            state = tuple(torch.where(a, n, s) for n, s in zip(new, state))
            torch.where(a, new[0], zero, out=hs[t + 1])
    return state


def _backward_loop(step, hs: Tensor, grad_out: Tensor, grad: list, alive: Tensor | None, shortest: int):
    """The backward of ``_forward_loop``: ``grad`` reaches the final state, ``grad_out`` (B, T, F) the
    outputs; returns ``(grad_px (B, T, G), grad of the initial state, grads of the step's tensors)``."""
    for t, grad_out_t in reversed(list(enumerate(grad_out.unbind(1)))):
        if t < shortest:
            grad[0] = grad[0] + grad_out_t
            grad = step.backward(t, grad)
        else:
            a = alive[t].unsqueeze(1)  # (B, 1): a finished sequence's output is zero, its state passes through
            grad[0] = grad[0] + torch.where(a, grad_out_t, 0.0)
            through = step.backward(t, [torch.where(a, g, 0.0) for g in grad])
            grad = [p + torch.where(a, 0.0, g) for p, g in zip(through, grad)]
    grad_px, grads = step.finish(hs[:-1])  # the step keeps its buffers: a retained graph may run backward again
    return grad_px, grad, grads


def _graph_forward_loop(step, px: Tensor, state: tuple, hs: Tensor, alive: Tensor | None) -> tuple:
    # captured: with lengths every step is masked, so that one graph serves any lengths
    return _forward_loop(step, px, state, hs, alive, px.shape[1] if alive is None else 0)


def _graph_backward_loop(step, hs: Tensor, grad_out: Tensor, grad: list, alive: Tensor | None):
    return _backward_loop(step, hs, grad_out, grad, alive, grad_out.shape[1] if alive is None else 0)


class _ExplicitRun(torch.autograd.Function):
    @staticmethod
    def forward(ctx, step, lengths, h_mask, n_state: int, px: Tensor, *rest: Tensor):
        state, tensors = rest[:n_state], rest[n_state:]
        B, T, _ = px.shape
        keep = any(ctx.needs_input_grad[4:])
        step.begin(px, tensors, state, keep, h_mask)
        hs = px.new_empty(T + 1, B, state[0].shape[-1])  # (T+1, B, F): h entering each step, then the last
        hs[0] = state[0]
        shortest = T if lengths is None else int(lengths.min())
        alive = None if lengths is None else _alive(lengths, T, px.device)  # (T, B)
        state = _forward_loop(step, px, state, hs, alive, shortest)
        ctx.step, ctx.alive, ctx.shortest = step, alive, shortest
        if keep:
            ctx.save_for_backward(hs)
        # outputs (B, T, F) and final state are copies, free to be changed in place like any other path's
        return (hs[1:].transpose(0, 1).contiguous(), *(s.clone() for s in state))

    @staticmethod
    def backward(ctx, grad_out: Tensor, *grad_final: Tensor):
        refuse_double_backward("explicit")
        (hs,) = ctx.saved_tensors
        grad_px, grad, grads = _backward_loop(ctx.step, hs, grad_out, list(grad_final), ctx.alive, ctx.shortest)
        return (None, None, None, None, grad_px, *grad, *grads)


def _alive(lengths: Tensor, T: int, device: torch.device) -> Tensor:
    """(T, B) bool: step t of sequence b lies inside its length."""
    return (torch.arange(T).unsqueeze(1) < lengths.unsqueeze(0)).to(device)


class _NativeLSTMRun(torch.autograd.Function):
    """An LSTM run (layer norm and recurrent dropout allowed) in carousel's compiled CPU kernel
    (``carousel.runners.native``, ``lstm_cpu.cpp``): the same step and derivative as ``LSTMExplicitStep``
    with the time loop in C++; dW_hh is one product over all steps here. The kernel's buffers come from
    the explicit step's pool of finished runs' buffers (fresh memory costs a page fault per 4 kB)."""

    @staticmethod
    def forward(ctx, step, steps: Tensor | None, h_mask: Tensor | None, px: Tensor, h0: Tensor, c0: Tensor, *tensors: Tensor):
        W, *ln = tensors  # weight_hh, then (g_hh, b_hh, g_c, b_c) with layer norm
        keep = any(ctx.needs_input_grad[3:])
        B, T, G = px.shape
        H = G // 4
        S = T if keep else 2  # without a backward pass two alternating slots suffice
        hs, A, C, K = _take((T + 1, B, H), px), _take((S, B, G), px), _take((S, B, H), px), _take((S, B, H), px)
        R = _take((T, B, G), px) if (ln and keep) else px.new_empty(0)
        stats = _take((S, B, 4), px)
        eps = (step.cell.ln_hh.eps, step.cell.ln_c.eps) if ln else (1e-5, 1e-5)
        h_last, c_last = native.ops().lstm_forward(
            px.contiguous(), h0, c0, W, h_mask, *(ln or [None] * 4), *eps, steps, packed_weight(W, B), hs, A, C, K, R, stats
        )
        out = hs[1:].transpose(0, 1).contiguous()  # (B, T, H)
        if keep:
            ctx.save_for_backward(hs, c0, A, C, K, R, stats, *tensors)
            ctx.Wt_packed = packed_weight(W.t(), B)
            # back to the pool when this node (which holds the step) is freed
            weakref.finalize(step, _give, [b for b in (hs, A, C, K, R, stats) if b.numel()])
        else:
            _give([hs, A, C, K, stats])
        ctx.step, ctx.h_mask, ctx.steps = step, h_mask, steps
        return out, h_last, c_last

    @staticmethod
    def backward(ctx, grad_out: Tensor, grad_h: Tensor, grad_c: Tensor):
        refuse_double_backward("explicit")
        hs, c0, A, C, K, R, stats, W, *ln = ctx.saved_tensors
        dR_buffer = _take(A.shape, A) if ln else A.new_empty(0)
        dA, dR, dh0, dc0, *ln_grads = native.ops().lstm_backward(
            grad_out.transpose(0, 1).contiguous(), grad_h, grad_c, c0, W, A, C, K, R, stats, ctx.h_mask,
            ln[0] if ln else None, ln[2] if ln else None, ctx.steps, ctx.Wt_packed, dR_buffer,
        )
        T, B, G = dA.shape
        h_prev = hs[:-1] if ctx.h_mask is None else hs[:-1] * ctx.h_mask  # (T, B, H): what the recurrence read
        grads = [dR.reshape(T * B, G).t() @ h_prev.reshape(T * B, -1)]  # dW_hh (G, H)
        if ln:
            _give([dR_buffer])
        return (None, None, None, dA.transpose(0, 1), dh0, dc0, *grads, *ln_grads)


def _native_lstm(step, px: Tensor) -> bool:
    """Whether carousel's compiled LSTM kernel serves this run (a plain, layer-norm or masked LSTM step on CPU)."""
    return (
        type(step) is LSTMExplicitStep and step.forget_gate and not step.peephole and not step.proj
        and px.device.type == "cpu" and px.dtype in (torch.float32, torch.float64) and native.ops() is not None
    )


@torch.compiler.disable  # its own loops and kernels: torch.compile runs it as it is, outside the graph
def run_explicit(cell: Cell, x: Tensor, state: Any, lengths: Tensor | None = None) -> tuple[Tensor, Any]:
    """Run ``cell`` with its explicit step; same contract as ``run_reference``.

    On CUDA the whole loop, forward and backward, is replayed from a captured CUDA graph
    (``carousel.runners.graphs``; off with ``CAROUSEL_CUDA_GRAPHS=0`` or ``use_cuda_graphs(False)``).
    """
    B, T, _ = x.shape
    recorder = graphs.graph_recorder(x)
    with parametrize.cached():
        step = cell.explicit_step()
        if step is None:
            raise ValueError(f"backend 'explicit' cannot run {cell.kind}: {explicit_unsupported(cell, x)}")
        if lengths is not None and recorder is None:
            longest = int(lengths.max())
            x = x[:, :longest] if longest < T else x  # a graph keeps all T steps: one graph for any lengths
        px = cell.project(x)  # (B, T', G); a cell that masks h_{t-1} starts its sequence here
        h_mask = cell.recurrent_mask(B, px)  # (B, F) or None, drawn as the reference's first step draws it
        tensors = step.tensors
        result = None
        if recorder is not None:
            alive = None if lengths is None else _alive(lengths, T, px.device)
            result = graphs.run_graphed(recorder, cell, cell.explicit_step, (_graph_forward_loop, _graph_backward_loop),
                                        px, state, tensors, h_mask, alive)
        if result is not None:
            out, *final = result
        elif _native_lstm(step, px):
            steps = None if lengths is None else lengths.to(device="cpu", dtype=torch.int64).contiguous()
            out, *final = _NativeLSTMRun.apply(step, steps, h_mask, px, *state, *tensors)
        else:
            out, *final = _ExplicitRun.apply(step, lengths, h_mask, len(state), px, *state, *tensors)
    if out.shape[1] < T:
        out = torch.cat([out, out.new_zeros(B, T - out.shape[1], out.shape[-1])], dim=1)  # (B, T, F)
    return out, cell.state_type(*final)
