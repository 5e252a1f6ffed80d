"""Vocabulary: round trips, the unknown symbol, persistence and bad input."""

import pytest
import torch

from carousel.data import Vocabulary
from carousel.data.vocab import UNKNOWN


def test_symbols_are_sorted_after_unk_and_round_trip():
    text = "the cat sat on the mat\n(é, ü, 猫) 😀"
    v = Vocabulary.from_text(text)
    assert v.symbols[0] == UNKNOWN
    assert list(v.symbols[1:]) == sorted(set(text))
    ids = v.encode(text)
    assert ids.dtype == torch.long and ids.shape == (len(text),)
    assert v.decode(ids) == text
    # encoding agrees with a dictionary lookup, character by character
    assert ids.tolist() == [v.symbols.index(c) for c in text]


def test_unseen_characters_become_unknown():
    v = Vocabulary.from_text("abc")
    ids = v.encode("abxcz\u00e9\U0001F600")
    assert ids.tolist() == [1, 2, 0, 3, 0, 0, 0]
    assert v.decode(ids) == "ab" + UNKNOWN + "c" + UNKNOWN * 3
    assert v.unknown_count("abxcz") == 2


def test_same_text_gives_same_vocabulary_and_save_load(tmp_path):
    a, b = Vocabulary.from_text("hello world"), Vocabulary.from_text("world hello")
    assert a == b
    path = tmp_path / "vocab.json"
    a.save(path)
    c = Vocabulary.load(path)
    assert c == a and c.unk == a.unk
    assert torch.equal(c.encode("hold"), a.encode("hold"))


def test_unk_in_text_is_the_unknown_symbol():
    v = Vocabulary.from_text("ab" + UNKNOWN)
    assert len(v) == 3 and v.encode(UNKNOWN).tolist() == [0]


def test_bad_input():
    with pytest.raises(ValueError, match="empty text"):
        Vocabulary.from_text("")
    with pytest.raises(TypeError, match="str"):
        Vocabulary.from_text(b"abc")
    with pytest.raises(ValueError, match="one character"):
        Vocabulary(["ab"])
    with pytest.raises(ValueError, match="distinct"):
        Vocabulary(["a", "a"])
    v = Vocabulary.from_text("ab")
    with pytest.raises(ValueError, match=r"indices in \[0, 3\), got 7"):
        v.decode([1, 7])


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no vocabulary file"):
        Vocabulary.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Vocabulary.load(tmp_path / "bad.json")
    (tmp_path / "wrong.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a vocabulary"):
        Vocabulary.load(tmp_path / "wrong.json")
