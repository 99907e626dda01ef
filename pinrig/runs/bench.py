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
from typing import Optional

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


def rig_boot(env: Environment, workdir: Path, restore: bool = False,
             phases: Optional[list] = None, attempts: Optional[list] = None) -> float:
    """Seconds to a guest that ran one command; the boot's phases (BootResult.phases, plus
    `command`) are appended to `phases`, its SSH connection attempts to `attempts`, when
    given."""
    t0 = time.monotonic()
    s = Session(env, workdir)
    try:
        br = s.boot(restore=restore)
        if br.status != "ready":
            raise InfraError(f"bench: rig boot of {env.spec.name} failed: {br.reason}")
        if restore and s.booted != "restore":
            raise InfraError(f"bench: restore fell back to a cold boot: {s.notes}")
        s.connected_guest().run("true", timeout=30, check=True)
        total = time.monotonic() - t0
        if phases is not None:
            phases.append(dict(br.phases, command=round(total, 3)))
        if attempts is not None:
            attempts.append(s.ssh_attempts)
        return total
    finally:
        if s.machine:
            s.machine.kill()


def median_phases(runs: list) -> dict:
    """{phase: median seconds from the boot's start} over the runs, in the order they end."""
    keys = list(dict.fromkeys(k for r in runs for k in r))
    out = {k: round(statistics.median([r[k] for r in runs if k in r]), 3) for k in keys}
    return dict(sorted(out.items(), key=lambda kv: kv[1]))


def format_phases(phases: dict) -> str:
    """'qemu 0.31s, sshd +5.10s, …': each step's own share of the boot."""
    parts, prev = [], 0.0
    for k, v in phases.items():
        parts.append(f"{k} {'+' if prev else ''}{v - prev:.2f}s")
        prev = v
    return ", ".join(parts)


def bench_boot(env: Environment, repeat: int = 3, echo=print) -> dict:
    if repeat < 1:
        raise InfraError("bench: --repeat must be at least 1")
    raws, rigs, restores = [], [], []
    cold_phases: list = []
    restore_phases: list = []
    cold_attempts: list = []
    base = Path(tempfile.mkdtemp(prefix="pinrig-bench-"))
    try:
        for i in range(repeat):
            raws.append(raw_boot(env, base / f"raw{i}"))
            rigs.append(rig_boot(env, base / f"rig{i}", phases=cold_phases,
                                 attempts=cold_attempts))
            line = f"  round {i + 1}: raw QEMU {raws[-1]:.2f}s, rig cold {rigs[-1]:.2f}s"
            if env.saved is not None:
                restores.append(rig_boot(env, base / f"restore{i}", restore=True,
                                         phases=restore_phases))
                line += f", rig restore {restores[-1]:.2f}s"
            echo(line)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    raw, rig = statistics.median(raws), statistics.median(rigs)
    out = {"kernel": env.spec.name, "release": env.art.release, "accel": env.accel,
           "repeat": repeat, "raw_qemu_s": raws, "rig_s": rigs,
           "raw_qemu_median_s": round(raw, 3), "rig_median_s": round(rig, 3),
           "ratio": round(rig / raw, 3), "restore_s": restores,
           "restore_median_s": None, "restore_ratio": None, "boot_note": env.boot_note,
           "cold_phases_s": median_phases(cold_phases), "cold_ssh_attempts": cold_attempts,
           "restore_phases_s": median_phases(restore_phases)}
    if restores:
        res = statistics.median(restores)
        out.update(restore_median_s=round(res, 3), restore_ratio=round(res / raw, 3))
    return out


# What issue 13 asks of this box (TCG, 2 cores); printed beside the measurements, never asserted
TARGETS = {"restore_ratio": 0.3, "ratio": 1.2, "pin-matrix": 120.0, "lost-write-once": 20.0}


