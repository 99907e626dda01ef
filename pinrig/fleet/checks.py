"""`rig hosts check`: what a pool host has (QEMU, KVM, disk, memory, sftp) and whether it can take guests."""
from __future__ import annotations

import dataclasses
import os
import shlex
import threading
from dataclasses import dataclass, field
from typing import Optional

import paramiko

from pinrig import paths, proc, ssh
from pinrig.fleet.connection import HostLost, connect, exec_command
from pinrig.fleet.pool import (
    GUEST_MEMORY_MB,
    LOCAL,
    Host,
    Pool,
)

MIN_DISK_MB = 4096                   # shipped files (sparse) + overlays + pmem writes


CHECK_SCRIPT = r"""W={workdir}
for t in qemu-system-x86_64 qemu-img; do
  if command -v "$t" >/dev/null 2>&1; then echo "tool $t yes"; else echo "tool $t no"; fi
done
if [ ! -e /dev/kvm ]; then echo "kvm absent"
elif [ -r /dev/kvm ] && [ -w /dev/kvm ]; then echo "kvm rw"
else echo "kvm denied"; fi
if mkdir -p "$W" 2>/dev/null && [ -w "$W" ]; then echo "workdir ok"; else echo "workdir bad"; fi
echo "disk_kb $(df -Pk "$W" 2>/dev/null | awk 'NR==2 {{print $4}}')"
echo "mem_kb $(awk '/^MemAvailable:/ {{print $2}}' /proc/meminfo)"
echo "cpus $(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"
echo "qemu $(qemu-system-x86_64 --version 2>/dev/null | head -n1)"
echo "kernel $(uname -r)"
"""


@dataclass
class HostCheck:
    name: str
    target: str
    usable: bool = True
    problems: list = field(default_factory=list)    # why the host cannot run guests
    notes: list = field(default_factory=list)       # worth knowing, not fatal
    facts: dict = field(default_factory=dict)

    def problem(self, msg: str) -> None:
        self.usable = False
        self.problems.append(msg)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def parse_check(text: str) -> dict:
    """The CHECK_SCRIPT's output → facts."""
    facts: dict = {"tools": {}}
    for line in text.splitlines():
        key, _, val = line.strip().partition(" ")
        val = val.strip()
        if key == "tool":
            t, _, yes = val.partition(" ")
            facts["tools"][t] = yes == "yes"
        elif key == "kvm":
            facts["kvm"] = val
        elif key == "workdir":
            facts["workdir_ok"] = val == "ok"
        elif key in ("disk_kb", "mem_kb", "cpus"):
            facts[key] = int(val) if val.isdigit() else None
        elif key in ("qemu", "kernel"):
            facts[key] = val
    return facts


def judge(name: str, target: str, facts: dict, kvm_wanted: Optional[bool], jobs: int,
          cores: Optional[int] = None) -> HostCheck:
    """What a host lacks, in words a person can act on (Debian package names).
    kvm_wanted: the pool's `kvm` (None: the controller, whose accel is probed at run time)."""
    c = HostCheck(name, target, facts=facts)
    for tool in ("qemu-system-x86_64", "qemu-img"):
        if not facts.get("tools", {}).get(tool):
            c.problem(f"{tool} missing: apt-get install {proc.TOOL_PACKAGES[tool]}")
    kvm = facts.get("kvm", "absent")
    if kvm == "rw":
        c.notes.append("/dev/kvm usable" + (" (pool says kvm: false: TCG)" if kvm_wanted is False
                                            else ""))
    else:
        why = "no /dev/kvm" if kvm == "absent" else "/dev/kvm not accessible (group kvm?)"
        if kvm_wanted:
            c.problem(f"{why} but the pool says kvm: true (set kvm: false for TCG)")
        else:
            c.notes.append(f"{why}: TCG")
    if not facts.get("workdir_ok"):
        c.problem("workdir cannot be created or is not writable")
    disk = facts.get("disk_kb")
    if disk is None:
        c.problem("free disk in workdir unknown (df failed)")
    elif disk < MIN_DISK_MB * 1024:
        c.problem(f"only {disk / 2**20:.1f} GiB free in workdir, need {MIN_DISK_MB // 1024} GiB")
    mem = facts.get("mem_kb")
    if mem is None:
        c.problem("free memory unknown (/proc/meminfo)")
    elif mem < GUEST_MEMORY_MB * 1024:
        c.problem(f"only {mem / 2**20:.1f} GiB memory available, one guest needs "
                  f"{GUEST_MEMORY_MB / 1024:.0f} GiB")
    elif mem < jobs * GUEST_MEMORY_MB * 1024:
        c.notes.append(f"{mem / 2**20:.1f} GiB available is short of {jobs} guests at once "
                       f"({jobs * GUEST_MEMORY_MB / 1024:.0f} GiB)")
    cpus = facts.get("cpus")
    if cores and cpus and cores > cpus:
        c.notes.append(f"pool says cores: {cores}, the host has {cpus}")
    return c


