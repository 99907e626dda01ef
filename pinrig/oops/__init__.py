"""Kernel console output -> crash reports.

Turns a raw console log (serial capture, dmesg, journal) into a list of
:class:`CrashReport` values with syzkaller-compatible titles, so that the same
bug gets the same title on every run and on every kernel, and a kernel
developer recognises it at once ("WARNING in ext4_dirty_folio",
"kernel BUG in mpage_prepare_extent_to_map", "possible deadlock in ...").

The package is split in two: :mod:`pinrig.oops.engine` is a generic
crash-report engine (console decoding, report assembly, titles, the CLI) and
:mod:`pinrig.oops.linux` is the table of Linux's report formats it applies
(the report kinds are documented there); :mod:`pinrig.oops.table` holds the
types of that table.  This module wires the two together: the functions below
parse with the Linux table.

Standard library only.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Union

from pinrig.oops import engine, linux
from pinrig.oops.engine import CrashReport, ScanStats, format_text, normalize_title, split_by_case
from pinrig.oops.linux import KINDS

__all__ = [
    "CrashReport",
    "KINDS",
    "ScanStats",
    "parse_console",
    "normalize_title",
    "split_by_case",
    "reboots",
    "format_text",
    "main",
]

_PARSER = engine.ReportParser(linux.TABLE)


def parse_console(data: Union[bytes, str], stats: Optional[ScanStats] = None) -> List[CrashReport]:
    """All Linux kernel reports in a console log; ``reports[0]`` is the headline.

    Kernel reports come in log order, followed by the filesystem reports
    (kind ``fs-error``) in log order: an ``EXT4-fs error`` printed before a
    ``kernel BUG`` is evidence, the BUG is the crash.  A report whose title was
    seen before is not listed again: the first one's ``count`` goes up.  At
    most ``MAX_REPORTS`` different reports are listed, plus the last fatal
    one (BUG/Oops/GPF/panic) when it is not among them (see
    :mod:`pinrig.oops.engine`).  ``stats``, when given, counts the work done
    (see :class:`ScanStats`)."""
    return _PARSER.parse(data, stats)


def reboots(data: Union[bytes, str]) -> List[int]:
    """1-based lines of "Linux version" boot banners after the first one: each
    means the guest rebooted (unexpectedly, for a test run)."""
    return _PARSER.reboots(data)


def main(argv: Optional[List[str]] = None) -> int:
    """``rig oops [--json] [--vmlinux F] [--modules DIR] LOG...``: reads each LOG as a stream and prints its
    reports (with ``--json``: ``{"LOG": [report, ...]}``).  An unreadable LOG
    gets one line on stderr and does not stop the others.  Returns 0 when every
    LOG was read, 2 when one could not be (or on a usage error); see
    :func:`pinrig.oops.engine.main`."""
    args = list(argv if argv is not None else sys.argv[1:])
    vmlinux, modules = _take(args, "--vmlinux"), _take(args, "--modules")
    if isinstance(vmlinux, int) or isinstance(modules, int):
        return 2
    post = None
    if vmlinux or modules:
        from pinrig.oops.symbolize import Symbolizer, symbolize_reports
        sym = Symbolizer(vmlinux, [modules] if modules else [])
        post = lambda reports: symbolize_reports(reports, sym)   # noqa: E731
    return engine.main(args, parser=_PARSER, post=post)


def _take(args: List[str], flag: str) -> Union[Path, None, int]:
    """Remove `flag PATH` from args: the path (checked), None when absent, 2 when bad."""
    if flag not in args:
        return None
    i = args.index(flag)
    if i + 1 >= len(args):
        print(f"rig oops: {flag} needs a path", file=sys.stderr)
        return 2
    path = Path(args[i + 1])
    del args[i:i + 2]
    if not path.exists():
        print(f"rig oops: {flag} {path}: no such file or directory", file=sys.stderr)
        return 2
    return path


def reports_in(console, symbolizer=None) -> tuple:
    """The kernel reports in a console slice, symbolized when the kernel's symbols are at hand.
    Returns (reports, note): a symbolizer that fails leaves the reports unsymbolized and says
    why in the note (the evidence is never lost to it)."""
    from pinrig.oops.symbolize import symbolize_reports
    reports = parse_console(console)
    if symbolizer is None:
        return reports, ""
    try:
        symbolize_reports(reports, symbolizer)
    except (OSError, subprocess.SubprocessError) as e:
        for r in reports:
            r.where = ""
        return reports, f"symbolizing failed ({e})"
    return reports, ""
