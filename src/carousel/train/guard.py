"""The guard against non-finite losses and gradients: skip the step, count, and stop after too many."""

from __future__ import annotations

import math


class NonFiniteError(RuntimeError):
    """Training stopped because too many steps in a row had a non-finite loss or gradient."""


class NonFiniteGuard:
    """``check(step, loss, grad_norm)`` returns True when the step may be applied.

    A step whose loss or gradient norm is ``nan`` or ``inf`` is skipped (the optimiser does not
    step) and counted; after ``limit`` such steps in a row, ``check`` raises ``NonFiniteError``
    naming the last good checkpoint (``last_checkpoint``, kept up to date by the trainer with
    checkpoints whose weights and last training and validation losses were all finite).
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"expected a limit >= 1, got {limit}")
        self.limit = limit
        self.in_a_row = 0
        self.skipped = 0
        self.last_checkpoint: str | None = None

    def check(self, step: int, loss: float, grad_norm: float) -> bool:
        if math.isfinite(loss) and math.isfinite(grad_norm):
            self.in_a_row = 0
            return True
        self.in_a_row += 1
        self.skipped += 1
        if self.in_a_row >= self.limit:
            where = (f"the last good checkpoint (finite weights and losses) is {self.last_checkpoint}" if self.last_checkpoint
                     else "no checkpoint with finite weights and losses was written")
            raise NonFiniteError(
                f"stopped at step {step}: {self.in_a_row} steps in a row had a non-finite loss or gradient "
                f"(last: loss {loss}, gradient norm {grad_norm}); each was skipped. {where[0].upper() + where[1:]}. "
                "Try a lower learning rate or a tighter clip_norm."
            )
        return False

    def state_dict(self) -> dict[str, int]:
        return {"in_a_row": self.in_a_row, "skipped": self.skipped}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.in_a_row, self.skipped = int(state["in_a_row"]), int(state["skipped"])
