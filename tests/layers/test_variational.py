"""add_variational_dropout: one mask per sequence on inputs, recurrent state, between layers, outputs."""

import copy

import pytest
import torch

import carousel as C
from carousel.layers import VariationalLayer, add_variational_dropout
from carousel.regularize import RecurrentDropout, VariationalDropout, Zoneout, bernoulli_mask


def _stack(seed=0):
    torch.manual_seed(seed)
    return C.Deep(
        [
            C.Bidirectional(C.Recurrent(C.GRUCell(3, 4)), C.Recurrent(C.GRUCell(3, 4))),
            C.Recurrent(C.LSTMCell(8, 5)),
        ],
        dropout=0.0,
    )


def test_every_place_is_regularised_and_evaluation_is_unchanged():
    plain = _stack()
    layer = add_variational_dropout(copy.deepcopy(plain), 0.3)
    cells = [m.cell for m in layer.modules() if isinstance(m, C.Recurrent)]
    assert len(cells) == 3 and all(isinstance(c, RecurrentDropout) and c.p == 0.3 for c in cells)
    deep = layer.layer
    assert isinstance(deep.drop, VariationalDropout) and deep.dropout == 0.3 and deep.variational
    assert layer.input_dropout.p == layer.output_dropout.p == 0.3
    assert list(layer.layer.state_dict()) == list(plain.state_dict())
    x = torch.randn(4, 6, 3)
    lengths = torch.tensor([6, 3, 5, 1])
    layer.eval()
    plain.eval()
    out, _ = layer(x, lengths=lengths)
    torch.testing.assert_close(out, plain(x, lengths=lengths)[0])
    layer.train()
    out, _ = layer(x, lengths=lengths)
    assert not torch.allclose(out, plain(x, lengths=lengths)[0])
    assert bool((out[1, 3:] == 0).all()) and bool((out[3, 1:] == 0).all())


def test_matches_the_written_out_masks_on_one_recurrent_layer():
    torch.manual_seed(1)
    cell = C.LSTMCell(3, 5, dtype=torch.float64)
    layer = add_variational_dropout(C.Recurrent(cell), {"input": 0.2, "recurrent": 0.4, "output": 0.5})
    x = torch.randn(3, 7, 3, dtype=torch.float64)
    torch.manual_seed(2)
    out, final = layer(x)
    # the same draws, in the order the layer makes them: input mask, recurrent mask, output mask
    torch.manual_seed(2)
    m_in = bernoulli_mask((3, 1, 3), 0.2, x)
    m_h = bernoulli_mask((3, 5), 0.4, x)
    state, ys = cell.initial_state(3, dtype=torch.float64), []
    for px_t in cell.project(x * m_in).unbind(1):
        state = cell.step(px_t, type(state)(state.h * m_h, state.c))
        ys.append(state.h)
    m_out = bernoulli_mask((3, 1, 5), 0.5, x)
    torch.testing.assert_close(out, torch.stack(ys, 1) * m_out)
    torch.testing.assert_close(final.c, state.c)


def test_a_mapping_regularises_only_the_places_it_names():
    layer = add_variational_dropout(_stack(), {"recurrent": 0.2})
    assert layer.input_dropout.p == layer.output_dropout.p == 0.0
    assert isinstance(layer.layer.drop, torch.nn.Dropout) and layer.layer.dropout == 0.0
    assert all(isinstance(m.cell, RecurrentDropout) for m in layer.modules() if isinstance(m, C.Recurrent))


def test_zoneout_stays_outermost():
    inner = C.GRUCell(2, 3)
    rec = C.Recurrent(Zoneout(inner, 0.1))
    add_variational_dropout(rec, {"recurrent": 0.3})
    assert isinstance(rec.cell, Zoneout) and isinstance(rec.cell.cell, RecurrentDropout)
    assert rec.cell.cell.cell is inner


