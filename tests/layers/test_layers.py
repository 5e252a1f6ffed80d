"""Recurrent, Deep and Bidirectional against manual compositions of their parts."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import carousel as C
from cell_zoo import make_cell

B, T, I, H = 3, 6, 3, 4
D = torch.float64


def layer(name="lstm", i=I, h=H, seed=0):
    return C.Recurrent(make_cell(name, i, h, seed=seed))


def test_time_major_equals_batch_first():
    a = layer("gru")
    b = C.Recurrent(a.cell, batch_first=False)
    x = torch.randn(B, T, I, dtype=D)
    out_a, s_a = a(x)
    out_b, s_b = b(x.transpose(0, 1))
    torch.testing.assert_close(out_b.transpose(0, 1), out_a)
    torch.testing.assert_close(s_b.h, s_a.h)


def test_packed_in_packed_out_with_the_same_layout():
    rec = layer("lstm")
    x = torch.randn(B, T, I, dtype=D)
    lengths = torch.tensor([4, 6, 4])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, state = rec(packed)
    assert torch.equal(out.batch_sizes, packed.batch_sizes)
    assert torch.equal(out.sorted_indices, packed.sorted_indices)
    padded, lens = pad_packed_sequence(out, batch_first=True)
    ref_out, ref_state = rec(x, lengths=lengths)
    torch.testing.assert_close(padded, ref_out[:, : int(lens.max())])
    torch.testing.assert_close(state.c, ref_state.c)
    with pytest.raises(ValueError, match="PackedSequence"):
        rec(packed, lengths=lengths)


def test_bidirectional_reverses_each_sequence_within_its_length():
    fwd, bwd = layer("gru", seed=1), layer("gru", seed=2)
    bi = C.Bidirectional(fwd, bwd)
    x = torch.randn(B, T, I, dtype=D)
    lengths = torch.tensor([6, 2, 5])
    out, (s_f, s_b) = bi(x, lengths=lengths)
    assert out.shape == (B, T, 2 * H)
    for b, n in enumerate(lengths.tolist()):
        seq = x[b : b + 1, :n]
        y_f, f_final = fwd(seq)
        y_b, b_final = bwd(seq.flip(1))
        torch.testing.assert_close(out[b : b + 1, :n, :H], y_f)
        torch.testing.assert_close(out[b : b + 1, :n, H:], y_b.flip(1))
        assert torch.count_nonzero(out[b, n:]) == 0
        torch.testing.assert_close(s_f.h[b], f_final.h[0])
        torch.testing.assert_close(s_b.h[b], b_final.h[0])
    summed, _ = C.Bidirectional(fwd, bwd, merge="sum")(x, lengths=lengths)
    torch.testing.assert_close(summed, out[..., :H] + out[..., H:])


def test_deep_residual_and_skip_input_compose_as_documented():
    l0, l1, l2 = layer("lstm", I, H, 1), layer("lstm", I + H, H, 2), layer("lstm", I + H, H, 3)
    deep = C.Deep([l0, l1, l2], residual=True, skip_input=True)
    x = torch.randn(B, T, I, dtype=D)
    lengths = torch.tensor([6, 3, 1])
    out, states = deep(x, lengths=lengths)
    y0, s0 = l0(x, lengths=lengths)
    y1, s1 = l1(torch.cat([x, y0], -1), lengths=lengths)
    y1 = y1 + y0
    y2, s2 = l2(torch.cat([x, y1], -1), lengths=lengths)
    torch.testing.assert_close(out, y2 + y1)
    for got, want in zip(states, (s0, s1, s2)):
        torch.testing.assert_close(got.c, want.c)
    # the states passed back in continue the sequence (what truncated BPTT relies on)
    out_a, st = deep(x[:, :2])
    out_b, _ = deep(x[:, 2:], st)
    torch.testing.assert_close(torch.cat([out_a, out_b], 1), deep(x)[0])


def test_deep_dropout_is_active_only_in_training():
    deep = C.Deep([layer("gru", I, H, 1), layer("gru", H, H, 2)], dropout=0.5)
    x = torch.randn(B, T, I, dtype=D)
    deep.eval()
    plain = deep.layers[1](deep.layers[0](x)[0])[0]
    torch.testing.assert_close(deep(x)[0], plain)
    deep.train()
    assert not torch.allclose(deep(x)[0], plain)


def test_deep_of_bidirectional_layers():
    bi0 = C.Bidirectional(layer("elman_tanh", I, H, 1), layer("elman_tanh", I, H, 2))
    bi1 = C.Bidirectional(layer("elman_tanh", 2 * H, H, 3), layer("elman_tanh", 2 * H, H, 4))
    deep = C.Deep([bi0, bi1])
    x = torch.randn(B, T, I, dtype=D)
    out, states = deep(x)
    torch.testing.assert_close(out, bi1(bi0(x)[0])[0])
    assert len(states) == 2 and len(states[0]) == 2


def test_layer_errors_say_what_was_expected():
    with pytest.raises(ValueError, match=r"layer 1 expects inputs of size 9, but gets 4"):
        C.Deep([layer("gru", I, H), layer("gru", 9, H)])
    with pytest.raises(ValueError, match="residual connections need equal sizes"):
        C.Deep([layer("gru", I, H), layer("gru", H, 7)], residual=True)
    with pytest.raises(ValueError, match="at least one layer"):
        C.Deep([])
    with pytest.raises(ValueError, match=r"dropout in \[0, 1\], got 1.5"):
        C.Deep([layer()], dropout=1.5)
    deep = C.Deep([layer("gru", I, H), layer("gru", H, H)])
    x = torch.randn(B, T, I, dtype=D)
    with pytest.raises(ValueError, match="tuple of 2 per-layer states"):
        deep(x, (None,))
    bi = C.Bidirectional(layer(), layer())
    with pytest.raises(TypeError, match=r"pair \(forward_state, backward_state\).*got LSTMState \(one direction's state\)"):
        bi(x, make_cell("lstm").initial_state(B))
    with pytest.raises(ValueError, match="same input size"):
        C.Bidirectional(layer("gru", I, H), layer("gru", 5, H))
    with pytest.raises(ValueError, match="merge='sum' needs equal output sizes"):
        C.Bidirectional(layer("gru", I, H), layer("gru", I, 6), merge="sum")
    with pytest.raises(ValueError, match="unknown merge mode 'avg'"):
        C.Bidirectional(layer(), layer(), merge="avg")
    with pytest.raises(TypeError, match="expected cell to be a carousel Cell.*got LSTM; that is a layer"):
        C.Recurrent(torch.nn.LSTM(3, 4))
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        C.Recurrent(make_cell("lstm"), backend="cuda")
