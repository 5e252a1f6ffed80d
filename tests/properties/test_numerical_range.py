"""Kind 3 of the faults: numerical range. Every cell's step, and every runner, stays finite for inputs
and states of magnitude up to 1e4 in float32 and bfloat16 (where the math is finite, as it is for
every carousel cell at these magnitudes); minLSTM's normalised gates survive underflowing sigmoids."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import carousel as C
from cell_zoo import CELLS, make_cell

I, H = 3, 4
DTYPES = [torch.float32, torch.bfloat16]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    name=st.sampled_from(sorted(CELLS)),
    dtype=st.sampled_from(DTYPES),
    x_scale=st.sampled_from([1.0, 1e2, 1e3, 1e4]),
    h_scale=st.sampled_from([0.0, 1.0, 1e2, 1e4]),
    sign=st.sampled_from([1.0, -1.0]),
    seed=st.integers(0, 2**16),
)
def test_one_step_stays_finite(name, dtype, x_scale, h_scale, sign, seed):
    cell = make_cell(name, I, H, dtype=torch.float32, seed=seed % 7).to(dtype)
    g = torch.Generator().manual_seed(seed)
    x = (sign * x_scale * torch.rand(2, I, generator=g)).to(dtype)
    state = cell.state_type(*(h_scale * torch.randn(2, n, generator=g).to(dtype) for n in cell.state_sizes))
    with torch.no_grad():
        new = cell.step(cell.project(x), state)
    for field, value in zip(new._fields, new):
        assert bool(torch.isfinite(value).all()), f"{name} {dtype} |x|={x_scale} |h|={h_scale}: {field} not finite"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(CELLS))
def test_every_runner_stays_finite_at_1e4(name, dtype):
    cell = make_cell(name, I, H, dtype=torch.float32).to(dtype)
    x = (1e4 * torch.randn(2, 6, I, generator=torch.Generator().manual_seed(1))).to(dtype)
    for backend in C.runners.backend_names()[1:]:
        try:
            out, final = C.run(cell, x, backend=backend, lengths=[6, 3])
        except ValueError:  # this backend does not serve the cell (the message says why)
            continue
        assert bool(torch.isfinite(out).all()) and all(bool(torch.isfinite(f).all()) for f in final), f"{name} on {backend}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", ["scan", "reference"])
def test_min_lstm_far_below_zero_is_minus_one_hundred(dtype, backend):
    """MinLSTMCell(1, 1), weights 1, bias 0, x = -200: f = i = sigmoid(-200) underflow to 0, yet
    f' = i' = 1/2 and h = (0 + (-200)) / 2 = -100."""
    cell = C.MinLSTMCell(1, 1)
    with torch.no_grad():
        cell.weight_ih.fill_(1.0)
        cell.bias_ih.zero_()
    out, _ = C.run(cell.to(dtype), torch.full((1, 1, 1), -200.0, dtype=dtype), backend=backend)
    assert out.item() == -100.0
    x = torch.full((1, 1, 1), -200.0, dtype=torch.float64, requires_grad=True)
    out, _ = C.run(cell.double(), x, backend=backend)
    out.sum().backward()
    assert bool(torch.isfinite(x.grad).all()) and bool(torch.isfinite(cell.weight_ih.grad).all())
