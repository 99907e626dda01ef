"""Stage `workload`: run one Case in a booted guest → RawOutcome (+ files for the case dir).

Filesystem setup on /dev/pmem0 (page cache, or an fsdax namespace mounted -o dax), tmpfs as the
control, writeback pressure around the run, then the guest program; its one JSON line is the
outcome. Kernel reports are judged elsewhere (oops), from the console slice between markers.
"""
from __future__ import annotations

import json
import shlex
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable, Optional

from pinrig.cases import corruption, crashclass, integrity, kmod, selftests, siwmod, workloads
from pinrig.cases.verdict import RawOutcome
from pinrig.cases.workloads import MNT
from pinrig.config import Case, Pressure
from pinrig.errors import InfraError
from pinrig.guest.session import GUEST_BIN, Session
from pinrig.guest.transport import CommandTimeout, Guest


def case_seed(run_seed: int, case_id: str) -> int:
    """Stable per-case seed: the run's seed mixed with the case id (replays byte for byte)."""
    return (run_seed * 1000003 + zlib.crc32(case_id.encode())) & 0x7FFFFFFF


def marker(kind: str, case_id: str) -> str:
    return f"echo 'pinrig: case-{kind} {case_id}' > /dev/kmsg"


@dataclass
class CaseRun:
    """What one case produced: the outcome and the text files kept with it."""
    raw: RawOutcome
    guest_log: list = field(default_factory=list)
    checksums: Optional[dict] = None
    integrity: object = None
    sessions: list = field(default_factory=list)   # boots of a crash case (consoles to judge)
    files: dict = field(default_factory=dict)      # more evidence files: name → text

    def log_text(self, text: str) -> None:
        self.guest_log.append(text)

    def log(self, title: str, res) -> None:
        self.guest_log.append(f"$ {title}\n[exit {res.rc}, {res.wall_s:.2f}s]\n{res.stdout}"
                              f"{res.stderr and '--- stderr ---' + chr(10) + res.stderr or ''}")


INTEGRITY_DEV = "/dev/mapper/pinrig-int"
# dm-integrity in direct mode (no journal): the tag of each 4 KiB sector is computed from the page
# under I/O while the data goes to the device, so a page that changes under writeback shows as a
# tag mismatch. (In journal mode the data is copied into the journal first; not measured here.)
# Direct mode does not keep data and tags consistent across a power cut: blocks being written
# when the power went fail their tags afterwards whoever wrote them (the `cpu` control shows it),
# so on this filesystem only the overlap decides (pinrig.cases.corruption.judge_stable).
# It sits on a 128 MiB linear slice of /dev/pmem0: `integritysetup format` writes every tag, and
# all of the 1 GiB device takes ~100 s under TCG. No udev in the guest: `dmsetup mknodes`.
INTEGRITY_OPTS = "--integrity-no-journal"
INTEGRITY_SLICE = "/dev/mapper/pinrig-slice"
INTEGRITY_SLICE_SECTORS = 262144
INTEGRITY_OPEN = (f'dmsetup create pinrig-slice --table "0 {INTEGRITY_SLICE_SECTORS} linear '
                  f'/dev/pmem0 0" && dmsetup mknodes pinrig-slice && '
                  f"integritysetup open {INTEGRITY_OPTS} {INTEGRITY_SLICE} pinrig-int")
INTEGRITY_FORMAT = (f"integritysetup format -q --batch-mode --sector-size 4096 {INTEGRITY_OPTS} "
                    f"{INTEGRITY_SLICE}")
UNMOUNT = (f"umount {MNT} 2>/dev/null; integritysetup close pinrig-int 2>/dev/null; "
           "dmsetup remove pinrig-slice 2>/dev/null; true")
CRASH_CONSISTENT = {"ext4-integrity": False}   # fs → False where a power cut alone breaks tags


