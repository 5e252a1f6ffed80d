"""The long-memory tasks through the trainer: metrics against a direct computation, the diagnostics hook
in a real run, and ``carousel diagnose`` on its run directory (with and without a recorded history)."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from carousel.cli import app
from carousel.data.tasks import synthetic_task
from carousel.diagnostics import load_history
from carousel.train import DiagnosticsHook
from carousel.train import Trainer, TrainConfig, build_config, get_task, train_run
from carousel.train.tasks.memory import VALID_SEED

TINY = {"length": 6, "hidden": 5, "eval_size": 40}


@pytest.mark.parametrize("name", ["copying", "parity", "counting", "zeros_even"])
def test_evaluate_against_a_direct_computation(name):
    task = get_task(name)(get_task(name).Options(**TINY))
    torch.manual_seed(0)
    model = task.build_model().eval()
    spec = synthetic_task(name)
    x, y = spec.generate(40, 6, seed=VALID_SEED)
    with torch.no_grad():
        metrics = task.evaluate(model, "valid")
        prediction, _ = model(x)
    if spec.loss == "mse":
        want = F.mse_loss(prediction, y).item()
    else:
        want = F.cross_entropy(prediction.reshape(-1, prediction.shape[-1]), y.reshape(-1)).item()
        answers = (prediction[:, -10:], y[:, -10:]) if spec.every_step else (prediction, y)
        assert metrics["accuracy"] == pytest.approx((answers[0].argmax(-1) == answers[1]).double().mean().item())
    assert metrics["loss"] == pytest.approx(want, rel=1e-5)
    assert metrics["vs_chance"] == pytest.approx(want / spec.baseline(6), rel=1e-5)


def test_parity_learns_a_short_string_through_train_run(tmp_path):
    """Parity of 2 bits (XOR) is learnable in a few hundred steps: the validation loss falls well below log 2."""
    config = build_config("parity", {"length": 2, "hidden": 8, "eval_size": 200, "steps": 300, "lr": 0.03,
                                     "batch_size": 32, "eval_every": 300, "progress": False})
    summary = train_run(config, tmp_path / "run")
    assert summary["best"] < 0.5 * math.log(2)


def test_hook_in_a_real_run_and_carousel_diagnose(tmp_path):
    config = TrainConfig(steps=4, batch_size=8, eval_every=0, checkpoint_every=2, progress=False)
    task = get_task("copying")(get_task("copying").Options(**TINY))
    hook = DiagnosticsHook(every=2, batch_size=4, max_lag=5)
    run_dir = tmp_path / "run"
    Trainer(task, config, run_dir=run_dir, hooks=[hook]).fit()
    history = load_history(run_dir)
    assert [s.step for s in history] == [1, 2, 4] and history == hook.snapshots
    assert set(history[-1].layers) == {"rnn.layers.0"} and len(history[-1].layers["rnn.layers.0"].grad_norm) == 26
    (run_dir / "config.json").write_text(json.dumps(build_config("copying", {**TINY, "steps": 4}).to_dict()))
    result = CliRunner().invoke(app, ["diagnose", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "3 snapshots, steps 1 to 4" in result.output and "LSTMCell" in result.output
    assert history[-1].layers["rnn.layers.0"].verdict.text.split(" — ")[0] in result.output
    assert sorted(p.name for p in (run_dir / "diagnostics").iterdir()) == [
        "gate_saturation.png", "gradient_flow.png", "gradient_heatmap.png", "jacobian_spectrum.png"]


def test_diagnose_builds_the_history_from_checkpoints(tmp_path):
    config = build_config("zeros_even", {**TINY, "cell": "gru", "steps": 4, "batch_size": 8, "eval_every": 0,
                                         "checkpoint_every": 2, "keep": 5, "progress": False})
    run_dir = tmp_path / "run"
    train_run(config, run_dir)
    result = CliRunner().invoke(app, ["diagnose", str(run_dir), "--max-lag", "3"])
    assert result.exit_code == 0, result.output
    history = load_history(run_dir)
    assert [s.step for s in history] == [2, 4]
    layer = history[-1].layers["rnn.layers.0"]
    assert len(layer.jac_top) == 3 and set(layer.gate_mean) == {"r", "z"}
    missing = CliRunner().invoke(app, ["diagnose", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "not a directory" in missing.output


def test_carousel_train_records_diagnostics_when_asked(tmp_path):
    run_dir = tmp_path / "run"
    args = ["train", "counting", "--length", "5", "--hidden", "4", "--eval-size", "20", "--steps", "4", "--batch-size", "8",
            "--diagnose-every", "3", "--no-progress", "--run-dir", str(run_dir)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert [s.step for s in load_history(run_dir)] == [1, 3, 4]
    bad = CliRunner().invoke(app, args[:-2] + ["--diagnose-every", "-1", "--run-dir", str(tmp_path / "other")])
    assert bad.exit_code == 2 and "diagnose_every" in bad.output
