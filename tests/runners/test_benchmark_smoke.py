"""The benchmark runs end to end at tiny sizes and produces well-formed tables and JSON (no timing asserts);
its physical floor counts the scan layers' matrix products right; ``--busy`` runs its four conditions and
always stops its competing process."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import carousel

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"group", "name", "T", "B", "I", "H", "train_ms", "infer_ms", "train_median_ms", "infer_median_ms",
        "train_ratio", "infer_ratio", "peak_mb", "max_abs_diff", "target", "meets_target",
        "matmul_gflop", "floor_ms", "x_floor", "path"}
PATHS = {"fused": ("fused: oneDNN",), "loop": ("explicit: ", "reference: "), "scan": ("scan: ",)}
# the smoke tests measure on one thread with a one-thread competitor: they check the machinery, not the speed
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture
def benchmarks_module(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    import benchmarks.busy
    import benchmarks.cases
    import benchmarks.harness

    return benchmarks


def test_benchmark_smoke_run_writes_tables_and_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["smoke"] is True and report["repeats"] == 1 and report["machine"]["cores"] >= 1
    peak = report["matmul_peak"]
    assert peak["gflops"] > 0 and peak["gflops"] == sorted(peak["samples"])[len(peak["samples"]) // 2]
    assert f"fp32 matrix-product peak {peak['gflops']:.1f} GFLOP/s" in proc.stdout
    results = report["results"]
    assert {r["group"] for r in results} == {"fused", "loop", "scan", "trees"}
    for r in results:
        assert set(r) == KEYS, r["name"]
        if r["group"] in PATHS:  # which kernels ran, in words (carousel.runners.kernel_path)
            assert r["path"].startswith(PATHS[r["group"]]), (r["name"], r["path"])
        for who in ("carousel", "torch"):
            assert len(r["train_ms"][who]) == 1 and r["train_ms"][who][0] > 0
            assert r["infer_median_ms"][who] > 0 and r["peak_mb"][who] >= 0
        assert math.isclose(r["train_ratio"], r["train_median_ms"]["carousel"] / r["train_median_ms"]["torch"])
        if r["group"] == "fused":  # same weights, same function: the benchmark checked the outputs agree
            assert r["max_abs_diff"] is not None and r["max_abs_diff"] <= 1e-4
        if r["group"] == "scan":  # the physical floor: the step's matrix products at the measured peak
            assert r["matmul_gflop"] > 0 and r["floor_ms"] > 0 and r["x_floor"] > 0
            assert math.isclose(r["floor_ms"], r["matmul_gflop"] / peak["gflops"] * 1e3)
            assert math.isclose(r["x_floor"], r["train_median_ms"]["carousel"] / r["floor_ms"])
        else:
            assert r["matmul_gflop"] is None and r["floor_ms"] is None and r["x_floor"] is None
    # one markdown table per group, one row per case, ten columns each (twelve with the scan's floor),
    # and the kernel path after the case's name
    text = proc.stdout
    for group in ("fused", "loop", "scan", "trees"):
        block = text.split(f"### {group}\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
        rows = [r for r in results if r["group"] == group]
        assert block[0].startswith("| case |") and set(block[1]) <= set("|-")
        assert len(block) == 2 + len(rows)
        floors = group == "scan"
        head = [c.strip() for c in block[0].strip("|").split("|")]
        assert head[1] == "kernel path" and (head[5:7] == ["floor ms", "x floor"]) == floors
        for line, r in zip(block[2:], rows):
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert len(cells) == (13 if floors else 11) and cells[0] == r["name"]
            assert cells[1] == (r["path"] or "-")  # the trees' level runner: "-"
            cells = cells[:1] + cells[2:]  # without the path column
            assert float(cells[6 if floors else 4]) == round(r["train_ratio"], 2)
            if floors:
                assert float(cells[4]) > 0 and math.isclose(float(cells[4]), r["floor_ms"], rel_tol=1e-2)
                assert float(cells[5]) == round(r["x_floor"], 1)


def test_projection_flops_by_hand(benchmarks_module):
    harness, cases = benchmarks_module.harness, benchmarks_module.cases
    # x (6, 5) @ W^T (5, 14): 6 * 14 outputs, each 5 multiplications and 5 additions = 840;
    # the weight gradient dy^T (14, 6) @ x (6, 5): 14 * 5 outputs of 6 + 6 = 840; the input gradient 840
    assert harness.projection_flops(6, 5, 14) == 840 + 840
    assert harness.projection_flops(6, 5, 14, input_grad=True) == 840 * 3
    # minGRU at (T, B, I, H) = (3, 2, 5, 7): B*T = 6 rows, G = 2H = 14; minLSTM: G = 3H = 21 -> 1260 each
    assert cases.scan_step_flops("minGRU", (3, 2, 5, 7)) == 1680
    assert cases.scan_step_flops("minLSTM", (3, 2, 5, 7)) == 2 * 1260
    # the floor: 1.2e9 operations at 120 GFLOP/s take 10 ms
    assert math.isclose(harness.floor_ms(1_200_000_000, 120.0), 10.0)
    with pytest.raises(ValueError, match="positive integer sizes, got {'rows': 0}"):
        harness.projection_flops(0, 5, 14)
    with pytest.raises(ValueError, match="cell in \\['minGRU', 'minLSTM'\\], got 'GRU'"):
        cases.scan_step_flops("GRU", (3, 2, 5, 7))
    with pytest.raises(ValueError, match="positive peak in GFLOP/s, got 0"):
        harness.floor_ms(10, 0)


class _MatmulFlops(TorchDispatchMode):
    """Adds up 2·m·n·k for every matrix product that reaches torch's dispatcher while active: mm,
    addmm, bmm, baddbmm, mv, addmv in every overload (out=, in-place), e.g. ``addmm_`` accumulating a
    weight gradient, which torch's FlopCounterMode does not count."""

    PRODUCTS = {"mm": 0, "bmm": 0, "mv": 0, "addmm": 1, "baddbmm": 1, "addmv": 1}  # name -> index of the first factor

    def __init__(self):
        super().__init__()
        self.flops, self.calls = 0, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name.split("::")[-1].rstrip("_")
        if name in self.PRODUCTS:
            a, b = args[self.PRODUCTS[name]], args[self.PRODUCTS[name] + 1]
            n = b.shape[-1] if b.dim() >= 2 else 1
            self.flops += 2 * a.numel() * n  # a (..., m, k) @ b (..., k, n): batch·m·k·n multiply-adds
            self.calls.append(name)
        return func(*args, **(kwargs or {}))


