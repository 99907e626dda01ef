"""A boot directory used again keeps the old console beside the new one (issue 11: item 11)."""
from pathlib import Path

from pinrig.guest import vm


def test_prepare_rotates_an_old_console(tmp_path, monkeypatch):
    monkeypatch.setattr(vm, "make_overlay", lambda image, path: path)
    monkeypatch.setattr(vm, "make_pmem", lambda path, mb: path.write_bytes(b""))
    monkeypatch.setattr(vm.qemu, "free_port", lambda: 40000)
    work = tmp_path / "boots" / "lost-write_ext4_shared" / "pin"
    work.mkdir(parents=True)
    (work / "console.log").write_text("BUG: from the interrupted attempt\n")

    class Art:
        vmlinuz = Path("/k")

    class Boot:
        initrd, modules_disk = Path("/i"), Path("/m")
    m = vm.prepare(Art(), Boot(), object(), work, "tcg")
    assert not m.console_log.exists()
    assert (work / "console.prev-1.log").read_text() == "BUG: from the interrupted attempt\n"
    (work / "console.log").write_text("second\n")
    vm.prepare(Art(), Boot(), object(), work, "tcg")
    assert (work / "console.prev-2.log").read_text() == "second\n"


def test_console_ends_quietly_when_pexpect_loses_the_exit_status_race(tmp_path):
    """kill() reaping QEMU while the reader is in read_nonblocking: pexpect raises
    ExceptionPexpect ("no child process"), seen in a real `rig bench boot`; the reader ends
    (eof) instead of dying with a traceback."""
    import pexpect

    from pinrig.guest.vm import Console

    class Child:
        def __init__(self):
            self.n = 0

        def read_nonblocking(self, size, timeout):
            self.n += 1
            if self.n == 1:
                return b"PINRIG-SSHD\r\n"
            raise pexpect.ExceptionPexpect("isalive() encountered condition where "
                                           "\"terminated\" is 0, but there was no child process")
    c = Console(Child(), tmp_path / "console.log")
    c.t.join(5)
    assert not c.t.is_alive() and c.eof and c.sshd
    assert (tmp_path / "console.log").read_bytes() == b"PINRIG-SSHD\r\n"