def fs_setup_commands(fs: str, dax_state: str) -> list:
    """Shell lines that put a fresh filesystem of kind fs on MNT. dax_state: 'raw'/'fsdax'."""
    cmds = [UNMOUNT if fs == "ext4-integrity" else f"umount {MNT} 2>/dev/null; true"]
    if fs.endswith("-dax") and dax_state != "fsdax":
        cmds.append("ndctl create-namespace -f -e namespace0.0 --mode=fsdax >/dev/null")
    if fs != "tmpfs" and not fs.endswith("-dax") and dax_state == "fsdax":
        cmds.append("ndctl create-namespace -f -e namespace0.0 --mode=raw >/dev/null")
    base = fs.replace("-dax", "")
    if base == "ext4":
        cmds.append("mkfs.ext4 -q -F /dev/pmem0")
    elif base == "xfs":
        cmds.append("mkfs.xfs -q -f -m reflink=0 /dev/pmem0" if fs.endswith("-dax")
                    else "mkfs.xfs -q -f /dev/pmem0")
    elif fs == "btrfs":
        cmds.append("mkfs.btrfs -q -f /dev/pmem0")
    elif fs == "ext4-integrity":
        cmds.append(f'dmsetup create pinrig-slice --table "0 {INTEGRITY_SLICE_SECTORS} linear '
                    '/dev/pmem0 0" && dmsetup mknodes pinrig-slice')
        cmds.append(INTEGRITY_FORMAT)
        cmds.append(f"integritysetup open {INTEGRITY_OPTS} {INTEGRITY_SLICE} pinrig-int")
        cmds.append(f"mkfs.ext4 -q -F {INTEGRITY_DEV}")
    if fs == "tmpfs":
        cmds.append(f"mount -t tmpfs -o size=768m tmpfs {MNT}")
    elif fs.endswith("-dax"):
        cmds.append(f"mount -t {base} -o dax /dev/pmem0 {MNT}")
        cmds.append(f"grep -q ' {MNT} .*dax' /proc/mounts")
    elif fs == "ext4-integrity":
        cmds.append(f"mount -t ext4 {INTEGRITY_DEV} {MNT}")
    else:
        cmds.append(f"mount -t {base} /dev/pmem0 {MNT}")
    return cmds


CGROUP = "/sys/fs/cgroup/pinrig"


def chained(lines: list) -> str:
    """Shell lines as one command: each runs only when the one before succeeded, and the exit
    code is the first failure's. Each command line costs an SSH round trip and a shell (about
    0.2 s under TCG); a case's setup, pressure and teardown lines go as one each."""
    return " && ".join(f"{{ {line}; }}" for line in lines)


def in_turn(lines: list) -> str:
    """Shell lines as one command, each run whatever the one before did (teardown)."""
    return "; ".join(f"{{ {line}; }}" for line in lines)


def pressure_commands(p: Pressure) -> tuple:
    """(start lines, stop lines) for the writeback pressure of a suite. The stop lines also
    restore the kernel's defaults, so a shared guest's next case starts clean."""
    start, stop = [], []
    for knob in ("dirty_ratio", "dirty_background_ratio", "dirty_expire_centisecs",
                 "dirty_writeback_centisecs"):
        val = getattr(p, knob)
        if val is not None:
            start.append(f"cat /proc/sys/vm/{knob} > /run/pinrig-{knob}.orig; "
                         f"sysctl -q -w vm.{knob}={val}")
            stop.append(f"cat /run/pinrig-{knob}.orig > /proc/sys/vm/{knob} 2>/dev/null; true")
    if p.sync_storm:
        start.append("(while :; do sync; sleep 0.2; done) >/dev/null 2>&1 & "
                     "echo $! > /run/pinrig-storm.pid")
        stop.append("kill $(cat /run/pinrig-storm.pid) 2>/dev/null; rm -f /run/pinrig-storm.pid; true")
    if p.drop_caches:
        start.append("(while :; do echo 1 > /proc/sys/vm/drop_caches; sleep 0.5; done) "
                     ">/dev/null 2>&1 & echo $! > /run/pinrig-drop.pid")
        stop.append("kill $(cat /run/pinrig-drop.pid) 2>/dev/null; rm -f /run/pinrig-drop.pid; true")
    if p.memcg_limit_mb:
        start.append(f"echo +memory > /sys/fs/cgroup/cgroup.subtree_control && mkdir -p {CGROUP} && "
                     f"echo {p.memcg_limit_mb}M > {CGROUP}/memory.max")
        stop.append(f"rmdir {CGROUP} 2>/dev/null; true")
    return start, stop


