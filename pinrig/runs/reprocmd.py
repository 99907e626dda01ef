"""`rig repro KERNEL --c FILE` / `--cmd "…"`: a reproducer a user brings, run N times.

The C file is compiled on the host (static by default, so it runs in any guest; `--dynamic`
links against the host's libraries, which the bookworm guest shares), before anything is written.
Each attempt gets a fresh guest (resumed from the saved ready state of this kernel and image, or
booted with --cold), the reproducer runs with a timeout, and the console slice between the rig's
kmsg markers is parsed for kernel reports. Per attempt, like a case of `rig run`:

  crash  kernel report(s) (the guest may have died: oops=panic); first title is the headline
  error  the reproducer hung past its timeout with no report (guest killed by pid), the guest
         died with no report, or the rig could not boot/reach the guest
  ok     it exited (any exit code: a reproducer's status is not the kernel's) and no report

An attempt *reproduces* when it is a crash, or, with --expect-title, when one of its reports has
that title (normalised as `rig compare` does). Exit 1 when some attempt reproduced, 2 when every
attempt was an error, else 0. The results directory is the usual one (manifest.json,
cases/repro/<name>/@k/…, junit.xml, summary.txt) plus repro.json (rate and titles) and a copy of
the reproducer's source.
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from pinrig import __version__, oops, paths, proc
from pinrig.cases import kmod
from pinrig.cases.execute import marker
from pinrig.cases.verdict import Verdict
from pinrig.config import file_hash
from pinrig.errors import InfraError, UserError
from pinrig.guest.session import Environment, Session
from pinrig.guest.transport import CmdResult, CommandTimeout
from pinrig.outcome import Outcome
from pinrig.results.rundir import RunDir, atomic_write, host_info, junit_xml

GUEST_DIR = "/tmp/pinrig-repro"
GUEST_BIN = f"{GUEST_DIR}/repro"
SETTLE_S = 2.0            # after the reproducer exits: reports printed from other contexts land
DEATH_WAIT_S = 10.0       # after the connection drops: QEMU ends (panic=-1, -no-reboot)
MARKER_WAIT_S = 5.0       # the end marker reaching the serial console
NO_EXIT_STATUS = -1       # paramiko's exit status of a channel closed under the command
CC = "gcc"
BASE_CFLAGS = ("-O1", "-g", "-pthread", "-Wno-unused-result")
NAME_RE = re.compile(r"[^A-Za-z0-9_.-]+")


# ---------------------------------------------------------------------------- the reproducer

@dataclass
class Reproducer:
    kind: str                       # "c" or "cmd"
    name: str                       # case id is repro/<name>
    command: str                    # the guest shell line that runs it
    source: Optional[Path] = None   # the C file as given
    binary: Optional[Path] = None   # built on the host (a temporary directory until written)
    compile_argv: list = field(default_factory=list)
    source_sha256: Optional[str] = None
    given: str = ""                 # what the user gave: the --cmd line or the --c path

    @property
    def case_id(self) -> str:
        return f"repro/{self.name}"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "given": self.given, "command": self.command,
                "source": str(self.source) if self.source else None,
                "source_sha256": self.source_sha256,
                "compile": [str(a) for a in self.compile_argv] or None}


def compile_argv(src: Path, out: Path, static: bool = True, cflags: tuple = ()) -> list:
    """The host compiler's command line for a C reproducer (pure; tests compare it exactly)."""
    return [CC, *BASE_CFLAGS, *(["-static"] if static else []), *cflags, "-o", str(out), str(src),
            "-lpthread"]


