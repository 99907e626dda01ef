"""Run a generated job here with LAVA's own dispatcher (`lava-run`, Debian package
lava-dispatcher), against a device dictionary for the local QEMU.

A LAVA server renders a device dictionary from its device-type template (qemu.jinja2) and the
job's context; lava-run alone takes the rendered dictionary. device_dictionary() is that
rendering for amd64, reduced to what the dispatcher reads, with the job's context applied the
way the template applies it (memory, no_kvm, extra_options)."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from pinrig.errors import InfraError, MissingTool

LAVA_RUN = "lava-run"


def device_dictionary(context: dict, hostname: str = "pinrig-local-qemu") -> dict:
    options = []
    if not context.get("no_kvm"):
        options += ["-cpu host", "-enable-kvm"]
    options += ["-nographic",
                "-net nic,model=virtio,macaddr=52:54:00:12:34:58 -net user",
                f"-m {context.get('memory', 512)}",
                f"-monitor {context.get('monitor', 'none')}"]
    qemu = {"parameters": {
        "command": "qemu-system-x86_64",
        "boot_options": {"root": "/dev/sda1", "console": "ttyS0,115200", "boot_order": "c"},
        "options": options,
        "extra": list(context.get("extra_options", [])),
    }}
    return {
        "hostname": hostname,
        "devicetype": "qemu",
        "available_architectures": ["amd64", "x86_64"],
        "constants": {
            "posix": {"lava_test_sh_cmd": "/bin/sh", "lava_test_results_dir": "/lava-%s",
                      "lava_test_shell_file": "~/.bashrc"},
            "shutdown-message": "The system is going down for reboot NOW",
            "kernel-start-message": "Linux version [0-9]",
            "default-shell-prompt": "lava-test: # ",
            "spawn_maxread": "4092",
            "failure_retry": 1,
            "boot_retry": None,
        },
        "actions": {
            "deploy": {"connections": {"serial": None},
                       "methods": {"image": {"parameters": {"guest": {
                           "size": 512, "interface": "ide", "driveid": "lavatest"}}}}},
            "boot": {"connections": {"serial": None}, "methods": {"qemu": qemu}},
        },
        "timeouts": {"actions": {}, "connections": {}},
    }


@dataclass
class LocalRun:
    returncode: int
    log: Path            # lava-run's log (YAML lines on its stdout)
    output_dir: Path
    wall_s: float


def run_job(job_file: Path, out: Path, job_id: str = "1", timeout: float = 7200) -> LocalRun:
    """lava-run one job; its log goes to out/lava.log, its scratch to out/lava-output."""
    exe = _which(LAVA_RUN)
    job = yaml.safe_load(job_file.read_text())
    out.mkdir(parents=True, exist_ok=True)
    device = out / "device.yaml"
    device.write_text(yaml.safe_dump(device_dictionary(job.get("context") or {})))
    scratch = out / "lava-output"
    scratch.mkdir(exist_ok=True)
    log = out / "lava.log"
    argv = [exe, "--job-id", job_id, "--output-dir", str(scratch), "--device", str(device),
            str(job_file)]
    t0 = time.monotonic()
    with open(log, "wb") as f:
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(p)
            raise InfraError(f"lava-run {job_file.name}: no end after {timeout:.0f}s (stopped)")
        except BaseException:          # Ctrl-C: lava-run is in a session of its own
            _stop(p)
            raise
    return LocalRun(rc, log, scratch, time.monotonic() - t0)


def _stop(p: subprocess.Popen) -> None:
    """End the lava-run we started, by its pid: SIGTERM lets LAVA finalise the job (it kills
    its QEMU), SIGKILL to its process group when it does not end."""
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    except ProcessLookupError:
        pass


def _which(name: str) -> str:
    import shutil
    exe = shutil.which(name)
    if exe is None:
        raise MissingTool(name, "lava-dispatcher")
    return exe


def available() -> Optional[str]:
    """Why lava-run cannot run here, or None."""
    import shutil
    if shutil.which(LAVA_RUN) is None:
        return "lava-run not installed (apt-get install lava-dispatcher)"
    return None


def run_jobs(job_paths: list, out: Path, echo=print, timeout: float = 7200) -> tuple:
    """lava-run every job here, then map their logs into one results directory at `out`
    (LAVA's own files under out/lava/<job>/). Returns (RunDir, verdicts, [LocalRun])."""
    from pinrig.errors import UserError
    from pinrig.lava.export import load_job
    from pinrig.lava.results import Collected, job_meta, write_run
    from pinrig.lava.validate import validate_jobs
    jobs = [load_job(p) for p in job_paths]
    for j in jobs:
        job_meta(j)                  # a pinrig job, or a clear error before anything runs
    validate_jobs(jobs, [str(p) for p in job_paths])
    if out.exists() and any(out.iterdir()):
        raise UserError(f"-o {out}: not empty; give an empty or new directory")
    scratch = out.with_name(out.name + ".lava")
    runs, collected = [], []
    for i, (p, job) in enumerate(zip(job_paths, jobs), 1):
        echo(f"rig: lava-run {p.name} ({i}/{len(jobs)})")
        # a job id of its own: LAVA's scratch is /var/lib/lava/dispatcher/tmp/<id>
        r = run_job(p, scratch / p.stem, job_id=str(os.getpid() * 100 + i), timeout=timeout)
        echo(f"rig: lava-run {p.name}: exit {r.returncode}, {r.wall_s:.0f}s")
        runs.append(r)
        collected.append(Collected(job, r.log.read_text(errors="replace"), str(i), "lava-run"))
    run, verdicts = write_run(out, collected, echo=echo)
    import shutil
    shutil.move(str(scratch), str(out / "lava"))
    return run, verdicts, runs
