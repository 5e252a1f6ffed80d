"""The gradients study: its models start as documented, runs go through the trainer end to end, the report holds the runs."""

import dataclasses
import json
import math

import pytest
import torch

import carousel.studies.gradients.run as study
from carousel.diagnostics import recurrent_radius
from carousel.studies.gradients import QUICK, STUDY_MODELS, StudyConfig, load_results, run_one, study_model, summary_table, write_report


@pytest.mark.parametrize("rho", [0.9, 1.0, 1.1])
def test_tanh_rows_start_at_their_spectral_radius(rho):
    for clip in ("", "-clip"):
        model = study_model(f"tanh-{rho}{clip}")
        assert recurrent_radius(model.build(2, 16)) == {"hh": pytest.approx(rho, rel=1e-6)}
        assert model.clip == (1.0 if clip else None)


def test_the_orthogonal_row_starts_as_rotations():
    cell = STUDY_MODELS["orthogonal"].build(3, 6)
    w = cell.weight_hh.detach().double()
    torch.testing.assert_close(w.T @ w, torch.eye(6, dtype=torch.float64), atol=1e-6, rtol=0)
    assert bool((w[~torch.block_diag(*[torch.ones(2, 2)] * 3).bool()].abs() < 1e-6).all())


def test_config_errors():
    with pytest.raises(ValueError, match="unknown study model 'lstmm'"):
        StudyConfig(models=("lstmm",))
    with pytest.raises(ValueError, match="hidden"):
        StudyConfig(hidden=0)
    with pytest.raises(ValueError, match="adding lengths"):
        StudyConfig(adding=(1,))


def test_quick_study_end_to_end(tmp_path):
    config = StudyConfig(**{**QUICK.__dict__, "models": ("tanh-1.1", "lstm"), "copying": (4,), "steps": 6})
    results = [run_one(m, t, T, config) for m, t, T in config.runs()]
    assert [(r["model"], r["task"], r["T"]) for r in results] == [
        ("tanh-1.1", "adding", 12), ("tanh-1.1", "copying", 4), ("lstm", "adding", 12), ("lstm", "copying", 4)]
    for r in results:
        assert r["steps"] == 6 and r["diverged_at"] is None and math.isfinite(r["test"])
        assert r["baseline"] == pytest.approx(1 / 6 if r["task"] == "adding" else 10 * math.log(8) / 24)
        assert r["start"]["step"] == 0 and r["end"]["step"] == 6
        start = r["start"]["layers"]["rnn.layers.0"]
        assert len(start["grad_norm"]) == (12 if r["task"] == "adding" else 24)
    # the same seed gives the same run
    again = run_one("lstm", "adding", 12, config)
    assert again["test"] == results[2]["test"] and again["start"] == results[2]["start"]
    path = write_report(results, tmp_path, {"hidden": config.hidden})
    text = path.read_text()
    assert summary_table(results) in text
    assert f"| LSTM | {results[2]['test']:.4f} |" in text
    assert (tmp_path / "gradient_flow-adding-T12.png").read_bytes()[:4] == b"\x89PNG"
    loaded, cfg = load_results(tmp_path)
    assert loaded == json.loads(json.dumps(results)) and cfg == {"hidden": config.hidden}


def test_report_marks_divergence_and_clear_wins():
    rows = [
        {"model": "a", "label": "A", "task": "adding", "T": 5, "test": 0.001, "baseline": 1 / 6, "diverged_at": None},
        {"model": "b", "label": "B", "task": "adding", "T": 5, "test": math.inf, "baseline": 1 / 6, "diverged_at": 17},
        {"model": "c", "label": "C", "task": "adding", "T": 5, "test": 0.15, "baseline": 1 / 6, "diverged_at": None},
    ]
    table = summary_table(rows)
    assert "| A | **0.0010** |" in table and "| B | diverged at step 17 |" in table and "| C | 0.1500 |" in table
    assert "*0.1667*" in table
    with pytest.raises(ValueError, match="at least one"):
        write_report([], "unused")


def test_run_study_keeps_finished_runs_and_reports_failures(tmp_path, monkeypatch):
    config = StudyConfig(**{**QUICK.__dict__, "models": ("tanh-1.0", "gru"), "copying": (), "steps": 3})
    real = study.run_one
    kept = real("tanh-1.0", "adding", 12, config)  # finished by an interrupted study

    def flaky(model, task, T, cfg):
        if model == "gru":
            raise RuntimeError("LAPACK did not converge")
        return real(model, task, T, cfg)

    monkeypatch.setattr(study, "run_one", flaky)
    seen = []
    results = study.run_study(config, done=[kept], on_result=seen.append)
    assert results[0] is kept and [r["model"] for r in seen] == ["gru"]  # the kept run is not run again
    assert results[1]["error"] == "RuntimeError: LAPACK did not converge"
    assert "| GRU | error |" in summary_table(results)
    text = write_report(results, tmp_path).read_text()
    assert "## Runs that failed" in text and "LAPACK did not converge" in text


def test_a_run_that_diverges_is_reported_at_its_first_non_finite_step(monkeypatch):
    """The trainer's guard ends the run at the first non-finite loss or gradient; the study records the step."""
    config = StudyConfig(**{**QUICK.__dict__, "models": ("tanh-1.1",), "copying": (), "steps": 30})
    real = study.train_config
    monkeypatch.setattr(study, "train_config", lambda *a: dataclasses.replace(real(*a), lr=1e30, clip_norm=0.0))
    r = run_one("tanh-1.1", "adding", 12, config)
    assert r["diverged_at"] is not None and r["steps"] == r["diverged_at"] < 30
    assert r["end"]["step"] == r["diverged_at"]
    assert "diverged at step" in summary_table([r])
