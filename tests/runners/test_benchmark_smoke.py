"""The benchmark runs end to end at tiny sizes and produces well-formed tables and JSON (no timing asserts)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"group", "name", "T", "B", "I", "H", "train_ms", "infer_ms", "train_median_ms", "infer_median_ms",
        "train_ratio", "infer_ratio", "peak_mb", "max_abs_diff", "target", "meets_target"}


def test_benchmark_smoke_run_writes_tables_and_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["smoke"] is True and report["repeats"] == 1 and report["machine"]["cores"] >= 1
    results = report["results"]
    assert {r["group"] for r in results} == {"fused", "loop", "scan", "trees"}
    for r in results:
        assert set(r) == KEYS, r["name"]
        for who in ("carousel", "torch"):
            assert len(r["train_ms"][who]) == 1 and r["train_ms"][who][0] > 0
            assert r["infer_median_ms"][who] > 0 and r["peak_mb"][who] >= 0
        assert math.isclose(r["train_ratio"], r["train_median_ms"]["carousel"] / r["train_median_ms"]["torch"])
        if r["group"] == "fused":  # same weights, same function: the benchmark checked the outputs agree
            assert r["max_abs_diff"] is not None and r["max_abs_diff"] <= 1e-4
    # one markdown table per group, one row per case, ten columns each
    text = proc.stdout
    for group in ("fused", "loop", "scan", "trees"):
        block = text.split(f"### {group}\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
        rows = [r for r in results if r["group"] == group]
        assert block[0].startswith("| case |") and set(block[1]) <= set("|-")
        assert len(block) == 2 + len(rows)
        for line, r in zip(block[2:], rows):
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert len(cells) == 10 and cells[0] == r["name"]
            assert float(cells[4]) == round(r["train_ratio"], 2)


def test_benchmark_rejects_unknown_group(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(["--groups", "warp"])
    assert exit_.value.code != 0 and "unknown group(s) 'warp'" in capsys.readouterr().err
