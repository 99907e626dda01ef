"""Tests for pinrig.oops (console log -> crash reports).

The golden corpus lives in tests/data/oops/: one console log per file, named
after what it shows.  Each file starts with syzkaller-style header lines, then
a blank line, then the raw log:

    TITLE: WARNING in ext4_dirty_folio      (absent: the log has no report)
    TYPE: WARNING                            (CrashReport.kind of the headline)
    FRAME: ext4_dirty_folio                  (function named in the title)
    CORRUPTED: N                             (Y when cut off / interleaved)

Only the headline (first report) is checked.

To regenerate the headers from the parser's current output instead of
asserting -- after changing the parser on purpose, or after dropping a new real
capture into the directory -- run:

    PINRIG_UPDATE_CORPUS=1 .venv/bin/python -m pytest tests/test_oops.py -q

and review the diff of tests/data/oops/ before committing it.
"""
from __future__ import annotations

import json
import os
import random
import re
import time
from pathlib import Path

import pytest

from pinrig import oops
from pinrig.oops import (
    KINDS,
    CrashReport,
    format_text,
    main,
    normalize_title,
    parse_console,
    reboots,
    split_by_case,
)

CORPUS = Path(__file__).parent / "data" / "oops"
UPDATE = os.environ.get("PINRIG_UPDATE_CORPUS") == "1"
HEADER_KEYS = ("TITLE", "TYPE", "FRAME", "CORRUPTED")


def read_corpus_file(path: Path):
    """(header dict, other header lines, log bytes) of a corpus file."""
    data = path.read_bytes()
    header: dict = {}
    others = []
    pos = 0
    while True:
        end = data.find(b"\n", pos)
        if end == -1:
            raise ValueError(f"{path.name}: no blank line after the header")
        line = data[pos:end].decode("utf-8").rstrip("\r")
        pos = end + 1
        if not line:
            break
        key, sep, value = line.partition(":")
        if sep and key in HEADER_KEYS:
            header.setdefault(key, value.strip())
        else:
            others.append(line)
    return header, others, data[pos:]


def write_header(path: Path, reports, others, log: bytes) -> None:
    lines = []
    if reports:
        rep = reports[0]
        lines.append(f"TITLE: {rep.title}")
        lines.append(f"TYPE: {rep.kind}")
        if rep.frame:
            lines.append(f"FRAME: {rep.frame}")
        lines.append(f"CORRUPTED: {'Y' if rep.corrupted else 'N'}")
    lines.extend(others)
    path.write_bytes(("".join(line + "\n" for line in lines) + "\n").encode("utf-8") + log)


CORPUS_FILES = sorted(p for p in CORPUS.glob("*.log"))


def test_corpus_is_not_empty():
    assert len(CORPUS_FILES) >= 30


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.name for p in CORPUS_FILES])
def test_corpus(path: Path):
    header, others, log = read_corpus_file(path)
    reports = parse_console(log)
    if UPDATE:
        write_header(path, reports, others, log)
        return
    if "TITLE" not in header:
        assert reports == [], f"unexpected report(s): {[r.title for r in reports]}"
        return
    assert reports, f"expected {header['TITLE']!r}, got no report"
    head = reports[0]
    assert head.title == header["TITLE"]
    if "TYPE" in header:
        assert head.kind == header["TYPE"]
    assert head.frame == header.get("FRAME", "")
    assert head.corrupted == (header.get("CORRUPTED", "N") == "Y")
    # every report is well formed
    for rep in reports:
        assert rep.kind in KINDS
        assert rep.line >= 1
        assert rep.text
        assert all(re.fullmatch(r"[A-Za-z0-9_]+", f) for f in rep.frames), rep.frames
        json.dumps(rep.to_dict())


def corpus_log(name: str) -> bytes:
    return read_corpus_file(CORPUS / name)[2]


# --------------------------------------------------------------------------
# Report details beyond the headline.


def test_warning_frames_and_line():
    log = corpus_log("warn-ext4-dirty-folio-6.1.log")
    (rep,) = parse_console(log)
    lines = log.decode().split("\n")
    assert "WARNING: CPU: 0 PID: 534" in lines[rep.line - 1]
    # the RIP function first, then the call trace without the '?' frames
    assert rep.frames[:4] == ["ext4_dirty_folio", "folio_mark_dirty", "set_page_dirty_lock",
                              "unpin_user_pages_dirty_lock"]
    assert "__warn" not in rep.frames and "report_bug" not in rep.frames
    assert "---[ end trace" in rep.text.splitlines()[-1]
    assert "pinrig: case-end" not in rep.text


