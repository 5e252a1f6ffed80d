"""DropConnect on the recurrent matrix: one mask per run, on the weight, so fused kernels still run."""

import copy

import pytest
import torch
from cell_zoo import CELLS, make_cell, random_state
from torch.nn.utils import parametrize

import carousel as C
from carousel.regularize import WeightDrop, hold_masks, remove_weight_drop, weight_drop
from carousel.runners import resolve_backend

FUSED_CELLS = ["lstm", "lstm_proj", "lstm_forget_bias", "gru", "elman_tanh", "elman_relu", "elman_nobias", "irnn", "orthogonal_tanh"]
PLAIN_RECURRENT = sorted(
    n for n in CELLS if not n.startswith(("min_", "orthogonal", "antisymmetric"))
)  # weight_hh is a plain parameter


def outputs_and_grads(cell, x, state, backend):
    x = x.detach().clone().requires_grad_()
    state = type(state)(*(s.detach().clone().requires_grad_() for s in state))
    cell.zero_grad(set_to_none=True)
    out, final = C.run(cell, x, state, backend=backend)
    g = torch.Generator().manual_seed(0)
    loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum()
    loss = loss + sum((f * torch.randn(f.shape, generator=g, dtype=f.dtype)).sum() for f in final)
    loss.backward()
    grads = {"x": x.grad, **{f"state.{k}": s.grad for k, s in zip(state._fields, state)}}
    grads.update({n: p.grad for n, p in cell.named_parameters()})
    return out.detach(), final, grads


def _mask(cell):
    return cell.parametrizations.weight_hh[-1].current_mask


@pytest.mark.parametrize("name", FUSED_CELLS)
@pytest.mark.parametrize("other", ["explicit", "reference"])
def test_fused_and_loop_agree_for_a_fixed_mask(name, other):
    cell = weight_drop(make_cell(name), 0.5)
    if other == "explicit" and cell.explicit_step() is None:
        other = "reference"  # only LSTM cells offer an explicit step
    x = torch.randn(3, 5, 3, dtype=torch.float64)
    s0 = random_state(cell, 3)
    assert resolve_backend(cell, x).name == "fused"
    with hold_masks(cell):
        out, final, grads = outputs_and_grads(cell, x, s0, "fused")
        ref_out, ref_final, ref_grads = outputs_and_grads(cell, x, s0, other)
        assert bool((_mask(cell) == 0).any())
    torch.testing.assert_close(out, ref_out)
    for a, b in zip(final, ref_final):
        torch.testing.assert_close(a, b)
    assert "parametrizations.weight_hh.original" in grads
    for k in ref_grads:
        torch.testing.assert_close(grads[k], ref_grads[k], msg=lambda m: f"{k}: {m}")


@pytest.mark.parametrize("name", PLAIN_RECURRENT)
def test_a_run_is_the_plain_cell_with_one_masked_matrix_and_gradients_reach_the_raw_weight(name):
    torch.manual_seed(1)
    plain = make_cell(name)
    cell = weight_drop(copy.deepcopy(plain), 0.4)
    x = torch.randn(3, 6, 3, dtype=torch.float64)
    s0 = random_state(cell, 3)
    torch.manual_seed(2)
    out, final, grads = outputs_and_grads(cell, x, s0, "reference" if cell.explicit_step() is None else "explicit")
    m = _mask(cell)  # the one mask this run drew
    with torch.no_grad():
        plain.weight_hh.mul_(m)  # W * M in a cell without weight drop
    ref_out, ref_final, ref_grads = outputs_and_grads(plain, x, s0, "reference")
    torch.testing.assert_close(out, ref_out)
    for a, b in zip(final, ref_final):
        torch.testing.assert_close(a, b)
    raw = grads["parametrizations.weight_hh.original"]
    torch.testing.assert_close(raw, m * ref_grads["weight_hh"])  # d(W * M)/dW = M
    assert bool((raw[m == 0] == 0).all()) and bool((raw[m != 0] != 0).any())


def test_every_run_draws_a_new_mask_and_evaluation_is_the_plain_cell():
    torch.manual_seed(3)
    plain = make_cell("lstm")
    cell = weight_drop(copy.deepcopy(plain), 0.5)
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    a, _ = C.run(cell, x)
    m_a = _mask(cell).clone()
    b, _ = C.run(cell, x)
    assert not torch.equal(m_a, _mask(cell)) and not torch.allclose(a, b)
    torch.manual_seed(4)
    c, _ = C.run(cell, x)
    torch.manual_seed(4)
    assert torch.equal(C.run(cell, x)[0], c), "same seed, same mask"
    cell.eval()
    torch.testing.assert_close(C.run(cell, x)[0], C.run(plain, x)[0])
    assert cell.weight_hh is cell.parametrizations.weight_hh.original


def test_state_dict_keeps_plain_keys_and_loads_both_ways():
    torch.manual_seed(5)
    plain = C.LSTMCell(3, 4)
    cell = weight_drop(C.LSTMCell(3, 4), 0.5)
    assert sorted(cell.state_dict()) == sorted(plain.state_dict())
    cell.load_state_dict(plain.state_dict())
    assert torch.equal(cell.parametrizations.weight_hh.original, plain.weight_hh)
    back = C.LSTMCell(3, 4)
    back.load_state_dict(cell.state_dict())
    assert torch.equal(back.weight_hh, plain.weight_hh)
    cell.load_state_dict(cell.state_dict())  # round trip


