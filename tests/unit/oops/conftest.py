"""The golden corpus of pinrig.oops, shared by the tests in this directory.

The corpus lives in tests/data/oops/: one console log per file, named after
what it shows.  Each file starts with syzkaller-style header lines, then a
blank line, then the raw log:

    TITLE: WARNING in ext4_dirty_folio      (absent: the log has no report)
    TYPE: WARNING                            (CrashReport.kind of the headline)
    FRAME: ext4_dirty_folio                  (function named in the title)
    CORRUPTED: N                             (Y when cut off / interleaved)

To regenerate the headers from the parser's current output instead of
asserting -- after changing the parser on purpose, or after dropping a new real
capture into the directory -- run:

    PINRIG_UPDATE_CORPUS=1 .venv/bin/python -m pytest tests/unit/oops/test_oops_corpus.py -q

and review the diff of tests/data/oops/ before committing it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List

import pytest

CORPUS = Path(__file__).resolve().parents[2] / "data" / "oops"
UPDATE = os.environ.get("PINRIG_UPDATE_CORPUS") == "1"
HEADER_KEYS = ("TITLE", "TYPE", "FRAME", "CORRUPTED")
CORPUS_FILES = sorted(CORPUS.glob("*.log"))


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


@dataclass
class CorpusFile:
    path: Path
    header: dict     # TITLE/TYPE/FRAME/CORRUPTED
    others: list     # other header lines, kept as they are
    log: bytes       # the console log

    def rewrite(self, reports) -> None:
        """Rewrite the header from ``reports`` (PINRIG_UPDATE_CORPUS=1)."""
        write_header(self.path, reports, self.others, self.log)


@pytest.fixture(params=CORPUS_FILES, ids=[p.name for p in CORPUS_FILES])
def corpus_file(request) -> CorpusFile:
    """Each corpus file in turn."""
    return CorpusFile(request.param, *read_corpus_file(request.param))


@pytest.fixture
def corpus_log() -> Callable[[str], bytes]:
    """corpus_log(name) -> the log (without its header) of tests/data/oops/<name>."""
    return lambda name: read_corpus_file(CORPUS / name)[2]


@pytest.fixture(scope="session")
def corpus_logs() -> List[bytes]:
    """Every corpus log (without headers), in file name order."""
    return [read_corpus_file(p)[2] for p in CORPUS_FILES]


@pytest.fixture(scope="session")
def update_corpus() -> bool:
    """PINRIG_UPDATE_CORPUS=1: rewrite the corpus headers instead of asserting."""
    return UPDATE
