"""The crash-report engine: console log + report table -> crash reports.

Turns a raw console log (serial capture, dmesg, journal) into a list of
:class:`CrashReport` values with syzkaller-compatible titles, so that the same
bug gets the same title on every run and on every kernel.  What a report looks
like comes from a :class:`~pinrig.oops.table.Table` (for Linux:
:data:`pinrig.oops.linux.TABLE`); this module only applies it.

How it works (the model is syzkaller's pkg/report, re-expressed here):

* Every console line is cleaned (CR, ANSI escapes, control bytes removed,
  capped at ``MAX_LINE`` characters) and split into its console prefix
  (``<4>``, ``[   12.345678]``, printk caller id ``[ T123]`` / ``[C1]``) and
  the message.  The caller id (or "console" for timestamp-only lines, or ""
  for unprefixed lines) is the line's *context*: a report is assembled from
  lines of its own context only, which untangles output interleaved from
  several CPUs/tasks when CONFIG_PRINTK_CALLER is on.
* A line containing one of the table's headers starts a report, unless it
  merely continues the report under way (the table's continuations).  The
  report's title comes from the table entry's formats: the format whose title
  regex matches earliest wins, and its stack recipe names the guilty frame.
* Frames are function names with offsets and compiler suffixes (``.isra.0``,
  ``.constprop.0``, ``.cold``, ``.part.0`` ...) stripped; frames marked ``?``
  are never used.
* A report is ``corrupted`` when it is cut off or interleaved so that the
  title cannot be trusted: no stack trace, a stack keyword with no frames
  after it, or no guilty frame found (the title then ends in ``in corrupted``,
  as syzkaller does).
* Titles go through syzkaller's dynamic replacement (addresses -> ADDR, line
  numbers -> LINE, numbers -> NUM, ...), so they are already stable;
  :func:`normalize_title` applies a few more rules to get a grouping key.

The same report seen again (same title) is not listed twice: the first one
is kept and its ``count`` says how often it was seen.  At most
``MAX_REPORTS`` different reports are listed; past that, a new report is still
listed when it is fatal (one of the table's ``fatal_kinds``) and no other
fatal report starts within ``MAX_ANALYSED_LINES`` lines after it, so the last
fatal report of a log -- the crash -- is never lost behind a flood of
warnings.  Working out titles for deduplication costs at most
``MAX_TITLE_WORK`` line visits per log; after that only fatal reports are
looked at (:attr:`ScanStats.skipped` counts the others).

The log is read as a stream (:meth:`ReportParser.parse_file` reads files in
chunks): each line is cut at ``MAX_LINE`` characters, only a window of about
``MAX_ANALYSED_LINES`` lines around reports under analysis is held, a report
keeps at most ``MAX_TEXT_LINES`` lines / ``MAX_TEXT_CHARS`` characters of
text, so memory does not grow with the log.  A :class:`ScanStats` passed to
the parse counts the work done.

Standard library only.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import deque
from dataclasses import dataclass
from typing import (
    IO,
    Callable,
    Deque,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from pinrig.oops.table import PARSE, Format, Oops, Stack, Table

__all__ = [
    "CrashReport",
    "ScanStats",
    "ReportParser",
    "normalize_title",
    "split_by_case",
    "format_text",
    "main",
    "MAX_LINE",
    "MAX_ANALYSED_LINES",
    "MAX_TEXT_LINES",
    "MAX_TEXT_CHARS",
    "MAX_REPORTS",
    "MAX_TITLE",
    "MAX_TITLE_WORK",
    "MAX_WINDOW_LINES",
]

MAX_LINE = 4096            # characters kept of any console line
MAX_ANALYSED_LINES = 3000  # lines of a report looked at for its title
MAX_TEXT_LINES = 400       # lines kept in CrashReport.text
MAX_TEXT_CHARS = 64 * 1024
MAX_REPORTS = 100          # different reports listed for one log (+1 fatal, see above)
MAX_TITLE = 120
MAX_TITLE_WORK = MAX_ANALYSED_LINES * MAX_REPORTS   # line visits spent on titles, per log

_LOOKBACK = 20          # lines before a report's header that may go into its text
_TRIM_SLACK = 1024      # the line window is trimmed once this many lines are droppable
_CHUNK = 1 << 20        # bytes read from a file at a time
_PIECE_BYTES = 4 * MAX_LINE + 8   # bytes kept of a line: enough for MAX_LINE characters
_MAX_ONCE_KEYS = 4 * MAX_REPORTS  # repeated-once complaints remembered
# Console lines held at once: a report's MAX_ANALYSED_LINES, the table's
# weak_window and _LOOKBACK lines around it (both << _TRIM_SLACK), the slack.
MAX_WINDOW_LINES = MAX_ANALYSED_LINES + 2 * _TRIM_SLACK


@dataclass
class ScanStats:
    """How much work a parse did: pass one to :meth:`ReportParser.parse` /
    :meth:`ReportParser.parse_file` (or ``pinrig.oops.parse_console``); counts
    add up over several parses.  The counts grow at most linearly with the
    input, with factors from the ``MAX_*`` constants whatever the input looks
    like; ``max_window`` does not grow with it at all."""
    lines: int = 0          # console lines read (a bare CR splits a line too)
    chars: int = 0          # characters of those lines kept for matching (<= MAX_LINE each)
    headers: int = 0        # lines that look like a report header
    starts: int = 0         # reports started (repeats of a title included)
    titled: int = 0         # starts whose title was worked out
    reports: int = 0        # reports worked out in full (listed, or replaced past the cap)
    skipped: int = 0        # starts neither listed nor counted (over the cap or the budget)
    title_lines: int = 0    # line visits while working out titles (<= MAX_TITLE_WORK + ...)
    report_lines: int = 0   # line visits while working out full reports (body, text, frames)
    regex_chars: int = 0    # characters of report text handed to title/stack regexes
    max_window: int = 0     # most console lines held at once (<= MAX_WINDOW_LINES)


# --------------------------------------------------------------------------
# Console lines.

_ANSI_RE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[()][0-9A-Za-z]|[@-Z\\-_])")
_CTRL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PREFIX_RE = re.compile(
    r"(?:\*\* [0-9]+ printk messages dropped \*\* )?(?:<[0-9]+>)?"
    r"\[ *([0-9]+\.[0-9]+)\](?: ?\[ *([CT][0-9]+)\])?(?: |$)", re.ASCII)
_LEVEL_RE = re.compile(r"<[0-9]{1,2}>", re.ASCII)
_QUESTIONABLE = " ? "   # a frame the unwinder is not sure of: " [<ffffffff8123>] ? foo+0x1/0x2"
_CASE_MARKER = "pinrig: case-"   # the rig's kmsg markers (see split_by_case)


class _Line:
    """One console line (a bare CR splits a physical line into several)."""
    __slots__ = ("num", "raw", "text", "context", "questionable", "stamp", "banner",
                 "restart", "restarts_before")

    def __init__(self, num: int, raw: str, text: str, context: str, questionable: bool,
                 stamp: Optional[float]) -> None:
        self.num = num                # 1-based physical line number in the log
        self.raw = raw                # cleaned line, console prefix kept
        self.text = text              # message without console prefix ('?' frames reduced)
        self.context = context        # "", "console" or the printk caller id ("T123", "C1")
        self.questionable = questionable
        self.stamp = stamp
        self.banner = False           # a boot banner
        self.restart = False          # the kernel (re)starts booting here
        self.restarts_before = 0      # restart lines before this one in the log


def _trie(words: Sequence[str]) -> str:
    """A regex source that matches where any of ``words`` (non-empty) begins."""
    follow: Dict[str, List[str]] = {}
    ends = False
    for word in words:
        if word:
            follow.setdefault(word[0], []).append(word[1:])
        else:
            ends = True
    alts = [re.escape(ch) + _trie(rest) for ch, rest in sorted(follow.items())]
    if not alts:
        return ""
    if ends:
        return "(?:" + "|".join(alts) + ")?"
    return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"


def _decode(data: Union[bytes, bytearray, str]) -> str:
    if isinstance(data, (bytes, bytearray)):
        return bytes(data).decode("utf-8", errors="replace")
    return str(data)


def _text_pieces(text: str) -> Iterator[Tuple[int, str]]:
    """(physical line number, piece) of a log in memory: lines split at LF, and
    at bare CRs inside a line; CRs around a line are dropped."""
    pos, num = 0, 0
    while True:
        num += 1
        end = text.find("\n", pos)
        stop = len(text) if end < 0 else end
        if text.find("\r", pos, stop) < 0:
            # the usual case: no CR, and only MAX_LINE characters are looked at
            yield num, text[pos:min(stop, pos + MAX_LINE)]
        else:
            physical = text[pos:stop].strip("\r")
            for piece in physical.split("\r"):
                yield num, piece
        if end < 0:
            return
        pos = end + 1


class _LineSplitter:
    """One physical line fed in fragments of bytes: gives out its pieces (split
    at bare CRs, CRs around the line dropped) with each piece's bytes capped
    at ``_PIECE_BYTES`` (they decode to at least the MAX_LINE characters that
    are looked at)."""

    def __init__(self) -> None:
        self.active = False   # part of a line was fed
        self.buf = bytearray()
        self.filled = False   # the current piece has at least one byte
        self.started = False  # a non-empty piece of this line was given out
        self.held = 0         # empty pieces (CR CR) given out only if a non-empty one follows

    def feed(self, data: bytes) -> Iterator[str]:
        self.active = True
        pos = 0
        while True:
            cr = data.find(b"\r", pos)
            stop = len(data) if cr < 0 else cr
            if stop > pos:
                self.filled = True
                room = _PIECE_BYTES - len(self.buf)
                if room > 0:
                    self.buf += data[pos:min(stop, pos + room)]
            if cr < 0:
                return
            if self.filled:
                yield from self._piece()
            elif self.started:
                self.held += 1
            pos = cr + 1

    def close(self) -> Iterator[str]:
        """The end of the line."""
        if self.filled:
            yield from self._piece()
        elif not self.started:
            yield ""
        self.active = self.started = False
        self.held = 0

    def _piece(self) -> Iterator[str]:
        if self.started:
            for _ in range(self.held):
                yield ""
        yield bytes(self.buf).decode("utf-8", errors="replace")
        self.started, self.held = True, 0
        self.buf.clear()
        self.filled = False


def _file_pieces(chunks: Iterable[bytes]) -> Iterator[Tuple[int, str]]:
    """The same as :func:`_text_pieces` for a log read in chunks of bytes, in
    bounded memory (see _LineSplitter)."""
    num = 1
    split = _LineSplitter()
    for chunk in chunks:
        parts = chunk.split(b"\n")
        for k in range(len(parts) - 1):
            part = parts[k]
            if not split.active and len(part) <= _PIECE_BYTES and b"\r" not in part:
                yield num, part.decode("utf-8", errors="replace")   # the usual case
            else:
                for piece in split.feed(part):
                    yield num, piece
                for piece in split.close():
                    yield num, piece
            num += 1
        if parts[-1]:
            for piece in split.feed(parts[-1]):
                yield num, piece
    for piece in split.close():
        yield num, piece


def _read_chunks(fh: IO[bytes], size: int) -> Iterator[bytes]:
    while True:
        chunk = fh.read(size)
        if not chunk:
            return
        yield chunk


def _clean(line: str) -> str:
    line = line[:MAX_LINE]
    if "\x1b" in line:
        line = _ANSI_RE.sub("", line)
    if _CTRL_RE.search(line):
        line = _CTRL_RE.sub("", line)
    return line


def _split_prefix(line: str) -> Tuple[str, str, Optional[float]]:
    """(context, message, timestamp) of a cleaned console line."""
    m = _PREFIX_RE.match(line)
    if m is None and " login: " in line:
        # "syzkaller login: [   12.3] BUG: ..." -- a getty prompt got glued on
        pos = line.find(" login: ")
        m2 = _PREFIX_RE.match(line, pos + 8)
        if m2 is not None:
            m = m2
    if m is None:
        lm = _LEVEL_RE.match(line)
        return "", (line[lm.end():] if lm else line), None
    ctx = m.group(2) or "console"
    return ctx, line[m.end():], float(m.group(1))


# --------------------------------------------------------------------------
# Title sanitizing (syzkaller's dynamic replacements) and normalization.

_REPLACEMENTS: Tuple[Tuple["re.Pattern[str]", str], ...] = tuple(
    (re.compile(p, re.ASCII), r) for p, r in (
        (r"syz-executor\.?[0-9]+((/|:)[0-9]+)?", "syz-executor"),
        (r"syzkaller[0-9]+((/|:)[0-9]+)?", "syzkaller"),
        (r"([^a-zA-Z0-9])(?:0x)?[0-9a-f]{6,}", r"\1ADDR"),          # addresses
        (r"([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})", "IP"),
        (r"(?<![\w:])(?:(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|"
         r"(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*)?::(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*)?)"
         r"(?![\w:])", "IPV6ADDR"),
        (r"(\.\w+)(:[0-9]+)+", r"\1:LINE"),                           # file.c:123
        (r"([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+", r"\1"),  # func+0x1/0x2
        (r"CPU#[0-9]+", "CPU"),
        (r"(\W)(\d+)(\W|$)", r"\1NUM\3"),
        (r"\d{7,}", "NUM"),
    ))
# Extra rules for the grouping key only (titles keep syzkaller's form).
_NORMALIZE_EXTRA: Tuple[Tuple["re.Pattern[str]", str], ...] = tuple(
    (re.compile(p, re.ASCII), r) for p, r in (
        (r"\b0x[0-9a-fA-F]+\b", "ADDR"),
        (r"\b[0-9]+(?:s|ms|us|ns|min|sec|seconds|jiffies)\b", "NUM"),
        (r"\[[^\]\[]*[:/][0-9]+\]", "[TASK]"),                       # [comm:pid]
        (r"\b(?:pid|PID|tid)[ =:]+[0-9]+", "pid NUM"),
        (r"(\W)(?:NUM|ADDR)(?:[.,:/-](?:NUM|ADDR|[0-9]+))+", r"\1NUM"),
    ))


def _replace_all(table: Sequence[Tuple["re.Pattern[str]", str]], text: str) -> str:
    for pattern, repl in table:
        for _ in range(50):
            new = pattern.sub(repl, text)
            if new == text:
                break
            text = new
    return text


def _sanitize(title: str) -> str:
    out: List[str] = []
    prev = " "
    for ch in title[:MAX_TITLE]:
        if ch == "\t":
            ch = " "
        elif ch < " " or ch >= "\x7f":
            continue
        if ch == " " and prev == " ":
            continue
        out.append(ch)
        prev = ch
    return "".join(out).strip()


def _make_title(desc: str) -> str:
    return _sanitize(_replace_all(_REPLACEMENTS, desc))


def normalize_title(title: str) -> str:
    """A stable grouping key for a title: addresses, numbers, line numbers,
    pids and CPU numbers replaced, whitespace collapsed.  Idempotent; the same
    bug seen with different addresses/lines/pids gives the same key."""
    text = _replace_all(_REPLACEMENTS, _sanitize(title))
    text = _replace_all(_NORMALIZE_EXTRA, text)
    return _sanitize(text)


_TITLE_FRAME_RE = re.compile(r".* in ((?:<[a-zA-Z0-9_: ]+>)?[a-zA-Z0-9_:]+)")
_TIMESTAMP_IN_TITLE = re.compile(r"\[ *[0-9]+\.[0-9]+\]")


def _title_frame(title: str) -> str:
    m = _TITLE_FRAME_RE.match(title)
    return m.group(1) if m else ""


# --------------------------------------------------------------------------
# Reports.


@dataclass
class CrashReport:
    """One kernel report found in a console log."""
    title: str          # syzkaller-style title, e.g. "WARNING in ext4_set_page_dirty"
    kind: str           # one of the table's kinds (pinrig.oops.KINDS)
    frames: List[str]   # call-trace function names ('?' frames excluded, suffixes stripped)
    corrupted: bool     # cut off or interleaved: title/frames not fully trustworthy
    line: int           # 1-based line in the log where the report starts
    text: str           # the report's (cleaned) lines, capped
    frame: str = ""     # the guilty function named in the title ("" if none)
    count: int = 1      # times a report with this title was seen (this one is the first)
    # set by pinrig.oops.symbolize when vmlinux/modules with debug info are at hand:
    locations: Optional[List[dict]] = None   # per frame: {"frame", "locations": [...]}
    where: str = ""     # file:line of the guilty frame

    @property
    def normalized(self) -> str:
        return normalize_title(self.title)

    def to_dict(self) -> dict:
        return {
            "title": self.title,
            "kind": self.kind,
            "frame": self.frame,
            "frames": list(self.frames),
            "corrupted": self.corrupted,
            "line": self.line,
            "normalized": self.normalized,
            "text": self.text,
            "count": self.count,
        } | ({"where": self.where, "locations": self.locations}
             if self.locations is not None else {})


@dataclass
class _Description:
    title: str
    corrupted: bool
    fmt: Optional[Format]


def _frame_names(match: "re.Match[str]", skip: "re.Pattern[str]") -> List[str]:
    return [g for g in match.groups() if g and not skip.search(g)]


class ReportParser:
    """Finds the reports of one report table in console logs."""

    def __init__(self, table: Table) -> None:
        if table.weak_window + _LOOKBACK + 1 > _TRIM_SLACK:
            raise ValueError(f"weak_window {table.weak_window} is too large")
        self.table = table
        # matches wherever a header occurs (a trie of the headers: faster than
        # an alternation of them, it is run on every line)
        self._header_re = re.compile(_trie([o.header for o in table.oopses]))
        self._restart_headers = tuple(o.header for o in table.oopses if o.restart)
        self._skip_cache: Dict[Tuple[str, ...], "re.Pattern[str]"] = {}

    # ---------------------------------------------------------------- lines

    def _line(self, num: int, piece: str) -> _Line:
        return self._line_from_raw(num, _clean(piece))

    def _line_from_raw(self, num: int, raw: str) -> _Line:
        ctx, text, stamp = _split_prefix(raw)
        questionable = False
        if ctx and "<EOI>" not in text:
            q = text.find(_QUESTIONABLE)
            if q != -1:
                text = text[q + 2:]
                questionable = True
            elif text.endswith(" (unreliable)"):
                text = text[:-13]
                questionable = True
        line = _Line(num, raw, text, ctx, questionable, stamp)
        # with timestamps the kernel's banner is printed at 0.000000; a
        # later banner is somebody cat'ing /proc/version
        line.banner = (bool(self.table.banner.match(text))
                       and (stamp is None or stamp == 0.0))
        line.restart = line.banner or text.startswith(self._restart_headers)
        return line

    def _feed(self, pieces: Iterable[Tuple[int, str]], stats: Optional[ScanStats]
              ) -> List[CrashReport]:
        scan = _Scan(self, stats)
        add = scan.add
        for num, piece in pieces:
            add(num, piece)
        return scan.finish()

    def _match_oops(self, line: _Line) -> Optional[Oops]:
        text = line.text
        if not self._header_re.search(text) or text.startswith(self.table.end_marker):
            return None
        for oops in self.table.oopses:
            pos = text.find(oops.header)
            if pos == -1:
                continue
            if any(s.search(text) for s in oops.suppress):
                continue
            if oops.at_start and pos != 0:
                continue
            if oops.need_format or (oops.prefix_only and pos != 0):
                # only recognised shapes count
                probe = text + "\n"
                if not any(f.title.search(probe) for f in oops.formats if not f.corrupted):
                    continue
            return oops
        return None

    # ------------------------------------------------- title and frame extraction

    def _skip_re(self, stack: Stack) -> "re.Pattern[str]":
        cached = self._skip_cache.get(stack.skip)
        if cached is None:
            cached = re.compile("|".join(self.table.skip_common + stack.skip), re.ASCII)
            self._skip_cache[stack.skip] = cached
        return cached

    def _strip_frame(self, name: str) -> str:
        best = name
        for prefix in self.table.strip_prefixes:
            if name.startswith(prefix) and len(name) - len(prefix) < len(best):
                best = name[len(prefix):]
        return best

    def _stack_frames(self, stack: Stack, text: str) -> Tuple[List[str], bool]:
        skip = self._skip_re(stack)

        def pick(raw: List[str]) -> str:
            if not raw:
                return ""
            stripped = [self._strip_frame(f) for f in raw]
            return stack.extractor(stripped) if stack.extractor else stripped[0]

        frames, ok = self._walk_parts(stack.parts, text, skip, pick)
        if ok or not stack.parts2:
            return frames, ok
        return self._walk_parts(stack.parts2, text, skip, pick)

    def _walk_parts(self, parts: Sequence[object], text: str, skip: "re.Pattern[str]",
                    pick: Callable[[List[str]], str]) -> Tuple[List[str], bool]:
        table = self.table
        lines = text.split("\n")
        pos, i, stacks = 0, 0, 0
        raw: List[str] = []
        results: List[str] = []
        ok = True
        while True:
            if i == len(parts) or (parts[i] is PARSE and stacks > 0):
                key = pick(raw)
                if not key:
                    key, ok = "corrupted", False
                results.append(key)
                raw = []
            if i == len(parts):
                break
            part = parts[i]
            if part is PARSE:
                stacks += 1
                nxt = parts[i + 1] if i + 1 < len(parts) and parts[i + 1] is not PARSE else None
                while pos < len(lines):
                    ln = lines[pos]
                    pos += 1
                    if any(r.search(ln) for r in table.corrupted_lines):
                        ok = False
                        break
                    if any(r.search(ln) for r in table.stack_start):
                        break
                    if nxt is not None:
                        m = nxt.search(ln)  # type: ignore[attr-defined]
                        if m is not None:
                            raw += _frame_names(m, skip)
                            i += 1
                            break
                    for fre in table.frame_res:
                        m = fre.search(ln)
                        if m is not None:
                            raw += _frame_names(m, skip)
                            break
            else:
                while pos < len(lines):
                    ln = lines[pos]
                    pos += 1
                    if any(r.search(ln) for r in table.corrupted_lines):
                        ok = False
                        break
                    m = part.search(ln)  # type: ignore[attr-defined]
                    if m is not None:
                        raw += _frame_names(m, skip)
                        break
            i += 1
        return results, ok

    def _describe(self, text: str, oops: Oops) -> _Description:
        start = len(text) + 1
        desc, corrupted, used = "", False, None
        matched_title = False
        for f in oops.formats:
            m = f.title.search(text)
            if m is None or m.start() > start or (m.start() == start and desc):
                continue
            if m.start() < start:
                desc, used, start = "", None, m.start()
            matched_title = True
            if f.report is not None:
                m = f.report.search(text)
                if m is None:
                    continue
            args = [g or "" for g in m.groups()]
            corrupted = False
            frames: List[str] = []
            if f.stack is not None:
                frames, ok = self._stack_frames(f.stack, text[m.start():])
                corrupted = not ok
                if corrupted and f.bare:
                    desc, corrupted, used = f.bare, False, f
                    continue
            desc = f.fmt.format("", *args, *frames)
            used = f
        if not desc:
            corrupted = matched_title
            pos = text.find(oops.header)
            end = text.find("\n", pos)
            desc = text[pos:end if end != -1 else len(text)] if pos != -1 else oops.header
        if used is not None and used.corrupted:
            corrupted = True
        return _Description(desc, corrupted, used)

    def _is_corrupted(self, title: str, text: str, fmt: Optional[Format]) -> bool:
        table = self.table
        if _TIMESTAMP_IN_TITLE.search(title):
            return True   # another line got merged into the header
        if fmt is None or fmt.no_stack:
            return False
        has_stack = False
        for key in table.stack_present:
            m = key.search(text)
            if m is None:
                continue
            after = text[text.rfind("\n", 0, m.start()) + 1:].split("\n", 16)
            if len(after) < 4:
                return True   # call trace is cut off
            found = False
            for ln in after[1:16]:
                if any(k.search(ln) for k in table.stack_start):
                    break
                if "(stack is not available)" in ln or any(r.search(ln) for r in table.frame_res):
                    found = True
                    break
            if not found:
                return True   # a stack keyword with no frames after it
            has_stack = True
        return not has_stack

    # ------------------------------------------------------------- report parts

    def _report_body(self, win: "_Window", start: int, stats: Optional[ScanStats],
                     title_only: bool = False) -> Tuple[str, str, bool]:
        """syzkaller's report assembly: the lines of the report's context from the
        header on (questionable frames dropped), and the part of it that precedes
        the next report ("title text").  With ``title_only`` the scan stops once
        the title text is complete; the third value says whether the body is
        complete all the same."""
        table = self.table
        line, headers = win.line, win.headers
        first = line(start)
        ctx = first.context
        body: List[str] = []
        title_len = 0
        second = False
        cpu_traceback = False
        skip_text = False
        min_lines = 16 if table.short_report in first.text else 22
        count = 0
        visits = 0
        complete = True
        for idx in range(start, min(win.end, start + MAX_ANALYSED_LINES)):
            ln = line(idx)
            visits += 1
            is_start = idx == start
            if not is_start and ln.restart:
                break   # the machine rebooted: nothing after this belongs to the report
            if not is_start and not second:
                oops = headers.get(idx)
                if oops is not None and not oops.extra:
                    if not any(r.search(ln.text) for r in table.start_ignores):
                        second = True
                elif any(p in ln.text for p in table.info_with_stack):
                    second = True
                if second and title_only and ctx in ("", "console"):
                    complete = False
                    break   # the title text cannot grow any more
            if not is_start and (ln.questionable or (ln.context != ctx and not (
                    cpu_traceback and ln.context.startswith("C")))):
                continue
            count += 1
            skip = skip_text
            if table.taint_line in ln.text:
                skip = True
            elif table.cpu_backtrace in ln.text:
                cpu_traceback = True
            elif count > min_lines and any(t in ln.text for t in table.tail_markers):
                # a consequence of the report: the real report is long enough already
                skip_text = skip = True
            if not is_start and skip:
                continue
            body.append(ln.text)
            if not second or ctx not in ("", "console"):
                title_len = len(body)
        if stats is not None:
            stats.report_lines += visits
        return "\n".join(body) + "\n", "\n".join(body[:title_len]) + "\n", complete

    def _call_trace(self, body: str, stats: Optional[ScanStats]) -> List[str]:
        """Function names of the report's first call trace ('?' frames are gone
        already), preceded by the function of a kernel-mode RIP/PC line printed
        before it."""
        table = self.table
        lines = body.split("\n")
        if stats is not None:
            stats.report_lines += len(lines)
        start = next((i for i, ln in enumerate(lines) if table.call_trace.search(ln)), None)
        if start is None:
            start = next((i for i, ln in enumerate(lines)
                          if any(k.search(ln) for k in table.stack_present)), None)
        frames: List[str] = []
        if start is None:
            return frames
        for ln in lines[:start]:
            if table.user_rip in ln:
                continue
            m = table.rip.search(ln)
            if m is not None and m.group(1):
                frames.append(m.group(1))
                break
        rip_first = bool(frames)
        misses = 0
        for ln in lines[start + 1:]:
            if table.trace_end.search(ln) or any(k.search(ln) for k in table.stack_start):
                break
            m = table.frame_line.match(ln) or table.inline_frame.match(ln)
            if m is not None:
                if not (len(frames) == 1 and frames[0] == m.group(1) and rip_first):
                    frames.append(m.group(1))
                misses = 0
                if len(frames) >= 64:
                    break
            elif table.trace_noise.match(ln) or not ln.strip():
                continue
            else:
                misses += 1
                if misses >= 2 and frames:
                    break
        return frames

    def _report_text(self, win: "_Window", start: int, end: int,
                     stats: Optional[ScanStats]) -> str:
        line = win.line
        ctx = line(start).context
        first = start
        taken = 0
        visits = 0
        for idx in range(start - 1, max(win.base - 1, start - _LOOKBACK), -1):
            ln = line(idx)
            visits += 1
            if ln.restart or self._is_boundary(ln):
                break
            if ln.context == ctx and ln.text.strip():
                first = idx
                taken += 1
                if taken == 5:
                    break
        out: List[str] = []
        size = 0
        for idx in range(first, end):
            raw = line(idx).raw
            visits += 1
            out.append(raw)
            size += len(raw) + 1
            if len(out) >= MAX_TEXT_LINES or size >= MAX_TEXT_CHARS:
                break
        if stats is not None:
            stats.report_lines += visits
        return "\n".join(out)

    def _is_boundary(self, line: _Line) -> bool:
        """Lines that never belong to a report's text: the rig's case markers and
        the end of a previous report."""
        return _CASE_MARKER in line.text or line.text.startswith(self.table.end_marker)

    def _text_end(self, win: "_Window", start: int, limit: int, kind: str,
                  stats: Optional[ScanStats]) -> int:
        table = self.table
        line = win.line
        end = min(limit, start + MAX_TEXT_LINES)
        visits = 0
        try:
            for idx in range(start + 1, end):
                visits += 1
                text = line(idx).text
                if line(idx).restart or _CASE_MARKER in text:
                    return idx
                if kind in table.evidence_kinds and not (
                        table.evidence_text.search(text) or not text.strip()):
                    return idx
                if text.startswith(table.end_panic):
                    return idx + 1
                if text.startswith(table.end_trace):
                    # x86 re-prints the registers after the end marker, then maybe
                    # panics (panic_on_oops/panic_on_warn): keep that tail
                    j = idx + 1
                    while j < end and (table.trace_noise.match(line(j).text)
                                       or table.after_end.match(line(j).text)):
                        visits += 1
                        if line(j).text.startswith(table.end_panic):
                            return j + 1
                        j += 1
                    return j
            return end
        finally:
            if stats is not None:
                stats.report_lines += visits

    # ---------------------------------------------------------- report starts

    @staticmethod
    def _kind_guess(oops: Oops, text: str) -> str:
        probe = text + "\n"
        for f in oops.formats:
            if f.title.search(probe):
                return f.kind
        return oops.kind

    def _continues(self, text: str, distance: int, open_kind: str) -> bool:
        for c in self.table.continuations:
            if distance <= c.window and (not c.kinds or open_kind in c.kinds) \
                    and c.pattern.search(text):
                return True
        return False

    # ------------------------------------------------------------------ parse

    def parse(self, data: Union[bytes, str],
              stats: Optional[ScanStats] = None) -> List[CrashReport]:
        """All reports in a console log; ``reports[0]`` is the headline.

        Kernel reports come in log order, followed by the evidence reports
        (for Linux: kind ``fs-error``) in log order: an ``EXT4-fs error``
        printed before a ``kernel BUG`` is evidence, the BUG is the crash.
        A title seen again is counted in the first report's ``count``."""
        return self._feed(_text_pieces(_decode(data)), stats)

    def parse_file(self, source: Union[str, "os.PathLike[str]", "IO[bytes]"],
                   stats: Optional[ScanStats] = None,
                   chunk_size: int = _CHUNK) -> List[CrashReport]:
        """:meth:`parse` for a log file (a path or a binary file object), read
        ``chunk_size`` bytes at a time: memory stays bounded however big the
        log is, and the reports are the same as :meth:`parse` of its bytes.
        Raises OSError when the file cannot be read."""
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as fh:
                return self._feed(_file_pieces(_read_chunks(fh, chunk_size)), stats)
        return self._feed(_file_pieces(_read_chunks(source, chunk_size)), stats)

    def reboots(self, data: Union[bytes, str]) -> List[int]:
        """1-based lines of boot banners after the first one: each means the
        guest rebooted (unexpectedly, for a test run)."""
        banners: List[int] = []
        for num, piece in _text_pieces(_decode(data)):
            if self._line(num, piece).banner:
                banners.append(num)
        return banners[1:]


