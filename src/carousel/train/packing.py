"""Turning training state into (tensors, JSON) pairs for checkpoints, and back.

* ``pack_tree`` / ``unpack_tree``: a nested recurrent state (tuples, NamedTuples such as
  ``LSTMState``, lists, dicts, tensors, None) as flat tensors plus a JSON description;
* ``pack_optimizer`` / ``unpack_optimizer``: an optimiser's ``state_dict`` (moment tensors
  apart, hyper-parameters as JSON);
* ``rng_state`` / ``set_rng_state``: the torch, CUDA, Python and NumPy random generators.
"""

from __future__ import annotations

import importlib
import random
from typing import Any

import numpy as np
import torch
from torch import Tensor


def pack_tree(prefix: str, obj: Any, tensors: dict[str, Tensor]) -> Any:
    """Store every tensor of ``obj`` in ``tensors`` under ``prefix/...``; return the JSON structure."""
    if obj is None:
        return {"none": True}
    if isinstance(obj, Tensor):
        tensors[prefix] = obj
        return {"tensor": prefix}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        cls = type(obj)
        items = [pack_tree(f"{prefix}/{i}", v, tensors) for i, v in enumerate(obj)]
        return {"namedtuple": f"{cls.__module__}:{cls.__qualname__}", "items": items}
    if isinstance(obj, (tuple, list)):
        kind = "tuple" if isinstance(obj, tuple) else "list"
        return {kind: [pack_tree(f"{prefix}/{i}", v, tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, dict):
        return {"dict": {str(k): pack_tree(f"{prefix}/{k}", v, tensors) for k, v in obj.items()}}
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint's recurrent state")


def unpack_tree(spec: Any, tensors: dict[str, Tensor], device: torch.device | None = None) -> Any:
    if "none" in spec:
        return None
    if "tensor" in spec:
        t = tensors[spec["tensor"]]
        return t if device is None else t.to(device)
    if "namedtuple" in spec:
        module, qualname = spec["namedtuple"].split(":")
        cls: Any = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        return cls(*(unpack_tree(s, tensors, device) for s in spec["items"]))
    if "tuple" in spec:
        return tuple(unpack_tree(s, tensors, device) for s in spec["tuple"])
    if "list" in spec:
        return [unpack_tree(s, tensors, device) for s in spec["list"]]
    if "dict" in spec:
        return {k: unpack_tree(s, tensors, device) for k, s in spec["dict"].items()}
    raise ValueError(f"unknown state description {spec!r}")


def pack_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor]) -> dict[str, Any]:
    sd = optimizer.state_dict()
    extra: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, Tensor):
                tensors[f"optimizer/{pid}/{k}"] = v
            else:
                extra.setdefault(str(pid), {})[k] = v
    return {"param_groups": sd["param_groups"], "state": extra}


def unpack_optimizer(optimizer: torch.optim.Optimizer, meta: dict[str, Any], tensors: dict[str, Tensor]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, t in tensors.items():
        if key.startswith("optimizer/"):
            _, pid, name = key.split("/", 2)
            state.setdefault(int(pid), {})[name] = t
    for pid, values in meta["state"].items():
        state.setdefault(int(pid), {}).update(values)
    groups = []
    for saved, now in zip(meta["param_groups"], optimizer.param_groups):  # JSON turned tuples into lists
        groups.append({k: tuple(v) if isinstance(now.get(k), tuple) else v for k, v in saved.items()})
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def rng_state(tensors: dict[str, Tensor], prefix: str = "rng") -> dict[str, Any]:
    """Store the torch (and CUDA) generator states in ``tensors``; return the Python and NumPy ones as JSON."""
    tensors[f"{prefix}/torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors[f"{prefix}/cuda"] = torch.cuda.get_rng_state()
    version, inner, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": [version, list(inner), gauss], "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]}


def set_rng_state(meta: dict[str, Any], tensors: dict[str, Tensor], prefix: str = "rng") -> None:
    torch.set_rng_state(tensors[f"{prefix}/torch"])
    if f"{prefix}/cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors[f"{prefix}/cuda"])
    version, inner, gauss = meta["python"]
    random.setstate((version, tuple(inner), gauss))
    if "numpy" in meta:
        name, keys, pos, has_gauss, cached = meta["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
