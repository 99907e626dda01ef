"""Symbolized reports on a real kernel (issue 12 item 5): the rig's test module, built with
debug info against debian-6.1's headers, WARNs in a real guest; the report's frames in the
module get file:line from the very .ko that was loaded, and the guilty frame's line is the
WARN() in workloads/oopsmod/pinrig_oops.c."""
from __future__ import annotations

from pathlib import Path

import pytest

from pinrig import oops
from pinrig.cases import kmod
from pinrig.guest.session import Session
from pinrig.kernels.debug import symbolizer_for

pytestmark = pytest.mark.integration
SRC = Path(__file__).resolve().parents[2] / "workloads" / "oopsmod" / "pinrig_oops.c"


def test_a_module_warning_is_symbolized_to_its_source_line(env61, tmp_path):
    ko = kmod.test_module(env61.spec, env61.art)
    sym = symbolizer_for(env61.art, ko, False, env61.spec)
    assert sym is not None
    sess = Session(env61, tmp_path / "boot")
    try:
        assert sess.boot().status == "ready"
        g = sess.connected_guest()
        g.put(ko, kmod.GUEST_KO)
        assert g.run(f"insmod {kmod.GUEST_KO}", timeout=60).rc == 0
        g.run("echo warn > /proc/pinrig_oops", timeout=60)
        console = sess.machine.console_text()
    finally:
        sess.close()
        sess.discard_pmem()
    reports = [r for r in oops.parse_console(console) if r.title == "WARNING in pinrig_warn"]
    assert reports, console[-3000:].decode(errors="replace")
    from pinrig.oops.symbolize import symbolize_reports
    symbolize_reports(reports, sym)
    warn_line = next(i for i, ln in enumerate(SRC.read_text().splitlines(), 1)
                     if ln.strip().startswith("WARN(READ_ONCE(pinrig_true)"))
    assert reports[0].where.endswith(f"pinrig_oops.c:{warn_line}"), reports[0].to_dict()
    located = [f for f in reports[0].locations if f["locations"]]
    assert {f["locations"][0]["function"] for f in located} >= {"pinrig_warn", "pinrig_write"}
