"""``carousel train reachability``: the metrics against a direct computation, batches that are a pure
function of (seed, step) and split over ranks, a short run that beats the majority class by a wide
margin, and the command line."""


import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from carousel.cli import app
from carousel.structures import GraphBatch
from carousel.train import build_config, get_task, train_run
from carousel.train.batches import derive_seed
from carousel.train.task import Shard
from carousel.train.tasks.reachability import VALID_SEED
from train_toys import last_eval

TINY = {"nodes": 8, "hidden": 6, "propagation": 2, "eval_size": 600}


def task(**options):
    cls = get_task("reachability")
    return cls(cls.Options(**{**TINY, **options}))


def test_evaluate_against_a_direct_computation():
    t = task()
    torch.manual_seed(0)
    model = t.build_model().eval()
    with torch.no_grad():
        metrics = t.evaluate(model, "valid")
        parts = [t.data(500, derive_seed(VALID_SEED, 0)), t.data(100, derive_seed(VALID_SEED, 500))]
        logits = torch.cat([model(g) for g, _ in parts])
    labels = torch.cat([y for _, y in parts])
    assert metrics["loss"] == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-5)
    assert metrics["accuracy"] == pytest.approx((logits.argmax(-1) == labels).double().mean().item())
    share = labels.double().mean().item()
    assert metrics["majority"] == pytest.approx(max(share, 1 - share)) and 0.4 < share < 0.6
    with torch.no_grad():
        assert t.evaluate(model, "test") != metrics  # another set of graphs


def test_batches_are_seeded_and_split_over_ranks():
    t = task()
    whole = t.train_batches(8, Shard(), seed=3)
    first, second = next(whole), next(whole)
    assert not torch.equal(first[1], second[1]) or not torch.equal(first[0].edge_index, second[0].edge_index)
    halves = [next(t.train_batches(8, Shard(r, 2), seed=3)) for r in (0, 1)]
    assert torch.equal(torch.cat([y for _, y in halves]), first[1])
    assert sum(g.num_nodes for g, _ in halves) == first[0].num_nodes
    again = t.train_batches(8, Shard(), seed=3)
    again.load_state_dict({"index": 1})
    g, y = next(again)
    assert torch.equal(y, second[1]) and torch.equal(g.edge_index, second[0].edge_index)
    assert isinstance(g, GraphBatch) and g.num_edge_types == 2 and g.num_edges % 2 == 0  # each edge and its reverse


def test_a_short_run_beats_the_majority_class_by_a_wide_margin(tmp_path):
    """Measured: 200 steps reach 99.2% validation accuracy where the majority class has 52.0%."""
    config = build_config("reachability", {"hidden": 16, "eval_size": 500, "steps": 200, "lr": 0.01, "batch_size": 32,
                                           "eval_every": 200, "checkpoint_every": 200, "progress": False})
    train_run(config, tmp_path / "run")
    final = last_eval(tmp_path / "run")
    assert final["majority"] < 0.56
    assert final["accuracy"] > final["majority"] + 0.25, final


def test_the_command_line(tmp_path):
    run = tmp_path / "run"
    args = ["train", "reachability", "--nodes", "6", "--hidden", "4", "--propagation", "2", "--eval-size", "20",
            "--steps", "2", "--batch-size", "4", "--no-progress", "--run-dir", str(run)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 steps" in result.output and (run / "checkpoints" / "best.safetensors").exists()
    bad = CliRunner().invoke(app, ["train", "reachability", "--nodes", "1", "--run-dir", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "expected nodes >= 2 for random graphs, got 1" in bad.output and "Traceback" not in bad.output
