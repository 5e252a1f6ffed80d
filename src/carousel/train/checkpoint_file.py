"""Checkpoint files: tensors in safetensors, everything else as JSON in its metadata, written atomically.

One checkpoint is one file, ``checkpoints/step-00001000.safetensors`` (and ``best.safetensors``):
its tensors (model, optimiser moments, RNG states, the carried recurrent state) and, in the
safetensors metadata under ``"carousel"``, a JSON document (format, step, the run's config,
optimiser and scheduler settings, data position, a SHA-256 of the tensor bytes).

Writing is atomic: the bytes go to a hidden temporary file in the same folder, are flushed to
disk, and ``os.replace`` renames it onto the final name. A crash at any moment leaves either
the old file set or the new one, never a half-written checkpoint under a checkpoint name;
leftover temporary files are ignored when listing and removed by the next save.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

FORMAT = "carousel-checkpoint-1"
PAUSE_ENV = "CAROUSEL_CHECKPOINT_PAUSE"  # seconds to wait between writing the temporary file and renaming it (tests)
_STEP_FILE = re.compile(r"^step-(\d+)\.safetensors$")


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or written for another run."""


def step_path(folder: str | os.PathLike, step: int) -> Path:
    """``folder/step-00001000.safetensors``: where the checkpoint of ``step`` goes."""
    return Path(folder) / f"step-{step:08d}.safetensors"


def list_checkpoints(folder: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(step, path)`` of every complete step checkpoint in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), folder / name) for name in os.listdir(folder) if (m := _STEP_FILE.match(name))]
    return sorted(found)


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The newest complete step checkpoint in ``folder``, or None."""
    found = list_checkpoints(folder)
    return found[-1][1] if found else None


def _digest(tensors: dict[str, Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key]
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _unshare(tensors: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """CPU, contiguous tensors with no two sharing memory (safetensors refuses shared storage);
    an exact alias (tied weights) is stored once and recorded as ``{alias: stored_key}``."""
    out: dict[str, Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    storages: set[int] = set()
    for key, t in tensors.items():
        if not isinstance(t, Tensor):
            raise TypeError(f"checkpoint entry {key!r} is a {type(t).__name__}, not a tensor")
        t = t.detach().to("cpu")
        view = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
        if t.numel() and view in seen:
            aliases[key] = seen[view]
            continue
        ptr = t.untyped_storage().data_ptr()
        if t.numel():
            seen[view] = key
        t = t.clone(memory_format=torch.contiguous_format) if (ptr in storages or not t.is_contiguous()) else t
        storages.add(t.untyped_storage().data_ptr())
        out[key] = t
    return out, aliases


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, Tensor], meta: dict[str, Any]) -> Path:
    """Write ``tensors`` and the JSON-able ``meta`` to ``path`` atomically (see the module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        stale.unlink(missing_ok=True)
    stored, aliases = _unshare(tensors)
    doc = {"format": FORMAT, **meta, "aliases": aliases, "sha256": _digest(stored)}
    data = st_save(stored, metadata={"carousel": json.dumps(doc)})
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        pause = os.environ.get(PAUSE_ENV)
        if pause:  # crash trials: hold the complete temporary file here, before the rename, to be killed in between
            time.sleep(float(pause))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(tensors, meta)`` of a checkpoint; raises ``CheckpointError`` saying what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    data = path.read_bytes()
    try:
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
    except Exception as err:  # safetensors reports truncation and garbage as several error types
        raise CheckpointError(f"checkpoint {path} is corrupt or not a safetensors file ({err})") from None
    raw = (header.get("__metadata__") or {}).get("carousel")
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file but not a carousel checkpoint (no 'carousel' metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"checkpoint {path} has corrupt metadata ({err})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {meta.get('format')!r}; this carousel reads {FORMAT!r}")
    if _digest(tensors) != meta.get("sha256"):
        raise CheckpointError(f"checkpoint {path} is corrupt: its tensors do not match the checksum written with them")
    for alias, key in meta.get("aliases", {}).items():
        tensors[alias] = tensors[key]
    return tensors, meta


def prune(folder: str | os.PathLike, keep: int, *, protect: str | os.PathLike | None = None) -> None:
    """Delete all but the ``keep`` newest step checkpoints in ``folder``; ``protect`` (the last good
    checkpoint, which a run stopped by non-finite steps names) is kept whatever its age."""
    spared = None if protect is None else Path(protect).resolve()
    for _, path in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        if spared is None or path.resolve() != spared:
            path.unlink(missing_ok=True)
