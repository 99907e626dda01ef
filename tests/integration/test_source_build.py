"""Integration: kernels built from Debian's linux-source-6.1 with the rig's config and the two
evaluation series, booted under QEMU, running real cases.

A clean build takes 15+ minutes on a 2-core box (much longer when guests compete for the CPU),
so these tests are skipped unless asked for:

    PINRIG_SOURCE_BUILD=1 .venv/bin/python -m pytest tests/integration/test_source_build.py -m source_build

Later runs hit the build cache (~/.cache/pinrig/kernels/source) and ccache.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pinrig import config
from pinrig.kernels import fetch as kernel
from pinrig.kernels.source import builder
from pinrig.runs.runner import run_suite

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.source_build,
    pytest.mark.skipif(os.environ.get("PINRIG_SOURCE_BUILD") != "1",
                       reason="builds kernels from source (tens of minutes): run with "
                              "PINRIG_SOURCE_BUILD=1 pytest tests/integration/test_source_build.py"),
]


def _art(name):
    return kernel.fetch(config.load_kernel_spec(name))


def test_src61_builds_with_everything_built_in():
    art = _art("src-6.1")
    cfg = art.config.read_text()
    for sym in ("CONFIG_RDMA_RXE=y", "CONFIG_INFINIBAND_USER_ACCESS=y", "CONFIG_BLK_DEV_PMEM=y",
                "CONFIG_FS_DAX=y", "CONFIG_XFS_FS=y", "CONFIG_GUP_TEST=y", "CONFIG_VIRTIO_BLK=y"):
        assert sym in cfg, sym
    assert art.release.startswith("6.1.") and art.release.endswith("-pinrig")


def test_series_build_then_cache_hit_does_no_work():
    art = _art("src-6.1-longterm-deny")
    before = (art.dir / "artifact.json").stat().st_mtime_ns
    res = subprocess.run([sys.executable, str(REPO / "rig.py"), "build", "src-6.1-longterm-deny"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert (art.dir / "artifact.json").stat().st_mtime_ns == before     # nothing rebuilt
    assert "make" not in res.stderr and "applying" not in res.stderr.lower(), res.stderr


def test_longterm_deny_refuses_writable_shared_file_pins(tmp_path):
    base = run_suite("src-6.1", "smoke", out=tmp_path / "base", echo=lambda *a: None)
    deny = run_suite("src-6.1-longterm-deny", "smoke", out=tmp_path / "deny", echo=lambda *a: None)
    b = {v.case: v for v in base.verdicts}
    d = {v.case: v for v in deny.verdicts}
    assert b["ibverbs-pin/ext4/shared"].verdict == "ok"
    assert (d["ibverbs-pin/ext4/shared"].verdict, d["ibverbs-pin/ext4/shared"].errno) == \
        ("refused", "EFAULT")
    assert d["ibverbs-pin/tmpfs/shared"].verdict == "ok"


def test_pinned_warn_turns_lost_write_into_a_crash_report(tmp_path):
    out = run_suite("src-6.1-pinned-warn", "lost-write-once", out=tmp_path / "w",
                    echo=lambda *a: None)
    v = out.verdicts[0]
    assert v.verdict == "crash", v
    assert v.title.startswith("WARNING in folio_clear_dirty_for_io"), v.title


def test_build_cache_key_is_stable_across_processes():
    p1 = builder.plan(config.load_kernel_spec("src-6.1-longterm-deny"))
    res = subprocess.run([sys.executable, "-c",
                          "from pinrig import config; from pinrig.kernels.source import builder; "
                          "print(builder.plan(config.load_kernel_spec('src-6.1-longterm-deny')).key)"],
                         capture_output=True, text=True, cwd=REPO)
    assert res.stdout.strip() == p1.key


def test_kselftest_gup_test_sees_the_series_on_both_paths(tmp_path):
    from pinrig.cases import kselftest
    res = kselftest.run("src-6.1-longterm-deny", tests=["gup_test"], filesystems=["ext4", "tmpfs"],
                        out=tmp_path / "ks", echo=lambda *a: None)
    got = {(s.fs, s.name): s.result for s in res.subtests}
    assert got[("ext4", "longterm-rw-shared")] == "refused"
    assert got[("ext4", "fast-longterm-rw-shared")] == "refused"
    assert got[("ext4", "longterm-rw-private")] == "pinned"
    assert got[("tmpfs", "fast-longterm-rw-shared")] == "pinned"


def test_bisect_finds_the_behaviour_change(tmp_path):
    from pinrig.runs import bisect
    res = bisect.run_bisect("src-6.1-longterm-deny", "smoke", "ibverbs-pin/ext4/shared",
                            out=tmp_path / "b", echo=lambda *a: None)
    assert res.first_new == 3
    assert res.patches[2][1].startswith("mm/gup: refuse writable long-term pins")
