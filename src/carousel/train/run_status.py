"""Where a run directory stands, read from the files it holds (what ``carousel runs`` lists).

Nothing records "this run ended" in so many words, so the status is derived from what the trainer
writes (``run.py``, ``trainer.py``, ``trainer_checkpoint.py``, ``metrics.py``):

* **failed**: the last ``max_nonfinite - 1`` training records (or more) are all skipped steps (the
  non-finite guard stopped the run at the next one, whose record it did not write), or no step was ever recorded and nothing was written for a while;
* **finished**: a checkpoint exists at the last recorded step (the trainer always saves at the
  end) and the run reached its ``steps``, or its time budget (``trained_seconds`` in that
  checkpoint), or early stopping's ``patience``, or ``loss.png`` (drawn when ``fit`` returns) is
  newer than ``metrics.jsonl``;
* **running?**: otherwise, when a file of the run changed in the last ``ACTIVE_SECONDS`` (a guess:
  no process id is recorded; a stalled process looks the same);
* **interrupted**: otherwise (Ctrl-C, a kill, a crash): ``carousel resume RUN_DIR`` continues it
  from its latest checkpoint.

The best metric is the validation value of the task's ``monitor`` at its best evaluation.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoint_file import list_checkpoints
from .metrics import read_metrics
from .registry import get_task

ACTIVE_SECONDS = 300.0  # a run that wrote something this recently is taken to be running
STATUSES = ("running?", "finished", "interrupted", "failed")


@dataclass
class RunInfo:
    """What one run directory holds. ``steps`` is the last recorded step, ``total`` the configured
    ``steps``; ``best`` the best validation value of ``monitor`` (None before any evaluation);
    ``updated`` the POSIX time of the newest write; ``detail`` says why the status is what it is."""

    path: Path
    task: str
    status: str
    steps: int
    total: int
    minutes: float
    monitor: str
    best: float | None
    updated: float
    detail: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def steps_text(self) -> str:
        """``"120/500"``, or ``"2,197 (5 min budget)"`` for a run on a time budget."""
        if self.minutes:
            return f"{self.steps:,} ({self.minutes:g} min budget)"
        return f"{self.steps:,}/{self.total:,}"

    def best_text(self) -> str:
        return "–" if self.best is None else f"{self.monitor} {self.best:.4g}"


def age_text(seconds: float) -> str:
    """``"12 s"``, ``"5 min"``, ``"3 h"``, ``"2 d"`` ago."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def checkpoint_meta(path: Path) -> dict[str, Any]:
    """The JSON document of a checkpoint, read from its header only (no tensors, no checksum); {} when unreadable."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 0 < size < 100_000_000:
                return {}
            header = json.loads(f.read(size))
        return json.loads(header.get("__metadata__", {}).get("carousel", "{}"))
    except (OSError, ValueError, AttributeError):
        return {}


def run_monitor(task: str, records: list[dict[str, Any]] = ()) -> str:  # type: ignore[assignment]
    """The task's monitored metric; for a task not registered in this process, the metric of the
    evaluation records whose value is their ``best``, else ``"loss"``."""
    try:
        return get_task(task).monitor
    except ValueError:
        pass
    for r in records:
        if r.get("kind") == "eval" and r.get("best") is not None:
            for key, value in r.items():
                if key not in ("kind", "split", "step", "best") and value == r["best"]:
                    return key
    return "loss"


def _newest_write(run_dir: Path) -> float:
    times = []
    for folder in (run_dir, run_dir / "checkpoints"):
        try:
            with os.scandir(folder) as entries:
                times += [e.stat().st_mtime for e in entries if e.is_file()]
        except OSError:
            continue
    return max(times, default=0.0)


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def read_run(run_dir: str | os.PathLike, *, now: float | None = None) -> RunInfo:
    """The ``RunInfo`` of ``run_dir``. Raises ``ValueError`` when it is not a run directory (no
    ``config.json``) or its ``config.json`` is not a run configuration."""
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not path.is_file():
        raise ValueError(f"{run_dir} is not a run directory (no config.json); start one with `carousel train TASK`")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        task, train = str(config["task"]), dict(config["train"])
        total, minutes = int(train.get("steps", 0)), float(train.get("minutes", 0.0) or 0.0)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a readable run configuration ({type(err).__name__}: {err})") from None
    now = time.time() if now is None else now
    try:
        records = [r for r in read_metrics(run_dir / "metrics.jsonl") if isinstance(r, dict) and isinstance(r.get("step"), int)]
    except UnicodeDecodeError as err:
        raise ValueError(f"{run_dir / 'metrics.jsonl'} is not a metrics file (not UTF-8 text: {err.reason})") from None
    train_records = [r for r in records if r.get("kind") == "train"]
    checkpoints = list_checkpoints(run_dir / "checkpoints")
    saved = checkpoints[-1][0] if checkpoints else None
    steps = max([int(r.get("step", 0)) for r in records] + ([saved] if saved is not None else []), default=0)
    monitor = run_monitor(task, records)
    bests = [r["best"] for r in records if r.get("kind") == "eval" and r.get("best") is not None]
    best = bests[-1] if bests else None
    if best is None and checkpoints:
        best = checkpoint_meta(checkpoints[-1][1]).get("best")
    updated = _newest_write(run_dir)
    info = RunInfo(run_dir, task, "", steps, total, minutes, monitor, best, updated, config=config, records=records)
    info.status, info.detail = _status(run_dir, info, train, train_records, checkpoints, now)
    return info


def _status(run_dir: Path, info: RunInfo, train: dict[str, Any], train_records: list[dict[str, Any]],
            checkpoints: list[tuple[int, Path]], now: float) -> tuple[str, str]:
    recent = now - info.updated < ACTIVE_SECONDS
    limit = int(train.get("max_nonfinite", 5) or 5)
    tail = 0
    for r in reversed(train_records):
        if not r.get("skipped"):
            break
        tail += 1
    if tail >= max(1, limit - 1):  # the guard raises at the limit-th such step, before its record is written
        return "failed", f"non-finite loss or gradient at {tail + (tail < limit)} steps in a row (stopped at step {info.steps + (tail < limit)})"
    saved = checkpoints[-1][0] if checkpoints else None
    if saved is not None and saved >= info.steps:
        meta = checkpoint_meta(checkpoints[-1][1])
        if info.total and info.steps >= info.total:
            return "finished", "reached its steps"
        if info.minutes and float(meta.get("trained_seconds", 0.0)) >= 60.0 * info.minutes:
            return "finished", f"time budget of {info.minutes:g} min"
        patience = int(train.get("patience", 0) or 0)
        if patience and int(meta.get("bad_evals", 0)) >= patience:
            return "finished", f"early stopping (patience {patience})"
        plot, metrics = _mtime(run_dir / "loss.png"), _mtime(run_dir / "metrics.jsonl")
        if plot is not None and metrics is not None and plot >= metrics:
            return "finished", "stopped by a hook"
    if recent:
        return "running?", "wrote a file " + age_text(now - info.updated)
    if not train_records and saved is None:
        return "failed", "no step was recorded"
    where = f"resume from step {saved}" if saved is not None else "no checkpoint: start again"
    return "interrupted", f"at step {info.steps}; {where}"


def list_runs(root: str | os.PathLike, *, now: float | None = None) -> tuple[list[RunInfo], list[str]]:
    """Every run directory in ``root`` (or ``root`` itself when it is one), newest first, and a note
    for each entry that was skipped (not a run directory, or unreadable). Raises ``ValueError`` when
    ``root`` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        what = "a file" if root.exists() else "missing"
        raise ValueError(f"expected a folder of run directories, but {root} is {what}")
    if (root / "config.json").is_file():
        candidates = [root]
    else:
        try:
            candidates = sorted(p for p in root.iterdir() if not p.name.startswith("."))
        except OSError as err:
            raise ValueError(f"cannot read the folder {root}: {err.strerror}") from None
    runs, skipped = [], []
    for path in candidates:
        if not path.is_dir():
            skipped.append(f"{path.name}: not a folder")
            continue
        try:
            runs.append(read_run(path, now=now))
        except (ValueError, TypeError) as err:
            skipped.append(f"{path.name}: {err}" if (path / "config.json").exists() else f"{path.name}: no config.json")
        except OSError as err:
            skipped.append(f"{path.name}: unreadable ({err.strerror or err})")
    runs.sort(key=lambda r: r.updated if math.isfinite(r.updated) else 0.0, reverse=True)
    return runs, skipped


def summary_labels(run_dir: str | os.PathLike) -> tuple[str, str]:
    """How a one-line summary names a run's training loss and its best validation value, with units:
    ``("last training loss (nats per character)", "best validation bpc")`` for a ``charlm`` run
    (its task's ``loss_unit`` and ``monitor``); ``("last training loss", "best validation loss")``
    for a task that declares no unit, or when ``run_dir`` holds no readable config."""
    try:
        task = get_task(json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8"))["task"])
    except (OSError, ValueError, KeyError, TypeError):
        return "last training loss", "best validation"
    unit = getattr(task, "loss_unit", "")
    return f"last training loss{f' ({unit})' if unit else ''}", f"best validation {task.monitor}"
