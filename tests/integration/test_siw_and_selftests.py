"""Issue 15 items 7 and 8 on real guests.

Default (short): on debian-6.1 a writable long-term MR of a MAP_SHARED ext4 file is registered
once through rxe and once through siw (siw.ko built from Debian's own linux-source-6.1 against
the kernel's headers, loaded in the guest): the pin verdict is the same for both providers and
the FOLL_PIN accounting balances for both.

Opt-in (PINRIG_FULL_SUITES=1, marker full_suites; tens of minutes on a 2-core box):
    PINRIG_FULL_SUITES=1 .venv/bin/python -m pytest tests/integration/test_siw_and_selftests.py -m full_suites
the whole provider-matrix suite (every rxe case against its @siw twin) and the mm-selftests
suite on debian-6.12.
"""
from __future__ import annotations

import os
import textwrap

import pytest

from pinrig.runs.runner import run_suite

pytestmark = pytest.mark.integration


def test_siw_and_rxe_give_the_same_pin_verdict_on_debian_61(tmp_path):
    suite = tmp_path / "siw-short.yaml"
    suite.write_text(textwrap.dedent("""\
        name: siw-short
        cases:
          - workload: ibverbs-pin
            fs: ext4
            mapping: shared
            provider: [rxe, siw]
        """))
    out = run_suite("debian-6.1", str(suite), out=tmp_path / "r", echo=lambda *a: None)
    by = {v.case: v for v in out.verdicts}
    rxe, siw = by["ibverbs-pin/ext4/shared"], by["ibverbs-pin/ext4/shared@siw"]
    assert rxe.verdict == siw.verdict == "ok", (rxe, siw)
    assert rxe.pin == siw.pin == "granted"
    for v in (rxe, siw):
        assert v.pins and v.pins["acquired"] == v.pins["released"] > 0, v
    log = (out.run.path / "cases" / "ibverbs-pin" / "ext4" / "shared@siw" / "guest.log").read_text()
    assert "rdma link add siw0 type siw" in log and '"device":"siw0"' in log


@pytest.mark.parametrize("kernel", ["debian-6.1", "debian-6.12"])
@pytest.mark.full_suites
def test_provider_matrix_verdicts_do_not_depend_on_the_provider(tmp_path, kernel):
    if os.environ.get("PINRIG_FULL_SUITES") != "1":
        pytest.skip("full suites are opt-in: PINRIG_FULL_SUITES=1")
    out = run_suite(kernel, "provider-matrix", out=tmp_path / "r", echo=lambda *a: None)
    by = {v.case: v for v in out.verdicts}
    twins = [(c, c + "@siw") for c in by if not c.endswith("@siw")]
    assert len(twins) == 10
    for rxe, siw in twins:
        assert by[rxe].verdict == by[siw].verdict, (by[rxe], by[siw])
        assert by[rxe].blocks_lost == by[siw].blocks_lost, (by[rxe], by[siw])


@pytest.mark.full_suites
def test_mm_selftests_on_debian_612(tmp_path):
    if os.environ.get("PINRIG_FULL_SUITES") != "1":
        pytest.skip("full suites are opt-in: PINRIG_FULL_SUITES=1")
    out = run_suite("debian-6.12", "mm-selftests", out=tmp_path / "r", echo=lambda *a: None)
    by = {v.case: v for v in out.verdicts}
    assert not [v for v in out.verdicts if v.verdict == "error"], out.verdicts
    for fs in ("ext4", "xfs", "tmpfs"):
        v = by[f"kselftest-gup_longterm/{fs}/shared"]
        assert v.verdict in ("ok", "unexpected") and " pass" in v.reason, v
    # Debian's kernels have no CONFIG_GUP_TEST: the gup_test cases say so
    v = by["kselftest-gup_test/tmpfs/shared/vmtests"]
    assert v.verdict == "skipped" and "CONFIG_GUP_TEST" in v.reason, v