def test_packed_input_goes_through():
    layer = add_variational_dropout(C.Recurrent(C.GRUCell(2, 3)), 0.3)
    x = torch.randn(3, 4, 2)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, [4, 2, 3], batch_first=True, enforce_sorted=False)
    out, _ = layer(packed)
    assert isinstance(out, torch.nn.utils.rnn.PackedSequence)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"unknown dropout place 'hidden'; expected some of: 'input', 'recurrent'"):
        add_variational_dropout(_stack(), {"hidden": 0.2})
    with pytest.raises(ValueError, match=r"expected p\['output'\] in \[0, 1\), got 1.0"):
        add_variational_dropout(_stack(), {"output": 1.0})
    with pytest.raises(ValueError, match=r"expected p in \[0, 1\), got -0.5"):
        add_variational_dropout(_stack(), -0.5)
    with pytest.raises(ValueError, match="'between' dropout was asked for, but Recurrent has no Deep stack"):
        add_variational_dropout(C.Recurrent(C.GRUCell(2, 3)), {"between": 0.2})
    rec = C.Recurrent(RecurrentDropout(C.GRUCell(2, 3), 0.1))
    with pytest.raises(ValueError, match=r"RecurrentDropout\(GRUCell\) already has recurrent dropout"):
        add_variational_dropout(rec, 0.2)
    with pytest.raises(TypeError, match="expected the layer to regularise to be a carousel sequence layer.*got LSTM"):
        add_variational_dropout(torch.nn.LSTM(2, 3), 0.2)
    with pytest.raises(TypeError, match="carousel sequence layer.*got GRUCell; wrap the cell in Recurrent"):
        VariationalLayer(C.GRUCell(2, 3))


def test_drop_in_variational_dropout_between_layers():
    torch.manual_seed(3)
    lstm = C.LSTM(3, 4, num_layers=2, dropout=0.5, batch_first=True, variational=True)
    x = torch.randn(5, 6, 3)
    torch.manual_seed(4)
    out, _ = lstm(x)
    l0, l1 = lstm.stack.layers
    torch.manual_seed(4)
    y0, _ = l0(x)
    ref, _ = l1(y0 * bernoulli_mask((5, 1, 4), 0.5, y0))
    torch.testing.assert_close(out, ref)
    assert "variational=True" in repr(lstm.stack)


def test_drop_in_keeps_torch_checkpoints_with_recurrent_dropout_inside():
    torch.manual_seed(5)
    ref = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    lstm = C.LSTM(3, 4, num_layers=2, bidirectional=True)
    add_variational_dropout(lstm.stack, {"recurrent": 0.3, "between": 0.3})
    assert len(lstm.cells()) == 4 and all(isinstance(c, RecurrentDropout) for c in lstm.cells())
    assert sorted(lstm.state_dict()) == sorted(ref.state_dict())
    lstm.load_state_dict(ref.state_dict())
    assert torch.equal(lstm.weight_hh_l1_reverse, ref.weight_hh_l1_reverse)
    x = torch.randn(6, 2, 3)
    lstm.eval()
    torch.testing.assert_close(lstm(x)[0], ref(x)[0])
    lstm.train()
    assert not torch.allclose(lstm(x)[0], ref(x)[0])


def test_one_step_calls_inside_hold_masks_equal_one_run_for_every_place():
    torch.manual_seed(6)
    stack = C.Deep([C.Recurrent(C.LSTMCell(3, 4)), C.Recurrent(C.GRUCell(4, 4))])
    model = add_variational_dropout(stack, 0.4)
    x = torch.randn(3, 5, 3)
    torch.manual_seed(7)
    full, _ = model(x)
    torch.manual_seed(7)
    with C.hold_masks(model):
        state, steps = None, []
        for t in range(5):
            y, state = model(x[:, t : t + 1], state)
            steps.append(y)
    torch.testing.assert_close(torch.cat(steps, 1), full)


def test_drop_in_between_dropout_added_later_is_drawn_in_training():
    torch.manual_seed(9)
    lstm = C.LSTM(3, 4, num_layers=2, batch_first=True)  # built without dropout
    add_variational_dropout(lstm.stack, {"between": 0.5})
    assert lstm.dropout == 0.5 and lstm.stack.variational  # the stack owns the rate; the drop-in reads it
    x = torch.randn(2, 5, 3)
    l0, l1 = lstm.stack.layers
    torch.manual_seed(10)
    out, _ = lstm(x)
    torch.manual_seed(10)
    y0, _ = l0(x)
    ref, _ = l1(y0 * bernoulli_mask((2, 1, 4), 0.5, y0))
    torch.testing.assert_close(out, ref)


def test_set_dropout_keeps_the_stacks_mode():
    stack = C.Deep([C.Recurrent(C.GRUCell(3, 4)), C.Recurrent(C.GRUCell(4, 4))]).eval()
    stack.set_dropout(0.3, variational=True)
    assert not stack.drop.training and not stack.drops_between  # an evaluating model stays deterministic
    stack.train()
    assert stack.drops_between and isinstance(stack.drop, VariationalDropout) and stack.drop.p == 0.3
    with pytest.raises(ValueError, match="expected dropout in \\[0, 1\\], got 1.5"):
        stack.set_dropout(1.5, variational=False)
