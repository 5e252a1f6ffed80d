"""Recovery that tells the truth: Ctrl-C saves a checkpoint and says how to go on (train, resume,
demo); a finished run resumed says so and trains nothing; the "last good checkpoint" named after
non-finite steps has finite weights and losses (and survives pruning); a run started from the Python
``Trainer`` is readable by the commands, and a second one refuses to append to it; a study's report
written again from missing or broken results is refused in one line."""

from __future__ import annotations

import json
import math
import re
import signal
from pathlib import Path

import pytest
import torch

from carousel.train import (
    NonFiniteError, TrainConfig, Trainer, get_task, list_checkpoints, load_checkpoint, read_metrics,
)
from carousel.train.tasks.adding import AddingOptions
from carousel.train.tasks.charlm import CharLMTask
from edges.cli_support import ADDING, corpus, invoke, one_thread, plain_error, run_dirs  # noqa: F401


def train_records(run: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"]


@pytest.fixture(autouse=True)
def python_handles_ctrl_c():
    """Python's own Ctrl-C handler during each test and the previous one after: a test run started in
    the background by a non-interactive shell inherits SIGINT ignored, and these tests press Ctrl-C."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def press_ctrl_c_at(monkeypatch, task_cls, step: int) -> None:
    """Deliver SIGINT to this process while the task computes training step ``step`` (1-based)."""
    original, calls = task_cls.step, [0]

    def step_then_interrupt(self, model, batch, state):
        calls[0] += 1
        if calls[0] == step:
            signal.raise_signal(signal.SIGINT)
        return original(self, model, batch, state)

    monkeypatch.setattr(task_cls, "step", step_then_interrupt)


def test_ctrl_c_during_train_saves_the_step_and_resume_equals_the_uninterrupted_run(tmp_path, monkeypatch):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    args = [*ADDING, "--steps", "6", "--checkpoint-every", "4", "--eval-every", "2"]
    assert invoke("train", "adding", *args, "--run-dir", whole)[0] == 0
    press_ctrl_c_at(monkeypatch, get_task("adding"), 3)
    code, text = invoke("train", "adding", *args, "--run-dir", cut)
    assert code == 130 and "Traceback" not in text, text
    assert f"the last checkpoint is {cut / 'checkpoints' / 'step-00000003.safetensors'}" in text
    assert f"Continue with: carousel resume {cut}" in text
    assert [s for s, _ in list_checkpoints(cut / "checkpoints")] == [3]  # the interrupted step, not a step before it
    monkeypatch.undo()
    code, text = invoke("resume", str(cut))
    assert code == 0, text
    assert train_records(cut) == train_records(whole)
    evals = lambda run: [(r["step"], r["loss"]) for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "eval"]  # noqa: E731
    assert evals(cut) == evals(whole)  # no extra evaluation at the interruption


def test_ctrl_c_during_the_demo_saves_a_checkpoint_and_says_how_to_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("CAROUSEL_CACHE", str(tmp_path / "cache"))
    press_ctrl_c_at(monkeypatch, CharLMTask, 2)
    code, text = invoke("demo", "--corpus", corpus(tmp_path), "--minutes", "0.2", "--hidden", "8", "--runs", tmp_path / "runs",
                        "--precision", "fp32")
    assert code == 130 and "Traceback" not in text, text
    (run,) = run_dirs(tmp_path / "runs")
    assert f"the last checkpoint is {run / 'checkpoints' / 'step-00000002.safetensors'}" in text
    assert f"Continue with: carousel resume {run}" in text
    tensors, meta = load_checkpoint(run / "checkpoints" / "step-00000002.safetensors")
    assert meta["step"] == 2


def test_ctrl_c_before_the_demo_trains_leaves_nothing(tmp_path, monkeypatch):
    import carousel.studies.demo as demo

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "fit_to_machine", interrupted)
    code, text = invoke("demo", "--corpus", corpus(tmp_path), "--minutes", "0.2", "--hidden", "8", "--runs", tmp_path / "runs")
    assert code == 130 and "interrupted before training started; nothing was saved" in text and "Traceback" not in text
    assert run_dirs(tmp_path / "runs") == []


def test_resuming_a_run_whose_time_budget_is_spent_says_so_and_trains_nothing(tmp_path):
    run = tmp_path / "run"
    code, text = invoke("train", "adding", *ADDING, "--steps", "1000000", "--minutes", "0.002", "--run-dir", run)
    assert code == 0 and "time budget of 0.12 s reached" in text, text
    before = (run / "metrics.jsonl").read_text()
    for extra in ([], ["--steps", "2000000"]):
        code, text = invoke("resume", str(run), *extra)
        assert code == 0 and "Traceback" not in text, text
        assert re.search(r"is finished at step \d+: its time budget of 0.002 minutes is spent", " ".join(text.split())), text
    assert (run / "metrics.jsonl").read_text() == before


def test_the_last_good_checkpoint_has_finite_weights_and_losses(tmp_path):
    run = tmp_path / "run"
    code, text = invoke("train", "adding", *ADDING, "--steps", "40", "--lr", "1e4", "--optimizer", "sgd", "--clip-norm", "0",
                        "--checkpoint-every", "1", "--eval-every", "1", "--max-nonfinite", "2", "--run-dir", run)
    plain_error(code, text, "non-finite", "The last good checkpoint (finite weights and losses) is", exit_code=1)
    named = Path(re.search(r"is (\S+step-\d+\.safetensors)", " ".join(text.split())).group(1))
    tensors, meta = load_checkpoint(named)  # still there: pruning spares it
    assert meta["good"] and all(bool(torch.isfinite(t).all()) for k, t in tensors.items() if k.startswith("model/"))
    evals = {r["step"]: r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "eval"}
    assert math.isfinite(evals[meta["step"]]["loss"])
    later = [s for s, _ in list_checkpoints(run / "checkpoints") if s > meta["step"]]
    assert later and all(not math.isfinite(evals[s]["loss"] or math.inf) for s in later)  # the bad ones came after


def test_a_python_trainer_run_is_readable_by_the_commands_and_not_appended_to(tmp_path):
    run = tmp_path / "mine"
    task = get_task("adding")(AddingOptions(length=5, hidden=8, eval_size=20))
    config = TrainConfig(steps=2, batch_size=4, progress=False)
    Trainer(task, config, run_dir=run).fit()
    code, text = invoke("eval", str(run))
    assert code == 0 and "Traceback" not in text, text
    assert json.loads((run / "eval.json").read_text())["step"] == 2
    with pytest.raises(ValueError, match="already holds a run .*metrics.jsonl and step checkpoints.*trainer.load"):
        Trainer(task, config, run_dir=run).fit()
    assert [s for s, _ in train_records(run)] == [1, 2]
    code, text = invoke("resume", str(run), "--steps", "3")
    assert code == 0 and [s for s, _ in train_records(run)] == [1, 2, 3], text


def test_a_run_of_a_task_registered_elsewhere_is_refused_with_the_reason(tmp_path):
    run = tmp_path / "mine"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "my-adding", "options": {}, "train": {}}))
    for command in ("eval", "resume", "diagnose"):
        code, text = invoke(command, str(run))
        plain_error(code, text, "names task 'my-adding', which is not registered here", "import it")


def test_a_non_finite_run_from_python_names_no_bad_checkpoint(tmp_path):
    task = get_task("adding")(AddingOptions(length=5, hidden=8, eval_size=20))
    config = TrainConfig(steps=30, batch_size=4, lr=1e4, optimizer="sgd", clip_norm=0.0, checkpoint_every=1, eval_every=1,
                         max_nonfinite=1, progress=False)
    trainer = Trainer(task, config, run_dir=tmp_path / "run")
    with pytest.raises(NonFiniteError) as info:
        trainer.fit()
    named = trainer.guard.last_checkpoint
    assert named is None or load_checkpoint(named)[1]["good"], str(info.value)


STUDY_RESULTS = {
    "missing": (None, "expected study results at"), "empty": (b"", "is not valid JSON"),
    "binary": (bytes(range(256)), "is not valid JSON"), "truncated": (b'{"results": [{"model": "ls', "is not valid JSON"),
    "foreign": (b"[1, 2]", "holds no study results"), "no-records": (b'{"results": []}', "holds no study results"),
    "broken-records": (b'{"results": [{"model": "lstm"}]}', "study records without 'label', 'task', 'T'"),
    "unreportable": (b'{"results": [{"model": "lstm", "label": "LSTM", "task": "adding", "T": 5}]}', "cannot report"),
}


@pytest.mark.parametrize("which", list(STUDY_RESULTS))
def test_study_report_only_from_missing_or_broken_results(which, tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    content, says = STUDY_RESULTS[which]
    if content is not None:
        (out / "results.json").write_bytes(content)
    code, text = invoke("study", "gradients", "--report-only", "--out", out)
    plain_error(code, text, "results.json", says)
