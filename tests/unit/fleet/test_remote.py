"""pinrig.fleet.remote without a network: remote argv/paths, host checks, sparse shipping, the remote
Machine's pid handling, the RunDir that records hosts, and a sharded run's failover with fake
hosts (the SSH side is exercised for real by tests/integration/test_hosts.py)."""
import json
import os
import random
import time
import types
from pathlib import Path

import pexpect
import pytest

from pinrig import ssh
from pinrig.cases.verdict import Verdict
from pinrig.config import Case
from pinrig.errors import InfraError
from pinrig.fleet import checks, machine, remote, shipping
from pinrig.fleet.pool import Host, Pool, Scheduler, Task
from pinrig.fleet.remote import HostLost, HostRunDir, RemoteMachine, Shard
from pinrig.guest import session, vm
from pinrig.guest.qemu import QemuConfig, build_argv
from pinrig.results.rundir import RunDir
from tests.fakes import FakeBootMachine, FakeChan, FakeRemoteHost, FakeRemoteSlot, FakeSlot

# ---------------------------------------------------------------------------- argv and paths

def local_cfg(**kw):
    d = dict(kernel=Path("/root/.cache/pinrig/k/vmlinuz"),
             initrd=Path("/root/.cache/pinrig/k/boot/initrd.cpio.gz"),
             rootdisk=Path("/repo/results/r1/boots/x-1/overlay.qcow2"),
             modules_disk=Path("/root/.cache/pinrig/k/boot/modules.img"),
             pmem=Path("/repo/results/r1/boots/x-1/pmem.img"), ssh_port=40022,
             append=("pinrig.case=1",))
    d.update(kw)
    return QemuConfig(**d)


MAPPING = {"/root/.cache/pinrig/k/vmlinuz": "/w/objects/aa/vmlinuz",
           "/root/.cache/pinrig/k/boot/initrd.cpio.gz": "/w/objects/bb/initrd.cpio.gz",
           "/root/.cache/pinrig/k/boot/modules.img": "/w/objects/cc/modules.img",
           "/repo/results/r1/boots/x-1/overlay.qcow2": "/w/runs/r1/boots/x-1/overlay.qcow2",
           "/repo/results/r1/boots/x-1/pmem.img": "/w/runs/r1/boots/x-1/pmem.img"}


def test_remote_argv_is_build_argv_with_every_path_rewritten():
    local = local_cfg()
    rcfg = machine.remote_config(local, MAPPING, "tcg", 41000)
    argv = build_argv(rcfg)
    expect = []
    for a in build_argv(local):
        for lp, rp in MAPPING.items():
            a = a.replace(lp, rp)
        expect.append(a.replace("127.0.0.1:40022-", "127.0.0.1:41000-"))
    assert argv == expect
    text = " ".join(argv)
    assert "/root/.cache" not in text and "/repo/" not in text
    assert "hostfwd=tcp:127.0.0.1:41000-:22" in text      # forwarded on the host's loopback only
    assert "mem-path=/w/runs/r1/boots/x-1/pmem.img" in text
    assert "pinrig.case=1" in text


def test_remote_argv_uses_the_hosts_accel():
    argv = build_argv(machine.remote_config(local_cfg(accel="tcg"), MAPPING, "kvm", 41000))
    assert argv[argv.index("-accel") + 1] == "kvm"


def test_remote_argv_refuses_an_unmapped_path():
    m = dict(MAPPING)
    del m["/repo/results/r1/boots/x-1/pmem.img"]
    with pytest.raises(InfraError, match="no remote path for /repo/results/r1/boots/x-1/pmem.img"):
        machine.remote_config(local_cfg(), m, "tcg", 41000)


def test_remote_argv_without_pmem_or_modules():
    cfg = local_cfg(pmem=None, modules_disk=None)
    argv = build_argv(machine.remote_config(cfg, MAPPING, "tcg", 41000))
    assert "nvdimm,id=nv1,memdev=mem1" not in argv and "/w/objects/aa/vmlinuz" in argv


