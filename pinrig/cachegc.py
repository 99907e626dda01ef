"""`rig gc`: what the cache holds, what is stale, and removing it (a dry run unless --delete).

Entries: Debian, source and --kernel (local) kernel artifacts (with their boot files), guest images, saved guest
states (snapshots/, see guest/snapshot.py), built
workload programs, kselftest builds, private apt states, remembered resolutions, and leftovers
of interrupted or hand boots (`pinrig-boot-*`, `pinrig-dry-*`). An entry is removable when it
is older than --older-than days (by its last modification), or, with --max-size, when the
least recently used entries must go to bring the cache under that size. An entry a kept results
manifest still names (its kernel artifact hash or guest image hash) is never removed unless
--include-referenced is given. Leftover boot directories are removed whatever their age once
no QEMU holds them (they are never part of a result).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Optional, Set

from pinrig import paths

DAY = 86400.0
LEFTOVER_MIN_AGE_S = 3600.0      # a boot directory younger than this may belong to a live boot


@dataclass
class Entry:
    path: Path
    kind: str                      # kernel, image, workloads, kselftest, apt, resolution, leftover
    size: int                      # bytes on disk (sparse files count what they use)
    mtime: float
    ident: str = ""                # artifact/image hash, when it has one
    referenced_by: List[str] = field(default_factory=list)

    @property
    def age_days(self) -> float:
        return max(0.0, (time.time() - self.mtime) / DAY)


@dataclass
class Plan:
    entries: List[Entry]
    remove: List[Entry]
    reasons: dict                  # path → why it goes (or why it stays)

    @property
    def total(self) -> int:
        return sum(e.size for e in self.entries)

    @property
    def freed(self) -> int:
        return sum(e.size for e in self.remove)


def disk_usage(path: Path) -> int:
    """Bytes a file or tree uses on disk (st_blocks: a 1 GiB sparse pmem file is not 1 GiB)."""
    try:
        if path.is_symlink() or path.is_file():
            return path.lstat().st_blocks * 512
    except OSError:
        return 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def last_used(path: Path) -> float:
    """The newest mtime of the entry or its direct children (cache hits touch nothing deeper)."""
    try:
        times = [path.stat().st_mtime]
        if path.is_dir():
            times += [c.stat().st_mtime for c in path.iterdir()]
        return max(times)
    except OSError:
        return 0.0


def _json(path: Path) -> dict:
    try:
        d = json.loads(path.read_text())
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def scan(cache: Optional[Path] = None) -> List[Entry]:
    cache = cache or paths.cache_dir()
    out: List[Entry] = []

    def add(p: Path, kind: str, ident: str = "") -> None:
        out.append(Entry(p, kind, disk_usage(p), last_used(p), ident))

    kdirs = [d for kind in ("debian", "source", "local") for d in sorted(cache.glob(f"kernels/{kind}/*"))]
    for d in kdirs:
        if d.is_dir() and not d.name.endswith(".tmp") and d.name != "specs":
            add(d, "kernel", str(_json(d / "artifact.json").get("hash") or ""))
    for d in sorted(cache.glob("images/*")):
        if d.is_dir():
            add(d, "image", str(_json(d / "image.json").get("hash") or ""))
    for d in sorted(cache.glob("snapshots/*")):
        if d.is_dir() and not d.name.endswith(".tmp"):
            add(d, "snapshot", d.name)
    for kind, pattern in (("workloads", "workloads/*"), ("kselftest", "kselftest/*"),
                          ("debug symbols", "debug/*"), ("headers", "headers/*"),
                          ("apt", "apt/*"), ("resolution", "kernels/resolved/*.json")):
        for p in sorted(cache.glob(pattern)):
            if not p.name.endswith(".lock") and (p.is_dir() or kind == "resolution"):
                add(p, kind)
    for p in sorted(cache.glob("pinrig-boot-*")) + sorted(
            Path(tempfile.gettempdir()).glob("pinrig-dry-*")):
        add(p, "leftover")
    for p in sorted(cache.glob("*/*.tmp")) + sorted(cache.glob("kernels/*/*.tmp")):
        add(p, "leftover")
    return out


def references(results_dirs: Iterable[Path]) -> dict:
    """ident (kernel artifact hash, guest image hash) → [results directories naming it]."""
    refs: dict = {}
    for base in results_dirs:
        if not base.is_dir():
            continue
        for mf in sorted(base.glob("**/manifest.json")):
            m = _json(mf)
            for section, field_name in (("kernel", "hash"), ("guest", "hash"),
                                        ("boot", "saved_state")):
                sec = m.get(section)
                h = sec.get(field_name) if isinstance(sec, dict) else None
                if isinstance(h, str) and h:
                    refs.setdefault(h, []).append(str(mf.parent))
    return refs


def busy_dirs() -> Set[str]:
    """Directories a running QEMU uses (its pmem/overlay paths are on its command line)."""
    busy: Set[str] = set()
    for p in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = p.read_bytes().split(b"\0")
        except OSError:
            continue
        if not words or b"qemu" not in words[0]:
            continue
        for w in words:
            for part in w.decode(errors="replace").replace(",", "=").split("="):
                if part.startswith("/"):
                    busy.add(part)
    return busy


def plan(entries: List[Entry], refs: dict, older_than_days: float = 30.0,
         max_size: Optional[int] = None, include_referenced: bool = False,
         busy: Optional[Set[str]] = None) -> Plan:
    busy = busy if busy is not None else set()
    reasons: dict = {}
    remove: List[Entry] = []
    keep: List[Entry] = []
    for e in entries:
        e.referenced_by = list(refs.get(e.ident, [])) if e.ident else []
        in_use = any(b.startswith(str(e.path) + "/") or b == str(e.path) for b in busy)
        if in_use:
            reasons[e.path] = "in use by a running QEMU"
            keep.append(e)
        elif e.kind == "leftover":
            if time.time() - e.mtime >= LEFTOVER_MIN_AGE_S:
                reasons[e.path] = "leftover of an interrupted or hand boot"
                remove.append(e)
            else:
                reasons[e.path] = "recent leftover (a boot may still be starting)"
                keep.append(e)
        elif e.referenced_by and not include_referenced:
            reasons[e.path] = f"named by {len(e.referenced_by)} kept result(s)"
            keep.append(e)
        elif e.age_days >= older_than_days:
            reasons[e.path] = f"unused for {e.age_days:.0f} days"
            remove.append(e)
        else:
            keep.append(e)
    if max_size is not None:
        left = sum(e.size for e in keep)
        for e in sorted(keep, key=lambda x: x.mtime):          # least recently used first
            if left <= max_size:
                break
            if (e.referenced_by and not include_referenced) or \
                    reasons.get(e.path) == "in use by a running QEMU":
                continue
            reasons[e.path] = "least recently used, over --max-size"
            remove.append(e)
            left -= e.size
    return Plan(entries, remove, reasons)


def execute(p: Plan) -> List[str]:
    """Remove what the plan says; a lock file beside an entry goes with it. → errors."""
    errors = []
    for e in p.remove:
        try:
            if e.path.is_dir() and not e.path.is_symlink():
                shutil.rmtree(e.path)
            else:
                e.path.unlink()
            lock = e.path.with_name(e.path.name + ".lock")
            if lock.exists():
                lock.unlink()
        except OSError as err:
            errors.append(f"{e.path}: {err.strerror or err}")
    return errors


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def format_plan(p: Plan, deleting: bool) -> str:
    lines = []
    for e in sorted(p.entries, key=lambda x: (x not in p.remove, x.kind, str(x.path))):
        act = ("delete" if deleting else "would delete") if e in p.remove else "keep"
        why = p.reasons.get(e.path, f"used {e.age_days:.0f} days ago")
        lines.append(f"{act:<12} {e.kind:<10} {human(e.size):>10}  {e.path}  ({why})")
    verb = "freed" if deleting else "would free"
    lines.append(f"cache {human(p.total)} in {len(p.entries)} entries; {verb} {human(p.freed)} "
                 f"({len(p.remove)} entries)" + ("" if deleting else "; --delete to do it"))
    return "\n".join(lines)
