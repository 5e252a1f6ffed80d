"""Generated transduction problems for encoder–decoders: copy, reverse, sort, numbers in words -> digits.

Every problem maps a sequence of symbols to another, drawn from a seed (the same seed gives the
same pairs):

* ``copy``: a random string over the first ``symbols`` lowercase letters -> the same string;
* ``reverse``: -> the string reversed;
* ``sort``: -> its letters in alphabetical order;
* ``words2digits``: an integer in [0, ``max_number``] written in English words
  (``four thousand two hundred seven``) -> its decimal digits (``4 2 0 7``).

Lengths of the strings are uniform in [``min_length``, ``max_length``]; numbers are drawn with a
uniform number of digits, then uniformly among the numbers with that many digits (so small and
large numbers are both common).

``TokenVocabulary`` maps symbols to ids with ``<pad>`` = 0, ``<s>`` = 1 (start), ``</s>`` = 2
(end) and ``<unk>`` = 3 first, the ids ``carousel.models.Seq2Seq`` uses by default. An unknown
symbol is an error unless ``unknown="unk"`` asks for the documented mapping to ``<unk>``.
"""

from __future__ import annotations

import operator
import random
import string
from typing import Iterable, NamedTuple, Sequence

import torch
from torch import Tensor

PROBLEMS = ("reverse", "sort", "copy", "words2digits")
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
PAD, START, END, UNK = 0, 1, 2, 3
MAX_NUMBER = 999_999

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
         "seventeen eighteen nineteen").split()
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
NUMBER_WORDS = tuple(_ONES) + tuple(t for t in _TENS if t) + ("hundred", "thousand")


