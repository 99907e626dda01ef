"""Stage `integrity`: block checksums after the crash/remount → IntegrityResult.

The guest workloads (workloads/src) report a list ``expected`` of per-block checksums of what the
application believes is on disk; after the host has crashed the guest and remounted the
filesystem, ``blocksum`` reports the checksums of what really is there.  :func:`verify` compares
the two.

The data pattern and the checksum are defined here exactly as in workloads/src/common.c, so
either side can be computed without the other:

* pattern word *k* (little-endian u64 at byte offset 8k) for tag *t* and seed *s* is
  ``mix(s ^ (t << 56) ^ k)`` with ``mix`` the splitmix64 finalizer; tag A = 1, tag B = 2;
* block checksum: FNV-1a 64 over each 4096-byte block (a trailing partial block over the bytes
  that exist), printed as 16 lowercase hex digits.

Standard library only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Union

BLOCK = 4096
TAG_A = 1
TAG_B = 2
BAD_BLOCKS_CAP = 64

_M64 = (1 << 64) - 1
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3


def _mix(x: int) -> int:
    """splitmix64 finalizer (mod 2**64)."""
    z = (x + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def pattern_word(seed: int, tag: int, k: int) -> int:
    """Word *k* of the pattern with *tag* and *seed*."""
    return _mix(((seed & _M64) ^ ((tag << 56) & _M64) ^ k) & _M64)


def pattern_bytes(seed: int, tag: int, offset: int, length: int) -> bytes:
    """Bytes [offset, offset+length) of the pattern, identical to the C generator."""
    if offset < 0 or length < 0:
        raise ValueError("offset and length must be non-negative")
    if length == 0:
        return b""
    first = offset // 8
    last = (offset + length + 7) // 8  # exclusive
    base = (seed & _M64) ^ ((tag << 56) & _M64)
    words = b"".join(_mix(base ^ k).to_bytes(8, "little") for k in range(first, last))
    start = offset - first * 8
    return words[start:start + length]


def fnv1a64(data: Union[bytes, memoryview]) -> int:
    """FNV-1a 64-bit hash of *data*."""
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _M64
    return h


def block_checksums(data: bytes, block_size: int = BLOCK) -> List[str]:
    """Per-block FNV-1a 64 checksums as 16 lowercase hex digits (partial last block included)."""
    if block_size <= 0:
        raise ValueError("block_size must be positive")
    view = memoryview(data)
    return [format(fnv1a64(view[i:i + block_size]), "016x") for i in range(0, len(data), block_size)]


def pattern_checksums(seed: int, tag: int, size: int, block_size: int = BLOCK) -> List[str]:
    """Checksums of the first *size* bytes of a pattern (what the workloads call "expected")."""
    return block_checksums(pattern_bytes(seed, tag, 0, size), block_size)


@dataclass
class IntegrityResult:
    blocks_checked: int
    blocks_lost: int
    first_bad: Optional[int]  # byte offset of the first mismatching block, None if all match
    bad_blocks: List[int] = field(default_factory=list)  # block indices, capped; count is exact

    @property
    def ok(self) -> bool:
        return self.blocks_lost == 0

    def to_dict(self) -> dict:
        return {
            "blocks_checked": self.blocks_checked,
            "blocks_lost": self.blocks_lost,
            "first_bad": self.first_bad,
            "bad_blocks": list(self.bad_blocks),
            "bad_blocks_truncated": self.blocks_lost > len(self.bad_blocks),
        }


def _norm(s: str) -> str:
    return str(s).strip().lower()


def verify(expected: Sequence[str], actual: Sequence[str], block_size: int = BLOCK) -> IntegrityResult:
    """Compare per-block checksums.

    Every expected block is checked; a block missing from *actual* (file truncated) counts as
    lost.  Extra actual blocks are ignored.  Checksums compare case-insensitively.
    """
    lost = 0
    bad: List[int] = []
    first_bad: Optional[int] = None
    for i, exp in enumerate(expected):
        if i < len(actual) and _norm(actual[i]) == _norm(exp):
            continue
        lost += 1
        if first_bad is None:
            first_bad = i * block_size
        if len(bad) < BAD_BLOCKS_CAP:
            bad.append(i)
    return IntegrityResult(blocks_checked=len(expected), blocks_lost=lost, first_bad=first_bad,
                           bad_blocks=bad)
