"""Every fake the unit tests use, in one place: the process layer, SSH, guests, hosts, runs.

Fakes stand in for the process and network layers only; no kernel outcome is ever faked
into a result (the integration tests boot real kernels for that)."""
import json
import os
import socket
import subprocess
import threading
import time
from types import SimpleNamespace

import paramiko

from pinrig import config, proc
from pinrig.cases.execute import case_seed
from pinrig.cases.verdict import Verdict
from pinrig.errors import InfraError, UserError
from pinrig.fleet.remote import HostLost
from pinrig.guest.qemu import free_port
from pinrig.guest.transport import CmdResult
from pinrig.results.rundir import RunDir


# from tests/unit/conftest.py
class FakeRunner:
    """Stands in for proc.RUNNER: records argv lists, answers through `handler`.

    handler(argv, kwargs) -> (returncode, stdout, stderr)."""

    def __init__(self):
        self.calls = []
        self.handler = lambda argv, kw: (0, "", "")

    def run(self, argv, **kw):
        argv = [str(a) for a in argv]
        self.calls.append((argv, kw))
        rc, out, err = self.handler(argv, kw)
        return proc.Result(argv, rc, out, err)

    def argvs(self):
        return [a for a, _ in self.calls]


# from tests/unit/test_transport.py
def keygen(path, comment="pinrig-test"):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f",
                    str(path)], check=True, stdin=subprocess.DEVNULL)
    return path, (path.with_name(path.name + ".pub")).read_text().strip()


# from tests/unit/test_transport.py
class _Server(paramiko.ServerInterface):
    def __init__(self, client_pub, handler):
        self.client_pub, self.handler = client_pub, handler
        self.commands = []

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        if username == "root" and key.get_base64() == self.client_pub.split()[1]:
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else \
            paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command):
        cmd = command.decode()
        self.commands.append(cmd)
        threading.Thread(target=self._exec, args=(channel, cmd), daemon=True).start()
        return True

    def _exec(self, chan, cmd):
        res = self.handler(cmd)
        if res is None:            # hang: never answer
            return
        out, err, rc = res
        chan.sendall(out.encode())
        chan.sendall_stderr(err.encode())
        chan.send_exit_status(rc)


# from tests/unit/test_transport.py
class FakeSshd:
    """Listens on 127.0.0.1; every connection gets a paramiko server with `host_key`."""

    def __init__(self, host_key_path, client_pub, handler=lambda cmd: ("", "", 0), port=None,
                 delay=0.0):
        self.host_key = paramiko.Ed25519Key(filename=str(host_key_path))
        self.server = _Server(client_pub, handler)
        self.port = port or free_port()
        self.transports, self.stop = [], threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(delay,), daemon=True)
        self.thread.start()

    def _serve(self, delay):
        time.sleep(delay)
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(4)
        ls.settimeout(0.1)
        with ls:
            while not self.stop.is_set():
                try:
                    conn, _ = ls.accept()
                except socket.timeout:
                    continue
                t = paramiko.Transport(conn)
                t.add_server_key(self.host_key)
                self.transports.append(t)
                try:
                    t.start_server(server=self.server)
                except (paramiko.SSHException, EOFError, OSError):
                    pass

    def close(self):
        self.stop.set()
        for t in self.transports:
            t.close()
        self.thread.join(2)


# from tests/unit/test_hosts_remote.py
class FakeTransport:
    def __init__(self):
        self.active = True

    def is_active(self):
        return self.active


# from tests/unit/test_hosts_remote.py
class FakeChan:
    def __init__(self, data=b""):
        self.data, self.closed, self.eof_received, self.exited = bytearray(data), False, False, False
        self.t = FakeTransport()
        self.r, self.w = os.pipe()

    def fileno(self):
        return self.r

    def recv_ready(self):
        return bool(self.data)

    def recv(self, n):
        out = bytes(self.data[:n])
        del self.data[:n]
        return out

    def exit_status_ready(self):
        return self.exited

    def get_transport(self):
        return self.t

    def close(self):
        self.closed = True


# from tests/unit/test_hosts_remote.py
class FakeSlot:
    name = "h"

    def __init__(self, chan):
        self.chan, self.commands = chan, []

    def exec(self, cmd, timeout=60):
        self.commands.append(cmd)
        if cmd.startswith("kill -TERM"):
            self.chan.exited = True
        return 0, "", ""


