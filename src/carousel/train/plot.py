"""``loss.png`` of a run: training loss, the gradient norm before clipping, and the validation metric.

matplotlib is imported here, when a plot is drawn (``pip install carousel[plot]``), never at
``import carousel``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from .metrics import read_metrics
from .registry import get_task


def plot_run(run_dir: str | Path, name: str = "loss.png") -> Path | None:
    """Draw the run's metrics to ``run_dir/name``; returns the path, or None without matplotlib or metrics."""
    run_dir = Path(run_dir)
    records = read_metrics(run_dir / "metrics.jsonl")
    train = [r for r in records if r.get("kind") == "train" and r.get("loss") is not None]
    if not train or importlib.util.find_spec("matplotlib") is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = [r for r in records if r.get("kind") == "eval" and r.get("split") == records_split(records)]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, constrained_layout=True)
    steps = [r["step"] for r in train]
    top.plot(steps, [r["loss"] for r in train], lw=0.8, alpha=0.6, label="training loss")
    top.set_ylabel("loss")
    monitor = _monitor(run_dir)
    if evals and "loss" in evals[0]:
        top.plot([r["step"] for r in evals], [r["loss"] for r in evals], "o-", ms=3, label=f"{evals[0]['split']} loss")
    if evals and monitor != "loss" and monitor in evals[0]:
        right = top.twinx()
        right.plot([r["step"] for r in evals], [r[monitor] for r in evals], "s--", ms=3, color="tab:green", label=f"{evals[0]['split']} {monitor}")
        right.set_ylabel(monitor)
        right.legend(loc="lower left", fontsize=8)
    top.legend(loc="upper right", fontsize=8)
    norms = [(r["step"], r["grad_norm"]) for r in train if r.get("grad_norm")]
    if norms:
        bottom.semilogy(*zip(*norms), lw=0.8, color="tab:red")
    clip = _clip_norm(run_dir)
    if clip:
        bottom.axhline(clip, ls="--", lw=0.8, color="k", label=f"clip_norm {clip:g}")
        bottom.legend(loc="upper right", fontsize=8)
    bottom.set_ylabel("gradient norm (before clipping)")
    bottom.set_xlabel("step")
    path = run_dir / name
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _monitor(run_dir: Path) -> str:
    """The run's task's monitored metric (``"loss"`` when the task is not known here)."""
    try:
        return get_task(json.loads((run_dir / "config.json").read_text())["task"]).monitor
    except (OSError, ValueError, KeyError):
        return "loss"


def _clip_norm(run_dir: Path) -> float:
    try:
        return float(json.loads((run_dir / "config.json").read_text())["train"]["clip_norm"])
    except (OSError, ValueError, KeyError):
        return 0.0


def records_split(records: list[dict]) -> str | None:
    """The split that training evaluations use (the first one seen)."""
    return next((r.get("split") for r in records if r.get("kind") == "eval"), None)
