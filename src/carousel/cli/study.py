"""``carousel study gradients``: the study of why gates work, end to end, written as a report."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from ..studies.gradients import QUICK, StudyConfig, config_dict, load_results, run_study, summary_table, write_report
from . import app

study_app = typer.Typer(help="Studies that reproduce a lesson end to end and write a report.", no_args_is_help=True)
app.add_typer(study_app, name="study")


def _lengths(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers for {what}, got {text!r}") from None
    return values


@study_app.command()
def gradients(
    out: Path = typer.Option(Path("study-gradients"), help="directory for report.md, the plots and results.json"),
    quick: bool = typer.Option(False, "--quick", help="a seconds-long version with tiny sizes (checks the machinery)"),
    models: str = typer.Option("", help="comma-separated line-up models (default: all; see carousel.studies.gradients.lineup)"),
    adding: str = typer.Option("100,200", help="sequence lengths T of the adding problem"),
    copying: str = typer.Option("100,200", help="delays T of the copying task"),
    hidden: int = typer.Option(32, help="hidden units of every model"),
    batch: int = typer.Option(32, help="training batch size"),
    steps: int = typer.Option(4000, help="optimiser steps per run, at most"),
    seconds: float = typer.Option(150.0, help="wall-clock seconds per run, at most"),
    jobs: int = typer.Option(1, help="runs side by side, each on one thread in its own process"),
    seed: int = typer.Option(0, help="random seed of every model and training stream"),
    report_only: bool = typer.Option(False, "--report-only", help="write the report again from OUT/results.json"),
    resume: bool = typer.Option(False, "--resume", help="keep the finished runs in OUT/runs.jsonl (same settings) and do the rest"),
) -> None:
    """Vanilla tanh RNNs (spectral radius 0.9, 1.0, 1.1, with and without clipping), IRNN, LSTM, LSTM without
    forget gate, GRU, AntisymmetricRNN and orthogonal RNN on the adding and copying tasks."""
    console = Console()
    if report_only:
        results, config = load_results(out)
        console.print(f"report: {write_report(results, out, config)}")
        return
    try:
        if quick:
            config = QUICK
        else:
            config = StudyConfig(
                **({"models": tuple(m.strip() for m in models.split(",") if m.strip())} if models else {}),
                adding=_lengths(adding, "--adding"), copying=_lengths(copying, "--copying"), hidden=hidden,
                batch=batch, steps=steps, seconds=seconds, jobs=jobs, seed=seed,
            )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    out.mkdir(parents=True, exist_ok=True)
    log, settings = out / "runs.jsonl", json.loads(json.dumps(config_dict(config)))
    earlier: list[dict] = []
    if resume and log.is_file():
        saved = json.loads((out / "config.json").read_text()) if (out / "config.json").is_file() else None
        if {k: v for k, v in (saved or {}).items() if k != "jobs"} != {k: v for k, v in settings.items() if k != "jobs"}:
            raise typer.BadParameter(f"--resume: {out}/config.json holds other settings than these; use another --out")
        earlier = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    else:
        log.write_text("")
    (out / "config.json").write_text(json.dumps(settings, indent=1) + "\n")
    total = sum(1 for _ in config.runs())
    console.print(f"{total} runs ({len(earlier)} kept), at most {config.seconds:g} s each, {config.jobs} at a time; writing to {out}")
    count = [len(earlier)]

    def show(r: dict) -> None:
        count[0] += 1
        with log.open("a") as f:
            f.write(json.dumps(r) + "\n")
        if "error" in r:
            status, steps = f"error: {r['error']}", ""
        else:
            status = f"diverged at step {r['diverged_at']}" if r["diverged_at"] else f"test {r['test']:.4g} (chance {r['baseline']:.4g})"
            steps = f"{r['steps']:>5} steps {r['seconds']:4.0f} s"
        console.print(f"[{count[0]}/{total}] {r['label']:<30} {r['task']:<8} T={r['T']:<4} {steps}  {status}", markup=False)

    results = run_study(config, done=earlier, on_result=show)
    path = write_report(results, out, config_dict(config))
    console.print(summary_table(results))
    console.print(f"report: {path}")
