"""Stage `guest`: GuestSpec → GuestImage, and KernelArtifact → per-kernel boot files.

The root filesystem comes from debootstrap (cached by recipe hash, built once, never written by a
boot: each boot gets a qcow2 overlay). Per kernel the rig makes a small initramfs with busybox and
just the modules that reach the root disk, and a read-only "modules disk" holding the kernel's
whole lib/modules tree, mounted in the guest at /lib/modules.
"""
from __future__ import annotations

import hashlib
import json
import lzma
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pinrig import paths, proc
from pinrig.config import GuestSpec
from pinrig.errors import InfraError
from pinrig.kernels.artifact import KernelArtifact

# Modules needed before the root disk can be mounted (and the NIC's, so the static busybox
# configures the network before the real init runs: execs of dynamically linked programs are slow
# under TCG), when they are modules. The initramfs loads them in two chains side by side (the
# guest has two vCPUs): the virtio disk and NIC drivers, and ext4 with what it needs.
ROOT_MODULE_CHAINS = (("virtio_pci", "virtio_blk", "virtio_net"),
                      ("crc32c_generic", "crc32c_intel", "ext4"))


@dataclass(frozen=True)
class GuestImage:
    name: str
    rootfs: Path              # raw ext4 image, read-only for boots
    ssh_key: Path             # private key for root (generated per image)
    host_key_pub: str         # "ssh-ed25519 AAAA…" of the guest's sshd (generated per image)
    hash: str
    dir: Path


@dataclass(frozen=True)
class BootFiles:
    initrd: Path
    modules_disk: Path


# ---------------------------------------------------------------------------- rootfs image

def image_dir(spec: GuestSpec) -> Path:
    return paths.cache_dir() / "images" / f"{spec.name}-{spec.recipe_hash()[:16]}"


def build_image(spec: GuestSpec) -> GuestImage:
    d = image_dir(spec)
    if (d / "image.json").exists():
        return _load_image(d)
    with paths.cache_lock(d):
        if (d / "image.json").exists():      # built by someone else while we waited
            return _load_image(d)
        return _build_image(spec, d)


def _build_image(spec: GuestSpec, d: Path) -> GuestImage:
    if os.geteuid() != 0:
        raise InfraError("building a guest image needs root (debootstrap); run as root")
    proc.require("debootstrap")
    proc.require("mkfs.ext4")
    proc.require("ssh-keygen")
    tmp = d.with_name(d.name + ".tmp")
    _remove_tree(tmp)
    tmp.mkdir(parents=True)
    root = tmp / "root"
    proc.progress(f"image {spec.name}: debootstrap {spec.suite} (about a minute)")
    try:
        proc.run(["debootstrap", "--variant=minbase", f"--include={','.join(spec.packages)}",
                  spec.suite, root, spec.mirror], what="debootstrap", timeout=3600)
    except InfraError as e:
        log = root / "debootstrap" / "debootstrap.log"
        _unmount_under(tmp)
        raise InfraError(f"{e} (log: {log})" if log.exists() else str(e))
    _customize(spec, root, tmp)
    proc.progress(f"image {spec.name}: mkfs.ext4 -d ({spec.size_mb} MiB)")
    proc.run(["mkfs.ext4", "-q", "-F", "-L", "pinrig-root", "-d", root, tmp / "rootfs.img",
              f"{spec.size_mb}M"], what="mkfs.ext4 -d (guest image)")
    os.chmod(tmp / "rootfs.img", 0o600)
    _unmount_under(root)
    shutil.rmtree(root)
    meta = {"name": spec.name, "hash": spec.recipe_hash()[:16], "suite": spec.suite,
            "packages": list(spec.packages)}
    (tmp / "image.json").write_text(json.dumps(meta, indent=2))
    shutil.rmtree(d, ignore_errors=True)
    tmp.rename(d)
    return _load_image(d)


def _unmount_under(path: Path) -> None:
    """debootstrap mounts /proc (and more) inside the target and leaves them on failure."""
    prefix = str(path.resolve()) + "/"
    try:
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return
    for mnt in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", mnt], capture_output=True)


def _remove_tree(path: Path) -> None:
    if path.exists():
        _unmount_under(path)
        shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        raise InfraError(f"cannot remove {path} (still mounted?)")


