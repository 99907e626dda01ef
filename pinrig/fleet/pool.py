"""Host pools: which machines run guests for a sharded run, and how tasks are placed on them.

A pool is a YAML file in configs/hosts/ (validated here; the rest of the code sees `Pool`/`Host`
values). Placement is pull-based: every host runs `jobs` workers that take the next task (a
group of cases sharing a guest, or one crash-and-verify case with both of its boots) from one
queue; the biggest tasks go first. When a host drops out, the cases of its unfinished task that
were not written yet go back to the front of the queue for the other hosts. Everything here is
pure bookkeeping (no network): pinrig/remote.py does the SSH side.
"""
from __future__ import annotations

import collections
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from pinrig import paths
from pinrig.config import Fields, find_spec, load_yaml
from pinrig.errors import UserError

LOCAL = "local"                 # the name of the controller when it takes part
GUEST_MEMORY_MB = 3072          # one guest: 2 GiB RAM + its share of the pmem file and QEMU
MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(M|MB|MiB|G|GB|GiB|T|TB|TiB)\s*$", re.I)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def hosts_dir() -> Path:
    return paths.CONFIGS_DIR / "hosts"


def jobs_for(cores: int, memory_mb: int) -> int:
    """Guests a host runs at once: one per two cores, bounded by memory (as runner.default_jobs)."""
    return max(1, min(cores // 2, memory_mb // GUEST_MEMORY_MB))


def parse_memory(val) -> int:
    """'16G' / '2048M' / '1.5GiB' → MiB. Raises ValueError on anything else."""
    if isinstance(val, bool) or not isinstance(val, str):
        raise ValueError("must be a size with a unit, e.g. 16G or 2048M")
    m = MEMORY_RE.match(val)
    if not m:
        raise ValueError(f"must be a size with a unit, e.g. 16G or 2048M, got {val!r}")
    n, unit = float(m.group(1)), m.group(2)[0].upper()
    return int(n * {"M": 1, "G": 1024, "T": 1024 * 1024}[unit])


@dataclass(frozen=True)
class Host:
    """One remote machine that runs QEMU for the rig, reached over SSH."""
    name: str
    address: str
    user: str
    key: Path                       # private key for `user` on the host
    cores: int
    memory_mb: int
    kvm: bool                       # KVM really runs guests there (else TCG)
    workdir: str                    # absolute path on the host: shipped files, overlays, pmem
    port: int = 22
    host_key: Optional[str] = None  # "ssh-ed25519 AAAA…": pinned; else ~/.ssh/known_hosts
    jobs: Optional[int] = None      # override of jobs_for(cores, memory)

    @property
    def slots(self) -> int:
        return self.jobs or jobs_for(self.cores, self.memory_mb)

    @property
    def target(self) -> str:
        return f"{self.user}@{self.address}:{self.port}"

    def to_dict(self) -> dict:
        return {"name": self.name, "address": self.address, "port": self.port, "user": self.user,
                "cores": self.cores, "memory_mb": self.memory_mb, "kvm": self.kvm,
                "workdir": self.workdir, "jobs": self.slots}


@dataclass(frozen=True)
class Pool:
    name: str
    hosts: tuple                    # of Host
    local: bool = False             # the controller runs guests too
    local_jobs: Optional[int] = None
    path: Optional[Path] = None

    def participants(self) -> list:
        """Names of everything that runs guests, the controller first when it takes part."""
        return ([LOCAL] if self.local else []) + [h.name for h in self.hosts]

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def slots(self, jobs: Optional[int] = None, local_default: int = 1) -> dict:
        """name → guests at once. `jobs` (from --jobs) overrides every host's own figure."""
        out = {}
        if self.local:
            out[LOCAL] = jobs or self.local_jobs or local_default
        for h in self.hosts:
            out[h.name] = jobs or h.slots
        return out


def load_pool(name_or_path) -> Pool:
    """configs/hosts/<name>.yaml (or a path) → Pool. Errors name the file and the field."""
    path = find_spec(hosts_dir(), str(name_or_path), "host pool")
    f = Fields(path, load_yaml(path))
    name = f.get("name", str, path.stem)
    local = f.get("local", bool, False)
    local_jobs = f.get("local_jobs", int, None)
    raw = f.get("hosts", list, [])
    f.finish()
    if local_jobs is not None and local_jobs < 1:
        raise UserError(f"{path}: local_jobs: must be at least 1")
    hosts = [_host(path, i, h) for i, h in enumerate(raw)]
    seen: dict = {}
    for i, h in enumerate(hosts):
        if h.name == LOCAL:
            raise UserError(f"{path}: hosts[{i}].name: '{LOCAL}' is the controller's name "
                            "(use local: true)")
        if h.name in seen:
            raise UserError(f"{path}: hosts[{i}].name: duplicate host name {h.name!r} "
                            f"(also hosts[{seen[h.name]}])")
        seen[h.name] = i
    where: dict = {}
    for i, h in enumerate(hosts):
        k = (h.address, h.port, h.workdir)
        if k in where:
            raise UserError(f"{path}: hosts[{i}]: same address, port and workdir as "
                            f"hosts[{where[k]}]")
        where[k] = i
    if not hosts and not local:
        raise UserError(f"{path}: hosts: no hosts and local: false (nothing would run guests)")
    return Pool(name=name, hosts=tuple(hosts), local=local, local_jobs=local_jobs, path=path)


def _host(path: Path, i: int, data) -> Host:
    if not isinstance(data, dict):
        raise UserError(f"{path}: hosts[{i}]: must be a mapping")
    f = Fields(path, data, f"hosts[{i}].")
    address = f.get("address", str)
    name = f.get("name", str, address)
    if not NAME_RE.match(name):
        raise f.err("name", f"{name!r}: letters, digits, '.', '_' and '-' only")
    port = f.get("port", int, 22)
    if not 0 < port < 65536:
        raise f.err("port", f"{port} is not a TCP port")
    user = f.get("user", str)
    key_s = f.get("key", str)
    if "\0" in key_s:
        raise f.err("key", "a path cannot contain a NUL byte")
    key = Path(os.path.expanduser(key_s))
    if not key.is_absolute():
        key = (path.parent / key).resolve()
    cores = f.get("cores", int)
    if cores < 1:
        raise f.err("cores", "must be at least 1")
    f.used.add("memory")
    if data.get("memory") is None:
        raise f.err("memory", "is required")
    try:
        memory_mb = parse_memory(data["memory"])
    except ValueError as e:
        raise f.err("memory", str(e))
    if memory_mb < GUEST_MEMORY_MB:
        raise f.err("memory", f"{data['memory']}: one guest needs {GUEST_MEMORY_MB // 1024} GiB")
    kvm = f.get("kvm", bool)
    workdir = f.get("workdir", str)
    if not workdir.startswith("/"):
        raise f.err("workdir", f"{workdir!r}: must be an absolute path on the host")
    workdir = workdir.rstrip("/") or "/"
    host_key = f.get("host_key", str, None)
    if host_key is not None:
        parts = host_key.split()
        if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-")):
            raise f.err("host_key", "must look like 'ssh-ed25519 AAAA…' (a .pub line)")
    jobs = f.get("jobs", int, None)
    if jobs is not None and jobs < 1:
        raise f.err("jobs", "must be at least 1")
    f.finish()
    return Host(name=name, address=address, user=user, key=key, cores=cores,
                memory_mb=memory_mb, kvm=kvm, workdir=workdir, port=port, host_key=host_key,
                jobs=jobs)


def pool_names() -> list:
    return sorted(p.stem for p in hosts_dir().glob("*.yaml"))


# ---------------------------------------------------------------------------- placement

@dataclass
class Task:
    """A unit of placement: cases that share a guest (or one crash case and both its boots)."""
    id: int
    attempt: int
    cases: tuple                    # of config.Case
    own_guest: bool = False         # a crash-and-verify case: two boots on one pmem file
    lost_on: tuple = ()             # hosts that dropped out while running it

    @property
    def cost(self) -> float:
        """Rough seconds under TCG, to start the longest tasks first."""
        if self.own_guest:              # pin, power cut, boot again, verify
            return 2 * 20.0 + 20.0
        return 20.0 + 10.0 * len(self.cases)

    def label(self) -> str:
        ids = ", ".join(c.id for c in self.cases)
        return ids if self.attempt == 1 else f"{ids} #{self.attempt}"


def make_tasks(groups: list, own_guest) -> list:
    """[(attempt, [Case…])…] (runner order) → Tasks, biggest first (stable otherwise)."""
    tasks = [Task(i, a, tuple(g), own_guest=len(g) == 1 and own_guest(g[0]))
             for i, (a, g) in enumerate(groups)]
    return sorted(tasks, key=lambda t: -t.cost)


@dataclass
class HostFailure:
    host: str
    reason: str
    when: str
    task: Optional[str] = None      # what it was running
    requeued: list = field(default_factory=list)   # case ids handed to the other hosts
    kept: list = field(default_factory=list)       # case ids it finished before dropping out

    def to_dict(self) -> dict:
        return {"host": self.host, "reason": self.reason, "when": self.when, "task": self.task,
                "requeued": list(self.requeued), "kept": list(self.kept)}


class Scheduler:
    """Thread-safe queue of tasks over named hosts, with failover bookkeeping.

    take(host) blocks while other hosts still run tasks that may come back; it returns None when
    nothing is left, when the host has failed, or when the run is stopping."""

    def __init__(self, tasks: list, hosts: list):
        self.queue = collections.deque(tasks)
        self.hosts = list(hosts)
        self.running: dict = {}          # task id → host
        self.failed: dict = {}           # host → HostFailure
        self.done: dict = {}             # host → [case ids written]
        self.stopping = False
        self._next_id = max([t.id for t in tasks] + [-1]) + 1
        self.cond = threading.Condition()

    def alive_hosts(self) -> list:
        with self.cond:
            return [h for h in self.hosts if h not in self.failed]

    def take(self, host: str, block: bool = True) -> Optional[Task]:
        with self.cond:
            while True:
                if self.stopping or host in self.failed:
                    return None
                if self.queue:
                    t = self.queue.popleft()
                    self.running[t.id] = host
                    return t
                if not self.running or not block:
                    return None
                self.cond.wait(1.0)

    def record(self, host: str, case_id: str, attempt: int = 1) -> None:
        """A case's verdict is on disk (written by `host`)."""
        with self.cond:
            self.done.setdefault(host, []).append(case_id if attempt == 1
                                                  else f"{case_id} #{attempt}")

    def finish(self, host: str, task: Task) -> None:
        with self.cond:
            self.running.pop(task.id, None)
            self.cond.notify_all()

    def fail_host(self, host: str, reason: str, task: Optional[Task] = None,
                  finished: tuple = ()) -> HostFailure:
        """`host` dropped out (while running `task`, of which `finished` case ids are on disk):
        the rest of the task goes to the front of the queue. Idempotent per host; a second
        task lost on the same host is requeued too and added to the first failure's record."""
        with self.cond:
            fail = self.failed.get(host)
            if fail is None:
                fail = HostFailure(host, reason, time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                   task.label() if task else None)
                self.failed[host] = fail
            if task is not None:
                self.running.pop(task.id, None)
                rest = tuple(c for c in task.cases if c.id not in set(finished))
                fail.kept += [c for c in finished]
                if rest:
                    t = Task(self._next_id, task.attempt, rest, own_guest=task.own_guest,
                             lost_on=task.lost_on + (host,))
                    self._next_id += 1
                    self.queue.appendleft(t)
                    fail.requeued += [c.id for c in rest]
            self.cond.notify_all()
            return fail

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()

    def leftover(self) -> list:
        """Tasks nobody ran (every host failed, or the run stopped)."""
        with self.cond:
            return list(self.queue)