def first_error(output: str) -> str:
    """The compiler's first error, one line: `file:line:col: error: …`; a link error
    (`undefined reference`, `cannot find -lx`) when that is what failed; else the first line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for ln in lines:
        if re.search(r"\b(fatal )?error:", ln) and not ln.startswith("collect2"):
            return ln
    for ln in lines:
        if "undefined reference" in ln or "cannot find" in ln:
            return ln
    return lines[0] if lines else "no output"


def build_c(src_arg: str, static: bool = True, cflags: str = "",
            name: Optional[str] = None) -> Reproducer:
    """Compile FILE on the host into a temporary directory → Reproducer. UserError with the
    compiler's first error when it does not compile (nothing is written anywhere else)."""
    src = Path(src_arg)
    if not src.is_file():
        raise UserError(f"--c {src_arg}: no such file")
    data = src.read_bytes()
    if not data.strip():
        raise UserError(f"--c {src_arg}: empty file")
    try:
        extra = tuple(shlex.split(cflags))
    except ValueError as e:
        raise UserError(f"--cflags: {e}")
    proc.require(CC)
    tmp = Path(tempfile.mkdtemp(prefix="pinrig-repro-build-"))
    out = tmp / "repro"
    argv = compile_argv(src, out, static, extra)
    res = proc.run(argv, check=False, timeout=300)
    if res.returncode != 0 or not out.exists():
        shutil.rmtree(tmp, ignore_errors=True)
        msg = first_error(res.stderr + "\n" + res.stdout)
        hint = ""
        if static and ("cannot find -l" in msg or "undefined reference" in msg):
            hint = " (static link: try --dynamic)"
        raise UserError(f"--c: the reproducer does not compile: {msg}{hint}")
    name = name or NAME_RE.sub("_", src.stem).strip("_.") or "repro"
    # no `exec`: the shell reports a signal death as 128+N (sshd sends no exit status for a
    # process killed by a signal, which would look like a lost connection)
    return Reproducer("c", name, f"mkdir -p {GUEST_DIR} && cd {GUEST_DIR} && {GUEST_BIN}",
                      source=src, binary=out, compile_argv=argv, given=src_arg,
                      source_sha256=file_hash(data)[:16])


def from_cmd(cmd: str) -> Reproducer:
    if not cmd.strip():
        raise UserError("--cmd: empty command")
    return Reproducer("cmd", "cmd", f"mkdir -p {GUEST_DIR} && cd {GUEST_DIR} && bash -c "
                      f"{shlex.quote(cmd)}", given=cmd)


def discard(repro: Reproducer) -> None:
    """Remove the temporary build directory of a compiled reproducer."""
    if repro.binary is not None:
        shutil.rmtree(repro.binary.parent, ignore_errors=True)


# ---------------------------------------------------------------------------- one attempt

@dataclass
class Attempt:
    verdict: Verdict
    reproduced: bool
    exit_code: Optional[int] = None
    hung: bool = False
    guest_died: bool = False
    run_s: Optional[float] = None
    booted: str = ""

    def to_dict(self) -> dict:
        return {"attempt": self.verdict.attempt, "verdict": self.verdict.to_dict(),
                "reproduced": self.reproduced, "exit_code": self.exit_code, "hung": self.hung,
                "guest_died": self.guest_died, "run_s": self.run_s, "booted": self.booted}


def title_matches(v: Verdict, expect_title: Optional[str]) -> bool:
    """Did this attempt reproduce: a crash, and (with expect_title) one of its titles is that."""
    if v.verdict != Outcome.CRASH:
        return False
    if not expect_title:
        return True
    want = oops.normalize_title(expect_title)
    return any(oops.normalize_title(t) == want for t in (v.titles or [v.title or ""]))


def judge(case_id: str, attempt: int, reports: list, *, exit_code: Optional[int] = None,
          hung: bool = False, died: bool = False, error: str = "", timeout: float = 0.0,
          phase: str = "case", wall_s: float = 0.0) -> Verdict:
    """An attempt's verdict: kernel reports first (a crash is never hidden as trouble), then
    what kept the rig from telling (hang, death without a report, boot/SSH failure), else ok."""
    v = Verdict(case=case_id, verdict=Outcome.OK, phase=phase, wall_s=round(wall_s, 3),
                attempt=attempt)
    if reports:
        v.verdict = Outcome.CRASH
        v.titles = [r.title for r in reports]
        v.title = v.titles[0]
        v.where = getattr(reports[0], "where", "") or None     # file:line, when symbolized
        v.reason = f"{len(reports)} kernel report(s)"
        if died:
            v.reason += "; the guest died"
        elif hung:
            v.reason += f"; the reproducer was still running after {timeout:.0f}s"
        return v
    if hung:
        v.verdict = Outcome.ERROR
        v.reason = (f"reproducer hung: still running after {timeout:.0f}s, no kernel report "
                    "(guest killed)")
    elif died:
        v.verdict = Outcome.ERROR
        during = "the reproducer" if phase == "case" else phase
        v.reason = f"the guest died during {during} with no kernel report" + \
            (f" ({error})" if error else "")
    elif error:
        v.verdict, v.reason = Outcome.ERROR, error
    else:
        v.reason = f"reproducer exited {exit_code}; no kernel report"
    return v


