"""Guests on pool hosts over SSH (pinrig.ssh): checks, shipping, remote QEMU, failover.

Per host, the kernel boot files and the guest image are shipped once, content-addressed under
`<workdir>/objects/<hash>/` (skipped when there). Each boot's overlay and pmem file live under
`<workdir>/runs/<run-id>/…`, mirroring the local results directory. QEMU runs on the host with
the argv of qemu.build_argv (remote paths), on a pty of an SSH session: its serial console
streams back into the local console.log, its pid comes first on that stream and is what the rig
signals (never a name); the pty's hangup ends it if the controller or the link dies. The guest's
ssh port is forwarded on the host's 127.0.0.1 only and reached through a direct-tcpip channel
of the host's SSH connection. The guest's ssh keys never leave the controller.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import re
import select
import shlex
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Optional

import paramiko
import pexpect

from pinrig import paths, proc, ssh
from pinrig.cases.verdict import Verdict
from pinrig.errors import InfraError
from pinrig.fleet.pool import (
    GUEST_MEMORY_MB,
    LOCAL,
    Host,
    Pool,
    Scheduler,
    Task,
    load_pool,
    make_tasks,
)
from pinrig.guest import qemu, vm
from pinrig.outcome import Outcome

CONNECT_TIMEOUT = 10
KEEPALIVE_S = 5
MIN_DISK_MB = 4096                   # shipped files (sparse) + overlays + pmem writes
SHIP_CHUNK = 1 << 20
_ZERO = bytes(SHIP_CHUNK)
PID_RE = re.compile(rb"PINRIG-QEMU-PID (\d+)\r?\n")


class HostLost(InfraError):
    """A pool host dropped out (connection gone, unusable, shipping failed)."""


class _Stopped(InfraError):
    """The run is being interrupted: write nothing more."""


# ---------------------------------------------------------------------------- connections

def connect(host: Host, timeout: float = CONNECT_TIMEOUT) -> paramiko.SSHClient:
    """An SSH connection to the host, its host key pinned (pool `host_key`) or known
    (~/.ssh/known_hosts); never trust-on-first-use. Raises HostLost saying why."""
    if not Path(host.key).is_file():
        raise HostLost(f"host {host.name} ({host.target}): key {host.key} not found")
    pinned = None
    if host.host_key:
        try:
            pinned = ssh.parse_public_key(host.host_key)
        except ValueError as e:
            raise HostLost(f"host {host.name}: host_key unusable: {e}")
    try:
        return ssh.connect(host.address, host.port, host.user, Path(host.key), pinned,
                           timeout=timeout, what=f"host {host.name} ({host.target})")
    except ssh.HostKeyMismatch:
        raise HostLost(f"host {host.name} ({host.target}): host key does not match "
                       + ("host_key in the pool" if host.host_key else "~/.ssh/known_hosts"))
    except ssh.ConnectError as e:
        msg = str(e)
        if "host key unknown" in msg:
            raise HostLost(f"host {host.name} ({host.target}): host key unknown: add host_key: "
                           "to the pool (a line of ssh-keyscan) or to ~/.ssh/known_hosts")
        raise HostLost(msg)


def exec_command(client: Optional[paramiko.SSHClient], cmd: str, timeout: float = 60.0) -> tuple:
    """(rc, stdout, stderr) of a shell line on the host. Raises HostLost when the connection is
    gone, CommandTimeout (an InfraError) on timeout."""
    try:
        r = ssh.run(client, cmd, timeout=timeout)
    except ssh.ConnectionLost as e:
        raise HostLost(str(e))
    except ssh.CommandTimeout:
        raise ssh.CommandTimeout(f"host command timed out after {timeout:.0f}s: {cmd[:100]}")
    return r.rc, r.stdout, r.stderr


# ---------------------------------------------------------------------------- host checks

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


# ---------------------------------------------------------------------------- shipping

def data_chunks(path: Path):
    """(offset, bytes) of every SHIP_CHUNK-aligned chunk of the file that is not all zeros,
    reading only the file's data extents (holes are never read). Deterministic in the content:
    the same bytes give the same chunks whatever the allocation."""
    with open(path, "rb") as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        pos, last = 0, -1
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break                       # ENXIO: no data after pos
            end = os.lseek(fd, start, os.SEEK_HOLE)
            for idx in range(start // SHIP_CHUNK, (end - 1) // SHIP_CHUNK + 1):
                if idx <= last:
                    continue
                last = idx
                off = idx * SHIP_CHUNK
                f.seek(off)
                buf = f.read(min(SHIP_CHUNK, size - off))
                if buf != _ZERO[:len(buf)]:
                    yield off, buf
            pos = max(end, (last + 1) * SHIP_CHUNK)


def content_hash(path: Path) -> str:
    """sha256 over the size and the non-zero chunks with their offsets (sparse-aware)."""
    h = hashlib.sha256()
    h.update(os.stat(path).st_size.to_bytes(8, "little"))
    for off, buf in data_chunks(path):
        h.update(off.to_bytes(8, "little"))
        h.update(buf)
    return h.hexdigest()


_HASH_LOCK = threading.Lock()


def cached_hash(path: Path) -> str:
    """content_hash, remembered per (path, size, mtime, inode) in the cache."""
    st = os.stat(path)
    key = str(Path(path).resolve())
    stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
    db_path = paths.cache_dir() / "content-hashes.json"
    with _HASH_LOCK:
        try:
            db = json.loads(db_path.read_text())
        except (OSError, ValueError):
            db = {}
        ent = db.get(key)
        if ent and ent.get("stamp") == stamp:
            return ent["hash"]
        h = content_hash(path)
        db[key] = {"stamp": stamp, "hash": h}
        tmp = db_path.with_name(db_path.name + f".{os.getpid()}.new")
        tmp.write_text(json.dumps(db, indent=1))
        os.replace(tmp, db_path)
        return h


def object_path(workdir: str, digest: str, name: str) -> str:
    return f"{workdir}/objects/{digest[:32]}/{name}"


GC_SCRIPT = r"""W={workdir}; N={days}; DEL={delete}
for d in "$W"/objects/* "$W"/runs/*; do
  [ -d "$d" ] || continue
  if [ -n "$(find "$d" -maxdepth 0 -mtime +"$N")" ]; then
    echo "$(du -sk "$d" | cut -f1) $d"
    [ "$DEL" = 1 ] && rm -rf -- "$d"
  fi
done
true
"""


def gc_host(host: Host, older_than_days: int, delete: bool) -> list:
    """Shipped objects and run directories on a pool host unused for older_than_days:
    [(KiB, path)], removed when delete. Raises HostLost when the host cannot be reached."""
    conn = connect(host)
    try:
        rc, out, err = exec_command(conn, GC_SCRIPT.format(
            workdir=shlex.quote(host.workdir), days=int(older_than_days), delete=int(delete)),
            timeout=600)
    finally:
        conn.close()
    if rc != 0:
        raise InfraError(f"host {host.name}: gc failed: {err.strip()[-200:]}")
    found = []
    for line in out.splitlines():
        kb, _, path = line.partition(" ")
        if kb.isdigit() and path:
            found.append((int(kb), path))
    return found


def upload_sparse(sftp, local: Path, remote: str) -> int:
    """Write local to remote (tmp + rename), holes and zero chunks left as holes. → bytes sent."""
    size = os.stat(local).st_size
    tmp = f"{remote}.part-{uuid.uuid4().hex[:8]}"
    sent = 0
    try:
        with sftp.open(tmp, "wb") as rf:
            rf.set_pipelined(True)
            for off, buf in data_chunks(local):
                rf.seek(off)
                rf.write(buf)
                sent += len(buf)
            rf.truncate(size)
        sftp.chmod(tmp, 0o400)      # the image holds the guest's private sshd host key
        sftp.posix_rename(tmp, remote)
    except BaseException:
        try:
            sftp.remove(tmp)
        except Exception:
            pass
        raise
    return sent


# ---------------------------------------------------------------------------- paths and argv

def remote_path(local_root: Path, remote_root: str, p: Path) -> str:
    """Where a file of the local results directory lives on the host."""
    p = Path(p)
    try:
        rel = p.relative_to(local_root)
    except ValueError:
        rel = Path("misc") / p.name
    return str(PurePosixPath(remote_root) / PurePosixPath(*rel.parts)) if rel.parts \
        else remote_root


def remote_config(cfg: qemu.QemuConfig, mapping: dict, accel: str,
                  ssh_port: int) -> qemu.QemuConfig:
    """The local QemuConfig with every file replaced by its place on the host. A file without
    a place is an error (a controller path must never reach a remote argv)."""
    def m(p):
        if p is None:
            return None
        key = str(p)
        if key not in mapping:
            raise InfraError(f"no remote path for {p}")
        return PurePosixPath(mapping[key])
    return dataclasses.replace(cfg, kernel=m(cfg.kernel), initrd=m(cfg.initrd),
                               rootdisk=m(cfg.rootdisk), modules_disk=m(cfg.modules_disk),
                               pmem=m(cfg.pmem), accel=accel, ssh_port=ssh_port)


def qemu_command(remote_dir: str, argv: list) -> str:
    """The shell line that starts QEMU on the host: it prints its pid first, then becomes QEMU
    (exec), so that pid is QEMU's."""
    return (f"cd {shlex.quote(remote_dir)} && echo PINRIG-QEMU-PID $$ && "
            f"exec {shlex.join(str(a) for a in argv)}")


def listening_ports(proc_net_tcp: str) -> set:
    """TCP ports in LISTEN state from /proc/net/tcp{,6} text."""
    out = set()
    for line in proc_net_tcp.splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[3] == "0A" and ":" in parts[1]:
            try:
                out.add(int(parts[1].rsplit(":", 1)[1], 16))
            except ValueError:
                pass
    return out


def pick_port(busy: set, rng: random.Random, lo: int = 20000, hi: int = 60999) -> int:
    for _ in range(10000):
        p = rng.randint(lo, hi)
        if p not in busy:
            return p
    raise InfraError("no free TCP port found on the host")


def host_accel(host: Host) -> str:
    env = os.environ.get("PINRIG_ACCEL")
    if env in ("kvm", "tcg"):
        return env
    return "kvm" if host.kvm else "tcg"


# ---------------------------------------------------------------------------- remote QEMU

class _ChannelChild:
    """The part of pexpect.spawn that vm.Console reads through, over an SSH channel."""

    def __init__(self, chan, pending: bytes = b""):
        self.chan, self.pending = chan, pending

    def read_nonblocking(self, size: int, timeout: float) -> bytes:
        if self.pending:
            data, self.pending = self.pending[:size], self.pending[size:]
            return data
        chan = self.chan
        if not chan.recv_ready() and not (chan.closed or chan.eof_received):
            select.select([chan], [], [], timeout)
        try:
            if chan.recv_ready():
                data = chan.recv(size)
                if data:
                    return data
                raise pexpect.EOF("channel closed")
        except (OSError, EOFError, paramiko.SSHException):
            raise pexpect.EOF("channel lost")
        t = chan.get_transport()
        if chan.closed or chan.eof_received or chan.exit_status_ready() or not t.is_active():
            raise pexpect.EOF("remote QEMU ended")
        raise pexpect.TIMEOUT("no data")


@dataclass
class RemoteMachine(vm.Machine):
    """A Machine whose QEMU runs on a pool host (argv has the host's paths)."""
    slot: Optional["RemoteSlot"] = None
    remote_dir: str = ""
    remote_pid: Optional[int] = None
    chan: Optional[paramiko.Channel] = None

    @property
    def pid(self) -> Optional[int]:
        return self.remote_pid

    def _slot(self) -> "RemoteSlot":
        """The slot this machine runs through (RemoteSlot.prepare sets it)."""
        if self.slot is None:
            raise InfraError(f"remote QEMU for {self.workdir} has no host slot")
        return self.slot

    def start(self) -> "RemoteMachine":
        self.console_log.parent.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        slot = self._slot()
        t = slot.transport()
        try:
            chan = t.open_session(timeout=15)
            chan.get_pty(term="dumb", width=200, height=50)
            chan.exec_command(qemu_command(self.remote_dir, self.argv))
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise HostLost(f"host {slot.name}: ssh connection lost starting QEMU: {ssh.why(e)}")
        self.chan = chan
        buf, end = b"", time.monotonic() + 30
        while not PID_RE.search(buf) and time.monotonic() < end:
            if chan.recv_ready():
                buf += chan.recv(4096)
            elif chan.exit_status_ready() or chan.closed or not t.is_active():
                break
            else:
                select.select([chan], [], [], 0.2)
        m = PID_RE.search(buf)
        if m:
            self.remote_pid = int(m.group(1))
            buf = buf[m.end():]
        vm.LIVE[("remote", id(self))] = self
        self.child = _ChannelChild(chan, buf)
        self.console = vm.Console(self.child, self.console_log)
        return self

    def alive(self) -> bool:
        c = self.chan
        if c is None or c.closed or c.exit_status_ready():
            return False
        t = c.get_transport()
        return bool(t and t.is_active())

    def _reap(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while self.alive() and time.monotonic() < end:
            time.sleep(0.05)
        return not self.alive()

    def _signal(self, sig: str) -> None:
        if self.remote_pid is None:
            return
        try:
            self._slot().exec(f"kill -{sig} {int(self.remote_pid)}", timeout=10)
        except Exception:
            pass

    def kill(self) -> None:
        """End the remote QEMU by its pid (SIGTERM, then SIGKILL), then drop the channel (whose
        hangup would end it anyway)."""
        if self.chan is None:
            return
        if self.alive() and self.remote_pid:
            self._signal("TERM")
            if not self._reap(3):
                self._signal("KILL")
                self._reap(5)
        try:
            self.chan.close()
        except Exception:
            pass
        if self.console:
            self.console.t.join(2)
        vm.LIVE.pop(("remote", id(self)), None)


# ---------------------------------------------------------------------------- hosts in a run

class RemoteHost:
    """A pool host during a run: preflight, shipped objects, per-worker slots."""

    def __init__(self, host: Host, jobs: int, echo=print):
        self.host, self.jobs, self.echo = host, jobs, echo
        self.name = host.name
        self.accel = host_accel(host)
        self.objects: dict = {}             # local path (str) → remote object path
        self.facts: dict = {}
        self.error: Optional[str] = None
        self.ready = False
        self.lock = threading.Lock()
        self.ports_lock = threading.Lock()
        self.ports_given: set = set()
        self.rng = random.Random()
        self.ship_stats: dict = {}

    def ensure_ready(self, files: list) -> None:
        """Once per host (the first worker does it, the others wait): connect, check, ship."""
        with self.lock:
            if self.ready:
                return
            if self.error:
                raise HostLost(self.error)
            try:
                self._prepare(files)
                self.ready = True
            except HostLost as e:
                self.error = str(e)
                raise
            except (InfraError, OSError, EOFError, paramiko.SSHException) as e:
                self.error = f"host {self.name}: {ssh.why(e)}"
                raise HostLost(self.error)

    def _prepare(self, files: list) -> None:
        conn = connect(self.host)
        try:
            rc, out, _ = exec_command(conn, CHECK_SCRIPT.format(
                workdir=shlex.quote(self.host.workdir)), timeout=60)
            self.facts = parse_check(out)
            c = judge(self.name, self.host.target, self.facts, self.accel == "kvm", self.jobs)
            if not c.usable:
                raise HostLost(f"host {self.name}: unusable: " + "; ".join(c.problems))
            t0, sent, shipped = time.monotonic(), 0, []
            reused: list = []
            sftp = conn.open_sftp()
            try:
                for local, digest in files:
                    dest = object_path(self.host.workdir, digest, Path(local).name)
                    self.objects[str(local)] = dest
                    size = os.stat(local).st_size
                    try:
                        if sftp.stat(dest).st_size == size:
                            reused.append(str(PurePosixPath(dest).parent))
                            continue
                    except IOError:
                        pass
                    rc, _o, err = exec_command(conn, f"mkdir -p -m 700 {shlex.quote(str(PurePosixPath(dest).parent))}")
                    if rc:
                        raise InfraError(f"mkdir for {dest} failed: {err.strip()}")
                    sent += upload_sparse(sftp, Path(local), dest)
                    shipped.append(Path(local).name)
            finally:
                sftp.close()
            if reused:        # `rig hosts gc` removes objects by age: a reused one is young
                exec_command(conn, "touch " + " ".join(shlex.quote(d) for d in reused))
            dt = time.monotonic() - t0
            self.ship_stats = {"shipped": shipped, "bytes": sent, "seconds": round(dt, 1)}
            if shipped:
                self.echo(f"rig: host {self.name}: shipped {', '.join(shipped)} "
                          f"({sent / 2**20:.0f} MiB of data) in {dt:.1f}s")
            else:
                self.echo(f"rig: host {self.name}: kernel and guest image already there")
        finally:
            conn.close()

    def free_port(self, client) -> int:
        rc, out, _ = exec_command(client, "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null",
                                  timeout=20)
        with self.ports_lock:
            p = pick_port(listening_ports(out) | self.ports_given, self.rng)
            self.ports_given.add(p)
            return p

    def qemu_version(self) -> str:
        return self.facts.get("qemu") or "unknown"


class RemoteSlot:
    """What Session.host points at: one worker's own SSH connection to a RemoteHost (sshd
    limits sessions per connection; a worker needs a console, commands and a jump)."""

    def __init__(self, rhost: RemoteHost, local_root: Path, remote_root: str):
        self.rhost, self.local_root, self.remote_root = rhost, Path(local_root), remote_root
        self.name = rhost.name
        self.accel = rhost.accel
        self.conn: Optional[paramiko.SSHClient] = None
        self.last_pmem: Optional[str] = None
        self.boot_dirs: list = []        # local boot directories of the current task

    def open(self, tries: int = 3) -> "RemoteSlot":
        """Connect; a refused or dropped handshake is retried (sshd's MaxStartups drops some
        of many simultaneous ones) before the host counts as gone."""
        for i in range(tries):
            try:
                self.conn = connect(self.rhost.host)
                return self
            except HostLost:
                if i == tries - 1:
                    raise
                time.sleep(1.0 + i)
        return self

    def transport(self) -> paramiko.Transport:
        t = self.conn.get_transport() if self.conn else None
        if t is None or not t.is_active():
            raise HostLost(f"host {self.name}: ssh connection lost")
        return t

    def exec(self, cmd: str, timeout: float = 60.0) -> tuple:
        self.transport()
        try:
            return exec_command(self.conn, cmd, timeout)
        except HostLost as e:
            raise HostLost(f"host {self.name}: {e}" if not str(e).startswith("host ") else str(e))

    def map(self, local: Path) -> str:
        return remote_path(self.local_root, self.remote_root, local)

    # --- the Session hooks (same call as vm.prepare) ---
    def prepare(self, art, boot, image, workdir: Path, accel: str, pmem: Optional[Path] = None,
                pmem_mb: int = 1024, append: tuple = (), mem_mb: int = 2048,
                smp: int = 2) -> RemoteMachine:
        workdir = Path(workdir)
        rdir = self.map(workdir)
        local_pmem = pmem if pmem is not None else workdir / "pmem.img"
        rpmem = self.map(local_pmem)
        roverlay = f"{rdir}/overlay.qcow2"
        objs = self.rhost.objects
        rootfs = objs[str(image.rootfs)]
        self.transport()
        port = self.rhost.free_port(self.conn)
        local_cfg = qemu.QemuConfig(kernel=art.vmlinuz, initrd=boot.initrd,
                                    rootdisk=workdir / "overlay.qcow2",
                                    modules_disk=boot.modules_disk, pmem=local_pmem,
                                    pmem_mb=pmem_mb, mem_mb=mem_mb, smp=smp, accel=accel,
                                    ssh_port=port, append=append)
        mapping = {str(art.vmlinuz): objs[str(art.vmlinuz)],
                   str(boot.initrd): objs[str(boot.initrd)],
                   str(boot.modules_disk): objs[str(boot.modules_disk)],
                   str(workdir / "overlay.qcow2"): roverlay, str(local_pmem): rpmem}
        cfg = remote_config(local_cfg, mapping, self.accel, port)
        q = shlex.quote
        script = (f"mkdir -p {q(rdir)} {q(str(PurePosixPath(rpmem).parent))} && "
                  f"rm -f {q(roverlay)} && "
                  f"qemu-img create -q -f qcow2 -F raw -b {q(rootfs)} {q(roverlay)} && "
                  f"{{ test -e {q(rpmem)} || truncate -s {int(pmem_mb)}M {q(rpmem)}; }}")
        rc, _out, err = self.exec(script, timeout=60)
        if rc != 0:
            raise InfraError(f"host {self.name}: preparing a boot failed: {err.strip()[-300:]}")
        if pmem is not None:
            self.last_pmem = rpmem
        workdir.mkdir(parents=True, exist_ok=True)
        vm.rotate_console(workdir / "console.log")
        self.boot_dirs.append(workdir)
        return RemoteMachine(argv=qemu.build_argv(cfg), workdir=workdir,
                             console_log=workdir / "console.log", ssh_port=port, accel=self.accel,
                             image=image, slot=self, remote_dir=rdir)

    def guest_sock(self, port: int) -> Callable:
        """A fresh direct-tcpip channel to the guest's forwarded ssh port on the host's
        127.0.0.1, per connection attempt (transport.Guest(sock=…))."""
        def open_channel():
            t = self.transport()
            return t.open_channel("direct-tcpip", ("127.0.0.1", port), ("127.0.0.1", 0),
                                  timeout=10)
        return open_channel

    def remove(self, local: Path) -> None:
        try:
            self.exec(f"rm -f {shlex.quote(self.map(local))}", timeout=30)
        except Exception:
            pass

    def healthy(self) -> Optional[str]:
        """None when the host answers on this connection; else why not (and whether it can be
        reached again at all)."""
        reason = None
        t = self.conn.get_transport() if self.conn else None
        if t is None or not t.is_active():
            exc = t.get_exception() if t else None
            reason = "ssh connection lost" + (f" ({ssh.why(exc)})" if exc else "")
        else:
            try:
                rc, _o, _e = exec_command(self.conn, "true", timeout=15)
                if rc != 0:
                    reason = f"host does not run commands (exit {rc})"
            except InfraError as e:
                reason = str(e)
        if reason is None:
            return None
        try:
            c = connect(self.rhost.host, timeout=5)
            c.close()
            reason += "; reconnecting works, but the guest went with the old connection"
        except HostLost as e:
            reason += f"; reconnect failed: {str(e).split(': ', 2)[-1]}"
        return f"host {self.name}: {reason}"

    def close(self) -> None:
        if self.conn:
            try:
                self.conn.close()
            except Exception:
                pass


# ---------------------------------------------------------------------------- the sharded run

@dataclass
class HostedVerdict(Verdict):
    """verdict.json of a sharded run: which host ran the case (and where kept evidence is)."""
    host: Optional[str] = None
    pmem_on_host: Optional[str] = None


class HostRunDir:
    """The RunDir a task writes through: records the host in each verdict, and turns an
    `error` verdict into HostLost when the host itself is gone (that case is not finished:
    another host runs it)."""

    def __init__(self, run, host: str, slot: Optional[RemoteSlot], sched: Scheduler,
                 task: Task):
        self._run, self.host, self.slot, self.sched, self.task = run, host, slot, sched, task
        self.written: list = []          # case ids on disk
        self.verdicts: list = []         # their Verdicts (also when the task dies half-way)

    def __getattr__(self, name):
        return getattr(self._run, name)

    def write_case(self, verdict: Verdict, files: dict):
        if self.sched.stopping:
            raise _Stopped("run interrupted")
        if verdict.verdict == Outcome.ERROR and self.slot is not None:
            why = self.slot.healthy()
            if why:
                raise HostLost(why)
        d = dataclasses.asdict(verdict)
        hv = HostedVerdict(**d, host=self.host)
        if self.slot is not None and self.task.own_guest and verdict.verdict in (Outcome.DATA_LOSS,
                                                                                  "crash"):
            hv.pmem_on_host = f"{self.slot.rhost.host.target}:{self.slot.last_pmem}"
        out = self._run.write_case(hv, files)
        self.written.append(verdict.case)
        self.verdicts.append(verdict)
        self.sched.record(self.host, verdict.case, verdict.attempt)
        return out


class Shard:
    """Runs the runner's tasks over a pool: `jobs` workers per host pulling from one queue."""

    def __init__(self, pool, env, run, echo=print, jobs: Optional[int] = None,
                 local_jobs: int = 1):
        self.pool = pool if isinstance(pool, Pool) else load_pool(pool)
        self.env, self.run, self.echo = env, run, echo
        self.slots = self.pool.slots(jobs, local_default=local_jobs)
        self.total_slots = sum(self.slots.values())
        self.remote = {h.name: RemoteHost(h, self.slots[h.name], echo) for h in self.pool.hosts}
        self.sched: Optional[Scheduler] = None
        self.mlock = threading.Lock()
        self.verdicts: list = []
        self.errors: list = []

    def _scheduler(self) -> Scheduler:
        """The queue of the run in progress (run_tasks sets it)."""
        if self.sched is None:
            raise InfraError("no sharded run in progress: run_tasks() sets up the queue")
        return self.sched

    def accels(self) -> dict:
        out = {LOCAL: self.env.accel} if self.pool.local else {}
        out.update({n: r.accel for n, r in self.remote.items()})
        return out

    def files(self) -> list:
        """(local path, content hash) of what each host needs; ssh keys stay here."""
        env = self.env
        return [(p, cached_hash(p)) for p in (env.art.vmlinuz, env.boot.initrd,
                                              env.boot.modules_disk, env.image.rootfs)]

    def _manifest(self) -> None:
        sched = self.sched
        parts = {}
        if self.pool.local:
            parts[LOCAL] = {"address": None, "accel": self.env.accel, "jobs": self.slots[LOCAL],
                            "qemu_version": self.env.qemu_version}
        for n, r in self.remote.items():
            parts[n] = r.host.to_dict() | {"accel": r.accel, "jobs": self.slots[n],
                                            "qemu_version": r.qemu_version(),
                                            "shipping": r.ship_stats}
        for n, p in parts.items():
            fail = sched.failed.get(n) if sched else None
            p["status"] = "failed" if fail else "ok"
            if fail:
                p["reason"] = fail.reason
            p["cases"] = list(sched.done.get(n, [])) if sched else []
        accels = sorted(set(self.accels().values()))
        with self.mlock:
            self.run.manifest["accel"] = "+".join(accels)
            self.run.manifest["hosts"] = {
                "pool": self.pool.name, "path": str(self.pool.path) if self.pool.path else None,
                "participants": parts,
                "failures": [f.to_dict() for f in (sched.failed.values() if sched else [])]}
            self.run.write_manifest()

    def run_tasks(self, groups: list, task_fn, own_guest) -> list:
        """groups: [(attempt, [Case…])]; task_fn(attempt, cases, host=slot|None, rundir=…)
        → [Verdict]. Returns every verdict written; raises InfraError when cases are left
        because every host dropped out."""
        self._task_fn = task_fn
        files = self.files() if self.remote else []
        self.sched = Scheduler(make_tasks(groups, own_guest), self.pool.participants())
        self._manifest()
        threads = []
        for name in self.pool.participants():
            for i in range(self.slots[name]):
                threads.append(threading.Thread(target=self._worker, args=(name, files),
                                                name=f"{name}-{i}", daemon=True))
        restore = self._stop_on_signals()
        try:
            for t in threads:
                t.start()
            for t in threads:
                while t.is_alive():
                    t.join(0.5)
        except BaseException:
            self.sched.stop()
            self._manifest()
            raise
        finally:
            restore()
        self._manifest()
        self._tidy()
        if self.errors:
            raise self.errors[0]
        left = self.sched.leftover()
        if left:
            n = sum(len(t.cases) for t in left)
            why = "; ".join(f.reason for f in self.sched.failed.values())
            raise InfraError(f"every host dropped out, {n} case(s) not run ({why}); finished "
                             f"cases are on disk: --resume {self.run.path}")
        return self.verdicts

    def _stop_on_signals(self) -> Callable:
        """Ctrl-C / SIGTERM: stop the queue before the CLI's handler kills the guests, so the
        cases they were running are not written as errors (they stay to be resumed)."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        saved = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            prev = signal.getsignal(sig)
            saved[sig] = prev

            def handler(signum, frame, prev=prev):
                if prev == signal.SIG_IGN:
                    return
                self.sched.stop()
                if callable(prev):
                    prev(signum, frame)
                raise KeyboardInterrupt
            signal.signal(sig, handler)

        def restore():
            for sig, prev in saved.items():
                signal.signal(sig, prev)
        return restore

    def _tidy(self) -> None:
        """Drop the run's empty directories on the hosts (kept pmem evidence stays)."""
        sched = self._scheduler()
        for name, r in self.remote.items():
            if not r.ready or name in sched.failed:
                continue
            root = shlex.quote(f"{r.host.workdir}/runs/{self.run.path.name}")
            try:
                conn = connect(r.host, timeout=5)
                try:
                    exec_command(conn, f"find {root} -depth -type d -empty -delete "
                                 "2>/dev/null; true", timeout=30)
                finally:
                    conn.close()
            except Exception:
                pass

    def _worker(self, name: str, files: list) -> None:
        sched = self._scheduler()
        slot = None
        try:
            if name != LOCAL:
                r = self.remote[name]
                remote_root = f"{r.host.workdir}/runs/{self.run.path.name}"
                try:
                    r.ensure_ready(files)
                    slot = RemoteSlot(r, self.run.path, remote_root).open()
                except HostLost as e:
                    if name not in sched.failed:     # the first of its workers reports it
                        self._lost(name, str(e), None, ())
                    return
            while True:
                task = sched.take(name)
                if task is None:
                    return
                rd = HostRunDir(self.run, name, slot, sched, task)
                if slot is not None:
                    slot.boot_dirs = []
                try:
                    self._task_fn(task.attempt, list(task.cases), host=slot, rundir=rd)
                except _Stopped:
                    return
                except HostLost as e:
                    why = str(e)
                    if slot is not None and not why.startswith(f"host {name}"):
                        why = f"host {name}: {why}"
                    for d in (slot.boot_dirs if slot is not None else []):
                        vm.rotate_console(d / "console.log")   # whoever reruns it starts clean
                    self._lost(name, why, task, tuple(rd.written))
                    return
                except BaseException as e:
                    self.errors.append(e)
                    sched.stop()
                    return
                finally:
                    with self.mlock:         # what reached the disk counts, even half a task
                        self.verdicts.extend(rd.verdicts)
                sched.finish(name, task)
        finally:
            if slot is not None:
                slot.close()

    def _lost(self, name: str, reason: str, task: Optional[Task], finished: tuple) -> None:
        fail = self._scheduler().fail_host(name, reason, task, finished)
        moved = f"; {len(fail.requeued)} case(s) go to the other hosts" if fail.requeued else ""
        self.echo(f"rig: host {name} dropped out: {reason}{moved}")
        self._manifest()

    def summary(self) -> str:
        sched = self.sched
        lines = ["", f"hosts (pool {self.pool.name}):"]
        for name in self.pool.participants():
            cases = sched.done.get(name, []) if sched else []
            acc = self.accels()[name]
            lines.append(f"  {name:<12} {acc:<4} {len(cases)} case(s)"
                         + (f": {', '.join(cases)}" if cases else ""))
            fail = sched.failed.get(name) if sched else None
            if fail:
                lines.append(f"  {'':<12} FAILED {fail.when}: {fail.reason}")
                if fail.requeued:
                    lines.append(f"  {'':<12} moved to other hosts: {', '.join(fail.requeued)}")
        return "\n".join(lines) + "\n"

