"""Truncated BPTT: windows, carried state, detaching, per-stream resets, against full BPTT and
independent references (seeded weights, float64)."""

from __future__ import annotations

import pytest
import torch

from carousel.models import RecurrentModel
from carousel.train import Shard, StreamBatches, Streams, run_window

B, L, F, O = 3, 24, 3, 2


def setup(seed: int = 0, cell: str = "lstm"):
    torch.manual_seed(seed)
    model = RecurrentModel(cell, F, 5, O, readout="all", layers=2).double()
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(B, L, F, generator=g, dtype=torch.float64)
    w = torch.randn(B, L, O, generator=g, dtype=torch.float64)  # loss = sum(out * w)
    return model, x, w


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def full_bptt(model, x, w):
    model.zero_grad()
    out, _ = model(x)
    loss = (out * w).sum()
    loss.backward()
    return float(loss.detach()), grads(model)


def tbptt(model, x, w, k1, k2=0):
    """One epoch of TBPTT(k1, k2) with gradients accumulated (no optimiser step)."""
    model.zero_grad()
    batches = StreamBatches(Streams(x.reshape(B * L, F), w.reshape(B * L, O), B), k1, k2)
    state, total = None, 0.0
    for _ in batches.plan:
        win = next(batches)
        out, state = run_window(model, win, state)
        loss = (out[:, win.loss_from :] * win.y[:, win.loss_from :]).sum()
        loss.backward()
        total += float(loss.detach())
    return total, grads(model)


def assert_grads_close(a, b):
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-9, atol=1e-11, msg=name)


@pytest.mark.parametrize("cell", ["lstm", "gru", "elman"])
def test_one_window_of_the_whole_stream_equals_full_bptt(cell):
    model, x, w = setup(1, cell)
    loss_full, g_full = full_bptt(model, x, w)
    loss_t, g_t = tbptt(model, x, w, k1=L)
    assert loss_t == pytest.approx(loss_full, rel=1e-12)
    assert_grads_close(g_t, g_full)


def test_k2_reaching_the_stream_start_equals_full_bptt_with_short_updates():
    # every window of 5 new steps back-propagates to position 0: the sum over windows is full BPTT
    model, x, w = setup(2)
    loss_full, g_full = full_bptt(model, x, w)
    loss_t, g_t = tbptt(model, x, w, k1=5, k2=L)
    assert loss_t == pytest.approx(loss_full, rel=1e-12)
    assert_grads_close(g_t, g_full)


def reference_tbptt(model, x, w, k1, k2):
    """Independent TBPTT(k1, k2): for the update covering [p, end), end = min(p + k1, L), run
    [0, start) without a graph from zero, then [start, end) with one, loss on [p, end), where
    start = max(0, min(p, end - k2)): the last loss step reaches k2 steps back."""
    model.zero_grad()
    total = 0.0
    for p in range(0, L, k1):
        end = min(p + k1, L)
        start = max(0, min(p, end - k2))
        state = None
        if start > 0:
            with torch.no_grad():
                _, state = model(x[:, :start])
        out, _ = model(x[:, start:end], state)
        loss = (out[:, p - start :] * w[:, p:end]).sum()
        loss.backward()
        total += float(loss.detach())
    return total, grads(model)


@pytest.mark.parametrize("k1,k2", [(6, 6), (4, 10), (5, 7)])
def test_truncation_matches_an_independent_reference(k1, k2):
    model, x, w = setup(3)
    loss_t, g_t = tbptt(model, x, w, k1, k2)
    loss_r, g_r = reference_tbptt(model, x, w, k1, k2)
    assert loss_t == pytest.approx(loss_r, rel=1e-12)
    assert_grads_close(g_t, g_r)
    _, g_full = full_bptt(model, x, w)  # and truncation does change the gradient
    assert not torch.allclose(g_t["rnn.layers.0.cell.weight_hh"], g_full["rnn.layers.0.cell.weight_hh"])


