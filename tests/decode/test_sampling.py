"""Sampling: the distribution drawn from, greedy decoding against re-reading the prefix, batching, bad input."""

import pytest
import torch

from carousel.data import Vocabulary
from carousel.decode import generate, next_token
from carousel.models import CharLM

TEXT = "abcde fghij\n"


def _setup(seed=0):
    vocab = Vocabulary.from_text(TEXT)
    torch.manual_seed(seed)
    model = CharLM(len(vocab), embed_size=5, hidden_size=16, layers=2).double()
    with torch.no_grad():
        model.head.weight.mul_(8.0)  # sharper distributions make the checks sensitive
    return model, vocab


def test_next_token_draws_from_softmax_over_temperature():
    z = torch.tensor([[0.0, 1.0, 2.0, 0.5, -1.0]]).repeat(20000, 1)
    g = torch.Generator().manual_seed(0)
    draws = next_token(z, temperature=2.0, banned=None, generator=g)
    freq = torch.bincount(draws, minlength=5).double() / draws.numel()
    p = torch.softmax(z[0].double() / 2.0, -1)
    assert (freq - p).abs().max() < 5 * (p * (1 - p) / draws.numel()).sqrt().max()


def test_top_k_and_banned_and_greedy():
    z = torch.tensor([[3.0, 0.0, 2.5, 1.0, 2.0]]).repeat(5000, 1)
    g = torch.Generator().manual_seed(1)
    draws = next_token(z, top_k=2, temperature=1.0, banned=0, generator=g)
    assert set(draws.tolist()) == {2, 4}  # the two best after the banned unknown symbol
    assert next_token(z[:3], temperature=0).tolist() == [2, 2, 2]
    assert next_token(z[:3], temperature=0, banned=None).tolist() == [0, 0, 0]
    assert set(next_token(z, top_k=1, generator=g).tolist()) == {2}


def test_greedy_generation_equals_rereading_the_prefix():
    model, vocab = _setup()
    model.eval()
    prime = "abc f"
    out = generate(model, vocab, prime, 25, temperature=0)
    text = prime
    with torch.no_grad():
        for _ in range(25):  # the slow reference: read the whole text again for each character
            z, _ = model(vocab.encode(text).unsqueeze(0), None)
            z = z[0, -1].clone()
            z[0] = float("-inf")
            text += vocab.symbols[int(z.argmax())]
    assert out.texts == [text[len(prime):]]
    assert out.chars_per_second > 0


def test_the_prefix_is_read_once_then_one_step_per_character():
    model, vocab = _setup()
    calls = []

    def spy(x, state):
        calls.append(tuple(x.shape))
        return model(x, state)

    generate(spy, vocab, "abcd", 10, num=3)
    assert calls[0] == (3, 4) and calls[1:] == [(3, 1)] * 10


def test_batched_samples_are_seeded_and_differ():
    model, vocab = _setup()
    model.train()
    a = generate(model, vocab, "ab", 40, num=4, seed=7)
    b = generate(model, vocab, "ab", 40, num=4, seed=7)
    assert a.texts == b.texts and len(set(a.texts)) > 1
    assert all(len(t) == 40 and set(t) <= set(TEXT) for t in a.texts)  # never the unknown symbol
    assert model.training  # the mode is restored


def test_bad_input():
    model, vocab = _setup()
    with pytest.raises(ValueError, match="temperature >= 0"):
        generate(model, vocab, "a", 5, temperature=-1)
    with pytest.raises(TypeError, match="top_k to be an integer >= 0, got float 1.5"):
        generate(model, vocab, "a", 5, top_k=1.5)
    with pytest.raises(ValueError, match="length to be an integer >= 1, got 0"):
        generate(model, vocab, "a", 0)
    with pytest.raises(TypeError, match="prime as a str"):
        generate(model, vocab, None, 5)
