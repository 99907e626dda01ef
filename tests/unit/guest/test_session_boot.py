"""A boot lost to a port race is retried on a new port (issue 11: item 17)."""
from types import SimpleNamespace

from pinrig.guest import session as S
from tests.fakes import ExitingMachine

TAKEN = b"qemu-system-x86_64: -netdev user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:40001-:22: " \
        b"Could not set up host forwarding rule 'tcp:127.0.0.1:40001-:22'\n"


def _session(tmp_path, consoles):
    ports = iter(range(40001, 40010))
    prepared = []

    def prepare(*a, **k):
        m = ExitingMachine(consoles.pop(0), next(ports))
        prepared.append(m)
        return m
    env = SimpleNamespace(spec=SimpleNamespace(name="k"), art=None, boot=None, image=None, accel="tcg", saved=None, fallbacks=[])
    sess = S.Session(env, tmp_path)
    sess.host = SimpleNamespace(prepare=prepare, guest_sock=lambda port: None, remove=None)
    return sess, prepared


def test_port_race_is_retried_on_a_new_port(tmp_path):
    sess, prepared = _session(tmp_path, [TAKEN, TAKEN, b"Kernel panic - not syncing: x\n"])
    res = sess.boot()
    assert len(prepared) == 3 and [m.ssh_port for m in prepared] == [40001, 40002, 40003]
    assert res.status == "error" and "Kernel panic" in res.console_tail


def test_other_boot_failures_are_not_retried(tmp_path):
    sess, prepared = _session(tmp_path, [b"qemu: could not open kernel file\n", TAKEN])
    res = sess.boot()
    assert len(prepared) == 1 and res.status == "error"


def test_retries_are_bounded(tmp_path):
    sess, prepared = _session(tmp_path, [TAKEN] * 5)
    assert sess.boot().status == "error" and len(prepared) == S.PORT_RETRIES
