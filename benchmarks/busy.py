"""``python -m benchmarks --busy``: the benchmark under OpenMP's wait policies, on a quiet and a busy machine.

OpenMP's threads wait for work between parallel regions. With the default policy they spin for a
while first (libgomp, torch's OpenMP on Linux), which is quick on an idle machine but, when another
process wants the same cores, burns the time slices that the threads still working need. With
``OMP_WAIT_POLICY=PASSIVE`` they sleep at once. OpenMP reads the variable when torch loads, so each
condition runs in its own fresh process:

* ``default`` / ``PASSIVE``: ``OMP_WAIT_POLICY`` unset / set to ``PASSIVE`` in the child's environment;
* ``quiet`` / ``busy``: nothing else / a competing process (``python -m benchmarks.busy``: ``torch.mm``
  of two 1024 x 1024 matrices in a loop on ``--busy-threads`` threads, default every core, default
  wait policy) started, and running, before the child starts, stopped after it ends.

Each child is ``python -m benchmarks --groups ... --repeats ... --no-memory --json ...`` (the
ordinary measurement, ``harness.measure``); the parent reads their JSON files and prints, per
group, the training medians of torch.nn and carousel and their ratio in the four conditions side by
side, and what ``PASSIVE`` changes for carousel (its median under PASSIVE / under the default).
The competing process is always stopped: on success, on an error, on Ctrl-C and on SIGTERM; and
it stops by itself when its parent is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
CONDITIONS = [("default", "quiet"), ("PASSIVE", "quiet"), ("default", "busy"), ("PASSIVE", "busy")]
COMPETITOR_SIZE = 1024
READY_TIMEOUT_S = 300


def policy_env(policy: str) -> dict[str, str]:
    """This process's environment with ``OMP_WAIT_POLICY`` unset (``"default"``) or set to ``policy``."""
    if policy not in ("default", "PASSIVE", "ACTIVE"):
        raise ValueError(f"policy must be 'default', 'PASSIVE' or 'ACTIVE', got {policy!r}")
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    return env


def _stop(proc: subprocess.Popen) -> None:
    """Terminate ``proc`` (then kill it if it does not go within 10 s) and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def competing_load(threads: int) -> Iterator[subprocess.Popen]:
    """Run the competing process (``threads`` threads of ``torch.mm``, default wait policy) for the
    duration of the ``with`` block; it has done its first product when the block starts."""
    if threads < 1:
        raise ValueError(f"the competing process needs at least 1 thread, got {threads}")
    cmd = [sys.executable, "-m", "benchmarks.busy", "--threads", str(threads)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=policy_env("default"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT_S)
        line = proc.stdout.readline() if ready else ""
        if line.strip() != "ready":
            _stop(proc)
            raise RuntimeError(f"the competing process ({' '.join(cmd)}) did not start within {READY_TIMEOUT_S} s: "
                               f"exit code {proc.returncode}, stderr {proc.stderr.read()[-1000:]!r}")
        yield proc
        if proc.poll() is not None:
            raise RuntimeError(f"the competing process ended during the measurement (exit code {proc.returncode}); "
                               "the 'busy' numbers are not of a busy machine")
    finally:
        _stop(proc)
        for stream in (proc.stdout, proc.stderr):
            stream.close()


def run_condition(policy: str, load: str, child_args: list[str], json_path: Path, threads: int) -> dict:
    """One child measurement ``python -m benchmarks *child_args --json json_path`` under ``policy``
    (``"default"`` | ``"PASSIVE"``) on a ``load`` (``"quiet"`` | ``"busy"``) machine; returns its report."""
    if load not in ("quiet", "busy"):
        raise ValueError(f"load must be 'quiet' or 'busy', got {load!r}")
    cmd = [sys.executable, "-m", "benchmarks", *child_args, "--json", str(json_path)]
    with competing_load(threads) if load == "busy" else contextlib.nullcontext():
        child = subprocess.Popen(cmd, cwd=ROOT, env=policy_env(policy), stdout=subprocess.PIPE, text=True)
        try:
            out, _ = child.communicate()
        finally:
            _stop(child)
    if child.returncode != 0:
        raise RuntimeError(f"{policy}/{load}: {' '.join(cmd)} failed with exit code {child.returncode}:\n{out[-2000:]}")
    report = json.loads(json_path.read_text())
    seen = report["machine"].get("omp_wait_policy")
    if seen != (None if policy == "default" else policy):
        raise RuntimeError(f"{policy}/{load}: the child ran with OMP_WAIT_POLICY={seen!r}, expected {policy!r}")
    return report


def _key(r: dict) -> tuple:
    return (r["group"], r["name"], r["T"], r["B"], r["I"], r["H"])


def combine(reports: dict[tuple[str, str], dict]) -> list[dict]:
    """One row per case: training medians (ms) of carousel and torch.nn, their ratio, per condition
    ``"policy/load"``, and ``passive_over_default[load]`` = carousel's PASSIVE / default median.

    ``reports`` maps each of ``CONDITIONS`` to its child's report; raises ``ValueError`` when the
    children did not measure the same cases.
    """
    missing = [c for c in CONDITIONS if c not in reports]
    if missing:
        raise ValueError(f"combine expects a report for each of {CONDITIONS}, missing {missing}")
    first = [_key(r) for r in reports[CONDITIONS[0]]["results"]]
    rows = []
    by_cond = {}
    for cond in CONDITIONS:
        results = {_key(r): r for r in reports[cond]["results"]}
        if sorted(results) != sorted(first):
            raise ValueError(f"the {'/'.join(cond)} run measured other cases than the {'/'.join(CONDITIONS[0])} run")
        by_cond[cond] = results
    for key in first:
        group, name, T, B, I, H = key
        row = {"group": group, "name": name, "T": T, "B": B, "I": I, "H": H,
               "train_median_ms": {}, "train_ratio": {}, "passive_over_default": {}}
        for policy, load in CONDITIONS:
            r = by_cond[(policy, load)][key]
            row["train_median_ms"][f"{policy}/{load}"] = dict(r["train_median_ms"])
            row["train_ratio"][f"{policy}/{load}"] = r["train_ratio"]
        for load in ("quiet", "busy"):
            med = row["train_median_ms"]
            row["passive_over_default"][load] = med[f"PASSIVE/{load}"]["carousel"] / med[f"default/{load}"]["carousel"]
        rows.append(row)
    return rows


def busy_table(rows: list[dict]) -> str:
    """A markdown table of ``combine``'s rows: per condition torch.nn ms, carousel ms and ratio, then
    carousel's PASSIVE / default on the quiet and on the busy machine."""
    head = "| case | T, B, I, H "
    for policy, load in CONDITIONS:
        head += f"| {load} {policy} torch.nn | {load} {policy} carousel | {load} {policy} ratio "
    head += "| carousel PASSIVE / default quiet | carousel PASSIVE / default busy |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        line = f"| {row['name']} | {row['T']}, {row['B']}, {row['I']}, {row['H']} "
        for policy, load in CONDITIONS:
            med = row["train_median_ms"][f"{policy}/{load}"]
            line += f"| {med['torch']:.1f} | {med['carousel']:.1f} | {row['train_ratio'][f'{policy}/{load}']:.2f} "
        line += f"| {row['passive_over_default']['quiet']:.2f} | {row['passive_over_default']['busy']:.2f} |"
        lines.append(line)
    return "\n".join(lines)


