"""``python -m benchmarks [--smoke] [--groups fused,loop,scan] [--repeats N] [--device cpu|cuda] [--json PATH]``.

Prints one markdown table per group (medians and ratios carousel / torch.nn, measured in one
process, interleaved) and writes every timing to a JSON file (default ``build/bench.json``).
``--smoke`` runs every case at a tiny size once: a check that the benchmark works, not a timing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from carousel.runners import describe_cpu

from .cases import GROUPS, all_cases, same_function
from .harness import load_average, machine, measure, table
from .trees import tree_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat (CI)")
    parser.add_argument("--groups", default=",".join(GROUPS), help=f"comma-separated, from: {', '.join(GROUPS)}")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per module and mode (default 7, smoke 1)")
    parser.add_argument("--json", default="build/bench.json", help="where to write the results")
    parser.add_argument("--device", default="cpu", help="where to run both modules: cpu or cuda (cuDNN for torch.nn)")
    parser.add_argument("--no-memory", action="store_true", help="skip the profiled peak-memory run")
    args = parser.parse_args(argv)
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {', '.join(map(repr, unknown))}; expected some of: {', '.join(GROUPS)}")
    repeats = args.repeats if args.repeats is not None else (1 if args.smoke else 7)
    if repeats < 1:
        parser.error(f"--repeats must be at least 1, got {repeats}")

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device} was given but torch sees no CUDA device")
    info = machine(args.device)
    gpu = f"GPU {info['gpu']}; " if info["gpu"] else ""
    print(f"machine: {gpu}{info['cpu']} ({describe_cpu()}), {info['cores']} cores, torch {info['torch']} ({info['torch_threads']} threads), "
          f"Python {info['python']}; load average {info['load_average']} at the start; "
          f"{repeats} interleaved repeats, medians; ratio = carousel / torch.nn\n")
    report = {"machine": info, "repeats": repeats, "smoke": args.smoke, "results": []}
    for group in groups:
        results = []
        for case in all_cases([group], smoke=args.smoke):
            print(f"  measuring {group}: {case.name} {case.size} ...", file=sys.stderr, flush=True)
            r = measure(case, repeats, memory=not args.no_memory, device=args.device)
            if same_function(case) and not (r.max_abs_diff <= 1e-4):
                raise SystemExit(f"{case.name} {case.size}: carousel and torch.nn disagree (max |diff| {r.max_abs_diff})")
            if not same_function(case):
                r.max_abs_diff = float("nan")
            results.append(r)
            report["results"].append(r.to_json())
        print(f"### {group}\n\n{(tree_table if group == 'trees' else table)(results, judge=not args.smoke)}\n", flush=True)
    report["load_average_at_end"] = load_average()
    print(f"load average at the end: {report['load_average_at_end']}")
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
