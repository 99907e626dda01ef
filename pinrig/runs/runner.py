"""`rig run`: a suite of cases on one kernel → results/<run-id>/ with verdicts and JUnit.

Cases that can share a guest share one boot; a case that kills or hangs its guest ends that boot
(QEMU killed by pid) and the next case gets a fresh one. Each case is on disk when it finishes.
"""
from __future__ import annotations

import json
import os
import shlex
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pinrig import __version__, interrupt, oops, paths
from pinrig.cases import kmod, kselftest, needs, selftests, siwmod
from pinrig.cases.execute import case_seed, run_case, run_crash_case
from pinrig.cases.verdict import RawOutcome, Verdict, decide
from pinrig.cases.workloads import kselftest as kselftest_of
from pinrig.cases.workloads import needs_module, needs_own_guest
from pinrig.config import Case, Suite, load_kernel_spec, load_suite
from pinrig.errors import InfraError, UserError
from pinrig.guest import vm
from pinrig.guest.session import Environment, Session, prepare_env
from pinrig.kernels.debug import symbolizer_for
from pinrig.outcome import MEDIUM_EVIDENCE, Outcome
from pinrig.results.rundir import (
    RunDir,
    atomic_write,
    host_info,
    junit_xml,
    make_run_id,
    read_manifest,
    summary_text,
)


@dataclass
class RunOutcome:
    run: RunDir
    verdicts: list

    @property
    def exit_code(self) -> int:
        if any(v.failed for v in self.verdicts):
            return 1
        if any(v.verdict == Outcome.ERROR for v in self.verdicts):
            return 2
        return 0


def _manifest(env: Environment, suite: Suite, seed: int, kernel_arg: str, out: Path) -> dict:
    return {
        "rig_version": __version__,
        "run_id": out.name,
        "kernel": {"name": env.spec.name, "spec": str(env.spec.path), "suite": env.spec.suite,
                   "release": env.art.release, "packages": list(env.art.packages),
                   "hash": env.art.hash,
                   "spec_fields": {k: v for k, v in env.spec.__dict__.items() if k != "path"},
                   **({"series": s} if (s := series_applied(getattr(env.art, "dir", None)))
                      else {})},
        "guest": {"name": env.image.name, "hash": env.image.hash},
        "suite": {"name": suite.name, "path": str(suite.path),
                  "cases": [c.__dict__ | {"id": c.id} for c in suite.cases],
                  "pressure": suite.pressure.__dict__,
                  "kernel_append": list(suite.kernel_append)},
        "seed": seed,
        "accel": env.accel,
        "boot": {"mode": env.boot_mode, "note": env.boot_note,
                 "saved_state": env.saved.key if env.saved else None, "fallbacks": []},
        "qemu_version": env.qemu_version,
        "guest_memory_mb": 2048,
        "host": host_info(),
        "start": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "end": None,
        "reproducer": shlex.join(["rig", "run", *kernel_argv(env.spec, kernel_arg),
                                  "--suite", suite.name, "--seed", str(seed)]),
        "repeat": 1,
    }


def series_applied(art_dir: Optional[Path]) -> Optional[dict]:
    """How a source kernel's series went in (artifact.json's inputs.series_apply), if any."""
    if art_dir is None:
        return None
    try:
        d = json.loads((Path(art_dir) / "artifact.json").read_text())
        rec = d.get("inputs", {}).get("series_apply")
    except (OSError, ValueError, AttributeError):
        return None
    return rec if isinstance(rec, dict) and rec.get("method") else None


def kernel_argv(spec, kernel_arg: str) -> list:
    """How a command line names this kernel again: the spec, or --kernel PATH [--modules DIR]
    for a kernel the user built (the manifest also records its content hash)."""
    if spec.kind == "image" and spec.image:
        return ["--kernel", spec.image] + (["--modules", spec.modules] if spec.modules else [])
    return [kernel_arg]


