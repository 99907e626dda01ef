"""Shipping kernels and images to pool hosts: content-addressed objects, sparse uploads, and their gc."""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import threading
import uuid
from pathlib import Path

from pinrig import paths
from pinrig.errors import InfraError
from pinrig.fleet.connection import connect, exec_command
from pinrig.fleet.pool import (
    Host,
)

SHIP_CHUNK = 1 << 20
_ZERO = bytes(SHIP_CHUNK)


def data_chunks(path: Path):
    """(offset, bytes) of every SHIP_CHUNK-aligned chunk of the file that is not all zeros,
    reading only the file's data extents (holes are never read). Deterministic in the content:
    the same bytes give the same chunks whatever the allocation."""
    with open(path, "rb") as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        pos, last = 0, -1
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break                       # ENXIO: no data after pos
            end = os.lseek(fd, start, os.SEEK_HOLE)
            for idx in range(start // SHIP_CHUNK, (end - 1) // SHIP_CHUNK + 1):
                if idx <= last:
                    continue
                last = idx
                off = idx * SHIP_CHUNK
                f.seek(off)
                buf = f.read(min(SHIP_CHUNK, size - off))
                if buf != _ZERO[:len(buf)]:
                    yield off, buf
            pos = max(end, (last + 1) * SHIP_CHUNK)


def content_hash(path: Path) -> str:
    """sha256 over the size and the non-zero chunks with their offsets (sparse-aware)."""
    h = hashlib.sha256()
    h.update(os.stat(path).st_size.to_bytes(8, "little"))
    for off, buf in data_chunks(path):
        h.update(off.to_bytes(8, "little"))
        h.update(buf)
    return h.hexdigest()


_HASH_LOCK = threading.Lock()


def cached_hash(path: Path) -> str:
    """content_hash, remembered per (path, size, mtime, inode) in the cache."""
    st = os.stat(path)
    key = str(Path(path).resolve())
    stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
    db_path = paths.cache_dir() / "content-hashes.json"
    with _HASH_LOCK:
        try:
            db = json.loads(db_path.read_text())
        except (OSError, ValueError):
            db = {}
        ent = db.get(key)
        if ent and ent.get("stamp") == stamp:
            return ent["hash"]
        h = content_hash(path)
        db[key] = {"stamp": stamp, "hash": h}
        tmp = db_path.with_name(db_path.name + f".{os.getpid()}.new")
        tmp.write_text(json.dumps(db, indent=1))
        os.replace(tmp, db_path)
        return h


def object_path(workdir: str, digest: str, name: str) -> str:
    return f"{workdir}/objects/{digest[:32]}/{name}"


GC_SCRIPT = r"""W={workdir}; N={days}; DEL={delete}
for d in "$W"/objects/* "$W"/runs/*; do
  [ -d "$d" ] || continue
  if [ -n "$(find "$d" -maxdepth 0 -mtime +"$N")" ]; then
    echo "$(du -sk "$d" | cut -f1) $d"
    [ "$DEL" = 1 ] && rm -rf -- "$d"
  fi
done
true
"""


def gc_host(host: Host, older_than_days: int, delete: bool) -> list:
    """Shipped objects and run directories on a pool host unused for older_than_days:
    [(KiB, path)], removed when delete. Raises HostLost when the host cannot be reached."""
    conn = connect(host)
    try:
        rc, out, err = exec_command(conn, GC_SCRIPT.format(
            workdir=shlex.quote(host.workdir), days=int(older_than_days), delete=int(delete)),
            timeout=600)
    finally:
        conn.close()
    if rc != 0:
        raise InfraError(f"host {host.name}: gc failed: {err.strip()[-200:]}")
    found = []
    for line in out.splitlines():
        kb, _, path = line.partition(" ")
        if kb.isdigit() and path:
            found.append((int(kb), path))
    return found


def upload_sparse(sftp, local: Path, remote: str) -> int:
    """Write local to remote (tmp + rename), holes and zero chunks left as holes. → bytes sent."""
    size = os.stat(local).st_size
    tmp = f"{remote}.part-{uuid.uuid4().hex[:8]}"
    sent = 0
    try:
        with sftp.open(tmp, "wb") as rf:
            rf.set_pipelined(True)
            for off, buf in data_chunks(local):
                rf.seek(off)
                rf.write(buf)
                sent += len(buf)
            rf.truncate(size)
        sftp.chmod(tmp, 0o400)      # the image holds the guest's private sshd host key
        sftp.posix_rename(tmp, remote)
    except BaseException:
        try:
            sftp.remove(tmp)
        except Exception:
            pass
        raise
    return sent
