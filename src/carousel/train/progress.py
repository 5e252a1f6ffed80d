"""The live progress bar (rich): steps (or the clock, for a time budget), elapsed and remaining
time, loss, the task's monitored metric, gradient norm and throughput."""

from __future__ import annotations

import math
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

SMOOTHING = 0.95  # exponential moving average of the shown loss and metric: steps are noisy


class ProgressBar:
    """``with ProgressBar(total, start, unit=..., enabled=...) as bar: bar.update(record, elapsed)``.

    ``total`` steps from ``start``; with ``seconds`` the bar fills with the training time instead
    (a time budget), from ``start_seconds``. ``monitor`` names a metric of the training records
    to show beside the loss (``"bpc"``). Disabled, it does nothing (other ranks, ``--no-progress``).
    """

    def __init__(
        self,
        total: int,
        start: int = 0,
        *,
        unit: str = "seq",
        enabled: bool = True,
        title: str = "train",
        seconds: float | None = None,
        start_seconds: float = 0.0,
        monitor: str | None = None,
    ) -> None:
        self.total, self.start, self.unit, self.enabled, self.title = total, start, unit, enabled, title
        self.seconds, self.start_seconds, self.monitor = seconds, start_seconds, monitor
        self._progress: Progress | None = None
        self._task: Any = None
        self._smooth: dict[str, float] = {}

    def __enter__(self) -> "ProgressBar":
        if self.enabled:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[count]}"),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self._progress.__enter__()
            total, done = (self.seconds, self.start_seconds) if self.seconds else (self.total, self.start)
            self._task = self._progress.add_task(self.title, total=total, completed=done, info="", count=self._count(self.start))
        return self

    def _count(self, step: int) -> str:
        return f"step {step:,}" if self.seconds else f"{step:,}/{self.total:,}"

    def _ema(self, name: str, value: Any) -> float:
        if value is None or not math.isfinite(value):
            return self._smooth.get(name, math.nan)
        old = self._smooth.get(name)
        self._smooth[name] = value if old is None or math.isnan(old) else SMOOTHING * old + (1 - SMOOTHING) * value
        return self._smooth[name]

    def update(self, record: dict[str, Any], elapsed: float = 0.0) -> None:
        """Show a training record (``step``, ``loss``, ``grad_norm``, ``rate``, the monitor) after ``elapsed`` seconds."""
        if self._progress is None:
            return
        parts = [f"loss {self._ema('loss', record.get('loss')):.4g}"]
        if self.monitor and self.monitor != "loss" and self.monitor in record:
            parts.append(f"{self.monitor} {self._ema(self.monitor, record[self.monitor]):.4g}")
        norm = record.get("grad_norm")
        parts += [f"|g| {norm if norm is not None else math.nan:.2g}", f"{_compact(record.get('rate', 0.0))} {self.unit}/s"]
        done = min(elapsed, self.seconds) if self.seconds else record["step"]
        self._progress.update(self._task, completed=done, info="  ".join(parts), count=self._count(record["step"]))

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)


def _compact(rate: float) -> str:
    """``31,508`` as ``31.5k``: the bar shares a line with a lot."""
    return f"{rate / 1e6:.2f}M" if rate >= 1e6 else f"{rate / 1e3:.1f}k" if rate >= 1e4 else f"{rate:,.0f}"
