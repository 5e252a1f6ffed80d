"""carousel's compiled CPU scan kernels (carousel.runners.native) against the eager scan and the reference loop."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest
import torch

import carousel as C
from carousel.runners import native, run
from carousel.runners import scan as scan_module
from carousel.runners.scan import CHUNK, _NativeScan, run_scan

CAN_BUILD = shutil.which("c++") is not None and importlib.util.find_spec("ninja") is not None


@pytest.mark.skipif(not CAN_BUILD, reason="needs a C++ compiler and ninja")
def test_kernels_build_where_a_compiler_is_present():
    """Where a compiler and ninja exist (the test machine), the kernels must build: a broken build would
    otherwise pass silently on the eager path."""
    assert native.native_unavailable() is None
    assert native.ops() is not None


needs_native = pytest.mark.skipif(not CAN_BUILD, reason="needs a C++ compiler and ninja")


def _both(cell, x, h0, lengths=None, steps=None):
    """outputs, final state and the gradients of x, h0 and every parameter, native and eager."""
    results = []
    for on in (True, False):
        xx, hh = x.detach().clone().requires_grad_(), h0.detach().clone().requires_grad_()
        cell.zero_grad(set_to_none=True)
        with native.use_native(on):
            out, final = run_scan(cell, xx, cell.state_type(hh), lengths, steps=steps)
        g = torch.Generator().manual_seed(1)
        loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum() + (final.h * 3).sum()
        loss.backward()
        results.append([out.detach(), final.h.detach(), xx.grad, hh.grad] + [p.grad for p in cell.parameters()])
    return results


@needs_native
@pytest.mark.parametrize("name", ["MinGRUCell", "MinLSTMCell"])
@pytest.mark.parametrize("lengths", [None, [90, 41, 1, 17]], ids=["full", "lengths"])
@pytest.mark.parametrize("steps", [None, 2 * CHUNK, 7], ids=["one-block", "blocks-32", "blocks-7"])
def test_native_equals_eager_float64(name, lengths, steps):
    torch.manual_seed(0)
    cell = getattr(C, name)(5, 70, dtype=torch.float64)  # 70 hidden units: a slice of 64 and a ragged one
    with torch.no_grad():
        cell.weight_ih.mul_(8.0)  # pre-activations far into both tails of the sigmoids
    x = torch.randn(4, 90, 5, dtype=torch.float64)
    h0 = torch.randn(4, 70, dtype=torch.float64)
    L = None if lengths is None else torch.tensor(lengths)
    ours, eager = _both(cell, x, h0, L, steps)
    for u, v in zip(ours, eager):
        torch.testing.assert_close(u, v, rtol=1e-11, atol=1e-12)


@needs_native
@pytest.mark.parametrize("name", ["MinGRUCell", "MinLSTMCell"])
def test_native_float32_matches_float64_reference(name):
    """The float kernel's polynomial exp (relative error < 2e-7) keeps float32 close to the float64 loop."""
    torch.manual_seed(1)
    cell64 = getattr(C, name)(6, 40, dtype=torch.float64)
    cell32 = getattr(C, name)(6, 40)
    cell32.load_state_dict({k: v.float() for k, v in cell64.state_dict().items()})
    x = torch.randn(3, 300, 6, dtype=torch.float64) * 4
    ref, _ = run(cell64, x, backend="reference")
    with native.use_native(True):
        out, _ = run(cell32, x.float(), backend="scan")
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-5)


