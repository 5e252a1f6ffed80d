"""The explicit backend's GPU-side pieces, checked on the CPU: the LSTM step's pointwise code compiled
(``carousel._compiled``; inductor's CPU backend stands in for CUDA's) and zoneout's explicit step
(``ZoneoutExplicitStep``), against the reference loop and against zoneout step by step. The
compiled C++ LSTM kernel is off here: these are the Python step's paths."""

from __future__ import annotations

import pytest
import torch

import carousel as C
from carousel.regularize import RecurrentDropout
from carousel.runners import native, resolve_backend, run
from cell_zoo import make_cell, random_state

B, T, I, H = 4, 7, 3, 5


@pytest.fixture(autouse=True)
def python_step():
    with native.use_native(False):
        yield


@pytest.mark.parametrize("name", ["lstm_layer_norm", "lstm_everything", "zoneout"])
def test_compiled_pointwise_step_equals_reference_loop_without_a_compile_per_step(name, monkeypatch, assert_matches_reference):
    """On a GPU the step's pointwise part runs compiled (``step_kernels``); ``CAROUSEL_COMPILE=1``
    compiles it here too (inductor's CPU code): the run must equal the reference loop, and the compiled
    functions must be traced once for the whole run (a fresh trace per step would mean a compile per step)."""
    from torch._dynamo.utils import counters

    from carousel import _compiled
    from carousel.cells import lstm_explicit

    monkeypatch.setenv(_compiled.ENV, "1")
    torch._dynamo.reset()
    counters.clear()
    if name == "zoneout":  # evaluation mode (no draws): the step also keeps the c entering each step
        cell = C.Zoneout(make_cell("lstm_peephole", I, H, dtype=torch.float64), p_h=0.3, p_c=0.5).eval()
    else:
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
def test_zoneout_on_the_explicit_backend_equals_zoneout_step_by_step(name, training):
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


def test_zoneout_around_recurrent_dropout_equals_the_reference_loop():
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


def test_a_bad_compile_setting_is_refused_naming_the_values(monkeypatch):
    from carousel import _compiled

    monkeypatch.setenv(_compiled.ENV, "yes")
    with pytest.raises(ValueError, match="CAROUSEL_COMPILE must be 0.*1.*'yes' was given"):
        run(C.LSTMCell(I, H, peephole=True), torch.randn(B, T, I), backend="explicit")
    for setting, cpu in (("0", False), ("1", True), ("", False)):
        monkeypatch.setenv(_compiled.ENV, setting)
        assert _compiled.compiling_on(torch.device("cpu")) is cpu
