r"""A work-efficient parallel scan of ``h_t = a_t * h_{t-1} + b_t`` for GPUs (minGRU, minLSTM).

The chunked scan of :mod:`carousel.runners.scan` is built for a CPU's caches: it launches a few
small operations per step of a chunk, and on a GPU each launch costs more than its arithmetic.
Here the whole recurrence is one associative scan over time, using that the affine maps
``h -> a h + b`` compose into affine maps (Blelloch 1990, "Prefix sums and their applications",
section 1.4; the same combine as Martin & Cundy 2018, "Parallelizing linear recurrent neural
nets over sequence length"):

.. math::
    (a_1, b_1) \circ (a_2, b_2) = (a_1 a_2,\; a_2 b_1 + b_2),

where ``(a_1, b_1)`` is the earlier step. The inclusive scan of the pairs ``(a_t, b_t)`` gives
``(a_0 \cdots a_t,\; h_t)`` when ``h_{-1} = 0``; the initial state enters as the carry before the
first step (the Triton kernels) or folded into it, ``b_0 \leftarrow a_0 h_{-1} + b_0`` (the CPU path). No logarithm, no division: exact up to rounding, whatever
the sign or size of ``a``.

On CUDA the scan and its backward are carousel's own Triton kernels
(:mod:`carousel.runners.triton_scan`): one program per sequence and block of units walks time in
tiles, scanning each tile with ``tl.associative_scan`` and carrying the last state to the next
(or, in the chunked configurations its tuner may pick, several programs per sequence each take a
chunk of time, from carries worked out first); lengths need no recompiling (Triton compiles a
variant or two, for a length of 1 or one divisible by 16, not one per length).
:class:`ParallelLinearScan` gives the derivative by hand, the same recurrence backwards in time,

.. math::
    g_t = \partial L/\partial h_t + a_{t+1} g_{t+1}, \quad
    \partial L/\partial a_t = g_t h_{t-1}, \quad \partial L/\partial b_t = g_t, \quad
    \partial L/\partial h_{-1} = a_0 g_0 ,

itself one reverse scan (one more kernel).

Why these kernels (H200, (B, T, H) = (16, 4096, 128), float32, the scan alone forward and backward,
medians; ``python -m benchmarks.device_scan``, README "Speed"): ``torch._higher_order_ops.associative_scan``
lowered by ``torch.compile`` took 1.04 ms and failed to compile once the length changed (torch 2.11:
"Unable to generate code for associative_scan op, because there are lifted arguments", the symbolic
length entering the combine); these kernels 0.71 ms; the Triton scan of the ``accelerated-scan``
package 0.49 ms including the transposes its (B, H, T) layout needs, but it has no initial state and
no reverse direction; cuDNN's GRU 11.0 ms. The scan is a minority of a minGRU layer's step there
(0.7 of 1.7 ms).

On a CPU the scan runs eagerly as ``torch._higher_order_ops.associative_scan`` with
``combine_mode="generic"`` (about log2(T) rounds of slices and products); it is slower there than
the chunked scan and exists so that tests can check the math and the dispatch without a GPU: pass
``force=True`` or set the environment variable ``CAROUSEL_DEVICE_SCAN=force``. With
``CAROUSEL_DEVICE_SCAN=triton`` the Triton kernels run on any device: on a CPU under Triton's
interpreter (``TRITON_INTERPRET=1``), which is how the CPU tests check them.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import os
from typing import Callable

import torch
from torch import Tensor

try:  # a prototype in torch (which imports it itself); absent from old versions
    from torch._higher_order_ops.associative_scan import associative_scan as _associative_scan
except ImportError:  # pragma: no cover - depends on the installed torch
    _associative_scan = None


def _scan_op() -> Callable | None:
    return _associative_scan


FORCE_ENV = "CAROUSEL_DEVICE_SCAN"  # "force": any device (CPU: generic mode, eager); "triton": the Triton kernels anywhere
COMPILED_DEVICES = ("cuda",)  # where the Triton kernels run

__all__ = ["ParallelLinearScan", "associative_linear_scan", "device_scan_available", "FORCE_ENV"]


def _forced(force: bool) -> bool:
    return force or os.environ.get(FORCE_ENV, "").strip().lower() == "force"


def _triton_mode() -> bool:
    return os.environ.get(FORCE_ENV, "").strip().lower() == "triton"


@functools.lru_cache(maxsize=None)
def _triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


@functools.lru_cache(maxsize=None)
def _capability(device: torch.device) -> tuple[int, int]:
    return torch.cuda.get_device_capability(device)


@functools.lru_cache(maxsize=None)
def _has_combine_mode() -> bool:
    try:
        return "combine_mode" in inspect.signature(_scan_op()).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return False


def device_scan_available(x: Tensor, *, force: bool = False) -> str | None:
    """None when :func:`associative_linear_scan` can run on ``x``'s device and dtype, else the reason.

    It can on a CUDA device (compute capability 7.0 or more, Triton installed) with a real
    floating-point dtype. ``force=True`` (or ``CAROUSEL_DEVICE_SCAN=force`` in the environment)
    also accepts other devices, where the scan runs eagerly as torch's
    ``torch._higher_order_ops.associative_scan`` in ``combine_mode="generic"`` (a torch that has it
    is needed): a test switch, not a fast path. ``CAROUSEL_DEVICE_SCAN=triton`` runs the Triton
    kernels on any device (on a CPU, under ``TRITON_INTERPRET=1``): for tests too.
    """
    if bool(torch._C._are_functorch_transforms_active()):
        return "its autograd function has no torch.func (vmap, grad, jacrev) rules"
    if not x.is_floating_point():
        return f"the device scan needs a real floating-point tensor; dtype {x.dtype} was given"
    if x.device.type in COMPILED_DEVICES or _triton_mode():
        if not _triton_installed():
            return "the device scan runs Triton kernels, and triton is not installed"
        if x.device.type not in COMPILED_DEVICES and os.environ.get("TRITON_INTERPRET", "") != "1":
            return (f"{FORCE_ENV}=triton runs the Triton kernels on {x.device.type} only under Triton's interpreter; "
                    "set TRITON_INTERPRET=1 (before triton is imported)")
        if x.device.type == "cuda" and _capability(x.device) < (7, 0):
            major, minor = _capability(x.device)
            return f"Triton needs a CUDA device of compute capability 7.0 or more; {x.device} has {major}.{minor}"
        return None
    if _forced(force):
        if _scan_op() is None:
            return f"torch {torch.__version__} has no torch._higher_order_ops.associative_scan (the forced CPU path)"
        if not _has_combine_mode():
            return f"torch {torch.__version__}'s associative_scan has no combine_mode argument (too old for the forced CPU path)"
        return None
    return (
        f"the device scan is for CUDA devices; the tensor is on {x.device.type} (where the chunked scan is faster). "
        f"Pass force=True or set {FORCE_ENV}=force to run it there anyway (eager, generic mode: for tests)"
    )


def _combine(earlier: tuple[Tensor, Tensor], later: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """``(a1, b1) o (a2, b2) = (a1 a2, a2 b1 + b2)``: apply step 1, then step 2."""
    a1, b1 = earlier
    a2, b2 = later
    return a2 * a1, a2 * b1 + b2


def _affine_scan(a: Tensor, b: Tensor, reverse: bool, mode: str) -> Tensor:
    """``h_t = a_t h_{t-1} + b_t`` from ``h_{-1} = 0`` over dim 1 (from the end when ``reverse``)."""
    return _scan_op()(_combine, (a, b), dim=1, reverse=reverse, combine_mode=mode)[1]


def _first(x: Tensor, reverse: bool) -> Tensor:
    """The first step in scan order, (B, *F): ``x[:, 0]``, or ``x[:, -1]`` when ``reverse``."""
    return x[:, -1] if reverse else x[:, 0]


def _fold(a: Tensor, b: Tensor, h0: Tensor, reverse: bool) -> Tensor:
    """``b`` with the initial state folded into its first step: ``b_0 + a_0 h0`` there."""
    first = (_first(b, reverse) + _first(a, reverse) * h0).unsqueeze(1)
    return torch.cat([b[:, :-1], first] if reverse else [first, b[:, 1:]], dim=1)


def _shift_in(x: Tensor, edge: Tensor, reverse: bool) -> Tensor:
    """``x`` delayed one step in scan order: ``x_{t-1}`` at step t, ``edge`` at the first (``[edge, x_0, ..]``)."""
    edge = edge.unsqueeze(1)
    return torch.cat([x[:, 1:], edge] if reverse else [edge, x[:, :-1]], dim=1)


def _shift_out(x: Tensor, reverse: bool) -> Tensor:
    """``x`` advanced one step in scan order: ``x_{t+1}`` at step t, 0 at the last (``[x_1, .., x_{T-1}, 0]``)."""
    zero = torch.zeros_like(x[:, :1])
    return torch.cat([zero, x[:, :-1]] if reverse else [x[:, 1:], zero], dim=1)


def _forward_core(a: Tensor, b: Tensor, h0: Tensor, reverse: bool, mode: str) -> Tensor:
    return _affine_scan(a, _fold(a, b, h0, reverse), reverse, mode)


def _backward_core(
    a: Tensor, h: Tensor, h0: Tensor, grad_h: Tensor, reverse: bool, scan: Callable[[Tensor, Tensor, bool], Tensor]
) -> tuple[Tensor, Tensor, Tensor]:
    """``(grad_a, grad_b, grad_h0)``; ``scan(c, d, reverse)`` runs ``g_t = c_t g_{t-1} + d_t`` from 0."""
    g = scan(_shift_out(a, reverse), grad_h, not reverse)  # g_t = dh_t + a_{t+1} g_{t+1}, backwards in time
    grad_a = g * _shift_in(h, h0, reverse)  # g_t h_{t-1}
    return grad_a, g, _first(a, reverse) * _first(g, reverse)


def _flat(x: Tensor, rows: int) -> Tensor:
    """``x`` (rows, ..., *F) as (rows, ..., F): the Triton kernels take one trailing dimension."""
    return x.reshape(*x.shape[:rows], -1)


@functools.lru_cache(maxsize=None)
def _triton_kernels() -> tuple[Callable, Callable]:
    from .triton_scan import backward as scan_backward, forward as scan_forward  # imports triton: only where it runs

    def forward(a: Tensor, b: Tensor, h0: Tensor, reverse: bool) -> Tensor:
        return scan_forward(_flat(a, 2), _flat(b, 2), _flat(h0, 1), reverse).view(a.shape)

    def backward(a: Tensor, h: Tensor, h0: Tensor, grad_h: Tensor, reverse: bool) -> tuple[Tensor, Tensor, Tensor]:
        grads = scan_backward(_flat(a, 2), _flat(h, 2), _flat(h0, 1), _flat(grad_h, 2), reverse)
        return grads[0].view(a.shape), grads[1].view(a.shape), grads[2].view(h0.shape)

    return forward, backward


@functools.lru_cache(maxsize=None)
def _generic_kernels() -> tuple[Callable, Callable]:
    def forward(a: Tensor, b: Tensor, h0: Tensor, reverse: bool) -> Tensor:
        return _forward_core(a, b, h0, reverse, "generic")

    def backward(a: Tensor, h: Tensor, h0: Tensor, grad_h: Tensor, reverse: bool) -> tuple[Tensor, Tensor, Tensor]:
        return _backward_core(a, h, h0, grad_h, reverse, functools.partial(_affine_scan, mode="generic"))

    return forward, backward


def _kernels(device_type: str) -> tuple[Callable, Callable]:
    """The (forward, backward) pair for one device type: the Triton kernels on CUDA (and anywhere
    with ``CAROUSEL_DEVICE_SCAN=triton``), else associative_scan's generic mode, eagerly."""
    if device_type in COMPILED_DEVICES or _triton_mode():
        return _triton_kernels()
    return _generic_kernels()


