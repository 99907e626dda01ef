"""pinrig.runs.bench: both clocks start before the boot's preparation (a fair ratio)."""
import time
from types import SimpleNamespace

import pytest

from pinrig.errors import InfraError
from pinrig.runs import bench


class _Console:
    buf = b"pinrig-initramfs: start\r\nPINRIG-TRIVIAL-READY\r\n"

    def wait_for(self, pred, timeout):
        return pred()


class _Machine:
    console_log = "console.log"

    def __init__(self):
        self.killed = False

    def start(self):
        return self

    def started_console(self):
        return _Console()

    def kill(self):
        self.killed = True


def test_raw_clock_includes_prepare_as_the_rig_clock_does(monkeypatch, tmp_path):
    machine = _Machine()

    def slow_prepare(*a, **kw):
        time.sleep(0.2)             # the overlay and pmem file: the rig's clock counts them too
        assert kw["append"] == ("pinrig.trivial",)
        return machine
    monkeypatch.setattr(bench.vm, "prepare", slow_prepare)
    env = SimpleNamespace(art=None, boot=None, image=None, accel="tcg",
                          spec=SimpleNamespace(name="k"))
    assert bench.raw_boot(env, tmp_path) >= 0.2
    assert machine.killed


def test_raw_boot_that_never_reaches_the_trivial_init_is_one_infra_error(monkeypatch, tmp_path):
    machine = _Machine()
    monkeypatch.setattr(_Console, "buf", b"Kernel panic - not syncing")
    monkeypatch.setattr(bench.vm, "prepare", lambda *a, **kw: machine)
    env = SimpleNamespace(art=None, boot=None, image=None, accel="tcg",
                          spec=SimpleNamespace(name="k"))
    with pytest.raises(InfraError, match="did not reach the trivial init"):
        bench.raw_boot(env, tmp_path, timeout=0.1)
    assert machine.killed
