"""``Seq2Seq`` and ``AttentionDecoder``: teacher-forced ``forward`` equals a loop of ``step`` (float64, every
attention kind, with and without input feeding), incremental decoding equals re-running the whole
prefix, the bridge between LSTM and GRU stacks of different sizes (its formula, and the gradient it
carries), padding that never changes a result, the loss with label smoothing against its formula,
scheduled sampling, a tree encoder through the adapter, and the errors."""

import math

import pytest
import torch

from carousel.models import AttentionDecoder, DecoderState, Memory, Seq2Seq, SourceEncoder, TreeSourceEncoder
from carousel.state import GRUState, LSTMState
from carousel.structures import TreeBatch, TreeEncoder


def batch(B=3, S=6, T=5, V=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    source = torch.randint(3, V, (B, S), generator=g)
    lengths = torch.tensor([S, 3, 1][:B])
    inputs = torch.randint(1, V, (B, T), generator=g)
    return source, lengths, inputs


def model(**kw):
    torch.manual_seed(kw.pop("seed", 0))
    base = dict(embed_size=5, hidden_size=6)
    return Seq2Seq(kw.pop("cell", "lstm"), 9, 9, **{**base, **kw}).double().eval()


CONFIGS = [
    dict(attention="additive", input_feeding=True),
    dict(attention="general", input_feeding=False),
    dict(attention="dot", input_feeding=True, decoder_hidden=12),  # dot: the decoder's h meets the 2 x 6 keys
    dict(attention="none", bidirectional=False, cell="gru"),
    dict(attention="additive", input_feeding=False, tie_embedding=True, layers=2, decoder_cell="gru"),
]


def step_loop(m, source, lengths, inputs):
    state, memory = m.start(source, lengths)
    outs, maps = [], []
    for t in range(inputs.shape[1]):
        z, state, w = m.decoder.step(inputs[:, t], state, memory)
        outs.append(z)
        maps.append(w)
    return torch.stack(outs, 1), (None if maps[0] is None else torch.stack(maps, 1))


@pytest.mark.parametrize("config", CONFIGS)
def test_forward_equals_a_loop_of_steps(config):
    m = model(**config)
    source, lengths, inputs = batch()
    logits, attention = m(source, lengths, inputs)
    z, w = step_loop(m, source, lengths, inputs)
    torch.testing.assert_close(logits, z)
    if config["attention"] == "none":
        assert attention is None and w is None
    else:
        torch.testing.assert_close(attention, w)
        torch.testing.assert_close(attention.sum(-1), torch.ones(3, 5, dtype=torch.float64))
        pad = torch.arange(6) >= lengths.unsqueeze(1)  # (B, S)
        assert bool((attention.transpose(1, 2)[pad] == 0).all())


@pytest.mark.parametrize("config", CONFIGS[:2])
def test_incremental_decoding_equals_rerunning_the_prefix(config):
    m = model(**config)
    source, lengths, inputs = batch()
    state, memory = m.start(source, lengths)
    for t in range(inputs.shape[1]):
        z, state, _ = m.decoder.step(inputs[:, t], state, memory)  # the state carried, one token fed
        full, _ = m(source, lengths, inputs[:, : t + 1])  # the whole prefix run again from the start
        torch.testing.assert_close(z, full[:, -1])


def test_padding_past_the_source_end_changes_nothing():
    m = model()
    source, lengths, inputs = batch()
    logits, attention = m(source, lengths, inputs)
    junk = torch.where(torch.arange(6) < lengths.unsqueeze(1), source, torch.full_like(source, 8))
    l2, a2 = m(junk, lengths, inputs)
    torch.testing.assert_close(l2, logits)
    torch.testing.assert_close(a2, attention)
    alone, _ = m(source[2:, :1], None, inputs[2:])  # row 2 is one token long: the same without padding
    torch.testing.assert_close(alone, logits[2:])


@pytest.mark.parametrize("enc, dec", [("lstm", "gru"), ("gru", "lstm")])
def test_the_bridge_between_cells_of_different_sizes(enc, dec):
    m = model(cell=enc, decoder_cell=dec, hidden_size=4, decoder_hidden=7, layers=2, attention="none")
    source, lengths, inputs = batch()
    init, memory = m.encode(source, lengths)
    per_direction = 8 if enc == "lstm" else 4  # h (and c) of 4 units
    assert init.shape == (3, 2 * 2 * per_direction)  # 2 layers x 2 directions
    # the top layer's forward h is its output at each source's last token, its backward h the output at the first
    off = 2 * per_direction  # after the first layer's two directions
    last = memory.keys[torch.arange(3), lengths - 1]  # (B, 8)
    torch.testing.assert_close(init[:, off: off + 4], last[:, :4])
    torch.testing.assert_close(init[:, off + per_direction: off + per_direction + 4], memory.keys[:, 0, 4:])
    state = m.decoder.initial_state(init, None, 3)
    for layer, s in enumerate(state.rnn):
        assert isinstance(s, LSTMState if dec == "lstm" else GRUState) and s.h.shape == (3, 7)
        for k, part in enumerate(s):  # every component: tanh(W init + b)
            lin = m.decoder.init_maps[layer][k]
            torch.testing.assert_close(part, torch.tanh(init @ lin.weight.T + lin.bias))
    # with no attention, the source reaches the decoder only through the bridge
    logits, _ = m(source, lengths, inputs)
    m.loss(logits, inputs).backward()
    grad = m.encoder.embedding.weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0


def test_loss_with_label_smoothing_against_its_formula():
    m = model()
    source, lengths, inputs = batch()
    with torch.no_grad():
        logits, _ = m(source, lengths, inputs)
    targets, tl = inputs, torch.tensor([5, 2, 4])
    ls, V = 0.1, 9
    logp = torch.log_softmax(logits, -1)
    total, n = 0.0, 0
    for b in range(3):
        for t in range(int(tl[b])):
            q = torch.full((V,), ls / V, dtype=torch.float64)
            q[targets[b, t]] += 1 - ls
            total += float(-(q * logp[b, t]).sum())
            n += 1
    assert math.isclose(float(m.loss(logits, targets, tl, label_smoothing=ls)), total / n, rel_tol=1e-9)
    junk = torch.where(torch.arange(5) < tl.unsqueeze(1), targets, torch.zeros_like(targets))
    assert float(m.loss(logits, junk, tl)) == float(m.loss(logits, targets, tl))


def test_scheduled_sampling():
    m = model()
    source, lengths, inputs = batch()
    teacher, _ = m(source, lengths, inputs)
    same, _ = m(source, lengths, inputs, sampling_eps=1.0)
    torch.testing.assert_close(same, teacher)
    own, _ = m(source, lengths, inputs, sampling_eps=0.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(own[:, 0], teacher[:, 0])  # the first input is always the start token
    assert not torch.allclose(own[:, 1:], teacher[:, 1:])
    # eps = 0 feeds the model's own samples: redo them with the same generator's draws
    g = torch.Generator().manual_seed(0)
    torch.rand(3, 5, generator=g)  # the coins come first
    state, memory = m.start(source, lengths)
    prev = inputs[:, 0]
    for t in range(5):
        z, state, _ = m.decoder.step(prev, state, memory)
        torch.testing.assert_close(z, own[:, t])
        prev = torch.multinomial(torch.softmax(z.float(), -1), 1, generator=g).squeeze(1)


def test_tied_embedding_shares_the_weights():
    m = model(tie_embedding=True, attention="none", hidden_size=8)
    assert m.decoder.out.weight is m.decoder.embedding.weight
    assert sum(p is m.decoder.embedding.weight for p in m.parameters()) == 1


def test_a_tree_encoder_through_the_adapter():
    torch.manual_seed(0)
    trees = TreeBatch.from_brackets(["(S (A a b) c)", "(T t)"])
    vocab = trees.vocabulary()
    trees = trees.encode(vocab)
    encoder = TreeSourceEncoder(TreeEncoder(len(vocab), 5, 6))
    m = Seq2Seq("gru", None, 9, embed_size=5, hidden_size=6, encoder=encoder, attention="general")
    inputs = torch.randint(1, 9, (2, 4))
    logits, attention = m(trees, None, inputs)
    assert logits.shape == (2, 4, 9) and attention.shape == (2, 4, 5)
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, 4))
    assert bool((attention[1, :, 2:] == 0).all())  # the second tree has 2 nodes
    m.loss(logits, inputs).backward()
    assert float(encoder.tree_encoder.embedding.weight.grad.abs().sum()) > 0


