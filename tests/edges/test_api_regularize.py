"""Bad input to every regulariser: variational and recurrent dropout, zoneout, weight drop, embedding
dropout, ``hold_masks`` and MC dropout (see ``api_matrix``)."""

from __future__ import annotations

import torch
from torch import nn

import carousel as C
from carousel.regularize import summarise
from edges.api_matrix import Case, parametrize, raises, run_case

I, H, B, T = 3, 4, 2, 5


def _x(*shape, dtype=torch.float32, device="cpu"):
    return torch.randn(*(shape or (B, T, I)), generator=torch.Generator().manual_seed(1)).to(device=device, dtype=dtype)


def _rate_cases(prefix: str, make, name: str, *, allow_one: bool) -> list[Case]:
    """The rate ``name`` of ``make(rate)``: NaN, infinity, out of range, wrong types; 0 and (allow_one) 1 accepted."""
    top = "[0, 1]" if allow_one else "[0, 1)"
    cases = [
        Case(f"{prefix}-nan", lambda: make(float("nan")), raises(ValueError, name, "finite", top, "nan")),
        Case(f"{prefix}-inf", lambda: make(float("inf")), raises(ValueError, name, "inf")),
        Case(f"{prefix}-negative", lambda: make(-0.1), raises(ValueError, f"{name} in {top}", "-0.1")),
        Case(f"{prefix}-above-one", lambda: make(1.5), raises(ValueError, f"{name} in {top}", "1.5")),
        Case(f"{prefix}-string", lambda: make("0.1"), raises(TypeError, name, "real number", "'0.1'")),
        Case(f"{prefix}-bool", lambda: make(True), raises(TypeError, name, "bool")),
        Case(f"{prefix}-none", lambda: make(None), raises(TypeError, name, "NoneType")),
        Case(f"{prefix}-tensor", lambda: make(torch.tensor(0.1)), raises(TypeError, name, "Tensor")),
    ]
    if not allow_one:
        cases.append(Case(f"{prefix}-one", lambda: make(1.0), raises(ValueError, f"{name} in [0, 1)", "1.0")))
    return cases


def _zoneout_one_freezes():
    cell = C.Zoneout(C.GRUCell(I, H), p_h=1.0).train()
    h0 = torch.randn(B, H, generator=torch.Generator().manual_seed(2))
    return C.run(cell, _x(), h0)


def _frozen(result):
    out, final = result
    h0 = torch.randn(B, H, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(final.h, h0, rtol=0, atol=0)
    torch.testing.assert_close(out, h0.unsqueeze(1).expand(B, T, H), rtol=0, atol=0)


def _equal(got, want):
    assert got == want, f"{got!r} != {want!r}"


class _Doubler(nn.Module):
    """A model whose every output is 2x: with dropout 0 its MC mean is exact and its spread zero."""

    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.0)

    def forward(self, x):
        return self.drop(2 * x)


def _mc_exact(prediction):
    x = _x()
    torch.testing.assert_close(prediction.mean, 2 * x)
    torch.testing.assert_close(prediction.std, torch.full_like(x, 0.5))  # noise_std alone
    z = 1.6448536269514722  # the 90% two-sided normal quantile
    torch.testing.assert_close(prediction.upper - prediction.lower, torch.full_like(x, 2 * z * 0.5))


