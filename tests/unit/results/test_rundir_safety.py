"""Results files survive what the guest prints and what the disk does (issue 11: 3, 10)."""
import os
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET

import pytest

from pinrig.cases.verdict import Verdict
from pinrig.errors import InfraError
from pinrig.outcome import Outcome
from pinrig.results.rundir import RunDir, atomic_write, junit_xml
from pinrig.sanitize import one_line, xml_text

NASTY = "ok \ufffe\uffff \x00\x01\x07\x1b[31m \ud800 end"


def test_junit_with_characters_xml_forbids_still_parses(tmp_path):
    run = RunDir(tmp_path, {"kernel": {"name": "k\x00"}, "suite": {"name": "s"},
                            "host": {"hostname": "h"}, "reproducer": "rig run \ufffe"})
    vs = [Verdict(case="lost-write/ext4/shared", verdict=Outcome.CRASH, title="BUG: \ufffe in x",
                  reason=NASTY),
          Verdict(case="ibverbs-pin/ext4/shared", verdict=Outcome.ERROR, reason=NASTY),
          Verdict(case="ibverbs-pin/xfs/shared", verdict=Outcome.SKIPPED, reason=NASTY)]
    for v in vs:
        run.write_case(v, {"guest.log": NASTY.encode("utf-8", "surrogatepass"), "dmesg.log": NASTY.encode("utf-8", "surrogatepass")})
    xml = junit_xml(run, vs)
    root = ET.fromstring(xml)                     # raised ParseError before
    assert len(list(root.iter("testcase"))) == 3
    assert "\ufffd in x" in xml


def test_xml_text_keeps_what_is_allowed():
    assert xml_text("tab\tnl\ncr\r ünï €") == "tab\tnl\ncr\r ünï €"
    assert xml_text("\x00\ufffe") == "\ufffd\ufffd" and xml_text(None) is None
    assert one_line("a\n b\x00", 10) == "a b\ufffd" and len(one_line("x" * 500, 20)) == 20


def test_atomic_write_leaves_no_temporary_and_keeps_mode(tmp_path):
    p = tmp_path / "d" / "f.json"
    atomic_write(p, "one")
    atomic_write(p, b"two")
    assert p.read_text() == "two" and os.listdir(p.parent) == ["f.json"]
    assert oct(p.stat().st_mode & 0o777) == "0o644"


def test_two_writers_never_share_a_temporary(tmp_path):
    p = tmp_path / "f"
    errors = []

    def writer(tag):
        try:
            for _ in range(200):
                atomic_write(p, tag * 4096)
        except Exception as e:        # the old fixed ".new" name raised FileNotFoundError here
            errors.append(e)
    ts = [threading.Thread(target=writer, args=(t,)) for t in "ab"]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    assert p.read_text() in ("a" * 4096, "b" * 4096)
    assert os.listdir(tmp_path) == ["f"]


def test_disk_full_is_one_infra_error_and_the_old_file_stays(tmp_path):
    """ulimit -f in a child: the write fails with EFBIG the way a full disk fails with ENOSPC."""
    p = tmp_path / "junit.xml"
    p.write_text("old")
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))\n"
        "from pinrig.results.rundir import atomic_write\n"
        "from pinrig.errors import InfraError\n"
        "try:\n"
        f"    atomic_write(__import__('pathlib').Path({str(p)!r}), 'x' * 100000)\n"
        "except InfraError as e:\n"
        "    print('INFRA', e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.startswith("INFRA cannot write") and "junit.xml" in r.stdout, r.stderr
    assert p.read_text() == "old"
    assert os.listdir(tmp_path) == ["junit.xml"]


def test_unwritable_directory_is_an_infra_error(tmp_path):
    if os.geteuid() == 0:
        target = tmp_path / "file-not-dir"
        target.write_text("")
        with pytest.raises(InfraError, match="cannot write"):
            atomic_write(target / "x", "y")
    else:
        os.chmod(tmp_path, 0o500)
        with pytest.raises(InfraError, match="cannot write"):
            atomic_write(tmp_path / "x", "y")
