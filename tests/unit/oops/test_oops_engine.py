"""pinrig.oops.engine: the generic parts (titles, line model, CrashReport,
split_by_case, reboots, format_text) and the engine driven by a table that is
not Linux's."""
from __future__ import annotations

import dataclasses
import json
import re

import pytest

import pinrig.oops
from pinrig.oops import (
    CrashReport,
    ScanStats,
    format_text,
    linux,
    normalize_title,
    parse_console,
    reboots,
    split_by_case,
)
from pinrig.oops.engine import ReportParser
from pinrig.oops.table import Format, Oops

# --------------------------------------------------------------------------
# The package's public API.


def test_public_api():
    assert set(pinrig.oops.__all__) == {
        "CrashReport", "KINDS", "ScanStats", "parse_console", "normalize_title",
        "split_by_case", "reboots", "format_text", "main"}
    for name in pinrig.oops.__all__:
        assert getattr(pinrig.oops, name) is not None


# --------------------------------------------------------------------------
# normalize_title


@pytest.mark.parametrize("a,b", [
    ("kernel BUG at fs/ext4/inode.c:2621!", "kernel BUG at fs/ext4/inode.c:2606!"),
    ("kernel panic: Attempted to kill init! exitcode=0x0000000b",
     "kernel panic: Attempted to kill init! exitcode=0x00000009"),
    ("INFO: task fio:1121 blocked for more than 120 seconds.",
     "INFO: task fio:987 blocked for more than 241 seconds."),
    ("BUG: workqueue lockup - pool cpus=1 node=0 flags=0x0 nice=0 stuck for 41s!",
     "BUG: workqueue lockup - pool cpus=0 node=0 flags=0x4 nice=0 stuck for 56s!"),
    ("general protection fault, probably for non-canonical address 0xdffffc0000000003: 0000",
     "general protection fault, probably for non-canonical address 0xdffffc0000000005: 0000"),
    ("BUG: soft lockup - CPU#1 stuck for 26s! [kworker/1:2:143]",
     "BUG: soft lockup - CPU#0 stuck for 22s! [kworker/0:1:87]"),
    ("WARNING: CPU: 0 PID: 534 at fs/ext4/inode.c:3585 ext4_dirty_folio+0x4c/0x60 [ext4]",
     "WARNING: CPU: 1 PID: 612 at fs/ext4/inode.c:3622 ext4_dirty_folio+0x44/0x60 [ext4]"),
    ("kernel panic: VFS: Unable to mount root fs on unknown-block(0,0)",
     "kernel panic: VFS: Unable to mount root fs on unknown-block(8,1)"),
])
def test_normalize_title_same_bug(a, b):
    assert normalize_title(a) == normalize_title(b)


@pytest.mark.parametrize("a,b", [
    ("WARNING in ext4_dirty_folio", "WARNING in ext4_set_page_dirty"),
    ("kernel BUG in mpage_prepare_extent_to_map", "kernel BUG in folio_end_writeback"),
    ("KASAN: use-after-free Read in f", "KASAN: use-after-free Write in f"),
])
def test_normalize_title_different_bugs(a, b):
    assert normalize_title(a) != normalize_title(b)


def test_normalize_title_keeps_identifiers_and_is_idempotent():
    for title in ("WARNING in ext4_dirty_folio", "possible deadlock in nl80211_pre_doit",
                  "KASAN: slab-out-of-bounds Write in rxe_mr_copy_xarray",
                  "kernel panic: VFS: Unable to mount root fs on unknown-block(0,0)"):
        once = normalize_title(title)
        assert normalize_title(once) == once
    assert normalize_title("WARNING in ext4_dirty_folio") == "WARNING in ext4_dirty_folio"
    assert "ext4" in normalize_title("possible deadlock in ext4_buffered_write_iter")


def test_same_bug_different_run_same_title(corpus_log):
    log = corpus_log("kasan-use-after-free-read-6.1.log").decode()
    other = re.sub(r"ffff[0-9a-f]{12}", "ffff888123456789", log)
    other = other.replace("ibv_rc_pingpong/771", "ibv_rc_pingpong/9123")
    other = re.sub(r"\+0x[0-9a-f]+/", "+0x11/", other)
    a, b = parse_console(log)[0], parse_console(other)[0]
    assert a.title == b.title
    assert a.to_dict()["normalized"] == b.to_dict()["normalized"]


# --------------------------------------------------------------------------
# Console line model


def test_console_prefixes_ansi_and_carriage_returns():
    log = (b"\x1b[0m<4>[   12.345678] WARNING: CPU: 0 PID: 1 at fs/x.c:1 f+0x1/0x2\r\n"
           b"[   12.345679] RIP: 0010:f+0x1/0x2\r"
           b"[   12.345680] Call Trace:\n"
           b"[   12.345681]  <TASK>\n"
           b"[   12.345682]  ? __warn+0x1/0x2\n"
           b"[   12.345683]  g+0x1/0x2\n"
           b"[   12.345684]  h+0x1/0x2\n"
           b"[   12.345685]  ---[ end trace 0000000000000000 ]---\n")
    (rep,) = parse_console(log)
    assert rep.title == "WARNING in f"
    assert rep.frames == ["f", "g", "h"]
    assert rep.line == 1
    assert "\x1b" not in rep.text and "\r" not in rep.text