# from tests/unit/test_hosts_remote.py
class FakeBootMachine:
    ssh_port = 4242
    info = {}

    def start(self):
        return self

    def wait_console_ready(self, timeout, sshd_only=False):
        self.info = {"nic": "eth0", "rdma": "rxe0", "pmem": "/dev/pmem0"}
        return "ready"

    def alive(self):
        return False

    def kill(self):
        pass


# from tests/unit/test_hosts_remote.py
class FakeRemoteHost:
    def __init__(self, h, delay=0.0, fail=None):
        self.host, self.name, self.accel = h, h.name, "tcg"
        self.delay, self.fail, self.dead = delay, fail, None
        self.ready, self.ship_stats = False, {}

    def ensure_ready(self, files):
        time.sleep(self.delay)
        if self.fail:
            raise HostLost(f"host {self.name}: {self.fail}")

    def qemu_version(self):
        return "QEMU 7.2"


# from tests/unit/test_hosts_remote.py
class FakeRemoteSlot:
    def __init__(self, rhost, local_root, remote_root):
        self.rhost, self.name, self.remote_root = rhost, rhost.name, remote_root
        self.last_pmem = None

    def open(self):
        return self

    def healthy(self):
        return self.rhost.dead

    def close(self):
        pass


# from tests/unit/test_kernel.py
class FakeApt:
    """PrivateApt-like: show() answers from a table, and fails loudly for anything else."""

    def __init__(self, suite, table):
        self.suite, self.table, self.shown = suite, table, []

    def show(self, pkg, version=None):
        self.shown.append(pkg)
        if pkg not in self.table:
            raise UserError(f"package {pkg} not found in Debian suite {self.suite}")
        return dict(self.table[pkg])


# from tests/unit/test_nightly.py
class FakeNightlyRunSuite:
    """Writes a results directory the way runner.run_suite does, from BEHAVIOUR; can stop
    ("be killed") after a given number of cases in total."""

    def __init__(self, behaviour, kill_after=None, fail=()):
        self.behaviour, self.kill_after, self.fail = behaviour, kill_after, set(fail)
        self.calls = []
        self.cases_run = 0

    def __call__(self, kernel_arg, suite_arg, out=None, seed=None, resume=None, junit=None,
                 echo=print, repeat=None):
        self.calls.append((kernel_arg, suite_arg, "resume" if resume else "new"))
        if kernel_arg in self.fail:
            raise InfraError(f"kernel {kernel_arg}: download failed")
        spec = config.load_kernel_spec(kernel_arg)
        suite = config.load_suite(suite_arg)
        repeat = suite.repeat if repeat is None else repeat
        path = resume or out
        if resume:
            run = RunDir(path, json.loads((path / "manifest.json").read_text()))
        else:
            path.mkdir(parents=True, exist_ok=True)
            run = RunDir(path, {
                "run_id": path.name, "kernel": {
                    "name": spec.name, "release": f"{spec.name}-rel",
                    "packages": [f"linux-image-{spec.name}=1"], "hash": f"h{spec.name}"},
                "guest": {"name": "bookworm", "hash": "g"}, "seed": suite.seed,
                "suite": {"name": suite.name,
                          "cases": [c.__dict__ | {"id": c.id} for c in suite.cases]},
                "repeat": repeat, "accel": "tcg", "host": {"hostname": "h", "cpus": 2}})
            run.write_manifest()
        done = run.finished_cases()
        vs = []
        for k in range(1, run.manifest["repeat"] + 1):
            for c in suite.cases:
                if (c.id, k) in done:
                    continue
                if self.kill_after is not None and self.cases_run >= self.kill_after:
                    raise KeyboardInterrupt
                v = Verdict(c.id, attempt=k, **self.behaviour[spec.name][c.id])
                run.write_case(v, {"guest.log": "guest output"})
                self.cases_run += 1
                vs.append(v)
        (path / "summary.txt").write_text("summary\n")
        return SimpleNamespace(run=run, verdicts=vs)


