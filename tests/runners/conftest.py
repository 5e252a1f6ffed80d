"""Helpers for the fast-path tests: every path is compared with the reference loop runner."""

from __future__ import annotations

import pytest
import torch

from carousel.runners import run, run_reference

TOLERANCES = {torch.float64: {"rtol": 1e-7, "atol": 1e-9}, torch.float32: {"rtol": 2e-4, "atol": 2e-5}}


def outputs_and_grads(runner, cell, x, state, lengths, seed=7):
    """Run, then back-propagate a random weighting of outputs and final state.

    Returns the outputs, the final state and the gradients of x, of every state field and of
    every parameter, so that two paths can be compared on everything they compute.
    """
    x = x.detach().clone().requires_grad_()
    state = type(state)(*(s.detach().clone().requires_grad_() for s in state))
    cell.zero_grad(set_to_none=True)
    out, final = runner(cell, x, state, lengths)
    g = torch.Generator().manual_seed(seed)
    loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum()
    for f in final:
        loss = loss + (f * torch.randn(f.shape, generator=g, dtype=f.dtype)).sum()
    loss.backward()
    grads = {"x": x.grad, **{f"state.{k}": s.grad for k, s in zip(state._fields, state)}}
    grads.update({name: p.grad for name, p in cell.named_parameters()})
    return out.detach(), type(final)(*(f.detach() for f in final)), grads


def reference(cell, x, state, lengths):
    return run_reference(cell, x, state, None if lengths is None else torch.as_tensor(lengths))


@pytest.fixture
def assert_matches_reference():
    """``check(cell, x, state, lengths, backend)``: outputs, final state and every gradient agree."""

    def check(cell, x, state, lengths, backend):
        def fast(cell, x, state, lengths):
            return run(cell, x, state, lengths, backend=backend)

        tol = TOLERANCES[x.dtype]
        out, final, grads = outputs_and_grads(fast, cell, x, state, lengths)
        ref_out, ref_final, ref_grads = outputs_and_grads(reference, cell, x, state, lengths)
        torch.testing.assert_close(out, ref_out, **tol)
        assert type(final) is type(ref_final) is cell.state_type
        for a, b in zip(final, ref_final):
            torch.testing.assert_close(a, b, **tol)
        assert set(grads) == set(ref_grads)
        for name in ref_grads:
            assert ref_grads[name] is not None, f"{name} gets no gradient from the reference"
            assert grads[name] is not None, f"{name} gets no gradient from backend {backend!r}"
            torch.testing.assert_close(grads[name], ref_grads[name], **tol, msg=lambda m: f"{name}: {m}")
        return out, final

    return check


@pytest.fixture
def run_and_grads():
    """``outputs_and_grads(runner, cell, x, state, lengths)`` for tests that compare paths themselves."""
    return outputs_and_grads
