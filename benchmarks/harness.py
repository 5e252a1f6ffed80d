"""Timing and memory measurement shared by every benchmark: interleaved medians, peak bytes, tables.

Each case runs a carousel module and the torch.nn module it competes with on the same input, in
one process, alternating which goes first, so that the load of a shared machine falls on both.
Reported: the median time of a training step (forward, ``outputs.sum()``, backward) and of
inference (forward under ``torch.no_grad()``), their ratio carousel / torch.nn, and the peak of
the bytes allocated during one training step (torch's profiler, allocations minus frees).
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor, nn

from carousel.runners import cpu_features

Forward = Callable[[Tensor], Tensor]  # x (B, T, I) -> outputs (B, T, F)


@dataclass
class Case:
    """One comparison: ``build()`` returns ``(carousel_module, torch_module)`` built on the same weights."""

    group: str  # "fused" | "loop" | "scan"
    name: str
    size: tuple[int, int, int, int]  # (T, B, I, H)
    build: Callable[[], tuple[nn.Module, nn.Module]]
    target: str = ""  # in words, e.g. "<= 1.05"
    meets: Callable[[float], bool] | None = None  # on the training-step ratio carousel / torch


@dataclass
class Result:
    case: Case
    train_ms: dict[str, list[float]] = field(default_factory=dict)  # "carousel" / "torch" -> times
    infer_ms: dict[str, list[float]] = field(default_factory=dict)
    peak_mb: dict[str, float] = field(default_factory=dict)
    max_abs_diff: float = float("nan")  # outputs of the two modules on the benchmark input

    def median(self, which: str, who: str) -> float:
        return statistics.median(getattr(self, f"{which}_ms")[who])

    def ratio(self, which: str) -> float:
        """carousel / torch.nn, medians; below 1 is faster."""
        return self.median(which, "carousel") / self.median(which, "torch")

    def to_json(self) -> dict:
        c = self.case
        ratio = self.ratio("train")
        return {
            "group": c.group, "name": c.name, "T": c.size[0], "B": c.size[1], "I": c.size[2], "H": c.size[3],
            "train_ms": self.train_ms, "infer_ms": self.infer_ms,
            "train_median_ms": {k: self.median("train", k) for k in self.train_ms},
            "infer_median_ms": {k: self.median("infer", k) for k in self.infer_ms},
            "train_ratio": ratio, "infer_ratio": self.ratio("infer"), "peak_mb": self.peak_mb,
            "max_abs_diff": None if math.isnan(self.max_abs_diff) else self.max_abs_diff, "target": c.target,
            "meets_target": None if c.meets is None else bool(c.meets(ratio)),
        }


def _outputs(module: nn.Module, x: Tensor) -> Tensor:
    out = module(x)
    return out[0] if isinstance(out, tuple) else out


def train_step(module: nn.Module, x: Tensor) -> None:
    module.zero_grad(set_to_none=True)
    _outputs(module, x).sum().backward()


def infer_step(module: nn.Module, x: Tensor) -> None:
    with torch.no_grad():
        _outputs(module, x)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], None], device: torch.device = torch.device("cpu")) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return (time.perf_counter() - start) * 1e3


def peak_megabytes(fn: Callable[[], None], device: torch.device = torch.device("cpu")) -> float:
    """Peak of the bytes allocated and not yet freed while ``fn`` runs, in MiB (above what was
    allocated before it: CPU through torch's profiler, CUDA through the caching allocator's peak)."""
    if device.type == "cuda":
        _sync(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        _sync(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        live += e.nbytes()
        peak = max(peak, live)
    return peak / 2**20


def measure(case: Case, repeats: int, *, seed: int = 0, memory: bool = True, device: str = "cpu") -> Result:
    """Time ``case`` ``repeats`` times per module and mode, interleaved, after one warm-up each."""
    T, B, I, _ = case.size
    dev = torch.device(device)
    torch.manual_seed(seed)
    ours, theirs = (m.to(dev) for m in case.build())
    x = torch.randn(B, T, I).to(dev)
    modules = {"carousel": ours, "torch": theirs}
    result = Result(case, {k: [] for k in modules}, {k: [] for k in modules})
    with torch.no_grad():
        result.max_abs_diff = float((_outputs(ours, x) - _outputs(theirs, x)).abs().max())
    for m in modules.values():
        train_step(m, x)
        infer_step(m, x)
    for r in range(repeats):
        order = list(modules) if r % 2 == 0 else list(modules)[::-1]
        for who in order:
            result.train_ms[who].append(_timed(lambda: train_step(modules[who], x), dev))
        for who in order:
            result.infer_ms[who].append(_timed(lambda: infer_step(modules[who], x), dev))
    if memory:
        for who, m in modules.items():
            result.peak_mb[who] = peak_megabytes(lambda: train_step(m, x), dev)
    return result


def machine(device: str = "cpu") -> dict:
    """What the numbers were measured on."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": model, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(), "system": platform.system(),
        "load_average": load_average(),
        "gpu": torch.cuda.get_device_name(torch.device(device)) if torch.device(device).type == "cuda" else None,
        "cpu_features": cpu_features(),
    }


def load_average() -> float | None:
    """The machine's 1-minute load average (other work competing for the cores), where the OS tells."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def table(results: list[Result], *, judge: bool = True) -> str:
    """A markdown table: medians, ratios (carousel / torch.nn), peak memory and the target.

    ``judge=False`` leaves the "met" column empty (tiny smoke sizes say nothing about targets).
    """
    head = (
        "| case | T, B, I, H | train ms torch.nn | train ms carousel | train ratio | infer ratio "
        "| peak MB torch.nn | peak MB carousel | target | met |"
    )
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        c = r.case
        meets = "" if (c.meets is None or not judge) else ("yes" if c.meets(r.ratio("train")) else "**no**")
        mem = [f"{r.peak_mb[k]:.3g}" if k in r.peak_mb else "-" for k in ("torch", "carousel")]
        rows.append(
            f"| {c.name} | {', '.join(map(str, c.size))} | {r.median('train', 'torch'):.1f} "
            f"| {r.median('train', 'carousel'):.1f} | {r.ratio('train'):.2f} | {r.ratio('infer'):.2f} "
            f"| {mem[0]} | {mem[1]} | {c.target} | {meets} |"
        )
    return "\n".join(rows)
