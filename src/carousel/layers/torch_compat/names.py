"""torch.nn's names for the drop-ins' weights: ``weight_ih_l0``, ``bias_hh_l1_reverse``, ...

Inside, a drop-in is a ``Deep`` stack of ``Recurrent`` layers (``Bidirectional`` pairs when both
directions run), so its parameters live under ``stack.layers.L.[forward_layer.|backward_layer.]cell.NAME``.
``state_dict`` gives torch's flat keys and ``load_state_dict`` takes them; attribute access by a
torch name (``lstm.weight_hh_l0``) reads the same parameter.
"""

from __future__ import annotations

import re
from typing import Any

from torch import Tensor, nn

_INTERNAL = re.compile(r"^stack\.layers\.(\d+)\.(?:(forward_layer|backward_layer)\.)?cell\.([^.]+)(\..+)?$")
_TORCH = re.compile(r"^([A-Za-z_]+?)_l(\d+)(_reverse)?(\..+)?$")
_WHERE = re.compile(r"stack\.layers\.(\d+)\.(?:(forward_layer|backward_layer)\.)?")
_PARAMETRIZED = re.compile(r"parametrizations\.([^.]+)\.original$")
TORCH_ORDER = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")  # torch.nn's order within a layer


def torch_key(internal: str) -> str | None:
    """torch's key for an internal one (``stack.layers.1.backward_layer.cell.weight_ih`` ->
    ``weight_ih_l1_reverse``), or None for a key torch does not have."""
    m = _INTERNAL.match(internal)
    if m is None:
        return None
    layer, direction, name, rest = m.groups()
    return f"{name}_l{layer}{'_reverse' if direction == 'backward_layer' else ''}{rest or ''}"


def internal_key(key: str, bidirectional: bool) -> str:
    """The internal key of a torch key (the inverse of :func:`torch_key`)."""
    name, layer, reverse, rest = _TORCH.match(key).groups()
    where = ("backward_layer." if reverse else "forward_layer.") if (bidirectional or reverse) else ""
    return f"stack.layers.{layer}.{where}cell.{name}{rest or ''}"


def torch_order(name: str, position: int) -> tuple:
    """Sort key putting a drop-in's parameter (an internal name from ``named_parameters``, or a torch
    ``state_dict`` key) where torch.nn has it: layer, direction, then ``TORCH_ORDER``; anything else
    keeps its ``position`` after those of its layer."""
    m = _TORCH.match(name)
    if m is not None and not name.startswith("stack."):
        base, layer, reverse, rest = m.groups()
        return (int(layer), bool(reverse), _rank(base), position)
    where = _WHERE.search(name)
    if where is None:
        return (1 << 30, False, len(TORCH_ORDER), position)
    parametrized = _PARAMETRIZED.search(name)
    base = parametrized.group(1) if parametrized else name.rsplit(".", 1)[-1]
    return (int(where.group(1)), where.group(2) == "backward_layer", _rank(base), position)


def _rank(base: str) -> int:
    return TORCH_ORDER.index(base) if base in TORCH_ORDER else len(TORCH_ORDER)


def is_torch_name(name: str) -> bool:
    """Whether ``name`` is a torch parameter name such as ``weight_hh_l0`` (no sub-keys)."""
    m = _TORCH.match(name)
    return m is not None and m.group(4) is None


def to_torch_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata: Any) -> None:
    """``state_dict`` post-hook: internal keys -> torch's, in torch's order."""
    mine = [k for k in state_dict if k.startswith(prefix)]
    renamed = [(torch_key(k[len(prefix):]) or k[len(prefix):], state_dict.pop(k)) for k in mine]
    for i, (key, value) in sorted(enumerate(renamed), key=lambda item: torch_order(item[1][0], item[0])):
        state_dict[prefix + key] = value


def from_torch_keys(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    """``load_state_dict`` pre-hook: torch's keys -> internal ones."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        local = key[len(prefix):]
        if _TORCH.match(local) and not local.startswith("stack."):
            state_dict[prefix + internal_key(local, module.bidirectional)] = state_dict.pop(key)


class TorchNames(nn.Module):
    """What torch.nn's recurrent modules expose by name: ``weight_hh_l0`` and the like as attributes
    (the effective weight when parametrised), ``all_weights``, ``_all_weights``, ``_flat_weights_names``,
    and ``named_parameters`` in torch's order. The internal names stay those of the module
    tree, so that ``get_parameter`` and ``torch.func.functional_call`` reach the tensors that compute."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if not is_torch_name(name):
                raise
            owner, _, attribute = internal_key(name, self.__dict__.get("bidirectional", False)).rpartition(".")
            try:  # the cell's attribute: a parameter, or the computed weight of a parametrised one
                return getattr(self.get_submodule(owner), attribute)
            except AttributeError:
                raise AttributeError(f"{type(self).__name__} has no attribute {name!r}") from None

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """As ``nn.Module.named_parameters``, in torch.nn's order (per layer and direction: ``weight_ih,
        weight_hh, bias_ih, bias_hh[, weight_hr]``), also when a weight is parametrised (weight drop)."""
        named = list(super().named_parameters(prefix, recurse, remove_duplicate))
        start = len(prefix) + 1 if prefix else 0
        order = sorted(range(len(named)), key=lambda i: torch_order(named[i][0][start:], i))
        return iter([named[i] for i in order])

    @property
    def _all_weights(self) -> list[list[str]]:
        """torch's names of every layer's and direction's weights, as ``torch.nn.RNNBase._all_weights``."""
        names: dict[tuple[int, bool], list[str]] = {}
        for key in self.state_dict(keep_vars=True):
            if is_torch_name(key):
                layer, reverse = torch_order(key, 0)[:2]
                names.setdefault((layer, reverse), []).append(key)
        return [names[k] for k in sorted(names)]

    @property
    def _flat_weights_names(self) -> list[str]:
        return [name for names in self._all_weights for name in names]

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """Every layer's and direction's weights by torch's names (the effective ones when parametrised)."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]
