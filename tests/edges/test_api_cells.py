"""Bad input to every cell of the zoo: through ``Recurrent``, ``carousel.run`` and one step; and every
cell's constructor options (see ``api_matrix`` for the form of a case)."""

from __future__ import annotations

import functools

import numpy as np
import torch

import carousel as C
from carousel.cells import henaff_rotations, set_spectral_radius_
from cell_zoo import CELLS
from edges.api_matrix import Case, parametrize, raises, run_case

I, H, B, T = 3, 4, 2, 5


def _cell(name: str, **kw):
    torch.manual_seed(0)
    return CELLS[name](I, H, **kw)


def _x(*shape, dtype=torch.float32, device="cpu"):
    return torch.randn(*(shape or (B, T, I)), generator=torch.Generator().manual_seed(1)).to(device=device, dtype=dtype)


def _state(cell, *, dtype=torch.float32, device="cpu", batch=B, extra=0):
    fields = [torch.zeros(batch, n + extra, dtype=dtype, device=device) for n in cell.state_sizes]
    return cell.state_type(*fields)


def _through_layer(name, x=None, state=None, lengths=None):
    return C.Recurrent(_cell(name))(_x() if x is None else x, state, lengths)


def _through_run(name, x=None, state=None, lengths=None):
    return C.run(_cell(name), _x() if x is None else x, state, lengths)


def _same_as(reference):
    """The result equals ``reference()`` (outputs and every state field), exactly."""

    def check(result):
        want = reference()
        torch.testing.assert_close(result[0], want[0], rtol=0, atol=0)
        for got, exp in zip(result[1], want[1]):
            torch.testing.assert_close(got, exp, rtol=0, atol=0)

    return check


def _close_to(reference):
    """The result equals ``reference()`` within float64 rounding (another backend's order of sums)."""

    def check(result):
        want = reference()
        torch.testing.assert_close(result[0], want[0], rtol=1e-12, atol=1e-12)
        for got, exp in zip(result[1], want[1]):
            torch.testing.assert_close(got, exp, rtol=1e-12, atol=1e-12)

    return check


def _zero_batch_matches_slice(name):
    """B=0 runs and gives what slicing a B=2 run to no rows gives (same dtype, width and state form)."""

    def reference():
        out, final = _through_layer(name)
        return out[:0], type(final)(*(s[:0] for s in final))

    return _same_as(reference)


