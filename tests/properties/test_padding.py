"""Kind 2 of the faults: what sits past a sequence's length. NaN, inf or huge values there change no
output, final state or gradient on any path: every cell, every backend that serves it, every layer
gives bit for bit what zero padding gives, and everything stays finite."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import carousel as C
from carousel.runners import backend_names, resolve_backend
from cell_zoo import CELLS, make_cell, random_state

B, T, I, H = 3, 6, 3, 4
LENGTHS = [6, 2, 4]
FILLERS = [math.nan, math.inf, -math.inf, 1e6]


def padded(x: torch.Tensor, filler: float) -> torch.Tensor:
    x = x.clone()
    for b, n in enumerate(LENGTHS):
        x[b, n:] = filler
    return x


def everything(run, module, x, state):
    """Outputs, final state and the gradient of x, of the initial state and of every parameter."""
    x = x.detach().clone().requires_grad_()
    state = None if state is None else tuple(s.detach().clone().requires_grad_() for s in state)
    module.zero_grad(set_to_none=True)
    out, final = run(x, state)
    flat = [t for t in torch.utils._pytree.tree_leaves(final) if isinstance(t, torch.Tensor)]
    g = torch.Generator().manual_seed(3)
    loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum() + sum(f.square().sum() for f in flat)
    loss.backward()
    grads = [x.grad, *([] if state is None else [s.grad for s in state]), *(p.grad for p in module.parameters())]
    return [out.detach(), *(f.detach() for f in flat), *grads]


def assert_same(got, want, where):
    for a, b in zip(got, want):
        if b is None:
            assert a is None, where
            continue
        assert bool(torch.isfinite(a).all()), f"{where}: not finite"
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=lambda m: f"{where}: {m}")


def backends(cell, x):
    names = ["auto"]
    for name in backend_names()[1:]:
        try:
            resolve_backend(cell, x, name)
            names.append(name)
        except ValueError:
            pass
    return names


@pytest.mark.parametrize("filler", FILLERS, ids=["nan", "inf", "-inf", "1e6"])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_run_ignores_the_padding_on_every_backend(name, filler):
    cell = make_cell(name, I, H)
    x = torch.randn(B, T, I, dtype=torch.float64)
    state = random_state(cell, B)
    for backend in backends(cell, x):
        def run(x, s):
            return C.run(cell, x, s, LENGTHS, backend=backend)

        want = everything(run, cell, padded(x, 0.0), state)
        assert_same(everything(run, cell, padded(x, filler), state), want, f"{name} on {backend}")


@pytest.mark.parametrize("filler", [math.nan, 1e6], ids=["nan", "1e6"])
@pytest.mark.parametrize("name", ["lstm", "gru_cho", "min_lstm", "lstm_layer_norm", "elman_tanh", "orthogonal_modrelu"])
def test_layers_ignore_the_padding(name, filler):
    """Recurrent, a bidirectional two-layer Deep stack with dropout between layers, and a drop-in on packed input."""
    torch.manual_seed(0)
    fwd, bwd = make_cell(name, I, H, seed=1), make_cell(name, I, H, seed=2)
    out_size = fwd.output_size
    top_f, top_b = make_cell("gru", 2 * out_size, H, seed=3), make_cell("gru", 2 * out_size, H, seed=4)
    stack = C.Deep([C.Bidirectional(C.Recurrent(fwd), C.Recurrent(bwd)), C.Bidirectional(C.Recurrent(top_f), C.Recurrent(top_b))],
                   dropout=0.3, variational=True)
    x = torch.randn(B, T, I, dtype=torch.float64)
    for module in (C.Recurrent(fwd), stack):
        def run(x, s, module=module):
            torch.manual_seed(5)  # the same dropout masks for both fillers
            return module(x, None, LENGTHS)

        want = everything(run, module, padded(x, 0.0), None)
        assert_same(everything(run, module, padded(x, filler), None), want, f"{name} in {type(module).__name__}")


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_drop_ins_on_packed_input_ignore_the_padding(kind):
    torch.manual_seed(0)
    module = getattr(C, kind)(I, H, num_layers=2, bidirectional=True, batch_first=True, dtype=torch.float64)
    x = torch.randn(B, T, I, dtype=torch.float64)

    def run(x, s):
        out, h = module(pack_padded_sequence(x, LENGTHS, batch_first=True, enforce_sorted=False))
        return out.data, h

    want = everything(run, module, padded(x, 0.0), None)
    assert_same(everything(run, module, padded(x, math.nan), None), want, kind)


def test_the_reported_gru_example():
    """GRUCell(1, 1, variant="cho"), x = [[0.5, 0.3], [0.5, nan]], lengths [2, 1]: finite weight gradients."""
    torch.manual_seed(0)
    layer = C.Recurrent(C.GRUCell(1, 1, variant="cho"))
    x = torch.tensor([[[0.5], [0.3]], [[0.5], [math.nan]]])
    out, _ = layer(x, lengths=[2, 1])
    (out[0].sum() + out[1, 0].sum()).backward()
    assert all(bool(torch.isfinite(p.grad).all()) and bool(p.grad.abs().sum() > 0) for p in layer.parameters())
