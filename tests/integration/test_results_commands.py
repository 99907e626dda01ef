"""Integration: rig compare / repro / nightly on real Debian kernels (smoke suite only, so the
whole file stays within a few minutes under TCG: about nine boots)."""
from __future__ import annotations

import json
import shutil
import sqlite3
import xml.etree.ElementTree as ET

import pytest

from pinrig import cli

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("keep_signals")]


@pytest.fixture
def keep_signals():
    import signal
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """`rig compare debian-6.1 debian-6.12 --suite smoke` once for the module."""
    out = tmp_path_factory.mktemp("compare")
    rc = cli.main(["compare", "debian-6.1", "debian-6.12", "--suite", "smoke", "--out",
                   str(out), "--html", str(out / "page.html"), "--json"])
    return rc, out


def test_compare_smoke_shows_the_6_5_pinning_rule(compared):
    rc, out = compared
    assert rc == 0
    d = json.loads((out / "compare.json").read_text())
    cls = {c["case"]: c["class"] for c in d["cases"]}
    assert cls == {"ibverbs-pin/ext4/shared": "behaviour change",
                   "ibverbs-pin/tmpfs/shared": "same"}
    ext4 = d["cases"][0]
    assert ext4["a"]["pins"] == ["granted"] and ext4["b"]["pins"] == ["refused (EFAULT)"]
    assert d["a"]["release"].startswith("6.1.") and d["b"]["release"].startswith("6.12.")
    for f in ("compare.txt", "compare.md", "compare.html", "page.html"):
        assert (out / f).stat().st_size > 0
    assert "| `ibverbs-pin/ext4/shared` | ok | refused EFAULT | **behaviour change** |" in \
        (out / "compare.md").read_text()
    assert (out / "a-debian-6.1" / "manifest.json").exists()
    assert (out / "b-debian-6.12" / "manifest.json").exists()


def test_repro_from_a_copied_results_dir(compared, tmp_path, capsys):
    _rc, out = compared
    copy = tmp_path / "elsewhere" / "run"
    shutil.copytree(out / "b-debian-6.12", copy)
    rc = cli.main(["repro", str(copy), "--case", "ibverbs-pin/ext4/shared", "--attempts", "2",
                   "--stop-after", "1", "--out", str(tmp_path / "repro"), "--json"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 0                                  # refused is a pass
    (case,) = d["cases"]
    assert case["original_outcome"] == "refused EFAULT"
    assert (case["reproduced"], case["attempts"]) == (1, 1) and d["stopped_early"]
    assert case["errno_matches"] == 1
    assert d["replayed_hash"] == d["recorded_hash"]
    m = json.loads((tmp_path / "repro" / "attempt-1" / "manifest.json").read_text())
    assert m["kernel"]["packages"] == json.loads(
        (copy / "manifest.json").read_text())["kernel"]["packages"]


def test_nightly_twice_then_a_swapped_kernel(tmp_path, capsys):
    root = tmp_path / "nightly"
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: it\nkernels: [{name: tip, kernel: debian-6.1}, debian-6.12]\n"
                    "suites: [smoke]\nretention: 5\n")
    args = ["nightly", str(plan), "--results", str(root), "--date", "2026-01-01", "--json"]
    assert cli.main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["night"] == "2026-01-01"
    assert cli.main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["night"] == "2026-01-01.2"
    assert second["headline"] == "no change against the previous night"
    plan.write_text("name: it\nkernels: [{name: tip, kernel: debian-6.12}]\n"
                    "suites: [smoke]\nretention: 5\n")
    assert cli.main(args) == 0                       # a behaviour change, not a regression
    third = json.loads(capsys.readouterr().out)
    (run,) = third["runs"]
    assert [(c["case"], c["class"]) for c in run["changes"]] == [
        ("ibverbs-pin/ext4/shared", "behaviour change")]
    top = ET.parse(root / "2026-01-01" / "junit.xml").getroot()
    assert [s.get("name") for s in top.findall("testsuite")] == ["tip:smoke", "debian-6.12:smoke"]
    db = sqlite3.connect(str(root / "history.sqlite"))
    assert db.execute("SELECT COUNT(*) FROM nights WHERE status='complete'").fetchone()[0] == 3
    assert "<svg" in (root / "index.html").read_text()
