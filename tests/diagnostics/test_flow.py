"""Gradient flow through time against closed forms (linear RNNs) and against a hand-written step loop."""

import pytest
import torch

import carousel as C
from carousel.diagnostics import gradient_flow, recording
from carousel.diagnostics.trace import recurrent_layers

torch.manual_seed(0)


def linear_rnn(W: torch.Tensor, input_size: int = 2) -> C.Recurrent:
    cell = C.ElmanCell(input_size, W.shape[0], nonlinearity="identity", dtype=torch.float64)
    with torch.no_grad():
        cell.weight_hh.copy_(W)
    return C.Recurrent(cell)


def scaled_orthogonal(n: int, rho: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return rho * q


@pytest.mark.parametrize("rho", [0.8, 1.0, 1.15])
def test_linear_rnn_gradient_norm_decays_as_spectral_radius_to_the_lag(rho):
    """h_t = W h_{t-1} + u_t with W = rho Q: dL/dh_k = (W^T)^(T-1-k) v, of norm rho^(T-1-k) ||v||."""
    T, H = 25, 6
    rnn = linear_rnn(scaled_orthogonal(H, rho, seed=1))
    v = torch.randn(H, dtype=torch.float64)
    x = torch.randn(3, T, 2, dtype=torch.float64)
    flow = gradient_flow(rnn, lambda: (rnn(x)[0][:, -1] @ v).sum())["rnn"]
    lags = torch.arange(T, dtype=torch.float64)
    torch.testing.assert_close(flow.by_lag(), v.norm() * rho**lags, rtol=1e-10, atol=0)
    torch.testing.assert_close(flow.norms, flow.fields["h"])


def test_linear_rnn_gradient_is_the_transposed_matrix_power():
    """A non-normal W (Jordan-like): each sequence's dL/dh_k is (W^T)^(T-1-k) v_b exactly."""
    T, H, B = 12, 5, 4
    W = 0.7 * torch.eye(H, dtype=torch.float64) + torch.diag(torch.full((H - 1,), 0.9, dtype=torch.float64), 1)
    rnn = linear_rnn(W)
    V = torch.randn(B, H, dtype=torch.float64)
    x = torch.randn(B, T, 2, dtype=torch.float64)
    flow = gradient_flow(rnn, lambda: (rnn(x)[0][:, -1] * V).sum())["rnn"]
    for k in range(T):
        grads = V @ torch.linalg.matrix_power(W, T - 1 - k)  # row b: ((W^T)^(T-1-k) v_b)^T
        assert flow.norms[k].item() == pytest.approx(grads.norm(dim=1).mean().item(), rel=1e-10)


def manual_state_grads(cell, x, loss_of_outputs):
    """Reference: a hand-written loop over cell.step keeping every state, and autograd of the loss."""
    state = cell.initial_state(x.shape[0], dtype=x.dtype)
    px = cell.project(x)
    states, outs = [], []
    for t in range(x.shape[1]):
        state = cell.step(px[:, t], state)
        states.append(state)
        outs.append(state[0])
    loss = loss_of_outputs(torch.stack(outs, 1))
    flat = [s for st in states for s in st]
    grads = torch.autograd.grad(loss, flat, allow_unused=True)
    n = len(states[0])
    return [grads[i * n : (i + 1) * n] for i in range(len(states))]


@pytest.mark.parametrize("make", [
    lambda: C.LSTMCell(3, 5, dtype=torch.float64),
    lambda: C.GRUCell(3, 5, dtype=torch.float64),
    lambda: C.OrthogonalCell(3, 5, dtype=torch.float64),
])
def test_every_field_against_a_hand_written_loop(make):
    torch.manual_seed(3)
    cell = make()
    layer = C.Recurrent(cell)  # "auto": fused where it can; the recording must still see every step
    x = torch.randn(4, 9, 3, dtype=torch.float64)
    w = torch.randn(9, cell.output_size, dtype=torch.float64)
    loss_of = lambda out: (torch.tanh(out) * w).sum()  # a loss on every step
    flow = gradient_flow(layer, lambda: loss_of(layer(x)[0]))["rnn"]
    ref = manual_state_grads(cell, x, loss_of)
    for k, grads in enumerate(ref):
        total = sum(g.pow(2).sum(-1) for g in grads).sqrt().mean()
        assert flow.norms[k].item() == pytest.approx(total.item(), rel=1e-10)
        for name, g in zip(cell.state_type._fields, grads):
            assert flow.fields[name][k].item() == pytest.approx(g.norm(dim=-1).mean().item(), rel=1e-10)


def test_deep_bidirectional_model_and_restoration():
    torch.manual_seed(4)
    stack = C.Deep([
        C.Bidirectional(C.Recurrent(C.LSTMCell(2, 3)), C.Recurrent(C.LSTMCell(2, 3))),
        C.Recurrent(C.GRUCell(6, 4), backend="fused"),
    ])
    x = torch.randn(2, 7, 2)
    before, _ = stack(x)
    flow = gradient_flow(stack, lambda: stack(x)[0][:, -1].sum())
    assert set(flow) == {"layers.0.forward_layer", "layers.0.backward_layer", "layers.1"}
    assert all(curve.norms.shape == (7,) for curve in flow.values())
    # the top layer's loss sits on its last step only: the gradient there is the head's weight, all ones
    assert flow["layers.1"].norms[-1].item() == pytest.approx(2.0)  # ||(1, 1, 1, 1)|| = 2
    # restored: backends as set, no recording left on the cells, same outputs
    assert stack.layers[1].backend == "fused" and stack.layers[0].forward_layer.backend == "auto"
    assert all("step" not in layer.cell.__dict__ for layer in recurrent_layers(stack).values())
    torch.testing.assert_close(stack(x)[0], before)


def test_recording_variable_lengths_and_drop_in():
    torch.manual_seed(5)
    lstm = C.LSTM(2, 3, num_layers=2, batch_first=True)
    x = torch.randn(3, 6, 2)
    with recording(lstm) as traces:
        out, _ = lstm(x)
    assert sorted(traces) == ["stack.layers.0", "stack.layers.1"]  # the one-call fused stack was bypassed
    assert all(t.steps == 6 for t in traces.values())
    torch.testing.assert_close(traces["stack.layers.1"].states[-1].h, out[:, -1])
    layer = C.Recurrent(C.GRUCell(2, 3))
    flow = gradient_flow(layer, lambda: layer(x, lengths=[6, 2, 4])[0].sum())["rnn"]
    assert flow.norms.shape == (6,) and bool((flow.norms > 0).all())


def test_errors():
    with pytest.raises(ValueError, match="at least one carousel Recurrent layer"):
        with recording(torch.nn.Linear(2, 2)):
            pass
    with pytest.raises(TypeError, match="torch.nn.Module"):
        with recording("model"):
            pass
    layer = C.Recurrent(C.ElmanCell(2, 3))
    x = torch.randn(2, 4, 2)
    with pytest.raises(ValueError, match="scalar loss"):
        gradient_flow(layer, lambda: layer(x)[0])
    with pytest.raises(ValueError, match="nested recording"):
        with recording(layer), recording(layer):
            pass
    assert "step" not in layer.cell.__dict__