def test_suffixes_are_stripped_from_frames():
    log = corpus_log("bug-mpage-prepare-extent-to-map-6.1.log")
    (rep,) = parse_console(log)
    assert rep.frames[0] == "mpage_prepare_extent_to_map"
    assert all("." not in f and "+" not in f for f in rep.frames)


def test_oops_followed_by_fatal_exception_panic_is_one_crash():
    log = corpus_log("null-deref-fatal-exception-in-interrupt-6.1.log")
    reports = parse_console(log)
    assert [r.title for r in reports] == [
        "BUG: unable to handle kernel NULL pointer dereference in rxe_mr_copy"]
    assert "Kernel panic - not syncing: Fatal exception in interrupt" in reports[0].text


def test_panic_on_warn_is_part_of_the_warning():
    reports = parse_console(corpus_log("warn-panic-on-warn-6.1.log"))
    assert len(reports) == 1 and reports[0].kind == "WARNING"


def test_two_reports_in_log_order():
    reports = parse_console(corpus_log("two-reports-warn-then-bug-6.1.log"))
    assert [r.title for r in reports] == ["WARNING in ext4_dirty_folio",
                                          "kernel BUG in folio_end_writeback"]
    assert reports[0].line < reports[1].line


def test_kernel_reports_come_before_filesystem_reports():
    fs = b"[   61.118830] EXT4-fs error (device pmem0): ext4_validate_block_bitmap:421: comm fio: " \
         b"bg 0: bad block bitmap checksum\n"
    bug = corpus_log("bug-mpage-prepare-extent-to-map-6.1.log")
    reports = parse_console(fs + bug)
    assert [r.kind for r in reports] == ["BUG", "fs-error"]
    assert reports[0].title == "kernel BUG in mpage_prepare_extent_to_map"
    assert reports[1].line == 1
    (only,) = parse_console(fs)
    assert only.kind == "fs-error"


def test_repeated_fs_error_is_reported_once():
    reports = parse_console(corpus_log("ext4-error-bad-block-bitmap-6.12.log"))
    assert [r.title for r in reports] == ["EXT4-fs error in ext4_validate_block_bitmap",
                                          "EXT4-fs error in ext4_mb_clear_bb"]
    assert all(r.kind == "fs-error" for r in reports)


def test_xfs_assertion_absorbs_the_bug_it_triggers():
    reports = parse_console(corpus_log("xfs-assertion-failed-6.12.log"))
    assert len(reports) == 1
    assert reports[0].kind == "assertion"
    assert "xfs_trans_cancel" in reports[0].frames


def test_report_cut_off_by_a_reboot_is_corrupted():
    log = "\n".join([
        "[   74.331870] BUG: kernel NULL pointer dereference, address: 0000000000000008",
        "[   74.332948] #PF: supervisor read access in kernel mode",
        "[    0.000000] Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org)",
        "[    0.100000] RIP: 0010:default_idle+0xb/0x10",
        "[    0.100001] Call Trace:",
        "[    0.100002]  default_idle_call+0x2c/0xe0",
        "[    0.100003]  do_idle+0x226/0x2b0",
        "[    0.100004]  cpu_startup_entry+0x19/0x20",
    ])
    (rep,) = parse_console(log)
    assert rep.title == "BUG: unable to handle kernel NULL pointer dereference in corrupted"
    assert rep.corrupted and rep.frame == "" and rep.frames == []
    assert "Linux version" not in rep.text
    assert reboots(log) == []   # only one banner


