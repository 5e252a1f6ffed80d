"""Kind 4 of the faults: a drop-in keeps torch.nn's names, order and attributes when a weight is
parametrised (weight drop), and ``remove_weight_drop`` gives the module back exactly."""

from __future__ import annotations

import pytest
import torch

import carousel as C
from carousel.regularize import hold_masks

CONFIGS = [
    ("LSTM", {}), ("LSTM", {"num_layers": 2, "bidirectional": True}), ("LSTM", {"proj_size": 2}),
    ("GRU", {"num_layers": 2}), ("RNN", {"bidirectional": True, "nonlinearity": "relu"}),
]


@pytest.mark.parametrize("kind,options", CONFIGS, ids=[f"{k}-{'-'.join(map(str, o.values())) or 'plain'}" for k, o in CONFIGS])
def test_weight_drop_keeps_torch_names_order_and_comes_off_exactly(kind, options):
    torch.manual_seed(0)
    theirs = getattr(torch.nn, kind)(3, 4, **options)
    mine = getattr(C, kind)(3, 4, **options)
    mine.load_state_dict(theirs.state_dict())
    before = list(mine.named_parameters())
    keys = list(mine.state_dict())
    assert keys == list(theirs.state_dict())  # torch's keys in torch's order
    C.weight_drop(mine, 0.5)
    with hold_masks(mine):
        for key in keys:
            effective = getattr(mine, key)  # every torch name stays readable
            if key.startswith("weight_hh"):
                mask = getattr(mine, key) != 0  # inside hold_masks one mask, the same at every read
                torch.testing.assert_close(effective, theirs.state_dict()[key] * mask * 2.0)
            else:
                assert torch.equal(effective, getattr(theirs, key))
    assert list(mine.state_dict()) == keys  # the plain keys, in torch's order
    order = [name.rsplit(".", 1)[-1] if "parametrizations" not in name else name.split(".")[-2] for name, _ in mine.named_parameters()]
    assert order == [k.split("_l")[0] for k in keys]  # weight_ih, weight_hh, bias_ih, bias_hh[, weight_hr] per layer
    mine.eval()
    torch.testing.assert_close(mine.weight_hh_l0, theirs.weight_hh_l0)  # evaluation: the weight itself
    C.remove_weight_drop(mine)
    after = list(mine.named_parameters())
    assert [n for n, _ in after] == [n for n, _ in before] and all(a is b for (_, a), (_, b) in zip(after, before))
    assert list(mine.state_dict()) == keys


def test_the_reported_example():
    lstm = C.weight_drop(C.LSTM(1, 1), 0.5)
    assert lstm.weight_hh_l0.shape == (4, 1)
    with pytest.raises(AttributeError, match="LSTM has no attribute 'weight_hh_l3'"):
        lstm.weight_hh_l3
