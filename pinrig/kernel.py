"""Stage `kernel`: KernelSpec → KernelArtifact (vmlinuz, loadable modules, config, hash).

Prebuilt Debian kernels are fetched with a private apt state (the host's apt configuration is
never touched), resolved from the suite's metadata (linux-image-amd64 → the versioned image, or
on newer suites linux-binary-*/linux-modules-*), cached by exact package version.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from . import paths, proc
from .config import KernelSpec
from .errors import InfraError, UserError

# apt packages of a kernel that carry the bits we need (the meta package and linux-base are not)
KERNEL_PKG_RE = re.compile(r"^linux-(image|binary|modules)-\d[\w.+~-]*$")
RESOLVE_MAX_AGE_S = 7 * 24 * 3600


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


class PrivateApt:
    """apt-get/apt-cache with a private state dir for one suite."""

    def __init__(self, suite: str, mirror: str, root: Optional[Path] = None):
        self.suite, self.mirror = suite, mirror
        self.root = root or paths.cache_dir() / "apt" / suite.replace("/", "_")
        for d in ("lists/partial", "cache/archives/partial", "etc"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
        (self.root / "etc/sources.list").write_text(
            f"deb [signed-by={keyring}] {mirror} {suite} main\n")
        status = self.root / "status"
        if not status.exists():
            status.write_text("")

    def opts(self) -> list:
        r = self.root
        return ["-o", f"Dir::Etc::sourcelist={r}/etc/sources.list", "-o", "Dir::Etc::sourceparts=-",
                "-o", f"Dir::State::Lists={r}/lists", "-o", f"Dir::Cache={r}/cache",
                "-o", f"Dir::State::status={r}/status", "-o", "APT::Architecture=amd64",
                "-o", "Acquire::Languages=none", "-o", "Debug::NoLocking=1"]

    def update(self) -> None:
        proc.progress(f"apt: fetching the {self.suite} package index")
        proc.run(["apt-get", *self.opts(), "update"], what=f"apt-get update ({self.suite})",
                 timeout=600)

    def show(self, pkg: str, version: Optional[str] = None) -> dict:
        """Fields of the candidate version of pkg (or of exactly `version`)."""
        arg = f"{pkg}={version}" if version else pkg
        res = proc.run(["apt-cache", *self.opts(), "show", "--no-all-versions", arg], check=False)
        if res.returncode != 0 or not res.stdout.strip():
            what = f"package {pkg} version {version}" if version else f"package {pkg}"
            raise UserError(f"{what} not found in Debian suite {self.suite}")
        return parse_control(res.stdout)

    def download(self, pkg: str, version: str, dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        proc.progress(f"apt: downloading {pkg} {version}")
        proc.run(["apt-get", *self.opts(), "download", f"{pkg}={version}"], cwd=dest,
                 what=f"apt-get download {pkg}", timeout=1800)
        debs = [p for p in dest.glob(f"{pkg}_*.deb")]
        if not debs:
            raise InfraError(f"apt-get download {pkg}={version} produced no .deb in {dest}")
        return debs[0]


def parse_control(text: str) -> dict:
    """First stanza of Debian control text → {field: value} (continuation lines joined)."""
    fields: dict = {}
    last = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        if line[0] in " \t" and last:
            fields[last] += " " + line.strip()
        elif ":" in line:
            k, v = line.split(":", 1)
            last = k.strip()
            fields[last] = v.strip()
    return fields


def depends_names(depends: str) -> list:
    """'a (= 1), b | c, d' → ['a', 'b', 'd'] (first alternative of each clause)."""
    out = []
    for clause in depends.split(","):
        first = clause.split("|")[0].strip()
        name = first.split(" ")[0].split(":")[0].strip()
        if name:
            out.append(name)
    return out


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
    pin = f"={spec.version}" if spec.version else ""
    rfile = paths.cache_dir() / "kernels" / "resolved" / f"{spec.suite}_{spec.package}{pin}.json"
    if not refresh and rfile.exists() and time.time() - rfile.stat().st_mtime < RESOLVE_MAX_AGE_S:
        return [tuple(x) for x in json.loads(rfile.read_text())]
    apt = PrivateApt(spec.suite, spec.mirror)
    apt.update()
    pkgs = resolve_packages(apt, spec.package, spec.version)
    rfile.parent.mkdir(parents=True, exist_ok=True)
    rfile.write_text(json.dumps(pkgs))
    return pkgs


def fetch(spec: KernelSpec, refresh: bool = False) -> KernelArtifact:
    """Return the cached artifact for spec, downloading and unpacking it once."""
    if spec.kind == "source":
        from .build import build
        return build(spec, refresh=refresh)
    if spec.kind != "debian":
        raise UserError(f"{spec.path}: kind: {spec.kind} kernels are not supported yet")
    pkgs = _resolve_cached(spec, refresh)
    key = "+".join(f"{n}={v}" for n, v in sorted(pkgs))
    kdir = paths.cache_dir() / "kernels" / "debian" / re.sub(r"[^\w.+=-]", "_", key)[:200]
    meta = kdir / "artifact.json"
    if meta.exists():
        return _load_artifact(meta, spec.name)
    with paths.cache_lock(kdir):
        if meta.exists():
            return _load_artifact(meta, spec.name)
        return _fetch_into(spec, pkgs, key, kdir)


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
    return _load_artifact(kdir / "artifact.json", spec.name)


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
         "hash": h.hexdigest()[:16]}
    (tmp / "artifact.json").write_text(json.dumps(d, indent=2))
    return _load_artifact_dict(d, spec.name, base=tmp)


def _load_artifact(meta: Path, name: str) -> KernelArtifact:
    return _load_artifact_dict(json.loads(meta.read_text()), name, base=meta.parent)


def _load_artifact_dict(d: dict, name: str, base: Optional[Path] = None) -> KernelArtifact:
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
