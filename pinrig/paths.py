"""Where things live: the repo's own folders and the cache outside the repo."""
from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path
from typing import Union

from pinrig.errors import InfraError

REPO = Path(__file__).resolve().parent.parent
KERNELS_DIR = REPO / "kernels"
GUESTS_DIR = REPO / "guests"
CONFIGS_DIR = REPO / "configs"
WORKLOADS_DIR = REPO / "workloads"
RESULTS_DIR = REPO / "results"


def cache_dir() -> Path:
    """$PINRIG_CACHE, else $XDG_CACHE_HOME/pinrig, else ~/.cache/pinrig (created on demand)."""
    env = os.environ.get("PINRIG_CACHE")
    if env:
        base = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg) / "pinrig" if xdg else Path.home() / ".cache" / "pinrig"
    base.mkdir(parents=True, exist_ok=True)
    return base


@contextlib.contextmanager
def cache_lock(target: Path):
    """Exclusive lock for building one cache entry: two rig processes (or threads) that need
    the same image/kernel wait for each other instead of writing the same .tmp directory."""
    lock = target.with_name(target.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def atomic_write(path: Path, data: Union[str, bytes]) -> None:
    """Write path so that a reader sees the old file or the whole new one, never a part.

    The data goes to a temporary file of this writer's own (two writers never share one), is
    fsync'ed, renamed into place, and the directory is fsync'ed; on any error the temporary
    file is removed and InfraError says which file could not be written and why."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    except OSError as e:
        raise InfraError(f"cannot write {path}: {e.strerror or e}")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise InfraError(f"cannot write {path}: {e.strerror or e}")
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass            # some filesystems cannot fsync a directory; the rename is done
