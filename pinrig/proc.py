"""The one seam for host subprocesses (apt, dpkg-deb, debootstrap, mkfs, qemu-img, make…).

Unit tests replace `Runner` with a fake; everything else calls `run()` / `require()`.
No shell strings: argv lists only.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from pinrig.errors import InfraError, MissingTool

# One argv element: a string or a path (converted with str() before the process is started).
Arg = Union[str, "os.PathLike[str]"]

# host tool -> Debian package that provides it
TOOL_PACKAGES = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "apt-get": "apt",
    "apt-cache": "apt",
    "dpkg-deb": "dpkg",
    "debootstrap": "debootstrap",
    "mkfs.ext4": "e2fsprogs",
    "busybox": "busybox-static",
    "cpio": "cpio",
    "depmod": "kmod",
    "xz": "xz-utils",
    "zstd": "zstd",
    "gcc": "gcc",
    "make": "make",
    "ssh-keygen": "openssh-client",
    "ccache": "ccache",
    "flex": "flex",
    "bison": "bison",
    "bc": "bc",
    "perl": "perl",
    "patch": "patch",
    "git": "git",
    "tar": "tar",
    "cp": "coreutils",
    "nice": "coreutils",
    "ld": "binutils",
}


@dataclass
class Result:
    argv: list
    returncode: int
    stdout: str
    stderr: str


class Runner:
    """Runs argv lists. Replace `proc.RUNNER` in tests."""

    def run(self, argv: Sequence[str], *, cwd: Optional[Path] = None, env=None,
            timeout: Optional[float] = None, input: Optional[str] = None,
            capture: bool = True) -> Result:
        try:
            p = subprocess.run(
                [str(a) for a in argv], cwd=cwd, env=env, timeout=timeout, input=input,
                stdout=subprocess.PIPE if capture else None,
                stderr=subprocess.PIPE if capture else None,
                text=True, errors="replace")
        except subprocess.TimeoutExpired:
            raise InfraError(f"'{' '.join(map(str, argv[:3]))}…' timed out after {timeout}s")
        return Result(list(argv), p.returncode, p.stdout or "", p.stderr or "")


RUNNER = Runner()


def require(tool: str) -> str:
    """Path of a host tool, or MissingTool naming the Debian package to install."""
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if not path:
        raise MissingTool(tool, TOOL_PACKAGES.get(tool, tool))
    return path


def run(argv: Sequence[Arg], *, check: bool = True, what: Optional[str] = None, **kw) -> Result:
    """Run argv (argv[0] is checked with require()); raise InfraError with stderr tail on failure."""
    args = [str(a) for a in argv]
    require(args[0])
    res = RUNNER.run(args, **kw)
    if check and res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise InfraError(f"{what or args[0]} failed (exit {res.returncode}): {' | '.join(tail)}")
    return res


def live_progress() -> bool:
    """True when stderr is a terminal: steps may update one line in place."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


_LIVE = {"shown": False}


def live_line(text: str) -> None:
    """On a TTY: replace the current progress line with text ("" clears it). Else nothing:
    without a terminal each step is one line (progress()), never a stream of updates."""
    if not live_progress():
        return
    sys.stderr.write("\r\033[K" + (f"rig: {text}"[:200] if text else ""))
    sys.stderr.flush()
    _LIVE["shown"] = bool(text)


def progress(msg: str) -> None:
    """One line per long step (download, unpack, build, boot), on a TTY and in logs alike."""
    if _LIVE["shown"]:
        live_line("")
    print(f"rig: {msg}", file=sys.stderr, flush=True)


class watch_size:
    """While a download runs: on a TTY a line updated in place with MiB done of total."""

    def __init__(self, d: Path, total: int, what: str) -> None:
        self.d, self.total, self.what = d, total, what
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "watch_size":
        if live_progress():
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
            live_line("")

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                done = sum(p.stat().st_size for p in self.d.rglob("*") if p.is_file())
            except OSError:           # a file renamed under us: next tick
                continue
            mib = done / 2**20
            live_line(f"{self.what}: {mib:.0f} of {self.total / 2**20:.0f} MiB "
                      f"({100 * done / self.total:.0f}%)" if self.total
                      else f"{self.what}: {mib:.0f} MiB")
