"""The parallel (associative) scan of carousel.runners.device_scan, on the CPU in its generic mode:
forward and every gradient against a plain loop and against the chunked scan, in float64."""

from __future__ import annotations

import pytest
import torch

from carousel.runners.device_scan import (
    FORCE_ENV,
    ParallelLinearScan,
    associative_linear_scan,
    device_scan_available,
)
from carousel.runners.scan import linear_scan

F64 = {"rtol": 1e-10, "atol": 1e-11}
B, H = 3, 4


def loop_scan(a, b, h0, reverse=False):
    """h_t = a_t h_{t-1} + b_t step by step (h_{-1} = h0); with reverse, h_t = a_t h_{t+1} + b_t, h_T = h0."""
    steps = range(a.shape[1] - 1, -1, -1) if reverse else range(a.shape[1])
    h, out = h0, {}
    for t in steps:
        h = a[:, t] * h + b[:, t]
        out[t] = h
    return torch.stack([out[t] for t in range(a.shape[1])], dim=1)


def coefficients(T, kind, seed=0):
    g = torch.Generator().manual_seed(seed + T)
    if kind == "contracting":  # a in (0, 1): minGRU's and minLSTM's case
        a = torch.rand(B, T, H, generator=g, dtype=torch.float64)
    elif kind == "growing":  # a > 1 everywhere (products grow to ~1e6 over 300 steps)
        a = 1.0 + 0.05 * torch.rand(B, T, H, generator=g, dtype=torch.float64)
    else:  # signs and sizes mixed, some |a| > 1
        a = 2.2 * torch.rand(B, T, H, generator=g, dtype=torch.float64) - 1.1
    b = torch.randn(B, T, H, generator=g, dtype=torch.float64)
    h0 = torch.randn(B, H, generator=g, dtype=torch.float64)
    w = torch.randn(B, T, H, generator=g, dtype=torch.float64)  # weights of the loss sum(w * h)
    return a, b, h0, w


def value_and_grads(fn, a, b, h0, w):
    a, b, h0 = (t.detach().clone().requires_grad_() for t in (a, b, h0))
    h = fn(a, b, h0)
    grads = torch.autograd.grad((w * h).sum(), (a, b, h0))
    return (h.detach(), *grads)


@pytest.mark.parametrize("kind", ["contracting", "growing", "mixed"])
@pytest.mark.parametrize("T", [1, 2, 7, 64, 300])
def test_forward_and_every_gradient_equal_the_loop_and_the_chunked_scan(T, kind):
    a, b, h0, w = coefficients(T, kind)
    ours = value_and_grads(lambda *x: associative_linear_scan(*x, force=True), a, b, h0, w)
    loop = value_and_grads(loop_scan, a, b, h0, w)
    chunked = value_and_grads(linear_scan, a, b, h0, w)
    for name, mine, by_loop, by_chunks in zip(("h", "grad a", "grad b", "grad h0"), ours, loop, chunked):
        scale = by_loop.abs().max().clamp_min(1.0)  # a > 1 makes values large: compare relative to the largest
        torch.testing.assert_close(mine / scale, by_loop / scale, **F64, msg=lambda m, n=name: f"{n} vs loop: {m}")
        torch.testing.assert_close(mine / scale, by_chunks / scale, **F64, msg=lambda m, n=name: f"{n} vs linear_scan: {m}")


@pytest.mark.parametrize("T", [1, 2, 7, 64, 300])
def test_reverse_equals_the_loop_backwards_in_time_and_the_flipped_scan(T):
    a, b, h0, w = coefficients(T, "mixed", seed=5)
    ours = value_and_grads(lambda *x: associative_linear_scan(*x, reverse=True, force=True), a, b, h0, w)
    loop = value_and_grads(lambda *x: loop_scan(*x, reverse=True), a, b, h0, w)
    flipped = value_and_grads(lambda a, b, h0: linear_scan(a.flip(1), b.flip(1), h0).flip(1), a, b, h0, w)
    for mine, by_loop, by_flip in zip(ours, loop, flipped):
        torch.testing.assert_close(mine, by_loop, **F64)
        torch.testing.assert_close(mine, by_flip, **F64)


