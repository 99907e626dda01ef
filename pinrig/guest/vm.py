"""Stage `vm`: boot a kernel + guest image under QEMU → a running Machine.

QEMU runs under pexpect (a pty carries the serial console); a reader thread copies every byte to
console.log and watches for the init's ready line, panics and a second boot banner. Every QEMU
process the rig starts is registered and ended by its pid — on stop, on error, on Ctrl-C.
"""
from __future__ import annotations

import atexit
import os
import re
import signal
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pexpect

from pinrig import interrupt, proc
from pinrig.errors import InfraError
from pinrig.guest import qemu, snapshot
from pinrig.guest.image import BootFiles, GuestImage
from pinrig.guest.snapshot import SavedState
from pinrig.kernels.artifact import KernelArtifact

READY_RE = re.compile(rb"PINRIG-READY nic=(\S+) rdma=(.*?) pmem=(.*?)\r?\n")
PANIC_RE = re.compile(rb"Kernel panic - not syncing")
BANNER_RE = re.compile(rb"Linux version \d")
MAX_SCAN = 1 << 20   # the watcher scans at most the last 1 MiB; the log file keeps everything

LIVE: dict = {}     # pid -> Machine: everything we must end on exit/Ctrl-C


def kill_all(*_a) -> None:
    for m in list(LIVE.values()):
        m.kill()


atexit.register(kill_all)


def install_signal_handlers() -> None:
    """Ctrl-C / SIGTERM: end our QEMU processes by pid, then let the CLI unwind."""
    def handler(signum, frame):
        interrupt.request_stop()      # first: nothing new boots, nothing more is written
        kill_all()
        raise KeyboardInterrupt
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


# guest RAM by default (a suite may ask for more: `guest_mem_mb`)
GUEST_MEM_MB = 2048

def child_alive(child) -> bool:
    """pexpect's isalive(), where a lost race for the exit status means gone: the console
    thread's read and kill() both waitpid() the same QEMU, and the loser gets ECHILD (seen as a
    traceback at the end of `rig boot`)."""
    try:
        return bool(child.isalive())
    except pexpect.ExceptionPexpect:
        return False


@dataclass
class BootEvent:
    kind: str        # "ready", "exit"
    detail: str = ""


class Console:
    """Reads the pty forever, appends raw bytes to the log, tracks markers."""

    def __init__(self, child: pexpect.spawn, log: Path):
        self.child, self.log = child, log
        self.buf = bytearray()
        self.total = 0
        self.ready: Optional[dict] = None
        self.sshd = False
        self.panicked = False
        self.banners = 0
        self.eof = False
        self.cond = threading.Condition()
        self._f = open(log, "ab")
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _loop(self) -> None:
        while True:
            try:
                data = self.child.read_nonblocking(65536, timeout=0.2)
            except pexpect.TIMEOUT:
                continue
            except (pexpect.ExceptionPexpect, OSError, ValueError):
                # EOF; or pexpect's isalive() racing kill() for the exit status: QEMU is gone
                break
            self._f.write(data)
            self._f.flush()
            with self.cond:
                self.total += len(data)
                self.buf += data
                if len(self.buf) > MAX_SCAN:
                    del self.buf[:len(self.buf) - MAX_SCAN]
                tail = bytes(self.buf[-(len(data) + 4096):])
                if not self.sshd and b"PINRIG-SSHD" in self.buf:
                    self.sshd = True
                if self.ready is None:
                    m = READY_RE.search(self.buf)
                    if m:
                        self.ready = {"nic": m.group(1).decode(errors="replace"),
                                      "rdma": m.group(2).decode(errors="replace").strip(),
                                      "pmem": m.group(3).decode(errors="replace").strip()}
                if PANIC_RE.search(tail):
                    self.panicked = True
                self.banners = max(self.banners, len(BANNER_RE.findall(self.buf)))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()
        self._f.close()

    def wait_for(self, pred, timeout: float) -> bool:
        end = time.monotonic() + timeout
        with self.cond:
            while not pred():
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.5))
            return True

    def offset(self) -> int:
        with self.cond:
            return self.total


