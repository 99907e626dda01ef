"""pinrig.results.rundir: atomic per-case directories, resume, JUnit XML, summary."""
import json
import xml.etree.ElementTree as ET

from pinrig.cases.verdict import Verdict
from pinrig.results import rundir as results
from pinrig.results.rundir import RunDir, atomic_write, junit_xml, summary_text

MANIFEST = {
    "kernel": {"name": "debian-6.1", "release": "6.1.0-28-amd64", "hash": "0123456789abcdef",
               "packages": ["linux-image-6.1.0-28-amd64=6.1.119-1"]},
    "guest": {"name": "bookworm", "hash": "fedcba9876543210"},
    "suite": {"name": "smoke"},
    "seed": 1,
    "accel": "tcg",
    "qemu_version": "QEMU emulator version 7.2.0",
    "guest_memory_mb": 2048,
    "host": {"hostname": "builder", "cpus": 2, "kernel": "6.1.0"},
    "reproducer": "rig run debian-6.1 --suite smoke --seed 1",
}


def verdicts():
    return [
        Verdict("ibverbs-pin/ext4/shared", "ok", reason="pin granted", wall_s=1.5),
        Verdict("ibverbs-pin/xfs/shared", "refused", errno="EFAULT", wall_s=0.5,
                reason="pin refused with EFAULT"),
        Verdict("ibverbs-pin/tmpfs/shared", "crash", title="BUG: unable to handle page fault",
                titles=["BUG: unable to handle page fault"], reason="1 kernel report(s)"),
        Verdict("lost-write/ext4/shared", "data-loss", blocks_lost=7, blocks_checked=256,
                first_bad_offset=12288, reason="7 of 256 blocks lost"),
        Verdict("ibverbs-pin/ext4-dax/shared", "unexpected", expect="ok",
                reason="expected ok, got refused: pin refused with EOPNOTSUPP"),
        Verdict("iouring-fixed/ext4/shared", "error", reason="timeout: guest command timed out"),
        Verdict("ibverbs-pin/xfs-dax/shared", "skipped", reason="fsdax unavailable"),
    ]


