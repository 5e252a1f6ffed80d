"""One self-contained HTML page per run (what ``carousel report RUN_DIR`` writes).

``write_report(run_dir)`` reads the run directory and writes ``RUN_DIR/report.html``: where the run
stands (``run_status.read_run``), its configuration (``config.json``), one figure per curve of
``metrics.jsonl`` (training loss beside the validation loss, the gradient norm before clipping
with the clipping threshold, the learning rate, the throughput, and every other metric that a
training or validation record holds and that changes), the validation evaluations, the
evaluation table of ``eval.json``, the diagnostics plots and verdicts when the run recorded a
history (``diagnostics.jsonl``, or the PNGs of ``carousel diagnose``), the samples
(``samples.txt``), for a language model the activation page (``activations.html``), and for a
task that draws a picture of its model (``Task.plot``: attention maps of ``transduce``, ``g2p`` and
``caption``, completed digits, the winning experts of ``regimes``) that picture of the best checkpoint.
For a ``charlm`` run without samples or an activation page, the report draws both from the
best checkpoint (``compute=False`` turns that off).

Every figure is a PNG embedded as a ``data:`` URI and the activation page sits in an ``iframe``'s
``srcdoc``: the file needs no network, script or font from elsewhere, and can be mailed as is.
matplotlib is imported only when a figure is drawn (``pip install carousel[plot]``).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from ..decode import generate
from ..diagnostics import activation_page, load_history, rank_units, record_activations
from ..diagnostics.plots import write_plots
from ..diagnostics.snapshot import HISTORY_FILE
from .checkpoint_file import CheckpointError
from .registry import get_task
from .run import load_run_model
from .run_status import RunInfo, age_text, read_run
from .tasks.charlm import CharLMTask, load_char_lm

# keys of a training record that are bookkeeping, not curves of their own
_NOT_CURVES = {"kind", "step", "split", "best", "items", "skipped", "loss", "grad_norm", "lr", "rate"}
SAMPLE_TEMPERATURES = (0.5, 1.0)
SAMPLE_LENGTH = 300
PAGE_CHARS = 2000


def png_uri(fig: Any) -> str:
    """A matplotlib figure as a ``data:image/png;base64,...`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _series(records: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pairs = [(int(r["step"]), float(r[key])) for r in records
             if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool) and math.isfinite(r[key])]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def curve_names(records: Sequence[dict[str, Any]], monitor: str) -> list[str]:
    """The curves a run's records hold, in the page's order: ``loss``, ``grad_norm``, ``lr``, ``rate``
    (those the training records have), then every other training metric, then every validation
    metric that changes between evaluations (and the monitor, even when it does not)."""
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    names = [k for k in ("loss", "grad_norm", "lr", "rate") if _series(train, k)[0]]
    if "loss" not in names and _series(evals, "loss")[0]:
        names.insert(0, "loss")
    for r in train:
        names += [k for k in r if k not in _NOT_CURVES and k not in names and _series(train, k)[0]]
    for r in evals:
        for k in r:
            if k in _NOT_CURVES or k in names:
                continue
            values = _series(evals, k)[1]
            if values and (k == monitor or len(set(values)) > 1):
                names.append(k)
    return names


def curve_figure(name: str, records: Sequence[dict[str, Any]], *, unit: str = "items", clip_norm: float = 0.0) -> Any:
    """The figure of curve ``name``: its training values (a line) and its validation values (markers)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the report's curves need matplotlib: pip install 'carousel[plot]'") from err
    fig = Figure(figsize=(5.4, 3.0))  # margins by hand: a layout engine costs more than the drawing
    fig.subplots_adjust(left=0.15, right=0.97, bottom=0.15, top=0.9)
    ax = fig.subplots()
    train = [r for r in records if r.get("kind") == "train"]
    splits = sorted({str(r.get("split")) for r in records if r.get("kind") == "eval"})
    steps, values = _series(train, name)
    if steps:
        ax.plot(steps, values, lw=0.8, alpha=0.8, label=f"training {name}")
    for split in splits:
        steps_e, values_e = _series([r for r in records if r.get("kind") == "eval" and str(r.get("split")) == split], name)
        if steps_e:
            ax.plot(steps_e, values_e, "o-", ms=3, label=f"{split} {name}")
    if name == "grad_norm":
        if any(v > 0 for v in values):
            ax.set_yscale("log")
        if clip_norm:
            ax.axhline(clip_norm, ls="--", lw=0.8, color="k", label=f"clip_norm {clip_norm:g}")
    labels = {"grad_norm": "gradient norm (before clipping)", "lr": "learning rate", "rate": f"{unit}/s"}
    ax.set(xlabel="step", title=labels.get(name, name))  # the title names the quantity: no y label to crowd the margin
    ax.legend(fontsize=7)
    return fig


# ---- the page's sections ---------------------------------------------------------------------------
def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _config_section(info: RunInfo) -> str:
    parts = []
    for section, title in (("options", f"task options ({info.task})"), ("train", "trainer options")):
        values = info.config.get(section) or {}
        if isinstance(values, dict):
            parts.append(f"<div><h3>{html.escape(title)}</h3>" + _table(("option", "value"), sorted(values.items())) + "</div>")
    return "<h2>Configuration</h2>\n<div class=\"grid\">" + "\n".join(parts) + "</div>"


def _curves_section(info: RunInfo) -> str:
    names = curve_names(info.records, info.monitor)
    if not names:
        return "<h2>Curves</h2><p>No metrics recorded yet (metrics.jsonl is missing or empty).</p>"
    try:
        import matplotlib  # noqa: F401  (only to say clearly when it is missing)
    except ImportError:
        return "<h2>Curves</h2><p>The curves need matplotlib: <code>pip install 'carousel[plot]'</code>.</p>"
    try:
        unit = get_task(info.task).unit
    except ValueError:
        unit = "items"
    clip = float((info.config.get("train") or {}).get("clip_norm", 0.0) or 0.0)
    figures = []
    for name in names:
        uri = png_uri(curve_figure(name, info.records, unit=unit, clip_norm=clip))
        figures.append(f'<figure data-curve="{html.escape(name)}"><img alt="{html.escape(name)} against the step" '
                       f'src="{uri}"><figcaption>{html.escape(name)}</figcaption></figure>')
    return "<h2>Curves</h2>\n<div class=\"grid\">" + "\n".join(figures) + "</div>"


def _evaluations_section(info: RunInfo, run_dir: Path) -> str:
    parts = ["<h2>Evaluation</h2>"]
    evals = [r for r in info.records if r.get("kind") == "eval"]
    if evals:
        keys = [k for k in dict.fromkeys(k for r in evals for k in r) if k not in ("kind",)]
        shown = evals[-20:]
        note = f" (the last 20 of {len(evals)})" if len(evals) > 20 else ""
        parts.append(f"<h3>During training{note}</h3>" + _table(keys, [[r.get(k, "") for k in keys] for r in shown]))
    path = run_dir / "eval.json"
    if path.is_file():
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
            splits = result["splits"]
            metrics = list(dict.fromkeys(m for values in splits.values() for m in values))
            parts.append(f"<h3>eval.json: checkpoint at step {html.escape(str(result.get('step')))} "
                         f"({html.escape(str(result.get('checkpoint')))})</h3>"
                         + _table(["split", *metrics], [[s, *(v.get(m, "") for m in metrics)] for s, v in splits.items()]))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            parts.append(f"<p>eval.json is not readable ({html.escape(str(err))}).</p>")
    else:
        parts.append(f"<p>No eval.json: <code>carousel eval {html.escape(str(run_dir))}</code> writes one.</p>")
    return "\n".join(parts)


def _diagnostics_section(run_dir: Path) -> str:
    history_file = run_dir / HISTORY_FILE
    figures: list[tuple[str, str]] = []
    verdicts: list[str] = []
    if history_file.is_file():
        try:
            history = load_history(history_file)
        except (ValueError, KeyError, TypeError) as err:
            return f"<h2>Diagnostics</h2><p>{HISTORY_FILE} is not readable ({html.escape(str(err))}).</p>"
        if history:
            with tempfile.TemporaryDirectory() as tmp:
                for path in write_plots(history, tmp):
                    figures.append((path.stem, _file_uri(path)))
            verdicts = [v.text for v in history[-1].verdicts()]
    else:
        figures = [(p.stem, _file_uri(p)) for p in sorted((run_dir / "diagnostics").glob("*.png"))]
    if not figures:
        return ("<h2>Diagnostics</h2><p>None recorded: train with <code>--diagnose-every N</code>, or run "
                f"<code>carousel diagnose {html.escape(str(run_dir))}</code>.</p>")
    items = "\n".join(f'<figure data-plot="{html.escape(n)}"><img alt="{html.escape(n)}" src="{u}">'
                      f"<figcaption>{html.escape(n)}</figcaption></figure>" for n, u in figures)
    said = "".join(f"<li>{html.escape(t)}</li>" for t in verdicts)
    return f"<h2>Diagnostics</h2>\n{'<ul>' + said + '</ul>' if said else ''}<div class=\"grid\">{items}</div>"


def _file_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _language_model_sections(info: RunInfo, run_dir: Path, out: Path, compute: bool) -> str:
    parts = []
    samples_file, page_file = run_dir / "samples.txt", run_dir / "activations.html"
    model = vocab = config = None
    note = ""
    is_lm = info.task == CharLMTask.name
    if is_lm and compute and not (samples_file.is_file() and page_file.is_file()):
        try:
            model, vocab, config = load_char_lm(str(run_dir))
        except (CheckpointError, ValueError, OSError) as err:
            note = f"<p>No model to draw from: {html.escape(str(err))}</p>"
    sample_text = ""
    if samples_file.is_file():
        sample_text = samples_file.read_text(encoding="utf-8", errors="replace")
        parts.append(f"<h2>Samples</h2><pre>{html.escape(sample_text)}</pre>")
    elif model is not None:
        lines = []
        for t in SAMPLE_TEMPERATURES:
            text = generate(model, vocab, "", SAMPLE_LENGTH, temperature=t, seed=0).texts[0]
            lines.append(f"--- temperature {t} ---\n{text}\n")
            sample_text += text
        parts.append("<h2>Samples</h2><p>Drawn by the report from the best checkpoint (seed 0).</p>"
                     f"<pre>{html.escape(chr(10).join(lines))}</pre>")
    elif is_lm:
        parts.append("<h2>Samples</h2>" + (note or "<p>None: the run has no samples.txt.</p>"))
    if page_file.is_file():
        page = page_file.read_text(encoding="utf-8", errors="replace")
        link = os.path.relpath(page_file, out.parent) if out.parent.resolve() == run_dir.resolve() else str(page_file.resolve())
        parts.append(f'<h2>Activations</h2><p>The run\'s activation page (<a href="{html.escape(link)}">'
                     f"{html.escape(page_file.name)}</a>), embedded:</p>" + _frame(page))
    elif model is not None:
        parts.append("<h2>Activations</h2><p>Computed by the report from the best checkpoint, over "
                     f"{html.escape(_activation_text_source())}:</p>" + _frame(_activations_page(model, vocab, config, info, sample_text)))
    return "\n".join(parts)


def _picture_section(info: RunInfo, run_dir: Path, compute: bool) -> str:
    """The task's own picture of the best checkpoint (``Task.plot``: an attention map, completed
    images, the winning experts), for tasks that draw one; a note when it cannot be drawn."""
    try:
        offers = get_task(info.task).has_picture()
    except ValueError:
        return ""
    if not (offers and compute):
        return ""
    try:
        task, model, path, meta = load_run_model(run_dir)
        with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
            picture = task.plot(model, Path(tmp) / "picture.png", split=task.splits[0])
            uri = _file_uri(Path(picture))
    except ImportError as err:  # matplotlib, or a package with the task's data
        return f"<h2>Picture</h2><p>Not drawn: {html.escape(str(err))}</p>"
    except (CheckpointError, ValueError, OSError) as err:
        return f"<h2>Picture</h2><p>Not drawn: {html.escape(str(err))}</p>"
    return (f"<h2>Picture</h2><p>Drawn by the report from checkpoint <code>{html.escape(path.name)}</code> "
            f"(step {html.escape(str(meta.get('step')))}) on the {html.escape(task.splits[0])} split:</p>"
            f'<figure data-plot="task"><img alt="{html.escape(info.task)}: the model at work" src="{uri}"></figure>')


def _activation_text_source() -> str:
    return f"the first {PAGE_CHARS:,} characters of the validation text (or of the samples when the corpus is not at hand)"


def _activations_page(model: Any, vocab: Any, config: Any, info: RunInfo, fallback: str) -> str:
    try:
        text = config.make_task().corpus.valid[:PAGE_CHARS]
    except (ValueError, TypeError, OSError):
        text = fallback[:PAGE_CHARS]
    acts = record_activations(model, vocab, text or fallback or "\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = activation_page(acts, Path(tmp) / "activations.html", ranking=rank_units(acts, per_feature=5),
                               title=f"{info.task}: {info.path.name}")
        return Path(path).read_text(encoding="utf-8")


def _frame(page: str) -> str:
    return f'<iframe title="activation page" srcdoc="{html.escape(page, quote=True)}"></iframe>'


_STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 72em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
td, th { padding: 2px 10px; border-bottom: 1px solid #ddd; text-align: left; }
.grid { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; } figure img { max-width: 100%; } figcaption { font-size: 0.8em; color: #555; }
pre { background: #f6f6f6; padding: 0.8em; white-space: pre-wrap; }
iframe { width: 100%; height: 40em; border: 1px solid #ccc; }
.status { font-size: 1.1em; }
"""


def report_html(run_dir: str | os.PathLike, *, out: str | os.PathLike | None = None, compute: bool = True,
                now: float | None = None) -> str:
    """The report page of ``run_dir`` as a string (see the module docstring); ``out`` is where it will
    be written (links are made relative to it). Raises ``ValueError`` for a folder that is not a run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"expected a run directory, but {run_dir} is {'a file' if run_dir.exists() else 'missing'}")
    info = read_run(run_dir, now=now)
    out = Path(out) if out is not None else run_dir / "report.html"
    now = time.time() if now is None else now
    title = f"carousel run {run_dir.name}"
    head = (f"<h1>{html.escape(title)}</h1><p class=\"status\">task <b>{html.escape(info.task)}</b>, "
            f"<b data-status=\"{html.escape(info.status)}\">{html.escape(info.status)}</b> ({html.escape(info.detail)}); "
            f"steps {html.escape(info.steps_text())}; best validation {html.escape(info.best_text())}; "
            f"last write {html.escape(age_text(now - info.updated))}</p>"
            f"<p>Run directory: <code>{html.escape(str(run_dir.resolve()))}</code></p>")
    sections = [head, _config_section(info), _curves_section(info), _evaluations_section(info, run_dir),
                _diagnostics_section(run_dir), _picture_section(info, run_dir, compute),
                _language_model_sections(info, run_dir, out, compute)]
    body = "\n".join(s for s in sections if s)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n")


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, *, compute: bool = True) -> Path:
    """Write the report page of ``run_dir`` to ``out`` (default ``RUN_DIR/report.html``); returns its path.

    Raises ``ValueError`` when ``run_dir`` is not a run directory or ``out`` is a folder, and
    ``OSError`` when the file cannot be written."""
    run_dir = Path(run_dir)
    out = run_dir / "report.html" if out is None else Path(out)
    if out.is_dir():
        raise ValueError(f"--out expects a file path for the page, but {out} is a folder")
    page = report_html(run_dir, out=out, compute=compute)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out

