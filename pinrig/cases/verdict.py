"""Stage `verdict`: a case's raw outcome + crash reports + integrity result → one Verdict."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

from pinrig.config import Case

FAILURES = ("data-loss", "crash", "unexpected")


@dataclass
class RawOutcome:
    """What the workload stage observed, before any judgement."""
    case_id: str
    pin: Optional[str] = None        # granted / refused / n/a
    errno: Optional[str] = None
    result: dict = field(default_factory=dict)   # the workload's JSON
    exit_code: Optional[int] = None
    infra_error: Optional[str] = None            # the rig could not tell
    skip_reason: Optional[str] = None            # the kernel/guest lacks what the case needs
    phase: str = "case"                          # boot / setup / case / verify
    guest_died: bool = False
    timed_out: bool = False                      # the workload hung: its guest must be killed
    wall_s: float = 0.0


@dataclass
class Verdict:
    case: str
    verdict: str
    errno: Optional[str] = None
    title: Optional[str] = None
    titles: list = field(default_factory=list)
    blocks_lost: Optional[int] = None
    blocks_checked: Optional[int] = None
    first_bad_offset: Optional[int] = None
    expect: Optional[str] = None
    pin: Optional[str] = None
    phase: str = "case"
    reason: str = ""
    wall_s: float = 0.0
    seed: Optional[int] = None
    attempt: int = 1             # 1..N with --repeat N

    @property
    def key(self) -> tuple:
        return (self.case, self.attempt)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def failed(self) -> bool:
        return self.verdict in FAILURES

    def message(self) -> str:
        """One line for JUnit failure messages and summaries."""
        if self.verdict == "crash":
            return self.title or "kernel crash"
        if self.verdict == "data-loss":
            return f"{self.blocks_lost} blocks lost at {self.first_bad_offset}"
        if self.verdict == "refused":
            return f"pin refused ({self.errno})"
        return self.reason or self.verdict


def decide(case: Case, raw: RawOutcome, reports: list, integrity=None) -> Verdict:
    """Precedence: kernel reports > infra error > skip > data loss > refused > ok; then expect."""
    v = Verdict(case=case.id, verdict="ok", errno=raw.errno, pin=raw.pin, phase=raw.phase,
                expect=case.expect, wall_s=round(raw.wall_s, 3))
    if integrity is not None:
        v.blocks_checked = integrity.blocks_checked
        v.blocks_lost = integrity.blocks_lost
        v.first_bad_offset = integrity.first_bad
    if reports:
        v.verdict = "crash"
        v.titles = [r.title for r in reports]
        v.title = v.titles[0]
        v.reason = f"{len(reports)} kernel report(s)"
        if raw.infra_error:
            v.reason += f"; {raw.infra_error}"
        return _expect(case, v)
    if raw.infra_error:
        v.verdict, v.reason = "error", raw.infra_error
        return v
    if raw.skip_reason:
        v.verdict, v.reason = "skipped", raw.skip_reason
        return v
    if integrity is not None and integrity.blocks_lost:
        v.verdict = "data-loss"
        v.reason = f"{integrity.blocks_lost} of {integrity.blocks_checked} blocks lost"
        return _expect(case, v)
    if raw.pin == "refused":
        v.verdict = "refused"
        v.reason = f"pin refused with {raw.errno}"
    else:
        v.reason = "pin granted" if raw.pin == "granted" else "workload ran"
        if integrity is not None:
            v.reason += f"; {integrity.blocks_checked} blocks verified"
    return _expect(case, v)


def _expect(case: Case, v: Verdict) -> Verdict:
    if not case.expect or v.verdict == case.expect:
        return v
    if v.verdict in ("crash", "data-loss"):
        v.reason += f" (expected {case.expect})"
        return v
    v.reason = f"expected {case.expect}, got {v.verdict}: {v.reason}"
    v.verdict = "unexpected"
    return v
