"""Diagnostics tests run on one thread: their matrices are tiny, and on a shared CI machine a second
torch thread mostly waits (a quick study ran 13x slower on two threads of a busy machine)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
