"""``carousel demo``: a small real job that shows why gates matter."""

from __future__ import annotations

import time

import typer

from . import app


@app.command()
def demo(
    length: int = typer.Option(50, help="sequence length T of the adding problem"),
    seconds: float = typer.Option(30.0, help="training time per model, in seconds"),
    hidden: int = typer.Option(64, help="hidden units per model"),
    seed: int = typer.Option(0, help="random seed"),
) -> None:
    """Train an LSTM and a vanilla tanh RNN on the adding problem and compare them with chance."""
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from ..cells import ElmanCell, LSTMCell
    from ..data.tasks import ADDING_BASELINE_MSE, adding_problem
    from ..layers import Recurrent

    console = Console()
    torch.manual_seed(seed)
    x_test, y_test = adding_problem(1000, length, seed=seed + 1)
    rows = []
    for name, cell in (("LSTM", LSTMCell(2, hidden)), ("tanh RNN", ElmanCell(2, hidden))):
        rnn, head = Recurrent(cell), torch.nn.Linear(cell.output_size, 1)
        params = list(rnn.parameters()) + list(head.parameters())
        opt = torch.optim.Adam(params, lr=1e-2)
        step, start, loss_value = 0, time.monotonic(), float("nan")
        columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task(f"{name:9s}", total=seconds, info="")
            while (elapsed := time.monotonic() - start) < seconds:
                x, y = adding_problem(64, length, seed=seed * 100_003 + step)
                out, _ = rnn(x)
                loss = torch.nn.functional.mse_loss(head(out[:, -1]), y)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                step += 1
                loss_value = 0.9 * loss_value + 0.1 * loss.item() if step > 1 else loss.item()
                bar.update(task, completed=min(elapsed, seconds), info=f"step {step}  train MSE {loss_value:.4f}")
            bar.update(task, completed=seconds)
        with torch.no_grad():
            test_mse = torch.nn.functional.mse_loss(head(rnn(x_test)[0][:, -1]), y_test).item()
        rows.append((name, step, test_mse))

    table = Table(title=f"Adding problem, T={length}: test MSE after {seconds:g} s of training each")
    for col in ("model", "steps", "test MSE", "chance (predict 1)"):
        table.add_column(col)
    for name, steps, mse in rows:
        table.add_row(name, str(steps), f"{mse:.4f}", f"{ADDING_BASELINE_MSE:.4f}")
    console.print(table)
