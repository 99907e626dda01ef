"""Unit tests for pinrig.cases.integrity: pattern generator, FNV-1a, verify()."""
import struct

import pytest

from pinrig.cases.integrity import (
    BAD_BLOCKS_CAP,
    BLOCK,
    IntegrityResult,
    block_checksums,
    fnv1a64,
    pattern_bytes,
    pattern_checksums,
    pattern_word,
    verify,
)

# --- FNV-1a 64 ---------------------------------------------------------------------------

@pytest.mark.parametrize("data,want", [
    (b"", 0xcbf29ce484222325),
    (b"a", 0xaf63dc4c8601ec8c),
    (b"foobar", 0x85944171f73967e8),
])
def test_fnv1a64_vectors(data, want):
    assert fnv1a64(data) == want


def test_fnv1a64_accepts_memoryview():
    assert fnv1a64(memoryview(b"foobar")) == 0x85944171f73967e8


# --- pattern -----------------------------------------------------------------------------

def _mix_reference(x):
    m = (1 << 64) - 1
    z = (x + 0x9e3779b97f4a7c15) & m
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & m
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & m
    return z ^ (z >> 31)


def test_splitmix64_known_value():
    # first output of splitmix64 seeded with 0 (widely published test vector)
    assert _mix_reference(0) == 0xe220a8397b1dcdaf
    assert pattern_word(0, 0, 0) == 0xe220a8397b1dcdaf


def test_pattern_words_are_little_endian_mix():
    seed, tag = 7, 1
    data = pattern_bytes(seed, tag, 0, 64)
    for k in range(8):
        (w,) = struct.unpack_from("<Q", data, 8 * k)
        assert w == _mix_reference(seed ^ (tag << 56) ^ k)


def test_pattern_unaligned_slices_agree():
    whole = pattern_bytes(3, 2, 0, 200)
    for off, ln in [(0, 0), (1, 7), (5, 30), (8, 8), (13, 100), (199, 1)]:
        assert pattern_bytes(3, 2, off, ln) == whole[off:off + ln]


def test_pattern_tags_and_seeds_differ():
    a = pattern_bytes(7, 1, 0, BLOCK)
    assert a != pattern_bytes(7, 2, 0, BLOCK)
    assert a != pattern_bytes(8, 1, 0, BLOCK)
    assert a == pattern_bytes(7, 1, 0, BLOCK)
    assert len(a) == BLOCK


def test_pattern_large_seed_wraps():
    big = (1 << 64) - 1
    assert len(pattern_bytes(big, 2, 0, 16)) == 16


def test_pattern_rejects_negative():
    with pytest.raises(ValueError):
        pattern_bytes(1, 1, -1, 8)


# --- block checksums ---------------------------------------------------------------------

def test_block_checksums_format_and_partial_block():
    data = pattern_bytes(1, 1, 0, 2 * BLOCK + 10)
    sums = block_checksums(data)
    assert len(sums) == 3
    assert all(len(s) == 16 and s == s.lower() and int(s, 16) >= 0 for s in sums)
    assert sums[0] == format(fnv1a64(data[:BLOCK]), "016x")
    assert sums[2] == format(fnv1a64(data[2 * BLOCK:]), "016x")


def test_block_checksums_empty():
    assert block_checksums(b"") == []


def test_pattern_checksums_matches_block_checksums():
    assert pattern_checksums(7, 1, 65536) == block_checksums(pattern_bytes(7, 1, 0, 65536))


# --- verify ------------------------------------------------------------------------------

def _sums(n, seed=5, tag=1):
    return pattern_checksums(seed, tag, n * BLOCK)


def test_verify_all_match():
    exp = _sums(8)
    r = verify(exp, list(exp))
    assert r == IntegrityResult(blocks_checked=8, blocks_lost=0, first_bad=None, bad_blocks=[])
    assert r.ok
    assert r.to_dict() == {"blocks_checked": 8, "blocks_lost": 0, "first_bad": None,
                           "bad_blocks": [], "bad_blocks_truncated": False}


def test_verify_one_bad_block():
    exp = _sums(8)
    act = list(exp)
    act[5] = _sums(8, tag=2)[5]
    r = verify(exp, act)
    assert (r.blocks_checked, r.blocks_lost, r.first_bad, r.bad_blocks) == (8, 1, 5 * BLOCK, [5])
    assert not r.ok


def test_verify_first_bad_is_lowest_offset_and_block_size_respected():
    exp = ["%016x" % i for i in range(10)]
    act = list(exp)
    act[7] = "ffffffffffffffff"
    act[3] = "eeeeeeeeeeeeeeee"
    r = verify(exp, act, block_size=512)
    assert r.first_bad == 3 * 512
    assert r.bad_blocks == [3, 7]
    assert r.blocks_lost == 2


def test_verify_all_lost_lost_write():
    exp = _sums(16, tag=2)      # application wrote B ...
    act = _sums(16, tag=1)      # ... disk still holds A
    r = verify(exp, act)
    assert r.blocks_lost == 16 and r.first_bad == 0 and r.bad_blocks == list(range(16))


def test_verify_truncated_file_counts_missing_blocks():
    exp = _sums(8)
    r = verify(exp, exp[:5])
    assert r.blocks_checked == 8
    assert r.blocks_lost == 3
    assert r.first_bad == 5 * BLOCK
    assert r.bad_blocks == [5, 6, 7]


def test_verify_extra_actual_blocks_ignored():
    exp = _sums(4)
    r = verify(exp, _sums(6))
    assert r.blocks_checked == 4 and r.blocks_lost == 0


def test_verify_empty():
    r = verify([], [])
    assert (r.blocks_checked, r.blocks_lost, r.first_bad, r.bad_blocks) == (0, 0, None, [])
    r = verify([], ["0123456789abcdef"])
    assert r.blocks_lost == 0
    r = verify(["0123456789abcdef"], [])
    assert (r.blocks_lost, r.first_bad) == (1, 0)


def test_verify_case_insensitive():
    assert verify(["ABCDEF0123456789"], ["abcdef0123456789"]).blocks_lost == 0


def test_verify_bad_block_list_is_capped_but_count_exact():
    n = BAD_BLOCKS_CAP + 50
    r = verify(["%016x" % i for i in range(n)], ["ffffffffffffffff"] * n)
    assert r.blocks_lost == n
    assert len(r.bad_blocks) == BAD_BLOCKS_CAP
    assert r.bad_blocks == list(range(BAD_BLOCKS_CAP))
    assert r.to_dict()["bad_blocks_truncated"] is True
