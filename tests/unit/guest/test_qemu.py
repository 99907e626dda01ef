"""pinrig.guest.qemu: the QEMU argv is a pure function compared exactly; the accel probe's shortcuts."""
import json
import os
import socket
from pathlib import Path

import pytest

from pinrig import paths, proc
from pinrig.guest import qemu
from pinrig.guest.qemu import QemuConfig, build_argv, kernel_cmdline

BASE_CMDLINE = ("console=ttyS0,115200 root=/dev/vda rw panic=-1 oops=panic loglevel=7 "
                "printk.time=1 net.ifnames=0 tsc=reliable no_timer_check mitigations=off acpi=noirq "
                "random.trust_cpu=on")


def cfg(**kw) -> QemuConfig:
    d = dict(kernel=Path("/c/k/vmlinuz"), initrd=Path("/c/k/initrd.cpio.gz"),
             rootdisk=Path("/w/root.qcow2"), modules_disk=Path("/c/k/modules.img"),
             pmem=Path("/w/pmem.img"), ssh_port=40022)
    d.update(kw)
    return QemuConfig(**d)


COMMON_HEAD = ["-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
               "-no-reboot", "-serial", "stdio", "-monitor", "none",
               "-kernel", "/c/k/vmlinuz", "-initrd", "/c/k/initrd.cpio.gz"]
DISKS = ["-drive", "file=/w/root.qcow2,if=virtio,format=qcow2,cache=unsafe",
         "-drive", "file=/c/k/modules.img,if=virtio,format=raw,readonly=on"]
PMEM = ["-object", "memory-backend-file,id=mem1,share=on,mem-path=/w/pmem.img,size=1024M",
        "-device", "nvdimm,id=nv1,memdev=mem1"]
VMGENID = ["-device", "vmgenid,guid=auto"]
NET = ["-netdev", "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22",
       "-device", "virtio-net-pci,netdev=n0"]


def test_argv_pmem_ssh_tcg():
    assert build_argv(cfg()) == [
        "qemu-system-x86_64", "-machine", "pc,nvdimm=on",
        "-accel", "tcg,thread=multi", "-cpu", "max",
        "-smp", "2", "-m", "2048M,slots=2,maxmem=4096M",
        *COMMON_HEAD, "-append", BASE_CMDLINE + " clocksource=tsc",
        *DISKS, *PMEM, *VMGENID, *NET]


def test_argv_pmem_ssh_kvm():
    assert build_argv(cfg(accel="kvm")) == [
        "qemu-system-x86_64", "-machine", "pc,nvdimm=on",
        "-accel", "kvm", "-cpu", "host",
        "-smp", "2", "-m", "2048M,slots=2,maxmem=4096M",
        *COMMON_HEAD, "-append", BASE_CMDLINE,
        *DISKS, *PMEM, *VMGENID, *NET]


def test_argv_without_pmem():
    assert build_argv(cfg(pmem=None)) == [
        "qemu-system-x86_64", "-machine", "pc",
        "-accel", "tcg,thread=multi", "-cpu", "max",
        "-smp", "2", "-m", "2048M",
        *COMMON_HEAD, "-append", BASE_CMDLINE + " clocksource=tsc",
        *DISKS, *VMGENID, *NET]


def test_argv_minimal_no_disks_no_net():
    argv = build_argv(cfg(pmem=None, rootdisk=None, modules_disk=None, ssh_port=None))
    assert argv == ["qemu-system-x86_64", "-machine", "pc",
                    "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2", "-m", "2048M",
                    *COMMON_HEAD, "-append", BASE_CMDLINE + " clocksource=tsc", *VMGENID]
    assert "-drive" not in argv and "-netdev" not in argv and "-object" not in argv


def test_argv_sizes_follow_config():
    argv = build_argv(cfg(mem_mb=1024, pmem_mb=512, smp=4, qemu="/opt/qemu/bin/qemu"))
    assert argv[0] == "/opt/qemu/bin/qemu"
    assert argv[argv.index("-smp") + 1] == "4"
    assert argv[argv.index("-m") + 1] == "1024M,slots=2,maxmem=2560M"
    assert "memory-backend-file,id=mem1,share=on,mem-path=/w/pmem.img,size=512M" in argv


def test_argv_is_pure():
    c = cfg()
    assert build_argv(c) == build_argv(c)
    assert build_argv(c) is not build_argv(c)


def test_ssh_forward_binds_loopback_only():
    argv = build_argv(cfg(ssh_port=51234))
    netdevs = [argv[i + 1] for i, a in enumerate(argv) if a == "-netdev"]
    assert netdevs == ["user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:51234-:22"]
    assert all("0.0.0.0" not in a and "hostfwd=tcp::" not in a for a in argv)


def test_panic_ends_qemu():
    argv = build_argv(cfg())
    assert "-no-reboot" in argv
    append = argv[argv.index("-append") + 1].split()
    assert "panic=-1" in append and "oops=panic" in append


def test_pmem_is_shared_file_backed():
    argv = build_argv(cfg())
    obj = argv[argv.index("-object") + 1]
    assert obj.startswith("memory-backend-file,") and "share=on" in obj.split(",")
    assert "nvdimm=on" in argv[argv.index("-machine") + 1]


def test_kernel_cmdline_tcg_kvm_and_append():
    assert kernel_cmdline(cfg(accel="kvm")) == BASE_CMDLINE
    assert kernel_cmdline(cfg(accel="tcg")) == BASE_CMDLINE + " clocksource=tsc"
    assert kernel_cmdline(cfg(accel="kvm", append=("pinrig.trivial", "quiet"))) == \
        BASE_CMDLINE + " pinrig.trivial quiet"
    assert kernel_cmdline(cfg(append=("x=1",))).endswith("clocksource=tsc x=1")