def check_host(host: Host, jobs: Optional[int] = None) -> HostCheck:
    """Connect and look: qemu, qemu-img, /dev/kvm, disk in workdir, free memory."""
    try:
        conn = connect(host)
    except HostLost as e:
        c = HostCheck(host.name, host.target)
        c.problem(str(e).split(": ", 1)[-1] if str(e).startswith("host ") else str(e))
        return c
    try:
        _rc, out, _err = exec_command(conn, CHECK_SCRIPT.format(
            workdir=shlex.quote(host.workdir)), timeout=60)
        facts = parse_check(out)
        try:
            sftp = conn.open_sftp()
            sftp.close()
            facts["sftp"] = True
        except (paramiko.SSHException, OSError, EOFError):
            facts["sftp"] = False
    except Exception as e:
        c = HostCheck(host.name, host.target)
        c.problem(f"check failed: {ssh.why(e)}")
        return c
    finally:
        conn.close()
    c = judge(host.name, host.target, facts, host.kvm, jobs or host.slots, host.cores)
    if not facts.get("sftp"):
        c.problem("no sftp subsystem in the host's sshd (Subsystem sftp …)")
    return c


def check_local(jobs: int) -> HostCheck:
    """The controller, when the pool has local: true (results go under results/)."""
    res = proc.run(["sh", "-c", CHECK_SCRIPT.format(workdir=shlex.quote(str(paths.RESULTS_DIR)))],
                   check=False)
    kvm = True if os.environ.get("PINRIG_ACCEL") == "kvm" else None
    return judge(LOCAL, "this host", parse_check(res.stdout), kvm, jobs, os.cpu_count())


def check_pool(pool: Pool, jobs: Optional[int] = None, local_jobs: int = 1) -> list:
    slots = pool.slots(jobs, local_default=local_jobs)
    out = [check_local(slots[LOCAL])] if pool.local else []
    results: dict = {}
    threads = [threading.Thread(target=lambda h=h: results.__setitem__(h.name,
                                                                     check_host(h, slots[h.name])),
                                daemon=True) for h in pool.hosts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out + [results[h.name] for h in pool.hosts]


def format_checks(checks: list) -> str:
    w = max([len(c.name) for c in checks] + [4])
    tw = max([len(c.target) for c in checks] + [4])
    lines = []
    for c in checks:
        f = c.facts
        state = "ok" if c.usable else "UNUSABLE"
        bits = []
        if f.get("qemu"):
            bits.append(f["qemu"].replace("QEMU emulator version", "qemu").strip())
        if f.get("disk_kb") is not None:
            bits.append(f"{f['disk_kb'] / 2**20:.0f} GiB free")
        if f.get("mem_kb") is not None:
            bits.append(f"{f['mem_kb'] / 2**20:.0f} GiB memory available")
        if f.get("cpus"):
            bits.append(f"{f['cpus']} cpus")
        lines.append(f"{c.name:<{w}}  {c.target:<{tw}}  {state:<8}  " + ", ".join(bits))
        for p in c.problems:
            lines.append(f"{'':<{w}}    problem: {p}")
        for n in c.notes:
            lines.append(f"{'':<{w}}    note: {n}")
    return "\n".join(lines) + "\n"
