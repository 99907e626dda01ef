"""pinrig.cases.verdict: decide() precedence, expectations, one-line messages."""
from dataclasses import dataclass

import pytest

from pinrig.cases.integrity import IntegrityResult
from pinrig.cases.verdict import RawOutcome, Verdict, decide
from pinrig.config import Case


@dataclass
class Report:
    title: str
    kind: str = "BUG"


CASE = Case("ibverbs-pin", "ext4", "shared")
LOST = Case("lost-write", "xfs", "shared")


def raw(**kw) -> RawOutcome:
    return RawOutcome(CASE.id, **kw)


def expecting(expect, case=CASE) -> Case:
    return Case(case.workload, case.fs, case.mapping, case.variant, expect)


# ------------------------------------------------------------------------------- precedence

def test_ok_pin_granted():
    v = decide(CASE, raw(pin="granted", wall_s=1.23456), [])
    assert (v.case, v.verdict, v.reason, v.wall_s) == (CASE.id, "ok", "pin granted", 1.235)
    assert not v.failed and v.title is None and v.titles == []


def test_ok_workload_ran_without_pin_field():
    assert decide(CASE, raw(), []).reason == "workload ran"


def test_a_failed_self_check_is_unexpected_and_says_what():
    v = decide(CASE, raw(failure="1 of 3 subtests failed: 2:x", summary="1 fail, 2 pass"), [])
    assert v.verdict == "unexpected" and v.failed
    assert v.reason == "1 of 3 subtests failed: 2:x (1 fail, 2 pass)"
    assert decide(CASE, raw(summary="40 pass, 2 skip"), []).reason == "40 pass, 2 skip"
    # a kernel report still wins over the self-check
    assert decide(CASE, raw(failure="x"), [Report("BUG: y")]).verdict == "crash"


def test_ok_with_integrity_records_blocks_checked():
    v = decide(LOST, RawOutcome(LOST.id, pin="granted"), [], IntegrityResult(256, 0, None))
    assert v.verdict == "ok"
    assert (v.blocks_checked, v.blocks_lost, v.first_bad_offset) == (256, 0, None)
    assert v.reason == "pin granted; 256 blocks verified"


def test_refused_records_errno():
    v = decide(CASE, raw(pin="refused", errno="EFAULT"), [])
    assert (v.verdict, v.errno, v.pin) == ("refused", "EFAULT", "refused")
    assert v.reason == "pin refused with EFAULT"
    assert not v.failed


def test_reports_make_a_crash_with_the_first_title():
    reports = [Report("BUG: unable to handle page fault in rxe_mr_copy"),
               Report("WARNING in __folio_mark_dirty")]
    v = decide(CASE, raw(pin="granted"), reports)
    assert v.verdict == "crash" and v.failed
    assert v.title == "BUG: unable to handle page fault in rxe_mr_copy"
    assert v.titles == ["BUG: unable to handle page fault in rxe_mr_copy",
                        "WARNING in __folio_mark_dirty"]
    assert v.reason == "2 kernel report(s)"


def test_crash_beats_infra_error_skip_dataloss_and_refusal():
    v = decide(LOST, RawOutcome(LOST.id, pin="refused", errno="EFAULT",
                                infra_error="lost the guest's ssh connection",
                                skip_reason="no RDMA", guest_died=True, phase="case"),
               [Report("kernel BUG at mm/filemap.c:1234!")], IntegrityResult(16, 3, 8192))
    assert v.verdict == "crash"
    assert v.title == "kernel BUG at mm/filemap.c:1234!"
    assert v.reason == "1 kernel report(s); lost the guest's ssh connection; and 3 of 16 blocks lost"
    assert (v.blocks_lost, v.first_bad_offset) == (3, 8192)


def test_crash_at_boot_keeps_phase():
    v = decide(CASE, raw(phase="boot"), [Report("Kernel panic - not syncing: VFS")])
    assert (v.verdict, v.phase, v.title) == ("crash", "boot", "Kernel panic - not syncing: VFS")


def test_infra_error_is_error_not_a_kernel_verdict():
    v = decide(CASE, raw(pin="refused", errno="EFAULT", infra_error="timeout: 120s",
                         skip_reason="x"), [], IntegrityResult(16, 3, 0))
    assert (v.verdict, v.reason) == ("error", "timeout: 120s")
    assert not v.failed


def test_skip_beats_dataloss_and_refusal():
    v = decide(CASE, raw(pin="refused", errno="EFAULT", skip_reason="no /dev/pmem0"), [],
               IntegrityResult(16, 3, 0))
    assert (v.verdict, v.reason) == ("skipped", "no /dev/pmem0")


def test_data_loss_records_blocks_and_first_bad():
    v = decide(LOST, RawOutcome(LOST.id, pin="granted"), [], IntegrityResult(256, 5, 40960))
    assert v.verdict == "data-loss" and v.failed
    assert (v.blocks_checked, v.blocks_lost, v.first_bad_offset) == (256, 5, 40960)
    assert v.reason == "5 of 256 blocks lost"


