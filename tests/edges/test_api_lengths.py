"""Lengths drawn at random (integers in and out of range, floats, bools, numpy integers; as a list, a
tuple, a tensor): every layer and ``carousel.run`` either give the result of the same lengths as an
int64 tensor, or refuse with the error class and words that the rule below predicts."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import carousel as C

I, H, B, T = 2, 3, 3, 4

VALUE = st.one_of(
    st.integers(-2, T + 2),
    st.floats(-1.0, T + 1.0, allow_nan=False),
    st.booleans(),
    st.integers(1, T).map(np.int64),
)
FORM = st.sampled_from(["list", "tuple", "tensor"])


def _expected(values: list) -> tuple[type, str] | None:
    """What the boundary must answer for these lengths: None (run) or (error class, words)."""
    if any(isinstance(v, (bool, float)) for v in values):
        return TypeError, "integer lengths"
    if len(values) != B:
        return ValueError, f"({B},)"
    if min(values) < 1:
        return ValueError, "at least 1"
    if max(values) > T:
        return ValueError, f"T={T}"
    return None


def _form(values: list, form: str):
    """The values as a list, a tuple, or a tensor (float if any is a float, bool if all are bools)."""
    if form == "tensor":
        if values and all(isinstance(v, bool) for v in values):
            return torch.tensor(values)
        if any(isinstance(v, float) for v in values):
            return torch.tensor([float(v) for v in values])
        return torch.tensor([int(v) for v in values])
    return tuple(values) if form == "tuple" else list(values)


RUNS = {
    "run": lambda x, lengths: C.run(_cell(), x, None, lengths),
    "recurrent": lambda x, lengths: C.Recurrent(_cell())(x, None, lengths),
    "deep": lambda x, lengths: C.Deep([C.Recurrent(_cell()), C.Recurrent(C.GRUCell(H, H))])(x, None, lengths),
    "bidirectional": lambda x, lengths: C.Bidirectional(C.Recurrent(_cell()), C.Recurrent(_cell()))(x, None, lengths),
}


def _cell():
    torch.manual_seed(0)
    return C.GRUCell(I, H)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(VALUE, min_size=B - 1, max_size=B + 1), form=FORM, runner=st.sampled_from(sorted(RUNS)))
def test_lengths_are_run_or_refused_as_the_rule_says(values, form, runner):
    x = torch.randn(B, T, I, generator=torch.Generator().manual_seed(0))
    given_lengths = _form(values, form)
    if isinstance(given_lengths, torch.Tensor):  # the tensor's dtype decides, as its values were converted
        typed = given_lengths.dtype == torch.bool or given_lengths.is_floating_point()
        expected = (TypeError, "integer lengths") if typed else _expected(given_lengths.tolist())
    else:
        expected = _expected(values)
    run = RUNS[runner]
    if expected is None:
        out, final = run(x, given_lengths)
        ref_out, ref_final = run(x, torch.tensor([int(v) for v in values]))
        torch.testing.assert_close(out, ref_out, rtol=0, atol=0)
        leaves, ref_leaves = [], []
        C.state.map_state(leaves.append, final)
        C.state.map_state(ref_leaves.append, ref_final)
        for a, b in zip(leaves, ref_leaves, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    else:
        error, words = expected
        try:
            run(x, given_lengths)
        except Exception as err:  # noqa: BLE001 - the class is the point of the test
            assert type(err) is error or isinstance(err, error), f"{type(err).__name__}: {err}"
            assert words in str(err), str(err)
        else:
            raise AssertionError(f"lengths {given_lengths!r} were accepted")
