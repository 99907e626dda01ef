"""LAVA's log → verdicts, judged by the rig's own stages (oops, integrity, decide)."""
import json
from pathlib import Path

import pytest
import yaml

from pinrig.config import load_suite
from pinrig.errors import UserError
from pinrig.lava import export, results
from pinrig.results.compare import load_run

DATA = Path(__file__).resolve().parents[2] / "data" / "lava"
ARTS = {k: export.Artifact(f"file:///a/{k}", "0" * 64) for k in export.ARTIFACTS}


def job(suite_name: str) -> dict:
    suite = load_suite(suite_name)
    meta = {"kernel": "debian-6.1", "release": "6.1.0-57-amd64", "suite": suite.name,
            "seed": suite.seed}
    (g,) = export.plan(suite)
    return export.job_definition(g, ARTS, export.machine_shape(), meta)


def lava_log(console: list, job_ok: bool = True, error: str = "") -> str:
    """A LAVA log as lava-run writes it: quotes in target lines escaped the way LAVA does."""
    out, t = [], 0
    for line in console:
        t += 1
        msg = line.replace('"', '\\"')
        out.append(json.dumps({"dt": f"2026-11-29T20:00:{t % 60:02d}.000000", "lvl": "target",
                               "msg": msg}))
    if error:
        out.append(json.dumps({"dt": "2026-11-29T20:01:00", "lvl": "error", "msg": error}))
    res = {"case": "job", "definition": "lava", "result": "pass" if job_ok else "fail"}
    if not job_ok:
        res["extra"] = {"error_msg": error or "failed", "error_type": "Bug"}
    out.append(json.dumps({"dt": "2026-11-29T20:01:01", "lvl": "results", "msg": res}))
    return "\n".join(out) + "\n"


def wl(n: int, result: dict) -> list:
    return [f"pinrig-lava:{n}:workload| {json.dumps(result, separators=(',', ':'))}",
            f"pinrig-lava:{n}:workload rc=0"]


def case_lines(n: int, cid: str, body: list, end: str = "pass") -> list:
    return [f"pinrig-lava:{n}:begin {cid}", f"[   17.1] pinrig: case-start {cid}",
            f"pinrig-lava:{n}:needs| rdma=rxe0  pmem=/dev/pmem0 ",
            f"pinrig-lava:{n}:setup rc=0", *body,
            f"[   19.2] pinrig: case-end {cid}", f"pinrig-lava:{n}:end result={end}"]


def verdicts(j: dict, log: str) -> dict:
    meta = results.job_meta(j)
    return {v.case: v for v, _f in results.judge_job(meta, results.read_log(log))}


def test_the_real_lava_run_log_of_the_smoke_job(tmp_path):
    """lava-run 2023.01 on this box ran the exported smoke job on debian-6.1 (tests/data)."""
    j = yaml.safe_load((DATA / "smoke-debian-6.1.job.yaml").read_text())
    run, vs = results.write_run(tmp_path / "r", [results.Collected(
        j, (DATA / "smoke-debian-6.1.log").read_text(), "1", "lava-run")], echo=lambda *_: None)
    got = {v.case: v for v in vs}
    assert {c: v.verdict for c, v in got.items()} == {"ibverbs-pin/ext4/shared": "ok",
                                                      "ibverbs-pin/tmpfs/shared": "ok"}
    ext4 = got["ibverbs-pin/ext4/shared"]
    assert ext4.pin == "granted" and ext4.pins == {"acquired": 256, "released": 256}
    assert 0 < ext4.wall_s < 60
    loaded = load_run(tmp_path / "r")            # what `rig compare` reads
    assert loaded.suite_name == "smoke" and len(loaded.verdicts) == 2
    assert "pinrig: case-start ibverbs-pin/ext4/shared" in \
        (tmp_path / "r/cases/ibverbs-pin/ext4/shared/console.log").read_text()
    assert (tmp_path / "r/junit.xml").exists() and (tmp_path / "r/summary.txt").exists()
    with pytest.raises(UserError, match="not empty"):
        results.write_run(tmp_path / "r", [results.Collected(j, "", "1")])


def test_refused_pin_and_a_kernel_report_in_a_case_slice():
    j = job("smoke")
    log = lava_log(
        case_lines(1, "ibverbs-pin/tmpfs/shared", wl(1, {"pin": "granted", "error": None}))
        + case_lines(0, "ibverbs-pin/ext4/shared",
                     wl(0, {"pin": "refused", "errno": "EFAULT", "error": None})
                     + ["[   18.0] ------------[ cut here ]------------",
                        "[   18.0] WARNING: CPU: 1 PID: 99 at mm/gup.c:1234 "
                        "try_grab_folio+0x1/0x2",
                        "[   18.0] Modules linked in: rdma_rxe",
                        "[   18.0] CPU: 1 PID: 99 Comm: ibverbs-pin Not tainted 6.1.0 #1",
                        "[   18.0] Call Trace:", "[   18.0]  <TASK>",
                        "[   18.0]  pin_user_pages+0x1/0x2", "[   18.0]  </TASK>",
                        "[   18.0] ---[ end trace 0000000000000000 ]---"]))
    v = verdicts(j, log)
    assert v["ibverbs-pin/tmpfs/shared"].verdict == "ok"
    ext4 = v["ibverbs-pin/ext4/shared"]
    assert ext4.verdict == "crash" and ext4.title == "WARNING in pin_user_pages"
    assert ext4.errno == "EFAULT"


