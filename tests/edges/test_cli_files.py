"""Files at the edges of every command: missing, empty, binary, truncated and foreign checkpoints and
config files; files where directories are expected; read-only directories; run directories of runs
started in the same second. Each case: the exit code (2 for a usage mistake or an unusable path, 1
for a bad checkpoint, 0 where the command can do its job), one line naming the file and what was
expected, and no traceback.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from safetensors.torch import save_file
import torch

import carousel.train.run as run_module
from carousel.train import list_checkpoints, load_checkpoint, new_run_dir, read_metrics
from edges.cli_support import (  # noqa: F401
    ADDING, CHARLM, copy_run, corpus, invoke, one_thread, plain_error, read_only, run_dirs,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A tiny finished adding run and a tiny charlm run (2 steps, a checkpoint and an evaluation at each)."""
    root = tmp_path_factory.mktemp("runs")
    made = {}
    for task, args in (("adding", ADDING), ("charlm", [*CHARLM, "--corpus", str(corpus(root))])):
        code, text = invoke("train", task, *args, "--steps", "2", "--eval-every", "1", "--checkpoint-every", "1",
                            "--run-dir", str(root / task))
        assert code == 0, text
        made[task] = root / task
    return made


# ---- checkpoint files ------------------------------------------------------------------------------
def break_checkpoints(run: Path, how: str, other: Path) -> None:
    """Replace every checkpoint of ``run`` (step ones and best) as ``how`` says."""
    for path in [p for _, p in list_checkpoints(run / "checkpoints")] + [run / "checkpoints" / "best.safetensors"]:
        data = path.read_bytes()
        if how == "empty":
            path.write_bytes(b"")
        elif how == "binary":
            path.write_bytes(bytes(range(256)) * 8)
        elif how == "truncated":
            path.write_bytes(data[: len(data) // 2])
        elif how == "foreign":  # a valid safetensors file that is no carousel checkpoint
            save_file({"weight": torch.zeros(3)}, str(path))
        elif how == "other-run":  # a checkpoint of another task's run under this run's names
            path.write_bytes((other / "checkpoints" / "best.safetensors").read_bytes())
        elif how == "bit-flip":
            flipped = bytearray(data)
            flipped[-5] ^= 0xFF
            path.write_bytes(bytes(flipped))


CHECKPOINT_KINDS = {"empty": "corrupt", "binary": "corrupt", "truncated": "corrupt", "foreign": "not a carousel checkpoint",
                    "bit-flip": "do not match the checksum", "other-run": "another"}


@pytest.mark.parametrize("how", list(CHECKPOINT_KINDS))
@pytest.mark.parametrize("command", ["resume", "eval", "sample", "diagnose"])
def test_a_bad_checkpoint_is_named_and_refused(command, how, runs, tmp_path):
    task = "charlm" if command == "sample" else "adding"
    run = copy_run(runs[task], tmp_path)
    break_checkpoints(run, how, runs["charlm" if task == "adding" else "adding"])
    args = {"resume": ["--steps", "3", "--no-progress"], "eval": [], "sample": ["--length", "5"], "diagnose": ["--from-checkpoints"]}
    code, text = invoke(command, str(run), *args[command])
    says = CHECKPOINT_KINDS[how]
    if how == "other-run":
        says = {"resume": "another config", "eval": "is for task 'charlm'", "sample": "holds no vocabulary",
                "diagnose": "does not fit this model"}[command]
    plain_error(code, text, "checkpoint", ".safetensors", says, exit_code=1)


@pytest.mark.parametrize("command", ["eval", "sample"])
def test_a_named_checkpoint_that_is_not_a_file(command, runs, tmp_path):
    run = runs["charlm"]
    for given in (tmp_path / "missing.safetensors", tmp_path):
        code, text = invoke(command, str(run), "--checkpoint", str(given))
        plain_error(code, text, "no checkpoint", str(given), exit_code=1)


def test_resume_without_any_checkpoint_trains_again_from_step_0(runs, tmp_path):
    run = copy_run(runs["adding"], tmp_path)
    for _, path in list_checkpoints(run / "checkpoints"):
        path.unlink()
    code, text = invoke("resume", str(run), "--steps", "3")
    assert code == 0 and "Traceback" not in text, text
    assert "no checkpoint yet; it was trained again from step 0" in text
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"] == [1, 2, 3]


# ---- config files --------------------------------------------------------------------------------------
RUN_CONFIGS = {  # what replaces a run's config.json -> what the message says
    "missing": (None, "not a run directory (no config.json)"), "empty": (b"", "not valid JSON"),
    "binary": (bytes(range(128, 256)), "not UTF-8 text"), "truncated": (b'{"task": "adding", "opt', "not valid JSON"),
    "foreign": (b'[1, 2, 3]', "not a run config"), "unknown-task": (b'{"task": "nope"}', "names task 'nope', which is not registered"),
    "bad-value": (b'{"task": "adding", "train": {"lr": "fast"}}', "expected a number for lr, got 'fast'"),
    "bad-section": (b'{"task": "adding", "options": 3}', "expected 'options' to be an object"),
    "directory": ("dir", "is a directory"),
}


@pytest.mark.parametrize("which", list(RUN_CONFIGS))
@pytest.mark.parametrize("command", ["resume", "eval", "diagnose"])
def test_a_bad_run_config_is_named_and_refused(command, which, runs, tmp_path):
    run = copy_run(runs["adding"], tmp_path)
    content, says = RUN_CONFIGS[which]
    config = run / "config.json"
    config.unlink()
    if content == "dir":
        config.mkdir()
    elif content is not None:
        config.write_bytes(content)
    code, text = invoke(command, str(run))
    plain_error(code, text, says)
    if which != "missing":
        assert "config.json" in text


CONFIG_FILES = {  # --config FILE -> what the message says
    "missing.toml": (None, "does not exist"), "folder.toml": ("dir", "is a directory"), "binary.toml": (bytes(range(256)), "not UTF-8 text"),
    "empty.toml": (b"", "names no task"), "truncated.toml": (b'[task]\nname = "add', "not valid TOML"),
    "foreign.json": (b'{"model": 1}', "not a run config"), "number.toml": (b"[task]\nname = 3\n", "expected the task's name as a string"),
    "table.toml": (b"task = 3\n", "expected a [task] table"), "unknown.toml": (b'[task]\nname = "nope"\n', "unknown task 'nope'"),
    "nan.toml": (b'[task]\nname = "adding"\n[train]\nlr = nan\n', "expected a finite number for lr, got nan"),
    "inf.json": (b'{"task": "adding", "train": {"minutes": Infinity}}', "expected a finite number for minutes, got inf"),
    "range.toml": (b'[task]\nname = "adding"\nhidden = -4\n', "expected hidden >= 1, got -4"),
}


@pytest.mark.parametrize("name", list(CONFIG_FILES))
def test_a_bad_config_file_is_named_and_refused(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    content, says = CONFIG_FILES[name]
    if content == "dir":
        (tmp_path / name).mkdir()
    elif content is not None:
        (tmp_path / name).write_bytes(content)
    code, text = invoke("train", "--config", name, "--steps", "1")
    plain_error(code, text, name, says)
    assert run_dirs(tmp_path / "runs") == []


HISTORIES = {  # what replaces a run's diagnostics.jsonl -> what the message says (None: rebuilt, exit 0)
    "torn": (b'{"step": 1, "lay', "line 1 column"), "foreign": (b'{"step": 5}\n', "KeyError"),
    "binary": (bytes(range(128, 256)), "codec can't decode"), "empty": (b"", None),
}


@pytest.mark.parametrize("which", list(HISTORIES))
def test_a_bad_diagnostics_history_is_named_and_refused(which, runs, tmp_path):
    run = copy_run(runs["adding"], tmp_path)
    content, says = HISTORIES[which]
    (run / "diagnostics.jsonl").write_bytes(content)
    code, text = invoke("diagnose", str(run))
    if says is None:  # an empty history is rebuilt from the checkpoints
        assert code == 0 and "Traceback" not in text and "2 snapshots" in " ".join(text.split()), text
        return
    plain_error(code, text, str(run / "diagnostics.jsonl"), "is not a readable diagnostics history", says)


# ---- files where directories are expected -------------------------------------------------------------
@pytest.mark.parametrize("command", ["train", "train-below", "train-empty-name", "resume", "eval", "sample", "diagnose", "demo", "study",
                                     "report", "runs"])
def test_a_file_where_a_directory_is_expected(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    args = {
        "train": ["train", "adding", *ADDING, "--steps", "1", "--run-dir", afile],
        "train-below": ["train", "adding", *ADDING, "--steps", "1", "--run-dir", afile / "run"],
        "resume": ["resume", afile], "eval": ["eval", afile], "sample": ["sample", afile], "diagnose": ["diagnose", afile],
        "demo": ["demo", "--corpus", str(corpus(tmp_path)), "--minutes", "0.05", "--hidden", "8", "--runs", afile],
        "study": ["study", "gradients", "--quick", "--out", afile], "report": ["report", afile], "runs": ["runs", afile],
        "train-empty-name": ["train", "adding", *ADDING, "--steps", "1", "--run-dir", ""],
    }[command]
    if command == "train-empty-name":
        plain_error(*invoke(*args), "--run-dir", "empty path")
        assert run_dirs(tmp_path) == [] and not (tmp_path / "config.json").exists()
        return
    code, text = invoke(*args)
    plain_error(code, text, "afile")
    assert afile.read_text() == "not a folder"


def test_report_out_below_a_file_names_the_file(runs, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    code, text = invoke("report", str(copy_run(runs["adding"], tmp_path)), "--out", str(afile / "page.html"))
    plain_error(code, text, "expected a folder", str(afile), "is a file")
    assert afile.read_text() == "not a folder"


def test_a_checkpoint_name_that_is_neither_a_name_nor_a_file_says_what_is_expected(runs):
    code, text = invoke("eval", str(runs["adding"]), "--checkpoint", "worst")
    plain_error(code, text, "'worst'", "expected 'best', 'latest' or the path of a checkpoint file", exit_code=1)


def test_resume_with_fewer_steps_than_done_says_where_the_run_is(runs, tmp_path):
    run = copy_run(runs["adding"], tmp_path)
    code, text = invoke("resume", str(run), "--steps", "1")
    flat = " ".join(text.split())
    assert code == 0 and "Traceback" not in text and "it is at step 2, past the 1 steps asked for" in flat, text


# ---- read-only directories -------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["train", "train-into", "resume", "eval", "diagnose", "demo", "study", "sample"])
def test_a_read_only_directory(command, runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text_file = corpus(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    task = "charlm" if command == "sample" else "adding"
    run = copy_run(runs[task], locked) if command in ("resume", "eval", "diagnose", "sample") else None
    if command == "train-into":
        (locked / "empty-run").mkdir()
    args = {
        "train": ["train", "adding", *ADDING, "--steps", "1", "--run-dir", locked / "new-run"],
        "train-into": ["train", "adding", *ADDING, "--steps", "1", "--run-dir", locked / "empty-run"],
        "resume": ["resume", run, "--steps", "3", "--no-progress"], "eval": ["eval", run],
        "diagnose": ["diagnose", run, "--from-checkpoints"],
        "demo": ["demo", "--corpus", str(text_file), "--minutes", "0.05", "--hidden", "8", "--runs", locked / "runs"],
        "study": ["study", "gradients", "--quick", "--out", locked / "study"], "sample": ["sample", run, "--length", "5"],
    }[command]
    with read_only(locked):
        code, text = invoke(*args)
    if command == "sample":  # sampling writes nothing: a read-only run is fine
        assert code == 0 and "Traceback" not in text, text
        return
    plain_error(code, text, "permission denied", str(locked))
    if command == "eval":  # the results come before the failed write, and the message says they were not saved
        assert "valid" in text and "test" in text and "the results above were not saved" in text
    if command == "resume":
        assert len(list_checkpoints(run / "checkpoints")) == 2 and all(load_checkpoint(p) for _, p in list_checkpoints(run / "checkpoints"))


# ---- run directories of runs started together ------------------------------------------------------------------
def test_new_run_dir_gives_every_caller_its_own_directory_within_one_second(tmp_path, monkeypatch):
    monkeypatch.setattr(run_module.time, "strftime", lambda fmt: "20260101-000000")  # all in the same second
    got: list[Path] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        got.append(new_run_dir("adding", tmp_path / "runs"))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 8 and all(p.is_dir() for p in got)
    assert sorted(p.name for p in got) == sorted(["adding-20260101-000000"] + [f"adding-20260101-000000-{n}" for n in range(2, 9)])


def test_two_runs_started_in_the_same_second_keep_their_own_metrics(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(run_module.time, "strftime", lambda fmt: "20260101-000000")
    for steps in ("2", "3"):
        code, text = invoke("train", "adding", *ADDING, "--steps", steps)
        assert code == 0, text
    first, second = run_dirs(tmp_path / "runs")
    assert [r["step"] for r in read_metrics(first / "metrics.jsonl") if r["kind"] == "train"] == [1, 2]
    assert [r["step"] for r in read_metrics(second / "metrics.jsonl") if r["kind"] == "train"] == [1, 2, 3]


def test_a_run_directory_taken_between_the_name_and_the_start_is_refused(tmp_path):
    run = tmp_path / "run"
    code, text = invoke("train", "adding", *ADDING, "--steps", "1", "--run-dir", run)
    assert code == 0, text
    code, text = invoke("train", "adding", *ADDING, "--steps", "1", "--run-dir", run)
    plain_error(code, text, str(run), "already holds a run")
    (tmp_path / "leftover" / "checkpoints").mkdir(parents=True)
    code, text = invoke("train", "adding", *ADDING, "--steps", "1", "--run-dir", tmp_path / "leftover")
    plain_error(code, text, "leftover", "holds checkpoints of an earlier run but no config.json")


# ---- a corpus named relative to where the run started ------------------------------------------------------------------
def test_a_relative_corpus_path_is_found_from_anywhere_and_named_when_gone(tmp_path, monkeypatch):
    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    start.mkdir()
    elsewhere.mkdir()
    corpus(start)
    monkeypatch.chdir(start)
    code, text = invoke("train", "charlm", *CHARLM, "--corpus", "tiny.txt", "--steps", "2", "--run-dir", "run")
    assert code == 0, text
    assert json.loads((start / "run" / "config.json").read_text())["options"]["corpus"] == str(start / "tiny.txt")
    monkeypatch.chdir(elsewhere)
    for command in (["eval", str(start / "run")], ["resume", str(start / "run"), "--steps", "3"]):
        code, text = invoke(*command)
        assert code == 0 and "Traceback" not in text, text
    (start / "tiny.txt").unlink()
    code, text = invoke("eval", str(start / "run"))
    plain_error(code, text, "file not found", str(start / "tiny.txt"))


def test_the_read_only_simulation_puts_everything_back(tmp_path):
    import builtins
    import os

    (tmp_path / "f").write_text("x")
    before = (builtins.open, os.mkdir, os.replace, (tmp_path / "f").stat().st_mode)
    with read_only(tmp_path):
        with pytest.raises(PermissionError):
            (tmp_path / "g").write_text("y")
    assert (builtins.open, os.mkdir, os.replace, (tmp_path / "f").stat().st_mode) == before
    (tmp_path / "g").write_text("y")
