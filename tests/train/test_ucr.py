"""``carousel train ucr`` on generated stand-ins in the ``.ts`` format: the normalisations, the fixed
validation part, frames and augmentations by hand, batches that resume, an evaluation against a
direct computation, short runs that learn (univariate; multivariate of variable length; with the
LSTM-FCN conv branch, in time and dimension-shuffled), bad options and the command line."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from carousel.cli import app
from carousel.models import FCNClassifier, SequenceClassifier
from carousel.train import Hook, build_config, get_task, latest_checkpoint, read_metrics, train_run
from carousel.train.run import evaluate_run, load_run_model
from carousel.train.task import Shard
from carousel.train.tasks.ucr import (RECOMMENDED, RECOMMENDED_FCN, RECOMMENDED_GRU, augment, channel_statistics, parse_sizes,
                                      stratified_folds, stratified_holdout, to_frames, with_derivative, z_normalise)


def write_ts(path, series, labels, classes):
    """A ``.ts`` file of ``series`` (each a (T_i, C) tensor) and their labels."""
    channels = series[0].shape[1]
    head = ["@problemName StandIn", "@timeStamps false", "@missing false", f"@univariate {str(channels == 1).lower()}"]
    head += [] if channels == 1 else [f"@dimensions {channels}"]
    head += ["@equalLength false", f"@classLabel true {' '.join(classes)}", "@data"]
    rows = [":".join(",".join(f"{v:.5f}" for v in s[:, c].tolist()) for c in range(channels)) + f":{y}"
            for s, y in zip(series, labels)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(head + rows) + "\n", encoding="utf-8")


def waves(n, seed, length=40):
    """Two classes: a noisy sine of 2 cycles ('slow') or of 4 cycles ('fast'), at a random phase."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    t = torch.linspace(0, 1, length)
    phase = torch.rand(n, 1, generator=g) * 2 * math.pi
    x = torch.sin(2 * math.pi * (2 + 2 * labels[:, None]) * t + phase) + 0.3 * torch.randn(n, length, generator=g)
    return list(x[..., None]), [("slow", "fast")[int(y)] for y in labels]


def vowels(n, seed):
    """Three classes of 3-channel series of 8 to 20 steps: class k raises channel k by 1 (with a
    common offset of 5 and noise), so the channels' levels tell the class."""
    g = torch.Generator().manual_seed(seed)
    series, labels = [], []
    for i in range(n):
        k, length = i % 3, int(torch.randint(8, 21, (), generator=g))
        s = 5 + 0.5 * torch.randn(length, 3, generator=g)
        s[:, k] += 1.0
        series.append(s)
        labels.append(str(k + 1))
    return series, labels


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    """A folder with a GunPoint stand-in (sine waves) and a JapaneseVowels stand-in (see above)."""
    root = tmp_path_factory.mktemp("ucr")
    for split, n, seed in (("TRAIN", 60, 1), ("TEST", 60, 2)):
        write_ts(root / "GunPoint" / f"GunPoint_{split}.ts", *waves(n, seed), ("slow", "fast"))
        write_ts(root / "JapaneseVowels" / f"JapaneseVowels_{split}.ts", *vowels(n, seed + 10), ("1", "2", "3"))
    return root


def task(root, **options):
    cls = get_task("ucr")
    return cls(cls.Options(data_dir=str(root), **{"hidden": 8, **options}))


def test_z_normalise_and_channel_statistics_by_hand():
    x = torch.tensor([[[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]], [[4.0, 0.0], [8.0, 2.0], [9.0, 9.0]]])  # (2, 3, 2)
    lengths = torch.tensor([3, 2])
    z = z_normalise(x, lengths)
    s = math.sqrt(2 / 3)
    assert torch.allclose(z[0], torch.tensor([[-1 / s, 0.0], [0.0, 0.0], [1 / s, 0.0]]))  # a constant channel is only centred
    assert torch.allclose(z[1], torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]))  # zero past its 2 steps
    mean, std = channel_statistics(x, lengths)  # over the 5 valid steps
    assert torch.allclose(mean, torch.tensor([18 / 5, 17 / 5]))
    assert torch.allclose(std, torch.tensor([x[0, :, 0].tolist() + [4.0, 8.0], [5.0, 5.0, 5.0, 0.0, 2.0]]).std(1, unbiased=False))
    assert torch.allclose(z_normalise(x, lengths, mean, std)[1, 1], (x[1, 1] - mean) / std)


