"""Stage `transport`: commands and files in and out of the guest over real SSH (paramiko).

The guest is untrusted: its host key must be the one generated for the image (no TOFU), output is
capped, every command has a timeout.
"""
from __future__ import annotations

import base64
import logging
import select
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import paramiko

from pinrig.errors import InfraError

MAX_OUTPUT = 16 << 20

# paramiko logs a traceback for every refused attempt while sshd is still starting: we retry
logging.getLogger("paramiko").setLevel(logging.CRITICAL)


class CommandTimeout(InfraError):
    pass


@dataclass
class CmdResult:
    rc: int
    stdout: str
    stderr: str
    wall_s: float


class Guest:
    """An SSH session to a booted guest on 127.0.0.1:port.

    sock: connect over this socket-like object instead (e.g. a paramiko direct-tcpip channel
    through the SSH connection of the host that runs QEMU), or a callable returning a fresh one
    per connection attempt (a failed handshake uses a channel up)."""

    def __init__(self, port: int, key: Path, host_key_pub: str, user: str = "root",
                 sock=None):
        self.port, self.key, self.user, self.sock = port, key, user, sock
        kind, b64 = host_key_pub.split()[:2]
        self.host_key = paramiko.PKey.from_type_string(kind, base64.b64decode(b64))
        self.client: Optional[paramiko.SSHClient] = None

    def connect(self, timeout: float = 60.0) -> "Guest":
        """Retry until sshd answers or the deadline passes."""
        end = time.monotonic() + timeout
        last: Exception = InfraError("no attempt")
        while time.monotonic() < end:
            c = paramiko.SSHClient()
            c.get_host_keys().add(f"[127.0.0.1]:{self.port}", self.host_key.get_name(),
                                  self.host_key)
            c.set_missing_host_key_policy(paramiko.RejectPolicy())
            try:
                sock = self.sock() if callable(self.sock) else self.sock
                c.connect("127.0.0.1", port=self.port, username=self.user,
                          key_filename=str(self.key), look_for_keys=False, allow_agent=False,
                          timeout=5, banner_timeout=10, auth_timeout=10, sock=sock)
                self.client = c
                return self
            except paramiko.BadHostKeyException as e:
                c.close()
                raise InfraError(f"guest ssh host key mismatch on port {self.port}: {e}")
            except (paramiko.SSHException, OSError, EOFError) as e:
                last = e
                c.close()
                if self.sock is not None and not callable(self.sock):
                    break               # one socket, one attempt
                time.sleep(0.3)
        raise InfraError(f"guest ssh on 127.0.0.1:{self.port} not reachable after {timeout:.0f}s: {last}")

    def run(self, cmd, timeout: float = 60.0, check: bool = False) -> CmdResult:
        """Run a command (str for a shell line, or list quoted for you). Raises CommandTimeout."""
        if not isinstance(cmd, str):
            cmd = shlex.join(str(c) for c in cmd)
        if self.client is None:
            raise InfraError("guest not connected")
        t0 = time.monotonic()
        try:
            chan = self.client.get_transport().open_session(timeout=10)
            chan.exec_command(cmd)
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise InfraError(f"lost the guest's ssh connection: {e}")
        out, err = bytearray(), bytearray()
        end = t0 + timeout
        try:
            while True:
                if chan.recv_ready():
                    out += chan.recv(65536)
                elif chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                elif chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                elif chan.closed or chan.eof_received and chan.exit_status_ready():
                    break
                else:
                    left = end - time.monotonic()
                    if left <= 0:
                        chan.close()
                        raise CommandTimeout(f"guest command timed out after {timeout:.0f}s: {cmd[:120]}")
                    select.select([chan], [], [], min(left, 0.5))
                if len(out) > MAX_OUTPUT:
                    del out[MAX_OUTPUT:]
                if len(err) > MAX_OUTPUT:
                    del err[MAX_OUTPUT:]
            rc = chan.recv_exit_status()
        except (socket.error, EOFError, paramiko.SSHException) as e:
            raise InfraError(f"lost the guest's ssh connection: {e}")
        finally:
            chan.close()
        res = CmdResult(rc, out.decode(errors="replace"), err.decode(errors="replace"),
                        time.monotonic() - t0)
        if check and rc != 0:
            raise InfraError(f"guest command failed (exit {rc}): {cmd[:120]}: {res.stderr.strip()[-300:]}")
        return res

    def put(self, local: Path, remote: str, mode: Optional[int] = None) -> None:
        sftp = self.client.open_sftp()
        try:
            sftp.put(str(local), remote)
            if mode is not None:
                sftp.chmod(remote, mode)
        finally:
            sftp.close()

    def get(self, remote: str, local: Path) -> None:
        sftp = self.client.open_sftp()
        try:
            sftp.get(remote, str(local))
        finally:
            sftp.close()

    def close(self) -> None:
        if self.client:
            self.client.close()
            self.client = None
