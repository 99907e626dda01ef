"""`rig bench boot KERNEL`: boot-to-ready of the rig against raw QEMU, same kernel, same run.

Raw QEMU: the identical QEMU command line (same kernel, initramfs, devices) with `pinrig.trivial`
on the kernel command line, so the initramfs prints a line and powers off at once: the time from
spawning QEMU to that line is the floor. The rig: spawning QEMU → guest init ready → SSH session
open → one command run. Runs alternate so both see the same machine load.
"""
from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

from pinrig.guest import vm
from pinrig.guest.session import Environment, Session


def raw_boot(env: Environment, workdir: Path, timeout: float = 180.0) -> float:
    m = vm.prepare(env.art, env.boot, env.image, workdir, env.accel, append=("pinrig.trivial",))
    t0 = time.monotonic()
    m.start()
    try:
        c = m.started_console()
        ok = c.wait_for(lambda: b"PINRIG-TRIVIAL-READY" in c.buf, timeout)
        if not ok:
            raise RuntimeError("raw QEMU never reached the trivial init")
        return time.monotonic() - t0
    finally:
        m.kill()


def rig_boot(env: Environment, workdir: Path) -> float:
    t0 = time.monotonic()
    s = Session(env, workdir)
    try:
        br = s.boot()
        if br.status != "ready":
            raise RuntimeError(f"rig boot failed: {br.reason}")
        s.connected_guest().run("true", timeout=30, check=True)
        return time.monotonic() - t0
    finally:
        if s.machine:
            s.machine.kill()


def bench_boot(env: Environment, repeat: int = 3, echo=print) -> dict:
    raws, rigs = [], []
    base = Path(tempfile.mkdtemp(prefix="pinrig-bench-"))
    try:
        for i in range(repeat):
            raws.append(raw_boot(env, base / f"raw{i}"))
            rigs.append(rig_boot(env, base / f"rig{i}"))
            echo(f"  round {i + 1}: raw QEMU {raws[-1]:.2f}s, rig {rigs[-1]:.2f}s")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    raw, rig = statistics.median(raws), statistics.median(rigs)
    return {"kernel": env.spec.name, "release": env.art.release, "accel": env.accel,
            "repeat": repeat, "raw_qemu_s": raws, "rig_s": rigs,
            "raw_qemu_median_s": round(raw, 3), "rig_median_s": round(rig, 3),
            "ratio": round(rig / raw, 3)}
