"""The one SSH layer (paramiko), for guests and for pool hosts.

- Host keys are pinned: the caller names the key it expects (a guest's per-image key, a pool
  host's `host_key`), or asks for ~/.ssh/known_hosts. Never trust-on-first-use.
- One channel loop (`run`) with a deadline and an output cap: the other end may be a kernel
  under test, so it can hang, flood, or vanish.
- One error mapping: `ConnectError` (could not connect: says why), `ConnectionLost` (the
  connection went away), `CommandTimeout` (the deadline passed). All are InfraError.
"""
from __future__ import annotations

import base64
import logging
import select
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import paramiko

from pinrig.errors import InfraError

MAX_OUTPUT = 16 << 20         # bytes kept of a command's stdout and of its stderr
KEEPALIVE_S = 5

# paramiko logs a traceback for every refused attempt while sshd is still starting: we retry
logging.getLogger("paramiko").setLevel(logging.CRITICAL)


class ConnectError(InfraError):
    """Could not connect or authenticate; the message says why (host key, key, network)."""


class HostKeyMismatch(ConnectError):
    """The other end's host key is not the pinned one."""


class ConnectionLost(InfraError):
    """The connection went away (the peer died, the network broke)."""


class CommandTimeout(InfraError):
    """A command did not finish within its deadline (its channel was closed)."""


@dataclass
class CmdResult:
    rc: int
    stdout: str
    stderr: str
    wall_s: float


def parse_public_key(line: str) -> paramiko.PKey:
    """'ssh-ed25519 AAAA… [comment]' → a paramiko key; ValueError when it is not one."""
    parts = line.split()
    if len(parts) < 2:
        raise ValueError("expected '<type> <base64>' (one line of ssh-keyscan or a .pub file)")
    try:
        return paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1]))
    except Exception as e:  # paramiko raises several unrelated types for bad keys
        raise ValueError(f"not a usable public key: {e}") from None


def known_name(address: str, port: int) -> str:
    """How known_hosts names address:port."""
    return address if port == 22 else f"[{address}]:{port}"


def why(e: BaseException) -> str:
    """A short reason for a connection failure (paramiko's NoValidConnectionsError holds many)."""
    errors = getattr(e, "errors", None)
    if isinstance(errors, dict) and errors:
        return "; ".join(sorted({getattr(x, "strerror", None) or str(x) or type(x).__name__
                                 for x in errors.values()}))
    return str(e) or type(e).__name__


def connect(address: str, port: int, user: str, key: Path, host_key: Optional[paramiko.PKey],
            *, timeout: float = 10, sock: Any = None, what: str = "") -> paramiko.SSHClient:
    """One connection attempt with the host key pinned (host_key), or checked against
    ~/.ssh/known_hosts when host_key is None. Raises ConnectError saying why."""
    what = what or f"{user}@{known_name(address, port)}"
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    if host_key is not None:
        client.get_host_keys().add(known_name(address, port), host_key.get_name(), host_key)
    else:
        try:
            client.load_system_host_keys()
        except (OSError, paramiko.SSHException):
            pass
    try:
        client.connect(address, port=port, username=user, key_filename=str(key),
                       look_for_keys=False, allow_agent=False, timeout=timeout,
                       banner_timeout=max(timeout, 10), auth_timeout=max(timeout, 10), sock=sock)
    except paramiko.BadHostKeyException:
        client.close()
        raise HostKeyMismatch(f"{what}: host key does not match the "
                              + ("pinned key" if host_key is not None else "one in ~/.ssh/known_hosts"))
    except paramiko.AuthenticationException as e:
        client.close()
        raise ConnectError(f"{what}: authentication with key {key} failed: {e}")
    except paramiko.SSHException as e:
        client.close()
        if "known_hosts" in str(e) or "not found in known_hosts" in str(e):
            raise ConnectError(f"{what}: host key unknown (pin it, or add it to ~/.ssh/known_hosts)")
        raise ConnectError(f"{what}: ssh: {why(e)}")
    except (OSError, EOFError) as e:
        client.close()
        raise ConnectError(f"{what}: cannot connect: {why(e)}")
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(KEEPALIVE_S)
    return client


EOF_GRACE_S = 1.0     # how long output may trail the exit status when no EOF comes


def run(client: Optional[paramiko.SSHClient], cmd: str, timeout: float = 60.0,
        max_output: int = MAX_OUTPUT) -> CmdResult:
    """Run a shell line over one channel; stdout/stderr capped at max_output bytes each.

    Raises ConnectionLost when the connection is (or goes) away, CommandTimeout after timeout
    seconds (the channel is closed; what the command does then is the peer's business)."""
    transport = client.get_transport() if client is not None else None
    if transport is None or not transport.is_active():
        raise ConnectionLost("ssh connection lost")
    t0 = time.monotonic()
    try:
        chan = transport.open_session(timeout=15)
        chan.exec_command(cmd)
    except (paramiko.SSHException, OSError, EOFError) as e:
        raise ConnectionLost(f"ssh connection lost: {why(e)}")
    out, err = bytearray(), bytearray()
    end = t0 + timeout
    exited_at = 0.0
    try:
        while True:
            if chan.recv_ready():
                out += chan.recv(65536)
                del out[max_output:]
            elif chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
                del err[max_output:]
            elif chan.exit_status_ready() and (chan.eof_received or chan.closed or (
                    exited_at and time.monotonic() - exited_at > EOF_GRACE_S)):
                # the exit status can come before the last of the output (seen: a guest's
                # 18 KB JSON line cut short): done at EOF, or a grace period after the status
                # for a peer that never sends EOF
                break
            elif chan.closed or not transport.is_active():
                raise ConnectionLost("ssh connection lost during a command")
            else:
                if not exited_at and chan.exit_status_ready():
                    exited_at = time.monotonic()
                left = end - time.monotonic()
                if left <= 0:
                    raise CommandTimeout(f"command timed out after {timeout:.0f}s: {cmd[:120]}")
                select.select([chan], [], [], min(left, 0.5))
        rc = chan.recv_exit_status()
    except (socket.error, EOFError, paramiko.SSHException) as e:
        raise ConnectionLost(f"ssh connection lost: {why(e)}")
    finally:
        chan.close()
    return CmdResult(rc, out.decode(errors="replace"), err.decode(errors="replace"),
                     time.monotonic() - t0)
