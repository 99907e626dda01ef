"""Garbage in, no exception, bounded work.

The engine counts its work in a ScanStats; these tests assert that the counts
stay within what the MAX_* constants allow (linear in the input), instead of
timing the parse (wall-clock limits fail on a loaded machine)."""
from __future__ import annotations

import json
import random
import tracemalloc

import pytest

from pinrig.oops import KINDS, ScanStats, linux, parse_console, reboots, split_by_case
from pinrig.oops.engine import (
    MAX_ANALYSED_LINES,
    MAX_LINE,
    MAX_REPORTS,
    MAX_TEXT_LINES,
    MAX_TITLE_WORK,
    MAX_WINDOW_LINES,
    ReportParser,
)

# Line visits one full report may cost: its body and the call trace in it (each
# at most MAX_ANALYSED_LINES lines), where its text ends and the text itself (at
# most MAX_TEXT_LINES lines, plus a few lines of context before the header).
PER_REPORT = 2 * (MAX_ANALYSED_LINES + 1) + 2 * (MAX_TEXT_LINES + 20)


def parse_counted(data):
    stats = ScanStats()
    reports = parse_console(data, stats)
    return reports, stats


def assert_work_bounded(stats: ScanStats, data) -> None:
    """Work linear in the input, bounded by the MAX_* constants; memory (the
    lines held) bounded by them alone."""
    size = len(data)
    assert stats.lines <= size + 1
    assert stats.chars <= min(size, MAX_LINE * stats.lines)
    assert stats.starts <= stats.headers <= stats.lines
    assert stats.titled <= stats.starts and stats.skipped <= stats.starts
    # titles: the budget, one report past it, then only fatal reports that no
    # other fatal report follows within MAX_ANALYSED_LINES lines
    spaced = 1 + stats.lines // MAX_ANALYSED_LINES
    assert stats.title_lines <= MAX_TITLE_WORK + MAX_ANALYSED_LINES * (1 + spaced)
    # full reports: the listed ones, and fatal ones replaced past the cap
    assert stats.reports <= MAX_REPORTS + spaced
    assert stats.report_lines <= PER_REPORT * stats.reports
    assert stats.regex_chars <= (MAX_LINE + 1) * (2 * stats.title_lines + stats.report_lines)
    assert stats.max_window <= MAX_WINDOW_LINES


def test_huge_line_is_cut():
    rnd = random.Random(1)
    line = "".join(rnd.choice("abcdef0123456789 ()[]<>:+/.-_?") for _ in range(1000))
    data = (line * 10_000).encode()          # one 10 MB line, no newline
    reports, stats = parse_counted(data)
    assert reports == []
    assert stats.lines == 1 and stats.chars <= MAX_LINE
    assert stats.title_lines == stats.report_lines == 0
    assert_work_bounded(stats, data)


