"""GUP coherency for anonymous memory (issue 15 item 5), the short default slice: on a real
debian-6.1 guest, 2 MiB of anonymous memory pinned as an MR and written by the device (rxe RDMA
WRITE) is seen by the process (`control`: ok), while uprobes on a read-only pinned PROT_EXEC file
mapping put breakpoint copies of 8 pages into the page table behind the pin (`uprobe`:
pin-incoherent, 8 pages, their PFNs changed) — so the check can fail. The whole suite, with fork,
KSM, khugepaged, move_pages and MADV_DONTNEED, is opt-in: `rig run KERNEL --suite anon-coherency`
(docs/findings-debian.md)."""
from __future__ import annotations

import json
import textwrap

import pytest

from pinrig.runs.runner import run_suite

pytestmark = pytest.mark.integration


def test_anon_coherency_control_and_uprobe(tmp_path):
    suite = tmp_path / "anon-quick.yaml"
    suite.write_text(textwrap.dedent("""\
        name: anon-quick
        timeout: 120
        cases:
          - workload: anon-coherency
            fs: tmpfs
            mapping: private
            size: 2097152
            variant: [control, uprobe]
        """))
    out = run_suite("debian-6.1", str(suite), out=tmp_path / "r", echo=lambda *a: None)
    by = {v.case: v for v in out.verdicts}
    control = by["anon-coherency/tmpfs/private/control"]
    assert control.verdict == "ok" and control.incoherent_pages == 0, control
    assert control.reason.startswith("512 of 512 pages as expected (device)"), control.reason
    up = by["anon-coherency/tmpfs/private/uprobe"]
    assert up.verdict == "pin-incoherent" and up.failed and up.incoherent_pages == 8, up
    res = json.loads((tmp_path / "r" / "cases" / up.case / "result.json").read_text())
    assert res["evidence"]["twin_breakpoints"] == 8 and res["evidence"]["pinned_breakpoints"] == 8
    pinned = res["regions"]["pinned"]
    assert pinned["after_trigger"]["pfn_changed_since_after_pin"] == 8
    assert res["coherency"]["device_view_device"] == 512       # the device reads the old pages
    assert out.exit_code == 1
