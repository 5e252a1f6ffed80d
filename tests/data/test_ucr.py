"""The ``.ts`` reader against hand-written files (univariate, multivariate, variable length, and
malformed files answered with the file and line), ``load_ucr`` on a folder of stand-ins, the
bake-off table reader on a tiny csv, the missing-package errors, and the real files and table
when aeon and tslearn are installed."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from carousel.data import MissingPackageError
from carousel.data import ucr
from carousel.data.ucr import UCR_DATASETS, load_ucr, published_accuracies, read_accuracy_table, read_ts

UNIVARIATE = """# a comment
#another
@problemName Toy
@timeStamps false
@missing false
@univariate true
@equalLength true
@seriesLength 3
@classLabel true b a
@data
1.5,-2,3e-1:a

0,0,4:b
-1,2.25,7:a
"""

MULTIVARIATE = """@problemName Toy
@univariate false
@dimensions 2
@equalLength false
@classLabel true x y z
@data
1,2,3:4,5,6:z
7,8:9,10:x
"""


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_univariate_file_by_hand(tmp_path):
    ts = read_ts(write(tmp_path / "u.ts", UNIVARIATE))
    assert ts.classes == ("b", "a") and ts.labels == ["a", "b", "a"]
    assert [s.tolist() for s in ts.series] == [[[1.5], [-2.0], [0.30000001192092896]], [[0.0], [0.0], [4.0]], [[-1.0], [2.25], [7.0]]]
    assert ts.header["problemname"] == "Toy" and ts.header["serieslength"] == "3"


def test_multivariate_variable_length_is_padded_and_labelled_in_declared_order(tmp_path):
    write(tmp_path / "GunPoint" / "GunPoint_TRAIN.ts", MULTIVARIATE)
    d = load_ucr("GunPoint", "train", tmp_path)
    assert d.x.shape == (2, 3, 2) and d.channels == 2 and len(d) == 2
    assert d.x[0].tolist() == [[1, 4], [2, 5], [3, 6]]
    assert d.x[1].tolist() == [[7, 9], [8, 10], [0, 0]]  # padded with zeros past its 2 steps
    assert d.lengths.tolist() == [3, 2] and d.labels.tolist() == [2, 0] and d.classes == ("x", "y", "z")
    assert d.labels.dtype == torch.int64 and d.x.dtype == torch.float32


def test_the_test_file_takes_the_training_files_class_order(tmp_path):
    write(tmp_path / "OSULeaf" / "OSULeaf_TRAIN.ts", UNIVARIATE)
    write(tmp_path / "OSULeaf" / "OSULeaf_TEST.ts", UNIVARIATE.replace("@classLabel true b a", "@classLabel true a b"))
    test = load_ucr("OSULeaf", "test", tmp_path)
    assert test.classes == ("b", "a") and test.labels.tolist() == [1, 0, 1]
    write(tmp_path / "OSULeaf" / "OSULeaf_TEST.ts", UNIVARIATE.replace("@classLabel true b a", "@classLabel true a c b"))
    with pytest.raises(ValueError, match=r"declares the classes \['a', 'c', 'b'\] but .*OSULeaf_TRAIN.ts declares \['b', 'a'\]"):
        load_ucr("OSULeaf", "test", tmp_path)


@pytest.mark.parametrize("change, line, message", [
    (("1.5,-2,3e-1:a", "1.5,?,3e-1:a"), 11, r"missing value '\?' in channel 1; missing values are not supported"),
    (("0,0,4:b", "0,x,4:b"), 13, r"expected a number in channel 1, got 'x'"),
    (("0,0,4:b", "0,nan,4:b"), 13, r"expected a finite number in channel 1, got 'nan'"),
    (("0,0,4:b", "0,0,4:c"), 13, r"class label 'c' is not declared by @classLabel \(declared: b, a\)"),
    (("0,0,4:b", "0,0,4,5:b"), 13, r"expected 3 values per channel \(@seriesLength\), got 4"),
    (("0,0,4:b", "0,0,4:1,2,3:b"), 13, r"expected 1 channel\(s\) separated by ':', got 2"),
    (("0,0,4:b", "0,0,4"), 13, r"expected values then ':' and a class label, got no ':'"),
    (("@timeStamps false", "@timeStamps true"), 4, r"@timeStamps true is not supported"),
    (("@missing false", "@missing maybe"), 5, r"expected @missing true or false, got 'maybe'"),
    (("@seriesLength 3", "@seriesLength three"), 8, r"expected an integer >= 1 after @seriesLength, got 'three'"),
    (("@classLabel true b a", "@classLabel false"), 9, r"expected @classLabel true <labels>; unlabelled series are not supported"),
    (("@classLabel true b a", "@classLabel true b b"), 9, r"class labels repeat in @classLabel"),
    (("@problemName Toy", "problemName Toy"), 3, r"expected a header line starting with '@' before @data"),
])
def test_malformed_files_name_the_line(tmp_path, change, line, message):
    path = write(tmp_path / "bad.ts", UNIVARIATE.replace(*change))
    with pytest.raises(ValueError, match=rf"bad\.ts:{line}: {message}"):
        read_ts(path)


def test_unequal_channels_no_data_and_no_cases(tmp_path):
    with pytest.raises(ValueError, match=r"bad\.ts:8: expected the channels of a case to have the same length, got lengths \[2, 3\]"):
        read_ts(write(tmp_path / "bad.ts", MULTIVARIATE.replace("7,8:9,10:x", "7,8:9,10,11:x")))
    with pytest.raises(ValueError, match=r"bad\.ts: expected an @data line, found none"):
        read_ts(write(tmp_path / "bad.ts", UNIVARIATE.split("@data")[0]))
    with pytest.raises(ValueError, match=r"bad\.ts: expected at least one case after @data, found none"):
        read_ts(write(tmp_path / "bad.ts", UNIVARIATE.split("@data")[0] + "@data\n"))
    with pytest.raises(ValueError, match=r"bad\.ts:1: expected @classLabel true <labels> before @data"):
        read_ts(write(tmp_path / "bad.ts", "@data\n1,2:a\n"))


def test_a_gzip_or_binary_file_is_named_not_a_codec_error(tmp_path):
    """A gzipped .ts (or table) is refused naming the file and what to do, not with Python's
    'utf-8 codec can't decode' that names neither; Windows line ends still read."""
    import gzip

    packed = tmp_path / "packed.ts"
    packed.write_bytes(gzip.compress(UNIVARIATE.encode()))
    with pytest.raises(ValueError, match=r"packed\.ts is not a UTF-8 text file \(byte 1 does not decode\); it is gzip-compressed: unpack it first"):
        read_ts(packed)
    with pytest.raises(ValueError, match=r"packed\.ts is not a UTF-8 text file"):
        read_accuracy_table(packed)
    latin = tmp_path / "latin.ts"
    latin.write_bytes(UNIVARIATE.replace("Toy", "Caf\u00e9").encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.ts is not a UTF-8 text file \(byte \d+ does not decode\); expected a plain-text file"):
        read_ts(latin)
    crlf = tmp_path / "crlf.ts"
    crlf.write_bytes(UNIVARIATE.replace("\n", "\r\n").encode())
    assert read_ts(crlf).labels == read_ts(write(tmp_path / "lf.ts", UNIVARIATE)).labels


def test_load_ucr_refuses_bad_splits_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match=r"expected split 'train' or 'test' \(the archive's official splits\), got 'valid'"):
        load_ucr("GunPoint", "valid", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no test file for the dataset 'GunPoint': .*GunPoint_TEST.ts does not exist"):
        load_ucr("GunPoint", "test", tmp_path)
    with pytest.raises(ValueError, match="expected a dataset name"):
        load_ucr("../GunPoint", "test", tmp_path)


def test_missing_packages_name_the_pip_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(MissingPackageError, match=r"pip install --no-deps aeon==1\.6\.0"):
        load_ucr("GunPoint", "train")
    with pytest.raises(MissingPackageError, match=r"pip install --no-deps tslearn==0\.10\.0"):
        published_accuracies("GunPoint")
    with pytest.raises(ValueError):  # a MissingPackageError is also a ValueError (one plain line on the command line)
        load_ucr("GunPoint", "test")


TABLE = ";NB;DTW_R1_1NN;COTE\nAdiac;0.5;0.6;0.79\nGunPoint;0.78;0.906666667;1.0\nStarLightCurves;0.8;;0.98\n"


def test_published_table_on_a_tiny_csv(tmp_path):
    path = write(tmp_path / "t.csv", TABLE)
    assert published_accuracies("GunPoint", path) == {"NB": 0.78, "DTW_R1_1NN": 0.906666667, "COTE": 1.0}
    assert published_accuracies("StarLightCurves", path) == {"NB": 0.8, "COTE": 0.98}  # the empty cell: not published
    with pytest.raises(KeyError, match=r"dataset 'JapaneseVowels' is not in the published table \(3 datasets"):
        published_accuracies("JapaneseVowels", path)
    for bad, message in [(TABLE + "Beef;0.5;0.6\n", r"t\.csv:5: expected a dataset name and 3 accuracies, got 2 values"),
                         (TABLE + "Beef;0.5;1.6;0.7\n", r"t\.csv:5: expected an accuracy in \[0, 1\] for DTW_R1_1NN of Beef, got 1\.6"),
                         (TABLE + "Beef;0.5;high;0.7\n", r"t\.csv:5: expected an accuracy for DTW_R1_1NN of Beef, got 'high'"),
                         (TABLE + "Adiac;0.5;0.6;0.7\n", r"t\.csv:5: dataset 'Adiac' appears twice")]:
        with pytest.raises(ValueError, match=message):
            read_accuracy_table(write(tmp_path / "t.csv", bad))


HAVE_AEON = importlib.util.find_spec("aeon") is not None
HAVE_TSLEARN = importlib.util.find_spec("tslearn") is not None

# The archive's documented sizes: (train cases, test cases, channels, shortest, longest, classes)
REAL = {
    "GunPoint": (50, 150, 1, 150, 150, 2),
    "ArrowHead": (36, 175, 1, 251, 251, 3),
    "ItalyPowerDemand": (67, 1029, 1, 24, 24, 2),
    "OSULeaf": (200, 242, 1, 427, 427, 6),
    "JapaneseVowels": (270, 370, 12, 7, 29, 9),
    "BasicMotions": (40, 40, 6, 100, 100, 4),
}


@pytest.mark.skipif(not HAVE_AEON, reason="needs the aeon files: pip install --no-deps aeon==1.6.0")
@pytest.mark.parametrize("name", UCR_DATASETS)
def test_the_real_files(name):
    n_train, n_test, channels, shortest, longest, classes = REAL[name]
    train, test = load_ucr(name, "train"), load_ucr(name, "test")
    assert (len(train), len(test), train.channels, test.channels) == (n_train, n_test, channels, channels)
    lengths = torch.cat([train.lengths, test.lengths])
    assert (int(lengths.min()), int(lengths.max())) == (shortest, longest)
    assert len(train.classes) == classes and train.classes == test.classes
    assert set(train.labels.tolist()) == set(range(classes)) == set(test.labels.tolist())
    assert bool(torch.isfinite(train.x).all())


@pytest.mark.skipif(not HAVE_TSLEARN, reason="needs the bake-off table: pip install --no-deps tslearn==0.10.0")
def test_the_real_published_table():
    gun = published_accuracies("GunPoint")
    assert len(gun) == 36 and gun["COTE"] == 1.0 and gun["DTW_R1_1NN"] == pytest.approx(0.9067, abs=1e-4)
    assert published_accuracies("OSULeaf")["DTW_Rn_1NN"] == pytest.approx(0.5992, abs=1e-4)
    assert len(read_accuracy_table(ucr.bakeoff_table_path())) == 85
    with pytest.raises(KeyError, match="not in the published table"):
        published_accuracies("JapaneseVowels")
