"""The task registry, option parsing, config files, batches and the model that tasks build on."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from carousel.train import (
    SeededBatches,
    Shard,
    ShuffledBatches,
    Task,
    TrainConfig,
    build_config,
    get_task,
    option,
    parse_options,
    read_config_file,
    register_task,
    task_names,
)
from carousel.train.registry import _TASKS
from carousel.train.tasks.adding import AddingOptions, AddingTask


def test_the_adding_task_is_registered_and_unknown_names_list_the_valid_ones():
    assert "adding" in task_names() and get_task("adding") is AddingTask
    with pytest.raises(ValueError, match=r"unknown task 'adn'.*valid: .*adding"):
        get_task("adn")


def test_register_task_checks_what_it_is_given():
    @dataclass(frozen=True)
    class Clash:
        lr: float = option(0.1, "clashes with the trainer's lr")

    @dataclass
    class Mutable:
        x: int = 1

    class T(Task):
        name = "t-clash"
        Options = Clash

    with pytest.raises(ValueError, match=r"options \['lr'\] clash with trainer options"):
        register_task(T)
    T.name, T.Options = "t-mutable", Mutable
    with pytest.raises(TypeError, match="Options must be a frozen dataclass"):
        register_task(T)
    T.name = "bad name!"
    with pytest.raises(ValueError, match="needs a name of letters"):
        register_task(T)
    with pytest.raises(TypeError, match="expects a Task subclass"):
        register_task(int)

    class Other(AddingTask):
        name = "adding"

    with pytest.raises(ValueError, match="task name 'adding' is taken"):
        register_task(Other)
    assert not {"t-clash", "t-mutable"} & set(_TASKS)


def test_parse_options_converts_and_refuses():
    o = parse_options(AddingOptions, {"length": "12", "cell": "gru", "dropout": "0.25", "eval-size": 7})
    assert (o.length, o.cell, o.dropout, o.eval_size) == (12, "gru", 0.25, 7)
    t = parse_options(TrainConfig, {"progress": "off", "lr": 1, "clip_norm": "0"})
    assert t.progress is False and t.lr == 1.0 and isinstance(t.lr, float) and t.clip_norm == 0.0
    with pytest.raises(ValueError, match="expected true or false for progress, got 'maybe'"):
        parse_options(TrainConfig, {"progress": "maybe"})
    with pytest.raises(ValueError, match="expected a number for lr, got 'fast'"):
        parse_options(TrainConfig, {"lr": "fast"})
    with pytest.raises(ValueError, match=r"unknown cell 'lstn'; expected one of: lstm"):
        parse_options(AddingOptions, {"cell": "lstn"})
    with pytest.raises(ValueError, match="expected length >= 2, got 1"):
        parse_options(AddingOptions, {"length": 1})


def test_config_files_and_the_command_line_combine(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[task]\nname = "adding"\nhidden = 32\ncell = "gru"\n[train]\nsteps = 50\nlr = 0.01\n')
    assert read_config_file(path) == ("adding", {"hidden": 32, "cell": "gru"}, {"steps": 50, "lr": 0.01})
    cfg = build_config(None, {"hidden": "16", "seed": "3"}, path)
    assert (cfg.task, cfg.options.hidden, cfg.options.cell) == ("adding", 16, "gru")
    assert (cfg.train.steps, cfg.train.lr, cfg.train.seed) == (50, 0.01, 3)
    again = tmp_path / "config.json"
    import json

    again.write_text(json.dumps(cfg.to_dict()))
    assert build_config(None, {}, again) == cfg
    with pytest.raises(ValueError, match="names task 'other' but .* configures task 'adding'"):
        build_config("other", {}, path)


def test_seeded_and_shuffled_batches_know_their_position():
    a = SeededBatches(lambda i: i * 10)
    assert [next(a) for _ in range(3)] == [0, 10, 20]
    b = SeededBatches(lambda i: i * 10)
    b.load_state_dict(a.state_dict())
    assert next(b) == next(a) == 30

    x = torch.arange(20).float()
    whole = ShuffledBatches([x], 4, seed=1)
    epoch = torch.cat([next(whole)[0] for _ in range(5)])
    assert sorted(epoch.tolist()) == list(range(20))  # one epoch: every item once
    second = torch.cat([next(whole)[0] for _ in range(5)])
    assert sorted(second.tolist()) == list(range(20)) and not torch.equal(epoch, second)
    halves = [ShuffledBatches([x], 4, Shard(r, 2), seed=1) for r in range(2)]
    first = ShuffledBatches([x], 4, seed=1)
    for _ in range(7):
        assert torch.equal(torch.cat([next(h)[0] for h in halves]), next(first)[0])
