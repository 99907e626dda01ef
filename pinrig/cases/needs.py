"""What a kernel must have for the rig's guest to boot and for each case to run.

Read from the kernel's .config (every artifact keeps one when it can: Debian packages, source
builds, a --kernel build directory). An option a case needs is met by `=y`, or by `=m` when the
kernel comes with its modules. A kernel that cannot boot the guest is refused before any boot;
a case whose options are missing is `skipped` with the options and the fragment of
configs/kconfig that provides each, and the other cases run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from pinrig import paths
from pinrig.cases import workloads
from pinrig.config import Case, Pressure
from pinrig.kernels.artifact import KernelArtifact
from pinrig.kernels.source.kconfig import parse_config


@dataclass(frozen=True)
class Need:
    symbol: str                 # CONFIG_…
    builtin: bool = False       # only =y will do (needed before modules can load)
    why: str = ""


@dataclass(frozen=True)
class Missing:
    need: Need
    have: str                   # "n", "absent", "m" (when there are no modules)
    fragment: str               # what provides it

    def text(self) -> str:
        have = {"absent": "not set", "n": "not set",
                "m": "=m but no modules"}.get(self.have, f"={self.have}")
        return f"{self.need.symbol} ({have}; {self.fragment})"


# The guest itself: the initramfs (busybox, gzip), the serial console, virtio disk and NIC
# (the initramfs loads their modules when they are modules), ext4 for the root disk.
BOOT = (Need("CONFIG_BLK_DEV_INITRD", True, "initramfs"),
        Need("CONFIG_RD_GZIP", True, "gzip initramfs"),
        Need("CONFIG_DEVTMPFS", True, "/dev"),
        Need("CONFIG_TMPFS", True, "/run, /tmp"),
        Need("CONFIG_SERIAL_8250_CONSOLE", True, "console on ttyS0"),
        Need("CONFIG_INET", True, "ssh"),
        Need("CONFIG_VIRTIO_PCI", why="virtio devices"),
        Need("CONFIG_VIRTIO_BLK", why="root disk"),
        Need("CONFIG_VIRTIO_NET", why="ssh"),
        Need("CONFIG_EXT4_FS", why="root filesystem"))

PMEM = (Need("CONFIG_ACPI_NFIT", why="nvdimm"), Need("CONFIG_LIBNVDIMM", why="nvdimm"),
        Need("CONFIG_BLK_DEV_PMEM", why="/dev/pmem0"))
FS = {"ext4": (Need("CONFIG_EXT4_FS"),), "xfs": (Need("CONFIG_XFS_FS"),),
      "btrfs": (Need("CONFIG_BTRFS_FS"),), "tmpfs": (Need("CONFIG_TMPFS", True),)}
DAX = (Need("CONFIG_FS_DAX", True, "-o dax"), Need("CONFIG_ZONE_DEVICE", True, "fsdax"))
INTEGRITY = (Need("CONFIG_BLK_DEV_DM", why="device mapper"),
             Need("CONFIG_DM_INTEGRITY", why="dm-integrity"))
RDMA = {"rxe": (Need("CONFIG_INFINIBAND"), Need("CONFIG_INFINIBAND_USER_ACCESS"),
                Need("CONFIG_RDMA_RXE")),
        "siw": (Need("CONFIG_INFINIBAND"), Need("CONFIG_INFINIBAND_USER_ACCESS"),
                Need("CONFIG_RDMA_SIW"))}
MEMCG = (Need("CONFIG_MEMCG", True, "memcg pressure"),)
MODULES = (Need("CONFIG_MODULES", True, "the rig's test module"),)
# Not in any rig fragment: where a developer gets them
HINTS = {"CONFIG_VIRTIO_PCI": "make kvm_guest.config", "CONFIG_VIRTIO_BLK": "make kvm_guest.config",
         "CONFIG_VIRTIO_NET": "make kvm_guest.config", "CONFIG_INET": "make defconfig",
         "CONFIG_BTRFS_FS": "set CONFIG_BTRFS_FS", "CONFIG_BLK_DEV_DM": "set CONFIG_BLK_DEV_DM",
         "CONFIG_DM_INTEGRITY": "set CONFIG_DM_INTEGRITY", "CONFIG_RDMA_SIW": "set CONFIG_RDMA_SIW"}


def case_needs(case: Case, pressure: Optional[Pressure] = None) -> tuple:
    """The options a case needs beyond the guest's own."""
    out: list = []
    fs = case.fs
    base = fs.removesuffix("-dax")
    if base != "tmpfs":
        out += PMEM
    for name, needs in FS.items():
        if base == name or base.startswith(name + "-"):
            out += needs
    if fs.endswith("-dax"):
        out += DAX
    if "integrity" in fs:
        out += INTEGRITY
    w = workloads.get(case.workload)
    if w.needs_rdma:
        out += RDMA.get(getattr(case, "provider", None) or "rxe", RDMA["rxe"])
    out += [Need(s) for s in w.kconfig]
    if w.needs_module(case):
        out += MODULES
    if pressure is not None and pressure.memcg_limit_mb:
        out += MEMCG
    return tuple(dict.fromkeys(out))


def fragment_of(symbol: str, kconfig_dir: Optional[Path] = None) -> str:
    """The rig fragment that sets symbol (configs/kconfig/NAME.config), else a hint."""
    d = kconfig_dir or paths.CONFIGS_DIR / "kconfig"
    for frag in sorted(d.glob("*.config")):
        try:
            text = frag.read_text()
        except OSError:
            continue
        if f"\n{symbol}=" in f"\n{text}":
            return frag.name
    return HINTS.get(symbol, f"set {symbol}")


def lacking(cfg: dict, has_modules: bool, needs: Iterable[Need]) -> list:
    out = []
    for need in needs:
        have = cfg.get(need.symbol, "absent")
        if have == "y" or (have == "m" and has_modules and not need.builtin):
            continue
        out.append(Missing(need, have, fragment_of(need.symbol)))
    return out


@dataclass
class ConfigCheck:
    config: Optional[Path]        # None: the kernel came without one, nothing was checked
    boot: list                    # [Missing] the guest cannot boot without
    cases: dict                   # case id → [Missing]

    def reason(self, case_id: str) -> str:
        miss = self.cases.get(case_id) or []
        return "kernel lacks " + ", ".join(m.text() for m in miss) if miss else ""

    def boot_error(self, kernel: str) -> str:
        return (f"{kernel} cannot boot the rig's guest: it lacks "
                + ", ".join(m.text() for m in self.boot))


def has_modules(art: KernelArtifact) -> bool:
    d = art.moddir
    return d.is_dir() and next((True for p in d.rglob("*.ko*") if p.is_file()), False)


def check(art: KernelArtifact, cases: Iterable[Case] = (),
          pressure: Optional[Pressure] = None) -> ConfigCheck:
    if art.config is None or not art.config.is_file():
        return ConfigCheck(None, [], {})
    cfg = parse_config(art.config.read_text(errors="replace"))
    mods = has_modules(art)
    per_case = {}
    for c in cases:
        miss = lacking(cfg, mods, case_needs(c, pressure))
        if miss:
            per_case[c.id] = miss
    return ConfigCheck(art.config, lacking(cfg, mods, BOOT), per_case)
