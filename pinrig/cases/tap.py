"""kselftest output → subtests: TAP lines, and gup_test's long-term pin runs (no TAP before 6.6).

Pure functions, shared by `rig kselftest` (pinrig.cases.kselftest) and the selftest workloads
of suites (pinrig.cases.selftests).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# gup_test matrix: (subtest name, argv after the binary); "{LONGTERM}" is the tree's FOLL_LONGTERM
GUP_TEST_MATRIX = (
    ("longterm-rw-shared", ["-L", "-w", "-S"]),
    ("longterm-ro-shared", ["-L", "-W", "-S"]),
    ("longterm-rw-private", ["-L", "-w"]),
    ("fast-longterm-rw-shared", ["-a", "-F", "{LONGTERM}", "-w", "-S"]),
    ("fast-longterm-rw-private", ["-a", "-F", "{LONGTERM}", "-w"]),
)


def gup_test_matrix(longterm: int) -> list:
    return [(name, [a.replace("{LONGTERM}", hex(longterm)) for a in args])
            for name, args in GUP_TEST_MATRIX]


@dataclass
class Subtest:
    test: str                 # gup_longterm / gup_test
    fs: str
    number: int
    name: str
    result: str               # pass / fail / skip / pinned / refused / error
    detail: str = ""

    @property
    def id(self) -> str:
        return f"{self.test}/{self.fs}/{self.number}:{self.name}"


# ---------------------------------------------------------------------------- TAP

_TAP_RE = re.compile(r"^(not ok|ok)\s+(\d+)\s*(?:-\s*)?(.*?)\s*(?:#\s*(\w+)\s*(.*))?$")
_RUN_RE = re.compile(r"^#\s*\[RUN\]\s*(.+?)\s*$")


def parse_tap(text: str, test: str, fs: str) -> tuple:
    """kselftest TAP → (plan or None, [Subtest], exit summary line or ''). A subtest's name is
    its description, else the last '# [RUN] …' line before it (how gup_longterm names cases)."""
    plan = None
    subs = []
    last_run = ""
    totals = ""
    for raw in text.splitlines():
        line = raw.strip()
        m = re.match(r"^1\.\.(\d+)", line)
        if m:
            plan = int(m.group(1))
            continue
        m = _RUN_RE.match(line)
        if m:
            last_run = m.group(1)
            continue
        if line.startswith("# Totals:"):
            totals = line[2:]
            continue
        m = _TAP_RE.match(line)
        if m:
            status, num, desc, directive, reason = m.groups()
            directive = (directive or "").upper()
            if directive == "SKIP":
                result = "skip"
            elif directive == "XFAIL":
                result = "pass"
            else:
                result = "pass" if status == "ok" else "fail"
            name = last_run or desc or f"test {num}"
            detail = (reason or desc or "").strip()
            if desc and last_run and desc != last_run:
                detail = desc if not reason else f"{desc}: {reason}"
            subs.append(Subtest(test, fs, int(num), name, result, detail.strip()))
    return plan, subs, totals


def parse_gup_test(name: str, number: int, fs: str, rc: int, out: str) -> Subtest:
    """One gup_test run → pinned / refused (nothing pinned: 'truncated (size: 0)') / error."""
    if rc == 4:                        # KSFT_SKIP: no debugfs or no CONFIG_GUP_TEST
        return Subtest("gup_test", fs, number, name, "skip", out.strip()[-200:])
    if rc != 0:
        return Subtest("gup_test", fs, number, name, "error", f"exit {rc}: {out.strip()[-200:]}")
    timing = next((line.strip() for line in out.splitlines() if "Time:" in line), "")
    m = re.search(r"truncated \(size: (\d+)\)", out)
    if m and int(m.group(1)) == 0:
        return Subtest("gup_test", fs, number, name, "refused", timing)
    if m:
        return Subtest("gup_test", fs, number, name, "partial", timing)
    if timing:
        return Subtest("gup_test", fs, number, name, "pinned", timing)
    return Subtest("gup_test", fs, number, name, "error", out.strip()[-200:] or "no output")
