"""Ctrl-C during a run (issue 11: item 1): after the signal no new guest boots, nothing is
written for the cases that were running, the run ends with exit 130 within a bound, and
`--resume` runs the interrupted cases again. With --jobs 1 and --jobs 2."""
import os
import signal
import threading
import time
from types import SimpleNamespace

import pytest

from pinrig import cli, interrupt
from pinrig.config import load_kernel_spec
from pinrig.guest import vm
from pinrig.runs import runner
from tests.fakes import FakeBootingSession


@pytest.fixture
def fake_guests(monkeypatch, tmp_path, keep_signal_handlers):
    spec = load_kernel_spec("debian-6.1")
    env = SimpleNamespace(spec=spec, accel="tcg", qemu_version="QEMU fake", saved=None,
                          boot_mode="cold", boot_note="", fallbacks=[],
                          art=SimpleNamespace(release="6.1.0-fake", packages=("p=1",), hash="h",
                                            config=None, vmlinux=None),
                          test_module=None,
                          image=SimpleNamespace(name="bookworm", hash="g"))
    monkeypatch.setattr(runner, "prepare_env", lambda *a, **k: env)
    monkeypatch.setattr(runner, "Session", FakeBootingSession)
    FakeBootingSession.boots = []
    interrupt.reset()
    yield tmp_path
    TEST_OVER.set()
    interrupt.reset()
    vm.LIVE.clear()


TEST_OVER = threading.Event()


def _signal_when(n_boots: int, delay: float = 0.3):
    """SIGINT to this process once n_boots guests are up (their cases are then running)."""
    def go():
        end = time.monotonic() + 20
        while len(FakeBootingSession.boots) < n_boots and time.monotonic() < end:
            time.sleep(0.01)
        time.sleep(delay)
        if len(FakeBootingSession.boots) >= n_boots and not TEST_OVER.is_set():
            os.kill(os.getpid(), signal.SIGINT)
    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_stops_the_queue_writes_nothing_half_and_resume_reruns(fake_guests, capsys, jobs):
    out = fake_guests / "run"
    TEST_OVER.clear()
    _signal_when(jobs)
    rc = cli.main(["run", "debian-6.1", "--suite", "pin-matrix", "--jobs", str(jobs),
                   "--out", str(out)])
    assert rc == 130
    # bounded: by the time the CLI returns, no guest worker is left running
    assert not [t for t in threading.enumerate() if t.name.startswith("guest") and t.is_alive()]
    booted = len(FakeBootingSession.boots)
    assert booted == jobs, f"{booted} guests booted for --jobs {jobs}: the queue kept going"
    written = list((out / "cases").rglob("verdict.json")) if (out / "cases").exists() else []
    assert written == [], f"interrupted cases were written: {written}"
    assert "interrupted" in capsys.readouterr().err

    # --resume runs them: they were not recorded as errors
    interrupt.reset()
    done = runner.RunDir(out, runner.read_manifest(out)).finished_cases()
    assert done == {}
