"""The verdict vocabulary: one Outcome per case, and which outcomes pass, fail or tell nothing.

Every module, the JUnit writer, the SQL of the nightly history and the HTML reports take their
verdict names and their pass/fail/inconclusive sets from here.

| outcome      | meaning                                                        | JUnit    |
|--------------|----------------------------------------------------------------|----------|
| ok           | workload ran; data verified; no kernel report                  | pass     |
| refused      | the kernel refused the pin (errno recorded)                    | pass     |
| data-loss    | checksums disagree                                             | failure  |
| crash        | kernel report(s) during the case                               | failure  |
| unexpected   | the case declared an expectation and reality differed          | failure  |
| pin-leak     | pins taken during the case were not all released at teardown   | failure  |
| pin-incoherent | the process does not see what the device wrote through its pin | failure |
|              | (a pinned page replaced behind the pin), or a forked child does |          |
| checksum-error | blocks read back from the medium failed the filesystem's or the | failure  |
|              | device's checksum (EIO/EILSEQ: btrfs "csum failed", dm-integrity) |          |
| writeback-error | the filesystem refused to write back pages dirtied behind its back | failure |
|              | (fsync/reads fail; btrfs: "marked dirty without notifying the fs") |          |
| clone-changed | a reflink/snapshot clone of a pinned file no longer holds what  | failure  |
|              | it was cloned from                                             |          |
| error        | the rig could not tell (boot failure, timeout, lost guest)     | error    |
| skipped      | the kernel or guest lacks what the case needs                  | skipped  |
"""
from __future__ import annotations

from enum import Enum
from typing import FrozenSet, Iterable


class Outcome(str, Enum):
    OK = "ok"
    REFUSED = "refused"
    DATA_LOSS = "data-loss"
    CRASH = "crash"
    UNEXPECTED = "unexpected"
    PIN_LEAK = "pin-leak"
    PIN_INCOHERENT = "pin-incoherent"
    CHECKSUM_ERROR = "checksum-error"
    WRITEBACK_ERROR = "writeback-error"
    CLONE_CHANGED = "clone-changed"
    ERROR = "error"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def parse(cls, text: object) -> "Outcome":
        """The Outcome named by text; ValueError naming the valid names otherwise."""
        try:
            return cls(text)
        except ValueError:
            raise ValueError(f"unknown verdict {text!r} (one of: {', '.join(NAMES)})") from None

    @property
    def passed(self) -> bool:
        return self in PASSES

    @property
    def failed(self) -> bool:
        return self in FAILURES

    @property
    def inconclusive(self) -> bool:
        return self in INCONCLUSIVE

    @property
    def junit(self) -> str:
        """How JUnit reports it: pass, failure, error or skipped."""
        if self in PASSES:
            return "pass"
        if self in FAILURES:
            return "failure"
        return "error" if self is Outcome.ERROR else "skipped"

    @property
    def kcidb(self) -> str:
        """KCIDB test status."""
        return {"pass": "PASS", "failure": "FAIL", "error": "ERROR", "skipped": "SKIP"}[self.junit]


ORDER = tuple(Outcome)                     # the order reports list them in
NAMES = tuple(o.value for o in Outcome)
PASSES: FrozenSet[Outcome] = frozenset({Outcome.OK, Outcome.REFUSED})
FAILURES: FrozenSet[Outcome] = frozenset({Outcome.DATA_LOSS, Outcome.CRASH, Outcome.UNEXPECTED,
                                          Outcome.PIN_LEAK, Outcome.PIN_INCOHERENT,
                                          Outcome.CHECKSUM_ERROR, Outcome.WRITEBACK_ERROR,
                                          Outcome.CLONE_CHANGED})
INCONCLUSIVE: FrozenSet[Outcome] = frozenset({Outcome.ERROR, Outcome.SKIPPED})
# A failure a kernel showed in its data or its log (not an unmet expectation).
KERNEL_FAILURES: FrozenSet[Outcome] = frozenset({Outcome.DATA_LOSS, Outcome.CRASH,
                                                 Outcome.PIN_LEAK, Outcome.PIN_INCOHERENT,
                                                 Outcome.CHECKSUM_ERROR, Outcome.WRITEBACK_ERROR,
                                                 Outcome.CLONE_CHANGED})
# Failures whose medium (the case's pmem file) is evidence worth keeping.
MEDIUM_EVIDENCE: FrozenSet[Outcome] = frozenset({Outcome.DATA_LOSS, Outcome.CRASH,
                                                 Outcome.CHECKSUM_ERROR, Outcome.WRITEBACK_ERROR,
                                                 Outcome.CLONE_CHANGED})


def sql_set(outcomes: Iterable[Outcome]) -> str:
    """An SQL `IN (...)` list of outcome names (constants, never user data)."""
    return "(" + ",".join(f"'{o.value}'" for o in sorted(outcomes, key=ORDER.index)) + ")"
