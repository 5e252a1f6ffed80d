"""Embedding dropout: whole rows (token types) dropped, one mask over the vocabulary per call."""

import pytest
import torch
import torch.nn.functional as F

from carousel.regularize import EmbeddingDropout, bernoulli_mask, hold_masks


def _embedding(seed=0, **kw):
    torch.manual_seed(seed)
    return torch.nn.Embedding(50, 6, **kw)


def test_equals_a_lookup_in_the_row_masked_matrix():
    emb = _embedding()
    drop = EmbeddingDropout(emb, 0.3)
    ids = torch.randint(0, 50, (4, 9))
    torch.manual_seed(1)
    out = drop(ids)
    torch.manual_seed(1)
    m = bernoulli_mask((50,), 0.3, emb.weight)
    ref = F.embedding(ids, emb.weight * m.unsqueeze(1))  # E' = diag(m) E
    torch.testing.assert_close(out, ref)


def test_a_dropped_type_vanishes_at_every_position():
    emb = _embedding()
    drop = EmbeddingDropout(emb, 0.5)
    ids = torch.arange(50).repeat(3, 2)  # every type, six times over
    torch.manual_seed(2)
    out = drop(ids)  # (3, 100, 6)
    zero = (out == 0).all(-1)  # (3, 100)
    for v in range(50):
        where = zero[ids == v]
        assert bool(where.all()) or not bool(where.any()), f"type {v} was dropped at some positions only"
    assert 0 < int(zero.sum()) < zero.numel()
    kept = ~zero
    torch.testing.assert_close(out[kept], 2 * emb.weight[ids[kept]])


def test_gradient_reaches_only_kept_rows_and_evaluation_is_the_embedding():
    emb = _embedding(padding_idx=0)
    drop = EmbeddingDropout(emb, 0.5)
    ids = torch.randint(1, 50, (5, 7))
    torch.manual_seed(3)
    drop(ids).sum().backward()
    m = drop.current_mask
    used = torch.zeros(50, dtype=torch.bool)
    used[ids.unique()] = True
    g = emb.weight.grad
    assert bool((g[(m == 0) | ~used] == 0).all()) and bool((g[(m != 0) & used] != 0).all())
    drop.eval()
    assert torch.equal(drop(ids), emb(ids))
    assert torch.equal(drop(torch.zeros(2, 3, dtype=torch.long)), torch.zeros(2, 3, 6))


def test_same_seed_same_mask_and_hold_masks_keeps_it():
    drop = EmbeddingDropout(_embedding(), 0.4)
    ids = torch.randint(0, 50, (3, 5))
    torch.manual_seed(4)
    a = drop(ids)
    torch.manual_seed(4)
    assert torch.equal(drop(ids), a)
    with hold_masks(drop):
        first = drop(ids[:, :1])
        assert all(torch.equal(drop(ids[:, :1]), first) for _ in range(3))
        m = drop.current_mask
        drop(ids[:2])  # a different batch still reads the same vocabulary mask
        assert drop.current_mask is m


def test_state_dict_keys_are_the_embeddings():
    emb = _embedding()
    drop = EmbeddingDropout(_embedding(seed=9), 0.1)
    assert list(drop.state_dict()) == ["weight"]
    drop.load_state_dict(emb.state_dict())
    assert torch.equal(drop.weight, emb.weight)


def test_bad_arguments():
    with pytest.raises(TypeError, match="expected a torch.nn.Embedding, got Linear"):
        EmbeddingDropout(torch.nn.Linear(2, 3), 0.1)
    with pytest.raises(ValueError, match=r"expected p in \[0, 1\), got 1.2"):
        EmbeddingDropout(_embedding(), 1.2)
