"""SSH connections to pool hosts (through pinrig.ssh): pinned host keys, HostLost when a host is gone."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import paramiko

from pinrig import ssh
from pinrig.errors import InfraError
from pinrig.fleet.pool import (
    Host,
)

CONNECT_TIMEOUT = 10
KEEPALIVE_S = 5


class HostLost(InfraError):
    """A pool host dropped out (connection gone, unusable, shipping failed)."""


def connect(host: Host, timeout: float = CONNECT_TIMEOUT) -> paramiko.SSHClient:
    """An SSH connection to the host, its host key pinned (pool `host_key`) or known
    (~/.ssh/known_hosts); never trust-on-first-use. Raises HostLost saying why."""
    if not Path(host.key).is_file():
        raise HostLost(f"host {host.name} ({host.target}): key {host.key} not found")
    pinned = None
    if host.host_key:
        try:
            pinned = ssh.parse_public_key(host.host_key)
        except ValueError as e:
            raise HostLost(f"host {host.name}: host_key unusable: {e}")
    try:
        return ssh.connect(host.address, host.port, host.user, Path(host.key), pinned,
                           timeout=timeout, what=f"host {host.name} ({host.target})")
    except ssh.HostKeyMismatch:
        raise HostLost(f"host {host.name} ({host.target}): host key does not match "
                       + ("host_key in the pool" if host.host_key else "~/.ssh/known_hosts"))
    except ssh.ConnectError as e:
        msg = str(e)
        if "host key unknown" in msg:
            raise HostLost(f"host {host.name} ({host.target}): host key unknown: add host_key: "
                           "to the pool (a line of ssh-keyscan) or to ~/.ssh/known_hosts")
        raise HostLost(msg)


def exec_command(client: Optional[paramiko.SSHClient], cmd: str, timeout: float = 60.0) -> tuple:
    """(rc, stdout, stderr) of a shell line on the host. Raises HostLost when the connection is
    gone, CommandTimeout (an InfraError) on timeout."""
    try:
        r = ssh.run(client, cmd, timeout=timeout)
    except ssh.ConnectionLost as e:
        raise HostLost(str(e))
    except ssh.CommandTimeout:
        raise ssh.CommandTimeout(f"host command timed out after {timeout:.0f}s: {cmd[:100]}")
    return r.rc, r.stdout, r.stderr