@dataclass
class Machine:
    argv: list
    workdir: Path
    console_log: Path
    ssh_port: Optional[int]
    accel: str
    image: Optional[GuestImage] = None
    child: Optional[pexpect.spawn] = None
    console: Optional[Console] = None
    started: float = 0.0
    ready_at: Optional[float] = None
    info: dict = field(default_factory=dict)
    qmp: Optional[Path] = None           # QMP socket (save / resume)

    @property
    def pid(self) -> Optional[int]:
        return self.child.pid if self.child else None

    def start(self) -> "Machine":
        proc.require(self.argv[0])
        self.console_log.parent.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        self.child = pexpect.spawn(self.argv[0], self.argv[1:], echo=False, timeout=None,
                                   maxread=65536)
        LIVE[self.child.pid] = self
        self.console = Console(self.child, self.console_log)
        return self

    def alive(self) -> bool:
        return self.child is not None and child_alive(self.child)

    def started_console(self) -> Console:
        """The console of a started machine; InfraError before start()."""
        if self.console is None:
            raise InfraError(f"QEMU for {self.workdir} has not been started")
        return self.console

    def wait_console_ready(self, timeout: float, sshd_only: bool = False) -> str:
        """'ready' (init reported; with sshd_only: sshd started), 'exit' (QEMU ended: panic or
        failure) or 'timeout'."""
        c = self.started_console()
        if sshd_only:
            ok = c.wait_for(lambda: c.sshd or c.ready is not None or c.eof or c.panicked, timeout)
            if (c.sshd or c.ready is not None) and not (c.eof or c.panicked):
                return "ready"
        ok = c.wait_for(lambda: c.ready is not None or c.eof or c.panicked, timeout)
        if c.ready is not None:
            self.info = dict(c.ready)
            return "ready"
        if c.eof or c.panicked:
            c.wait_for(lambda: c.eof, 5)
            return "exit"
        return "timeout" if not ok else "exit"

    def wait_exit(self, timeout: float) -> bool:
        c = self.started_console()
        return c.wait_for(lambda: c.eof, timeout) and self._reap(timeout)

    def _reap(self, timeout: float) -> bool:
        child = self.child
        if child is None:
            raise InfraError(f"QEMU for {self.workdir} has not been started")
        end = time.monotonic() + timeout
        while child_alive(child) and time.monotonic() < end:
            time.sleep(0.05)
        return not child_alive(child)

    def kill(self) -> None:
        """End this QEMU by its pid (SIGTERM, then SIGKILL)."""
        if not self.child:
            return
        pid = self.child.pid
        if child_alive(self.child):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if not self._reap(3):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self._reap(5)
        try:
            self.child.close(force=True)
        except Exception:
            pass
        if self.console:
            self.console.t.join(2)
        LIVE.pop(pid, None)
        if self.qmp is not None:
            self.qmp.unlink(missing_ok=True)

    def console_text(self, start: int = 0) -> bytes:
        try:
            with open(self.console_log, "rb") as f:
                f.seek(start)
                return f.read()
        except OSError:
            return b""


def make_overlay(image: GuestImage, dest: Path) -> Path:
    """A throwaway qcow2 overlay: boots never write to the cached image."""
    proc.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", image.rootfs, dest],
             what="qemu-img create (overlay)")
    return dest


def make_pmem(dest: Path, size_mb: int) -> Path:
    """A sparse backing file for the emulated nvdimm (kept with the case when it matters)."""
    with open(dest, "wb") as f:
        f.truncate(size_mb << 20)
    return dest


def rotate_console(log: Path) -> None:
    """A boot directory used again (a resumed case, a task back from a lost host) keeps the old
    console next to the new one, never appended to it: an old crash must not be blamed on the
    new attempt."""
    if log.exists():
        n = 1
        while log.with_name(f"console.prev-{n}.log").exists():
            n += 1
        log.rename(log.with_name(f"console.prev-{n}.log"))


def prepare(art: KernelArtifact, boot: BootFiles, image: GuestImage, workdir: Path,
            accel: str, pmem: Optional[Path] = None, pmem_mb: int = 1024,
            append: tuple = (), mem_mb: int = GUEST_MEM_MB, smp: int = 2,
            saved: Optional[SavedState] = None) -> Machine:
    """Everything for one boot: overlay, pmem file (created if missing), argv. Not started.
    saved: resume that saved state instead of booting (the overlay goes on top of its disk)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if saved is not None:
        overlay = snapshot.make_restore_overlay(saved, workdir / "overlay.qcow2")
    else:
        overlay = make_overlay(image, workdir / "overlay.qcow2")
    if pmem is None:
        pmem = workdir / "pmem.img"
    if not pmem.exists():
        make_pmem(pmem, pmem_mb)
    rotate_console(workdir / "console.log")
    port = qemu.free_port()
    # a unix socket path must stay short (108 bytes): not under the workdir
    qmp = Path(tempfile.gettempdir()) / f"pinrig-qmp-{uuid.uuid4().hex[:12]}.sock"
    cfg = qemu.QemuConfig(kernel=art.vmlinuz, initrd=boot.initrd, rootdisk=overlay,
                          modules_disk=boot.modules_disk, pmem=pmem, pmem_mb=pmem_mb,
                          mem_mb=mem_mb, smp=smp, accel=accel, ssh_port=port, append=append,
                          qmp=qmp)
    if saved is not None:
        cfg = snapshot.restore_config(cfg, saved)
    return Machine(argv=qemu.build_argv(cfg), workdir=workdir,
                   console_log=workdir / "console.log", ssh_port=port, accel=accel, image=image,
                   qmp=qmp)