def test_refused_without_report():
    j = job("smoke")
    log = lava_log(case_lines(0, "ibverbs-pin/ext4/shared",
                              wl(0, {"pin": "refused", "errno": "EFAULT", "error": None})))
    v = verdicts(j, log)
    assert v["ibverbs-pin/ext4/shared"].verdict == "refused"
    assert v["ibverbs-pin/ext4/shared"].errno == "EFAULT"
    # the tmpfs case never started: error naming LAVA's reason, never a kernel verdict
    assert v["ibverbs-pin/tmpfs/shared"].verdict == "error"


def test_a_job_lava_failed_before_the_cases_is_error_with_its_reason():
    v = verdicts(job("smoke"), lava_log(["Booting from ROM..."], job_ok=False,
                                        error="auto-login-action timed out after 600 seconds"))
    for case in v.values():
        assert case.verdict == "error" and "auto-login-action timed out" in case.reason


def test_a_panic_at_boot_is_a_crash_not_infrastructure():
    console = ["[    1.0] Kernel panic - not syncing: VFS: Unable to mount root fs on "
               "unknown-block(0,0)", "[    1.0] CPU: 0 PID: 1 Comm: swapper/0 Not tainted",
               "[    1.0] Call Trace:", "[    1.0]  <TASK>", "[    1.0]  panic+0x1/0x2",
               "[    1.0]  </TASK>"]
    v = verdicts(job("smoke"), lava_log(console, job_ok=False, error="connection closed"))
    assert {c.verdict for c in v.values()} == {"crash"}


def test_guest_gone_mid_workload():
    body = ["pinrig-lava:0:pins-before rc=0"]           # the workload never ended
    log = lava_log(case_lines(0, "ibverbs-pin/ext4/shared", body)[:-2], job_ok=False,
                   error="Connection closed")
    v = verdicts(job("smoke"), log)["ibverbs-pin/ext4/shared"]
    assert v.verdict == "error" and "guest died" in v.reason


def test_missing_rdma_is_skipped_with_the_rigs_reason():
    lines = ["pinrig-lava:0:begin ibverbs-pin/ext4/shared",
             "pinrig-lava:0:needs| rdma= pmem=/dev/pmem0 ", "pinrig-lava:0:end result=skip"]
    v = verdicts(job("smoke"), lava_log(lines))["ibverbs-pin/ext4/shared"]
    assert v.verdict == "skipped" and "no RDMA device" in v.reason


def _crash_job_log(expected: list, actual: list, pin: str = "granted") -> str:
    cid = "lost-write/ext4/shared"
    res = {"pin": pin, "errno": None if pin == "granted" else "EFAULT", "error": None,
           "expected": expected, "seed": 5}
    pin_boot = case_lines(0, cid, wl(0, res) + ["pinrig-lava:0:holding| yes"])
    verify = [f"pinrig-lava:0:verify-begin {cid}", f"[    9.0] pinrig: case-start {cid}",
              "pinrig-lava:0:verify-setup rc=0", "pinrig-lava:0:verify-setup rc=0",
              f"pinrig-lava:0:blocksum| {json.dumps({'blocks': actual})}",
              "pinrig-lava:0:blocksum rc=0", f"[    9.5] pinrig: case-end {cid}",
              "pinrig-lava:0:end result=pass"]
    return lava_log(pin_boot + ["[    0.0] Linux version 6.1.0-57-amd64"] + verify)


def test_crash_and_verify_data_loss_and_clean():
    j = job("lost-write-once")
    lost = verdicts(j, _crash_job_log(["aa", "bb", "cc"], ["aa", "00", "cc"]))
    v = lost["lost-write/ext4/shared"]
    assert v.verdict == "data-loss" and v.blocks_lost == 1 and v.first_bad_offset == 4096
    clean = verdicts(j, _crash_job_log(["aa", "bb"], ["aa", "bb"]))["lost-write/ext4/shared"]
    assert clean.verdict == "ok" and clean.blocks_checked == 2
    refused = verdicts(j, _crash_job_log(["aa"], ["00"], pin="refused"))
    assert refused["lost-write/ext4/shared"].verdict == "refused"   # nothing pinned: no verify


def test_quotes_escaped_by_lava_are_restored():
    entries = results.read_log(lava_log(['say "hi" and \\"more\\"']))
    assert results.console(entries)[0][1] == 'say "hi" and \\"more\\"'


