"""Metrics of a run: one JSON object per line in ``metrics.jsonl``, and TensorBoard when installed.

Every record has ``kind`` (``"train"`` or ``"eval"``) and ``step``; training records hold at least
``loss``, ``grad_norm`` (the global norm before clipping), ``lr``, ``items`` and ``skipped``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path
from typing import Any, Iterator


class MetricsLog:
    """Appends records to ``path`` (flushed per line); ``tensorboard=True`` also writes event files
    to ``tb_dir`` when the ``tensorboard`` package is importable (``pip install carousel[tensorboard]``)."""

    def __init__(self, path: str | os.PathLike, *, tensorboard: bool = True, tb_dir: str | os.PathLike | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")
        self._tb = None
        if tensorboard and importlib.util.find_spec("tensorboard") is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(tb_dir or self.path.parent / "tensorboard"))

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            group = "/".join(str(record[k]) for k in ("kind", "split") if k in record) or "train"  # e.g. eval/valid
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(f"{group}/{key}", value, record["step"])

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record of a ``metrics.jsonl`` (a torn last line, from a crash mid-write, is dropped)."""
    return list(_records(Path(path)))


def _records(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        return
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def truncate_metrics(path: str | os.PathLike, step: int) -> None:
    """Keep only records up to ``step`` (resuming from a checkpoint at ``step`` rewrites what came after)."""
    path = Path(path)
    if not path.is_file():
        return
    kept = [r for r in _records(path) if r.get("step", 0) <= step]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in kept)
    os.replace(tmp, path)


def finite(x: float) -> float | None:
    """JSON has no nan/inf in strict readers; they are written as null."""
    return x if math.isfinite(x) else None
