"""The gradients study as a report: markdown tables next to the chance baselines, and the plots.

``write_report(results, out_dir, config)`` writes ``results.json`` (everything, so the report can
be written again without training), ``report.md`` and, per task and T, a PNG of the gradient norm
against the lag for every model at the start and at the end of training.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from ...diagnostics import Snapshot
from ...diagnostics.plots import log_floor, new_figure, save_figure


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if math.isinf(value) or math.isnan(value):
        return "diverged"
    return f"{value:.4f}" if value >= 1e-3 else f"{value:.1e}"


def _verdict(snapshot: dict) -> str:
    layer = next(iter(Snapshot.from_dict(snapshot).layers.values()))
    v = layer.verdict
    return f"{v.kind} ({v.survival:.1e})"


def _columns(results: Sequence[dict]) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    for r in results:
        if (r["task"], r["T"]) not in seen:
            seen.append((r["task"], r["T"]))
    return seen


def summary_table(results: Sequence[dict]) -> str:
    """One row per model, one column per (task, T): the final test loss; the chance row on top."""
    cols = _columns(results)
    by = {(r["model"], r["task"], r["T"]): r for r in results}
    head = "| model | " + " | ".join(f"{t} T={T}" for t, T in cols) + " |"
    lines = [head, "|---" * (len(cols) + 1) + "|"]
    chance = {(r["task"], r["T"]): r["baseline"] for r in results if "error" not in r}
    lines.append("| *chance (input-blind guess)* | " + " | ".join(f"*{_fmt(chance.get(c))}*" for c in cols) + " |")
    models = list(dict.fromkeys(r["model"] for r in results))
    for m in models:
        cells = []
        for t, T in cols:
            r = by.get((m, t, T))
            if r is None or "error" in r:
                cells.append("–" if r is None else "error")
                continue
            text = _fmt(r["test"])
            if r["diverged_at"] is not None:
                text = f"diverged at step {r['diverged_at']}"
            elif r["test"] < 0.5 * r["baseline"]:
                text = f"**{text}**"  # clearly below chance
            cells.append(text)
        label = next(r["label"] for r in results if r["model"] == m)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detail_table(results: Sequence[dict], task: str, T: int) -> str:
    """Per model on one (task, T): test loss, its ratio to chance, steps, time, verdicts."""
    extra = " recalled |" if task == "copying" else ""
    lines = [
        f"| model | test loss | / chance |{extra} steps | seconds | gradient at start | gradient after training |",
        "|---|---|---|" + ("---|" if extra else "") + "---|---|---|---|",
    ]
    for r in (r for r in results if r["task"] == task and r["T"] == T and "error" not in r):
        ratio = r["test"] / r["baseline"] if math.isfinite(r["test"]) else math.inf
        recall = f" {r['recall']:.1%} |" if extra and r["recall"] is not None else (" – |" if extra else "")
        lines.append(
            f"| {r['label']} | {_fmt(r['test'])} | {ratio:.3f} |{recall} {r['steps']} | {r['seconds']:.0f} | "
            f"{_verdict(r['start'])} | {_verdict(r['end'])} |"
        )
    return "\n".join(lines)


def plot_lag_curves(results: Sequence[dict], task: str, T: int, path: Path) -> Path:
    """Two panels (start, after training): ``||dL/ds||`` against the lag, one line per model, log scale."""
    from matplotlib import colormaps

    fig, (start, end) = new_figure(1, 2, width=6.0, height=4.2)
    runs = [r for r in results if r["task"] == task and r["T"] == T and "error" not in r]
    palette = colormaps["tab20"]
    for j, r in enumerate(runs):
        style = {"color": palette(j % 20), "linestyle": ("-", "--", ":")[(j // 20) % 3], "linewidth": 1.2}
        for ax, key in ((start, "start"), (end, "end")):
            layer = next(iter(Snapshot.from_dict(r[key]).layers.values()))
            curve = [max(v, 1e-300) if math.isfinite(v) else math.nan for v in layer.grad_by_lag()]
            ax.plot(range(len(curve)), curve, label=r["label"], **style)
    for ax, when in ((start, "at initialisation"), (end, "after training")):
        ax.set_yscale("log")
        log_floor(ax)
        ax.set(xlabel="lag T - k (steps)", ylabel="||dL/ds_k||", title=f"{task}, T={T}: {when}")
    end.legend(fontsize=7, loc="best")
    return save_figure(fig, path) and path


def write_report(results: Sequence[dict], out_dir: str | Path, config: dict[str, Any] | None = None) -> Path:
    """``results.json``, ``report.md`` and the lag plots in ``out_dir``; returns the report's path."""
    if not results:
        raise ValueError("expected at least one study result to report, got none")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"config": config, "results": list(results)}) + "\n")
    parts = [
        "# Why gates work: the gradients study",
        "",
        "Final test loss of every model (MSE on adding, cross-entropy per step on copying), with the loss "
        "of the best guess that ignores the input on top; **bold**: below half of it. Produced by "
        "`carousel study gradients`.",
        "",
        summary_table(results),
        "",
        "The verdicts read the largest singular value of ds_T/ds_(T-l) over the whole sequence "
        "(`carousel.diagnostics.judge`): below 1e-3 is vanishing, above 1e3 exploding.",
    ]
    if config:
        parts += ["", "Settings: " + ", ".join(f"{k}={v}" for k, v in config.items() if k != "models") + "."]
    for task, T in _columns(results):
        name = f"gradient_flow-{task}-T{T}.png"
        plot_lag_curves(results, task, T, out / name)
        parts += ["", f"## {task}, T = {T}", "", detail_table(results, task, T), "", f"![gradient norm against lag]({name})"]
    errors = [r for r in results if "error" in r]
    if errors:
        parts += ["", "## Runs that failed", ""] + [f"- {r['label']}, {r['task']} T={r['T']}: `{r['error']}`" for r in errors]
    path = out / "report.md"
    path.write_text("\n".join(parts) + "\n")
    return path


def load_results(out_dir: str | Path) -> tuple[list[dict], dict | None]:
    """The results (and config) a study wrote to ``out_dir/results.json``. Raises ``FileNotFoundError``
    when there is none and ``ValueError`` naming the file when it is not a study's results."""
    path = Path(out_dir) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"expected study results at {path}; run `carousel study gradients --out {out_dir}` first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); run the study again to write it") from None
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list) or not results or not all(isinstance(r, dict) for r in results):
        raise ValueError(f"{path} holds no study results (expected an object with a non-empty list 'results'); run the study again")
    missing = [k for k in ("model", "label", "task", "T") if any(k not in r for r in results)]
    if missing:
        raise ValueError(f"{path}: study records without {', '.join(repr(k) for k in missing)}; run the study again")
    config = data.get("config")
    return results, config if isinstance(config, dict) else None