@pytest.mark.parametrize("k2,first_window_grad", [(6, False), (12, True)])
def test_detaching_cuts_the_graph(k2, first_window_grad):
    model, x, _ = setup(4)
    x = x.clone().requires_grad_()
    batches = StreamBatches(Streams(x.reshape(B * L, F), None, B), 6, k2)
    first = next(batches)
    _, state = run_window(model, first, None)
    second = next(batches)
    out, _ = run_window(model, second, state)
    out[:, second.loss_from :].sum().backward()
    early, late = x.grad[:, :6], x.grad[:, 6:12]
    assert late.abs().sum() > 0
    if first_window_grad:
        assert early.abs().sum() > 0  # k2 = 12 reaches back into the first window
    else:
        assert torch.equal(early, torch.zeros_like(early))  # exactly zero: no path into the first window


def test_state_resets_per_stream_where_a_document_starts():
    torch.manual_seed(5)
    model = RecurrentModel("gru", F, 4, O, readout="all").double()
    g = torch.Generator().manual_seed(6)
    docs = [torch.randn(n, F, generator=g, dtype=torch.float64) for n in (7, 9, 5, 11)]
    streams = Streams.from_documents(docs, None, 2)  # stream 0: docs 0, 1; stream 1: docs 2, 3
    batches = StreamBatches(streams, 4)
    state, outs = None, []
    with torch.no_grad():
        for _ in batches.plan:
            win = next(batches)
            out, state = run_window(model, win, state)
            outs.append(out)
        got = torch.cat(outs, dim=1)  # (2, 16, O)
        fresh = [model(d[None])[0][0] for d in docs]  # each document from a zero state
    torch.testing.assert_close(got[0], torch.cat(fresh[:2]), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got[1], torch.cat(fresh[2:]), rtol=1e-10, atol=1e-12)


def test_a_new_epoch_starts_every_stream_from_zero():
    model, x, _ = setup(7)
    batches = StreamBatches(Streams(x.reshape(B * L, F), None, B), 8)
    state = None
    with torch.no_grad():
        for _ in range(len(batches.plan)):
            _, state = run_window(model, next(batches), state)
        win = next(batches)
        assert win.epoch == 1 and win.position == 0
        out, _ = run_window(model, win, state)
        torch.testing.assert_close(out, model(x[:, :8])[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("random", [False, True])
def test_windows_cover_each_stream_once_per_epoch_and_resume_exactly(random):
    streams = Streams(torch.arange(4 * 100).float()[:, None], None, 4)
    a = StreamBatches(streams, 7, 9, random=random, seed=3)
    for epoch in range(2):
        covered = []
        for _ in range(len(a.plan)):
            win = next(a)
            assert win.epoch == epoch
            covered.extend(range(win.position, win.position + win.x.shape[1] - win.loss_from))
            # the window's inputs are the stream at [position - loss_from, ...)
            assert torch.equal(win.x[0, win.loss_from, 0], torch.tensor(float(win.position)))
        assert covered == list(range(100))
    saved = a.state_dict()
    b = StreamBatches(streams, 7, 9, random=random, seed=3)
    b.load_state_dict(saved)
    for _ in range(20):
        wa, wb = next(a), next(b)
        assert (wa.position, wa.loss_from, wa.carry_at, wa.epoch) == (wb.position, wb.loss_from, wb.carry_at, wb.epoch)
    if random:
        lengths = {k for _, k in a.plan}
        assert len(lengths) > 1
        assert a.plan != StreamBatches(streams, 7, 9, random=True, seed=4).plan


def test_ranks_take_their_own_streams():
    corpus = torch.arange(4 * 10).float()[:, None]
    whole = Streams(corpus, None, 4)
    parts = [Streams(corpus, None, 4, Shard(r, 2)) for r in range(2)]
    torch.testing.assert_close(torch.cat([p.x for p in parts]), whole.x)
    with pytest.raises(ValueError, match="does not split evenly over 3 processes"):
        Streams(corpus, None, 4, Shard(0, 3))


def test_bad_truncation_settings_are_refused():
    streams = Streams(torch.zeros(40, 1), None, 2)
    with pytest.raises(ValueError, match="bptt_back"):
        StreamBatches(streams, 8, 4)
    with pytest.raises(ValueError, match="bptt"):
        StreamBatches(streams, 0)
    with pytest.raises(ValueError, match="cannot fill 50 streams"):
        Streams(torch.zeros(40, 1), None, 50)