def test_log_garbage_is_ignored_and_foreign_jobs_refused():
    assert results.read_log("junk\n- {not: [valid\n{\"lvl\": 3}\n") == []
    with pytest.raises(UserError, match="not a pinrig job"):
        results.job_meta({"job_name": "someone else's", "metadata": {}})
    j = job("smoke")
    meta = json.loads(j["metadata"]["pinrig"])
    meta["cases"][0]["id"] = "forged/id"
    j["metadata"]["pinrig"] = json.dumps(meta)
    with pytest.raises(UserError, match="unreadable"):
        results.meta_cases(results.job_meta(j))


def test_jobs_of_different_suites_do_not_make_one_run(tmp_path):
    with pytest.raises(UserError, match="not of one kernel"):
        results.write_run(tmp_path / "x", [results.Collected(job("smoke"), ""),
                                           results.Collected(job("lost-write-once"), "")])


def test_a_begin_line_cut_by_a_kernel_message_still_counts():
    """Seen in a real lava-run: `pinrig-lava:0:be[   68.26] pinrig: case-start …` (a printk
    landed in the middle of the begin line); the case's later lines say it ran."""
    j = yaml.safe_load((DATA / "smoke-debian-6.1-cut-begin.job.yaml").read_text())
    log = (DATA / "smoke-debian-6.1-cut-begin.log").read_text()
    assert "pinrig-lava:0:be[" in log
    v = verdicts(j, log)
    assert {c: x.verdict for c, x in v.items()} == {"ibverbs-pin/ext4/shared": "ok",
                                                    "ibverbs-pin/tmpfs/shared": "ok"}


def test_an_end_line_lost_on_the_console_is_taken_from_lavas_own_result():
    lines = case_lines(0, "ibverbs-pin/ext4/shared",
                       wl(0, {"pin": "granted", "error": None}))[:-1]       # no end line
    log = lava_log(lines).splitlines()
    log.insert(-1, json.dumps({"dt": "2026-11-29T20:00:59", "lvl": "results", "msg": {
        "case": "ibverbs-pin_ext4_shared", "definition": "0_pinrig-01", "result": "pass"}}))
    v = verdicts(job("smoke"), "\n".join(log) + "\n")
    assert v["ibverbs-pin/ext4/shared"].verdict == "ok"
    # without LAVA's record either, the case did not end: the guest went away
    v = verdicts(job("smoke"), lava_log(lines))
    assert v["ibverbs-pin/ext4/shared"].verdict == "error"


def test_dmesg_evidence_is_kept_and_judged():
    body = wl(0, {"pin": "granted", "error": None}) + [
        "pinrig-lava:0:dmesg| [   17.1] pinrig: case-start ibverbs-pin/ext4/shared",
        "pinrig-lava:0:dmesg| [   17.5] EXT4-fs (pmem0): mounted filesystem"]
    got = results.judge_job(results.job_meta(job("smoke")), results.read_log(
        lava_log(case_lines(0, "ibverbs-pin/ext4/shared", body))))
    v, files = next((v, f) for v, f in got if v.case == "ibverbs-pin/ext4/shared")
    assert v.verdict == "ok" and "EXT4-fs (pmem0): mounted" in files["dmesg.log"]


def test_cases_the_kernel_lacks_are_skipped_like_the_runner_does(tmp_path):
    j = job("smoke")
    meta = json.loads(j["metadata"]["pinrig"])
    ext4 = meta["cases"].pop(1)
    assert ext4["id"] == "ibverbs-pin/ext4/shared"
    meta["skipped"] = [{**ext4, "reason": "kernel lacks CONFIG_FS_DAX (pmem.config)"}]
    j["metadata"]["pinrig"] = json.dumps(meta)
    log = lava_log(case_lines(1, "ibverbs-pin/tmpfs/shared",
                              wl(1, {"pin": "granted", "error": None})))
    run, vs = results.write_run(tmp_path / "r", [results.Collected(j, log)],
                                echo=lambda *_: None)
    got = {v.case: v for v in vs}
    assert got["ibverbs-pin/tmpfs/shared"].verdict == "ok"
    assert got["ibverbs-pin/ext4/shared"].verdict == "skipped"
    assert "CONFIG_FS_DAX" in got["ibverbs-pin/ext4/shared"].reason
    assert [c["id"] for c in run.manifest["suite"]["cases"]] == \
        ["ibverbs-pin/ext4/shared", "ibverbs-pin/tmpfs/shared"]


def test_a_lab_log_in_yaml_list_form_reads_like_lava_runs():
    """A LAVA server stores and serves the log as a YAML list (`- {...}` per line)."""
    text = (DATA / "smoke-debian-6.1.log").read_text()
    as_list = "".join("- " + line + "\n" for line in text.splitlines())
    assert results.read_log(as_list) == results.read_log(text)
    assert len(results.read_log(text)) > 100