def load_test_module(sess: Session, log: list) -> None:
    """Upload and load pinrig_oops.ko (env.test_module) before the reproducer."""
    ko = sess.env.test_module
    if ko is None:
        raise InfraError("--test-module: the module was not built")
    g = sess.connected_guest()
    g.put(ko, kmod.GUEST_KO)
    res = g.run(f"insmod {kmod.GUEST_KO}", timeout=60)
    log.append(_log_entry(f"insmod {kmod.GUEST_KO}", res))
    if res.rc != 0:
        raise InfraError(f"insmod {ko.name} failed: {res.stderr.strip()[-200:]}")


def _log_entry(title: str, res: CmdResult) -> str:
    return (f"$ {title}\n[exit {res.rc}, {res.wall_s:.2f}s]\n{res.stdout}"
            + (f"--- stderr ---\n{res.stderr}" if res.stderr else ""))


def run_attempt(env: Environment, repro: Reproducer, workdir: Path, attempt: int,
                timeout: float, session: Callable = Session) -> tuple:
    """One attempt in a fresh guest → (Attempt, {file name: text} for the case directory)."""
    t0 = time.monotonic()
    sess = session(env, workdir)
    cid = repro.case_id
    log: list = []
    exit_code = None
    hung = died = False
    error = ""
    run_s = None
    phase = "boot"
    try:
        br = sess.boot()
        if br.status != "ready":
            console = sess.machine.console_text() if sess.machine else b""
            reports, _ = oops.reports_in(console, getattr(env, "symbolizer", None))
            v = judge(cid, attempt, reports, error=f"boot failed ({br.status}): {br.reason}",
                      phase="boot", wall_s=time.monotonic() - t0)
            text = console.decode(errors="replace")[-200000:]
            return (Attempt(v, False, booted=sess.booted),
                    _files(text, text, log, reports, None))
        phase = "setup"
        g = sess.connected_guest()
        try:
            if env.test_module is not None:
                load_test_module(sess, log)
            if repro.binary is not None:
                g.run(["mkdir", "-p", GUEST_DIR], timeout=30, check=True)
                g.put(repro.binary, GUEST_BIN, mode=0o755)
            g.run(marker("start", cid), timeout=15)
            phase = "case"
            t1 = time.monotonic()
            try:
                res = g.run(repro.command, timeout=timeout)
                run_s = round(time.monotonic() - t1, 3)
                log.append(_log_entry(repro.command, res))
                if res.rc == NO_EXIT_STATUS:
                    # the channel closed with no exit status: the guest (or its sshd) went away
                    raise InfraError("the ssh channel closed without an exit status")
                exit_code = res.rc
                time.sleep(SETTLE_S)
            except CommandTimeout:
                hung, run_s = True, round(time.monotonic() - t1, 3)
                log.append(f"$ {repro.command}\n[still running after {timeout:.0f}s: guest killed]")
        except CommandTimeout as e:
            error = f"{phase}: {e}"
        except InfraError as e:
            error = str(e)
            if run_s is None and phase == "case":
                run_s = round(time.monotonic() - t1, 3)
                log.append(f"$ {repro.command}\n[connection lost: {e}]")
        machine = sess.machine
        if machine is None:
            raise InfraError(f"{workdir}: no QEMU behind the session")
        if error and phase == "case" and machine.alive():
            machine.wait_exit(DEATH_WAIT_S)     # the connection dropped: a dying kernel ends QEMU
        died = not machine.alive()
        hung = hung and not died
        if not (died or hung or error):
            _end_marker(sess, cid)
        console = machine.console_text()
        if machine.alive() and (hung or error):
            machine.kill()                      # a hung reproducer's guest ends by pid
        slices = oops.split_by_case(console)
        cslice = slices.get(cid, "")
        if not cslice and (died or hung or error):
            cslice = console.decode(errors="replace")[-200000:]
        reports, note = oops.reports_in(cslice, getattr(env, "symbolizer", None))
        if note:
            log.append(note)
        dmesg = _dmesg(sess, cid) or cslice
        if died and error and not reports:
            error = ""          # judge() says "died with no kernel report"; the EOF adds nothing
        v = judge(cid, attempt, reports, exit_code=exit_code, hung=hung, died=died, error=error,
                  timeout=timeout, phase=phase, wall_s=time.monotonic() - t0)
        result = {"exit_code": exit_code, "hung": hung, "guest_died": died, "run_s": run_s,
                  "timeout_s": timeout, "command": repro.command, "booted": sess.booted}
        return (Attempt(v, False, exit_code, hung, died, run_s, sess.booted),
                _files(cslice, dmesg, log, reports, result))
    finally:
        _end(sess)


