"""The device scan's Triton kernels (carousel.runners.triton_scan) on the CPU, under Triton's interpreter.

The kernels run on CUDA in practice (tests/gpu checks them there); here they run in a subprocess
with ``TRITON_INTERPRET=1`` and ``CAROUSEL_DEVICE_SCAN=triton``, against a plain loop of
``h_t = a_t h_{t-1} + b_t``: forward, every gradient and second derivatives, both directions, lengths
that are and are not multiples of the kernel's chunk, unit counts that do not fill a block, extra
trailing dimensions, float64 and float32. ``make test`` installs Triton for the interpreter into
``.venv/triton-interpreter`` (the CPU build of torch comes without it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SITE = Path(os.environ.get("CAROUSEL_TRITON_SITE", Path(sys.prefix) / "triton-interpreter"))
HAVE_TRITON = importlib.util.find_spec("triton") is not None or (SITE / "triton").is_dir()
pytestmark = pytest.mark.skipif(
    not HAVE_TRITON, reason=f"Triton is not installed (make test puts it in {SITE} for its interpreter)"
)

# the CHUNK of each of carousel.runners.triton_scan.CONFIGS (which needs Triton to import; 0: no chunks)
CHUNKS = (0, 0, 0, 0, 0, 0, 0, 256, 256, 512, 1024)
N_CONFIGS = len(CHUNKS)

SCRIPT = r'''
import json, sys
import torch
from carousel.runners.device_scan import associative_linear_scan
from test_device_scan import loop_scan as loop  # tests/runners, on the path

def case(shape, reverse, dtype, kind, seed, second):
    g = torch.Generator().manual_seed(seed)
    B, T = shape[:2]
    if kind == "contracting":
        a = torch.rand(shape, generator=g, dtype=torch.float64)
    else:  # signs mixed, some |a| > 1
        a = 2.2 * torch.rand(shape, generator=g, dtype=torch.float64) - 1.1
    b = torch.randn(shape, generator=g, dtype=torch.float64)
    h0 = torch.randn((B, *shape[2:]), generator=g, dtype=torch.float64)
    w = torch.randn(shape, generator=g, dtype=torch.float64)
    results = {}
    for name, fn, dt in (("kernel", lambda *x: associative_linear_scan(*x, reverse=reverse), dtype),
                         ("loop", lambda *x: loop(*x, reverse), torch.float64)):
        leaves = [t.to(dt).requires_grad_() for t in (a, b, h0)]
        h = fn(*leaves)
        grads = torch.autograd.grad((w.to(dt) * h).sum(), leaves, create_graph=second)
        values = [h, *grads]
        if second:  # a second derivative: d/d(a, b, h0) of sum(grad_a ** 2)
            values += list(torch.autograd.grad((grads[0] ** 2).sum(), leaves, allow_unused=True))
        results[name] = [v.detach().double() if v is not None else torch.zeros(()) for v in values]
    errors = []
    for mine, ref in zip(results["kernel"], results["loop"]):
        scale = ref.abs().max().clamp_min(1.0)
        errors.append(float(((mine - ref) / scale).abs().max()))
    return errors

from carousel.runners import triton_scan

cases = json.loads(sys.argv[1])
errors = []
for i, c in enumerate(cases):
    if c.get("config"):  # a launch configuration of triton_scan.CONFIGS (the default is what runs off CUDA)
        triton_scan.DEFAULT = triton_scan.CONFIGS[c["config"]]
    errors.append(case(tuple(c["shape"]), c["reverse"], getattr(torch, c["dtype"]), c["kind"], i, c["second"]))
    triton_scan.DEFAULT = triton_scan.CONFIGS[0]
print(json.dumps(errors))
'''

CASES = (
    [{"shape": [3, T, 5], "reverse": r, "dtype": "float64", "kind": k, "second": False}
     for T in (1, 2, 7, 64, 65, 300) for r in (False, True) for k in ("contracting", "mixed")]
    + [{"shape": [2, 130, 40], "reverse": r, "dtype": "float64", "kind": "mixed", "second": False} for r in (False, True)]
    + [{"shape": [2, 70, 2, 3], "reverse": False, "dtype": "float64", "kind": "mixed", "second": False}]
    + [{"shape": [2, 33, 4], "reverse": r, "dtype": "float64", "kind": "mixed", "second": True} for r in (False, True)]
    + [{"shape": [4, 200, 36], "reverse": r, "dtype": "float32", "kind": "contracting", "second": False} for r in (False, True)]
    # every launch configuration the CUDA path may time and pick
    + [{"shape": [2, 300, 20], "reverse": r, "dtype": "float64", "kind": "mixed", "second": False, "config": k}
       for k in range(1, N_CONFIGS) if not CHUNKS[k] for r in (False, True)]
    # chunked configurations: two and a half chunks (the last one partial), both directions, second derivatives
    + [{"shape": [2, CHUNKS[k] * 5 // 2 + 3, 20], "reverse": r, "dtype": "float64", "kind": "mixed", "second": False,
        "config": k} for k in range(1, N_CONFIGS) if CHUNKS[k] for r in (False, True)]
    + [{"shape": [2, 600, 3], "reverse": r, "dtype": "float64", "kind": "contracting", "second": True, "config": 7}
       for r in (False, True)]
)


def _interpreted(*args: str) -> subprocess.CompletedProcess:
    """``python -c *args`` with carousel from src/, this folder's tests, Triton from SITE and its interpreter on."""
    env = dict(os.environ, TRITON_INTERPRET="1", CAROUSEL_DEVICE_SCAN="triton", OMP_NUM_THREADS="1")
    here = Path(__file__).resolve().parent
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(here.parents[1] / "src"), str(here), str(SITE),
                                                      env.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def errors():
    done = _interpreted(SCRIPT, json.dumps(CASES))
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_configurations_match_the_kernels_module():
    done = _interpreted("from carousel.runners import triton_scan; print([c[3] for c in triton_scan.CONFIGS])")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(list(CHUNKS))


@pytest.mark.parametrize("index", range(len(CASES)), ids=lambda i: "{shape}-reverse={reverse}-{dtype}-{kind}{s}{c}".format(
    **CASES[i], s="-second" if CASES[i]["second"] else "", c=f"-config{CASES[i]['config']}" if "config" in CASES[i] else ""))
def test_the_triton_kernels_equal_a_plain_loop(errors, index):
    tolerance = 1e-10 if CASES[index]["dtype"] == "float64" else 2e-5
    names = ["h", "grad a", "grad b", "grad h0", "second a", "second b", "second h0"]
    bad = {n: e for n, e in zip(names, errors[index]) if not e <= tolerance}
    assert not bad, f"{CASES[index]}: relative errors above {tolerance}: {bad}"


def test_the_benchmark_times_every_configuration():
    """benchmarks.device_scan's table of launch configurations, here under the interpreter (a check of the
    script, not a timing): one row per configuration, with two times."""
    root = Path(__file__).resolve().parents[2]
    done = _interpreted(f"import sys; sys.path.insert(0, {str(root)!r}); from benchmarks.device_scan import configuration_table; "
                        "print('\\n'.join(configuration_table((300, 2, 3, 4), 1, 'cpu')))")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| (")]
    assert [int(row.split(")")[0].split(",")[-1]) for row in rows] == list(CHUNKS)  # each configuration's CHUNK
    assert all(float(cell) > 0 for row in rows for cell in row.strip("| ").split(" | ")[1:])
