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
from typing import Optional

from .config import Case, Pressure
from .errors import InfraError
from .session import GUEST_BIN, Session
from .transport import CommandTimeout
from .verdict import RawOutcome

MNT = "/mnt/test"


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

    def log(self, title: str, res) -> None:
        self.guest_log.append(f"$ {title}\n[exit {res.rc}, {res.wall_s:.2f}s]\n{res.stdout}"
                              f"{res.stderr and '--- stderr ---' + chr(10) + res.stderr or ''}")


def fs_setup_commands(fs: str, dax_state: str) -> list:
    """Shell lines that put a fresh filesystem of kind fs on MNT. dax_state: 'raw'/'fsdax'."""
    cmds = [f"umount {MNT} 2>/dev/null; true"]
    if fs.endswith("-dax") and dax_state != "fsdax":
        cmds.append("ndctl create-namespace -f -e namespace0.0 --mode=fsdax >/dev/null")
    if fs in ("ext4", "xfs") and dax_state == "fsdax":
        cmds.append("ndctl create-namespace -f -e namespace0.0 --mode=raw >/dev/null")
    base = fs.replace("-dax", "")
    if base == "ext4":
        cmds.append("mkfs.ext4 -q -F /dev/pmem0")
    elif base == "xfs":
        cmds.append("mkfs.xfs -q -f -m reflink=0 /dev/pmem0" if fs.endswith("-dax")
                    else "mkfs.xfs -q -f /dev/pmem0")
    if fs == "tmpfs":
        cmds.append(f"mount -t tmpfs -o size=768m tmpfs {MNT}")
    elif fs.endswith("-dax"):
        cmds.append(f"mount -t {base} -o dax /dev/pmem0 {MNT}")
        cmds.append(f"grep -q ' {MNT} .*dax' /proc/mounts")
    else:
        cmds.append(f"mount -t {base} /dev/pmem0 {MNT}")
    return cmds


def pressure_commands(p: Pressure) -> tuple:
    """(start lines, stop lines) for the writeback pressure of a suite."""
    start, stop = [], []
    for knob in ("dirty_ratio", "dirty_background_ratio", "dirty_expire_centisecs",
                 "dirty_writeback_centisecs"):
        val = getattr(p, knob)
        if val is not None:
            start.append(f"sysctl -q -w vm.{knob}={val}")
    if p.sync_storm:
        start.append("(while :; do sync; sleep 0.2; done) >/dev/null 2>&1 & echo $! > /run/pinrig-storm.pid")
        stop.append("kill $(cat /run/pinrig-storm.pid) 2>/dev/null; rm -f /run/pinrig-storm.pid; true")
    return start, stop


def workload_argv(case: Case, seed: int) -> list:
    """The guest command line of a case's program."""
    b = GUEST_BIN
    if case.workload == "ibverbs-pin":
        access = {"ro": "ro", "none": "none"}.get(case.variant or "", "rw")
        return [f"{b}/ibverbs-pin", "--file", f"{MNT}/pin.dat", "--size", str(case.size),
                "--map", case.mapping, "--access", access, "--device", "rxe0",
                "--seed", str(seed)]
    raise InfraError(f"workload {case.workload} is not implemented in this rig version")


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


def needs(case: Case, sess: Session) -> Optional[str]:
    """Why the case cannot run on this kernel/guest, or None."""
    if case.workload in ("ibverbs-pin", "lost-write") and sess.info.get("rdma", "none") == "none":
        return "no RDMA device in the guest (kernel without rdma_rxe?)"
    if case.fs != "tmpfs" and "pmem0" not in sess.info.get("pmem", ""):
        return "no /dev/pmem0 in the guest (kernel without nfit/nd_pmem?)"
    return None


def run_case(sess: Session, case: Case, seed: int, pressure: Pressure) -> CaseRun:
    """Set up, run, tear down one case. Never raises for guest trouble: it becomes the outcome."""
    t0 = time.monotonic()
    run = CaseRun(RawOutcome(case.id))
    g = sess.guest
    try:
        g.run(marker("start", case.id), timeout=15)
        reason = needs(case, sess)
        if reason:
            run.raw.skip_reason = reason
            return run
        run.raw.phase = "setup"
        dax_state = sess.info.get("dax_state", "raw")
        for cmd in fs_setup_commands(case.fs, dax_state):
            res = g.run(cmd, timeout=120)
            run.log(cmd, res)
            if res.rc != 0:
                if case.fs.endswith("-dax"):
                    run.raw.skip_reason = f"fsdax unavailable: '{cmd}' failed: {res.stderr.strip()[-200:]}"
                else:
                    run.raw.infra_error = f"filesystem setup failed: '{cmd}' exit {res.rc}: {res.stderr.strip()[-200:]}"
                return run
        if case.fs.endswith("-dax"):
            sess.info["dax_state"] = "fsdax"
        elif case.fs in ("ext4", "xfs"):
            sess.info["dax_state"] = "raw"
        start, stop = pressure_commands(pressure)
        for cmd in start:
            run.log(cmd, g.run(cmd, timeout=30))
        run.raw.phase = "case"
        argv = workload_argv(case, seed)
        try:
            res = g.run(argv, timeout=case.timeout)
        finally:
            if sess.alive():
                for cmd in stop:
                    try:
                        g.run(cmd, timeout=15)
                    except InfraError:
                        pass
        run.log(shlex.join(argv), res)
        result = parse_result(res.stdout)
        run.raw.exit_code = res.rc
        if result is None:
            run.raw.infra_error = f"{case.workload} printed no JSON result (exit {res.rc})"
            return run
        run.raw.result = result
        run.raw.pin = result.get("pin")
        run.raw.errno = result.get("errno")
        if res.rc != 0 or result.get("error"):
            run.raw.infra_error = f"{case.workload} failed (exit {res.rc}): {result.get('error', '')}"
        g.run(f"umount {MNT} 2>/dev/null; true", timeout=60)
    except CommandTimeout as e:
        run.raw.infra_error = f"timeout: {e}"
    except InfraError as e:
        run.raw.infra_error = str(e)
        run.raw.guest_died = not sess.alive()
    finally:
        if sess.alive() and sess.guest and sess.guest.client:
            try:
                sess.guest.run(marker("end", case.id), timeout=15)
            except InfraError:
                pass
        run.raw.wall_s = time.monotonic() - t0
    return run
