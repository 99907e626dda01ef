"""Guests on pool hosts in a run: hosts and their worker slots, the sharded run with failover.

The pieces: connection.py (SSH to a host), checks.py (`rig hosts check`), shipping.py (objects
to the hosts), machine.py (QEMU on a host).

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
import os
import random
import shlex
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Optional

import paramiko

from pinrig import ssh
from pinrig.cases.verdict import Verdict
from pinrig.errors import InfraError
from pinrig.fleet.checks import CHECK_SCRIPT, judge, parse_check
from pinrig.fleet.connection import HostLost, connect, exec_command
from pinrig.fleet.machine import (
    RemoteMachine,
    host_accel,
    listening_ports,
    pick_port,
    remote_config,
    remote_path,
)
from pinrig.fleet.pool import (
    LOCAL,
    Host,
    Pool,
    Scheduler,
    Task,
    load_pool,
    make_tasks,
)
from pinrig.fleet.shipping import cached_hash, object_path, upload_sparse
from pinrig.guest import qemu, vm
from pinrig.outcome import MEDIUM_EVIDENCE, Outcome

# verdicts whose medium is evidence and stays on the host
KERNEL_EVIDENCE = tuple(sorted(MEDIUM_EVIDENCE, key=list(Outcome).index))


class _Stopped(InfraError):
    """The run is being interrupted: write nothing more."""


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
        if self.slot is not None and self.task.own_guest and verdict.verdict in KERNEL_EVIDENCE:
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

