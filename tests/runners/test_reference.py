"""The runner entry point: validation at the boundary and backend resolution."""

from __future__ import annotations

import warnings

import pytest
import torch

import carousel as C
import carousel.runners.backend as backend_module
from carousel.runners import backend_names, resolve_backend
from cell_zoo import make_cell

B, T, I, H = 3, 5, 3, 4


@pytest.fixture
def lstm():
    return make_cell("lstm", I, H)


def test_input_errors_name_expected_and_given(lstm):
    x = torch.randn(B, T, I, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"expected input of shape \(B, T, 3\), got \(3, 5, 16\)"):
        C.run(lstm, torch.randn(B, T, 16, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"expected input of shape \(B, T, 3\), got \(5, 3\)"):
        C.run(lstm, torch.randn(T, I))
    with pytest.raises(ValueError, match="at least one time step"):
        C.run(lstm, torch.randn(B, 0, I))
    with pytest.raises(ValueError, match="floating-point input"):
        C.run(lstm, torch.ones(B, T, I, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        C.run(lstm, [[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match=r"expected lengths of shape \(3,\), one per sequence in the batch, got \(2,\)"):
        C.run(lstm, x, lengths=[5, 5])
    with pytest.raises(ValueError, match="at least 1, got a length of 0"):
        C.run(lstm, x, lengths=[5, 0, 5])
    with pytest.raises(ValueError, match="at most the padded length T=5, got a length of 6"):
        C.run(lstm, x, lengths=[5, 6, 5])
    with pytest.raises(TypeError, match="integer lengths.*got a tensor of dtype torch.float32"):
        C.run(lstm, x, lengths=torch.tensor([5.0, 4.0, 3.0]))
    with pytest.raises(TypeError, match="integer lengths, got float 4.0 at position 1"):
        C.run(lstm, x, lengths=[5, 4.0, 3])


def test_state_errors_name_expected_and_given(lstm):
    x = torch.randn(B, T, I, dtype=torch.float64)
    h = torch.zeros(B, H, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"expected a LSTMState\(h: \(B=3, 4\), c: \(B=3, 4\)\) for LSTMCell, got a tensor"):
        C.run(lstm, x, h)
    with pytest.raises(ValueError, match=r"expected state field 'c' of shape \(3, 4\) for LSTMCell, got \(2, 4\)"):
        C.run(lstm, x, (h, torch.zeros(2, H, dtype=torch.float64)))
    with pytest.raises(ValueError, match=r"got tuple\(\(3, 4\)\)"):
        C.run(lstm, x, (h,))
    with pytest.raises(ValueError, match=r"expected a one-step input of shape \(B, 3\), got \(3, 5, 3\)"):
        lstm(x)
    # a plain tuple or, for one-field states, a bare tensor is accepted and converted
    out_tuple, s = C.run(lstm, x, (h, h))
    assert isinstance(s, C.LSTMState)
    gru = make_cell("gru", I, H)
    out_bare, _ = C.run(gru, x, h + 0.5)
    out_typed, _ = C.run(gru, x, C.GRUState(h + 0.5))
    torch.testing.assert_close(out_bare, out_typed)


def test_backend_resolution_is_explicit(lstm):
    x = torch.randn(B, T, I, dtype=torch.float64)
    assert backend_names() == ("auto", "fused", "scan", "explicit", "reference")
    assert resolve_backend(lstm, x, "explicit").name == "explicit"
    with pytest.raises(ValueError, match="unknown backend 'magic'; expected one of: 'auto'"):
        C.run(lstm, x, backend="magic")
    torch.testing.assert_close(C.run(lstm, x, backend="explicit")[0], C.run(lstm, x, backend="auto")[0])


def test_the_old_name_loop_still_runs_with_a_warning(lstm, monkeypatch):
    """'loop' was the explicit backward with the reference loop as its fallback; it warns and runs the same."""
    x = torch.randn(B, T, I, dtype=torch.float64)
    gru = C.GRUCell(I, H, variant="cho", dtype=torch.float64)
    monkeypatch.setattr(backend_module, "_WARNED", set())
    with pytest.warns(FutureWarning, match="now called 'explicit'"):
        assert resolve_backend(lstm, x, "loop").name == "explicit"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process
        assert resolve_backend(gru, x, "loop").name == "reference"


def test_lengths_as_list_tensor_or_full_are_equivalent(lstm):
    x = torch.randn(B, T, I, dtype=torch.float64)
    a = C.run(lstm, x, lengths=[5, 2, 3])[0]
    b = C.run(lstm, x, lengths=torch.tensor([5, 2, 3], dtype=torch.int32))[0]
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(C.run(lstm, x, lengths=[T] * B)[0], C.run(lstm, x)[0])


def test_backward_memory_is_linear_in_sequence_length():
    """Indexing px[:, t] of a tensor that requires grad makes the backward allocate a full-size
    gradient per step (quadratic in T); the runner must stay linear: 4x the steps, ~4x the bytes
    (a per-step-indexing loop measures ~15x here)."""
    from torch.profiler import ProfilerActivity, profile

    cell = make_cell("elman_tanh", I, H, dtype=torch.float32)
    allocated = []
    for steps in (50, 200):
        x = torch.randn(2, steps, I, requires_grad=True)
        out, _ = C.run(cell, x)
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            out.sum().backward()
        allocated.append(sum(e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0))
    assert allocated[1] < 6 * allocated[0]
