"""Step Jacobians against autograd for every cell; products against W^l and against a direct derivative."""

import pytest
import torch

import carousel as C
from cell_zoo import CELLS, make_cell, random_state
from carousel.diagnostics import recording, recurrent_radius, spectrum, step_jacobian
from carousel.diagnostics.trace import flatten_state, unflatten_state


def per_sequence_jacobian(cell, px, state):
    """Reference: autograd's Jacobian of one sequence's step, sequence by sequence."""
    out = []
    for b in range(px.shape[0]):
        s_b = flatten_state(type(state)(*(s[b : b + 1] for s in state))).squeeze(0)
        f = lambda v: flatten_state(cell.step(px[b : b + 1], unflatten_state(cell, v.unsqueeze(0)))).squeeze(0)
        out.append(torch.autograd.functional.jacobian(f, s_b))
    return torch.stack(out)  # (B, S, S)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_step_jacobian_against_autograd(name):
    cell = make_cell(name, 3, 4)
    state = random_state(cell, 3)
    px = cell.project(torch.randn(3, 1, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)))[:, 0]
    J = step_jacobian(cell, px, state)
    S = sum(cell.state_sizes)
    assert J.shape == (3, S, S)
    torch.testing.assert_close(J, per_sequence_jacobian(cell, px.detach(), state), rtol=1e-10, atol=1e-12)


def record(layer, x):
    with recording(layer) as traces:
        layer(x)
    return traces["rnn"]


def test_linear_rnn_products_are_matrix_powers():
    """h_t = W h_{t-1} + u_t: every J_t = W, so P_l = W^l; a random non-normal W."""
    H, T = 5, 14
    g = torch.Generator().manual_seed(0)
    W = torch.randn(H, H, generator=g, dtype=torch.float64) / H**0.5
    cell = C.ElmanCell(2, H, nonlinearity="identity", dtype=torch.float64)
    with torch.no_grad():
        cell.weight_hh.copy_(W)
    trace = record(C.Recurrent(cell), torch.randn(3, T, 2, dtype=torch.float64, generator=g))
    spec = spectrum(cell, trace.px, trace.inputs, batch=2)
    rho = torch.linalg.eigvals(W).abs().max()
    for lag in range(1, T + 1):
        P = torch.linalg.matrix_power(W, lag)
        torch.testing.assert_close(spec.singular_values[lag - 1], torch.linalg.svdvals(P), rtol=1e-9, atol=1e-13)
        assert spec.top[lag - 1].item() == pytest.approx(torch.linalg.matrix_norm(P, 2).item(), rel=1e-9)
        assert spec.radius[lag - 1].item() == pytest.approx(rho.item() ** lag, rel=1e-8)
    assert recurrent_radius(cell) == {"hh": pytest.approx(rho.item(), rel=1e-12)}


@pytest.mark.parametrize("rho", [0.5, 1.0, 1.3])
def test_scaled_orthogonal_singular_values_are_all_rho_to_the_lag(rho):
    H, T = 4, 40
    q, _ = torch.linalg.qr(torch.randn(H, H, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    cell = C.ElmanCell(1, H, nonlinearity="identity", dtype=torch.float64)
    with torch.no_grad():
        cell.weight_hh.copy_(rho * q)
    trace = record(C.Recurrent(cell), torch.randn(2, T, 1, dtype=torch.float64))
    spec = spectrum(cell, trace.px, trace.inputs, max_lag=T)
    expected = rho ** torch.arange(1, T + 1, dtype=torch.float64)
    torch.testing.assert_close(spec.singular_values, expected.unsqueeze(1).expand(T, H), rtol=1e-9, atol=0)
    torch.testing.assert_close(spec.radius, expected, rtol=1e-9, atol=0)  # 0.5**40 ~ 1e-12 survives in float64


@pytest.mark.parametrize("name", ["elman_tanh", "lstm_peephole", "gru", "antisymmetric_gated", "orthogonal_modrelu"])
def test_product_equals_the_derivative_across_the_lag(name):
    """P_l against autograd's Jacobian of the map s_(T-l) -> s_T (l steps run from the recorded inputs)."""
    cell = make_cell(name, 2, 3)
    T, lag = 8, 5
    x = torch.randn(2, T, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    trace = record(C.Recurrent(cell), x)
    spec = spectrum(cell, trace.px, trace.inputs, max_lag=lag, batch=1)
    px = [p[:1].detach() for p in trace.px]

    def run_from(v):
        state = unflatten_state(cell, v.unsqueeze(0))
        for k in range(T - lag, T):
            state = cell.step(px[k], state)
        return flatten_state(state).squeeze(0)

    start = flatten_state(trace.inputs[T - lag]).detach()[0]
    P = torch.autograd.functional.jacobian(run_from, start)
    torch.testing.assert_close(spec.singular_values[lag - 1], torch.linalg.svdvals(P), rtol=1e-8, atol=1e-12)


def test_recurrent_radius_blocks():
    lstm = make_cell("lstm", 2, 3)
    radius = recurrent_radius(lstm)
    assert list(radius) == ["i", "f", "g", "o"]
    for name, block in zip("ifgo", lstm.weight_hh.detach().chunk(4, 0)):
        assert radius[name] == pytest.approx(torch.linalg.eigvals(block).abs().max().item())
    gru = make_cell("gru", 2, 3)
    assert list(recurrent_radius(gru)) == ["r", "z", "n"]
    assert list(recurrent_radius(make_cell("lstm_no_forget_gate", 2, 3))) == ["i", "g", "o"]
    assert recurrent_radius(make_cell("orthogonal_cayley", 2, 6))["hh"] == pytest.approx(1.0, abs=1e-12)
    assert recurrent_radius(make_cell("lstm_proj", 2, 3)) == {}  # rectangular blocks
    assert recurrent_radius(make_cell("min_gru", 2, 3)) == {}  # no recurrent matrix
    wrapped = C.Zoneout(make_cell("gru", 2, 3), p_h=0.1)
    assert recurrent_radius(wrapped) == recurrent_radius(wrapped.cell)


def test_spectrum_errors():
    cell = C.ElmanCell(1, 2)
    with pytest.raises(ValueError, match="at least one"):
        spectrum(cell, [], [])
    trace = record(C.Recurrent(cell), torch.randn(1, 3, 1))
    with pytest.raises(ValueError, match="max_lag"):
        spectrum(cell, trace.px, trace.inputs, max_lag=0)
