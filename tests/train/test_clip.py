"""Gradient clipping: the norm before clipping is the global L2 norm, clipping by norm bounds it and
keeps the direction, clipping by value bounds every element."""

from __future__ import annotations

import math

import pytest
import torch

from carousel.train import clip_gradients, grad_norm


def params_with_grads(scale: float, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ps = [torch.zeros(s, requires_grad=True) for s in ((4, 3), (7,), (2, 2, 2))]
    for p in ps:
        p.grad = torch.randn(p.shape, generator=g) * scale
    return ps


def by_hand(ps) -> float:
    return math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in ps))


@pytest.mark.parametrize("scale", [0.01, 1.0, 100.0])
def test_norm_clip_bounds_the_norm_and_keeps_the_direction(scale):
    ps = params_with_grads(scale)
    before = [p.grad.clone() for p in ps]
    norm = clip_gradients(ps, max_norm=1.0)
    assert float(norm) == pytest.approx(by_hand([_P(b) for b in before]), rel=1e-6)  # the norm before clipping
    after = by_hand(ps)
    assert after <= 1.0 + 1e-5
    factor = min(1.0, 1.0 / float(norm))
    for p, b in zip(ps, before):
        torch.testing.assert_close(p.grad, b * factor, rtol=1e-5, atol=1e-8)
    if float(norm) > 1.0:
        assert after == pytest.approx(1.0, rel=1e-4)


class _P:
    def __init__(self, grad):
        self.grad = grad


def test_value_clip_bounds_every_element_and_reports_the_norm_before():
    ps = params_with_grads(3.0, seed=1)
    expected = by_hand(ps)
    before = [p.grad.clone() for p in ps]
    norm = clip_gradients(ps, max_value=0.5)
    assert float(norm) == pytest.approx(expected, rel=1e-6)
    for p, b in zip(ps, before):
        torch.testing.assert_close(p.grad, b.clamp(-0.5, 0.5))


def test_clipping_off_changes_nothing_and_still_measures():
    ps = params_with_grads(50.0, seed=2)
    before = [p.grad.clone() for p in ps]
    norm = clip_gradients(ps)
    assert float(norm) == pytest.approx(by_hand(ps), rel=1e-6)
    for p, b in zip(ps, before):
        assert torch.equal(p.grad, b)


def test_non_finite_gradients_give_a_non_finite_norm():
    ps = params_with_grads(1.0, seed=3)
    ps[1].grad[2] = float("inf")
    assert math.isinf(float(clip_gradients(ps, max_norm=1.0)))
    ps[0].grad[0, 0] = float("nan")
    assert math.isnan(float(grad_norm(ps)))


def test_negative_thresholds_are_refused():
    with pytest.raises(ValueError, match="max_norm >= 0"):
        clip_gradients(params_with_grads(1.0), max_norm=-1.0)
