"""The crash class (issue 15 item 4): what the crash-class workload saw, as evidence.

The guest program (workloads/src/crash-class.c) pins a clean MAP_SHARED file mapping, applies one
trigger (memcg reclaim, MADV_PAGEOUT, compaction, move_pages, drop_caches, truncate, hole punch),
writes through the pin, unpins with dirtying, fsyncs and reads the file back. Its JSON carries a
``crash_class`` object: the trigger's own results, the PFN of every pinned page and, per stage,
the /proc/kpageflags and /proc/kpagecount of those PFNs. This module turns that into

* :func:`summary` -- one line for the verdict's reason (what the trigger did to the pinned pages,
  what was read back);
* :func:`evidence_text` -- ``pageflags.txt`` in the case directory: per-stage flag counts, the
  pages whose flags changed, the trigger's return codes, move_pages statuses, vmstat deltas.

The guest is untrusted: anything of the wrong type or out of range is dropped, never trusted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

# the per-stage counts the program reports, in the order they are shown
COUNT_KEYS = ("private", "dirty", "lru", "active", "mmap", "uptodate", "writeback", "referenced",
              "reclaim", "unevictable", "mlocked", "mappedtodisk", "buddy", "compound_head",
              "compound_tail", "nopage", "readable", "present", "pfn_changed", "mapcount_sum")
# /proc/kpageflags bits by name (include/uapi/linux/kernel-page-flags.h + the kernel-only ones)
KPF_BITS = {0: "LOCKED", 1: "ERROR", 2: "REFERENCED", 3: "UPTODATE", 4: "DIRTY", 5: "LRU",
            6: "ACTIVE", 7: "SLAB", 8: "WRITEBACK", 9: "RECLAIM", 10: "BUDDY", 11: "MMAP",
            12: "ANON", 13: "SWAPCACHE", 14: "SWAPBACKED", 15: "COMPOUND_HEAD",
            16: "COMPOUND_TAIL", 17: "HUGE", 18: "UNEVICTABLE", 19: "HWPOISON", 20: "NOPAGE",
            21: "KSM", 22: "THP", 23: "OFFLINE", 24: "ZERO_PAGE", 25: "IDLE", 26: "PGTABLE",
            32: "RESERVED", 33: "MLOCKED", 34: "MAPPEDTODISK", 35: "PRIVATE", 36: "PRIVATE_2",
            37: "OWNER_PRIVATE", 38: "ARCH", 39: "UNCACHED", 40: "SOFTDIRTY", 41: "ARCH_2"}
READBACK_KEYS = ("device", "old", "zero", "other")
MAX_PAGES = 1 << 18          # 1 GiB of 4 KiB pages: the program's --size limit


def _int(v: object, lo: int = 0) -> Optional[int]:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= lo else None


def _str(v: object, limit: int = 400) -> Optional[str]:
    return v[:limit] if isinstance(v, str) else None


def _hex(v: object) -> Optional[int]:
    if not isinstance(v, str) or not v.startswith("0x") or len(v) > 18:
        return None
    try:
        return int(v, 16)
    except ValueError:
        return None


def flag_names(flags: int) -> list:
    """The kpageflags bit names set in flags (unknown bits as 'bitN')."""
    return [KPF_BITS.get(b, f"bit{b}") for b in range(64) if flags >> b & 1]


@dataclass(frozen=True)
class Stage:
    """The pinned pages at one point of the case (kpageflags of the PFNs taken at the pin)."""
    name: str
    mapped: bool
    counts: dict                      # COUNT_KEYS → pages (or the mapcount sum)
    flags: tuple = ()                 # per page, the raw kpageflags (None: unreadable)


@dataclass(frozen=True)
class Evidence:
    trigger: str
    ran: bool
    note: str
    method: str
    rounds: tuple                     # each round's return ("0" or an errno name)
    unmapped: bool                    # the mapping was unmapped before the trigger
    expect: str                       # "device" or "zero": what the file must hold afterwards
    pages: int
    stages: tuple = ()
    readback: dict = field(default_factory=dict)   # "cache"/"medium" → {device, old, zero, other}
    readback_errors: dict = field(default_factory=dict)
    migrate: Optional[dict] = None    # {"status": {name: n}, "node_after": {...}, "from", "to", "ret"}
    vmstat: dict = field(default_factory=dict)
    fsync: Optional[str] = None
    rdma_status: Optional[str] = None
    warn_once_cleared: Optional[bool] = None
    memory_current: tuple = ()        # (before the first round, after the last), bytes

    def stage(self, name: str) -> Optional[Stage]:
        for s in self.stages:
            if s.name == name:
                return s
        return None


def _counts(d: object) -> dict:
    if not isinstance(d, dict):
        return {}
    return {k: n for k in COUNT_KEYS if (n := _int(d.get(k))) is not None}


def _stage(d: object, pages: int) -> Optional[Stage]:
    if not isinstance(d, dict) or not isinstance(d.get("stage"), str):
        return None
    flags = d.get("flags")
    per_page: tuple = ()
    if isinstance(flags, list) and len(flags) == pages:
        per_page = tuple(_hex(f) for f in flags)
    return Stage(name=d["stage"][:40], mapped=d.get("mapped") is True, counts=_counts(d.get("counts")),
                 flags=per_page)


def _hist(d: object) -> dict:
    if not isinstance(d, dict):
        return {}
    return {str(k)[:24]: n for k, v in list(d.items())[:16] if (n := _int(v)) is not None}


def parse(result: object) -> Optional[Evidence]:
    """The crash-class evidence in a workload's JSON, or None when it carries none."""
    if not isinstance(result, dict) or not isinstance(result.get("crash_class"), dict):
        return None
    c = result["crash_class"]
    trigger = _str(c.get("trigger"), 40)
    if not trigger:
        return None
    size, block = _int(result.get("size")), _int(result.get("block_size"), 1)
    pages = size // block if size is not None and block else 0
    pages = pages if pages <= MAX_PAGES else 0
    if not pages and isinstance(c.get("pfns"), list) and len(c["pfns"]) <= MAX_PAGES:
        pages = len(c["pfns"])
    snaps = c.get("snapshots") if isinstance(c.get("snapshots"), list) else []
    stages = tuple(s for s in (_stage(d, pages) for d in snaps[:16]) if s is not None)
    rounds, mem = [], []
    for r in c.get("round_results") if isinstance(c.get("round_results"), list) else []:
        if isinstance(r, dict):
            rounds.append(_str(r.get("ret"), 24) or "?")
            mem.append((_int(r.get("memory_current_before")), _int(r.get("memory_current_after"))))
    readback, errors = {}, {}
    for view in ("cache", "medium"):
        rb = c.get(f"readback_{view}")
        if isinstance(rb, dict):
            counts = {k: n for k in READBACK_KEYS if (n := _int(rb.get(k))) is not None}
            if len(counts) == len(READBACK_KEYS):
                readback[view] = counts
            if isinstance(rb.get("errno"), str):
                errors[view] = rb["errno"][:24]
    migrate = None
    m = c.get("migrate")
    if isinstance(m, dict):
        migrate = {"status": _hist(m.get("status")), "node_after": _hist(m.get("node_after")),
                   "from": _int(m.get("from"), -1), "to": _int(m.get("to"), -1),
                   "ret": _int(m.get("ret"), -1), "errno": _str(m.get("errno"), 24)}
    vm = c.get("vmstat_delta")
    vmstat = {str(k)[:40]: v for k, v in list(vm.items())[:40]
              if isinstance(v, int) and not isinstance(v, bool)} if isinstance(vm, dict) else {}
    wo = c.get("warn_once_cleared")
    return Evidence(
        trigger=trigger, ran=c.get("trigger_ran") is True, note=_str(c.get("trigger_note")) or "",
        method=_str(c.get("method"), 64) or "", rounds=tuple(rounds),
        unmapped=c.get("unmapped_before_trigger") is True,
        expect="zero" if c.get("expect") == "zero" else "device", pages=pages, stages=stages,
        readback=readback, readback_errors=errors, migrate=migrate, vmstat=vmstat,
        fsync=_str(c.get("fsync"), 24), rdma_status=_str(c.get("rdma_status"), 40),
        warn_once_cleared=wo if isinstance(wo, bool) else None,
        memory_current=(mem[0][0], mem[-1][1]) if mem and None not in (mem[0][0], mem[-1][1])
        else ())


