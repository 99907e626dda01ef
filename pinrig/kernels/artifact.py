"""KernelArtifact: what every kernel source (Debian package, source build) hands to the guest stage.

An artifact lives in its own cache directory with an `artifact.json` that names its files
relative to that directory, so a cache can be moved and the artifact still loads.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from pinrig import paths
from pinrig.errors import InfraError


@dataclass(frozen=True)
class KernelArtifact:
    name: str                 # spec name, e.g. debian-6.1
    release: str              # uname -r, e.g. 6.1.0-28-amd64
    vmlinuz: Path
    modroot: Path             # contains lib/modules/<release>/ (depmod done)
    config: Optional[Path]
    packages: tuple           # ("linux-image-6.1.0-28-amd64=6.1.119-1", …)
    hash: str                 # content hash of vmlinuz + package list
    dir: Path

    @property
    def moddir(self) -> Path:
        return self.modroot / "lib" / "modules" / self.release

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


def find_kernel_files(root: Path) -> tuple:
    """(vmlinuz, modules dir, config) inside an unpacked kernel package tree, any packaging."""
    cands = sorted(root.glob("boot/vmlinuz-*")) + sorted(root.glob("usr/lib/modules/*/vmlinuz")) \
        + sorted(root.glob("lib/modules/*/vmlinuz"))
    if not cands:
        raise InfraError(f"no vmlinuz found in unpacked kernel packages under {root}")
    vmlinuz = cands[0]
    mods = sorted(root.glob("lib/modules/*/kernel")) + sorted(root.glob("usr/lib/modules/*/kernel"))
    if not mods:
        raise InfraError(f"no modules directory found under {root}")
    moddir = mods[0].parent
    release = moddir.name
    configs = sorted(root.glob(f"boot/config-{release}")) + sorted(moddir.glob("config"))
    return vmlinuz, moddir, (configs[0] if configs else None)


def load_artifact(meta: Path, name: str) -> KernelArtifact:
    return artifact_from_dict(json.loads(meta.read_text()), name, base=meta.parent)


def artifact_from_dict(d: dict, name: str, base: Optional[Path] = None) -> KernelArtifact:
    if base is None:
        raise ValueError("base required")
    return KernelArtifact(name=name, release=d["release"], vmlinuz=base / d["vmlinuz"],
                          modroot=base / d["modroot"],
                          config=(base / d["config"]) if d.get("config") else None,
                          packages=tuple(d["packages"]), hash=d["hash"], dir=base)


def cached_artifacts() -> list:
    base = paths.cache_dir() / "kernels"
    out = []
    for meta in sorted(base.glob("debian/*/artifact.json")) + sorted(base.glob("source/*/artifact.json")):
        d = json.loads(meta.read_text())
        out.append((d.get("name"), d.get("release"), d.get("hash"), meta.parent))
    return out
