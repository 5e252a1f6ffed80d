"""Kind 1 of the faults: second derivatives. Every cell on every backend that serves it either
differentiates twice exactly as the reference loop does (float64), or refuses with an error that
names ``backend='reference'``; never a silently wrong value. torch.func transforms likewise."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

import carousel as C
from carousel.runners import backend_names, resolve_backend, use_backend
from cell_zoo import CELLS, make_cell, random_state

B, T, I, H = 3, 5, 3, 4
LENGTHS = torch.tensor([5, 2, 4])


def serving(cell, x):
    """Every named backend that can run ``cell`` over ``x``."""
    names = []
    for name in backend_names():
        if name == "auto":
            continue
        try:
            resolve_backend(cell, x, name)
        except ValueError:
            continue
        names.append(name)
    return names


def gradient_penalty(cell, x, state, backend):
    """d/d(params, x, state) of || d loss / d x ||^2: the second derivative users of gradient penalties need."""
    out, final = C.run(cell, x, state, LENGTHS, backend=backend)
    loss = (out.sin() * torch.linspace(0.5, 1.5, out.shape[-1], dtype=out.dtype)).sum() + final[0].square().sum()
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    inputs = [x, *state, *cell.parameters()]
    return torch.autograd.grad(g.square().sum(), inputs, allow_unused=True)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_double_backward_equals_the_reference_or_is_refused(name):
    cell = make_cell(name, I, H)
    x = torch.randn(B, T, I, dtype=torch.float64, requires_grad=True)
    state = tuple(s.requires_grad_() for s in random_state(cell, B))
    want = gradient_penalty(cell, x, state, "reference")
    assert any(w is not None and bool(w.abs().sum() > 0) for w in want[len(state) + 1 :]), "the penalty reaches the weights"
    outcome = {}
    for backend in ["auto", *serving(cell, x.detach())]:
        try:
            got = gradient_penalty(cell, x, state, backend)
        except RuntimeError as err:
            assert "backend='reference'" in str(err) and "create_graph" in str(err), str(err)
            outcome[backend] = "refused"
            continue
        outcome[backend] = "exact"
        for w, g in zip(want, got):
            if w is None:
                assert g is None or bool((g == 0).all())
            else:
                torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-9, msg=lambda m: f"{name} on {backend}: {m}")
    # which paths differentiate twice: torch's kernels and the reference do, written-out backwards refuse
    assert outcome.get("fused", "exact") == "exact" and outcome.get("explicit", "refused") == "refused"
    assert outcome.get("scan", "refused") == "refused" and outcome["reference"] == "exact"


def test_the_reported_min_gru_example():
    """MinGRUCell(1, 1), weight_ih = [[1], [1]], bias 0, x = 1: the right second derivative is [2.1888, 7.3589]."""
    cell = C.MinGRUCell(1, 1, dtype=torch.float64)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.tensor([[1.0], [1.0]]))
        cell.bias_ih.zero_()
    x = torch.tensor([[[1.0]]], dtype=torch.float64, requires_grad=True)

    def penalty(backend):
        out, _ = C.run(cell, x, backend=backend)
        (g,) = torch.autograd.grad((out**2).sum(), x, create_graph=True)
        return torch.autograd.grad((g**2).sum(), [cell.weight_ih, cell.bias_ih])

    w_grad, b_grad = penalty("reference")
    torch.testing.assert_close(w_grad.flatten(), torch.tensor([2.1888, 7.3589], dtype=torch.float64), atol=1e-4, rtol=0)
    with pytest.raises(RuntimeError, match="backend='reference'"):
        penalty("auto")  # the scan's written-out backward has no graph: refused, not wrong
    with use_backend("reference"):
        torch.testing.assert_close(penalty("auto")[0], w_grad)


def test_the_linear_scan_itself_differentiates_twice():
    """LinearScan (the scan of cells without a written-out coefficient derivative) has a backward made of
    operations autograd records: gradgradcheck passes in float64."""
    from carousel.runners import linear_scan

    a = torch.rand(2, 40, 3, dtype=torch.float64).requires_grad_()
    b = torch.randn(2, 40, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(linear_scan, (a, b, h0))


@pytest.mark.parametrize("name", ["lstm_layer_norm", "min_gru", "min_lstm", "lstm", "gru"])
def test_torch_func_transforms_work_on_auto_and_named_custom_backends_refuse(name):
    cell = make_cell(name, I, H)
    params = dict(cell.named_parameters())
    x = torch.randn(B, T, I, dtype=torch.float64)

    def loss(p, backend):
        out, _ = functional_call(_Runner(cell, backend), {f"cell.{k}": v for k, v in p.items()}, (x,))
        return out.square().sum()

    want = torch.func.grad(loss)(params, "reference")
    got = torch.func.grad(loss)(params, "auto")
    for k in want:
        torch.testing.assert_close(got[k], want[k], msg=lambda m: f"{k}: {m}")
    custom = [b for b in serving(cell, x) if b in ("explicit", "scan")]
    for backend in custom:
        with pytest.raises(ValueError, match="torch.func"):
            torch.func.grad(loss)(params, backend)


class _Runner(torch.nn.Module):
    def __init__(self, cell, backend):
        super().__init__()
        self.cell, self.backend = cell, backend

    def forward(self, x):
        return C.run(self.cell, x, backend=self.backend)
