"""Verdicts from closed-form curves and from linear RNNs whose answer is known."""

import math

import pytest
import torch

import carousel as C
from carousel.diagnostics import diagnose, judge


def test_judge_geometric_curves():
    lags = range(101)
    for rate, kind in ((0.9, "vanishing"), (1.0, "healthy"), (0.99, "healthy"), (1.1, "exploding")):
        v = judge("rnn", "ElmanCell", [2.0 * rate**l for l in lags])
        assert v.kind == kind and v.measure == "gradient" and v.lag == 100
        assert v.per_step == pytest.approx(rate, rel=1e-9)
        assert v.survival == pytest.approx(rate**100, rel=1e-9)
        assert v.jacobian_top is None
    v = judge("rnn", "ElmanCell", [1.0, 0.5], jacobian_top=[0.5**l for l in range(1, 21)], recurrent_radius={"hh": 0.5})
    assert (v.kind, v.measure, v.lag) == ("vanishing", "jacobian", 20)
    assert v.per_step == pytest.approx(0.5) and v.gradient_ratio == 0.5
    assert "vanishing" in v.text and "9.5e-07" in v.text and "hh 0.50" in v.text


def test_judge_thresholds_and_edge_cases():
    assert judge("a", "c", [1.0, 0.01]).kind == "healthy"
    assert judge("a", "c", [1.0, 0.01], vanish=0.1).kind == "vanishing"
    assert judge("a", "c", [1.0, 0.0]).kind == "vanishing" and judge("a", "c", [1.0, 0.0]).per_step == 0.0
    assert judge("a", "c", [0.0, 0.0]).kind == "vanishing"  # nothing reaches the last step either
    assert judge("a", "c", [0.0, 1.0]).kind == "exploding" and math.isinf(judge("a", "c", [0.0, 1.0]).per_step)
    with pytest.raises(ValueError, match="at least two steps"):
        judge("a", "c", [1.0])
    with pytest.raises(ValueError, match="thresholds"):
        judge("a", "c", [1.0, 1.0], vanish=2.0)


@pytest.mark.parametrize("rho, kind", [(0.7, "vanishing"), (1.0, "healthy"), (1.4, "exploding")])
def test_diagnose_linear_rnns(rho, kind):
    """A linear RNN with W = rho Q over 30 steps: rho^30 is 2e-5, 1 or 2e4."""
    H = 6
    q, _ = torch.linalg.qr(torch.randn(H, H, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    cell = C.ElmanCell(2, H, nonlinearity="identity", dtype=torch.float64)
    with torch.no_grad():
        cell.weight_hh.copy_(rho * q)
    rnn = C.Recurrent(cell)
    x = torch.randn(3, 30, 2, dtype=torch.float64)
    snap = diagnose(rnn, lambda: rnn(x)[0][:, -1].sum())
    verdict = snap.layers["rnn"].verdict
    assert verdict.kind == kind
    assert verdict.per_step == pytest.approx(rho, rel=1e-8)
    assert verdict.gradient_ratio == pytest.approx(rho**29, rel=1e-8)
    assert verdict.recurrent_radius["hh"] == pytest.approx(rho, rel=1e-10)


def test_a_diverged_model_is_non_finite_not_healthy():
    v = judge("rnn", "ElmanCell", [1.0, math.nan], jacobian_top=[0.5, math.nan])
    assert v.kind == "non-finite" and "diverged" in v.text
    assert judge("rnn", "ElmanCell", [math.nan, 1.0]).kind == "non-finite"
    cell = C.ElmanCell(2, 3)
    with torch.no_grad():
        cell.weight_hh[0, 0] = math.inf  # a diverged recurrence: NaN states, NaN spectra, no LAPACK error
    rnn = C.Recurrent(cell)
    x = torch.randn(2, 6, 2)
    snap = diagnose(rnn, lambda: rnn(x)[0][:, -1].sum())
    layer = snap.layers["rnn"]
    assert layer.verdict.kind == "non-finite" and math.isnan(layer.radius["hh"])
    assert all(math.isnan(v) for v in layer.jac_top)
