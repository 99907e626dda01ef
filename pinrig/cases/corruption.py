"""Judging the bug-class cases whose damage is not "blocks lost" (issue 15 items 2, 3 and 6).

* stable pages (`stable-pages`, `odirect-race`): the guest program classifies every block of its
  file as read back from the medium — consistent (one generation of the device's pattern), torn
  (generations mixed inside a block), foreign, or unreadable (the read failed: on btrfs and on
  dm-integrity a block that fails its checksum reads as EIO/EILSEQ). It does so again and again
  while the device writes and writeback runs ("overlap"), and once more after the power cut
  ("after the crash"). Unreadable blocks are the corruption: verdict ``checksum-error``. Torn
  blocks alone are not (a filesystem without checksums may write a page that is being written:
  the medium holds what the page held during the copy), but they are counted and shown.
* COW (`reflink-pin`): after the power cut the original should hold the device's pattern B, the
  clone the pattern A it was cloned from. Original blocks that are not B are lost (data-loss, as
  for lost-write); clone blocks that are not A mean the clone changed (``clone-changed``).

Pure functions over the (untrusted) JSON of the guest: every field is checked before use.
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

from pinrig.cases import integrity
from pinrig.outcome import Outcome

# What the kernels log when a read fails its checksum: btrfs ("csum failed root 5 ino 257 off
# 0 csum 0x… expected csum 0x… mirror 1"), dm-integrity ("device-mapper: integrity: dm-0:
# Checksum failed at sector 0x…"), and the block layer's summary of the failed I/O.
CSUM_LOG_RE = re.compile(r"csum failed|checksum failed|integrity: .*(checksum|mismatch)"
                         r"|BTRFS (error|warning).*(csum|checksum)", re.IGNORECASE)


# What a filesystem logs when it refuses to write back a page that was dirtied behind its back
# (btrfs since its COW fix-up worker was removed: "root 5 ino 261 folio 0 is marked dirty without
# notifying the fs", then "failed to submit blocks ... -117"; fsync and reads return EUCLEAN).
WRITEBACK_LOG_RE = re.compile(r"dirty without notifying the fs|failed to submit blocks",
                              re.IGNORECASE)
# errnos of a read that failed its checksum; anything else failing a read is writeback refusing
CSUM_ERRNOS = ("EIO", "EILSEQ", "EBADMSG", "E84", "E74")
WRITEBACK_ERRNOS = ("EUCLEAN", "E117")


def csum_log_lines(text: str, cap: int = 20) -> tuple:
    """(count, first `cap` lines) of checksum failures in a kernel log."""
    lines = [line.strip() for line in text.splitlines() if CSUM_LOG_RE.search(line)]
    return len(lines), lines[:cap]


def writeback_log_lines(text: str, cap: int = 20) -> tuple:
    """(count, first `cap` lines) of writeback refusals in a kernel log."""
    lines = [line.strip() for line in text.splitlines() if WRITEBACK_LOG_RE.search(line)]
    return len(lines), lines[:cap]


def _int(d: object, key: str) -> int:
    if not isinstance(d, dict):
        return 0
    val = d.get(key)
    return val if isinstance(val, int) and not isinstance(val, bool) and val >= 0 else 0


def _pass(d: object, key: str) -> dict:
    p = d.get(key) if isinstance(d, dict) else None
    return p if isinstance(p, dict) else {}


def judge_stable(result: dict, check: Optional[dict], log_overlap: int = 0,
                 log_after: int = 0, crash_consistent: bool = True, wb_overlap: int = 0,
                 wb_after: int = 0) -> tuple:
    """(corruption or None, evidence dict) for a stable-pages / odirect-race case.

    result: the workload's JSON (overlap read-back); check: `stable-pages --check` after the
    crash (None when there was no crash, e.g. the pin was refused); log_*: checksum-failure
    lines the kernel logged during the overlap and during the verification.
    """
    last = _pass(result, "overlap_last")
    now = _pass(check, "now") if check is not None else {}
    over_bad = _int(result, "overlap_unreadable_blocks")
    torn_o = _int(result, "overlap_torn_blocks")
    ev: dict = {
        "writer": result.get("writer") if isinstance(result.get("writer"), str) else None,
        "check_passes": _int(result, "check_passes"),
        "writer_passes": _int(result, "writer_passes"),
        "fsyncs": _int(result, "fsyncs"),
        "fsync_errno": result.get("fsync_errno") if isinstance(result.get("fsync_errno"), str)
        else None,
        "overlap": {"unreadable_blocks": over_bad,
                    "torn_blocks": torn_o,
                    "torn_max_per_pass": _int(result, "overlap_torn_max"),
                    "last_pass": last},
        "after_crash": now or None,
        "kernel_csum_messages": {"overlap": log_overlap, "after_crash": log_after},
        "kernel_writeback_refusals": {"overlap": wb_overlap, "after_crash": wb_after},
    }
    blocks = _int(result, "blocks")
    crash_bad = _int(now, "unreadable")
    torn_c = _int(now, "torn")
    first = result.get("overlap_first_errno")
    err = _errno({"first_errno": first}, last, now)
    wb = bool(wb_overlap or wb_after) or err in WRITEBACK_ERRNOS or \
        ev["fsync_errno"] in WRITEBACK_ERRNOS
    kind = Outcome.WRITEBACK_ERROR if wb and not (log_overlap or log_after) \
        else Outcome.CHECKSUM_ERROR
    parts = []
    if over_bad:
        what = "could not be read back" if kind is Outcome.WRITEBACK_ERROR \
            else "failed their checksum"
        parts.append(f"{over_bad} of {blocks} blocks {what} while the device wrote ({err})")
    if crash_bad:
        parts.append(f"{crash_bad} of {blocks} blocks unreadable after the power cut"
                     + ("" if crash_consistent else
                        " (not counted: this device does not keep data and checksums "
                        "consistent across a power cut)"))
    if log_overlap or log_after:
        parts.append(f"checksum-failure lines in the kernel log: {log_overlap} during the "
                     f"overlap, {log_after} after the crash")
    if wb_overlap or wb_after or ev["fsync_errno"]:
        parts.append(f"writeback refused pages dirtied behind the filesystem's back: "
                     f"{wb_overlap + wb_after} kernel log line(s), fsync "
                     f"{ev['fsync_errno'] or 'ok'}")
    torn = f"torn blocks on the medium: {torn_o} during the overlap, {torn_c} after the crash"
    ev["summary"] = "; ".join(parts + [torn])
    ev["crash_consistent"] = crash_consistent
    if not crash_consistent:
        crash_bad, log_after = 0, 0
    if over_bad or crash_bad:
        return ({"kind": kind.value, "blocks": max(over_bad, crash_bad),
                 "blocks_checked": blocks, "reason": "; ".join(parts + [torn])}, ev)
    if log_overlap or log_after or wb_overlap or wb_after or ev["fsync_errno"]:
        # the kernel says a checksum failed / writeback was refused, but no read of ours
        # failed: still what happened
        return ({"kind": kind.value, "blocks": 0, "blocks_checked": blocks,
                 "reason": "; ".join(parts + [torn])}, ev)
    return None, ev


def _errno(*passes: dict) -> str:
    for p in passes:
        e = p.get("first_errno")
        if isinstance(e, str) and e:
            return e
    return "errno not recorded"


def classify_blocks(sums: Sequence[str], seed: int, size: int) -> dict:
    """Count the blocks of a file that hold pattern A, pattern B, or neither."""
    a = integrity.pattern_checksums(seed, integrity.TAG_A, size)
    b = integrity.pattern_checksums(seed, integrity.TAG_B, size)
    out = {"A": 0, "B": 0, "other": 0, "missing": 0}
    for i in range(len(a)):
        got = str(sums[i]).strip().lower() if i < len(sums) else None
        if got is None:
            out["missing"] += 1
        elif got == a[i]:
            out["A"] += 1
        elif got == b[i]:
            out["B"] += 1
        else:
            out["other"] += 1
    return out


def judge_clones(seed: int, size: int, original: Sequence[str], clone: Sequence[str]) -> tuple:
    """(IntegrityResult of the original against pattern B, corruption or None, evidence)."""
    expect_b = integrity.pattern_checksums(seed, integrity.TAG_B, size)
    expect_a = integrity.pattern_checksums(seed, integrity.TAG_A, size)
    orig = integrity.verify(expect_b, original)
    cl = integrity.verify(expect_a, clone)
    ev: dict = {"original": classify_blocks(original, seed, size),
          "clone": classify_blocks(clone, seed, size),
          "original_vs_B": orig.to_dict(), "clone_vs_A": cl.to_dict()}
    held = "original" if ev["original"]["B"] else ("clone" if ev["clone"]["B"] else "neither")
    ev["device_data_in"] = held
    ev["summary"] = (f"original: {ev['original']['B']} B, {ev['original']['A']} A, "
                     f"{ev['original']['other'] + ev['original']['missing']} other; clone: "
                     f"{ev['clone']['A']} A, {ev['clone']['B']} B, "
                     f"{ev['clone']['other'] + ev['clone']['missing']} other")
    corruption = None
    if cl.blocks_lost:
        corruption = {"kind": Outcome.CLONE_CHANGED.value, "blocks": cl.blocks_lost,
                      "blocks_checked": cl.blocks_checked,
                      "reason": f"the clone changed in {cl.blocks_lost} of {cl.blocks_checked} "
                                f"blocks ({ev['summary']})"}
    return orig, corruption, ev