def group_sessions(cases: list, jobs: int = 1) -> list:
    """Cases sharing a boot, in order. Crash-and-verify cases need a guest of their own; the rest
    share one (or `jobs` guests, contiguous slices), ordered page-cache filesystems first, then
    fsdax, so the namespace flips at most once per guest."""
    order = {"tmpfs": 0, "ext4": 1, "xfs": 2, "ext4-dax": 3, "xfs-dax": 4}
    shared = sorted([c for c in cases if not needs_own_guest(c)], key=lambda c: order[c.fs])
    own = [[c] for c in cases if needs_own_guest(c)]
    n = max(1, min(jobs, len(shared)))
    size = -(-len(shared) // n) if shared else 0
    slices = [shared[i:i + size] for i in range(0, len(shared), size)] if shared else []
    return slices + own


def default_jobs() -> int:
    """Guests to run at once: one per two host cores, bounded by memory (~3 GiB per guest)."""
    cores = os.cpu_count() or 1
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gb = 4
    return max(1, min(cores // 2, int(mem_gb // 3)))


def check_run_args(kernel_arg: str, suite: Suite, out: Optional[Path], resume: Optional[Path],
                   repeat: int, jobs: Optional[int]) -> Optional[dict]:
    """Refuse what cannot be right before any download, image build or boot. Returns the
    manifest of the run to resume (validated), or None."""
    if repeat < 1:
        raise UserError(f"--repeat {repeat}: must be at least 1")
    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs {jobs}: must be at least 1")
    if resume is not None:
        if out is not None and Path(out).resolve() != Path(resume).resolve():
            raise UserError("give --out DIR or --resume DIR, not both")
        manifest = read_manifest(resume, what="--resume")
        spec_name = load_kernel_spec(kernel_arg).name
        kernel, suite_m = manifest.get("kernel"), manifest.get("suite")
        was = (kernel.get("name") if isinstance(kernel, dict) else None,
               suite_m.get("name") if isinstance(suite_m, dict) else None)
        if was != (spec_name, suite.name):
            raise UserError(f"--resume {resume}: that run is {was[0]} --suite {was[1]}, "
                            f"not {spec_name} --suite {suite.name}")
        if not isinstance(manifest.get("seed"), int):
            raise UserError(f"--resume {resume}: manifest.json: seed: missing or not an integer")
        return manifest
    if out is not None and Path(out).exists():
        if not Path(out).is_dir():
            raise UserError(f"--out {out}: exists and is not a directory")
        if any(Path(out).iterdir()):
            what = "another run's results" if (Path(out) / "manifest.json").exists() else "files"
            raise UserError(f"--out {out}: not empty (holds {what}); use --resume {out} to "
                            "continue that run, or give an empty or new directory")
    return None


def siw_buildable(env: Environment, lacks: "needs.ConfigCheck", cases) -> None:
    """A Debian kernel without CONFIG_RDMA_SIW still runs siw cases: the rig builds siw.ko from
    its own source (pinrig.cases.siwmod), so that option is not lacking there."""
    if env.spec.kind != "debian":
        return
    for c in cases:
        if c.provider == "siw" and c.id in lacks.cases:
            rest = [m for m in lacks.cases[c.id] if m.need.symbol != "CONFIG_RDMA_SIW"]
            if rest:
                lacks.cases[c.id] = rest
            else:
                del lacks.cases[c.id]


def guest_mem(suite: Suite) -> dict:
    """Session keyword for a suite that asks for more guest RAM (mm-selftests: a 1 GiB page)."""
    return {"mem_mb": suite.guest_mem_mb} if suite.guest_mem_mb else {}


def prepare_extras(env: Environment, cases: list) -> None:
    """What some cases need beyond the guest: siw for siw cases on a kernel without it, the
    selftest binaries for kselftest cases. Failures become the reason those cases skip."""
    if any(c.provider == "siw" for c in cases) and siwmod.needs_module(env.art):
        if env.spec.kind != "debian":
            env.siw_note = f"{env.spec.name} was built without CONFIG_RDMA_SIW " \
                           "(add the siw config fragment)"
        else:
            try:
                env.siw_module = siwmod.build(env.spec, env.art)
            except InfraError as e:
                env.siw_note = f"no siw module for {env.art.release}: {e}"
    if any(kselftest_of(c) for c in cases):
        try:
            env.kselftests, env.kselftest_note, env.kselftest_longterm = \
                kselftest.build_for(env.spec, env.art, selftests.PROGRAMS)
        except (InfraError, UserError) as e:
            env.kselftests, env.kselftest_note = {}, str(e)


def run_suite(kernel_arg: str, suite_arg: str, out: Optional[Path] = None,
              seed: Optional[int] = None, resume: Optional[Path] = None,
              junit: Optional[Path] = None, echo=print,
              repeat: Optional[int] = None, jobs: Optional[int] = 1,
              hosts=None, guest_hash: Optional[str] = None, cold: bool = False,
              symbolize: bool = False, fuzz: Optional[int] = None,
              rev: Optional[int] = None) -> RunOutcome:
    """hosts: a host pool (name, path or hosts.Pool): tasks are sharded over its hosts
    (pinrig/remote.py), `jobs` then overrides each host's own figure; None runs here."""
    suite = load_suite(suite_arg)
    repeat = suite.repeat if repeat is None else repeat
    resumed = check_run_args(kernel_arg, suite, out, resume, repeat, jobs)   # before any work
    env = prepare_env(kernel_arg, image_hash=guest_hash, cold=cold, fuzz=fuzz, rev=rev)
    lacks = needs.check(env.art, suite.cases, suite.pressure)
    siw_buildable(env, lacks, suite.cases)
    skip = {cid: lacks.reason(cid) for cid in lacks.cases}
    if any(needs_module(c) and c.id not in skip for c in suite.cases):
        why = ""
        if env.spec.kind == "debian":
            env.test_module = kmod.test_module(env.spec, env.art)
        else:           # a source kernel's or a --kernel build directory
            try:
                env.test_module = kmod.test_module(env.spec, env.art)
            except (UserError, InfraError) as e:
                why = f"no test module: {e}"
        for c in suite.cases:
            if why and needs_module(c) and c.id not in skip:
                skip[c.id] = why
    prepare_extras(env, [c for c in suite.cases if c.id not in skip])
    env.symbolizer = symbolizer_for(env.art, env.test_module, symbolize, env.spec)
    if resume and resumed is not None:
        run = RunDir(resume, resumed)
        seed = run.manifest["seed"]
    else:
        seed = suite.seed if seed is None else seed
        out = out or paths.RESULTS_DIR / make_run_id(env.spec.name, suite.name)
        out.mkdir(parents=True, exist_ok=True)
        run = RunDir(out, _manifest(env, suite, seed, kernel_arg, out))
        run.manifest["repeat"] = repeat
        if repeat > 1:
            run.manifest["reproducer"] += f" --repeat {repeat}"
        for flag, val in (("--fuzz", fuzz), ("--rev", rev)):
            if val is not None:
                run.manifest["reproducer"] += f" {flag} {val}"
    run.write_manifest()
    done = run.finished_cases()
    repeat = int(run.manifest.get("repeat", repeat))
    run.manifest["repeat"] = repeat
    run.write_manifest()
    verdicts: dict = {key: Verdict.from_dict(d) for key, d in done.items()}
    n_todo = sum(1 for k in range(1, repeat + 1) for c in suite.cases if (c.id, k) not in done)
    echo(f"rig: {env.spec.name} ({env.art.release}) suite {suite.name}: {n_todo} case run(s), "
         f"accel {env.accel}, results in {run.path}")
    if lacks.config is None:
        echo(f"rig: {env.spec.name} came without a .config: what it lacks shows only as "
             "failed cases")
    for v in _skip_cases(run, suite, skip, done, seed, repeat):
        verdicts[v.key] = v
        done[v.key] = v.to_dict()
        _echo_case(echo, v)
    shard = None
    if hosts is not None:
        from pinrig.fleet.remote import Shard
        shard = Shard(hosts, env, run, echo, jobs, local_jobs=default_jobs())
        jobs = shard.total_slots
    jobs = jobs or 1
    tasks = []
    for attempt in range(1, repeat + 1):
        todo = [c for c in suite.cases if (c.id, attempt) not in done]
        tasks += [(attempt, g) for g in group_sessions(todo, jobs)]
    run.manifest["jobs"] = jobs

    def task(attempt: int, group: list, host=None, rundir=None) -> list:
        """host: a remote.RemoteSlot (QEMU on a pool host) or None; rundir: what the cases are
        written through (default: the run directory itself)."""
        interrupt.check("task")
        rd = run if rundir is None else rundir
        if len(group) == 1 and needs_own_guest(group[0]):
            v = _crash_case(env, rd, group[0], seed, suite, attempt, host=host)
            _echo_case(echo, v)
            return [v]
        return list(_run_group(env, rd, group, seed, suite, echo, attempt, host=host))

    if shard is not None:
        for v in shard.run_tasks(tasks, task, needs_own_guest):
            verdicts[v.key] = v
    elif jobs <= 1:
        for attempt, group in tasks:
            for v in task(attempt, group):
                verdicts[v.key] = v
    else:
        for v in _run_parallel(tasks, task, jobs):
            verdicts[v.key] = v
    ordered = [verdicts[(c.id, k)] for k in range(1, repeat + 1) for c in suite.cases
               if (c.id, k) in verdicts]
    run.manifest["end"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if isinstance(run.manifest.get("boot"), dict):
        run.manifest["boot"]["fallbacks"] = list(env.fallbacks)
    run.write_manifest()
    xml = junit_xml(run, ordered)
    atomic_write(run.path / "junit.xml", xml)
    if junit:
        atomic_write(junit, xml)
    atomic_write(run.path / "summary.txt", summary_text(run, ordered)
                 + (shard.summary() if shard is not None else ""))
    return RunOutcome(run, ordered)


def _skip_cases(run: RunDir, suite: Suite, skip: dict, done: dict, seed: int,
                repeat: int) -> list:
    """Cases this kernel cannot run (what it lacks, said per case): `skipped`, on disk now."""
    out = []
    for attempt in range(1, repeat + 1):
        for c in suite.cases:
            if c.id in skip and (c.id, attempt) not in done:
                v = decide(c, RawOutcome(c.id, skip_reason=skip[c.id], phase="setup"), [])
                v.seed, v.attempt = case_seed(seed, c.id), attempt
                run.write_case(v, {})
                out.append(v)
    return out


STOP_WAIT_S = 30      # after Ctrl-C: how long running guests get to unwind (QEMU is killed)


def _run_parallel(tasks: list, task, jobs: int) -> list:
    """Independent guests (own overlay, pmem file, ssh port) side by side. On Ctrl-C: the
    queue is dropped (no new boot), the running guests are killed and their cases are not
    written; the interrupt reaches the caller within STOP_WAIT_S."""
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="guest")
    futures = [pool.submit(task, a, g) for a, g in tasks]
    out: list = []
    try:
        for fut in futures:
            out += fut.result()
    except BaseException:
        interrupt.request_stop()
        pool.shutdown(wait=False, cancel_futures=True)
        vm.kill_all()
        # (a cancelled future never counts as done for wait(): leave those out)
        wait([f for f in futures if not f.cancelled()], timeout=STOP_WAIT_S)
        raise
    pool.shutdown(wait=True)
    return out


def _run_group(env: Environment, run: RunDir, group: list, seed: int, suite: Suite, echo,
               attempt: int = 1, host=None):
    """Run cases in as few boots as possible; yields a Verdict as each case lands on disk."""
    pending = list(group)
    boot_no = 0
    while pending:
        boot_no += 1
        workdir = run.path / "boots" / f"{pending[0].id.replace('/', '_')}-{boot_no}" \
            f"{'@' + str(attempt) if attempt > 1 else ''}"
        sess = Session(env, workdir, host=host, append=suite.kernel_append,
                       **guest_mem(suite))
        try:
            br = sess.boot()
            if br.status != "ready":
                # the boot itself failed: every pending case shares that fate
                console = sess.machine.console_text() if sess.machine else b""
                reports = _reports(env, console)
                for case in pending:
                    raw = RawOutcome(case.id, phase="boot",
                                     infra_error=None if reports else br.reason)
                    v = decide(case, raw, reports)
                    if not reports and v.verdict != Outcome.ERROR:
                        v.verdict, v.reason = Outcome.ERROR, br.reason
                    v.seed = case_seed(seed, case.id)
                    v.attempt = attempt
                    run.write_case(v, {"console.log": console})
                    _echo_case(echo, v)
                    yield v
                return
            sess.upload_bins()
            while pending:
                case = pending.pop(0)
                v = _one_case(sess, run, case, seed, suite, attempt)
                _echo_case(echo, v)
                yield v
                if not sess.alive() or v.verdict in (Outcome.CRASH, Outcome.ERROR):
                    break    # a fresh guest for whatever is left
        finally:
            sess.close()
            sess.discard_pmem()


def _one_case(sess: Session, run: RunDir, case: Case, seed: int, suite: Suite,
              attempt: int = 1) -> Verdict:
    cseed = case_seed(seed, case.id)
    cr = run_case(sess, case, cseed, suite.pressure)
    machine = sess.machine
    if machine is None:
        raise InfraError(f"case {case.id}: no QEMU behind the session (not booted)")
    if cr.raw.timed_out and sess.alive():
        machine.kill()        # a hung workload: end its guest by pid
    elif not sess.alive():
        machine.wait_exit(5)
        cr.raw.guest_died = True
    console = machine.console_text()
    slices = oops.split_by_case(console)
    cslice = slices.get(case.id, "")
    if cr.raw.guest_died and not cslice:
        cslice = console.decode(errors="replace")[-200000:]
    reports = _reports(sess.env, cslice)
    if cr.raw.guest_died and not reports and not cr.raw.infra_error:
        cr.raw.infra_error = "guest died during the case with no kernel report"
    dmesg = ""
    if sess.alive() and sess.guest:
        try:
            d = sess.guest.run("dmesg", timeout=30)
            dmesg = oops.split_by_case(d.stdout).get(case.id, "")
        except Exception:
            dmesg = ""
    if not dmesg:
        dmesg = cslice
    v = decide(case, cr.raw, reports, cr.integrity)
    v.seed = cseed
    v.attempt = attempt
    run.write_case(v, _case_files(cslice, dmesg, cr, reports))
    return v


def _crash_case(env: Environment, run: RunDir, case: Case, seed: int, suite: Suite,
                attempt: int = 1, host=None) -> Verdict:
    """A crash-and-verify case: its own guests on its own pmem file (kept with the case)."""
    cseed = case_seed(seed, case.id)
    base = run.path / "boots" / (case.id.replace("/", "_") + (f"@{attempt}" if attempt > 1 else ""))
    base.mkdir(parents=True, exist_ok=True)
    pmem = base / "pmem.img"
    pmem.unlink(missing_ok=True)     # an interrupted attempt's medium: this attempt starts fresh

    booted: list = []

    def boot(tag: str) -> Session:
        s = Session(env, base / tag, pmem=pmem, host=host, append=suite.kernel_append,
                    **guest_mem(suite))
        booted.append(s)
        # A verify boot on a -dax medium boots cold: the namespace was switched to fsdax on the
        # medium, and only a kernel that probes it at boot sees that (a restored kernel still
        # holds the raw namespace it saw when the state was saved). Journal recovery needs no
        # boot: ext4 and xfs replay their journals at mount, which the verify does either way.
        br = s.boot(restore=not (tag == "verify" and case.fs.endswith("-dax")))
        if br.status != "ready":
            s.close()
            raise InfraError(f"{tag} boot failed ({br.status}): {br.reason}")
        s.upload_bins()
        return s

    try:
        return _judge_crash_case(run, case, cseed, attempt,
                                 run_crash_case(boot, case, cseed, suite.pressure))
    except KeyboardInterrupt:
        # interrupted: not a result, so nothing of it is evidence (resume starts it afresh)
        for s in booted:
            s.close()
            s.discard_pmem()
        raise


def _judge_crash_case(run: RunDir, case: Case, cseed: int, attempt: int, cr) -> Verdict:
    consoles, slices = [], []
    for i, s in enumerate(cr.sessions):
        if s.alive() and cr.raw.timed_out:
            s.machine.kill()
        text = s.machine.console_text() if s.machine else b""
        consoles.append(text)
        part = oops.split_by_case(text).get(case.id, "")
        if s.machine and not s.alive() and i == len(cr.sessions) - 1 and not part:
            part = text.decode(errors="replace")[-200000:]
        slices.append(f"----- pinrig: boot {i + 1} ({s.workdir.name}) -----\n{part}")
    for s in cr.sessions:
        s.close()
    reports = [r for sl in slices for r in _reports(cr.sessions[0].env if cr.sessions else None,
                                                     sl)]
    v = decide(case, cr.raw, reports, cr.integrity)
    v.seed = cseed
    v.attempt = attempt
    cslice = "\n".join(slices)
    run.write_case(v, _case_files(cslice, cslice, cr, reports))
    if v.verdict not in MEDIUM_EVIDENCE and cr.sessions:
        cr.sessions[0].discard_pmem()      # keep the medium only where it is evidence
    return v


def _reports(env: Optional[Environment], console) -> list:
    """The kernel reports in a console slice, symbolized when the kernel's symbols are at hand."""
    reports, note = oops.reports_in(console, getattr(env, "symbolizer", None))
    if note and env is not None:
        env.boot_note += f"; {note}"
    return reports


def _case_files(console: str, dmesg: str, cr, reports: list) -> dict:
    """What is kept with a case: its console slice, dmesg, guest log, the workload's JSON, the
    checksums of a verified case and the parsed reports (None: not written)."""
    def js(obj) -> str:
        return json.dumps(obj, indent=2) + "\n"
    return {"console.log": console, "dmesg.log": dmesg, "guest.log": "\n".join(cr.guest_log),
            "result.json": js(cr.raw.result) if cr.raw.result else None,
            "checksums.json": js(cr.checksums) if cr.checksums else None,
            "reports.json": js([r.to_dict() for r in reports]) if reports else None,
            **{name: text for name, text in getattr(cr, "files", {}).items()
               if name not in _CASE_FILES}}


# the files every case may have (a workload's own evidence files never replace them)
_CASE_FILES = ("console.log", "dmesg.log", "guest.log", "result.json", "checksums.json",
               "reports.json", "verdict.json")


def _echo_case(echo, v: Verdict) -> None:
    extra = v.message() if v.verdict != Outcome.OK else v.reason
    label = v.case if v.attempt == 1 else f"{v.case} #{v.attempt}"
    echo(f"  {label:<36} {v.verdict:<10} {v.wall_s:6.1f}s  {extra}")
