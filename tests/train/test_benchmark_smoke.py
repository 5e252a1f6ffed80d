"""The trainer-overhead benchmark runs (a check that it works, not a timing)."""

from benchmarks.train_overhead import main


def test_train_overhead_benchmark_smoke(capsys):
    assert main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "| 10 | 8 | 4 |" in out and "trainer / bare" in out