def _end(sess: Session) -> None:
    """End the attempt's guest at once: nothing in it is kept (its console is already read, its
    overlay and pmem file go), so no polite poweroff (up to 5 s of an attempt under TCG)."""
    if sess.guest is not None:
        sess.guest.close()
        sess.guest = None
    if sess.machine is not None:
        sess.machine.kill()
    sess.close()
    sess.discard_pmem()


def _end_marker(sess: Session, cid: str) -> None:
    """Close the attempt's console slice and wait (briefly) for it on the serial console."""
    try:
        sess.connected_guest().run(marker("end", cid), timeout=15)
    except InfraError:
        return
    machine = sess.machine
    end = time.monotonic() + MARKER_WAIT_S
    needle = f"pinrig: case-end {cid}".encode()
    while machine is not None and time.monotonic() < end and needle not in machine.console_text():
        time.sleep(0.1)


def _dmesg(sess: Session, cid: str) -> str:
    if not (sess.alive() and sess.guest is not None):
        return ""
    try:
        d = sess.guest.run("dmesg", timeout=30)
    except InfraError:
        return ""
    return oops.split_by_case(d.stdout).get(cid, "")


def _files(console: str, dmesg: str, log: list, reports: list, result: Optional[dict]) -> dict:
    def js(obj) -> str:
        return json.dumps(obj, indent=2) + "\n"
    return {"console.log": console, "dmesg.log": dmesg, "guest.log": "\n".join(log),
            "result.json": js(result) if result else None,
            "reports.json": js([r.to_dict() for r in reports]) if reports else None}


# ---------------------------------------------------------------------------- the run

@dataclass
class ReproCmdReport:
    run: RunDir
    repro: Reproducer
    attempts_asked: int
    expect_title: Optional[str]
    stop_after: Optional[int] = None
    attempts: list = field(default_factory=list)        # Attempt
    stopped_early: bool = False
    wall_s: float = 0.0

    @property
    def reproduced(self) -> int:
        return sum(a.reproduced for a in self.attempts)

    @property
    def exit_code(self) -> int:
        """1 reproduced at least once; 2 every attempt an error (the rig could not tell); else
        0 (with --expect-title, crashes of other titles are listed but are not this bug)."""
        if self.reproduced:
            return 1
        if self.attempts and all(a.verdict.verdict == Outcome.ERROR for a in self.attempts):
            return 2
        return 0

    def titles(self) -> dict:
        """title → attempts (numbers) that reported it, first seen first."""
        out: dict = {}
        for a in self.attempts:
            for t in a.verdict.titles or []:
                out.setdefault(t, [])
                if a.verdict.attempt not in out[t]:
                    out[t].append(a.verdict.attempt)
        return out

    def other_crashes(self) -> list:
        return [a for a in self.attempts if a.verdict.verdict == Outcome.CRASH and not a.reproduced]

    def to_dict(self) -> dict:
        n = len(self.attempts)
        k = self.run.manifest.get("kernel") or {}
        return {"kernel": k.get("name"), "release": k.get("release"),
                "reproducer": self.repro.to_dict(), "case": self.repro.case_id,
                "expect_title": self.expect_title, "attempts_asked": self.attempts_asked,
                "attempts": n, "reproduced": self.reproduced,
                "rate": round(self.reproduced / n, 4) if n else None,
                "stop_after": self.stop_after, "stopped_early": self.stopped_early,
                "titles": [{"title": t, "attempts": a} for t, a in self.titles().items()],
                "verdicts": {o: sum(a.verdict.verdict == o for a in self.attempts)
                             for o in sorted({str(a.verdict.verdict) for a in self.attempts})},
                "results": [a.to_dict() for a in self.attempts], "out": str(self.run.path),
                "wall_s": round(self.wall_s, 1), "exit_code": self.exit_code}