def in_memcg(argv: list, p: Pressure) -> list:
    """Run argv inside the pressure cgroup (memory.max forces reclaim of its file pages)."""
    if not p.memcg_limit_mb:
        return argv
    return ["sh", "-c", f'echo $$ > {CGROUP}/cgroup.procs && exec "$@"', "pinrig-memcg", *argv]


def workload_argv(case: Case, seed: int, hold: bool = False) -> list:
    """The guest command line of a case's program."""
    try:
        w = workloads.get(case.workload)
    except KeyError as e:
        raise InfraError(str(e.args[0]))
    return w.argv(GUEST_BIN, case, seed, hold)


def data_file(case: Case) -> str:
    """The file whose blocks are verified after the case (integrity workloads)."""
    f = workloads.get(case.workload).data_file
    if f is None:
        raise InfraError(f"workload {case.workload} verifies no data file")
    return f


def mount_existing_commands(fs: str) -> list:
    """Mount the filesystem a previous boot left on /dev/pmem0 (journal recovery happens here)."""
    if fs == "tmpfs":
        raise InfraError("tmpfs does not survive a crash: no integrity check possible")
    if fs == "ext4-integrity":
        return [UNMOUNT, INTEGRITY_OPEN, f"mount -t ext4 {INTEGRITY_DEV} {MNT}"]
    base = fs.replace("-dax", "")
    opts = " -o dax" if fs.endswith("-dax") else ""
    return [f"umount {MNT} 2>/dev/null; true", f"mount -t {base}{opts} /dev/pmem0 {MNT}"]


def parse_result(stdout: str) -> Optional[dict]:
    """The last line of stdout that is a JSON object (guest output is untrusted: be lenient)."""
    for line in reversed(stdout.splitlines()[-200:]):
        line = line.strip()
        if line.startswith("{") and line.endswith("}") and len(line) < (4 << 20):
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if isinstance(d, dict):
                return d
    return None


def _guest(sess: Session) -> Guest:
    """The SSH session of the booted guest the case runs in."""
    if sess.guest is None:
        raise InfraError("no guest connection: the session is not booted (or was closed)")
    return sess.guest


NO_RDMA, NO_PMEM = "no RDMA device in the guest", "no /dev/pmem0 in the guest"


def missing_device(case: Case, info: dict) -> Optional[str]:
    """The device the case needs that the guest came up without (its ready line), or None."""
    if workloads.get(case.workload).needs_rdma and info.get("rdma", "none") == "none":
        return NO_RDMA
    if case.fs != "tmpfs" and "pmem0" not in info.get("pmem", ""):
        return NO_PMEM
    return None


def device_setup_failed(case: Case, sess: Session) -> Optional[str]:
    """A device the case needs is missing although the kernel has what makes it: its .config
    was read, so the run's config check (pinrig.cases.needs) would have skipped the case had
    the kernel lacked it. Then the guest's device setup failed, and that is an infrastructure
    error, never a skip (seen: rdma_rxe could not load its crc32 while the guest switched its
    root, and a whole pin matrix came out `skipped`). A siw case's RDMA device comes later."""
    dev = missing_device(case, sess.info)
    env = getattr(sess, "env", None)
    config = env.art.config if env is not None else None
    if dev is None or config is None or not config.is_file() \
            or (dev == NO_RDMA and case.provider == "siw"):
        return None
    return (f"{dev}, although the kernel's config has what it needs: the guest's device setup "
            "failed (the boot console says why)")


