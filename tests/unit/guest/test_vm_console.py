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
