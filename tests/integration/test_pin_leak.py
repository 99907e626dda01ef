"""The pin accounting check can fail (issue 15 item 1): on a real debian-6.1 guest, the oopsmod
test module pins a page and never unpins it; the rig's counters over that span show the leak
and the verdict is pin-leak. The same span without the leak balances.

Builds workloads/oopsmod against Debian's linux-headers for the kernel (fetched once into the
cache, ~15 MB) with the host's gcc-12, as scripts/capture_oops.py does for the crash corpus."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from pinrig import config
from pinrig.cases.execute import pin_counters
from pinrig.cases.verdict import RawOutcome, decide
from pinrig.config import Case
from pinrig.guest.session import Session, prepare_env

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _capture_module():
    spec = importlib.util.spec_from_file_location("capture_oops", REPO / "scripts/capture_oops.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["capture_oops"] = mod          # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_a_leaked_pin_is_caught_and_a_clean_span_is_not(tmp_path):
    env = prepare_env("debian-6.1", cold=False)
    ko = _capture_module().module_for(config.load_kernel_spec("debian-6.1"), env.art, "never")
    sess = Session(env, tmp_path / "g")
    try:
        br = sess.boot()
        assert br.status == "ready", br
        g = sess.connected_guest()
        g.put(ko, "/tmp/pinrig_oops.ko")
        g.run("insmod /tmp/pinrig_oops.ko", timeout=60, check=True)
        case = Case("ibverbs-pin", "ext4", "shared", variant="leak")

        def span(cmd):
            before = pin_counters(g)
            g.run(cmd, timeout=60, check=True)
            after = pin_counters(g)
            assert before is not None and after is not None
            pins = {k: after[k] - before[k] for k in ("acquired", "released")}
            return pins, decide(case, RawOutcome(case.id, pin="granted", pins=pins), [])

        pins, v = span("true")
        assert pins["acquired"] == pins["released"] and v.verdict == "ok", (pins, v)
        pins, v = span("echo leak-pin > /proc/pinrig_oops")
        assert pins["acquired"] - pins["released"] == 1, pins
        assert v.verdict == "pin-leak" and v.failed, v
        assert "1 page pin(s) never released" in v.reason
    finally:
        sess.close()
        sess.discard_pmem()
