"""Captured explicit runs (carousel.runners.graphs) on the CPU, through the recorder's test double.

``ReplayRecorder`` keeps the callable a CUDA capture would record and runs it again at every replay,
on the same static buffers; so everything but the device itself is tested here: the cache keys, the
copies in and out, the captured masked path for lengths, busy entries and the switches. Every result
is compared with the uncaptured explicit run (the Python loop, compiled kernels off) in float64.
tests/gpu/test_graphs_cuda.py does the same with real CUDA graphs.
"""

from __future__ import annotations

import pytest
import torch

import carousel as C
from carousel.regularize import RecurrentDropout
from carousel.runners import graphs, native, run
from carousel.runners.graphs import ReplayRecorder, graph_recorder, use_cuda_graphs
from cell_zoo import make_cell, random_state

B, T, I, H = 3, 6, 3, 4
CONFIGS = ["lstm", "lstm_layer_norm", "lstm_peephole", "lstm_no_forget_gate", "lstm_everything", "recurrent_dropout"]


@pytest.fixture(autouse=True)
def fresh_cache():
    graphs.clear_graphs()
    yield
    graphs.clear_graphs()


def _cell(name):
    if name == "recurrent_dropout":
        return RecurrentDropout(make_cell("lstm_layer_norm", I, H), p=0.4).train()
    return make_cell(name, I, H)


def _run(cell, x, s0, lengths, recorder=None, seed=11, loss_seed=(5, 5)):
    """Outputs, final state and the gradients of x, of the initial state and of every parameter, for a
    random weighting of outputs and of the final state (drawn from the two ``loss_seed``); graphed with ``recorder``,
    else uncaptured."""
    x = x.detach().clone().requires_grad_()
    s0 = cell.state_type(*(s.detach().clone().requires_grad_() for s in s0))
    cell.zero_grad(set_to_none=True)
    block = use_cuda_graphs(recorder=recorder) if recorder is not None else use_cuda_graphs(False)
    torch.manual_seed(seed)  # the same recurrent-dropout mask on both paths
    with block, native.use_native(False):
        out, final = run(cell, x, s0, lengths, backend="explicit")
    g = torch.Generator().manual_seed(loss_seed[0])
    loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum()
    g = torch.Generator().manual_seed(loss_seed[1])
    for f in final:
        loss = loss + (f * torch.randn(f.shape, generator=g, dtype=f.dtype)).sum()
    loss.backward()
    grads = [x.grad, *(s.grad for s in s0), *(p.grad for p in cell.parameters())]
    return [out.detach(), *(f.detach() for f in final)], grads


