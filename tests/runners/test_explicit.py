"""The explicit backend (explicit backward through time) against the reference loop, and its gradcheck."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

import carousel as C
from carousel.regularize import RecurrentDropout
from carousel.runners import native, resolve_backend, run
from carousel.runners.explicit import explicit_unsupported, run_explicit
from cell_zoo import make_cell, random_state


@pytest.fixture(autouse=True, params=["native", "eager"])
def kernels(request):
    """Every test here runs twice: with carousel's compiled LSTM kernel (plain, layer-norm and masked LSTM
    cells; see test_native.py, which fails where a compiler is present and it does not build) and without."""
    if request.param == "native" and native.native_unavailable():
        pytest.skip(f"compiled kernels: {native.native_unavailable()}")
    with native.use_native(request.param == "native"):
        yield request.param

B, T, I, H = 4, 7, 3, 5
EXPLICIT = ["lstm", "lstm_layer_norm", "lstm_peephole", "lstm_no_forget_gate", "lstm_peephole_no_forget",
            "lstm_proj", "lstm_everything"]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("lengths", [None, [7, 3, 5, 1]], ids=["full", "lengths"])
@pytest.mark.parametrize("name", EXPLICIT)
def test_explicit_step_equals_reference_loop(name, lengths, dtype, assert_matches_reference):
    cell = make_cell(name, I, H, dtype=dtype)
    x = torch.randn(B, T, I, dtype=dtype)
    assert explicit_unsupported(cell, x) is None
    out, _ = assert_matches_reference(cell, x, random_state(cell, B, dtype=dtype), lengths, "explicit")
    if lengths is not None:
        assert torch.count_nonzero(out[3, 1:]) == 0 and torch.count_nonzero(out[3, 0]) > 0


@pytest.mark.parametrize("name", ["lstm_layer_norm", "lstm_everything"])
def test_explicit_step_gradcheck_float64(name):
    cell = make_cell(name, 2, 3)
    names, values = zip(*cell.named_parameters())
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    s0 = [s.requires_grad_() for s in random_state(cell, 2)]
    lengths = torch.tensor([4, 2])

    def f(x, h0, c0, *params):
        out, final = functional_call(
            _Explicit(cell), {f"cell.{k}": v for k, v in zip(names, params)}, (x, C.LSTMState(h0, c0), lengths)
        )
        return (out, *final)

    inputs = (x, *s0, *(v.detach().clone().requires_grad_() for v in values))
    assert torch.autograd.gradcheck(f, inputs, atol=1e-6, rtol=1e-5)


class _Explicit(torch.nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.cell = cell

    def forward(self, x, state, lengths):
        return run_explicit(self.cell, x, state, lengths)


def test_inference_without_grad_equals_reference():
    cell = make_cell("lstm_layer_norm", I, H)
    x = torch.randn(B, T, I, dtype=torch.float64)
    with torch.no_grad():
        out, final = run(cell, x, backend="explicit", lengths=[7, 2, 6, 7])
        ref, ref_final = run(cell, x, backend="reference", lengths=[7, 2, 6, 7])
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(final.c, ref_final.c)


def test_outputs_may_be_changed_in_place_as_with_the_reference():
    cell = make_cell("lstm_layer_norm", I, H)
    x = torch.randn(B, T, I, dtype=torch.float64)
    grads = []
    for backend in ("explicit", "reference"):
        cell.zero_grad()
        out, final = run(cell, x, backend=backend)
        out.mul_(2.0)
        (out.sum() + final.c.square().sum()).backward()
        grads.append([p.grad.clone() for p in cell.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_cells_without_an_explicit_step_are_refused_and_auto_takes_the_reference_loop():
    for name in ("gru_cho", "antisymmetric", "elman_identity"):
        cell = make_cell(name, I, H)
        x = torch.randn(B, T, I, dtype=torch.float64)
        assert "has no explicit step" in explicit_unsupported(cell, x)
        with pytest.raises(ValueError, match=r"backend 'explicit' cannot run .*has no explicit step"):
            run(cell, x, backend="explicit")
        assert resolve_backend(cell, x, "auto").name == "reference"
    assert resolve_backend(make_cell("lstm_layer_norm", I, H), x, "auto").name == "explicit"


def test_reference_backend_supports_double_backward():
    cell = make_cell("lstm_layer_norm", I, H)
    x = torch.randn(B, T, I, dtype=torch.float64, requires_grad=True)
    out, _ = run(cell, x, backend="reference")
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    g.square().sum().backward()
    assert cell.weight_hh.grad is not None


@pytest.mark.parametrize("lengths", [None, [7, 3, 5, 1]], ids=["full", "lengths"])
@pytest.mark.parametrize("name", ["lstm", "lstm_layer_norm", "lstm_proj", "lstm_everything"])
def test_recurrent_dropout_explicit_equals_reference(name, lengths, run_and_grads):
    """RecurrentDropout(LSTM) runs on the explicit step with its per-sequence mask: same mask, same numbers."""
    cell = RecurrentDropout(make_cell(name, I, H), p=0.4).train()
    x = torch.randn(B, T, I, dtype=torch.float64)
    s0 = random_state(cell, B)
    L = None if lengths is None else torch.tensor(lengths)
    assert resolve_backend(cell, x, "auto").name == "explicit" and explicit_unsupported(cell, x) is None
    results = []
    for backend in ("explicit", "reference"):
        torch.manual_seed(5)
        results.append(run_and_grads(lambda c, x, s, L: run(c, x, s, L, backend=backend), cell, x, s0, L))
    (out, final, grads), (ref_out, ref_final, ref_grads) = results
    torch.testing.assert_close(out, ref_out)
    for a, b in zip(final, ref_final):
        torch.testing.assert_close(a, b)
    for k in ref_grads:
        torch.testing.assert_close(grads[k], ref_grads[k], msg=k)
    # the mask really thins the recurrence: without it the outputs differ
    torch.manual_seed(5)
    plain, _ = run(cell.cell, x, s0, L, backend="reference")
    assert not torch.allclose(plain, out)


def test_reused_buffers_never_mix_runs():
    """A live run keeps its buffers; a finished run's buffers serve the next run of that shape."""
    cell = make_cell("lstm_layer_norm", I, H)
    x1, x2 = torch.randn(B, T, I, dtype=torch.float64), torch.randn(B, T, I, dtype=torch.float64)
    params = list(cell.parameters())

    def grads(out):
        return torch.autograd.grad((out * out).sum(), params)

    ref1 = grads(run(cell, x1, backend="reference")[0])
    out1, _ = run(cell, x1, backend="explicit")  # alive while a second run of the same shape goes
    out2, _ = run(cell, x2, backend="explicit")
    for a, b in zip(grads(out1), ref1):
        torch.testing.assert_close(a, b)
    del out1, out2
    for _ in range(2):  # now from reused buffers
        for a, b in zip(grads(run(cell, x1, backend="explicit")[0]), ref1):
            torch.testing.assert_close(a, b)
