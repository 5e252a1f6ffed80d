"""``carousel runs`` and ``carousel report`` on real tiny runs: the listing says where each run stands
(finished, interrupted, failed, running?) with its steps and best metric; the report page holds the
configuration and one embedded image per curve, renders in headless Chromium with the network off,
and a missing, empty or foreign directory gets one plain line, never a traceback."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carousel.cli import app
from carousel.train import Hook, build_config, read_metrics, train_run

TINY = ["--length", "5", "--hidden", "8", "--batch-size", "4", "--eval-size", "20", "--no-progress"]
BOX = str.maketrans("", "", "│╭╮╰╯─┃┏┓┗┛━┡┩╇╈┳┻┴┬┼└┘┌┐")


def invoke(*args: str, width: int = 250):
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": str(width)})
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "Traceback" not in text
    return result.exit_code, " ".join(text.translate(BOX).split())


def age(run_dir: Path, seconds: float = 3600.0) -> None:
    """Make every file of a run look ``seconds`` old (a run that stopped an hour ago)."""
    then = time.time() - seconds
    for path in [run_dir, *run_dir.rglob("*")]:
        os.utime(path, (then, then))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A folder with a finished adding run (with diagnostics), a failed one, and an interrupted one."""
    root = tmp_path_factory.mktemp("runs")
    code, text = invoke("train", "adding", *TINY, "--steps", "12", "--eval-every", "4", "--diagnose-every", "6",
                        "--run-dir", str(root / "done"))
    assert code == 0, text
    code, text = invoke("train", "adding", *TINY, "--steps", "12", "--lr", "1e30", "--clip-norm", "0", "--max-nonfinite", "3",
                        "--run-dir", str(root / "diverged"))
    assert code == 1 and "non-finite" in text, text

    class CtrlC(Hook):
        def on_step(self, trainer, record):
            if trainer.step == 7:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(build_config("adding", {"length": 5, "hidden": 8, "batch_size": 4, "eval_size": 20, "progress": False,
                                          "steps": 12, "checkpoint_every": 5}), root / "stopped", hooks=[CtrlC()])
    for name in ("done", "diverged", "stopped"):
        age(root / name)
    return root


def best_of(run_dir: Path) -> float:
    return min(r["loss"] for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "eval")


def row(text: str, name: str) -> str:
    """The words of the table row of run ``name`` (up to the next run's name or the end)."""
    found = re.search(rf"(?:^| ){re.escape(name)} (adding .*?)(?= (?:done|diverged|stopped|recent) adding|$| skipped)", text)
    assert found, text
    return found.group(1)


def test_runs_lists_each_runs_status_steps_and_best_metric(runs):
    code, text = invoke("runs", str(runs))
    assert code == 0
    assert text.startswith("3 runs in")
    done = row(text, "done")
    assert "finished" in done and "12/12" in done and f"loss {best_of(runs / 'done'):.4g}" in done and "reached its steps" in done
    stopped = row(text, "stopped")
    assert "interrupted" in stopped and "7/12" in stopped and "resume from step 5" in stopped
    diverged = row(text, "diverged")
    assert "failed" in diverged and "non-finite" in diverged and "–" in diverged  # no evaluation: no best
    # the same interrupted run, written just now: it may still be running
    fresh = runs.parent / "fresh"
    shutil.copytree(runs / "stopped", fresh / "recent", copy_function=shutil.copyfile)  # new mtimes
    code, text = invoke("runs", str(fresh))
    assert code == 0 and "running?" in row(text, "recent") and "no process is checked" in text


def test_runs_of_one_run_directory_lists_it(runs):
    code, text = invoke("runs", str(runs / "done"))
    assert code == 0 and text.startswith("1 run in") and "finished" in row(text, "done")


@pytest.mark.parametrize("make,args,code_expected,expected", [
    (None, ["missing-folder"], 2, "Error: expected a folder of run directories, but missing-folder is missing"),
    ("empty", [], 0, "no run directories in"),
    ("foreign", [], 0, "no run directories in"),
    ("file", [], 2, "is a file"),
])
def test_runs_on_a_missing_empty_or_foreign_folder_says_so_in_one_line(tmp_path, monkeypatch, make, args, code_expected, expected):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "target"
    if make == "empty":
        target.mkdir()
    elif make == "foreign":
        (target / "photos").mkdir(parents=True)
        (target / "notes.txt").write_text("not a run")
        (target / "broken").mkdir()
        (target / "broken" / "config.json").write_text("{not json")
    elif make == "file":
        target.write_text("x")
    code, text = invoke("runs", *(args or [str(target)]))
    assert code == code_expected and expected in text, text
    if make == "foreign":
        assert "skipped 3" in text and "broken: " in text and "not a readable run configuration" in text