def test_matmul_flop_counter_counts_a_written_out_product():
    a, b, acc = torch.randn(3, 4), torch.randn(4, 5), torch.zeros(3, 5)
    with _MatmulFlops() as counter:
        torch.mm(a, b)
        acc.addmm_(a, b)
        torch.bmm(a[None].expand(2, 3, 4), b[None].expand(2, 4, 5))
    assert counter.flops == 2 * 3 * 4 * 5 * (1 + 1 + 2) and counter.calls == ["mm", "addmm", "bmm"]


@pytest.mark.parametrize("cell, make", [("minGRU", carousel.MinGRUCell), ("minLSTM", carousel.MinLSTMCell)])
@pytest.mark.parametrize("input_grad", [False, True])
def test_scan_step_flops_match_the_products_a_training_step_dispatches(benchmarks_module, cell, make, input_grad):
    """Every matrix product one training step of the scan layer dispatches (forward, the scan's
    backward, the weight and input gradients) adds up to the written-out count. On the eager path,
    where every product goes through torch's dispatcher (the compiled kernel makes the same products
    inside C++, out of a dispatch mode's sight)."""
    T, B, I, H = 37, 3, 5, 7
    torch.manual_seed(0)
    layer = carousel.Recurrent(make(I, H), backend="scan")
    x = torch.randn(B, T, I, requires_grad=input_grad)
    with carousel.runners.use_native(False), _MatmulFlops() as counter:
        layer(x)[0].sum().backward()
    assert counter.flops == benchmarks_module.cases.scan_step_flops(cell, (T, B, I, H), input_grad=input_grad)


