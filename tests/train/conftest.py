"""Trainer tests: the toy tasks of ``train_toys.py`` importable by the tests and the distributed
worker (one torch thread for this folder: tests/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