def test_runs_without_a_runs_folder_says_there_are_none_yet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, text = invoke("runs")
    assert code == 0 and text.startswith("no runs yet: runs/ does not exist")


def png_size(uri: str) -> tuple[int, int]:
    data = base64.b64decode(uri.split(",", 1)[1])
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_report_holds_the_config_and_one_image_per_curve(runs, tmp_path):
    out = tmp_path / "page.html"
    assert invoke("eval", str(runs / "done"))[0] == 0
    scored = json.loads((runs / "done" / "eval.json").read_text())
    code, text = invoke("report", str(runs / "done"), "--out", str(out))
    assert code == 0 and str(out) in text
    page = out.read_text(encoding="utf-8")
    config = json.loads((runs / "done" / "config.json").read_text())
    for section in ("options", "train"):
        for key, value in config[section].items():
            shown = f"{value:.6g}" if isinstance(value, float) else str(value)
            assert f"<td>{key}</td><td>{shown}</td>" in page, key
    figures = re.findall(r'<figure data-curve="([^"]+)">(.*?)</figure>', page, re.S)
    names = [n for n, _ in figures]
    assert names[:4] == ["loss", "grad_norm", "lr", "rate"] and len(set(names)) == len(names)
    extra = {k for r in read_metrics(runs / "done" / "metrics.jsonl") if r["kind"] == "eval" for k in r} - {"kind", "split", "step", "best", "loss"}
    assert set(names[4:]) <= extra  # the rest are validation metrics of the task
    images = [re.findall(r'<img [^>]*src="(data:image/png;base64,[^"]+)"', body) for _, body in figures]
    assert all(len(found) == 1 for found in images)
    sizes = [png_size(found[0]) for found in images]
    assert all(w > 100 and h > 100 for w, h in sizes)
    assert len({found[0] for found in images}) == len(images)  # every curve its own picture
    assert 'data-status="finished"' in page
    for split, values in scored["splits"].items():  # the evaluation table of eval.json
        assert f"<tr><td>{split}</td>" + "".join(f"<td>{v:.6g}</td>" for v in values.values()) + "</tr>" in page
    assert re.findall(r'<figure data-plot="([^"]+)">', page)[:2] == ["gradient_flow", "gradient_heatmap"]  # --diagnose-every
    assert not re.search(r'(src|href)\s*=\s*"(?!data:)|https?://|@import', page)  # nothing to fetch


@pytest.fixture(scope="module")
def charlm_report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("charlm")
    corpus = root / "text.txt"
    corpus.write_text('a tiny corpus (with "quotes") and [brackets], line after line.\n' * 60, encoding="utf-8")
    run = root / "lm"
    code, text = invoke("train", "charlm", "--corpus", str(corpus), "--hidden", "12", "--embed", "6", "--steps", "4",
                        "--eval-every", "2", "--batch-size", "4", "--bptt", "16", "--no-compressors", "--eval-window", "64",
                        "--no-progress", "--run-dir", str(run))
    assert code == 0 and "last training loss (nats per character)" in text and "best validation bpc" in text, text
    code, text = invoke("report", str(run))
    assert code == 0, text
    return run / "report.html"


def test_report_of_a_language_model_has_samples_and_the_activation_page(charlm_report):
    page = charlm_report.read_text(encoding="utf-8")
    assert "<h2>Samples</h2>" in page and "--- temperature 0.5 ---" in page
    frame = re.search(r'<iframe title="activation page" srcdoc="([^"]*)"', page)
    assert frame and "Most interpretable units" in frame.group(1) and "&lt;span style=" in frame.group(1)
    assert re.findall(r'<figure data-curve="([^"]+)">', page) == ["loss", "grad_norm", "lr", "rate", "bpc"]


@pytest.mark.parametrize("make,expected", [
    (None, "Error: expected a run directory, but {d} is missing"),
    ("empty", "Error: {d} is not a run directory (no config.json)"),
    ("foreign", "Error: {d}/config.json is not a readable run configuration"),
])
def test_report_on_a_missing_empty_or_foreign_directory_says_so_in_one_line(tmp_path, make, expected):
    d = tmp_path / "d"
    if make:
        d.mkdir()
    if make == "foreign":
        (d / "config.json").write_text(json.dumps({"name": "a web app"}))
    code, text = invoke("report", str(d))
    assert code == 2 and expected.format(d=d) in text and len(text.splitlines()) == 1
    assert not (d / "report.html").exists()


