"""QEMU command lines, built by pure functions (unit-tested argv lists), and the accel probe."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pinrig import paths, proc
from pinrig.errors import InfraError

QEMU = "qemu-system-x86_64"


@dataclass(frozen=True)
class QemuConfig:
    kernel: Path
    initrd: Path
    rootdisk: Optional[Path]          # qcow2 overlay over the guest image (None: no root disk)
    modules_disk: Optional[Path]
    pmem: Optional[Path] = None       # memory-backend-file, share=on: survives killing QEMU
    pmem_mb: int = 1024
    mem_mb: int = 2048
    smp: int = 2
    accel: str = "tcg"
    ssh_port: Optional[int] = None    # forwarded from 127.0.0.1 only
    append: tuple = ()                # extra kernel command line words
    qemu: str = QEMU
    qmp: Optional[Path] = None        # QMP unix socket (save/resume a guest)
    incoming: Optional[str] = None    # resume a saved state instead of booting
    vmgenid: bool = True              # a new VM generation id per start: a restored guest reseeds


# acpi=noirq: PCI interrupt routing from the firmware's MP table instead of ACPI. With ACPI, the
# first enable of each virtio device evaluates the PIIX link devices' AML (_PRS/_CRS/_SRS), about
# 0.13 s each under TCG, 0.4 s of every boot; the devices then use MSI-X anyway. ACPI itself
# (the NFIT of the emulated nvdimm, power off) is unaffected.
# random.trust_cpu=on: the RNG is ready at once from RDRAND (under TCG, QEMU's is the host's
# getrandom). A kernel built without CONFIG_RANDOM_TRUST_CPU (tinyconfig-based: src-6.1-min)
# otherwise reaches init ~1 s before its RNG, and sshd, whose OpenSSL asks getrandom() for
# randomness at start, waits that second out on every cold boot (measured: crng init done at
# 2.97 s, sshd up at 3.08 s).
BASE_APPEND = ("console=ttyS0,115200", "root=/dev/vda", "rw", "panic=-1", "oops=panic",
               "loglevel=7", "printk.time=1", "net.ifnames=0", "tsc=reliable", "no_timer_check",
               "mitigations=off", "acpi=noirq", "random.trust_cpu=on")


def kernel_cmdline(cfg: QemuConfig) -> str:
    words = list(BASE_APPEND)
    if cfg.accel == "tcg":
        words.append("clocksource=tsc")
    words.extend(cfg.append)
    return " ".join(words)


def opt_value(value: object) -> str:
    """A value inside a QEMU option list (`file=…,if=…`): commas doubled, QEMU's own escaping,
    so a path with a comma stays one value and cannot add options."""
    return str(value).replace(",", ",,")


def build_argv(cfg: QemuConfig) -> list:
    """The full QEMU argv for one guest. Pure: same config, same list."""
    if cfg.accel == "kvm":
        accel = ["-accel", "kvm", "-cpu", "host"]
    else:
        accel = ["-accel", "tcg,thread=multi", "-cpu", "max"]
    machine = "pc,nvdimm=on" if cfg.pmem else "pc"
    mem = f"{cfg.mem_mb}M,slots=2,maxmem={cfg.mem_mb + cfg.pmem_mb + 1024}M" if cfg.pmem \
        else f"{cfg.mem_mb}M"
    argv = [cfg.qemu, "-machine", machine, *accel, "-smp", str(cfg.smp), "-m", mem,
            "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
            "-no-reboot", "-serial", "stdio", "-monitor", "none",
            "-kernel", str(cfg.kernel), "-initrd", str(cfg.initrd),
            "-append", kernel_cmdline(cfg)]
    if cfg.rootdisk:
        argv += ["-drive", f"file={opt_value(cfg.rootdisk)},if=virtio,format=qcow2,cache=unsafe"]
    if cfg.modules_disk:
        argv += ["-drive", f"file={opt_value(cfg.modules_disk)},if=virtio,format=raw,readonly=on"]
    if cfg.pmem:
        argv += ["-object", f"memory-backend-file,id=mem1,share=on,mem-path={opt_value(cfg.pmem)},"
                            f"size={cfg.pmem_mb}M",
                 "-device", "nvdimm,id=nv1,memdev=mem1"]
    if cfg.vmgenid:
        argv += ["-device", "vmgenid,guid=auto"]
    if cfg.qmp:
        argv += ["-qmp", f"unix:{opt_value(cfg.qmp)},server=on,wait=off"]
    if cfg.incoming:
        argv += ["-incoming", cfg.incoming]
    if cfg.ssh_port:
        # restrict=on: the guest (a kernel under test) reaches neither the host's services
        # (10.0.2.2 → host loopback) nor the outside; the forwarded ssh port still works, and
        # rxe traffic stays inside the guest (loopback on the NIC's own address).
        argv += ["-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{cfg.ssh_port}-:22",
                 "-device", "virtio-net-pci,netdev=n0"]
    return argv


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the guest's ssh forward binds there and nowhere else)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qemu_version() -> str:
    res = proc.run([QEMU, "--version"], check=False)
    return res.stdout.splitlines()[0].strip() if res.stdout else "unknown"


def probe_accel(kernel: Path, timeout: float = 8.0) -> str:
    """'kvm' if a KVM guest really runs here, else 'tcg'. Cached per host; $PINRIG_ACCEL wins.

    /dev/kvm may exist while nested KVM hangs at "Booting from ROM": so boot the kernel under
    KVM with no disks and wait for its banner on the console for a few seconds.
    """
    env = os.environ.get("PINRIG_ACCEL")
    if env in ("kvm", "tcg"):
        return env
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    cache = paths.cache_dir() / "accel.json"
    key = f"{os.uname().release}|{qemu_version()}"
    if cache.exists():
        try:
            d = json.loads(cache.read_text())
            if d.get("key") == key:
                return d["accel"]
        except (ValueError, KeyError):
            pass
    argv = [proc.require(QEMU), "-machine", "pc", "-accel", "kvm", "-cpu", "host", "-m", "256M",
            "-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio",
            "-kernel", str(kernel), "-append", "console=ttyS0 panic=-1"]
    accel = "tcg"
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        out = p.stdout
        if out is None:                  # stdout=PIPE always gives one
            raise InfraError("KVM probe: QEMU was started without a stdout pipe")
        os.set_blocking(out.fileno(), False)
        buf, end = b"", time.monotonic() + timeout
        while time.monotonic() < end and p.poll() is None:
            chunk = out.read(4096) or b""
            buf += chunk
            if b"Linux version" in buf:
                accel = "kvm"
                break
            time.sleep(0.1)
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
    cache.write_text(json.dumps({"key": key, "accel": accel}))
    return accel
