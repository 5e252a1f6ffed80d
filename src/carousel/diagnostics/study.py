"""The gradients study: every model of ``study_models`` on the adding and copying tasks at growing T.

For each (model, task, T) one run trains ``StudyNet`` from a fixed seed, for ``steps`` optimiser
steps or ``seconds`` of wall time, whichever comes first, and records the test loss next to the
task's chance baseline and a diagnostics snapshot on a fixed batch at the start and at the end
(``||dL/ds_k||`` against the lag, Jacobian spectra, gates, verdicts). A loss that is not finite
ends the run as *diverged*. ``run_study`` returns every run's record; ``study_report`` writes them
as markdown with plots. Optimisers, the same for every model of a task: Adam with learning rate
1e-2 on adding; RMSprop with 1e-3 on copying (the setting of Arjovsky et al. 2016, section 4.1).
"""

from __future__ import annotations

import dataclasses
import math
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

from ..data.tasks import COPY_LENGTH, SyntheticTask, score, synthetic_task
from .snapshot import diagnose
from .study_models import STUDY_MODELS, StudyNet, study_model

STUDY_TASKS = ("adding", "copying")


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
        if not self.seconds > 0:
            raise ValueError(f"expected seconds to be positive, got {self.seconds!r}")
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


def _optimizer(task: str, params: Any) -> torch.optim.Optimizer:
    if task == "adding":
        return torch.optim.Adam(params, lr=1e-2)
    return torch.optim.RMSprop(params, lr=1e-3)


def _loss(task: SyntheticTask, prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if task.loss == "mse":
        return F.mse_loss(prediction, y)
    return F.cross_entropy(prediction.reshape(-1, prediction.shape[-1]), y.reshape(-1))  # (B*L, C) vs (B*L,)


def run_one(model_name: str, task_name: str, T: int, config: StudyConfig) -> dict[str, Any]:
    """Train one model on one task at one T; returns its record (plain numbers, JSON-able)."""
    spec, task = study_model(model_name), synthetic_task(task_name)
    torch.manual_seed(config.seed)
    net = StudyNet(spec.build(task.input_size, config.hidden), task.output_size, every_step=task.every_step)
    x_test, y_test = task.generate(config.test_size, T, seed=1_000_003 + T)
    x_diag, y_diag = task.generate(config.diag_size, T, seed=2_000_003 + T)
    diag_loss: Callable[[], torch.Tensor] = lambda: _loss(task, net(x_diag), y_diag)
    start_snapshot = diagnose(net, diag_loss, step=0)
    opt = _optimizer(task_name, net.parameters())
    eval_at = {max(1, round(config.steps * (j + 1) / config.evals)) for j in range(config.evals)}
    curve, train_losses, diverged, step = [], [], None, 0
    began = time.monotonic()
    while step < config.steps and time.monotonic() - began < config.seconds:
        x, y = task.generate(config.batch, T, seed=config.seed * 10_000_019 + step + 1)
        loss = _loss(task, net(x), y)
        opt.zero_grad()
        loss.backward()
        step += 1
        if not math.isfinite(loss.item()):
            diverged = step
            break
        if spec.clip is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), spec.clip)
        opt.step()
        train_losses.append(loss.item())
        if step in eval_at:
            curve.append((step, _test(net, task, x_test, y_test)[0]))
    seconds = time.monotonic() - began
    test, recall = _test(net, task, x_test, y_test)
    end_snapshot = diagnose(net, diag_loss, step=step)
    return {
        "model": model_name, "label": spec.label, "task": task_name, "T": T, "steps": step,
        "seconds": seconds, "diverged_at": diverged, "test": test, "baseline": task.baseline(T),
        "recall": recall, "test_curve": curve, "train_tail": _mean(train_losses[-50:]),
        "start": start_snapshot.to_dict(), "end": end_snapshot.to_dict(),
    }


def _test(net: StudyNet, task: SyntheticTask, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float | None]:
    """Test loss, and for copying the share of the 10 recalled symbols predicted right."""
    net.eval()
    with torch.no_grad():
        prediction = net(x)
    net.train()
    loss = score(task, prediction, y)
    if not math.isfinite(loss):
        loss = math.inf
    recall = None
    if task.name == "copying":
        recall = float((prediction[:, -COPY_LENGTH:].argmax(-1) == y[:, -COPY_LENGTH:]).double().mean())
    return loss, recall


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
        import multiprocessing

        with ProcessPoolExecutor(config.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for future in as_completed([pool.submit(_worker, job) for job in jobs]):
                finished(future.result())
    have.update({key(r): r for r in new})
    return [have[run] for run in config.runs() if run in have] + [r for r in new if "error" in r]


def config_dict(config: StudyConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
