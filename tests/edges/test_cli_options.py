"""Bad numbers and unknown names on every command: exit code 2, one line naming the option, the value
given and what was expected, no traceback, and no run directory left behind.

The table covers every trainer option with a range (on ``adding``; a few of them on every other
task), every option of every task, and the options of ``resume``, ``sample``, ``demo``,
``study gradients`` and ``diagnose`` (``eval`` has no numeric option; its names and files are in
``test_cli_files.py``).
"""

from __future__ import annotations

import json

import pytest

from carousel.train import get_task, task_names
from carousel.train.config import choices_of, option_fields
from edges.cli_support import ADDING, CHARLM, corpus, invoke, one_thread, plain_error, run_dirs  # noqa: F401

# (flag, value, words the message must hold besides the value)
TRAINER = [
    ("--steps", "0", "steps"), ("--steps", "-5", "steps"), ("--batch-size", "0", "batch_size"),
    ("--lr", "inf", "lr"), ("--lr", "nan", "lr"), ("--lr", "-1", "lr"), ("--lr", "0", "lr"),
    ("--clip-norm", "nan", "clip_norm"), ("--clip-norm", "-1", "clip_norm"), ("--clip-value", "-inf", "clip_value"),
    ("--minutes", "inf", "minutes"), ("--minutes", "-2", "minutes"), ("--weight-decay", "-0.1", "weight_decay"),
    ("--momentum", "nan", "momentum"), ("--warmup", "-1", "warmup"), ("--eval-every", "-1", "eval_every"),
    ("--checkpoint-every", "0", "checkpoint_every"), ("--keep", "0", "keep"), ("--log-every", "0", "log_every"),
    ("--max-nonfinite", "0", "max_nonfinite"), ("--seed", "-1", "seed"), ("--diagnose-every", "-3", "diagnose_every"),
    ("--patience", "-1", "patience"), ("--optimizer", "adamm", "optimizer"), ("--schedule", "cosin", "schedule"),
    ("--device", "tpu", "device"), ("--steps", "many", "steps"), ("--lr", "fast", "lr"),
    ("--warmup", "1", "warmup"), ("--momentum", "1", "momentum"), ("--momentum", "0.9", "momentum"),
]
CHARLM_ONLY = [
    ("--bptt", "0", "bptt"), ("--bptt-back", "3", "bptt_back"), ("--embed-dropout", "1", "embed_dropout"),
    ("--input-dropout", "-0.5", "input_dropout"), ("--zoneout-h", "2", "zoneout_h"), ("--sampling-k", "inf", "sampling_k"),
    ("--precision", "fp16", "precision"), ("--batch-size", "100000", "batch_size"), ("--batch-size", "3000", "bptt"),
    ("--sampling-k", "0", "sampling_k"), ("--sampling-min", "0.5", "sampling_min"),
]
REACHABILITY_ONLY = [("--degree", "100", "degree"), ("--degree", "5", "degree")]  # complete graphs: no unreachable target
CODENAME_ONLY = [("--classes", "1", "classes"), ("--vocab", "1", "vocab"), ("--max-nodes", "1", "max_nodes")]
DEPTAG_ONLY = [("--vocab", "1", "vocab")]
# (options given first, flag, value, words): a --cell that the non-tree encoder would not use
WITH_OTHERS = {
    "exprtree": [(("--encoder", "sequence"), "--cell", "child_sum_lstm", "cell")],
    "deptag": [(("--encoder", "bilstm"), "--cell", "tree_gru", "cell")],
}
TINY = {"length": "5", "hidden": "8", "eval_size": "20", "nodes": "6", "propagation": "2"}  # tiny settings of any task


def task_option_cases(task: str) -> list[tuple[str, str, str]]:
    """Every option of the task: a negative integer, a NaN, an unknown name (by its declared type)."""
    cases = []
    for name, (field, kind) in option_fields(get_task(task).Options).items():
        flag = "--" + name.replace("_", "-")
        if kind is int:
            cases.append((flag, "-1", name))
        elif kind is float:
            cases.append((flag, "nan", name))
        elif kind is str and choices_of(field) is not None:
            cases.append((flag, "bogus-name", name))
    return cases + {"charlm": CHARLM_ONLY, "reachability": REACHABILITY_ONLY, "codename": CODENAME_ONLY, "deptag": DEPTAG_ONLY}.get(task, [])


