"""Where things live: the repo's own folders and the cache outside the repo."""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

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
