"""`rig repro KERNEL --c FILE / --cmd CMD` with the guest faked (tests/fakes.py): how attempts
are judged, what is written, the rate, the exit code. The real kernel outcomes are in
tests/integration/test_repro_cmd.py."""
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pinrig import paths
from pinrig.errors import InfraError, UserError
from pinrig.guest.transport import CmdResult, CommandTimeout
from pinrig.runs import reprocmd
from tests.fakes import FakeReproSession, fake_env

DATA = Path(__file__).resolve().parents[2] / "data" / "repro"
# the console slice of a real attempt (debian-6.1, oops-trigger.c) without its case marker
PANIC = b"".join(ln for ln in (DATA / "null-deref-panic.console.log").read_bytes()
                 .splitlines(keepends=True) if b"pinrig: case-" not in ln)
TITLE = "BUG: unable to handle kernel NULL pointer dereference in pinrig_null_deref"
WARN = (b"[    8.1] pinrig_oops: trigger warn\n"
        b"[    8.1] ------------[ cut here ]------------\n"
        b"[    8.1] pinrig_oops: deliberate WARN\n"
        b"[    8.1] WARNING: CPU: 1 PID: 321 at /build/pinrig_oops.c:61 pinrig_warn+0x1d/0x30 "
        b"[pinrig_oops]\n"
        b"[    8.1] Modules linked in: pinrig_oops(OE)\n"
        b"[    8.1] RIP: 0010:pinrig_warn+0x1d/0x30 [pinrig_oops]\n"
        b"[    8.1] Call Trace:\n"
        b"[    8.1]  <TASK>\n"
        b"[    8.1]  pinrig_write+0x90/0xe0 [pinrig_oops]\n"
        b"[    8.1]  proc_reg_write+0x56/0xa0\n"
        b"[    8.1]  vfs_write+0xc7/0x3c0\n"
        b"[    8.1]  </TASK>\n"
        b"[    8.1] ---[ end trace 0000000000000000 ]---\n")


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(reprocmd, "SETTLE_S", 0)
    monkeypatch.setattr(reprocmd, "MARKER_WAIT_S", 0.2)
    FakeReproSession.made = []


def ok(machine, cmd):
    return CmdResult(0, "done\n", "", 0.2)


def dies(machine, cmd):
    """null-deref with oops=panic: the panic on the console, QEMU gone, the channel closed."""
    machine.console += PANIC
    machine.killed = True
    return CmdResult(-1, "", "", 0.2)


def warns(machine, cmd):
    machine.console += WARN
    return CmdResult(0, "oops-trigger: wrote warn and lived\n", "", 0.2)


def hangs(machine, cmd):
    raise CommandTimeout("guest command timed out after 5s")


def cmd_repro(cmd="true"):
    return reprocmd.from_cmd(cmd)


def attempt(behaviour, repro=None, tmp=Path("/nonexistent"), **kw):
    factory = FakeReproSession(behaviour, **kw)
    return reprocmd.run_attempt(fake_env(), repro or cmd_repro(), tmp / "boot", 1, 5.0, factory)


# ---------------------------------------------------------------------------- building

def test_compile_argv_is_static_by_default_and_takes_extra_flags():
    argv = reprocmd.compile_argv(Path("r.c"), Path("/t/repro"), cflags=("-DX", "-lrt"))
    assert argv == ["gcc", "-O1", "-g", "-pthread", "-Wno-unused-result", "-static", "-DX",
                    "-lrt", "-o", "/t/repro", "r.c", "-lpthread"]
    assert "-static" not in reprocmd.compile_argv(Path("r.c"), Path("o"), static=False)


@pytest.mark.parametrize("output, first", [
    ("r.c: In function 'main':\nr.c:5:9: warning: implicit declaration of function 'f'\n"
     "r.c:6:1: error: expected ';' before 'return'\nr.c:9:1: error: later\n",
     "r.c:6:1: error: expected ';' before 'return'"),
    ("r.c:1:10: fatal error: linux/nope.h: No such file or directory\ncompilation terminated.\n",
     "r.c:1:10: fatal error: linux/nope.h: No such file or directory"),
    ("/usr/bin/ld: /tmp/cc.o: in function `main':\nr.c:(.text+0x9): undefined reference to "
     "`io_uring_setup'\ncollect2: error: ld returned 1 exit status\n",
     "r.c:(.text+0x9): undefined reference to `io_uring_setup'"),
    ("", "no output"),
])
def test_first_error_is_the_compilers_first_error_line(output, first):
    assert reprocmd.first_error(output) == first