def _raise_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def run_busy(groups: list[str], repeats: int, smoke: bool, threads: int, json_path: Path, machine: dict) -> dict:
    """Measure ``groups`` in the four ``CONDITIONS`` (one child process each), print one table per
    group and write the combined report to ``json_path``; returns it."""
    child_args = ["--groups", ",".join(groups), "--repeats", str(repeats), "--no-memory"] + (["--smoke"] if smoke else [])
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)  # so that the finally blocks stop the children
    reports = {}
    try:
        with tempfile.TemporaryDirectory(prefix="carousel-busy-") as tmp:
            for policy, load in CONDITIONS:
                print(f"  {load} machine, wait policy {policy}: python -m benchmarks {' '.join(child_args)}",
                      file=sys.stderr, flush=True)
                reports[(policy, load)] = run_condition(policy, load, child_args, Path(tmp) / f"{policy}-{load}.json", threads)
    finally:
        signal.signal(signal.SIGTERM, previous)
    rows = combine(reports)
    print(f"training step, ms (medians of {repeats}); ratio = carousel / torch.nn; default: OMP_WAIT_POLICY unset, "
          f"PASSIVE: OMP_WAIT_POLICY=PASSIVE; busy: a competing process runs torch.mm on {threads} thread(s); "
          "one fresh process per condition\n")
    for group in groups:
        print(f"### {group}, busy\n\n{busy_table([r for r in rows if r['group'] == group])}\n", flush=True)
    report = {
        "busy": True, "machine": machine, "groups": groups, "repeats": repeats, "smoke": smoke,
        "competitor": {"threads": threads, "matrix": COMPETITOR_SIZE, "omp_wait_policy": None},
        "conditions": [{"policy": p, "load": l, "report": reports[(p, l)]} for p, l in CONDITIONS],
        "rows": rows,
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=1))
    print(f"wrote {json_path}")
    return report


def compete(threads: int, n: int = COMPETITOR_SIZE) -> None:
    """The competing process: ``torch.mm`` of two (n, n) matrices on ``threads`` threads, in a loop,
    until it is stopped or its parent is gone. Prints ``ready`` after the first product."""
    import torch

    parent = os.getppid()
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)
    print("ready", flush=True)
    while os.getppid() == parent:
        torch.mm(a, b, out=out)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.busy", description="the competing load of --busy")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of torch.mm (default: every core)")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    try:
        compete(args.threads)
    except KeyboardInterrupt:
        pass
