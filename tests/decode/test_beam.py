"""Greedy, sampled and beam-search decoding: a hand-built decoder with known scores where greedy is wrong
and a beam of 2 finds the best; a beam wide enough to hold every prefix equals exhaustive search; beam
size 1 equals greedy; a batch equals its rows decoded alone; one decoder step per token (incremental);
top-k / top-p sampling; the attention maps; and the errors."""

import itertools
import math

import pytest
import torch

from carousel.decode import Hypotheses, StepDecoder, beam_search, gnmt_length_penalty, greedy_decode, sample_decode
from carousel.models import Seq2Seq, SequenceGenerator
from carousel.models.draw import next_token

PAD, START, END, A, B = 0, 1, 2, 3, 4


class TableDecoder:
    """Log-probabilities looked up per prefix (the tokens after the start token); the state is the prefix
    fed so far (B, t). Counts the tokens it is fed, to check that no search re-runs a prefix."""

    start_id, end_id, pad_id = START, END, PAD

    def __init__(self, table=None, seed=None, V=5):
        self.table, self.seed, self.V, self.fed, self.calls = table or {}, seed, V, 0, 0

    def probs(self, prefix):
        if self.seed is not None:  # a random distribution over end, a, b for every prefix
            g = torch.Generator().manual_seed(self.seed * 1000 + hash(prefix) % 100_000)
            p = torch.zeros(self.V, dtype=torch.float64)
            p[[END, A, B]] = torch.softmax(2 * torch.randn(3, generator=g, dtype=torch.float64), 0)
            return p
        p = torch.zeros(self.V, dtype=torch.float64)
        for token, value in self.table.get(prefix, {END: 1.0}).items():
            p[token] = value
        return p

    def initial(self, batch_size):
        return torch.zeros(batch_size, 0, dtype=torch.long)

    def step(self, tokens, state, memory):
        assert tokens.shape == (state.shape[0],)
        self.fed += tokens.numel()
        self.calls += 1
        state = torch.cat([state, tokens.unsqueeze(1)], 1)
        logp = torch.stack([self.probs(tuple(row[1:].tolist())).log() for row in state])
        return logp, state, None

    def reorder_state(self, state, index):
        return state.index_select(0, index)


KNOWN = {(): {END: 0.05, A: 0.55, B: 0.40}, (A,): {END: 0.4, A: 0.3, B: 0.3}, (B,): {END: 0.9, A: 0.05, B: 0.05}}


def test_beam_of_two_finds_the_best_where_greedy_fails():
    d = TableDecoder(KNOWN)
    g = greedy_decode(d, d.initial(1), None, max_length=5)
    assert g.tokens.tolist() == [[A, END]] and math.isclose(float(g.scores[0]), math.log(0.55 * 0.4), rel_tol=1e-6)
    b = beam_search(d, d.initial(1), None, beam_size=2, max_length=5, length_penalty=0.6)
    assert b.tokens.tolist() == [[B, END]] and b.lengths.tolist() == [2]
    assert math.isclose(float(b.scores[0]), math.log(0.4 * 0.9) / gnmt_length_penalty(2, 0.6), rel_tol=1e-6)
    one = beam_search(d, d.initial(1), None, beam_size=1, max_length=5)
    assert one.tokens.tolist() == [[A, END]]


def enumerate_best(d, max_length, alpha):
    best = (-math.inf, None)
    for n in range(1, max_length + 1):
        for body in itertools.product([A, B], repeat=n - 1):
            for last in ([END, A, B] if n == max_length else [END]):
                seq = body + (last,)
                logp = sum(math.log(d.probs(seq[:i])[t]) for i, t in enumerate(seq))
                score = logp / gnmt_length_penalty(n, alpha)
                if score > best[0]:
                    best = (score, list(seq))
    return best


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_beam_holding_every_prefix_equals_exhaustive_search(seed):
    d = TableDecoder(seed=seed)
    score, seq = enumerate_best(d, 4, 0.0)
    b = beam_search(d, d.initial(1), None, beam_size=8, max_length=4, length_penalty=0.0)
    assert b.tokens[0, : b.lengths[0]].tolist() == seq and math.isclose(float(b.scores[0]), score, rel_tol=1e-6)
    # with the length penalty the score returned is the normalised log-probability of what it returns
    b = beam_search(d, d.initial(1), None, beam_size=3, max_length=4, length_penalty=1.0)
    n = int(b.lengths[0])
    seq = b.tokens[0, :n].tolist()
    logp = sum(math.log(d.probs(tuple(seq[:i]))[t]) for i, t in enumerate(seq))
    assert math.isclose(float(b.scores[0]), logp / gnmt_length_penalty(n, 1.0), rel_tol=1e-6)


