"""``carousel.data.genome``: a hand-made GenBank file (both strands, a join, a join across the
origin, features that are not CDS, letters other than ACGT) against hand-written labels and codes;
the search order of the file; clear errors for bad and missing files; the contiguous split;
``fetch_genome`` and ``carousel data genome`` with apt-get and dpkg-deb replaced by fakes; and the
real C. trachomatis file where it is installed."""

import gzip
import subprocess
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import carousel.data.genome as genome_data
from carousel.cli import app
from carousel.data import MissingPackageError
from carousel.data.genome import (N_CODE, GenomeFetchError, encode_bases, fetch_genome, genome_file, read_genbank,
                                  split_genome, windows)

# 60 bases; position: 0123456789...
SEQUENCE = "ACGTACGTAC" "GTNNACGTAC" "ACGTRCGTAC" "ACGTACGTAC" "ACGTACGTAC" "ACGTACGTAC"
CODING = set(range(3, 9)) | set(range(20, 26)) | set(range(30, 33)) | set(range(36, 39)) | set(range(55, 60)) | {0, 1}


def write_genbank(path: Path, sequence: str = SEQUENCE, records: int = 1) -> Path:
    """A GenBank file: CDS [3, 9) +, CDS [20, 26) -, CDS join([30, 33), [36, 39)) +, CDS
    join([55, 60), [0, 2)) across the origin, a gene [40, 50) and a tRNA [50, 54) (not CDS)."""
    from Bio import SeqIO
    from Bio.Seq import Seq
    from Bio.SeqFeature import CompoundLocation, FeatureLocation, SeqFeature
    from Bio.SeqRecord import SeqRecord

    out = []
    for r in range(records):
        rec = SeqRecord(Seq(sequence), id=f"TEST{r}", name=f"TEST{r}", description="a stand-in genome",
                        annotations={"molecule_type": "DNA", "topology": "circular"})
        rec.features = [
            SeqFeature(FeatureLocation(3, 9, strand=1), type="CDS"),
            SeqFeature(FeatureLocation(20, 26, strand=-1), type="CDS"),
            SeqFeature(CompoundLocation([FeatureLocation(30, 33, strand=1), FeatureLocation(36, 39, strand=1)]), type="CDS"),
            SeqFeature(CompoundLocation([FeatureLocation(55, 60, strand=1), FeatureLocation(0, 2, strand=1)]), type="CDS"),
            SeqFeature(FeatureLocation(40, 50, strand=1), type="gene"),
            SeqFeature(FeatureLocation(50, 54, strand=-1), type="tRNA"),
        ]
        out.append(rec)
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as f:
            SeqIO.write(out, f, "genbank")
    else:
        SeqIO.write(out, str(path), "genbank")
    return path


@pytest.mark.parametrize("name", ["ct.gbk", "ct.gbk.gz"])
def test_labels_and_codes_against_hand_values(tmp_path, name):
    g = read_genbank(write_genbank(tmp_path / name))
    assert len(g) == 60 and g.codes.dtype == torch.int8 and g.labels.dtype == torch.int8
    assert [i for i in range(60) if g.labels[i]] == sorted(CODING)
    assert g.codes[:4].tolist() == [0, 1, 2, 3] and g.codes[12:14].tolist() == [N_CODE, N_CODE] and int(g.codes[24]) == N_CODE
    assert "TEST0" in g.name and g.source == str(tmp_path / name)


def test_encode_bases():
    assert encode_bases("ACGTacgtNnRY-").tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4, 4, 4, 4, 4]


def test_bad_files_are_clear_errors(tmp_path):
    junk = tmp_path / "junk.gbk"
    junk.write_text("this is not a GenBank file\n")
    with pytest.raises(ValueError, match="expected one GenBank record .* got 0"):
        read_genbank(junk)
    broken = tmp_path / "broken.gbk.gz"
    broken.write_bytes(gzip.compress(write_genbank(tmp_path / "whole.gbk").read_bytes())[:200])  # truncated gzip
    with pytest.raises(ValueError, match=r"broken.gbk.gz is not a readable GenBank file .*carousel data genome"):
        read_genbank(broken)
    with pytest.raises(ValueError, match="expected one GenBank record \\(a complete genome\\) .* got 2"):
        read_genbank(write_genbank(tmp_path / "two.gbk", records=2))
    with pytest.raises(FileNotFoundError, match="no GenBank file at"):
        read_genbank(tmp_path / "absent.gbk")


