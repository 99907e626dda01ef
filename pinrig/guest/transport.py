"""Stage `transport`: commands and files in and out of the guest over real SSH (paramiko).

The guest is untrusted: its host key must be the one generated for the image (no TOFU), output is
capped, every command has a timeout.
"""
from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Optional

import paramiko

from pinrig import ssh
from pinrig.errors import InfraError
from pinrig.ssh import CmdResult, CommandTimeout

__all__ = ["CmdResult", "CommandTimeout", "Guest"]


class Guest:
    """An SSH session to a booted guest on 127.0.0.1:port.

    sock: connect over this socket-like object instead (e.g. a paramiko direct-tcpip channel
    through the SSH connection of the host that runs QEMU), or a callable returning a fresh one
    per connection attempt (a failed handshake uses a channel up)."""

    def __init__(self, port: int, key: Path, host_key_pub: str, user: str = "root",
                 sock=None):
        self.port, self.key, self.user, self.sock = port, key, user, sock
        self.host_key = ssh.parse_public_key(host_key_pub)
        self.client: Optional[paramiko.SSHClient] = None
        self.attempts = 0                     # connection attempts connect() made (rig bench)

    def connect(self, timeout: float = 60.0) -> "Guest":
        """Retry until sshd answers or the deadline passes."""
        end = time.monotonic() + timeout
        last: Exception = InfraError("no attempt")
        while time.monotonic() < end:
            self.attempts += 1
            try:
                sock = self.sock() if callable(self.sock) else self.sock
                self.client = ssh.connect("127.0.0.1", self.port, self.user, self.key,
                                          self.host_key, timeout=5, sock=sock,
                                          what=f"guest ssh on port {self.port}")
                return self
            except ssh.HostKeyMismatch as e:
                raise InfraError(f"guest ssh host key mismatch on port {self.port}: {e}")
            except (ssh.ConnectError, paramiko.SSHException, OSError, EOFError) as e:
                last = e
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
        try:
            res = ssh.run(self.client, cmd, timeout=timeout)
        except ssh.CommandTimeout:
            raise CommandTimeout(f"guest command timed out after {timeout:.0f}s: {cmd[:120]}")
        except ssh.ConnectionLost as e:
            raise InfraError(f"lost the guest's ssh connection: {e}")
        if check and res.rc != 0:
            raise InfraError(f"guest command failed (exit {res.rc}): {cmd[:120]}: {res.stderr.strip()[-300:]}")
        return res

    def _sftp(self) -> paramiko.SFTPClient:
        if self.client is None:
            raise InfraError("guest not connected")
        return self.client.open_sftp()

    def put(self, local: Path, remote: str, mode: Optional[int] = None) -> None:
        sftp = self._sftp()
        try:
            sftp.put(str(local), remote)
            if mode is not None:
                sftp.chmod(remote, mode)
        finally:
            sftp.close()

    def get(self, remote: str, local: Path) -> None:
        sftp = self._sftp()
        try:
            sftp.get(remote, str(local))
        finally:
            sftp.close()

    def close(self) -> None:
        if self.client:
            self.client.close()
            self.client = None
