"""Timing and memory measurement shared by every benchmark: interleaved medians, peak bytes, tables.

Each case runs a carousel module and the torch.nn module it competes with on the same input, in
one process, alternating which goes first, so that the load of a shared machine falls on both.
Reported: the median time of a training step (forward, ``outputs.sum()``, backward) and of
inference (forward under ``torch.no_grad()``), their ratio carousel / torch.nn, and the peak of
the bytes allocated during one training step (torch's profiler, allocations minus frees).

The physical floor of a case whose matrix products are known (``Case.matmul_flops``, the scan
group) is the time those products alone take at this machine's measured fp32 matrix-product peak
(``matmul_peak_gflops``): ``floor ms = flops / peak``; ``x floor`` = carousel's training median /
floor says how far a step is from what the arithmetic of its products needs.
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

import carousel
from carousel.runners import cpu_features, kernel_path

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
    matmul_flops: int | None = None  # floating-point operations of the matrix products of carousel's training step


@dataclass
class Result:
    case: Case
    train_ms: dict[str, list[float]] = field(default_factory=dict)  # "carousel" / "torch" -> times
    infer_ms: dict[str, list[float]] = field(default_factory=dict)
    peak_mb: dict[str, float] = field(default_factory=dict)
    max_abs_diff: float = float("nan")  # outputs of the two modules on the benchmark input
    floor_ms: float | None = None  # case.matmul_flops at the machine's measured peak (set_floor)
    path: str = ""  # the kernels carousel's module ran (kernel_path)

    def set_floor(self, peak_gflops: float) -> None:
        """Set ``floor_ms`` from the machine's matrix-product peak in GFLOP/s (no-op without a flop count)."""
        if self.case.matmul_flops is not None:
            self.floor_ms = floor_ms(self.case.matmul_flops, peak_gflops)

    def times_floor(self) -> float | None:
        """carousel's training median / ``floor_ms``: 1 would be a step that is nothing but its products at peak."""
        return None if self.floor_ms is None else self.median("train", "carousel") / self.floor_ms

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
            "train_ratio": ratio, "infer_ratio": self.ratio("infer"), "peak_mb": self.peak_mb, "path": self.path,
            "max_abs_diff": None if math.isnan(self.max_abs_diff) else self.max_abs_diff, "target": c.target,
            "meets_target": None if c.meets is None else bool(c.meets(ratio)),
            "matmul_gflop": None if c.matmul_flops is None else c.matmul_flops / 1e9,
            "floor_ms": self.floor_ms, "x_floor": self.times_floor(),
        }


def projection_flops(rows: int, in_features: int, out_features: int, *, input_grad: bool = False) -> int:
    """Floating-point operations of the matrix products in one training step of a linear map
    ``y = x W^T + b`` with ``x`` (rows, in_features) and ``W`` (out_features, in_features).

    A product of an (m, k) and a (k, n) matrix takes m·n·k multiplications and as many additions,
    2·m·n·k operations. A training step computes the forward ``x W^T`` and the weight gradient
    ``dW = dy^T x`` (both 2·rows·in·out), and the input gradient ``dx = dy W`` (the same again) only
    when ``x`` requires a gradient; the bias gradient is a sum, not a product, and is not counted.
    For a minGRU / minLSTM layer (Feng et al. 2024, "Were RNNs All We Needed?") ``rows = B·T`` and
    ``out_features = 2H / 3H``: its recurrence has no weight, so these are all its products.

    Raises ``ValueError`` for a size below 1.
    """
    sizes = {"rows": rows, "in_features": in_features, "out_features": out_features}
    bad = {k: v for k, v in sizes.items() if not (isinstance(v, int) and v >= 1)}
    if bad:
        raise ValueError(f"projection_flops expects positive integer sizes, got {bad}")
    one = 2 * rows * in_features * out_features
    return one * (3 if input_grad else 2)


def floor_ms(flops: int, peak_gflops: float) -> float:
    """Milliseconds that ``flops`` floating-point operations take at ``peak_gflops`` GFLOP/s."""
    if not peak_gflops > 0:
        raise ValueError(f"floor_ms expects a positive peak in GFLOP/s, got {peak_gflops}")
    return flops / (peak_gflops * 1e9) * 1e3


