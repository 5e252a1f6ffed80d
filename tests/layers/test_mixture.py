"""MixtureOfExperts: the dense mixture, the sparse top-k routing against its dense formula, the
load-balancing loss, gradients, and the errors for bad arguments."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from carousel.cells import importance_loss
from carousel.layers import MixtureOfExperts

D = torch.float64
I, O, K = 3, 4, 5


class Counting(nn.Module):
    """An expert that records how many rows each call received."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.rows: list[int] = []

    def forward(self, x):
        self.rows.append(x.shape[0])
        return self.inner(x)


def experts(k=K, dtype=D, hidden=True):
    torch.manual_seed(0)
    make = (lambda: nn.Sequential(nn.Linear(I, 6, dtype=dtype), nn.Tanh(), nn.Linear(6, O, dtype=dtype))) if hidden \
        else (lambda: nn.Linear(I, O, dtype=dtype))
    return [Counting(make()) for _ in range(k)]


def dense_reference(moe: MixtureOfExperts, x, keep: int | None = None):
    """The mixture written out: softmax gate, every expert on every row, the unkept gates zeroed
    and the rest renormalised."""
    flat = x.reshape(-1, I)
    g = torch.softmax(moe.gate(flat), dim=-1)  # (N, K)
    if keep is not None:
        kth = g.sort(dim=-1, descending=True).values[:, keep - 1 : keep]  # (N, 1): the k-th largest
        g = torch.where(g >= kth, g, torch.zeros_like(g))
        g = g / g.sum(-1, keepdim=True)
    outs = torch.stack([e.inner(flat) for e in moe.experts], dim=1)  # (N, K, O)
    return (g.unsqueeze(-1) * outs).sum(1).reshape(*x.shape[:-1], O), g


def test_one_expert_mixture_equals_its_expert_values_and_gradients():
    (expert,) = experts(1)
    moe = MixtureOfExperts([expert], I).to(D)
    x = torch.randn(6, 2, I, dtype=D, requires_grad=True)
    y = moe(x)
    x2 = x.detach().clone().requires_grad_()
    ref = expert.inner(x2.reshape(-1, I)).reshape(6, 2, O)
    torch.testing.assert_close(y, ref, rtol=0, atol=0)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    grads = [p.grad.clone() for p in expert.parameters()]
    for p in expert.parameters():
        p.grad = None
    (ref * w).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    for g, p in zip(grads, expert.parameters()):
        torch.testing.assert_close(g, p.grad)
    assert moe.aux_loss.item() == 0.0


def test_dense_mixture_matches_the_formula_and_gates_sum_to_one():
    moe = MixtureOfExperts(experts(), I).to(D)
    x = torch.randn(7, 3, I, dtype=D)
    y = moe(x)
    ref, g = dense_reference(moe, x)
    torch.testing.assert_close(y, ref)
    assert moe.last_gates.shape == (7, 3, K)
    torch.testing.assert_close(moe.last_gates.sum(-1), torch.ones(7, 3, dtype=D))
    torch.testing.assert_close(moe.last_gates.reshape(-1, K), g)
    assert bool((moe.last_gates > 0).all())  # dense: every expert weighted


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_matches_the_dense_formula_with_other_gates_zeroed(k):
    moe = MixtureOfExperts(experts(), I, top_k=k).to(D)
    x = torch.randn(40, I, dtype=D)
    y = moe(x)
    ref, g = dense_reference(moe, x, keep=k)
    torch.testing.assert_close(y, ref)
    torch.testing.assert_close(moe.last_gates, g)
    assert ((moe.last_gates > 0).sum(-1) == k).all()
    torch.testing.assert_close(moe.last_gates.sum(-1), torch.ones(40, dtype=D))


def test_top_k_calls_each_expert_only_on_its_rows_and_unchosen_experts_get_no_gradient():
    ex = experts()
    moe = MixtureOfExperts(ex, I, top_k=2).to(D)
    x = torch.randn(30, I, dtype=D, requires_grad=True)
    y = moe(x)
    chosen = moe.last_gates > 0  # (N, K)
    # exactly k experts per row, and each expert saw exactly the rows routed to it, in one call
    assert (chosen.sum(-1) == 2).all()
    for k, e in enumerate(ex):
        assert e.rows == ([int(chosen[:, k].sum())] if chosen[:, k].any() else [])
    # row 0's output depends on its two chosen experts only
    y[0].sum().backward()
    for k, e in enumerate(ex):
        has_grad = any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in e.parameters())
        assert has_grad == bool(chosen[0, k]), (k, chosen[0])
    assert x.grad[1:].abs().sum() == 0  # other rows untouched


