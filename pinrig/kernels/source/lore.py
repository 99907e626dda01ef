"""`series: lore:<message-id>`: a thread from the list archive, fetched with b4, kept in the cache.

Where the thread comes from, in order:
  1. the cache (unless refresh): `series/lore/ids/<id>.json` names a content-addressed blob
     `series/lore/blobs/<sha256>.mbox` (checked against its hash when read);
  2. `b4 mbox` (needs network to lore.kernel.org): it writes into a temporary directory; the file
     is kept only when b4 succeeded and the mbox holds the asked-for message, then moved into the
     cache whole — a half-fetched thread never lands there;
  3. a local mbox the spec names (`series_mbox:`), when it holds the message (copied into the cache
     so the next run needs neither);
  4. else one line saying why b4 failed and that there was nothing to fall back on.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pinrig import paths, proc
from pinrig.errors import InfraError, UserError
from pinrig.kernels.source import mailthread

MSGID_RE = re.compile(r"[^\s<>/@]+@[^\s<>/@]+")
B4_TIMEOUT_S = 300


@dataclass(frozen=True)
class Thread:
    msgid: str
    path: Path                # the cached mbox
    sha256: str
    via: str                  # "cache" | "b4" | "local mbox PATH"
    note: str = ""            # why a fallback was taken


def clean_msgid(text: str) -> str:
    """'<x@y>' or 'x@y' or a lore URL 'https://lore.kernel.org/all/x@y/' → 'x@y' (else UserError)."""
    t = text.strip()
    m = re.match(r"^https?://lore\.kernel\.org/(?:[^/]+/)?([^/]+)/?", t)
    if m:
        t = m.group(1).replace("%40", "@")
    t = t.strip("<>")
    if not MSGID_RE.fullmatch(t):
        raise UserError(f"lore:{text}: not a Message-ID (want local-part@domain)")
    return t


def cache_root() -> Path:
    return paths.cache_dir() / "series" / "lore"


def _index(msgid: str) -> Path:
    return cache_root() / "ids" / f"{hashlib.sha256(msgid.encode()).hexdigest()[:32]}.json"


def b4_argv() -> list:
    """The b4 next to this Python (the rig's venv) or on PATH."""
    here = Path(sys.executable).parent / "b4"
    if here.is_file():
        return [str(here)]
    return ["b4"]


def holds(data: bytes, msgid: str) -> bool:
    """Does this mbox contain the message (and at least one mail)?"""
    mails = mailthread.read_mbox(data, "thread", lambda _b: False)
    return any(m.msgid == msgid for m in mails)


def _store(data: bytes, msgid: str, via: str) -> Thread:
    sha = hashlib.sha256(data).hexdigest()
    blob = cache_root() / "blobs" / f"{sha}.mbox"
    try:
        same = hashlib.sha256(blob.read_bytes()).hexdigest() == sha
    except OSError:
        same = False
    if not same:                      # absent or damaged: (re)write it whole
        paths.atomic_write(blob, data)
    paths.atomic_write(_index(msgid), json.dumps(
        {"msgid": msgid, "blob": blob.name, "sha256": sha, "via": via,
         "stored": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=1))
    return Thread(msgid, blob, sha, via)


def cached(msgid: str) -> Optional[Thread]:
    try:
        meta = json.loads(_index(msgid).read_text())
        blob = cache_root() / "blobs" / str(meta["blob"])
        data = blob.read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    sha = hashlib.sha256(data).hexdigest()
    if sha != meta.get("sha256"):
        return None                   # damaged: as if absent (a fetch or the local mbox replaces it)
    return Thread(msgid, blob, sha, f"cache ({meta.get('via', '?')}, {meta.get('stored', '?')})")


def short_reason(why: str) -> str:
    """b4's (requests') one-line error, shortened to what a person needs to know."""
    host = re.search(r"host='([^']+)'", why)
    where = host.group(1) if host else "lore.kernel.org"
    if re.search(r"NameResolution|Failed to resolve|Name or service not known", why):
        return f"{where} does not resolve (no network?)"
    if re.search(r"Connection refused|timed out|Max retries exceeded|Network is unreachable", why):
        return f"cannot reach {where}"
    return why if len(why) <= 200 else why[:199] + "…"


def fetch_b4(msgid: str) -> tuple:
    """(mbox bytes, "") from `b4 mbox`, or (None, why it failed)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="b4-", dir=root))
    try:
        argv = b4_argv() + ["-q", "mbox", "-n", "thread.mbox", "-o", str(tmp), msgid]
        try:
            res = proc.run(argv, check=False, timeout=B4_TIMEOUT_S)
        except InfraError as e:           # b4 missing, or timed out
            return None, str(e)
        out = tmp / "thread.mbox"
        if res.returncode != 0:
            lines = [ln for ln in (res.stderr + res.stdout).splitlines() if ln.strip()]
            why = lines[-1].strip() if lines else f"exit {res.returncode}"
            return None, f"b4 mbox failed (exit {res.returncode}): {short_reason(why)}"
        if not out.is_file():
            return None, "b4 mbox wrote no thread.mbox"
        data = out.read_bytes()
        if not holds(data, msgid):
            return None, f"b4 mbox gave a thread without <{msgid}> (incomplete?)"
        return data, ""
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def thread(msgid: str, local_mbox: Optional[Path] = None, refresh: bool = False) -> Thread:
    msgid = clean_msgid(msgid)
    have = cached(msgid)
    if have is not None and not refresh:
        return have
    data, why = fetch_b4(msgid)
    if data is not None:
        return _store(data, msgid, "b4 mbox (lore.kernel.org)")
    if local_mbox is not None:
        try:
            local = Path(local_mbox).read_bytes()
        except OSError as e:
            raise UserError(f"series_mbox: {local_mbox}: {e.strerror or e}")
        if not holds(local, msgid):
            raise UserError(f"series_mbox: {local_mbox} does not hold <{msgid}> "
                            f"(and {why})")
        t = _store(local, msgid, f"local mbox {local_mbox}")
        return Thread(t.msgid, t.path, t.sha256, t.via, f"not fetched: {why}")
    if have is not None:              # --refresh without network: the cached copy, said so
        return Thread(have.msgid, have.path, have.sha256, have.via, f"not refreshed: {why}")
    raise UserError(f"series lore:{msgid}: cannot fetch the thread ({why}); no cached copy and "
                    "no series_mbox: to use instead")
