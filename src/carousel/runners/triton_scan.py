r"""The device scan's Triton kernels: ``h_t = a_t h_{t-1} + b_t`` and its backward, on (B, T, H) in place.

Imported only where Triton is installed (a CUDA machine; on a CPU, Triton's interpreter with
``TRITON_INTERPRET=1``, which the tests use). :mod:`carousel.runners.device_scan` calls these.

Layout and work split. ``a``, ``b`` and ``h`` are (B, T, H), contiguous: the H units of one step
lie side by side. One program takes one sequence and ``BLOCK_H`` units, and walks time in chunks
of ``BLOCK_T`` steps: it loads a (BLOCK_T, BLOCK_H) tile (rows are steps, so each row is one
coalesced read), scans the tile along its rows with ``tl.associative_scan`` and the combine of
affine maps (Blelloch 1990, "Prefix sums and their applications", section 1.4),

.. math::
    (a_1, b_1) \circ (a_2, b_2) = (a_1 a_2,\; a_2 b_1 + b_2),

then applies the carry from the tiles before (``h = B_cum + A_cum \cdot carry``) and keeps the
tile's last row as the next carry. Each element is read and written once; any T works (a run-time
argument: Triton compiles a variant for T = 1 and for T divisible by 16, not one per length); the time direction is an index map, so the
reverse scan is the same kernel. Arithmetic is in float32 (float64 for float64 tensors).

When B times H is small against the GPU, so are the programs; then time is split too, into chunks
of ``CHUNK`` steps scanned side by side, in three launches (the two-level scan with fewer processors than elements, Blelloch 1990):
each chunk's composite map ``(a_last \cdots a_first, h_last from a zero carry)``,
then the carry entering each chunk (a short sequential fold over the chunks per sequence and
unit), then every chunk again from its carry. That reads ``a`` and ``b`` twice, and gives T / CHUNK
times more programs. Which configuration runs is timed on the first call per shape (``_run``).

The backward is one more scan, backwards in scan order (see :mod:`carousel.runners.device_scan`):
``g_s = dL/dh_s + a_{s+1} g_{s+1}``, then ``dL/da_s = g_s h_{s-1}``, ``dL/db_s = g_s`` and
``dL/dh_{-1} = a_0 g_0``, all in the same pass.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Callable

import torch
import triton
import triton.language as tl
from torch import Tensor

BLOCK_T = 64  # steps per tile
MAX_BLOCK_H = 32  # units per program


@triton.jit
def _combine(a1, b1, a2, b2):
    # (a1, b1) earlier, (a2, b2) later: apply step 1, then step 2
    return a2 * a1, a2 * b1 + b2


@triton.jit
def _program(T, NH, CHUNK, NC, BLOCK_H: tl.constexpr):
    # this program's sequence, block of units (and which are real), offset of its sequence, its chunk
    # of steps [start, stop) in scan order, and where its chunk's entry lies in a (B, NC, NH) buffer
    seq = tl.program_id(0)
    units = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    start = tl.program_id(2) * CHUNK
    chunk_at = (seq.to(tl.int64) * NC + tl.program_id(2)) * NH + units
    return seq, units, units < NH, seq.to(tl.int64) * T * NH, start, tl.minimum(T, start + CHUNK), chunk_at


@triton.jit
def _tile(start, stop, units, unit_ok, base, NH, t_first, t_step, BLOCK_T: tl.constexpr):
    # one tile's positions u in scan order (BLOCK_T,), which of its elements are real (BLOCK_T, BLOCK_H),
    # and their offsets (the time of position u is t_first + t_step * u)
    u = start + tl.arange(0, BLOCK_T)
    ok = (u < stop)[:, None] & unit_ok[None, :]
    t = t_first + t_step * u
    return u, ok, base + t.to(tl.int64)[:, None] * NH + units[None, :]


@triton.jit
def _last_row(x, rows, BLOCK_T: tl.constexpr):
    return tl.sum(tl.where((rows == BLOCK_T - 1)[:, None], x, 0.0), axis=0)


@triton.jit
def _coefficient(A, offs, u, ok, t_step, NH, dtype, BACKWARD: tl.constexpr):
    # the scan's coefficient at each row of a tile, 1 (the identity map) on padding rows: a_t forward;
    # backward, a of the step after t in the forward order, t - t_step (0 after the last step, u = 0)
    if BACKWARD:
        a = tl.load(A + offs - t_step * NH, mask=(u > 0)[:, None] & ok, other=0.0).to(dtype)
        a = tl.where(ok, a, 1.0)
    else:
        a = tl.load(A + offs, mask=ok, other=1.0).to(dtype)
    return a


@triton.jit
def _forward_kernel(A, X, Cin, Hout, T, NH, t_first, t_step, CHUNK, NC,
                    BLOCK_T: tl.constexpr, BLOCK_H: tl.constexpr, F64: tl.constexpr):
    # program (seq, block of units, chunk): steps u in [chunk * CHUNK, chunk * CHUNK + CHUNK) of scan order,
    # from the carry Cin[seq, chunk] (h0 when the whole length is one chunk)
    seq, units, unit_ok, base, start, stop, chunk_at = _program(T, NH, CHUNK, NC, BLOCK_H)
    dtype = tl.float64 if F64 else tl.float32
    carry = tl.load(Cin + chunk_at, mask=unit_ok, other=0.0).to(dtype)  # (BLOCK_H,)
    rows = tl.arange(0, BLOCK_T)
    while start < stop:  # (a while loop: Triton's interpreter cannot range over a run-time bound with NumPy 2)
        u, ok, offs = _tile(start, stop, units, unit_ok, base, NH, t_first, t_step, BLOCK_T)
        a = _coefficient(A, offs, u, ok, t_step, NH, dtype, False)
        b = tl.load(X + offs, mask=ok, other=0.0).to(dtype)
        a_cum, b_cum = tl.associative_scan((a, b), 0, _combine)
        h = b_cum + a_cum * carry[None, :]
        tl.store(Hout + offs, h.to(Hout.dtype.element_ty), mask=ok)
        carry = _last_row(h, rows, BLOCK_T)  # padding keeps the last h
        start += BLOCK_T


@triton.jit
def _totals_kernel(A, X, TA, TB, T, NH, t_first, t_step, CHUNK, NC, BACKWARD: tl.constexpr,
                   BLOCK_T: tl.constexpr, BLOCK_H: tl.constexpr, F64: tl.constexpr):
    # each chunk's composite map (product of its coefficients, its state from a zero carry), in scan
    # order; the coefficients are a_t (forward) or a of the step after t (backward, as _backward_kernel)
    seq, units, unit_ok, base, start, stop, chunk_at = _program(T, NH, CHUNK, NC, BLOCK_H)
    dtype = tl.float64 if F64 else tl.float32
    total_a = tl.full((BLOCK_H,), 1.0, dtype)
    total_b = tl.zeros((BLOCK_H,), dtype=dtype)
    rows = tl.arange(0, BLOCK_T)
    while start < stop:
        u, ok, offs = _tile(start, stop, units, unit_ok, base, NH, t_first, t_step, BLOCK_T)
        a = _coefficient(A, offs, u, ok, t_step, NH, dtype, BACKWARD)
        x = tl.load(X + offs, mask=ok, other=0.0).to(dtype)
        a_cum, x_cum = tl.associative_scan((a, x), 0, _combine)
        a_last = _last_row(a_cum, rows, BLOCK_T)
        total_b = a_last * total_b + _last_row(x_cum, rows, BLOCK_T)
        total_a = a_last * total_a
        start += BLOCK_T
    tl.store(TA + chunk_at, total_a, mask=unit_ok)
    tl.store(TB + chunk_at, total_b, mask=unit_ok)


@triton.jit
def _carries_kernel(TA, TB, H0, Cin, NC, NH, BLOCK_H: tl.constexpr, F64: tl.constexpr):
    # the carry entering each chunk: h0 composed with the chunks before it, one chunk at a time
    seq = tl.program_id(0)
    units = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    unit_ok = units < NH
    dtype = tl.float64 if F64 else tl.float32
    carry = tl.load(H0 + seq.to(tl.int64) * NH + units, mask=unit_ok, other=0.0).to(dtype)
    chunk = 0
    while chunk < NC:
        at = (seq.to(tl.int64) * NC + chunk) * NH + units
        tl.store(Cin + at, carry, mask=unit_ok)
        carry = tl.load(TA + at, mask=unit_ok, other=1.0) * carry + tl.load(TB + at, mask=unit_ok, other=0.0)
        chunk += 1


@triton.jit
def _backward_kernel(A, G, Cin, Hs, H0, GA, GB, GH0, T, NH, t_first, t_step, CHUNK, NC,
                     BLOCK_T: tl.constexpr, BLOCK_H: tl.constexpr, F64: tl.constexpr):
    # u runs backwards in scan order; t = t_first + t_step * u is its time (t_step is minus the scan's);
    # the program's chunk of u as in _forward_kernel, its carry of g from Cin (zeros for one chunk)
    seq, units, unit_ok, base, start, stop, chunk_at = _program(T, NH, CHUNK, NC, BLOCK_H)
    dtype = tl.float64 if F64 else tl.float32
    h0 = tl.load(H0 + seq.to(tl.int64) * NH + units, mask=unit_ok, other=0.0).to(dtype)
    carry = tl.load(Cin + chunk_at, mask=unit_ok, other=0.0).to(dtype)
    grad_h0 = tl.zeros((BLOCK_H,), dtype=dtype)
    rows = tl.arange(0, BLOCK_T)
    while start < stop:
        u, ok, offs = _tile(start, stop, units, unit_ok, base, NH, t_first, t_step, BLOCK_T)
        a_next = _coefficient(A, offs, u, ok, t_step, NH, dtype, True)
        g_in = tl.load(G + offs, mask=ok, other=0.0).to(dtype)
        c_cum, g_cum = tl.associative_scan((a_next, g_in), 0, _combine)
        g = g_cum + c_cum * carry[None, :]
        carry = _last_row(g, rows, BLOCK_T)
        # the state entering step t: h at t + t_step, or h0 for the first step in scan order (u = T - 1)
        first = (u == T - 1)[:, None]
        has_prev = ((u < T - 1)[:, None]) & ok
        h_prev = tl.load(Hs + offs + t_step * NH, mask=has_prev, other=0.0).to(dtype)
        h_prev = tl.where(first, h0[None, :], h_prev)
        tl.store(GA + offs, (g * h_prev).to(GA.dtype.element_ty), mask=ok)
        tl.store(GB + offs, g.to(GB.dtype.element_ty), mask=ok)
        a_first = tl.load(A + offs, mask=first & ok, other=0.0).to(dtype)
        grad_h0 += tl.sum(tl.where(first & ok, a_first * g, 0.0), axis=0)
        start += BLOCK_T
    # only the last chunk holds u = T - 1
    tl.store(GH0 + seq.to(tl.int64) * NH + units, grad_h0.to(GH0.dtype.element_ty), mask=unit_ok & (tl.program_id(2) == NC - 1))


Config = tuple[int, int, int, int]  # (BLOCK_T, BLOCK_H, num_warps, CHUNK): CHUNK 0 = the whole length in one program
DEFAULT: Config = (BLOCK_T, MAX_BLOCK_H, 4, 0)
# candidates timed on the first call per (direction, device, dtype, shape): more programs with narrower
# blocks of units, or longer tiles, suit different shapes; with CHUNK > 0 the length is split into
# chunks scanned side by side (three launches: the chunks' composite maps, their carries, the scan),
# which reads the input twice but puts T / CHUNK times more programs to work when B * H is small;
# the fastest is kept for the process
CONFIGS: tuple[Config, ...] = (
    DEFAULT, (128, 16, 4, 0), (256, 8, 4, 0), (256, 16, 8, 0), (512, 4, 4, 0), (128, 8, 2, 0), (1024, 4, 8, 0),
    (64, 32, 4, 256), (64, 16, 2, 256), (64, 32, 4, 512), (128, 32, 4, 1024),
)
_BEST: dict[tuple, Config] = {}


def _launch(kernel, grid: tuple, args: tuple, device: torch.device, warps: int, **constants) -> None:
    with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():  # Triton launches on the current device
        kernel[grid](*args, num_warps=warps, **constants)


def _scan(backward: bool, a: Tensor, x: Tensor, carry: Tensor, rest: tuple, t_first: int, t_step: int,
          config: Config) -> None:
    """One scan with ``config``: the main kernel (``_backward_kernel`` when ``backward``) on the
    coefficients ``a`` (B, T, H), the scanned input ``x`` (b, or grad_h backwards), the carries entering
    its chunks (``carry`` (B, H), the one entering the first, when the length is one chunk) and its
    other tensors ``rest``; before it, for more chunks, the chunks' composite maps and their carries."""
    B, T, NH = a.shape
    block_t, block_h, warps, chunk = config
    block_h = min(block_h, triton.next_power_of_2(NH))
    f64 = a.dtype == torch.float64
    main = _backward_kernel if backward else _forward_kernel
    units = triton.cdiv(NH, block_h)
    if chunk <= 0 or chunk >= T:
        _launch(main, (B, units, 1), (a, x, carry, *rest, T, NH, t_first, t_step, T, 1), a.device, warps,
                BLOCK_T=block_t, BLOCK_H=block_h, F64=f64)
        return
    chunks = triton.cdiv(T, chunk)
    totals = torch.empty((2, B, chunks, NH), device=a.device, dtype=torch.float64 if f64 else torch.float32)
    carries = torch.empty_like(totals[0])
    constants = dict(BLOCK_H=block_h, F64=f64)
    _launch(_totals_kernel, (B, units, chunks), (a, x, totals[0], totals[1], T, NH, t_first, t_step, chunk, chunks),
            a.device, warps, BACKWARD=backward, BLOCK_T=block_t, **constants)
    _launch(_carries_kernel, (B, units), (totals[0], totals[1], carry, carries, chunks, NH), a.device, warps, **constants)
    _launch(main, (B, units, chunks), (a, x, carries, *rest, T, NH, t_first, t_step, chunk, chunks), a.device, warps,
            BLOCK_T=block_t, **constants)


