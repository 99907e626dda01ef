"""Guests started from a saved ready state (issue 13): they come up ready, each with its own
pmem (no restored guest sees another's data), a sane clock and a reseeded RNG; a crash-and-
verify case still finds the lost write."""
from __future__ import annotations

import time

import pytest

from pinrig.guest.session import Session, prepare_env
from pinrig.runs.runner import run_suite

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env61_saved():
    env = prepare_env("debian-6.1", cold=False)
    assert env.saved is not None, env.boot_note
    return env


def _boot(env, workdir):
    s = Session(env, workdir)
    br = s.boot()
    assert br.status == "ready", br
    assert s.booted == "restore", s.notes
    return s


def test_restored_guests_do_not_share_pmem_clock_or_randomness(env61_saved, tmp_path):
    a = _boot(env61_saved, tmp_path / "a")
    b = _boot(env61_saved, tmp_path / "b")
    try:
        ga, gb = a.connected_guest(), b.connected_guest()
        ga.run("printf 'guest-a-was-here' | dd of=/dev/pmem0 conv=fsync 2>/dev/null", timeout=30,
               check=True)
        seen = gb.run("dd if=/dev/pmem0 bs=16 count=1 2>/dev/null | od -An -c", timeout=30).stdout
        assert "g   u   e   s   t" not in seen, seen
        clocks = [int(g.run("date +%s", timeout=30).stdout) for g in (ga, gb)]
        assert all(abs(c - time.time()) < 120 for c in clocks), clocks
        rand = [g.run("head -c 32 /dev/urandom | od -An -tx1", timeout=30).stdout
                for g in (ga, gb)]
        assert rand[0] != rand[1]
        assert "rxe0" in ga.run("rdma link show", timeout=30).stdout
    finally:
        for s in (a, b):
            s.close()
            s.discard_pmem()


def test_lost_write_still_found_with_restored_guests(tmp_path):
    out = run_suite("debian-6.1", "lost-write-once", out=tmp_path / "r", echo=lambda *a: None)
    assert out.run.manifest["boot"]["mode"] == "restore"
    by = {v.case: v for v in out.verdicts}
    v = by["lost-write/ext4/shared"]
    assert v.verdict == "data-loss" and v.blocks_lost == 256, v
