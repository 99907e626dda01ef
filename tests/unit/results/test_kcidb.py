"""KCIDB export validates against the real kcidb-io schema (v5.3), and the validator bites."""
import copy
import json

import pytest

from pinrig.cases.verdict import Verdict
from pinrig.errors import UserError
from pinrig.results import kcidb
from pinrig.results.rundir import RunDir


def make_run(tmp_path):
    run = RunDir(tmp_path, {"run_id": "20261122-000000-debian-6.1-smoke",
                            "kernel": {"name": "debian-6.1", "release": "6.1.0-50-amd64",
                                       "hash": "4904b0f192e87bd8",
                                       "packages": ["linux-image-6.1.0-50-amd64=6.1.176-1"]},
                            "guest": {"hash": "abc"}, "suite": {"name": "pin-matrix"},
                            "accel": "tcg", "start": "2026-11-22T03:23:38+0000",
                            "host": {"hostname": "box"}})
    run.write_manifest()
    run.write_case(Verdict("ibverbs-pin/ext4/shared", "ok", pin="granted", wall_s=1.5), {})
    run.write_case(Verdict("ibverbs-pin/ext4-dax/shared", "refused", errno="EOPNOTSUPP"), {})
    run.write_case(Verdict("lost-write/ext4/shared", "data-loss", blocks_lost=256,
                           first_bad_offset=0), {})
    run.write_case(Verdict("lost-write/xfs/shared", "crash", title="WARNING in xfs_foo",
                           titles=["WARNING in xfs_foo"], attempt=2, where="fs/xfs/xfs_aops.c:42"),
                   {})
    run.write_case(Verdict("iouring-fixed/ext4/shared", "error", reason="boot failed"), {})
    run.write_case(Verdict("iouring-fixed/tmpfs/shared", "skipped", reason="no"), {})
    return run


def test_export_validates_and_maps_statuses(tmp_path):
    make_run(tmp_path)
    data = kcidb.export(tmp_path)
    kcidb.validate(data)
    status = {t["id"].split(":", 2)[2]: t["status"] for t in data["tests"]}
    assert status == {"ibverbs-pin/ext4/shared": "PASS", "ibverbs-pin/ext4-dax/shared": "PASS",
                      "lost-write/ext4/shared": "FAIL", "lost-write/xfs/shared#2": "FAIL",
                      "iouring-fixed/ext4/shared": "ERROR", "iouring-fixed/tmpfs/shared": "SKIP"}
    crash = next(t for t in data["tests"] if t["id"].endswith("lost-write/xfs/shared#2"))
    assert crash["misc"]["where"] == "fs/xfs/xfs_aops.c:42"
    assert crash["log_excerpt"] == "WARNING in xfs_foo at fs/xfs/xfs_aops.c:42"
    paths = {t["path"] for t in data["tests"]}
    assert "pinrig.pin-matrix.ibverbs-pin.ext4-dax.shared" in paths
    subjects = sorted(i["report_subject"] for i in data["issues"])
    assert subjects == ["WARNING in xfs_foo", "data loss after power cut: lost-write on ext4"]
    assert len(data["incidents"]) == 2
    assert {x["test_id"] for x in data["incidents"]} <= {t["id"] for t in data["tests"]}
    json.dumps(data)


@pytest.mark.parametrize("breaker", [
    lambda d: d["tests"][0].__setitem__("status", "OK"),
    lambda d: d["tests"][0].__setitem__("id", "no-origin-prefix"),
    lambda d: d["builds"][0].pop("checkout_id"),
    lambda d: d["version"].__setitem__("major", 99),
])
def test_validator_rejects_broken_exports(tmp_path, breaker):
    make_run(tmp_path)
    data = copy.deepcopy(kcidb.export(tmp_path))
    breaker(data)
    with pytest.raises(UserError, match="does not validate"):
        kcidb.validate(data)


def test_export_needs_a_results_dir(tmp_path):
    with pytest.raises(UserError, match="not a results directory"):
        kcidb.export(tmp_path)


def test_export_refuses_a_run_with_an_unreadable_verdict(tmp_path):
    """It used to omit the crash and exit 0 (issue 11: item 6)."""
    make_run(tmp_path)
    vj = tmp_path / "cases" / "lost-write" / "xfs" / "shared" / "@2" / "verdict.json"
    vj.write_text(vj.read_text()[:40])
    with pytest.raises(UserError, match=r"1 unreadable verdict\(s\).*lost-write/xfs/shared attempt 2"):
        kcidb.export(tmp_path)
