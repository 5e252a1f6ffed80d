"""``Attention``: each score against its formula written out (seeded weights, float64), weights that sum
to one over the valid keys and are exactly zero on padding (whatever the padding holds), T queries at
once equal to one at a time, gradients (gradcheck), and the errors."""

import pytest
import torch

from carousel.layers import ATTENTION_KINDS, Attention


def inputs(B=3, S=5, Q=4, K=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, Q, generator=g, dtype=torch.float64)
    k = torch.randn(B, S, K, generator=g, dtype=torch.float64)
    lengths = torch.tensor([S, 2, 1][:B])
    mask = torch.arange(S).unsqueeze(0) < lengths.unsqueeze(1)
    return q, k, mask


@pytest.mark.parametrize("kind", ["additive", "general", "dot"])
def test_scores_follow_their_formulas(kind):
    torch.manual_seed(1)
    att = Attention(4, 4, kind).double()
    q, k, _ = inputs()
    context, weights = att(q, k)
    e = torch.zeros(3, 5, dtype=torch.float64)
    for b in range(3):
        for j in range(5):
            if kind == "additive":  # v^T tanh(W_q q + W_k k + b)
                e[b, j] = att.v @ torch.tanh(att.query_proj.weight @ q[b] + att.key_proj.weight @ k[b, j] + att.key_proj.bias)
            elif kind == "general":  # q^T W k
                e[b, j] = q[b] @ att.weight.weight @ k[b, j]
            else:
                e[b, j] = q[b] @ k[b, j]
    alpha = torch.exp(e) / torch.exp(e).sum(1, keepdim=True)
    torch.testing.assert_close(weights, alpha)
    torch.testing.assert_close(context, torch.einsum("bs,bsk->bk", alpha, k))


@pytest.mark.parametrize("kind", ["additive", "general", "dot"])
def test_weights_sum_to_one_and_ignore_padding(kind):
    torch.manual_seed(2)
    att = Attention(4, 4, kind).double()
    q, k, mask = inputs()
    context, weights = att(q, k, mask)
    torch.testing.assert_close(weights.sum(1), torch.ones(3, dtype=torch.float64))
    assert bool((weights[~mask] == 0).all()) and bool((weights[mask] > 0).all())
    junk = torch.where(mask.unsqueeze(-1), k, torch.full_like(k, 1e3))  # the padding changed to something huge
    c2, w2 = att(q, junk, mask)
    torch.testing.assert_close(c2, context)
    torch.testing.assert_close(w2, weights)
    # the valid part alone gives the same result
    c1, w1 = att(q[2:], k[2:, :1], None)
    torch.testing.assert_close(c1, context[2:])
    torch.testing.assert_close(w1, weights[2:, :1])


def test_many_queries_at_once_equal_one_at_a_time():
    torch.manual_seed(3)
    att = Attention(6, 4, "additive", attention_size=7).double()
    _, k, mask = inputs()
    qs = torch.randn(3, 4, 6, dtype=torch.float64)
    c, w = att(qs, k, mask)
    for t in range(4):
        ct, wt = att(qs[:, t], k, mask)
        torch.testing.assert_close(c[:, t], ct)
        torch.testing.assert_close(w[:, t], wt)


@pytest.mark.parametrize("kind", ["additive", "general", "dot"])
def test_gradcheck(kind):
    torch.manual_seed(4)
    att = Attention(4, 4, kind).double()
    q, k, mask = inputs(B=2, S=3)
    assert torch.autograd.gradcheck(lambda a, b: att(a, b, mask), (q.requires_grad_(), k.requires_grad_()))


def test_errors():
    assert ATTENTION_KINDS == ("none", "additive", "general", "dot")
    with pytest.raises(ValueError, match="unknown attention kind 'none'"):
        Attention(4, 4, "none")
    with pytest.raises(ValueError, match="dot attention needs query_size == key_size, got 3 and 4"):
        Attention(3, 4, "dot")
    with pytest.raises(ValueError, match="attention_size is used by the additive score only"):
        Attention(4, 4, "general", attention_size=3)
    att = Attention(4, 4)
    q, k = torch.randn(2, 4), torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match=r"expected keys of shape \(B, S, 4\) with S >= 1, got \(2, 0, 4\)"):
        att(q, k[:, :0])
    with pytest.raises(ValueError, match=r"expected query of shape \(2, 4\) or \(2, T, 4\), got \(3, 4\)"):
        att(torch.randn(3, 4), k)
    with pytest.raises(ValueError, match=r"expected mask as a bool tensor of shape \(2, 3\)"):
        att(q, k, torch.ones(2, 3))
    with pytest.raises(ValueError, match="at least one valid key per row"):
        att(q, k, torch.tensor([[True, False, False], [False, False, False]]))


@pytest.mark.parametrize("kind", ["additive", "general", "dot"])
def test_dtype_errors_name_what_was_given(kind):
    """A float64 query or keys for float32 weights (or keys of another dtype than the query for the
    weightless dot score), or integer inputs, are refused in carousel's words, not torch's matmul error."""
    att = Attention(4, 4, kind)
    q, k = torch.randn(2, 4), torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match="expected query as a floating-point tensor, got dtype torch.int64"):
        att(q.long(), k)
    with pytest.raises(ValueError, match="expected keys as a floating-point tensor, got dtype torch.int64"):
        att(q, k.long())
    with pytest.raises(ValueError, match=r"expected keys of dtype torch.float32 \(that of the (attention's parameters|keys)\), got torch.float64|"
                                         r"expected query of dtype torch.float64 \(that of the keys\), got torch.float32"):
        att(q, k.double())
    with pytest.raises(ValueError, match=r"expected query of dtype torch.float(32|64) .*, got torch.float(64|32)"):
        att(q.double(), k)
    context, weights = att(q.double(), k.double()) if kind == "dot" else att(q, k)  # matching dtypes still work
    assert torch.allclose(weights.sum(-1), torch.ones(2, dtype=weights.dtype))