def test_missing_biopython_names_the_pip_command(tmp_path, monkeypatch):
    path = write_genbank(tmp_path / "ct.gbk")
    monkeypatch.setitem(__import__("sys").modules, "Bio", None)
    with pytest.raises(MissingPackageError, match="pip install biopython"):
        read_genbank(path)


def test_where_the_file_is_looked_for(tmp_path, monkeypatch):
    home, data, installed = tmp_path / "home", tmp_path / "data", tmp_path / "usr" / "ct.gbk.gz"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CAROUSEL_DATA", raising=False)
    monkeypatch.setattr(genome_data, "INSTALLED_PATH", str(installed))
    with pytest.raises(MissingPackageError, match="carousel data genome.*apt-get download r-cran-seqinr"):
        genome_file()
    for place in (installed, home / ".cache" / "carousel" / "genome" / "ct.gbk.gz", data / "genome" / "ct.gbk.gz"):
        place.parent.mkdir(parents=True, exist_ok=True)
        place.write_bytes(b"x")
        monkeypatch.setenv("CAROUSEL_DATA", str(data))
        assert genome_file() == place  # each new place comes earlier in the order than the last
    explicit = tmp_path / "mine.gbk"
    explicit.write_bytes(b"x")
    assert genome_file(explicit) == explicit
    with pytest.raises(FileNotFoundError, match="no GenBank file at"):
        genome_file(tmp_path / "absent.gbk")


def test_the_split_is_contiguous_and_disjoint():
    s = split_genome(1000)
    assert s.train == (0, 800) and s.valid == (800, 900) and s.test == (900, 1000)
    s = split_genome(1_042_519, valid=0.05, test=0.2)
    assert s.train[0] == 0 and s.train[1] == s.valid[0] and s.valid[1] == s.test[0] and s.test[1] == 1_042_519
    assert s.test[1] - s.test[0] == round(0.2 * 1_042_519) and s.valid[1] - s.valid[0] == round(0.05 * 1_042_519)
    assert s.region("valid") == s.valid
    with pytest.raises(ValueError, match="expected valid \\+ test < 1"):
        split_genome(1000, valid=0.5, test=0.5)
    with pytest.raises(ValueError, match="too short"):
        split_genome(5)
    with pytest.raises(ValueError, match="expected a split among"):
        s.region("dev")


def test_windows_tile_a_region():
    assert windows(10, 35, 10) == [(10, 20), (20, 30), (30, 35)]
    assert windows(0, 4, 10) == [(0, 4)]
    with pytest.raises(ValueError, match="window length >= 1"):
        windows(0, 4, 0)


class FakeApt:
    """``subprocess.run`` for apt-get download (writes a .deb) and dpkg-deb -x (unpacks the file)."""

    def __init__(self, payload: bytes, download_code: int = 0, extract: bool = True) -> None:
        self.payload, self.download_code, self.extract, self.calls, self.folders = payload, download_code, extract, [], []

    def __call__(self, args, cwd=None, **kwargs):
        self.calls.append([Path(args[0]).name, *args[1:]])
        self.folders.append(cwd)
        if args[1] == "download":
            if self.download_code:
                return subprocess.CompletedProcess(args, self.download_code, "", "E: Unable to locate package r-cran-seqinr\n")
            (Path(cwd) / "r-cran-seqinr_4.2-23-1_amd64.deb").write_bytes(b"!<arch>")
        elif self.extract:
            target = Path(args[3]) / genome_data.PACKAGE_PATH
            target.parent.mkdir(parents=True)
            target.write_bytes(self.payload)
        return subprocess.CompletedProcess(args, 0, "", "")


