"""``carousel demo``: a character-level LSTM language model on the Penn Treebank in a few minutes
(``carousel.studies.demo`` does the work; this prints it)."""

from __future__ import annotations

from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..studies.demo import DemoConfig, run_demo
from ..train import RunInterrupted
from . import app
from .common import console, interrupted, user_errors


@app.command()
def demo(
    minutes: float = typer.Option(5.0, help="training time (wall clock)"),
    hidden: Optional[int] = typer.Option(None, help="LSTM units (default: the width fitted to this machine and --minutes)"),
    precision: str = typer.Option("auto", help="'auto' (bf16 where the CPU has bf16 arithmetic), 'fp32' or 'bf16'"),
    runs: str = typer.Option("runs", help="folder for the run directory"),
    corpus: str = typer.Option("ptb", help="'ptb', 'stdlib' or UTF-8 text files (comma-separated)"),
    seed: int = typer.Option(0, help="random seed"),
) -> None:
    """Train an LSTM language model on the Penn Treebank for a few minutes; compare it with gzip, bzip2 and xz.

    On the Penn Treebank a few minutes of training are enough to predict the text better than
    xz -9e compresses it. --corpus trains on other text instead.
    """
    con = console()
    with user_errors():
        config = DemoConfig(minutes=minutes, hidden=hidden, precision=precision, runs=runs, corpus=corpus, seed=seed)
        try:
            result = run_demo(config, say=lambda line: con.print(escape(line)))
        except RunInterrupted as stop:
            interrupted(stop.run_dir)
        except KeyboardInterrupt:
            interrupted(None)
    table = Table(title=f"bits per character after {result.steps} steps ({result.minutes:g} min)", title_justify="left")
    for col in ("", "valid", "test"):
        table.add_column(col, justify="right" if col else "left")
    table.add_row(f"[bold]LSTM {result.hidden}[/]", f"[bold]{result.valid:.3f}[/]", f"[bold]{result.test:.3f}[/]")
    for name, (valid, test) in result.compressors.items():
        table.add_row(name, f"{valid:.3f}", f"{test:.3f}")
    con.print(table)
    con.print(result.comparison())
    for sample in result.samples:
        con.print(f"[bold]sample at temperature {sample.temperature}[/] ({sample.chars_per_second:,.0f} characters per second)")
        con.print(f"[dim]{escape(config.prime)}[/]{escape(sample.text)}")
    con.print(f"most interpretable unit: {result.top_unit} (r = {result.top_r:+.2f} with '{escape(result.top_feature)}')")
    run_dir = result.run_dir
    con.print(f"\nrun directory [bold]{run_dir}[/]:")
    for name, what in (("metrics.jsonl", "metrics of every step and evaluation"), ("loss.png", "loss plot"),
                       ("activations.html", "activation page (open it in a browser)"), ("samples.txt", "the samples"),
                       ("checkpoints/", "checkpoints (carousel sample / eval / resume read them)")):
        if (run_dir / name).exists():
            con.print(f"  {run_dir / name}  {what}")
    con.print(f"more text: carousel sample {run_dir} --prime 'the market' --temperature 0.8")