def test_a_reproducer_that_does_not_compile_is_one_line_with_the_first_error(tmp_path):
    """Real gcc (the host compiler the rig builds with): the message names file:line:col."""
    before = set(Path("/tmp").glob("pinrig-repro-build-*"))
    with pytest.raises(UserError) as e:
        reprocmd.build_c(str(DATA / "does-not-compile.c"))
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("--c: the reproducer does not compile: ")
    assert "does-not-compile.c:7:" in msg and "error: expected" in msg
    assert set(Path("/tmp").glob("pinrig-repro-build-*")) == before      # nothing left behind


def test_a_c_reproducer_compiles_static_and_runs_from_its_directory():
    r = reprocmd.build_c(str(DATA / "clean.c"))
    try:
        assert r.binary.exists() and r.case_id == "repro/clean" and r.kind == "c"
        assert r.command == ("mkdir -p /tmp/pinrig-repro && cd /tmp/pinrig-repro && "
                             "/tmp/pinrig-repro/repro")
        assert len(r.source_sha256) == 16
        import subprocess
        ldd = subprocess.run(["file", str(r.binary)], capture_output=True, text=True).stdout
        assert "statically linked" in ldd
    finally:
        reprocmd.discard(r)
    assert not r.binary.parent.exists()


@pytest.mark.parametrize("arg, msg", [("nope.c", "--c nope.c: no such file"),
                                      ("EMPTY", "empty file")])
def test_bad_c_file_arguments(tmp_path, arg, msg):
    if arg == "EMPTY":
        (tmp_path / "e.c").write_text("\n")
        arg = str(tmp_path / "e.c")
    with pytest.raises(UserError, match=msg):
        reprocmd.build_c(arg)


def test_a_cmd_runs_under_bash_without_exec_so_a_signal_death_has_an_exit_status():
    r = reprocmd.from_cmd("echo 'a b' | cat; exit 3")
    assert r.command == ("mkdir -p /tmp/pinrig-repro && cd /tmp/pinrig-repro && bash -c "
                         "'echo '\"'\"'a b'\"'\"' | cat; exit 3'")
    with pytest.raises(UserError, match="--cmd: empty"):
        reprocmd.from_cmd("  ")


# ---------------------------------------------------------------------------- one attempt

def test_an_attempt_that_exits_without_a_report_is_ok_whatever_its_status(tmp_path):
    a, files = attempt(lambda m, c: CmdResult(139, "", "Segmentation fault\n", 0.1), tmp=tmp_path)
    assert a.verdict.verdict == "ok" and not a.reproduced
    assert a.exit_code == 139 and a.verdict.reason == "reproducer exited 139; no kernel report"
    assert "Segmentation fault" in files["guest.log"]
    assert "case-end repro/cmd" in files["console.log"]
    s = FakeReproSession.made[0]
    assert s.closed and s.pmem_discarded
    # nothing of the guest is kept: killed by pid, no polite poweroff command
    assert s.machine.killed and not any("sysrq" in c for c in s.the_guest.commands)


def test_a_reproducer_that_kills_the_guest_is_a_crash_with_its_title(tmp_path):
    """Seen for real: sshd sends no exit status when the guest panics; paramiko says -1."""
    a, files = attempt(dies, tmp=tmp_path)
    v = a.verdict
    assert (v.verdict, v.title, v.phase) == ("crash", TITLE, "case")
    assert a.guest_died and a.exit_code is None and not a.hung
    assert v.reason == "1 kernel report(s); the guest died"
    assert json.loads(files["reports.json"])[0]["title"] == TITLE
    assert "Kernel panic - not syncing" in files["console.log"]


def test_a_channel_closed_under_a_live_guest_is_an_error_and_the_guest_is_killed(tmp_path):
    def closes(machine, cmd):
        return CmdResult(-1, "", "", 0.1)
    a, _files = attempt(closes, tmp=tmp_path)
    assert a.verdict.verdict == "error"
    assert "without an exit status" in a.verdict.reason
    assert FakeReproSession.made[0].machine.killed


