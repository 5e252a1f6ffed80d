"""Variational dropout: one mask per sequence, shared by all its steps (Gal & Ghahramani 2016)."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import carousel as C
from carousel.regularize import VariationalDropout, bernoulli_mask, hold_masks


def _masks(drop, x):
    """The mask a call applied, read back as y / x (x has no zeros)."""
    return drop(x) / x


def test_mask_is_shared_by_every_step_and_differs_between_sequences():
    torch.manual_seed(0)
    drop = VariationalDropout(0.5)
    x = torch.randn(6, 9, 16) + 3.0  # away from zero so y / x is the mask
    m = _masks(drop, x)  # (B, T, F)
    assert torch.equal(m, m[:, :1].expand_as(m)), "the mask changed between time steps"
    assert set(m.unique().tolist()) == {0.0, 2.0}
    for a in range(6):
        for b in range(a + 1, 6):
            assert not torch.equal(m[a, 0], m[b, 0]), f"sequences {a} and {b} got the same mask"


def test_time_major_layout_shares_over_dim_0():
    torch.manual_seed(1)
    drop = VariationalDropout(0.3, batch_first=False)
    x = torch.randn(7, 4, 10) + 3.0  # (T, B, F)
    m = _masks(drop, x)
    torch.testing.assert_close(m, m[:1].expand_as(m))  # 1 / 0.7 is inexact: y / x only close
    assert not torch.equal(m[0, 0] == 0, m[0, 1] == 0)


def test_expected_activation_is_preserved():
    torch.manual_seed(2)
    p = 0.3
    drop = VariationalDropout(p)
    x = torch.randn(4000, 2, 8, dtype=torch.float64)
    y = drop(x)
    # E[y] = x: the average mask over 32000 draws per feature is 1 within a few standard errors
    m = (y / x)[:, 0]  # (4000, 8)
    se = (p / (1 - p) / m.shape[0]) ** 0.5
    assert (m.mean(0) - 1).abs().max() < 5 * se
    frac_dropped = float((m == 0).double().mean())
    assert abs(frac_dropped - p) < 0.01


def test_evaluation_is_identity_and_deterministic():
    drop = VariationalDropout(0.5).eval()
    x = torch.randn(3, 5, 4)
    assert drop(x) is x
    drop.train()
    assert not torch.equal(drop(x), drop(x))


def test_same_seed_same_masks():
    drop = VariationalDropout(0.4)
    x = torch.randn(5, 6, 7)
    torch.manual_seed(11)
    a = drop(x)
    torch.manual_seed(11)
    b = drop(x)
    torch.manual_seed(12)
    c = drop(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_packed_sequence_gets_the_mask_of_its_padded_form():
    torch.manual_seed(3)
    drop = VariationalDropout(0.5)
    x = torch.randn(4, 6, 5) + 3.0
    lengths = torch.tensor([3, 6, 1, 4])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    y, _ = pad_packed_sequence(drop(packed), batch_first=True, total_length=6)
    m = y / x
    for b, n in enumerate(lengths.tolist()):
        assert torch.equal(m[b, :n], m[b, :1].expand(n, 5)), f"sequence {b}: mask changed over time"
    assert not torch.equal(m[0, 0], m[1, 0])
    assert set(m[1].unique().tolist()) <= {0.0, 2.0}


def test_hold_masks_keeps_one_mask_across_calls():
    drop = VariationalDropout(0.5)
    x = torch.randn(3, 1, 8) + 3.0
    with hold_masks(drop):
        first = _masks(drop, x)
        for _ in range(4):
            assert torch.equal(_masks(drop, x), first)
        with pytest.raises(ValueError, match=r"holds a mask of shape \(3, 1, 8\).*\(2, 1, 8\)"):
            drop(x[:2])
    torch.manual_seed(4)
    masks = [_masks(drop, x) for _ in range(3)]
    assert not torch.equal(masks[0], masks[1]), "outside hold_masks every call is a new sequence"


def test_deep_variational_matches_a_reference_with_one_mask_between_layers():
    torch.manual_seed(5)
    l0, l1 = C.Recurrent(C.GRUCell(3, 6)), C.Recurrent(C.LSTMCell(6, 4))
    deep = C.Deep([l0, l1], dropout=0.4, variational=True)
    x = torch.randn(5, 8, 3)
    torch.manual_seed(6)
    out, _ = deep(x)
    # reference: the same random draw, made by hand, multiplied into every step of layer 0's outputs
    torch.manual_seed(6)
    y0, _ = l0(x)
    m = bernoulli_mask((5, 1, 6), 0.4, y0)
    ref, _ = l1(y0 * m)
    torch.testing.assert_close(out, ref)
    deep.eval()
    torch.testing.assert_close(deep(x)[0], l1(l0(x)[0])[0])


def test_deep_default_dropout_is_unchanged():
    deep = C.Deep([C.Recurrent(C.GRUCell(3, 6)), C.Recurrent(C.GRUCell(6, 6))], dropout=0.5)
    assert isinstance(deep.drop, torch.nn.Dropout)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_bad_rate_is_refused(p):
    with pytest.raises(ValueError, match=r"expected p in \[0, 1\], got"):
        VariationalDropout(p)


@pytest.mark.parametrize("p", ["0.5", True, None])
def test_rate_of_another_type_is_refused(p):
    with pytest.raises(TypeError, match=r"expected p to be a real number in \[0, 1\], got"):
        VariationalDropout(p)


def test_rate_one_drops_everything_as_torch_dropout_does():
    x = torch.randn(3, 4, 5)
    out = VariationalDropout(1.0)(x)
    assert torch.equal(out, torch.zeros_like(x)) and torch.equal(torch.nn.Dropout(1.0)(x), out)


def test_bad_input_is_refused():
    drop = VariationalDropout(0.5)
    with pytest.raises(TypeError, match="expected a tensor or a PackedSequence, got list"):
        drop([1.0, 2.0])
    with pytest.raises(ValueError, match=r"batch and a feature dimension, got shape \(5,\)"):
        drop(torch.randn(5))