def bench_suite(kernel_arg: str, suite: str, cold: bool = False) -> dict:
    """Wall time of `rig run KERNEL --suite SUITE --jobs 1` as a user sees it (kernel, image
    and saved state from the cache), and its verdicts. A run with `error` or `skipped` verdicts
    is no measurement (seen: a guest without rxe0 skipped 14 of 22 cases in a third of the
    time): InfraError."""
    from pinrig.runs.runner import run_suite
    base = Path(tempfile.mkdtemp(prefix="pinrig-bench-run-"))
    t0 = time.monotonic()
    try:
        res = run_suite(kernel_arg, suite, out=base / "run", jobs=1, cold=cold,
                        echo=lambda *_a, **_k: None)
        wall = time.monotonic() - t0
        counts: dict = {}
        for v in res.verdicts:
            counts[v.verdict] = counts.get(v.verdict, 0) + 1
        for kind in ("error", "skipped"):    # a skipped case is time not spent: no measurement
            cases = [v.case for v in res.verdicts if v.verdict == kind]
            if cases:
                raise InfraError(f"bench: {suite} on {kernel_arg} had {len(cases)} {kind} "
                                 f"verdict(s) ({', '.join(cases[:3])}): no measurement")
        booted = (res.run.manifest.get("boot") or {}).get("mode", "cold" if cold else "restore")
        return {"suite": suite, "wall_s": round(wall, 2), "cases": len(res.verdicts),
                "verdicts": counts, "boot": booted,
                "case_wall_s": {v.case: v.wall_s for v in res.verdicts}}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def bench_all(env: Environment, kernel_arg: str, repeat: int = 3, echo=print) -> dict:
    """Everything issue 13 measures, in one run: boot-to-ready (raw, cold, restore), the
    pin-matrix wall time and one lost-write case, each beside its target."""
    out: dict = {"boot": bench_boot(env, repeat=repeat, echo=echo)}
    for suite in ("pin-matrix", "lost-write-once"):
        echo(f"  running {suite} (--jobs 1)…")
        out[suite] = bench_suite(kernel_arg, suite)
        echo(f"  {suite}: {out[suite]['wall_s']:.1f}s, {out[suite]['cases']} cases")
    out["targets"] = dict(TARGETS)
    return out


def mark(value, key: str) -> str:
    """A measurement beside its target (issue 13)."""
    if value is None:
        return "not measured"
    return f"target ≤ {TARGETS[key]:g}: {'met' if value <= TARGETS[key] else 'NOT met'}"


def format_boot(b: dict) -> list:
    """The lines of a boot benchmark: medians, ratios beside their targets, where time goes."""
    lines = [f"{b['kernel']} ({b['release']}), accel {b['accel']}, median of {b['repeat']} boots:",
             f"  raw QEMU (trivial init)      {b['raw_qemu_median_s']:7.2f}s",
             f"  rig cold boot to ready       {b['rig_median_s']:7.2f}s   ratio {b['ratio']:.2f}  "
             f"({mark(b['ratio'], 'ratio')})"]
    if b["restore_median_s"] is not None:
        lines.append(f"  rig restore to ready         {b['restore_median_s']:7.2f}s   ratio "
                     f"{b['restore_ratio']:.2f}  ({mark(b['restore_ratio'], 'restore_ratio')})")
    else:
        lines.append(f"  rig restore: not measured ({b['boot_note']})")
    if b.get("cold_phases_s"):
        lines.append(f"  cold phases (median): {format_phases(b['cold_phases_s'])}"
                     + (f"; ssh connection attempts {b['cold_ssh_attempts']}"
                        if b.get("cold_ssh_attempts") else ""))
    if b.get("restore_phases_s"):
        lines.append(f"  restore phases (median): {format_phases(b['restore_phases_s'])}")
    return lines


def format_all(r: dict) -> str:
    lines = format_boot(r["boot"])
    for suite in ("pin-matrix", "lost-write-once"):
        s = r[suite]
        verdicts = ", ".join(f"{n} {k}" for k, n in sorted(s["verdicts"].items()))
        lines.append(f"  {suite:<28} {s['wall_s']:7.1f}s   {s['cases']} cases ({verdicts}), "
                     f"--jobs 1  ({mark(s['wall_s'], suite)})")
    return "\n".join(lines) + "\n"
