"""Integration: a host pool of sshd instances in network namespaces made here, sharded runs.

Two namespaces, each joined to this one by a veth pair with addresses in a 10.231.N.0/24 nobody
else here uses (nothing is routed anywhere: no traffic leaves this machine), each with its own
sshd (own host key, own authorized_keys, `sshd -D -f CONFIG`, listening on the namespace's
address only). A namespace "host" is still this machine — qemu and the rig's cache are there —
but the rig treats it as remote: it ships the kernel and image into the host's workdir, runs QEMU
through sshd (so QEMU's user-mode network, and the guest's forwarded ssh port, are inside the
namespace) and reaches the guest through the host's SSH connection.

Needs root, iproute2 and openssh-server (scripts/setup.sh installs them). Selected by
`-m integration`; each sharded smoke run boots two guests (~15 s each under TCG).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from pinrig import paths
from pinrig.runs.runner import run_suite

pytestmark = pytest.mark.integration

SSHD = "/usr/sbin/sshd"
RIG = [sys.executable, str(paths.REPO / "rig.py")]


@dataclass
class NsHost:
    name: str
    ns: str
    veth: str
    address: str
    dir: Path
    workdir: Path
    host_pub: str
    proc: subprocess.Popen


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _free_subnet() -> int:
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    used += subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    free = [n for n in range(1, 255) if f"10.231.{n}." not in used]
    return random.choice(free)


def _wait_port(addr: str, port: int, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection((addr, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"sshd on {addr}:{port} did not come up")


def _children(pid: int) -> list:
    """Descendants of pid (from /proc: processes our sshd forked)."""
    parent: dict = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                parent[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _qemu_pids(workdir: Path) -> list:
    """QEMU processes whose command line points into a host's workdir (started for us)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if b"qemu-system" in cmd and str(workdir).encode() in cmd:
                out.append(int(d.name))
    return out


def kill_sshd(h: NsHost) -> None:
    """The host drops out: its sshd (the pid we started) and the per-connection sshd processes
    it forked are killed; QEMU under them gets the pty's hangup."""
    victims = [h.proc.pid] + [p for p in _children(h.proc.pid) if _comm(p) == "sshd"]
    for p in victims:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    h.proc.wait(10)


@pytest.fixture(scope="module")
def ns_hosts(tmp_path_factory):
    for tool in ("ip", SSHD, "ssh-keygen"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} missing: apt-get install iproute2 openssh-server openssh-client")
    if os.geteuid() != 0:
        pytest.fail("network namespaces need root")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)    # sshd's privilege separation dir
    base = tmp_path_factory.mktemp("nshosts")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pinrig-test-client",
                    "-f", str(base / "client")], check=True)
    net = _free_subnet()
    tag = f"{os.getpid() % 100000}"
    hosts: list = []
    made: list = []
    try:
        for i in range(2):
            ns, veth = f"pinrig-t{tag}-{i}", f"prt{tag}{i}"
            here, there = f"10.231.{net}.{4 * i + 1}", f"10.231.{net}.{4 * i + 2}"
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("link", "add", veth + "a", "type", "veth", "peer", "name", veth + "b")
            _ip("link", "set", veth + "b", "netns", ns)
            _ip("addr", "add", f"{here}/30", "dev", veth + "a")
            _ip("link", "set", veth + "a", "up")
            _ip("-n", ns, "addr", "add", f"{there}/30", "dev", veth + "b")
            _ip("-n", ns, "link", "set", veth + "b", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            d = base / f"h{i}"
            d.mkdir()
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            str(d / "host_key")], check=True)
            shutil.copy(base / "client.pub", d / "authorized_keys")
            (d / "sshd_config").write_text(
                f"ListenAddress {there}\nPort 22\nHostKey {d / 'host_key'}\n"
                f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile none\n"
                "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                "AllowTcpForwarding yes\nPermitTTY yes\nSubsystem sftp internal-sftp\n")
            log = open(d / "sshd.log", "w")
            proc = subprocess.Popen(["ip", "netns", "exec", ns, SSHD, "-D", "-e", "-f",
                                     str(d / "sshd_config")], stdout=log, stderr=subprocess.STDOUT)
            host_pub = " ".join((d / "host_key.pub").read_text().split()[:2])
            hosts.append(NsHost(f"ns{i + 1}", ns, veth, there, d, d / "work", host_pub, proc))
            _wait_port(there, 22)
        yield hosts
    finally:
        for h in hosts:
            if h.proc.poll() is None:
                kill_sshd(h)
            for pid in _qemu_pids(h.workdir):        # a QEMU the rig failed to end: by pid
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)   # takes the veths


def write_pool(path: Path, hosts: list, client_key: Path, extra: str = "") -> Path:
    lines = ["name: nstest", "local: false", "hosts:"]
    for h in hosts:
        lines += [f"  - name: {h.name}", f"    address: {h.address}", "    user: root",
                  f"    key: {client_key}", f"    host_key: {h.host_pub}", "    cores: 2",
                  "    memory: 4G", "    kvm: false", f"    workdir: {h.workdir}"]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


@pytest.fixture(scope="module")
def pool(ns_hosts, tmp_path_factory):
    d = tmp_path_factory.mktemp("pool")
    return write_pool(d / "pool.yaml", ns_hosts, ns_hosts[0].dir.parent / "client")


@pytest.fixture(scope="module")
def local_smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "run"
    res = run_suite("debian-6.1", "smoke", out=out, echo=lambda *a: None)
    return {v.case: (v.verdict, v.errno, v.pin) for v in res.verdicts}


