"""QEMU on a pool host: remote paths and argv, the QEMU process on an SSH pty (RemoteMachine)."""
from __future__ import annotations

import dataclasses
import os
import random
import re
import select
import shlex
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Optional

import paramiko
import pexpect

from pinrig import ssh
from pinrig.errors import InfraError
from pinrig.fleet.connection import HostLost
from pinrig.fleet.pool import (
    Host,
)
from pinrig.guest import qemu, vm

if TYPE_CHECKING:
    from pinrig.fleet.remote import RemoteSlot


PID_RE = re.compile(rb"PINRIG-QEMU-PID (\d+)\r?\n")


def remote_path(local_root: Path, remote_root: str, p: Path) -> str:
    """Where a file of the local results directory lives on the host."""
    p = Path(p)
    try:
        rel = p.relative_to(local_root)
    except ValueError:
        rel = Path("misc") / p.name
    return str(PurePosixPath(remote_root) / PurePosixPath(*rel.parts)) if rel.parts \
        else remote_root


def remote_config(cfg: qemu.QemuConfig, mapping: dict, accel: str,
                  ssh_port: int) -> qemu.QemuConfig:
    """The local QemuConfig with every file replaced by its place on the host. A file without
    a place is an error (a controller path must never reach a remote argv)."""
    def m(p):
        if p is None:
            return None
        key = str(p)
        if key not in mapping:
            raise InfraError(f"no remote path for {p}")
        return PurePosixPath(mapping[key])
    return dataclasses.replace(cfg, kernel=m(cfg.kernel), initrd=m(cfg.initrd),
                               rootdisk=m(cfg.rootdisk), modules_disk=m(cfg.modules_disk),
                               pmem=m(cfg.pmem), accel=accel, ssh_port=ssh_port)


def qemu_command(remote_dir: str, argv: list) -> str:
    """The shell line that starts QEMU on the host: it prints its pid first, then becomes QEMU
    (exec), so that pid is QEMU's."""
    return (f"cd {shlex.quote(remote_dir)} && echo PINRIG-QEMU-PID $$ && "
            f"exec {shlex.join(str(a) for a in argv)}")


def listening_ports(proc_net_tcp: str) -> set:
    """TCP ports in LISTEN state from /proc/net/tcp{,6} text."""
    out = set()
    for line in proc_net_tcp.splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[3] == "0A" and ":" in parts[1]:
            try:
                out.add(int(parts[1].rsplit(":", 1)[1], 16))
            except ValueError:
                pass
    return out


def pick_port(busy: set, rng: random.Random, lo: int = 20000, hi: int = 60999) -> int:
    for _ in range(10000):
        p = rng.randint(lo, hi)
        if p not in busy:
            return p
    raise InfraError("no free TCP port found on the host")


def host_accel(host: Host) -> str:
    env = os.environ.get("PINRIG_ACCEL")
    if env in ("kvm", "tcg"):
        return env
    return "kvm" if host.kvm else "tcg"


class _ChannelChild:
    """The part of pexpect.spawn that vm.Console reads through, over an SSH channel."""

    def __init__(self, chan, pending: bytes = b""):
        self.chan, self.pending = chan, pending

    def read_nonblocking(self, size: int, timeout: float) -> bytes:
        if self.pending:
            data, self.pending = self.pending[:size], self.pending[size:]
            return data
        chan = self.chan
        if not chan.recv_ready() and not (chan.closed or chan.eof_received):
            select.select([chan], [], [], timeout)
        try:
            if chan.recv_ready():
                data = chan.recv(size)
                if data:
                    return data
                raise pexpect.EOF("channel closed")
        except (OSError, EOFError, paramiko.SSHException):
            raise pexpect.EOF("channel lost")
        t = chan.get_transport()
        if chan.closed or chan.eof_received or chan.exit_status_ready() or not t.is_active():
            raise pexpect.EOF("remote QEMU ended")
        raise pexpect.TIMEOUT("no data")


@dataclass
class RemoteMachine(vm.Machine):
    """A Machine whose QEMU runs on a pool host (argv has the host's paths)."""
    slot: Optional["RemoteSlot"] = None
    remote_dir: str = ""
    remote_pid: Optional[int] = None
    chan: Optional[paramiko.Channel] = None

    @property
    def pid(self) -> Optional[int]:
        return self.remote_pid

    def _slot(self) -> "RemoteSlot":
        """The slot this machine runs through (RemoteSlot.prepare sets it)."""
        if self.slot is None:
            raise InfraError(f"remote QEMU for {self.workdir} has no host slot")
        return self.slot

    def start(self) -> "RemoteMachine":
        self.console_log.parent.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        slot = self._slot()
        t = slot.transport()
        try:
            chan = t.open_session(timeout=15)
            chan.get_pty(term="dumb", width=200, height=50)
            chan.exec_command(qemu_command(self.remote_dir, self.argv))
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise HostLost(f"host {slot.name}: ssh connection lost starting QEMU: {ssh.why(e)}")
        self.chan = chan
        buf, end = b"", time.monotonic() + 30
        while not PID_RE.search(buf) and time.monotonic() < end:
            if chan.recv_ready():
                buf += chan.recv(4096)
            elif chan.exit_status_ready() or chan.closed or not t.is_active():
                break
            else:
                select.select([chan], [], [], 0.2)
        m = PID_RE.search(buf)
        if m:
            self.remote_pid = int(m.group(1))
            buf = buf[m.end():]
        vm.LIVE[("remote", id(self))] = self
        self.child = _ChannelChild(chan, buf)
        self.console = vm.Console(self.child, self.console_log)
        return self

    def alive(self) -> bool:
        c = self.chan
        if c is None or c.closed or c.exit_status_ready():
            return False
        t = c.get_transport()
        return bool(t and t.is_active())

    def _reap(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while self.alive() and time.monotonic() < end:
            time.sleep(0.05)
        return not self.alive()

    def _signal(self, sig: str) -> None:
        if self.remote_pid is None:
            return
        try:
            self._slot().exec(f"kill -{sig} {int(self.remote_pid)}", timeout=10)
        except Exception:
            pass

    def kill(self) -> None:
        """End the remote QEMU by its pid (SIGTERM, then SIGKILL), then drop the channel (whose
        hangup would end it anyway)."""
        if self.chan is None:
            return
        if self.alive() and self.remote_pid:
            self._signal("TERM")
            if not self._reap(3):
                self._signal("KILL")
                self._reap(5)
        try:
            self.chan.close()
        except Exception:
            pass
        if self.console:
            self.console.t.join(2)
        vm.LIVE.pop(("remote", id(self)), None)
