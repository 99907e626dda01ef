"""The runner's handling of guest trouble, with the process layer faked (no QEMU)."""

import dataclasses

import pytest

from pinrig.config import Case, Suite, load_suite
from pinrig.errors import InfraError
from pinrig.guest.transport import CmdResult, CommandTimeout
from pinrig.results.rundir import RunDir
from pinrig.runs import runner
from tests.fakes import FakeGuest, FakeSession


def _run(tmp_path, behaviour, console=b""):
    sess = FakeSession(behaviour, console)
    case = Case("ibverbs-pin", "ext4", "shared", timeout=5)
    suite = Suite("t", (case,))
    run = RunDir(tmp_path)
    v = runner._one_case(sess, run, case, 1, suite)
    return sess, v, run


def test_hung_workload_is_error_and_its_guest_is_killed(tmp_path):
    def hang(machine):
        raise CommandTimeout("guest command timed out after 5s: ibverbs-pin")
    sess, v, run = _run(tmp_path, hang)
    assert v.verdict == "error" and "timed out" in v.reason
    assert sess.machine.killed
    assert (tmp_path / "cases/ibverbs-pin/ext4/shared/verdict.json").exists()


def test_guest_dying_with_a_panic_is_a_crash_with_its_title(tmp_path):
    panic = (b"[   12.0] pinrig: case-start ibverbs-pin/ext4/shared\n"
             b"[   12.1] BUG: kernel NULL pointer dereference, address: 0000000000000008\n"
             b"[   12.1] #PF: supervisor read access in kernel mode\n"
             b"[   12.1] RIP: 0010:rxe_mr_copy+0x4a/0x1f0 [rdma_rxe]\n"
             b"[   12.1] Call Trace:\n"
             b"[   12.1]  <TASK>\n"
             b"[   12.1]  rxe_mr_copy+0x4a/0x1f0 [rdma_rxe]\n"
             b"[   12.1]  rxe_receiver+0x100/0x200 [rdma_rxe]\n"
             b"[   12.1]  </TASK>\n"
             b"[   12.2] Kernel panic - not syncing: Fatal exception\n")

    def die(machine):
        machine.killed = True
        raise InfraError("lost the guest's ssh connection: EOF")
    sess, v, run = _run(tmp_path, die, panic)
    assert v.verdict == "crash"
    assert v.title == "BUG: unable to handle kernel NULL pointer dereference in rxe_mr_copy"
    assert "rxe_mr_copy" in (tmp_path / "cases/ibverbs-pin/ext4/shared/console.log").read_text()


def test_granted_pin_is_ok_and_refused_carries_errno(tmp_path):
    ok_json = '{"workload":"ibverbs-pin","pin":"granted","errno":null}\n'
    _s, v, _r = _run(tmp_path / "a", lambda m: CmdResult(0, ok_json, "", 0.1))
    assert v.verdict == "ok"
    no_json = '{"workload":"ibverbs-pin","pin":"refused","errno":"EFAULT"}\n'
    _s, v, _r = _run(tmp_path / "b", lambda m: CmdResult(0, no_json, "", 0.1))
    assert (v.verdict, v.errno) == ("refused", "EFAULT")


def test_workload_without_json_is_error_not_a_verdict(tmp_path):
    _s, v, _r = _run(tmp_path, lambda m: CmdResult(139, "garbage\n", "Segmentation fault", 0.1))
    assert v.verdict == "error" and "no JSON" in v.reason


def test_pressure_the_kernel_refuses_is_an_error_not_ok(tmp_path, monkeypatch):
    """dirty_ratio -7 used to give verdict ok (issue 11: item 12): sysctl failed, nobody looked."""
    from pinrig.config import Pressure

    class Refusing(FakeGuest):
        def run(self, cmd, timeout=60, check=False):
            res = super().run(cmd, timeout, check)
            if isinstance(cmd, str) and "sysctl -q -w vm.dirty_ratio" in cmd:
                return CmdResult(1, "", "sysctl: setting key \"vm.dirty_ratio\": Invalid argument",
                                 0.01)
            return res

    def ok(machine):
        return CmdResult(0, '{"pin": "granted"}\n', "", 0.1)
    sess = FakeSession(ok)
    sess.guest = Refusing(sess.machine, ok)
    suite = load_suite("smoke")
    suite = dataclasses.replace(suite, pressure=Pressure(dirty_ratio=5))
    case = suite.cases[0]
    v = runner._one_case(sess, RunDir(tmp_path), case, 1, suite)
    assert v.verdict == "error" and "pressure could not be applied" in v.reason
    assert not any("/opt/pinrig/bin/" in c for c in sess.guest.commands)      # workload never ran
    assert any("pinrig-dirty_ratio.orig > /proc/sys/vm/dirty_ratio" in c for c in sess.guest.commands)


@pytest.mark.parametrize("after, verdict", [((130, 130), "ok"), ((130, 110), "pin-leak")])
def test_pins_not_released_by_teardown_are_a_failure_of_their_own(tmp_path, after, verdict):
    """Issue 15 item 1: FOLL_PIN acquired/released deltas over the case, after teardown."""
    counters = iter([(100, 100), after])

    class Counting(FakeGuest):
        def run(self, cmd, timeout=60, check=False):
            if isinstance(cmd, str) and "nr_foll_pin" in cmd:
                a, r = next(counters)
                return CmdResult(0, f"nr_foll_pin_acquired {a}\nnr_foll_pin_released {r}\n", "", 0)
            return super().run(cmd, timeout, check)

    def ok(machine):
        return CmdResult(0, '{"pin": "granted"}\n', "", 0.1)
    sess = FakeSession(ok)
    sess.guest = Counting(sess.machine, ok)
    case = Case("ibverbs-pin", "ext4", "shared", timeout=5)
    v = runner._one_case(sess, RunDir(tmp_path), case, 1, Suite("t", (case,)))
    assert v.verdict == verdict
    assert v.pins == {"acquired": after[0] - 100, "released": after[1] - 100}
    if verdict == "pin-leak":
        assert v.reason == "20 page pin(s) never released: 30 acquired, 10 released during the case"
        assert v.failed
