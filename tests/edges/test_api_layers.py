"""Bad input to every layer: ``Recurrent``, ``Deep``, ``Bidirectional``, ``VariationalLayer``,
``add_variational_dropout`` and the drop-ins ``carousel.RNN/LSTM/GRU`` (see ``api_matrix``)."""

from __future__ import annotations

import warnings

import torch
from torch.nn.utils.rnn import pack_padded_sequence

import carousel as C
from carousel.layers import VariationalLayer
from edges.api_matrix import Case, parametrize, raises, run_case

I, H, B, T = 3, 4, 2, 5


def _x(*shape, dtype=torch.float32, device="cpu"):
    return torch.randn(*(shape or (B, T, I)), generator=torch.Generator().manual_seed(1)).to(device=device, dtype=dtype)


def _rec(i=I, h=H, cell=C.LSTMCell):
    return C.Recurrent(cell(i, h))


def _seeded(make):
    torch.manual_seed(0)
    return make()


# layers built the same way for every generic case: name -> factory
LAYERS = {
    "recurrent": lambda: _rec(),
    "deep": lambda: C.Deep([_rec(), _rec(H, H)]),
    "deep-residual": lambda: C.Deep([_rec(), _rec(H, H, C.GRUCell)], residual=True),
    "bidirectional": lambda: C.Bidirectional(_rec(), _rec(cell=C.GRUCell)),
    "variational": lambda: VariationalLayer(_rec(), input=0.1, output=0.1),
    "add-variational": lambda: C.add_variational_dropout(C.Deep([_rec(), _rec(H, H)]), 0.2),
    "lstm": lambda: C.LSTM(I, H, num_layers=2, batch_first=True),
    "gru": lambda: C.GRU(I, H, batch_first=True, bidirectional=True),
    "rnn": lambda: C.RNN(I, H, batch_first=True),
    "lstm-layer-norm": lambda: C.LSTM(I, H, batch_first=True, layer_norm=True),
}
DROP_INS = {"lstm", "gru", "rnn", "lstm-layer-norm"}


def _call(name, x=None, *args, **kw):
    layer = LAYERS[name]()
    return layer(_x() if x is None else x, *args, **kw)


def _generic(name: str) -> list[Case]:
    cases = [
        Case(f"{name}-input-float64", lambda: _call(name, _x(dtype=torch.float64)), raises(ValueError, "torch.float32", "torch.float64")),
        Case(f"{name}-input-bfloat16", lambda: _call(name, _x(dtype=torch.bfloat16)), raises(ValueError, "torch.float32", "torch.bfloat16")),
        Case(f"{name}-input-int", lambda: _call(name, _x(dtype=torch.int64)), raises(ValueError, "floating-point", "torch.int64")),
        Case(f"{name}-input-meta", lambda: _call(name, _x(device="meta")), raises(ValueError, "cpu", "meta")),
        Case(f"{name}-input-features", lambda: _call(name, _x(B, T, I + 2)), raises(ValueError, str(I), f"({B}, {T}, {I + 2})")),
        Case(f"{name}-input-rank4", lambda: _call(name, _x(1, B, T, I)), raises(ValueError, str(I), f"(1, {B}, {T}, {I})")),
        Case(f"{name}-input-none", lambda: _call(name, "abc"), raises(TypeError, "str")),
    ]
    if name not in DROP_INS:  # the drop-ins take PackedSequence for lengths, as torch.nn does
        cases += [
            Case(f"{name}-T0", lambda: _call(name, _x(B, 0, I)), raises(ValueError, "at least one time step", f"({B}, 0, {I})")),
            Case(f"{name}-lengths-float", lambda: _call(name, None, None, [2.5, 5]), raises(TypeError, "integer lengths", "2.5")),
            Case(f"{name}-lengths-float-tensor", lambda: _call(name, None, None, torch.tensor([2.0, 5.0])),
                 raises(TypeError, "integer lengths", "torch.float32")),
            Case(f"{name}-lengths-negative", lambda: _call(name, None, None, [-3, 5]), raises(ValueError, "at least 1", "-3")),
            Case(f"{name}-lengths-beyond-T", lambda: _call(name, None, None, [2, 9]), raises(ValueError, f"T={T}", "9")),
            Case(f"{name}-lengths-count", lambda: _call(name, None, None, [2]), raises(ValueError, f"({B},)", "(1,)")),
            Case(f"{name}-lengths-meta", lambda: _call(name, None, None, torch.tensor([2, 5], device="meta")),
                 raises(ValueError, "lengths on cpu", "meta")),
            Case(f"{name}-packed-and-lengths", lambda: _call(name, pack_padded_sequence(_x(), [5, 3], batch_first=True), None, [5, 3]),
                 raises(ValueError, "PackedSequence", "lengths")),
            Case(f"{name}-lengths-list-equals-tensor",
                 lambda: _seeded(LAYERS[name]).eval()(_x(), None, [3, 5]),
                 _same_as(lambda: _seeded(LAYERS[name]).eval()(_x(), None, torch.tensor([3, 5])))),
            Case(f"{name}-B0", lambda: _seeded(LAYERS[name]).eval()(_x(0, T, I)),
                 _same_as(lambda: _slice0(_seeded(LAYERS[name]).eval()(_x())))),
        ]
    return cases


