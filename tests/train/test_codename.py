"""``carousel train codename``: each encoder learns its training functions (the loss falls, the
accuracy clears the majority class), a batch gives each function the logits it gets alone, the
metrics and baselines agree with a direct computation, batches are seeded, resumable and split
over ranks, and the command line."""

from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from typer.testing import CliRunner

from carousel.cli import app
from carousel.data.codename import OTHER
from carousel.structures import GraphBatch, TreeBatch
from carousel.train import get_task
from carousel.train.task import Shard
from carousel.train.tasks.codename import CodeNameOptions, LengthBuckets, TokenBatch

TINY = {"max_functions": 128, "hidden": 32, "embed": 16, "vocab": 300, "propagation": 3}


def task(**options):
    cls = get_task("codename")
    return cls(cls.Options(**{**TINY, **options}))


@pytest.mark.parametrize("encoder", ["sequence", "tree", "graph"])
def test_a_short_run_lowers_the_loss_and_beats_the_majority_class(encoder):
    """Measured: the loss falls from 3.1 to 0.3-0.9 and the accuracy reaches 0.80-0.92 where the
    majority class of these 128 functions has 0.45."""
    t = task(encoder=encoder)
    torch.manual_seed(0)
    model = t.build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    batches = t.train_batches(32, Shard(), seed=0)
    with torch.no_grad():
        before, labels = t.predict(model.eval(), "train")
    model.train()
    for _ in range(60):
        loss = t.step(model, next(batches), None).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after, _ = t.predict(model.eval(), "train")
    majority = Counter(labels.tolist()).most_common(1)[0][1] / len(labels)
    assert F.cross_entropy(after, labels) < 0.5 * F.cross_entropy(before, labels)
    assert (after.argmax(-1) == labels).double().mean() > majority + 0.25


@pytest.mark.parametrize("encoder", ["sequence", "tree", "graph"])
def test_a_batch_gives_each_function_its_own_logits(encoder):
    t = task(encoder=encoder)
    torch.manual_seed(1)
    model = t.build_model().eval()
    picks = [5, 0, 77, 31, 100]
    with torch.no_grad():
        inputs, labels = t.collate("train", picks)
        together = model(inputs)
        alone = torch.cat([model(t.collate("train", [i])[0]) for i in picks])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
    kind = {"sequence": TokenBatch, "tree": TreeBatch, "graph": GraphBatch}[encoder]
    assert isinstance(inputs, kind) and together.shape == (5, len(t.classes))
    words = [t.functions("train").functions[i].word for i in picks]
    assert [t.classes[y] for y in labels.tolist()] == [w if w in t.classes else OTHER for w in words]


def test_evaluate_against_a_direct_computation():
    t = task(encoder="tree")
    torch.manual_seed(0)
    model = t.build_model().eval()
    with torch.no_grad():
        metrics = t.evaluate(model, "valid")
        logits, labels = t.predict(model, "valid")
    valid = t.functions("valid")
    assert metrics["functions"] == len(valid) == len(labels) > 1000 and metrics["left_out"] == valid.too_large > 0
    assert metrics["loss"] == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-5)
    predicted = logits.argmax(-1)
    assert metrics["accuracy"] == pytest.approx((predicted == labels).double().mean().item())
    assert metrics["macro_f1"] == pytest.approx(f1_score(labels, predicted, average="macro", zero_division=0))
    train_labels = t.labels("train").tolist()
    majority = max(set(train_labels), key=train_labels.count)
    assert metrics["majority_accuracy"] == pytest.approx((labels == majority).double().mean().item())
    assert metrics["majority_macro_f1"] == pytest.approx(f1_score(labels, [majority] * len(labels), average="macro"))
    fitted = t.baselines("train")  # the logistic regression learns something from the node types of its data
    assert fitted["logreg_accuracy"] > fitted["majority_accuracy"] + 0.1 and fitted["logreg_macro_f1"] > 2 * fitted["majority_macro_f1"]


def test_batches_are_seeded_resumable_and_split_over_ranks():
    t = task(encoder="sequence")
    whole = t.train_batches(16, Shard(), seed=3)
    first, second = next(whole), next(whole)
    assert not torch.equal(first[1], second[1])
    halves = [next(t.train_batches(16, Shard(r, 2), seed=3)) for r in (0, 1)]
    assert torch.equal(torch.cat([y for _, y in halves]), first[1])
    assert sorted(sum((b.lengths.tolist() for b, _ in halves), [])) == sorted(first[0].lengths.tolist())
    again = t.train_batches(16, Shard(), seed=3)
    again.load_state_dict({"index": 1})
    inputs, labels = next(again)
    assert torch.equal(labels, second[1]) and torch.equal(inputs.ids, second[0].ids)
    epoch = [next(t.train_batches(16, Shard(), seed=3)) for _ in range(1)]
    assert epoch[0][0].ids.shape[1] == int(epoch[0][0].lengths.max())  # padded to the longest of its batch
    with pytest.raises(ValueError, match="batch_size 200 is larger than the 128 training functions"):
        t.train_batches(200, Shard(), seed=0)


def test_length_buckets_cover_an_epoch_once_with_similar_lengths_together():
    lengths = torch.randint(1, 300, (205,), generator=torch.Generator().manual_seed(0))
    buckets = LengthBuckets(lengths, 10, Shard(), 4, lambda idx: idx, pool=5)
    epoch = [next(buckets) for _ in range(20)]
    assert all(len(b) == 10 for b in epoch) and len(set(sum(epoch, []))) == 200  # 5 left over, none twice
    assert next(buckets) != epoch[0]  # the next epoch is shuffled anew
    spread = sum(int(lengths[b].max() - lengths[b].min()) for b in epoch) / 20
    random = sum(int(lengths[b].max() - lengths[b].min()) for b in torch.randperm(200).split(10)) / 20
    assert spread < 0.3 * random  # a pool of 5 batches sorted by length: far less padding


def test_options_are_checked():
    with pytest.raises(ValueError, match="expected max_nodes >= 10, got 0"):
        CodeNameOptions(max_nodes=0)
    with pytest.raises(ValueError, match="expected max_functions >= 0"):
        CodeNameOptions(max_functions=-1)
    with pytest.raises(ValueError, match="unknown encoder 'rnn'"):
        CodeNameOptions(encoder="rnn")
    with pytest.raises(ValueError, match="expected eval_size >= 0"):
        CodeNameOptions(eval_size=-2)
    few, every = task(eval_size=50).functions("test"), task().functions("test")
    assert len(few) == 50 and few.functions == every.functions[:50] and len(every) > 1000


def test_the_command_line(tmp_path):
    run = tmp_path / "run"
    args = ["train", "codename", "--encoder", "graph", "--max-functions", "40", "--hidden", "8", "--propagation", "2",
            "--classes", "3", "--steps", "2", "--batch-size", "8", "--no-progress", "--run-dir", str(run)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 steps" in result.output and (run / "checkpoints" / "best.safetensors").exists()
    bad = CliRunner().invoke(app, ["train", "codename", "--max-nodes", "0", "--run-dir", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "expected max_nodes >= 10, got 0" in bad.output and "Traceback" not in bad.output
