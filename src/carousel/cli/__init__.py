"""The ``carousel`` command. Each sub-command lives in its own module and only calls the library."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="carousel",
    help="Recurrent neural networks and their gradient problems: train, inspect and compare RNNs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """carousel: recurrent neural networks and their gradient problems."""


from . import demo as _demo  # noqa: E402,F401  (registers its command)
from . import train as _train  # noqa: E402,F401
from . import resume as _resume  # noqa: E402,F401
from . import eval as _eval  # noqa: E402,F401
from . import sample as _sample  # noqa: E402,F401
from . import study as _study  # noqa: E402,F401
from . import diagnose as _diagnose  # noqa: E402,F401
from . import runs as _runs  # noqa: E402,F401
from . import report as _report  # noqa: E402,F401
from . import data as _data  # noqa: E402,F401


def main() -> None:
    app()