class ParallelLinearScan(torch.autograd.Function):
    """``h = ParallelLinearScan.apply(a, b, h0, reverse)``: ``h_t = a_t h_{t-1} + b_t`` by one associative scan.

    ``a``, ``b`` (B, T, *F) and ``h0`` (B, *F) of one floating dtype and device; ``reverse=True``
    runs time backwards, ``h_t = a_t h_{t+1} + b_t`` with ``h_T = h0``. Call it through
    :func:`associative_linear_scan`, which checks its input. The backward is written out (a
    reverse scan, see the module docstring); under ``create_graph=True`` it is built from
    this function again, so second derivatives are exact too.
    """

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, h0: Tensor, reverse: bool) -> Tensor:
        forward, _ = _kernels(a.device.type)
        h = forward(a.detach(), b.detach(), h0.detach(), reverse)  # (B, T, *F); detached: no autograd inside
        ctx.reverse = reverse
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    def backward(ctx, grad_h: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None, None]:
        a, h, h0 = ctx.saved_tensors
        grad_h = grad_h.contiguous()
        if torch.is_grad_enabled():  # create_graph: the same backward from differentiable operations

            def scan(c: Tensor, d: Tensor, reverse: bool) -> Tensor:
                return ParallelLinearScan.apply(c, d, torch.zeros_like(h0), reverse)

            grads = _backward_core(a, h, h0, grad_h, ctx.reverse, scan)
        else:
            _, backward = _kernels(a.device.type)
            grads = backward(a.detach(), h.detach(), h0.detach(), grad_h.detach(), ctx.reverse)
        grad_a, grad_b, grad_h0 = (g if need else None for g, need in zip(grads, ctx.needs_input_grad))
        return grad_a, grad_b, grad_h0, None