def test_errors():
    m = model()
    source, lengths, inputs = batch()
    with pytest.raises(ValueError, match=r"expected a source of at least one token, got an empty source of shape \(3, 0\)"):
        m(source[:, :0], None, inputs)
    with pytest.raises(ValueError, match=r"expected source token ids in \[0, 9\)"):
        m(source + 10, lengths, inputs)
    with pytest.raises(ValueError, match=r"expected decoder input ids in \[0, 9\)"):
        m(source, lengths, inputs + 10)
    with pytest.raises(ValueError, match="expected every length to be at most the padded length T=6, got a length of 7"):
        m(source, torch.tensor([7, 1, 1]), inputs)
    with pytest.raises(ValueError, match="attention 'additive' needs something to attend to"):
        AttentionDecoder("lstm", 9)
    with pytest.raises(ValueError, match="dot attention needs query_size == key_size, got 6 and 12"):
        Seq2Seq("lstm", 9, 9, hidden_size=6, attention="dot")
    with pytest.raises(ValueError, match="unknown attention 'luong'"):
        Seq2Seq("lstm", 9, 9, attention="luong")
    with pytest.raises(TypeError, match="expected encoder as an nn.Module with encode"):
        Seq2Seq("lstm", None, 9, encoder=object())
    d = AttentionDecoder("gru", 9, memory_size=4, hidden_size=6)
    with pytest.raises(ValueError, match=r"expected memory keys of shape \(2, S, 4\)"):
        d.initial_state(None, Memory(torch.randn(2, 3, 5), None), 2)
    with pytest.raises(ValueError, match="no bridge"):
        d.initial_state(torch.randn(2, 3), Memory(torch.randn(2, 3, 4), None), 2)
    assert isinstance(d.initial_state(None, Memory(torch.randn(2, 3, 4), None), 2), DecoderState)
    assert SourceEncoder("lstm", 9, hidden_size=3, layers=2).init_size == 2 * 2 * 2 * 3