def test_append_reaches_argv():
    argv = build_argv(cfg(append=("pinrig.case=abc",)))
    assert argv[argv.index("-append") + 1].endswith(" pinrig.case=abc")


def test_free_port_is_bindable_on_loopback():
    port = qemu.free_port()
    assert isinstance(port, int) and 1024 <= port <= 65535
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))


# ------------------------------------------------------------------------------- probe_accel

@pytest.fixture
def no_qemu_process(monkeypatch):
    """The probe must not start QEMU in these tests."""
    def boom(*a, **k):
        raise AssertionError(f"probe_accel started a process: {a}")
    monkeypatch.setattr(qemu.subprocess, "Popen", boom)


@pytest.mark.parametrize("env", ["kvm", "tcg"])
def test_probe_accel_env_wins(monkeypatch, no_qemu_process, fake_runner, env):
    monkeypatch.setenv("PINRIG_ACCEL", env)
    monkeypatch.setattr(qemu.os, "access", lambda *a, **k: env == "tcg")
    assert qemu.probe_accel(Path("/nonexistent/vmlinuz")) == env
    assert fake_runner.calls == []


def test_probe_accel_tcg_without_dev_kvm(monkeypatch, no_qemu_process, fake_runner):
    seen = []

    def access(path, mode, *a, **k):
        seen.append((str(path), mode))
        return False
    monkeypatch.setattr(qemu.os, "access", access)
    assert qemu.probe_accel(Path("/nonexistent/vmlinuz")) == "tcg"
    assert seen and seen[0][0] == "/dev/kvm"
    assert seen[0][1] & os.W_OK and seen[0][1] & os.R_OK
    assert fake_runner.calls == []


def test_probe_accel_ignores_unknown_env_value(monkeypatch, no_qemu_process, fake_runner):
    monkeypatch.setenv("PINRIG_ACCEL", "hvf")
    monkeypatch.setattr(qemu.os, "access", lambda *a, **k: False)
    assert qemu.probe_accel(Path("/nonexistent/vmlinuz")) == "tcg"


@pytest.mark.parametrize("cached", ["kvm", "tcg"])
def test_probe_accel_uses_cached_answer(monkeypatch, no_qemu_process, fake_runner, cached):
    monkeypatch.setattr(qemu.os, "access", lambda *a, **k: True)
    monkeypatch.setattr(proc, "require", lambda tool: f"/usr/bin/{tool}")
    fake_runner.handler = lambda argv, kw: (0, "QEMU emulator version 9.9.9\nCopyright\n", "")
    key = f"{os.uname().release}|QEMU emulator version 9.9.9"
    (paths.cache_dir() / "accel.json").write_text(json.dumps({"key": key, "accel": cached}))
    assert qemu.probe_accel(Path("/nonexistent/vmlinuz")) == cached
    assert fake_runner.argvs() == [["qemu-system-x86_64", "--version"]]


def test_qemu_version_first_line(monkeypatch, fake_runner):
    monkeypatch.setattr(proc, "require", lambda tool: f"/usr/bin/{tool}")
    fake_runner.handler = lambda argv, kw: (0, "QEMU emulator version 8.2.2 (Debian)\nCopy\n", "")
    assert qemu.qemu_version() == "QEMU emulator version 8.2.2 (Debian)"
    fake_runner.handler = lambda argv, kw: (1, "", "boom")
    assert qemu.qemu_version() == "unknown"


def test_commas_in_paths_are_doubled_and_cannot_add_options(tmp_path):
    """`file=…/with,comma/…` used to end the value at the comma (issue 11: item 14)."""
    d = tmp_path / "with,comma,readonly=off"
    cfg = qemu.QemuConfig(kernel=d / "vmlinuz", initrd=d / "initrd", rootdisk=d / "root.qcow2",
                          modules_disk=d / "mods.img", pmem=d / "pmem.img", ssh_port=40022)
    argv = qemu.build_argv(cfg)
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert drives[0] == f"file={tmp_path}/with,,comma,,readonly=off/root.qcow2,if=virtio,format=qcow2,cache=unsafe"
    assert drives[1].startswith(f"file={tmp_path}/with,,comma,,readonly=off/mods.img,")
    obj = argv[argv.index("-object") + 1]
    assert f"mem-path={tmp_path}/with,,comma,,readonly=off/pmem.img,size=" in obj
    assert qemu.opt_value("a,b,,c") == "a,,b,,,,c"


def test_guest_network_is_restricted():
    cfg = qemu.QemuConfig(kernel=Path("k"), initrd=Path("i"), rootdisk=None, modules_disk=None,
                          ssh_port=40022)
    net = qemu.build_argv(cfg)[qemu.build_argv(cfg).index("-netdev") + 1]
    assert "restrict=on" in net and "hostfwd=tcp:127.0.0.1:40022-:22" in net


def test_qmp_and_incoming_for_save_and_restore(tmp_path):
    argv = build_argv(cfg(qmp=Path("/w/a,b/qmp.sock"), incoming="defer"))
    assert argv[argv.index("-qmp") + 1] == "unix:/w/a,,b/qmp.sock,server=on,wait=off"
    assert argv[argv.index("-incoming") + 1] == "defer"
    assert "-incoming" not in build_argv(cfg())
