"""pinrig.guest.transport: the guest's SSH adapter, against an in-process paramiko server (no QEMU)."""
import shlex

import pytest

from pinrig.errors import InfraError
from pinrig.guest.qemu import free_port
from pinrig.guest.transport import CommandTimeout, Guest
from tests.fakes import FakeSshd, keygen


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    return {"host": keygen(d / "host"), "other": keygen(d / "other"),
            "client": keygen(d / "client")}


# ------------------------------------------------------------------------------- a tiny sshd

        # the client closes the channel once it has the exit status; closing here could beat
        # the server's reply to the exec request and look like a dropped connection


@pytest.fixture
def sshd(keys):
    servers = []

    def start(host="host", **kw):
        s = FakeSshd(keys[host][0], keys["client"][1], **kw)
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.close()


def guest_for(keys, port, host="host"):
    return Guest(port, keys["client"][0], keys[host][1])


# ------------------------------------------------------------------------------- tests

def test_guest_parses_ed25519_public_key_line(keys):
    pub = keys["host"][1]
    assert pub.startswith("ssh-ed25519 ") and pub.endswith(" pinrig-test")
    g = Guest(2222, keys["client"][0], pub)
    assert g.host_key.get_name() == "ssh-ed25519"
    assert g.host_key.get_base64() == pub.split()[1]
    assert (g.port, g.user, g.client) == (2222, "root", None)


def test_guest_parses_key_without_comment(keys):
    kind, b64 = keys["other"][1].split()[:2]
    assert Guest(1, keys["client"][0], f"{kind} {b64}").host_key.get_base64() == b64


@pytest.fixture
def attempts(monkeypatch):
    """Counts connection attempts (work done, not seconds: timing asserts flake under load)."""
    from pinrig import ssh
    calls = []
    real = ssh.connect

    def counting(*a, **k):
        try:
            client = real(*a, **k)
        except Exception as e:
            calls.append(type(e).__name__)
            raise
        calls.append("ok")
        return client
    monkeypatch.setattr(ssh, "connect", counting)
    return calls


def test_connect_closed_port_retries_then_fails(keys, attempts):
    port = free_port()                       # nothing listens there
    g = guest_for(keys, port)
    with pytest.raises(InfraError) as ei:
        g.connect(timeout=1)
    assert len(attempts) >= 2                # retried until the deadline, then gave up
    assert f"127.0.0.1:{port}" in str(ei.value) and "not reachable" in str(ei.value)
    assert g.client is None


def test_run_without_connection_is_infra_error(keys):
    with pytest.raises(InfraError, match="not connected"):
        guest_for(keys, 1).run("true")


def test_wrong_host_key_is_refused(keys, sshd, attempts):
    srv = sshd(host="other")                 # the guest presents a key we did not generate
    g = guest_for(keys, srv.port, host="host")
    with pytest.raises(InfraError, match="host key mismatch"):
        g.connect(timeout=10)
    assert attempts[-1] == "HostKeyMismatch" and attempts.count("HostKeyMismatch") == 1
    # (attempts before it may be refused while the fake sshd starts; none after it)
    assert g.client is None
    assert srv.server.commands == []


def test_run_captures_stdout_stderr_and_exit_code(keys, sshd):
    def handler(cmd):
        if cmd == "echo 'a b' 'it'\"'\"'s'":
            return "a b it's\n", "", 0
        if cmd == "fail":
            return "partial\n", "boom\n", 3
        return "", f"unknown {cmd}\n", 127
    srv = sshd(handler=handler)
    g = guest_for(keys, srv.port).connect(timeout=10)
    try:
        res = g.run(["echo", "a b", "it's"], timeout=10)
        assert (res.rc, res.stdout, res.stderr) == (0, "a b it's\n", "")
        assert res.wall_s >= 0
        res = g.run("fail", timeout=10)
        assert (res.rc, res.stdout, res.stderr) == (3, "partial\n", "boom\n")
        with pytest.raises(InfraError, match=r"guest command failed \(exit 3\): fail: boom"):
            g.run("fail", timeout=10, check=True)
    finally:
        g.close()
    assert g.client is None
    assert srv.server.commands[0] == shlex.join(["echo", "a b", "it's"])


def test_run_times_out(keys, sshd):
    srv = sshd(handler=lambda cmd: None)
    g = guest_for(keys, srv.port).connect(timeout=10)
    try:
        with pytest.raises(CommandTimeout, match="timed out after"):
            g.run("hang", timeout=0.5)
    finally:
        g.close()


def test_connect_retries_until_sshd_answers(keys, sshd, attempts):
    srv = sshd(delay=0.8)
    g = guest_for(keys, srv.port)
    try:
        assert g.connect(timeout=10) is g
        assert len(attempts) >= 2
        assert g.client is not None
    finally:
        g.close()


class _ScriptedChan:
    """A channel whose exit status arrives before the last of its output (then EOF)."""

    def __init__(self, steps):
        import os
        self.steps, self.out = list(steps), bytearray()
        self.exited = self.eof_received = self.closed = False
        self.r, self.w = os.pipe()

    def fileno(self):
        return self.r

    def _tick(self):
        if self.steps and not self.out:
            kind, val = self.steps.pop(0)
            if kind == "data":
                self.out += val
            elif kind == "exit":
                self.exited = True
            elif kind == "eof":
                self.eof_received = True

    def recv_ready(self):
        self._tick()
        return bool(self.out)

    def recv(self, n):
        chunk = bytes(self.out[:n])
        del self.out[:n]
        return chunk

    def recv_stderr_ready(self):
        return False

    def exit_status_ready(self):
        return self.exited

    def recv_exit_status(self):
        return 0

    def exec_command(self, cmd):
        pass

    def close(self):
        self.closed = True


def test_run_reads_output_that_comes_after_the_exit_status(monkeypatch):
    """Seen on debian-5.10 (reflink-pin/xfs/shared/control): blocksum's JSON line came back cut
    short with exit 0, because the loop stopped at the exit status before EOF."""
    from pinrig import ssh
    chan = _ScriptedChan([("data", b'{"blocks": ["a",'), ("exit", None), ("data", b' "b"]}\n'),
                          ("eof", None)])

    class T:
        def is_active(self):
            return True

        def open_session(self, timeout):
            return chan

    class C:
        def get_transport(self):
            return T()

    monkeypatch.setattr(ssh.select, "select", lambda *a: ([], [], []))
    res = ssh.run(C(), "blocksum", timeout=5)  # type: ignore[arg-type]
    assert res.rc == 0 and res.stdout == '{"blocks": ["a", "b"]}\n'