def _slice0(result):
    out, state = result
    return out[:0], C.state.map_state(lambda t: t[:0], state)


def _same_as(reference):
    def check(result):
        want = reference()
        torch.testing.assert_close(result[0], want[0], rtol=0, atol=0)
        got_leaves, want_leaves = [], []
        C.state.map_state(got_leaves.append, result[1])
        C.state.map_state(want_leaves.append, want[1])
        assert len(got_leaves) == len(want_leaves)
        for g, w in zip(got_leaves, want_leaves):
            torch.testing.assert_close(g, w, rtol=0, atol=0)

    return check


def _lstm_state(dtype=torch.float32, device="cpu", size=H):
    return C.LSTMState(torch.zeros(B, size, dtype=dtype, device=device), torch.zeros(B, size, dtype=dtype, device=device))


def _deep2():
    return C.Deep([_rec(), _rec(H, H)])


def _hx(layers=2, dtype=torch.float32, device="cpu", batch=B):
    z = torch.zeros(layers, batch, H, dtype=dtype, device=device)
    return z, z.clone()


def _no_warnings(make):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make()


def _keys_unchanged(make):
    def call():
        module = _seeded(make)
        before = list(module.state_dict())
        assert C.add_variational_dropout(module, {"input": 0.1, "recurrent": 0.2, "between": 0.3, "output": 0.1}) is module
        return before, module

    def check(result):
        before, module = result
        assert list(module.state_dict()) == before
        reference = _seeded(lambda: torch.nn.LSTM(I, H, num_layers=2, batch_first=True))
        reference.load_state_dict(module.state_dict())
        module.eval()
        torch.testing.assert_close(module(_x())[0], reference.eval()(_x())[0])  # evaluation mode: no dropout
        module.train()
        torch.manual_seed(3)
        a = module(_x())[0]
        torch.manual_seed(3)
        b = module(_x())[0]
        torch.testing.assert_close(a, b)  # seeded masks
        assert not torch.allclose(a, reference(_x())[0]), "training mode drew no dropout"

    return call, check


def _packed_gru_call():
    """A time-major bidirectional GRU drop-in with dropout in every place, fed a PackedSequence."""
    module = C.add_variational_dropout(_seeded(lambda: C.GRU(I, H, num_layers=2, bidirectional=True)), 0.3)
    packed = pack_padded_sequence(_x(T, B, I), [5, 3], enforce_sorted=False)
    module.train()
    return module, module(packed)