def needs(case: Case, sess: Session) -> Optional[str]:
    """Why the case cannot run on this kernel/guest, or None."""
    dev = missing_device(case, sess.info)
    if dev == NO_RDMA:
        return f"{NO_RDMA} (kernel without rdma_rxe?)"
    if case.provider == "siw" and sess.env.siw_note:
        return sess.env.siw_note
    prog = workloads.kselftest(case)
    if prog is not None and prog not in (sess.env.kselftests or {}):
        return f"no {prog} selftest for this kernel: {sess.env.kselftest_note or 'not built'}"
    if dev == NO_PMEM:
        return f"{NO_PMEM} (kernel without nfit/nd_pmem?)"
    return None


def _setup(sess: Session, case: Case, run: CaseRun) -> bool:
    """Start marker, requirements, a fresh filesystem. False (with the outcome set) on failure."""
    g = _guest(sess)
    g.run(marker("start", case.id), timeout=15)
    failed = device_setup_failed(case, sess)
    if failed:
        run.raw.infra_error = failed
        return False
    reason = needs(case, sess)
    if reason:
        run.raw.skip_reason = reason
        return False
    if workloads.needs_module(case):
        _load_test_module(sess, run)
    if case.provider == "siw" and not _ensure_siw(sess, run):
        return False
    run.raw.phase = "setup"
    cmd = chained(fs_setup_commands(case.fs, sess.info.get("dax_state", "raw")))
    res = g.run(cmd, timeout=120)
    run.log(cmd, res)
    if res.rc != 0:
        err = res.stderr.strip()[-200:]
        if case.fs.endswith("-dax"):
            run.raw.skip_reason = f"fsdax unavailable: '{cmd}' failed: {err}"
        else:
            run.raw.infra_error = f"filesystem setup failed: '{cmd}' exit {res.rc}: {err}"
        return False
    if case.fs.endswith("-dax"):
        sess.info["dax_state"] = "fsdax"
    elif case.fs != "tmpfs":
        sess.info["dax_state"] = "raw"
    run.raw.phase = "case"
    return True


def _take_result(run: CaseRun, case: Case, stdout: str, rc: Optional[int]) -> bool:
    """Record the program's JSON. False when there is none or the program failed."""
    result = parse_result(stdout)
    run.raw.exit_code = rc
    if result is None:
        run.raw.infra_error = f"{case.workload} printed no JSON result (exit {rc})"
        return False
    run.raw.result = result
    run.raw.pin = result.get("pin")
    run.raw.errno = result.get("errno")
    skip = result.get("skip")
    if isinstance(skip, str) and skip and rc == 0 and not result.get("error"):
        run.raw.skip_reason = f"{case.workload}: {skip[:300]}"   # the guest lacks what it needs
    _crash_evidence(run)
    if (rc not in (0, None)) or result.get("error"):
        run.raw.infra_error = f"{case.workload} failed (exit {rc}): {result.get('error') or ''}"
        return False
    return True


def _crash_evidence(run: CaseRun) -> None:
    """crash-class: the trigger and the pinned pages' flags → the reason's note and
    pageflags.txt; a granted pin whose trigger did not happen says nothing (error)."""
    ev = crashclass.parse(run.raw.result)
    if ev is None:
        return
    run.files["pageflags.txt"] = crashclass.evidence_text(ev)
    if run.raw.pin != "granted":
        return
    run.raw.note = crashclass.summary(ev)
    problem = crashclass.trigger_problem(ev)
    if problem and not run.raw.skip_reason and not run.raw.result.get("error"):
        run.raw.infra_error = problem


