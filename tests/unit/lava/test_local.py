"""rig lava run: lava-run driven per job and its log mapped (the process layer faked by a
stand-in lava-run on PATH; the real one runs in tests/integration/test_lava.py)."""
import os
import stat
from pathlib import Path

import pytest
import yaml

from pinrig.cli import main
from pinrig.errors import InfraError
from pinrig.lava import local

DATA = Path(__file__).resolve().parents[2] / "data" / "lava"


def fake_lava_run(tmp_path, monkeypatch, body: str) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "lava-run"
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return bindir


def test_rig_lava_run_maps_each_jobs_log(tmp_path, monkeypatch, capsys):
    calls = tmp_path / "calls"
    fake_lava_run(tmp_path, monkeypatch,
                  f'echo "$@" >> {calls}\ncat {DATA / "smoke-debian-6.1.log"}\n')
    job = tmp_path / "job.yaml"
    job.write_text((DATA / "smoke-debian-6.1.job.yaml").read_text())
    out = tmp_path / "res"
    assert main(["lava", "run", str(job), "-o", str(out)]) == 0
    assert "ibverbs-pin/ext4/shared   ok" in capsys.readouterr().out
    argv = calls.read_text().split()
    assert argv[0] == "--job-id" and argv[-1] == str(job)
    dev = yaml.safe_load((out / "lava" / "job" / "device.yaml").read_text())
    assert dev["actions"]["boot"]["methods"]["qemu"]["parameters"]["extra"][0] == \
        "-machine pc,nvdimm=on"
    assert (out / "lava" / "job" / "lava.log").exists() and (out / "junit.xml").exists()


def test_a_foreign_or_invalid_job_is_refused_before_lava_run(tmp_path, monkeypatch, capsys):
    calls = tmp_path / "calls"
    fake_lava_run(tmp_path, monkeypatch, f'echo ran >> {calls}\n')
    job = tmp_path / "job.yaml"
    doc = yaml.safe_load((DATA / "smoke-debian-6.1.job.yaml").read_text())
    del doc["visibility"]
    job.write_text(yaml.safe_dump(doc))
    assert main(["lava", "run", str(job), "-o", str(tmp_path / "r")]) == 2
    assert "refused by LAVA's job schema" in capsys.readouterr().err
    doc["visibility"] = "public"
    doc["metadata"] = {}
    job.write_text(yaml.safe_dump(doc))
    assert main(["lava", "run", str(job), "-o", str(tmp_path / "r")]) == 2
    assert "not a pinrig job" in capsys.readouterr().err
    assert not calls.exists()


def test_a_lava_run_that_does_not_end_is_stopped(tmp_path, monkeypatch):
    pidfile = tmp_path / "pid"
    fake_lava_run(tmp_path, monkeypatch, f"echo $$ > {pidfile}\nexec sleep 600\n")
    job = tmp_path / "job.yaml"
    job.write_text((DATA / "smoke-debian-6.1.job.yaml").read_text())
    with pytest.raises(InfraError, match="no end after 1s"):
        local.run_job(job, tmp_path / "o", timeout=1)
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_without_lava_run_the_package_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "lava-dispatcher" in local.available()
    with pytest.raises(InfraError, match="apt-get install lava-dispatcher"):
        local.run_job(DATA / "smoke-debian-6.1.job.yaml", tmp_path / "o")
