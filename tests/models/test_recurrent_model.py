"""The models' shared parts and RecurrentModel: cells by name without touching the generator, the
regularised stack, token input, readouts at each sequence's own last step."""

import pytest
import torch

import carousel as C
from carousel import Deep, Recurrent
from carousel.models import RecurrentModel, cell_factory, check_token_ids, last_step, recurrent_stack


def test_cell_factory_checks_a_name_early_without_drawing_from_the_generator():
    torch.manual_seed(3)
    before = torch.get_rng_state()
    make = cell_factory("gru", {"variant": "cho"})
    assert torch.equal(torch.get_rng_state(), before)  # the throwaway cell that checks the options drew nothing
    cell = make(2, 5)
    assert isinstance(cell, C.GRUCell) and cell.variant == "cho" and (cell.input_size, cell.hidden_size) == (2, 5)
    with pytest.raises(ValueError, match="unknown cell 'grru' \\(did you mean 'gru'\\?\\)"):
        cell_factory("grru")
    with pytest.raises(ValueError, match="unknown GRU variant 'keras'"):
        cell_factory("gru", {"variant": "keras"})
    with pytest.raises(TypeError, match="expected cell as a name"):
        cell_factory(3)


def test_recurrent_stack_wraps_each_cell_and_chains_the_sizes():
    stack = recurrent_stack(lambda i, h: C.LSTMCell(i, h, proj_size=2), 4, [6, 5], dropout=0.3, recurrent_dropout=0.2,
                            zoneout_h=0.1, backend="reference")
    assert isinstance(stack, Deep) and stack.variational and stack.dropout == 0.3
    first, second = (layer.cell for layer in stack.layers)
    assert isinstance(first, C.Zoneout) and isinstance(first.cell, C.RecurrentDropout)  # zoneout outermost
    assert second.input_size == 2 and stack.output_size == 2  # each layer reads the projection below
    assert all(layer.backend == "reference" for layer in stack.layers)
    with pytest.raises(TypeError, match="must return a carousel Cell"):
        recurrent_stack(lambda i, h: torch.nn.Linear(i, h), 3, [4])
    with pytest.raises(ValueError, match="expected zoneout_c in"):
        recurrent_stack(C.GRUCell, 3, [4], zoneout_c=1.5)


def test_token_ids_and_last_step():
    with pytest.raises(ValueError, match="expected token ids of shape \\(B, T\\) and an integer dtype, got shape \\(2, 3\\), dtype torch.bool"):
        check_token_ids(torch.zeros(2, 3, dtype=torch.bool))
    y = torch.arange(24.0).view(2, 4, 3)
    torch.testing.assert_close(last_step(y, [2, 4]), torch.stack([y[0, 1], y[1, 3]]))
    torch.testing.assert_close(last_step(y), y[:, -1])


def test_recurrent_model_reads_each_sequence_at_its_last_step():
    torch.manual_seed(0)
    model = RecurrentModel("lstm", 3, 6, 2, layers=2, readout="last").double()
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    lengths = torch.tensor([7, 3, 5, 1])
    z, _ = model(x, lengths=lengths)
    ys, _ = model.rnn(x, lengths=lengths)
    expected = model.head(torch.stack([ys[b, n - 1] for b, n in enumerate(lengths.tolist())]))
    torch.testing.assert_close(z, expected)
    assert isinstance(model.rnn, Deep) and all(isinstance(layer, Recurrent) for layer in model.rnn.layers)


def test_recurrent_model_with_a_vocabulary_refuses_floats():
    torch.manual_seed(1)
    model = RecurrentModel("gru", 4, 5, 11, vocab_size=11, readout="all")
    ids = torch.randint(0, 11, (2, 6))
    z, state = model(ids)
    ys, expected_state = model.rnn(model.embedding.weight[ids])  # (2, 6, 5): rows of the embedding
    torch.testing.assert_close(z, model.head(ys))
    torch.testing.assert_close(state[0].h, expected_state[0].h)
    with pytest.raises(ValueError, match="expected token ids of shape"):
        model(torch.randn(2, 6, 4))