def _verify(sess: Session, case: Case, run: CaseRun, remount: bool) -> None:
    """Read the data file back from the medium and compare per-block checksums."""
    g = _guest(sess)
    run.raw.phase = "verify"
    verifier = workloads.get(case.workload).verifier
    expected = run.raw.result.get("expected")
    if not expected and verifier != "stable":
        return
    cmds = ["sync", "echo 3 > /proc/sys/vm/drop_caches"]
    if remount and case.fs != "tmpfs":
        cmds += mount_existing_commands(case.fs)
    cmd = chained(cmds)
    res = g.run(cmd, timeout=120)
    run.log(cmd, res)
    if res.rc != 0:
        run.raw.infra_error = f"verification setup failed: '{cmd}': {res.stderr.strip()[-200:]}"
        return
    if verifier == "stable":
        _verify_stable(g, case, run)
        return
    if verifier == "clones":
        _verify_clones(g, case, run)
        return
    if not expected:
        return
    argv = [f"{GUEST_BIN}/blocksum", "--file", data_file(case), "--size", str(case.size)]
    res = g.run(argv, timeout=120)
    run.log(shlex.join(argv), res)
    got = parse_result(res.stdout)
    if res.rc != 0 or not got or "blocks" not in got:
        if "No such file" in res.stderr or (got and "ENOENT" in str(got.get("errno"))):
            got = {"blocks": []}          # the file itself is gone: every block is lost
        else:
            run.raw.infra_error = f"blocksum failed (exit {res.rc}): {res.stderr.strip()[-200:]}"
            return
    run.integrity = integrity.verify(expected, got["blocks"])
    run.checksums = {"file": data_file(case), "seed": run.raw.result.get("seed"),
                     "block_size": integrity.BLOCK, "expected": expected,
                     "actual": got["blocks"], "result": run.integrity.to_dict()}


def _seed_of(run: CaseRun) -> Optional[int]:
    seed = run.raw.result.get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 else None


def kernel_csum_messages(g) -> tuple:
    """(checksum failures, writeback refusals, first lines of both) in the guest's kernel log."""
    res = g.run("dmesg", timeout=30)
    n, lines = corruption.csum_log_lines(res.stdout)
    w, wlines = corruption.writeback_log_lines(res.stdout)
    return n, w, lines + wlines


def _verify_stable(g, case: Case, run: CaseRun) -> None:
    """stable-pages/odirect-race: classify every block of the file as it is on the medium now."""
    seed = _seed_of(run)
    if seed is None:
        run.raw.infra_error = "the workload reported no seed: cannot classify its blocks"
        return
    argv = workloads.stable_check_argv(GUEST_BIN, case, seed)
    res = g.run(argv, timeout=120)
    run.log(shlex.join(argv), res)
    got = parse_result(res.stdout)
    if res.rc != 0 or not got or not isinstance(got.get("now"), dict):
        run.raw.infra_error = f"stable-pages --check failed (exit {res.rc}): {res.stderr.strip()[-200:]}"
        return
    n_after, w_after, lines_after = kernel_csum_messages(g)
    n_over = run.raw.result.get("pinrig_kernel_csum_messages")
    n_over = n_over if isinstance(n_over, int) else 0
    w_over = run.raw.result.get("pinrig_kernel_writeback_refusals")
    w_over = w_over if isinstance(w_over, int) else 0
    corrupt, ev = corruption.judge_stable(run.raw.result, got, n_over, n_after,
                                          CRASH_CONSISTENT.get(case.fs, True), w_over, w_after)
    if corrupt is None:
        run.raw.note = ev["summary"]
    ev["kernel_csum_lines_after_crash"] = lines_after
    run.raw.corruption = corrupt
    run.checksums = {"file": data_file(case), "seed": seed, "block_size": integrity.BLOCK,
                     "stable_pages": ev}


