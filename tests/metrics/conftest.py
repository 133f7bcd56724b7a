"""Fixtures for the metric tests: small tensors, so one thread each (tests/conftest.py's one_thread)."""

import pytest


@pytest.fixture(autouse=True, scope="module")
def _single_thread(one_thread):
    yield
