"""pinrig.cases.corruption: judging stable-page and reflink cases from the guest's JSON."""
import pytest

from pinrig.cases import corruption, integrity
from pinrig.cases.corruption import classify_blocks, csum_log_lines, judge_clones, judge_stable
from pinrig.outcome import Outcome


def overlap(unreadable=0, torn=0, last_unreadable=0, errno=None, blocks=256) -> dict:
    return {"writer": "rdma", "blocks": blocks, "check_passes": 3, "writer_passes": 70,
            "fsyncs": 9, "fsync_errno": None, "overlap_unreadable_blocks": unreadable,
            "overlap_torn_blocks": torn, "overlap_torn_max": torn,
            "overlap_last": {"consistent": blocks - last_unreadable, "torn": 0, "foreign": 0,
                             "unreadable": last_unreadable, "first_errno": errno}}


def check(unreadable=0, torn=0, errno="EIO") -> dict:
    return {"now": {"consistent": 256 - unreadable - torn, "torn": torn, "foreign": 0,
                    "unreadable": unreadable, "first_errno": errno if unreadable else None}}


def test_clean_overlap_and_crash_is_no_corruption_but_says_what_it_saw():
    c, ev = judge_stable(overlap(torn=2), check())
    assert c is None
    assert ev["summary"] == "torn blocks on the medium: 2 during the overlap, 0 after the crash"


def test_unreadable_during_the_overlap_is_checksum_error_with_the_errno():
    c, ev = judge_stable(overlap(unreadable=49, last_unreadable=1, errno="EIO"), check(29), 29, 0)
    assert c["kind"] == Outcome.CHECKSUM_ERROR.value and c["blocks"] == 49
    assert c["reason"].startswith("49 of 256 blocks failed their checksum while the device wrote "
                                  "(EIO); 29 of 256 blocks unreadable after the power cut")
    assert ev["after_crash"]["unreadable"] == 29 and ev["kernel_csum_messages"]["overlap"] == 29


def test_unreadable_only_after_the_crash_counts_where_the_device_is_crash_consistent():
    c, _ = judge_stable(overlap(), check(7))
    assert c is not None and c["blocks"] == 7


def test_unreadable_only_after_the_crash_is_shown_not_counted_on_direct_dm_integrity():
    """Measured on debian-6.1: the cpu control (no pin at all) left 37 such blocks."""
    c, ev = judge_stable(overlap(), check(37, errno="EILSEQ"), 0, 10, crash_consistent=False)
    assert c is None
    assert "37 of 256 blocks unreadable after the power cut (not counted" in ev["summary"]
    c, _ = judge_stable(overlap(unreadable=4, errno="EILSEQ"), check(37), 4, 10,
                        crash_consistent=False)
    assert c is not None and c["blocks"] == 4


def test_a_logged_checksum_failure_alone_is_still_checksum_error():
    c, _ = judge_stable(overlap(), check(), log_overlap=3)
    assert c is not None and c["blocks"] == 0 and "3 during the overlap" in c["reason"]


@pytest.mark.parametrize("bad", [None, "x", [], {"overlap_unreadable_blocks": "many"},
                                 {"overlap_unreadable_blocks": -4, "overlap_last": []},
                                 {"overlap_unreadable_blocks": True}])
def test_untrusted_json_never_raises_and_counts_nothing_bogus(bad):
    result = bad if isinstance(bad, dict) else {}
    c, _ = judge_stable(result, {"now": bad} if bad is not None else None)
    assert c is None


def test_csum_log_lines_btrfs_and_dm_integrity():
    log = ("[ 33.8] BTRFS warning (device pmem0): csum failed root 5 ino 257 off 966656 csum "
           "0x74cefe98 expected csum 0x53f16a3e mirror 1\n"
           "[ 48.5] device-mapper: integrity: dm-0: Checksum failed at sector 0x40800\n"
           "[ 49.0] EXT4-fs (dm-1): mounted filesystem\n")
    n, lines = csum_log_lines(log)
    assert n == 2 and lines[0].startswith("[ 33.8] BTRFS") and "sector 0x40800" in lines[1]


SEED, SIZE = 7, 4 * 4096
A = integrity.pattern_checksums(SEED, integrity.TAG_A, SIZE)
B = integrity.pattern_checksums(SEED, integrity.TAG_B, SIZE)


def test_classify_blocks():
    assert classify_blocks(A[:2] + B[2:3], SEED, SIZE) == {"A": 2, "B": 1, "other": 0,
                                                           "missing": 1}
    assert classify_blocks(["0" * 16] * 4, SEED, SIZE)["other"] == 4


def test_clone_kept_and_original_holds_the_device_data():
    orig, c, ev = judge_clones(SEED, SIZE, B, A)
    assert orig.blocks_lost == 0 and c is None and ev["device_data_in"] == "original"


def test_original_lost_the_device_write_clone_unchanged_is_data_loss_only():
    orig, c, ev = judge_clones(SEED, SIZE, A, A)
    assert orig.blocks_lost == 4 and c is None and ev["device_data_in"] == "neither"
    assert ev["summary"] == "original: 0 B, 4 A, 0 other; clone: 4 A, 0 B, 0 other"


def test_clone_changed_is_named_and_counted():
    orig, c, ev = judge_clones(SEED, SIZE, B, A[:2] + B[2:])
    assert c == {"kind": "clone-changed", "blocks": 2, "blocks_checked": 4,
                 "reason": "the clone changed in 2 of 4 blocks (original: 4 B, 0 A, 0 other; "
                           "clone: 2 A, 2 B, 0 other)"}
    assert corruption.Outcome.CLONE_CHANGED.failed


def test_missing_clone_file_counts_every_block():
    _, c, _ = judge_clones(SEED, SIZE, B, [])
    assert c is not None and c["blocks"] == 4


def test_reads_failing_because_writeback_was_refused_are_writeback_error():
    """Measured on debian-6.12 btrfs (odirect-race): 'root 5 ino 261 folio 0 is marked dirty
    without notifying the fs', 'failed to submit blocks ... -117'; fsync and the O_DIRECT
    read-back fail EUCLEAN, with no checksum failure logged."""
    res = overlap(unreadable=36, last_unreadable=5, errno="E117")
    res["fsync_errno"] = "E117"
    c, ev = judge_stable(res, check(), 0, 0, True, 20, 0)
    assert c["kind"] == "writeback-error" and c["blocks"] == 36
    assert c["reason"].startswith("36 of 256 blocks could not be read back while the device "
                                  "wrote (E117); writeback refused pages dirtied behind the "
                                  "filesystem's back: 20 kernel log line(s), fsync E117")
    assert ev["kernel_writeback_refusals"] == {"overlap": 20, "after_crash": 0}


def test_writeback_refusal_log_lines():
    log = ("[91.85] BTRFS error (device pmem0): root 5 ino 261 folio 0 is marked dirty without "
           "notifying the fs\n[91.88] BTRFS error (device pmem0): failed to submit blocks, "
           "root=5 inode=261 folio=0 submit_bitmap=0: -117\n")
    assert corruption.writeback_log_lines(log)[0] == 2 and csum_log_lines(log)[0] == 0