def manifest(env: Environment, repro: Reproducer, out: Path, argv: list, options: dict) -> dict:
    return {
        "rig_version": __version__,
        "run_id": out.name,
        "kind": "repro",
        "kernel": {"name": env.spec.name, "spec": str(env.spec.path), "suite": env.spec.suite,
                   "release": env.art.release, "packages": list(env.art.packages),
                   "hash": env.art.hash,
                   "spec_fields": {k: v for k, v in env.spec.__dict__.items() if k != "path"}},
        "guest": {"name": env.image.name, "hash": env.image.hash},
        "suite": {"name": "repro", "path": None, "cases": [{"id": repro.case_id}],
                  "pressure": {}},
        "repro": repro.to_dict() | options,
        "seed": None,
        "accel": env.accel,
        "boot": {"mode": env.boot_mode, "note": env.boot_note,
                 "saved_state": env.saved.key if env.saved else None, "fallbacks": []},
        "qemu_version": env.qemu_version,
        "guest_memory_mb": 2048,
        "host": host_info(),
        "start": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "end": None,
        "reproducer": shlex.join(argv),
        "repeat": options.get("attempts", 1),
    }


@dataclass
class Recorded:
    """What a results directory written by `rig repro KERNEL --c/--cmd` says to run again."""
    kernel: str                    # spec path when it still exists, else the spec name
    repro: Reproducer
    timeout: float
    expect_title: Optional[str]
    test_module: bool
    attempts: int
    build: dict                    # cflags / dynamic, recorded again in the new manifest
    release: Optional[str] = None  # the kernel release the recorded run had


def recorded(path: Path, manifest: dict) -> Recorded:
    """Rebuild the reproducer of a `--c/--cmd` results directory (the C source from its copy
    there) → Recorded; UserError naming the manifest field that is missing or wrong."""
    where = f"{path / 'manifest.json'}"
    r = manifest.get("repro")
    if not isinstance(r, dict):
        raise UserError(f"{where}: repro: missing; not a `rig repro --c/--cmd` directory")
    k = manifest.get("kernel")
    if not isinstance(k, dict):
        k = {}
    spec, name = k.get("spec"), k.get("name")
    kernel = spec if isinstance(spec, str) and Path(spec).is_file() else name
    if not isinstance(kernel, str) or not kernel:
        raise UserError(f"{where}: kernel.name: missing")
    timeout, attempts = r.get("timeout_s", 300.0), r.get("attempts", 3)
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise UserError(f"{where}: repro.timeout_s: expected a positive number")
    if not isinstance(attempts, int) or attempts < 1:
        raise UserError(f"{where}: repro.attempts: expected a positive integer")
    title = r.get("expect_title")
    if title is not None and not isinstance(title, str):
        raise UserError(f"{where}: repro.expect_title: expected a string")
    if r.get("kind") == "c":
        copy = r.get("source_copy")
        if not isinstance(copy, str) or "/" in copy or not (path / copy).is_file():
            raise UserError(f"{where}: repro.source_copy: the reproducer's source is not in "
                            f"{path}")
        argv = r.get("compile") or []
        cflags = r.get("cflags") or ""
        if not isinstance(cflags, str):
            raise UserError(f"{where}: repro.cflags: expected a string")
        rep = build_c(str(path / copy), static="-static" in argv, cflags=cflags,
                      name=NAME_RE.sub("_", str(r.get("name") or "repro")))
        rep.given = str(r.get("given") or rep.given)
    elif r.get("kind") == "cmd":
        if not isinstance(r.get("given"), str):
            raise UserError(f"{where}: repro.given: the command is missing")
        rep = from_cmd(r["given"])
    else:
        raise UserError(f"{where}: repro.kind: expected 'c' or 'cmd', got {r.get('kind')!r}")
    return Recorded(kernel, rep, float(timeout), title, bool(r.get("test_module")), attempts,
                    {"cflags": r.get("cflags"), "dynamic": bool(r.get("dynamic"))},
                    k.get("release") if isinstance(k.get("release"), str) else None)


def check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out}: exists and is not an empty directory")


