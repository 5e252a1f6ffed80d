"""``carousel train | resume | eval`` and ``--help``: end to end on a tiny run, and every user
mistake answered with one plain line naming the valid choices, never a traceback."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from carousel.cli import app
from carousel.cells import cell_names
from carousel.train import read_metrics, task_names
from carousel.train.config import TrainConfig

TINY = ["--length", "5", "--hidden", "8", "--batch-size", "4", "--eval-size", "20", "--no-progress"]


BOX = str.maketrans("", "", "│╭╮╰╯─")  # the frame rich draws around typer's usage errors


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    text = result.output + (result.stderr if hasattr(result, "stderr") and result.stderr_bytes is not None else "")
    assert "Traceback" not in text
    return result.exit_code, " ".join(text.translate(BOX).split())  # rich wraps long lines; compare words


def test_root_help_lists_every_task_cell_and_option():
    code, text = invoke("--help")
    assert code == 0
    for name in (*task_names(), *cell_names()):
        assert name in text
    for f in TrainConfig.__dataclass_fields__:
        assert "--" + f.replace("_", "-") in text
    assert "--length" in text and "--cell" in text  # the adding task's options


def test_task_help_shows_defaults_and_choices(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps the help table to the terminal's width
    code, text = invoke("train", "adding", "--help")
    assert code == 0
    assert "--hidden" in text and "hidden units per layer [default: 64]" in text and "--clip-norm" in text
    assert "<lstm|lstm1997|gru|" in text.replace(" ", "") and "--progress --no-progress" in text and "--steps <int>" in text
    assert "lstm1997 (LSTM without forget gate" in text  # the cells, with what each is


@pytest.mark.parametrize(
    "args,expected",
    [  # the library's own checks
        (["train", "addng"], "Error: unknown task 'addng' (did you mean 'adding'?); valid: adding"),
        (["train", "adding", "--steps", "0"], "Error: expected steps to be an integer >= 1, got 0"),
        (["train"], "Error: no task given; valid tasks: adding"),
        (["train", "--config", "missing.toml"], "Error: config file missing.toml does not exist"),
        (["train", "--steps", "3"], "Error: no task given"),
        (["resume", "nowhere"], "Error: nowhere is not a run directory (no config.json)"),
        (["eval", "nowhere"], "Error: nowhere is not a run directory (no config.json)"),
        # typer's reading of the options' declarations, with the library's conversion and messages
        (["train", "adding", "--hiden", "3"], "No such option: --hiden (Possible options: --help, --hidden)"),
        (["train", "adding", "--cell", "lsmt"], "Invalid value for '--cell': unknown cell 'lsmt' (did you mean 'lstm'?); valid: lstm, lstm1997, gru"),
        (["train", "adding", "--optimizer", "adamm"], "unknown optimizer 'adamm' (did you mean 'adam'?); valid: adam, adamw, sgd, rmsprop, adagrad"),
        (["train", "adding", "--steps", "many"], "Invalid value for '--steps': expected an integer for steps, got 'many'"),
        (["train", "adding", "--lr", "fast"], "Invalid value for '--lr': expected a number for lr, got 'fast'"),
        (["train", "adding", "--lr"], "Option '--lr' requires an argument"),
        (["train", "adding", "stray"], "Got unexpected extra argument(s) (stray)"),
    ],
)
def test_user_mistakes_get_one_plain_error(args, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, text = invoke(*args)
    assert code == 2
    assert expected in text


def test_options_reach_the_run_with_their_types(tmp_path):
    run = tmp_path / "run"
    code, text = invoke("train", "copying", "--cell", "gru", "--length", "4", "--steps", "2", "--lr", "0.02",
                        "--clip-norm", "0", "--run-dir", str(run), *TINY[2:])
    assert code == 0, text
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["options"] == {**recorded["options"], "cell": "gru", "length": 4, "hidden": 8, "eval_size": 20}
    assert recorded["train"]["lr"] == 0.02 and recorded["train"]["clip_norm"] == 0.0 and recorded["train"]["progress"] is False


def test_config_file_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[task]\nname = "adding"\n[trian]\nsteps = 3\n')
    code, text = invoke("train", "--config", str(bad))
    assert code == 2 and "unknown section 'trian' (did you mean 'train'?)" in text
    bad.write_text('[task]\nname = "adding"\nhidden = "big"\n')
    code, text = invoke("train", "--config", str(bad))
    assert code == 2 and "expected an integer for hidden, got 'big'" in text
    bad.write_text("[task\n")
    code, text = invoke("train", "--config", str(bad))
    assert code == 2 and "is not valid TOML" in text
    good = tmp_path / "run.toml"
    good.write_text('[task]\nname = "adding"\n')
    code, text = invoke("train", "copying", "--config", str(good))
    assert code == 2


def test_train_resume_eval_end_to_end(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('[task]\nname = "adding"\ncell = "gru"\nlength = 5\n[train]\nsteps = 4\nlr = 0.01\n')
    run = tmp_path / "run"
    code, text = invoke("train", "--config", str(config), "--steps", "6", "--hidden", "8", "--batch-size", "4",
                        "--eval-size", "20", "--eval-every", "3", "--no-progress", "--run-dir", str(run))
    assert code == 0, text
    assert "6 steps" in text and "run directory" in text
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["task"] == "adding" and recorded["options"]["cell"] == "gru" and recorded["options"]["hidden"] == 8
    assert recorded["train"]["steps"] == 6 and recorded["train"]["lr"] == 0.01  # file, overridden by the command line
    assert (run / "loss.png").stat().st_size > 1000
    assert (run / "checkpoints" / "best.safetensors").is_file()

    code, text = invoke("train", "adding", "--run-dir", str(run), *TINY)
    assert code == 2 and "already holds a run" in text
    code, text = invoke("resume", str(run))
    assert code == 0 and "is finished at step 6: it reached its 6 steps; pass --steps N (> 6)" in text  # nothing to do
    code, text = invoke("resume", str(run), "--steps", "9", "--no-progress")
    assert code == 0, text
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"] == list(range(1, 10))

    code, text = invoke("eval", str(run), "--checkpoint", "latest")
    assert code == 0, text
    result = json.loads((run / "eval.json").read_text())
    assert result["step"] == 9 and set(result["splits"]) == {"valid", "test"}
    assert f"{result['splits']['test']['loss']:.6g}" in text
    code, text = invoke("eval", str(run), "--split", "train")
    assert code == 2 and "has no split 'train'; expected one of: valid, test" in text

    # a run config from an earlier run is a valid --config
    code, text = invoke("train", "--config", str(run / "config.json"), "--steps", "2", "--run-dir", str(tmp_path / "again"))
    assert code == 0, text


def test_a_corrupt_checkpoint_is_reported_not_raised(tmp_path):
    run = tmp_path / "run"
    code, text = invoke("train", "adding", "--steps", "2", "--run-dir", str(run), *TINY)
    assert code == 0, text
    ckpt = run / "checkpoints" / "step-00000002.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:-7])
    code, text = invoke("resume", str(run), "--steps", "3")
    assert code == 1 and "checkpoint problem" in text and "is corrupt" in text


def test_a_backend_that_cannot_run_the_cell_is_a_user_error(tmp_path):
    code, text = invoke("train", "adding", "--backend", "scan", "--steps", "1", "--run-dir", str(tmp_path / "r"), *TINY)
    assert code == 2 and "backend 'scan' cannot run LSTMCell" in text


@pytest.mark.filterwarnings("ignore:backend 'loop' is now called 'explicit'")
def test_runs_of_the_old_backend_name_loop_still_train_and_resume(tmp_path):
    """Run directories written before 'loop' became 'explicit' record backend 'loop': they keep working."""
    config = tmp_path / "old.toml"
    config.write_text('[task]\nname = "adding"\nbackend = "loop"\nlength = 5\nhidden = 4\neval_size = 8\n[train]\nsteps = 2\nbatch_size = 4\nprogress = false\n')
    run = tmp_path / "run"
    code, text = invoke("train", "--config", str(config), "--run-dir", str(run))
    assert code == 0, text
    assert json.loads((run / "config.json").read_text())["options"]["backend"] == "loop"
    code, text = invoke("resume", str(run), "--steps", "3")
    assert code == 0, text
    code, text = invoke("train", "adding", "--backend", "loop", "--steps", "1", "--run-dir", str(tmp_path / "r2"), *TINY)
    assert code == 0, text


@pytest.mark.parametrize("wide", [2, 100])
def test_eval_of_many_metrics_prints_one_row_per_metric(tmp_path, monkeypatch, wide):
    """With more metrics than fit across a terminal (genome reports 15), ``carousel eval`` turns the
    table: one row per metric, one column per split; otherwise one row per split. Every value as in
    eval.json. (``WIDE`` is lowered to turn the table of a small task.)"""
    import carousel.cli.eval as cli_eval

    monkeypatch.setattr(cli_eval, "WIDE", wide)
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "regimes", "--steps", "2", "--eval-size", "4", "--length", "5", "--hidden", "4",
                                      "--batch-size", "2", "--no-progress", "--run-dir", str(run)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["eval", str(run)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    scored = json.loads((run / "eval.json").read_text())["splits"]
    metrics = sorted(scored["valid"])
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in result.output.splitlines() if line.startswith("│")]
    if len(metrics) > wide:
        assert [r[0] for r in rows] == metrics
        assert all(r[1:] == [f"{scored[s][m]:.6g}" for s in scored] for r, m in zip(rows, metrics))
    else:
        assert [r[0] for r in rows] == list(scored)
        assert all(r[1:] == [f"{scored[s][m]:.6g}" for m in metrics] for r, s in zip(rows, scored))