def test_fs_messages_are_not_kernel_warnings():
    log = b"\n".join([
        b"[   36.882101] EXT4-fs (pmem0): DAX enabled. Warning: DAX support in ext4 driver is experimental",
        b"[   36.882101] EXT4-fs (pmem0): DAX enabled. Warning: EXPERIMENTAL, use at your own risk",
        b"[   36.901337] EXT4-fs (pmem0): mounted filesystem with ordered data mode. Quota mode: none.",
        b"[   36.901337] EXT4-fs (pmem0): WARNING: mounting fs with errors, running e2fsck is recommended",
        b"[   37.001337] XFS (pmem0): Mounting V5 Filesystem",
        b"[   37.101337] XFS (pmem0): DAX enabled. Warning: EXPERIMENTAL, use at your own risk",
        b"[   37.201337] XFS (pmem0): Ending clean mount",
        b"[   38.977432] EXT4-fs warning (device pmem0): ext4_set_page_dirty: page without buffers",
    ])
    reports = parse_console(log)
    assert [(r.title, r.kind) for r in reports] == [
        ("EXT4-fs warning in ext4_set_page_dirty", "fs-error")]


def test_benign_boot_lines_are_not_reports():
    log = "\n".join([
        "[    0.143330] x86/cpu: VMX (outside TXT) disabled by BIOS",
        "[    0.147720] RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable to RETBleed "
        "attacks, data leaks possible!",
        "[    0.146530] Spectre V2 : WARNING: Unprivileged eBPF is enabled with eIBRS on, data leaks "
        "possible via Spectre v2 BHB attacks!",
        "[    0.034208] Booting paravirtualized kernel on KVM",
        "[    2.477213] pmem0: detected capacity change from 0 to 2097152",
        "[    2.902210] rdma_rxe: loaded",
        "[    3.970212] hrtimer: interrupt took 11284234 ns",
        "[    4.970212] INFO: NMI handler (perf_event_nmi_handler) took too long to run: 1.234 msecs",
        "[    5.970212] traps: fio[1234] general protection fault ip:7f0e5d5e8b5b sp:7ffc1a3a8e70 "
        "error:0 in libc.so.6[7f0e5d500000+155000]",
        "[    6.970212] Buffer I/O error is not the same as this line",
    ])
    assert parse_console(log) == []


def test_reports_from_other_contexts_do_not_leak_frames():
    (rep,) = parse_console(corpus_log("printk-caller-id-interleaved-6.12.log"))
    assert "copy_data" not in rep.frames and "rxe_mr_copy" not in rep.frames
    assert rep.frames[:2] == ["ext4_iomap_begin", "iomap_iter"]


def test_kinds_are_documented():
    for name in CORPUS_FILES:
        for rep in parse_console(read_corpus_file(name)[2]):
            assert rep.kind in KINDS
            assert rep.kind in oops.__doc__ or rep.kind == "other"


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


def test_same_bug_different_run_same_title():
    log = corpus_log("kasan-use-after-free-read-6.1.log").decode()
    other = re.sub(r"ffff[0-9a-f]{12}", "ffff888123456789", log)
    other = other.replace("ibv_rc_pingpong/771", "ibv_rc_pingpong/9123")
    other = re.sub(r"\+0x[0-9a-f]+/", "+0x11/", other)
    a, b = parse_console(log)[0], parse_console(other)[0]
    assert a.title == b.title
    assert a.to_dict()["normalized"] == b.to_dict()["normalized"]


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


def test_split_then_parse_attributes_the_crash_to_its_case():
    parts = split_by_case(corpus_log("warn-ext4-set-page-dirty-5.10.log"))
    assert parse_console(parts["boot"]) == []
    (rep,) = parse_console(parts["ibverbs-pin/ext4/shared"])
    assert rep.title == "WARNING in ext4_set_page_dirty"


def test_reboots():
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
# CLI