def test_drop_in_lstm_with_weight_drop_reads_and_writes_torch_checkpoints():
    torch.manual_seed(6)
    ref = torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True)
    lstm = weight_drop(C.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True), 0.5)
    lstm.load_state_dict(ref.state_dict())
    x = torch.randn(2, 6, 3)
    lstm.eval()
    torch.testing.assert_close(lstm(x)[0], ref(x)[0])
    lstm.train()
    assert not torch.allclose(lstm(x)[0], ref(x)[0])
    again = torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True)
    again.load_state_dict(lstm.state_dict())
    torch.testing.assert_close(again(x)[0], ref(x)[0])


def test_moving_between_dtypes_keeps_the_held_mask_and_the_fused_path():
    torch.manual_seed(7)
    cell = weight_drop(C.GRUCell(3, 4), 0.5)
    x = torch.randn(2, 5, 3)
    with hold_masks(cell):
        out32, _ = C.run(cell, x, backend="fused")
        cell.double()
        out64, _ = C.run(cell, x.double(), backend="fused")
        assert _mask(cell).dtype == torch.float64
    torch.testing.assert_close(out64.float(), out32, rtol=1e-4, atol=1e-5)
    assert cell.parametrizations.weight_hh.original.dtype == torch.float64
    cell.float()
    assert C.run(cell, x)[0].dtype == torch.float32


def test_deepcopy_gives_an_independent_module():
    cell = weight_drop(C.LSTMCell(3, 4), 0.5)
    twin = copy.deepcopy(cell)
    with torch.no_grad():
        twin.parametrizations.weight_hh.original.zero_()
    assert not bool((cell.parametrizations.weight_hh.original == 0).all())
    assert C.run(twin, torch.randn(2, 3, 3))[0].shape == (2, 3, 4)


def test_stacks_on_an_orthogonal_matrix_and_removes_cleanly():
    torch.manual_seed(8)
    cell = C.OrthogonalCell(3, 4)
    keys = sorted(cell.state_dict())
    u = cell.weight_hh.detach().clone()
    weight_drop(cell, 0.5)
    assert sorted(cell.state_dict()) == keys
    with hold_masks(cell):
        torch.testing.assert_close(cell.weight_hh, u * _mask(cell))
    remove_weight_drop(cell)
    assert len(cell.parametrizations.weight_hh) == 1
    torch.testing.assert_close(cell.weight_hh, u)


def test_remove_weight_drop_restores_the_plain_parameter():
    cell = weight_drop(C.ElmanCell(3, 4), 0.5)
    raw = cell.parametrizations.weight_hh.original.detach().clone()
    remove_weight_drop(cell)
    assert not parametrize.is_parametrized(cell)
    assert isinstance(cell.weight_hh, torch.nn.Parameter) and torch.equal(cell.weight_hh, raw)
    assert type(cell) is C.ElmanCell


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"no part of MinGRUCell has a weight named 'weight_hh'"):
        weight_drop(C.MinGRUCell(2, 3), 0.5)
    cell = weight_drop(C.GRUCell(2, 3), 0.5)
    with pytest.raises(ValueError, match=r"already has weight drop"):
        weight_drop(cell, 0.3)
    with pytest.raises(ValueError, match=r"expected p in \[0, 1\), got 1"):
        weight_drop(C.GRUCell(2, 3), 1)
    with pytest.raises(TypeError, match="expected a torch.nn.Module, got str"):
        weight_drop("lstm", 0.5)
    with pytest.raises(ValueError, match="expected names as a sequence of parameter names"):
        weight_drop(C.GRUCell(2, 3), 0.5, names=[1])
    assert isinstance(weight_drop(C.MinGRUCell(2, 3), 0.5, names="weight_ih").parametrizations.weight_ih[0], WeightDrop)



class _Run(torch.nn.Module):
    def __init__(self, cell, backend):
        super().__init__()
        self.cell, self.backend = cell, backend

    def forward(self, x):
        out, final = C.run(self.cell, x, backend=self.backend)
        return out, final.c


@pytest.mark.parametrize("backend", ["fused", "explicit", "reference"])
def test_gradcheck_of_the_raw_weight_float64(backend):
    runner = _Run(weight_drop(make_cell("lstm", 2, 3), 0.5), backend)
    x = torch.randn(2, 4, 2, dtype=torch.float64)
    key = "cell.parametrizations.weight_hh.original"
    raw = runner.get_parameter(key).detach().clone().requires_grad_()

    def f(raw):
        return torch.func.functional_call(runner, {key: raw}, (x,))

    torch.manual_seed(0)
    with hold_masks(runner):
        assert torch.autograd.gradcheck(f, (raw,))
        m = _mask(runner.cell)
        f(raw)[0].sum().backward()  # the check is not vacuous: the output depends on raw, through the mask
        assert bool((raw.grad[m == 0] == 0).all()) and bool((raw.grad[m != 0] != 0).all())


def test_drop_in_one_call_stack_and_per_layer_path_agree_for_fixed_masks():
    torch.manual_seed(9)
    lstm = weight_drop(C.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, dtype=torch.float64), 0.5)
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    with hold_masks(lstm):
        out, (h, c) = lstm(x)  # the whole stack in one kernel call
        per_layer, finals = lstm.stack(x)  # layer by layer, same held masks
        masked = lstm.stack.layers[0].forward_layer.cell.weight_hh
    torch.testing.assert_close(out, per_layer)
    torch.testing.assert_close(c[-1], finals[-1][1].c)
    assert bool((masked == 0).any())
