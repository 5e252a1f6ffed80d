"""A character vocabulary: the symbols a model reads and writes, saved beside the model.

Index 0 is the unknown symbol ``unk`` (U+FFFD, the Unicode replacement character, by default);
the characters seen in the training text follow in code-point order, so the same text always
gives the same vocabulary. A character the vocabulary has not seen encodes to ``unk``.
"""

from __future__ import annotations

import numbers

import json
import os
from typing import Iterable

import torch
from torch import Tensor

UNKNOWN = "\ufffd"


class Vocabulary:
    """Characters <-> indices. ``Vocabulary.from_text(train)`` builds one; ``encode``/``decode`` map.

    ``symbols[0]`` is always ``unk``; ``len(vocab)`` counts it.
    """

    def __init__(self, symbols: Iterable[str], *, unk: str = UNKNOWN) -> None:
        if not isinstance(unk, str) or len(unk) != 1:
            raise ValueError(f"expected the unknown symbol to be one character, got {unk!r}")
        chars = list(symbols)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"expected every symbol to be one character, got {c!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("expected distinct symbols, got repeats")
        if chars and chars[0] == unk:
            chars = chars[1:]
        if unk in chars:
            raise ValueError(f"the unknown symbol {unk!r} must come first or not at all, got it at {chars.index(unk) + 1}")
        self.unk = unk
        self.symbols: tuple[str, ...] = (unk, *chars)
        self.index = {c: i for i, c in enumerate(self.symbols)}
        # a dense table over code points for fast encoding of the common (small) alphabets
        top = max(ord(c) for c in self.symbols) + 1
        self._table = torch.zeros(top, dtype=torch.long)
        for i, c in enumerate(self.symbols):
            self._table[ord(c)] = i

    @classmethod
    def from_text(cls, text: str, *, unk: str = UNKNOWN) -> "Vocabulary":
        """Every distinct character of ``text`` in code-point order, after ``unk``."""
        if not isinstance(text, str):
            raise TypeError(f"expected text as a str, got {type(text).__name__}")
        if not text:
            raise ValueError("cannot build a vocabulary from empty text")
        return cls(sorted(set(text) - {unk}), unk=unk)

    def __len__(self) -> int:
        return len(self.symbols)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.symbols == other.symbols

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} symbols)"

    def encode(self, text: str) -> Tensor:
        """``text`` as a (len(text),) int64 tensor; unseen characters become 0 (``unk``)."""
        if not isinstance(text, str):
            raise TypeError(f"expected text as a str, got {type(text).__name__}")
        codes = torch.frombuffer(bytearray(text.encode("utf-32-le")), dtype=torch.int32).long()  # (N,)
        top = self._table.shape[0]
        known = codes < top
        return torch.where(known, self._table[codes.clamp(max=top - 1)], torch.zeros_like(codes))

    def decode(self, ids: Tensor | Iterable[int]) -> str:
        """The characters of a 1-D sequence of indices; out-of-range indices raise ValueError."""
        if isinstance(ids, Tensor) and (ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool):
            raise TypeError(f"expected integer indices, got a tensor of dtype {ids.dtype}")
        ids = ids.reshape(-1).tolist() if isinstance(ids, Tensor) else list(ids)
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, numbers.Integral):
                raise TypeError(f"expected integer indices, got {type(i).__name__} {i!r}")
        bad = [i for i in ids if not 0 <= i < len(self)]
        if bad:
            raise ValueError(f"expected indices in [0, {len(self)}), got {bad[0]}")
        return "".join(self.symbols[i] for i in ids)

    def unknown_count(self, text: str) -> int:
        """How many characters of ``text`` the vocabulary does not know."""
        return sum(1 for c in text if c not in self.index)

    # ---- persistence ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"unk": self.unk, "symbols": list(self.symbols[1:])}

    @classmethod
    def from_dict(cls, data: dict) -> "Vocabulary":
        if not isinstance(data, dict) or "symbols" not in data or "unk" not in data:
            raise ValueError(f"expected a vocabulary as {{'unk': ..., 'symbols': [...]}}, got {str(data)[:80]}")
        return cls(data["symbols"], unk=data["unk"])

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as JSON (readable, ensure_ascii so every symbol survives any editor)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, ensure_ascii=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"no vocabulary file at {os.fspath(path)!r}") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"vocabulary file {os.fspath(path)!r} is not valid JSON: {err}") from None
        return cls.from_dict(data)
