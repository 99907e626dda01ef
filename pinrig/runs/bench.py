"""`rig bench boot KERNEL`: boot-to-ready of the rig against raw QEMU, same kernel, same run.

Raw QEMU: the identical QEMU command line (same kernel, initramfs, devices) with `pinrig.trivial`
on the kernel command line, so the initramfs prints a line as its first act (before loading any
module) and powers off: the time from preparing the boot (overlay, pmem file, port: the same
vm.prepare the rig uses) to that line is the floor. The rig: the same preparation → guest init
ready (devices loaded: pmem, rxe0) → SSH session open → one command run, both for a cold boot
and for a guest resumed from the saved ready state (when the environment has one). Runs
alternate so all see the same machine load. A measurement that cannot be taken raises
InfraError (one line at the CLI, exit 2).
"""
from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

from pinrig.errors import InfraError
from pinrig.guest import vm
from pinrig.guest.session import Environment, Session


def raw_boot(env: Environment, workdir: Path, timeout: float = 180.0) -> float:
    t0 = time.monotonic()      # before prepare, as for the rig: both make an overlay and pmem
    m = vm.prepare(env.art, env.boot, env.image, workdir, env.accel, append=("pinrig.trivial",))
    m.start()
    try:
        c = m.started_console()
        ok = c.wait_for(lambda: b"PINRIG-TRIVIAL-READY" in c.buf, timeout)
        if not ok:
            raise InfraError(f"bench: raw QEMU of {env.spec.name} did not reach the trivial "
                             f"init within {timeout:.0f}s (console: {m.console_log})")
        return time.monotonic() - t0
    finally:
        m.kill()


def rig_boot(env: Environment, workdir: Path, restore: bool = False) -> float:
    t0 = time.monotonic()
    s = Session(env, workdir)
    try:
        br = s.boot(restore=restore)
        if br.status != "ready":
            raise InfraError(f"bench: rig boot of {env.spec.name} failed: {br.reason}")
        if restore and s.booted != "restore":
            raise InfraError(f"bench: restore fell back to a cold boot: {s.notes}")
        s.connected_guest().run("true", timeout=30, check=True)
        return time.monotonic() - t0
    finally:
        if s.machine:
            s.machine.kill()


def bench_boot(env: Environment, repeat: int = 3, echo=print) -> dict:
    if repeat < 1:
        raise InfraError("bench: --repeat must be at least 1")
    raws, rigs, restores = [], [], []
    base = Path(tempfile.mkdtemp(prefix="pinrig-bench-"))
    try:
        for i in range(repeat):
            raws.append(raw_boot(env, base / f"raw{i}"))
            rigs.append(rig_boot(env, base / f"rig{i}"))
            line = f"  round {i + 1}: raw QEMU {raws[-1]:.2f}s, rig cold {rigs[-1]:.2f}s"
            if env.saved is not None:
                restores.append(rig_boot(env, base / f"restore{i}", restore=True))
                line += f", rig restore {restores[-1]:.2f}s"
            echo(line)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    raw, rig = statistics.median(raws), statistics.median(rigs)
    out = {"kernel": env.spec.name, "release": env.art.release, "accel": env.accel,
           "repeat": repeat, "raw_qemu_s": raws, "rig_s": rigs,
           "raw_qemu_median_s": round(raw, 3), "rig_median_s": round(rig, 3),
           "ratio": round(rig / raw, 3), "restore_s": restores,
           "restore_median_s": None, "restore_ratio": None, "boot_note": env.boot_note}
    if restores:
        res = statistics.median(restores)
        out.update(restore_median_s=round(res, 3), restore_ratio=round(res / raw, 3))
    return out