def test_auto_normalisation_follows_the_channels(stand_in):
    uni, multi = task(stand_in), task(stand_in, dataset="JapaneseVowels")
    uni.split_tensors("train"), multi.split_tensors("train")
    assert uni.normalisation == "series" and multi.normalisation == "channel"
    x, lengths, _ = multi.split_tensors("test")
    mask = torch.arange(x.shape[1]) < lengths[:, None]
    assert abs(float(x[mask].mean())) < 0.3 and x[~mask].abs().sum() == 0  # training-file statistics, test still near 0
    raw = task(stand_in, dataset="JapaneseVowels", normalise="none").split_tensors("test")[0]
    assert float(raw[mask].mean()) > 4


def test_the_validation_part_is_fixed_stratified_and_disjoint():
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 1)
    kept, held = stratified_holdout(labels, 0.2)
    assert torch.bincount(labels[held], minlength=3).tolist() == [2, 1, 0]  # round(0.2 n_c), at least 1, never all
    assert sorted(torch.cat([kept, held]).tolist()) == list(range(16))
    again = stratified_holdout(labels, 0.2)
    assert torch.equal(again[1], held) and not torch.equal(stratified_holdout(labels, 0.2, seed=1)[1], held)
    assert stratified_holdout(labels, 0.0)[1].numel() == 0


def test_valid_is_held_out_or_the_training_file(stand_in):
    t = task(stand_in)
    assert len(t.split_tensors("train")[0]) == 48 and len(t.split_tensors("valid")[0]) == 12
    whole = task(stand_in, valid_fraction=0.0)
    assert torch.equal(whole.split_tensors("valid")[0], whole.split_tensors("train")[0]) and len(whole.split_tensors("train")[0]) == 60


def test_folds_partition_the_training_file_class_by_class():
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 2)
    folds = stratified_folds(labels, 4)
    assert sorted(torch.cat(folds).tolist()) == list(range(17))  # disjoint and complete
    assert sorted(len(f) for f in folds) == [4, 4, 4, 5]  # sizes differ by at most one
    for c, n in ((0, 10), (1, 5), (2, 2)):  # each class spread as evenly as it can be
        counts = [int((labels[f] == c).sum()) for f in folds]
        assert max(counts) - min(counts) <= 1 and sum(counts) == n
    assert all(torch.equal(a, b) for a, b in zip(folds, stratified_folds(labels, 4)))
    assert not all(torch.equal(a, b) for a, b in zip(folds, stratified_folds(labels, 4, seed=1)))
    for bad in (1, 18, 2.0):
        with pytest.raises(ValueError, match="expected between 2 and 17 folds"):
            stratified_folds(labels, bad)


def test_a_fold_is_held_out_as_valid(stand_in):
    held = [task(stand_in, folds=3, fold=k) for k in range(3)]
    valid = [t.split_tensors("valid")[0] for t in held]
    assert [len(v) for v in valid] == [20, 20, 20] and all(len(t.split_tensors("train")[0]) == 40 for t in held)
    rows = torch.cat(valid).flatten(1)
    assert torch.unique(rows, dim=0).shape[0] == 60  # every case held out exactly once
    train0 = held[0].split_tensors("train")[0].flatten(1)
    assert not (train0[:, None] == valid[0].flatten(1)[None]).all(-1).any()  # never trained on what validates


def test_frames_by_hand():
    x = torch.arange(1.0, 15.0).reshape(1, 7, 2)  # steps (1,2), (3,4), ..., (13,14)
    frames, lengths = to_frames(x, torch.tensor([7]), 3)
    assert frames.tolist() == [[[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12], [13, 14, 0, 0, 0, 0]]]
    assert lengths.tolist() == [3] and to_frames(x, torch.tensor([6]), 3)[1].tolist() == [2]


def test_derivative_by_hand():
    x = torch.tensor([[[1.0], [4.0], [2.0]], [[5.0], [7.0], [0.0]]])
    assert with_derivative(x, torch.tensor([3, 2])).tolist() == [[[1, 0], [4, 3], [2, -2]], [[5, 0], [7, 2], [0, 0]]]


