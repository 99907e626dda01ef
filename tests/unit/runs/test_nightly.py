"""pinrig.runs.nightly: plan validation, nights in the history, comparisons with the previous night,
resume of an interrupted night, the merged JUnit, retention."""
import json
import sqlite3
import xml.etree.ElementTree as ET

import pytest

from pinrig import cli
from pinrig.errors import InfraError, UserError
from pinrig.runs import nightly
from tests.fakes import FakeNightlyRunSuite

OK = {"verdict": "ok", "pin": "granted", "reason": "pin granted"}
EFAULT = {"verdict": "refused", "pin": "refused", "errno": "EFAULT"}
LOSS = {"verdict": "data-loss", "pin": "granted", "blocks_lost": 3, "blocks_checked": 256,
        "first_bad_offset": 8192}

# what each (fake) kernel does on the smoke suite's cases
BEHAVIOUR = {
    "debian-6.1": {"ibverbs-pin/ext4/shared": OK, "ibverbs-pin/tmpfs/shared": OK},
    "debian-6.12": {"ibverbs-pin/ext4/shared": EFAULT, "ibverbs-pin/tmpfs/shared": OK},
    "debian-5.10": {"ibverbs-pin/ext4/shared": OK, "ibverbs-pin/tmpfs/shared": LOSS},
}


def FakeRunSuite(behaviour=BEHAVIOUR, **kw):
    return FakeNightlyRunSuite(behaviour, **kw)


