"""Saved guest states: keyed by everything that shapes the guest, validated on load, and a
failed restore falls back to a cold boot with a note (issue 13)."""
import json
import os
from pathlib import Path
from types import SimpleNamespace

from pinrig.guest import qemu, snapshot
from pinrig.guest import session as S


def _env(tmp_path, **kw):
    initrd = tmp_path / "initrd.cpio.gz"
    mods = tmp_path / "modules.img"
    if not mods.exists():               # made once, as the rig makes them
        initrd.write_bytes(b"initrd")
        mods.write_bytes(b"m" * 10)
    d = dict(art=SimpleNamespace(hash="kern"), image=SimpleNamespace(hash="img"),
             boot=SimpleNamespace(initrd=initrd, modules_disk=mods), accel="tcg",
             qemu_version="QEMU 7.2", spec=SimpleNamespace(name="debian-6.1"), saved=None,
             fallbacks=[])
    d.update(kw)
    return SimpleNamespace(**d)


def test_key_covers_kernel_image_initrd_shape_qemu_and_cmdline(tmp_path, monkeypatch):
    base = snapshot.state_key(_env(tmp_path), 2048, 2, 1024)
    assert snapshot.state_key(_env(tmp_path), 2048, 2, 1024) == base
    others = [snapshot.state_key(_env(tmp_path, art=SimpleNamespace(hash="k2")), 2048, 2, 1024),
              snapshot.state_key(_env(tmp_path, image=SimpleNamespace(hash="i2")), 2048, 2, 1024),
              snapshot.state_key(_env(tmp_path, qemu_version="QEMU 8"), 2048, 2, 1024),
              snapshot.state_key(_env(tmp_path, accel="kvm"), 2048, 2, 1024),
              snapshot.state_key(_env(tmp_path), 4096, 2, 1024),
              snapshot.state_key(_env(tmp_path), 2048, 2, 2048)]
    assert base not in others and len(set(others)) == len(others)
    env = _env(tmp_path)
    (tmp_path / "initrd.cpio.gz").write_bytes(b"another initrd")
    assert snapshot.state_key(env, 2048, 2, 1024) != base
    # a modules disk made again, even of the same size: its ext4 layout is another
    before = snapshot.state_key(env, 2048, 2, 1024)
    mods = env.boot.modules_disk
    size = mods.stat().st_size
    mods.unlink()
    mods.write_bytes(b"n" * size)
    os.utime(mods, ns=(1, 1))
    assert snapshot.state_key(env, 2048, 2, 1024) != before
    # the kernel command line the saved guest booted with
    before = snapshot.state_key(env, 2048, 2, 1024)
    monkeypatch.setattr(snapshot.qemu, "BASE_APPEND", snapshot.qemu.BASE_APPEND + ("x=1",))
    assert snapshot.state_key(env, 2048, 2, 1024) != before


def test_load_refuses_incomplete_or_foreign_states():
    d = snapshot.state_dir("k1")
    d.mkdir(parents=True)
    assert snapshot.load("k1") is None                       # nothing there
    (d / "info.json").write_text(json.dumps({"key": "k1", "info": {"rdma": "rxe0"}}))
    assert snapshot.load("k1") is None                       # no state, no overlay
    (d / "state").write_bytes(b"s")
    (d / "overlay.qcow2").write_bytes(b"o")
    assert snapshot.load("k1").info == {"rdma": "rxe0"}
    (d / "info.json").write_text(json.dumps({"key": "other"}))
    assert snapshot.load("k1") is None
    (d / "info.json").write_text("{trunc")
    assert snapshot.load("k1") is None


def test_restore_config_defers_the_incoming_state():
    cfg = qemu.QemuConfig(kernel=Path("k"), initrd=Path("i"), rootdisk=Path("o"),
                          modules_disk=None, pmem=Path("p"), qmp=Path("/tmp/q.sock"))
    saved = snapshot.SavedState("k", Path("/c/snapshots/k"), {})
    argv = qemu.build_argv(snapshot.restore_config(cfg, saved))
    assert argv[argv.index("-incoming") + 1] == "defer"
    assert "vmgenid,guid=auto" in argv                       # a new generation id: reseed


def test_after_restore_sets_clock_reseeds_and_drops_caches_in_one_perl(tmp_path):
    import shlex
    import shutil
    import subprocess
    cmd = snapshot.after_restore_commands("ab" * 32, now=1796000000.25)
    argv = shlex.split(cmd)
    assert argv[:2] == ["perl", "-e"] and len(argv) == 3          # one process, no shell
    code = argv[2]
    # clock_settime; the buffer in a variable (seen for real: syscall(227, 0, pack(…)) died
    # "Modification of a read-only value attempted" and every restore fell back to a cold boot)
    assert 'my $ts = pack("qq", 1796000000, 250000000); syscall(227, 0, $ts) == 0' in code
    assert "0x5207" in code and "ab" * 32 in code and "/proc/sys/vm/drop_caches" in code
    if shutil.which("perl"):      # it compiles (perl -c: syntax only, nothing runs)
        res = subprocess.run(["perl", "-c", "-e", code], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr


def test_a_failed_restore_boots_cold_and_says_so(tmp_path, monkeypatch):
    saved = snapshot.SavedState("k", tmp_path / "snap", {"rdma": "rxe0"})
    env = _env(tmp_path, saved=saved)
    sess = S.Session(env, tmp_path / "w")
    monkeypatch.setattr(S.Session, "_restore",
                        lambda self, s: S.BootResult("error", "QMP socket: QEMU exited"))
    cold = []

    def prepare(*a, **k):                 # the cold path: QEMU that exits at once
        cold.append(k.get("saved"))
        from tests.fakes import ExitingMachine
        return ExitingMachine(b"qemu: could not load kernel\n", 40000)
    monkeypatch.setattr(S.vm, "prepare", prepare)
    res = sess.boot()
    assert cold == [None]                 # booted cold after the restore failed
    assert res.status == "error" and sess.booted == "cold"
    assert env.fallbacks == ["w: restore failed, booted cold: QMP socket: QEMU exited"]
    assert sess.boot(restore=False) and cold == [None, None]


def test_only_the_plain_shape_resumes_a_saved_state(tmp_path):
    # seen for real: mm-selftests (hugepagesz=1G) guests were labelled "(restore)" while they
    # booted cold; a guest with more RAM must not resume a 2 GiB state either
    from types import SimpleNamespace

    from pinrig.guest import vm
    from pinrig.guest.session import Session
    env = SimpleNamespace(saved=object())
    assert Session(env, tmp_path).can_restore()
    assert not Session(env, tmp_path, append=("hugepagesz=1G",)).can_restore()
    assert not Session(env, tmp_path, mem_mb=vm.GUEST_MEM_MB * 2).can_restore()
    assert not Session(SimpleNamespace(saved=None), tmp_path).can_restore()
