"""The training loop: ``Trainer(task, config, run_dir=...).fit()``.

One step is::

    batch = next(batches)                       # this rank's shard, position saved in checkpoints
    out = task.step(model, batch, state)        # loss, and the recurrent state to carry (TBPTT)
    out.loss.backward()                         # DistributedDataParallel averages over ranks
    norm = clip_gradients(...)                  # global norm before clipping, logged every step
    if guard.check(step, loss, norm):           # non-finite: skip (and stop after too many)
        optimizer.step(); state = detach(out.state)
    scheduler.step()

then, when due: evaluation (best checkpoint, early stopping), a checkpoint, hooks. Everything the
next step depends on (weights, optimiser, scheduler, data position, carried state, every random
generator) goes into the checkpoint, so ``resume`` continues exactly.
"""

from __future__ import annotations

import json
import math
import random
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..state import detach_state, map_state
from .batches import derive_seed
from .checkpoint_file import list_checkpoints, step_path
from .clip import clip_gradients
from .config import TrainConfig, to_dict
from .distributed import mean_over_ranks, setup, sum_over_ranks, wrap
from .guard import NonFiniteGuard
from .hooks import DiagnosticsHook, Hook, TimeBudget
from .metrics import MetricsLog, finite
from .optim import build_optimizer, build_scheduler
from .progress import ProgressBar
from .task import StepOutput, Task
from .trainer_checkpoint import load_trainer, save_trainer


def to_device(obj: Any, device: torch.device) -> Any:
    """Move every tensor in a batch (tensors, tuples, NamedTuples, lists, dicts) to ``device``."""
    return map_state(lambda t: t.to(device), obj, keep_others=True)


