"""The kernel argument of a command: a spec name, a spec file, or a kernel the user built.

`rig run debian-6.1 …`, `rig run kernels/x.yaml …`, `rig run --kernel ~/linux/arch/x86/boot/bzImage
--modules /tmp/mods …` (or the path in place of the name). With --modules, the pair is written
as a small `kind: image` spec in the cache, so everything downstream (the manifest, a resume, a
replay) sees one kernel argument.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from pinrig import config, paths
from pinrig.errors import UserError
from pinrig.paths import atomic_write


def add(parser, what: str = "kernel") -> None:
    parser.add_argument("kernel", nargs="?", metavar="KERNEL",
                        help=f"the {what}: a spec name (`rig kernels`), a spec file, or the path "
                        "of a built kernel (bzImage, build directory, source tree)")
    parser.add_argument("--kernel", dest="kernel_path", metavar="PATH",
                        help="a kernel you built: bzImage, build directory (O=) or source tree "
                        "holding arch/x86/boot/bzImage; .config, System.map and vmlinux are "
                        "taken from beside it")
    parser.add_argument("--modules", metavar="DIR", help="with --kernel: its installed modules "
                        "(INSTALL_MOD_PATH of `make modules_install`, or lib/modules/REL); "
                        "default: the modules built in the build directory, if any")


def resolve(args) -> None:
    """Set args.kernel to the one kernel argument the command works with."""
    if not hasattr(args, "kernel_path"):
        return
    name, path, modules = args.kernel, args.kernel_path, args.modules
    if name and path:
        raise UserError(f"give a kernel name ({name}) or --kernel {path}, not both")
    if not name and not path:
        raise UserError("name a kernel: a spec (`rig kernels` lists them) or --kernel PATH")
    if modules and not (path or config.is_kernel_path(name)):
        raise UserError(f"--modules goes with a built kernel (--kernel PATH), not the spec {name}")
    arg = path or name
    if path or config.is_kernel_path(arg):
        arg = str(Path(arg).expanduser().resolve())
        if not Path(arg).exists():
            raise UserError(f"--kernel {path or name}: no such file or directory")
    if modules:
        arg = str(image_spec_file(arg, modules))
    args.kernel = arg


def image_spec_file(image: str, modules: str) -> Path:
    """A `kind: image` spec for image + modules, in the cache (named by the two paths)."""
    mods = Path(modules).expanduser().resolve()
    if not mods.is_dir():
        raise UserError(f"--modules {modules}: not a directory")
    spec = config.image_spec(image, str(mods))
    key = hashlib.sha256(f"{image}\0{mods}".encode()).hexdigest()[:12]
    f = paths.cache_dir() / "kernels" / "local" / "specs" / f"{spec.name}-{key}.yaml"
    f.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(f, "# written by `rig … --kernel PATH --modules DIR`\n" + yaml.safe_dump(
        {"name": spec.name, "kind": "image", "image": image, "modules": str(mods)}))
    return f