def test_data_loss_beats_refusal():
    v = decide(LOST, RawOutcome(LOST.id, pin="refused", errno="EFAULT"), [],
               IntegrityResult(8, 8, 0))
    assert v.verdict == "data-loss"


# ------------------------------------------------------------------------------- expectations

def test_expect_refused_got_ok_is_unexpected():
    v = decide(expecting("refused"), raw(pin="granted"), [])
    assert v.verdict == "unexpected" and v.failed
    assert v.expect == "refused"
    assert v.reason == "expected refused, got ok: pin granted"


def test_expect_ok_got_refused_is_unexpected():
    v = decide(expecting("ok"), raw(pin="refused", errno="EOPNOTSUPP"), [])
    assert v.verdict == "unexpected"
    assert v.errno == "EOPNOTSUPP"
    assert v.reason == "expected ok, got refused: pin refused with EOPNOTSUPP"


@pytest.mark.parametrize("expect,kw", [
    ("refused", dict(pin="refused", errno="EFAULT")),
    ("ok", dict(pin="granted")),
])
def test_expectation_met(expect, kw):
    v = decide(expecting(expect), raw(**kw), [])
    assert v.verdict == expect and not v.failed and v.expect == expect


def test_expect_data_loss_met():
    v = decide(expecting("data-loss", LOST), RawOutcome(LOST.id, pin="granted"), [],
               IntegrityResult(4, 1, 4096))
    assert v.verdict == "data-loss"
    assert v.reason == "1 of 4 blocks lost"


def test_crash_keeps_crash_against_expectation():
    v = decide(expecting("refused"), raw(pin="granted"), [Report("WARNING in pin_user_pages")])
    assert v.verdict == "crash"
    assert v.title == "WARNING in pin_user_pages"
    assert v.reason == "1 kernel report(s) (expected refused)"


def test_data_loss_keeps_data_loss_against_expectation():
    v = decide(expecting("ok", LOST), RawOutcome(LOST.id, pin="granted"), [],
               IntegrityResult(4, 1, 4096))
    assert v.verdict == "data-loss"
    assert v.reason == "1 of 4 blocks lost (expected ok)"


def test_expect_crash_met():
    v = decide(expecting("crash"), raw(), [Report("BUG: x")])
    assert v.verdict == "crash" and v.reason == "1 kernel report(s)"


@pytest.mark.parametrize("kw,want", [
    (dict(infra_error="boot failed"), "error"),
    (dict(skip_reason="no rxe"), "skipped"),
])
def test_error_and_skip_are_not_turned_into_unexpected(kw, want):
    assert decide(expecting("refused"), raw(**kw), []).verdict == want


# ------------------------------------------------------------------------------- message / dict

@pytest.mark.parametrize("v,msg", [
    (Verdict("c", "crash", title="BUG: bad page state"), "BUG: bad page state"),
    (Verdict("c", "crash"), "kernel crash"),
    (Verdict("c", "data-loss", blocks_lost=3, first_bad_offset=8192), "3 blocks lost at 8192"),
    (Verdict("c", "refused", errno="EFAULT"), "pin refused (EFAULT)"),
    (Verdict("c", "error", reason="qemu died"), "qemu died"),
    (Verdict("c", "unexpected", reason="expected refused, got ok: pin granted"),
     "expected refused, got ok: pin granted"),
    (Verdict("c", "ok"), "ok"),
    (Verdict("c", "skipped", reason="no rxe"), "no rxe"),
])
def test_message(v, msg):
    assert v.message() == msg


@pytest.mark.parametrize("verdict,failed", [
    ("ok", False), ("refused", False), ("data-loss", True), ("crash", True),
    ("unexpected", True), ("error", False), ("skipped", False)])
def test_failed(verdict, failed):
    assert Verdict("c", verdict).failed is failed


def test_to_dict_has_the_result_fields():
    v = decide(CASE, raw(pin="refused", errno="EFAULT", wall_s=2.0), [])
    d = v.to_dict()
    for key in ("case", "verdict", "errno", "title", "blocks_lost", "first_bad_offset", "wall_s"):
        assert key in d
    assert (d["case"], d["verdict"], d["errno"]) == (CASE.id, "refused", "EFAULT")
    assert Verdict(**d) == v


# ------------------------------------------------------------------------- anon coherency

ANON = Case("anon-coherency", "tmpfs", "private", "ksm")


def anon_result(mismatched=0, expect="device", child=None, ran=True, **seen):
    counts = {"process_device": 512 - mismatched, "process_original": mismatched,
              "process_zero": 0, "process_other": 0} | seen
    return {"pin": "granted", "trigger_ran": ran, "trigger_note": "ksmd merged 512 of 512 twin pages",
            "coherency": {"pages": 512, "expect_process": expect, "mismatched": mismatched,
                          "child": child, **counts}}


