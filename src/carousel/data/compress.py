"""What standard compressors achieve on a test text given the training text, in bits per character.

A compressor C that has read ``train`` spends ``|C(train + test)| - |C(train)|`` bytes on
``test``, so

    bits = 8 * (|C(train + test)| - |C(train)|) / |test|

with ``|test|`` counted in characters: the figure a language model's bits per character is set
beside. Each runs at its strongest setting: gzip ``-9``, bzip2 ``-9``, xz ``-9e``
(``lzma`` preset 9 | PRESET_EXTREME). On the Penn Treebank test text this gives gzip 2.63,
bzip2 1.86, xz 1.755. xz takes several seconds on a few megabytes, so ``compressor_bits``
caches results on disk keyed by a hash of the two texts (``CAROUSEL_CACHE`` or
``~/.cache/carousel``).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
import os
from typing import Callable, Sequence

COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip -9": lambda data: gzip.compress(data, compresslevel=9, mtime=0),
    "bzip2 -9": lambda data: bz2.compress(data, compresslevel=9),
    "xz -9e": lambda data: lzma.compress(data, preset=9 | lzma.PRESET_EXTREME),
}


def cache_dir() -> str:
    """Where results are cached: ``$CAROUSEL_CACHE`` or ``~/.cache/carousel``."""
    return os.environ.get("CAROUSEL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "carousel")


def conditional_bits(compress: Callable[[bytes], bytes], train: str, test: str) -> float:
    """``8 * (|C(train + test)| - |C(train)|) / |test|`` bits per character of ``test``."""
    if not test:
        raise ValueError("expected a non-empty test text")
    a = len(compress(train.encode("utf-8")))
    b = len(compress((train + test).encode("utf-8")))
    return 8.0 * (b - a) / len(test)


def compressor_bits(
    train: str, test: str, names: Sequence[str] | None = None, *, cache: bool = True
) -> dict[str, float]:
    """Bits per character of ``test`` given ``train`` for each compressor in ``names`` (all by default)."""
    names = list(COMPRESSORS) if names is None else list(names)
    unknown = [n for n in names if n not in COMPRESSORS]
    if unknown:
        raise ValueError(f"unknown compressor {unknown[0]!r}; expected some of: {', '.join(map(repr, COMPRESSORS))}")
    key = hashlib.sha256(f"{len(train)}:{train}{test}".encode("utf-8")).hexdigest()[:24]
    path = os.path.join(cache_dir(), f"compress-{key}.json")
    known: dict[str, float] = {}
    if cache and os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                known = {k: float(v) for k, v in json.load(f).items()}
        except (ValueError, OSError, AttributeError):
            known = {}  # a damaged cache entry is recomputed
    result = {n: known[n] if n in known else conditional_bits(COMPRESSORS[n], train, test) for n in names}
    if cache and any(n not in known for n in names):
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({**known, **result}, f)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only home only costs the recomputation next time
    return result