def test_a_batch_equals_its_rows_alone_and_each_token_is_fed_once():
    torch.manual_seed(0)
    m = Seq2Seq("gru", 8, 7, embed_size=4, hidden_size=5).eval()
    src = torch.randint(3, 8, (3, 5))
    lengths = torch.tensor([5, 2, 4])
    state, memory = m.start(src, lengths)
    whole = beam_search(m.decoder, state, memory, beam_size=3, max_length=6)
    for r in range(3):
        s, mem = m.start(src[r: r + 1, : int(lengths[r])])
        alone = beam_search(m.decoder, s, mem, beam_size=3, max_length=6)
        n = int(alone.lengths[0])
        assert whole.tokens[r, :n].tolist() == alone.tokens[0, :n].tolist() and int(whole.lengths[r]) == n
        assert math.isclose(float(whole.scores[r]), float(alone.scores[0]), rel_tol=1e-5)
        torch.testing.assert_close(whole.attention[r, :n, : int(lengths[r])], alone.attention[0, :n], atol=1e-6, rtol=1e-5)
    d = TableDecoder(seed=5)
    beam_search(d, d.initial(2), None, beam_size=3, max_length=6)
    assert d.fed == 2 * 3 * d.calls and d.calls <= 6  # B x beam new tokens per step, never a prefix again
    d.fed = 0
    out = greedy_decode(d, d.initial(2), None, max_length=6)
    assert d.fed == 2 * out.tokens.shape[1]


@pytest.mark.parametrize("seed", range(3))
def test_beam_of_one_is_greedy(seed):
    torch.manual_seed(seed)
    m = Seq2Seq("lstm", 8, 7, embed_size=4, hidden_size=5, attention="general").eval()
    src = torch.randint(3, 8, (6, 5))
    lengths = torch.tensor([5, 1, 2, 3, 4, 5])
    state, memory = m.start(src, lengths)
    g = greedy_decode(m.decoder, state, memory, max_length=7)
    for alpha in (0.0, 2.0):
        b = beam_search(m.decoder, state, memory, beam_size=1, max_length=7, length_penalty=alpha)
        assert torch.equal(b.lengths, g.lengths)
        for r in range(6):
            n = int(g.lengths[r])
            assert b.tokens[r, :n].tolist() == g.tokens[r, :n].tolist()
        torch.testing.assert_close(b.scores * gnmt_length_penalty(b.lengths.double(), alpha).float(), g.scores, atol=1e-5, rtol=1e-5)


def test_a_sequence_generator_through_the_step_adapter():
    torch.manual_seed(2)
    gen = SequenceGenerator("gru", 3, 6, embed_size=4, hidden_size=5).eval()
    cond = torch.randn(4, 3)
    ref = gen.generate(cond, 6, greedy=True)
    g = greedy_decode(StepDecoder(gen), gen.initial_state(cond), None, max_length=6)
    assert torch.equal(g.tokens, ref.tokens[:, : g.tokens.shape[1]]) and torch.equal(g.lengths, ref.lengths)
    b = beam_search(StepDecoder(gen), gen.initial_state(cond), None, beam_size=1, max_length=6)
    assert torch.equal(b.lengths, g.lengths) and b.attention is None
    with pytest.raises(TypeError, match="without step"):
        StepDecoder(torch.nn.Linear(2, 2))