def _fastest(run: Callable[[Config], None], device: torch.device) -> Config:
    """The fastest of ``CONFIGS`` for ``run(config)`` (each run once to compile, then timed three times
    with CUDA events); the kernels only write their outputs, so running them again is harmless."""
    times = {}
    for config in CONFIGS:  # (the events record on the current stream of the tensors' device)
        run(config)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.device(device):
            start.record()
            for _ in range(3):
                run(config)
            end.record()
        end.synchronize()
        times[config] = start.elapsed_time(end)
    return min(times, key=times.get)


def _key(which: str, a: Tensor) -> tuple:
    B, T, NH = a.shape
    return which, a.device, a.dtype, B, triton.next_power_of_2(T), NH


def picked(which: str, a: Tensor) -> Config | None:
    """The configuration timed fastest so far for ``which`` ("forward" or "backward") on coefficients
    like ``a`` (B, T, H): same device, dtype, B, H and T up to the next power of two; None before any."""
    return _BEST.get(_key(which, a))


def _run(which: str, a: Tensor, run: Callable[[Config], None], config: Config | None) -> None:
    """``run(config)``, or ``run`` with the configuration timed fastest for this direction, device, dtype
    and shape (B, T to the next power of two, H) (timed on the first such call on CUDA; the default on
    other devices and while a CUDA graph is being captured, where nothing can be timed)."""
    if config is None:
        key = _key(which, a)
        config = _BEST.get(key)
        if config is None:
            if a.device.type != "cuda" or torch.cuda.is_current_stream_capturing():
                config = DEFAULT
            else:
                config = _BEST[key] = _fastest(run, a.device)
    run(config)