def plan_file(tmp_path, text, name="plan.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def load(tmp_path, kernels="[debian-6.1, debian-6.12]", extra=""):
    return nightly.load_plan(str(plan_file(
        tmp_path, f"name: t\nkernels: {kernels}\nsuites: [smoke]\nrepeat: 1\n"
                  f"retention: 5\n{extra}")))


def quiet(*_a, **_k):
    pass


# ------------------------------------------------------------------------------- the plan

def test_example_plan_loads():
    plan = nightly.load_plan("configs/nightly/example.yaml")
    assert [k.label for k in plan.kernels] == ["debian-6.1", "debian-6.12"]
    assert plan.suites == ("smoke",) and plan.repeat == 1 and plan.retention >= 1
    assert nightly.load_plan("example").name == "example"


@pytest.mark.parametrize("body,msg", [
    ("suites: [smoke]\n", "kernels: is required"),
    ("kernels: [debian-6.1]\n", "suites: is required"),
    ("kernels: [debian-6.1, nope]\nsuites: [smoke]\n", "kernels[1]: unknown kernel 'nope'"),
    ("kernels: [debian-6.1]\nsuites: [smoke, nope]\n", "suites[1]: unknown suite 'nope'"),
    ("kernels: [debian-6.1]\nsuites: [smoke]\nrepeat: 0\n", "repeat: must be at least 1"),
    ("kernels: [debian-6.1]\nsuites: [smoke]\nretention: two\n", "retention: must be int"),
    ("kernels: [debian-6.1]\nsuites: [smoke]\nrepaet: 2\n", "repaet: unknown field"),
    ("kernels: []\nsuites: [smoke]\n", "kernels: empty list"),
    ("kernels: [debian-6.1, debian-6.1]\nsuites: [smoke]\n", "kernel debian-6.1 listed twice"),
    ("kernels: [{name: tip}]\nsuites: [smoke]\n", "kernels[0].kernel: is required"),
    ("kernels: [{name: tip, kernel: debian-6.1, x: 1}]\nsuites: [smoke]\n",
     "kernels[0].x: unknown field"),
    ("kernels: [3]\nsuites: [smoke]\n", "kernels[0]: must be a kernel name or a mapping"),
    ("kernels: [debian-6.1]\nsuites: [smoke, smoke]\n", "suites[1]: suite smoke listed twice"),
])
def test_plan_errors_name_file_and_field(tmp_path, body, msg):
    p = plan_file(tmp_path, body)
    with pytest.raises(UserError) as e:
        nightly.load_plan(str(p))
    assert str(e.value).startswith(f"{p}: ") and msg in str(e.value), str(e.value)


def test_plan_repeat_defaults_to_the_suites(tmp_path):
    p = plan_file(tmp_path, "kernels: [debian-6.1]\nsuites: [smoke]\n")
    assert nightly.load_plan(str(p)).repeat is None      # run_suite then uses suite.repeat
    assert load(tmp_path).repeat == 1


def test_plan_labels(tmp_path):
    plan = load(tmp_path, "[debian-6.1, {name: tip, kernel: debian-6.12}]")
    assert [(k.label, k.kernel) for k in plan.kernels] == [("debian-6.1", "debian-6.1"),
                                                           ("tip", "debian-6.12")]
    with pytest.raises(UserError, match="unknown nightly plan 'nope'"):
        nightly.load_plan("nope")


# ------------------------------------------------------------------------------- nights

def test_two_nights_in_a_row_then_no_change(tmp_path):
    plan = load(tmp_path)
    root = tmp_path / "nightly"
    fake = FakeRunSuite()
    r1 = nightly.run_night(plan, root, date="2026-11-20", echo=quiet, run_suite=fake)
    assert r1.name == "2026-11-20" and r1.exit_code == 0 and not r1.resumed
    assert all("first night" in r.message for r in r1.runs)
    assert r1.headline == "first night for every run: baseline recorded"
    assert (root / "2026-11-20" / "debian-6.1-smoke" / "manifest.json").exists()
    r2 = nightly.run_night(plan, root, date="2026-11-20", echo=quiet, run_suite=fake)
    assert r2.name == "2026-11-20.2" and r2.exit_code == 0
    assert r2.headline == "no change against the previous night"
    assert all(r.previous_night == "2026-11-20" and not r.changes for r in r2.runs)
    text = nightly.format_text(r2)
    assert "no change since 2026-11-20" in text
    assert len(fake.calls) == 4
    db = sqlite3.connect(str(root / "history.sqlite"))
    assert db.execute("SELECT name, status, exit_code FROM nights ORDER BY seq").fetchall() == [
        ("2026-11-20", "complete", 0), ("2026-11-20.2", "complete", 0)]
    assert db.execute("SELECT COUNT(*) FROM case_results").fetchone()[0] == 8
    assert db.execute("SELECT verdict, errno FROM case_results WHERE night='2026-11-20.2' AND "
                      "label='debian-6.12' AND case_id='ibverbs-pin/ext4/shared'").fetchone() \
        == ("refused", "EFAULT")


def test_swapped_kernel_is_reported(tmp_path):
    root = tmp_path / "nightly"
    p1 = load(tmp_path, "[{name: tip, kernel: debian-6.1}]")
    nightly.run_night(p1, root, date="2026-11-20", echo=quiet, run_suite=FakeRunSuite())
    # the branch moved: same label, different kernel → a userspace-visible change
    p2 = load(tmp_path, "[{name: tip, kernel: debian-6.12}]")
    r = nightly.run_night(p2, root, date="2026-11-21", echo=quiet, run_suite=FakeRunSuite())
    (run,) = r.runs
    assert [(c["case"], c["class"]) for c in run.changes] == [
        ("ibverbs-pin/ext4/shared", "behaviour change")]
    assert "kernel linux-image-debian-6.1=1 → linux-image-debian-6.12=1" in run.message
    assert r.exit_code == 0            # a behaviour change is not a regression
    assert "1 change(s) against the previous night, no regression" == r.headline
    # and a swap that brings a data loss is a new regression: exit 1
    p3 = load(tmp_path, "[{name: tip, kernel: debian-5.10}]")
    r = nightly.run_night(p3, root, date="2026-11-22", echo=quiet, run_suite=FakeRunSuite())
    classes = {c["case"]: c["class"] for c in r.runs[0].changes}
    assert classes == {"ibverbs-pin/ext4/shared": "behaviour change",
                       "ibverbs-pin/tmpfs/shared": "regressed"}
    assert r.exit_code == 1 and "new regression" in r.headline
    text = nightly.format_text(r)
    assert " ! tip × smoke: ibverbs-pin/tmpfs/shared: regressed: ok → data-loss" in text
    db = sqlite3.connect(str(root / "history.sqlite"))
    assert db.execute("SELECT case_id, class, regression FROM changes WHERE night=?",
                      ("2026-11-22",)).fetchall() == [
        ("ibverbs-pin/ext4/shared", "behaviour change", 0),
        ("ibverbs-pin/tmpfs/shared", "regressed", 1)]


def test_interrupted_night_resumes(tmp_path):
    plan = load(tmp_path)
    root = tmp_path / "nightly"
    killer = FakeRunSuite(kill_after=3)        # killed during the second run's second case
    with pytest.raises(KeyboardInterrupt):
        nightly.run_night(plan, root, date="2026-11-20", echo=quiet, run_suite=killer)
    db = sqlite3.connect(str(root / "history.sqlite"))
    assert db.execute("SELECT status FROM nights").fetchall() == [("running",)]
    fake = FakeRunSuite()
    r = nightly.run_night(plan, root, date="2026-11-20", echo=quiet, run_suite=fake)
    assert r.name == "2026-11-20" and r.resumed
    # the finished run is reused without run_suite; the half-done one resumes
    assert fake.calls == [("debian-6.12", "smoke", "resume")]
    assert fake.cases_run == 1
    assert [r_.reused for r_ in r.runs] == [True, False]
    assert r.exit_code == 0
    assert db.execute("SELECT status FROM nights").fetchall() == [("complete",)]


def test_a_run_the_rig_cannot_do_is_recorded_and_resumed(tmp_path):
    plan = load(tmp_path)
    root = tmp_path / "nightly"
    r = nightly.run_night(plan, root, date="2026-11-20", echo=quiet,
                          run_suite=FakeRunSuite(fail={"debian-6.12"}))
    assert [x.status for x in r.runs] == ["done", "error"]
    assert r.exit_code == 2 and "1 run(s) could not be done" in r.headline
    suites = ET.parse(root / "2026-11-20" / "junit.xml").getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["debian-6.1:smoke", "debian-6.12:smoke"]
    assert suites[1].find("testcase/error").get("message") == \
        "rig error: kernel debian-6.12: download failed"
    # the partial night is picked up again (same name), the failed run retried
    fake = FakeRunSuite()
    r = nightly.run_night(plan, root, date="2026-11-20", echo=quiet, run_suite=fake)
    assert r.name == "2026-11-20" and fake.calls == [("debian-6.12", "smoke", "new")]
    assert r.exit_code == 0


def test_merged_junit(tmp_path):
    plan = load(tmp_path, "[debian-6.1, debian-5.10]")
    root = tmp_path / "nightly"
    nightly.run_night(plan, root, date="2026-11-20", echo=quiet, run_suite=FakeRunSuite())
    top = ET.parse(root / "2026-11-20" / "junit.xml").getroot()
    assert top.tag == "testsuites"
    suites = top.findall("testsuite")
    assert [s.get("name") for s in suites] == ["debian-6.1:smoke", "debian-5.10:smoke"]
    assert top.get("tests") == "4" and top.get("failures") == "1" and top.get("errors") == "0"
    tc = suites[1].findall("testcase")
    assert [t.get("name") for t in tc] == ["ibverbs-pin/ext4/shared", "ibverbs-pin/tmpfs/shared"]
    assert tc[1].find("failure").get("message") == "3 blocks lost at 8192"
    props = {p.get("name"): p.get("value") for p in suites[0].iter("property")}
    assert props["kernel_release"] == "debian-6.1-rel" and props["seed"] == "1"


def test_retention_prunes_old_night_dirs_but_keeps_history(tmp_path):
    plan = nightly.load_plan(str(plan_file(
        tmp_path, "name: t\nkernels: [debian-6.1]\nsuites: [smoke]\nretention: 2\n")))
    root = tmp_path / "nightly"
    for day in ("2026-11-20", "2026-11-21", "2026-11-22"):
        r = nightly.run_night(plan, root, date=day, echo=quiet, run_suite=FakeRunSuite())
    assert r.pruned == ["2026-11-20"]
    assert not (root / "2026-11-20").exists()
    assert (root / "2026-11-21").is_dir() and (root / "2026-11-22").is_dir()
    # the baseline survives pruning: the next night still compares (from the history)
    r = nightly.run_night(plan, root, date="2026-11-23", echo=quiet, run_suite=FakeRunSuite())
    assert r.runs[0].previous_night == "2026-11-22" and r.pruned == ["2026-11-21"]
    index = (root / "index.html").read_text()
    assert 'href="2026-11-20/index.html"' not in index
    assert 'href="2026-11-23/index.html"' in index


def test_index_and_night_pages(tmp_path):
    plan = load(tmp_path)
    root = tmp_path / "nightly"
    for day in ("2026-11-20", "2026-11-21"):
        nightly.run_night(plan, root, date=day, echo=quiet, run_suite=FakeRunSuite())
    index = (root / "index.html").read_text()
    assert "<svg" in index and "debian-6.12:smoke" in index and "<script" not in index
    night = (root / "2026-11-21" / "index.html").read_text()
    assert "no change against the previous night" in night
    assert 'href="debian-6.1-smoke/summary.txt"' in night
    d = json.loads((root / "2026-11-21" / "night.json").read_text())
    assert d["exit_code"] == 0 and [r["previous_night"] for r in d["runs"]] == \
        ["2026-11-20", "2026-11-20"]


def test_other_plans_nights_are_not_resumed(tmp_path):
    root = tmp_path / "nightly"
    a = load(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        nightly.run_night(a, root, date="2026-11-20", echo=quiet,
                          run_suite=FakeRunSuite(kill_after=1))
    b = nightly.load_plan(str(plan_file(tmp_path, "name: other\nkernels: [debian-6.1]\n"
                                        "suites: [smoke]\n", "b.yaml")))
    r = nightly.run_night(b, root, date="2026-11-20", echo=quiet, run_suite=FakeRunSuite())
    assert r.name == "2026-11-20.2" and not r.resumed
    with pytest.raises(UserError, match="belongs to plan t"):
        nightly.run_night(b, root, night="2026-11-20", echo=quiet, run_suite=FakeRunSuite())


def test_lock_refuses_a_second_nightly(tmp_path):
    root = tmp_path / "nightly"
    with nightly.locked(root):
        with pytest.raises(InfraError, match="another rig nightly is running"):
            with nightly.locked(root):
                pass


def test_cli_nightly_bad_plan_is_one_line(tmp_path, capsys, keep_signal_handlers):
    p = plan_file(tmp_path, "kernels: [debian-6.1]\nsuites: [smoke]\nretention: 0\n")
    assert cli.main(["nightly", str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"rig: error: {p}: retention: must be at least 1 (nights whose results "
                   "are kept)"]


def test_bad_date(tmp_path):
    with pytest.raises(UserError, match="expected YYYY-MM-DD"):
        nightly.run_night(load(tmp_path), tmp_path / "n", date="20261120", echo=quiet,
                          run_suite=FakeRunSuite())