def _packed_gru_check(result):
    module, (out, h_n) = result
    reference = _seeded(lambda: torch.nn.GRU(I, H, num_layers=2, bidirectional=True))
    reference.load_state_dict(module.state_dict())
    packed = pack_padded_sequence(_x(T, B, I), [5, 3], enforce_sorted=False)
    assert torch.equal(out.batch_sizes, packed.batch_sizes)
    assert not torch.allclose(out.data, reference(packed)[0].data), "training mode drew no dropout"
    module.eval()
    want_out, want_h = reference.eval()(packed)
    got_out, got_h = module(packed)
    torch.testing.assert_close(got_out.data, want_out.data)
    torch.testing.assert_close(got_h, want_h)


_avd_call, _avd_check = _keys_unchanged(lambda: C.LSTM(I, H, num_layers=2, batch_first=True))

SPECIFIC = [
    # composition: wrong objects
    Case("bidirectional-of-cells", lambda: C.Bidirectional(C.LSTMCell(I, H), C.LSTMCell(I, H)),
         raises(TypeError, "forward layer", "got LSTMCell", "wrap the cell in Recurrent")),
    Case("bidirectional-backward-cell", lambda: C.Bidirectional(_rec(), C.GRUCell(I, H)),
         raises(TypeError, "backward layer", "got GRUCell", "Recurrent")),
    Case("bidirectional-of-torch-lstm", lambda: C.Bidirectional(torch.nn.LSTM(I, H), torch.nn.LSTM(I, H)),
         raises(TypeError, "got LSTM", "Recurrent(carousel.LSTMCell")),
    Case("bidirectional-of-drop-ins", lambda: C.Bidirectional(C.LSTM(I, H), C.LSTM(I, H)), raises(TypeError, "got LSTM", "drop-in")),
    Case("recurrent-of-torch-cell", lambda: C.Recurrent(torch.nn.LSTMCell(I, H)), raises(TypeError, "carousel Cell", "carousel.LSTMCell")),
    Case("recurrent-of-layer", lambda: C.Recurrent(_rec()), raises(TypeError, "carousel Cell", "got Recurrent", "layer")),
    Case("recurrent-backend", lambda: C.Recurrent(C.LSTMCell(I, H), backend="gpu"), raises(ValueError, "'gpu'", "'auto'")),
    Case("recurrent-batch-first-string", lambda: C.Recurrent(C.LSTMCell(I, H), batch_first="yes"), raises(TypeError, "batch_first", "'yes'")),
    Case("deep-of-cells", lambda: C.Deep([C.LSTMCell(I, H)]), raises(TypeError, "layer 0 of Deep", "got LSTMCell", "Recurrent(cell)")),
    Case("deep-of-a-layer", lambda: C.Deep(_rec()), raises(TypeError, "list of carousel sequence layers", "Recurrent")),
    Case("deep-of-torch-lstm", lambda: C.Deep([torch.nn.LSTM(I, H)]), raises(TypeError, "layer 0", "got LSTM")),
    Case("deep-empty", lambda: C.Deep([]), raises(ValueError, "at least one layer")),
    Case("deep-sizes", lambda: C.Deep([_rec(), _rec(H + 1, H)]), raises(ValueError, f"expects inputs of size {H + 1}", f"gets {H}")),
    Case("deep-dropout-nan", lambda: C.Deep([_rec()], dropout=float("nan")), raises(ValueError, "dropout", "nan")),
    Case("deep-dropout-high", lambda: C.Deep([_rec()], dropout=1.5), raises(ValueError, "dropout in [0, 1]", "1.5")),
    Case("deep-dropout-string", lambda: C.Deep([_rec()], dropout="0.1"), raises(TypeError, "dropout", "'0.1'")),
    Case("deep-dropout-bool", lambda: C.Deep([_rec()], dropout=True), raises(TypeError, "dropout", "bool")),
    Case("deep-residual-string", lambda: C.Deep([_rec()], residual="yes"), raises(TypeError, "residual", "'yes'")),
    Case("deep-variational-int", lambda: C.Deep([_rec()], variational=1), raises(TypeError, "variational", "int")),
    # states of stacks
    Case("deep-one-lstm-state", lambda: _deep2()(_x(), _lstm_state()),
         raises(TypeError, "tuple of 2 per-layer states", "one LSTMState", "single layer")),
    Case("deep-one-tensor", lambda: _deep2()(_x(), torch.zeros(B, H)), raises(TypeError, "2 per-layer states", "Tensor")),
    Case("deep-three-states", lambda: _deep2()(_x(), (None, None, None)), raises(ValueError, "2 per-layer states", "length 3")),
    Case("deep-state-float64", lambda: _deep2()(_x(), (None, _lstm_state(torch.float64))), raises(ValueError, "torch.float32", "torch.float64")),
    Case("deep-state-meta", lambda: _deep2()(_x(), (_lstm_state(device="meta"), None)), raises(ValueError, "cpu", "meta")),
    Case("deep-state-list", lambda: _seeded(_deep2)(_x(), [None, _lstm_state()]),
         _same_as(lambda: _seeded(_deep2)(_x(), (None, _lstm_state())))),
    Case("bidirectional-one-state", lambda: C.Bidirectional(_rec(), _rec())(_x(), _lstm_state()),
         raises(TypeError, "pair (forward_state, backward_state)", "LSTMState", "one direction")),
    Case("bidirectional-three-states", lambda: C.Bidirectional(_rec(), _rec())(_x(), (None, None, None)),
         raises(ValueError, "pair", "length 3")),
    Case("bidirectional-state-float64", lambda: C.Bidirectional(_rec(), _rec())(_x(), (None, _lstm_state(torch.float64))),
         raises(ValueError, "torch.float32", "torch.float64")),
    Case("bidirectional-merge", lambda: C.Bidirectional(_rec(), _rec(), merge="mean"), raises(ValueError, "'mean'", "'concat'")),
    # variational dropout in every place
    Case("variational-layer-of-cell", lambda: VariationalLayer(C.LSTMCell(I, H)), raises(TypeError, "got LSTMCell", "Recurrent(cell)")),
    Case("variational-layer-input-nan", lambda: VariationalLayer(_rec(), input=float("nan")), raises(ValueError, "nan")),
    Case("variational-layer-output-string", lambda: VariationalLayer(_rec(), output="0.1"), raises(TypeError, "'0.1'")),
    Case("add-variational-cell", lambda: C.add_variational_dropout(C.LSTMCell(I, H), 0.1),
         raises(TypeError, "got LSTMCell", "Recurrent(cell)")),
    Case("add-variational-torch-lstm", lambda: C.add_variational_dropout(torch.nn.LSTM(I, H), 0.1), raises(TypeError, "got LSTM")),
    Case("add-variational-rate-one", lambda: C.add_variational_dropout(_rec(), 1.0), raises(ValueError, "p in [0, 1)", "1.0")),
    Case("add-variational-rate-nan", lambda: C.add_variational_dropout(_rec(), float("nan")), raises(ValueError, "p", "nan")),
    Case("add-variational-rate-string", lambda: C.add_variational_dropout(_rec(), "0.2"), raises(TypeError, "p", "'0.2'")),
    Case("add-variational-place", lambda: C.add_variational_dropout(_rec(), {"hidden": 0.1}), raises(ValueError, "'hidden'", "'recurrent'")),
    Case("add-variational-place-rate", lambda: C.add_variational_dropout(_rec(), {"input": -0.1}), raises(ValueError, "input", "-0.1")),
    Case("add-variational-place-type", lambda: C.add_variational_dropout(_rec(), {0: 0.1}), raises(TypeError, "places", "0")),
    Case("add-variational-between-without-stack", lambda: C.add_variational_dropout(_rec(), {"between": 0.1}),
         raises(ValueError, "'between'", "no Deep stack")),
    Case("add-variational-twice", lambda: C.add_variational_dropout(C.add_variational_dropout(_rec(), 0.1), 0.1),
         raises(ValueError, "already has recurrent dropout")),
    Case("add-variational-drop-in-keeps-keys", _avd_call, _avd_check),
    Case("add-variational-drop-in-packed", _packed_gru_call, _packed_gru_check),
    # drop-ins: torch.nn's arguments and state
    Case("lstm-dtype-int", lambda: C.LSTM(I, H, dtype=torch.int64), raises(ValueError, "floating-point dtype", "torch.int64")),
    Case("lstm-hidden-float", lambda: C.LSTM(I, 4.0), raises(TypeError, "hidden_size", "float")),
    Case("lstm-layers-zero", lambda: C.LSTM(I, H, num_layers=0), raises(ValueError, "num_layers", "0")),
    Case("lstm-dropout-nan", lambda: C.LSTM(I, H, num_layers=2, dropout=float("nan")), raises(ValueError, "dropout", "nan")),
    Case("lstm-dropout-string", lambda: C.LSTM(I, H, dropout="0.1"), raises(ValueError, "dropout", "'0.1'")),
    Case("lstm-bias-string", lambda: C.LSTM(I, H, bias="no"), raises(TypeError, "bias", "'no'")),
    Case("lstm-forget-bias-nan", lambda: C.LSTM(I, H, forget_bias=float("nan")), raises(ValueError, "forget_bias", "nan")),
    Case("lstm-forget-bias-string", lambda: C.LSTM(I, H, forget_bias="1"), raises(TypeError, "forget_bias", "'1'")),
    Case("lstm-proj-too-big", lambda: C.LSTM(I, H, proj_size=H), raises(ValueError, "proj_size", str(H))),
    Case("gru-proj", lambda: C.GRU(I, H, proj_size=2), raises(ValueError, "proj_size", "GRU")),
    Case("rnn-nonlinearity", lambda: C.RNN(I, H, nonlinearity="gelu"), raises(ValueError, "nonlinearity", "'gelu'")),
    Case("lstm-hx-float64", lambda: C.LSTM(I, H, num_layers=2, batch_first=True)(_x(), _hx(dtype=torch.float64)),
         raises(ValueError, "initial state 'h'", "torch.float32", "torch.float64")),
    Case("lstm-hx-meta", lambda: C.LSTM(I, H, num_layers=2, batch_first=True)(_x(), _hx(device="meta")),
         raises(ValueError, "initial state 'h'", "cpu", "meta")),
    Case("lstm-hx-shape", lambda: C.LSTM(I, H, num_layers=2, batch_first=True)(_x(), _hx(layers=1)),
         raises(ValueError, "initial state 'h'", f"(2, {B}, {H})", f"(1, {B}, {H})")),
    Case("lstm-hx-one-tensor", lambda: C.LSTM(I, H, batch_first=True)(_x(), torch.zeros(1, B, H)),
         raises(ValueError, "pair (h_0, c_0)", "Tensor")),
    Case("gru-hx-float64-layerwise", lambda: C.GRU(I, H, batch_first=True, variant="cho")(_x(), torch.zeros(1, B, H, dtype=torch.float64)),
         raises(ValueError, "torch.float32", "torch.float64")),
    Case("lstm-unbatched-features", lambda: C.LSTM(I, H)(_x(T, I + 1)), raises(ValueError, f"(T, {I})", f"({T}, {I + 1})")),
    Case("lstm-float64-module", lambda: _seeded(lambda: C.LSTM(I, H, batch_first=True, dtype=torch.float64))(_x(dtype=torch.float64)),
         lambda r: torch.testing.assert_close(
             r[0], _seeded(lambda: torch.nn.LSTM(I, H, batch_first=True, dtype=torch.float64))(_x(dtype=torch.float64))[0])),
]


CASES = [case for name in LAYERS for case in _generic(name)] + SPECIFIC


@parametrize(CASES)
def test_api_edge(case):
    run_case(case)
