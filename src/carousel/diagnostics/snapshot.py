"""``diagnose``: every diagnostic of a model on one batch, as a snapshot that can be saved and plotted.

A ``Snapshot`` holds plain numbers (lists of floats), so a run can append one per recording to a
JSON-lines file (``diagnostics.jsonl`` in its run directory) and ``carousel diagnose`` can plot
the history later without the model. Per layer it keeps the gradient norm at every step, the
Jacobian spectrum against the lag, the spectral radius of each recurrent block, the gate
statistics and the verdict.
"""

from __future__ import annotations

import errno
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from torch import Tensor, nn

from .flow import flow_from_traces
from .gates import gate_stats
from .jacobian import recurrent_radius, spectrum
from .trace import recording
from .verdict import Verdict, judge

HISTORY_FILE = "diagnostics.jsonl"


def _floats(t: Tensor) -> list[float]:
    return [float(v) for v in t]


@dataclass
class LayerSnapshot:
    """One layer's diagnostics. Lists are indexed by step ``k`` (``grad_norm``, gates) or lag - 1 (``jac_*``)."""

    name: str
    cell: str
    grad_norm: list[float]
    grad_fields: dict[str, list[float]]
    jac_top: list[float]
    jac_bottom: list[float]
    jac_radius: list[float]
    radius: dict[str, float]
    gate_mean: dict[str, list[float]]
    gate_saturation: dict[str, list[float]]
    verdict: Verdict

    def grad_by_lag(self) -> list[float]:
        """``grad_norm`` from the last step backwards: index 0 is lag 0."""
        return self.grad_norm[::-1]

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "verdict"}
        d["verdict"] = self.verdict.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LayerSnapshot":
        return cls(**{**d, "verdict": Verdict(**d["verdict"])})


@dataclass
class Snapshot:
    """Diagnostics of every recurrent layer at one point of training (``step``: optimiser steps so far)."""

    step: int | None
    loss: float
    layers: dict[str, LayerSnapshot] = field(default_factory=dict)

    def verdicts(self) -> list[Verdict]:
        return [layer.verdict for layer in self.layers.values()]

    def to_dict(self) -> dict:
        return {"step": self.step, "loss": self.loss, "layers": {n: l.to_dict() for n, l in self.layers.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "Snapshot":
        return cls(d["step"], d["loss"], {n: LayerSnapshot.from_dict(l) for n, l in d["layers"].items()})


def diagnose(
    model: nn.Module,
    compute_loss: Callable[[], Tensor],
    *,
    step: int | None = None,
    jacobians: bool = True,
    max_lag: int | None = None,
    jacobian_batch: int = 4,
) -> Snapshot:
    """Run ``compute_loss()`` (which calls ``model``) once, recording it, and diagnose every layer.

    ``jacobians=False`` skips the Jacobian spectra (the costly part: one reverse pass per state
    unit per step); ``max_lag`` bounds the lags examined (default: the whole sequence);
    ``jacobian_batch`` is how many sequences of the batch the spectra average over. The model is
    put in evaluation mode for the pass (no dropout noise) and left as it was found.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected model to be a torch.nn.Module, got {type(model).__name__}")
    if not callable(compute_loss):
        raise TypeError(f"expected compute_loss to be a function of no arguments that returns the loss, got {type(compute_loss).__name__}")
    was_training = model.training
    model.eval()
    try:
        with recording(model) as traces:
            loss = compute_loss()
        flows = flow_from_traces(loss, traces)
        snap = Snapshot(step=step, loss=float(loss.detach()))
        for name, trace in traces.items():
            flow = flows[name]
            lags = trace.steps if max_lag is None else min(int(max_lag), trace.steps)
            spec = spectrum(trace.cell, trace.px, trace.inputs, max_lag=lags, batch=jacobian_batch) if jacobians else None
            stats = gate_stats(trace)
            radius = recurrent_radius(trace.cell)
            by_lag = _floats(flow.by_lag())[: lags + 1]
            top = _floats(spec.top) if spec is not None else []
            snap.layers[name] = LayerSnapshot(
                name=name,
                cell=trace.cell.kind,
                grad_norm=_floats(flow.norms),
                grad_fields={f: _floats(v) for f, v in flow.fields.items()},
                jac_top=top,
                jac_bottom=_floats(spec.singular_values[:, -1]) if spec is not None else [],
                jac_radius=_floats(spec.radius) if spec is not None else [],
                radius=radius,
                gate_mean={g: _floats(v) for g, v in stats.mean.items()} if stats else {},
                gate_saturation={g: _floats(v) for g, v in stats.saturation.items()} if stats else {},
                verdict=judge(name, trace.cell.kind, by_lag, top or None, radius),
            )
    finally:
        model.train(was_training)
    return snap


def append_snapshot(path: str | Path, snapshot: Snapshot) -> Path:
    """Append ``snapshot`` as one JSON line to ``path`` (a file, or a directory holding ``diagnostics.jsonl``)."""
    path = Path(path)
    if path.is_dir():
        path = path / HISTORY_FILE
    with path.open("a") as f:
        f.write(json.dumps(snapshot.to_dict()) + "\n")
    return path


def load_history(path: str | Path) -> list[Snapshot]:
    """Every snapshot in a JSON-lines file (or a run directory's ``diagnostics.jsonl``), in order of
    step; when a resumed run recorded a step again, its latest record wins."""
    path = Path(path)
    if path.is_dir():
        path = path / HISTORY_FILE
    if not path.is_file():
        raise FileNotFoundError(
            errno.ENOENT, f"expected a diagnostics history at {path}; record one with carousel.diagnostics.DiagnosticsHook", str(path)
        )
    with path.open() as f:
        snaps = [Snapshot.from_dict(json.loads(line)) for line in f if line.strip()]
    latest = {s.step: s for s in snaps}  # a later record of the same step replaces the earlier one
    return sorted(latest.values(), key=lambda s: -1 if s.step is None else s.step)