class Trainer:
    """Trains ``task`` with ``config``; with ``run_dir`` it writes metrics and checkpoints there.

    Seeding: torch is seeded with ``config.seed`` before ``task.build_model()`` (the same weights
    on every rank); when ``fit()`` starts, each rank's generators (torch, Python, NumPy) are seeded
    from ``(seed, rank)``, or set to the states saved in the checkpoint that ``load`` read. Dropout
    and friends draw from these global generators, so fit one trainer at a time in a process.
    """

    def __init__(self, task: Task, config: TrainConfig, *, run_dir: str | Path | None = None, hooks: Sequence[Hook] = ()) -> None:
        if not isinstance(task, Task):
            raise TypeError(f"expected a carousel.train.Task, got {type(task).__name__}")
        if not isinstance(config, TrainConfig):
            raise TypeError(f"expected a TrainConfig, got {type(config).__name__}")
        self.task, self.config, self.hooks = task, config, list(hooks)
        for k, hook in enumerate(self.hooks):
            if not isinstance(hook, Hook) and not all(callable(getattr(hook, m, None)) for m in
                                                      ("on_start", "on_step", "on_eval", "on_checkpoint", "on_end")):
                raise TypeError(f"expected hooks to be carousel.train.Hook objects (subclass it), got {type(hook).__name__} at position {k}")
        if config.diagnose_every:
            self.hooks.append(DiagnosticsHook(every=config.diagnose_every))
        if config.minutes:
            self.hooks.append(TimeBudget(60.0 * config.minutes, config.lr))
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.shard, self.device = setup(config.device)
        self.is_main = self.shard.rank == 0
        torch.manual_seed(config.seed)
        self.model = task.build_model().to(self.device)
        self.ddp = wrap(self.model, self.shard, self.device)
        self.optimizer = build_optimizer(self.model.parameters(), config)
        self.scheduler = build_scheduler(self.optimizer, config, task.mode)
        self.batches = task.train_batches(config.batch_size, self.shard, config.seed)
        self.guard = NonFiniteGuard(config.max_nonfinite)
        self.step, self.state, self.best, self.bad_evals = 0, None, None, 0
        self.trained_seconds = 0.0  # wall time of earlier fits of this run (restored from checkpoints)
        self._fit_started: float | None = None
        self.stop_reason: str | None = None
        self.history: list[dict[str, Any]] = []
        self._eval_finite = True  # the last validation metrics were finite (see good_state)
        self._interrupted = False
        self._metrics: MetricsLog | None = None
        seed = derive_seed(config.seed, self.shard.rank, 1)
        self._restore_rng: Callable[[], None] | None = lambda: self._seed_generators(seed)  # applied when fit() starts

    # ---- configuration recorded with every checkpoint ----------------------------------------------
    def run_config(self) -> dict[str, Any]:
        return {"task": self.task.name, "options": to_dict(self.task.options), "train": to_dict(self.config)}

    @property
    def checkpoint_dir(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / "checkpoints"

    @staticmethod
    def _seed_generators(seed: int) -> None:
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)

    def elapsed(self) -> float:
        """Seconds this run has trained, earlier (resumed) parts included."""
        now = 0.0 if self._fit_started is None else time.monotonic() - self._fit_started
        return self.trained_seconds + now

    def stop(self, reason: str) -> None:
        """Ask the loop to end after the current step (a checkpoint is written first)."""
        self.stop_reason = reason

    # ---- the loop ------------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train until ``config.steps`` (or a stop); returns a summary (steps, last loss, best, reason).

        With a ``run_dir``, the first ``fit`` of a fresh trainer claims it: it must not hold another
        run's metrics or checkpoints (``ValueError``; ``load`` a checkpoint to continue one), and
        ``config.json`` is written when absent, so ``carousel eval``/``resume`` can read the run.
        Ctrl-C (SIGINT, in a single process) lets the current step finish, writes a checkpoint and
        then raises ``KeyboardInterrupt``; a second Ctrl-C stops at once.
        """
        cfg = self.config
        if self.run_dir is not None and self.is_main:
            self._claim_run_dir()
        if self._restore_rng is not None:
            self._restore_rng()
            self._restore_rng = None
        if self.run_dir is not None and self.is_main:
            self._metrics = MetricsLog(self.run_dir / "metrics.jsonl")
        saved_at = -1
        self._fit_started = time.monotonic()
        self._interrupted = False
        previous = self._catch_interrupts()
        try:
            bar = ProgressBar(cfg.steps, self.step, unit=self.task.unit, enabled=cfg.progress and self.is_main,
                              seconds=60.0 * cfg.minutes or None, start_seconds=self.trained_seconds, monitor=self.task.monitor)
            with bar:
                for hook in self.hooks:
                    hook.on_start(self)
                while self.step < cfg.steps and self.stop_reason is None and not self._interrupted:
                    record = self.train_step()
                    bar.update(record, self.elapsed())
                    if self._interrupted:  # Ctrl-C during the step: keep it, skip evaluation (resume stays exact)
                        break
                    last = self.step >= cfg.steps or self.stop_reason is not None
                    if (cfg.eval_every and self.step % cfg.eval_every == 0) or last:
                        self.evaluate()
                    if self.step % cfg.checkpoint_every == 0 or last or self.stop_reason is not None:
                        self.save()
                        saved_at = self.step
            if saved_at != self.step and self.step > 0:
                self.save()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            self.trained_seconds, self._fit_started = self.elapsed(), None
            if self._metrics is not None:
                self._metrics.close()
                self._metrics = None
        if self._interrupted:
            raise KeyboardInterrupt
        for hook in self.hooks:
            hook.on_end(self)
        done = self.history[-1] if self.history else {}
        return {"steps": self.step, "loss": done.get("loss"), "best": self.best, "stopped": self.stop_reason, "skipped": self.guard.skipped}

    def _catch_interrupts(self) -> Any:
        """Install the Ctrl-C handler of ``fit`` (main thread of a single process only); returns the old one."""
        if self.shard.world_size > 1 or threading.current_thread() is not threading.main_thread():
            return None
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return None  # someone else handles SIGINT (a test runner, an embedding application): leave it

        def on_interrupt(signum: int, frame: Any) -> None:
            if self._interrupted:
                raise KeyboardInterrupt
            self._interrupted = True
            if self.is_main:
                print("\ninterrupted: finishing this step and writing a checkpoint (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

        return signal.signal(signal.SIGINT, on_interrupt)

    def _claim_run_dir(self) -> None:
        d = self.run_dir
        assert d is not None
        if d.exists() and not d.is_dir():
            raise ValueError(f"expected a directory for run_dir, but {d} is a file")
        if self.step == 0:
            metrics = d / "metrics.jsonl"
            used = [n for n, there in (("metrics.jsonl", metrics.is_file() and metrics.stat().st_size > 0),
                                       ("step checkpoints", bool(list_checkpoints(d / "checkpoints")))) if there]
            if used:
                raise ValueError(
                    f"run_dir {d} already holds a run ({' and '.join(used)}); continue it with trainer.load(its latest "
                    f"checkpoint) or `carousel resume {d}`, or give a new run_dir"
                )
        d.mkdir(parents=True, exist_ok=True)
        config = d / "config.json"
        if not config.exists():  # a run started from Python: record it as `carousel train` would
            tmp = d / ".config.json.tmp"
            tmp.write_text(json.dumps(self.run_config(), indent=2) + "\n", encoding="utf-8")
            tmp.replace(config)

    def train_step(self) -> dict[str, Any]:
        """One optimiser step (or one skipped step); returns the record logged for it."""
        cfg = self.config
        batch = to_device(next(self.batches), self.device)
        self.model.train()
        start = time.perf_counter()
        out = self.task.step(self.ddp, batch, self.state)
        if not isinstance(out, StepOutput):
            raise TypeError(f"task {self.task.name!r}: step must return a StepOutput, got {type(out).__name__}")
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        norm = float(clip_gradients(self.model.parameters(), max_norm=cfg.clip_norm, max_value=cfg.clip_value))
        extra = {k: float(v) for k, v in out.metrics.items()}
        loss, *values = mean_over_ranks([float(out.loss.detach()), *extra.values()], self.shard, self.device)
        items = sum_over_ranks(int(out.items), self.shard, self.device)
        self.step += 1
        if self.guard.check(self.step, loss, norm):
            self.optimizer.step()
            self.state = detach_state(out.state)
            skipped = False
        else:
            self.optimizer.zero_grad(set_to_none=True)
            self.state = None
            skipped = True
        if self.config.schedule != "plateau":
            with warnings.catch_warnings():  # a skipped first step would warn that the optimiser did not step
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)`")
                self.scheduler.step()
        seconds = time.perf_counter() - start
        record = {
            "kind": "train",
            "step": self.step,
            "loss": finite(loss),
            "grad_norm": finite(norm),
            "lr": self.optimizer.param_groups[0]["lr"],
            "items": items,
            "rate": items / seconds if seconds > 0 else 0.0,
            "skipped": skipped,
            **{k: finite(v) for k, v in zip(extra, values)},
        }
        self.history.append(record)
        if self._metrics is not None and (self.step % cfg.log_every == 0 or skipped):
            self._metrics.write(record)
        for hook in self.hooks:
            hook.on_step(self, record)
        return record

    def evaluate(self, split: str | None = None) -> dict[str, Any]:
        """Evaluate on ``split`` (the validation split by default); on validation, track the best
        model (``best.safetensors``), early stopping and the ``plateau`` schedule."""
        split = self.task.splits[0] if split is None else self.task.check_split(split)
        self.model.eval()
        with torch.no_grad():
            metrics = self.task.evaluate(self.model, split)
        monitor, mode = self.task.monitor, self.task.mode
        if monitor not in metrics:
            raise ValueError(f"task {self.task.name!r}: evaluate() returned {sorted(metrics)}, without its monitor {monitor!r}")
        record = {"kind": "eval", "split": split, "step": self.step, **{k: float(v) for k, v in metrics.items()}}
        if split == self.task.splits[0]:
            self._eval_finite = all(math.isfinite(float(v)) for v in metrics.values())
            value = float(metrics[monitor])
            improved = self.best is None or (value < self.best if mode == "min" else value > self.best)
            if improved:
                self.best, self.bad_evals = value, 0
                self.save(best=True)
            else:
                self.bad_evals += 1
                if self.config.patience and self.bad_evals >= self.config.patience:
                    self.stop(f"early stopping: {monitor} did not improve for {self.bad_evals} evaluations (best {self.best:.6g})")
            if self.config.schedule == "plateau":
                self.scheduler.step(value)  # built with the task's mode
            record["best"] = self.best
        if self._metrics is not None:
            self._metrics.write(record)
        for hook in self.hooks:
            hook.on_eval(self, record)
        return record

    # ---- checkpoints (what they hold: trainer_checkpoint.py; the file format: checkpoint_file.py) -------
    def save(self, *, best: bool = False) -> Path | None:
        """Write a checkpoint of the whole training state (rank 0 writes; every rank takes part)."""
        if self.checkpoint_dir is None:
            return None
        path = self.checkpoint_dir / "best.safetensors" if best else step_path(self.checkpoint_dir, self.step)
        good = self.good_state()
        written = save_trainer(self, path, keep=None if best else self.config.keep, good=good)
        if written is not None and not best and good:
            self.guard.last_checkpoint = str(written)
            for hook in self.hooks:
                hook.on_checkpoint(self, written)
        return written

    def good_state(self) -> bool:
        """Whether the state a checkpoint would hold now is good to go back to: every weight finite,
        the last step's training loss finite (not skipped) and the last validation metrics finite.
        Only such checkpoints are named as "the last good checkpoint" when non-finite steps stop a run."""
        last = self.history[-1] if self.history else None
        if last is not None and (last["loss"] is None or last["skipped"]):
            return False
        if not self._eval_finite:
            return False
        with torch.no_grad():
            return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())

    def load(self, path: str | Path, *, allow: Sequence[str] = ("steps", "progress", "keep", "log_every", "checkpoint_every")) -> None:
        """Restore the whole training state from ``path``; the recorded config must match this one
        except for the ``allow``-ed trainer options."""
        load_trainer(self, Path(path), allow=allow)
