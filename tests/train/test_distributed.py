"""Data-parallel training: two CPU processes under torchrun (gloo) run the unchanged training code;
their weights stay identical, and each step equals the one-process step on the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from ddp_worker import TASKS, train
from safetensors.torch import load_file

from carousel.train import load_checkpoint

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="torch built without gloo")


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    worker = Path(__file__).with_name("ddp_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(worker), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


@pytest.mark.parametrize("name", sorted(TASKS))
def test_two_processes_agree_with_each_other_and_with_one_process(two_processes, name, tmp_path):
    ranks = [load_file(str(two_processes / f"{name}-rank{r}.safetensors")) for r in range(2)]
    logs = [json.loads((two_processes / f"{name}-rank{r}.json").read_text()) for r in range(2)]
    assert [log["world"] for log in logs] == [2, 2]
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key  # identical, not merely close
    single = train(name, None)
    assert single.shard.world_size == 1
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(ranks[0][key], value, rtol=1e-5, atol=1e-6, msg=key)
    ones = [h["loss"] for h in single.history]
    assert logs[0]["losses"] == pytest.approx(ones, rel=1e-5)  # the logged loss is the global batch's
    assert logs[1]["losses"] == logs[0]["losses"]
    # the weights moved: the comparison is not between two untouched initialisations
    initial = TASKS[name]()
    torch.manual_seed(0)
    start = initial.build_model().state_dict()
    assert any(not torch.allclose(start[k], ranks[0][k]) for k in start)


def test_rank_zero_writes_one_checkpoint_with_every_rank_state(two_processes):
    tensors, meta = load_checkpoint(two_processes / "run-stream" / "checkpoints" / "step-00000003.safetensors")
    assert meta["world_size"] == 2 and len(meta["ranks"]) == 2
    states = [k for k in tensors if "/state/" in k]
    assert any(k.startswith("rank0/") for k in states) and any(k.startswith("rank1/") for k in states)
    # each rank carries the state of its own streams: they differ
    k0 = sorted(k for k in states if k.startswith("rank0/"))[0]
    assert not torch.equal(tensors[k0], tensors[k0.replace("rank0/", "rank1/", 1)])


def test_a_run_resumed_under_torchrun_equals_the_uninterrupted_run(two_processes):
    # each rank restores its own data position, carried TBPTT state and generators from rank 0's file
    for r in range(2):
        whole = load_file(str(two_processes / f"stream-rank{r}.safetensors"))
        resumed = load_file(str(two_processes / f"resumed-rank{r}.safetensors"))
        for key in whole:
            assert torch.equal(resumed[key], whole[key]), (r, key)
        log = json.loads((two_processes / f"resumed-rank{r}.json").read_text())
        full = json.loads((two_processes / f"stream-rank{r}.json").read_text())
        assert log["from"] == 3 and log["losses"] == full["losses"][2:]