def test_an_expert_no_row_chooses_is_not_called():
    ex = experts(3)
    gate = nn.Linear(I, 3, dtype=D)
    with torch.no_grad():
        gate.weight.zero_()
        gate.bias.copy_(torch.tensor([5.0, 4.0, -5.0]))  # expert 2 never in the top 2
    moe = MixtureOfExperts(ex, gate, top_k=2)
    moe(torch.randn(10, I, dtype=D))
    assert ex[0].rows == [10] and ex[1].rows == [10] and ex[2].rows == []


def test_gradcheck_dense_and_top_k_in_float64():
    for k in (None, 2):
        moe = MixtureOfExperts(experts(3, hidden=False), I, top_k=k).to(D)
        x = torch.randn(4, I, dtype=D, requires_grad=True)
        assert torch.autograd.gradcheck(lambda t: moe(t), (x,))
        params = list(moe.parameters())
        assert torch.autograd.gradcheck(lambda *ps: torch.func.functional_call(
            moe, dict(zip([n for n, _ in moe.named_parameters()], ps)), (x.detach(),)), tuple(
            p.detach().clone().requires_grad_() for p in params))


def test_importance_loss_zero_when_balanced_positive_otherwise():
    balanced = torch.tensor([[0.7, 0.3], [0.3, 0.7]], dtype=D)
    assert importance_loss(balanced).item() == pytest.approx(0.0, abs=1e-12)
    assert importance_loss(torch.full((5, 4), 0.25, dtype=D)).item() == pytest.approx(0.0, abs=1e-12)
    skewed = torch.tensor([[0.9, 0.1], [0.8, 0.2]], dtype=D)
    imp = skewed.sum(0)
    expected = imp.var(unbiased=False) / imp.mean() ** 2  # CV^2 over the experts
    assert importance_loss(skewed).item() == pytest.approx(expected.item(), rel=1e-9)
    assert importance_loss(skewed).item() > 0
    # the layer reports it for its gates, and it pushes towards balance: its gradient is not zero
    moe = MixtureOfExperts(experts(), I).to(D)
    moe(torch.randn(8, I, dtype=D))
    assert moe.aux_loss.item() == pytest.approx(importance_loss(moe.last_gates).item())
    moe.aux_loss.backward()
    assert moe.gate.weight.grad.abs().sum() > 0


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="at least one expert"):
        MixtureOfExperts([], I)
    with pytest.raises(TypeError, match="list of modules"):
        MixtureOfExperts(nn.Linear(I, O), I)
    with pytest.raises(TypeError, match=r"experts\[1\]"):
        MixtureOfExperts([nn.Linear(I, O), "expert"], I)
    with pytest.raises(TypeError, match="gate"):
        MixtureOfExperts(experts(2), "linear")
    with pytest.raises(ValueError, match="gate"):
        MixtureOfExperts(experts(2), 0)
    for bad in (0, 3):
        with pytest.raises(ValueError, match=r"top_k in \[1, 2\]|top_k to be an integer >= 1"):
            MixtureOfExperts(experts(2), I, top_k=bad)
    with pytest.raises(TypeError, match="top_k"):
        MixtureOfExperts(experts(2), I, top_k=1.5)
    mixed = MixtureOfExperts([nn.Linear(I, O, dtype=D), nn.Linear(I, O + 1, dtype=D)], I).to(D)
    with pytest.raises(ValueError, match=r"same size; experts\[0\] gives 4, experts\[1\] gives 5"):
        mixed(torch.randn(3, I, dtype=D))
    moe = MixtureOfExperts(experts(2), I).to(D)
    with pytest.raises(ValueError, match=r"expected an input of shape \(\.\.\., 3\), got \(2, 4\)"):
        moe(torch.randn(2, 4, dtype=D))
    with pytest.raises(TypeError, match="input tensor"):
        moe([1.0, 2.0, 3.0])
    wrong_gate = MixtureOfExperts(experts(2), nn.Linear(I, 3, dtype=D))
    with pytest.raises(ValueError, match=r"logits of shape \(2, 2\), one per expert, got \(2, 3\)"):
        wrong_gate(torch.randn(2, I, dtype=D))