def matmul_peak_gflops(n: int = 2048, repeats: int = 5, device: str = "cpu") -> dict:
    """This machine's fp32 matrix-product peak: the median GFLOP/s of ``repeats`` timed
    ``torch.mm`` of two (n, n) matrices (2·n³ operations each) after one warm-up, on ``device``
    with torch's current thread count. Returns ``{"gflops": median, "n": n, "samples": [GFLOP/s, ...]}``.
    """
    if n < 1 or repeats < 1:
        raise ValueError(f"matmul_peak_gflops expects n >= 1 and repeats >= 1, got n={n}, repeats={repeats}")
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=gen).to(dev) for _ in range(2))
    out = torch.empty(n, n, device=dev)
    torch.mm(a, b, out=out)  # warm-up: thread pool, kernel selection
    samples = []
    for _ in range(repeats):
        ms = _timed(lambda: torch.mm(a, b, out=out), dev)
        samples.append(2 * n**3 / (ms * 1e-3) / 1e9)
    return {"gflops": statistics.median(samples), "n": n, "samples": samples}


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


def describe_path(module: nn.Module, x: Tensor) -> str:
    """The kernels carousel's ``module`` runs on ``x``: ``kernel_path`` of its first layer that runs a
    cell on a backend; a drop-in stack (``carousel.LSTM/GRU/RNN``) runs torch's fused kernel."""
    for m in module.modules():
        if isinstance(m, (carousel.LSTM, carousel.GRU, carousel.RNN)):
            return f"fused: {'cuDNN' if x.is_cuda else 'oneDNN'} (torch's recurrent kernel)"
        cell, backend = getattr(m, "cell", None), getattr(m, "backend", None)
        if isinstance(cell, carousel.Cell) and isinstance(backend, str):
            return kernel_path(cell, x, backend)
    return ""  # not a recurrent layer over time (the tree benchmarks say their own way in their table)


def measure(case: Case, repeats: int, *, seed: int = 0, memory: bool = True, device: str = "cpu") -> Result:
    """Time ``case`` ``repeats`` times per module and mode, interleaved, after one warm-up each."""
    T, B, I, _ = case.size
    dev = torch.device(device)
    torch.manual_seed(seed)
    ours, theirs = (m.to(dev) for m in case.build())
    x = torch.randn(B, T, I).to(dev)
    modules = {"carousel": ours, "torch": theirs}
    result = Result(case, {k: [] for k in modules}, {k: [] for k in modules}, path=describe_path(ours, x))
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
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),  # None: OpenMP's default
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
    When some result has a physical floor (``Result.set_floor``), two columns follow carousel's
    training median: "floor ms" and "x floor" ("-" for a case without one).
    """
    floors = any(r.floor_ms is not None for r in results)
    head = (
        "| case | kernel path | T, B, I, H | train ms torch.nn | train ms carousel "
        + ("| floor ms | x floor " if floors else "")
        + "| train ratio | infer ratio | peak MB torch.nn | peak MB carousel | target | met |"
    )
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        c = r.case
        meets = "" if (c.meets is None or not judge) else ("yes" if c.meets(r.ratio("train")) else "**no**")
        mem = [f"{r.peak_mb[k]:.3g}" if k in r.peak_mb else "-" for k in ("torch", "carousel")]
        floor = ""
        if floors:
            floor = "| - | - " if r.floor_ms is None else f"| {r.floor_ms:.3g} | {r.times_floor():.1f} "
        rows.append(
            f"| {c.name} | {r.path or '-'} | {', '.join(map(str, c.size))} | {r.median('train', 'torch'):.1f} "
            f"| {r.median('train', 'carousel'):.1f} {floor}| {r.ratio('train'):.2f} | {r.ratio('infer'):.2f} "
            f"| {mem[0]} | {mem[1]} | {c.target} | {meets} |"
        )
    return "\n".join(rows)
