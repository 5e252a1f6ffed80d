"""The drop-ins' one-call fused stack against the same stack run layer by layer on the reference loop."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import carousel as C

T, B, I, H = 6, 4, 3, 5
KINDS = {
    "lstm": lambda **kw: C.LSTM(I, H, **kw),
    "lstm_proj": lambda **kw: C.LSTM(I, H, proj_size=2, **kw),
    "gru": lambda **kw: C.GRU(I, H, **kw),
    "rnn_tanh": lambda **kw: C.RNN(I, H, **kw),
    "rnn_relu": lambda **kw: C.RNN(I, H, nonlinearity="relu", **kw),
}


def pair(kind, **kw):
    torch.manual_seed(0)
    fast = KINDS[kind](dtype=torch.float64, **kw)
    ref = KINDS[kind](dtype=torch.float64, backend="reference", **kw)
    ref.load_state_dict(fast.state_dict())
    return fast, ref


def hidden(module, batch, seed=1):
    g = torch.Generator().manual_seed(seed)
    LD = module.num_layers * (2 if module.bidirectional else 1)
    fields = [torch.randn(LD, batch, n, generator=g, dtype=torch.float64) for _, n in module.state_fields()]
    return tuple(fields) if isinstance(module, C.LSTM) else fields[0]


def run_and_grad(module, x, hx):
    if isinstance(x, PackedSequence):
        data = x.data.detach().clone().requires_grad_()
        x, leaf = PackedSequence(data, x.batch_sizes, x.sorted_indices, x.unsorted_indices), data
    else:
        x = leaf = x.detach().clone().requires_grad_()
    hx = tuple(h.detach().clone().requires_grad_() for h in hx) if isinstance(hx, tuple) else hx.detach().clone().requires_grad_()
    module.zero_grad()
    out, h_n = module(x, hx)
    data = out.data if isinstance(out, PackedSequence) else out
    finals = h_n if isinstance(h_n, tuple) else (h_n,)
    w = torch.linspace(-1, 1, data.numel(), dtype=data.dtype).view_as(data)
    loss = (data * w).sum() + sum((f * f).sum() for f in finals)
    loss.backward()
    hx_grads = [h.grad for h in (hx if isinstance(hx, tuple) else (hx,))]
    return [data.detach(), *[f.detach() for f in finals], leaf.grad, *hx_grads] + [p.grad for p in module.parameters()]


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, False), (2, True)])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_fused_stack_equals_layer_by_layer_reference(kind, layers, bidirectional, batch_first):
    fast, ref = pair(kind, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    x = torch.randn(B, T, I, dtype=torch.float64) if batch_first else torch.randn(T, B, I, dtype=torch.float64)
    assert fast.fused_stack_mode(x) is not None and ref.fused_stack_mode(x) is None
    hx = hidden(fast, B)
    for a, b in zip(run_and_grad(fast, x, hx), run_and_grad(ref, x, hx)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_fused_stack_packed_unsorted_lengths(kind):
    fast, ref = pair(kind, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(B, T, I, dtype=torch.float64)
    packed = pack_padded_sequence(x, torch.tensor([3, 6, 1, 4]), batch_first=True, enforce_sorted=False)
    hx = hidden(fast, B)
    got, want = run_and_grad(fast, packed, hx), run_and_grad(ref, packed, hx)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    out, _ = fast(packed)
    padded, lens = pad_packed_sequence(out, batch_first=True)
    assert lens.tolist() == [3, 6, 1, 4] and torch.count_nonzero(padded[2, 1:]) == 0


def test_fused_stack_matches_torch_nn_bitwise_in_float32():
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(I, H, num_layers=2, bidirectional=True)
    ours = C.LSTM(I, H, num_layers=2, bidirectional=True)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(T, B, I)
    (o1, (h1, c1)), (o2, (h2, c2)) = ours(x), theirs(x)
    assert torch.equal(o1, o2) and torch.equal(h1, h2) and torch.equal(c1, c2)


def test_stack_with_dropout_or_residual_runs_layer_by_layer():
    x = torch.randn(T, B, I)
    drop = C.LSTM(I, H, num_layers=2, dropout=0.3)
    assert drop.fused_stack_mode(x) is None  # training: the per-layer path draws the dropout masks
    drop.eval()
    assert drop.fused_stack_mode(x) == "lstm"
    assert C.GRU(I, H, num_layers=2, skip_input=True).fused_stack_mode(x) is None
    assert C.LSTM(I, H, layer_norm=True).fused_stack_mode(x) is None
    assert C.LSTM(I, H, backend="explicit").fused_stack_mode(x) is None


def test_fused_stack_unbatched_input_and_errors():
    fast, ref = pair("gru", num_layers=2)
    x = torch.randn(T, I, dtype=torch.float64)
    h0 = torch.randn(2, H, dtype=torch.float64)
    for a, b in zip(fast(x, h0), ref(x, h0)):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match=r"expected initial state 'h' of shape \(2, 4, 5\), got \(1, 4, 5\)"):
        fast(torch.randn(T, B, I, dtype=torch.float64), torch.zeros(1, B, H, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"expected input of shape \(T, B, 3\), got \(6, 4, 7\)"):
        fast(torch.randn(T, B, 7, dtype=torch.float64))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_weight_drop_masks_are_the_same_on_every_path(kind):
    """DropConnect on weight_hh: the one-call stack draws each cell's mask once, in the order the
    layer-by-layer reference draws them, so a seed gives the same masks and the same numbers."""
    from carousel.regularize import weight_drop

    fast, ref = pair(kind, num_layers=2, bidirectional=True, batch_first=True)
    weight_drop(fast, 0.5)
    weight_drop(ref, 0.5)
    x = torch.randn(B, T, I, dtype=torch.float64)
    assert fast.training and fast.fused_stack_mode(x) is not None
    hx = hidden(fast, B)
    torch.manual_seed(11)
    got = run_and_grad(fast, x, hx)
    torch.manual_seed(11)
    want = run_and_grad(ref, x, hx)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    torch.manual_seed(12)
    assert not torch.allclose(run_and_grad(fast, x, hx)[0], got[0])  # another seed, other masks