def _per_cell(name: str) -> list[Case]:
    run, layer = functools.partial(_through_run, name), functools.partial(_through_layer, name)
    cell = _cell(name)
    kind = cell.kind
    lengths_ref = lambda: layer(lengths=torch.tensor([3, 5]))  # noqa: E731
    cases = [
        # dtype and device of the input
        Case(f"{name}-input-float64", lambda: layer(_x(dtype=torch.float64)),
             raises(ValueError, "torch.float32", "torch.float64", kind)),
        Case(f"{name}-input-bfloat16", lambda: run(_x(dtype=torch.bfloat16)), raises(ValueError, "torch.float32", "torch.bfloat16")),
        Case(f"{name}-input-int", lambda: layer(_x(dtype=torch.int32)), raises(ValueError, "floating-point", "torch.int32")),
        Case(f"{name}-input-meta", lambda: layer(_x(device="meta")), raises(ValueError, "cpu", "meta")),
        Case(f"{name}-run-input-meta", lambda: run(_x(device="meta")), raises(ValueError, "cpu", "meta")),
        Case(f"{name}-input-list", lambda: layer([[0.0] * I]), raises(TypeError, "torch.Tensor", f"(B, T, {I})", "list")),
        # shapes and ranks
        Case(f"{name}-input-features", lambda: layer(_x(B, T, I + 1)), raises(ValueError, f"(B, T, {I})", f"({B}, {T}, {I + 1})")),
        Case(f"{name}-input-rank2", lambda: run(_x(T, I)), raises(ValueError, f"(B, T, {I})", f"({T}, {I})")),
        Case(f"{name}-input-rank4", lambda: layer(_x(1, B, T, I)), raises(ValueError, f"(B, T, {I})", f"(1, {B}, {T}, {I})")),
        Case(f"{name}-T0", lambda: layer(_x(B, 0, I)), raises(ValueError, "at least one time step", f"({B}, 0, {I})")),
        Case(f"{name}-B0", lambda: layer(_x(0, T, I)), _zero_batch_matches_slice(name)),
        # lengths
        Case(f"{name}-lengths-float", lambda: layer(lengths=[2.5, 5]), raises(TypeError, "integer lengths", "2.5")),
        Case(f"{name}-lengths-integral-float", lambda: run(lengths=[3.0, 5]), raises(TypeError, "integer lengths", "3.0")),
        Case(f"{name}-lengths-float-tensor", lambda: layer(lengths=torch.tensor([3.0, 5.0])),
             raises(TypeError, "integer lengths", "torch.float32")),
        Case(f"{name}-lengths-bool", lambda: run(lengths=[True, 5]), raises(TypeError, "integer lengths", "True")),
        Case(f"{name}-lengths-negative", lambda: layer(lengths=[-1, 5]), raises(ValueError, "at least 1", "-1")),
        Case(f"{name}-lengths-zero", lambda: run(lengths=torch.tensor([0, 5])), raises(ValueError, "at least 1", "0")),
        Case(f"{name}-lengths-beyond-T", lambda: layer(lengths=[3, T + 2]), raises(ValueError, f"T={T}", str(T + 2))),
        Case(f"{name}-lengths-count", lambda: run(lengths=[3, 4, 5]), raises(ValueError, f"({B},)", "(3,)")),
        Case(f"{name}-lengths-meta", lambda: layer(lengths=torch.tensor([3, 5], device="meta")), raises(ValueError, "cpu", "meta")),
        Case(f"{name}-lengths-string", lambda: run(lengths="35"), raises(TypeError, "sequence of integers", "str")),
        Case(f"{name}-lengths-tuple", lambda: layer(lengths=(3, 5)), _same_as(lengths_ref)),
        Case(f"{name}-lengths-numpy", lambda: layer(lengths=np.array([3, 5])), _same_as(lengths_ref)),
        # states
        Case(f"{name}-state-float64", lambda: layer(state=_state(cell, dtype=torch.float64)),
             raises(ValueError, "torch.float32", "torch.float64", "state field 'h'")),
        Case(f"{name}-state-meta", lambda: run(state=_state(cell, device="meta")), raises(ValueError, "cpu", "meta")),
        Case(f"{name}-state-shape", lambda: layer(state=_state(cell, extra=1)),
             raises(ValueError, f"({B}, {cell.state_sizes[0]})", f"({B}, {cell.state_sizes[0] + 1})")),
        Case(f"{name}-state-batch", lambda: run(state=_state(cell, batch=B + 1)), raises(ValueError, f"({B}, ", f"({B + 1}, ")),
        Case(f"{name}-state-count", lambda: layer(state=(*_state(cell), torch.zeros(B, H))),
             raises(ValueError, cell.state_type.__name__, "tuple(")),
        Case(f"{name}-state-dict", lambda: run(state={"h": torch.zeros(B, H)}), raises(TypeError, cell.state_type.__name__, "dict")),
        Case(f"{name}-state-per-layer", lambda: layer(state=(_state(cell), _state(cell))), raises(TypeError, "per-layer", "Deep")),
        Case(f"{name}-state-list", lambda: layer(state=list(_state(cell))), _same_as(lambda: layer(state=_state(cell)))),
        # one step
        Case(f"{name}-step-float64", lambda: _cell(name)(_x(B, I, dtype=torch.float64)), raises(ValueError, "torch.float32", "torch.float64")),
        Case(f"{name}-step-rank3", lambda: _cell(name)(_x()), raises(ValueError, f"(B, {I})", f"({B}, {T}, {I})")),
        Case(f"{name}-step-int", lambda: _cell(name)(_x(B, I, dtype=torch.int64)), raises(ValueError, "floating-point", "torch.int64")),
        Case(f"{name}-initial-state-negative", lambda: _cell(name).initial_state(-1), raises(ValueError, "batch_size", ">= 0", "-1")),
        Case(f"{name}-initial-state-float", lambda: _cell(name).initial_state(2.0), raises(TypeError, "batch_size", "2.0")),
        # construction
        Case(f"{name}-dtype-int", lambda: _cell(name, dtype=torch.int32), raises(ValueError, "floating-point dtype", "torch.int32")),
        Case(f"{name}-dtype-complex", lambda: _cell(name, dtype=torch.complex64), raises(ValueError, "floating-point dtype", "complex64")),
        Case(f"{name}-dtype-string", lambda: _cell(name, dtype="float32"), raises(TypeError, "torch.dtype", "'float32'")),
        Case(f"{name}-device-bogus", lambda: _cell(name, device="gpu7"), raises(ValueError, "device", "'gpu7'")),
        Case(f"{name}-hidden-float", lambda: CELLS[name](I, 4.0), raises(TypeError, "hidden_size", "integer", "4.0")),
        Case(f"{name}-hidden-zero", lambda: CELLS[name](I, 0), raises(ValueError, "hidden_size", ">= 1", "0")),
        Case(f"{name}-input-size-bool", lambda: CELLS[name](True, H), raises(TypeError, "input_size", "True")),
        Case(f"{name}-bias-string", lambda: CELLS[name](I, H, bias="no"), raises(TypeError, "bias", "True or False", "'no'")),
    ]
    return cases


