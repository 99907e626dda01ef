"""KernelArtifact: what every kernel source (Debian package, source build) hands to the guest stage.

An artifact lives in its own cache directory with an `artifact.json` that names its files
relative to that directory, so a cache can be moved and the artifact still loads.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

from pinrig import paths, proc
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
    vmlinux: Optional[Path] = None      # with symbols: source and --kernel builds keep it
    system_map: Optional[Path] = None

    @property
    def moddir(self) -> Path:
        return self.modroot / "lib" / "modules" / self.release

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


def image_version(art: KernelArtifact) -> str:
    """The Debian version of a kernel's image package (e.g. 6.1.192-3)."""
    for p in art.packages:
        name, _, ver = p.partition("=")
        if name.startswith(("linux-image-", "linux-binary-")) and ver:
            return ver
    raise InfraError(f"{art.name}: no linux-image package version in {art.packages}")


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


class CacheCorrupt(InfraError):
    """A cache entry that is there but cannot be trusted (truncated, edited, half-deleted)."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_artifact(meta: Path, name: str) -> KernelArtifact:
    """The artifact described by meta (artifact.json), checked: its fields, that its files are
    there, and the recorded vmlinuz checksum. Raises CacheCorrupt saying what is wrong."""
    try:
        d = json.loads(meta.read_text())
    except (OSError, ValueError) as e:
        raise CacheCorrupt(f"{meta}: unreadable ({e})")
    if not isinstance(d, dict):
        raise CacheCorrupt(f"{meta}: not a JSON object")
    for key, typ in (("release", str), ("vmlinuz", str), ("modroot", str), ("packages", list),
                     ("hash", str)):
        if not isinstance(d.get(key), typ):
            raise CacheCorrupt(f"{meta}: field {key} missing or not a {typ.__name__}")
    art = artifact_from_dict(d, name, base=meta.parent)
    if not art.vmlinuz.is_file() or not art.modroot.is_dir():
        raise CacheCorrupt(f"{meta.parent}: vmlinuz or modules missing")
    want = d.get("vmlinuz_sha256")
    if want is not None and file_sha256(art.vmlinuz) != want:
        raise CacheCorrupt(f"{art.vmlinuz}: checksum differs from the one recorded")
    return art


def artifact_from_dict(d: dict, name: str, base: Optional[Path] = None) -> KernelArtifact:
    if base is None:
        raise ValueError("base required")
    return KernelArtifact(name=name, release=d["release"], vmlinuz=base / d["vmlinuz"],
                          modroot=base / d["modroot"],
                          config=(base / d["config"]) if d.get("config") else None,
                          packages=tuple(d["packages"]), hash=d["hash"], dir=base,
                          vmlinux=_optional(base, d.get("vmlinux")),
                          system_map=_optional(base, d.get("system_map")))


def _optional(base: Path, rel: object) -> Optional[Path]:
    """A recorded optional file: there, or None (a kept vmlinux may be cleaned away)."""
    if not isinstance(rel, str) or not rel:
        return None
    p = base / rel
    return p if p.is_file() else None


def load_or_rebuild(meta: Path, name: str, build: Callable[[], KernelArtifact]) -> KernelArtifact:
    """The cached artifact at meta, or build() it: when it is missing, or corrupt (then the
    corrupt entry is removed first and the rebuild says why). Serialised by the cache lock."""
    kdir = meta.parent
    if meta.exists():
        try:
            return load_artifact(meta, name)
        except CacheCorrupt:
            pass
    with paths.cache_lock(kdir):
        if meta.exists():
            try:
                return load_artifact(meta, name)
            except CacheCorrupt as e:
                proc.progress(f"cache: {e}; rebuilding {kdir.name}")
                shutil.rmtree(kdir, ignore_errors=True)
        return build()


def cached_artifacts() -> list:
    """(name, release, hash, dir) of every cached kernel; a corrupt entry shows as such."""
    base = paths.cache_dir() / "kernels"
    out: list = []
    metas = [m for kind in ("debian", "source", "local")
             for m in sorted(base.glob(f"{kind}/*/artifact.json"))]
    for meta in metas:
        try:
            d = json.loads(meta.read_text())
            if not isinstance(d, dict):
                raise ValueError("not an object")
        except (OSError, ValueError):
            out.append(("?", "corrupt (rebuilt on next use)", "?", meta.parent))
            continue
        out.append((d.get("name"), d.get("release"), d.get("hash"), meta.parent))
    return out