def default_out(kernel_name: str, repro: Reproducer) -> Path:
    return paths.RESULTS_DIR / (f"repro-{time.strftime('%Y%m%d-%H%M%S')}-{kernel_name}-"
                                f"{repro.name}").replace("/", "_")


def run_reprocmd(env: Environment, repro: Reproducer, out: Path, attempts: int = 3,
                 timeout: float = 300.0, stop_after: Optional[int] = None,
                 expect_title: Optional[str] = None, argv: Optional[list] = None,
                 echo: Callable = print, session: Callable = Session,
                 junit: Optional[Path] = None, build: Optional[dict] = None) -> ReproCmdReport:
    """Run the reproducer in `attempts` fresh guests of the prepared environment `env`."""
    t0 = time.monotonic()
    check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    options = {"attempts": attempts, "timeout_s": timeout, "stop_after": stop_after,
               "expect_title": expect_title, "test_module": env.test_module is not None,
               **(build or {})}
    # the directory itself replays (`rig repro OUT`) when no fuller command line is given
    run = RunDir(out, manifest(env, repro, out, argv or ["rig", "repro", str(out)], options))
    if repro.source is not None:
        atomic_write(out / f"source{repro.source.suffix or '.c'}", repro.source.read_bytes())
        run.manifest["repro"]["source_copy"] = f"source{repro.source.suffix or '.c'}"
    run.write_manifest()
    rep = ReproCmdReport(run, repro, attempts, expect_title, stop_after)
    echo(f"rig: repro {repro.case_id} on {env.spec.name} ({env.art.release}): up to {attempts} "
         f"attempt(s), {timeout:.0f}s each, {env.boot_mode} guests, results in {out}")
    for i in range(1, attempts + 1):
        a, files = run_attempt(env, repro, out / "boots" / f"attempt-{i}", i, timeout, session)
        a.reproduced = title_matches(a.verdict, expect_title)
        run.write_case(a.verdict, files)
        rep.attempts.append(a)
        v = a.verdict
        what = v.message() if v.verdict != Outcome.OK else v.reason
        tag = "reproduced" if a.reproduced else "not reproduced"
        echo(f"  attempt {i}/{attempts}: {v.verdict:<8} {v.wall_s:6.1f}s  {what} — {tag}")
        if stop_after and i < attempts and rep.reproduced >= stop_after:
            rep.stopped_early = True
            break
    rep.wall_s = time.monotonic() - t0
    run.manifest["end"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    run.manifest["boot"]["fallbacks"] = list(env.fallbacks)
    run.write_manifest()
    verdicts = [a.verdict for a in rep.attempts]
    xml = junit_xml(run, verdicts)
    atomic_write(out / "junit.xml", xml)
    if junit:
        atomic_write(junit, xml)
    atomic_write(out / "repro.json", json.dumps(rep.to_dict(), indent=2) + "\n")
    atomic_write(out / "summary.txt", format_text(rep))
    return rep


def format_text(rep: ReproCmdReport) -> str:
    d = rep.to_dict()
    src = rep.repro.given or rep.repro.command
    lines = [f"repro {rep.repro.case_id} ({src}) on {d['kernel']} ({d['release']})"]
    for a in rep.attempts:
        v = a.verdict
        what = v.message() if v.verdict != Outcome.OK else v.reason
        lines.append(f"  attempt {v.attempt}: {v.verdict:<8} {v.wall_s:6.1f}s  {what}"
                     f" — {'reproduced' if a.reproduced else 'not reproduced'}")
    n = d["attempts"]
    pct = f" ({100 * d['reproduced'] / n:.0f}%)" if n else ""
    want = f" with title '{rep.expect_title}'" if rep.expect_title else ""
    lines.append(f"  reproduced{want}: {d['reproduced']}/{n}{pct}")
    for t in d["titles"]:
        lines.append(f"  title: {t['title']}  (attempt {', '.join(map(str, t['attempts']))})")
    if rep.expect_title:
        for a in rep.other_crashes():
            lines.append(f"  warning: attempt {a.verdict.attempt} crashed with another title: "
                         f"{a.verdict.title}")
    if d["stopped_early"]:
        lines.append(f"  stopped early after {d['stop_after']} reproduction(s)")
    lines.append(f"  results in {d['out']} ({d['wall_s']:.0f}s)")
    return "\n".join(lines) + "\n"