def test_huge_line_in_a_file_is_read_in_bounded_memory(tmp_path):
    """A file is read in chunks, and of a line only what can be looked at is kept."""
    path = tmp_path / "one-line.log"
    with path.open("wb") as fh:
        for _ in range(32):
            fh.write(b"BUG: KASAN: " + b"\xc3\xa9x" * ((1 << 20) // 3))   # 32 MB, no newline
    stats = ScanStats()
    tracemalloc.start()
    try:
        reports = ReportParser(linux.TABLE).parse_file(path, stats)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r.kind for r in reports] == ["KASAN"]
    assert stats.lines == 1 and stats.chars <= MAX_LINE
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MB"


def test_huge_line_with_header_words():
    chunk = "WARNING: BUG: KASAN: use-after-free in f+0x1/0x2 INFO: task Call Trace: (?:.*) "
    data = chunk * (10_000_000 // len(chunk))
    reports, stats = parse_counted(data)
    assert len(reports) <= 1
    assert stats.lines == 1 and stats.chars <= MAX_LINE
    assert stats.regex_chars <= 2 * (MAX_LINE + 1)
    assert_work_bounded(stats, data)


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes(seed):
    rnd = random.Random(seed)
    data = bytes(rnd.getrandbits(8) for _ in range(200_000))
    reports, stats = parse_counted(data)
    for rep in reports:
        json.dumps(rep.to_dict())
    split_by_case(data)
    reboots(data)
    assert stats.lines <= data.count(b"\n") + data.count(b"\r") + 1
    assert_work_bounded(stats, data)


def test_many_reports_are_counted_in_linear_work():
    line = "[   1.000000] WARNING: CPU: 0 PID: 1 at fs/x.c:1 f+0x1/0x2\n"
    data = line * 20_000
    reports, stats = parse_counted(data)
    assert [(r.kind, r.count) for r in reports] == [("WARNING", 20_000)]
    assert all(r.kind in KINDS for r in reports)
    assert stats.lines == 20_001 and stats.headers == stats.starts == stats.titled == 20_000
    # a title needs the lines up to the next report only, and only one
    # report is worked out in full
    assert stats.title_lines <= 3 * stats.lines
    assert stats.reports == 1
    assert_work_bounded(stats, data)


def test_title_budget_bounds_the_work_of_a_flood():
    """Reports whose titles each need MAX_ANALYSED_LINES lines (printk caller
    ids: the title text runs on past the next report) spend the budget; the
    rest are skipped, except the fatal report at the end."""
    flood = "".join(f"[    1.{i:06d}] [T1] WARNING: CPU: 0 PID: 1 at fs/x.c:1 f{i}+0x1/0x2\n"
                    f"[    1.{i:06d}] [T1] RIP: 0010:f{i}+0x1/0x2\n"
                    for i in range(5_000))
    crash = ("[    2.000000] kernel BUG at fs/y.c:12!\n"
             "[    2.000000] RIP: 0010:g+0x1/0x2\n")
    data = flood + crash
    reports, stats = parse_counted(data)
    assert reports[-1].title == "kernel BUG in g"
    assert len(reports) == MAX_REPORTS + 1
    assert stats.skipped == 5_000 - MAX_REPORTS
    assert MAX_TITLE_WORK <= stats.title_lines <= MAX_TITLE_WORK + 2 * MAX_ANALYSED_LINES
    assert_work_bounded(stats, data)


def test_repeated_fs_errors_do_not_hide_a_later_crash(corpus_log):
    fs = b"[   61.118830] EXT4-fs error (device pmem0): ext4_validate_block_bitmap:421: comm fio: " \
         b"bg 0: bad block bitmap checksum\n"
    data = fs * 5000 + corpus_log("bug-mpage-prepare-extent-to-map-6.1.log")
    reports, stats = parse_counted(data)
    assert [r.kind for r in reports] == ["BUG", "fs-error"]
    assert stats.starts == 2
    assert_work_bounded(stats, data)
    # the repeats are counted, though they start no report of their own
    assert reports[1].count == 5000


def test_long_report_without_terminator():
    data = ("[   1.000000] BUG: KASAN: use-after-free in f+0x1/0x2\n"
            + "[   1.000001] no size line here, just noise noise noise\n" * 200_000)
    reports, stats = parse_counted(data)
    assert reports[0].kind == "KASAN" and reports[0].corrupted
    assert stats.starts == 1
    # one report: its analysis looks at MAX_ANALYSED_LINES lines, not at all 200,000
    assert stats.title_lines <= MAX_ANALYSED_LINES
    assert stats.report_lines <= PER_REPORT
    assert_work_bounded(stats, data)


def test_lines_held_are_bounded():
    """A long log holds a window of lines, not the log."""
    noise = "[   1.000000] rdma_rxe: noise noise noise\n" * 100_000
    report = "[   2.000000] BUG: KASAN: use-after-free in f+0x1/0x2\n"
    data = noise + report + noise
    reports, stats = parse_counted(data)
    assert [r.kind for r in reports] == ["KASAN"]
    assert stats.lines == 200_002
    assert stats.max_window <= MAX_WINDOW_LINES
    assert_work_bounded(stats, data)


def test_dense_fatal_reports_past_the_cap():
    """Past the cap a fatal report is worked out in full only when no other
    fatal report follows soon: a flood of crashes costs no full report each."""
    warnings = "".join(f"[    1.{i:06d}] WARNING: CPU: 0 PID: 1 at fs/x.c:1 f{i}+0x1/0x2\n"
                       f"[    1.{i:06d}] RIP: 0010:f{i}+0x1/0x2\n" for i in range(MAX_REPORTS))
    crashes = "".join(f"[    2.{i:06d}] kernel BUG at fs/y.c:12!\n"
                      f"[    2.{i:06d}] RIP: 0010:g{i}+0x1/0x2\n" for i in range(2_000))
    data = warnings + crashes
    reports, stats = parse_counted(data)
    assert len(reports) == MAX_REPORTS + 1
    assert reports[-1].title == "kernel BUG in g1999"
    assert stats.reports <= MAX_REPORTS + 2
    assert_work_bounded(stats, data)
