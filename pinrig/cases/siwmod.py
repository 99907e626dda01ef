"""soft-iWARP (siw) for kernels that do not ship it, and the source tree a kernel came from.

Debian's kernels build rdma_rxe but not siw (`# CONFIG_RDMA_SIW is not set` in the 5.10, 6.1
and 6.12 packages). For those, the rig builds `siw.ko` out of tree from the very source the
kernel was built from (Debian's linux-source-X.Y package of the image's version:
drivers/infiniband/sw/siw) against the kernel's own linux-headers packages, with the compiler
that built the kernel (a build root of the kernel's suite when the host lacks it), and loads it
in the guest. modversions checks every symbol it takes from ib_core at load time, so a module
that does not fit the kernel is refused by the kernel, never half-loaded. The kernel is then
tainted (O: out-of-tree module) — recorded, not hidden.

A source kernel built with CONFIG_RDMA_SIW (configs/kconfig/siw.config) needs none of this.
"""
from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path
from typing import Optional

from pinrig import config, paths
from pinrig.errors import InfraError, UserError
from pinrig.kernels.artifact import KernelArtifact, image_version

SIW_DIR = "drivers/infiniband/sw/siw"
GUEST_KO = "/tmp/pinrig-siw.ko"


def config_value(art: KernelArtifact, symbol: str) -> Optional[str]:
    """'y' / 'm' / a value for CONFIG_<symbol> in the kernel's config; None when not set or
    when the artifact has no config."""
    if art.config is None or not Path(art.config).is_file():
        return None
    m = re.search(rf"^CONFIG_{symbol}=(\S+)$", Path(art.config).read_text(errors="replace"), re.M)
    return m.group(1) if m else None


def source_package(release: str) -> str:
    """linux-source-X.Y for a Debian kernel release (6.1.0-57-amd64 → linux-source-6.1)."""
    m = re.match(r"(\d+)\.(\d+)", release)
    if not m:
        raise InfraError(f"cannot tell the kernel version of release {release!r}")
    return f"linux-source-{m.group(1)}.{m.group(2)}"


def source_tree(spec: config.KernelSpec, art: KernelArtifact) -> tuple:
    """(pristine tree, label, ident) of the source this kernel was built from: a source
    kernel's own tree, or for a Debian kernel the linux-source package of the image's exact
    version (downloaded and unpacked into the cache once)."""
    from pinrig.kernels.source import builder, sources
    if spec.kind == "image":
        return local_source_tree(spec, art)
    if spec.kind not in ("source", "debian"):
        raise UserError(f"{spec.name}: no source tree known for a {spec.kind} kernel")
    if spec.kind == "source":
        plan = builder.plan(spec)
        with builder.locked_tree(plan.ref):
            sources.materialize(plan.ref, spec)
        return plan.ref.pristine, plan.ref.label, plan.ref.ident + "|" + plan.toolchain
    src_spec = config.KernelSpec(name=f"{spec.name}-source", kind="source", suite=spec.suite,
                                 package=source_package(art.release),
                                 version=image_version(art), mirror=spec.mirror,
                                 source=f"debian:{source_package(art.release)}")
    ref = sources.resolve(src_spec)
    with builder.locked_tree(ref):
        sources.materialize(ref, src_spec)
    return ref.pristine, ref.label, ref.ident


def local_source_tree(spec: config.KernelSpec, art: KernelArtifact) -> tuple:
    """The source tree of a kernel given as --kernel PATH: the build directory it was imported
    from (recorded in its artifact.json), or the tree that directory's `source` link names (an
    O= build). Only an O= build's source tree is used: the rig writes nothing into the user's
    tree, and Kbuild refuses O= on a tree that was built in place."""
    from pinrig.kernels.local import recorded_root
    build = recorded_root(art)
    if build is None:
        raise UserError(f"{spec.name}: imported from a bare image; its source tree is unknown "
                        "(give --kernel the build directory)")
    tree = (build / "source").resolve() if (build / "source").exists() else build
    if not (tree / "Makefile").is_file() or not (tree / "tools").is_dir():
        raise UserError(f"{spec.name}: {tree} is not a kernel source tree any more")
    if (tree / ".config").exists():
        raise UserError(f"{spec.name}: {tree} was built in place; the rig builds the selftests "
                        "with O= and writes nothing into your tree: build the kernel with O=DIR "
                        "and give --kernel DIR")
    return tree, f"{tree} ({spec.name}'s source)", f"local:{tree}@{art.hash}"