def _customize(spec: GuestSpec, root: Path, out: Path) -> None:
    """Copy the recipe's files in, generate per-image ssh keys, trim what a test guest needs not."""
    if spec.files_dir and spec.files_dir.is_dir():
        shutil.copytree(spec.files_dir, root, dirs_exist_ok=True, symlinks=True)
    for old in (root / "etc/ssh").glob("ssh_host_*"):
        old.unlink()
    proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"pinrig-{spec.name}-host",
              "-f", root / "etc/ssh/ssh_host_ed25519_key"], what="ssh-keygen (host key)")
    shutil.copy2(root / "etc/ssh/ssh_host_ed25519_key.pub", out / "host_key.pub")
    proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"pinrig-{spec.name}-client",
              "-f", out / "id_ed25519"], what="ssh-keygen (client key)")
    ssh = root / "root/.ssh"
    ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copy2(out / "id_ed25519.pub", ssh / "authorized_keys")
    os.chmod(ssh / "authorized_keys", 0o600)
    (root / "etc/hostname").write_text("pinrig\n")
    (root / "etc/fstab").write_text("# pinrig: mounts are made by /usr/local/sbin/pinrig-init\n")
    (root / "mnt/test").mkdir(parents=True, exist_ok=True)
    (root / "lib/modules").mkdir(parents=True, exist_ok=True)
    # ndctl's modprobe hook runs `ndctl load-keys` on every libnvdimm load: slow, and no keys here
    (root / "etc/modprobe.d/nvdimm-security.conf").unlink(missing_ok=True)
    (root / "opt/pinrig/bin").mkdir(parents=True, exist_ok=True)
    # root account: unlocked for key login (no password works: '*' is not a valid hash)
    shadow = root / "etc/shadow"
    lines = shadow.read_text().splitlines()
    shadow.write_text("\n".join(
        ("root:*:" + line.split(":", 2)[2]) if line.startswith("root:") else line
        for line in lines) + "\n")
    for junk in ("var/cache/apt/archives", "usr/share/doc", "usr/share/man", "usr/share/locale"):
        p = root / junk
        if p.is_dir():
            for child in p.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                elif child.suffix == ".deb" or junk != "var/cache/apt/archives":
                    child.unlink(missing_ok=True)


def _load_image(d: Path) -> GuestImage:
    meta = json.loads((d / "image.json").read_text())
    # rootfs.img holds the guest's private sshd host key (and the client key is beside it):
    # owner-only, also for images built before this rule
    for secret in (d / "rootfs.img", d / "id_ed25519"):
        if secret.exists() and secret.stat().st_mode & 0o077:
            secret.chmod(0o600)
    return GuestImage(name=meta["name"], rootfs=d / "rootfs.img", ssh_key=d / "id_ed25519",
                      host_key_pub=(d / "host_key.pub").read_text().strip(),
                      hash=meta["hash"], dir=d)


# ---------------------------------------------------------------------------- per-kernel files

def parse_modules_dep(text: str) -> dict:
    """modules.dep → {module name: (path, [dep paths])}; names use '_' (foo-bar → foo_bar)."""
    out = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        path, deps = line.split(":", 1)
        path = path.strip()
        name = Path(path).name.split(".ko")[0].replace("-", "_")
        out[name] = (path, deps.split())
    return out


def module_load_order(dep: dict, wanted) -> list:
    """Paths of wanted modules and their dependencies, dependencies first, no duplicates.
    Modules missing from modules.dep are skipped (built in, or not in this kernel)."""
    by_path = {v[0]: v for v in dep.values()}
    order: list = []

    def visit(path: str, stack=()):
        if path in order or path in stack:
            return
        for d in by_path.get(path, (path, []))[1]:
            visit(d, stack + (path,))
        order.append(path)

    for name in wanted:
        if name in dep:
            visit(dep[name][0])
    return order


def module_chains(dep: dict, chains) -> list:
    """module_load_order for each chain of wanted modules, each module in one chain only: a
    module another chain also needs stays in the first; a chain that needs a module of an
    earlier chain is loaded after it, as part of it (no insmod may miss a dependency).
    Empty chains (all built in) are dropped."""
    by_path = {v[0]: v[1] for v in dep.values()}
    out: list = []
    for wanted in chains:
        order = [p for p in module_load_order(dep, wanted) if not any(p in c for c in out)]
        needs_earlier = [c for c in out if any(d in c for p in order for d in by_path.get(p, []))]
        if needs_earlier:
            out = [c for c in out if c not in needs_earlier]
            out.append([p for c in needs_earlier for p in c] + order)
        elif order:
            out.append(order)
    return out