@pytest.mark.parametrize("reverse", [False, True])
def test_gradcheck_and_second_derivatives(reverse):
    g = torch.Generator().manual_seed(3)
    a = (torch.rand(2, 5, 3, generator=g, dtype=torch.float64) * 1.6 - 0.3).requires_grad_()
    b = torch.randn(2, 5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)

    def fn(a, b, h0):
        return associative_linear_scan(a, b, h0, reverse=reverse, force=True)

    assert torch.autograd.gradcheck(fn, (a, b, h0))
    assert torch.autograd.gradgradcheck(fn, (a, b, h0))


def test_only_the_gradients_asked_for_are_computed_and_they_are_right():
    a, b, h0, w = coefficients(9, "contracting", seed=2)
    b = b.clone().requires_grad_()  # a and h0 need none
    (grad_b,) = torch.autograd.grad((w * associative_linear_scan(a, b, h0, force=True)).sum(), (b,))
    expected = value_and_grads(loop_scan, a, b, h0, w)[2]
    torch.testing.assert_close(grad_b, expected, **F64)


def test_dtypes_promote_like_the_chunked_scan():
    a, b, h0, _ = coefficients(7, "contracting", seed=4)
    h = associative_linear_scan(a.float(), b, h0.float(), force=True)
    assert h.dtype == torch.float64
    torch.testing.assert_close(h, loop_scan(a.float().double(), b, h0.float().double()), **F64)


def test_float32_agrees_with_float64_at_its_precision():
    a, b, h0, _ = coefficients(300, "contracting", seed=6)
    h32 = associative_linear_scan(a.float(), b.float(), h0.float(), force=True)
    torch.testing.assert_close(h32.double(), loop_scan(a, b, h0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda a, b, h0: (a[:, :5], b, h0), ValueError, "a (3, 5, 4) and b (3, 7, 4)"),
        (lambda a, b, h0: (a, b, h0[:, :2]), ValueError, "h0 must be (B, H) = (3, 4)"),
        (lambda a, b, h0: (a, b, h0[:1]), ValueError, "(1, 4) was given"),
        (lambda a, b, h0: (a[:, :0], b[:, :0], h0), ValueError, "T = 0"),
        (lambda a, b, h0: (a, b.long(), h0), TypeError, "b must have a real floating dtype; torch.int64"),
        (lambda a, b, h0: (a.int(), b, h0), TypeError, "torch.int32"),
        (lambda a, b, h0: (a, b.numpy(), h0), TypeError, "ndarray was given"),
    ],
)
def test_bad_input_is_refused_naming_what_was_given(make, error, words):
    a, b, h0, _ = coefficients(7, "contracting")
    with pytest.raises(error) as caught:
        associative_linear_scan(*make(a, b, h0), force=True)
    assert words in str(caught.value)


def test_without_cuda_it_is_refused_unless_forced(monkeypatch):
    a, b, h0, _ = coefficients(7, "contracting")
    monkeypatch.delenv(FORCE_ENV, raising=False)
    reason = device_scan_available(a)
    assert reason is not None and "CUDA" in reason and "cpu" in reason and FORCE_ENV in reason
    with pytest.raises(RuntimeError, match="device scan is for CUDA"):
        associative_linear_scan(a, b, h0)
    assert device_scan_available(a, force=True) is None
    assert "floating-point" in device_scan_available(a.long(), force=True)
    monkeypatch.setenv(FORCE_ENV, "force")
    assert device_scan_available(a) is None
    torch.testing.assert_close(associative_linear_scan(a, b, h0), loop_scan(a, b, h0), **F64)


def test_trailing_feature_dimensions_are_scanned_independently():
    a, b, h0, _ = coefficients(7, "mixed", seed=8)
    a4, b4, h04 = a.reshape(B, 7, 2, 2), b.reshape(B, 7, 2, 2), h0.reshape(B, 2, 2)
    h = associative_linear_scan(a4, b4, h04, force=True)
    torch.testing.assert_close(h.reshape(B, 7, H), loop_scan(a, b, h0), **F64)


def test_the_autograd_function_is_exported_for_direct_use():
    a, b, h0, _ = coefficients(4, "contracting")
    torch.testing.assert_close(ParallelLinearScan.apply(a, b, h0, False), loop_scan(a, b, h0), **F64)


