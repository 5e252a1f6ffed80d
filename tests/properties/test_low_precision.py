"""Kind 5 of the faults: low precision on CPUs without half-precision recurrent kernels. Under bf16 or
fp16 autocast, or with half-precision weights, the fused path falls back to float32 where oneDNN has
no kernel (one warning), and ``--precision bf16`` is refused in one line on a CPU without bf16."""

from __future__ import annotations

import warnings

import pytest
import torch
from typer.testing import CliRunner

import carousel as C
import carousel.runners.fused as fused
from carousel.cli import app
from carousel.train.tasks import charlm

ONEDNN = "could not create a primitive descriptor for an LSTM forward propagation primitive"


@pytest.fixture
def no_half_kernels(monkeypatch):
    """oneDNN as on an AVX2 CPU without avx512_bf16 or AMX: half-precision recurrent kernels fail."""
    real = dict(fused._KERNELS)

    def failing(mode):
        def kernel(*args):
            if fused._low_precision(args[0]) is not None:
                raise RuntimeError(ONEDNN)
            return real[mode](*args)

        return kernel

    monkeypatch.setattr(fused, "_KERNELS", {mode: failing(mode) for mode in real})
    monkeypatch.setattr(fused, "_NO_KERNEL", set())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_autocast_falls_back_to_float32_with_one_warning(kind, dtype, no_half_kernels):
    torch.manual_seed(0)
    m = getattr(C, kind)(3, 5, num_layers=2, batch_first=True)
    x = torch.randn(2, 7, 3, requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.autocast("cpu", dtype=dtype):
            out, _ = m(x)
            again, _ = m(x)
    said = [w for w in caught if "recurrent kernel" in str(w.message)]
    assert len(said) == 1 and "float32" in str(said[0].message) and str(dtype) in str(said[0].message)
    assert out.dtype == dtype and torch.equal(out, again)
    torch.testing.assert_close(out.float(), m(x)[0], atol=1e-2, rtol=0)  # the float32 kernel, rounded once
    out.float().sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())


def test_half_precision_weights_fall_back_too(no_half_kernels):
    m = C.LSTM(3, 4).to(torch.bfloat16)
    with pytest.warns(RuntimeWarning, match="no torch.bfloat16 recurrent kernel"):
        out, (h, c) = m(torch.randn(5, 2, 3, dtype=torch.bfloat16))
    assert out.dtype == h.dtype == c.dtype == torch.bfloat16


def test_other_kernel_errors_are_not_swallowed(monkeypatch):
    def broken(*args):
        raise RuntimeError("something else went wrong")

    monkeypatch.setattr(fused, "_KERNELS", {mode: broken for mode in fused._KERNELS})
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(RuntimeError, match="something else"):
        C.LSTM(3, 4)(torch.randn(5, 2, 3))


def test_bf16_training_on_a_cpu_without_bf16_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(charlm, "fast_bf16", lambda: False)
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat\n" * 300, encoding="utf-8")
    result = CliRunner().invoke(app, ["train", "charlm", "--corpus", str(text), "--precision", "bf16", "--hidden", "8",
                                      "--embed", "4", "--steps", "2", "--no-compressors", "--no-progress",
                                      "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--precision bf16 needs a CPU with bfloat16 arithmetic" in " ".join(result.output.split())
