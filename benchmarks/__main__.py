"""``python -m benchmarks [--smoke] [--groups fused,loop,scan] [--repeats N] [--device cpu|cuda] [--json PATH] [--busy]``.

Prints one markdown table per group (medians and ratios carousel / torch.nn, measured in one
process, interleaved) and writes every timing to a JSON file (default ``build/bench.json``).
The header gives this machine's fp32 matrix-product peak (median of a few ``torch.mm`` of
2048 x 2048 matrices); the scan group's table adds each step's physical floor, its matrix
products at that peak ("floor ms"), and carousel's training median as a multiple of it ("x floor").
``--smoke`` runs every case at a tiny size once: a check that the benchmark works, not a timing.
``--busy`` runs the selected groups in four fresh processes, OpenMP's default wait policy and
``OMP_WAIT_POLICY=PASSIVE`` each on a quiet machine and next to a competing process
(``benchmarks/busy.py``), and prints the training medians side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from carousel.runners import describe_cpu

from .cases import GROUPS, all_cases, same_function
from .busy import run_busy
from .harness import load_average, machine, matmul_peak_gflops, measure, table
from .trees import tree_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat (CI)")
    parser.add_argument("--groups", default=",".join(GROUPS), help=f"comma-separated, from: {', '.join(GROUPS)}")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per module and mode (default 7, smoke 1)")
    parser.add_argument("--json", default="build/bench.json", help="where to write the results")
    parser.add_argument("--device", default="cpu", help="where to run both modules: cpu or cuda (cuDNN for torch.nn)")
    parser.add_argument("--no-memory", action="store_true", help="skip the profiled peak-memory run")
    parser.add_argument("--busy", action="store_true",
                        help="default and PASSIVE OpenMP wait policy, each on a quiet and on a busy machine (CPU only)")
    parser.add_argument("--busy-threads", type=int, default=os.cpu_count(),
                        help="threads of the competing process of --busy (default: every core)")
    args = parser.parse_args(argv)
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {', '.join(map(repr, unknown))}; expected some of: {', '.join(GROUPS)}")
    repeats = args.repeats if args.repeats is not None else (1 if args.smoke else 7)
    if repeats < 1:
        parser.error(f"--repeats must be at least 1, got {repeats}")
    if args.busy and args.device != "cpu":
        parser.error(f"--busy measures CPU threads competing for cores; it runs on --device cpu, got {args.device}")
    if args.busy_threads < 1:
        parser.error(f"--busy-threads must be at least 1, got {args.busy_threads}")

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device} was given but torch sees no CUDA device")
    info = machine(args.device)
    gpu = f"GPU {info['gpu']}; " if info["gpu"] else ""
    header = (f"machine: {gpu}{info['cpu']} ({describe_cpu()}), {info['cores']} cores, torch {info['torch']} "
              f"({info['torch_threads']} threads), Python {info['python']}; load average {info['load_average']} at the start")
    if args.busy:
        print(header + "\n")
        run_busy(groups, repeats, args.smoke, args.busy_threads, Path(args.json), info)
        return 0
    n = 256 if args.smoke else (8192 if info["gpu"] else 2048)
    peak = matmul_peak_gflops(n, 3 if args.smoke else 5, args.device)
    print(f"{header}; OMP_WAIT_POLICY {info['omp_wait_policy'] or 'unset'}; fp32 matrix-product peak "
          f"{peak['gflops']:.1f} GFLOP/s (median of {len(peak['samples'])} torch.mm, {n} x {n}); "
          f"{repeats} interleaved repeats, medians; ratio = carousel / torch.nn\n")
    report = {"machine": info, "repeats": repeats, "smoke": args.smoke, "matmul_peak": peak, "results": []}
    for group in groups:
        results = []
        for case in all_cases([group], smoke=args.smoke, device=args.device):
            print(f"  measuring {group}: {case.name} {case.size} ...", file=sys.stderr, flush=True)
            try:
                r = measure(case, repeats, memory=not args.no_memory, device=args.device)
            except Exception as e:  # one broken case must not cost the others' numbers (a GPU run is rare)
                print(f"  {group}: {case.name} {case.size} failed: {type(e).__name__}: {e}", flush=True)
                report["failed"] = report.get("failed", []) + [{"group": group, "name": case.name, "size": case.size,
                                                                 "error": f"{type(e).__name__}: {e}"}]
                continue
            if same_function(case) and not (r.max_abs_diff <= 1e-4):
                raise SystemExit(f"{case.name} {case.size}: carousel and torch.nn disagree (max |diff| {r.max_abs_diff})")
            if not same_function(case):
                r.max_abs_diff = float("nan")
            r.set_floor(peak["gflops"])
            results.append(r)
            report["results"].append(r.to_json())
        print(f"### {group}\n\n{(tree_table if group == 'trees' else table)(results, judge=not args.smoke)}\n", flush=True)
    report["load_average_at_end"] = load_average()
    print(f"load average at the end: {report['load_average_at_end']}")
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    print(f"wrote {path}")
    if report.get("failed"):
        print(f"{len(report['failed'])} case(s) failed: " + "; ".join(f"{f['name']} {f['size']}" for f in report["failed"]))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