def needs_module(art: KernelArtifact) -> bool:
    """True when the kernel has no siw of its own (neither built in nor a module)."""
    return config_value(art, "RDMA_SIW") not in ("y", "m")


def build(spec: config.KernelSpec, art: KernelArtifact) -> Path:
    """siw.ko for this Debian kernel (cached per kernel release and siw source)."""
    from pinrig.cases import kmod
    tree, label, _ident = source_tree(spec, art)
    src = tree / SIW_DIR
    files = sorted(p for p in src.glob("*") if p.suffix in (".c", ".h"))
    if not files:
        raise InfraError(f"{label}: no {SIW_DIR} in the source tree")
    h = kmod.fetch_headers(spec, art)
    digest = hashlib.sha256()
    for p in files:
        digest.update(p.name.encode() + b"\0" + p.read_bytes())
    name = f"siw-{digest.hexdigest()[:12]}"
    out = paths.cache_dir() / "headers" / h.release / name / "siw.ko"
    if out.exists():
        return out
    objs = " ".join(p.stem + ".o" for p in files if p.suffix == ".c")
    kbuild = f"obj-m := siw.o\nsiw-y := {objs}\n"
    chroot = None if shutil.which(h.cc) else kmod.build_root(spec, art)
    return kmod.build_external(h, out, files, chroot, f"siw.ko for {h.release} from {label}",
                               kbuild)


def module_depends(ko: Path) -> list:
    """The modules siw.ko needs loaded first (its .modinfo 'depends=' field)."""
    data = ko.read_bytes()
    m = re.search(rb"depends=([A-Za-z0-9_,-]*)\0", data)
    return [d for d in (m.group(1).decode().split(",") if m else []) if d]


# siw gets a netdev of its own: rdma_cm binds an address to the first RDMA device on that
# address's netdev, and rxe0 already sits on the NIC, so a siw0 on the NIC would never be the
# one rdma_cm picks. A dummy interface with its own address (TCP to it is local delivery) is.
SIW_NETDEV = "pinrig-siw"
SIW_ADDR = "192.168.77.1/24"


def guest_setup_command(nic: str, ko: Optional[Path]) -> str:
    """Shell line that leaves an RDMA device siw0 on a dummy netdev of its own (idempotent):
    the kernel's own siw module, else the uploaded GUEST_KO after its dependencies. `nic` is
    the fallback when the kernel has no dummy netdev."""
    if ko is None:
        load = "modprobe siw"
    else:
        deps = " ".join(module_depends(ko))
        load = (f"{{ lsmod | grep -q '^siw ' || {{ modprobe -a {deps} 2>/dev/null; "
                f"insmod {GUEST_KO}; }}; }}" if deps else
                f"{{ lsmod | grep -q '^siw ' || insmod {GUEST_KO}; }}")
    netdev = (f"if ip link add {SIW_NETDEV} type dummy 2>/dev/null; then "
              f"ip addr add {SIW_ADDR} dev {SIW_NETDEV} && ip link set {SIW_NETDEV} up && "
              f"nd={SIW_NETDEV}; else nd={nic}; fi")
    return (f"test -e /sys/class/infiniband/siw0 || {{ {load} && {{ modprobe -a rdma_ucm "
            f"2>/dev/null; {netdev}; rdma link add siw0 type siw netdev $nd; }}; }}")
