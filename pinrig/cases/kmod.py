"""The rig's test module (workloads/oopsmod/pinrig_oops.ko), built for a Debian kernel.

It makes the running kernel do on demand what a bug would: print a crash report of a given
class (the crash-report corpus), or take a page pin and never drop it (`leak-pin`: the pin
accounting check must catch it). Built against the kernel's own linux-headers packages, fetched
with the private apt state into the cache, with the compiler that built the kernel when the host
has it (scripts/capture_oops.py can also build in a debootstrap'd root of the kernel's suite).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pinrig import config, paths, proc
from pinrig.errors import InfraError, UserError
from pinrig.kernels.apt import PrivateApt, depends_names
from pinrig.kernels.artifact import KernelArtifact, image_version

MODULE_SRC = paths.WORKLOADS_DIR / "oopsmod"
MODULE_FILES = ("pinrig_oops.c", "Kbuild")
GUEST_KO = "/tmp/pinrig_oops.ko"


@dataclass(frozen=True)
class Headers:
    release: str
    kdir: Path          # <root>/usr/src/linux-headers-<release>
    cc: str             # compiler the kernel was built with (from .kernelvariables), e.g. gcc-12


def headers_packages(apt: PrivateApt, release: str, version: str) -> list:
    """[(name, version)] of linux-headers-<release> and the two packages it builds with."""
    top = f"linux-headers-{release}"
    info = apt.show(top, version)
    out = [(top, info["Version"])]
    for dep in depends_names(info.get("Depends", "")):
        if (dep.startswith("linux-headers-") and dep.endswith("-common")) \
                or dep.startswith("linux-kbuild-"):
            dinfo = apt.show(dep, version) if dep.endswith("-common") else apt.show(dep)
            out.append((dep, dinfo["Version"]))
    names = [n for n, _ in out]
    if not any(n.endswith("-common") for n in names) or not any("kbuild" in n for n in names):
        raise InfraError(f"{top} {version}: expected a -common and a linux-kbuild dependency, "
                         f"found {names}")
    return out


def _relocate(root: Path) -> None:
    """Make the unpacked tree self-contained: absolute symlinks and the arch Makefile's
    `include /usr/src/...` point into root instead of the host's /usr."""
    for p in root.rglob("*"):
        if p.is_symlink():
            target = os.readlink(p)
            if target.startswith("/"):
                p.unlink()
                p.symlink_to(root / target.lstrip("/"))
    for mk in root.glob("usr/src/linux-headers-*/Makefile"):
        text = mk.read_text()
        fixed = re.sub(r"^include /usr/src/", f"include {root}/usr/src/", text, flags=re.M)
        if fixed != text:
            mk.write_text(fixed)


def fetch_headers(spec: config.KernelSpec, art: KernelArtifact) -> Headers:
    base = paths.cache_dir() / "headers" / art.release
    root = base / "root"
    stamp = base / "headers.json"
    if not stamp.exists():
        version = image_version(art)
        apt = PrivateApt(spec.suite, spec.mirror)
        if not any(apt.root.joinpath("lists").glob("*Packages*")):
            apt.update()
        pkgs = headers_packages(apt, art.release, version)
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        for name, ver in pkgs:
            deb = apt.download(name, ver, base / "debs")
            proc.run(["dpkg-deb", "-x", deb, root], what=f"dpkg-deb -x {deb.name}")
        _relocate(root)
        stamp.write_text(json.dumps({"release": art.release, "packages": pkgs}, indent=2))
    kdir = root / "usr" / "src" / f"linux-headers-{art.release}"
    if not (kdir / "Makefile").exists():
        raise InfraError(f"{kdir}/Makefile missing: remove {base} and run again")
    cc = "gcc"
    kv = kdir / ".kernelvariables"
    if kv.exists():
        m = re.search(r"\b(gcc-\d+)\b", kv.read_text())
        if m:
            cc = m.group(1)
    return Headers(art.release, kdir, cc)


def module_dir_name() -> str:
    digest = hashlib.sha256()
    for f in MODULE_FILES:
        digest.update((MODULE_SRC / f).read_bytes())
    return f"oopsmod-{digest.hexdigest()[:12]}"


