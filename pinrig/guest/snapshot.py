"""Saved guests: boot once per (kernel, guest image, machine shape) to the ready point, save the
machine's state, and start later guests of that shape from it instead of booting.

What is saved (cache/snapshots/<key>/): the migration stream of a stopped guest (`state`), the
root-disk overlay as it was at that moment (`overlay.qcow2`, read-only; each restore gets a fresh
overlay on top of it) and what init reported (`info.json`: NIC, RDMA devices, pmem).

What is not: the pmem. Its memory-backend-file is `share=on` and the migration runs with
`x-ignore-shared`, so its RAM block is left out of the stream: every restored guest sees its own
backing file (a fresh sparse one, or the medium a crashed guest left for a verify boot), never
another guest's data.

After a restore: QEMU's vmgenid device (guid=auto) gives the restored guest a new generation id,
which makes Linux reseed its RNG before anything runs (no two restored guests share nonces); the
host then sets the guest clock, mixes host randomness in and forces a reseed once more, and drops
the guest's clean page cache (a block read cached at save time must not shadow what a verify
boot's medium holds).

The key covers the kernel artifact hash, the guest image hash, the initramfs, the machine shape,
the QEMU version and this file's format: when any of them changes, the state is made again.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from pinrig import paths, proc
from pinrig.errors import InfraError
from pinrig.guest import qemu
from pinrig.guest.qmp import QMP
from pinrig.kernels.artifact import file_sha256

if TYPE_CHECKING:
    from pinrig.guest.session import Environment, Session

FORMAT = "snapshot-1"
SAVE_TIMEOUT = 300.0
RESTORE_TIMEOUT = 120.0


@dataclass(frozen=True)
class SavedState:
    key: str
    dir: Path
    info: dict

    @property
    def state(self) -> Path:
        return self.dir / "state"

    @property
    def overlay(self) -> Path:
        return self.dir / "overlay.qcow2"


def state_key(env: "Environment", mem_mb: int, smp: int, pmem_mb: int) -> str:
    # The modules disk is hundreds of MiB: not hashed, but named by its file's identity. A saved
    # guest has that disk's ext4 metadata in its page cache, so a disk made again (same size,
    # other layout) must not meet it: seen as "EXT4-fs error" crashes in the cases that load a
    # module after the modules disk was recreated under its new name.
    md = env.boot.modules_disk.stat()
    parts = [FORMAT, env.art.hash, env.image.hash, file_sha256(env.boot.initrd),
             f"{env.boot.modules_disk.name}:{md.st_size}:{md.st_mtime_ns}:{md.st_ino}",
             env.accel, env.qemu_version,
             f"mem={mem_mb}", f"smp={smp}", f"pmem={pmem_mb}",
             "append=" + " ".join(qemu.BASE_APPEND)]      # a saved guest booted with these
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def state_dir(key: str) -> Path:
    return paths.cache_dir() / "snapshots" / key


def load(key: str) -> Optional[SavedState]:
    d = state_dir(key)
    try:
        info = json.loads((d / "info.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("key") != key:
        return None
    s = SavedState(key, d, dict(info.get("info") or {}))
    if not s.state.is_file() or not s.overlay.is_file():
        return None
    return s


def ensure(env: "Environment", session_factory, mem_mb: int = 2048, smp: int = 2,
           pmem_mb: int = 1024) -> SavedState:
    """The saved state for env's shape: from the cache, or made now by one cold boot.
    session_factory(workdir) → a Session (kept abstract so the Session module owns booting)."""
    key = state_key(env, mem_mb, smp, pmem_mb)
    s = load(key)
    if s is not None:
        return s
    d = state_dir(key)
    with paths.cache_lock(d):
        s = load(key)
        if s is not None:
            return s
        proc.progress(f"snapshot: booting {env.spec.name} once to save its ready state")
        tmp = d.with_name(d.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        sess = session_factory(tmp / "boot")
        try:
            br = sess.boot(restore=False)
            if br.status != "ready":
                raise InfraError(f"snapshot: the boot to save failed ({br.status}): {br.reason}")
            _save(sess, tmp)
        finally:
            sess.close()
        os.chmod(tmp / "overlay.qcow2", 0o444)
        shutil.rmtree(tmp / "boot", ignore_errors=True)
        (tmp / "info.json").write_text(json.dumps({"key": key, "info": sess.info,
                                                   "kernel": env.art.hash,
                                                   "image": env.image.hash,
                                                   "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
                                                  indent=2))
        shutil.rmtree(d, ignore_errors=True)
        tmp.rename(d)
    s = load(key)
    if s is None:
        raise InfraError(f"snapshot {d}: saved but cannot be loaded")
    return s


def _save(sess: "Session", dest: Path) -> None:
    """Stop the ready guest and write its state (pmem left out) next to its overlay."""
    machine = sess.machine
    if machine is None or machine.qmp is None:
        raise InfraError("snapshot: the guest to save has no QMP socket")
    g = sess.connected_guest()
    g.run("sync; echo 3 > /proc/sys/vm/drop_caches", timeout=60, check=True)
    g.close()                                # no SSH connection inside the saved state
    sess.guest = None
    q = QMP(machine.qmp)
    try:
        q.execute("stop")
        q.execute("migrate-set-capabilities",
                  capabilities=[{"capability": "x-ignore-shared", "state": True}])
        q.execute("migrate", uri="exec:cat > " + shlex.quote(str(dest / "state")))
        q.wait_migration(SAVE_TIMEOUT)
    finally:
        q.close()
    machine.kill()
    # the overlay as the saved state knows it (a second name: the session's close() removes
    # its own overlay.qcow2)
    os.link(machine.workdir / "overlay.qcow2", dest / "overlay.qcow2")


def restore_config(cfg: qemu.QemuConfig, saved: SavedState) -> qemu.QemuConfig:
    """The cold-boot config of a guest, turned into one that resumes saved instead."""
    # "defer": the x-ignore-shared capability must be set before the state is read (QMP)
    return dataclasses.replace(cfg, incoming="defer")


def make_restore_overlay(saved: SavedState, dest: Path) -> Path:
    proc.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", saved.overlay,
              dest], what="qemu-img create (overlay over a saved state)")
    return dest


def resume(machine_qmp: Path, saved: SavedState, alive=None) -> None:
    """Load the saved state into a QEMU started with `-incoming defer` (the pmem RAM block left
    out, as when it was saved), then let the guest run."""
    q = QMP(machine_qmp, timeout=RESTORE_TIMEOUT, alive=alive)
    try:
        q.execute("migrate-set-capabilities",
                  capabilities=[{"capability": "x-ignore-shared", "state": True}])
        q.execute("migrate-incoming", uri="exec:cat " + shlex.quote(str(saved.state)))
        q.wait_migration(RESTORE_TIMEOUT)
        status = q.wait_status(("paused", "running", "postmigrate"), RESTORE_TIMEOUT)
        if status != "running":
            q.execute("cont")
    finally:
        q.close()


def after_restore_commands(seed_hex: str, now: Optional[float] = None) -> str:
    """The command run first in a restored guest: clock, randomness, page cache, in one perl
    process (perl-base is Essential in Debian). Under TCG every process costs 0.15-0.3 s and
    python3 about 1 s, so this is one exec instead of four (measured on src-6.1-min: date
    0.16 s, perl 0.25 s, a shell for drop_caches 0.16-0.21 s, python3 0.9-1.0 s). The clock
    is set with clock_settime(CLOCK_REALTIME) (x86-64 syscall 227; perl's syscall() wants its
    buffer in a variable: a pack() temporary dies "Modification of a read-only value"); the host's bytes are
    written into the pool and RNDRESEEDCRNG (0x5207) makes the CRNG use them; drop_caches=3."""
    t = time.time() if now is None else now
    sec, nsec = int(t), int((t - int(t)) * 1e9)
    return ("perl -e '"
            f"my $ts = pack(\"qq\", {sec}, {nsec}); "
            "syscall(227, 0, $ts) == 0 or die \"clock_settime: $!\"; "
            "open(my $f, \">\", \"/dev/urandom\") or die \"urandom: $!\"; "
            f"syswrite($f, pack(\"H*\", \"{seed_hex}\")) or die \"urandom: $!\"; "
            "ioctl($f, 0x5207, 0) or die \"RNDRESEEDCRNG: $!\"; "
            "open(my $d, \">\", \"/proc/sys/vm/drop_caches\") or die \"drop_caches: $!\"; "
            "print $d \"3\\n\"; close($d) or die \"drop_caches: $!\"'")
