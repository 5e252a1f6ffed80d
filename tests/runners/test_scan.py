"""The scan backend against the reference loop and a plain recurrence, including its custom backward."""

from __future__ import annotations

import pytest
import torch

import carousel as C
from carousel.runners import resolve_backend, run
from carousel.runners import native
from carousel.runners.scan import CHUNK, linear_scan, run_scan
from cell_zoo import make_cell, random_state

B, I, H = 3, 3, 4


@pytest.fixture(autouse=True, params=["native", "eager"])
def kernels(request):
    """Every test here runs twice: with carousel's compiled CPU kernels (where they build; see
    test_native.py, which fails where a compiler is present and they do not) and with the eager path."""
    if request.param == "native" and native.native_unavailable():
        pytest.skip(f"compiled kernels: {native.native_unavailable()}")
    with native.use_native(request.param == "native"):
        yield request.param


def sequential(a, b, h0):
    """The definition, one step at a time."""
    h, out = h0, []
    for a_t, b_t in zip(a.unbind(1), b.unbind(1)):
        h = a_t * h + b_t
        out.append(h)
    return torch.stack(out, 1)


@pytest.mark.parametrize("T", [1, 5, 2 * CHUNK, 2 * CHUNK + 3, 5 * CHUNK + 7])
def test_linear_scan_equals_sequential_recurrence(T):
    g = torch.Generator().manual_seed(T)
    a = torch.rand(2, T, 3, generator=g, dtype=torch.float64) * 1.2  # some |a| > 1 too
    b = torch.randn(2, T, 3, generator=g, dtype=torch.float64)
    h0 = torch.randn(2, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(linear_scan(a, b, h0), sequential(a, b, h0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("T", [4, 2 * CHUNK + 5])
def test_linear_scan_gradcheck_float64(T):
    g = torch.Generator().manual_seed(0)
    a = (torch.rand(2, T, 3, generator=g, dtype=torch.float64) * 1.1).requires_grad_()
    b = torch.randn(2, T, 3, generator=g, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(linear_scan, (a, b, h0))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("lengths", [None, [75, 33, 1]], ids=["full", "lengths"])
@pytest.mark.parametrize("name", ["min_gru", "min_lstm"])
def test_scan_equals_loop(name, lengths, dtype, assert_matches_reference):
    cell = make_cell(name, I, H, dtype=dtype)
    x = torch.randn(B, 75, I, dtype=dtype)  # more than one chunk, with a ragged tail
    state = random_state(cell, B, dtype=dtype)
    assert resolve_backend(cell, x, "auto").name == "scan"
    out, _ = assert_matches_reference(cell, x, state, lengths, "scan")
    if lengths is not None:
        assert torch.count_nonzero(out[1, 33:]) == 0 and torch.count_nonzero(out[2, 1:]) == 0


@pytest.mark.parametrize("lengths", [None, [75, 40, 9]], ids=["full", "lengths"])
def test_scan_in_several_blocks_equals_one_block(lengths):
    """Blocks carry the state exactly: small blocks give the one-block answer, gradients included."""
    cell = make_cell("min_lstm", I, H)
    x = torch.randn(B, 75, I, dtype=torch.float64, requires_grad=True)
    s0 = random_state(cell, B)
    L = None if lengths is None else torch.tensor(lengths)
    results = []
    for steps in (1000, 2 * CHUNK, 5):
        out, final = run_scan(cell, x, s0, L, steps=steps)
        grad_x, grad_w = torch.autograd.grad((out * out).sum() + final.h.sum(), (x, cell.weight_ih))
        results.append((out, final.h, grad_x, grad_w))
    for other in results[1:]:
        for u, v in zip(results[0], other):
            torch.testing.assert_close(u, v, rtol=1e-12, atol=1e-12)


def test_scan_two_chunks_with_state_passed():
    cell = make_cell("min_gru", I, H)
    x = torch.randn(B, 80, I, dtype=torch.float64)
    s0 = random_state(cell, B)
    out, final = run(cell, x, s0, backend="scan")
    out1, mid = run(cell, x[:, :37], s0, backend="scan")
    out2, final2 = run(cell, x[:, 37:], mid, backend="scan")
    torch.testing.assert_close(torch.cat([out1, out2], 1), out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(final2.h, final.h, rtol=1e-12, atol=1e-12)


def test_scan_is_exact_where_a_log_space_scan_underflows():
    """Forget coefficients near zero (a = 1 - z with z -> 1) are exact here: no log, no division."""
    cell = C.MinGRUCell(I, H, dtype=torch.float64)
    with torch.no_grad():
        cell.bias_ih[:H].fill_(60.0)  # z = sigmoid(60 + ...): a = 1 - z is about 1e-26
    x = torch.randn(B, 70, I, dtype=torch.float64)
    out, _ = run(cell, x, backend="scan")
    ref, _ = run(cell, x, backend="reference")
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["lstm", "gru", "elman_tanh", "antisymmetric"])
def test_scan_refuses_and_says_why(name):
    cell = make_cell(name, I, H)
    x = torch.randn(B, 5, I, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"backend 'scan' cannot run \w+: scan needs a cell whose recurrence is linear in h"):
        run(cell, x, backend="scan")


@pytest.mark.parametrize("name", ["min_gru", "min_lstm"])
def test_explicit_coefficients_gradcheck_float64(name):
    """The written-out coefficient derivatives, through blocks, chunks and lengths."""
    from torch.func import functional_call

    cell = make_cell(name, 2, 3)
    assert cell.explicit_coefficients() is not None
    names, values = zip(*cell.named_parameters())
    x = torch.randn(2, 2 * CHUNK + 5, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([2 * CHUNK + 5, CHUNK + 3])

    class Scan(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = cell

        def forward(self, x, h0):
            out, final = run_scan(self.cell, x, self.cell.state_type(h0), lengths, steps=2 * CHUNK + 1)
            return out, final.h

    def f(x, h0, *params):
        return functional_call(Scan(), {f"cell.{k}": v for k, v in zip(names, params)}, (x, h0))

    params = (v.detach().clone().requires_grad_() for v in values)
    assert torch.autograd.gradcheck(f, (x, h0, *params), fast_mode=True)


def test_linear_cell_without_explicit_coefficients_takes_the_generic_scan(assert_matches_reference):
    """A user's linear-recurrence cell needs only coefficients(); autograd differentiates them."""

    class Leaky(C.MinGRUCell):
        def coefficients(self, px):
            k, v = px.chunk(2, dim=-1)
            z = 0.5 * torch.sigmoid(k)
            return 1 - z, z * torch.tanh(v)

    torch.manual_seed(0)
    cell = Leaky(I, H, dtype=torch.float64)
    assert cell.explicit_coefficients() is None
    x = torch.randn(B, 75, I, dtype=torch.float64)
    assert_matches_reference(cell, x, random_state(cell, B), [75, 40, 2], "scan")
