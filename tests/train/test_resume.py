"""Exact resume: a run interrupted and resumed gives the same losses, evaluations and weights as an
uninterrupted run with the same seed (dropout, schedules, carried TBPTT state, random windows)."""

from __future__ import annotations

import pytest
import torch
from train_toys import ToyStream, ToyStreamOptions

from carousel.train import Hook, load_checkpoint, TrainConfig, Trainer, build_config, latest_checkpoint, read_metrics, resume_run, train_run


class Interrupt(Hook):
    def __init__(self, at: int):
        self.at = at

    def on_step(self, trainer, record):
        if trainer.step == self.at:
            raise KeyboardInterrupt


def records(run_dir, kind):
    return [{k: v for k, v in r.items() if k != "rate"} for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == kind]


ADDING = dict(
    steps=14, length=6, hidden=8, layers=2, dropout=0.3, batch_size=6, optimizer="adamw", schedule="cosine",
    warmup=3, eval_every=4, checkpoint_every=3, eval_size=30, progress=False,
)


def test_adding_run_resumed_equals_the_uninterrupted_run(tmp_path):
    whole = tmp_path / "whole"
    train_run(build_config("adding", ADDING), whole)
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train_run(build_config("adding", ADDING), cut, hooks=[Interrupt(8)])
    assert latest_checkpoint(cut / "checkpoints").name == "step-00000006.safetensors"
    assert len(records(cut, "train")) == 8  # steps 7 and 8 were logged, then rewritten on resume
    resume_run(cut)
    assert records(cut, "train") == records(whole, "train")  # loss, gradient norm, lr of every step
    assert records(cut, "eval") == records(whole, "eval")
    ta, _ = load_checkpoint(latest_checkpoint(whole / "checkpoints"))
    tb, _ = load_checkpoint(latest_checkpoint(cut / "checkpoints"))
    assert set(ta) == set(tb)
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k


def stream_trainer(run_dir, hooks=(), **train):
    options = ToyStreamOptions(bptt=6, bptt_back=9, bptt_random=True, dropout=0.2)
    cfg = TrainConfig(**{"steps": 16, "batch_size": 4, "eval_every": 5, "checkpoint_every": 5, "progress": False, "lr": 3e-3, **train})
    return Trainer(ToyStream(options), cfg, run_dir=run_dir, hooks=hooks)


def test_tbptt_run_resumed_equals_the_uninterrupted_run(tmp_path):
    # random windows, a state carried across windows and epochs, dropout: all must come back
    whole = stream_trainer(tmp_path / "whole")
    whole.fit()
    assert whole.batches.epoch >= 1  # the run crossed an epoch boundary
    with pytest.raises(KeyboardInterrupt):
        stream_trainer(tmp_path / "cut", [Interrupt(12)]).fit()
    resumed = stream_trainer(tmp_path / "cut")
    resumed.load(latest_checkpoint(tmp_path / "cut" / "checkpoints"))
    assert resumed.step == 10 and resumed.state is not None
    resumed.fit()
    losses = [r["loss"] for r in whole.history]
    assert [r["loss"] for r in resumed.history] == losses[10:]
    for p, q in zip(whole.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)


def test_without_the_saved_state_resume_would_differ(tmp_path):
    # the test above can fail: dropping the carried state changes the next loss
    whole = stream_trainer(tmp_path / "whole", keep=5)
    whole.fit()
    resumed = stream_trainer(None, steps=11, keep=5)
    resumed.load(tmp_path / "whole" / "checkpoints" / "step-00000010.safetensors")
    resumed.state = None
    resumed.fit()
    assert resumed.history[0]["loss"] != whole.history[10]["loss"]


def test_a_time_budget_goes_on_after_resume_with_what_was_left(tmp_path, monkeypatch):
    import importlib
    import time

    trainer_module = importlib.import_module("carousel.train.trainer")
    clock = {"now": 0.0}

    class FakeTime:  # the trainer's clock; every step takes one second on it
        monotonic = staticmethod(lambda: clock["now"])
        perf_counter = staticmethod(time.perf_counter)

    class Tick(Hook):
        def on_step(self, trainer, record):
            clock["now"] += 1.0

    monkeypatch.setattr(trainer_module, "time", FakeTime)
    cfg = dict(steps=10_000, minutes=20 / 60, lr=0.1, checkpoint_every=5, eval_every=1000)
    whole = stream_trainer(tmp_path / "whole", hooks=[Tick()], **cfg)
    whole.fit()
    assert whole.step == 20 and "time budget" in whole.stop_reason
    cut = stream_trainer(tmp_path / "cut", hooks=[Tick(), Interrupt(12)], **cfg)
    with pytest.raises(KeyboardInterrupt):
        cut.fit()
    _, meta = load_checkpoint(latest_checkpoint(tmp_path / "cut" / "checkpoints"))
    assert meta["step"] == 10 and meta["trained_seconds"] == 10.0
    resumed = stream_trainer(tmp_path / "cut", hooks=[Tick()], **cfg)
    resumed.load(latest_checkpoint(tmp_path / "cut" / "checkpoints"))
    resumed.fit()
    assert resumed.step == 20  # 10 seconds were left, not a new budget of 20
    assert [r["lr"] for r in resumed.history] == pytest.approx([r["lr"] for r in whole.history[10:]])
