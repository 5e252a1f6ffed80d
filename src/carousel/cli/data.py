"""``carousel data genome [--dest DIR]``: fetch a real dataset that no Python package ships.

``genome``: the C. trachomatis GenBank file ``ct.gbk.gz`` of Debian's ``r-cran-seqinr``, unpacked
without R (``carousel.data.genome.fetch_genome``) into ``DIR`` (default ``$CAROUSEL_DATA/genome``
or ``~/.cache/carousel/genome``), where ``carousel train genome`` finds it. A failure is one line
saying what to do by hand, and exit code 1; an unusable ``--dest`` (a file, a read-only folder)
is exit code 2, found before anything is downloaded.
"""

from __future__ import annotations

from typing import Optional

import typer

from ..data.genome import GENOME_FILE, GenomeFetchError, data_dir, fetch_genome, read_genbank
from . import app
from .common import PATH_ERRORS, console, fail, os_message

data_app = typer.Typer(help="Fetch real datasets that no Python package ships (carousel data genome).", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command()
def genome(
    dest: Optional[str] = typer.Option(None, "--dest", help="folder to put ct.gbk.gz in (default: $CAROUSEL_DATA/genome or ~/.cache/carousel/genome)"),
    force: bool = typer.Option(False, "--force", help="download again even when the file is there"),
) -> None:
    """Fetch the C. trachomatis genome (ct.gbk.gz) from Debian's r-cran-seqinr: apt-get download and
    dpkg-deb -x in a temporary folder, no R needed; only the GenBank file is kept."""
    out = console()
    folder = dest if dest is not None else str(data_dir())
    out.print(f"fetching {GENOME_FILE} (Debian package r-cran-seqinr) into {folder} ...", markup=False)
    try:
        path = fetch_genome(dest, force=force)
        genome = read_genbank(path)
    except GenomeFetchError as err:
        fail(f"could not fetch the genome: {err}", 1)
    except PATH_ERRORS as err:  # --dest is a file or read-only: a usage mistake
        fail(f"could not fetch the genome: {os_message(err)}", 2)
    except (ValueError, OSError) as err:  # a file there that does not read as GenBank, or an unwritable folder
        fail(f"could not fetch the genome: {err}; run again with --force to replace the file", 1)
    coding = float(genome.labels.float().mean())
    out.print(f"genome: {path} ({genome.name}: {len(genome):,} bases, {coding:.1%} inside a CDS)", markup=False)
