"""carousel's drop-ins beside torch.nn's RNN, LSTM and GRU, behaviour by behaviour: the constructor's
checks, attributes, errors and utilities give the same outcome (the same value, or an error of the same
class), except the differences the README lists as deliberate, which are pinned here too."""

from __future__ import annotations

import copy
import pickle
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import carousel as C

KINDS = ["RNN", "LSTM", "GRU"]


def both(kind, *args, **kwargs):
    """(torch.nn module, carousel drop-in) built from the same arguments, carousel loaded with torch's weights."""
    torch.manual_seed(0)
    theirs = getattr(nn, kind)(*args, **kwargs)
    mine = getattr(C, kind)(*args, **kwargs)
    mine.load_state_dict(theirs.state_dict())
    return theirs, mine


def outcome(build):
    """What building does: ("ok", warnings) or (the error class, None)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            build()
        except Exception as err:  # noqa: BLE001 - the class is the outcome compared
            return type(err), None
    return "ok", [w.category for w in caught if w.category is not FutureWarning]


CONSTRUCTORS = [
    ((3, 4), {"dropout": 0.0}), ((3, 4), {"dropout": 1.0, "num_layers": 2}), ((3, 4), {"dropout": 1.5}),
    ((3, 4), {"dropout": True}), ((3, 4), {"dropout": "0.1"}), ((3, 4), {"dropout": 0.3}),  # one layer: a warning
    ((3, 4), {"bias": "False"}), ((3, 4), {"batch_first": "False"}), ((3, 4), {"bias": 0}), (("3", 4), {}),
    ((3, 0), {}), ((0, 4), {}), ((3, 4.0), {}), ((3, 4), {"num_layers": 0}), ((3, 4), {"proj_size": 2}),
    ((3, 4), {"proj_size": 4}), ((3, 4), {"proj_size": -1}), ((3, 4), {"bidirectional": 1}),
]


@pytest.mark.parametrize("args,kwargs", CONSTRUCTORS, ids=[str(k or a) for a, k in CONSTRUCTORS])
@pytest.mark.parametrize("kind", KINDS)
def test_constructor_checks_match(kind, args, kwargs):
    expected = outcome(lambda: getattr(nn, kind)(*args, **kwargs))
    assert outcome(lambda: getattr(C, kind)(*args, **kwargs)) == expected


def test_unknown_nonlinearity_is_a_value_error_in_both():
    assert outcome(lambda: nn.RNN(3, 4, nonlinearity="sigmoid"))[0] is outcome(lambda: C.RNN(3, 4, nonlinearity="sigmoid"))[0] is ValueError


@pytest.mark.parametrize("kind", KINDS)
def test_attributes_match(kind):
    options = {"num_layers": 2, "bidirectional": True, "dropout": 0.25, "batch_first": True, "bias": False}
    if kind == "LSTM":
        options["proj_size"] = 2
    theirs, mine = both(kind, 3, 4, **options)
    for name in ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional", "proj_size", "mode"):
        assert getattr(mine, name) == getattr(theirs, name), name
    assert mine._flat_weights_names == theirs._flat_weights_names and mine._all_weights == theirs._all_weights
    for a, b in zip(mine.all_weights, theirs.all_weights):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert list(mine.state_dict()) == list(theirs.state_dict())
    assert [p.shape for p in mine.parameters()] == [p.shape for p in theirs.parameters()]  # torch's order
    assert mine.extra_repr() == theirs.extra_repr()


@pytest.mark.parametrize("kind", KINDS)
def test_assigning_dropout_takes_effect(kind):
    theirs, mine = both(kind, 3, 4, num_layers=2, dropout=0.0)
    x = torch.randn(5, 2, 3)
    mine.dropout = theirs.dropout = 0.9
    torch.manual_seed(1)
    noisy = mine(x)[0]
    assert not torch.allclose(noisy, theirs(x)[0]) and mine.dropout == 0.9
    mine.dropout = theirs.dropout = 0.0
    torch.testing.assert_close(mine(x)[0], theirs(x)[0])  # 0 stops dropping
    with pytest.raises(ValueError):
        mine.dropout = 2.0


SHAPES = {  # input, hx -> what torch raises
    "4-D input": (torch.randn(5, 2, 3, 1), None),
    "wrong feature size": (torch.randn(5, 2, 7), None),
    "wrong hidden size": (torch.randn(5, 2, 3), "bad"),
    "float64 input": (torch.randn(5, 2, 3, dtype=torch.float64), None),
}


@pytest.mark.parametrize("case", SHAPES)
@pytest.mark.parametrize("kind", KINDS)
def test_forward_errors_have_torchs_classes(kind, case):
    theirs, mine = both(kind, 3, 4)
    x, hx = SHAPES[case]
    if hx == "bad":
        h = torch.zeros(2, 2, 4)
        hx = (h, h) if kind == "LSTM" else h
    caught = []
    for module in (theirs, mine):
        with pytest.raises(Exception) as info:
            module(x, hx)
        caught.append(info.value)
    assert isinstance(caught[1], type(caught[0])), f"torch: {type(caught[0]).__name__}, carousel: {type(caught[1]).__name__}"
    if case == "float64 input":
        assert "torch.float32" in str(caught[1]) and "torch.float64" in str(caught[1])
    if case == "wrong feature size":
        assert "(5, 2, 7)" in str(caught[1])  # the shape the user passed


@pytest.mark.parametrize("kind", KINDS)
def test_numbers_packing_unbatched_and_double_backward_match(kind):
    theirs, mine = both(kind, 3, 4, num_layers=2, bidirectional=True)
    x = torch.randn(6, 3, 3, dtype=torch.float32, requires_grad=True)
    for module in (theirs, mine):
        module.zero_grad()
    outs = []
    for module in (theirs, mine):
        out, _ = module(x)
        (g,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
        (gg,) = torch.autograd.grad(g.square().sum(), x)
        packed, _ = module(pack_padded_sequence(x, [6, 4, 2], enforce_sorted=False))
        unbatched, _ = module(x[:, 0])
        outs.append((out, g, gg, packed.data, unbatched))
    for a, b in zip(*outs):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_pickling_copying_meta_and_to_torch(kind):
    theirs, mine = both(kind, 3, 4, num_layers=2)
    x = torch.randn(5, 2, 3)
    for clone in (pickle.loads(pickle.dumps(mine)), copy.deepcopy(mine)):
        torch.testing.assert_close(clone(x)[0], mine(x)[0])
    meta = getattr(C, kind)(3, 4, device="meta")
    assert meta.weight_hh_l0.device.type == "meta"
    meta.to_empty(device="cpu")
    assert meta(x)[0].shape == (5, 2, 4)
    back = mine.to_torch()
    assert type(back) is type(theirs) and not isinstance(mine, type(theirs))  # deliberate: not a subclass
    torch.testing.assert_close(back(x)[0], theirs(x)[0])
    with pytest.raises(ValueError, match="no torch.nn equivalent"):
        getattr(C, kind)(3, 4, num_layers=2, residual=True).to_torch()


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")
def test_deliberate_differences():
    """Listed in the README: torch's old-style weight_norm by a torch name, parametrizations by a torch
    name and TorchScript need the module's own parameters; carousel's live in its cells."""
    mine = C.LSTM(3, 3)
    with pytest.raises(KeyError):
        nn.utils.weight_norm(mine, name="weight_hh_l0")
    with pytest.raises(ValueError, match="does not have a parameter"):
        nn.utils.parametrizations.weight_norm(mine, name="weight_hh_l0")
    cell = mine.cells()[0]  # the documented way: parametrise the cell's own weight
    nn.utils.parametrizations.weight_norm(cell, name="weight_hh")
    assert mine.fused_stack_mode(torch.randn(4, 2, 3)) == "lstm" and mine(torch.randn(4, 2, 3))[0].shape == (4, 2, 3)
    with pytest.raises(Exception):
        torch.jit.script(C.LSTM(3, 3))
    named = dict(C.LSTM(3, 3).named_parameters())
    assert "stack.layers.0.cell.weight_hh" in named  # internal names: functional_call reaches the computing tensors