def associative_linear_scan(a: Tensor, b: Tensor, h0: Tensor, *, reverse: bool = False, force: bool = False) -> Tensor:
    r"""``h_t = a_t \odot h_{t-1} + b_t`` over dim 1 by one parallel (associative) scan; differentiable.

    Args:
        a, b: the coefficients, (B, T, H) (any trailing shape (B, T, *F) works).
        h0: the state before the first step, (B, H) (or (B, *F)).
        reverse: run time backwards: ``h_t = a_t h_{t+1} + b_t`` for t = T-1..0, with ``h_T = h0``.
        force: run on a device other than CUDA too (eagerly, ``combine_mode="generic"``); the
            environment variable ``CAROUSEL_DEVICE_SCAN=force`` does the same. For tests.

    Returns:
        h, (B, T, H), in the dtype the three inputs promote to.

    Raises:
        TypeError: an input is not a tensor, or not of a real floating dtype.
        ValueError: the shapes do not match, T is 0, or the inputs are on different devices.
        RuntimeError: the device scan cannot run here (:func:`device_scan_available` says why).

    The combine is Blelloch's (1990) for first-order linear recurrences; see the module docstring.
    """
    for name, t in (("a", a), ("b", b), ("h0", h0)):
        if not isinstance(t, Tensor):
            raise TypeError(f"associative_linear_scan: {name} must be a torch.Tensor; {type(t).__name__} was given")
        if not t.is_floating_point():
            raise TypeError(f"associative_linear_scan: {name} must have a real floating dtype; {t.dtype} was given")
    if a.ndim < 2 or a.shape != b.shape:
        raise ValueError(
            f"associative_linear_scan: a and b must both be (B, T, H); a {tuple(a.shape)} and b {tuple(b.shape)} were given"
        )
    expected = (a.shape[0], *a.shape[2:])
    if tuple(h0.shape) != expected:
        raise ValueError(
            f"associative_linear_scan: h0 must be (B, H) = {expected} for a {tuple(a.shape)}; {tuple(h0.shape)} was given"
        )
    if a.shape[1] == 0:
        raise ValueError(f"associative_linear_scan: the scan needs at least one step; a {tuple(a.shape)} has T = 0")
    if not (a.device == b.device == h0.device):
        raise ValueError(
            f"associative_linear_scan: a, b and h0 must be on one device; {a.device}, {b.device}, {h0.device} were given"
        )
    if not isinstance(reverse, bool):
        raise TypeError(f"associative_linear_scan: reverse must be a bool; {type(reverse).__name__} was given")
    dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), h0.dtype)
    reason = device_scan_available(a, force=force)  # reads only the device (a is floating)
    if reason is not None:
        raise RuntimeError(f"associative_linear_scan cannot run: {reason}")
    a, b, h0 = (t.to(dtype).contiguous() for t in (a, b, h0))
    return ParallelLinearScan.apply(a, b, h0, reverse)
