"""The gradients study: every line-up model on the adding and copying tasks at growing T.

For each (model, task, T) one run trains ``StudyTask``'s model through ``carousel.train.Trainer``
from a fixed seed, for ``steps`` optimiser steps or ``seconds`` of wall time, whichever comes first,
and records the test loss next to the task's chance baseline and a diagnostics snapshot on a fixed
batch at the start and at the end (``||dL/ds_k||`` against the lag, Jacobian spectra, gates,
verdicts). The first step whose loss or gradient is not finite ends the run as *diverged*.
``run_study`` returns every run's record; ``report.write_report`` writes them as markdown with
plots. Optimisers, the same for every model of a task: Adam with learning rate 1e-2 on adding;
RMSprop with 1e-3 on copying (the setting of Arjovsky et al. 2016, section 4.1).
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch

from ...data.tasks import synthetic_task
from ...diagnostics import diagnose
from ...train import Hook, NonFiniteError, TrainConfig, Trainer, WallClockLimit
from .lineup import STUDY_MODELS, study_model
from .task import STUDY_TASKS, StudyRunOptions, StudyTask


@dataclass(frozen=True)
class StudyConfig:
    """What the study runs; ``QUICK`` is a seconds-long version for checking the machinery."""

    models: tuple[str, ...] = tuple(STUDY_MODELS)
    adding: tuple[int, ...] = (100, 200)  # sequence lengths T of the adding task
    copying: tuple[int, ...] = (100, 200)  # delays T of the copying task
    hidden: int = 32
    batch: int = 32
    steps: int = 4000  # per run, at most
    seconds: float = 150.0  # per run, at most
    evals: int = 10  # test-loss measurements along each run
    test_size: int = 1000
    diag_size: int = 32
    seed: int = 0
    jobs: int = 1

    def __post_init__(self) -> None:
        for name in self.models:
            study_model(name)
        for field in ("hidden", "batch", "steps", "evals", "test_size", "diag_size", "jobs"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"expected {field} to be a positive integer, got {value!r}")
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, (int, float)) or not 0 < self.seconds < math.inf:
            raise ValueError(f"expected seconds to be a positive finite number, got {self.seconds!r}")
        for task in STUDY_TASKS:
            if any(not isinstance(T, int) or T < 2 for T in getattr(self, task)):
                raise ValueError(f"expected {task} lengths to be integers >= 2, got {getattr(self, task)!r}")

    def runs(self) -> Iterator[tuple[str, str, int]]:
        """(model, task, T) of every run, model by model."""
        for model in self.models:
            for task in STUDY_TASKS:
                for T in getattr(self, task):
                    yield model, task, T


QUICK = StudyConfig(models=("tanh-1.0", "lstm", "orthogonal"), adding=(12,), copying=(6,), hidden=8, batch=16,
                    steps=25, seconds=30.0, evals=2, test_size=64, diag_size=8)


class _Record(Hook):
    """Keeps the test loss of every evaluation and the training losses of a study run."""

    def __init__(self) -> None:
        self.curve: list[tuple[int, float]] = []
        self.recall: float | None = None

    def on_eval(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self.curve.append((record["step"], record["loss"]))
        self.recall = record.get("recall")


def train_config(model_name: str, task_name: str, config: StudyConfig) -> TrainConfig:
    """The trainer's options of one run: the task's optimiser, the model's clipping, evaluations along the run."""
    adding = task_name == "adding"
    return TrainConfig(
        steps=config.steps, batch_size=config.batch, lr=1e-2 if adding else 1e-3, optimizer="adam" if adding else "rmsprop",
        clip_norm=study_model(model_name).clip or 0.0, max_nonfinite=1, eval_every=max(1, round(config.steps / config.evals)),
        checkpoint_every=config.steps, progress=False, seed=config.seed, device="cpu",
    )


def run_one(model_name: str, task_name: str, T: int, config: StudyConfig) -> dict[str, Any]:
    """Train one model on one task at one T through the trainer; returns its record (plain numbers, JSON-able)."""
    spec = study_model(model_name)
    task = StudyTask(StudyRunOptions(model=model_name, task=task_name, length=T, hidden=config.hidden, test_size=config.test_size))
    recorded = _Record()
    trainer = Trainer(task, train_config(model_name, task_name, config), hooks=[WallClockLimit(config.seconds), recorded])
    net = trainer.model
    diag_loss = task.diagnostic_loss(net, seed=2_000_003 + T, size=config.diag_size)
    start_snapshot = diagnose(net, diag_loss, step=0)
    diverged = None
    try:
        trainer.fit()
        test, recall = recorded.curve[-1][1], recorded.recall
    except NonFiniteError:
        diverged = trainer.step
        net.eval()
        with torch.no_grad():
            final = task.evaluate(net, "test")
        test, recall = final["loss"], final.get("recall")
    end_snapshot = diagnose(net, diag_loss, step=trainer.step)
    train_losses = [r["loss"] for r in trainer.history if r["loss"] is not None]
    return {
        "model": model_name, "label": spec.label, "task": task_name, "T": T, "steps": trainer.step,
        "seconds": trainer.elapsed(), "diverged_at": diverged, "test": test, "baseline": synthetic_task(task_name).baseline(T),
        "recall": recall, "test_curve": recorded.curve, "train_tail": _mean(train_losses[-50:]),
        "start": start_snapshot.to_dict(), "end": end_snapshot.to_dict(),
    }


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def safe_run(model_name: str, task_name: str, T: int, config: StudyConfig) -> dict[str, Any]:
    """``run_one``, or a record holding the error: one failed run is reported, not fatal to the study."""
    try:
        return run_one(model_name, task_name, T, config)
    except Exception as err:  # noqa: BLE001 - the report shows what went wrong in which run
        return {"model": model_name, "label": study_model(model_name).label, "task": task_name, "T": T,
                "error": f"{type(err).__name__}: {err}"}


def _worker(args: tuple[str, str, int, StudyConfig]) -> dict[str, Any]:
    torch.set_num_threads(1)  # small matrices: one thread per run, runs side by side
    return safe_run(*args)


def run_study(
    config: StudyConfig,
    *,
    done: list[dict[str, Any]] = (),
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Every run of ``config`` (``config.jobs`` at a time, in worker processes when more than one),
    except those already in ``done`` (records of an interrupted study, kept as they are); returned in
    the order of ``config.runs()``. ``on_result`` sees each new record as soon as it is finished."""
    key = lambda r: (r["model"], r["task"], r["T"])  # noqa: E731
    have = {key(r): r for r in done if "error" not in r}
    jobs = [(m, t, T, config) for m, t, T in config.runs() if (m, t, T) not in have]
    new: list[dict[str, Any]] = []

    def finished(result: dict[str, Any]) -> None:
        new.append(result)
        if on_result:
            on_result(result)

    if config.jobs == 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # small matrices: a second thread only waits on a busy machine
        try:
            for job in jobs:
                finished(safe_run(*job))
        finally:
            torch.set_num_threads(threads)
    elif jobs:
        with ProcessPoolExecutor(config.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for future in as_completed([pool.submit(_worker, job) for job in jobs]):
                finished(future.result())
    have.update({key(r): r for r in new})
    return [have[run] for run in config.runs() if run in have] + [r for r in new if "error" in r]


def config_dict(config: StudyConfig) -> dict[str, Any]:
    """The study's settings as a JSON-able dict."""
    return dataclasses.asdict(config)