def test_report_refuses_a_folder_as_out(runs, tmp_path):
    code, text = invoke("report", str(runs / "done"), "--out", str(tmp_path))
    assert code == 2 and f"--out expects a file path for the page, but {tmp_path} is a folder" in text


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium; `make test` does it as root)")


# appended to a copy of the page: after load, write each image's decoded width into the DOM
PROBE = """<script>window.addEventListener("load", () => {
  const widths = [...document.images].map(i => i.complete ? i.naturalWidth : -1);
  const out = document.createElement("pre"); out.id = "probe"; out.textContent = JSON.stringify(widths);
  document.body.appendChild(out);
});</script>"""


def test_report_renders_its_images_in_headless_chromium_without_network(charlm_report, tmp_path):
    browser = _chromium()
    page = charlm_report.read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",  # any fetch would fail
             "--virtual-time-budget=5000", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom"]
    done = subprocess.run([browser, *flags, f"file://{probe}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="probe">([^<]*)</pre>', done.stdout)
    assert found, done.stdout[-2000:]
    widths = json.loads(found.group(1))
    assert len(widths) == len(re.findall(r"<img ", page)) == 5
    assert all(w > 100 for w in widths), widths


def test_runs_counts_an_early_stopped_run_as_finished(tmp_path):
    run = tmp_path / "patient"
    code, text = invoke("train", "adding", *TINY, "--steps", "60", "--eval-every", "1", "--patience", "1", "--lr", "0.3",
                        "--run-dir", str(run))
    assert code == 0 and "stopped early: early stopping" in text, text
    steps = max(r["step"] for r in read_metrics(run / "metrics.jsonl"))
    assert steps < 60
    age(run)
    code, text = invoke("runs", str(tmp_path))
    assert code == 0 and "finished" in text and f"{steps}/60" in text and "early stopping (patience 1)" in text, text


def test_report_embeds_the_samples_and_activation_page_a_run_wrote(charlm_report, tmp_path):
    run = tmp_path / "demo-like"
    shutil.copytree(charlm_report.parent, run)
    (run / "samples.txt").write_text("--- temperature 0.5 ---\nthe <market> & co\n", encoding="utf-8")
    (run / "activations.html").write_text('<!DOCTYPE html><p id="viewer">units & "quotes"</p>', encoding="utf-8")
    code, text = invoke("report", str(run), "--no-compute")
    assert code == 0, text
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "<pre>--- temperature 0.5 ---\nthe &lt;market&gt; &amp; co\n</pre>" in page
    assert '<a href="activations.html">' in page
    assert 'srcdoc="&lt;!DOCTYPE html&gt;&lt;p id=&quot;viewer&quot;&gt;units &amp; &quot;quotes&quot;&lt;/p&gt;"' in page


TRANSDUCE = ["--problem", "reverse", "--length", "4", "--symbols", "4", "--hidden", "8", "--batch-size", "4", "--eval-size", "8",
             "--steps", "3", "--eval-every", "3", "--no-progress"]


def test_report_draws_the_tasks_picture_of_the_best_checkpoint(tmp_path):
    """A task that draws its model (here transduce's attention map) gets a Picture section with that
    PNG; one whose picture cannot be drawn (no attention) says why; one without a picture has none."""
    code, text = invoke("train", "transduce", *TRANSDUCE, "--run-dir", str(tmp_path / "attn"))
    assert code == 0, text
    code, text = invoke("report", str(tmp_path / "attn"))
    assert code == 0, text
    page = (tmp_path / "attn" / "report.html").read_text(encoding="utf-8")
    section = page[page.index("<h2>Picture</h2>"):]
    assert "step 3" in section
    found = re.findall(r'<figure data-plot="task"><img [^>]*src="(data:image/png;base64,[^"]+)"', section)
    assert len(found) == 1 and min(png_size(found[0])) > 100
    code, text = invoke("train", "transduce", *TRANSDUCE, "--attention", "none", "--run-dir", str(tmp_path / "plain"))
    assert code == 0, text
    assert invoke("report", str(tmp_path / "plain"))[0] == 0
    page = (tmp_path / "plain" / "report.html").read_text(encoding="utf-8")
    assert "<h2>Picture</h2><p>Not drawn: this model has no attention" in page and 'data-plot="task"' not in page


def test_report_of_a_task_without_a_picture_has_no_picture_section(runs, tmp_path):
    assert invoke("report", str(runs / "done"), "--out", str(tmp_path / "page.html"))[0] == 0
    assert "<h2>Picture</h2>" not in (tmp_path / "page.html").read_text(encoding="utf-8")