def verdicts_of(run: Path) -> dict:
    out = {}
    for vj in (run / "cases").rglob("verdict.json"):
        d = json.loads(vj.read_text())
        out[d["case"]] = d
    return out


def test_hosts_check_names_what_is_missing(ns_hosts, pool, tmp_path):
    r = subprocess.run(RIG + ["hosts", "check", str(pool)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    for h in ns_hosts:
        line = next(ln for ln in r.stdout.splitlines() if ln.startswith(h.name))
        assert " ok " in line and "qemu" in line and "GiB free" in line, r.stdout
    assert "/dev/kvm" in r.stdout or "TCG" in r.stdout
    # a host whose sshd is not there (a closed port on a namespace address: stays local)
    bad = ns_hosts[0].dir.parent / "bad.yaml"
    write_pool(bad, ns_hosts, ns_hosts[0].dir.parent / "client",
               extra=f"  - name: gone\n    address: {ns_hosts[0].address}\n    port: 2222\n"
                     f"    user: root\n    key: {ns_hosts[0].dir.parent / 'client'}\n"
                     f"    cores: 2\n    memory: 4G\n    kvm: false\n    workdir: /tmp/x\n")
    r = subprocess.run(RIG + ["hosts", "check", str(bad), "--json"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    checks = {c["name"]: c for c in json.loads(r.stdout)["hosts"]}
    assert checks["ns1"]["usable"] and checks["ns2"]["usable"]
    assert not checks["gone"]["usable"]
    assert "cannot connect" in checks["gone"]["problems"][0]


def test_sharded_smoke_matches_local(ns_hosts, pool, local_smoke, tmp_path):
    out = tmp_path / "sharded"
    t0 = time.monotonic()
    r = subprocess.run(RIG + ["run", "debian-6.1", "--suite", "smoke", "--hosts", str(pool),
                              "--out", str(out)], capture_output=True, text=True, timeout=900)
    wall = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    got = verdicts_of(out)
    assert {c: (d["verdict"], d["errno"], d["pin"]) for c, d in got.items()} == local_smoke
    assert {d["host"] for d in got.values()} == {"ns1", "ns2"}, got   # both hosts ran a guest
    m = json.loads((out / "manifest.json").read_text())
    assert set(m["hosts"]["participants"]) == {"ns1", "ns2"} and not m["hosts"]["failures"]
    for h in ns_hosts:
        objs = sorted(p.name for p in (h.workdir / "objects").glob("*/*"))
        assert objs == ["initrd.cpio.gz", "modules-plain.img", "rootfs.img", "vmlinuz"], objs
        assert not _qemu_pids(h.workdir)
    # consoles streamed back into the one results directory; junit as for a local run
    for case in got:
        assert "pinrig: case-start" in (out / "cases" / case / "console.log").read_text()
    assert (out / "junit.xml").exists() and "hosts (pool nstest)" in r.stdout
    print(f"sharded smoke over 2 namespace hosts: {wall:.1f}s")


def test_killed_host_hands_its_task_to_the_other(ns_hosts, pool, local_smoke, tmp_path):
    """ns2's sshd is killed while its guest runs a case: the case goes to ns1, nothing is lost,
    ns2's QEMU does not outlive the connection."""
    out = tmp_path / "failover"
    victim = ns_hosts[1]
    log = open(tmp_path / "rig.log", "w")
    p = subprocess.Popen(RIG + ["run", "debian-6.1", "--suite", "smoke", "--hosts", str(pool),
                                "--out", str(out)], stdout=log, stderr=subprocess.STDOUT)
    try:
        runs = victim.workdir / "runs" / out.name
        end = time.monotonic() + 300
        while not list(runs.glob("boots/*/overlay.qcow2")):
            assert p.poll() is None, (tmp_path / "rig.log").read_text()
            assert time.monotonic() < end, "no guest started on ns2"
            time.sleep(0.2)
        boot = next(runs.glob("boots/*/overlay.qcow2")).parent.name
        console = out / "boots" / boot / "console.log"        # streamed back from ns2
        while "pinrig: case-start" not in (console.read_text(errors="replace")
                                          if console.exists() else ""):
            assert p.poll() is None, (tmp_path / "rig.log").read_text()
            assert time.monotonic() < end, "ns2's guest never started its case"
            time.sleep(0.1)
        assert _qemu_pids(victim.workdir), "ns2's QEMU is not running"
        kill_sshd(victim)
        rc = p.wait(900)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            p.wait(60)
    text = (tmp_path / "rig.log").read_text()
    assert rc == 0, text
    got = verdicts_of(out)
    assert {c: (d["verdict"], d["errno"], d["pin"]) for c, d in got.items()} == local_smoke
    assert {d["host"] for d in got.values()} == {"ns1"}
    m = json.loads((out / "manifest.json").read_text())
    fails = m["hosts"]["failures"]
    assert [f["host"] for f in fails] == ["ns2"], fails
    assert fails[0]["requeued"] and "ssh connection lost" in fails[0]["reason"], fails
    assert "reconnect failed" in fails[0]["reason"]
    assert m["hosts"]["participants"]["ns2"]["status"] == "failed"
    summary = (out / "summary.txt").read_text()
    assert "FAILED" in summary and "ns2" in summary and "moved to other hosts" in summary
    assert "host ns2 dropped out" in text
    assert (out / "boots" / boot / "console.prev-1.log").exists()     # ns2's console, kept
    time.sleep(2)
    assert not _qemu_pids(victim.workdir), "QEMU outlived its host's sshd"
