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


@pytest.mark.parametrize("name", ["lstm_layer_norm", "lstm_everything"])
def test_compiled_pointwise_step_equals_reference_loop_without_a_compile_per_step(name, kernels, monkeypatch,
                                                                                  assert_matches_reference):
    """On a GPU the step's pointwise part runs compiled (``step_kernels``); ``CAROUSEL_COMPILE=1``
    compiles it here too (inductor's CPU code): the run must equal the reference loop, and the compiled
    functions must be traced once for the whole run (a fresh trace per step would mean a compile per step)."""
    if kernels == "native":
        pytest.skip("the compiled C++ kernel takes plain and layer-norm LSTMs; this checks the Python step")
    from torch._dynamo.utils import counters

    from carousel import _compiled
    from carousel.cells import lstm_explicit

    monkeypatch.setenv(_compiled.ENV, "1")
    torch._dynamo.reset()
    counters.clear()
    cell = make_cell(name, I, H, dtype=torch.float64)
    x = torch.randn(B, 23, I, dtype=torch.float64)
    assert_matches_reference(cell, x, random_state(cell, B, dtype=torch.float64), [23, 9, 17, 1], "explicit")
    used = [c for (fn, _), c in _compiled._KEYED.items() if fn in (lstm_explicit.pointwise_forward, lstm_explicit.pointwise_backward)]
    assert len(used) >= 2 and not any(c.failed for c in used)
    assert 2 <= counters["stats"]["unique_graphs"] <= 4, dict(counters["stats"])  # forward and backward, 23 steps


def test_each_configuration_compiles_its_own_copy_of_the_code():
    """torch.compile keeps its variants and its recompile limit per code object: each key gets its own."""
    from carousel._compiled import compiled

    def f(x):
        return x + 1

    one, again, other = compiled(f, ("k", 1), "f"), compiled(f, ("k", 1), "f"), compiled(f, ("k", 2), "f")
    assert one is again and one is not other
    assert one.compiled._torchdynamo_orig_callable.__code__ is not other.compiled._torchdynamo_orig_callable.__code__
    assert one.compiled._torchdynamo_orig_callable.__code__ is not f.__code__


def test_code_that_fails_to_compile_warns_once_and_runs_as_written(monkeypatch):
    from carousel._compiled import Compiled

    compiled = Compiled(lambda v: v + 1, "the test's function")
    calls = []
    monkeypatch.setattr(compiled, "compiled", lambda v: calls.append(v) or (_ for _ in ()).throw(RuntimeError("no")))
    with pytest.warns(RuntimeWarning, match="compiling the test's function failed.*RuntimeError: no"):
        assert compiled(1) == 2
    assert compiled(2) == 3 and calls == [1]  # not tried again


def _zoneout_by_hand(cell, x, masks, lengths):
    """Zoneout around ``cell.cell`` step by step with the given keep masks (training) or rates (evaluation);
    a finished sequence's state is frozen and its outputs are zero, as every runner does."""
    inner = cell.cell
    state = inner.initial_state(x.shape[0], dtype=x.dtype)
    px, outputs = inner.project(x), []
    for t in range(x.shape[1]):
        new = inner.step(px[:, t], state)
        if cell.training:
            mixed = [torch.where(masks[name][t], old, fresh) for name, old, fresh in zip("hc", state, new)]
        else:
            mixed = [p * old + (1 - p) * fresh for p, old, fresh in zip((cell.p_h, cell.p_c), state, new)]
        alive = (t < lengths).unsqueeze(1)
        state = type(new)(*(torch.where(alive, m, s) for m, s in zip(mixed, state)))
        outputs.append(torch.where(alive, state.h, 0.0))
    return torch.stack(outputs, 1), state


