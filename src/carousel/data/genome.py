"""A bacterial genome read base by base: coding or not, from a GenBank file.

The genome is *Chlamydia trachomatis* (GenBank accession CG0037 as shipped, 1,042,519 bp, 895
annotated CDS), the file ``ct.gbk.gz`` of Debian's package ``r-cran-seqinr`` (the seqinr R
package's example data; Charif & Lobry 2007). R is not needed: the ``.deb`` is unpacked with
``dpkg-deb -x`` and only the GenBank file is kept (``fetch_genome``, ``carousel data genome``).

* ``genome_file(path=None)``: where the file is looked for, in this order: an explicit ``path``;
  ``$CAROUSEL_DATA/genome/ct.gbk.gz``; ``~/.cache/carousel/genome/ct.gbk.gz``; the installed
  Debian package's ``/usr/lib/R/site-library/seqinr/sequences/ct.gbk.gz``.
* ``read_genbank(path)``: one GenBank record (plain or gzip-compressed), parsed by Biopython's
  ``Bio.SeqIO``, as a ``Genome``: ``codes`` (N,) int8 with A=0, C=1, G=2, T=3 and every other
  letter (N, IUPAC ambiguity codes, gaps) ``N_CODE`` = 4; ``labels`` (N,) int8, 1 at every base
  covered by a ``CDS`` feature on either strand (each part of a ``join(...)`` location is
  covered, the introns between parts are not; a join across the origin of a circular genome
  covers both ends), 0 elsewhere (intergenic bases, RNA genes, pseudogenes without a CDS).
* ``split_genome(n)``: contiguous regions, in genome order: ``train`` the first 80% of the
  bases, ``valid`` the next 10%, ``test`` the last 10% (``GenomeSplit``; fractions adjustable);
  ``windows(start, stop, length)`` cuts a region into consecutive windows.
* ``fetch_genome(dest=None)``: ``apt-get download r-cran-seqinr`` in a temporary folder,
  ``dpkg-deb -x``, ``ct.gbk.gz`` copied into ``dest`` (default: the cache folder above), the rest
  removed with the temporary folder.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from .corpus import MissingPackageError

GENOME_FILE = "ct.gbk.gz"
DEBIAN_PACKAGE = "r-cran-seqinr"
PACKAGE_PATH = "usr/lib/R/site-library/seqinr/sequences/ct.gbk.gz"  # inside the .deb, and under / once installed
INSTALLED_PATH = "/" + PACKAGE_PATH
BASES = "ACGT"
N_CODE = 4  # any letter other than A, C, G, T (either case)
NUM_CODES = 5
SPLITS = ("train", "valid", "test")
FETCH_HINT = "carousel data genome"
BY_HAND = (f"by hand: download the {DEBIAN_PACKAGE} .deb from a Debian mirror (https://packages.debian.org/{DEBIAN_PACKAGE}), "
           f"run 'dpkg-deb -x FILE.deb DIR' (or 'ar x FILE.deb' and untar data.tar.*), and copy DIR/{PACKAGE_PATH} "
           f"to ~/.cache/carousel/genome/{GENOME_FILE}")


class GenomeFetchError(RuntimeError):
    """``fetch_genome`` could not get the file; the message says why and what to do by hand."""


class Genome(NamedTuple):
    """A genome as base codes and per-base labels: ``codes`` (N,) int8 in [0, 5) (A C G T, 4 for
    anything else), ``labels`` (N,) int8 (1: inside a CDS), ``name`` (the record's id and
    description) and ``source`` (the file read)."""

    codes: Tensor
    labels: Tensor
    name: str
    source: str

    def __len__(self) -> int:
        return int(self.codes.shape[0])


class GenomeSplit(NamedTuple):
    """Contiguous regions ``(start, stop)`` of base positions, in genome order, disjoint and covering [0, N)."""

    train: tuple[int, int]
    valid: tuple[int, int]
    test: tuple[int, int]

    def region(self, name: str) -> tuple[int, int]:
        if name not in SPLITS:
            raise ValueError(f"expected a split among {', '.join(map(repr, SPLITS))}, got {name!r}")
        return getattr(self, name)


def data_dir() -> Path:
    """The folder ``fetch_genome`` writes to by default: ``$CAROUSEL_DATA/genome`` when set, else ``~/.cache/carousel/genome``."""
    root = os.environ.get("CAROUSEL_DATA")
    return Path(root) / "genome" if root else Path.home() / ".cache" / "carousel" / "genome"


def genome_candidates(path: str | os.PathLike | None = None) -> list[Path]:
    """The places ``genome_file`` looks, in order (see the module docstring)."""
    found = [] if path is None or str(path) == "" else [Path(path).expanduser()]
    root = os.environ.get("CAROUSEL_DATA")
    if root:
        found.append(Path(root) / "genome" / GENOME_FILE)
    found += [Path.home() / ".cache" / "carousel" / "genome" / GENOME_FILE, Path(INSTALLED_PATH)]
    return found


def genome_file(path: str | os.PathLike | None = None) -> Path:
    """The GenBank file to read: ``path`` when given (``FileNotFoundError`` when it does not exist,
    ``IsADirectoryError`` for a folder),
    else the first existing candidate of ``genome_candidates``. Raises ``MissingPackageError``
    naming ``carousel data genome`` and ``apt-get download r-cran-seqinr`` when there is none."""
    if path is not None and str(path) != "":
        p = Path(path).expanduser()
        if p.is_dir():
            raise IsADirectoryError(21, f"expected a GenBank file, got the folder {p}", str(p))
        if not p.is_file():
            raise FileNotFoundError(2, f"no GenBank file at {p}", str(p))
        return p
    searched = genome_candidates()
    for candidate in searched:
        if candidate.is_file():
            return candidate
    raise MissingPackageError(
        f"the C. trachomatis genome ({GENOME_FILE}, from Debian's {DEBIAN_PACKAGE}) was not found "
        f"(looked in {', '.join(map(str, searched))}); get it with: {FETCH_HINT}  "
        f"(it runs apt-get download {DEBIAN_PACKAGE} and dpkg-deb -x; or apt-get install {DEBIAN_PACKAGE}, "
        f"or pass the path of a GenBank file)"
    )


def encode_bases(sequence: str) -> Tensor:
    """Base codes (N,) int8 of a DNA string: A=0, C=1, G=2, T=3 (either case), ``N_CODE`` = 4 otherwise."""
    table = torch.full((256,), N_CODE, dtype=torch.int8)
    for code, base in enumerate(BASES):
        table[ord(base)] = table[ord(base.lower())] = code
    raw = torch.frombuffer(bytearray(sequence.encode("ascii", errors="replace")), dtype=torch.uint8)
    return table[raw.long()]


def _open_text(path: Path):
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="ascii", errors="replace") if gzipped else open(path, encoding="ascii", errors="replace")


def read_genbank(path: str | os.PathLike) -> Genome:
    """The one record of the GenBank file ``path`` (plain or gzip) as a ``Genome`` (see the module docstring).

    Raises ``MissingPackageError`` naming ``pip install biopython`` when Biopython is missing,
    ``FileNotFoundError`` when ``path`` does not exist (``IsADirectoryError`` for a folder),
    ``ValueError`` naming the file when it is not readable GenBank (the parser's message on one
    line, cut to 160 characters), holds no record or more than one, or has an empty sequence."""
    try:
        from Bio import SeqIO
    except ImportError:
        raise MissingPackageError("reading GenBank files needs Biopython, which is not installed; install it with: "
                                  "pip install biopython  (or pip install 'carousel[real]')") from None
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(21, f"expected a GenBank file, got the folder {p}", str(p))
    if not p.is_file():
        raise FileNotFoundError(2, f"no GenBank file at {p}", str(p))
    try:
        with _open_text(p) as handle:
            records = list(SeqIO.parse(handle, "genbank"))
        if len(records) == 1:
            sequence = str(records[0].seq)  # an undefined sequence (CONTIG only) raises here
    except (ValueError, EOFError, OSError, UnicodeError) as err:
        first = " ".join(str(err).split())  # one line: Biopython may quote whole lines of the file
        first = first if len(first) <= 160 else first[:157] + "..."
        raise ValueError(f"{p} is not a readable GenBank file ({type(err).__name__}: {first}); expected one GenBank record "
                         f"with its sequence (ORIGIN), plain or gzip-compressed; fetch the genome again with: {FETCH_HINT}") from None
    if len(records) != 1:
        raise ValueError(f"expected one GenBank record (a complete genome) in {p}, got {len(records)}"
                         + ("; is it a GenBank file (LOCUS ... //)?" if not records else ""))
    record = records[0]
    if not sequence:
        raise ValueError(f"the GenBank record {record.id} in {p} has an empty sequence; expected its bases (ORIGIN)")
    n = len(sequence)
    labels = torch.zeros(n, dtype=torch.int8)
    for feature in record.features:
        if feature.type != "CDS" or feature.location is None:
            continue
        for part in feature.location.parts:  # a join's parts, on either strand
            labels[max(0, int(part.start)) : min(n, int(part.end))] = 1
    return Genome(encode_bases(sequence), labels, f"{record.id} {record.description}".strip(), str(p))


def load_genome(path: str | os.PathLike | None = None) -> Genome:
    """``read_genbank(genome_file(path))``: the genome from ``path`` or the first place it is found."""
    return read_genbank(genome_file(path))


def split_genome(n: int, valid: float = 0.1, test: float = 0.1) -> GenomeSplit:
    """Contiguous regions of a genome of ``n`` bases: ``train`` [0, a), ``valid`` [a, b), ``test``
    [b, n) with ``n - b = round(test * n)`` and ``b - a = round(valid * n)``. Raises ``ValueError``
    for fractions outside (0, 1) whose sum is not below 1, or a region that would be empty."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"expected the genome length as an int, got {type(n).__name__}")
    for name, value in (("valid", valid), ("test", test)):
        if not 0 < value < 1:
            raise ValueError(f"expected the {name} fraction in (0, 1), got {value}")
    if valid + test >= 1:
        raise ValueError(f"expected valid + test < 1 (a training region left), got {valid} + {test}")
    b = n - round(test * n)
    a = b - round(valid * n)
    if not 0 < a < b < n:
        raise ValueError(f"a genome of {n} bases is too short for non-empty train / valid / test regions "
                         f"({valid:.0%} valid, {test:.0%} test)")
    return GenomeSplit((0, a), (a, b), (b, n))