# from tests/unit/test_repro.py
class FakeReproRunSuite:
    """Stands in for runner.run_suite: each call is one attempt with a scripted verdict."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = []

    def __call__(self, kernel_arg, suite_arg, out=None, seed=None, echo=print, **kw):
        self.calls.append((kernel_arg, suite_arg, out, seed))
        spec = config.load_kernel_spec(kernel_arg)
        suite = config.load_suite(suite_arg)
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        run = RunDir(out, {"kernel": {"name": spec.name, "hash": "4904b0f192e87bd8"},
                           "seed": seed})
        out.mkdir(parents=True, exist_ok=True)
        run.write_manifest()
        vs = []
        for c in suite.cases:
            v = Verdict(c.id, seed=case_seed(seed, c.id), **item)
            run.write_case(v, {})
            vs.append(v)
        return SimpleNamespace(run=run, verdicts=vs)


# from tests/unit/test_runner_flow.py
class FakeMachine:
    def __init__(self, console=b""):
        self.killed = False
        self.console = console

    def alive(self):
        return not self.killed

    def kill(self):
        self.killed = True

    def wait_exit(self, t):
        return True

    def console_text(self, start=0):
        return self.console


# from tests/unit/test_runner_flow.py
class FakeGuest:
    """Answers every command with success, except the workload (which hangs or dies)."""

    def __init__(self, machine, workload_behaviour):
        self.machine, self.behaviour, self.client = machine, workload_behaviour, object()
        self.commands = []

    def run(self, cmd, timeout=60, check=False):
        if not isinstance(cmd, str):
            cmd = " ".join(cmd)
        self.commands.append(cmd)
        if self.machine.killed:
            raise InfraError("lost the guest's ssh connection")
        if "/opt/pinrig/bin/" in cmd:
            return self.behaviour(self.machine)
        return CmdResult(0, "", "", 0.01)


# from tests/unit/test_runner_flow.py
class FakeSession:
    def __init__(self, behaviour, console=b""):
        self.machine = FakeMachine(console)
        self.guest = FakeGuest(self.machine, behaviour)
        self.info = {"rdma": "rxe0", "pmem": "/dev/pmem0"}
        self.env = None             # no symbols: reports stay as parsed

    def alive(self):
        return self.machine.alive()


class FakeBootingSession:
    """Stands in for guest.session.Session in whole-run tests: boots "instantly" (registered in
    vm.LIVE like a real QEMU, so Ctrl-C's kill_all reaches it), and every workload blocks until
    the guest is killed — a case that is running when the signal comes.

    FakeBootingSession.boots counts boots (across instances); `slow` makes workloads block."""
    boots: list = []

    def __init__(self, env, workdir, pmem=None, host=None, append=()):
        from pinrig.guest import vm
        self.env, self.workdir, self.pmem, self.host = env, workdir, pmem, host
        self.machine = FakeMachine()
        self.guest = None
        self.info = {"rdma": "rxe0", "pmem": "/dev/pmem0"}
        self._vm = vm

    def boot(self):
        from pinrig import interrupt
        from pinrig.guest.session import BootResult
        interrupt.check("boot")
        FakeBootingSession.boots.append(self.workdir.name)
        self._vm.LIVE[("fake", id(self))] = self.machine
        self.guest = _BlockingGuest(self.machine)
        return BootResult("ready", boot_s=0.01)

    def upload_bins(self):
        pass

    def discard_pmem(self):
        pass

    def connected_guest(self):
        return self.guest

    def alive(self):
        return self.machine.alive()

    def close(self):
        self.machine.kill()
        self._vm.LIVE.pop(("fake", id(self)), None)


class _BlockingGuest:
    def __init__(self, machine):
        self.machine, self.client = machine, object()

    def run(self, cmd, timeout=60, check=False):
        import time as _time
        if self.machine.killed:
            raise InfraError("lost the guest's ssh connection")
        if "/opt/pinrig/bin/" in (cmd if isinstance(cmd, str) else " ".join(map(str, cmd))):
            end = _time.monotonic() + timeout
            while not self.machine.killed and _time.monotonic() < end:
                _time.sleep(0.02)
            raise InfraError("lost the guest's ssh connection: EOF")
        return CmdResult(0, "", "", 0.01)


# from tests/unit/guest/test_session_boot.py
class ExitingMachine:
    def __init__(self, console, port):
        self.console, self.ssh_port, self.info, self.killed = console, port, {}, False

    def start(self):
        return self

    def wait_console_ready(self, timeout, sshd_only=False):
        return "exit"

    def kill(self):
        self.killed = True

    def started_console(self):
        return _NotPanicked()

    def console_text(self, start=0):
        return self.console


class _NotPanicked:
    panicked = False


class ScriptedGuest:
    """A guest whose every command is answered by handler(cmd) -> (rc, stdout, stderr)."""

    def __init__(self, handler):
        self.handler = handler
        self.commands: list = []

    def run(self, cmd, timeout=60, check=False):
        if not isinstance(cmd, str):
            cmd = " ".join(cmd)
        self.commands.append(cmd)
        rc, out, err = self.handler(cmd)
        return CmdResult(rc, out, err, 0.01)


# from tests/unit/runs/test_reprocmd.py
def fake_env(test_module=None):
    """What reprocmd reads of a prepared guest.session.Environment (nothing is booted)."""
    from pathlib import Path
    spec = SimpleNamespace(name="debian-6.1", path=Path("kernels/debian-6.1.yaml"),
                           suite="bookworm", kind="debian")
    return SimpleNamespace(
        spec=spec, art=SimpleNamespace(release="6.1.0-57-amd64", hash="1ff79ae6e5512852",
                                       packages=("linux-image-6.1.0-57-amd64=6.1.192-3",)),
        image=SimpleNamespace(name="bookworm", hash="3005cdeb7ebaf5db"), accel="tcg",
        boot_mode="restore", boot_note="", saved=None, qemu_version="QEMU 7.2",
        fallbacks=[], test_module=test_module)


class FakeReproSession:
    """Stands in for guest.session.Session in reprocmd: boots "instantly" (or fails as told);
    the reproducer's command is answered by behaviour(machine, cmd) (return a CmdResult, raise,
    or change machine.console / machine.killed the way a dying guest would)."""
    made: list = []

    def __init__(self, behaviour, boot_status="ready", boot_console=b""):
        self.behaviour, self.boot_status, self.boot_console = behaviour, boot_status, boot_console

    def __call__(self, env, workdir):
        s = _ReproSession(env, workdir, self.behaviour, self.boot_status, self.boot_console)
        FakeReproSession.made.append(s)
        return s


class _ReproSession:
    def __init__(self, env, workdir, behaviour, boot_status, boot_console):
        self.env, self.workdir, self.booted = env, workdir, "restore"
        self.machine = FakeMachine(boot_console)
        self.guest = self.the_guest = _ReproGuest(self.machine, behaviour)   # (guest: None once closed)
        self.boot_status, self.closed, self.pmem_discarded = boot_status, False, False

    def boot(self):
        from pinrig.guest.session import BootResult
        if self.boot_status != "ready":
            self.machine.killed = True
            return BootResult(self.boot_status, "QEMU exited during boot")
        return BootResult("ready", boot_s=0.01)

    def connected_guest(self):
        return self.guest

    def alive(self):
        return self.machine.alive()

    def close(self):
        self.closed = True
        self.machine.kill()

    def discard_pmem(self):
        self.pmem_discarded = True


class _ReproGuest:
    def __init__(self, machine, behaviour):
        self.machine, self.behaviour, self.client = machine, behaviour, object()
        self.commands, self.puts, self.closed = [], [], False

    def run(self, cmd, timeout=60, check=False):
        if not isinstance(cmd, str):
            cmd = " ".join(map(str, cmd))
        self.commands.append(cmd)
        if self.machine.killed or self.closed:
            raise InfraError("lost the guest's ssh connection")
        if "pinrig: case-" in cmd:
            self.machine.console += ("[    7.0] " + cmd.split("'")[1] + "\n").encode()
            return CmdResult(0, "", "", 0.01)
        if cmd.startswith("mkdir -p /tmp/pinrig-repro &&"):
            return self.behaviour(self.machine, cmd)
        if cmd == "dmesg":
            return CmdResult(0, self.machine.console.decode(), "", 0.01)
        return CmdResult(0, "", "", 0.01)

    def put(self, local, remote, mode=None):
        self.puts.append((str(local), remote, mode))

    def close(self):
        self.closed = True
