"""Stage `verdict`: a case's raw outcome + crash reports + integrity result → one Verdict."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional, Union

from pinrig.config import Case
from pinrig.outcome import KERNEL_FAILURES, Outcome


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
    # FOLL_PIN accounting over the case (/proc/vmstat after stat_refresh), measured only where
    # every pin must be gone by teardown (not across a power cut): {"acquired": n, "released": m}
    pins: Optional[dict] = None
    # damage other than lost blocks (pinrig.cases.corruption): {"kind": an Outcome name
    # (checksum-error, clone-changed), "blocks": n, "blocks_checked": m, "reason": "..."}
    corruption: Optional[dict] = None
    note: Optional[str] = None        # what a passing case still showed (added to its reason)
    # a check the workload made itself failed (a selftest's "not ok"): what failed
    failure: Optional[str] = None
    summary: str = ""            # what the workload saw, for the verdict's reason (subtest counts)


@dataclass
class Verdict:
    case: str
    verdict: Outcome
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
    pins: Optional[dict] = None  # FOLL_PIN acquired/released over the case, where measured
    incoherent_pages: Optional[int] = None  # anon-coherency: pages where a process saw the wrong data
    where: Optional[str] = None  # file:line of the headline report's guilty frame (symbolized)
    blocks_corrupt: Optional[int] = None   # checksum-error / clone-changed: blocks affected

    @property
    def key(self) -> tuple:
        return (self.case, self.attempt)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["verdict"] = Outcome(self.verdict).value
        return d

    @classmethod
    def from_dict(cls, d: object, attempt: Optional[int] = None) -> "Verdict":
        """A Verdict from a recorded verdict.json; ValueError saying what is wrong with it."""
        if not isinstance(d, dict):
            raise ValueError("a verdict must be a JSON object")
        for name in ("case", "verdict"):
            if not isinstance(d.get(name), str):
                raise ValueError(f"field {name!r} missing or not a string")
        v = cls(**{k: val for k, val in d.items() if k in _FIELD_TYPES})
        v.verdict = Outcome.parse(v.verdict)
        for name, types in _FIELD_TYPES.items():
            val = getattr(v, name)
            if val is not None and not isinstance(val, types):
                raise ValueError(f"field {name!r} has the wrong type ({type(val).__name__})")
        if attempt is not None:
            v.attempt = attempt
        return v

    @property
    def failed(self) -> bool:
        return Outcome(self.verdict).failed

    def message(self) -> str:
        """One line for JUnit failure messages and summaries."""
        if self.verdict == Outcome.CRASH:
            return (self.title or "kernel crash") + (f" at {self.where}" if self.where else "")
        if self.verdict == Outcome.DATA_LOSS:
            return f"{self.blocks_lost} blocks lost at {self.first_bad_offset}"
        if self.verdict == Outcome.REFUSED:
            return f"pin refused ({self.errno})"
        if self.verdict in (Outcome.CHECKSUM_ERROR, Outcome.WRITEBACK_ERROR,
                            Outcome.CLONE_CHANGED):
            return self.reason or f"{self.verdict}: {self.blocks_corrupt} blocks"
        return self.reason or self.verdict


# field -> the type(s) its value must have (an isinstance() class-or-tuple)
_FIELD_TYPES: dict[str, Union[type, tuple[type, ...]]] = {
    "case": str, "verdict": str, "errno": str, "title": str, "titles": list,
    "blocks_lost": int, "blocks_checked": int, "first_bad_offset": int, "expect": str,
    "pin": str, "phase": str, "reason": str, "wall_s": (int, float), "seed": int,
    "attempt": int, "pins": dict, "incoherent_pages": int, "where": str, "blocks_corrupt": int}


def decide(case: Case, raw: RawOutcome, reports: list, integrity=None) -> Verdict:
    """Precedence: kernel reports > infra error > skip > corruption (checksum-error,
    writeback-error, clone-changed) > data loss > pin incoherence > pin leak > refused > ok;
    then expect."""
    v = Verdict(case=case.id, verdict=Outcome.OK, errno=raw.errno, pin=raw.pin, phase=raw.phase,
                expect=case.expect, wall_s=round(raw.wall_s, 3))
    if integrity is not None:
        v.blocks_checked = integrity.blocks_checked
        v.blocks_lost = integrity.blocks_lost
        v.first_bad_offset = integrity.first_bad
    if reports:
        v.verdict = Outcome.CRASH
        v.titles = [r.title for r in reports]
        v.title = v.titles[0]
        v.where = getattr(reports[0], "where", "") or None
        v.reason = f"{len(reports)} kernel report(s)"
        if raw.infra_error:
            v.reason += f"; {raw.infra_error}"
        if integrity is not None and integrity.blocks_lost:
            v.reason += f"; and {integrity.blocks_lost} of {integrity.blocks_checked} blocks lost"
        if raw.note:
            v.reason += f"; {raw.note}"
        return _expect(case, v)
    if raw.infra_error:
        v.verdict, v.reason = Outcome.ERROR, raw.infra_error
        return v
    if raw.skip_reason:
        v.verdict, v.reason = Outcome.SKIPPED, raw.skip_reason
        return v
    if raw.failure:
        v.verdict, v.reason = Outcome.UNEXPECTED, raw.failure
        if raw.summary:
            v.reason += f" ({raw.summary})"
        return v
    corrupt = _corruption(raw.corruption)
    if corrupt is not None:
        v.verdict, v.blocks_corrupt, v.reason = corrupt
        if integrity is not None and integrity.blocks_lost:
            v.reason += f"; and {integrity.blocks_lost} of {integrity.blocks_checked} blocks lost"
        return _expect(case, v)
    if integrity is not None and integrity.blocks_lost:
        v.verdict = Outcome.DATA_LOSS
        v.reason = f"{integrity.blocks_lost} of {integrity.blocks_checked} blocks lost"
        if raw.note:
            v.reason += f"; {raw.note}"
        return _expect(case, v)
    v.pins = dict(raw.pins) if raw.pins else None
    coh = coherency(raw.result)
    if coh is not None and raw.pin == "granted":
        if not coh.trigger_ran:
            v.verdict, v.reason = Outcome.ERROR, f"the trigger did not happen: {coh.note}"
            return v
        v.incoherent_pages = coh.incoherent
        if coh.incoherent:
            v.verdict, v.reason = Outcome.PIN_INCOHERENT, coh.reason()
            return _expect(case, v)
    leaked = pins_leaked(raw.pins)
    if leaked and v.pins:
        v.verdict = Outcome.PIN_LEAK
        v.reason = (f"{leaked} page pin(s) never released: {v.pins['acquired']} acquired, "
                    f"{v.pins['released']} released during the case")
        return _expect(case, v)
    if raw.pin == "refused":
        v.verdict = Outcome.REFUSED
        v.reason = f"pin refused with {raw.errno}"
    else:
        v.reason = "pin granted" if raw.pin == "granted" else (raw.summary or "workload ran")
        if integrity is not None:
            v.reason += f"; {integrity.blocks_checked} blocks verified"
        if coh is not None and raw.pin == "granted":
            v.reason = coh.reason()
    if raw.note:
        v.reason += f"; {raw.note}"
    return _expect(case, v)


def _corruption(c: Optional[dict]) -> Optional[tuple]:
    """(Outcome, blocks, reason) of a recorded corruption, None when there is none/it is bad."""
    if not isinstance(c, dict) or c.get("kind") not in (Outcome.CHECKSUM_ERROR.value,
                                                        Outcome.WRITEBACK_ERROR.value,
                                                        Outcome.CLONE_CHANGED.value):
        return None
    blocks = c.get("blocks")
    blocks = blocks if isinstance(blocks, int) and not isinstance(blocks, bool) else 0
    reason = c.get("reason") if isinstance(c.get("reason"), str) else str(c["kind"])
    return Outcome(c["kind"]), blocks, reason


@dataclass
class Coherency:
    """What an anon-coherency run saw after the device wrote through the pin."""
    pages: int
    expect: str                  # what the process should see: "device" data or "zero" pages
    mismatched: int              # pages of the process that differ from that
    seen: dict                   # process_device / process_original / process_zero / process_other
    child_device: Optional[int]  # pages where a forked child sees the device's data
    trigger_ran: bool
    note: str
    device_view: Optional[int] = None   # pages of the MR read back (RDMA READ) as the device's data

    @property
    def incoherent(self) -> int:
        return self.mismatched + (self.child_device or 0)

    def reason(self) -> str:
        seen = ", ".join(f"{k.removeprefix('process_')} {n}" for k, n in self.seen.items() if n)
        text = (f"{self.pages - self.mismatched} of {self.pages} pages as expected "
                f"({self.expect}); the process sees: {seen or 'nothing checked'}")
        if self.device_view is not None:
            text += f"; the device reads its data back from {self.device_view}"
        if self.child_device is not None:
            text += f"; the child sees the device's data in {self.child_device}"
        return f"{text}; {self.note}" if self.note else text


def coherency(result: object) -> Optional[Coherency]:
    """The coherency outcome of a workload's JSON, or None when it reports none. The guest is
    untrusted: a field of the wrong type or range means 'no coherency reported'."""
    if not isinstance(result, dict) or not isinstance(result.get("coherency"), dict):
        return None
    c = result["coherency"]

    def count(d: dict, key: str) -> Optional[int]:
        val = d.get(key)
        return val if isinstance(val, int) and not isinstance(val, bool) and val >= 0 else None

    pages, mism = count(c, "pages"), count(c, "mismatched")
    expect = c.get("expect_process")
    if pages is None or mism is None or mism > pages or expect not in ("device", "zero"):
        return None
    child = c.get("child")
    child_device = count(child, "device") if isinstance(child, dict) else None
    seen = {k: count(c, k) or 0 for k in ("process_device", "process_original", "process_zero",
                                          "process_other")}
    note = result.get("trigger_note")
    return Coherency(pages=pages, expect=str(expect), mismatched=mism, seen=seen,
                     child_device=child_device, trigger_ran=result.get("trigger_ran") is True,
                     note=note[:400] if isinstance(note, str) else "",
                     device_view=count(c, "device_view_device"))


def pins_leaked(pins: Optional[dict]) -> int:
    """Pins acquired during the case and not released by its teardown (0 when not measured)."""
    if not pins:
        return 0
    try:
        return max(0, int(pins["acquired"]) - int(pins["released"]))
    except (KeyError, TypeError, ValueError):
        return 0


def _expect(case: Case, v: Verdict) -> Verdict:
    if not case.expect or v.verdict == case.expect:
        return v
    if v.verdict in KERNEL_FAILURES:
        v.reason += f" (expected {case.expect})"
        return v
    v.reason = f"expected {case.expect}, got {v.verdict}: {v.reason}"
    v.verdict = Outcome.UNEXPECTED
    return v
