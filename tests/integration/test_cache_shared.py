"""Two rig processes sharing one empty cache both succeed (issue 11: item 9): the private apt
state, the resolution and the kernel artifact are each made once, under a lock, by whichever
process comes first; the other waits and uses it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_two_builds_on_one_empty_cache(tmp_path):
    env = dict(os.environ, PINRIG_CACHE=str(tmp_path / "cache"))
    cmd = [sys.executable, str(REPO / "rig.py"), "build", "debian-6.1"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=1200) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    paths = [out.strip().splitlines()[-1] for out, _ in outs]
    assert paths[0] == paths[1]
    debs = list((tmp_path / "cache" / "kernels" / "debian").iterdir())
    assert [d.name for d in debs if not d.name.endswith(".lock")] == [Path(paths[0]).name]
    sources = next((tmp_path / "cache" / "apt").glob("bookworm-*/etc/sources.list")).read_text()
    assert "bookworm-security" in sources