def test_main_json(tmp_path, capsys):
    bad = tmp_path / "bad.log"
    bad.write_bytes(corpus_log("two-reports-warn-then-bug-6.1.log"))
    good = tmp_path / "good.log"
    good.write_bytes(corpus_log("clean-boot-6.12.log"))
    assert main(["--json", str(bad), str(good)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == [str(bad), str(good)]
    assert out[str(good)] == []
    first = out[str(bad)][0]
    for key in ("title", "kind", "frames", "corrupted", "line", "normalized"):
        assert key in first
    assert first["title"] == "WARNING in ext4_dirty_folio"
    assert isinstance(first["frames"], list) and isinstance(first["corrupted"], bool)
    assert isinstance(first["line"], int) and first["line"] > 1
    assert len(out[str(bad)]) == 2


def test_main_text(tmp_path, capsys):
    log = tmp_path / "console.log"
    log.write_bytes(corpus_log("hung-task-fsync-6.1.log"))
    clean = tmp_path / "clean.log"
    clean.write_bytes(corpus_log("clean-boot-6.1.log"))
    assert main([str(log), str(clean)]) == 0
    out = capsys.readouterr().out
    assert "INFO: task hung in ext4_sync_file" in out
    assert f"{clean}: no kernel reports" in out


def test_main_unreadable(tmp_path, capsys):
    missing = tmp_path / "nope.log"
    assert main([str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(missing) in err and "Traceback" not in err
    assert main([str(tmp_path)]) == 2
    assert str(tmp_path) in capsys.readouterr().err


def test_main_usage_error(capsys):
    assert main([]) == 2


def test_format_text():
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


# --------------------------------------------------------------------------
# Robustness: garbage in, no exception, fast.


def test_huge_line_is_fast():
    rnd = random.Random(1)
    line = "".join(rnd.choice("abcdef0123456789 ()[]<>:+/.-_?") for _ in range(1000))
    data = (line * 10_000).encode()          # one 10 MB line, no newline
    start = time.perf_counter()
    assert parse_console(data) == []
    assert time.perf_counter() - start < 1.0


def test_huge_line_with_header_words_is_fast():
    chunk = "WARNING: BUG: KASAN: use-after-free in f+0x1/0x2 INFO: task Call Trace: (?:.*) "
    data = chunk * (10_000_000 // len(chunk))
    start = time.perf_counter()
    reports = parse_console(data)
    assert time.perf_counter() - start < 1.0
    assert len(reports) <= 1


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes(seed):
    rnd = random.Random(seed)
    data = bytes(rnd.getrandbits(8) for _ in range(200_000))
    start = time.perf_counter()
    for rep in parse_console(data):
        json.dumps(rep.to_dict())
    split_by_case(data)
    reboots(data)
    assert time.perf_counter() - start < 2.0


def test_random_console_lines():
    """Shuffled real report lines: whatever comes out must be well formed."""
    rnd = random.Random(3)
    pool = []
    for path in CORPUS_FILES:
        pool.extend(read_corpus_file(path)[2].split(b"\n"))
    for _ in range(20):
        data = b"\n".join(rnd.choice(pool) for _ in range(2000))
        for rep in parse_console(data):
            assert rep.kind in KINDS and rep.title and rep.line >= 1
            assert len(rep.text) <= oops.MAX_TEXT_CHARS + oops.MAX_LINE + 1


def test_many_reports_are_capped_and_fast():
    line = "[   1.000000] WARNING: CPU: 0 PID: 1 at fs/x.c:1 f+0x1/0x2\n"
    start = time.perf_counter()
    reports = parse_console(line * 20_000)
    assert time.perf_counter() - start < 5.0
    assert 0 < len(reports) <= oops.MAX_REPORTS


def test_repeated_fs_errors_do_not_hide_a_later_crash():
    fs = b"[   61.118830] EXT4-fs error (device pmem0): ext4_validate_block_bitmap:421: comm fio: " \
         b"bg 0: bad block bitmap checksum\n"
    data = fs * 5000 + corpus_log("bug-mpage-prepare-extent-to-map-6.1.log")
    start = time.perf_counter()
    reports = parse_console(data)
    assert time.perf_counter() - start < 5.0
    assert [r.kind for r in reports] == ["BUG", "fs-error"]


def test_long_report_without_terminator_is_fast():
    data = ("[   1.000000] BUG: KASAN: use-after-free in f+0x1/0x2\n"
            + "[   1.000001] no size line here, just noise noise noise\n" * 200_000)
    start = time.perf_counter()
    reports = parse_console(data)
    assert time.perf_counter() - start < 3.0
    assert reports[0].kind == "KASAN" and reports[0].corrupted


def test_oops_line_after_a_bug_is_no_second_report_6_12():
    """Real 6.12 capture: 'BUG: TASK stack guard page was hit' is followed by 6.12's
    'Oops: stack guard page: 0000 [#1]' — the same crash, not a second report."""
    from pinrig.oops import parse_console
    data = (Path(__file__).parent / "data/oops/stack-overflow-guard-page-module-debian-6.12.log").read_bytes()
    reports = parse_console(data.split(b"\n\n", 1)[1])
    assert [r.title for r in reports] == ["BUG: stack guard page was hit in proc_reg_write"]