def leftovers(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.new"))


# ------------------------------------------------------------------------------- atomic files

def test_atomic_write_text_and_bytes(tmp_path):
    atomic_write(tmp_path / "a" / "b.txt", "hello")
    atomic_write(tmp_path / "a" / "c.bin", b"\x00\x01")
    assert (tmp_path / "a/b.txt").read_text() == "hello"
    assert (tmp_path / "a/c.bin").read_bytes() == b"\x00\x01"
    atomic_write(tmp_path / "a" / "b.txt", "again")
    assert (tmp_path / "a/b.txt").read_text() == "again"
    assert leftovers(tmp_path) == []


def test_write_case_mirrors_case_id(tmp_path):
    run = RunDir(tmp_path / "run")
    v = Verdict("ibverbs-pin/ext4/shared", "refused", errno="EFAULT")
    final = run.write_case(v, {"console.log": "boot\n", "checksums.json": b"{}",
                               "reports.json": None})
    assert final == tmp_path / "run/cases/ibverbs-pin/ext4/shared"
    assert sorted(p.name for p in final.iterdir()) == ["checksums.json", "console.log",
                                                       "verdict.json"]
    assert json.loads((final / "verdict.json").read_text()) == v.to_dict()
    assert (final / "console.log").read_text() == "boot\n"
    assert (final / "checksums.json").read_bytes() == b"{}"
    assert leftovers(tmp_path) == []


def test_write_case_with_variant_nests_one_more_level(tmp_path):
    run = RunDir(tmp_path)
    final = run.write_case(Verdict("ibverbs-pin/ext4/shared/ro", "ok"), {})
    assert final == tmp_path / "cases/ibverbs-pin/ext4/shared/ro"
    assert (final / "verdict.json").is_file()


def test_write_case_rerun_replaces(tmp_path):
    run = RunDir(tmp_path)
    cid = "lost-write/xfs/shared"
    run.write_case(Verdict(cid, "error", reason="boot"), {"console.log": "old", "stale.txt": "x"})
    final = run.write_case(Verdict(cid, "data-loss", blocks_lost=1), {"console.log": "new"})
    assert sorted(p.name for p in final.iterdir()) == ["console.log", "verdict.json"]
    assert (final / "console.log").read_text() == "new"
    assert json.loads((final / "verdict.json").read_text())["verdict"] == "data-loss"
    assert leftovers(tmp_path) == []


def test_write_case_clears_stale_new_dir(tmp_path):
    run = RunDir(tmp_path)
    cid = "ibverbs-pin/ext4/shared"
    stale = tmp_path / "cases/ibverbs-pin/ext4/shared.new"
    stale.mkdir(parents=True)
    (stale / "junk").write_text("half-written by a killed run")
    final = run.write_case(Verdict(cid, "ok"), {})
    assert sorted(p.name for p in final.iterdir()) == ["verdict.json"]
    assert leftovers(tmp_path) == []


def test_write_base_case_keeps_its_variant_case(tmp_path):
    # configs/suites/pin-matrix.yaml has both ibverbs-pin/ext4/shared and …/shared/ro
    run = RunDir(tmp_path)
    run.write_case(Verdict("ibverbs-pin/ext4/shared/ro", "refused", errno="EFAULT"),
                   {"console.log": "ro"})
    run.write_case(Verdict("ibverbs-pin/ext4/shared", "ok"), {"console.log": "rw"})
    assert set(run.finished_cases()) == {("ibverbs-pin/ext4/shared", 1), ("ibverbs-pin/ext4/shared/ro", 1)}
    assert run.read_case_file("ibverbs-pin/ext4/shared/ro", "console.log") == "ro"


def test_write_variant_after_base_keeps_both(tmp_path):
    run = RunDir(tmp_path)
    run.write_case(Verdict("ibverbs-pin/ext4/shared", "ok"), {"console.log": "rw"})
    run.write_case(Verdict("ibverbs-pin/ext4/shared/ro", "refused"), {"console.log": "ro"})
    assert set(run.finished_cases()) == {("ibverbs-pin/ext4/shared", 1), ("ibverbs-pin/ext4/shared/ro", 1)}
    assert run.read_case_file("ibverbs-pin/ext4/shared", "console.log") == "rw"


def test_finished_cases(tmp_path):
    run = RunDir(tmp_path)
    for v in verdicts()[:3]:
        run.write_case(v, {})
    done = run.finished_cases()
    assert set(done) == {(v.case, 1) for v in verdicts()[:3]}
    assert done[("ibverbs-pin/xfs/shared", 1)]["errno"] == "EFAULT"


def test_repeats_live_beside_variants(tmp_path):
    run = RunDir(tmp_path)
    run.write_case(Verdict("ibverbs-pin/ext4/shared", "ok"), {})
    run.write_case(Verdict("ibverbs-pin/ext4/shared", "crash", title="X", attempt=2), {})
    run.write_case(Verdict("ibverbs-pin/ext4/shared/ro", "ok"), {})
    done = run.finished_cases()
    assert set(done) == {("ibverbs-pin/ext4/shared", 1), ("ibverbs-pin/ext4/shared", 2),
                         ("ibverbs-pin/ext4/shared/ro", 1)}
    assert (tmp_path / "cases/ibverbs-pin/ext4/shared/@2/verdict.json").exists()
    assert done[("ibverbs-pin/ext4/shared", 2)]["verdict"] == "crash"


def test_finished_cases_ignores_new_dirs_and_bad_json(tmp_path):
    run = RunDir(tmp_path)
    run.write_case(Verdict("ibverbs-pin/ext4/shared", "ok"), {})
    half = tmp_path / "cases/ibverbs-pin/xfs/shared.new"
    half.mkdir(parents=True)
    (half / "verdict.json").write_text(json.dumps(Verdict("ibverbs-pin/xfs/shared", "ok")
                                                  .to_dict()))
    bad = tmp_path / "cases/ibverbs-pin/tmpfs/shared"
    bad.mkdir(parents=True)
    (bad / "verdict.json").write_text('{"case": "ibverbs-pin/tmpfs/sh')
    nocase = tmp_path / "cases/lost-write/ext4/shared"
    nocase.mkdir(parents=True)
    (nocase / "verdict.json").write_text('{"verdict": "ok"}')
    assert set(run.finished_cases()) == {("ibverbs-pin/ext4/shared", 1)}


def test_finished_cases_ignores_non_object_json(tmp_path):
    run = RunDir(tmp_path)
    run.write_case(Verdict("ibverbs-pin/ext4/shared", "ok"), {})
    odd = tmp_path / "cases/ibverbs-pin/xfs/shared"
    odd.mkdir(parents=True)
    (odd / "verdict.json").write_text("null\n")
    assert set(run.finished_cases()) == {("ibverbs-pin/ext4/shared", 1)}


def test_finished_cases_without_cases_dir(tmp_path):
    assert RunDir(tmp_path / "nothing").finished_cases() == {}


def test_read_case_file(tmp_path):
    run = RunDir(tmp_path)
    run.write_case(Verdict("a/b/c", "ok"), {"guest.log": "hi"})
    assert run.read_case_file("a/b/c", "guest.log") == "hi"
    assert run.read_case_file("a/b/c", "missing.log") == ""
    assert run.read_case_file("x/y/z", "guest.log") == ""


def test_write_manifest_roundtrip(tmp_path):
    run = RunDir(tmp_path, dict(MANIFEST))
    run.write_manifest()
    assert json.loads((tmp_path / "manifest.json").read_text()) == MANIFEST
    assert leftovers(tmp_path) == []


def test_make_run_id():
    rid = results.make_run_id("debian-6.1", "smoke")
    assert rid.endswith("-debian-6.1-smoke") and "/" not in rid
    assert "/" not in results.make_run_id("kernels/x", "a/b")


# ------------------------------------------------------------------------------- JUnit

def parse_junit(tmp_path, vs, files=None):
    run = RunDir(tmp_path, dict(MANIFEST))
    for v in vs:
        run.write_case(v, (files or {}).get(v.case, {}))
    root = ET.fromstring(junit_xml(run, vs).encode())
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    assert len(suites) == 1
    return suites[0]


def test_junit_one_suite_with_properties(tmp_path):
    ts = parse_junit(tmp_path, verdicts())
    assert ts.get("name") == "debian-6.1:smoke"
    assert ts.get("tests") == "7"
    assert ts.get("failures") == "3" and ts.get("errors") == "1" and ts.get("skipped") == "1"
    props = {p.get("name"): p.get("value") for p in ts.iter("property")}
    assert props["kernel"] == "debian-6.1"
    assert props["kernel_release"] == "6.1.0-28-amd64"
    assert props["kernel_artifact_hash"] == "0123456789abcdef"
    assert props["kernel_packages"] == "linux-image-6.1.0-28-amd64=6.1.119-1"
    assert props["guest_image_hash"] == "fedcba9876543210"
    assert props["accel"] == "tcg"
    assert props["seed"] == "1"
    assert props["cpus"] == "2"
    assert props["guest_memory_mb"] == "2048"
    assert props["qemu_version"] == "QEMU emulator version 7.2.0"
    assert props["command"] == "rig run debian-6.1 --suite smoke --seed 1"


def test_junit_case_elements(tmp_path):
    ts = parse_junit(tmp_path, verdicts())
    cases = {tc.get("name"): tc for tc in ts.iter("testcase")}
    assert list(cases) == [v.case for v in verdicts()]
    assert all(tc.get("classname") == "smoke" for tc in cases.values())

    def only(tc):
        return [c.tag for c in tc if c.tag in ("failure", "error", "skipped")]

    assert only(cases["ibverbs-pin/ext4/shared"]) == []
    assert only(cases["ibverbs-pin/xfs/shared"]) == []          # refused is a pass
    crash = cases["ibverbs-pin/tmpfs/shared"].find("failure")
    assert crash.get("message") == "BUG: unable to handle page fault"
    assert crash.get("type") == "crash"
    loss = cases["lost-write/ext4/shared"].find("failure")
    assert loss.get("message") == "7 blocks lost at 12288"
    assert loss.get("type") == "data-loss"
    unexp = cases["ibverbs-pin/ext4-dax/shared"].find("failure")
    assert unexp.get("type") == "unexpected"
    assert unexp.get("message") == "expected ok, got refused: pin refused with EOPNOTSUPP"
    err = cases["iouring-fixed/ext4/shared"].find("error")
    assert err.get("message") == "timeout: guest command timed out"
    assert only(cases["iouring-fixed/ext4/shared"]) == ["error"]
    skip = cases["ibverbs-pin/xfs-dax/shared"].find("skipped")
    assert skip.get("message") == "fsdax unavailable"
    assert float(cases["ibverbs-pin/ext4/shared"].get("time")) == 1.5


def test_junit_carries_logs_and_survives_control_characters(tmp_path):
    v = Verdict("ibverbs-pin/tmpfs/shared", "crash", title="BUG: x")
    ts = parse_junit(tmp_path, [v], {v.case: {
        "guest.log": "$ ibverbs-pin\n\x1b[31mred\x1b[0m \x00 done\n",
        "dmesg.log": "[    1.0] BUG: x <&>\n"}})
    tc = ts.find("testcase")
    assert "done" in tc.find("system-out").text
    assert "BUG: x <&>" in tc.find("system-err").text


def test_junit_empty_manifest(tmp_path):
    root = ET.fromstring(junit_xml(RunDir(tmp_path), [Verdict("a/b/c", "ok")]).encode())
    assert len(list(root.iter("testcase"))) == 1


# ------------------------------------------------------------------------------- summary

def test_summary_lists_every_case(tmp_path):
    vs = verdicts()
    text = summary_text(RunDir(tmp_path / "20260101-000000-debian-6.1-smoke", MANIFEST), vs)
    lines = text.splitlines()
    assert lines[0] == "pinrig run 20260101-000000-debian-6.1-smoke"
    assert lines[1] == "kernel debian-6.1 (6.1.0-28-amd64), suite smoke, accel tcg, seed 1"
    for v in vs:
        (line,) = [l for l in lines if l.split() and l.split()[0] == v.case]
        assert line.split()[1] == v.verdict
    assert any("7 blocks lost at 12288" in l for l in lines)
    assert any("BUG: unable to handle page fault" in l for l in lines)
    assert any("pin refused (EFAULT)" in l for l in lines)
    assert lines[-1].strip() == ("1 crash, 1 data-loss, 1 error, 1 ok, 1 refused, 1 skipped, "
                                 "1 unexpected")
    assert text.endswith("\n")


def test_summary_says_how_the_series_went_in_and_warns(tmp_path):
    m = json.loads(json.dumps(MANIFEST))
    m["kernel"]["series"] = {
        "method": "patch --fuzz=1", "name": "thread.mbox", "revision": 2,
        "notes": ["using v2, the newest complete revision: 3 patch(es)", "v1 not used (complete)"],
        "warnings": ["patch 2 0002-x.patch: mm/gup.c hunk #1 applied at line 17 (offset +4 lines, "
                     "fuzz 1)"]}
    lines = summary_text(RunDir(tmp_path / "r", m), verdicts()).splitlines()
    assert lines[2:6] == [
        "series thread.mbox v2 applied with patch --fuzz=1",
        "  using v2, the newest complete revision: 3 patch(es)",
        "  v1 not used (complete)",
        "  warning: patch 2 0002-x.patch: mm/gup.c hunk #1 applied at line 17 (offset +4 lines, "
        "fuzz 1)"]
