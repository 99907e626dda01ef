"""A minimal QMP client (QEMU's JSON monitor) over the unix socket each guest's QEMU opens.

Used to save a booted guest's state (stop, migrate to a file) and to resume a restored one.
QEMU is our own process, but its answers still come from a program we do not control: lines
are size-capped and anything that is not a JSON object is skipped.
"""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Optional

from pinrig.errors import InfraError

MAX_LINE = 1 << 20


class QMPError(InfraError):
    pass


class QMP:
    def __init__(self, path: Path, timeout: float = 30.0, alive=None):
        """alive(): False once QEMU has exited (stop waiting for its socket at once)."""
        self.path = path
        self.sock: Optional[socket.socket] = None
        self.buf = b""
        end = time.monotonic() + timeout
        last: Exception = QMPError("no attempt")
        while time.monotonic() < end:           # QEMU creates the socket as it starts
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(timeout)
                s.connect(str(path))
                self.sock = s
                break
            except OSError as e:
                last = e
                s.close()
                if alive is not None and not alive():
                    raise QMPError(f"QMP socket {path}: QEMU exited")
                time.sleep(0.05)
        if self.sock is None:
            raise QMPError(f"QMP socket {path}: {last}")
        self._read()                             # the greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict:
        assert self.sock is not None
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise QMPError(f"QMP {self.path}: QEMU closed the monitor")
            self.buf += data
            if len(self.buf) > MAX_LINE:
                raise QMPError(f"QMP {self.path}: oversized reply")
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            msg = json.loads(line)
        except ValueError:
            return {}
        return msg if isinstance(msg, dict) else {}

    def execute(self, command: str, **arguments) -> object:
        """Run a command; its `return` value, or QMPError with QEMU's description."""
        assert self.sock is not None
        req: dict = {"execute": command}
        if arguments:
            req["arguments"] = arguments
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        while True:
            msg = self._read()
            if "return" in msg:
                return msg["return"]
            if "error" in msg:
                err = msg["error"] if isinstance(msg["error"], dict) else {}
                raise QMPError(f"QMP {command}: {err.get('desc', msg['error'])}")
            # events ({"event": …}) and noise are skipped

    def wait_status(self, want: tuple, timeout: float) -> str:
        """Poll query-status until the run state is one of want; → that state."""
        end = time.monotonic() + timeout
        status = "?"
        while time.monotonic() < end:
            st = self.execute("query-status")
            status = str(st.get("status")) if isinstance(st, dict) else "?"
            if status in want:
                return status
            time.sleep(0.05)
        raise QMPError(f"QMP {self.path}: still '{status}' after {timeout:.0f}s, wanted {want}")

    def wait_migration(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        status = "?"
        while time.monotonic() < end:
            st = self.execute("query-migrate")
            status = str(st.get("status")) if isinstance(st, dict) else "?"
            if status == "completed":
                return
            if status in ("failed", "cancelled"):
                raise QMPError(f"QMP {self.path}: migration {status}: "
                               f"{st.get('error-desc', '') if isinstance(st, dict) else ''}")
            time.sleep(0.05)
        raise QMPError(f"QMP {self.path}: migration still '{status}' after {timeout:.0f}s")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