def _change(ev: Evidence, key: str, a: str, b: str) -> Optional[str]:
    sa, sb = ev.stage(a), ev.stage(b)
    if sa is None or sb is None or key not in sa.counts or key not in sb.counts:
        return None
    return f"{sa.counts[key]}->{sb.counts[key]}"


def summary(ev: Evidence) -> str:
    """One line: the trigger, what it did to the pinned pages, what was read back."""
    parts = [f"trigger {ev.trigger}: {ev.note}" if ev.note else f"trigger {ev.trigger}"]
    if ev.migrate and ev.migrate["status"]:
        parts.append("move_pages status " + ", ".join(f"{k} {n}" for k, n in
                                                      ev.migrate["status"].items()))
    flags = []
    for key in ("private", "dirty", "mmap", "lru"):
        ch = _change(ev, key, "registered", "after-trigger")
        if ch:
            flags.append(f"{key.upper()} {ch}")
    moved = ev.stage("after-trigger")
    if moved is not None and moved.mapped and "pfn_changed" in moved.counts:
        flags.append(f"PFN changed {moved.counts['pfn_changed']}")
    first = ev.stage("registered")
    if first is not None and first.counts.get("readable") == 0:
        parts.append("no /proc/kpageflags evidence (unreadable)")
    elif flags:
        parts.append(f"pinned pages over the trigger (of {ev.pages}): " + ", ".join(flags))
    dirty = _change(ev, "dirty", "after-write", "after-dereg")
    priv = ev.stage("after-dereg")
    if dirty and not (first is not None and first.counts.get("readable") == 0):
        text = f"unpin: DIRTY {dirty}"
        if priv is not None and "private" in priv.counts:
            text += f" (PRIVATE {priv.counts['private']})"
        parts.append(text)
    if ev.fsync not in (None, "0"):
        parts.append(f"fsync {ev.fsync}")
    for view in ("medium", "cache"):
        rb = ev.readback.get(view)
        if rb:
            seen = ", ".join(f"{k} {rb[k]}" for k in READBACK_KEYS if rb[k])
            parts.append(f"{view}: {seen or 'nothing'}")
        elif view in ev.readback_errors:
            parts.append(f"{view}: read failed {ev.readback_errors[view]}")
    return "; ".join(parts)


