"""The same report again is counted, not listed again; past the MAX_REPORTS cap
the last fatal report (the crash) is still listed."""
from __future__ import annotations

import json

from pinrig.oops import CrashReport, format_text, linux, parse_console
from pinrig.oops.engine import MAX_ANALYSED_LINES, MAX_REPORTS


def warning(i: int, func: str = "f") -> str:
    return (f"[    1.{i:06d}] WARNING: CPU: 0 PID: 1 at fs/x.c:1 {func}+0x1/0x2\n"
            f"[    1.{i:06d}] RIP: 0010:{func}+0x1/0x2\n")


def kernel_bug(func: str = "g", stamp: str = "2.000000") -> str:
    return "".join(f"[    {stamp}] {line}\n" for line in (
        "kernel BUG at fs/y.c:12!",
        "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI",
        f"RIP: 0010:{func}+0x1/0x2",
        "Call Trace:",
        " <TASK>",
        " h+0x1/0x2",
        " k+0x1/0x2",
        " </TASK>",
    ))


def test_a_bug_after_110_identical_warnings_is_kept():
    reports = parse_console("".join(warning(i) for i in range(110)) + kernel_bug())
    assert [(r.title, r.kind, r.count) for r in reports] == [
        ("WARNING in f", "WARNING", 110),
        ("kernel BUG in g", "BUG", 1),
    ]
    assert reports[0].line == 1          # the first one is the one kept
    assert reports[1].frames == ["g", "h", "k"]


def test_count_is_in_the_dict_and_json_form():
    (rep,) = parse_console(warning(1) * 3)
    assert rep.count == 3
    assert json.loads(json.dumps(rep.to_dict()))["count"] == 3
    single = CrashReport(title="t", kind="BUG", frames=[], corrupted=False, line=1, text="x")
    assert single.count == 1 and single.to_dict()["count"] == 1


def test_format_text_says_how_often_a_report_was_seen():
    text = format_text("x.log", parse_console(warning(1) * 3 + kernel_bug()))
    assert "WARNING in f (seen 3 times)" in text
    assert "kernel BUG in g\n" in text


def test_fatal_report_past_the_cap_is_kept():
    distinct = "".join(warning(i, f"f{i}") for i in range(MAX_REPORTS + 50))
    reports = parse_console(distinct + kernel_bug())
    assert len(reports) == MAX_REPORTS + 1
    assert [r.title for r in reports[:2]] == ["WARNING in f0", "WARNING in f1"]
    assert reports[MAX_REPORTS - 1].title == f"WARNING in f{MAX_REPORTS - 1}"
    assert (reports[-1].title, reports[-1].kind) == ("kernel BUG in g", "BUG")


def test_only_the_last_fatal_report_past_the_cap_is_kept():
    distinct = "".join(warning(i, f"f{i}") for i in range(MAX_REPORTS + 5))
    reports = parse_console(distinct + kernel_bug("a") + warning(7, "late") + kernel_bug("b"))
    assert len(reports) == MAX_REPORTS + 1
    assert reports[-1].title == "kernel BUG in b"
    assert "kernel BUG in a" not in [r.title for r in reports]


def test_a_later_fatal_report_replaces_the_one_past_the_cap():
    """One place past the cap: a fatal report further than MAX_ANALYSED_LINES
    lines from the next one is worked out, and the next one replaces it."""
    distinct = "".join(warning(i, f"f{i}") for i in range(MAX_REPORTS + 5))
    gap = "[    3.000000] noise\n" * (MAX_ANALYSED_LINES + 10)
    reports = parse_console(distinct + kernel_bug("a") + gap + kernel_bug("b"))
    assert reports[-1].title == "kernel BUG in b"
    assert len(reports) == MAX_REPORTS + 1


def test_repeat_of_a_listed_report_past_the_cap_is_counted():
    distinct = "".join(warning(i, f"f{i}") for i in range(MAX_REPORTS + 5))
    reports = parse_console(distinct + warning(9, "f3") + warning(9, "f3"))
    assert len(reports) == MAX_REPORTS
    assert next(r for r in reports if r.title == "WARNING in f3").count == 3


def test_fatal_kinds_are_the_tables():
    assert set(linux.TABLE.fatal_kinds) == {"BUG", "Oops", "GPF", "panic"}


def test_a_report_repeated_across_reboots_is_one_report_with_a_count(corpus_log):
    log = corpus_log("warn-ext4-dirty-folio-6.1.log")
    reports = parse_console(log + b"\n" + log + b"\n" + log)
    assert [(r.title, r.count) for r in reports] == [("WARNING in ext4_dirty_folio", 3)]
