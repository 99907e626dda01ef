"""Fixtures for the unit tests: no QEMU, no network, no real cache, no real subprocesses
unless a test asks for one."""
import importlib
import signal

import pytest

from pinrig import proc
from tests.fakes import FakeRunner


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every unit test gets its own empty cache and no accel override from the caller's shell."""
    cache = tmp_path_factory.mktemp("pinrig-cache")
    monkeypatch.setenv("PINRIG_CACHE", str(cache))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("PINRIG_ACCEL", raising=False)
    return cache


@pytest.fixture
def fake_runner(monkeypatch):
    fake = FakeRunner()
    monkeypatch.setattr(proc, "RUNNER", fake)
    return fake


@pytest.fixture
def runner_module():
    """pinrig.runs.runner (kept as a fixture for the tests written against it)."""
    return importlib.import_module("pinrig.runs.runner")


@pytest.fixture
def keep_signal_handlers():
    """cli.main() installs SIGINT/SIGTERM handlers; give pytest its own back afterwards."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)
