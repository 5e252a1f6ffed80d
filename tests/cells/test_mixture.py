"""MixtureCell: K cells sharing the state, mixed per step by a softmax gate, run by the reference
runner inside Recurrent; checked against the mixture written out step by step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import carousel as C
from carousel.cells import MixtureCell, importance_loss
from carousel.layers import Recurrent
from carousel.runners import resolve_backend
from cell_zoo import make_cell, random_state

B, T, I, H = 3, 5, 3, 4
D = torch.float64


def hand_mixture(mix: MixtureCell, x, state):
    """The recurrent mixture written out: gate from (x_t, h_{t-1}), every cell one step (through its
    own public forward), every state field mixed with the same weights."""
    outs = []
    for t in range(x.shape[1]):
        g = torch.softmax(x[:, t] @ mix.weight_gx.T + state[0] @ mix.weight_gh.T + mix.bias_g, dim=-1)  # (B, K)
        news = [cell(x[:, t], cell.state_type(*state)) for cell in mix.cells]
        state = mix.state_type(*(sum(g[:, k : k + 1] * n[f] for k, n in enumerate(news)) for f in range(len(state))))
        outs.append(state[0])
    return torch.stack(outs, dim=1), state


@pytest.mark.parametrize("name", ["lstm", "gru", "lstm_proj", "orthogonal_tanh"])
def test_one_cell_mixture_equals_its_cell_values_and_gradients(name):
    cell = make_cell(name, I, H)
    mix = MixtureCell([cell])
    x = torch.randn(B, T, I, dtype=D, requires_grad=True)
    s0 = random_state(cell, B)
    out, final = Recurrent(mix, backend="reference")(x, s0)
    x2 = x.detach().clone().requires_grad_()
    ref, ref_final = Recurrent(cell, backend="reference")(x2, s0)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    for a, b in zip(final, ref_final):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    w = torch.randn_like(out)
    (out * w).sum().backward()
    grads = [p.grad.clone() for p in cell.parameters()]
    cell.zero_grad()
    (ref * w).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    for g, p in zip(grads, cell.parameters()):
        torch.testing.assert_close(g, p.grad)
    assert mix.aux_loss.item() == 0.0


@pytest.mark.parametrize("names", [("lstm", "lstm_peephole", "lstm_layer_norm"), ("gru", "elman_tanh", "min_gru")])
def test_mixture_matches_the_written_out_recurrence_and_gates_sum_to_one(names):
    cells = [make_cell(n, I, H, seed=k) for k, n in enumerate(names)]
    mix = MixtureCell(cells)
    x = torch.randn(B, T, I, dtype=D)
    s0 = random_state(cells[0], B)
    out, final = Recurrent(mix, backend="reference")(x, s0)
    ref, ref_final = hand_mixture(mix, x, s0)
    torch.testing.assert_close(out, ref)
    for a, b in zip(final, ref_final):
        torch.testing.assert_close(a, b)
    assert len(mix.step_gates) == T
    for g in mix.step_gates:
        assert g.shape == (B, len(cells))
        torch.testing.assert_close(g.sum(-1), torch.ones(B, dtype=D))
    torch.testing.assert_close(mix.aux_loss, importance_loss(torch.cat(mix.step_gates)))
    # the mixture differs from each of its cells (the gate really mixes)
    for cell in cells:
        assert not torch.allclose(out, Recurrent(cell, backend="reference")(x, s0)[0])


def test_auto_picks_a_runner_that_serves_it_and_lengths_freeze_the_state():
    mix = MixtureCell([make_cell("lstm", I, H), make_cell("lstm", I, H, seed=3)])
    x = torch.randn(B, T, I, dtype=D)
    assert resolve_backend(mix, x, "auto").name == "reference"
    for named in ("fused", "explicit", "scan"):
        with pytest.raises(ValueError, match=f"backend '{named}' cannot run MixtureCell"):
            resolve_backend(mix, x, named)
    out, final = Recurrent(mix)(x)  # auto
    torch.testing.assert_close(out, C.run(mix, x, backend="reference")[0])
    lengths = torch.tensor([T, 2, 4])
    out, final = Recurrent(mix)(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        ref, ref_final = C.run(mix, x[b : b + 1, :n], backend="reference")
        torch.testing.assert_close(out[b : b + 1, :n], ref)
        assert out[b, n:].abs().sum() == 0
        for a, r in zip(final, ref_final):
            torch.testing.assert_close(a[b : b + 1], r)


def test_gradcheck_float64_tiny():
    mix = MixtureCell([make_cell("gru", 2, 3), make_cell("elman_tanh", 2, 3, seed=1)])
    x = torch.randn(2, 3, 2, dtype=D, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, h: C.run(mix, a, C.GRUState(h), backend="reference")[0], (x, h0))
    names = [n for n, _ in mix.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for _, p in mix.named_parameters())
    assert torch.autograd.gradcheck(
        lambda *ps: torch.func.functional_call(mix, dict(zip(names, ps)), (x[:, 0].detach(), C.GRUState(h0.detach()))).h,
        params)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="at least one cell"):
        MixtureCell([])
    with pytest.raises(TypeError, match="list of carousel cells"):
        MixtureCell(make_cell("gru", I, H))
    with pytest.raises(TypeError, match=r"cells\[1\].*carousel.LSTMCell"):
        MixtureCell([make_cell("lstm", I, H), nn.LSTMCell(I, H)])
    with pytest.raises(ValueError, match=r"input_size 3 .*got 2 for cells\[1\]"):
        MixtureCell([make_cell("gru", I, H), make_cell("gru", 2, H)])
    with pytest.raises(ValueError, match=r"state of cells\[0\].*cells\[1\] \(GRUCell\)"):
        MixtureCell([make_cell("lstm", I, H), make_cell("gru", I, H)])
    with pytest.raises(ValueError, match=r"sizes \(5,\) for cells\[1\]"):
        MixtureCell([make_cell("gru", I, H), make_cell("gru", I, 5)])
    mix = MixtureCell([make_cell("gru", I, H)])
    with pytest.raises(RuntimeError, match="aux_loss is defined after a run"):
        mix.aux_loss
