"""Wrappers that regularise a module without changing what it stores.

A wrapper keeps the module it regularises as a child (``.cell``, ``.embedding``) and has no
parameters of its own. Its ``state_dict`` is the child's, key for key (the child's prefix is
dropped on saving and restored on loading), so a checkpoint of the plain module loads into the
regularised one and back; carousel's torch-compatible drop-ins keep ``torch.nn``'s keys.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..cells.base import Cell, check_cell


def make_transparent(module: nn.Module, child: str) -> None:
    """Give ``module`` the state_dict keys of its child ``child`` (which holds everything it stores)."""
    module._transparent_child = child
    module.register_state_dict_post_hook(_drop_child_prefix)
    module.register_load_state_dict_pre_hook(_add_child_prefix)


def _drop_child_prefix(module: nn.Module, state_dict: dict, prefix: str, local_metadata: Any) -> None:
    inner = f"{prefix}{module._transparent_child}."
    for key in [k for k in state_dict if k.startswith(inner)]:
        state_dict[prefix + key[len(inner):]] = state_dict.pop(key)


def _add_child_prefix(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    inner = f"{prefix}{module._transparent_child}."
    for key in [k for k in state_dict if k.startswith(prefix) and not k.startswith(inner)]:
        state_dict[inner + key[len(prefix):]] = state_dict.pop(key)


def _delegate(name: str) -> property:
    def get(self: "CellWrapper") -> Tensor | None:
        return getattr(self.cell, name, None)

    return property(get, doc=f"The inner cell's ``{name}`` (None when it has none).")


class CellWrapper(Cell):
    """A cell that runs another cell (``.cell``) and changes how its state moves through time.

    Sizes, state type, ``project`` and ``initial_state`` are the inner cell's; subclasses change
    ``step``. The torch-named weights (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``,
    ``weight_hr``) read through to the inner cell, so a fused kernel can run the inner cell
    whenever the wrapper has nothing to add (evaluation mode, rate 0; see ``fused_mode``).
    """

    def __init__(self, cell: Cell) -> None:
        check_cell(cell, "the cell to wrap")
        super().__init__(cell.input_size, cell.hidden_size)
        self.cell = cell
        make_transparent(self, "cell")

    weight_ih = _delegate("weight_ih")
    weight_hh = _delegate("weight_hh")
    bias_ih = _delegate("bias_ih")
    bias_hh = _delegate("bias_hh")
    weight_hr = _delegate("weight_hr")

    @property
    def state_type(self) -> type:  # type: ignore[override]
        return self.cell.state_type

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return self.cell.state_sizes

    @property
    def kind(self) -> str:
        return f"{type(self).__name__}({self.cell.kind})"

    def initial_state(self, batch_size: int, *, device=None, dtype=None):
        return self.cell.initial_state(batch_size, device=device, dtype=dtype)

    def project(self, x: Tensor) -> Tensor:
        return self.cell.project(x)

    def reset_parameters(self) -> None:
        self.cell.reset_parameters()

    def _active(self) -> bool:
        """Whether the wrapper changes anything now (subclasses: training mode and a rate above 0)."""
        raise NotImplementedError

    def fused_mode(self) -> tuple[str | None, str | None]:
        if self._active():
            return None, f"fused cannot run {self.kind} in training mode: its step is not a torch kernel's"
        return self.cell.fused_mode()

    def fused_weights(self) -> list[Tensor]:
        return self.cell.fused_weights()

    def gates(self, px_t: Tensor, state: Any) -> dict[str, Tensor]:
        """The inner cell's gates (read from the state as given)."""
        return self.cell.gates(px_t, state)
