"""Trainer hooks: the diagnostics hook records periodically on one fixed batch; the wall-clock limit stops a run."""

import pytest
import torch
import torch.nn.functional as F

import carousel as C
from carousel.diagnostics import load_history
from carousel.train import DiagnosticsHook, StepOutput, TrainConfig, Trainer, WallClockLimit
from carousel.train.tasks.adding import AddingOptions, AddingTask


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = C.Recurrent(C.LSTMCell(2, 4))
        self.head = torch.nn.Linear(4, 1)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


class FakeTask:
    """The two methods of a carousel.train.Task the hook uses."""

    def __init__(self):
        self.drawn = []

    def train_batches(self, batch_size, shard, seed):
        self.drawn.append((batch_size, shard.rank, seed))
        g = torch.Generator().manual_seed(seed)
        return iter([(torch.randn(batch_size, 5, 2, generator=g), torch.randn(batch_size, 1, generator=g))])

    def step(self, model, batch, state):
        return StepOutput(F.mse_loss(model(batch[0]), batch[1]))


class FakeTrainer:
    def __init__(self, run_dir):
        torch.manual_seed(1)
        self.model, self.task, self.step, self.run_dir, self.is_main = Model(), FakeTask(), 0, run_dir, True


def test_hook_records_periodically(tmp_path):
    trainer = FakeTrainer(tmp_path)
    hook = DiagnosticsHook(every=3, batch_size=4, max_lag=2)
    for step in range(1, 8):
        trainer.step = step
        hook.on_step(trainer, {})
        with torch.no_grad():
            trainer.model.head.weight.mul_(1.5)  # training changes the model
    hook.on_end(trainer)
    assert [s.step for s in hook.snapshots] == [1, 3, 6, 7]
    assert trainer.task.drawn == [(4, 0, trainer.task.drawn[0][2])]  # one fixed batch, drawn once
    assert load_history(tmp_path) == hook.snapshots
    # the head grew by 1.5 per step: the gradient at the last step grows with it
    g = [s.layers["rnn"].grad_by_lag()[0] for s in hook.snapshots]
    assert g[1] > g[0] and g[2] > g[1]
    with pytest.raises(ValueError, match="every"):
        DiagnosticsHook(every=0)




def test_wall_clock_limit_stops_the_run_and_leaves_the_schedule_alone():
    config = TrainConfig(steps=50, batch_size=4, lr=0.01, eval_every=0, progress=False)
    trainer = Trainer(AddingTask(AddingOptions(length=5, hidden=4, eval_size=8)), config, hooks=[WallClockLimit(2.0)])
    trainer.elapsed = lambda: 0.5 * trainer.step  # a clock that advances half a second per step
    summary = trainer.fit()
    assert summary["steps"] == 4 and summary["stopped"] == "time limit of 2 s reached"
    assert [r["lr"] for r in trainer.history] == [0.01] * 4
    with pytest.raises(ValueError, match="time limit > 0"):
        WallClockLimit(0)
