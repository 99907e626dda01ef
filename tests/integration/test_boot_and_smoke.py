"""Integration: boot real Debian kernels under QEMU (TCG here) and run real cases.

Slow (each boot is ~15-20 s under TCG) and needs root, network to Debian mirrors on the first
run, and the host packages scripts/setup.sh installs. Select with `-m integration`.
"""
from __future__ import annotations

import json
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pinrig import cli, oops, paths
from pinrig.guest.session import Session
from pinrig.runs.runner import run_suite

pytestmark = pytest.mark.integration


def _leftovers() -> set:
    return set(paths.cache_dir().glob("pinrig-boot-*")) | set(
        Path(tempfile.gettempdir()).glob("pinrig-dry-*"))


def test_boot_runs_command_and_prints_release(capfd):
    before = _leftovers()
    assert cli.main(["boot", "debian-6.1", "--", "uname", "-r"]) == 0
    out = capfd.readouterr().out.strip()
    assert out.startswith("6.1."), out
    assert _leftovers() == before, "rig boot left its boot directory (a 1 GiB pmem file) behind"


def test_boot_carries_exit_code_back(capfd):
    assert cli.main(["boot", "debian-6.12", "--", "false"]) == 1


def test_guest_has_rxe_and_pmem(capfd):
    assert cli.main(["boot", "debian-6.12", "--", "rdma link show; ndctl list"]) == 0
    out = capfd.readouterr().out
    assert "rxe0" in out and "state ACTIVE" in out
    ns = json.loads(out[out.index("["):])
    assert ns[0]["blockdev"] == "pmem0"


def test_dry_run_prints_qemu_argv(capfd):
    before = _leftovers()
    assert cli.main(["boot", "debian-6.1", "--dry-run"]) == 0
    assert _leftovers() == before
    out = capfd.readouterr().out
    assert "nvdimm,id=nv1,memdev=mem1" in out and "hostfwd=tcp:127.0.0.1:" in out
    assert "-no-reboot" in out and "panic=-1" in out


def test_panic_at_boot_is_a_crash_not_a_hang(env61, tmp_path):
    """A kernel that cannot mount its root panics; QEMU must end at once and the console must
    carry the panic title (the runner turns that into verdict crash, phase boot)."""
    s = Session(env61, tmp_path / "boot", append=("rdinit=/nonexistent",))
    br = s.boot()
    s.close()
    assert br.status == "crash", br
    reports = oops.parse_console(s.machine.console_text())
    assert reports and reports[0].title.startswith("kernel panic"), [r.title for r in reports]


def test_boot_from_a_directory_with_commas_and_spaces(env61, tmp_path):
    """Overlay and pmem paths with commas reach QEMU intact (issue 11: item 14)."""
    s = Session(env61, tmp_path / "with,comma,readonly=off and space")
    try:
        br = s.boot()
        assert br.status == "ready", br
        assert s.connected_guest().run("ls /dev/pmem0", timeout=30).rc == 0
    finally:
        s.close()
        s.discard_pmem()


@pytest.mark.parametrize("kernel,ext4_verdict,errno", [
    ("debian-6.1", "ok", None),          # writable long-term pin of a shared file mapping granted
    ("debian-6.12", "refused", "EFAULT"),  # refused since 6.5
])
def test_smoke_suite_verdicts(kernel, ext4_verdict, errno, tmp_path):
    out = run_suite(kernel, "smoke", out=tmp_path / "run", echo=lambda *a: None)
    v = {x.case: x for x in out.verdicts}
    assert v["ibverbs-pin/ext4/shared"].verdict == ext4_verdict
    assert v["ibverbs-pin/ext4/shared"].errno == errno
    assert v["ibverbs-pin/tmpfs/shared"].verdict == "ok"
    run = tmp_path / "run"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["kernel"]["release"].startswith(kernel.split("-")[1])
    assert manifest["accel"] in ("tcg", "kvm")
    for case in v:
        d = run / "cases" / case
        assert json.loads((d / "verdict.json").read_text())["verdict"] == v[case].verdict
        assert (d / "console.log").exists() and (d / "guest.log").exists()
    suite = ET.parse(run / "junit.xml").getroot().find("testsuite")
    assert suite is not None and len(suite.findall("testcase")) == 2
    assert out.exit_code == 0


def test_lost_write_records_checksums_across_power_cut(tmp_path):
    """The crash-and-verify path end to end on 6.1: pin granted, RDMA WRITE through rxe, QEMU
    killed, second boot on the same pmem file, every block compared."""
    out = run_suite("debian-6.1", "lost-write-once", out=tmp_path / "run", echo=lambda *a: None)
    (v,) = [x for x in out.verdicts if x.case == "lost-write/ext4/shared"]
    assert v.verdict in ("ok", "data-loss"), v
    assert v.blocks_checked == 256
    sums = json.loads((tmp_path / "run/cases/lost-write/ext4/shared/checksums.json").read_text())
    assert len(sums["expected"]) == len(sums["actual"]) == 256
    result = json.loads((tmp_path / "run/cases/lost-write/ext4/shared/result.json").read_text())
    assert result["pin"] == "granted" and result["rdma_landed"] is True
