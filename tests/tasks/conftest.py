"""Fixtures for the task-module tests (small tensors: one thread)."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Module tests use tiny tensors: extra intra-op threads only add synchronisation (and slow down badly
    when the cores are busy), so each module runs on one thread and restores the setting after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
