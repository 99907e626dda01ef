"""Prebuilt Debian kernels: KernelSpec (kind: debian) → KernelArtifact.

Fetched with a private apt state (the host's apt configuration is never touched), resolved from
the suite's metadata (linux-image-amd64 → the versioned image, or on newer suites
linux-binary-*/linux-modules-*), cached by exact package version.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path
from typing import Optional

from pinrig import paths, proc
from pinrig.config import PACKAGE_RE, VERSION_RE, KernelSpec
from pinrig.errors import InfraError
from pinrig.kernels.apt import PrivateApt, depends_names
from pinrig.kernels.artifact import (
    KernelArtifact,
    artifact_from_dict,
    file_sha256,
    find_kernel_files,
    load_artifact,
    load_or_rebuild,
)
from pinrig.paths import atomic_write

# apt packages of a kernel that carry the bits we need (the meta package and linux-base are not)
KERNEL_PKG_RE = re.compile(r"^linux-(image|binary|modules)-\d[\w.+~-]*$")
RESOLVE_MAX_AGE_S = 7 * 24 * 3600


def resolve_packages(apt: PrivateApt, meta: str, version: Optional[str] = None) -> list:
    """Walk Depends from the meta package to the versioned kernel packages: [(name, version)].
    `version` pins the meta package's exact version (Debian gives it the kernel's version)."""
    seen, out, todo = set(), [], [meta]
    while todo:
        pkg = todo.pop(0)
        if pkg in seen:
            continue
        seen.add(pkg)
        info = apt.show(pkg, version if pkg == meta else None)
        if KERNEL_PKG_RE.match(pkg):
            out.append((pkg, info.get("Version", "")))
        for dep in depends_names(info.get("Depends", "")) + depends_names(info.get("Pre-Depends", "")):
            if KERNEL_PKG_RE.match(dep) and dep not in seen:
                todo.append(dep)
    if not out:
        raise InfraError(f"{meta} in {apt.suite} depends on no linux-image/binary/modules package")
    return out


def _resolve_cached(spec: KernelSpec, refresh: bool) -> list:
    """Resolution is remembered so a second run makes no network request at all."""
    rfile = resolved_path(spec)
    if not refresh and rfile.exists() and time.time() - rfile.stat().st_mtime < RESOLVE_MAX_AGE_S:
        cached = _read_resolved(rfile)
        if cached is not None:
            return cached
        proc.progress(f"cache: {rfile.name} is corrupt; resolving again")
    apt = PrivateApt(spec.suite, spec.mirror)
    apt.update()
    pkgs = resolve_packages(apt, spec.package, spec.version)
    atomic_write(rfile, json.dumps(pkgs))
    return pkgs


def resolved_path(spec: KernelSpec) -> Path:
    """Where the resolution of spec (suite, package, pinned version, mirror) is remembered."""
    pin = f"={spec.version}" if spec.version else ""
    mkey = hashlib.sha256(spec.mirror.encode()).hexdigest()[:8]
    return paths.cache_dir() / "kernels" / "resolved" / \
        f"{spec.suite}_{spec.package}{pin}_{mkey}.json"


def remember_resolution(spec: KernelSpec, packages: list) -> None:
    """Record what spec resolves to (e.g. from a results manifest), unless already known, so a
    cached artifact is found without asking apt."""
    rfile = resolved_path(spec)
    if _read_resolved(rfile) is None:
        atomic_write(rfile, json.dumps([list(p) for p in packages]))


def _read_resolved(rfile: Path) -> Optional[list]:
    """A remembered resolution [(package, version, pocket?)…], or None when it is not one."""
    try:
        data = json.loads(rfile.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, list) or not data:
        return None
    out = []
    for item in data:
        if not (isinstance(item, list) and len(item) >= 2 and all(isinstance(x, str) for x in item)
                and PACKAGE_RE.fullmatch(item[0]) and VERSION_RE.fullmatch(item[1])):
            return None
        out.append(tuple(item[:2]))
    return out


def fetch(spec: KernelSpec, refresh: bool = False) -> KernelArtifact:
    """The cached artifact for a Debian spec, downloading and unpacking it once."""
    pkgs = _resolve_cached(spec, refresh)
    key = "+".join(f"{n}={v}" for n, v in sorted(pkgs))
    kdir = paths.cache_dir() / "kernels" / "debian" / re.sub(r"[^\w.+=-]", "_", key)[:200]
    return load_or_rebuild(kdir / "artifact.json", spec.name,
                           lambda: _fetch_into(spec, pkgs, key, kdir))


def _fetch_into(spec: KernelSpec, pkgs: list, key: str, kdir: Path) -> KernelArtifact:
    proc.progress(f"kernel {spec.name}: fetching {key}")
    tmp = kdir.with_name(kdir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "root").mkdir(parents=True)
    apt = PrivateApt(spec.suite, spec.mirror)
    if not any(apt.root.joinpath("lists").glob("*Packages*")):
        apt.update()
    for name, ver in pkgs:
        deb = apt.download(name, ver, tmp / "debs")
        proc.run(["dpkg-deb", "-x", deb, tmp / "root"], what=f"dpkg-deb -x {deb.name}")
    _assemble(spec, tmp, tuple(f"{n}={v}" for n, v in pkgs))
    shutil.rmtree(tmp / "debs", ignore_errors=True)
    shutil.rmtree(kdir, ignore_errors=True)
    tmp.rename(kdir)
    return load_artifact(kdir / "artifact.json", spec.name)


def _assemble(spec: KernelSpec, tmp: Path, packages: tuple) -> KernelArtifact:
    vmlinuz, moddir, config = find_kernel_files(tmp / "root")
    release = moddir.name
    modroot = tmp / "modroot"
    target = modroot / "lib" / "modules" / release
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(vmlinuz, tmp / "vmlinuz")
    if config:
        shutil.copy2(config, tmp / "config")
    shutil.move(str(moddir), str(target))
    shutil.rmtree(tmp / "root")
    proc.progress(f"kernel {spec.name}: depmod {release}")
    proc.run(["depmod", "-b", modroot, release], what=f"depmod for {release}")
    h = hashlib.sha256()
    h.update((tmp / "vmlinuz").read_bytes())
    h.update("\n".join(packages).encode())
    d = {"name": spec.name, "release": release, "vmlinuz": "vmlinuz", "modroot": "modroot",
         "config": "config" if config else None, "packages": list(packages),
         "hash": h.hexdigest()[:16], "vmlinuz_sha256": file_sha256(tmp / "vmlinuz")}
    atomic_write(tmp / "artifact.json", json.dumps(d, indent=2))
    return artifact_from_dict(d, spec.name, base=tmp)