@needs_native
@pytest.mark.parametrize("lstm", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_native_block_gradcheck(lstm, bias):
    """The projection fused: gradients of x, W, b and h0, in one block and in several."""
    g = torch.Generator().manual_seed(3)
    H, I = 3, 2
    G = (3 if lstm else 2) * H
    x = torch.randn(2, 9, I, generator=g, dtype=torch.float64, requires_grad=True)
    W = (torch.randn(G, I, generator=g, dtype=torch.float64) * 2).requires_grad_()
    b = torch.randn(G, generator=g, dtype=torch.float64, requires_grad=True) if bias else None
    h0 = torch.randn(2, H, generator=g, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([9, 4])
    inputs = (x, W, h0) + ((b,) if bias else ())
    for block in (9, 4):  # one block, and three blocks (4 + 4 + 1 steps) with the state carried between them
        assert torch.autograd.gradcheck(
            lambda x, W, h0, *b: _NativeScan.apply(lstm, lengths, block, x, W, b[0] if b else None, h0), inputs
        )


@needs_native
def test_native_gates_stay_finite_where_both_sigmoids_underflow():
    """k_f = k_i = -200: both sigmoids are 0 in float32, their ratio is 1/2 (minLSTM's log-space promise)."""
    cell = C.MinLSTMCell(1, 2)
    with torch.no_grad():
        cell.weight_ih.zero_()
        cell.bias_ih.copy_(torch.tensor([-200.0, -200.0, -200.0, -190.0, 1.0, 1.0]))
    x = torch.zeros(1, 4, 1, requires_grad=True)
    with native.use_native(True):
        out, _ = run(cell, x, backend="scan")
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(cell.bias_ih.grad).all()
    ref, _ = run(cell, x.detach(), backend="reference")
    torch.testing.assert_close(out.detach(), ref, rtol=1e-5, atol=1e-6)


def test_turned_off_says_so_and_the_eager_path_serves():
    cell = C.MinGRUCell(2, 3, dtype=torch.float64)
    x = torch.randn(2, 40, 2, dtype=torch.float64)
    with native.use_native(False):
        assert "turned off" in native.native_unavailable()
        assert native.ops() is None
        out, _ = run(cell, x, backend="scan")
    ref, _ = run(cell, x, backend="reference")
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


def _lstm_run(cell, x, h0, c0, lengths, on):
    xx, hh, cc = (t.detach().clone().requires_grad_() for t in (x, h0, c0))
    cell.zero_grad(set_to_none=True)
    torch.manual_seed(11)  # the recurrent-dropout mask is drawn from here
    with native.use_native(on):
        out, final = run(cell, xx, cell.state_type(hh, cc), lengths, backend="explicit")
    g = torch.Generator().manual_seed(2)
    loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum() + (final.h * 2).sum() + (final.c * 3).sum()
    loss.backward()
    return [out.detach(), final.h.detach(), final.c.detach(), xx.grad, hh.grad, cc.grad] + [p.grad for p in cell.parameters()]


def _assert_native_lstm_equals_eager(cell, B, T, I, H, lengths, atol):
    """A random float64 run of ``cell``: the compiled and the eager explicit LSTM agree on everything."""
    x = torch.randn(B, T, I, dtype=torch.float64)
    h0, c0 = torch.randn(B, H, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    L = None if lengths is None else torch.tensor(lengths)
    ours, eager = _lstm_run(cell, x, h0, c0, L, True), _lstm_run(cell, x, h0, c0, L, False)
    for u, v in zip(ours, eager):
        torch.testing.assert_close(u, v, rtol=1e-10, atol=atol)


@needs_native
@pytest.mark.parametrize("layer_norm", [False, True], ids=["plain", "layer-norm"])
@pytest.mark.parametrize("dropout", [0.0, 0.4], ids=["no-mask", "recurrent-dropout"])
@pytest.mark.parametrize("lengths", [None, [23, 9, 1]], ids=["full", "lengths"])
def test_native_lstm_equals_eager_explicit_float64(layer_norm, dropout, lengths):
    """Outputs, final state and every gradient (x, h0, c0, weights, layer-norm gains and biases) of the
    compiled LSTM run equal the Python explicit step's, with the same recurrent-dropout mask."""
    torch.manual_seed(0)
    cell = C.LSTMCell(4, 70, layer_norm=layer_norm, dtype=torch.float64)  # 4H = 280: not a multiple of 16
    if layer_norm:
        with torch.no_grad():  # gains and biases away from 1 and 0, so that their use is tested
            for ln in (cell.ln_hh, cell.ln_c):
                ln.weight.uniform_(0.5, 1.5)
                ln.bias.uniform_(-0.3, 0.3)
    if dropout:
        cell = C.RecurrentDropout(cell, p=dropout).train()
    _assert_native_lstm_equals_eager(cell, 3, 23, 4, 70, lengths, atol=1e-12)


@needs_native
def test_native_lstm_float32_against_float64_reference_at_packed_size():
    """At B=32, H=256 the products use oneDNN's prepacked weights; float32 stays near the float64 loop."""
    torch.manual_seed(3)
    cell64 = C.LSTMCell(8, 256, layer_norm=True, dtype=torch.float64)
    cell32 = C.LSTMCell(8, 256, layer_norm=True)
    cell32.load_state_dict({k: v.float() for k, v in cell64.state_dict().items()})
    x = torch.randn(32, 12, 8, dtype=torch.float64)
    ref, _ = run(cell64, x, backend="reference")
    with native.use_native(True):
        out, _ = run(cell32, x.float().requires_grad_(), backend="explicit")
    torch.testing.assert_close(out.detach().double(), ref, rtol=1e-4, atol=2e-5)


@needs_native
def test_native_lstm_gradcheck():
    torch.manual_seed(4)
    cell = C.LSTMCell(2, 3, layer_norm=True, dtype=torch.float64)
    x = torch.randn(2, 5, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([5, 3])

    def f(x, h0, c0):
        with native.use_native(True):
            out, final = run(cell, x, cell.state_type(h0, c0), lengths, backend="explicit")
        return out, final.h, final.c

    assert torch.autograd.gradcheck(f, (x, h0, c0))


@needs_native
def test_native_lstm_buffers_from_one_run_never_leak_into_the_next():
    """The kernel's buffers are reused between runs: two runs kept alive at once must not share them."""
    torch.manual_seed(5)
    cell = C.LSTMCell(3, 16, layer_norm=True)
    x1, x2 = torch.randn(2, 6, 3, requires_grad=True), torch.randn(2, 6, 3, requires_grad=True)
    with native.use_native(True):
        out1, _ = run(cell, x1, backend="explicit")
        out2, _ = run(cell, x2, backend="explicit")
        (g1,) = torch.autograd.grad(out1.sum(), x1)
        (g2,) = torch.autograd.grad(out2.sum(), x2)
    with native.use_native(False):
        e1, _ = run(cell, x1, backend="explicit")
        e2, _ = run(cell, x2, backend="explicit")
        (h1,) = torch.autograd.grad(e1.sum(), x1)
        (h2,) = torch.autograd.grad(e2.sum(), x2)
    torch.testing.assert_close(g1, h1)
    torch.testing.assert_close(g2, h2)


@pytest.mark.parametrize("name", ["scan", "explicit"])
def test_torch_compile_runs_carousels_own_kernels_outside_the_graph(name):
    """torch.compile of a model with a scan or explicit layer: carousel's kernels (compiled or eager) are
    called as they are (the runners are marked torch.compiler.disable), with the eager results and gradients."""
    torch.manual_seed(0)
    cell = C.MinLSTMCell(3, 4) if name == "scan" else C.LSTMCell(3, 4, layer_norm=True)
    layer = C.Recurrent(cell, backend=name)
    x = torch.randn(2, 40, 3, requires_grad=True)
    ref = layer(x)[0]
    (g_ref,) = torch.autograd.grad(ref.sum(), x)
    out = torch.compile(layer)(x)[0]
    (g,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(g, g_ref)


@needs_native
@pytest.mark.parametrize("name", ["MinGRUCell", "MinLSTMCell"])
@pytest.mark.parametrize("B, T, H", [(1, 1, 1), (1, 5, 1), (2, 1, 3), (1, 3, 2)])
def test_native_scan_at_sizes_of_one(name, B, T, H):
    """Sizes of one (whose strides torch leaves free, e.g. the gradient of out.sum() expanded from a scalar)."""
    torch.manual_seed(6)
    cell = getattr(C, name)(2, H, dtype=torch.float64)
    x, h0 = torch.randn(B, T, 2, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    ours, eager = _both(cell, x, h0)
    for u, v in zip(ours, eager):
        torch.testing.assert_close(u, v, rtol=1e-11, atol=1e-12)
    with native.use_native(True):
        xx = x.clone().requires_grad_()
        run(cell, xx, backend="scan")[0].sum().backward()  # an expanded gradient reaches the kernel
    assert torch.isfinite(xx.grad).all()


def test_a_stale_build_lock_is_removed_and_a_fresh_one_kept(tmp_path):
    """A build killed midway leaves torch's lock file; left there, every later process would wait forever."""
    import os
    import time

    lock = tmp_path / "lock"
    lock.write_text("")
    native._remove_stale_lock(tmp_path)
    assert lock.exists()  # a build may be running right now
    old = time.time() - native.STALE_LOCK_SECONDS - 60
    os.utime(lock, (old, old))
    native._remove_stale_lock(tmp_path)
    assert not lock.exists()
    native._remove_stale_lock(None)  # no folder known: nothing to do


def test_an_unbuildable_kernel_falls_back_with_the_reason(monkeypatch):
    """Where the build fails (no compiler, an unwritable cache), the eager path serves and says why."""
    from torch.utils import cpp_extension

    def fail(**kwargs):
        raise RuntimeError("Error building extension 'carousel_native': c++: not found")

    monkeypatch.setattr(cpp_extension, "load", fail)
    monkeypatch.setattr(native, "_state", {})
    assert native.ops() is None
    assert "could not be built" in native.native_unavailable() and "c++: not found" in native.native_unavailable()
    cell = C.MinGRUCell(2, 3, dtype=torch.float64)
    x = torch.randn(2, 40, 2, dtype=torch.float64)
    out, _ = run(cell, x, backend="scan")
    ref, _ = run(cell, x, backend="reference")
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


@needs_native
@pytest.mark.parametrize("name", ["MinGRUCell", "MinLSTMCell"])
@pytest.mark.parametrize("lengths", [None, [50, 21, 1, 50, 7, 33]], ids=["full", "lengths"])
def test_native_scan_row_by_row_equals_block_by_block(name, lengths, monkeypatch):
    """The two compiled schedules (the whole run in one parallel region a batch row at a time, or block
    after block) give the same outputs and gradients, x included."""
    torch.manual_seed(7)
    cell = getattr(C, name)(5, 20, dtype=torch.float64)
    x, h0 = torch.randn(6, 50, 5, dtype=torch.float64), torch.randn(6, 20, dtype=torch.float64)
    L = None if lengths is None else torch.tensor(lengths)
    results = []
    for rows_per_thread in (1, 10**6):  # every batch row-by-row; never
        monkeypatch.setattr(scan_module, "ROWS_PER_THREAD", rows_per_thread)
        results.append(_both(cell, x, h0, L, steps=16)[0])
    for u, v in zip(*results):
        torch.testing.assert_close(u, v, rtol=1e-12, atol=1e-13)


@needs_native
@pytest.mark.parametrize("lengths", [None, [4, 2, 4, 1, 3, 4, 4, 2]], ids=["full", "lengths"])
def test_native_lstm_in_one_parallel_region_equals_eager(lengths, request):
    """Batch and width large enough (B * 4H >= 2^15) for the compiled LSTM to run in one parallel region,
    chunks of rows each running every step alone: the eager explicit step's values, gradients included
    (the schedule is opt-in, CAROUSEL_NATIVE_ONE_REGION=1, read once per process: a child runs it)."""
    if os.environ.get("CAROUSEL_NATIVE_ONE_REGION") != "1":  # read once per process by the kernel: run in a child
        child = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{__file__}::{request.node.name}"],
            env={**os.environ, "CAROUSEL_NATIVE_ONE_REGION": "1", "OMP_NUM_THREADS": "2"}, capture_output=True, text=True, timeout=600,
        )
        assert child.returncode == 0 and "1 passed" in child.stdout, child.stdout[-3000:]
        return
    torch.manual_seed(8)
    cell = C.RecurrentDropout(C.LSTMCell(3, 1024, layer_norm=True, dtype=torch.float64), p=0.3).train()
    _assert_native_lstm_equals_eager(cell, 8, 4, 3, 1024, lengths, atol=1e-11)


@needs_native
@pytest.mark.parametrize("kind", ["scan", "lstm"])
def test_native_gradients_are_the_same_from_run_to_run(kind):
    """Whichever thread takes which rows, the weight gradients (sums over rows) are bit for bit the same:
    rows are summed in fixed groups (exact resume and reproducible runs depend on it)."""
    torch.manual_seed(9)
    if kind == "scan":
        cell, x = C.MinLSTMCell(4, 64), torch.randn(16, 300, 4)
        backend = "scan"
    else:
        cell, x = C.LSTMCell(4, 256, layer_norm=True), torch.randn(32, 20, 4)
        backend = "explicit"
    grads = []
    for _ in range(4):
        cell.zero_grad(set_to_none=True)
        with native.use_native(True):
            run(cell, x, backend=backend)[0].square().sum().backward()
        grads.append([p.grad.clone() for p in cell.parameters()])
    for other in grads[1:]:
        for u, v in zip(grads[0], other):
            assert torch.equal(u, v)
