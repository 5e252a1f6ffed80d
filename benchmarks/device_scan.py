"""``python -m benchmarks.device_scan [--size T,B,I,H] [--repeats N] [--force-cpu]``: the parallel device scan
against the chunked scan and cuDNN's GRU, one training step (forward + backward) each, on a GPU.

Rows: the two scans alone on coefficients ``a, b`` (B, T, H) (and, where the package is installed,
the Triton scan of ``accelerated-scan`` for comparison); a minGRU layer (projection,
coefficients, scan) on the ``scan`` backend (the device scan on a GPU) and written out by hand; ``torch.nn.GRU``
(cuDNN) of the same size. Prints a markdown table of medians (ms) and ratios to the GRU. Without
CUDA it says so and stops; ``--force-cpu`` runs it on the CPU anyway (generic mode, eager: a check
that the script works, not a timing worth reading).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from typing import Callable

import torch
from torch import nn

import carousel
from carousel.runners.device_scan import associative_linear_scan, device_scan_available
from carousel.runners.scan import linear_scan

SIZE = (4096, 16, 64, 128)  # T, B, I, H: the scan group's size in benchmarks/cases.py


def _median_ms(step: Callable[[], None], device: torch.device, repeats: int, warmup: int = 3) -> float:
    """Median wall time of ``step`` in ms, after ``warmup`` calls (the first compiles the device scan)."""
    times = []
    for i in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def steps(size=SIZE, device: str | torch.device = "cuda", *, force: bool = False) -> dict[str, Callable[[], None]]:
    """One training step (forward, ``sum().backward()``) per contender, keyed by its row name."""
    T, B, I, H = size
    device = torch.device(device)
    torch.manual_seed(0)
    a = torch.rand(B, T, H, device=device, requires_grad=True)  # (B, T, H), in (0, 1) like minGRU's 1 - z
    b = torch.randn(B, T, H, device=device, requires_grad=True)
    h0 = torch.zeros(B, H, device=device, requires_grad=True)
    x = torch.randn(B, T, I, device=device)
    cell = carousel.MinGRUCell(I, H).to(device)
    chunked_layer = carousel.Recurrent(cell, backend="scan")
    gru = nn.GRU(I, H, batch_first=True).to(device)

    def device_layer() -> torch.Tensor:
        a_, b_ = cell.coefficients(cell.project(x))  # (B, T, H) each
        return associative_linear_scan(a_, b_, torch.zeros(B, H, device=device), force=force)

    contenders = {
        "chunked scan alone (`linear_scan`)": lambda: linear_scan(a, b, h0).sum().backward(),
        "device scan alone (`associative_linear_scan`)": lambda: associative_linear_scan(a, b, h0, force=force).sum().backward(),
        "minGRU layer, `scan` backend (`carousel.Recurrent`)": lambda: chunked_layer(x)[0].sum().backward(),
        "minGRU layer by hand: coefficients, device scan": lambda: device_layer().sum().backward(),
        "torch.nn.GRU (cuDNN on a GPU)": lambda: gru(x)[0].sum().backward(),
    }
    if device.type == "cuda" and importlib.util.find_spec("accelerated_scan") is not None:
        # a comparison only, not a dependency: its Triton scan wants (B, H, T), so the transposes count
        from accelerated_scan.scalar import scan as accelerated

        def accelerated_step() -> None:
            h = accelerated(a.transpose(1, 2).contiguous(), b.transpose(1, 2).contiguous()).transpose(1, 2)
            h.sum().backward()

        contenders["accelerated-scan alone (Triton, `scalar.scan`)"] = accelerated_step
    return contenders


def table(size=SIZE, device: str = "cuda", repeats: int = 10, *, force: bool = False) -> str:
    """The markdown table of medians (ms) per training step and their ratio to ``torch.nn.GRU``."""
    dev = torch.device(device)
    medians = {name: _median_ms(step, dev, repeats) for name, step in steps(size, dev, force=force).items()}
    gru = medians["torch.nn.GRU (cuDNN on a GPU)"]
    T, B, I, H = size
    lines = [
        f"(T, B, I, H) = ({T}, {B}, {I}, {H}), {dev.type}, float32, forward + backward, median of {repeats}",
        "",
        "| contender | ms per step | x GRU |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {ms:.2f} | {ms / gru:.2f} |" for name, ms in medians.items()]
    if dev.type == "cuda":
        lines += ["", *configuration_table(size, repeats)]
    return "\n".join(lines)


def configuration_table(size=SIZE, repeats: int = 10, device: str = "cuda") -> list[str]:
    """The Triton scan's forward and backward alone (no autograd) at each launch configuration of
    ``triton_scan.CONFIGS``, and the one its tuner picked for this shape (CUDA only), as markdown
    lines. Off CUDA it needs Triton's interpreter (``TRITON_INTERPRET=1``): a check, not a timing."""
    from carousel.runners import triton_scan  # imports triton

    T, B, _, H = size
    dev = torch.device(device)
    a, b, g = torch.rand(B, T, H, device=dev), torch.randn(B, T, H, device=dev), torch.randn(B, T, H, device=dev)
    h0 = torch.zeros(B, H, device=dev)
    h = triton_scan.forward(a, b, h0, False)  # tunes: the picked configuration lands in _BEST
    triton_scan.backward(a, h, h0, g, False)
    picked = {which: triton_scan.picked(which, a) for which in ("forward", "backward")}
    lines = ["| Triton scan configuration (BLOCK_T, BLOCK_H, warps, CHUNK) | forward ms | backward ms |", "|---|---:|---:|"]
    for config in triton_scan.CONFIGS:
        fwd = _median_ms(lambda c=config: triton_scan.forward(a, b, h0, False, c), dev, repeats, warmup=1)
        bwd = _median_ms(lambda c=config: triton_scan.backward(a, h, h0, g, False, c), dev, repeats, warmup=1)
        marks = [d for d in ("forward", "backward") if picked.get(d) == config]
        lines.append(f"| {config}{' (picked: ' + ', '.join(marks) + ')' if marks else ''} | {fwd:.3f} | {bwd:.3f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.device_scan", description=__doc__.splitlines()[0])
    parser.add_argument("--size", default=",".join(map(str, SIZE)), help="T,B,I,H (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per contender (default %(default)s)")
    parser.add_argument("--force-cpu", action="store_true", help="run on the CPU (generic mode): checks the script only")
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.split(","))
    if len(size) != 4:
        parser.error(f"--size needs four numbers T,B,I,H; {args.size!r} was given")
    if torch.cuda.is_available():
        reason = device_scan_available(torch.zeros(1, device="cuda"))
        if reason is not None:
            print(f"the device scan cannot run on this GPU: {reason}")
            return 1
        print(table(size, "cuda", args.repeats))
        return 0
    if not args.force_cpu:
        print("benchmarks.device_scan needs a CUDA device (torch sees none); --force-cpu runs it on the CPU as a check")
        return 0
    print(table(size, "cpu", args.repeats, force=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