def trigger_problem(ev: Evidence) -> Optional[str]:
    """Why the case says nothing about its trigger (it did not run), or None."""
    if not ev.ran:
        return f"the trigger {ev.trigger} did not happen: {ev.note or 'no note'}"
    return None


def _ranges(idx: list) -> str:
    """[0, 1, 2, 5] -> '0-2,5'"""
    out, start = [], idx[0]
    for a, b in zip(idx, idx[1:] + [None]):
        if b != a + 1:
            out.append(f"{start}" if start == a else f"{start}-{a}")
            start = b
    text = ",".join(out)
    return text if len(text) < 200 else text[:200] + "..."


def evidence_text(ev: Evidence) -> str:
    """pageflags.txt: the evidence of one case, for a human."""
    out = [f"trigger: {ev.trigger} ({ev.method or 'n/a'}); ran: {ev.ran}",
           f"note: {ev.note}" if ev.note else "note: -",
           f"rounds: {' '.join(ev.rounds) or '-'}"
           + (f"; memory.current {ev.memory_current[0]} -> {ev.memory_current[1]} bytes"
              if ev.memory_current else ""),
           f"mapping unmapped before the trigger: {ev.unmapped}",
           f"WARN_ON_ONCE state cleared before the case: {ev.warn_once_cleared}",
           f"RDMA WRITE: {ev.rdma_status}; fsync after the unpin: {ev.fsync}",
           f"expected afterwards: {ev.expect}"]
    for view in ("cache", "medium"):
        rb = ev.readback.get(view)
        how = "buffered read" if view == "cache" else "O_DIRECT read"
        if rb:
            out.append(f"read back ({how}): " + ", ".join(f"{k} {rb[k]}" for k in READBACK_KEYS))
        elif view in ev.readback_errors:
            out.append(f"read back ({how}): failed {ev.readback_errors[view]}")
    if ev.migrate:
        m = ev.migrate
        out.append(f"move_pages node {m['from']} -> {m['to']}: returned {m['ret']}"
                   f"{' ' + m['errno'] if m['errno'] else ''}; status "
                   + ", ".join(f"{k} {n}" for k, n in m["status"].items())
                   + "; node afterwards " + ", ".join(f"{k} {n}" for k, n in m["node_after"].items()))
    if ev.vmstat:
        out.append("vmstat over the trigger: " + ", ".join(f"{k} {v:+d}" for k, v in ev.vmstat.items()))
    out.append("")
    out.append(f"pinned pages ({ev.pages}): kpageflags of the PFNs taken at the pin, per stage")
    keys = [k for k in COUNT_KEYS if any(k in s.counts for s in ev.stages)]
    if ev.stages:
        width = max(len(s.name) for s in ev.stages)
        out.append(f"{'stage':<{width}}  " + " ".join(f"{k:>{max(len(k), 4)}}" for k in keys))
        for s in ev.stages:
            out.append(f"{s.name:<{width}}  " + " ".join(
                f"{s.counts.get(k, '-')!s:>{max(len(k), 4)}}" for k in keys))
    out.append("")
    out.append("per page: the flags at each stage, pages with the same history grouped")
    groups: dict = {}
    for i in range(ev.pages):
        seq = tuple((s.name, s.flags[i]) for s in ev.stages if len(s.flags) == ev.pages)
        groups.setdefault(seq, []).append(i)
    for seq, idx in sorted(groups.items(), key=lambda kv: kv[1][0])[:32]:
        out.append(f"  {len(idx)} page(s) {_ranges(idx)}:")
        for n, f in seq:
            out.append(f"      {n:<14} {'?' if f is None else ' '.join(flag_names(f)) or '-'}")
    if len(groups) > 32:
        out.append(f"  ... {len(groups) - 32} more groups (result.json has every page)")
    return "\n".join(out) + "\n"
