"""Guest workload programs: built on the host from workloads/src, cached by source hash.

The guest is Debian bookworm like the host the README targets, so binaries built here against
libibverbs/liburing run there unchanged.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from pinrig import paths, proc
from pinrig.config import file_hash
from pinrig.errors import MissingTool

HEADERS = {"/usr/include/infiniband/verbs.h": "libibverbs-dev",
           "/usr/include/liburing.h": "liburing-dev"}


def source_hash() -> str:
    src = paths.WORKLOADS_DIR
    parts = []
    for p in sorted(list(src.glob("src/*")) + [src / "Makefile"]):
        if p.is_file():
            parts += [p.name.encode(), p.read_bytes()]
    return file_hash(*parts)[:16]


def build() -> Path:
    """Directory holding the built workload binaries (built once per source hash)."""
    out = paths.cache_dir() / "workloads" / source_hash()
    if (out / ".built").exists():
        return out
    with paths.cache_lock(out):
        if (out / ".built").exists():
            return out
        return _build(out)


def _build(out: Path) -> Path:
    proc.require("gcc")
    proc.require("make")
    for header, pkg in HEADERS.items():
        if not Path(header).exists():
            raise MissingTool(header, pkg)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    proc.progress("building guest workload programs")
    proc.run(["make", "-s", "-C", paths.WORKLOADS_DIR, f"OUT={tmp}"], what="make -C workloads")
    (tmp / ".built").write_text("ok\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def binaries(d: Path) -> list:
    return sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.suffix not in (".o", ".d"))
