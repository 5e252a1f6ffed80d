"""Golden tests: each cell against torch.nn or against its equations written out independently."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import carousel as C
from cell_zoo import make_cell, random_state

B, T, I, H = 4, 7, 3, 5
D = torch.float64


def copy_params(dst: nn.Module, src: nn.Module) -> None:
    with torch.no_grad():
        theirs = dict(dst.named_parameters())
        for name, p in src.named_parameters():
            if name in theirs:
                theirs[name].copy_(p)


def steps(cell, x, state):
    out, final = C.run(cell, x, state)
    return out, final


def test_elman_matches_torch_rnncell():
    for nl in ("tanh", "relu"):
        cell = make_cell(f"elman_{nl}", I, H)
        ref = nn.RNNCell(I, H, nonlinearity=nl, dtype=D)
        copy_params(ref, cell)
        x, h = torch.randn(B, T, I, dtype=D), torch.randn(B, H, dtype=D)
        out, final = steps(cell, x, C.ElmanState(h))
        for t in range(T):
            h = ref(x[:, t], h)
            torch.testing.assert_close(out[:, t], h)
        torch.testing.assert_close(final.h, h)


def test_lstm_matches_torch_lstmcell():
    cell = make_cell("lstm", I, H)
    ref = nn.LSTMCell(I, H, dtype=D)
    copy_params(ref, cell)
    x = torch.randn(B, T, I, dtype=D)
    h, c = torch.randn(B, H, dtype=D), torch.randn(B, H, dtype=D)
    out, final = steps(cell, x, C.LSTMState(h, c))
    for t in range(T):
        h, c = ref(x[:, t], (h, c))
        torch.testing.assert_close(out[:, t], h)
    torch.testing.assert_close(final.c, c)


def test_lstm_projection_matches_torch_lstm():
    cell = make_cell("lstm_proj", I, H)  # proj_size=2
    ref = nn.LSTM(I, H, proj_size=2, batch_first=True, dtype=D)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"):
            getattr(ref, f"{name}_l0").copy_(getattr(cell, name))
    x = torch.randn(B, T, I, dtype=D)
    h0, c0 = torch.randn(B, 2, dtype=D), torch.randn(B, H, dtype=D)
    out, final = steps(cell, x, C.LSTMState(h0, c0))
    ref_out, (h, c) = ref(x, (h0[None], c0[None]))
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(final.h, h[0])
    torch.testing.assert_close(final.c, c[0])


def test_gru_matches_torch_grucell():
    cell = make_cell("gru", I, H)
    ref = nn.GRUCell(I, H, dtype=D)
    copy_params(ref, cell)
    x, h = torch.randn(B, T, I, dtype=D), torch.randn(B, H, dtype=D)
    out, final = steps(cell, x, C.GRUState(h))
    for t in range(T):
        h = ref(x[:, t], h)
        torch.testing.assert_close(out[:, t], h)


def test_gru_cho_follows_its_equations_and_differs_from_torch_form():
    cell = make_cell("gru_cho", I, H)
    x, h0 = torch.randn(B, T, I, dtype=D), torch.randn(B, H, dtype=D)
    out, _ = steps(cell, x, C.GRUState(h0))
    W_ir, W_iz, W_in = cell.weight_ih.split(H)
    W_hr, W_hz, W_hn = cell.weight_hh.split(H)
    b_ir, b_iz, b_in = cell.bias_ih.split(H)
    b_hr, b_hz, b_hn = cell.bias_hh.split(H)
    h = h0
    for t in range(T):
        xt = x[:, t]
        r = torch.sigmoid(xt @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
        z = torch.sigmoid(xt @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
        n = torch.tanh(xt @ W_in.T + b_in + (r * h) @ W_hn.T + b_hn)
        h = (1 - z) * n + z * h
        torch.testing.assert_close(out[:, t], h)
    torch_form = C.GRUCell(I, H, dtype=D)
    copy_params(torch_form, cell)
    assert not torch.allclose(steps(torch_form, x, C.GRUState(h0))[0], out)


def _lstm_reference(cell, x, h, c, *, peephole=False, layer_norm=False, forget_gate=True):
    """The LSTM written out gate by gate, independently of LSTMCell.step."""
    n = 4 if forget_gate else 3
    out = []
    for t in range(x.shape[1]):
        a = x[:, t] @ cell.weight_ih.T
        r = h @ cell.weight_hh.T
        if layer_norm:
            a = F.layer_norm(a, (n * H,), cell.ln_ih.weight, cell.ln_ih.bias)
            r = F.layer_norm(r, (n * H,), cell.ln_hh.weight, cell.ln_hh.bias)
        pre = a + r + cell.bias_ih + cell.bias_hh
        if forget_gate:
            i, f, g, o = pre.split(H, dim=1)
        else:
            i, g, o = pre.split(H, dim=1)
        if peephole:
            i = i + cell.weight_ci * c
            if forget_gate:
                f = f + cell.weight_cf * c
        c = (torch.sigmoid(f) * c if forget_gate else c) + torch.sigmoid(i) * torch.tanh(g)
        if peephole:
            o = o + cell.weight_co * c
        cc = F.layer_norm(c, (H,), cell.ln_c.weight, cell.ln_c.bias) if layer_norm else c
        h = torch.sigmoid(o) * torch.tanh(cc)
        out.append(h)
    return torch.stack(out, 1), c


def test_lstm_variants_follow_their_equations():
    x = torch.randn(B, T, I, dtype=D)
    for name, kw in [
        ("lstm_peephole", dict(peephole=True)),
        ("lstm_peephole_no_forget", dict(peephole=True, forget_gate=False)),
        ("lstm_layer_norm", dict(layer_norm=True)),
        ("lstm_no_forget_gate", dict(forget_gate=False)),
    ]:
        cell = make_cell(name, I, H)
        s0 = random_state(cell, B)
        out, final = steps(cell, x, s0)
        ref_out, ref_c = _lstm_reference(cell, x, s0.h, s0.c, **kw)
        torch.testing.assert_close(out, ref_out, msg=name)
        torch.testing.assert_close(final.c, ref_c, msg=name)


def test_peepholes_matter_and_learn():
    cell = make_cell("lstm_peephole", I, H)
    plain = C.LSTMCell(I, H, dtype=D)
    copy_params(plain, cell)
    x = torch.randn(B, T, I, dtype=D)
    s0 = random_state(cell, B)
    out, _ = steps(cell, x, s0)
    assert not torch.allclose(out, steps(plain, x, s0)[0])
    out.sum().backward()
    for name in ("weight_ci", "weight_cf", "weight_co"):
        assert getattr(cell, name).grad.abs().sum() > 0
    with torch.no_grad():
        for name in ("weight_ci", "weight_cf", "weight_co"):
            getattr(cell, name).zero_()
    torch.testing.assert_close(steps(cell, x, s0)[0], steps(plain, x, s0)[0])


def test_lstm_without_forget_gate_accumulates_its_cell():
    """c_t = c_{t-1} + i_t g_t: with the input gate shut the carousel holds c exactly; a forget gate leaks."""
    torch.manual_seed(0)
    x = torch.randn(B, 50, I, dtype=D)
    c0 = torch.randn(B, H, dtype=D)
    keep = C.LSTMCell(I, H, forget_gate=False, dtype=D)
    leak = C.LSTMCell(I, H, dtype=D)
    with torch.no_grad():
        keep.bias_ih[:H] = -1e4  # i = sigmoid(-1e4) = 0 exactly in float64
        leak.bias_ih[:H] = -1e4
    _, final_keep = steps(keep, x, C.LSTMState(torch.zeros(B, H, dtype=D), c0))
    _, final_leak = steps(leak, x, C.LSTMState(torch.zeros(B, H, dtype=D), c0))
    torch.testing.assert_close(final_keep.c, c0, rtol=0, atol=0)
    assert final_leak.c.abs().max() < 0.5 * c0.abs().max()
    # and with the input gate open it accumulates: c_T - c_0 = sum_t i_t * g_t
    cell = make_cell("lstm_no_forget_gate", I, H)
    s0 = random_state(cell, B)
    _, final = steps(cell, x, s0)
    pre = cell.project(x)  # recompute i_t * g_t from the produced hidden states
    out, _ = steps(cell, x, s0)
    h_prev = torch.cat([s0.h[:, None], out[:, :-1]], 1)
    gates = pre + h_prev @ cell.weight_hh.T
    i, g, _ = gates.split(H, dim=-1)
    torch.testing.assert_close(final.c - s0.c, (torch.sigmoid(i) * torch.tanh(g)).sum(1))


def test_forget_bias_initialisation():
    cell = C.LSTMCell(I, H, forget_bias=1.0)
    torch.testing.assert_close(cell.bias_ih[H : 2 * H] + cell.bias_hh[H : 2 * H], torch.ones(H))
    assert cell.bias_ih[:H].abs().max() > 0  # other gates keep their random initialisation


def test_elman_identity_is_linear_closed_form():
    cell = make_cell("elman_identity", I, H)
    x, h0 = torch.randn(B, T, I, dtype=D), torch.randn(B, H, dtype=D)
    _, final = steps(cell, x, C.ElmanState(h0))
    W, U, b = cell.weight_hh, cell.weight_ih, cell.bias_ih + cell.bias_hh
    expected = h0 @ torch.linalg.matrix_power(W, T).T
    for t in range(T):
        expected = expected + (x[:, t] @ U.T + b) @ torch.linalg.matrix_power(W, T - 1 - t).T
    torch.testing.assert_close(final.h, expected)


def test_irnn_starts_as_identity_and_keeps_positive_state():
    cell = C.IRNNCell(I, H, dtype=D)
    torch.testing.assert_close(cell.weight_hh, torch.eye(H, dtype=D))
    assert cell.bias_ih.abs().max() == 0 and cell.bias_hh.abs().max() == 0
    assert 0 < cell.weight_ih.std() < 0.01
    h0 = torch.rand(B, H, dtype=D) + 0.1
    _, final = steps(cell, torch.zeros(B, 100, I, dtype=D), C.ElmanState(h0))
    torch.testing.assert_close(final.h, h0, rtol=0, atol=0)


def test_antisymmetric_effective_recurrence():
    cell = make_cell("antisymmetric", I, H)
    M = cell.weight_hh
    gamma = cell.gamma
    torch.testing.assert_close(M + M.T, -2 * gamma * torch.eye(H, dtype=D))
    eig = torch.linalg.eigvals(M)
    torch.testing.assert_close(eig.real, torch.full((H,), -gamma, dtype=D))
    W = cell.parametrizations.weight_hh.original
    torch.testing.assert_close(M, W - W.T - gamma * torch.eye(H, dtype=D))
    x, h = torch.randn(B, T, I, dtype=D), torch.randn(B, H, dtype=D)
    out, _ = steps(cell, x, C.ElmanState(h))
    for t in range(T):
        h = h + cell.epsilon * torch.tanh(h @ M.T + x[:, t] @ cell.weight_ih.T + cell.bias_ih)
        torch.testing.assert_close(out[:, t], h)


def test_gated_antisymmetric_follows_its_equations():
    cell = make_cell("antisymmetric_gated", I, H)
    M = cell.weight_hh
    Vz, V = cell.weight_ih.split(H)
    bz, b = cell.bias_ih.split(H)
    x, h = torch.randn(B, T, I, dtype=D), torch.randn(B, H, dtype=D)
    out, _ = steps(cell, x, C.ElmanState(h))
    for t in range(T):
        z = torch.sigmoid(h @ M.T + x[:, t] @ Vz.T + bz)
        h = h + cell.epsilon * z * torch.tanh(h @ M.T + x[:, t] @ V.T + b)
        torch.testing.assert_close(out[:, t], h)


def test_orthogonal_matrix_stays_orthogonal_through_training():
    for name in ("orthogonal_tanh", "orthogonal_cayley", "orthogonal_modrelu"):
        cell = make_cell(name, I, H)
        eye = torch.eye(H, dtype=D)
        torch.testing.assert_close(cell.weight_hh.T @ cell.weight_hh, eye)
        before = cell.weight_hh.detach().clone()
        opt = torch.optim.Adam(cell.parameters(), lr=0.1)
        x = torch.randn(B, T, I, dtype=D)
        for _ in range(20):
            out, _ = C.run(cell, x)
            loss = (out - 0.3).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        W = cell.weight_hh
        assert (W - before).abs().max() > 1e-2, name  # it did learn
        torch.testing.assert_close(W.T @ W, eye, msg=name)
        torch.testing.assert_close(torch.linalg.eigvals(W).abs(), torch.ones(H, dtype=D), msg=name)


def test_modrelu_follows_its_equation():
    cell = make_cell("orthogonal_modrelu", I, H)
    x, h = torch.randn(B, T, I, dtype=D), torch.randn(B, H, dtype=D)
    out, _ = steps(cell, x, C.ElmanState(h))
    for t in range(T):
        z = x[:, t] @ cell.weight_ih.T + cell.bias_ih + cell.bias_hh + h @ cell.weight_hh.T
        h = torch.sign(z) * torch.relu(z.abs() + cell.bias_modrelu)
        torch.testing.assert_close(out[:, t], h)


def test_min_gru_and_min_lstm_follow_their_equations():
    x, h0 = torch.randn(B, T, I, dtype=D), torch.randn(B, H, dtype=D)
    gru = make_cell("min_gru", I, H)
    out, _ = steps(gru, x, C.GRUState(h0))
    Wz, Wh = gru.weight_ih.split(H)
    bz, bh = gru.bias_ih.split(H)
    h = h0
    for t in range(T):
        z = torch.sigmoid(x[:, t] @ Wz.T + bz)
        h = (1 - z) * h + z * (x[:, t] @ Wh.T + bh)
        torch.testing.assert_close(out[:, t], h)

    lstm = make_cell("min_lstm", I, H)
    out, _ = steps(lstm, x, C.ElmanState(h0))
    Wf, Wi, Wh = lstm.weight_ih.split(H)
    bf, bi, bh = lstm.bias_ih.split(H)
    h = h0
    for t in range(T):
        f, i = torch.sigmoid(x[:, t] @ Wf.T + bf), torch.sigmoid(x[:, t] @ Wi.T + bi)
        h = f / (f + i) * h + i / (f + i) * (x[:, t] @ Wh.T + bh)
        torch.testing.assert_close(out[:, t], h)
    a, _ = lstm.coefficients(lstm.project(x))
    assert ((a > 0) & (a < 1)).all()


def test_coefficients_reproduce_step():
    for name in ("min_gru", "min_lstm"):
        cell = make_cell(name, I, H)
        px = cell.project(torch.randn(B, I, dtype=D))
        s = random_state(cell, B)
        a, b = cell.coefficients(px)
        torch.testing.assert_close(cell.step(px, s).h, a * s.h + b)
