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


def _fake_run(verdicts, seen):
    def run_suite(kernel_arg, suite, out=None, jobs=None, cold=False, echo=None):
        seen.update(kernel=kernel_arg, suite=suite, jobs=jobs, cold=cold, out=out)
        return SimpleNamespace(verdicts=[SimpleNamespace(case=c, verdict=v, wall_s=w)
                                         for c, v, w in verdicts],
                               run=SimpleNamespace(manifest={"boot": {"mode": "restore"}}))
    return run_suite


def test_bench_suite_times_a_jobs_1_run_and_counts_verdicts(monkeypatch):
    from pinrig.runs import runner
    seen: dict = {}
    monkeypatch.setattr(runner, "run_suite", _fake_run(
        [("a", "ok", 1.5), ("b", "data-loss", 9.0), ("c", "ok", 2.0)], seen))
    r = bench.bench_suite("debian-6.1", "pin-matrix")
    assert seen["jobs"] == 1 and seen["suite"] == "pin-matrix" and not seen["cold"]
    assert not seen["out"].parent.exists()          # the temporary results are removed
    assert r["cases"] == 3 and r["verdicts"] == {"ok": 2, "data-loss": 1}
    assert r["boot"] == "restore" and r["case_wall_s"]["b"] == 9.0 and r["wall_s"] >= 0


def test_bench_suite_with_error_verdicts_is_no_measurement(monkeypatch):
    from pinrig.runs import runner
    monkeypatch.setattr(runner, "run_suite", _fake_run([("a", "ok", 1), ("b", "error", 2)], {}))
    with pytest.raises(InfraError, match=r"pin-matrix on k had 1 error verdict\(s\) \(b\)"):
        bench.bench_suite("k", "pin-matrix")


def test_bench_suite_with_skipped_cases_is_no_measurement(monkeypatch):
    # seen: a guest that came up without rxe0 skipped 14 of 22 pin-matrix cases, "59 s"
    from pinrig.runs import runner
    monkeypatch.setattr(runner, "run_suite", _fake_run([("a", "ok", 1), ("b", "skipped", 0)], {}))
    with pytest.raises(InfraError, match=r"pin-matrix on k had 1 skipped verdict\(s\) \(b\)"):
        bench.bench_suite("k", "pin-matrix")


def test_format_all_puts_each_number_beside_its_target():
    boot = {"kernel": "debian-6.1", "release": "6.1.0-57-amd64", "accel": "tcg", "repeat": 3,
            "cold_phases_s": {"qemu": 0.3, "ready": 9.0}, "restore_phases_s": {},
            "cold_ssh_attempts": [1, 2, 1], "raw_qemu_median_s": 6.0, "rig_median_s": 9.0, "ratio": 1.5,
            "restore_median_s": 1.5, "restore_ratio": 0.25, "boot_note": ""}
    suite = {"wall_s": 100.0, "cases": 22, "verdicts": {"ok": 14, "refused": 6, "data-loss": 2}}
    text = bench.format_all({"boot": boot, "pin-matrix": suite,
                             "lost-write-once": dict(suite, wall_s=25.0, cases=1,
                                                     verdicts={"data-loss": 1})})
    assert "ratio 1.50  (target ≤ 1.2: NOT met)" in text
    assert "ready +8.70s; ssh connection attempts [1, 2, 1]" in text
    assert "ratio 0.25  (target ≤ 0.3: met)" in text
    assert "pin-matrix" in text and "100.0s   22 cases (2 data-loss, 14 ok, 6 refused)" in text
    assert "25.0s   1 cases (1 data-loss), --jobs 1  (target ≤ 20: NOT met)" in text


def test_phases_are_medians_in_order_and_shown_as_shares():
    runs = [{"qemu": 0.3, "sshd": 5.0, "ssh": 6.0, "ready": 7.0, "command": 7.4},
            {"qemu": 0.5, "sshd": 6.0, "ssh": 6.5, "ready": 8.0, "command": 8.2},
            {"qemu": 0.4, "sshd": 5.5, "ready": 7.5, "command": 7.9, "ssh": 6.2}]
    med = bench.median_phases(runs)
    assert list(med) == ["qemu", "sshd", "ssh", "ready", "command"]
    assert med == {"qemu": 0.4, "sshd": 5.5, "ssh": 6.2, "ready": 7.5, "command": 7.9}
    assert bench.format_phases(med) == ("qemu 0.40s, sshd +5.10s, ssh +0.70s, ready +1.30s, "
                                        "command +0.40s")
    assert bench.median_phases([]) == {}


def test_bench_all_prepares_a_saved_state_so_restore_is_measured(monkeypatch, capsys):
    # seen for real: `rig bench all` printed "rig restore: not measured (cold boots (--cold))"
    from types import SimpleNamespace

    from pinrig.cli import guest as cli_guest
    from pinrig.guest import session
    seen = {}
    monkeypatch.setattr(session, "prepare_env", lambda kernel, **kw: seen.update(kw) or "env")
    monkeypatch.setattr(bench, "bench_all", lambda env, kernel, repeat, echo: {"env": env})
    monkeypatch.setattr(bench, "format_all", lambda r: "ok\n")
    assert cli_guest.cmd_bench_all(SimpleNamespace(kernel="debian-6.1", repeat=1,
                                                   json=False)) == 0
    assert seen["cold"] is False