def _guest_path(value: object, default: str) -> str:
    """A path the (untrusted) workload reported, if it is one of ours under MNT."""
    if isinstance(value, str) and value.startswith(MNT + "/") and ".." not in value \
            and len(value) < 256 and all(c.isalnum() or c in "/._-" for c in value):
        return value
    return default


def _verify_clones(g, case: Case, run: CaseRun) -> None:
    """reflink-pin: blocksum the original and its clone; B expected in one, A in the other."""
    seed = _seed_of(run)
    if seed is None:
        run.raw.infra_error = "the workload reported no seed: cannot judge its files"
        return
    files = {"original": _guest_path(run.raw.result.get("original"), data_file(case)),
             "clone": _guest_path(run.raw.result.get("clone"), f"{MNT}/cow-clone.dat")}
    sums = {}
    for role, path in files.items():
        argv = [f"{GUEST_BIN}/blocksum", "--file", path, "--size", str(case.size)]
        res = g.run(argv, timeout=120)
        run.log(shlex.join(argv), res)
        got = parse_result(res.stdout)
        if res.rc == 0 and got and isinstance(got.get("blocks"), list):
            sums[role] = [str(x) for x in got["blocks"]]
        elif "No such file" in res.stderr or (got and "ENOENT" in str(got.get("errno"))):
            sums[role] = []
        else:
            run.raw.infra_error = f"blocksum {path} failed (exit {res.rc}): {res.stderr.strip()[-200:]}"
            return
    orig, corrupt, ev = corruption.judge_clones(seed, case.size, sums["original"], sums["clone"])
    run.integrity = orig
    run.raw.corruption = corrupt
    run.raw.note = ev["summary"]
    run.checksums = {"files": files, "seed": seed, "block_size": integrity.BLOCK,
                     "actual": sums, "result": orig.to_dict(), "clones": ev}


def _load_test_module(sess: Session, run: CaseRun) -> None:
    """Upload and load the rig's test module (once per guest); InfraError when it cannot."""
    ko = sess.env.test_module
    if ko is None:
        raise InfraError("the case needs the rig's test module, which was not built")
    g = sess.connected_guest()
    if g.run("test -e /proc/pinrig_oops", timeout=15).rc == 0:
        return
    g.put(ko, kmod.GUEST_KO)
    res = g.run(f"insmod {kmod.GUEST_KO}", timeout=60)
    run.log(f"insmod {kmod.GUEST_KO}", res)
    if res.rc != 0:
        raise InfraError(f"insmod {ko.name} failed: {res.stderr.strip()[-200:]}")


def _run_selftest(sess: Session, case: Case, run: CaseRun) -> None:
    """A kernel selftest program in the case's filesystem; its subtests decide the outcome."""
    g = _guest(sess)
    prog = workloads.kselftest(case) or ""
    binary = (sess.env.kselftests or {})[prog]
    dest = f"{selftests.GUEST_DIR}/{prog}"
    if g.run(f"test -x {dest}", timeout=15).rc != 0:
        g.run(["mkdir", "-p", selftests.GUEST_DIR], timeout=15, check=True)
        g.put(binary, dest, mode=0o755)
    subs, notes, huge = selftests.run_in_guest(g, prog, case.variant, case.fs, MNT,
                                               sess.env.kselftest_longterm, case.timeout, run.log)
    run.raw.result = selftests.result_dict(subs, notes, huge, sess.env.kselftest_note)
    run.raw.exit_code = 0
    failure, skip, summary = selftests.judge(subs, notes)
    run.raw.summary = summary + (f"; {'; '.join(notes)}" if notes else "")
    run.raw.failure = failure
    if skip and not failure:
        run.raw.skip_reason = skip