def test_attention_maps_and_padding_of_the_hypotheses():
    torch.manual_seed(1)
    m = Seq2Seq("lstm", 8, 7, embed_size=4, hidden_size=5).eval()
    src, lengths = torch.randint(3, 8, (4, 6)), torch.tensor([6, 3, 1, 2])
    state, memory = m.start(src, lengths)
    for h in (greedy_decode(m.decoder, state, memory, max_length=5), beam_search(m.decoder, state, memory, beam_size=2, max_length=5)):
        assert isinstance(h, Hypotheses)
        L = h.tokens.shape[1]
        emitted = torch.arange(L) < h.lengths.unsqueeze(1)  # (B, L)
        assert bool((h.tokens[~emitted] == PAD).all()) and bool((h.tokens[emitted] != PAD).all())
        sums = h.attention.sum(-1)
        torch.testing.assert_close(sums[emitted], torch.ones(int(emitted.sum())))
        assert bool((sums[~emitted] == 0).all())
        pad = (torch.arange(6) >= lengths.unsqueeze(1)).unsqueeze(1).expand(-1, L, -1)
        assert bool((h.attention[pad] == 0).all())
        ended = h.lengths < L
        assert bool((h.tokens[ended, h.lengths[ended] - 1] == END).all())


def test_sampling_top_k_top_p_and_seeds():
    d = TableDecoder(seed=7)
    g = greedy_decode(d, d.initial(3), None, max_length=5)
    for kw in ({"top_k": 1}, {"top_p": 1e-6}, {"temperature": 0.0}):
        s = sample_decode(d, d.initial(3), None, max_length=5, **kw)
        assert torch.equal(s.tokens, g.tokens)
    a = sample_decode(d, d.initial(3), None, max_length=5, generator=torch.Generator().manual_seed(3))
    b = sample_decode(d, d.initial(3), None, max_length=5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.tokens, b.tokens)
    # top_p keeps the smallest set whose probability reaches p: here tokens 0 and 1 (0.5 + 0.3 >= 0.7)
    z = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log().expand(20000, 4)
    draws = next_token(z, top_p=0.7, banned=None, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(draws, minlength=4)
    assert counts[2] == 0 and counts[3] == 0
    assert abs(float(counts[0]) / 20000 - 0.625) < 0.015  # 0.5 / 0.8


def test_errors():
    d = TableDecoder(KNOWN)
    with pytest.raises(ValueError, match="expected beam_size to be an integer >= 1, got 0"):
        beam_search(d, d.initial(1), None, beam_size=0)
    with pytest.raises(ValueError, match="expected length_penalty >= 0"):
        beam_search(d, d.initial(1), None, length_penalty=-1.0)
    with pytest.raises(ValueError, match="expected max_length to be an integer >= 1, got 0"):
        greedy_decode(d, d.initial(1), None, max_length=0)
    with pytest.raises(ValueError, match=r"expected top_p in \(0, 1\]"):
        sample_decode(d, d.initial(1), None, max_length=3, top_p=0.0)
    with pytest.raises(TypeError, match="without reorder_state"):
        beam_search(object.__new__(type("NoReorder", (), {"step": 1, "start_id": 1, "end_id": 2, "pad_id": 0})), None, None)


def test_memory_of_another_batch_is_named_in_the_callers_shapes():
    """Memory with fewer rows than the state is refused before the beam repeats it, with the shape given
    (not the B x beam rows it would have after expanding)."""
    from carousel.models.seq2seq import Memory

    torch.manual_seed(0)
    model = Seq2Seq("gru", 7, 7, embed_size=4, hidden_size=6).eval()
    source = torch.tensor([[4, 5, 6], [5, 6, 0]])
    state, memory = model.start(source, torch.tensor([3, 2]))
    wrong = Memory(memory.keys[:1], memory.mask[:1])
    with pytest.raises(ValueError, match=r"expected memory tensors of 2 rows, one per row of the decoder state \(B=2\), got shape \(1, 3, 12\)"):
        beam_search(model.decoder, state, wrong, beam_size=3, max_length=4)
    assert beam_search(model.decoder, state, memory, beam_size=3, max_length=4).tokens.shape[0] == 2