def _assert_same(a, b):
    (out_a, grads_a), (out_b, grads_b) = a, b
    for u, v in zip(out_a, out_b):
        torch.testing.assert_close(u, v, rtol=1e-10, atol=1e-12)
    assert len(grads_a) == len(grads_b) and all(g is not None for g in grads_a + grads_b)
    for u, v in zip(grads_a, grads_b):
        torch.testing.assert_close(u, v, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("lengths", [None, [6, 2, 4]], ids=["full", "lengths"])
@pytest.mark.parametrize("name", CONFIGS)
def test_graphed_run_equals_the_uncaptured_explicit_run(name, lengths):
    cell = _cell(name)
    x = torch.randn(B, T, I, dtype=torch.float64)
    s0 = random_state(cell, B)
    L = None if lengths is None else torch.tensor(lengths)
    recorder = ReplayRecorder()
    graphed = _run(cell, x, s0, L, recorder)
    assert (recorder.captures, recorder.replays) == (2, 2)  # forward and backward graphs, each replayed once
    _assert_same(graphed, _run(cell, x, s0, L))
    if lengths is not None:  # past its length a sequence's output is zero and its state frozen
        assert torch.count_nonzero(graphed[0][0][1, 2:]) == 0 and torch.count_nonzero(graphed[0][0][1, :2]) > 0

    # a second call: new inputs, new state, changed weights (and a new dropout mask): the new right answer,
    # replayed from the same graphs
    with torch.no_grad():
        for p in cell.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x2, s2 = torch.randn_like(x), random_state(cell, B, seed=9)
    again = _run(cell, x2, s2, L, recorder, seed=12, loss_seed=(6, 7))
    assert (recorder.captures, recorder.replays) == (2, 4)
    _assert_same(again, _run(cell, x2, s2, L, seed=12, loss_seed=(6, 7)))
    assert not torch.allclose(again[0][0], graphed[0][0])


@pytest.mark.parametrize("changed", ["x", "state", "weights", "mask", "lengths", "grad_out", "grad_final"])
def test_each_static_input_is_refreshed_on_every_call(changed):
    """Between two calls only one input changes (for the backward: the gradient reaching the outputs or
    the final state); the replay must see it (a stale static buffer fails here)."""
    cell = RecurrentDropout(make_cell("lstm_peephole", I, H), p=0.5).train()
    x, s0 = torch.randn(B, T, I, dtype=torch.float64), random_state(cell, B)
    L = torch.tensor([6, 3, 5])
    recorder = ReplayRecorder()
    first = _run(cell, x, s0, L, recorder)
    seed, loss_seed = 11, (5, 5)
    if changed == "grad_out":
        loss_seed = (6, 5)  # a new weighting of the outputs: a new gradient reaching them
    elif changed == "grad_final":
        loss_seed = (5, 6)
    if changed == "x":
        x = torch.randn_like(x)
    elif changed == "state":
        s0 = random_state(cell, B, seed=4)
    elif changed == "weights":
        with torch.no_grad():
            cell.cell.weight_hh.mul_(1.5)
            cell.cell.weight_co.add_(0.5)
    elif changed == "mask":
        seed = 99  # another draw of the recurrent-dropout mask, nothing else
    elif changed == "lengths":
        L = torch.tensor([2, 6, 4])
    second = _run(cell, x, s0, L, recorder, seed=seed, loss_seed=loss_seed)
    assert recorder.captures == 2  # same configuration: replayed, not captured again
    _assert_same(second, _run(cell, x, s0, L, seed=seed, loss_seed=loss_seed))
    changed_part = second[1] if changed.startswith("grad") else second[0]
    assert not all(torch.allclose(a, b) for a, b in zip(changed_part, first[1] if changed.startswith("grad") else first[0]))


def test_the_cache_key_separates_shapes_cells_grad_patterns_and_masks():
    cell, other = make_cell("lstm_layer_norm", I, H), make_cell("lstm_layer_norm", I, H, seed=3)
    recorder = ReplayRecorder()

    def go(c, b, t, *, lengths=None, grad=True):
        x = torch.randn(b, t, I, dtype=torch.float64, requires_grad=grad)
        with use_cuda_graphs(recorder=recorder), torch.set_grad_enabled(grad):
            out, _ = run(c, x, random_state(c, b), lengths, backend="explicit")
        if grad:
            out.sum().backward()
        return recorder.captures

    assert go(cell, B, T) == 2
    assert go(cell, B, T) == 2  # same key: replayed
    assert go(cell, B + 1, T) == 4  # another batch size
    assert go(cell, B, T + 1) == 6  # another length
    assert go(other, B, T) == 8  # another cell of the same shapes
    assert go(cell, B, T, lengths=torch.tensor([T, 2, 3])) == 10  # lengths present: the masked loop
    assert go(cell, B, T, lengths=torch.tensor([1, T, 4])) == 10  # other lengths: the same graph
    assert go(cell, B, T, grad=False) == 11  # no gradient: a forward graph only, with two slots
    assert graphs.captured_configurations() == 6
    with torch.no_grad():  # an inference run gives the uncaptured run's numbers
        x = torch.randn(B, T, I, dtype=torch.float64)
        s0 = random_state(cell, B)
        with use_cuda_graphs(recorder=recorder):
            out, final = run(cell, x, s0, backend="explicit")
        with use_cuda_graphs(False), native.use_native(False):
            ref, ref_final = run(cell, x, s0, backend="explicit")
    assert recorder.captures == 11
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(final.c, ref_final.c, rtol=1e-10, atol=1e-12)


def test_runs_whose_backward_is_pending_take_separate_entries():
    """Runs of one configuration alive at once must not share static activations; beyond MAX_ENTRIES a
    run goes uncaptured (with lengths: over all T steps, on whichever uncaptured kernel serves it)."""
    cell = make_cell("lstm_layer_norm", I, H)
    xs = [torch.randn(B, T, I, dtype=torch.float64) for _ in range(graphs.MAX_ENTRIES + 1)]
    s0 = random_state(cell, B)
    L = torch.tensor([5, 2, 4])
    recorder = ReplayRecorder()

    def loss_of(runs):
        return sum((out.square().sum() + final.c.sum()) for out, final in runs)

    with use_cuda_graphs(recorder=recorder):
        runs = [run(cell, x, s0, L, backend="explicit") for x in xs]  # the last runs uncaptured: all entries are busy
    assert recorder.captures == 2 * graphs.MAX_ENTRIES
    got = torch.autograd.grad(loss_of(runs), list(cell.parameters()))
    with use_cuda_graphs(False), native.use_native(False):
        plain = [run(cell, x, s0, L, backend="explicit") for x in xs]
        want = torch.autograd.grad(loss_of(plain), list(cell.parameters()))
    for (out, final), (ref, ref_final) in zip(runs, plain):
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(final.c, ref_final.c, rtol=1e-10, atol=1e-12)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    del runs
    with use_cuda_graphs(recorder=recorder):  # every entry is free again: replayed, no new capture
        run(cell, xs[0], s0, L, backend="explicit")[0].sum().backward()
    assert recorder.captures == 2 * graphs.MAX_ENTRIES


def test_an_entry_is_free_again_when_its_autograd_graph_is_dropped_without_backward():
    cell = make_cell("lstm", I, H)
    x, s0 = torch.randn(B, T, I, dtype=torch.float64), random_state(cell, B)
    recorder = ReplayRecorder()
    with use_cuda_graphs(recorder=recorder):
        for _ in range(graphs.MAX_ENTRIES + 2):
            out, _ = run(cell, x, s0, backend="explicit")  # the previous run's graph is dropped here
    assert recorder.captures == 2 * 2  # at most two alive at once (the old `out` until reassigned)


def test_a_retained_backward_after_the_entry_was_replayed_again_is_refused():
    cell = make_cell("lstm", I, H)
    x, s0 = torch.randn(B, T, I, dtype=torch.float64), random_state(cell, B)
    with use_cuda_graphs(recorder=ReplayRecorder()):
        out, _ = run(cell, x, s0, backend="explicit")
        out.sum().backward(retain_graph=True)
        run(cell, x + 1, s0, backend="explicit")  # the entry is free: this run overwrites its activations
        with pytest.raises(RuntimeError, match=r"retain_graph=True.*use_cuda_graphs\(False\)"):
            out.sum().backward()


def test_double_backward_is_refused_as_on_the_uncaptured_path():
    cell = make_cell("lstm", I, H)
    x = torch.randn(B, T, I, dtype=torch.float64, requires_grad=True)
    with use_cuda_graphs(recorder=ReplayRecorder()):
        out, _ = run(cell, x, backend="explicit")
    with pytest.raises(RuntimeError, match="backend='reference'"):
        torch.autograd.grad(out.sum(), x, create_graph=True)


def test_switches_and_the_cpu_default(monkeypatch):
    x = torch.randn(B, T, I)
    assert graph_recorder(x) is None  # CPU: never graphed by default, everything runs as before
    recorder = ReplayRecorder()
    with use_cuda_graphs(recorder=recorder):
        assert graph_recorder(x) is recorder
        with use_cuda_graphs(False):
            assert graph_recorder(x) is None
    with use_cuda_graphs(True):
        assert graph_recorder(x) is None  # no recorder given: only CUDA inputs are graphed
    assert graphs.env_enabled()
    monkeypatch.setenv("CAROUSEL_CUDA_GRAPHS", "0")
    assert not graphs.env_enabled()
    cell = make_cell("lstm", I, H)
    out, _ = run(cell, x.double(), backend="explicit")
    assert recorder.captures == 0 and graphs.captured_configurations() == 0


def test_zoneout_is_captured_draws_fresh_masks_at_every_replay_and_keys_on_training_mode():
    """Zoneout's explicit step draws its keep masks in ``begin``, inside the captured forward: each
    replay draws anew (two runs on one input differ); evaluation mode is another configuration."""
    cell = C.Zoneout(make_cell("lstm", I, H), p_h=0.2).train()
    x = torch.randn(B, T, I, dtype=torch.float64)
    recorder = ReplayRecorder()
    with use_cuda_graphs(recorder=recorder), torch.no_grad():  # no backward: one capture per configuration
        first, second = run(cell, x, backend="explicit")[0], run(cell, x)[0]  # auto: explicit too
        assert recorder.captures == 1 and graphs.captured_configurations() == 1
        assert not torch.equal(first, second)
        cell.eval()
        evaluated = run(cell, x)[0]
        assert recorder.captures == 2 and graphs.captured_configurations() == 2
    with torch.no_grad():
        torch.testing.assert_close(evaluated, run(cell, x, backend="reference")[0], rtol=1e-10, atol=1e-12)


def test_gradients_handed_out_are_copies_that_later_replays_leave_alone():
    """Gradients returned by ``torch.autograd.grad`` and accumulated into ``.grad`` over several graphed
    runs equal the uncaptured ones: a static buffer handed to autograd would be overwritten by the next replay."""
    cell = make_cell("lstm_layer_norm", I, H)
    xs = [torch.randn(B, T, I, dtype=torch.float64) for _ in range(3)]
    s0 = random_state(cell, B)
    params = list(cell.parameters())
    kept, sums = [], []
    for block in (use_cuda_graphs(recorder=ReplayRecorder()), use_cuda_graphs(False)):
        cell.zero_grad(set_to_none=True)
        with block, native.use_native(False):
            each = []
            for k, x in enumerate(xs):
                out, final = run(cell, x, s0, backend="explicit")
                each.append(torch.autograd.grad(out.square().sum() * (k + 1) + final.c.sum(), params))
            for k, x in enumerate(xs):
                out, final = run(cell, x, s0, backend="explicit")
                (out.square().sum() * (k + 1) + final.c.sum()).backward()
        kept.append(each)
        sums.append([p.grad.clone() for p in params])
    for run_graphed, run_plain in zip(*kept):
        for a, b in zip(run_graphed, run_plain):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    for a, b in zip(*sums):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
