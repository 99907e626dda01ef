"""`rig hosts gc`: shipped objects and run directories on a pool host, by age (issue 11: 13).
The script is the one the rig runs over SSH; here it runs in a local shell on a fake workdir."""
import os
import subprocess
import time

from pinrig.fleet import shipping


def _dir(path, age_days):
    path.mkdir(parents=True)
    (path / "f").write_bytes(b"x" * 8192)
    t = time.time() - age_days * 86400
    os.utime(path, (t, t))


def _gc(workdir, days, delete):
    script = shipping.GC_SCRIPT.format(workdir=str(workdir), days=days, delete=int(delete))
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout


def test_old_objects_and_runs_go_young_ones_stay(tmp_path):
    _dir(tmp_path / "objects" / "aaaa", 30)
    _dir(tmp_path / "objects" / "bbbb", 1)
    _dir(tmp_path / "runs" / "20261001-x", 40)
    out = _gc(tmp_path, 14, delete=False)
    listed = sorted(line.split(" ", 1)[1] for line in out.splitlines())
    assert listed == [str(tmp_path / "objects" / "aaaa"), str(tmp_path / "runs" / "20261001-x")]
    assert (tmp_path / "objects" / "aaaa").exists()                    # dry run
    _gc(tmp_path, 14, delete=True)
    assert not (tmp_path / "objects" / "aaaa").exists()
    assert not (tmp_path / "runs" / "20261001-x").exists()
    assert (tmp_path / "objects" / "bbbb").exists()


def test_an_empty_workdir_is_fine(tmp_path):
    assert _gc(tmp_path / "none", 14, delete=True) == ""