class _Window:
    """The console lines held: ``lines[i]`` is line ``base + i`` of the log
    (0-based, counting CR-split pieces), ``headers`` the header lines among them.
    A line that is no header and no restart is kept as (number, cleaned text)
    and made a _Line only when a report needs it."""

    def __init__(self, make: Callable[[int, str], _Line]) -> None:
        self.lines: List[Union[_Line, Tuple[int, str]]] = []
        self.base = 0
        self.headers: Dict[int, Oops] = {}
        self.header_order: Deque[int] = deque()
        self._make = make

    @property
    def end(self) -> int:
        return self.base + len(self.lines)

    def line(self, idx: int) -> _Line:
        held = self.lines[idx - self.base]
        if isinstance(held, _Line):
            return held
        line = self._make(*held)
        self.lines[idx - self.base] = line
        return line

    def trim(self, keep_from: int) -> None:
        drop = keep_from - self.base
        if drop < _TRIM_SLACK:
            return
        del self.lines[:drop]
        self.base = keep_from
        while self.header_order and self.header_order[0] < keep_from:
            del self.headers[self.header_order.popleft()]


class _Scan:
    """One parse under way: lines come in one at a time, reports are
    worked out as soon as the lines they need have arrived."""

    def __init__(self, parser: ReportParser, stats: Optional[ScanStats]) -> None:
        self.parser = parser
        self.table = parser.table
        self.stats = stats
        self.win = _Window(parser._line_from_raw)
        self._header_re = parser._header_re
        self._banner_re = parser.table.banner
        self._restart_headers = parser._restart_headers
        self.restarts = 0                       # restart lines so far
        self.first_up: Optional[int] = None     # first line showing a running kernel
        self.undecided: Deque[int] = deque()    # headers not yet known to start a report
        self.last_start: Optional[int] = None
        self.last_kind = ""
        self.last_restarts = 0                  # restart lines up to and including last_start
        self.once_seen: Dict[str, Optional[CrashReport]] = {}
        self.once_repeats: Dict[str, int] = {}
        self.pending: Deque[Tuple[int, str, str]] = deque()   # (start, kind guess, once key)
        self.kept: List[CrashReport] = []
        self.by_title: Dict[str, CrashReport] = {}
        self.overflow: Optional[CrashReport] = None
        self.budget = MAX_TITLE_WORK
        # a start is worked out when the lines it may need are in, and every
        # header up to MAX_ANALYSED_LINES after it is decided
        self.ripe_after = MAX_ANALYSED_LINES + self.table.weak_window + 1

    # ------------------------------------------------------------ lines in

    def add(self, num: int, piece: str) -> None:
        win, stats = self.win, self.stats
        idx = win.end
        raw = _clean(piece)
        oops = None
        if (self.first_up is None or self._header_re.search(raw)
                or self._banner_re.search(raw) or any(h in raw for h in self._restart_headers)):
            # maybe a header, a restart, or the kernel's first line: look closer
            line = self.parser._line_from_raw(num, raw)
            line.restarts_before = self.restarts
            if line.restart:
                self.restarts += 1
            if self.first_up is None and (line.stamp is not None or line.banner):
                self.first_up = idx
            win.lines.append(line)
            oops = self.parser._match_oops(line)
            if oops is not None:
                win.headers[idx] = oops
                win.header_order.append(idx)
                self.undecided.append(idx)
        else:
            win.lines.append((num, raw))
        if stats is not None:
            stats.lines += 1
            stats.chars += len(raw)
            if oops is not None:
                stats.headers += 1
            if len(win.lines) > stats.max_window:
                stats.max_window = len(win.lines)
        if self.undecided:
            self._decide(final=False)
        if self.pending:
            self._work_out(final=False)
        keep = min(self.pending[0][0] if self.pending else idx,
                   self.undecided[0] if self.undecided else idx)
        win.trim(keep - _LOOKBACK)

    def finish(self) -> List[CrashReport]:
        self._decide(final=True)
        self._work_out(final=True)
        reports = list(self.kept)
        if self.overflow is not None:
            reports.append(self.overflow)
        for key, extra in self.once_repeats.items():
            rep = self.once_seen.get(key)
            if rep is not None:
                rep.count += extra
        # stable: log order within each tier
        evidence = self.table.evidence_kinds
        reports.sort(key=lambda r: r.kind in evidence)
        return reports

    # ------------------------------------------------------- report starts

    def _decide(self, final: bool) -> None:
        """Which header lines start a report of their own (see the table's
        continuations and Oops.weak for the ones that do not), in log order."""
        win, weak_window = self.win, self.table.weak_window
        while self.undecided:
            idx = self.undecided[0]
            oops = win.headers[idx]
            folded = False
            if oops.weak:
                nxt = next((j for j in self.undecided if j > idx and not win.headers[j].weak), None)
                if nxt is None and not final and win.end <= idx + weak_window:
                    return   # a strong header may still come close enough
                folded = nxt is not None and nxt - idx <= weak_window
            self.undecided.popleft()
            self._consider(idx, oops, folded)

    def _consider(self, idx: int, oops: Oops, folded: bool) -> None:
        parser, line = self.parser, self.win.line(idx)
        text = line.text
        if self.last_start is not None:
            rebooted = line.restarts_before > self.last_restarts
            if not rebooted and parser._continues(text, idx - self.last_start, self.last_kind):
                return
        if folded:
            return
        # a restart header before the kernel first showed up is the first boot
        if oops.restart and (self.first_up is None or idx <= self.first_up):
            return
        kind = parser._kind_guess(oops, text)
        key = ""
        if kind in self.table.once_kinds:
            # the same complaint, repeated: report it once, count the repeats
            key = normalize_title(_make_title(parser._describe(text + "\n", oops).title))
            if key in self.once_seen:
                self.once_repeats[key] = self.once_repeats.get(key, 0) + 1
                return
            if len(self.once_seen) < _MAX_ONCE_KEYS:
                self.once_seen[key] = None
            else:
                key = ""
        self.last_start, self.last_kind = idx, kind
        self.last_restarts = line.restarts_before + (1 if line.restart else 0)
        self.pending.append((idx, kind, key))
        if self.stats is not None:
            self.stats.starts += 1

    # ----------------------------------------------------------- reports out

    def _work_out(self, final: bool) -> None:
        while self.pending:
            start, kind_guess, key = self.pending[0]
            if not final and self.win.end < start + self.ripe_after:
                return
            self.pending.popleft()
            # where its text must end at the latest: the next report's start
            limit = self.pending[0][0] if self.pending else self.win.end
            self._one(start, kind_guess, key, limit)

    def _fatal_follows(self, start: int) -> bool:
        """Another fatal report starts within MAX_ANALYSED_LINES lines after ``start``."""
        fatal = self.table.fatal_kinds
        for idx, kind, _ in self.pending:
            if idx > start + MAX_ANALYSED_LINES:
                break
            if kind in fatal:
                return True
        return False

    def _one(self, start: int, kind_guess: str, key: str, limit: int) -> None:
        parser, win, stats, table = self.parser, self.win, self.stats, self.table
        if self.budget <= 0 and (kind_guess not in table.fatal_kinds
                                 or self._fatal_follows(start)):
            self._skip()
            return
        oops = win.headers[start]
        probe = ScanStats()
        body, title_text, complete = parser._report_body(win, start, probe, title_only=True)
        self.budget -= probe.report_lines
        desc = parser._describe(title_text, oops)
        title = _make_title(desc.title)
        kind = desc.fmt.kind if desc.fmt is not None else oops.kind
        if stats is not None:
            stats.titled += 1
            stats.title_lines += probe.report_lines
            stats.regex_chars += len(title_text)
        seen = self.by_title.get(title)
        if seen is not None:
            seen.count += 1
            self._link(key, seen)
            return
        if len(self.kept) >= MAX_REPORTS and (kind not in table.fatal_kinds
                                               or self._fatal_follows(start)):
            self._skip()
            return
        if not complete:
            body = parser._report_body(win, start, stats)[0]
        corrupted = desc.corrupted or parser._is_corrupted(desc.title, body, desc.fmt)
        if stats is not None:
            stats.reports += 1
            stats.regex_chars += len(body)
        frame = ""
        if desc.fmt is not None and " in {" in desc.fmt.fmt:
            frame = _title_frame(title)
        end = parser._text_end(win, start, limit, kind, stats)
        rep = CrashReport(
            title=title,
            kind=kind,
            frames=parser._call_trace(body, stats),
            corrupted=corrupted,
            line=win.line(start).num,
            text=parser._report_text(win, start, end, stats),
            frame="" if frame == "corrupted" else frame,
        )
        if len(self.kept) < MAX_REPORTS:
            self.kept.append(rep)
        else:
            # the one place past the cap: the latest fatal report
            if self.overflow is not None:
                del self.by_title[self.overflow.title]
            self.overflow = rep
        self.by_title[title] = rep
        self._link(key, rep)

    def _link(self, key: str, rep: CrashReport) -> None:
        if key and self.once_seen.get(key, rep) is None:
            self.once_seen[key] = rep

    def _skip(self) -> None:
        if self.stats is not None:
            self.stats.skipped += 1


