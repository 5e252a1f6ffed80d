"""The fused backend against the reference loop: every fusable cell, lengths, initial state, dtypes."""

from __future__ import annotations


import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

import carousel as C
from carousel.runners import resolve_backend, run
from cell_zoo import make_cell, random_state

B, T, I, H = 4, 7, 3, 5
FUSABLE = ["elman_tanh", "elman_relu", "elman_nobias", "irnn", "lstm", "lstm_forget_bias", "lstm_proj", "gru",
           "orthogonal_tanh", "orthogonal_cayley"]
NOT_FUSABLE = {
    "lstm_layer_norm": "fused needs a standard LSTM cell; layer_norm=True was given",
    "lstm_peephole": "fused needs a standard LSTM cell; peephole=True was given",
    "lstm_no_forget_gate": "fused needs a standard LSTM cell; forget_gate=False was given",
    "lstm_everything": "fused needs a standard LSTM cell; peephole=True, layer_norm=True were given",
    "gru_cho": "fused needs a GRU cell in torch's form; variant='cho' was given",
    "elman_identity": "fused needs a tanh or relu Elman cell; nonlinearity='identity' was given",
    "orthogonal_modrelu": "fused needs a tanh or relu Elman cell; nonlinearity='modrelu' was given",
    "antisymmetric": "fused needs an Elman, LSTM or GRU cell in torch's form; AntisymmetricCell is none of these",
    "min_gru": "fused needs an Elman, LSTM or GRU cell in torch's form; MinGRUCell is none of these",
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("lengths", [None, [7, 3, 5, 1]], ids=["full", "lengths"])
@pytest.mark.parametrize("name", FUSABLE)
def test_fused_equals_loop(name, lengths, dtype, assert_matches_reference):
    cell = make_cell(name, I, H, dtype=dtype)
    x = torch.randn(B, T, I, dtype=dtype)
    state = random_state(cell, B, dtype=dtype)
    assert resolve_backend(cell, x, "auto").name == "fused"
    out, _ = assert_matches_reference(cell, x, state, lengths, "fused")
    if lengths is not None:
        assert torch.count_nonzero(out[1, 3:]) == 0 and torch.count_nonzero(out[1, :3]) > 0


@pytest.mark.parametrize("name", sorted(NOT_FUSABLE))
def test_fused_refuses_and_says_why(name):
    cell = make_cell(name, I, H)
    x = torch.randn(B, T, I, dtype=torch.float64)
    with pytest.raises(ValueError, match="backend 'fused' cannot run") as err:
        run(cell, x, backend="fused")
    assert NOT_FUSABLE[name] in str(err.value)
    assert resolve_backend(cell, x, "auto").name != "fused"


def test_a_subclass_that_changes_the_step_is_not_fused():
    class Leaky(C.ElmanCell):
        def step(self, px_t, state):
            return C.ElmanState(0.5 * state.h + 0.5 * super().step(px_t, state).h)

    cell = Leaky(I, H)
    mode, reason = cell.fused_mode()
    assert mode is None and "Leaky changes its step" in reason
    assert resolve_backend(cell, torch.randn(B, T, I), "auto").name == "reference"


class _FixedMask(nn.Module):
    """A DropConnect-like parametrisation with a known mask; counts its evaluations."""

    def __init__(self, mask):
        super().__init__()
        self.register_buffer("mask", mask)
        self.calls = 0

    def forward(self, w):
        self.calls += 1
        return w * self.mask


def test_fused_reads_computed_weights_once_per_run(assert_matches_reference):
    cell = make_cell("lstm", I, H)
    mask = (torch.rand(4 * H, H, generator=torch.Generator().manual_seed(3)) > 0.3).double()
    parametrize.register_parametrization(cell, "weight_hh", _FixedMask(mask))
    x = torch.randn(B, T, I, dtype=torch.float64)
    param = cell.parametrizations.weight_hh[0]
    param.calls = 0
    run(cell, x, backend="fused")
    assert param.calls == 1
    # the mask is really applied: the result differs from the same cell without it
    plain = make_cell("lstm", I, H)
    assert not torch.allclose(run(plain, x, backend="fused")[0], run(cell, x, backend="fused")[0])
    assert_matches_reference(cell, x, random_state(cell, B), [7, 2, 7, 4], "fused")
    grad = cell.parametrizations.weight_hh.original.grad
    assert torch.count_nonzero(grad[mask == 0]) == 0 and torch.count_nonzero(grad[mask == 1]) > 0


def test_fused_float32_matches_torch_nn_lstm():
    """The fused path is torch's own kernel: with torch.nn.LSTM's weights it gives torch.nn.LSTM's numbers."""
    torch.manual_seed(0)
    ref = nn.LSTM(I, H, batch_first=True)
    cell = C.LSTMCell(I, H)
    cell.load_state_dict({k[:-3]: v for k, v in ref.state_dict().items()})
    x = torch.randn(B, T, I)
    out, (h, c) = run(cell, x, backend="fused")
    ref_out, (ref_h, ref_c) = ref(x)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=0)
    torch.testing.assert_close(h, ref_h[0], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["lstm", "gru", "elman_tanh", "lstm_proj"])
def test_one_step_on_cpu_takes_the_cells_step_not_the_kernel(name, monkeypatch, assert_matches_reference):
    import carousel.runners.fused as fused

    def no_kernel(*args, **kwargs):
        raise AssertionError("the fused kernel was called for a single step on the CPU")

    monkeypatch.setattr(fused, "_KERNELS", {mode: no_kernel for mode in fused._KERNELS})
    cell = make_cell(name, I, H)
    x = torch.randn(B, 1, I, dtype=torch.float64)
    assert_matches_reference(cell, x, random_state(cell, B), None, "fused")
    with pytest.raises(AssertionError, match="kernel was called"):  # two steps do reach the kernel
        run(cell, torch.randn(B, 2, I, dtype=torch.float64), backend="fused")
