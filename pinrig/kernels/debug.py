"""Symbols for a kernel's reports: the vmlinux a source or --kernel build keeps, the test module
(built with debug info), and for Debian kernels, with --symbolize, the matching -dbg package.

linux-image-REL-dbg is large (about 0.9 GB to download and 5.6 GB unpacked for 6.1): it is
fetched once per kernel version into the cache, and only vmlinux and the modules of the
subsystems the rig's cases go through (filesystems, RDMA, nvdimm/dax, device mapper) are
unpacked from it.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pinrig import paths, proc
from pinrig.config import KernelSpec
from pinrig.errors import InfraError
from pinrig.kernels.apt import PrivateApt
from pinrig.kernels.artifact import KernelArtifact, image_version
from pinrig.oops.symbolize import Symbolizer

DBG_MEMBERS = ("./usr/lib/debug/boot/vmlinux-*",
               "./usr/lib/debug/lib/modules/*/kernel/fs/*",
               "./usr/lib/debug/lib/modules/*/kernel/drivers/infiniband/*",
               "./usr/lib/debug/lib/modules/*/kernel/drivers/nvdimm/*",
               "./usr/lib/debug/lib/modules/*/kernel/drivers/acpi/nfit/*",
               "./usr/lib/debug/lib/modules/*/kernel/drivers/dax/*",
               "./usr/lib/debug/lib/modules/*/kernel/drivers/md/*")


@dataclass(frozen=True)
class DebugFiles:
    vmlinux: Optional[Path]
    moddir: Optional[Path]


def symbolizer_for(art: KernelArtifact, test_module: Optional[Path], symbolize: bool,
                   spec: KernelSpec) -> Optional[Symbolizer]:
    """What can put file:line on this kernel's reports (None: nothing can)."""
    vmlinux = art.vmlinux
    dirs = [test_module.parent] if test_module is not None else []
    if symbolize and vmlinux is None and spec.kind == "debian":
        dbg = debian_debug_files(spec, art)
        vmlinux = dbg.vmlinux
        dirs += [dbg.moddir] if dbg.moddir else []
    if vmlinux is None and not dirs:
        return None
    return Symbolizer(vmlinux, dirs)


def debian_debug_files(spec: KernelSpec, art: KernelArtifact) -> DebugFiles:
    version = image_version(art)
    base = paths.cache_dir() / "debug" / f"{art.release}={version}"
    stamp = base / "debug.json"
    if not stamp.exists():
        with paths.cache_lock(base):
            if not stamp.exists():
                _fetch_dbg(spec, art.release, version, base)
    root = base / "root" / "usr" / "lib" / "debug"
    vml = root / "boot" / f"vmlinux-{art.release}"
    mods = root / "lib" / "modules" / art.release
    return DebugFiles(vml if vml.is_file() else None, mods if mods.is_dir() else None)


def _fetch_dbg(spec: KernelSpec, release: str, version: str, base: Path) -> None:
    name = f"linux-image-{release}-dbg"
    apt = PrivateApt(spec.suite, spec.mirror)
    if not any(apt.root.joinpath("lists").glob("*Packages*")):
        apt.update()
    info = apt.show(name, version)
    size = int(info.get("Size", "0") or 0)
    unpacked = int(info.get("Installed-Size", "0") or 0) * 1024
    proc.progress(f"--symbolize: {name} {version} is {size / 2**20:.0f} MiB to download "
                  f"({unpacked / 2**30:.1f} GiB unpacked); fetched once into {base}")
    shutil.rmtree(base / "root", ignore_errors=True)
    debs = base / "debs"
    t0 = time.monotonic()
    with proc.watch_size(debs, size, f"download {name}"):
        deb = apt.download(name, version, debs)
    proc.progress(f"--symbolize: downloaded in {time.monotonic() - t0:.0f}s; unpacking vmlinux "
                  "and the modules the cases use")
    (base / "root").mkdir(parents=True)
    t1 = time.monotonic()
    tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    res = subprocess.run(["tar", "-x", "-C", str(base / "root"), "--wildcards",
                          *DBG_MEMBERS], stdin=tar.stdout, capture_output=True, text=True)
    if tar.stdout is not None:
        tar.stdout.close()
    rc = tar.wait()
    # tar says "Not found in archive" for a subsystem a kernel does not have: that is fine
    if rc != 0 or not any((base / "root").rglob("vmlinux-*")):
        raise InfraError(f"unpacking {deb.name} failed (dpkg-deb exit {rc}): "
                         f"{res.stderr.strip()[-300:]}")
    proc.progress(f"--symbolize: unpacked in {time.monotonic() - t1:.0f}s")
    (base / "debug.json").write_text(json.dumps({"package": name, "version": version,
                                                 "release": release}, indent=2))
    shutil.rmtree(debs, ignore_errors=True)
