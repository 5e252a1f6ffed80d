"""The charlm task: bits per character against a direct computation, training through the trainer,
loading a run for sampling, scheduled sampling in the step, option errors."""

import math
import random

import pytest
import torch
from typer.testing import CliRunner

from carousel.cli import app
from carousel.data import compressor_bits
from carousel.train import Shard, build_config, train_run
from carousel.train.tasks.charlm import CharLMOptions, CharLMTask, evaluate_bits, load_char_lm


def _corpus(tmp_path, n=2500, seed=0):
    rng = random.Random(seed)
    words = ["(tea)", "cat", "sat", "mat", '"dog"', "on", "the", "a"]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 8))) for _ in range(n)]
    path = tmp_path / "text.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    return str(path)


def _direct_bits(model, ids):
    """-mean log2 P(x_t | x_<t) from one pass over the whole text (batch of one)."""
    z, _ = model(ids[:-1].unsqueeze(0), None)
    logp = torch.log_softmax(z[0].double(), dim=-1)  # (N-1, V)
    return float(-logp.gather(1, ids[1:].unsqueeze(1)).mean()) / math.log(2)


def test_evaluate_bits_equals_one_pass(tmp_path):
    task = CharLMTask(CharLMOptions(corpus=_corpus(tmp_path, 200), hidden=12, embed=6, compressors=False))
    torch.manual_seed(0)
    model = task.build_model().eval()
    ids = task.ids("valid")
    with torch.no_grad():
        want = _direct_bits(model, ids)
        assert evaluate_bits(model, ids, streams=1, window=7) == pytest.approx(want, rel=1e-5)
        # several streams start cold a few times: close, not equal
        assert evaluate_bits(model, ids, streams=4, window=7) == pytest.approx(want, abs=0.1)
        assert task.evaluate(model, "valid")["bpc"] == pytest.approx(evaluate_bits(model, ids, streams=10, window=1000))


def test_vocabulary_from_train_and_unknown_characters(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("abcabcabc " * 50 + "xyz", encoding="utf-8")  # x, y, z only in the test split
    task = CharLMTask(CharLMOptions(corpus=str(path), compressors=False))
    assert set(task.vocabulary.symbols[1:]) == set("abc ")
    assert (task.ids("test") == 0).sum() == 3


def test_training_lowers_bpc_and_the_run_loads_for_sampling(tmp_path, monkeypatch):
    monkeypatch.setenv("CAROUSEL_CACHE", str(tmp_path / "cache"))
    corpus = _corpus(tmp_path)
    values = dict(corpus=corpus, hidden=32, embed=8, bptt=40, steps=60, batch_size=8, lr=0.01,
                  eval_every=60, checkpoint_every=60, progress=False)
    run_dir = tmp_path / "run"
    train_run(build_config("charlm", values), run_dir)
    model, vocab, config = load_char_lm(str(run_dir))
    task = config.make_task()
    with torch.no_grad():
        trained = task.evaluate(model, "valid")
        torch.manual_seed(0)
        fresh = evaluate_bits(task.build_model().eval(), task.ids("valid"))
    assert trained["bpc"] < fresh - 1.0 and trained["bpc"] < math.log2(len(vocab)) - 1.0
    c = task.corpus
    assert trained["xz_bpc"] == pytest.approx(compressor_bits(c.train, c.valid)["xz -9e"])
    # the sampling command reads the same checkpoint and reports its speed
    result = CliRunner().invoke(app, ["sample", str(run_dir), "--prime", "the ", "--length", "30", "--num", "2"])
    assert result.exit_code == 0, result.output
    assert "--- sample 2 ---" in result.output and "characters per second" in result.output
    bad = CliRunner().invoke(app, ["sample", str(tmp_path)])
    assert bad.exit_code == 2 and "not a run directory" in bad.output


def test_scheduled_sampling_in_the_step(tmp_path):
    opts = CharLMOptions(corpus=_corpus(tmp_path, 300), hidden=8, embed=4, bptt=10, sampling="linear",
                         sampling_k=1.0, sampling_c=0.01, compressors=False)
    task = CharLMTask(opts)
    torch.manual_seed(0)
    model = task.build_model()
    batches = task.train_batches(4, Shard(), 0)
    state = None
    for i in range(3):
        window = next(batches)
        assert task.teacher_probability(window) == pytest.approx(1.0 - 0.01 * i)
        out = task.step(model, window, state)
        state = out.state
        assert out.metrics["teacher"] == pytest.approx(1.0 - 0.01 * i)
        assert out.items == window.y.numel() and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.head.weight.grad is not None


def test_option_errors():
    with pytest.raises(ValueError, match="bptt_back equal to bptt"):
        CharLMOptions(sampling="linear", sampling_c=0.1, bptt=10, bptt_back=20)
    with pytest.raises(ValueError, match="0 < k < 1"):
        CharLMOptions(sampling="exponential", sampling_k=2.0)
    with pytest.raises(ValueError, match="expected hidden >= 1"):
        CharLMOptions(hidden=0)
    with pytest.raises(ValueError, match="unknown option --hiden.*did you mean --hidden"):
        build_config("charlm", {"hiden": 3})