def module_path(key: str) -> Path:
    """Where pinrig_oops.ko built for `key` (a Debian release, local-HASH, source-HASH) is cached,
    per module source."""
    return paths.cache_dir() / "headers" / key / module_dir_name() / "pinrig_oops.ko"


def source_module(spec: config.KernelSpec, art: KernelArtifact) -> Path:
    """pinrig_oops.ko for a kernel the rig built from source: against the build directory of its
    configuration (out-DIGEST, shared by the specs that differ only in their series: same
    release, same config, no MODVERSIONS needed), under the source's lock; cached per artifact."""
    from pinrig.kernels.source import builder, kconfig
    out = module_path(f"source-{art.hash}")
    if out.exists():
        return out
    plan = builder.plan(spec)
    kdir = plan.ref.out_for(kconfig.config_digest(plan.config_base, plan.fragments))
    with builder.locked_tree(plan.ref):
        lacks = [f for f in ("Module.symvers", "include/config/kernel.release")
                 if not (kdir / f).exists()]
        if lacks:
            raise UserError(f"{spec.name}: its build directory {kdir} cannot build modules "
                            f"({', '.join(lacks)} missing: rebuild the kernel)")
        built = (kdir / "include/config/kernel.release").read_text().strip()
        if built != art.release:
            raise UserError(f"{spec.name}: its build directory now holds {built}, not "
                            f"{art.release}: rebuild the kernel")
        return build_module(Headers(art.release, kdir, "gcc"), key=f"source-{art.hash}")


def local_headers(spec: config.KernelSpec, art: KernelArtifact) -> Headers:
    """A --kernel build directory as the KDIR of an out-of-tree module build (nothing is
    written into it: Kbuild writes an external module's files into M=)."""
    from pinrig.kernels.local import recorded_root
    kdir = recorded_root(art)
    if kdir is None:
        raise UserError(f"{spec.name}: imported from a bare image; the test module needs the "
                        "build directory (give --kernel the build directory)")
    lacks = [f for f in ("Module.symvers", ".config", "scripts/mod/modpost") if not (kdir / f).exists()]
    if lacks:
        raise UserError(f"{spec.name}: {kdir} cannot build modules ({', '.join(lacks)} missing: "
                        "build it with CONFIG_MODULES=y and `make modules`)")
    return Headers(art.release, kdir, "gcc")


def build_module(h: Headers, chroot: Optional[Path] = None, key: Optional[str] = None) -> Path:
    """pinrig_oops.ko for this kernel, built once per source version (cached under `key`,
    default its release). With `chroot`, build inside that root (which holds the same headers
    at their packaged /usr/src paths)."""
    out = module_path(key or h.release)
    if out.exists():
        return out
    if chroot is None and not shutil.which(h.cc):
        raise UserError(f"building a module for {h.release} needs {h.cc} (the compiler that "
                        f"built that kernel); the host has {_host_gccs() or 'no gcc'}")
    return build_external(h, out, [MODULE_SRC / f for f in MODULE_FILES], chroot,
                          f"pinrig_oops.ko for {h.release}" + (f" ({h.kdir})" if key else ""))


def build_external(h: Headers, out: Path, files: list, chroot: Optional[Path], what: str,
                   kbuild: Optional[str] = None) -> Path:
    """Build the out-of-tree module `out.name` from files (and a Kbuild text) against the
    kernel's headers, on the host (in out's directory) or inside chroot; → out."""
    name = out.parent.name
    if chroot is None:
        bdir = out.parent
        argv: list = ["make", "-C", h.kdir, f"M={bdir}", "modules"]
    else:
        bdir = chroot / "build" / name
        argv = ["chroot", chroot, "make", "-C", f"/usr/src/linux-headers-{h.release}",
                f"M=/build/{name}", "modules"]
    shutil.rmtree(bdir, ignore_errors=True)
    bdir.mkdir(parents=True)
    for f in files:
        shutil.copy2(f, bdir / Path(f).name)
    if kbuild is not None:
        (bdir / "Kbuild").write_text(kbuild)
    proc.progress(f"building {what} with {h.cc}" + (f" in {chroot}" if chroot else ""))
    res = proc.run(argv, check=False, timeout=900)
    ko = bdir / out.name
    if res.returncode != 0 or not ko.exists():
        lines = [ln for ln in (res.stderr + res.stdout).splitlines() if ln.strip()]
        raise InfraError(f"{out.name} build for {h.release} failed: {' | '.join(lines[-4:])}")
    if ko != out:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ko, out)
    return out


