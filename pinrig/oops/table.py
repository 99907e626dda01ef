"""The shape of a report table: the types :mod:`pinrig.oops.linux` fills in and
:mod:`pinrig.oops.engine` reads.

Nothing here knows about any particular kernel; the types only say what a
table entry can express.  Standard library only.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, FrozenSet, Optional, Sequence, Tuple

__all__ = ["PARSE", "Stack", "Format", "Oops", "Continuation", "Table"]

class _Parse:
    """Type of :data:`PARSE` (a marker, compared by identity)."""

    def __repr__(self) -> str:
        return "PARSE"


PARSE = _Parse()  # stack part: "parse a stack trace from here"


@dataclass(frozen=True)
class Stack:
    """Where the guilty frame of a report comes from.

    ``parts`` are matched against the report's lines in order: a regex
    consumes lines up to its first match and contributes its captured
    function names; ``PARSE`` parses a stack trace from there on.  ``parts2``
    is tried when ``parts`` yields no usable frame.  Frames matching ``skip``
    (or the table's common skip list) are never guilty.  ``extractor`` picks
    the frame from the candidate list instead of taking the first one.
    """
    parts: Tuple[object, ...]
    parts2: Tuple[object, ...] = ()
    skip: Tuple[str, ...] = ()
    extractor: Optional[Callable[[Sequence[str]], str]] = None


@dataclass(frozen=True)
class Format:
    """One report shape: ``title`` regex, title template ``fmt`` ({1}, {2}...
    are the regex groups, then the guilty frame(s)), and how to get the frame."""
    title: "re.Pattern[str]"
    fmt: str
    kind: str
    report: Optional["re.Pattern[str]"] = None
    stack: Optional[Stack] = None
    no_stack: bool = False      # the report has no stack trace by nature
    corrupted: bool = False     # this shape only occurs in damaged reports
    bare: str = ""              # title when the stack yields no frame (not corrupted)


@dataclass(frozen=True)
class Oops:
    """A report class: a line containing ``header`` starts a report."""
    header: str
    formats: Tuple[Format, ...]
    kind: str
    suppress: Tuple["re.Pattern[str]", ...] = ()
    at_start: bool = False       # header must begin the message
    need_format: bool = False    # the line must match one of the formats' titles
    extra: bool = False          # not a syzkaller class: never ends another report
    weak: bool = False           # folded into a report that starts right after it
    restart: bool = False        # the kernel booting again (not before it first came up)
    prefix_only: bool = False    # only counts at the start of the message ("WARNING:")
    #                              unless one of its formats' titles matches


@dataclass(frozen=True)
class Continuation:
    """A line that continues the report under way instead of starting its own:
    it matches ``pattern``, comes at most ``window`` lines after the start of
    the open report, and the open report is of one of ``kinds`` (() = any)."""
    pattern: "re.Pattern[str]"
    window: int
    kinds: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    """Everything the engine knows about one kernel's report formats."""
    oopses: Tuple[Oops, ...]
    kinds: Tuple[str, ...]
    # report assembly
    continuations: Tuple[Continuation, ...]
    start_ignores: Tuple["re.Pattern[str]", ...]   # headers that do not end the report before them
    info_with_stack: Tuple[str, ...]   # messages with a stack that are no bug: they end a report
    weak_window: int                   # a weak header folds into a report starting this close after
    once_kinds: FrozenSet[str]         # the same report of these kinds repeated: reported once
    evidence_kinds: FrozenSet[str]     # listed after the other reports; text ends at a foreign line
    evidence_text: "re.Pattern[str]"   # lines that continue an evidence report's text
    end_marker: str                    # "---[ end": a report's closing line (starts no report)
    end_trace: str                     # the closing line after which registers may be re-printed
    end_panic: str                     # the final line of a panic
    taint_line: str                    # a line that is never part of a report's title text
    cpu_backtrace: str                 # from here, lines of other CPUs' contexts belong too
    tail_markers: Tuple[str, ...]      # consequences of the report: dropped when it is long enough
    short_report: str                  # header of reports that are long enough sooner
    # console
    banner: "re.Pattern[str]"          # the kernel's boot banner
    # stacks
    call_trace: "re.Pattern[str]"
    rip: "re.Pattern[str]"
    user_rip: str                      # a RIP line in user mode (no kernel function)
    stack_start: Tuple["re.Pattern[str]", ...]    # lines that start a stack trace
    stack_present: Tuple["re.Pattern[str]", ...]  # lines that say "a stack trace follows"
    frame_res: Tuple["re.Pattern[str]", ...]      # a frame line (group 1: the function)
    corrupted_lines: Tuple["re.Pattern[str]", ...]  # lines that mean the stack is garbled
    frame_line: "re.Pattern[str]"      # a call-trace frame with an offset (for CrashReport.frames)
    inline_frame: "re.Pattern[str]"    # an inlined frame ("foo file.c:12 [inline]")
    trace_noise: "re.Pattern[str]"     # register dumps and markers inside a call trace
    trace_end: "re.Pattern[str]"       # lines that end a call trace
    after_end: "re.Pattern[str]"       # lines that may follow the end marker
    skip_common: Tuple[str, ...]       # frames that are never guilty (regexes, searched)
    strip_prefixes: Tuple[str, ...]    # syscall wrapper prefixes stripped from frames
    fatal_kinds: FrozenSet[str] = frozenset()   # kinds that end the kernel (or the task)
