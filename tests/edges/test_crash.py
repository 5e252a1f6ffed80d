"""Crash trials: a tiny training run killed with SIGKILL at seeded random moments, one of them in the
middle of a checkpoint write, and resumed with ``carousel resume`` each time, ends with the same
losses and evaluations as the uninterrupted run; after every kill, every checkpoint file loads.

The killed runs are separate processes (``python -m carousel.cli``); the uninterrupted run and the
last resume run in this process. ``CAROUSEL_CHECKPOINT_PAUSE`` makes the checkpoint writer wait
between writing its temporary file and renaming it, so that a kill lands inside a write.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from carousel.train import list_checkpoints, load_checkpoint, read_metrics
from carousel.train.checkpoint_file import PAUSE_ENV
from edges.cli_support import ADDING, invoke, one_thread  # noqa: F401

STEPS = 40
ARGS = [*ADDING, "--steps", str(STEPS), "--checkpoint-every", "3", "--eval-every", "5", "--keep", "2"]


def records(run: Path) -> list[tuple]:
    """What must match the uninterrupted run: every training and evaluation record but the throughput."""
    return [(r["kind"], r["step"], r.get("loss"), r.get("grad_norm"), r.get("lr"), r.get("best"))
            for r in read_metrics(run / "metrics.jsonl")]


def train_steps_written(run: Path) -> int:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return 0
    return sum(1 for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if '"kind": "train"' in line)


def writing_a_checkpoint(run: Path) -> bool:
    folder = run / "checkpoints"
    return folder.is_dir() and any(".tmp-" in name for name in os.listdir(folder))


def start(args: list[str], pause: float | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop(PAUSE_ENV, None)
    if pause is not None:
        env[PAUSE_ENV] = str(pause)
    return subprocess.Popen([sys.executable, "-m", "carousel.cli", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def kill_when(proc: subprocess.Popen, ready, delay: float, timeout: float = 60.0) -> None:
    """SIGKILL ``proc`` ``delay`` seconds after ``ready()`` first holds; fails when it ends first."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the run ended before the planned kill: {proc.stderr.read().decode()}"
        assert time.monotonic() < deadline, "the run did not reach the planned moment"
        time.sleep(0.002)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL, "the run ended before the kill"


def every_checkpoint_loads(run: Path) -> int:
    folder = run / "checkpoints"
    paths = [p for _, p in list_checkpoints(folder)] + ([folder / "best.safetensors"] if (folder / "best.safetensors").exists() else [])
    for path in paths:
        load_checkpoint(path)  # raises CheckpointError for a torn file
    return len(paths)


def test_runs_killed_at_random_moments_and_resumed_equal_the_uninterrupted_run(tmp_path):
    whole, run = tmp_path / "whole", tmp_path / "killed"
    code, text = invoke("train", "adding", *ARGS, "--run-dir", whole)
    assert code == 0, text
    rng = random.Random(17)

    # 1. the first process, killed at a random step after training began
    at = rng.randint(2, 10)
    kill_when(start(["train", "adding", *ARGS, "--run-dir", str(run)]), lambda: train_steps_written(run) >= at, rng.uniform(0, 0.05))
    every_checkpoint_loads(run)

    # 2. a resume killed inside a checkpoint write: its temporary file is complete, the rename has not happened
    kill_when(start(["resume", str(run)], pause=30.0), lambda: writing_a_checkpoint(run), rng.uniform(0, 0.05))
    assert writing_a_checkpoint(run)  # the temporary file stayed behind; it is no checkpoint
    every_checkpoint_loads(run)

    # 3. a resume killed at a random later step
    done = max([s for s, _ in list_checkpoints(run / "checkpoints")] or [0])
    at = rng.randint(done + 2, done + 12)
    kill_when(start(["resume", str(run)]), lambda: train_steps_written(run) >= at, rng.uniform(0, 0.05))
    assert every_checkpoint_loads(run) >= 1

    # 4. the last resume runs to the end here
    code, text = invoke("resume", str(run))
    assert code == 0, text
    assert every_checkpoint_loads(run) >= 2
    assert not writing_a_checkpoint(run)  # the next save removed the stale temporary file
    assert records(run) == records(whole)
    assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [s for s, _ in list_checkpoints(whole / "checkpoints")]
