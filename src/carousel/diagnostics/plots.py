"""PNG plots of diagnostics snapshots (matplotlib, imported only here, when a plot is asked for).

* ``plot_flow``: ``||dL/ds||`` against the lag on a log scale, one line per snapshot;
* ``plot_flow_heatmap``: the same curves over training, as a heat map of log10 norms;
* ``plot_spectrum``: the largest singular value of ``ds_T/ds_(T-l)`` against ``l``, and the
  spectral radius of each recurrent block over training;
* ``plot_gates``: each gate's saturated share (solid) and mean (dashed) against the step, one
  line per snapshot.

Every function takes a list of snapshots (one is enough), writes a PNG and returns the figure,
whose axes hold exactly the plotted numbers. ``write_plots`` writes all that apply.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from .snapshot import Snapshot


def new_figure(rows: int, cols: int, *, width: float = 5.0, height: float = 3.4) -> tuple[Any, list]:
    """A matplotlib figure with ``rows x cols`` panels (each ``width x height`` inches) and its axes, flat.

    Raises ``ImportError`` naming the extra to install when matplotlib is missing.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("carousel's plots need matplotlib: pip install 'carousel[plot]'") from err
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def _check(history: Sequence[Snapshot]) -> list[Snapshot]:
    history = list(history)
    if not history or not all(isinstance(s, Snapshot) for s in history):
        raise ValueError(f"expected a non-empty list of diagnostics Snapshots, got {history!r:.80}")
    return history


def _label(snap: Snapshot) -> str:
    return "untrained" if snap.step in (None, 0) else f"step {snap.step}"


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(i / max(n - 1, 1)) for i in range(n)]


FLOOR = 1e-40  # below float32's smallest normal number a gradient norm is underflow, not signal


def log_floor(ax: Any) -> None:
    """Keep a log axis above ``FLOOR``: a gradient that underflowed to 0 plunges out of the plot."""
    low, high = ax.get_ylim()
    if low < FLOOR < high:
        ax.set_ylim(bottom=FLOOR)


