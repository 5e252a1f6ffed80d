"""Shared fixtures. Helpers importable by tests live in tests/cell_zoo.py (tests/ is on pythonpath)."""

import pytest

from cell_zoo import CELLS


@pytest.fixture(params=sorted(CELLS))
def cell_name(request) -> str:
    return request.param
