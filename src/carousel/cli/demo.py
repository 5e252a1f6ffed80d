"""``carousel demo``: a character-level LSTM language model on the Penn Treebank, in a few minutes.

Trains through the ``charlm`` task for a fixed wall time (learning rate on a cosine over the
clock), then prints bits per character on valid and test beside gzip, bzip2 and xz, samples at
two temperatures, and leaves a run directory with metrics, a loss plot, samples and the
activation page.
"""

from __future__ import annotations

import math

import typer

from . import app
from ._training import console, user_errors


@app.command()
def demo(
    minutes: float = typer.Option(5.0, help="training time (wall clock)"),
    hidden: int = typer.Option(512, help="LSTM units"),
    precision: str = typer.Option("auto", help="'auto' (bf16 where the CPU has bf16 arithmetic), 'fp32' or 'bf16'"),
    runs: str = typer.Option("runs", help="folder for the run directory"),
    corpus: str = typer.Option("ptb", help="'ptb', 'stdlib' or UTF-8 text files (comma-separated)"),
    seed: int = typer.Option(0, help="random seed"),
) -> None:
    """Train an LSTM language model on the Penn Treebank for a few minutes; compare it with gzip, bzip2 and xz.

    On the Penn Treebank a few minutes of training are enough to predict the text better than
    xz -9e compresses it. --corpus trains on other text instead.
    """
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.table import Table

    from ..data import compressor_bits
    from ..decode import generate
    from ..diagnostics.activations import activation_page, rank_units, record_activations
    from ..train import build_config, evaluate_run, train_run
    from ..train.run import new_run_dir
    from ..train.tasks.charlm import CharLMOptions, CharLMTask, fast_bf16, load_char_lm
    from ..train.trainer import TimeBudget

    con = console()
    with user_errors():
        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"expected precision 'auto', 'fp32' or 'bf16', got {precision!r}")
        if not minutes > 0:
            raise ValueError(f"expected minutes > 0, got {minutes}")
        arithmetic = ("bf16" if fast_bf16() else "fp32") if precision == "auto" else precision
        text = CharLMTask(CharLMOptions(corpus=corpus)).corpus
        con.print(f"[bold]{escape(text.name)}[/] corpus, characters: train {len(text.train):,}, valid {len(text.valid):,}, test {len(text.test):,}")
        with con.status("compressing the text with gzip, bzip2 and xz (cached after the first time) ..."):
            zipped = {s: compressor_bits(text.train, text.split(s)) for s in ("valid", "test")}
        lr = 3e-3
        values = dict(corpus=corpus, hidden=hidden, embed=64, bptt=100, precision=arithmetic, batch_size=128, lr=lr,
                      steps=10**9, schedule="constant", eval_every=0, checkpoint_every=500, progress=False, seed=seed)
        config = build_config("charlm", values)
        run_dir = new_run_dir("charlm", runs)
        con.print(f"training a one-layer LSTM of {hidden} units ({arithmetic}) for {minutes:g} minutes; run directory: {run_dir}")
        seconds = minutes * 60.0
        columns = (TextColumn("train"), BarColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn())
        ema = {"bpc": math.nan}
        with Progress(*columns, console=con) as bar:
            job = bar.add_task("train", total=seconds, info="")

            def report(elapsed: float, record: dict) -> None:
                b = record.get("bpc")
                if b is not None and math.isfinite(b):
                    ema["bpc"] = b if math.isnan(ema["bpc"]) else 0.95 * ema["bpc"] + 0.05 * b
                info = f"step {record['step']}  train bpc {ema['bpc']:.3f}  {record['rate']:,.0f} char/s"
                bar.update(job, completed=min(elapsed, seconds), info=info)

            summary = train_run(config, run_dir, hooks=[TimeBudget(seconds, lr, report)])
            bar.update(job, completed=seconds)
        with con.status("scoring the test text ..."):
            test = evaluate_run(run_dir, split="test")["splits"]["test"]["bpc"]
        valid = summary["best"]

    table = Table(title=f"bits per character after {summary['steps']} steps ({minutes:g} min)", title_justify="left")
    for col in ("", "valid", "test"):
        table.add_column(col, justify="right" if col else "left")
    table.add_row(f"[bold]LSTM {hidden}[/]", f"[bold]{valid:.3f}[/]", f"[bold]{test:.3f}[/]")
    for name in zipped["valid"]:
        table.add_row(name, f"{zipped['valid'][name]:.3f}", f"{zipped['test'][name]:.3f}")
    con.print(table)
    best_zip = min(zipped["valid"], key=zipped["valid"].get)
    verdict = "better than" if valid < zipped["valid"][best_zip] else "not yet as good as"
    con.print(f"The model predicts the validation text {verdict} the best compressor ({best_zip}) compresses it.")

    model, vocab, _ = load_char_lm(str(run_dir))
    prime = " the company said"
    lines = []
    for temperature in (0.5, 1.0):
        out = generate(model, vocab, prime, 300, temperature=temperature, seed=seed)
        lines.append(f"--- temperature {temperature} ---\n{prime}{out.texts[0]}\n")
        con.print(f"[bold]sample at temperature {temperature}[/] ({out.chars_per_second:,.0f} characters per second)")
        con.print(f"[dim]{escape(prime)}[/]{escape(out.texts[0])}")
    (run_dir / "samples.txt").write_text("\n".join(lines), encoding="utf-8")
    acts = record_activations(model, vocab, text.valid[:3000])
    ranking = rank_units(acts, per_feature=5)
    activation_page(acts, run_dir / "activations.html", ranking=ranking, title=f"LSTM {hidden} on {text.name}")
    top = ranking[0]
    con.print(f"most interpretable unit: {top.unit} (r = {top.r:+.2f} with '{escape(top.feature)}')")
    con.print(f"\nrun directory [bold]{run_dir}[/]:")
    for name, what in (("metrics.jsonl", "metrics of every step and evaluation"), ("loss.png", "loss plot"),
                       ("activations.html", "activation page (open it in a browser)"), ("samples.txt", "the samples"),
                       ("checkpoints/", "checkpoints (carousel sample / eval / resume read them)")):
        if (run_dir / name).exists():
            con.print(f"  {run_dir / name}  {what}")
    con.print(f"more text: carousel sample {run_dir} --prime 'the market' --temperature 0.8")