def test_bad_utf8_is_replaced_not_fatal():
    log = b"[    1.000000] BUG: \xff\xfe kernel NULL pointer dereference\n"
    for rep in parse_console(log):
        json.dumps(rep.to_dict())


# --------------------------------------------------------------------------
# The engine with a table that is not Linux's.

_TOY = Oops("FROBNICATE:", kind="other", formats=(
    Format(re.compile(r"FROBNICATE: ([a-z]+)"), "frobnicated {1}", "other", no_stack=True),))


def test_engine_takes_any_table():
    parser = ReportParser(dataclasses.replace(linux.TABLE, oopses=(_TOY,)))
    log = "[    1.0] WARNING: CPU: 0 PID: 1 at fs/x.c:1 f+0x1/0x2\n[    2.0] FROBNICATE: widget 7\n"
    assert [(r.title, r.kind, r.line) for r in parser.parse(log)] == [
        ("frobnicated widget", "other", 2)]
    # the Linux parser does not know the toy header
    assert [r.kind for r in parse_console(log)] == ["WARNING"]


def test_parse_fills_scan_stats():
    stats = ScanStats()
    log = "[    1.0] x\n[    2.0] FROBNICATE: widget 7\nplain\n"
    parser = ReportParser(dataclasses.replace(linux.TABLE, oopses=(_TOY,)))
    assert len(parser.parse(log, stats)) == 1
    assert stats.lines == 4                      # the empty last line counts
    assert stats.chars == len(log) - 3           # newlines are no characters of a line
    assert stats.headers == 1 and stats.starts == 1
    assert stats.report_lines > 0


# --------------------------------------------------------------------------
# split_by_case and reboots


SPLIT_LOG = "\n".join([
    "[    0.000000] Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org)",
    "[    2.902210] rdma_rxe: loaded",
    "<6>[    3.512876] pinrig: case-start ibverbs-pin/ext4/shared",
    "[    3.600000] in case one",
    "[    3.700000] pinrig: case-end ibverbs-pin/ext4/shared",
    "[    3.800000] between one and two",
    "[    3.900000] pinrig: case-start lost-write/xfs/shared",
    "[    4.000000] in case two, never ended",
    "[    4.100000] still in case two",
])


def test_split_by_case():
    parts = split_by_case(SPLIT_LOG)
    assert set(parts) == {"boot", "between", "ibverbs-pin/ext4/shared", "lost-write/xfs/shared"}
    assert "rdma_rxe: loaded" in parts["boot"] and "case-start" not in parts["boot"]
    one = parts["ibverbs-pin/ext4/shared"].splitlines()
    assert "case-start ibverbs-pin/ext4/shared" in one[0]
    assert "case-end ibverbs-pin/ext4/shared" in one[-1]
    assert any("in case one" in ln for ln in one)
    assert parts["between"].strip().endswith("between one and two")
    assert parts["lost-write/xfs/shared"].splitlines()[-1].endswith("still in case two")
    assert sum(len(v) for v in parts.values()) == len(SPLIT_LOG)   # nothing lost or doubled


def test_split_by_case_bytes_and_no_markers():
    assert split_by_case(b"just boot\n") == {"boot": "just boot\n"}
    parts = split_by_case(SPLIT_LOG.encode())
    assert "ibverbs-pin/ext4/shared" in parts


def test_split_by_case_missing_end_closes_at_next_start():
    log = "pinrig: case-start a/ext4/shared\nx\npinrig: case-start b/ext4/shared\ny\n"
    parts = split_by_case(log)
    assert parts["a/ext4/shared"].splitlines() == ["pinrig: case-start a/ext4/shared", "x"]
    assert parts["b/ext4/shared"].startswith("pinrig: case-start b/ext4/shared")


def test_split_then_parse_attributes_the_crash_to_its_case(corpus_log):
    parts = split_by_case(corpus_log("warn-ext4-set-page-dirty-5.10.log"))
    assert parse_console(parts["boot"]) == []
    (rep,) = parse_console(parts["ibverbs-pin/ext4/shared"])
    assert rep.title == "WARNING in ext4_set_page_dirty"


def test_reboots(corpus_log):
    log = corpus_log("reboot-banner-mid-log-6.1.log")
    lines = log.decode().split("\n")
    found = reboots(log)
    assert len(found) == 1
    assert lines[found[0] - 1].startswith("[    0.000000] Linux version")
    # the "cat /proc/version" echo at 3.70 s (line 10) is not a reboot
    assert "3.700014" in lines[9] and found == [12]
    assert reboots(corpus_log("clean-boot-6.1.log")) == []
    assert reboots(b"") == []
    assert reboots("Linux version 6.1.0\nLinux version 6.1.0\n") == [2]


# --------------------------------------------------------------------------
# CrashReport and its text form


def test_format_text(corpus_log):
    reps = parse_console(corpus_log("warn-ext4-dirty-folio-6.1.log"))
    text = format_text("x.log", reps)
    assert text.startswith("x.log: 1 kernel report; headline: WARNING in ext4_dirty_folio")
    assert "frames: ext4_dirty_folio < folio_mark_dirty" in text
    assert format_text("y.log", []) == "y.log: no kernel reports\n"


def test_to_dict_round_trip():
    rep = CrashReport(title="WARNING in f", kind="WARNING", frames=["f", "g"],
                      corrupted=False, line=3, text="x")
    d = rep.to_dict()
    assert d["normalized"] == "WARNING in f"
    assert json.loads(json.dumps(d)) == d
