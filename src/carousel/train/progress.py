"""The live progress bar (rich): steps done, ETA, loss, gradient norm and throughput."""

from __future__ import annotations

from typing import Any


class ProgressBar:
    """``with ProgressBar(total, start, unit, enabled) as bar: bar.update(step, loss, grad_norm, rate)``;
    disabled, it does nothing (other ranks, ``--no-progress``)."""

    def __init__(self, total: int, start: int = 0, *, unit: str = "seq", enabled: bool = True, title: str = "train") -> None:
        self.total, self.start, self.unit, self.enabled, self.title = total, start, unit, enabled, title
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> "ProgressBar":
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.title, total=self.total, completed=self.start, info="")
        return self

    def update(self, step: int, loss: float, grad_norm: float, rate: float, note: str = "") -> None:
        if self._progress is None:
            return
        info = f"loss {loss:.4g}  |g| {grad_norm:.3g}  {rate:,.0f} {self.unit}/s" + (f"  {note}" if note else "")
        self._progress.update(self._task, completed=step, info=info)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