def forward(a: Tensor, b: Tensor, h0: Tensor, reverse: bool, config: Config | None = None) -> Tensor:
    """``h`` (B, T, H) with ``h_t = a_t h_{t-1} + b_t`` from ``h0`` (B, H); time backwards when ``reverse``.
    ``a``, ``b`` (B, T, H) and ``h0`` contiguous, one dtype and device; ``config`` (BLOCK_T, BLOCK_H,
    num_warps, CHUNK) fixes the launch (default: the fastest of ``CONFIGS``, see ``_run``)."""
    T = a.shape[1]
    h = torch.empty_like(b)
    t_first, t_step = (T - 1, -1) if reverse else (0, 1)
    _run("forward", a, functools.partial(_scan, False, a, b, h0, (h,), t_first, t_step), config)
    return h


def backward(a: Tensor, h: Tensor, h0: Tensor, grad_h: Tensor, reverse: bool,
             config: Config | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``(grad_a, grad_b, grad_h0)`` of :func:`forward` given ``grad_h`` (B, T, H), from the saved ``h``."""
    T = a.shape[1]
    grad_a, grad_b, grad_h0 = torch.empty_like(a), torch.empty_like(a), torch.empty_like(h0)
    t_first, t_step = (0, 1) if reverse else (T - 1, -1)  # backwards in scan order
    zeros = torch.zeros_like(h0)  # g after the last step
    _run("backward", a, functools.partial(_scan, True, a, grad_h, zeros, (h, h0, grad_a, grad_b, grad_h0), t_first, t_step),
         config)
    return grad_a, grad_b, grad_h0
