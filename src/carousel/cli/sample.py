"""``carousel sample RUN_DIR``: text from a trained character-level language model."""

from __future__ import annotations

import typer
from rich.markup import escape

from ..decode import generate
from ..train.config import check_finite
from ..train.tasks.charlm import load_char_lm
from . import app
from .common import UsageError, console, user_errors


@app.command()
def sample(
    run_dir: str = typer.Argument(..., help="a run directory of `carousel train charlm`"),
    prime: str = typer.Option("", help="text to start from (read once; default: a newline)"),
    temperature: float = typer.Option(0.8, help="softmax temperature (0: greedy, <1: safer, >1: wilder)"),
    top_k: int = typer.Option(0, "--top-k", help="sample among the K most likely characters only (0: all)"),
    length: int = typer.Option(300, help="characters to generate per sample"),
    num: int = typer.Option(1, help="samples drawn side by side (one batch)"),
    seed: int = typer.Option(0, help="random seed"),
    checkpoint: str = typer.Option("best", help="'best', 'latest' or a checkpoint file"),
) -> None:
    """Sample text from a charlm run, one character at a time, carrying the state; reports characters per second."""
    with user_errors():
        if not check_finite("--temperature", temperature) >= 0:
            raise UsageError(f"expected --temperature >= 0 (0: greedy), got {temperature:g}")
        for name, value in (("--top-k", top_k), ("--length", length), ("--num", num)):
            low = 0 if name == "--top-k" else 1
            if value < low:
                raise UsageError(f"expected {name} to be an integer >= {low}, got {value}")
        model, vocab, _ = load_char_lm(run_dir, checkpoint)
        unknown = vocab.unknown_count(prime)
        out = generate(model, vocab, prime, length, num=num, temperature=temperature, top_k=top_k, seed=seed)
    con = console()
    if unknown:
        con.print(f"[yellow]note:[/] {unknown} character(s) of the prime are not in the model's vocabulary; read as unknown")
    for i, text in enumerate(out.texts):
        if num > 1:
            con.print(f"[bold]--- sample {i + 1} ---[/]")
        con.print(f"[dim]{escape(prime)}[/]{escape(text)}")
    con.print(
        f"[dim]{num} x {length} characters in {out.seconds:.2f} s: {out.chars_per_second:,.0f} characters per second "
        f"(temperature {temperature:g}, top-k {top_k or 'off'})[/]"
    )
