"""A booted guest ready for cases: kernel + image + QEMU + SSH, with the workloads uploaded.

Boot outcomes are values: ready, crash at boot (the console shows a kernel report), or error
(never reachable, QEMU failed) — never a hang: every wait is bounded and QEMU is killed by pid.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from pinrig import config, interrupt, proc
from pinrig.cases import needs
from pinrig.cases import programs as workbins
from pinrig.errors import InfraError, UserError
from pinrig.guest import image as guest
from pinrig.guest import qemu, snapshot, vm
from pinrig.guest.snapshot import SavedState
from pinrig.guest.transport import Guest
from pinrig.kernels import fetch as kernel
from pinrig.kernels.artifact import KernelArtifact
from pinrig.sanitize import one_line

GUEST_BIN = "/opt/pinrig/bin"
BOOT_TIMEOUT = 180.0      # QEMU start → init ready line, under TCG with margin
SSH_TIMEOUT = 60.0


@dataclass
class Environment:
    """Everything resolved before the first boot (all cached after the first run)."""
    spec: config.KernelSpec
    art: KernelArtifact
    boot: guest.BootFiles
    image: guest.GuestImage
    bins: Optional[Path]
    accel: str
    qemu_version: str
    saved: Optional[SavedState] = None   # start guests from this saved ready state
    boot_note: str = ""                  # why guests boot cold (--cold, or saving failed)
    fallbacks: list = field(default_factory=list)   # restores that fell back to a cold boot
    test_module: Optional[Path] = None   # pinrig_oops.ko for this kernel, when a case needs it
    siw_module: Optional[Path] = None    # siw.ko built for a kernel without CONFIG_RDMA_SIW
    siw_note: str = ""                   # why siw cases cannot run here (else "")
    kselftests: Optional[dict] = None    # selftest name → binary built from the kernel's tree
    kselftest_note: str = ""             # where they came from, or why there are none
    kselftest_longterm: int = 0          # FOLL_LONGTERM's value in that tree (gup_test -F)
    symbolizer: Optional[Any] = None     # pinrig.oops.symbolize.Symbolizer, when symbols exist

    @property
    def boot_mode(self) -> str:
        return "restore" if self.saved is not None else "cold"


def prepare_env(kernel_name: str, guest_name: str = "bookworm", with_bins: bool = True,
                refresh: bool = False, image_hash: Optional[str] = None,
                cold: bool = True, fuzz: Optional[int] = None,
                rev: Optional[int] = None) -> Environment:
    """image_hash: boot exactly that previously built guest image when it is still cached
    (replays); otherwise the image of the current recipe. cold=False: guests start from a
    saved ready state (made once, by one cold boot, when not cached); if that cannot be made,
    they boot cold and env.boot_note says why."""
    spec = config.override_spec(config.load_kernel_spec(kernel_name), fuzz, rev)
    gspec = config.load_guest_spec(guest_name)
    art = kernel.fetch(spec, refresh=refresh)
    lacks = needs.check(art)
    if lacks.boot:                       # refused before any image build or boot
        raise UserError(lacks.boot_error(spec.name))
    boot = guest.boot_files(art)
    image = (guest.cached_image(gspec.name, image_hash) if image_hash else None) \
        or guest.build_image(gspec)
    bins = workbins.build() if with_bins else None
    accel = qemu.probe_accel(art.vmlinuz)
    env = Environment(spec, art, boot, image, bins, accel, qemu.qemu_version())
    if cold:
        env.boot_note = "cold boots (--cold)"
        return env
    try:
        env.saved = snapshot.ensure(env, lambda workdir: Session(env, workdir))
    except InfraError as e:
        env.boot_note = f"cold boots: no saved state ({e})"
    return env


class BootHost(Protocol):
    """Where QEMU runs when it is not here (fleet.remote.RemoteSlot): the hooks Session calls."""

    def prepare(self, art: KernelArtifact, boot: guest.BootFiles, image: guest.GuestImage,
                workdir: Path, accel: str, pmem: Optional[Path] = None, pmem_mb: int = 1024,
                append: tuple = (), mem_mb: int = 2048, smp: int = 2) -> vm.Machine: ...

    def guest_sock(self, port: int) -> Callable: ...

    def remove(self, local: Path) -> None: ...


PORT_RETRIES = 3
PORT_TAKEN_RE = re.compile(r"Could not set up host forwarding rule|hostfwd.*(in use|failed)",
                           re.IGNORECASE)


@dataclass
class BootResult:
    status: str                 # ready / crash / error
    reason: str = ""
    boot_s: float = 0.0
    console_tail: str = ""
    # seconds from the start of the boot at which each step ended (cold: qemu started, sshd
    # up on the console, ssh session open, init ready; restore: qemu started, state loaded,
    # ssh session open, after-restore commands done): where boot time goes (rig bench)
    phases: dict = field(default_factory=dict)


@dataclass
class Session:
    env: Environment
    workdir: Path
    pmem: Optional[Path] = None
    append: tuple = ()
    mem_mb: int = vm.GUEST_MEM_MB               # guest RAM; the saved state is of the default
    machine: Optional[vm.Machine] = None
    guest: Optional[Guest] = None
    info: dict = field(default_factory=dict)
    # where QEMU runs: None here; else a remote.RemoteSlot (a pool host: same prepare() call,
    # files removed there, the guest reached through its SSH connection)
    host: Optional[BootHost] = None
    booted: str = "cold"                      # how the guest came up: cold / restore
    notes: list = field(default_factory=list)  # e.g. a restore that fell back to a cold boot
    ssh_attempts: int = 0                     # SSH connection attempts of the last boot

    def can_restore(self) -> bool:
        """A saved state fits: this host, the plain command line, the default guest RAM."""
        return (self.env.saved is not None and self.host is None and not self.append
                and self.mem_mb == vm.GUEST_MEM_MB)

    def boot(self, restore: bool = True) -> BootResult:
        """Boot to ready. A boot lost to a port race (the forwarded port picked free, then taken
        before QEMU bound it) is retried on a new port, as syzkaller retries instance creation;
        it never becomes a saved error."""
        mode = "restore" if restore and self.can_restore() else "cold boot"
        proc.live_line(f"guest {self.workdir.name}: {mode} of {self.env.spec.name}…")
        for attempt in range(1, PORT_RETRIES + 1):
            interrupt.check("boot")
            res = self._boot_once(restore)
            if not (res.status == "error" and PORT_TAKEN_RE.search(res.console_tail)) \
                    or attempt == PORT_RETRIES:
                break
        proc.progress(f"guest {self.workdir.name}: {res.status} in {res.boot_s:.1f}s "
                      f"({mode}{', ' + one_line(res.reason, 200) if res.status != 'ready' else ''})")
        return res

    def _boot_once(self, restore: bool = True) -> BootResult:
        if restore and self.env.saved is not None and self.can_restore():
            res = self._restore(self.env.saved)
            if res.status == "ready":
                return res
            note = f"{self.workdir.name}: restore failed, booted cold: {res.reason}"
            self.notes.append(note)
            self.env.fallbacks.append(note)
            self.guest, self.machine = None, None
        t0 = time.monotonic()
        prepare = self.host.prepare if self.host is not None else vm.prepare
        machine = self.machine = prepare(self.env.art, self.env.boot, self.env.image,
                                         self.workdir, self.env.accel, pmem=self.pmem,
                                         append=self.append, mem_mb=self.mem_mb)
        machine.start()
        phases = {"qemu": time.monotonic() - t0}
        end = time.monotonic() + BOOT_TIMEOUT
        # SSH handshake as soon as sshd runs, overlapping the guest's module loading
        state = machine.wait_console_ready(BOOT_TIMEOUT, sshd_only=True)
        phases["sshd"] = time.monotonic() - t0
        if state == "ready":
            try:
                port = machine.ssh_port
                if port is None:
                    raise InfraError(f"QEMU for {self.workdir} was prepared without an ssh port")
                sock = self.host.guest_sock(port) if self.host else None
                self.guest = Guest(port, self.env.image.ssh_key,
                                   self.env.image.host_key_pub, sock=sock).connect(SSH_TIMEOUT)
            except InfraError as e:
                machine.kill()
                return BootResult("error", str(e), time.monotonic() - t0, self.console_tail())
            phases["ssh"] = time.monotonic() - t0
            self.ssh_attempts = self.guest.attempts
            state = machine.wait_console_ready(max(1.0, end - time.monotonic()))
        if state != "ready":
            if self.guest:
                self.guest.close()
                self.guest = None
            machine.kill()
            tail = self.console_tail()
            if state == "timeout":
                return BootResult("error", f"guest not ready after {BOOT_TIMEOUT:.0f}s "
                                  "(QEMU killed)", time.monotonic() - t0, tail)
            return BootResult("crash" if machine.started_console().panicked else "error",
                              "QEMU exited during boot", time.monotonic() - t0, tail)
        self.info = dict(machine.info)
        phases["ready"] = time.monotonic() - t0
        return BootResult("ready", "", time.monotonic() - t0,
                          phases={k: round(v, 3) for k, v in phases.items()})

    def _restore(self, saved: SavedState) -> BootResult:
        """Resume the saved ready guest with this session's own overlay, pmem and port."""
        t0 = time.monotonic()
        phases: dict = {}
        machine = None
        try:
            machine = self.machine = vm.prepare(self.env.art, self.env.boot, self.env.image,
                                                self.workdir, self.env.accel, pmem=self.pmem,
                                                saved=saved)
            machine.start()
            phases["qemu"] = time.monotonic() - t0
            if machine.qmp is None or machine.ssh_port is None:
                raise InfraError("restore: no QMP socket or ssh port")
            snapshot.resume(machine.qmp, saved, alive=machine.alive)
            phases["resumed"] = time.monotonic() - t0
            self.guest = Guest(machine.ssh_port, self.env.image.ssh_key,
                               self.env.image.host_key_pub).connect(SSH_TIMEOUT)
            phases["ssh"] = time.monotonic() - t0
            self.ssh_attempts = self.guest.attempts
            self.guest.run(snapshot.after_restore_commands(os.urandom(64).hex()), timeout=60,
                           check=True)
            phases["after_restore"] = time.monotonic() - t0
        except InfraError as e:
            if self.guest:
                self.guest.close()
                self.guest = None
            tail = self.console_tail() if machine else ""
            if machine:
                machine.kill()
                self._remove(self.workdir / "overlay.qcow2")
            return BootResult("error", str(e), time.monotonic() - t0, tail)
        machine.info = dict(saved.info)
        self.info = dict(saved.info)
        self.booted = "restore"
        return BootResult("ready", "", time.monotonic() - t0,
                          phases={k: round(v, 3) for k, v in phases.items()})

    def connected_guest(self) -> Guest:
        """The SSH session of the booted guest; InfraError when there is none (not booted,
        or closed)."""
        if self.guest is None:
            raise InfraError(f"no guest connection for {self.workdir}: not booted, or closed")
        return self.guest

    def upload_bins(self) -> None:
        if not self.env.bins:
            return
        g = self.connected_guest()
        g.run(["mkdir", "-p", GUEST_BIN], check=True)
        for b in workbins.binaries(self.env.bins):
            g.put(b, f"{GUEST_BIN}/{b.name}", mode=0o755)

    def alive(self) -> bool:
        return self.machine is not None and self.machine.alive()

    def console_tail(self, n: int = 60) -> str:
        if not self.machine:
            return ""
        text = self.machine.console_text().decode(errors="replace")
        return "\n".join(text.splitlines()[-n:])

    def close(self) -> None:
        """Power off politely when the guest is healthy, then make sure QEMU is gone."""
        if self.guest:
            try:
                # minbase has no poweroff binary: sysrq o powers off at once (-no-reboot ends QEMU)
                self.guest.run("sync; (sleep 0.2; echo o > /proc/sysrq-trigger) >/dev/null 2>&1 &",
                               timeout=10)
            except InfraError:
                pass
            self.guest.close()
            self.guest = None
        if self.machine:
            if self.machine.alive():
                self.machine.wait_exit(5)
            self.machine.kill()
        self._remove(self.workdir / "overlay.qcow2")

    def discard_pmem(self) -> None:
        """Drop a pmem backing file nobody needs to look at (1 GiB each, sparse)."""
        self._remove(self.pmem or (self.workdir / "pmem.img"))

    def _remove(self, p: Path) -> None:
        if self.host is not None:
            self.host.remove(p)
        else:
            p.unlink(missing_ok=True)
