"""The cell/runner contract, for every cell: runner == manual loop, chunks, lengths, gradcheck."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

import carousel as C
from cell_zoo import make_cell, random_state

B, T, I, H = 3, 6, 3, 4


def manual_loop(cell, x, state):
    """The definition: one call of the single-step API per time step."""
    outputs = []
    for t in range(x.shape[1]):
        state = cell(x[:, t], state)
        outputs.append(state.h)
    return torch.stack(outputs, 1), state


def assert_states_close(a, b, **tol):
    assert type(a) is type(b)
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v, **tol)


def test_runner_equals_manual_loop_over_step(cell_name):
    cell = make_cell(cell_name, I, H)
    x = torch.randn(B, T, I, dtype=torch.float64)
    s0 = random_state(cell, B)
    out, final = C.run(cell, x, s0)
    ref_out, ref_final = manual_loop(cell, x, s0)
    torch.testing.assert_close(out, ref_out)
    assert_states_close(final, ref_final)
    assert out.shape == (B, T, cell.output_size)
    # and the outputs really depend on the initial state (the state is not ignored)
    out_zero, _ = C.run(cell, x)
    assert not torch.allclose(out_zero[:, 0], out[:, 0])


def test_one_pass_equals_two_chunks_with_state_passed(cell_name):
    cell = make_cell(cell_name, I, H)
    x = torch.randn(B, T, I, dtype=torch.float64)
    s0 = random_state(cell, B)
    out, final = C.run(cell, x, s0)
    out1, mid = C.run(cell, x[:, :2], s0)
    out2, final2 = C.run(cell, x[:, 2:], mid)
    torch.testing.assert_close(torch.cat([out1, out2], 1), out)
    assert_states_close(final2, final)


def test_lengths_freeze_state_and_zero_outputs(cell_name):
    cell = make_cell(cell_name, I, H)
    x = torch.randn(B, T, I, dtype=torch.float64)
    s0 = random_state(cell, B)
    lengths = torch.tensor([T, 2, 4])
    out, final = C.run(cell, x, s0, lengths)
    for b, n in enumerate(lengths.tolist()):
        one = cell.state_type(*(f[b : b + 1] for f in s0))
        ref_out, ref_final = manual_loop(cell, x[b : b + 1, :n], one)
        torch.testing.assert_close(out[b : b + 1, :n], ref_out)
        assert torch.count_nonzero(out[b, n:]) == 0
        for field, ref in zip(final, ref_final):
            torch.testing.assert_close(field[b : b + 1], ref)
    # the masked final state equals the unmasked run's state at position length-1
    out_full, _ = C.run(cell, x, s0)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(final.h[b], out_full[b, n - 1])


def test_lengths_all_shorter_than_padding(cell_name):
    cell = make_cell(cell_name, I, H)
    x = torch.randn(B, T, I, dtype=torch.float64)
    out, final = C.run(cell, x, lengths=[3, 2, 3])
    ref_out, ref_final = C.run(cell, x[:, :3], lengths=[3, 2, 3])
    torch.testing.assert_close(out[:, :3], ref_out)
    assert torch.count_nonzero(out[:, 3:]) == 0
    assert_states_close(final, ref_final)


def test_gradcheck_float64(cell_name):
    cell = make_cell(cell_name, 2, 3)
    names, values = zip(*cell.named_parameters())
    x = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)
    s0 = [s.requires_grad_() for s in random_state(cell, 2)]
    lengths = torch.tensor([3, 2])

    def f(x, *rest):
        state, params = rest[: len(s0)], rest[len(s0) :]
        out, final = _run_with(cell, dict(zip(names, params)), x, cell.state_type(*state), lengths)
        return (out, *final)

    inputs = (x, *s0, *(v.detach().clone().requires_grad_() for v in values))
    assert torch.autograd.gradcheck(f, inputs, atol=1e-6, rtol=1e-5)
    # gradcheck passes vacuously for an input that is ignored: every input must matter
    sum(o.sum() for o in f(*inputs)).backward()
    for name, v in zip(("x", *cell.state_type._fields, *names), inputs):
        assert v.grad is not None and v.grad.abs().sum() > 0, f"{name} does not reach the outputs"


def _run_with(cell, params, x, state, lengths):
    """``C.run`` with the cell's parameters replaced by ``params`` (so gradcheck can perturb them)."""
    class _Runner(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = cell

        def forward(self, x, state, lengths):
            return C.run(self.cell, x, state, lengths)

    return functional_call(_Runner(), {f"cell.{k}": v for k, v in params.items()}, (x, state, lengths))


def test_gradients_identical_with_and_without_lengths_when_full(cell_name):
    cell = make_cell(cell_name, I, H)
    x = torch.randn(B, T, I, dtype=torch.float64)
    grads = []
    for lengths in (None, [T] * B):
        cell.zero_grad()
        out, final = C.run(cell, x, lengths=lengths)
        (out.sum() + final.h.square().sum()).backward()
        grads.append([p.grad.clone() for p in cell.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_initial_state_is_zero_of_right_type(cell_name):
    cell = make_cell(cell_name, I, H)
    s = cell.initial_state(5)
    assert type(s) is cell.state_type and s._fields[0] == "h"
    for field, size in zip(s, cell.state_sizes):
        assert field.shape == (5, size) and field.dtype == torch.float64
        assert torch.count_nonzero(field) == 0
    s32 = cell.initial_state(2, dtype=torch.float32)
    assert all(f.dtype == torch.float32 for f in s32)
