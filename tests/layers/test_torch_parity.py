"""carousel.RNN/LSTM/GRU against torch.nn on seeded weights: outputs, final states, every gradient."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import carousel as C

I, H, B, T = 3, 5, 4, 6
D = torch.float64

MODES = {
    "rnn_tanh": (nn.RNN, C.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (nn.RNN, C.RNN, {"nonlinearity": "relu"}),
    "lstm": (nn.LSTM, C.LSTM, {}),
    "lstm_proj": (nn.LSTM, C.LSTM, {"proj_size": 2}),
    "gru": (nn.GRU, C.GRU, {}),
}
CASES = list(itertools.product(sorted(MODES), (1, 2), (False, True), (False, True), ("full", "lengths", "packed")))


def build(mode, num_layers, bidirectional, batch_first, dtype=D):
    torch_cls, ours_cls, extra = MODES[mode]
    torch.manual_seed(0)
    ref = torch_cls(I, H, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first, dtype=dtype, **extra)
    ours = ours_cls(I, H, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first, dtype=dtype, **extra)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def initial_state(mode, num_layers, bidirectional, dtype=D):
    LD = num_layers * (2 if bidirectional else 1)
    g = torch.Generator().manual_seed(3)
    h_size = 2 if mode == "lstm_proj" else H
    h0 = torch.randn(LD, B, h_size, generator=g, dtype=dtype)
    if mode.startswith("lstm"):
        return (h0, torch.randn(LD, B, H, generator=g, dtype=dtype))
    return h0


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("mode,num_layers,bidirectional,batch_first,how", CASES)
def test_parity_with_torch(mode, num_layers, bidirectional, batch_first, how):
    ref, ours = build(mode, num_layers, bidirectional, batch_first)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, T, I, generator=g, dtype=D)
    lengths = torch.tensor([T, 3, 5, 1])
    if not batch_first:
        x = x.transpose(0, 1).contiguous()
    hx = initial_state(mode, num_layers, bidirectional)

    def run(module):
        inp = x.clone().requires_grad_()
        if how == "packed" or (how == "lengths" and module is ref):
            packed = pack_padded_sequence(inp, lengths, batch_first=batch_first, enforce_sorted=False)
            out, state = module(packed, hx)
            out = pad_packed_sequence(out, batch_first=batch_first, total_length=T)[0]
        elif how == "lengths":  # carousel's own layers take lengths with padded tensors
            out, final = module.stack(inp, module.split_hidden(hx, B), lengths)
            state = module._pack_hidden(module.join_hidden(final))
        else:
            out, state = module(inp, hx)
        loss = (out * torch.linspace(-1, 1, out.shape[-1], dtype=D)).sum()
        loss = loss + sum((s * s).sum() for s in as_tuple(state))
        module.zero_grad()
        loss.backward()
        grads = {k: p.grad for k, p in zip(module.state_dict(keep_vars=True), module.state_dict(keep_vars=True).values())}
        return out, as_tuple(state), grads, inp.grad

    out_r, state_r, grads_r, gx_r = run(ref)
    out_o, state_o, grads_o, gx_o = run(ours)
    torch.testing.assert_close(out_o, out_r)
    for a, b in zip(state_o, state_r):
        torch.testing.assert_close(a, b)
    assert grads_o.keys() == grads_r.keys()
    for k in grads_r:
        torch.testing.assert_close(grads_o[k], grads_r[k], msg=k)
    torch.testing.assert_close(gx_o, gx_r)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_float32_parity_and_unbatched_input(mode):
    ref, ours = build(mode, 2, True, False, dtype=torch.float32)
    x = torch.randn(T, I)
    out_r, state_r = ref(x)
    out_o, state_o = ours(x)
    torch.testing.assert_close(out_o, out_r, rtol=1e-5, atol=1e-6)
    for a, b in zip(as_tuple(state_o), as_tuple(state_r)):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_state_dict_round_trip_both_ways(mode):
    ref, ours = build(mode, 2, True, True)
    assert list(ours.state_dict()) == list(ref.state_dict())
    torch.manual_seed(5)
    other = MODES[mode][1](I, H, num_layers=2, bidirectional=True, batch_first=True, dtype=D, **MODES[mode][2])
    ref.load_state_dict(other.state_dict())  # carousel -> torch
    x = torch.randn(B, T, I, dtype=D)
    torch.testing.assert_close(ref(x)[0], other(x)[0])
    assert torch.equal(ours.weight_hh_l1_reverse, ref.weight_hh_l1_reverse) is False
    assert ours.weight_hh_l1_reverse is ours.stack.layers[1].backward_layer.cell.weight_hh


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(0)
    ref = nn.LSTM(I, H, num_layers=3, dropout=0.5, dtype=D)
    ours = C.LSTM(I, H, num_layers=3, dropout=0.5, dtype=D)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(T, B, I, dtype=D)
    ref.eval(), ours.eval()
    torch.testing.assert_close(ours(x)[0], ref(x)[0])
    ours.train()
    a, b = ours(x)[0], ours(x)[0]
    assert not torch.allclose(a, b)
    assert not torch.allclose(a, ref(x)[0])


def test_bad_initial_state_is_explained():
    ours = C.LSTM(I, H, num_layers=2)
    x = torch.randn(T, B, I)
    with pytest.raises(ValueError, match=r"expected initial state 'h' of shape \(2, 4, 5\), got \(1, 4, 5\)"):
        ours(x, (torch.zeros(1, B, H), torch.zeros(2, B, H)))
    with pytest.raises(ValueError, match=r"pair \(h_0, c_0\)"):
        ours(x, torch.zeros(2, B, H))
    with pytest.raises(ValueError, match=r"expected input of shape \(T, B, 3\)"):
        ours(torch.zeros(2, 3, 4, 3))
    with pytest.raises(ValueError, match=r"expected input of shape \(T, B, 3\), got \(6, 4, 7\)"):
        ours(torch.zeros(T, B, 7))
    with pytest.raises(AttributeError):
        ours.weight_hh_l7