def test_remote_path_mirrors_the_results_directory():
    root = Path("/repo/results/r1")
    assert machine.remote_path(root, "/w/runs/r1", root / "boots/lost-write_ext4_shared/pmem.img") \
        == "/w/runs/r1/boots/lost-write_ext4_shared/pmem.img"
    assert machine.remote_path(root, "/w/runs/r1", root) == "/w/runs/r1"
    assert machine.remote_path(root, "/w/runs/r1", Path("/tmp/elsewhere/pmem.img")) \
        == "/w/runs/r1/misc/pmem.img"


def test_qemu_command_prints_the_pid_then_execs_qemu():
    cmd = machine.qemu_command("/w/runs/r 1", ["qemu-system-x86_64", "-append", "a b"])
    assert cmd == ("cd '/w/runs/r 1' && echo PINRIG-QEMU-PID $$ && "
                   "exec qemu-system-x86_64 -append 'a b'")


PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:A0D9 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 0100007F:0016 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1
  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 0 0 0
"""


def test_listening_ports_and_pick_port():
    busy = machine.listening_ports(PROC_NET_TCP)
    assert busy == {0xA0D9, 0x1F90}                 # 0016 is an established connection
    rng = random.Random(1)
    p = machine.pick_port(busy, rng, 41177, 41178)
    assert p in (41177, 41178)
    assert machine.pick_port({41177}, rng, 41177, 41178) == 41178
    with pytest.raises(InfraError):
        machine.pick_port({5}, rng, 5, 5)


def test_host_accel_from_pool_and_env(monkeypatch):
    h = host("a", kvm=True)
    assert machine.host_accel(h) == "kvm"
    monkeypatch.setenv("PINRIG_ACCEL", "tcg")
    assert machine.host_accel(h) == "tcg"


# ---------------------------------------------------------------------------- host checks

CHECK_OUT = """tool qemu-system-x86_64 yes
tool qemu-img no
kvm absent
workdir ok
disk_kb 104857600
mem_kb 4194304
cpus 8
qemu QEMU emulator version 7.2.22
kernel 6.1.0-30-amd64
"""


def test_parse_check():
    f = checks.parse_check(CHECK_OUT)
    assert f["tools"] == {"qemu-system-x86_64": True, "qemu-img": False}
    assert (f["kvm"], f["workdir_ok"], f["disk_kb"], f["mem_kb"], f["cpus"]) == \
        ("absent", True, 104857600, 4194304, 8)
    assert f["qemu"] == "QEMU emulator version 7.2.22"


def test_judge_names_debian_packages_and_kvm_mismatch():
    c = checks.judge("a", "root@x:22", checks.parse_check(CHECK_OUT), True, 2, cores=16)
    assert not c.usable
    assert "qemu-img missing: apt-get install qemu-utils" in c.problems
    assert any("no /dev/kvm but the pool says kvm: true" in p for p in c.problems)
    assert any("short of 2 guests" in n for n in c.notes)
    assert any("pool says cores: 16, the host has 8" in n for n in c.notes)


def test_judge_usable_tcg_host():
    out = CHECK_OUT.replace("qemu-img no", "qemu-img yes")
    c = checks.judge("a", "t", checks.parse_check(out), False, 1)
    assert c.usable and c.problems == [] and "no /dev/kvm: TCG" in c.notes


@pytest.mark.parametrize("line,problem", [
    ("disk_kb 1048576", "only 1.0 GiB free in workdir, need 4 GiB"),
    ("mem_kb 1048576", "only 1.0 GiB memory available, one guest needs 3 GiB"),
    ("workdir bad", "workdir cannot be created or is not writable"),
    ("kvm denied", "/dev/kvm not accessible (group kvm?) but the pool says kvm: true"),
    ("tool qemu-system-x86_64 no", "qemu-system-x86_64 missing: apt-get install qemu-system-x86"),
])
def test_judge_problems(line, problem):
    key = line.split()[0] + (" " + line.split()[1] if line.startswith("tool") else "")
    lines = [ln for ln in CHECK_OUT.replace("qemu-img no", "qemu-img yes").splitlines()
             if not ln.startswith(key)]
    c = checks.judge("a", "t", checks.parse_check("\n".join(lines + [line])), True, 1)
    assert any(problem in p for p in c.problems), c.problems


def test_check_script_runs_here(tmp_path):
    """The same script runs on every host: it must work with a plain /bin/sh."""
    import subprocess
    out = subprocess.run(["sh", "-c", checks.CHECK_SCRIPT.format(workdir=tmp_path / "w")],
                         capture_output=True, text=True).stdout
    f = checks.parse_check(out)
    assert set(f["tools"]) == {"qemu-system-x86_64", "qemu-img"}
    assert f["workdir_ok"] and f["disk_kb"] > 0 and f["mem_kb"] > 0 and f["cpus"] >= 1


def test_check_host_reports_an_unreachable_key(tmp_path):
    h = host("a", key=tmp_path / "missing")
    c = checks.check_host(h)
    assert not c.usable and "key" in c.problems[0] and "not found" in c.problems[0]
    assert "a" in checks.format_checks([c]) and "UNUSABLE" in checks.format_checks([c])


# ---------------------------------------------------------------------------- shipping

CH = shipping.SHIP_CHUNK


def sparse_file(path: Path, size: int, writes: dict) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
        for off, data in writes.items():
            f.seek(off)
            f.write(data)
    return path


def test_data_chunks_skip_holes_and_zeros(tmp_path):
    p = sparse_file(tmp_path / "img", 10 * CH, {0: b"A" * 10, 3 * CH + 5: b"B",
                                               6 * CH: bytes(CH)})     # explicit zeros
    chunks = list(shipping.data_chunks(p))
    assert [off for off, _ in chunks] == [0, 3 * CH]
    assert chunks[1][1][5:6] == b"B" and len(chunks[1][1]) == CH


def test_content_hash_depends_on_content_not_allocation(tmp_path):
    a = sparse_file(tmp_path / "a", 4 * CH, {CH: b"x" * 100})
    dense = tmp_path / "b"
    dense.write_bytes(a.read_bytes())                # same bytes, no holes
    assert os.stat(dense).st_blocks > os.stat(a).st_blocks
    assert shipping.content_hash(a) == shipping.content_hash(dense)
    c = sparse_file(tmp_path / "c", 4 * CH, {CH: b"y" * 100})
    d = sparse_file(tmp_path / "d", 5 * CH, {CH: b"x" * 100})      # size counts
    assert len({shipping.content_hash(x) for x in (a, c, d)}) == 3


def test_cached_hash_recomputes_only_when_the_file_changes(tmp_path, monkeypatch):
    p = sparse_file(tmp_path / "a", CH, {0: b"1"})
    calls = []
    real = shipping.content_hash
    monkeypatch.setattr(shipping, "content_hash", lambda x: calls.append(x) or real(x))
    h1 = shipping.cached_hash(p)
    assert shipping.cached_hash(p) == h1 and len(calls) == 1
    time.sleep(0.01)
    sparse_file(p, CH, {0: b"2"})
    assert shipping.cached_hash(p) != h1 and len(calls) == 2


class LocalSftp:
    """Enough of paramiko.SFTPClient, on the local filesystem."""

    def __init__(self):
        self.ops = []

    def open(self, path, mode):
        self.ops.append(("open", path))
        f = open(path, mode)
        f.set_pipelined = lambda on: None
        return f

    def chmod(self, path, mode):
        os.chmod(path, mode)

    def posix_rename(self, a, b):
        self.ops.append(("rename", a, b))
        os.rename(a, b)

    def remove(self, path):
        os.unlink(path)


def test_upload_sparse_sends_only_data_and_renames_into_place(tmp_path):
    src = sparse_file(tmp_path / "rootfs.img", 64 * CH, {5 * CH: b"data" * 1000,
                                                        63 * CH + 7: b"end"})
    dest = tmp_path / "objects" / "rootfs.img"
    dest.parent.mkdir()
    sftp = LocalSftp()
    sent = shipping.upload_sparse(sftp, src, str(dest))
    assert sent == 2 * CH
    assert dest.read_bytes() == src.read_bytes()
    assert os.stat(dest).st_blocks * 512 <= 4 * CH            # holes stayed holes
    assert oct(os.stat(dest).st_mode & 0o777) == "0o400"
    assert sftp.ops[0][1].startswith(str(dest) + ".part-") and sftp.ops[-1][0] == "rename"


def test_object_path_is_content_addressed():
    assert shipping.object_path("/w", "ab" * 32, "vmlinuz") == f"/w/objects/{'ab' * 16}/vmlinuz"


# ---------------------------------------------------------------------------- the remote Machine


def test_channel_child_reads_like_pexpect():
    ch = FakeChan(b"hello")
    child = machine._ChannelChild(ch, b"PENDING")
    assert child.read_nonblocking(100, 0.01) == b"PENDING"
    assert child.read_nonblocking(100, 0.01) == b"hello"
    with pytest.raises(pexpect.TIMEOUT):
        child.read_nonblocking(100, 0.01)
    ch.exited = True
    with pytest.raises(pexpect.EOF):
        child.read_nonblocking(100, 0.01)


def test_channel_child_eof_when_the_connection_dies():
    ch = FakeChan()
    ch.t.active = False
    with pytest.raises(pexpect.EOF):
        machine._ChannelChild(ch).read_nonblocking(100, 0.01)


def test_remote_machine_is_ended_by_its_pid(tmp_path):
    ch = FakeChan()
    slot = FakeSlot(ch)
    m = RemoteMachine(argv=["qemu-system-x86_64"], workdir=tmp_path,
                      console_log=tmp_path / "console.log", ssh_port=1, accel="tcg", slot=slot,
                      remote_dir="/w", remote_pid=4321, chan=ch)
    assert m.pid == 4321 and m.alive()
    m.kill()
    assert slot.commands == ["kill -TERM 4321"] and ch.closed and not m.alive()


def test_remote_machine_escalates_to_sigkill(tmp_path, monkeypatch):
    ch = FakeChan()
    slot = FakeSlot(ch)
    slot.exec = lambda cmd, timeout=60: slot.commands.append(cmd) or (
        setattr(ch, "exited", cmd.startswith("kill -KILL")) or (0, "", ""))
    m = RemoteMachine(argv=["q"], workdir=tmp_path, console_log=tmp_path / "c.log", ssh_port=1,
                      accel="tcg", slot=slot, remote_dir="/w", remote_pid=99, chan=ch)
    monkeypatch.setattr(RemoteMachine, "_reap", lambda self, t: not self.alive())
    m.kill()
    assert slot.commands == ["kill -TERM 99", "kill -KILL 99"]


def test_remote_machine_that_never_started_is_not_signalled(tmp_path):
    ch = FakeChan()
    slot = FakeSlot(ch)
    m = RemoteMachine(argv=["q"], workdir=tmp_path, console_log=tmp_path / "c.log", ssh_port=1,
                      accel="tcg", slot=slot, remote_dir="/w", remote_pid=None, chan=ch)
    m.kill()
    assert slot.commands == [] and ch.closed


def test_console_rotation_keeps_a_lost_hosts_console(tmp_path):
    log = tmp_path / "console.log"
    log.write_text("first host")
    vm.rotate_console(log)
    log.write_text("second host")
    vm.rotate_console(log)
    assert not log.exists()
    assert (tmp_path / "console.prev-1.log").read_text() == "first host"
    assert (tmp_path / "console.prev-2.log").read_text() == "second host"


# ---------------------------------------------------------------------------- Session hooks

class RecordingHost:
    """A stand-in for RemoteSlot as Session sees it."""

    def __init__(self):
        self.calls = []

    def prepare(self, art, boot, image, workdir, accel, pmem=None, append=(), mem_mb=2048):
        self.calls.append(("prepare", workdir, accel, pmem, append))
        return FakeBootMachine()

    def guest_sock(self, port):
        self.calls.append(("guest_sock", port))
        return "SOCK-FACTORY"

    def remove(self, p):
        self.calls.append(("remove", p))


class RecordingGuest:
    made = []
    attempts = 1

    def __init__(self, port, key, host_key_pub, user="root", sock=None):
        self.port, self.sock = port, sock
        RecordingGuest.made.append(self)

    def connect(self, timeout):
        return self

    def run(self, *a, **k):
        raise InfraError("gone")

    def close(self):
        pass


def test_session_boots_through_its_host(tmp_path, monkeypatch):
    monkeypatch.setattr(session, "Guest", RecordingGuest)
    env = types.SimpleNamespace(spec=types.SimpleNamespace(name="k"), art="ART", boot="BOOT", accel="tcg", saved=None, fallbacks=[], image=types.SimpleNamespace(
        ssh_key=Path("/k"), host_key_pub="ssh-ed25519 AAAA"))
    h = RecordingHost()
    s = session.Session(env, tmp_path / "b", pmem=tmp_path / "pmem.img", host=h)
    br = s.boot()
    assert br.status == "ready"
    assert h.calls[0] == ("prepare", tmp_path / "b", "tcg", tmp_path / "pmem.img", ())
    assert h.calls[1] == ("guest_sock", 4242)
    assert RecordingGuest.made[-1].sock == "SOCK-FACTORY"
    s.close()
    s.discard_pmem()
    assert h.calls[2:] == [("remove", tmp_path / "b" / "overlay.qcow2"),
                           ("remove", tmp_path / "pmem.img")]


def test_local_session_still_unlinks_locally(tmp_path):
    (tmp_path / "pmem.img").write_text("x")
    s = session.Session(None, tmp_path)
    s.discard_pmem()
    assert not (tmp_path / "pmem.img").exists()


# ---------------------------------------------------------------------------- transport sock

def test_guest_connects_over_a_given_socket(tmp_path):
    """Guest(sock=factory): the handshake goes over what the factory returns (a jump channel in
    real runs), whatever port is named."""
    import socket as so

    from pinrig.guest.transport import Guest
    from tests.fakes import FakeSshd, keygen
    hk, hk_pub = keygen(tmp_path / "host")
    ck, ck_pub = keygen(tmp_path / "client")
    srv = FakeSshd(hk, ck_pub, handler=lambda cmd: ("over the sock\n", "", 0))
    try:
        made = []

        def factory():
            s = so.create_connection(("127.0.0.1", srv.port), timeout=5)
            made.append(s)
            return s
        time.sleep(0.2)
        g = Guest(1, ck, hk_pub, sock=factory).connect(10)     # port 1: never dialled
        assert made and g.run("x").stdout == "over the sock\n"
        g.close()
    finally:
        srv.close()


def test_guest_with_one_socket_tries_once(tmp_path):
    import socket as so

    from pinrig.guest.transport import Guest
    from tests.fakes import keygen
    _hk, hk_pub = keygen(tmp_path / "host")
    ck, _ = keygen(tmp_path / "client")
    a, b = so.socketpair()
    b.close()                                   # the other end is gone at once
    calls = []
    real = ssh.connect

    def counting(*args, **kw):
        calls.append(1)
        return real(*args, **kw)
    ssh_mod = pytest.MonkeyPatch()
    ssh_mod.setattr(ssh, "connect", counting)
    try:
        with pytest.raises(InfraError):
            Guest(1, ck, hk_pub, sock=a).connect(30)
    finally:
        ssh_mod.undo()
    assert calls == [1]                       # one socket, one attempt


# ---------------------------------------------------------------------------- HostRunDir

class HealthSlot:
    def __init__(self, why=None):
        self.why = why
        self.last_pmem = "/w/runs/r/boots/lost-write_ext4_shared/pmem.img"
        self.rhost = types.SimpleNamespace(host=host("h"))

    def healthy(self):
        return self.why


def C(fs, workload="ibverbs-pin", **kw):
    return Case(workload, fs, "shared", **kw)


def test_hostrundir_records_the_host(tmp_path):
    run = RunDir(tmp_path)
    s = Scheduler([], ["h"])
    t = Task(0, 1, (C("ext4"),))
    rd = HostRunDir(run, "h", HealthSlot(), s, t)
    rd.write_case(Verdict("ibverbs-pin/ext4/shared", "ok"), {"console.log": "x"})
    d = json.loads((tmp_path / "cases/ibverbs-pin/ext4/shared/verdict.json").read_text())
    assert d["host"] == "h" and d["verdict"] == "ok" and d["pmem_on_host"] is None
    assert rd.written == ["ibverbs-pin/ext4/shared"] and s.done == {"h": ["ibverbs-pin/ext4/shared"]}
    assert rd.path == tmp_path                      # the rest is the RunDir's


def test_hostrundir_error_on_a_dead_host_is_not_a_verdict(tmp_path):
    run = RunDir(tmp_path)
    rd = HostRunDir(run, "h", HealthSlot("host h: ssh connection lost"), Scheduler([], ["h"]),
                    Task(0, 1, (C("ext4"),)))
    with pytest.raises(HostLost, match="ssh connection lost"):
        rd.write_case(Verdict("ibverbs-pin/ext4/shared", "error", reason="guest died"), {})
    assert not (tmp_path / "cases").exists() and rd.written == []
    # a kernel verdict stands whatever happened to the host afterwards
    rd.write_case(Verdict("ibverbs-pin/ext4/shared", "crash", title="BUG: x"), {})
    assert rd.written == ["ibverbs-pin/ext4/shared"]


def test_hostrundir_points_at_kept_pmem_evidence(tmp_path):
    rd = HostRunDir(RunDir(tmp_path), "h", HealthSlot(), Scheduler([], ["h"]),
                    Task(0, 1, (C("ext4", "lost-write"),), own_guest=True))
    rd.write_case(Verdict("lost-write/ext4/shared", "data-loss", blocks_lost=3), {})
    d = json.loads((tmp_path / "cases/lost-write/ext4/shared/verdict.json").read_text())
    assert d["pmem_on_host"] == "root@192.0.2.1:22:/w/runs/r/boots/lost-write_ext4_shared/pmem.img"


def test_local_host_in_a_pool_is_never_health_checked(tmp_path):
    rd = HostRunDir(RunDir(tmp_path), "local", None, Scheduler([], ["local"]),
                    Task(0, 1, (C("ext4"),)))
    rd.write_case(Verdict("ibverbs-pin/ext4/shared", "error", reason="boot failed"), {})
    assert rd.written == ["ibverbs-pin/ext4/shared"]


# ---------------------------------------------------------------------------- sharded failover

def host(name, kvm=False, key=Path("/dev/null")):
    return Host(name=name, address="192.0.2.1", user="root", key=key, cores=2,
                memory_mb=4096, kvm=kvm, workdir="/w")


def sharded(tmp_path, monkeypatch, rhosts, local=False):
    monkeypatch.setattr(remote, "RemoteSlot", FakeRemoteSlot)
    pool = Pool("t", tuple(r.host for r in rhosts), local=local)
    env = types.SimpleNamespace(accel="tcg", qemu_version="QEMU 7.2")
    run = RunDir(tmp_path / "run", {})
    run.path.mkdir()
    sh = Shard(pool, env, run, echo=lambda *a: None, jobs=1)
    sh.remote = {r.name: r for r in rhosts}
    monkeypatch.setattr(sh, "files", lambda: [])
    return sh, run


def fake_task(log, die_on=None):
    """Writes an ok verdict per case; on host `die_on[0]`, at its case number die_on[1], the host
    dies (the case ends as an error, as a lost guest does)."""
    count = {}

    def task(attempt, cases, host=None, rundir=None):
        out = []
        name = host.name if host else "local"
        for c in cases:
            count[name] = count.get(name, 0) + 1
            log.append((name, c.id))
            if die_on and name == die_on[0] and count[name] == die_on[1]:
                boot = rundir.path / "boots" / c.id.replace("/", "_")
                boot.mkdir(parents=True)
                (boot / "console.log").write_text(f"the console of {name}")
                host.boot_dirs.append(boot)
                host.rhost.dead = f"host {name}: ssh connection lost; reconnect failed"
                rundir.write_case(Verdict(c.id, "error", reason="lost the guest"), {})
            v = Verdict(c.id, "ok", attempt=attempt)
            rundir.write_case(v, {"console.log": f"on {name}"})
            out.append(v)
        return out
    return task


def test_sharded_run_spreads_tasks_and_records_hosts(tmp_path, monkeypatch):
    a, b = FakeRemoteHost(host("a")), FakeRemoteHost(host("b"))
    sh, run = sharded(tmp_path, monkeypatch, [a, b])
    log = []

    def slow(attempt, cases, host=None, rundir=None):
        time.sleep(0.2)                       # both hosts get to pull a task
        return fake_task(log)(attempt, cases, host, rundir)
    vs = sh.run_tasks([(1, [C("ext4")]), (1, [C("tmpfs")])], slow, lambda c: False)
    assert sorted(v.case for v in vs) == ["ibverbs-pin/ext4/shared", "ibverbs-pin/tmpfs/shared"]
    assert {h for h, _ in log} == {"a", "b"}
    m = run.manifest["hosts"]
    assert m["pool"] == "t" and m["failures"] == []
    assert {n: p["status"] for n, p in m["participants"].items()} == {"a": "ok", "b": "ok"}
    assert sum(len(p["cases"]) for p in m["participants"].values()) == 2
    assert run.manifest["accel"] == "tcg"
    on_disk = json.loads((tmp_path / "run/manifest.json").read_text())
    assert on_disk["hosts"] == m


def test_host_dying_mid_task_hands_the_rest_over_and_keeps_what_finished(tmp_path, monkeypatch):
    a = FakeRemoteHost(host("a"), delay=0.3)         # b pulls the big task first
    b = FakeRemoteHost(host("b"))
    sh, run = sharded(tmp_path, monkeypatch, [a, b])
    log = []
    group = [C("tmpfs"), C("ext4"), C("xfs")]
    vs = sh.run_tasks([(1, group), (1, [C("ext4-dax")])], fake_task(log, die_on=("b", 2)),
                      lambda c: False)
    ids = sorted(v.case for v in vs)
    assert ids == sorted(c.id for c in group + [C("ext4-dax")])      # nothing lost, no dups
    assert ("b", "ibverbs-pin/tmpfs/shared") in log                   # finished on b: kept
    assert [c for h, c in log if h == "a"].count("ibverbs-pin/tmpfs/shared") == 0
    assert ("a", "ibverbs-pin/ext4/shared") in log and ("a", "ibverbs-pin/xfs/shared") in log
    hosts_on_disk = {json.loads(p.read_text())["case"]: json.loads(p.read_text())["host"]
                     for p in (tmp_path / "run/cases").rglob("verdict.json")}
    assert hosts_on_disk["ibverbs-pin/tmpfs/shared"] == "b"
    assert hosts_on_disk["ibverbs-pin/ext4/shared"] == "a"
    m = run.manifest["hosts"]
    f = m["failures"][0]
    assert f["host"] == "b" and "reconnect failed" in f["reason"]
    assert f["kept"] == ["ibverbs-pin/tmpfs/shared"]
    assert f["requeued"] == ["ibverbs-pin/ext4/shared", "ibverbs-pin/xfs/shared"]
    assert m["participants"]["b"]["status"] == "failed"
    text = sh.summary()
    assert "FAILED" in text and "moved to other hosts: ibverbs-pin/ext4/shared" in text
    boot = tmp_path / "run/boots/ibverbs-pin_ext4_shared"   # the rerun must not append to it
    assert [p.name for p in boot.iterdir()] == ["console.prev-1.log"]


def test_unreachable_host_is_reported_and_others_run_everything(tmp_path, monkeypatch):
    a = FakeRemoteHost(host("a"))
    b = FakeRemoteHost(host("b"), fail="cannot connect: [Errno 111] Connection refused")
    said = []
    sh, run = sharded(tmp_path, monkeypatch, [a, b])
    sh.echo = said.append
    vs = sh.run_tasks([(1, [C("ext4")]), (1, [C("tmpfs")])], fake_task([]), lambda c: False)
    assert len(vs) == 2
    assert run.manifest["hosts"]["failures"][0]["reason"].endswith("Connection refused")
    assert any("host b dropped out" in s for s in said)


def test_every_host_gone_is_an_infra_error_with_resume_hint(tmp_path, monkeypatch):
    a = FakeRemoteHost(host("a"), fail="cannot connect")
    sh, run = sharded(tmp_path, monkeypatch, [a])
    with pytest.raises(InfraError, match=r"every host dropped out, 1 case\(s\) not run.*--resume"):
        sh.run_tasks([(1, [C("ext4")])], fake_task([]), lambda c: False)


def test_local_participant_runs_tasks_here(tmp_path, monkeypatch):
    a = FakeRemoteHost(host("a"), fail="cannot connect")
    sh, run = sharded(tmp_path, monkeypatch, [a], local=True)
    log = []
    vs = sh.run_tasks([(1, [C("ext4")]), (1, [C("tmpfs")])], fake_task(log), lambda c: False)
    assert len(vs) == 2 and {h for h, _ in log} == {"local"}
    assert run.manifest["hosts"]["participants"]["local"]["cases"]


def test_a_bug_in_a_task_stops_the_run_and_is_raised(tmp_path, monkeypatch):
    sh, run = sharded(tmp_path, monkeypatch, [FakeRemoteHost(host("a"))])

    def boom(attempt, cases, host=None, rundir=None):
        raise InfraError("qemu-img create failed on a healthy host")
    with pytest.raises(InfraError, match="healthy host"):
        sh.run_tasks([(1, [C("ext4")])], boom, lambda c: False)


def test_ctrl_c_stops_the_queue_before_guests_die_as_errors(tmp_path, monkeypatch):
    import signal
    sh, run = sharded(tmp_path, monkeypatch, [FakeRemoteHost(host("a"))])
    refused = []

    def interrupted(attempt, cases, host=None, rundir=None):
        os.kill(os.getpid(), signal.SIGINT)     # the user presses Ctrl-C; QEMU gets killed
        deadline = time.monotonic() + 10        # the main thread stops the queue (a loaded
        while not rundir.sched.stopping and time.monotonic() < deadline:   # box is slow to)
            time.sleep(0.05)
        try:
            rundir.write_case(Verdict(cases[0].id, "error", reason="guest died"), {})
        except InfraError as e:
            refused.append(str(e))
            raise
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        sh.run_tasks([(1, [C("ext4")]), (1, [C("xfs")])], interrupted, lambda c: False)
    time.sleep(0.6)
    assert refused == ["run interrupted"]
    assert not (tmp_path / "run/cases").exists()           # left for --resume, not errors
    assert signal.getsignal(signal.SIGINT) is before


def test_connection_errors_read_like_errno_text():
    from paramiko.ssh_exception import NoValidConnectionsError
    e = NoValidConnectionsError({("10.0.0.1", 22): ConnectionRefusedError(111, "Connection refused")})
    assert ssh.why(e) == "Connection refused"
    assert ssh.why(EOFError()) == "EOFError"
