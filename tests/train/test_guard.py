"""The non-finite guard: a bad step is skipped (weights untouched) and counted; too many in a row
stop the run with a message naming the last good checkpoint."""

from __future__ import annotations

import pytest
import torch
from train_toys import Flaky, FlakyOptions

from carousel.train import Hook, NonFiniteError, TrainConfig, Trainer, read_metrics


class Snapshots(Hook):
    def __init__(self):
        self.weights = {}

    def on_step(self, trainer, record):
        self.weights[trainer.step] = [p.detach().clone() for p in trainer.model.parameters()]


def make(tmp_path, bad: str, what: str = "loss", **train):
    cfg = TrainConfig(**{"steps": 6, "batch_size": 4, "progress": False, "eval_every": 100, "checkpoint_every": 2, **train})
    snaps = Snapshots()
    task = Flaky(FlakyOptions(length=5, hidden=8, eval_size=20, bad_steps=bad, what=what))
    return Trainer(task, cfg, run_dir=tmp_path, hooks=[snaps]), snaps


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("what", ["loss", "grad"])
def test_a_non_finite_step_is_skipped_and_counted(tmp_path, what):
    trainer, snaps = make(tmp_path, "3", what)
    summary = trainer.fit()
    assert summary["skipped"] == 1 and summary["steps"] == 6
    assert same(snaps.weights[3], snaps.weights[2])  # step 3 did not touch the weights
    assert not same(snaps.weights[4], snaps.weights[3])  # training went on
    records = {r["step"]: r for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "train"}
    assert records[3]["skipped"] and not records[4]["skipped"]
    assert (records[3]["loss"] is None) == (what == "loss")  # non-finite values are written as null
    assert records[3]["grad_norm"] is None


def test_too_many_in_a_row_stop_with_the_last_good_checkpoint(tmp_path):
    trainer, snaps = make(tmp_path, "4,5,6", max_nonfinite=3)
    with pytest.raises(NonFiniteError) as info:
        trainer.fit()
    message = str(info.value)
    assert "stopped at step 6: 3 steps in a row" in message
    # step 4's checkpoint was written after a non-finite step: not good; step 2's is the last good one
    assert "The last good checkpoint (finite weights and losses) is" in message and "step-00000002.safetensors" in message
    assert same(list(trainer.model.parameters()), snaps.weights[3])


def test_bad_steps_apart_do_not_stop_the_run(tmp_path):
    trainer, _ = make(tmp_path, "2,4,6", max_nonfinite=2)
    assert trainer.fit()["skipped"] == 3