def plain_name(name: str) -> str:
    """A module's file name as stored uncompressed: xfs.ko.xz → xfs.ko."""
    return name.split(".ko")[0] + ".ko"


def _read_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    if path.name.endswith(".gz"):
        import gzip
        return gzip.decompress(data)
    return data


INIT_SCRIPT = r"""#!/bin/busybox sh
# pinrig initramfs: load the root-disk modules, mount root and the modules disk, switch_root.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "pinrig-initramfs: start" > /dev/console
if grep -q 'pinrig.trivial' /proc/cmdline; then
    echo "PINRIG-TRIVIAL-READY" > /dev/console
    poweroff -f
fi
# the root-disk modules: each chain (a file of module names, dependencies first) in its own
# process, side by side
for c in /chains/*; do
    [ -f "$c" ] || continue
    (for m in $(cat "$c"); do insmod "/mods/$m" 2>/dev/null; done) &
done
wait
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mkdir -p /newroot
if ! mount -t ext4 -o rw /dev/vda /newroot; then
    echo "pinrig-initramfs: cannot mount /dev/vda" > /dev/console
    poweroff -f
fi
mkdir -p /newroot/lib/modules
mount -t ext4 -o ro /dev/vdb /newroot/lib/modules || echo "pinrig-initramfs: no modules disk" > /dev/console
# network: the first NIC with a device behind it (not lo, not a built-in dummy0 or other
# virtual interface) gets the user-mode network's guest address
ip link set lo up
for n in /sys/class/net/*; do
    n=${n##*/}
    [ "$n" = lo ] && continue
    [ -e "/sys/class/net/$n/device" ] || continue
    ip link set "$n" up
    ip addr add 10.0.2.15/24 dev "$n"
    ip route add default via 10.0.2.2 dev "$n"
    echo "$n" > /newroot/run-nic
    break
done
mount --move /dev /newroot/dev
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs tmpfs /newroot/run
mount -t tmpfs tmpfs /newroot/tmp
mount -t tmpfs tmpfs /newroot/dev/shm
mount -t configfs configfs /newroot/sys/kernel/config 2>/dev/null
mount -t cgroup2 cgroup2 /newroot/sys/fs/cgroup 2>/dev/null
[ -f /newroot/run-nic ] && mv /newroot/run-nic /newroot/run/pinrig-nic
mkdir -p /newroot/run/sshd
exec switch_root /newroot /usr/local/sbin/pinrig-init
"""


def initrd_tag() -> str:
    """What the initramfs is made of besides the kernel's modules: a changed init script or
    module list makes a new one instead of reusing a stale cached initramfs."""
    return hashlib.sha256((INIT_SCRIPT + "\0" + repr(ROOT_MODULE_CHAINS)).encode()).hexdigest()[:12]


def boot_files(art: KernelArtifact) -> BootFiles:
    """The initramfs and modules disk for a kernel, made once and cached next to the artifact."""
    out = art.dir / "boot"
    # modules-plain: the modules disk holds no compressed module (before, modules.img did)
    initrd, mdisk = out / f"initrd-{initrd_tag()}" / "initrd.cpio.gz", out / "modules-plain.img"
    if initrd.exists() and mdisk.exists():
        return BootFiles(initrd, mdisk)
    with paths.cache_lock(out):
        initrd.parent.mkdir(parents=True, exist_ok=True)
        if not initrd.exists():
            _make_initrd(art, initrd)
        if not mdisk.exists():
            _make_modules_disk(art, mdisk)
    return BootFiles(initrd, mdisk)


def _make_initrd(art: KernelArtifact, dest: Path) -> None:
    busybox = proc.require("busybox")
    if b"/ld-linux" in Path(busybox).read_bytes()[:8192]:
        raise InfraError(f"{busybox} is dynamically linked: apt-get install busybox-static")
    proc.require("cpio")
    work = dest.parent / "initrd.tmp"
    shutil.rmtree(work, ignore_errors=True)
    for d in ("bin", "dev", "proc", "sys", "mods", "newroot"):
        (work / d).mkdir(parents=True)
    shutil.copy2(busybox, work / "bin/busybox")
    depfile = art.moddir / "modules.dep"   # absent/empty for a kernel with everything built in
    dep = parse_modules_dep(depfile.read_text()) if depfile.is_file() else {}
    (work / "chains").mkdir()
    for i, chain in enumerate(module_chains(dep, ROOT_MODULE_CHAINS), 1):
        names = []
        for rel in chain:
            data = _read_module(art.moddir / rel)
            name = plain_name(Path(rel).name)
            (work / "mods" / name).write_bytes(data)
            names.append(name)
        (work / "chains" / str(i)).write_text("\n".join(names) + "\n")
    (work / "init").write_text(INIT_SCRIPT)
    os.chmod(work / "init", 0o755)
    files = sorted(str(p.relative_to(work)) for p in work.rglob("*"))
    cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=work,
                          input="\n".join(files).encode(), capture_output=True)
    if cpio.returncode != 0:
        raise InfraError(f"cpio failed: {cpio.stderr.decode(errors='replace').strip()}")
    import gzip
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(cpio.stdout, compresslevel=1))
    tmp.rename(dest)
    shutil.rmtree(work)


