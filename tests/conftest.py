"""Shared fixtures. Helpers importable by tests live in tests/cell_zoo.py (tests/ is on pythonpath)."""

import pytest
import torch

from cell_zoo import CELLS

# Folders whose tests train tiny models: they run on one torch thread. On a shared CI machine a
# second thread mostly waits (a quick gradients study ran 13x slower on two threads of a busy
# machine), and spinning threads slow tiny models down.
ONE_THREAD_FOLDERS = {"train", "diagnostics", "cli"}


@pytest.fixture(autouse=True)
def one_thread_for_tiny_models(request):
    if request.path.parent.name not in ONE_THREAD_FOLDERS:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=sorted(CELLS))
def cell_name(request) -> str:
    return request.param
