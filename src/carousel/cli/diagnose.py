"""``carousel diagnose RUN_DIR``: gradient flow, Jacobian spectra and gate plots of a run, and verdicts."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from ..train import diagnose_run
from . import app
from .common import console, user_errors


@app.command()
def diagnose(
    run_dir: str = typer.Argument(..., help="a run directory (from carousel train)"),
    from_checkpoints: bool = typer.Option(
        False, "--from-checkpoints", help="diagnose every step checkpoint again (done anyway when the run has no history)"
    ),
    max_lag: Optional[int] = typer.Option(None, help="longest lag of the Jacobian spectra (default: the whole sequence)"),
) -> None:
    """Plot ||dL/ds|| against the lag, its heat map over training, Jacobian spectra and gate saturation
    into RUN_DIR/diagnostics/, and say per layer whether gradients vanish, explode or are healthy."""
    with user_errors():
        if max_lag is not None and max_lag < 1:
            raise ValueError(f"expected --max-lag to be an integer >= 1 (time steps), got {max_lag}")
        history, plots = diagnose_run(run_dir, from_checkpoints=from_checkpoints, max_lag=max_lag)
    out = console()
    first, last = history[0], history[-1]
    table = Table(title=f"{run_dir}: {len(history)} snapshots, steps {first.step} to {last.step}", title_justify="left")
    for col in ("layer", "cell", f"at step {first.step}", f"at step {last.step}", "x per step", "gates: mean / saturated"):
        table.add_column(col)
    for name, layer in last.layers.items():
        v = layer.verdict
        before = first.layers[name].verdict if name in first.layers else None
        gates = ", ".join(
            f"{g} {sum(m) / len(m):.2f}/{sum(s) / len(s):.0%}"
            for (g, m), s in zip(layer.gate_mean.items(), layer.gate_saturation.values())
        )
        table.add_row(name, v.cell, before.kind if before else "–", v.kind, f"{v.per_step:.3f}", gates or "–")
    out.print(table)
    for v in last.verdicts():
        out.print(v.text, markup=False)
    out.print("plots: " + ", ".join(str(p) for p in plots), markup=False)
