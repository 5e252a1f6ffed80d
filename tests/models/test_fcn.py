"""The LSTM-FCN parts: the conv branch against a hand-assembled convolution, batch norm over the valid
steps and average (series cut to their lengths, one at a time), padding that never reaches an
output, the classifier's features as the concatenation of the recurrent readout and the conv
features (frames or dimension shuffle), a short training that learns, and the errors."""

import pytest
import torch
import torch.nn.functional as F

from carousel.models import ConvBranch, FCNClassifier
from carousel.models.fcn import to_frames

LENGTHS = torch.tensor([9, 4, 7])


def _padded(seed=0, B=3, T=9, C=2, garbage=float("nan")):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, C, generator=g, dtype=torch.float64)
    mask = torch.arange(T).unsqueeze(0) < LENGTHS.unsqueeze(1)
    return torch.where(mask.unsqueeze(-1), x, torch.full_like(x, garbage)), x


def _branch(seed=1):
    torch.manual_seed(seed)
    branch = ConvBranch(2, filters=(3, 4), kernels=(4, 3)).double()
    for bn in branch.norms:  # affine parameters away from their 1 / 0 start, so a swapped one shows
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    return branch


def _by_hand(branch, x, lengths, training):
    """The conv branch written out: each series cut to its own length n and padded with (k-1)//2 zeros
    before and k//2 after, convolved as a sum over taps; batch statistics over all valid steps of all
    series (biased variance), or the running ones; ReLU; the mean over the n steps."""
    hs = [x[b, :n].T for b, n in enumerate(lengths.tolist())]  # each (C, n)
    for conv, bn in zip(branch.convs, branch.norms):
        W, bias, k = conv.weight, conv.bias, conv.weight.shape[-1]  # W (F, C_in, k)
        outs = []
        for h in hs:
            n = h.shape[1]
            p = torch.cat([torch.zeros(h.shape[0], (k - 1) // 2, dtype=h.dtype), h, torch.zeros(h.shape[0], k // 2, dtype=h.dtype)], 1)
            outs.append(torch.stack([sum(W[:, :, j] @ p[:, t + j] for j in range(k)) + bias for t in range(n)], 1))  # (F, n)
        if training:
            every = torch.cat(outs, 1)  # (F, sum of n)
            mean, var = every.mean(1), every.var(1, unbiased=False)
        else:
            mean, var = bn.running_mean, bn.running_var
        hs = [torch.relu((o - mean[:, None]) / torch.sqrt(var[:, None] + bn.eps) * bn.weight[:, None] + bn.bias[:, None]) for o in outs]
    return torch.stack([h.mean(1) for h in hs])  # (B, F)


@pytest.mark.parametrize("training", [True, False])
def test_the_conv_branch_equals_a_hand_assembled_conv_norm_and_pool(training):
    branch = _branch()
    x, _ = _padded(garbage=3.0)
    if not training:
        branch(x, LENGTHS)  # one training pass moves the running statistics off 0 / 1
        branch.eval()
    got = branch(x, LENGTHS)
    torch.testing.assert_close(got, _by_hand(branch, x, LENGTHS, training), rtol=1e-10, atol=1e-10)
    full = torch.full((3,), 9)
    torch.testing.assert_close(branch(x), _by_hand(branch, x, full, training), rtol=1e-10, atol=1e-10)  # lengths None


def test_the_running_statistics_come_from_the_valid_steps_only():
    branch = _branch()
    x, _ = _padded(garbage=50.0)
    branch(x, LENGTHS)
    conv, bn = branch.convs[0], branch.norms[0]
    valid = torch.cat([conv(F.pad(x[b:b + 1, :n].transpose(1, 2), (1, 2)))[0] for b, n in enumerate(LENGTHS.tolist())], 1)
    torch.testing.assert_close(bn.running_mean, 0.1 * valid.mean(1))  # momentum 0.1 from 0
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * valid.var(1, unbiased=True))  # from 1, unbiased as torch


@pytest.mark.parametrize("training", [True, False])
def test_padded_values_change_nothing_in_the_branch(training):
    branch = _branch().train(training)
    with_nan, _ = _padded(garbage=float("nan"))
    with_big, _ = _padded(garbage=1e4)
    a = branch(with_nan, LENGTHS)
    torch.testing.assert_close(a, branch(with_big, LENGTHS), rtol=0, atol=1e-12)
    assert torch.isfinite(a).all()


@pytest.mark.parametrize("options", [{"patch": 1}, {"patch": 3, "bidirectional": True}, {"shuffle": True, "length": 12}])
def test_padding_never_changes_the_classifier(options):
    torch.manual_seed(2)
    model = FCNClassifier("gru", 2, 5, 3, filters=(4, 6, 4), kernels=(5, 3, 3), **options).double()
    with_nan, _ = _padded(garbage=float("nan"))
    with_big, _ = _padded(garbage=-1e3)
    a = model(with_nan, LENGTHS)
    torch.testing.assert_close(a, model(with_big, LENGTHS), rtol=0, atol=1e-12)
    assert torch.isfinite(a).all()
    model.eval()  # running statistics: each series scores as it does alone, cut to its length
    batch = model(with_nan, LENGTHS)
    for b, n in enumerate(LENGTHS.tolist()):
        torch.testing.assert_close(batch[b], model(with_big[b:b + 1, :n])[0], rtol=1e-10, atol=1e-10)


def test_the_features_concatenate_the_recurrent_readout_and_the_conv_branch():
    torch.manual_seed(3)
    model = FCNClassifier("lstm", 2, 5, 3, filters=(4, 6), kernels=(3, 3), patch=2, readout="mean").double().eval()
    _, x = _padded(seed=4)
    for b, n in enumerate(LENGTHS.tolist()):
        series = x[b:b + 1, :n]  # (1, n, 2)
        frames = torch.cat([series, torch.zeros(1, n % 2, 2, dtype=x.dtype)], 1).reshape(1, -(-n // 2), 4)  # 2 steps a frame
        y, _ = model.rnn(frames)  # (1, ceil(n / 2), 5)
        expected = torch.cat([y.mean(1), model.conv(series)], -1)  # (1, 5 + 6)
        torch.testing.assert_close(model.features(x[b:b + 1], LENGTHS[b:b + 1]), expected)
        torch.testing.assert_close(model(x[b:b + 1], LENGTHS[b:b + 1]), model.head(expected))


def test_readout_dropout_drops_the_recurrent_readout_alone_and_only_in_training():
    torch.manual_seed(7)
    plain = FCNClassifier("lstm", 2, 64, 3, filters=(4, 6), kernels=(3, 3), readout="mean").double()
    dropped = FCNClassifier("lstm", 2, 64, 3, filters=(4, 6), kernels=(3, 3), readout="mean", readout_dropout=0.75).double()
    dropped.load_state_dict(plain.state_dict())
    _, x = _padded(seed=8)
    torch.testing.assert_close(dropped.eval()(x, LENGTHS), plain.eval()(x, LENGTHS))  # evaluation: no dropout
    plain.train(), dropped.train()
    full, kept = plain.features(x, LENGTHS), dropped.features(x, LENGTHS)  # (B, 64 + 6)
    torch.testing.assert_close(kept[:, 64:], full[:, 64:])  # the conv features pass untouched
    zero = kept[:, :64] == 0
    assert 0.6 < float(zero.double().mean()) < 0.9  # 3 of 4 readout entries dropped
    torch.testing.assert_close(kept[:, :64][~zero], 4 * full[:, :64][~zero])  # the rest scaled by 1 / (1 - 0.75)


def test_the_dimension_shuffle_reads_each_channel_as_one_step():
    torch.manual_seed(5)
    model = FCNClassifier("gru", 2, 4, 3, filters=(3,), kernels=(3,), shuffle=True, length=11, readout="last").double().eval()
    _, x = _padded(seed=6)
    x = x[:1, :9]  # (1, 9, 2), full length
    steps = torch.cat([x[0].T, torch.zeros(2, 2, dtype=x.dtype)], 1)  # channel c -> step c: its 9 values, then zeros to 11
    h = torch.zeros(1, 4, dtype=x.dtype)
    for c in range(2):  # the GRU by its equations (gate order r, z, n)
        gi = steps[c:c + 1] @ model.rnn.layers[0].cell.weight_ih.T + model.rnn.layers[0].cell.bias_ih
        gh = h @ model.rnn.layers[0].cell.weight_hh.T + model.rnn.layers[0].cell.bias_hh
        r, z = torch.sigmoid(gi[:, :4] + gh[:, :4]), torch.sigmoid(gi[:, 4:8] + gh[:, 4:8])
        n = torch.tanh(gi[:, 8:] + r * gh[:, 8:])
        h = (1 - z) * n + z * h
    torch.testing.assert_close(model.features(x), torch.cat([h, model.conv(x)], -1))


def test_a_short_training_learns_a_frequency():
    """Two classes: a sine of 2 or of 5 cycles at a random phase, plus noise. Measured: 100 % train
    accuracy after 60 Adam steps (chance 50 %)."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(64) % 2
    t = torch.linspace(0, 1, 32)
    x = torch.sin(2 * torch.pi * (2 + 3 * labels[:, None]) * t + 6.3 * torch.rand(64, 1, generator=g))
    x = (x + 0.2 * torch.randn(64, 32, generator=g))[..., None]
    torch.manual_seed(0)
    model = FCNClassifier("gru", 1, 8, 2, filters=(8, 8), kernels=(5, 3), patch=4)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    before = float(F.cross_entropy(model(x), labels).detach())
    for _ in range(60):
        loss = F.cross_entropy(model(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        logits = model.eval()(x)
    assert float(F.cross_entropy(logits, labels)) < before / 4
    assert (logits.argmax(-1) == labels).float().mean() > 0.95


def test_to_frames_keeps_the_order_of_the_steps():
    x = torch.arange(1.0, 11.0).reshape(1, 5, 2)
    frames, lengths = to_frames(x, torch.tensor([5]), 2)
    assert frames.tolist() == [[[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 0, 0]]] and lengths.tolist() == [3]


@pytest.mark.parametrize("make, error, message", [
    (lambda: ConvBranch(2, filters=(4, 4), kernels=(3,)), ValueError, r"one kernel width per block, got 2 filters \[4, 4\] and 1"),
    (lambda: ConvBranch(2, filters=(4, 0), kernels=(3, 3)), ValueError, "every entry of filters to be an integer >= 1, got 0"),
    (lambda: ConvBranch(2, filters=(), kernels=()), ValueError, "at least one entry in filters"),
    (lambda: ConvBranch(2, filters="128", kernels=(3,)), TypeError, "filters as a sequence of integers"),
    (lambda: ConvBranch(2, kernels=(8, 5.0, 3)), TypeError, "every entry of kernels to be an integer >= 1, got float 5.0"),
    (lambda: FCNClassifier("gru", 1, 4, 2, shuffle=True), ValueError, "expected length"),
    (lambda: FCNClassifier("gru", 1, 4, 2, shuffle=True, length=10, patch=2), ValueError, "expected patch 1 with shuffle=True"),
    (lambda: FCNClassifier("gru", 1, 4, 2, readout="first"), ValueError, "unknown readout 'first'"),
    (lambda: FCNClassifier("gru", 1, 4, 2, readout_dropout=1.0), ValueError, "readout_dropout"),
])
def test_bad_settings_are_refused(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_bad_input_is_refused():
    model = FCNClassifier("gru", 2, 4, 2, filters=(3,), kernels=(3,), shuffle=True, length=6)
    with pytest.raises(ValueError, match=r"expected series of shape \(B, T, 2\), got \(1, 6, 3\)"):
        model(torch.randn(1, 6, 3))
    with pytest.raises(ValueError, match=r"at most length=6 steps .* got \(1, 7, 2\)"):
        model(torch.randn(1, 7, 2))
    with pytest.raises(ValueError, match="at most the padded length T=6, got a length of 7"):
        model(torch.randn(2, 6, 2), torch.tensor([6, 7]))
