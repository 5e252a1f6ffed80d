"""Zoneout: units keep their previous value with probability p (Krueger et al. 2017)."""

import pytest
import torch
from cell_zoo import make_cell, random_state

import carousel as C
from carousel.regularize import Zoneout
from carousel.runners import resolve_backend


def reference(cell, x, state, rates, training):
    """Zoneout written out: per step, per field, d ~ Bernoulli(p) in field order (or the expectation)."""
    px = cell.project(x)  # (B, T, G)
    outputs = []
    for px_t in px.unbind(1):
        new = cell.step(px_t, state)
        fields = []
        for name, old, fresh in zip(cell.state_type._fields, state, new):
            p = rates.get(name, 0.0)
            if p and training:
                d = torch.empty_like(fresh).bernoulli_(p)
                fields.append(d * old + (1 - d) * fresh)
            elif p:
                fields.append(p * old + (1 - p) * fresh)
            else:
                fields.append(fresh)
        state = type(new)(*fields)
        outputs.append(state[0])
    return torch.stack(outputs, 1), state


def _has_c(cell):
    return "c" in cell.state_type._fields


@pytest.mark.parametrize("training", [True, False])
def test_rate_zero_is_the_plain_cell(cell_name, training):
    cell = make_cell(cell_name)
    z = Zoneout(cell, 0.0, 0.0).train(training)
    x = torch.randn(3, 5, 3, dtype=torch.float64)
    s0 = random_state(cell, 3)
    out, final = C.run(z, x, s0, backend="reference")
    ref_out, ref_final = C.run(cell, x, s0, backend="reference")
    torch.testing.assert_close(out, ref_out)
    for a, b in zip(final, ref_final):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("training", [True, False])
def test_rate_one_freezes_the_state(cell_name, training):
    cell = make_cell(cell_name)
    z = Zoneout(cell, 1.0).train(training)
    x = torch.randn(3, 5, 3, dtype=torch.float64)
    s0 = random_state(cell, 3)
    out, final = C.run(z, x, s0)
    assert torch.equal(out, s0[0].unsqueeze(1).expand_as(out))
    for a, b in zip(final, s0):
        assert torch.equal(a, b)


def test_training_matches_the_written_out_rule(cell_name):
    cell = make_cell(cell_name)
    p_c = 0.6 if _has_c(cell) else None
    z = Zoneout(cell, 0.3, p_c)
    x = torch.randn(4, 6, 3, dtype=torch.float64)
    s0 = random_state(cell, 4)
    torch.manual_seed(2)  # the reference loop draws step by step, as the rule does (the explicit backend
    out, final = C.run(z, x, s0, backend="reference")  # draws a run's masks at once: tests/runners/test_explicit.py)
    torch.manual_seed(2)
    ref_out, ref_final = reference(cell, x, s0, {"h": 0.3, "c": p_c or 0.0}, training=True)
    torch.testing.assert_close(out, ref_out)
    for a, b in zip(final, ref_final):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(out, C.run(cell, x, s0)[0])


def test_evaluation_is_the_expectation_and_deterministic(cell_name):
    cell = make_cell(cell_name)
    z = Zoneout(cell, 0.3, 0.7 if _has_c(cell) else None).eval()
    x = torch.randn(4, 6, 3, dtype=torch.float64)
    s0 = random_state(cell, 4)
    out, final = C.run(z, x, s0)
    ref_out, ref_final = reference(cell, x, s0, {"h": 0.3, "c": z.p_c}, training=False)
    torch.testing.assert_close(out, ref_out)
    for a, b in zip(final, ref_final):
        torch.testing.assert_close(a, b)
    assert torch.equal(C.run(z, x, s0)[0], out)


def test_training_average_is_the_evaluation_value():
    cell = make_cell("lstm", hidden_size=6)
    z = Zoneout(cell, 0.3, 0.6)
    N = 20000
    x = torch.randn(1, 3, dtype=torch.float64).expand(N, 3)  # one input, many independent draws
    s0 = random_state(cell, 1)
    s0 = type(s0)(*(s.expand(N, -1) for s in s0))
    torch.manual_seed(3)
    train = z(x, s0)
    expected = z.eval()(x[:1], type(s0)(*(s[:1] for s in s0)))
    for name, a, b, old in zip(("h", "c"), train, expected, s0):
        spread = (a - b).std(0).max()
        assert (a.mean(0) - b[0]).abs().max() < 5 * spread / N**0.5, f"field {name}"
        kept = (a == old).double().mean()
        assert abs(float(kept) - {"h": 0.3, "c": 0.6}[name]) < 0.01


def test_separate_rates_for_h_and_c():
    cell = make_cell("lstm")
    z = Zoneout(cell, 0.0, 1.0)
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    s0 = random_state(cell, 2)
    _, final = C.run(z, x, s0)
    assert torch.equal(final.c, s0.c) and not torch.allclose(final.h, s0.h)
    assert Zoneout(cell, 0.2).p_c == 0.2  # p_c defaults to p_h for a cell with c
    assert Zoneout(make_cell("gru"), 0.2).p_c == 0.0


def test_gradcheck_float64():
    z = Zoneout(make_cell("lstm", 2, 3), 0.4, 0.5)
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)

    def f(x, h0, c0):
        torch.manual_seed(4)  # the same zoneout masks at every evaluation
        out, final = C.run(z, x, (h0, c0))
        return out, final.c

    assert torch.autograd.gradcheck(f, (x, h0, c0))


def test_runs_on_the_loop_unless_every_rate_is_zero():
    x = torch.randn(2, 3, 3)
    assert resolve_backend(Zoneout(C.GRUCell(3, 4), 0.1).eval(), x).name == "reference"
    assert resolve_backend(Zoneout(C.GRUCell(3, 4), 0.0), x).name == "fused"


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"p_c=0.5 was given but GRUCell has no cell state c"):
        Zoneout(C.GRUCell(2, 3), 0.1, 0.5)
    with pytest.raises(ValueError, match=r"expected p_h in \[0, 1\], got 1.5"):
        Zoneout(C.GRUCell(2, 3), 1.5)
    with pytest.raises(ValueError, match=r"expected p_c in \[0, 1\], got -0.1"):
        Zoneout(C.LSTMCell(2, 3), 0.1, -0.1)