def test_augmentations():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(1.0, 21.0).reshape(2, 10, 1)
    lengths = torch.tensor([10, 6])
    cropped, new = augment(x, lengths, g, jitter=0.0, scale=0.0, crop=0.5)
    assert new.tolist() == [5, 3]
    for b in range(2):
        window = cropped[b, : new[b], 0]
        start = int(window[0] - x[b, 0, 0])  # a contiguous window of the valid steps
        assert torch.equal(window, x[b, start:start + int(new[b]), 0]) and start + new[b] <= lengths[b]
        assert cropped[b, new[b]:].abs().sum() == 0
    scaled, same = augment(x, lengths, g, jitter=0.0, scale=0.2, crop=0.0)
    ratio = scaled[0, :, 0] / x[0, :, 0]
    assert torch.equal(same, lengths) and torch.allclose(ratio, ratio[0].expand(10)) and ratio[0] != 1
    big = torch.zeros(50, 200, 1)
    noisy, _ = augment(big, torch.full((50,), 200), g, jitter=0.3, scale=0.0, crop=0.0)
    assert abs(float(noisy.std()) - 0.3) < 0.01


def test_roll_and_mirror_by_hand():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(1.0, 401.0).reshape(40, 10, 1)  # distinct values: each step's origin can be read off
    lengths = torch.tensor([10, 7, 1, 4] * 10)
    x[torch.arange(10)[None, :] >= lengths[:, None]] = 0
    rolled, same = augment(x, lengths, g, jitter=0.0, scale=0.0, crop=0.0, roll=True)
    mirrored, _ = augment(x, lengths, g, jitter=0.0, scale=0.0, crop=0.0, mirror=True)
    both, _ = augment(x, lengths, g, jitter=0.0, scale=0.0, crop=0.0, roll=True, mirror=True)
    assert torch.equal(same, lengths)
    shifts, backwards = set(), 0
    for b in range(40):
        n, valid = int(lengths[b]), x[b, : lengths[b], 0]
        start = int(rolled[b, 0, 0] - x[b, 0, 0])  # the step read first
        assert torch.equal(rolled[b, :n, 0], torch.roll(valid, -start)) and rolled[b, n:].abs().sum() == 0
        shifts.add(start)
        assert torch.equal(mirrored[b, :n, 0], valid) or torch.equal(mirrored[b, :n, 0], valid.flip(0))
        backwards += n > 1 and torch.equal(mirrored[b, :n, 0], valid.flip(0))
        candidates = [torch.roll(v, k) for v in (valid, valid.flip(0)) for k in range(n)]
        assert any(torch.equal(both[b, :n, 0], c) for c in candidates) and both[b, n:].abs().sum() == 0
    assert len(shifts) > 5 and 10 < backwards < 20  # of the 30 series longer than one step, about half reversed


def test_batches_are_seeded_and_resume(stand_in):
    t = task(stand_in, jitter=0.1, scale=0.1, crop=0.2)
    batches = t.train_batches(8, Shard(), seed=3)
    first, second = next(batches), next(batches)
    assert first[0].shape[0] == 8 and first[0].shape[2] == 1 and not torch.equal(first[0], second[0])
    again = t.train_batches(8, Shard(), seed=3)
    assert all(torch.equal(a, b) for a, b in zip(next(again), first))
    again.load_state_dict(batches.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(next(again), next(batches)))
    plain = task(stand_in)
    labels = plain.split_tensors("train")[2]
    epochs = torch.cat([next(plain.train_batches(96, Shard(), seed=3))[2]])  # 96 places: two epochs of the 48 cases
    assert torch.equal(torch.bincount(epochs), 2 * torch.bincount(labels))
    halves = [next(plain.train_batches(96, Shard(r, 2), seed=3)) for r in (0, 1)]
    whole = next(plain.train_batches(96, Shard(), seed=3))
    assert torch.equal(torch.cat([h[2] for h in halves]), whole[2])  # the ranks split one global batch


