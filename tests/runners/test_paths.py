"""kernel_path says which kernels run; checked against what a run actually calls."""

from __future__ import annotations

import pytest
import torch

import carousel as C
from carousel.runners import explicit, graphs, kernel_path, native, run, scan
from carousel.runners import device_scan

x = torch.randn(2, 40, 3)


def _spy(monkeypatch, owner, name):
    calls = []
    original = getattr(owner, name)
    monkeypatch.setattr(owner, name, lambda *a, **k: calls.append(name) or original(*a, **k))
    return calls


def _called(monkeypatch, cell, backend="auto"):
    spies = {
        "native scan": _spy(monkeypatch, scan._NativeScan, "apply"),
        "eager scan": _spy(monkeypatch, scan._ExplicitScan, "apply"),
        "native lstm": _spy(monkeypatch, explicit._NativeLSTMRun, "apply"),
        "python loop": _spy(monkeypatch, explicit._ExplicitRun, "apply"),
        "associative": _spy(monkeypatch, device_scan.ParallelLinearScan, "apply"),
        "graphed": _spy(monkeypatch, graphs, "run_graphed"),
    }
    run(cell, x.clone().requires_grad_(), backend=backend)[0].sum().backward()
    return {k for k, v in spies.items() if v}


needs_native = pytest.mark.skipif(native.native_unavailable() is not None, reason="compiled kernels unavailable here")


@needs_native
@pytest.mark.parametrize(
    "make, expected, spy",
    [
        (lambda: C.MinLSTMCell(3, 4), "scan: carousel C++ kernel", "native scan"),
        (lambda: C.MinGRUCell(3, 4), "scan: carousel C++ kernel", "native scan"),
        (lambda: C.LSTMCell(3, 4, layer_norm=True), "explicit: carousel C++ kernel", "native lstm"),
        (lambda: C.RecurrentDropout(C.LSTMCell(3, 4), p=0.3).train(), "explicit: carousel C++ kernel", "native lstm"),
        (lambda: C.LSTMCell(3, 4, peephole=True), "explicit: Python loop of PyTorch operations", "python loop"),
    ],
)
def test_the_path_named_is_the_path_taken(monkeypatch, make, expected, spy):
    cell = make()
    assert kernel_path(cell, x) == expected
    assert _called(monkeypatch, cell) == {spy}


@pytest.mark.parametrize("make", [lambda: C.MinLSTMCell(3, 4), lambda: C.LSTMCell(3, 4, layer_norm=True)])
def test_without_the_compiled_kernels_the_eager_path_is_named_and_taken(monkeypatch, make):
    cell = make()
    with native.use_native(False):
        path = kernel_path(cell, x)
        called = _called(monkeypatch, cell)
    assert "turned off" in path or path == "explicit: Python loop of PyTorch operations"
    assert called == ({"eager scan"} if path.startswith("scan") else {"python loop"})


def test_forced_device_scan_and_graph_double_are_named_and_taken(monkeypatch):
    monkeypatch.setenv(device_scan.FORCE_ENV, "force")
    cell = C.MinGRUCell(3, 4)
    assert kernel_path(cell, x) == "scan: one associative scan (generic mode, forced)"
    assert _called(monkeypatch, cell) == {"associative"}
    monkeypatch.delenv(device_scan.FORCE_ENV)
    lstm = C.LSTMCell(3, 4, layer_norm=True)
    with graphs.use_cuda_graphs(recorder=graphs.ReplayRecorder()):
        assert kernel_path(lstm, x) == "explicit: captured loop (test double)"
        assert "graphed" in _called(monkeypatch, lstm)


def test_fused_and_reference_are_named():
    assert kernel_path(C.LSTMCell(3, 4), x) == "fused: oneDNN (torch's recurrent kernel)"
    assert kernel_path(C.LSTMCell(3, 4), x, "reference") == "reference: Python loop under autograd"
    with pytest.raises(ValueError, match="cannot run"):
        kernel_path(C.LSTMCell(3, 4, peephole=True), x, "fused")
