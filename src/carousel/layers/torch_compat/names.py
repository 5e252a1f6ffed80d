"""torch.nn's names for the drop-ins' weights: ``weight_ih_l0``, ``bias_hh_l1_reverse``, ...

Inside, a drop-in is a ``Deep`` stack of ``Recurrent`` layers (``Bidirectional`` pairs when both
directions run), so its parameters live under ``stack.layers.L.[forward_layer.|backward_layer.]cell.NAME``.
``state_dict`` gives torch's flat keys and ``load_state_dict`` takes them; attribute access by a
torch name (``lstm.weight_hh_l0``) reads the same parameter.
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn

_INTERNAL = re.compile(r"^stack\.layers\.(\d+)\.(?:(forward_layer|backward_layer)\.)?cell\.([^.]+)(\..+)?$")
_TORCH = re.compile(r"^([A-Za-z_]+?)_l(\d+)(_reverse)?(\..+)?$")


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


def is_torch_name(name: str) -> bool:
    """Whether ``name`` is a torch parameter name such as ``weight_hh_l0`` (no sub-keys)."""
    m = _TORCH.match(name)
    return m is not None and m.group(4) is None


def to_torch_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata: Any) -> None:
    """``state_dict`` post-hook: internal keys -> torch's."""
    for key in [k for k in state_dict if k.startswith(prefix + "stack.")]:
        new = torch_key(key[len(prefix):])
        if new is not None:
            state_dict[prefix + new] = state_dict.pop(key)


def from_torch_keys(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    """``load_state_dict`` pre-hook: torch's keys -> internal ones."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        local = key[len(prefix):]
        if _TORCH.match(local) and not local.startswith("stack."):
            state_dict[prefix + internal_key(local, module.bidirectional)] = state_dict.pop(key)
