"""Snapshots: what diagnose records, the JSON round trip, the history file, the plots."""

import json

import pytest
import torch
import torch.nn.functional as F

import carousel as C
from carousel.diagnostics import Snapshot, append_snapshot, diagnose, gradient_flow, load_history


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = C.Recurrent(C.LSTMCell(2, 4))
        self.drop = torch.nn.Dropout(0.5)
        self.head = torch.nn.Linear(4, 1)

    def forward(self, x):
        return self.head(self.drop(self.rnn(x)[0][:, -1]))


def make():
    torch.manual_seed(0)
    model = Model()
    x, y = torch.randn(6, 9, 2), torch.randn(6, 1)
    return model, lambda: F.mse_loss(model(x), y)


def test_diagnose_contents_match_the_parts():
    model, loss = make()
    model.train()
    snap = diagnose(model, loss, step=7, max_lag=5, jacobian_batch=2)
    assert model.training and all(p.grad is None for p in model.parameters())  # left as found
    layer = snap.layers["rnn"]
    model.eval()
    assert snap.step == 7 and snap.loss == pytest.approx(loss().item())  # evaluation mode: no dropout noise
    flow = gradient_flow(model, loss)["rnn"]
    assert layer.grad_norm == pytest.approx(flow.norms.tolist(), rel=1e-6)
    assert layer.grad_fields["c"] == pytest.approx(flow.fields["c"].tolist(), rel=1e-6)
    assert len(layer.jac_top) == len(layer.jac_radius) == len(layer.jac_bottom) == 5
    assert all(b <= t for b, t in zip(layer.jac_bottom, layer.jac_top))
    assert set(layer.gate_mean) == {"i", "f", "o"} and len(layer.gate_saturation["f"]) == 9
    assert list(layer.radius) == ["i", "f", "g", "o"]
    assert layer.verdict.measure == "jacobian" and layer.verdict.lag == 5
    assert layer.verdict.survival == layer.jac_top[-1]
    assert snap.verdicts() == [layer.verdict]


def test_json_round_trip_and_history(tmp_path):
    model, loss = make()
    first = diagnose(model, loss, step=0, jacobians=False)
    assert first.layers["rnn"].jac_top == [] and first.layers["rnn"].verdict.measure == "gradient"
    second = diagnose(model, loss, step=10, max_lag=3)
    assert Snapshot.from_dict(json.loads(json.dumps(second.to_dict()))) == second
    append_snapshot(tmp_path, second)
    path = append_snapshot(tmp_path, first)
    again = diagnose(model, loss, step=10, max_lag=2)  # a resumed run records step 10 again
    append_snapshot(path, again)
    history = load_history(tmp_path)
    assert [s.step for s in history] == [0, 10] and history[0] == first and history[1] == again
    with pytest.raises(FileNotFoundError, match="diagnostics history"):
        load_history(tmp_path / "missing")


def test_plots_hold_the_snapshot_numbers(tmp_path):
    pytest.importorskip("matplotlib", reason="plots need matplotlib (the dev extra installs it)")
    from carousel.diagnostics.plots import plot_flow, plot_gates, write_plots

    model, loss = make()
    history = [diagnose(model, loss, step=0, max_lag=4), diagnose(model, loss, step=5, max_lag=4)]
    fig = plot_flow(history, tmp_path / "flow.png")
    line = fig.axes[0].lines[1]
    assert list(line.get_ydata()) == pytest.approx(history[1].layers["rnn"].grad_by_lag())
    assert fig.axes[0].get_yscale() == "log"
    fig = plot_gates(history, tmp_path / "gates.png")
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["rnn: gate i", "rnn: gate f", "rnn: gate o"]
    assert list(fig.axes[1].lines[0].get_ydata()) == history[0].layers["rnn"].gate_saturation["f"]
    assert list(fig.axes[1].lines[1].get_ydata()) == history[0].layers["rnn"].gate_mean["f"]
    paths = write_plots(history, tmp_path / "out")
    assert [p.name for p in paths] == ["gradient_flow.png", "gradient_heatmap.png", "jacobian_spectrum.png", "gate_saturation.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
    with pytest.raises(ValueError, match="non-empty list"):
        plot_flow([], tmp_path / "x.png")
