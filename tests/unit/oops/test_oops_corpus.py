"""The golden corpus (tests/data/oops/, see conftest.py): real console logs and
the headline report each must give.  Only the headline (first report) is
checked against the header; every report must be well formed."""
from __future__ import annotations

import json
import random
import re

from pinrig.oops import KINDS, parse_console
from pinrig.oops.engine import MAX_LINE, MAX_TEXT_CHARS


def test_corpus_is_not_empty(corpus_logs):
    assert len(corpus_logs) >= 30


def test_corpus(corpus_file, update_corpus):
    header, log = corpus_file.header, corpus_file.log
    reports = parse_console(log)
    if update_corpus:
        corpus_file.rewrite(reports)
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


def test_corpus_as_str_gives_the_same_reports(corpus_logs):
    """parse_console takes the log as bytes or as text."""
    for log in corpus_logs:
        as_bytes = [r.to_dict() for r in parse_console(log)]
        as_str = [r.to_dict() for r in parse_console(log.decode("utf-8", errors="replace"))]
        assert as_bytes == as_str


def test_random_console_lines(corpus_logs):
    """Shuffled real report lines: whatever comes out must be well formed."""
    rnd = random.Random(3)
    pool = [line for log in corpus_logs for line in log.split(b"\n")]
    for _ in range(20):
        data = b"\n".join(rnd.choice(pool) for _ in range(2000))
        for rep in parse_console(data):
            assert rep.kind in KINDS and rep.title and rep.line >= 1
            assert len(rep.text) <= MAX_TEXT_CHARS + MAX_LINE + 1