EVERY_TASK = [("--steps", "0", "steps"), ("--lr", "inf", "lr"), ("--minutes", "inf", "minutes"), ("--batch-size", "0", "batch_size")]


def train_cases():
    """The whole trainer table on one task (every task reads it through the same code), a few of its
    cases and every task option on each task."""
    for task in task_names():
        for flag, value, name in (TRAINER if task == "adding" else EVERY_TASK) + task_option_cases(task):
            yield pytest.param(task, (), flag, value, name, id=f"{task}{flag}={value}")
        for others, flag, value, name in WITH_OTHERS.get(task, []):
            yield pytest.param(task, others, flag, value, name, id=f"{task}{''.join(others)}{flag}={value}")


@pytest.mark.parametrize("task,others,flag,value,name", list(train_cases()))
def test_train_refuses_a_bad_option(task, others, flag, value, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if task == "charlm":
        base = CHARLM + ["--corpus", str(corpus(tmp_path))]
    else:
        fields = option_fields(get_task(task).Options)
        base = ["--batch-size", "4", "--no-progress"]  # and each tiny setting the task has (not every task has --eval-size)
        base += [x for n, v in TINY.items() if n in fields for x in ("--" + n.replace("_", "-"), v)]
    if flag in base:  # the case's value replaces the tiny setting
        i = base.index(flag)
        base = base[:i] + base[i + 2:]
    code, text = invoke("train", task, *base, "--steps", "1", *others, flag, value)
    plain_error(code, text, flag if value in ("many", "fast") else value)
    assert "expected" in text or "valid:" in text or "valid integer" in text or "valid number" in text, text
    assert name in text.replace("-", "_") or flag in text, text
    assert run_dirs(tmp_path / "runs") == [], "a refused run left a run directory behind"


def corpus_cases(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "folder").mkdir()
    return {"missing": ("missing.txt", "missing.txt"), "empty": ("empty.txt", "empty"),
            "binary": ("binary.txt", "not valid UTF-8"), "folder": ("folder", "directory"),
            "list-with-missing": ("tiny.txt,gone.txt", "gone.txt"), "list-with-empty-entry": ("tiny.txt,", "empty path")}


@pytest.mark.parametrize("which", ["missing", "empty", "binary", "folder", "list-with-missing", "list-with-empty-entry"])
def test_train_charlm_refuses_a_bad_corpus(which, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    corpus(tmp_path)
    spec, says = corpus_cases(tmp_path)[which]
    code, text = invoke("train", "charlm", *CHARLM, "--steps", "1", "--corpus", spec)
    plain_error(code, text, says)
    assert run_dirs(tmp_path / "runs") == []


@pytest.mark.parametrize("which", ["missing", "empty", "binary", "folder"])
def test_demo_refuses_a_bad_corpus_before_any_work(which, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec, says = corpus_cases(tmp_path)[which]
    code, text = invoke("demo", "--corpus", spec, "--minutes", "0.05", "--hidden", "8", "--runs", "runs")
    plain_error(code, text, says)
    assert run_dirs(tmp_path / "runs") == []


@pytest.mark.parametrize("args,says", [
    (["--minutes", "inf"], ["minutes", "inf"]), (["--minutes", "nan"], ["minutes", "nan"]), (["--minutes", "0"], ["minutes > 0", "0"]),
    (["--minutes", "-1"], ["minutes > 0", "-1"]), (["--hidden", "0"], ["hidden", "0"]), (["--hidden", "-8"], ["hidden", "-8"]),
    (["--precision", "fp64"], ["precision", "fp64"]), (["--seed", "-1"], ["seed", "-1"]), (["--minutes", "soon"], ["--minutes", "valid number"]),
], ids=lambda a: "_".join(a) if isinstance(a, list) and a and a[0].startswith("-") else None)
def test_demo_refuses_a_bad_number(args, says, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, text = invoke("demo", "--corpus", "missing.txt", *args)  # refused before the corpus is read
    plain_error(code, text, *says)


@pytest.mark.parametrize("args,says", [
    (["--temperature", "nan"], ["--temperature", "nan"]), (["--temperature", "inf"], ["--temperature", "inf"]),
    (["--temperature", "-0.5"], ["--temperature", "-0.5"]), (["--top-k", "-1"], ["--top-k", "-1"]),
    (["--length", "0"], ["--length", "0"]), (["--num", "0"], ["--num", "0"]), (["--temperature", "warm"], ["--temperature", "valid number"]),
], ids=lambda a: "_".join(a) if isinstance(a, list) and a and a[0].startswith("-") else None)
def test_sample_refuses_a_bad_number(args, says, tmp_path):
    code, text = invoke("sample", str(tmp_path / "no-run"), *args)  # refused before the run is read
    plain_error(code, text, *says)


@pytest.mark.parametrize("args,says", [
    (["--steps", "0"], ["--steps", "0"]), (["--steps", "-4"], ["--steps", "-4"]), (["--steps", "x"], ["--steps", "valid integer"]),
], ids=["steps-0", "steps-negative", "steps-text"])
def test_resume_refuses_a_bad_number(args, says, tmp_path):
    code, text = invoke("resume", str(tmp_path), *args)
    plain_error(code, text, *says)


def test_diagnose_refuses_a_bad_lag(tmp_path):
    code, text = invoke("diagnose", str(tmp_path), "--max-lag", "0")
    plain_error(code, text, "--max-lag", "got 0", "expected")


STUDY = [
    (["--hidden", "0"], ["hidden", "0"]), (["--batch", "0"], ["batch", "0"]), (["--steps", "0"], ["steps", "0"]),
    (["--jobs", "0"], ["jobs", "0"]), (["--seconds", "inf"], ["seconds", "inf"]), (["--seconds", "nan"], ["seconds", "nan"]),
    (["--seconds", "0"], ["seconds", "0"]), (["--models", "bogus"], ["study model", "bogus"]),
    (["--models", ","], ["--models", "','"]), (["--adding", "x,y"], ["--adding", "x,y"]), (["--adding", "1"], ["adding", "(1,)"]),
    (["--copying", "0"], ["copying", "(0,)"]), (["--quick", "--models", "bogus"], ["study model", "bogus"]),
    (["--quick", "--hidden", "0"], ["hidden", "0"]), (["--quick", "--seconds", "-1"], ["seconds", "-1"]),
    (["--report-only", "--quick"], ["--report-only", "--quick"]), (["--report-only", "--models", "lstm"], ["--report-only", "--models"]),
    (["--report-only", "--resume"], ["--report-only", "--resume"]),
]


@pytest.mark.parametrize("args,says", STUDY, ids=["_".join(a) for a, _ in STUDY])
def test_study_refuses_a_bad_option(args, says, tmp_path):
    code, text = invoke("study", "gradients", "--out", str(tmp_path / "study"), *args)
    plain_error(code, text, *says)
    assert not (tmp_path / "study" / "runs.jsonl").exists()  # nothing ran


def test_study_quick_takes_the_options_given_with_it(tmp_path):
    out = tmp_path / "study"
    code, text = invoke("study", "gradients", "--quick", "--models", "lstm", "--steps", "2", "--adding", "6", "--copying", "",
                        "--out", str(out))
    assert code == 0 and "Traceback" not in text, text
    settings = json.loads((out / "config.json").read_text())
    assert settings["models"] == ["lstm"] and settings["steps"] == 2 and settings["adding"] == [6] and settings["copying"] == []
    assert settings["hidden"] == 8  # what --quick sets and the command line did not
    records = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert [(r["model"], r["task"], r["T"], r["steps"]) for r in records] == [("lstm", "adding", 6, 2)]


@pytest.mark.parametrize("args,says", [
    (["--hidden", "2000000"], ["not enough memory", "64000000000000 bytes", "smaller --hidden"]),
    (["--backend", "scan"], ["backend 'scan' cannot run LSTMCell"]),  # refused at the first step, after the set-up
], ids=["too-large-to-allocate", "refused-at-the-first-step"])
def test_a_run_that_fails_to_start_leaves_no_run_directory(args, says, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, text = invoke("train", "adding", *ADDING, "--steps", "1", *args)
    plain_error(code, text, *says)
    assert run_dirs(tmp_path / "runs") == []
    code, text = invoke("train", "adding", *ADDING, "--steps", "1", *args, "--run-dir", "mine")
    plain_error(code, text, *says)
    assert not (tmp_path / "mine").exists()