class TokenVocabulary:
    """Symbols (strings) <-> ids, after the four specials ``<pad> <s> </s> <unk>`` (ids 0-3).

    ``encode(tokens, add_end=True)`` -> list of ids (``</s>`` appended with ``add_end``);
    ``decode(ids)`` -> the symbols up to the first ``</s>``, without ``<pad>`` and ``<s>``.
    Raises ``ValueError`` for repeated symbols, a symbol that is a special, and (in ``encode``) an
    unknown symbol unless ``unknown="unk"``.
    """

    def __init__(self, symbols: Iterable[str]) -> None:
        symbols = list(symbols)
        if len(set(symbols)) != len(symbols):
            raise ValueError("expected distinct symbols, got repeats")
        bad = [s for s in symbols if not isinstance(s, str) or not s or s in SPECIALS]
        if bad:
            raise ValueError(f"expected symbols as non-empty strings other than {', '.join(SPECIALS)}, got {bad[0]!r}")
        self.symbols: tuple[str, ...] = SPECIALS + tuple(symbols)
        self.index = {s: i for i, s in enumerate(self.symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    def __repr__(self) -> str:
        return f"TokenVocabulary({len(self)} symbols)"

    def encode(self, tokens: Sequence[str], *, add_end: bool = False, unknown: str = "error") -> list[int]:
        if unknown not in ("error", "unk"):
            raise ValueError(f"expected unknown='error' or 'unk', got {unknown!r}")
        if not hasattr(tokens, "__iter__"):
            raise TypeError(f"expected tokens as a sequence of symbols such as ['a', 'b'], got {type(tokens).__name__}")
        ids = []
        for i, t in enumerate(tokens):
            j = self.index.get(t)
            if j is None or j < len(SPECIALS):
                if unknown == "error":
                    raise ValueError(f"unknown symbol {t!r} at position {i}; expected one of: {' '.join(self.symbols[len(SPECIALS):])} "
                                     "(or encode with unknown='unk' to map it to <unk>)")
                j = UNK
            ids.append(j)
        return ids + [END] if add_end else ids

    def decode(self, ids: Iterable[int] | Tensor) -> list[str]:
        """The symbols of one row of ``ids`` up to the first end id (excluded), padding and start ids
        skipped; ``ValueError`` for an id outside the vocabulary, ``TypeError`` for ids that are not
        one row of integers (a (B, T) tensor: decode each row)."""
        if isinstance(ids, Tensor) and (ids.dim() > 1 or ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool):
            raise TypeError(f"expected one row of ids as a 1-D integer tensor (T,), got shape {tuple(ids.shape)}, dtype {ids.dtype}"
                            + ("; decode each row" if ids.dim() > 1 else ""))
        out = []
        for i in (ids.tolist() if isinstance(ids, Tensor) else ids):
            try:
                if isinstance(i, bool) or (isinstance(i, Tensor) and i.dtype == torch.bool):
                    raise TypeError
                i = operator.index(i)  # Python, NumPy or 0-d torch integers
            except TypeError:
                raise TypeError(f"expected integer ids, got {type(i).__name__} {i!r}") from None
            if not 0 <= int(i) < len(self.symbols):
                raise ValueError(f"expected ids in [0, {len(self.symbols)}), got {i}")
            if i == END:
                break
            if i not in (PAD, START):
                out.append(self.symbols[i])
        return out


def number_words(n: int) -> list[str]:
    """``n`` in [0, 999999] in English words without "and" or hyphens: 342 -> three hundred forty two."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"expected an integer in [0, {MAX_NUMBER}], got {n!r}")

    def below_thousand(m: int) -> list[str]:
        words = []
        if m >= 100:
            words += [_ONES[m // 100], "hundred"]
            m %= 100
        if m >= 20:
            words.append(_TENS[m // 10])
            m %= 10
            if m:
                words.append(_ONES[m])
        elif m or not words:
            words.append(_ONES[m])
        return words

    if n < 1000:
        return below_thousand(n)
    high, low = divmod(n, 1000)
    return below_thousand(high) + ["thousand"] + (below_thousand(low) if low else [])


def problem_vocabularies(problem: str, symbols: int = 10) -> tuple[TokenVocabulary, TokenVocabulary]:
    """The source and target vocabularies of ``problem`` (``symbols`` letters for copy/reverse/sort)."""
    _check_problem(problem)
    if problem == "words2digits":
        return TokenVocabulary(NUMBER_WORDS), TokenVocabulary(string.digits)
    if isinstance(symbols, bool) or not isinstance(symbols, int) or not 2 <= symbols <= 26:
        raise ValueError(f"expected symbols in [2, 26] (letters of the alphabet), got {symbols!r}")
    v = TokenVocabulary(string.ascii_lowercase[:symbols])
    return v, v


def _check_problem(problem: str) -> None:
    if problem not in PROBLEMS:
        raise ValueError(f"unknown transduction problem {problem!r}; expected one of: {', '.join(PROBLEMS)}")


def max_target_length(problem: str, max_length: int = 10, max_number: int = MAX_NUMBER) -> int:
    """The longest target of ``problem``, its end token included."""
    _check_problem(problem)
    return (len(str(max_number)) if problem == "words2digits" else max_length) + 1


def transduction_pairs(problem: str, count: int, *, min_length: int = 1, max_length: int = 10, symbols: int = 10,
                       max_number: int = MAX_NUMBER, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """``count`` (source, target) pairs of symbol lists of ``problem`` drawn from ``seed``. Raises
    ``ValueError`` for an unknown problem, ``count < 0``, lengths outside 1 <= min <= max, or
    ``max_number`` outside [0, 999999]."""
    _check_problem(problem)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"expected count >= 0, got {count!r}")
    if not (isinstance(min_length, int) and isinstance(max_length, int) and 1 <= min_length <= max_length):
        raise ValueError(f"expected lengths 1 <= min_length <= max_length, got {min_length!r} and {max_length!r}")
    if isinstance(max_number, bool) or not isinstance(max_number, int) or not 0 <= max_number <= MAX_NUMBER:
        raise ValueError(f"expected max_number in [0, {MAX_NUMBER}], got {max_number!r}")
    rng = random.Random(seed)
    pairs = []
    if problem == "words2digits":
        digits = len(str(max_number))
        for _ in range(count):
            d = rng.randint(1, digits)
            low, high = (0 if d == 1 else 10 ** (d - 1)), min(10**d - 1, max_number)
            n = rng.randint(low, high)
            pairs.append((number_words(n), list(str(n))))
        return pairs
    alphabet = problem_vocabularies(problem, symbols)[0].symbols[len(SPECIALS):]
    for _ in range(count):
        s = [rng.choice(alphabet) for _ in range(rng.randint(min_length, max_length))]
        t = s[::-1] if problem == "reverse" else sorted(s) if problem == "sort" else list(s)
        pairs.append((s, t))
    return pairs


class TransductionBatch(NamedTuple):
    """Padded ``source`` (B, S) ids and ``source_lengths`` (B,); ``targets`` (B, T) ids with the end
    token and ``target_lengths`` (B,) counting it; ``pad`` (0) after each end."""

    source: Tensor
    source_lengths: Tensor
    targets: Tensor
    target_lengths: Tensor

    @property
    def inputs(self) -> Tensor:
        """The decoder's teacher-forced inputs (B, T): the start token, then the targets but the last."""
        start = torch.full_like(self.targets[:, :1], START)
        return torch.cat([start, self.targets[:, :-1]], dim=1)

    def to(self, device) -> "TransductionBatch":
        return TransductionBatch(*(t.to(device) for t in self))


def encode_pairs(pairs: Sequence[tuple[Sequence[str], Sequence[str]]], source_vocab: TokenVocabulary,
                 target_vocab: TokenVocabulary, *, max_length: int | None = None, unknown: str = "error") -> TransductionBatch:
    """A padded batch of ``pairs``. Raises ``ValueError`` for no pairs, an empty source, an unknown
    symbol (unless ``unknown="unk"``), and a target longer than ``max_length`` (end token included)."""
    if not pairs:
        raise ValueError("expected at least one (source, target) pair, got none")
    src, tgt = [], []
    for i, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2:
            raise TypeError(f"expected pair {i} as (source, target), two sequences of symbols, got {pair!r:.80}")
        s, t = pair
        if len(s) == 0:
            raise ValueError(f"pair {i} has an empty source; expected at least one symbol")
        src.append(source_vocab.encode(s, unknown=unknown))
        tgt.append(target_vocab.encode(t, add_end=True, unknown=unknown))
        if max_length is not None and len(tgt[-1]) > max_length:
            raise ValueError(f"pair {i} has a target of {len(tgt[-1])} tokens with its end token, longer than max_length "
                             f"{max_length}; raise --max-length or shorten the targets")
    return TransductionBatch(_pad(src), torch.tensor([len(s) for s in src]), _pad(tgt), torch.tensor([len(t) for t in tgt]))


def _pad(rows: list[list[int]]) -> Tensor:
    out = torch.full((len(rows), max(len(r) for r in rows)), PAD, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out