def test_a_hung_reproducer_is_an_error_after_its_timeout_and_its_guest_is_killed(tmp_path):
    a, files = attempt(hangs, tmp=tmp_path)
    assert a.verdict.verdict == "error" and a.hung
    assert a.verdict.reason == ("reproducer hung: still running after 5s, no kernel report "
                                "(guest killed)")
    assert FakeReproSession.made[0].machine.killed
    assert "still running after 5s" in files["guest.log"]


def test_a_hang_with_a_kernel_report_is_a_crash(tmp_path):
    def locks_up(machine, cmd):
        machine.console += (b"[   30.0] watchdog: BUG: soft lockup - CPU#0 stuck for 26s! "
                            b"[repro:300]\n[   30.0] RIP: 0010:pinrig_spin+0x20/0x40 "
                            b"[pinrig_oops]\n")
        raise CommandTimeout("timed out")
    a, _f = attempt(locks_up, tmp=tmp_path)
    assert a.verdict.verdict == "crash" and a.verdict.title.startswith("BUG: soft lockup")
    assert "still running after 5s" in a.verdict.reason


def test_a_guest_dying_without_a_report_is_an_error_not_ok(tmp_path):
    def vanishes(machine, cmd):
        machine.killed = True
        raise InfraError("lost the guest's ssh connection: EOF")
    a, _f = attempt(vanishes, tmp=tmp_path)
    assert a.verdict.verdict == "error" and a.guest_died
    assert a.verdict.reason == "the guest died during the reproducer with no kernel report"


def test_a_boot_that_panics_is_a_crash_in_phase_boot_and_a_failed_boot_an_error(tmp_path):
    a, _f = attempt(ok, tmp=tmp_path, boot_status="crash", boot_console=PANIC)
    assert (a.verdict.verdict, a.verdict.phase, a.verdict.title) == ("crash", "boot", TITLE)
    a, _f = attempt(ok, tmp=tmp_path, boot_status="error")
    assert a.verdict.verdict == "error" and a.verdict.reason.startswith("boot failed (error)")


def test_the_binary_and_test_module_go_in_before_the_start_marker(tmp_path):
    src = tmp_path / "r.c"
    src.write_text("int main(void){return 0;}\n")
    r = reprocmd.Reproducer("c", "r", "mkdir -p /tmp/pinrig-repro && cd /tmp/pinrig-repro && "
                            "/tmp/pinrig-repro/repro", source=src, binary=src)
    env = fake_env(test_module=tmp_path / "pinrig_oops.ko")
    factory = FakeReproSession(ok)
    reprocmd.run_attempt(env, r, tmp_path / "b", 1, 5.0, factory)
    g = FakeReproSession.made[0].the_guest
    assert g.puts == [(str(env.test_module), "/tmp/pinrig_oops.ko", None),
                      (str(src), "/tmp/pinrig-repro/repro", 0o755)]
    order = [c.split()[0] for c in g.commands]
    assert order.index("insmod") < order.index("echo") < order.index("mkdir", 2)


# ---------------------------------------------------------------------------- the run

def run(tmp_path, behaviours, **kw):
    it = iter(behaviours)

    class Seq(FakeReproSession):
        def __call__(self, env, workdir):
            self.behaviour = next(it)
            return super().__call__(env, workdir)
    return reprocmd.run_reprocmd(fake_env(), kw.pop("repro", None) or cmd_repro("./go"),
                                 tmp_path / "out", echo=lambda *a: None, session=Seq(ok),
                                 argv=["rig", "repro", "debian-6.1", "--cmd", "./go"], **kw)


def test_rate_titles_files_and_exit_1_when_it_reproduces(tmp_path):
    rep = run(tmp_path, [dies, ok, dies], attempts=3, junit=tmp_path / "j.xml")
    out = tmp_path / "out"
    assert rep.exit_code == 1 and rep.reproduced == 2
    d = json.loads((out / "repro.json").read_text())
    assert (d["reproduced"], d["attempts"], d["rate"]) == (2, 3, 0.6667)
    assert d["titles"] == [{"title": TITLE, "attempts": [1, 3]}]
    assert d["verdicts"] == {"crash": 2, "ok": 1}
    assert [r["reproduced"] for r in d["results"]] == [True, False, True]
    for k, sub in ((1, ""), (2, "@2/"), (3, "@3/")):
        assert (out / f"cases/repro/cmd/{sub}verdict.json").exists(), k
    m = json.loads((out / "manifest.json").read_text())
    assert m["kind"] == "repro" and m["end"] and m["repro"]["given"] == "./go"
    assert m["reproducer"] == "rig repro debian-6.1 --cmd ./go"
    tree = ET.parse(out / "junit.xml")
    cases = tree.findall(".//testcase")
    assert [c.get("name") for c in cases] == ["repro/cmd", "repro/cmd #2", "repro/cmd #3"]
    assert cases[0].find("failure").get("message") == TITLE and cases[1].find("failure") is None
    assert (tmp_path / "j.xml").read_text() == (out / "junit.xml").read_text()
    text = (out / "summary.txt").read_text()
    assert "reproduced: 2/3 (67%)" in text and f"title: {TITLE}  (attempt 1, 3)" in text