# --------------------------------------------------------------------------
# Per-case attribution.

_MARKER_RE = re.compile(re.escape(_CASE_MARKER) + r"(start|end) (\S+)")


def split_by_case(data: Union[bytes, str]) -> Dict[str, str]:
    """Split a console log at the rig's ``pinrig: case-start <id>`` /
    ``pinrig: case-end <id>`` kmsg markers (timestamped, level-prefixed or not).

    Returns {case-id: slice}.  A slice runs from its start marker through its
    end marker; when the end marker is missing it runs up to the next start
    marker, or to the end of the log (the usual shape of a case that crashed
    the guest).  Text before the first start marker is "boot"; text outside
    any case after that (between an end and the next start, or after the last
    case) is appended to "between".  A case id seen twice gets both slices,
    concatenated.  Slices keep the original line endings, so the values put
    together are the whole log.
    """
    text = _decode(data)
    out: Dict[str, List[str]] = {"boot": []}
    current = "boot"
    for piece in re.split(r"(?<=\n)", text):
        if not piece:
            continue
        m = _MARKER_RE.search(piece)
        if m is not None and m.group(1) == "start":
            current = m.group(2)
        out.setdefault(current, []).append(piece)
        if m is not None and m.group(1) == "end" and current not in ("boot", "between"):
            current = "between"
    return {k: "".join(v) for k, v in out.items()}