def test_evaluate_against_a_direct_computation(stand_in):
    t = task(stand_in, dataset="JapaneseVowels", patch=2, readout="last", derivative=True)
    torch.manual_seed(0)
    model = t.build_model().eval()
    x, lengths, labels = t.split_tensors("test")
    right, loss = 0, 0.0
    with torch.no_grad():
        metrics = t.evaluate(model, "test")
        for i in range(len(labels)):  # one series at a time, cut to its own length: no padding at all
            n = int(lengths[i])
            frames, _ = to_frames(with_derivative(x[i:i + 1, :n], lengths[i:i + 1]), lengths[i:i + 1], 2)
            assert frames.shape[2] == 3 * 2 * 2  # 3 channels and their differences, 2 steps a frame
            logits = model(frames)
            right += int(logits.argmax(-1) == labels[i])
            loss += float(torch.nn.functional.cross_entropy(logits, labels[i:i + 1]))
    assert metrics["accuracy"] == pytest.approx(right / len(labels))
    assert metrics["loss"] == pytest.approx(loss / len(labels), rel=1e-4)
    assert metrics["score"] == pytest.approx(metrics["accuracy"] - metrics["loss"] / 1000)


def test_evaluate_with_the_conv_branch_against_a_direct_computation(stand_in):
    """With --fcn the task hands the model the series step by step (the model frames the recurrent
    input itself): every test series scored alone, cut to its length, gives the same metrics."""
    t = task(stand_in, dataset="JapaneseVowels", fcn=True, fcn_filters="6,5", fcn_kernels="5,3", patch=3, derivative=True)
    torch.manual_seed(0)
    model = t.build_model().eval()
    assert isinstance(model, FCNClassifier) and model.patch == 3 and model.conv.filters == (6, 5) and model.input_size == 6
    x, lengths, labels = t.split_tensors("test")
    right, loss = 0, 0.0
    with torch.no_grad():
        metrics = t.evaluate(model, "test")
        for i in range(len(labels)):
            n = int(lengths[i])
            logits = model(with_derivative(x[i:i + 1, :n], lengths[i:i + 1]))  # (1, n, 3 + 3)
            right += int(logits.argmax(-1) == labels[i])
            loss += float(torch.nn.functional.cross_entropy(logits, labels[i:i + 1]))
    assert metrics["accuracy"] == pytest.approx(right / len(labels))
    assert metrics["loss"] == pytest.approx(loss / len(labels), rel=1e-4)
    shuffled = task(stand_in, dataset="JapaneseVowels", fcn=True, shuffle=True).build_model()
    longest = max(len(t.split_tensors(s)[0][0]) for s in ("train", "test"))
    assert shuffled.length == longest and shuffled.rnn.layers[0].cell.input_size == longest  # one step of every value
    assert type(task(stand_in).build_model()) is SequenceClassifier  # without --fcn, the recurrent classifier as before


@pytest.mark.parametrize("dataset, options, steps", [
    ("GunPoint", {"patch": 4, "jitter": 0.05, "scale": 0.1}, 40),
    ("JapaneseVowels", {"crop": 0.1}, 40),
    ("GunPoint", {"fcn": True, "fcn_filters": "16,16", "fcn_kernels": "5,3", "shuffle": True}, 40),
    ("JapaneseVowels", {"fcn": True, "fcn_filters": "16,16", "fcn_kernels": "5,3", "patch": 2, "crop": 0.1}, 40),
])
def test_a_short_run_learns(stand_in, tmp_path, dataset, options, steps):
    """Measured (seeds 0-2): every stand-in reaches test accuracy 1.0 in 40 steps (chance 0.5 for the
    sine waves, 1/3 for the variable-length vowels), with and without the conv branch; an untrained
    model stays near chance (with the conv branch, one step at lr 1e-9: 0.53-0.58 on the waves,
    0.52-0.72 on the vowels, whose channel levels random filters already partly tell apart)."""
    config = build_config("ucr", {"dataset": dataset, "data_dir": str(stand_in), "hidden": 16, "steps": steps, "lr": 0.01,
                                  "batch_size": 16, "eval_every": 20, "checkpoint_every": steps, "progress": False, **options})
    train_run(config, tmp_path / "run")
    test = evaluate_run(tmp_path / "run", split="test", save=False)["splits"]["test"]
    assert test["accuracy"] > 0.85, test


