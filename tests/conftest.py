"""Fixtures for every test (unit and integration)."""
import pytest

from pinrig import interrupt


@pytest.fixture(autouse=True)
def no_stop_left_over():
    """The stop flag is process-wide (Ctrl-C sets it for every thread); a test that raises it
    must not leave the next test's boots refused."""
    interrupt.reset()
    yield
    interrupt.reset()
