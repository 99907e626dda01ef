"""Fixtures for the unit tests: no QEMU, no network, no real cache, no real subprocesses
unless a test asks for one."""
import importlib
import signal
import sys
import types

import pytest

import pinrig
from pinrig import proc


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every unit test gets its own empty cache and no accel override from the caller's shell."""
    cache = tmp_path_factory.mktemp("pinrig-cache")
    monkeypatch.setenv("PINRIG_CACHE", str(cache))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("PINRIG_ACCEL", raising=False)
    return cache


class FakeRunner:
    """Stands in for proc.RUNNER: records argv lists, answers through `handler`.

    handler(argv, kwargs) -> (returncode, stdout, stderr)."""

    def __init__(self):
        self.calls = []
        self.handler = lambda argv, kw: (0, "", "")

    def run(self, argv, **kw):
        argv = [str(a) for a in argv]
        self.calls.append((argv, kw))
        rc, out, err = self.handler(argv, kw)
        return proc.Result(argv, rc, out, err)

    def argvs(self):
        return [a for a, _ in self.calls]


@pytest.fixture
def fake_runner(monkeypatch):
    fake = FakeRunner()
    monkeypatch.setattr(proc, "RUNNER", fake)
    return fake


@pytest.fixture
def runner_module(monkeypatch):
    """pinrig.runs.runner, importable even while pinrig/oops.py is still being written.

    runner does `from . import oops`; only group_sessions & co. are exercised here, so when the
    real module is missing (or half-written) a stub stands in, and runner is dropped from
    sys.modules afterwards so no other test sees a runner bound to the stub."""
    stubbed = False
    try:
        importlib.import_module("pinrig.oops")
    except Exception:
        stubbed = True
        stub = types.ModuleType("pinrig.oops")
        monkeypatch.setitem(sys.modules, "pinrig.oops", stub)
        monkeypatch.setattr(pinrig, "oops", stub, raising=False)
        sys.modules.pop("pinrig.runs.runner", None)
    runner = importlib.import_module("pinrig.runs.runner")
    yield runner
    if stubbed:
        sys.modules.pop("pinrig.runs.runner", None)
        if hasattr(pinrig, "runner"):
            delattr(pinrig, "runner")


@pytest.fixture
def keep_signal_handlers():
    """cli.main() installs SIGINT/SIGTERM handlers; give pytest its own back afterwards."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)
