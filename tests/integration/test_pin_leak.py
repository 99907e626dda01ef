"""The pin accounting check bites (issue 15 item 1): the pin-accounting suite on a real
debian-6.1 guest — clean cases balance, and the `leak` variant, where the rig's test module
(workloads/oopsmod, built against Debian's headers for that kernel) pins a page of the workload
and never unpins it, is verdict pin-leak."""
from __future__ import annotations

import pytest

from pinrig.runs.runner import run_suite

pytestmark = pytest.mark.integration


def test_pin_accounting_suite(tmp_path):
    out = run_suite("debian-6.1", "pin-accounting", out=tmp_path / "r", echo=lambda *a: None)
    by = {v.case: v for v in out.verdicts}
    for clean in ("ibverbs-pin/ext4/shared", "ibverbs-pin/tmpfs/shared"):
        v = by[clean]
        assert v.verdict == "ok" and v.pins and v.pins["acquired"] == v.pins["released"] > 0, v
    leak = by["ibverbs-pin/ext4/shared/leak"]
    assert leak.verdict == "pin-leak" and leak.failed, leak
    assert leak.pins["acquired"] - leak.pins["released"] == 1, leak.pins
    assert leak.reason.startswith("1 page pin(s) never released"), leak.reason
    assert out.exit_code == 1