def test_anon_coherent_is_ok_and_says_what_was_seen():
    v = decide(ANON, raw(pin="granted", result=anon_result()), [])
    assert v.verdict == "ok" and v.incoherent_pages == 0
    assert v.reason == ("512 of 512 pages as expected (device); the process sees: device 512; "
                        "ksmd merged 512 of 512 twin pages")
    res = anon_result()
    res["coherency"]["device_view_device"] = 512
    assert "device 512; the device reads its data back from 512; ksmd" in \
        decide(ANON, raw(pin="granted", result=res), []).reason


def test_anon_stale_pages_are_pin_incoherent():
    v = decide(ANON, raw(pin="granted", result=anon_result(mismatched=3)), [])
    assert v.verdict == "pin-incoherent" and v.failed and v.incoherent_pages == 3
    assert "509 of 512 pages as expected (device); the process sees: device 509, original 3" \
        in v.message()


def test_anon_child_seeing_the_device_data_is_pin_incoherent():
    res = anon_result(child={"mapped": True, "device": 512, "expected": 0, "other": 0})
    v = decide(ANON, raw(pin="granted", result=res), [])
    assert v.verdict == "pin-incoherent" and v.incoherent_pages == 512
    assert "the child sees the device's data in 512" in v.reason


def test_anon_dontneed_zero_pages_are_the_expectation():
    res = anon_result(expect="zero", process_device=0, process_zero=512)
    v = decide(ANON, raw(pin="granted", result=res), [])
    assert v.verdict == "ok" and "(zero); the process sees: zero 512" in v.reason


def test_anon_trigger_that_never_happened_tells_nothing():
    v = decide(ANON, raw(pin="granted", result=anon_result(ran=False)), [])
    assert v.verdict == "error" and v.reason.startswith("the trigger did not happen: ksmd")


@pytest.mark.parametrize("coh", [None, [], {"pages": "512", "mismatched": 0, "expect_process": "device"},
                                 {"pages": 512, "mismatched": 600, "expect_process": "device"},
                                 {"pages": 512, "mismatched": -1, "expect_process": "device"},
                                 {"pages": 512, "mismatched": 0, "expect_process": "junk"},
                                 {"pages": 512, "mismatched": True, "expect_process": "device"}])
def test_anon_malformed_coherency_is_ignored(coh):
    v = decide(ANON, raw(pin="granted", result={"coherency": coh, "trigger_ran": True}), [])
    assert v.verdict == "ok" and v.incoherent_pages is None and v.reason == "pin granted"


def test_anon_incoherence_against_an_expectation_stays_incoherent():
    v = decide(expecting("ok", ANON), raw(pin="granted", result=anon_result(mismatched=1)), [])
    assert v.verdict == "pin-incoherent" and "(expected ok)" in v.reason


# ------------------------------------------------------------------ corruption (issue 15)

STABLE = Case("stable-pages", "btrfs", "shared")


def test_checksum_error_names_the_corruption_and_counts_blocks():
    c = {"kind": "checksum-error", "blocks": 49, "blocks_checked": 256, "reason": "49 of 256"}
    v = decide(STABLE, RawOutcome(STABLE.id, pin="granted", corruption=c), [])
    assert v.verdict == "checksum-error" and v.blocks_corrupt == 49 and v.failed
    assert v.message() == "49 of 256"


def test_crash_beats_corruption_and_corruption_beats_data_loss():
    c = {"kind": "clone-changed", "blocks": 2, "reason": "the clone changed"}
    lost = IntegrityResult(blocks_checked=4, blocks_lost=4, first_bad=0)
    v = decide(STABLE, RawOutcome(STABLE.id, pin="granted", corruption=c), [Report("BUG: x")],
               lost)
    assert v.verdict == "crash"
    v = decide(STABLE, RawOutcome(STABLE.id, pin="granted", corruption=c), [], lost)
    assert v.verdict == "clone-changed" and v.reason == ("the clone changed; and 4 of 4 blocks "
                                                         "lost")


@pytest.mark.parametrize("c", [{"kind": "ok", "blocks": 3}, {"kind": "fine"}, "checksum-error",
                               {"blocks": 3}])
def test_a_bad_corruption_record_is_ignored(c):
    assert decide(STABLE, RawOutcome(STABLE.id, pin="granted", corruption=c), []).verdict == "ok"


def test_a_passing_case_carries_its_note():
    v = decide(STABLE, RawOutcome(STABLE.id, pin="granted", note="torn blocks: 1"), [])
    assert v.verdict == "ok" and v.reason == "pin granted; torn blocks: 1"


def test_checksum_error_expected_is_met():
    c = {"kind": "checksum-error", "blocks": 1, "reason": "r"}
    case = Case("stable-pages", "btrfs", "shared", expect="checksum-error")
    assert decide(case, RawOutcome(case.id, corruption=c), []).verdict == "checksum-error"
