"""The tagger and the classifier: padding never reaches a valid output, every readout matches a
computation on each sequence alone, the masked and class-weighted losses match hand computations,
and a short training lowers the loss."""

import pytest
import torch
import torch.nn.functional as F

from carousel.models import SequenceClassifier, SequenceTagger

LENGTHS = torch.tensor([6, 2, 4, 1])


def _padded(seed=0, B=4, T=6, I=3, garbage=float("nan")):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, I, generator=g, dtype=torch.float64)
    mask = torch.arange(T).unsqueeze(0) < LENGTHS.unsqueeze(1)
    return torch.where(mask.unsqueeze(-1), x, torch.full_like(x, garbage)), x, mask


@pytest.mark.parametrize("readout", ["last", "mean", "max", "attention"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_never_changes_a_valid_output(readout, bidirectional):
    torch.manual_seed(1)
    clf = SequenceClassifier("lstm", 3, 5, 3, layers=2, bidirectional=bidirectional, readout=readout).double()
    tagger = SequenceTagger("gru", 3, 5, 3, layers=2, bidirectional=bidirectional).double()
    with_nan, _, mask = _padded(garbage=float("nan"))
    with_big, _, _ = _padded(garbage=1e4)
    a, b = clf(with_nan, LENGTHS), clf(with_big, LENGTHS)
    assert torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    ta, tb = tagger(with_nan, LENGTHS), tagger(with_big, LENGTHS)
    torch.testing.assert_close(ta[mask], tb[mask], rtol=0, atol=1e-12)
    assert torch.isfinite(ta[mask]).all()


def _alone(model, x_b):
    """The stack's outputs for one unpadded sequence (1, n, I) -> (n, H)."""
    y, _ = model.rnn(x_b)
    return y[0]


@pytest.mark.parametrize("readout", ["last", "mean", "max", "attention"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_each_readout_equals_a_hand_computation_on_each_sequence_alone(readout, bidirectional):
    torch.manual_seed(2)
    model = SequenceClassifier("gru", 3, 4, 3, bidirectional=bidirectional, readout=readout).double()
    x, _, _ = _padded(seed=3, garbage=7.0)
    logits = model(x, LENGTHS)
    H = model.rnn.output_size
    for b, n in enumerate(LENGTHS.tolist()):
        y = _alone(model, x[b:b + 1, :n])  # (n, H), no padding anywhere
        if readout == "last":
            pooled = torch.cat([y[-1, :H // 2], y[0, H // 2:]]) if bidirectional else y[-1]
        elif readout == "mean":
            pooled = y.sum(0) / n
        elif readout == "max":
            pooled = y.max(0).values
        else:
            scores = torch.stack([model.query @ torch.tanh(model.attention_proj.weight @ y[t] + model.attention_proj.bias)
                                  for t in range(n)])
            alpha = scores.exp() / scores.exp().sum()
            pooled = (alpha.unsqueeze(1) * y).sum(0)
        torch.testing.assert_close(logits[b], model.head(pooled), rtol=1e-9, atol=1e-9)


def test_attention_weights_are_zero_past_each_length_and_sum_to_one():
    torch.manual_seed(4)
    model = SequenceClassifier("lstm", 3, 4, 2, readout="attention").double()
    x, _, mask = _padded(seed=5, garbage=3.0)
    y, lengths = model.encode(x, LENGTHS)
    alpha = model.attention_weights(y, lengths)
    assert (alpha[~mask] == 0).all() and (alpha[mask] > 0).all()
    torch.testing.assert_close(alpha.sum(1), torch.ones(4, dtype=torch.float64))


def test_bidirectional_last_reads_the_forward_end_and_the_backward_start():
    torch.manual_seed(5)
    model = SequenceClassifier("lstm", 3, 4, 2, bidirectional=True, readout="last").double()
    x, _, _ = _padded(seed=6, garbage=0.5)
    y, lengths = model.encode(x, LENGTHS)
    pooled = model.pool(y, lengths)
    layer = model.rnn.layers[0]
    for b, n in enumerate(LENGTHS.tolist()):
        seq = x[b:b + 1, :n]
        _, s_fwd = layer.forward_layer(seq)  # the forward direction after reading x_1..x_n
        _, s_bwd = layer.backward_layer(seq.flip(1))  # the backward direction after reading x_n..x_1
        torch.testing.assert_close(pooled[b, :4], s_fwd.h[0])
        torch.testing.assert_close(pooled[b, 4:], s_bwd.h[0])
        if n > 1:  # a wrong pick (the backward half at the last step) would differ
            assert not torch.allclose(pooled[b, 4:], y[b, n - 1, 4:])


def test_tagger_masked_loss_is_the_mean_of_per_token_losses_one_sequence_at_a_time():
    torch.manual_seed(6)
    tagger = SequenceTagger("lstm", 3, 5, 4, bidirectional=True).double()
    x, _, _ = _padded(seed=7, garbage=2.0)
    targets = torch.randint(0, 4, (4, 6))
    targets[~(torch.arange(6) < LENGTHS.unsqueeze(1))] = 99  # padding labels must be ignored
    loss = tagger.loss(tagger(x, LENGTHS), targets, LENGTHS)
    per_token = []
    for b, n in enumerate(LENGTHS.tolist()):
        z = tagger(x[b:b + 1, :n])[0]  # (n, C), this sequence alone
        per_token += [-torch.log_softmax(z[t], 0)[targets[b, t]] for t in range(n)]
    torch.testing.assert_close(loss, torch.stack(per_token).mean())


def test_class_weights_weigh_the_loss_as_torch_cross_entropy_does():
    torch.manual_seed(7)
    w = torch.tensor([0.2, 3.0, 1.0])
    x, _, mask = _padded(seed=8, garbage=1.0)
    targets = torch.tensor([[0, 1, 2, 1, 1, 0], [1, 1, 0, 0, 0, 0], [2, 2, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0]])
    tagger = SequenceTagger("gru", 3, 4, 3, class_weights=w).double()
    plain = SequenceTagger("gru", 3, 4, 3).double()
    plain.load_state_dict({k: v for k, v in tagger.state_dict().items() if k != "class_weights"})
    z = tagger(x, LENGTHS)
    nll = -torch.log_softmax(z[mask], -1).gather(1, targets[mask].unsqueeze(1)).squeeze(1)  # (N,)
    wy = w.double()[targets[mask]]
    torch.testing.assert_close(tagger.loss(z, targets, LENGTHS), (wy * nll).sum() / wy.sum())
    torch.testing.assert_close(tagger.loss(z, targets, LENGTHS), F.cross_entropy(z[mask], targets[mask], weight=w.double()))
    assert not torch.allclose(tagger.loss(z, targets, LENGTHS), plain.loss(z, targets, LENGTHS))

    clf = SequenceClassifier("gru", 3, 4, 3, readout="mean", class_weights=[0.2, 3.0, 1.0]).double()
    zc, yc = clf(x, LENGTHS), torch.tensor([1, 0, 2, 1])
    nll = -torch.log_softmax(zc, -1)[torch.arange(4), yc]
    torch.testing.assert_close(clf.loss(zc, yc), (w.double()[yc] * nll).sum() / w.double()[yc].sum())


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown readout 'median'"):
        SequenceClassifier("lstm", 3, 4, 2, readout="median")
    with pytest.raises(ValueError, match="unknown cell 'lsmt'"):
        SequenceTagger("lsmt", 3, 4, 2)
    with pytest.raises(ValueError, match="expected num_classes to be an integer >= 2"):
        SequenceTagger("lstm", 3, 4, 1)
    with pytest.raises(ValueError, match=r"expected class_weights of shape \(3,\)"):
        SequenceTagger("lstm", 3, 4, 3, class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="expected class_weights finite, >= 0"):
        SequenceClassifier("lstm", 3, 4, 2, class_weights=[1.0, -2.0])
    model = SequenceClassifier("lstm", 3, 4, 2)
    x = torch.randn(2, 5, 3)
    with pytest.raises(ValueError, match="at most the padded length T=5"):
        model(x, [5, 6])
    with pytest.raises(ValueError, match="at least 1"):
        model(x, [0, 3])
    with pytest.raises(ValueError, match=r"expected input of shape \(B, T, 3\)"):
        model(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match=r"expected targets in \[0, 2\)"):
        model.loss(model(x), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"expected targets of shape \(2,\)"):
        model.loss(model(x), torch.tensor([[0, 1]]))
    tagger = SequenceTagger("gru", 3, 4, 2, vocab_size=10)
    with pytest.raises(ValueError, match="expected token ids"):
        tagger(x)
    with pytest.raises(ValueError, match=r"in \[0, 10\)"):
        tagger(torch.tensor([[1, 10]]))
    with pytest.raises(ValueError, match=r"expected logits of shape \(B, T, 2\)"):
        tagger.loss(torch.randn(2, 3), torch.zeros(2, 3, dtype=torch.long))


def _train(model, x, targets, lengths, steps=40):
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        z = model(x, lengths)
        loss = model.loss(z, targets, lengths) if isinstance(model, SequenceTagger) else model.loss(z, targets)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_a_short_training_lowers_both_losses():
    torch.manual_seed(8)
    B, T, V = 32, 8, 5
    ids = torch.randint(0, V, (B, T))
    lengths = torch.randint(2, T + 1, (B,))
    # tagging: the label is whether the previous token equals the current one (needs memory of one step)
    prev = torch.cat([torch.full((B, 1), -1), ids[:, :-1]], 1)
    tags = (prev == ids).long()
    tagger = SequenceTagger("gru", 8, 16, 2, vocab_size=V)
    losses = _train(tagger, ids, tags, lengths)
    assert losses[-1] < 0.5 * losses[0]
    # classification: does token 0 occur within the valid steps?
    valid = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)
    labels = ((ids == 0) & valid).any(1).long()
    clf = SequenceClassifier("lstm", 8, 16, 2, vocab_size=V, readout="max", bidirectional=True)
    losses = _train(clf, ids, labels, lengths)
    assert losses[-1] < 0.5 * losses[0]