def test_benchmark_busy_smoke_runs_four_conditions_and_stops_the_load(tmp_path):
    out = tmp_path / "busy.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--busy", "--busy-threads", "1", "--groups", "scan,fused",
         "--repeats", "2", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["busy"] is True and report["groups"] == ["scan", "fused"] and report["repeats"] == 2
    assert report["competitor"]["threads"] == 1
    conds = [(c["policy"], c["load"]) for c in report["conditions"]]
    assert conds == [("default", "quiet"), ("PASSIVE", "quiet"), ("default", "busy"), ("PASSIVE", "busy")]
    for c in report["conditions"]:  # each child ran the ordinary benchmark under its own policy
        child = c["report"]
        assert child["machine"]["omp_wait_policy"] == (None if c["policy"] == "default" else "PASSIVE")
        assert child["smoke"] is True and child["repeats"] == 2
        assert [r["group"] for r in child["results"]] == ["scan"] * 2 + ["fused"] * 4
    rows = report["rows"]
    assert len(rows) == 6
    for row in rows:
        for (policy, load), c in zip(conds, report["conditions"]):
            child_row = next(r for r in c["report"]["results"] if (r["group"], r["name"]) == (row["group"], row["name"]))
            assert row["train_median_ms"][f"{policy}/{load}"] == child_row["train_median_ms"]
            assert row["train_ratio"][f"{policy}/{load}"] == child_row["train_ratio"]
        med = row["train_median_ms"]
        for load in ("quiet", "busy"):
            assert math.isclose(row["passive_over_default"][load],
                                med[f"PASSIVE/{load}"]["carousel"] / med[f"default/{load}"]["carousel"])
    # one table per group: 2 + 4 x 3 + 2 columns; the figures are the JSON's
    for group in ("scan", "fused"):
        block = proc.stdout.split(f"### {group}, busy\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
        group_rows = [r for r in rows if r["group"] == group]
        assert len(block) == 2 + len(group_rows)
        for line, row in zip(block[2:], group_rows):
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert len(cells) == 16 and cells[0] == row["name"]
            assert float(cells[2]) == round(row["train_median_ms"]["default/quiet"]["torch"], 1)
            assert float(cells[10]) == round(row["train_ratio"]["default/busy"], 2)
            assert float(cells[15]) == round(row["passive_over_default"]["busy"], 2)


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie left for a reaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _wait_gone(pid: int, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _running(pid):
            return True
        time.sleep(0.1)
    return False


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")


@needs_proc
def test_competing_load_is_stopped_on_error(benchmarks_module):
    with pytest.raises(KeyError, match="in the middle"):
        with benchmarks_module.busy.competing_load(1) as load:
            pid = load.pid
            assert _running(pid)
            raise KeyError("in the middle")
    assert load.returncode is not None and not _running(pid)


DRIVER = """
import signal, sys, time
sys.path.insert(0, {root!r})
from benchmarks.busy import _raise_on_sigterm, competing_load
signal.signal(signal.SIGTERM, _raise_on_sigterm)
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a background job ignores SIGINT)
with competing_load(1) as load:
    print(load.pid, flush=True)
    time.sleep(120)
"""


@needs_proc
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_competing_load_ends_with_its_parent(sig):
    """SIGTERM / Ctrl-C: the parent's finally stops the load; SIGKILL: the load sees its parent gone."""
    driver = subprocess.Popen([sys.executable, "-c", DRIVER.format(root=str(ROOT))], cwd=ROOT, env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pid = int(driver.stdout.readline())
        assert _running(pid)
        driver.send_signal(sig)
        driver.wait(timeout=30)
        assert _wait_gone(pid), f"the competing process {pid} outlived its parent (signal {sig.name})"
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        driver.stdout.close()
        driver.stderr.close()


def test_benchmark_rejects_unknown_group(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(["--groups", "warp"])
    assert exit_.value.code != 0 and "unknown group(s) 'warp'" in capsys.readouterr().err
