"""The device scan on CUDA (carousel.runners.device_scan: carousel's Triton kernels, carousel.runners.triton_scan)
against the chunked scan in float64 on the CPU, forward and every gradient, at several lengths in one
process (no recompilation per length). These run only where torch sees a GPU;
tests/runners/test_device_scan.py and test_triton_scan.py check the same math on the CPU.
"""

from __future__ import annotations

import pytest
import torch

from carousel.runners.device_scan import associative_linear_scan, device_scan_available
from carousel.runners.scan import linear_scan

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; torch sees none here")

CUDA = torch.device("cuda")


def _inputs(B, T, H, seed):
    """minGRU-like coefficients in float64 on the CPU: a in (0, 1), b and h0 normal; w weighs the loss."""
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(B, T, H, generator=g, dtype=torch.float64)
    b = torch.randn(B, T, H, generator=g, dtype=torch.float64)
    h0 = torch.randn(B, H, generator=g, dtype=torch.float64)
    w = torch.randn(B, T, H, generator=g, dtype=torch.float64)
    return a, b, h0, w


def _value_and_grads(fn, tensors, w):
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    h = fn(*leaves)
    grads = torch.autograd.grad((w.to(h) * h).sum(), leaves)
    return [h.detach(), *grads]


def _reference(a, b, h0, w, reverse):
    """The chunked scan in float64 on the CPU (itself checked against a plain loop in the CPU suite)."""
    if reverse:
        return _value_and_grads(lambda a, b, h0: linear_scan(a.flip(1), b.flip(1), h0).flip(1), (a, b, h0), w)
    return _value_and_grads(linear_scan, (a, b, h0), w)


def test_the_device_scan_is_available_on_this_gpu():
    assert device_scan_available(torch.zeros(1, device=CUDA)) is None


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("T", [4096, 1237, 1])  # a power of two, a ragged length, one step
def test_device_scan_in_float32_equals_the_float64_reference(T, reverse):
    B, H = 16, 128
    a, b, h0, w = _inputs(B, T, H, seed=T + reverse)
    expected = _reference(a, b, h0, w, reverse)
    on_gpu = [t.to(CUDA, torch.float32) for t in (a, b, h0)]
    got = _value_and_grads(lambda a, b, h0: associative_linear_scan(a, b, h0, reverse=reverse), on_gpu, w.to(CUDA))
    for name, mine, ref in zip(("h", "grad a", "grad b", "grad h0"), got, expected):
        assert mine.device.type == CUDA.type and mine.dtype == torch.float32
        scale = ref.abs().max().clamp_min(1.0)  # g grows like 1 / (1 - a) where a is near 1
        torch.testing.assert_close(
            mine.cpu().double() / scale, ref / scale, rtol=1e-4, atol=2e-5, msg=lambda m, n=name: f"{n}: {m}"
        )


def test_device_scan_in_float64_is_exact():
    a, b, h0, w = _inputs(4, 333, 8, seed=1)
    expected = _reference(a, b, h0, w, False)
    got = _value_and_grads(associative_linear_scan, [t.to(CUDA) for t in (a, b, h0)], w.to(CUDA))
    for mine, ref in zip(got, expected):
        torch.testing.assert_close(mine.cpu(), ref, rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("reverse", [False, True])
def test_every_launch_configuration_of_the_triton_scan_equals_the_reference(reverse):
    """Each configuration the tuner may pick (chunked ones included), fixed, forward and backward."""
    from carousel.runners import triton_scan

    B, T, H = 3, 2600, 40  # 2600: more than two chunks of every chunked configuration, the last one partial
    a, b, h0, w = _inputs(B, T, H, seed=7 + reverse)
    expected = _reference(a, b, h0, w, reverse)
    a_, b_, h0_, w_ = (t.to(CUDA) for t in (a, b, h0, w))
    for config in triton_scan.CONFIGS:
        h = triton_scan.forward(a_, b_, h0_, reverse, config)
        got = [h, *triton_scan.backward(a_, h, h0_, w_, reverse, config)]
        for name, mine, ref in zip(("h", "grad a", "grad b", "grad h0"), got, expected):
            torch.testing.assert_close(mine.cpu(), ref, rtol=1e-10, atol=1e-11, msg=lambda m, n=name: f"{config} {n}: {m}")
