"""RecurrentDropout: one mask on h_{t-1} per sequence, for every carousel cell."""

import pytest
import torch
from cell_zoo import make_cell, random_state

import carousel as C
from carousel.regularize import RecurrentDropout, Zoneout, hold_masks
from carousel.runners import resolve_backend


def reference(cell, x, state, mask):
    """A plain loop over the inner cell whose recurrence reads h_{t-1} * mask at every step."""
    px = cell.project(x)  # (B, T, G)
    outputs = []
    for px_t in px.unbind(1):
        state = cell.step(px_t, type(state)(state[0] * mask, *state[1:]))
        outputs.append(state[0])
    return torch.stack(outputs, 1), state


def test_training_run_matches_a_loop_with_one_fixed_mask(cell_name):
    cell = make_cell(cell_name)
    rd = RecurrentDropout(cell, 0.4)
    x = torch.randn(5, 6, 3, dtype=torch.float64)
    s0 = random_state(cell, 5)
    torch.manual_seed(10)
    out, final = C.run(rd, x, s0)
    torch.manual_seed(10)
    rd.new_sequence()
    mask = rd.recurrent_mask(5, s0[0])
    ref_out, ref_final = reference(cell, x, s0, mask)
    torch.testing.assert_close(out, ref_out)
    for a, b in zip(final, ref_final):
        torch.testing.assert_close(a, b)
    # and it is not the plain cell: the mask changed something
    assert not torch.allclose(out, C.run(cell, x, s0)[0])


def test_evaluation_is_the_plain_cell_and_deterministic(cell_name):
    cell = make_cell(cell_name)
    rd = RecurrentDropout(cell, 0.5).eval()
    x = torch.randn(4, 5, 3, dtype=torch.float64)
    s0 = random_state(cell, 4)
    out, final = C.run(rd, x, s0)
    ref_out, ref_final = C.run(cell, x, s0, backend="reference")
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(C.run(rd, x, s0)[0], out, rtol=0, atol=0)
    assert rd.recurrent_mask(4, x) is None


def test_the_recurrence_sees_the_same_mask_at_every_step():
    seen = []

    class Spy(C.ElmanCell):
        def step(self, px_t, state):
            seen.append(state.h)
            return super().step(px_t, state)

    torch.manual_seed(0)
    cell = Spy(3, 8, dtype=torch.float64)
    rd = RecurrentDropout(cell, 0.5)
    x = torch.randn(6, 7, 3, dtype=torch.float64)
    h0 = torch.randn(6, 8, dtype=torch.float64)
    out, _ = C.run(rd, x, (h0,))
    previous = torch.cat([h0.unsqueeze(1), out[:, :-1]], dim=1)  # (B, T, H): h_{t-1}
    ratio = torch.stack(seen, 1) / previous  # (B, T, H): the mask each step applied
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))
    m = ratio[:, 0]
    assert set(m.round(decimals=6).unique().tolist()) == {0.0, 2.0}
    assert len({tuple(row.tolist()) for row in m}) == 6, "two sequences shared a mask"


def test_mask_keeps_the_expected_activation():
    rd = RecurrentDropout(C.LSTMCell(2, 16), 0.25)
    torch.manual_seed(1)
    like = torch.empty(0, dtype=torch.float64)
    masks = rd.recurrent_mask(20000, like)  # (20000, 16)
    se = (0.25 / 0.75 / 20000) ** 0.5
    assert (masks.mean(0) - 1).abs().max() < 5 * se
    assert set(masks.unique().tolist()) == {0.0, 4.0 / 3.0}


def test_same_seed_same_masks_other_seed_other_masks():
    rd = RecurrentDropout(make_cell("gru"), 0.5)
    x = torch.randn(4, 6, 3, dtype=torch.float64)
    runs = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        runs.append(C.run(rd, x)[0])
    assert torch.equal(runs[0], runs[1])
    assert not torch.allclose(runs[0], runs[2])


def test_each_run_is_a_new_sequence_and_recurrent_mask_is_the_one_used():
    rd = RecurrentDropout(make_cell("lstm"), 0.5)
    x = torch.randn(3, 4, 3, dtype=torch.float64)
    torch.manual_seed(5)
    out, _ = C.run(rd, x)
    m_used = rd.recurrent_mask(3, x)  # the run's mask, still current after it
    ref, _ = reference(rd.cell, x, rd.cell.initial_state(3, dtype=torch.float64), m_used)
    torch.testing.assert_close(out, ref)
    rd.project(x)  # a new sequence
    assert not torch.equal(rd.recurrent_mask(3, x), m_used)