# --------------------------------------------------------------------------
# Human output and CLI.


def format_text(path: str, reports: List[CrashReport]) -> str:
    """Human summary of the reports of one log (what ``rig oops LOG`` prints)."""
    if not reports:
        return f"{path}: no kernel reports\n"
    noun = "report" if len(reports) == 1 else "reports"
    out = [f"{path}: {len(reports)} kernel {noun}; headline: {reports[0].title}"]
    for rep in reports:
        flag = " (corrupted)" if rep.corrupted else ""
        seen = f" (seen {rep.count} times)" if rep.count > 1 else ""
        out.append(f"  line {rep.line}: [{rep.kind}] {rep.title}{flag}{seen}")
        if rep.where:
            out.append(f"      at {rep.where}")
        if rep.frames:
            shown = " < ".join(rep.frames[:8])
            more = " ..." if len(rep.frames) > 8 else ""
            out.append(f"      frames: {shown}{more}")
    return "\n".join(out) + "\n"


def main(argv: Optional[List[str]] = None, *, parser: ReportParser,
         post: Optional[Callable[[List[CrashReport]], None]] = None) -> int:
    """``rig oops [--json] LOG...`` with the reports of ``parser``'s table.

    Each LOG is read as a stream, in bounded memory.  Prints a summary per
    readable LOG (with ``--json``: one JSON object ``{"LOG": [report, ...]}``
    holding the readable LOGs).  A LOG that cannot be read (missing, a
    directory, permission denied, read error) gets one line on stderr,
    ``rig oops: cannot read LOG: reason``, and the other LOGs are still parsed
    and printed.

    Exit status: 0 when every LOG was read (whether or not it has reports),
    2 when at least one LOG could not be read, or on a usage error."""
    ap = argparse.ArgumentParser(
        prog="rig oops", description="Find kernel crash reports in console logs.")
    ap.add_argument("--json", action="store_true",
                    help='print {"LOG": [report, ...]} as JSON')
    ap.add_argument("logs", nargs="+", metavar="LOG", help="console log file")
    try:
        args = ap.parse_args(argv)
    except SystemExit as exc:  # usage error: argparse printed the message
        return int(exc.code or 0) if exc.code not in (None, 0) else 0
    results: Dict[str, List[CrashReport]] = {}
    failed = False
    for path in args.logs:
        try:
            reports = parser.parse_file(path)
        except OSError as exc:
            failed = True
            reason = exc.strerror or str(exc)
            print(f"rig oops: cannot read {path}: {reason}", file=sys.stderr)
            continue
        if post is not None:
            post(reports)      # e.g. file:line for the frames (pinrig.oops.symbolize)
        if args.json:
            results[path] = reports
        else:
            sys.stdout.write(format_text(path, reports))
            sys.stdout.flush()
    if args.json:
        json.dump({p: [r.to_dict() for r in reps] for p, reps in results.items()},
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 2 if failed else 0