COMPRESSED_KO = (".ko.xz", ".ko.zst", ".ko.gz")
# The modules a guest of the rig loads (its devices, the cases' filesystems, dm, RDMA) are where
# these paths start, with what they depend on; the rest stays as the kernel ships it.
RIG_MODULE_DIRS = ("kernel/fs/", "kernel/drivers/nvdimm/", "kernel/drivers/acpi/",
                   "kernel/drivers/dax/", "kernel/drivers/infiniband/", "kernel/drivers/md/",
                   "kernel/drivers/block/", "kernel/net/ipv4/", "kernel/net/ipv6/",
                   "kernel/net/core/", "kernel/lib/", "kernel/crypto/", "kernel/mm/")


def rig_modules(dep: dict) -> set:
    """Paths (as in modules.dep) of the modules under RIG_MODULE_DIRS and their dependencies."""
    wanted = [name for name, (path, _deps) in dep.items() if path.startswith(RIG_MODULE_DIRS)]
    return set(module_load_order(dep, wanted))


def _make_modules_disk(art: KernelArtifact, dest: Path) -> None:
    """ext4 image whose root is lib/modules (so the guest mounts it on /lib/modules). The
    compressed modules the rig loads (Debian's since 6.x are .ko.xz) go on it decompressed, with
    modules.dep made again: a guest decompressing xz under TCG spent 0.2 s more of a 6.12 boot
    on it, and every restored guest pays again for each module its cases load (xfs, btrfs…)."""
    src = art.modroot / "lib/modules"
    plain: list = []
    for rel_dir in (d for d in src.iterdir() if (d / "modules.dep").is_file()):
        dep = parse_modules_dep((rel_dir / "modules.dep").read_text())
        plain += [rel_dir / p for p in sorted(rig_modules(dep)) if p.endswith(COMPRESSED_KO)]
    root = art.modroot
    if plain:
        root = dest.parent / "modroot.tmp"
        shutil.rmtree(root, ignore_errors=True)
        proc.progress(f"kernel {art.name}: decompressing {len(plain)} modules for the "
                      "modules disk")
        skip = {str(p) for p in plain}
        shutil.copytree(src, root / "lib/modules", symlinks=True,
                        ignore=lambda d, names: [n for n in names if os.path.join(d, n) in skip])
        for p in plain:
            out = root / "lib/modules" / p.relative_to(src)
            out.with_name(plain_name(p.name)).write_bytes(_read_module(p))
        for rel in {p.relative_to(src).parts[0] for p in plain}:
            proc.run(["depmod", "-b", root, rel], what=f"depmod for {rel} (modules disk)")
    size = sum(p.stat().st_size for p in (root / "lib/modules").rglob("*") if p.is_file())
    mb = int(size * 1.3 / 2**20) + 64
    tmp = dest.with_suffix(".tmp")
    proc.progress(f"kernel {art.name}: modules disk ({mb} MiB)")
    try:
        proc.run(["mkfs.ext4", "-q", "-F", "-L", "pinrig-mods", "-d", root / "lib/modules",
                  tmp, f"{mb}M"], what="mkfs.ext4 -d (modules disk)")
    finally:
        if root != art.modroot:
            shutil.rmtree(root, ignore_errors=True)
    tmp.rename(dest)


def cached_image(name: str, image_hash: str) -> Optional[GuestImage]:
    """A previously built image by its recorded hash (for exact replays), if still cached."""
    d = paths.cache_dir() / "images" / f"{name}-{image_hash}"
    return _load_image(d) if (d / "image.json").exists() else None


def image_status(spec: GuestSpec) -> Optional[Path]:
    d = image_dir(spec)
    return d if (d / "image.json").exists() else None