def build_root_packages(depends: list) -> set:
    """What a build root installs besides the headers: make, every non-kernel dependency of the
    headers and kbuild packages, and the compiler that bullseye's headers name only through
    linux-compiler-gcc-N-x86 (newer ones depend on gcc-N directly)."""
    extra = {"make"}
    for dep in depends:
        if not dep.startswith("linux-"):
            extra.add(dep)
        m = re.fullmatch(r"linux-compiler-(gcc-\d+)-\w+", dep)
        if m:
            extra.add(m.group(1))
    return extra


def build_root(spec: config.KernelSpec, art: KernelArtifact) -> Path:
    """A debootstrap'd root of the kernel's own suite with its compiler and kbuild's runtime
    libraries, plus the kernel's headers unpacked at their packaged paths: for kernels whose
    compiler (or whose kbuild tools' glibc) the host does not have. Cached; never touches /usr."""
    if os.geteuid() != 0:
        raise InfraError("a build root needs root (debootstrap, chroot)")
    proc.require("debootstrap")
    apt = PrivateApt(spec.suite, spec.mirror)
    if not any(apt.root.joinpath("lists").glob("*Packages*")):
        apt.update()
    pkgs = headers_packages(apt, art.release, image_version(art))
    top = apt.show(pkgs[0][0], pkgs[0][1])
    kbuild = next(n for n, _ in pkgs if n.startswith("linux-kbuild-"))
    extra = build_root_packages(depends_names(top.get("Depends", "")) +
                                depends_names(apt.show(kbuild).get("Depends", "")))
    key = hashlib.sha256(" ".join(sorted(extra) + [f"{n}={v}" for n, v in pkgs]).encode())
    root = paths.cache_dir() / "buildroot" / f"{spec.suite}-{key.hexdigest()[:12]}"
    if (root / ".pinrig-ready").exists():
        return root
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    proc.progress(f"build root: debootstrap {spec.suite} with {', '.join(sorted(extra))} (a few minutes)")
    proc.run(["debootstrap", "--variant=minbase", f"--include={','.join(sorted(extra))}",
              spec.suite, tmp, spec.mirror], what=f"debootstrap {spec.suite} (build root)",
             timeout=3600)
    for name, ver in pkgs:
        deb = apt.download(name, ver, paths.cache_dir() / "headers" / art.release / "debs")
        # --keep-directory-symlink: a package's lib/… must not replace the merged-/usr `lib`
        # symlink of the root (bullseye's headers carry lib/modules/…/build: without it the
        # root loses its dynamic loader and nothing runs in it)
        proc.run(["sh", "-c", 'dpkg-deb --fsys-tarfile "$1" | tar -x --keep-directory-symlink '
                  '-C "$2"', "sh", deb, tmp], what=f"unpack {deb.name}")
    (tmp / ".pinrig-ready").write_text(json.dumps({"packages": pkgs, "extra": sorted(extra)}))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return root


def _host_gccs() -> str:
    found = sorted({p.name for d in os.environ.get("PATH", "").split(":") if d
                    for p in Path(d).glob("gcc-[0-9]*") if re.fullmatch(r"gcc-\d+", p.name)})
    return ", ".join(found)


def test_module(spec: config.KernelSpec, art: KernelArtifact) -> Path:
    """pinrig_oops.ko for this kernel, built on the host (cached per kernel and source): against
    a Debian kernel's headers package, or a --kernel build directory (its Module.symvers)."""
    if spec.kind == "image":
        return build_module(local_headers(spec, art), key=f"local-{art.hash}")
    if spec.kind == "source":
        return source_module(spec, art)
    if spec.kind != "debian":
        raise UserError(f"{spec.name}: the test module is built for Debian, source and "
                        f"--kernel BUILD_DIR kernels, not for a {spec.kind} kernel")
    h = fetch_headers(spec, art)
    cached = module_path(h.release)
    if cached.exists():
        return cached
    # the compiler that built the kernel, else a build root of its Debian release that has it
    # (as siw.ko is built: debian-5.10 needs gcc-10, debian-6.12 gcc-14, the host has gcc-12)
    return build_module(h, None if shutil.which(h.cc) else build_root(spec, art))