def _ensure_siw(sess: Session, run: CaseRun) -> bool:
    """A siw0 device on the guest's NIC (the kernel's siw, else the rig-built siw.ko). False
    with the outcome set (skipped: the kernel would not take the module) when there is none."""
    g = sess.connected_guest()
    nic = sess.info.get("nic", "none")
    if nic == "none":
        run.raw.skip_reason = "no NIC in the guest for siw to attach to"
        return False
    ko = sess.env.siw_module
    if ko is not None and g.run(f"test -e {siwmod.GUEST_KO}", timeout=15).rc != 0:
        g.put(ko, siwmod.GUEST_KO)
    cmd = siwmod.guest_setup_command(nic, ko)
    res = g.run(cmd, timeout=120)
    run.log(cmd, res)
    if res.rc != 0:
        run.raw.skip_reason = f"siw could not be set up: {res.stderr.strip()[-200:]}"
        return False
    return True


def _end_marker(sess: Optional[Session], case: Case) -> None:
    """Close the case's console slice, when the guest can still be asked to."""
    if sess and sess.alive() and sess.guest and sess.guest.client:
        try:
            sess.guest.run(marker("end", case.id), timeout=15)
        except InfraError:
            pass


PIN_COUNTERS = ("echo 1 > /proc/sys/vm/stat_refresh 2>/dev/null; "
                "grep -E '^nr_foll_pin_(acquired|released) ' /proc/vmstat")


def pin_counters(g, first: str = "") -> Optional[dict]:
    """{"acquired": n, "released": m} from /proc/vmstat (per-cpu counts folded first), or None
    when the kernel has no FOLL_PIN accounting (before 5.7). first: a line to run before, in
    the same command (its output must not look like a counter)."""
    res = g.run(in_turn([first, PIN_COUNTERS]) if first else PIN_COUNTERS, timeout=60)
    out = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0].removeprefix("nr_foll_pin_")] = int(parts[1])
    return out if set(out) == {"acquired", "released"} else None


def _apply_pressure(g, run: CaseRun, start: list) -> bool:
    """Set the suite's writeback pressure. A knob the kernel refuses makes the case `error`:
    a verdict under pressure that was never applied would be a verdict about something else."""
    if not start:
        return True
    cmd = chained(start)
    res = g.run(cmd, timeout=30)
    run.log(cmd, res)
    if res.rc != 0:
        run.raw.infra_error = (f"pressure could not be applied: '{cmd}' exit {res.rc}: "
                               f"{res.stderr.strip()[-200:]}")
        return False
    return True


def run_case(sess: Session, case: Case, seed: int, pressure: Pressure) -> CaseRun:
    """One case in a shared guest. Never raises for guest trouble: it becomes the outcome."""
    t0 = time.monotonic()
    run = CaseRun(RawOutcome(case.id))
    g = _guest(sess)
    try:
        if not _setup(sess, case, run):
            return run
        start, stop = pressure_commands(pressure)
        before = pin_counters(g)
        try:
            if not _apply_pressure(g, run, start):
                return run
            if workloads.kselftest(case) is not None:
                _run_selftest(sess, case, run)
                res = None
            else:
                argv = in_memcg(workload_argv(case, seed), pressure)
                res = g.run(argv, timeout=case.timeout)
        finally:
            if sess.alive() and stop:
                try:
                    g.run(in_turn(stop), timeout=30)
                except InfraError:
                    pass
        if res is not None:
            run.log(shlex.join(argv), res)
            if _take_result(run, case, res.stdout, res.rc) and \
                    workloads.get(case.workload).verifies:
                _verify(sess, case, run, remount=True)
        # the workload exited and its files are unmounted
        after = pin_counters(g, first=f"umount {MNT} 2>/dev/null; true")
        if before is not None and after is not None:
            run.raw.pins = {k: after[k] - before[k] for k in ("acquired", "released")}
    except CommandTimeout as e:
        run.raw.infra_error = f"timeout: {e}"
        run.raw.timed_out = True
    except InfraError as e:
        run.raw.infra_error = str(e)
        run.raw.guest_died = not sess.alive()
    finally:
        _end_marker(sess, case)
        run.raw.wall_s = time.monotonic() - t0
    return run


