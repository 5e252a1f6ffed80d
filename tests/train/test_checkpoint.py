"""Checkpoint files: exact round trips, atomic writes that survive a crash, clear errors for
corrupt or mismatched checkpoints."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file

from carousel.train import (
    CheckpointError,
    TrainConfig,
    Trainer,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from carousel.train.checkpoint_file import step_path
from carousel.train.trainer_checkpoint import load_model_weights
from carousel.train.tasks.adding import AddingOptions, AddingTask


def sample_tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "a": torch.randn(3, 4, generator=g),
        "b/c": torch.randn(5, generator=g, dtype=torch.float64),
        "half": torch.randn(2, 2, generator=g).to(torch.bfloat16),
        "ids": torch.randint(0, 100, (6,), generator=g),
        "mask": torch.rand(4, generator=g) > 0.5,
        "scalar": torch.tensor(3.5),
    }


def test_round_trip_is_exact(tmp_path):
    tensors = sample_tensors()
    meta = {"step": 7, "nested": {"x": [1, 2.5, None, "s"]}, "inf": float("inf")}
    save_checkpoint(tmp_path / "c.safetensors", tensors, meta)
    got, got_meta = load_checkpoint(tmp_path / "c.safetensors")
    assert set(got) == set(tensors)
    for k, t in tensors.items():
        assert got[k].dtype == t.dtype and torch.equal(got[k], t), k
    assert got_meta["step"] == 7 and got_meta["nested"] == meta["nested"] and got_meta["inf"] == float("inf")


def test_shared_tensors_are_stored_once_and_views_copied(tmp_path):
    w = torch.randn(4, 3)
    tensors = {"embedding.weight": w, "head.weight": w, "row": w[1], "t": w.t()}
    save_checkpoint(tmp_path / "c.safetensors", tensors, {})
    got, meta = load_checkpoint(tmp_path / "c.safetensors")
    assert meta["aliases"] == {"head.weight": "embedding.weight"}
    for k, t in tensors.items():
        assert torch.equal(got[k], t), k


def test_corrupt_files_are_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, sample_tensors(), {"step": 1})
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) - 10])
    with pytest.raises(CheckpointError, match="corrupt or not a safetensors file"):
        load_checkpoint(tmp_path / "cut.safetensors")
    flipped = bytearray(data)
    flipped[-3] ^= 0xFF  # inside the tensor bytes: still a valid file
    (tmp_path / "flip.safetensors").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(tmp_path / "flip.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt or not a safetensors file"):
        load_checkpoint(tmp_path / "junk.safetensors")
    save_file({"x": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="not a carousel checkpoint"):
        load_checkpoint(tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "missing.safetensors")


CRASH = textwrap.dedent(
    """
    import os, sys
    from carousel.train import build_config, train_run

    real_fsync = os.fsync

    def crash_in_step_4(fd):
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if name.startswith(".step-00000004"):  # die with half of step 4's bytes on disk, before the rename
            os.ftruncate(fd, os.fstat(fd).st_size // 2)
            os._exit(17)
        real_fsync(fd)

    os.fsync = crash_in_step_4
    cfg = build_config("adding", dict(steps=6, length=6, hidden=8, batch_size=4, eval_every=100,
                                      checkpoint_every=2, progress=False, keep=5))
    train_run(cfg, sys.argv[1])
    """
)


def test_a_crash_mid_write_leaves_the_previous_checkpoint_and_resume_continues_exactly(tmp_path):
    from carousel.train import build_config, read_metrics, resume_run, train_run

    run = tmp_path / "crashed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", CRASH, str(run)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 17, proc.stderr
    folder = run / "checkpoints"
    assert [s for s, _ in list_checkpoints(folder)] == [2]  # the torn step-4 file never got a checkpoint name
    assert any(name.startswith(".step-00000004") for name in os.listdir(folder))  # the torn temporary file
    _, meta = load_checkpoint(latest_checkpoint(folder))
    assert meta["step"] == 2
    resume_run(run)
    assert not any(name.startswith(".") for name in os.listdir(folder))  # cleaned by the next save
    cfg = build_config("adding", dict(steps=6, length=6, hidden=8, batch_size=4, eval_every=100, checkpoint_every=2, progress=False, keep=5))
    train_run(cfg, tmp_path / "whole")
    losses = [[r["loss"] for r in read_metrics(d / "metrics.jsonl") if r["kind"] == "train"] for d in (run, tmp_path / "whole")]
    assert losses[0] == losses[1] and len(losses[0]) == 6


def small_trainer(run_dir, hidden=8, **train):
    cfg = TrainConfig(**{"steps": 2, "batch_size": 4, "progress": False, "eval_every": 100, **train})
    return Trainer(AddingTask(AddingOptions(length=5, hidden=hidden, eval_size=20)), cfg, run_dir=run_dir)


def test_a_checkpoint_of_another_config_or_model_is_refused(tmp_path):
    t = small_trainer(tmp_path)
    t.fit()
    path = latest_checkpoint(tmp_path / "checkpoints")
    other = small_trainer(None, hidden=16)
    with pytest.raises(CheckpointError, match="another config: hidden: checkpoint 8, now 16"):
        other.load(path)
    with pytest.raises(CheckpointError, match="lr: checkpoint 0.001, now 0.01"):
        small_trainer(None, lr=0.01).load(path)
    small_trainer(None, steps=5).load(path)  # a longer run is allowed
    tensors, _ = load_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"does not fit this model: .*shapes differ: rnn.layers.0.cell.weight_ih"):
        load_model_weights(other.model, tensors, path)
    del tensors["model/head.bias"]
    with pytest.raises(CheckpointError, match=r"missing \['head.bias'\]"):
        load_model_weights(t.model, tensors, path)


def test_old_checkpoints_are_pruned_but_best_is_kept(tmp_path):
    t = small_trainer(tmp_path, steps=7, checkpoint_every=1, keep=2)
    t.fit()
    names = sorted(os.listdir(tmp_path / "checkpoints"))
    assert names == ["best.safetensors", step_path("", 6).name, step_path("", 7).name]