@pytest.fixture
def apt(monkeypatch):
    monkeypatch.setattr(genome_data.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    fake = FakeApt(b"\x1f\x8bgenome")
    monkeypatch.setattr(genome_data.subprocess, "run", fake)
    return fake


def test_fetch_keeps_only_the_genbank_file(tmp_path, apt):
    path = fetch_genome(tmp_path / "dest")
    assert path == tmp_path / "dest" / "ct.gbk.gz" and path.read_bytes() == b"\x1f\x8bgenome"
    assert [c[:2] for c in apt.calls] == [["apt-get", "download"], ["dpkg-deb", "-x"]]
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["ct.gbk.gz"]
    assert not Path(apt.folders[0]).exists()  # the .deb and the unpacked tree went with the temporary folder
    apt.payload = b"other"
    assert fetch_genome(tmp_path / "dest").read_bytes() == b"\x1f\x8bgenome" and len(apt.calls) == 2  # kept, not fetched
    assert fetch_genome(tmp_path / "dest", force=True).read_bytes() == b"other"


def test_fetch_errors_say_what_to_do(tmp_path, apt, monkeypatch):
    apt.download_code = 100
    with pytest.raises(GenomeFetchError, match="exit code 100: E: Unable to locate package r-cran-seqinr.*apt-get update.*dpkg-deb -x"):
        fetch_genome(tmp_path)
    apt.download_code, apt.extract = 0, False
    with pytest.raises(GenomeFetchError, match="has no usr/lib/R/site-library/seqinr/sequences/ct.gbk.gz"):
        fetch_genome(tmp_path)
    monkeypatch.setattr(genome_data.shutil, "which", lambda tool: None if tool == "dpkg-deb" else f"/usr/bin/{tool}")
    with pytest.raises(GenomeFetchError, match="dpkg-deb not found .*by hand: download the r-cran-seqinr .deb"):
        fetch_genome(tmp_path)
    assert not (tmp_path / "ct.gbk.gz").exists()


def test_the_command_fetches_and_fails_in_one_line(tmp_path, apt, monkeypatch):
    apt.payload = gzip.compress(write_genbank(tmp_path / "standin.gbk").read_bytes())
    result = CliRunner().invoke(app, ["data", "genome", "--dest", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert "60 bases" in result.output and f"{len(CODING) / 60:.1%} inside a CDS" in result.output
    monkeypatch.setattr(genome_data.shutil, "which", lambda tool: None)
    failed = CliRunner().invoke(app, ["data", "genome", "--dest", str(tmp_path / "e")])
    assert failed.exit_code == 1 and "could not fetch the genome: apt-get and dpkg-deb not found" in failed.output
    assert "Traceback" not in failed.output
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "ct.gbk.gz").write_text("not a genome")  # a damaged file already there
    damaged = CliRunner().invoke(app, ["data", "genome", "--dest", str(tmp_path / "f")])
    assert damaged.exit_code == 1 and "--force" in damaged.output and "Traceback" not in damaged.output


def test_the_real_genome():
    try:
        path = genome_file()
    except MissingPackageError as err:
        pytest.skip(f"the C. trachomatis genome is not installed ({err})")
    g = read_genbank(path)
    assert len(g) == 1_042_519 and "Chlamydia trachomatis" in g.name
    assert int((g.codes == N_CODE).sum()) == 0 and 0.88 < float(g.labels.float().mean()) < 0.92
    starts = torch.nonzero(torch.diff(g.labels.long()) == 1).numel()  # coding stretches; genes overlap or abut
    assert 600 < starts < 895


def test_a_folder_and_a_cut_file_are_one_line_errors(tmp_path):
    """A folder is named as one (not 'not found'); a file cut inside its features makes Biopython quote
    the feature's lines, which the error puts on one line."""
    with pytest.raises(IsADirectoryError, match="expected a GenBank file, got the folder"):
        read_genbank(tmp_path)
    with pytest.raises(IsADirectoryError, match="expected a GenBank file, got the folder"):
        genome_file(tmp_path)
    text = write_genbank(tmp_path / "whole.gbk").read_text()
    cut = tmp_path / "cut.gbk"
    cut.write_text(text[: text.index("ORIGIN")].rstrip() + '\n                     /note="a qualifier\n')
    with pytest.raises(ValueError, match=r"cut.gbk is not a readable GenBank file \(ValueError: ") as err:
        read_genbank(cut)
    assert "\n" not in str(err.value)


def test_an_unusable_dest_is_refused_before_downloading(tmp_path, apt, monkeypatch):
    """--dest naming a file (or a folder this user cannot write) is a usage mistake: exit code 2, one
    line naming the path, and apt-get is never run."""
    (tmp_path / "afile").write_text("x")
    result = CliRunner().invoke(app, ["data", "genome", "--dest", str(tmp_path / "afile")])
    assert result.exit_code == 2, result.output
    assert "expected a directory, got a file" in result.output and "afile" in result.output
    assert "Traceback" not in result.output and apt.calls == []
    monkeypatch.setattr(genome_data.os, "access", lambda path, mode: False)  # read-only (tests may run as root)
    with pytest.raises(PermissionError, match="read-only"):
        fetch_genome(tmp_path / "ro")
    locked = CliRunner().invoke(app, ["data", "genome", "--dest", str(tmp_path / "ro")])
    assert locked.exit_code == 2 and "permission denied" in locked.output and apt.calls == []
