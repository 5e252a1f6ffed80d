"""Gate activations agree with each cell's step (the step rebuilt from the gates), and gate statistics
against a direct count."""

import pytest
import torch

import carousel as C
from cell_zoo import make_cell, random_state
from carousel.diagnostics import gate_stats, recording


def step_inputs(cell, B=3, seed=2):
    x = torch.randn(B, 1, cell.input_size, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return cell.project(x)[:, 0], random_state(cell, B)


@pytest.mark.parametrize("name", ["lstm", "lstm_forget_bias", "lstm_no_forget_gate", "lstm_peephole",
                                  "lstm_peephole_no_forget", "lstm_layer_norm", "lstm_proj", "lstm_everything"])
def test_lstm_gates_rebuild_the_step(name):
    """c_t = f c + i g and h_t = W_hr (o tanh(LN c_t)) with step's own c_t: the gates are step's gates."""
    cell = make_cell(name)
    px, state = step_inputs(cell)
    gates = cell.gates(px, state)
    assert list(gates) == (["i", "f", "o"] if cell.forget_gate else ["i", "o"])
    h, c = cell.step(px, state)
    rec = torch.mm(state.h, cell.weight_hh.t())  # (B, G)
    if cell.layer_norm:
        rec = cell.ln_hh(rec)
    g = torch.tanh((px + rec).chunk(cell.num_gates, 1)[2 if cell.forget_gate else 1])  # g needs no peephole
    f = gates.get("f", torch.ones_like(state.c))
    torch.testing.assert_close(c, f * state.c + gates["i"] * g)
    out = gates["o"] * torch.tanh(cell.ln_c(c) if cell.layer_norm else c)
    if cell.weight_hr is not None:
        out = out @ cell.weight_hr.t()
    torch.testing.assert_close(h, out)


@pytest.mark.parametrize("name", ["gru", "gru_cho"])
def test_gru_gates_rebuild_the_step(name):
    cell = make_cell(name)
    px, state = step_inputs(cell)
    r, z = cell.gates(px, state).values()
    H, h = cell.hidden_size, state.h
    W_n, b_n, x_n = cell.weight_hh[2 * H :], cell.bias_hh[2 * H :], px[:, 2 * H :]
    if cell.variant == "torch":
        n = torch.tanh(x_n + r * (h @ W_n.t() + b_n))
    else:
        n = torch.tanh(x_n + (r * h) @ W_n.t() + b_n)
    torch.testing.assert_close(cell.step(px, state).h, (1 - z) * n + z * h)


def test_min_cells_and_antisymmetric_gates_rebuild_the_step():
    gru = make_cell("min_gru")
    px, state = step_inputs(gru)
    z = gru.gates(px, state)["z"]
    torch.testing.assert_close(gru.step(px, state).h, (1 - z) * state.h + z * px.chunk(2, 1)[1])
    lstm = make_cell("min_lstm")
    px, state = step_inputs(lstm)
    gates = lstm.gates(px, state)
    torch.testing.assert_close(lstm.step(px, state).h, gates["f"] * state.h + gates["i"] * px.chunk(3, 1)[2])
    anti = make_cell("antisymmetric_gated")
    px, state = step_inputs(anti)
    z = anti.gates(px, state)["z"]
    mh = state.h @ anti.weight_hh.t()
    torch.testing.assert_close(anti.step(px, state).h, state.h + anti.epsilon * z * torch.tanh(mh + px.chunk(2, 1)[1]))
    assert make_cell("antisymmetric").gates(*step_inputs(make_cell("antisymmetric"))) == {}


def test_gate_stats_against_a_direct_count():
    torch.manual_seed(0)
    cell = C.LSTMCell(2, 6)
    with torch.no_grad():
        cell.bias_ih[:6].normal_(0, 4)  # the input gate spread out: some units closed, some open
        cell.bias_ih[6:12].fill_(8.0)  # forget gate wide open: saturated above 0.95
    x = torch.randn(5, 7, 2)
    layer = C.Recurrent(cell)
    with recording(layer) as traces:
        layer(x)
    stats = gate_stats(traces["rnn"])
    # direct count from a hand-written loop
    state, px = cell.initial_state(5), cell.project(x)
    for k in range(7):
        gates = cell.gates(px[:, k], state)
        for name, a in gates.items():
            assert stats.mean[name][k].item() == pytest.approx(a.mean().item(), rel=1e-6)
            assert stats.low_share[name][k].item() == pytest.approx((a < 0.05).double().mean().item())
            assert stats.high_share[name][k].item() == pytest.approx((a > 0.95).double().mean().item())
        state = cell.step(px[:, k], state)
    assert bool((stats.high_share["f"] == 1).all()) and bool((stats.saturation["f"] == 1).all())
    assert 0 < stats.overall()["i"][1] < 1


def test_no_gates_and_errors():
    layer = C.Recurrent(C.ElmanCell(2, 3))
    with recording(layer) as traces:
        layer(torch.randn(1, 4, 2))
    assert gate_stats(traces["rnn"]) is None
    wrapped = C.Recurrent(C.Zoneout(C.GRUCell(2, 3), p_h=0.2))
    wrapped.eval()
    with recording(wrapped) as traces:
        wrapped(torch.randn(1, 4, 2))
    assert gate_stats(traces["rnn"]).gates == ("r", "z")  # read through the wrapper
    with pytest.raises(ValueError, match="low < high"):
        gate_stats(traces["rnn"], low=0.9, high=0.1)
