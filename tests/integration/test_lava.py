"""Integration (opt-in): the rig's jobs run for real by LAVA's own dispatcher (`lava-run`, Debian
bookworm lava-dispatcher 2023.01) against a device dictionary for the local QEMU, mapped back into
results directories, and compared with a local `rig run` of the same suite: same verdicts.

A few minutes per suite on a quiet 2-core box (each job copies the 2 GiB rootfs, boots once or
twice under TCG), so it is not in the default run:

    PINRIG_LAVA=1 .venv/bin/python -m pytest tests/integration/test_lava.py -m lava
"""
from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from pinrig.cli import main
from pinrig.lava import local

pytestmark = [
    pytest.mark.integration,
    pytest.mark.lava,
    pytest.mark.skipif(os.environ.get("PINRIG_LAVA") != "1",
                       reason="opt-in: PINRIG_LAVA=1 (runs LAVA jobs with lava-run)"),
]


@pytest.mark.parametrize("suite", ["smoke", "lost-write-once"])
def test_lava_run_gives_the_verdicts_of_a_local_run(suite, tmp_path, capsys):
    # installed by scripts/setup.sh; an opt-in run without it fails, it does not skip
    assert local.available() is None, local.available()
    assert shutil.which("/usr/bin/python3")
    exp, lava_res, local_res = tmp_path / "export", tmp_path / "lava", tmp_path / "local"
    assert main(["lava", "export", "debian-6.1", "--suite", suite, "-o", str(exp)]) == 0
    t0 = time.monotonic()
    rc = main(["lava", "run", str(exp), "-o", str(lava_res)])
    lava_s = time.monotonic() - t0
    assert rc in (0, 1), capsys.readouterr()
    t0 = time.monotonic()
    main(["run", "debian-6.1", "--suite", suite, "--out", str(local_res), "--jobs", "1",
          "--cold"])
    local_s = time.monotonic() - t0
    capsys.readouterr()

    # LAVA itself completed every job
    for log in sorted((lava_res / "lava").glob("*/lava.log")):
        assert '"case": "job", "definition": "lava", "result": "pass"' in log.read_text()

    def verdicts(d):
        return {json.loads(p.read_text())["case"]: json.loads(p.read_text())["verdict"]
                for p in (d / "cases").rglob("verdict.json")}
    got, want = verdicts(lava_res), verdicts(local_res)
    assert got == want and got
    assert "error" not in got.values()
    assert (lava_res / "junit.xml").exists()

    cmp_dir = tmp_path / "cmp"
    rc = main(["compare", "debian-6.1", "debian-6.1", "--reuse-a", str(local_res),
               "--reuse-b", str(lava_res), "--out", str(cmp_dir), "--json"])
    cmp = json.loads((cmp_dir / "compare.json").read_text())
    assert rc == 0, cmp
    classes = {c["case"]: c["class"] for c in cmp["cases"]}
    assert set(classes.values()) == {"same"}, classes
    print(f"\nlava: {suite}: lava-run {lava_s:.0f}s, local rig run {local_s:.0f}s, "
          f"verdicts {got}")
