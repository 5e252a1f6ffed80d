r"""DropConnect on the recurrent matrix (weight drop), as a parametrisation of the weight itself.

Wan et al. 2013, "Regularization of Neural Networks using DropConnect", drop weights instead of
activations; Merity, Keskar & Socher 2017, "Regularizing and Optimizing LSTM Language Models"
(the AWD-LSTM), drop the hidden-to-hidden matrix once per forward pass. Because the mask sits on
the weight and not inside the step, any kernel that reads ``cell.weight_hh`` (carousel's fused
backend, the loop, a scan) runs the masked matrix unchanged.
"""

from __future__ import annotations

from typing import Any, Sequence

from torch import Tensor, nn
from torch.nn.utils import parametrize

from .._checks import check_rate
from .masks import MaskHolder


class WeightDrop(MaskHolder):
    r"""Parametrisation ``W -> W \odot M``, ``M = Z / (1 - p)``, ``Z ~ Bernoulli(1 - p)`` per weight.

    One mask per evaluation of the weight: runners read computed weights once per run, inside
    ``parametrize.cached()``, so a whole sequence (and its backward pass) sees one matrix; inside
    ``hold_masks`` the mask is kept across runs. Evaluation mode (or ``p=0``) returns ``W``. The
    gradient reaches the raw weight as ``M \odot \partial L / \partial (W \odot M)``.
    """

    shares_mask_across_batch = True  # one matrix for the whole batch

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = check_rate(p, "p")

    def forward(self, w: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return w
        self._new_unit()
        return w * self._unit_mask(w.shape, w, self.p)

    def right_inverse(self, w: Tensor) -> Tensor:
        return w  # assigning cell.weight_hh = W stores W as the raw weight

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _owns(module: nn.Module, name: str) -> bool:
    return isinstance(module._parameters.get(name), nn.Parameter) or parametrize.is_parametrized(module, name)


def _weight_drops(module: nn.Module, name: str) -> list[int]:
    if not parametrize.is_parametrized(module, name):
        return []
    return [i for i, p in enumerate(module.parametrizations[name]) if isinstance(p, WeightDrop)]


def weight_drop(module: nn.Module, p: float = 0.5, *, names: Sequence[str] = ("weight_hh",)) -> nn.Module:
    """Put DropConnect of rate ``p`` on the tensors ``names`` of ``module`` and of every submodule.

    ``weight_drop(carousel.LSTM(32, 64, num_layers=2), 0.5)`` drops the recurrent matrix of
    both layers' cells. Returns ``module`` (changed in place). Use it when an LSTM language
    model overfits and you want to keep torch's fused kernel (Merity et al. 2017). Apply it after
    initialising the weights. The ``state_dict`` keeps the plain keys (``weight_hh``) when weight
    drop is the weight's only parametrisation, so checkpoints load in both directions;
    ``remove_weight_drop`` undoes it.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(module).__name__}")
    p = check_rate(p, "p")
    names = (names,) if isinstance(names, str) else tuple(names)
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"expected names as a sequence of parameter names such as ('weight_hh',), got {names!r}")
    targets = [(m, n) for m in module.modules() for n in names if _owns(m, n)]
    if not targets:
        raise ValueError(
            f"no part of {type(module).__name__} has a weight named {' or '.join(map(repr, names))} "
            "(cells whose gates read only x, such as MinGRUCell, have no recurrent matrix)"
        )
    for m, n in targets:
        if _weight_drops(m, n):
            raise ValueError(f"{type(m).__name__}.{n} already has weight drop; call remove_weight_drop first")
    for m, n in targets:
        if "_weight_drop_order" not in m.__dict__:  # the parameters' order, for remove_weight_drop
            m._weight_drop_order = list(m._parameters)
        parametrize.register_parametrization(m, n, WeightDrop(p))
        if not getattr(m, "_weight_drop_hooks", False):
            m.register_state_dict_post_hook(_plain_keys)
            m.register_load_state_dict_pre_hook(_parametrized_keys)
            m._weight_drop_hooks = True
    return module


def remove_weight_drop(module: nn.Module) -> nn.Module:
    """Remove every ``WeightDrop`` from ``module`` and its submodules; the raw weights stay as they are,
    the same parameter objects in their first order (``named_parameters``, ``state_dict``)."""
    for m in list(module.modules()):
        if not parametrize.is_parametrized(m):
            continue
        for name in list(m.parametrizations.keys()):
            found = _weight_drops(m, name)
            if len(found) == len(m.parametrizations[name]):
                parametrize.remove_parametrizations(m, name, leave_parametrized=False)
            else:
                for i in reversed(found):
                    del m.parametrizations[name][i]
        order = m.__dict__.get("_weight_drop_order")
        if order is not None and not parametrize.is_parametrized(m):
            rank = {name: i for i, name in enumerate(order)}
            items = sorted(m._parameters.items(), key=lambda kv: rank.get(kv[0], len(rank)))
            m._parameters.clear()
            m._parameters.update(items)
            del m._weight_drop_order
    return module


def _only_weight_drop(module: nn.Module) -> list[str]:
    """Names whose single parametrisation is a WeightDrop (their state_dict key is the plain name)."""
    if not parametrize.is_parametrized(module):
        return []
    return [n for n, plist in module.parametrizations.items() if len(plist) == 1 and isinstance(plist[0], WeightDrop)]


def _plain_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata: Any) -> None:
    for name in _only_weight_drop(module):
        key = f"{prefix}parametrizations.{name}.original"
        if key in state_dict:
            state_dict[prefix + name] = state_dict.pop(key)


def _parametrized_keys(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    for name in _only_weight_drop(module):
        if prefix + name in state_dict:
            state_dict[f"{prefix}parametrizations.{name}.original"] = state_dict.pop(prefix + name)
