"""`rig repro debian-6.1 --c FILE / --cmd CMD` for real (issue 12 item 4): a reproducer that does
not crash, one that hangs, and ones that crash the kernel through the rig's test module
(workloads/oopsmod, built against Debian's headers; cached after its first build). Each attempt
resumes the saved ready state, so the whole file takes about a minute under TCG."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pinrig import cli

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("keep_signals")]
DATA = Path(__file__).resolve().parents[1] / "data" / "repro"
NULL_TITLE = "BUG: unable to handle kernel NULL pointer dereference in pinrig_null_deref"


@pytest.fixture
def keep_signals():
    import signal
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def repro(capsys, out: Path, *args: str) -> tuple:
    rc = cli.main(["repro", "debian-6.1", *args, "--out", str(out), "--json"])
    return rc, json.loads(capsys.readouterr().out)


def test_a_reproducer_that_does_not_crash_runs_twice_and_is_not_reproduced(tmp_path, capsys):
    rc, d = repro(capsys, tmp_path / "r", "--c", str(DATA / "clean.c"), "--attempts", "2")
    assert rc == 0, d
    assert (d["attempts"], d["reproduced"], d["rate"]) == (2, 0, 0.0)
    for r in d["results"]:
        assert r["verdict"]["verdict"] == "ok" and r["exit_code"] == 0, r
    log = (tmp_path / "r/cases/repro/clean/@2/guest.log").read_text()
    assert "clean: 256 pages written and read back" in log
    suite = ET.parse(tmp_path / "r/junit.xml").getroot().find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "0"
    # the directory runs again on its own: `rig repro DIR` rebuilds from the kept source
    rc = cli.main(["repro", str(tmp_path / "r"), "--attempts", "1", "--out",
                   str(tmp_path / "again"), "--json"])
    d2 = json.loads(capsys.readouterr().out)
    assert rc == 0 and d2["case"] == "repro/clean" and d2["attempts"] == 1, d2
    assert d2["reproducer"]["given"] == str(DATA / "clean.c")


def test_a_hung_reproducer_is_an_error_after_its_timeout(tmp_path, capsys):
    rc, d = repro(capsys, tmp_path / "r", "--cmd", "echo started; sleep 600", "--attempts", "1",
                  "--timeout", "6")
    assert rc == 2, d                        # every attempt an error: the rig could not tell
    r = d["results"][0]
    assert r["hung"] and r["verdict"]["verdict"] == "error", r
    assert "still running after 6s" in r["verdict"]["reason"]


def test_a_reproducer_that_kills_the_guest_is_a_crash_with_its_title(tmp_path, capsys):
    rc, d = repro(capsys, tmp_path / "r", "--c", str(DATA / "oops-trigger.c"), "--test-module",
                  "--attempts", "1")
    assert rc == 1, d
    assert (d["reproduced"], d["attempts"]) == (1, 1)
    assert d["titles"] == [{"title": NULL_TITLE, "attempts": [1]}]
    for r in d["results"]:
        assert r["guest_died"] and r["verdict"]["verdict"] == "crash", r
    assert "Kernel panic" in (tmp_path / "r/cases/repro/oops-trigger/console.log").read_text()
    suite = ET.parse(tmp_path / "r/junit.xml").getroot().find("testsuite")
    assert suite.get("failures") == "1"


def test_expect_title_checks_the_title_of_a_warning_the_guest_survives(tmp_path, capsys):
    rc, d = repro(capsys, tmp_path / "w", "--c", str(DATA / "oops-trigger.c"),
                  "--cflags=-DTRIGGER_WARN", "--test-module", "--attempts", "1",
                  "--expect-title", "WARNING in pinrig_warn")
    assert rc == 1, d
    r = d["results"][0]
    assert r["reproduced"] and not r["guest_died"] and r["exit_code"] == 0, r
    assert r["verdict"]["title"] == "WARNING in pinrig_warn"
    # (a crash of another title is kept as a crash but not counted: tests/unit/runs/test_reprocmd.py)