def test_benchmark_script_says_it_needs_cuda_and_runs_when_forced(monkeypatch, capsys):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    from benchmarks import device_scan as bench

    if not torch.cuda.is_available():
        assert bench.main([]) == 0
        assert "needs a CUDA device" in capsys.readouterr().out
    assert bench.main(["--force-cpu", "--size", "9,2,3,4", "--repeats", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "contender" not in line]
    assert len(rows) == len(bench.steps((9, 2, 3, 4), "cpu", force=True)) == 5
    assert rows[-1].endswith("| 1.00 |")  # the GRU against itself


def test_cuda_and_the_triton_switch_take_the_triton_kernels_and_the_cpu_the_generic_mode(monkeypatch):
    import carousel.runners.device_scan as device_scan

    triton_pair = (object(), object())
    monkeypatch.setattr(device_scan, "_triton_kernels", lambda: triton_pair)
    monkeypatch.delenv(FORCE_ENV, raising=False)
    assert device_scan._kernels("cuda") is triton_pair
    assert device_scan._kernels("cpu") is device_scan._generic_kernels()
    monkeypatch.setenv(FORCE_ENV, "triton")
    assert device_scan._kernels("cpu") is triton_pair


@pytest.mark.parametrize("name", ["min_gru", "min_lstm"])
@pytest.mark.parametrize("lengths", [None, [41, 17, 1]], ids=["full", "lengths"])
def test_scan_runner_dispatches_to_the_device_scan_where_it_can_run(name, lengths, monkeypatch, assert_matches_reference):
    """The scan runner takes the associative scan where ``device_scan_available`` allows it (a GPU; here
    forced on the CPU) and then equals the reference loop: outputs, final state, every gradient."""
    import carousel.runners.device_scan as device_scan
    from carousel.runners.scan import run_scan
    from cell_zoo import make_cell, random_state

    monkeypatch.setenv(device_scan.FORCE_ENV, "force")
    calls = []
    original = device_scan.ParallelLinearScan.apply
    monkeypatch.setattr(device_scan.ParallelLinearScan, "apply", lambda *a: calls.append(1) or original(*a))
    cell = make_cell(name, 3, 4)
    x = torch.randn(3, 41, 3, dtype=torch.float64)
    assert_matches_reference(cell, x, random_state(cell, 3), lengths, "scan")
    assert calls, "the scan runner did not take the device scan"
    out, _ = run_scan(cell, x, random_state(cell, 3), None if lengths is None else torch.tensor(lengths))
    assert out.shape == (3, 41, 4)


@pytest.mark.parametrize("name", ["min_gru", "min_lstm"])
def test_compiled_coefficients_on_the_device_path_equal_the_reference_loop(name, monkeypatch, assert_matches_reference):
    """On a GPU the scan runner compiles the cell's coefficients (``device_coefficients``); with
    ``CAROUSEL_COMPILE=1`` and the device scan forced, the same runs here (inductor's CPU code)."""
    import carousel.runners.scan as scan
    from carousel import _compiled
    from cell_zoo import make_cell, random_state

    monkeypatch.setenv(FORCE_ENV, "force")
    monkeypatch.setenv(_compiled.ENV, "1")
    cell = make_cell(name, 3, 4)
    x = torch.randn(3, 41, 3, dtype=torch.float64)
    assert_matches_reference(cell, x, random_state(cell, 3), [41, 17, 1], "scan")
    compiled = scan.device_coefficients(x.device, cell)
    assert isinstance(compiled, _compiled.Compiled) and not compiled.failed
    assert compiled is not scan.device_coefficients(x.device, make_cell("min_gru" if name == "min_lstm" else "min_lstm", 3, 4))
    monkeypatch.setenv(_compiled.ENV, "0")
    assert scan.device_coefficients(x.device, cell) is scan._coefficients


def test_the_triton_switch_on_a_cpu_asks_for_the_interpreter(monkeypatch):
    import carousel.runners.device_scan as device_scan

    monkeypatch.setattr(device_scan, "_triton_installed", lambda: True)  # as where triton is installed
    monkeypatch.setenv(FORCE_ENV, "triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    reason = device_scan_available(torch.zeros(1))
    assert reason is not None and "TRITON_INTERPRET=1" in reason and "cpu" in reason
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert device_scan_available(torch.zeros(1)) is None