def _seeded(factory, **kw):
    torch.manual_seed(0)
    return factory(**kw)


def _same_parameters(reference):
    def check(cell):
        want = reference()
        for (n, p), (_, q) in zip(cell.named_parameters(), want.named_parameters()):
            torch.testing.assert_close(p, q, rtol=0, atol=0, msg=n)

    return check


OPTIONS = [
    Case("lstm-forget-bias-nan", lambda: C.LSTMCell(I, H, forget_bias=float("nan")), raises(ValueError, "forget_bias", "finite", "nan")),
    Case("lstm-forget-bias-inf", lambda: C.LSTMCell(I, H, forget_bias=float("-inf")), raises(ValueError, "forget_bias", "finite", "-inf")),
    Case("lstm-forget-bias-string", lambda: C.LSTMCell(I, H, forget_bias="1"), raises(TypeError, "forget_bias", "real number", "'1'")),
    Case("lstm-forget-bias-bool", lambda: C.LSTMCell(I, H, forget_bias=True), raises(TypeError, "forget_bias", "bool")),
    Case("lstm-forget-bias-tensor", lambda: C.LSTMCell(I, H, forget_bias=torch.tensor(1.0)), raises(TypeError, "forget_bias", "Tensor")),
    Case("lstm-forget-bias-int", lambda: _seeded(C.LSTMCell, input_size=I, hidden_size=H, forget_bias=1),
         _same_parameters(lambda: _seeded(C.LSTMCell, input_size=I, hidden_size=H, forget_bias=1.0))),
    Case("lstm-forget-bias-no-gate", lambda: C.LSTMCell(I, H, forget_bias=1.0, forget_gate=False), raises(ValueError, "forget_gate=False")),
    Case("lstm-proj-negative", lambda: C.LSTMCell(I, H, proj_size=-1), raises(ValueError, "proj_size", ">= 0", "-1")),
    Case("lstm-proj-float", lambda: C.LSTMCell(I, H, proj_size=2.0), raises(TypeError, "proj_size", "2.0")),
    Case("lstm-proj-too-big", lambda: C.LSTMCell(I, H, proj_size=H), raises(ValueError, "proj_size", f"hidden_size={H}", str(H))),
    Case("lstm-peephole-string", lambda: C.LSTMCell(I, H, peephole="yes"), raises(TypeError, "peephole", "'yes'")),
    Case("lstm-layer-norm-int", lambda: C.LSTMCell(I, H, layer_norm=1), raises(TypeError, "layer_norm", "int")),
    Case("lstm-numpy-sizes", lambda: _seeded(C.LSTMCell, input_size=np.int64(I), hidden_size=np.int64(H)),
         _same_parameters(lambda: _seeded(C.LSTMCell, input_size=I, hidden_size=H))),
    Case("irnn-input-std-negative", lambda: C.IRNNCell(I, H, input_std=-1.0), raises(ValueError, "input_std", ">= 0", "-1.0")),
    Case("irnn-input-std-nan", lambda: C.IRNNCell(I, H, input_std=float("nan")), raises(ValueError, "input_std", "finite", "nan")),
    Case("irnn-input-std-string", lambda: C.IRNNCell(I, H, input_std="0.1"), raises(TypeError, "input_std", "'0.1'")),
    Case("irnn-scale-inf", lambda: C.IRNNCell(I, H, identity_scale=float("inf")), raises(ValueError, "identity_scale", "finite", "inf")),
    Case("irnn-scale-none", lambda: C.IRNNCell(I, H, identity_scale=None), raises(TypeError, "identity_scale", "NoneType")),
    Case("antisymmetric-epsilon-zero", lambda: C.AntisymmetricCell(I, H, epsilon=0.0), raises(ValueError, "epsilon", "> 0", "0.0")),
    Case("antisymmetric-epsilon-nan", lambda: C.AntisymmetricCell(I, H, epsilon=float("nan")), raises(ValueError, "epsilon", "nan")),
    Case("antisymmetric-epsilon-string", lambda: C.AntisymmetricCell(I, H, epsilon="0.1"), raises(TypeError, "epsilon", "'0.1'")),
    Case("antisymmetric-gamma-negative", lambda: C.AntisymmetricCell(I, H, gamma=-0.1), raises(ValueError, "gamma", ">= 0", "-0.1")),
    Case("antisymmetric-gamma-inf", lambda: C.AntisymmetricCell(I, H, gamma=float("inf")), raises(ValueError, "gamma", "inf")),
    Case("antisymmetric-gated-string", lambda: C.AntisymmetricCell(I, H, gated="true"), raises(TypeError, "gated", "'true'")),
    Case("antisymmetric-matrix-gamma-nan", lambda: C.cells.AntisymmetricMatrix(float("nan")), raises(ValueError, "gamma", "nan")),
    Case("elman-nonlinearity", lambda: C.ElmanCell(I, H, nonlinearity="sigmoid"), raises(ValueError, "nonlinearity", "'sigmoid'", "'tanh'")),
    Case("gru-variant", lambda: C.GRUCell(I, H, variant="keras"), raises(ValueError, "variant", "'keras'", "'cho'")),
    Case("orthogonal-map", lambda: C.OrthogonalCell(I, H, orthogonal_map="householder"),
         raises(ValueError, "orthogonal_map", "'householder'", "'cayley'")),
    Case("orthogonal-nonlinearity", lambda: C.OrthogonalCell(I, H, nonlinearity="gelu"), raises(ValueError, "nonlinearity", "'gelu'")),
    Case("spectral-radius-zero", lambda: set_spectral_radius_(C.ElmanCell(I, H), 0.0), raises(ValueError, "spectral radius", "> 0", "0.0")),
    Case("spectral-radius-nan", lambda: set_spectral_radius_(C.ElmanCell(I, H), float("nan")), raises(ValueError, "spectral radius", "nan")),
    Case("spectral-radius-string", lambda: set_spectral_radius_(C.ElmanCell(I, H), "1"), raises(TypeError, "spectral radius", "'1'")),
    Case("henaff-zero", lambda: henaff_rotations(0), raises(ValueError, "hidden_size", "0")),
    Case("make-cell-unknown", lambda: C.cells.make_cell("lsmt", I, H), raises(ValueError, "'lsmt'", "did you mean 'lstm'")),
    Case("make-cell-option-nan", lambda: C.cells.make_cell("lstm", I, H, forget_bias=float("nan")), raises(ValueError, "forget_bias", "nan")),
    Case("make-cell-irnn-option", lambda: C.cells.make_cell("irnn", I, H, input_std=-2), raises(ValueError, "input_std", "-2")),
    Case("run-torch-cell", lambda: C.run(torch.nn.LSTMCell(I, H), _x()),
         raises(TypeError, "carousel Cell", "got LSTMCell", "carousel.LSTMCell")),
    Case("run-torch-gru-cell", lambda: C.run(torch.nn.GRUCell(I, H), _x()), raises(TypeError, "got GRUCell", "carousel.GRUCell")),
    Case("run-torch-rnn-cell", lambda: C.run(torch.nn.RNNCell(I, H), _x()), raises(TypeError, "got RNNCell", "carousel.ElmanCell")),
    Case("run-layer", lambda: C.run(C.Recurrent(C.LSTMCell(I, H)), _x()), raises(TypeError, "carousel Cell", "got Recurrent", "layer")),
    Case("run-backend", lambda: C.run(C.LSTMCell(I, H), _x(), backend="cudnn"), raises(ValueError, "'cudnn'", "'fused'")),
    Case("run-backend-cannot", lambda: C.run(C.LSTMCell(I, H), _x(), backend="scan"), raises(ValueError, "'scan'", "LSTMCell")),
    Case("run-float64-cell", lambda: C.run(_seeded(C.LSTMCell, input_size=I, hidden_size=H, dtype=torch.float64), _x(dtype=torch.float64)),
         _close_to(lambda: C.run(_seeded(C.LSTMCell, input_size=I, hidden_size=H, dtype=torch.float64), _x(dtype=torch.float64),
                                 backend="reference"))),
]

# the whole matrix for one configuration of each family; the core of it for every other configuration
FAMILIES = ("elman_tanh", "irnn", "lstm", "lstm_proj", "gru", "antisymmetric", "orthogonal_tanh", "min_gru", "min_lstm")
CORE = ("input-float64", "input-meta", "input-features", "B0", "lengths-float", "state-float64", "state-shape", "dtype-int",
        "bias-string")
CASES = [
    case for name in sorted(CELLS) for case in _per_cell(name)
    if name in FAMILIES or case.id.removeprefix(f"{name}-") in CORE
] + OPTIONS


@parametrize(CASES)
def test_api_edge(case):
    run_case(case)