@pytest.mark.parametrize("cell_name", ["lstm", "gru", "lstm_proj", "elman_tanh"])
def test_one_step_calls_inside_hold_masks_equal_one_run(cell_name):
    rd = RecurrentDropout(make_cell(cell_name), 0.5)
    layer = C.Recurrent(rd)
    x = torch.randn(4, 5, 3, dtype=torch.float64)
    torch.manual_seed(7)
    full, final = layer(x)
    torch.manual_seed(7)
    with hold_masks(layer):
        state, steps = None, []
        for t in range(5):
            y, state = layer(x[:, t : t + 1], state)  # (B, 1, H): one step per call
            steps.append(y)
    torch.testing.assert_close(torch.cat(steps, 1), full)
    torch.testing.assert_close(state[0], final[0])
    # without hold_masks every one-step call draws a new mask
    torch.manual_seed(7)
    state, steps = None, []
    for t in range(5):
        y, state = layer(x[:, t : t + 1], state)
        steps.append(y)
    assert not torch.allclose(torch.cat(steps, 1), full)


def test_lengths_freeze_the_state_and_keep_the_mask():
    rd = RecurrentDropout(make_cell("lstm"), 0.5)
    x = torch.randn(4, 6, 3, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 4, 1])
    torch.manual_seed(8)
    full, _ = C.run(rd, x)
    torch.manual_seed(8)
    out, final = C.run(rd, x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(out[b, :n], full[b, :n])
        assert bool((out[b, n:] == 0).all())
        torch.testing.assert_close(final.h[b], full[b, n - 1])


@pytest.mark.parametrize("cell_name", ["lstm", "gru", "orthogonal_tanh"])
def test_gradcheck_float64(cell_name):
    rd = RecurrentDropout(make_cell(cell_name, 2, 3), 0.5)
    x = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, rd.state_sizes[0], dtype=torch.float64, requires_grad=True)
    rest = [torch.zeros(2, n, dtype=torch.float64) for n in rd.state_sizes[1:]]

    def f(x, h0):
        out, final = C.run(rd, x, (h0, *rest))
        return out, final[0]

    torch.manual_seed(9)
    with hold_masks(rd):  # one mask for every evaluation gradcheck makes
        assert torch.autograd.gradcheck(f, (x, h0))
        assert bool((rd.recurrent_mask(2, x) == 0).any()), "pick a seed whose mask drops a unit"


def test_fused_serves_evaluation_and_the_loop_serves_training():
    rd = RecurrentDropout(C.LSTMCell(3, 4), 0.3)
    x = torch.randn(2, 5, 3)
    assert resolve_backend(rd, x).name == "explicit"
    with pytest.raises(ValueError, match=r"fused cannot run RecurrentDropout\(LSTMCell\) in training mode"):
        C.run(rd, x, backend="fused")
    rd.eval()
    assert resolve_backend(rd, x).name == "fused"
    torch.testing.assert_close(C.run(rd, x, backend="fused")[0], C.run(rd.cell, x, backend="reference")[0])


def test_state_dict_is_the_inner_cells():
    torch.manual_seed(0)
    plain = C.LSTMCell(3, 4, proj_size=2)
    rd = RecurrentDropout(C.LSTMCell(3, 4, proj_size=2), 0.3)
    assert list(rd.state_dict()) == list(plain.state_dict())
    rd.load_state_dict(plain.state_dict())
    for k, v in plain.state_dict().items():
        assert torch.equal(rd.state_dict()[k], v)
    other = C.LSTMCell(3, 4, proj_size=2)
    other.load_state_dict(rd.state_dict())
    assert torch.equal(other.weight_hh, plain.weight_hh)
    nested = Zoneout(RecurrentDropout(C.OrthogonalCell(3, 4), 0.2), 0.1)
    assert list(nested.state_dict()) == list(C.OrthogonalCell(3, 4).state_dict())
    nested.load_state_dict(C.OrthogonalCell(3, 4).state_dict())


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"expected p in \[0, 1\), got 1.0"):
        RecurrentDropout(C.GRUCell(2, 3), 1.0)
    with pytest.raises(ValueError, match=r"expected p in \[0, 1\), got -0.2"):
        RecurrentDropout(C.GRUCell(2, 3), -0.2)
    with pytest.raises(TypeError, match="expected the cell to wrap to be a carousel Cell.*got GRU; that is a layer"):
        RecurrentDropout(torch.nn.GRU(2, 3), 0.1)

