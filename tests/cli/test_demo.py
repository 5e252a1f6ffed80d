"""`carousel demo` end to end on a tiny generated corpus: the table, samples and the files it promises."""

import json
import random

from typer.testing import CliRunner

from carousel.cli import app


def test_demo_on_a_tiny_corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("CAROUSEL_CACHE", str(tmp_path / "cache"))
    rng = random.Random(0)
    words = ["the", "cat", "(sat)", "on", '"a"', "mat", "<unk>"]
    text = "\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) for _ in range(1500))
    (tmp_path / "tiny.txt").write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["demo", "--corpus", str(tmp_path / "tiny.txt"), "--minutes", "0.1", "--hidden", "24",
                                      "--runs", str(tmp_path / "runs"), "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    out = result.output
    for expected in ("LSTM 24, fp32: ", "chars/s measured ->", "LSTM 24", "gzip -9", "bzip2 -9", "xz -9e",
                     "On the test text the model's", "sample at temperature 0.5", "sample at temperature 1.0",
                     "most interpretable unit", "activations.html", "loss.png"):
        assert expected in out, expected
    (run_dir,) = (tmp_path / "runs").iterdir()
    for name in ("config.json", "metrics.jsonl", "activations.html", "samples.txt", "eval.json"):
        assert (run_dir / name).is_file(), name
    evals = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in evals if r.get("kind") == "eval"][-1]
    assert f"{valid['bpc']:.3f}" in out  # the table shows the validation score the run recorded
    bad = CliRunner().invoke(app, ["demo", "--hidden", "0", "--corpus", str(tmp_path / "missing.txt")])
    assert bad.exit_code == 2 and "expected hidden to be a positive number of units, got 0" in bad.output  # before any loading
    bad = CliRunner().invoke(app, ["demo", "--precision", "fp64"])
    assert bad.exit_code == 2 and "expected precision" in bad.output
