"""Compressor baselines against the definition computed by hand, and the cache."""

import bz2
import gzip
import lzma
import random

import pytest

from carousel.data import compressor_bits


def _texts():
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    train = " ".join(rng.choice(words) for _ in range(3000))
    test = " ".join(rng.choice(words) for _ in range(300))
    return train, test


def test_bits_follow_the_definition(tmp_path, monkeypatch):
    monkeypatch.setenv("CAROUSEL_CACHE", str(tmp_path))
    train, test = _texts()
    got = compressor_bits(train, test)
    tr, both = train.encode(), (train + test).encode()
    want = {
        "gzip -9": len(gzip.compress(both, 9)) - len(gzip.compress(tr, 9)),
        "bzip2 -9": len(bz2.compress(both, 9)) - len(bz2.compress(tr, 9)),
        "xz -9e": len(lzma.compress(both, preset=9 | lzma.PRESET_EXTREME)) - len(lzma.compress(tr, preset=9 | lzma.PRESET_EXTREME)),
    }
    for name, extra in want.items():
        assert got[name] == pytest.approx(8 * extra / len(test))
    # a text of 6 equiprobable words is far below 8 bits per character, and xz beats gzip here
    assert got["xz -9e"] < got["gzip -9"] < 3.0


def test_cache_is_used_and_keyed_by_the_texts(tmp_path, monkeypatch):
    monkeypatch.setenv("CAROUSEL_CACHE", str(tmp_path))
    train, test = _texts()
    first = compressor_bits(train, test, ["gzip -9"])
    files = list(tmp_path.glob("compress-*.json"))
    assert len(files) == 1
    files[0].write_text('{"gzip -9": 123.0}')  # a planted value proves the cache is read
    assert compressor_bits(train, test, ["gzip -9"]) == {"gzip -9": 123.0}
    assert compressor_bits(train, test, ["gzip -9"], cache=False) == first
    assert compressor_bits(train + "x", test, ["gzip -9"])["gzip -9"] != 123.0
    files[0].write_text("damaged")
    assert compressor_bits(train, test, ["gzip -9"]) == first


def test_bad_input():
    with pytest.raises(ValueError, match="unknown compressor 'zip'"):
        compressor_bits("a", "b", ["zip"])
    with pytest.raises(ValueError, match="non-empty test"):
        compressor_bits("a", "", cache=False)
