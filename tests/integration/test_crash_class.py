"""Integration: the crash class (issue 15 item 4) on real Debian guests, opt-in like the other
bug classes (one cold boot with numa=fake=2 per kernel, a few minutes under TCG):

    PINRIG_BUG_CLASSES=1 .venv/bin/python -m pytest tests/integration/test_crash_class.py -m bug_classes

What it asserts is what the crash-class suite measured (docs/bug-classes.md#the-crash-class):
on debian-6.1 MADV_PAGEOUT of a pinned, clean ext4 mapping unmaps the pages but leaves their
buffers (shrink_folio_list skips pinned folios) and every block holds the device's data;
splicing the same pages into /dev/fuse with SPLICE_F_MOVE strips their buffers while they stay
pinned in the page cache, and the unpin then dirties an ext4 page without buffers.
"""
from __future__ import annotations

import json
import os

import pytest

from pinrig.runs.runner import run_suite

pytestmark = [
    pytest.mark.integration,
    pytest.mark.bug_classes,
    pytest.mark.skipif(os.environ.get("PINRIG_BUG_CLASSES") != "1",
                       reason="boots a numa=fake=2 guest (minutes): run with PINRIG_BUG_CLASSES=1 "
                              "pytest tests/integration/test_crash_class.py"),
]

SUITE = """\
name: crash-class-it
seed: 1
timeout: 180
kernel_append: [numa=fake=2]
cases:
  - workload: crash-class
    fs: ext4
    mapping: shared
    variant: [pageout, splice-steal]
"""


def counts(case_dir, stage):
    res = json.loads((case_dir / "result.json").read_text())
    snaps = {s["stage"]: s["counts"] for s in res["crash_class"]["snapshots"]}
    return snaps[stage]


def test_pageout_is_held_off_and_splice_steal_strips_the_buffers_on_debian61(tmp_path):
    p = tmp_path / "crash-class-it.yaml"
    p.write_text(SUITE)
    out = run_suite("debian-6.1", str(p), out=tmp_path / "r", echo=lambda *a: None)
    by = {v.case: v for v in out.verdicts}
    cases = tmp_path / "r" / "cases" / "crash-class" / "ext4" / "shared"

    po = by["crash-class/ext4/shared/pageout"]
    assert po.verdict == "ok" and po.pin == "granted" and po.blocks_lost == 0, po
    assert counts(cases / "pageout", "after-trigger")["private"] == 256
    assert counts(cases / "pageout", "after-trigger")["mmap"] == 0      # unmapped, kept
    assert (cases / "pageout" / "pageflags.txt").is_file()

    st = by["crash-class/ext4/shared/splice-steal"]
    assert counts(cases / "splice-steal", "registered")["private"] == 256
    assert counts(cases / "splice-steal", "after-trigger")["private"] == 0
    assert st.verdict == "crash" and st.blocks_lost == 256, st
    assert st.title == "WARNING in ext4_dirty_folio", st.titles
    assert "EXT4-fs warning in mpage_prepare_extent_to_map" in st.titles
