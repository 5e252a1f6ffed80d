"""Trainer tests: one thread (the CI machine is shared; two spinning threads slow tiny models down),
and the toy tasks of ``train_toys.py`` importable by the tests and the distributed worker."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