def windows(start: int, stop: int, length: int) -> list[tuple[int, int]]:
    """Consecutive windows ``(s, e)`` covering [start, stop) exactly, each ``length`` bases but the
    last (the rest). Raises ``ValueError`` for ``length`` < 1 or ``stop`` <= ``start``."""
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"expected a window length >= 1, got {length!r}")
    if stop <= start:
        raise ValueError(f"expected a non-empty region, got [{start}, {stop})")
    return [(s, min(s + length, stop)) for s in range(start, stop, length)]


def fetch_genome(dest: str | os.PathLike | None = None, *, force: bool = False, timeout: float = 600.0) -> Path:
    """Download Debian's ``r-cran-seqinr`` and keep only ``ct.gbk.gz`` at ``dest/ct.gbk.gz``
    (``dest`` default: ``data_dir()``); returns its path. An existing file is kept unless ``force``.

    Runs ``apt-get download r-cran-seqinr`` in a temporary folder (the package need not be
    installed, root is not needed), then ``dpkg-deb -x`` into it; the temporary folder is removed.
    Raises ``GenomeFetchError`` saying what to do by hand when ``apt-get`` or ``dpkg-deb`` is
    missing, fails or times out, or the package lacks the file; before downloading,
    ``NotADirectoryError`` when ``dest`` is a file and ``PermissionError`` when it is read-only."""
    folder = Path(dest).expanduser() if dest is not None else data_dir()
    target = folder / GENOME_FILE
    if target.is_file() and not force:
        return target
    # the folder is checked before anything is downloaded: a file where it belongs, or no right to write
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(20, "expected a folder to put the genome in, got a file", str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise PermissionError(13, "permission denied (the folder is read-only for this user)", str(folder))
    tools = {tool: shutil.which(tool) for tool in ("apt-get", "dpkg-deb")}
    missing = [tool for tool, where in tools.items() if where is None]
    if missing:
        raise GenomeFetchError(f"{' and '.join(missing)} not found (fetching the genome needs Debian's or Ubuntu's apt); {BY_HAND}")

    def run(args: list[str], cwd: str) -> None:
        try:
            done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise GenomeFetchError(f"'{' '.join(args[:3])}' took more than {timeout:.0f} s; {BY_HAND}") from None
        except OSError as err:
            raise GenomeFetchError(f"could not run '{args[0]}' ({err}); {BY_HAND}") from None
        if done.returncode != 0:
            said = (done.stderr or done.stdout or "").strip().splitlines()
            raise GenomeFetchError(f"'{' '.join(args[:3])}' failed (exit code {done.returncode}"
                                   f"{': ' + said[-1] if said else ''}); try 'apt-get update' first, or {BY_HAND}")

    with tempfile.TemporaryDirectory(prefix="carousel-genome-") as tmp:
        run([tools["apt-get"], "download", DEBIAN_PACKAGE], tmp)
        debs = sorted(Path(tmp).glob(f"{DEBIAN_PACKAGE}_*.deb"))
        if not debs:
            raise GenomeFetchError(f"apt-get download {DEBIAN_PACKAGE} left no {DEBIAN_PACKAGE}_*.deb in its folder; {BY_HAND}")
        unpacked = Path(tmp) / "unpacked"
        run([tools["dpkg-deb"], "-x", str(debs[-1]), str(unpacked)], tmp)
        found = unpacked / PACKAGE_PATH
        if not found.is_file():
            raise GenomeFetchError(f"{debs[-1].name} has no {PACKAGE_PATH}; {BY_HAND}")
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / (GENOME_FILE + ".part")
        shutil.copyfile(found, partial)
        os.replace(partial, target)
    return target
