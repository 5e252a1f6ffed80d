"""``carousel study gradients``: the study of why gates work, end to end, written as a report."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer
from rich.console import Console

from ..studies.gradients import QUICK, StudyConfig, config_dict, load_results, run_study, summary_table, write_report
from ..train.config import check_finite
from . import app
from .common import user_errors

study_app = typer.Typer(help="Studies that reproduce a lesson end to end and write a report.", no_args_is_help=True)
app.add_typer(study_app, name="study")


def _lengths(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers for {what}, got {text!r}") from None
    return values


TRAINING_OPTIONS = ("quick", "models", "adding", "copying", "hidden", "batch", "steps", "seconds", "jobs", "seed", "resume")


@study_app.command()
def gradients(
    ctx: typer.Context,
    out: Path = typer.Option(Path("study-gradients"), help="directory for report.md, the plots and results.json"),
    quick: bool = typer.Option(False, "--quick", help="a seconds-long version with tiny sizes (checks the machinery); options given with it replace its settings"),
    models: str = typer.Option("", help="comma-separated line-up models (default: all; see carousel.studies.gradients.lineup)"),
    adding: str = typer.Option("100,200", help="sequence lengths T of the adding problem"),
    copying: str = typer.Option("100,200", help="delays T of the copying task"),
    hidden: int = typer.Option(32, help="hidden units of every model"),
    batch: int = typer.Option(32, help="training batch size"),
    steps: int = typer.Option(4000, help="optimiser steps per run, at most"),
    seconds: float = typer.Option(150.0, help="wall-clock seconds per run, at most"),
    jobs: int = typer.Option(1, help="runs side by side, each on one thread in its own process"),
    seed: int = typer.Option(0, help="random seed of every model and training stream"),
    report_only: bool = typer.Option(False, "--report-only", help="write the report again from OUT/results.json (trains nothing)"),
    resume: bool = typer.Option(False, "--resume", help="keep the finished runs in OUT/runs.jsonl (same settings) and do the rest"),
) -> None:
    """Vanilla tanh RNNs (spectral radius 0.9, 1.0, 1.1, with and without clipping), IRNN, LSTM, LSTM without
    forget gate, GRU, AntisymmetricRNN and orthogonal RNN on the adding and copying tasks."""
    console = Console()
    # options the command line gave (typer's ParameterSource is that of the click it ships: compare names)
    given = [n for n in TRAINING_OPTIONS if getattr(ctx.get_parameter_source(n), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")]
    if out.exists() and not out.is_dir():
        raise typer.BadParameter(f"expected a directory for the report, but {out} is a file", param_hint="'--out'")
    if report_only:
        if given:
            flags = ", ".join("--" + n.replace("_", "-") for n in given)
            raise typer.BadParameter(f"--report-only writes the report from {out}/results.json and trains nothing; "
                                     f"{flags} would have no effect: drop {'it' if len(given) == 1 else 'them'}")
        with user_errors():
            results, config = load_results(out)
            try:
                path = write_report(results, out, config)
            except (KeyError, TypeError, IndexError, AttributeError) as err:
                raise ValueError(f"{out / 'results.json'} holds records this carousel cannot report "
                                 f"({type(err).__name__}: {err}); run the study again") from None
        console.print(f"report: {path}")
        return
    try:
        check_finite("--seconds", seconds)
        explicit = {
            "models": tuple(m.strip() for m in models.split(",") if m.strip()) if models else None,
            "adding": _lengths(adding, "--adding"), "copying": _lengths(copying, "--copying"), "hidden": hidden,
            "batch": batch, "steps": steps, "seconds": seconds, "jobs": jobs, "seed": seed,
        }
        if models and not explicit["models"]:
            raise ValueError(f"expected comma-separated model names for --models, got {models!r}")
        if quick:  # the quick settings, with every option given on the command line in their place
            config = dataclasses.replace(QUICK, **{k: v for k, v in explicit.items() if k in given})
        else:
            config = StudyConfig(**{k: v for k, v in explicit.items() if v is not None})
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    log, settings = out / "runs.jsonl", json.loads(json.dumps(config_dict(config)))
    earlier: list[dict] = []
    with user_errors():
        out.mkdir(parents=True, exist_ok=True)
        if resume and log.is_file():
            try:
                saved = json.loads((out / "config.json").read_text()) if (out / "config.json").is_file() else None
                earlier = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise ValueError(f"--resume: {out}/config.json or runs.jsonl is not readable JSON ({err}); use another --out") from None
            if not isinstance(saved, dict) or {k: v for k, v in saved.items() if k != "jobs"} != {k: v for k, v in settings.items() if k != "jobs"}:
                raise typer.BadParameter(f"--resume: {out}/config.json holds other settings than these; use another --out")
            if not all(isinstance(r, dict) and {"model", "task", "T"} <= set(r) for r in earlier):
                raise ValueError(f"--resume: {out}/runs.jsonl holds lines that are not study records; use another --out")
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