CASES = [
    *_rate_cases("variational-p", lambda p: C.VariationalDropout(p), "p", allow_one=True),
    *_rate_cases("recurrent-p", lambda p: C.RecurrentDropout(C.GRUCell(I, H), p), "p", allow_one=False),
    *_rate_cases("zoneout-p-h", lambda p: C.Zoneout(C.LSTMCell(I, H), p), "p_h", allow_one=True),
    *[c for c in _rate_cases("zoneout-p-c", lambda p: C.Zoneout(C.LSTMCell(I, H), 0.1, p), "p_c", allow_one=True)
      if c.id != "zoneout-p-c-none"],  # None: p_c follows p_h
    Case("zoneout-p-c-none-follows-p-h", lambda: C.Zoneout(C.LSTMCell(I, H), 0.3, None).p_c, lambda p_c: _equal(p_c, 0.3)),
    *_rate_cases("weight-drop-p", lambda p: C.weight_drop(C.LSTM(I, H), p), "p", allow_one=False),
    *_rate_cases("weight-drop-module-p", lambda p: C.WeightDrop(p), "p", allow_one=False),
    *_rate_cases("embedding-p", lambda p: C.EmbeddingDropout(nn.Embedding(10, 3), p), "p", allow_one=False),
    Case("variational-one-drops-all", lambda: C.VariationalDropout(1.0).train()(_x()),
         lambda y: torch.testing.assert_close(y, torch.zeros(B, T, I), rtol=0, atol=0)),
    Case("variational-batch-first-int", lambda: C.VariationalDropout(0.1, batch_first=0), raises(TypeError, "batch_first", "int")),
    Case("variational-int-input", lambda: C.VariationalDropout(0.5).train()(torch.ones(B, T, I, dtype=torch.int64)),
         raises(ValueError, "floating-point", "torch.int64")),
    Case("variational-list-input", lambda: C.VariationalDropout(0.5)([1.0, 2.0]), raises(TypeError, "tensor", "list")),
    Case("variational-rank1", lambda: C.VariationalDropout(0.5).train()(torch.ones(4)), raises(ValueError, "batch and a feature", "(4,)")),
    Case("recurrent-of-torch-cell", lambda: C.RecurrentDropout(nn.LSTMCell(I, H), 0.1),
         raises(TypeError, "cell to wrap", "got LSTMCell", "carousel.LSTMCell")),
    Case("recurrent-of-layer", lambda: C.RecurrentDropout(C.Recurrent(C.LSTMCell(I, H)), 0.1), raises(TypeError, "got Recurrent", "layer")),
    Case("recurrent-input-float64", lambda: C.Recurrent(C.RecurrentDropout(C.GRUCell(I, H), 0.2))(_x(dtype=torch.float64)),
         raises(ValueError, "torch.float32", "torch.float64", "RecurrentDropout(GRUCell)")),
    Case("recurrent-input-meta", lambda: C.Recurrent(C.RecurrentDropout(C.GRUCell(I, H), 0.2))(_x(device="meta")),
         raises(ValueError, "cpu", "meta")),
    Case("recurrent-lengths-float", lambda: C.Recurrent(C.RecurrentDropout(C.GRUCell(I, H), 0.2))(_x(), None, [1.5, 2]),
         raises(TypeError, "integer lengths", "1.5")),
    Case("zoneout-of-torch-cell", lambda: C.Zoneout(nn.GRUCell(I, H), 0.1), raises(TypeError, "got GRUCell", "carousel.GRUCell")),
    Case("zoneout-p-c-without-c", lambda: C.Zoneout(C.GRUCell(I, H), 0.1, 0.2), raises(ValueError, "p_c=0.2", "no cell state c")),
    Case("zoneout-state-float64", lambda: C.Recurrent(C.Zoneout(C.LSTMCell(I, H), 0.1))(
        _x(), C.LSTMState(torch.zeros(B, H, dtype=torch.float64), torch.zeros(B, H))),
         raises(ValueError, "state field 'h'", "torch.float64", "torch.float32")),
    Case("zoneout-one-freezes", _zoneout_one_freezes, _frozen),
    Case("weight-drop-not-module", lambda: C.weight_drop("lstm", 0.1), raises(TypeError, "torch.nn.Module", "str")),
    Case("weight-drop-no-matrix", lambda: C.weight_drop(C.MinGRUCell(I, H), 0.1), raises(ValueError, "weight_hh", "MinGRUCell")),
    Case("weight-drop-names-empty", lambda: C.weight_drop(C.LSTM(I, H), 0.1, names=()), raises(ValueError, "names", "()")),
    Case("weight-drop-twice", lambda: C.weight_drop(C.weight_drop(C.LSTM(I, H), 0.1), 0.1), raises(ValueError, "already has weight drop")),
    Case("embedding-float-ids", lambda: C.EmbeddingDropout(nn.Embedding(10, 3), 0.1)(torch.zeros(2, 3)),
         raises(ValueError, "integer", "torch.float32")),
    Case("embedding-meta-ids", lambda: C.EmbeddingDropout(nn.Embedding(10, 3), 0.1)(torch.zeros(2, 3, dtype=torch.long, device="meta")),
         raises(ValueError, "cpu", "meta")),
    Case("embedding-of-linear", lambda: C.EmbeddingDropout(nn.Linear(3, 3), 0.1), raises(TypeError, "torch.nn.Embedding", "Linear")),
    Case("hold-masks-not-module", lambda: C.hold_masks("model").__enter__(), raises(TypeError, "torch.nn.Module", "str")),
    # MC dropout
    Case("mc-samples-one", lambda: C.mc_dropout(_Doubler(), _x(), samples=1), raises(ValueError, "samples", ">= 2", "1")),
    Case("mc-samples-float", lambda: C.mc_dropout(_Doubler(), _x(), samples=10.0), raises(TypeError, "samples", "10.0")),
    Case("mc-samples-bool", lambda: C.mc_dropout(_Doubler(), _x(), samples=True), raises(TypeError, "samples", "True")),
    Case("mc-level-one", lambda: C.mc_dropout(_Doubler(), _x(), level=1.0), raises(ValueError, "level in (0, 1)", "1.0")),
    Case("mc-level-zero", lambda: C.mc_dropout(_Doubler(), _x(), level=0), raises(ValueError, "level in (0, 1)", "0")),
    Case("mc-level-nan", lambda: C.mc_dropout(_Doubler(), _x(), level=float("nan")), raises(ValueError, "level", "nan")),
    Case("mc-level-string", lambda: C.mc_dropout(_Doubler(), _x(), level="90%"), raises(TypeError, "level", "'90%'")),
    Case("mc-noise-nan", lambda: C.mc_dropout(_Doubler(), _x(), noise_std=float("nan")), raises(ValueError, "noise_std", "nan")),
    Case("mc-noise-inf", lambda: C.mc_dropout(_Doubler(), _x(), noise_std=float("inf")), raises(ValueError, "noise_std", "inf")),
    Case("mc-noise-negative", lambda: C.mc_dropout(_Doubler(), _x(), noise_std=-1), raises(ValueError, "noise_std >= 0", "-1")),
    Case("mc-noise-string", lambda: C.mc_dropout(_Doubler(), _x(), noise_std="0.1"), raises(TypeError, "noise_std", "'0.1'")),
    Case("mc-seed-float", lambda: C.mc_dropout(_Doubler(), _x(), seed=1.5), raises(TypeError, "seed", "integer", "1.5")),
    Case("mc-batched-string", lambda: C.mc_dropout(_Doubler(), _x(), batched="yes"), raises(TypeError, "batched", "'yes'")),
    Case("mc-output-not-callable", lambda: C.mc_dropout(_Doubler(), _x(), output=0), raises(TypeError, "output", "int")),
    Case("mc-no-tensor", lambda: C.mc_dropout(_Doubler(), [1.0]), raises(ValueError, "tensor input")),
    Case("mc-not-module", lambda: C.mc_dropout(lambda x: x, _x()), raises(TypeError, "torch.nn.Module", "function")),
    Case("mc-model-float64-input", lambda: C.mc_dropout(C.Recurrent(C.RecurrentDropout(C.GRUCell(I, H), 0.2)), _x(dtype=torch.float64)),
         raises(ValueError, "torch.float32", "torch.float64")),
    Case("mc-weight-drop-batched", lambda: C.mc_dropout(C.weight_drop(C.LSTM(I, H, batch_first=True), 0.2), _x(), batched=True),
         raises(ValueError, "batched=True", "WeightDrop")),
    Case("mc-exact-with-noise", lambda: C.mc_dropout(_Doubler(), _x(), samples=4, noise_std=0.5), _mc_exact),
    Case("summarise-level", lambda: summarise(torch.zeros(3, 2), level=1.5), raises(ValueError, "level in (0, 1)", "1.5")),
    Case("summarise-noise", lambda: summarise(torch.zeros(3, 2), noise_std=float("inf")), raises(ValueError, "noise_std", "inf")),
]


@parametrize(CASES)
def test_api_edge(case):
    run_case(case)
