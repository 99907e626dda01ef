"""Integration: a real kernel crash, end to end, kept cheap (one boot of debian-6.1, ~20 s TCG).

Boot, crash the kernel with sysrq, and check that QEMU ended on its own at once (panic=-1 and
-no-reboot: no waiting for a timeout) and that the console turns into the crash report kernel
developers know. The full corpus of captured reports is made by scripts/capture_oops.py.
"""
from __future__ import annotations

import pytest

from pinrig import oops
from pinrig.guest.session import Session

pytestmark = pytest.mark.integration

PANIC_EXIT_S = 30.0    # from the crash to QEMU gone; a panic=-1 guest takes well under a second


def test_sysrq_crash_ends_qemu_and_is_reported(env61, tmp_path):
    sess = Session(env61, tmp_path / "boot")
    try:
        br = sess.boot()
        assert br.status == "ready", br
        sess.guest.run("echo 'pinrig: case-start capture/sysrq' > /dev/kmsg", timeout=30)
        # in the background: the ssh command returns before the guest dies under it
        sess.guest.run("(sleep 0.5; echo c > /proc/sysrq-trigger) </dev/null >/dev/null 2>&1 &",
                       timeout=30)
        sess.guest.close()
        sess.guest = None
        exited = sess.machine.wait_exit(PANIC_EXIT_S)
    finally:
        sess.close()
        sess.discard_pmem()
    assert exited, f"QEMU still running {PANIC_EXIT_S:.0f}s after the sysrq crash"
    assert not sess.machine.alive()

    console = sess.machine.console_text()
    assert b"Kernel panic - not syncing" in console
    reports = oops.parse_console(console)
    assert reports, console[-3000:].decode(errors="replace")
    head = reports[0]
    # syzkaller's title for a sysrq crash on kernels that panic() in sysrq_handle_crash
    assert head.title == "kernel panic: sysrq triggered crash", head.title
    assert head.kind == "panic" and not head.corrupted
    # the crash belongs to the case that caused it, not to the boot
    parts = oops.split_by_case(console)
    assert oops.parse_console(parts["boot"]) == []
    assert [r.title for r in oops.parse_console(parts["capture/sysrq"])] == [head.title]