HOLD_OUT, HOLD_ERR = "/run/pinrig-case.out", "/run/pinrig-case.err"


def run_crash_case(boot: Callable[[str], Session], case: Case, seed: int,
                   pressure: Pressure) -> CaseRun:
    """Pin, write through the pin, fsync, then power-cut the guest (QEMU killed by pid) while the
    pin is held; boot again on the same pmem file, mount (journal recovery), verify every block.

    `boot(tag)` returns a booted Session on the case's pmem file (or raises InfraError).
    """
    t0 = time.monotonic()
    run = CaseRun(RawOutcome(case.id))
    sess = None
    try:
        if case.fs == "tmpfs":
            run.raw.skip_reason = "tmpfs does not survive a guest crash"
            return run
        sess = boot("pin")
        run.sessions.append(sess)
        if not _setup(sess, case, run):
            return run
        g = _guest(sess)
        start, _stop = pressure_commands(pressure)
        if not _apply_pressure(g, run, start):
            return run           # the guest is powered off anyway: nothing to restore
        argv = in_memcg(workload_argv(case, seed, hold=True), pressure)
        line = f"cd / && nohup {shlex.join(argv)} > {HOLD_OUT} 2> {HOLD_ERR} < /dev/null & echo $!"
        pid = g.run(line, timeout=15, check=True).stdout.strip()
        out = _wait_hold(g, pid, case.timeout)
        errs = g.run(f"cat {HOLD_ERR}", timeout=15).stdout
        run.guest_log.append(f"$ {shlex.join(argv)}\n{out}--- stderr ---\n{errs}")
        running = g.run(f"kill -0 {pid}", timeout=15).rc == 0
        if not _take_result(run, case, out, None if running else 0):
            return run
        if run.raw.pin not in ("granted", "n/a"):
            return run           # refused: nothing was pinned, nothing to lose
        # (n/a: no long-term pin to refuse, e.g. O_DIRECT's short-term pins: crash it as well)
        if workloads.get(case.workload).verifier == "stable":
            n, w, lines = kernel_csum_messages(g)
            run.raw.result["pinrig_kernel_csum_messages"] = n
            run.raw.result["pinrig_kernel_writeback_refusals"] = w
            run.log_text(f"host: {n} checksum-failure and {w} writeback-refusal line(s) in the "
                         "kernel log during the overlap\n" + "\n".join(lines))
        # Power cut with the pin still held: no unpin, no sync, no unmount.
        g.run(marker("end", case.id), timeout=15)
        time.sleep(0.5)          # let the marker reach the console
        g.close()
        sess.guest = None
        if sess.machine is None:
            raise InfraError("no QEMU to power-cut: the session is not booted")
        sess.machine.kill()
        run.log_text("host: QEMU killed by pid with the MR still registered (power cut)")
        sess = boot("verify")
        run.sessions.append(sess)
        _guest(sess).run(marker("start", case.id), timeout=15)
        _verify(sess, case, run, remount=True)
    except CommandTimeout as e:
        run.raw.infra_error = f"timeout: {e}"
        run.raw.timed_out = True
    except InfraError as e:
        run.raw.infra_error = str(e)
        run.raw.guest_died = sess is not None and not sess.alive()
    finally:
        _end_marker(sess, case)
        run.raw.wall_s = time.monotonic() - t0
    return run


def _wait_hold(g, pid: str, timeout: float) -> str:
    """Poll the program's stdout until its JSON line is there or it exits. Raises on timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        out = g.run(f"cat {HOLD_OUT}; kill -0 {pid} 2>/dev/null || echo PINRIG-EXITED",
                    timeout=15).stdout
        if parse_result(out) or "PINRIG-EXITED" in out:
            return out.replace("PINRIG-EXITED\n", "")
        time.sleep(0.5)
    raise CommandTimeout(f"workload gave no result within {timeout}s")