def save_figure(fig: Any, path: str | Path) -> Any:
    """Write ``fig`` as a PNG at ``path`` (its folder made as needed); returns the figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return fig


def plot_flow(history: Sequence[Snapshot], path: str | Path, *, title: str = "") -> Any:
    """Gradient norm ``||dL/ds_(T-l)||`` against the lag ``l``, log scale; one panel per layer."""
    history = _check(history)
    names = list(history[-1].layers)
    fig, axes = new_figure(1, len(names))
    for ax, name in zip(axes, names):
        for snap, color in zip(history, _colors(len(history))):
            layer = snap.layers.get(name)
            if layer is not None:
                curve = [max(v, 1e-300) for v in layer.grad_by_lag()]  # log axes cannot show 0
                ax.plot(range(len(curve)), curve, color=color, label=_label(snap))
        ax.set_yscale("log")
        log_floor(ax)
        ax.set(xlabel="lag T - k (steps)", ylabel="||dL/ds_k||", title=f"{title} {name}".strip())
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_flow_heatmap(history: Sequence[Snapshot], path: str | Path) -> Any:
    """log10 ``||dL/ds||`` by lag (x) and snapshot (y, training step); one panel per layer."""
    history = _check(history)
    names = list(history[-1].layers)
    fig, axes = new_figure(1, len(names), height=1.2 + 0.3 * len(history))
    for ax, name in zip(axes, names):
        rows = [[math.log10(max(v, 1e-300)) for v in s.layers[name].grad_by_lag()] for s in history if name in s.layers]
        width = min(len(r) for r in rows)
        image = ax.imshow([r[:width] for r in rows], aspect="auto", origin="lower", cmap="magma", interpolation="nearest")
        ax.set_yticks(range(len(rows)), [_label(s) for s in history if name in s.layers], fontsize=7)
        ax.set(xlabel="lag T - k (steps)", title=f"log10 ||dL/ds|| over training: {name}")
        fig.colorbar(image, ax=ax)
    return save_figure(fig, path)


def plot_spectrum(history: Sequence[Snapshot], path: str | Path) -> Any:
    """Left: largest singular value of ``ds_T/ds_(T-l)`` against ``l`` (log). Right: spectral radius
    of each block of ``weight_hh`` over training. One row per layer with a spectrum."""
    history = _check(history)
    names = [n for n, layer in history[-1].layers.items() if layer.jac_top or layer.radius]
    if not names:
        raise ValueError("no snapshot holds a Jacobian spectrum or a recurrent matrix to plot")
    fig, axes = new_figure(len(names), 2)
    for r, name in enumerate(names):
        left, right = axes[2 * r], axes[2 * r + 1]
        for snap, color in zip(history, _colors(len(history))):
            layer = snap.layers.get(name)
            if layer is not None and layer.jac_top:
                left.plot(range(1, len(layer.jac_top) + 1), [max(v, 1e-300) for v in layer.jac_top], color=color, label=_label(snap))
        left.set_yscale("log")
        left.set(xlabel="lag l (steps)", ylabel="largest singular value", title=f"ds_T/ds_(T-l): {name}")
        left.legend(fontsize=7)
        steps = [s.step or 0 for s in history if name in s.layers]
        for block in history[-1].layers[name].radius:
            right.plot(steps, [s.layers[name].radius.get(block, math.nan) for s in history if name in s.layers], marker="o", label=block)
        right.axhline(1.0, color="gray", linewidth=0.8, linestyle="--")
        right.set(xlabel="training step", ylabel="spectral radius", title=f"weight_hh blocks: {name}")
        right.legend(fontsize=7)
    return save_figure(fig, path)


def plot_gates(history: Sequence[Snapshot], path: str | Path) -> Any:
    """Saturated share (below 0.05 or above 0.95, solid) and mean (dashed) of every gate against the
    step k; a panel per gate."""
    history = _check(history)
    panels = [(n, g) for n, layer in history[-1].layers.items() for g in layer.gate_saturation]
    if not panels:
        raise ValueError("no snapshot holds gate statistics (the model has no gated cell)")
    cols = min(len(panels), 4)
    fig, axes = new_figure(math.ceil(len(panels) / cols), cols, width=4.0)
    for ax, (name, gate) in zip(axes, panels):
        for snap, color in zip(history, _colors(len(history))):
            layer = snap.layers.get(name)
            if layer is not None and gate in layer.gate_saturation:
                ax.plot(layer.gate_saturation[gate], color=color, label=f"{_label(snap)}: saturated")
                ax.plot(layer.gate_mean[gate], color=color, linestyle="--", linewidth=0.9, label=f"{_label(snap)}: mean")
        ax.set_ylim(-0.02, 1.02)
        ax.set(xlabel="step k", ylabel="saturated share (—), mean (--)", title=f"{name}: gate {gate}")
        ax.legend(fontsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return save_figure(fig, path)


def write_plots(history: Sequence[Snapshot], out_dir: str | Path, *, prefix: str = "") -> list[Path]:
    """Every plot that applies to ``history``, as PNGs in ``out_dir``; returns their paths."""
    history = _check(history)
    out = Path(out_dir)
    written = [out / f"{prefix}gradient_flow.png", out / f"{prefix}gradient_heatmap.png"]
    plot_flow(history, written[0])
    plot_flow_heatmap(history, written[1])
    last = history[-1].layers.values()
    if any(layer.jac_top or layer.radius for layer in last):
        written.append(out / f"{prefix}jacobian_spectrum.png")
        plot_spectrum(history, written[-1])
    if any(layer.gate_saturation for layer in last):
        written.append(out / f"{prefix}gate_saturation.png")
        plot_gates(history, written[-1])
    return written
