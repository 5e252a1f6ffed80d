"""The same contracts on a CUDA device: every backend against the reference loop, the drop-ins
against cuDNN, the regularisers and a training step. These run only where torch sees a GPU (the
machines CI uses have none, so there they skip, saying so); the CPU suite covers the same
contracts everywhere.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import carousel as C
from carousel.runners import resolve_backend

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; torch sees none here")

from cell_zoo import CELLS, make_cell, random_state  # noqa: E402

CUDA = torch.device("cuda")


def _leaves(state):
    return [state] if isinstance(state, torch.Tensor) else list(state)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_every_backend_on_cuda_equals_the_reference_loop_in_float64(name):
    cell = make_cell(name, 3, 5).to(CUDA)
    B, T = 4, 9
    x = torch.randn(B, T, 3, dtype=torch.float64, device=CUDA, requires_grad=True)
    s0 = random_state(cell, B)
    s0 = cell.state_type(*(t.to(CUDA) for t in s0))
    lengths = torch.tensor([9, 3, 7, 1])
    chosen = resolve_backend(cell, x, "auto").name
    results = {}
    for backend in ("reference", chosen):
        cell.zero_grad()
        x.grad = None
        out, final = C.run(cell, x, s0, lengths, backend=backend)
        (out.square().sum() + sum(t.sum() for t in _leaves(final))).backward()
        grads = [x.grad.clone()] + [p.grad.clone() for p in cell.parameters()]
        results[backend] = (out.detach(), [t.detach() for t in _leaves(final)], grads)
    (o1, f1, g1), (o2, f2, g2) = results["reference"], results[chosen]
    assert o1.device.type == "cuda" and o2.device.type == "cuda"
    torch.testing.assert_close(o2, o1, rtol=1e-9, atol=1e-10)
    for a, b in zip(f2, f1):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
    for a, b in zip(g2, g1):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-9)


def _drop_in_and_torch(kind):
    """A two-layer bidirectional carousel drop-in and the torch.nn module, with the same weights, on CUDA."""
    torch.manual_seed(0)
    theirs = getattr(nn, kind)(6, 8, num_layers=2, bidirectional=True, batch_first=True).to(CUDA)
    ours = getattr(C, kind)(6, 8, num_layers=2, bidirectional=True, batch_first=True).to(CUDA)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_drop_ins_match_cudnn_with_packing_two_layers_bidirectional(kind):
    ours, theirs = _drop_in_and_torch(kind)
    x = torch.randn(5, 11, 6, device=CUDA)
    lengths = torch.tensor([11, 4, 9, 1, 6])
    outs = []
    for m in (theirs, ours):
        m.zero_grad()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, state = m(packed)
        out, _ = pad_packed_sequence(out, batch_first=True)
        (out.square().sum() + sum(t.sum() for t in _leaves(state))).backward()
        outs.append((out.detach(), [t.detach() for t in _leaves(state)], m.state_dict(keep_vars=True)))  # torch names
    (o1, s1, p1), (o2, s2, p2) = outs
    torch.testing.assert_close(o2, o1, rtol=1e-4, atol=1e-5)
    for a, b in zip(s2, s1):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert p1.keys() == p2.keys()
    for name, p in p1.items():
        torch.testing.assert_close(p2[name].grad, p.grad, rtol=1e-3, atol=1e-5, msg=f"gradient of {name}")


def test_weight_drop_on_cuda_draws_new_masks_and_trains_the_raw_weights():
    torch.manual_seed(0)
    lstm = C.weight_drop(C.LSTM(4, 16, batch_first=True), p=0.5).to(CUDA).train()
    x = torch.randn(3, 7, 4, device=CUDA)
    a, b = lstm(x)[0], lstm(x)[0]
    assert not torch.allclose(a, b)  # a fresh DropConnect mask per forward
    (a.sum() + b.sum()).backward()
    grads = [p.grad for n, p in lstm.named_parameters() if "weight_hh" in n]
    assert grads and all(g is not None and g.device.type == "cuda" and g.abs().sum() > 0 for g in grads)
    lstm.eval()
    torch.testing.assert_close(lstm(x)[0], lstm(x)[0])  # no mask at evaluation


def test_recurrent_dropout_and_zoneout_keep_the_device():
    torch.manual_seed(0)
    for wrapped in (C.RecurrentDropout(C.LSTMCell(4, 8), p=0.3), C.Zoneout(C.LSTMCell(4, 8), p_h=0.2, p_c=0.2)):
        layer = C.Recurrent(wrapped).to(CUDA).train()
        x = torch.randn(2, 6, 4, device=CUDA, requires_grad=True)
        out, _ = layer(x)
        out.sum().backward()
        assert out.device.type == "cuda" and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_a_charlm_run_trains_and_checkpoints_on_cuda(tmp_path):
    from carousel.train import build_config, evaluate_run, read_metrics, train_run

    text = tmp_path / "tiny.txt"
    text.write_text("the cat sat on the mat. " * 400, encoding="utf-8")
    values = dict(corpus=str(text), hidden=32, embed=8, bptt=20, batch_size=8, steps=60, lr=1e-2, eval_every=60,
                  checkpoint_every=30, progress=False, device="cuda", compressors=False, weight_drop=0.2)
    summary = train_run(build_config("charlm", values), tmp_path / "run")
    train = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    assert train[-1]["bpc"] < 0.5 * train[0]["bpc"]  # a repeated sentence is learned quickly
    assert summary["best"] < 1.0
    again = evaluate_run(tmp_path / "run", split="valid")["splits"]["valid"]["bpc"]
    assert again == pytest.approx(summary["best"], rel=1e-3)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_drop_ins_moved_to_cuda_keep_their_weights_in_one_buffer(kind):
    layer, theirs = _drop_in_and_torch(kind)  # loading torch's weights keeps the buffer (copies in place)

    def buffers():
        return {p.untyped_storage().data_ptr() for p in layer.parameters()}

    assert len(buffers()) == 1  # cuDNN's layout: no copy of the weights at each call
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    x = torch.randn(3, 5, 6, device=CUDA)
    layer(x)[0].sum().backward()
    optimizer.step()
    assert len(buffers()) == 1  # a step updates the parameters where they are
    theirs.load_state_dict(layer.state_dict())
    torch.testing.assert_close(layer(x)[0], theirs(x)[0], rtol=1e-4, atol=1e-5)
    wd = C.weight_drop(getattr(C, kind)(6, 8, batch_first=True), p=0.5).to(CUDA)  # computed weights: left alone
    assert wd(x)[0].shape == (3, 5, 8)


@pytest.mark.parametrize("name", ["lstm_layer_norm", "lstm_peephole", "min_lstm"])
def test_compiled_pointwise_code_runs_on_cuda_and_equals_it_uncompiled(name, monkeypatch):
    """On CUDA the explicit LSTM step's pointwise part and the scan cells' coefficients run compiled
    (carousel._compiled): they must compile here (no fallback) and agree with the code as written."""
    from carousel import _compiled
    from carousel.cells import lstm_explicit
    from carousel.runners import scan

    torch.manual_seed(0)
    cell = make_cell(name, 16, 32).to(CUDA, torch.float64)  # float64: exact up to the order of sums
    x = torch.randn(8, 64, 16, device=CUDA, dtype=torch.float64, requires_grad=True)
    results = {}
    for setting in ("0", ""):  # as written, then the default on CUDA: compiled
        monkeypatch.setenv(_compiled.ENV, setting)
        cell.zero_grad()
        x.grad = None
        out, _ = C.run(cell, x, backend="auto")
        out.square().sum().backward()
        results[setting] = [out.detach(), x.grad.clone(), *(p.grad.clone() for p in cell.parameters())]
    functions = (lstm_explicit.pointwise_forward, lstm_explicit.pointwise_backward, scan._coefficients)
    compiled = [c for (fn, _), c in _compiled._KEYED.items() if fn in functions]
    assert compiled and not any(c.failed for c in compiled)
    for a, b in zip(results[""], results["0"]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9 * float(b.abs().max()))