@pytest.mark.parametrize("options, message", [
    ({"dataset": "Gunpoint"}, "unknown dataset 'Gunpoint'"),
    ({"hidden": 0}, "expected hidden >= 1, got 0"),
    ({"patch": 0}, "expected patch >= 1, got 0"),
    ({"dropout": 1.0}, "dropout"),
    ({"jitter": -0.1}, "expected jitter >= 0, got -0.1"),
    ({"crop": 1.0}, r"expected crop in \[0, 1\) \(the fraction of each series cut away\), got 1.0"),
    ({"valid_fraction": 0.9}, r"expected valid_fraction in \[0, 0.5\]"),
    ({"folds": 1}, r"expected folds 0 \(no cross-validation\) or at least 2, got 1"),
    ({"folds": 3, "fold": 3}, r"expected fold in 0..2 \(with folds 3\), got 3"),
    ({"fold": 1}, r"expected fold in 0..0 \(with folds 0\), got 1"),
    ({"folds": -2}, "expected folds >= 0, got -2"),
    ({"data_dir": "/no/such/folder"}, "expected data_dir to be a folder holding <Name>/<Name>_TRAIN.ts, got '/no/such/folder'"),
    ({"readout": "first"}, "unknown readout 'first'"),
    ({"fcn_filters": "128,x,128"}, r"expected fcn_filters as comma-separated integers such as '128,256,128', got '128,x,128'"),
    ({"fcn_filters": "128,0"}, r"expected every entry of fcn_filters to be an integer >= 1, got 0 \(in fcn_filters='128,0'\)"),
    ({"fcn_kernels": ""}, r"expected fcn_kernels as comma-separated integers"),
    ({"fcn_kernels": "8,5"}, r"one kernel width per conv block, got fcn_filters '128,256,128' \(3 blocks\) and fcn_kernels '8,5' \(2\)"),
    ({"shuffle": "true"}, "expected shuffle only with fcn"),
    ({"readout_dropout": 0.8}, r"expected readout_dropout only with fcn .*got readout_dropout=0.8 and fcn=False"),
    ({"fcn": "true", "readout_dropout": 1.0}, "readout_dropout"),
    ({"roll": "maybe"}, "expected true or false for roll, got 'maybe'"),
    ({"mirror": 2}, "mirror"),
    ({"fcn": "true", "shuffle": "true", "patch": 4}, r"expected patch 1 with shuffle \(a shuffled channel is already one step\), got patch 4"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        build_config("ucr", options)


def test_parse_sizes():
    assert parse_sizes("128,256,128", "f") == (128, 256, 128) and parse_sizes(" 7 ", "f") == (7,)
    with pytest.raises(ValueError, match="got '1,,2'"):
        parse_sizes("1,,2", "f")


@pytest.mark.parametrize("table", ["RECOMMENDED", "RECOMMENDED_GRU", "RECOMMENDED_FCN"])
def test_recommended_settings_are_valid_command_lines(monkeypatch, table):
    seen = {}
    monkeypatch.setattr("carousel.cli.train._train", lambda task, values, config, run_dir: seen.update({values["dataset"]: values}))
    tables = {"RECOMMENDED": RECOMMENDED, "RECOMMENDED_GRU": RECOMMENDED_GRU, "RECOMMENDED_FCN": RECOMMENDED_FCN}
    assert set(tables[table]) == set(RECOMMENDED_GRU)  # every dataset
    for dataset, args in tables[table].items():
        result = CliRunner().invoke(app, ["train", "ucr", "--dataset", dataset, *args])
        assert result.exit_code == 0, result.output
        assert build_config("ucr", seen[dataset]).options.dataset == dataset
    if table == "RECOMMENDED_GRU":  # the recurrent classifier's settings stay reachable
        assert seen["ArrowHead"]["derivative"] is True and seen["ItalyPowerDemand"]["bidirectional"] is True
        assert not any(values.get("fcn") for values in seen.values())
    if table == "RECOMMENDED_FCN":
        assert all(values["fcn"] is True for values in seen.values())
    if table == "RECOMMENDED":  # each dataset's settings are one of the two tables'
        assert all(RECOMMENDED[d] in (RECOMMENDED_GRU[d], RECOMMENDED_FCN[d]) for d in RECOMMENDED)


def test_the_command_line(stand_in, tmp_path):
    run = tmp_path / "run"
    args = ["train", "ucr", "--dataset", "JapaneseVowels", "--data-dir", str(stand_in), "--hidden", "4", "--steps", "2",
            "--batch-size", "4", "--bidirectional", "--derivative", "--readout", "attention", "--no-progress", "--run-dir", str(run)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 steps" in result.output and (run / "checkpoints" / "best.safetensors").exists()
    fcn = ["--fcn", "--fcn-filters", "4,4", "--fcn-kernels", "3,3", "--shuffle", "--readout-dropout", "0.5", "--run-dir",
           str(tmp_path / "fcn")]
    result = CliRunner().invoke(app, args[:-2] + fcn)
    assert result.exit_code == 0, result.output
    assert load_run_model(tmp_path / "fcn")[1].readout_drop.p == 0.5
    bad = CliRunner().invoke(app, ["train", "ucr", "--fcn", "--fcn-filters", "4,4", "--run-dir", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "one kernel width per conv block" in bad.output and "Traceback" not in bad.output
    bad = CliRunner().invoke(app, ["train", "ucr", "--crop", "1.5", "--run-dir", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "expected crop in [0, 1)" in bad.output and "Traceback" not in bad.output
    missing = CliRunner().invoke(app, ["train", "ucr", "--dataset", "OSULeaf", "--data-dir", str(stand_in), "--no-progress",
                                       "--run-dir", str(tmp_path / "missing")])
    assert missing.exit_code != 0 and "OSULeaf_TRAIN.ts does not exist" in missing.output and "Traceback" not in missing.output


def example_script(name="ucr_table"):
    """``examples/<name>.py`` as a module."""
    path = Path(__file__).resolve().parents[2] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def table_script():
    return example_script("ucr_table")


def test_the_table_script_cross_validates_without_scoring_the_test_file(stand_in, tmp_path):
    script = table_script()
    values = {"data_dir": str(stand_in), "hidden": "8", "steps": "6", "batch_size": "8", "eval_every": "3"}
    row = script.run_dataset("GunPoint", 5, tmp_path, values, cv=3)
    assert row["cv"] == 3 and len(row["scores"]) == 3  # the folds, not the 5 seeds
    for k in range(3):
        run = tmp_path / f"GunPoint-fold{k}of3"
        assert json.loads((run / "config.json").read_text())["options"]["fold"] == k
        assert list(json.loads((run / "eval.json").read_text())["splits"]) == ["valid"]
        assert row["scores"][k] == row["valid"][k]["accuracy"]
    text = script.table([row], "gru")
    assert "cross-validated accuracy" in text and "--folds 3 --fold k --seed k" in text


def test_the_table_script_scores_the_ensemble_of_the_seeds(stand_in, tmp_path):
    script = table_script()
    values = {"data_dir": str(stand_in), "hidden": "8", "steps": "4", "batch_size": "8", "eval_every": "2"}
    row = script.run_dataset("GunPoint", 2, tmp_path, values, first_seed=3)
    runs = [tmp_path / "GunPoint-3", tmp_path / "GunPoint-4"]
    assert len(row["scores"]) == 2 and all(r.is_dir() for r in runs) and not (tmp_path / "GunPoint-0").exists()
    assert script.ensemble_accuracy(runs[:1]) == row["scores"][0]  # one member: that run's own accuracy
    total = 0
    for run in runs:  # by hand: the mean of the two models' probabilities, straight from their forward passes
        task, model, _, _ = load_run_model(run)
        x, lengths, labels = task.split_tensors("test")
        with torch.no_grad():
            total = total + model(x, lengths).softmax(-1)
    assert row["ensemble"] == pytest.approx(float((total.argmax(-1) == labels).double().mean()))
    assert f"| {row['ensemble']:.3f} |" in script.table([row], "gru")


def trained_steps(run_dir):
    """The steps of the training records in ``run_dir``'s metrics, in order."""
    return [r["step"] for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "train"]


def test_the_table_script_finishes_an_interrupted_seed_with_reuse(stand_in, tmp_path, monkeypatch):
    script = table_script()
    values = {"data_dir": str(stand_in), "hidden": "8", "steps": "6", "batch_size": "8", "eval_every": "2",
              "checkpoint_every": "1"}
    whole = script.one_seed("GunPoint", 0, tmp_path / "whole", values, reuse=False)

    class Stop(Hook):
        def on_step(self, trainer, record):
            if trainer.step == 3:
                raise KeyboardInterrupt

    started = []

    def interrupted(config, run_dir):
        started.append(run_dir)
        return train_run(config, run_dir, hooks=[Stop()])

    monkeypatch.setattr(script, "train_run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        script.one_seed("GunPoint", 0, tmp_path / "cut", values, reuse=True)
    run = tmp_path / "cut" / "GunPoint-0"
    assert not (run / "table-seed.json").exists() and latest_checkpoint(run / "checkpoints").name < "step-00000004"
    again = script.one_seed("GunPoint", 0, tmp_path / "cut", values, reuse=True)
    assert len(started) == 1  # resumed, not started again
    assert trained_steps(run) == [1, 2, 3, 4, 5, 6]  # each step once: the run went on from its last checkpoint
    assert again["test"] == whole["test"] and again["valid"] == pytest.approx(whole["valid"], rel=1e-6)
    assert json.loads((run / "table-seed.json").read_text()) == again
    # without reuse an interrupted seed starts again from step 0, in a new directory
    with pytest.raises(KeyboardInterrupt):
        script.one_seed("GunPoint", 1, tmp_path / "cut", values, reuse=True)
    marker = tmp_path / "cut" / "GunPoint-1" / "marker"
    marker.write_text("from the interrupted run")
    monkeypatch.setattr(script, "train_run", train_run)
    fresh = script.one_seed("GunPoint", 1, tmp_path / "cut", values, reuse=False)
    assert not marker.exists() and trained_steps(tmp_path / "cut" / "GunPoint-1") == [1, 2, 3, 4, 5, 6]
    assert len(started) == 2 and fresh["test"] is not None
    # a directory that is not a readable run is started again, with or without reuse
    broken = tmp_path / "cut" / "GunPoint-2"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    assert script.one_seed("GunPoint", 2, tmp_path / "cut", values, reuse=True)["test"] is not None


def test_the_table_script_runs_with_the_threads_asked_for(monkeypatch, tmp_path, capsys):
    """--threads N sets torch's threads before any run (default 1: runs side by side); 0 is refused."""
    script = table_script()
    seen = []

    class Started(Exception):
        pass

    def first_run(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise Started

    monkeypatch.setattr(script, "run_dataset", first_run)
    before = torch.get_num_threads()
    try:
        for threads in ([], ["--threads", "2"]):
            monkeypatch.setattr("sys.argv", ["ucr_table.py", "--datasets", "GunPoint", "--out", str(tmp_path / "t.md"), *threads])
            with pytest.raises(Started):
                script.main()
        assert seen == [1, 2]
        monkeypatch.setattr("sys.argv", ["ucr_table.py", "--threads", "0"])
        with pytest.raises(SystemExit):
            script.main()
        assert "expected --threads >= 1, got 0" in capsys.readouterr().err and seen == [1, 2]
    finally:
        torch.set_num_threads(before)


def test_the_invariance_script_sees_shifts_and_reversals():
    script = example_script("ucr_invariance")
    g = torch.Generator().manual_seed(0)
    base = torch.randn(30, generator=g).double()
    pair = torch.stack([base, torch.roll(base, 7), torch.roll(base.flip(0), 11)]).numpy()
    d = script.squared_distances(pair)
    assert d["euclidean"][0, 1] > 1 and abs(d["circular shift"][0, 1]) < 1e-9  # a shift costs nothing once aligned
    assert d["circular shift"][0, 2] > 1 and abs(d["shift or mirror"][0, 2]) < 1e-9  # a reversal needs the mirror
    # two classes of outlines, each series its class's shape from a random starting point
    shapes = torch.randn(2, 40, generator=g).double()
    series = [torch.roll(shapes[i % 2], int(torch.randint(40, (1,), generator=g))) + 0.05 * torch.randn(40, generator=g).double()
              for i in range(40)]
    scores = script.leave_one_out(torch.stack(series).numpy(), [i % 2 for i in range(40)])
    assert scores["circular shift"] == scores["shift or mirror"] == 1.0 and scores["euclidean"] < 0.8


def test_the_invariance_script_refuses_multivariate_sets(stand_in, capsys):
    script = example_script("ucr_invariance")
    with pytest.raises(SystemExit) as stop:
        script.main(["--datasets", "JapaneseVowels", "--data-dir", str(stand_in)])
    assert stop.value.code == 2 and "expected a univariate set of equal lengths, got 3 channels" in capsys.readouterr().err