def test_nothing_reproduced_is_exit_0_and_all_errors_exit_2(tmp_path):
    assert run(tmp_path / "a", [ok, ok], attempts=2).exit_code == 0
    rep = run(tmp_path / "b", [hangs, hangs], attempts=2)
    assert rep.exit_code == 2 and [a.verdict.verdict for a in rep.attempts] == ["error"] * 2
    assert run(tmp_path / "c", [hangs, ok], attempts=2).exit_code == 0


def test_expect_title_is_the_check_and_other_crashes_are_listed(tmp_path):
    rep = run(tmp_path / "a", [warns, dies], attempts=2, expect_title="WARNING in pinrig_warn")
    assert [a.reproduced for a in rep.attempts] == [True, False]
    assert rep.exit_code == 1
    text = reprocmd.format_text(rep)
    assert "reproduced with title 'WARNING in pinrig_warn': 1/2 (50%)" in text
    assert f"warning: attempt 2 crashed with another title: {TITLE}" in text
    rep = run(tmp_path / "b", [dies], attempts=1, expect_title="WARNING in pinrig_warn")
    assert rep.exit_code == 0 and rep.attempts[0].verdict.verdict == "crash"   # kept, not hidden


def test_expect_title_compares_normalised_titles(tmp_path):
    rep = run(tmp_path, [warns], attempts=1, expect_title="WARNING  in  pinrig_warn")
    assert rep.reproduced == 1


def test_stop_after_k_reproductions(tmp_path):
    rep = run(tmp_path, [dies, dies, dies], attempts=3, stop_after=1)
    assert len(rep.attempts) == 1 and rep.stopped_early
    assert json.loads((tmp_path / "out/repro.json").read_text())["stopped_early"] is True


def test_a_c_reproducers_source_is_kept_with_the_results(tmp_path):
    src = tmp_path / "my repro.c"
    src.write_text("int main(void){return 0;}\n")
    r = reprocmd.Reproducer("c", "my_repro", "x", source=src, binary=src, given=str(src))
    rep = run(tmp_path, [ok], attempts=1, repro=r)
    assert (rep.run.path / "source.c").read_text() == src.read_text()
    assert rep.run.manifest["repro"]["source_copy"] == "source.c"


def test_an_out_dir_that_holds_files_is_refused_before_anything_runs(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("keep")
    with pytest.raises(UserError, match="not an empty directory"):
        run(tmp_path, [ok], attempts=1)
    assert FakeReproSession.made == []


def test_default_out_is_under_results(tmp_path):
    p = reprocmd.default_out("debian-6.1", cmd_repro())
    assert p.parent == paths.RESULTS_DIR and p.name.endswith("-debian-6.1-cmd")
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_symbolized_report_puts_file_line_in_the_attempts_verdict():
    # seen for real: src-6.1-debug's LKDTM oops was symbolized in reports.json, but the
    # attempt's verdict and line had no file:line
    from types import SimpleNamespace
    rep = SimpleNamespace(title="BUG: unable to handle kernel NULL pointer dereference in "
                                "lkdtm_EXCEPTION", where="drivers/misc/lkdtm/bugs.c:95")
    v = reprocmd.judge("repro/lkdtm", 1, [rep], died=True)
    assert v.verdict == "crash" and v.where == "drivers/misc/lkdtm/bugs.c:95"
    assert v.message().endswith("in lkdtm_EXCEPTION at drivers/misc/lkdtm/bugs.c:95")
    unsym = reprocmd.judge("repro/x", 1, [SimpleNamespace(title="WARNING in f")])
    assert unsym.where is None