@pytest.mark.parametrize("training", [True, False], ids=["training", "evaluation"])
@pytest.mark.parametrize("name", ["lstm", "lstm_layer_norm", "lstm_everything"])
def test_zoneout_on_the_explicit_backend_equals_zoneout_step_by_step(name, training, kernels):
    if kernels == "native":
        pytest.skip("zoneout's step runs in Python (the compiled C++ kernel has no zoneout)")
    torch.manual_seed(1)
    cell = C.Zoneout(make_cell(name, I, H, dtype=torch.float64), p_h=0.3, p_c=0.5).train(training)
    assert resolve_backend(cell, torch.zeros(1, 1, I, dtype=torch.float64), "auto").name == "explicit"
    Tz, lengths = 9, torch.tensor([9, 3, 7, 1])
    masks = {"h": torch.rand(Tz, B, cell.state_sizes[0]) < 0.3, "c": torch.rand(Tz, B, H) < 0.5}
    cell.keep_masks = lambda steps, state, like: {k: m[:steps] for k, m in masks.items()}  # the same draws for both
    x = torch.randn(B, Tz, I, dtype=torch.float64, requires_grad=True)
    out, final = run(cell, x, None, lengths, backend="explicit")
    ref, ref_final = _zoneout_by_hand(cell, x, masks, lengths)
    w = torch.randn_like(ref)
    leaves = [x, *cell.parameters()]
    grads = torch.autograd.grad((out * w).sum() + final.c.sum(), leaves)
    ref_grads = torch.autograd.grad((ref * w).sum() + ref_final.c.sum(), leaves)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    for mine, theirs in zip(grads, ref_grads):
        torch.testing.assert_close(mine, theirs, rtol=1e-9, atol=1e-11)


def test_zoneout_keep_masks_follow_the_rates_and_are_fresh_every_run():
    cell = C.Zoneout(C.LSTMCell(3, 64), p_h=0.2, p_c=0.6).train()
    state = cell.initial_state(32)
    first, second = cell.keep_masks(50, state, torch.zeros(1)), cell.keep_masks(50, state, torch.zeros(1))
    assert first["h"].shape == (50, 32, 64) and first["h"].dtype == torch.bool
    assert abs(first["h"].float().mean() - 0.2) < 0.02 and abs(first["c"].float().mean() - 0.6) < 0.02
    assert not torch.equal(first["h"], second["h"])
    assert "c" not in C.Zoneout(C.LSTMCell(3, 4), p_h=0.2, p_c=0.0).keep_masks(5, cell.initial_state(2), torch.zeros(1))


def test_recurrent_dropout_around_zoneout_runs_the_reference_loop():
    """Inside Zoneout the reference mixes the masked h_{t-1} into the state; the explicit step only masks
    what the recurrence reads, so RecurrentDropout(Zoneout(LSTM)) offers no explicit step (the other
    nesting, Zoneout(RecurrentDropout(LSTM)), does, and agrees)."""
    outer_rd = RecurrentDropout(C.Zoneout(C.LSTMCell(3, 4), p_h=0.2), p=0.3).train()
    assert outer_rd.explicit_step() is None
    assert resolve_backend(outer_rd, torch.zeros(2, 5, 3), "auto").name == "reference"
    assert C.Zoneout(RecurrentDropout(C.LSTMCell(3, 4), p=0.3), p_h=0.2).explicit_step() is not None


def test_zoneout_around_recurrent_dropout_equals_the_reference_loop(kernels):
    if kernels == "native":
        pytest.skip("zoneout's step runs in Python")
    torch.manual_seed(3)
    cell = C.Zoneout(RecurrentDropout(C.LSTMCell(I, H, dtype=torch.float64), p=0.4), p_h=1.0, p_c=0.0).train()
    x = torch.randn(B, T, I, dtype=torch.float64, requires_grad=True)
    results = []
    for backend in ("explicit", "reference"):  # p_h = 1, p_c = 0: no zoneout draws; the same dropout mask
        torch.manual_seed(5)
        out, final = run(cell, x, None, None, backend=backend)
        results.append([out, final.c, *torch.autograd.grad(out.sum() + final.c.sum(), [x, *cell.parameters()])])
    for mine, theirs in zip(*results):
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-12)


def test_a_backward_that_fails_to_compile_falls_back_on_the_first_call():
    """torch compiles a backward graph when backward() reaches it; Compiled runs that once on copies at
    the first call that records a gradient, so that a failure there falls back too."""
    from carousel._compiled import Compiled

    class Breaks(torch.autograd.Function):
        @staticmethod
        def forward(ctx, v):
            return v * 2

        @staticmethod
        def backward(ctx, g):
            raise RuntimeError("this backward cannot compile")

    compiled = Compiled(lambda v: v * 2, "the test's function")
    compiled.compiled = Breaks.apply
    v = torch.ones(3, requires_grad=True)
    with pytest.warns(RuntimeWarning, match="this backward cannot compile"):
        out = compiled(v)
    assert compiled.failed
    (grad,) = torch.autograd.grad(out.sum(), v)  # the code as written: its backward works
    assert torch.equal(grad, torch.full((3,), 2.0))
    with torch.no_grad():
        assert torch.equal(Compiled(lambda v: v + 1, "f")(v), v + 1)  # no gradient recorded: no probe
