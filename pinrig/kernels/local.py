"""Kernels the user built: a bzImage, a build directory (O=) or a source tree holding one.

`locate()` finds what belongs to the image: the build root (for a path ending in
arch/x86/boot/bzImage, or a directory), its `.config`, `System.map` and `vmlinux` (or, in the
/boot layout, `config-REL` and `System.map-REL` beside `vmlinuz-REL`), and the modules: an
installed tree given with --modules (INSTALL_MOD_PATH root or lib/modules/REL itself), else
the modules built in the build root (its modules.order). Nothing is written to the user's tree.

`fetch()` imports all that into the cache under a content hash (image, config and every module
file), so a rebuilt image is a new artifact and an unchanged one is found again.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from pinrig import paths, proc
from pinrig.config import KernelSpec
from pinrig.errors import UserError
from pinrig.kernels.artifact import KernelArtifact, file_sha256, load_or_rebuild
from pinrig.paths import atomic_write

BZIMAGE_REL = Path("arch/x86/boot/bzImage")
ELF_MAGIC = b"\x7fELF"
HEADER_MAGIC_AT = 0x202          # "HdrS" in the x86 boot protocol's setup header
VERSION_PTR_AT = 0x20E           # kernel_version: offset of the version string, minus 0x200
RELEASE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~-]{0,99}")
MODULE_META = ("modules.order", "modules.builtin", "modules.builtin.modinfo")


@dataclass(frozen=True)
class LocalKernel:
    image: Path                      # the bootable bzImage
    release: str                     # uname -r, from the image's own version string
    version: str                     # the whole version string ("6.1.0-pinrig (u@h) #1 SMP …")
    root: Optional[Path]             # the build directory, when the image came from one
    config: Optional[Path]
    system_map: Optional[Path]
    vmlinux: Optional[Path]
    modules: Optional[Path]          # lib/modules/REL of an installed tree
    built_modules: tuple = ()        # (path in root, path under kernel/) of modules built in root

    @property
    def has_modules(self) -> bool:
        return self.modules is not None or bool(self.built_modules)


def bzimage_version(head: bytes) -> Optional[str]:
    """The version string of a bzImage from its first 32 KiB, or None when it is not one."""
    if len(head) < VERSION_PTR_AT + 2 or head[HEADER_MAGIC_AT:HEADER_MAGIC_AT + 4] != b"HdrS":
        return None
    ptr = int.from_bytes(head[VERSION_PTR_AT:VERSION_PTR_AT + 2], "little")
    start = ptr + 0x200
    if ptr == 0 or start >= len(head):
        return None
    end = head.find(b"\0", start, start + 512)
    text = head[start:end if end > 0 else start + 512].decode("ascii", errors="replace").strip()
    return text or None


def release_of(version: str) -> str:
    return version.split()[0] if version.split() else ""


def _build_root(image: Path) -> Optional[Path]:
    parts = image.parent.parts
    if len(parts) >= 3 and parts[-3:] == ("arch", "x86", "boot"):
        return image.parent.parent.parent.parent
    return None


def _first(*cands: Path) -> Optional[Path]:
    return next((c for c in cands if c.is_file()), None)


def locate(path: Path, modules: Optional[Path] = None) -> LocalKernel:
    """What a --kernel PATH (and --modules DIR) amount to; UserError in one line otherwise."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"--kernel {path}: no such file or directory")
    if p.is_dir():
        image = p / BZIMAGE_REL
        if not image.is_file():
            if any((p / x).exists() for x in ("Makefile", "Kconfig", ".config", "vmlinux")):
                raise UserError(f"--kernel {path}: a kernel tree with no built image "
                                f"({BZIMAGE_REL} is missing: run `make bzImage` there, or "
                                "give the image's path)")
            raise UserError(f"--kernel {path}: not a kernel image or kernel build directory "
                            f"(no {BZIMAGE_REL} in it)")
        root: Optional[Path] = p
    else:
        image = p
        root = _build_root(p)
    with open(image, "rb") as f:
        head = f.read(1 << 15)
    if head.startswith(ELF_MAGIC):
        raise UserError(f"--kernel {path}: an ELF vmlinux, not a bootable image; give "
                        f"{BZIMAGE_REL} (the rig takes vmlinux from beside it for symbols)")
    version = bzimage_version(head)
    if not version:
        raise UserError(f"--kernel {path}: not a kernel image (no x86 bzImage setup header)")
    release = release_of(version)
    if not RELEASE_RE.fullmatch(release):
        raise UserError(f"--kernel {path}: its version string names release {release[:80]!r}, "
                        "which is not a kernel release (letters, digits, . _ + ~ -)")
    beside = image.parent
    if root is not None:
        config = _first(root / ".config")
        smap = _first(root / "System.map")
        vmlinux = _first(root / "vmlinux")
    else:
        config = _first(beside / f"config-{release}", beside / ".config", beside / "config")
        smap = _first(beside / f"System.map-{release}", beside / "System.map")
        vmlinux = _first(beside / f"vmlinux-{release}", beside / "vmlinux")
    mods = _installed_modules(modules, release) if modules is not None else None
    built: tuple = ()
    if mods is None and root is not None and (root / "modules.order").is_file():
        built = built_modules(root)
    return LocalKernel(image.resolve(), release, version, root.resolve() if root else None,
                       config, smap, vmlinux, mods, built)


def _installed_modules(d: Path, release: str) -> Path:
    d = Path(d).expanduser()
    if not d.is_dir():
        raise UserError(f"--modules {d}: not a directory")
    cands = [d / "lib" / "modules" / release, d / release] + ([d] if d.name == release else [])
    for cand in cands:
        if cand.is_dir():
            return cand.resolve()
    have = sorted(x.name for x in (d / "lib" / "modules").glob("*")) \
        if (d / "lib" / "modules").is_dir() else []
    if not have and any((d / x).exists() for x in ("modules.order", "modules.dep", "kernel")):
        have = [d.name]
    if have:
        raise UserError(f"--modules {d}: has modules for {', '.join(have)}, not for {release} "
                        "(the image's release)")
    raise UserError(f"--modules {d}: no modules for {release} in it (give the "
                    "INSTALL_MOD_PATH of `make modules_install`, or its lib/modules/"
                    f"{release})")


def built_modules(root: Path) -> tuple:
    """(built .ko, its place under kernel/) for every module in root's modules.order."""
    out = []
    for line in (root / "modules.order").read_text(errors="replace").splitlines():
        rel = line.strip()
        if not rel:
            continue
        rel = rel.removeprefix("kernel/")
        if rel.endswith(".o"):
            rel = rel[:-2] + ".ko"
        ko = root / rel
        if not ko.is_file():
            raise UserError(f"{root}: modules.order names {rel} but it is not built (run "
                            "`make modules`, or give --modules DIR of an installed tree)")
        out.append((ko, Path("kernel") / rel))
    return tuple(out)


def _module_files(lk: LocalKernel) -> Iterator[tuple]:
    """(source file, path under lib/modules/REL) of every module file to import."""
    if lk.modules is not None:
        for f in sorted(lk.modules.rglob("*")):
            rel = f.relative_to(lk.modules)
            if rel.parts[0] in ("build", "source") or not f.is_file():
                continue
            yield f, rel
    elif lk.built_modules:
        yield from lk.built_modules
        for name in MODULE_META:
            if lk.root is not None and (lk.root / name).is_file():
                yield lk.root / name, Path(name)


def content_key(lk: LocalKernel) -> str:
    """Hash of everything the artifact is made of: the image, config, and every module file.
    File hashes are remembered by (path, size, mtime, inode), so an unchanged tree of
    thousands of modules is not read again on every run."""
    files = [lk.image] + ([lk.config] if lk.config else [])
    mods = list(_module_files(lk))
    sums = _hashes(files + [src for src, _rel in mods])
    h = hashlib.sha256(b"pinrig-local-kernel-1\0")
    h.update(sums[lk.image].encode())
    h.update(sums[lk.config].encode() if lk.config else b"-")
    for src, rel in mods:
        h.update(f"\0{rel}\0{sums[src]}".encode())
    return h.hexdigest()


def _hashes(files: list) -> dict:
    db_path = paths.cache_dir() / "kernels" / "local" / "file-hashes.json"
    try:
        db = json.loads(db_path.read_text())
        if not isinstance(db, dict):
            db = {}
    except (OSError, ValueError):
        db = {}
    out, changed = {}, False
    for f in files:
        st = f.stat()
        key, stamp = str(f.resolve()), [st.st_size, st.st_mtime_ns, st.st_ino]
        ent = db.get(key)
        if isinstance(ent, dict) and ent.get("stamp") == stamp and isinstance(ent.get("sha"), str):
            out[f] = ent["sha"]
            continue
        out[f] = file_sha256(f)
        db[key] = {"stamp": stamp, "sha": out[f]}
        changed = True
    if changed:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(db_path, json.dumps(db))
    return out


def fetch(spec: KernelSpec) -> KernelArtifact:
    if not spec.image:
        raise UserError(f"{spec.path or spec.name}: image: missing")
    img = Path(spec.image)
    if img.name == "vmlinuz" and img.parent.parent == paths.cache_dir() / "kernels" / "local" \
            and (img.parent / "artifact.json").exists():
        # an imported artifact named by its own image (a replay of a recorded run): itself
        return load_or_rebuild(img.parent / "artifact.json", spec.name,
                               lambda: _gone(img.parent))
    lk = locate(img, Path(spec.modules) if spec.modules else None)
    key = content_key(lk)
    d = paths.cache_dir() / "kernels" / "local" / key[:16]
    return load_or_rebuild(d / "artifact.json", spec.name, lambda: _import(spec, lk, key, d))


def _gone(d: Path) -> KernelArtifact:
    raise UserError(f"{d}: the cached kernel is damaged and its sources are not known here; "
                    "run with --kernel PATH of the build again")


def _import(spec: KernelSpec, lk: LocalKernel, key: str, d: Path) -> KernelArtifact:
    from pinrig.kernels.artifact import load_artifact
    tmp = d.with_name(d.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    proc.progress(f"kernel {spec.name}: importing {lk.image} ({lk.release})")
    shutil.copy2(lk.image, tmp / "vmlinuz")
    if lk.config:
        shutil.copy2(lk.config, tmp / "config")
    if lk.system_map:
        shutil.copy2(lk.system_map, tmp / "System.map")
    if lk.vmlinux:
        mb = lk.vmlinux.stat().st_size / 2**20
        proc.progress(f"kernel {spec.name}: keeping vmlinux ({mb:.0f} MiB) for symbols")
        shutil.copy2(lk.vmlinux, tmp / "vmlinux")
    moddir = tmp / "modroot" / "lib" / "modules" / lk.release
    moddir.mkdir(parents=True)
    n = 0
    for src, rel in _module_files(lk):
        (moddir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, moddir / rel)
        n += rel.suffix == ".ko" or rel.name.endswith((".ko.xz", ".ko.zst", ".ko.gz"))
    if lk.built_modules:
        # modules.order as modules_install writes it: paths under kernel/
        (moddir / "modules.order").write_text(
            "".join(f"{rel}\n" for _src, rel in lk.built_modules))
    if n:
        proc.progress(f"kernel {spec.name}: {n} module(s); depmod")
        argv = ["depmod", "-b", str(tmp / "modroot")]
        if lk.system_map:
            argv += ["-F", str(lk.system_map)]
        proc.run(argv + [lk.release], what=f"depmod for {lk.release}")
    d_json: dict = {"name": spec.name, "release": lk.release, "vmlinuz": "vmlinuz",
              "modroot": "modroot", "config": "config" if lk.config else None,
              "system_map": "System.map" if lk.system_map else None,
              "vmlinux": "vmlinux" if lk.vmlinux else None,
              "packages": [], "hash": key[:16], "kind": "local",
              "inputs": {"image": str(lk.image), "version": lk.version,
                         "root": str(lk.root) if lk.root else None,
                         "modules": str(lk.modules) if lk.modules else
                         (f"{lk.root} (built, {len(lk.built_modules)})" if lk.built_modules
                          else None),
                         "key": key},
              "vmlinuz_sha256": file_sha256(tmp / "vmlinuz"),
              "imported": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write(tmp / "artifact.json", json.dumps(d_json, indent=2))
    shutil.rmtree(d, ignore_errors=True)
    tmp.rename(d)
    return load_artifact(d / "artifact.json", spec.name)


def recorded_root(art: KernelArtifact) -> Optional[Path]:
    """The build directory an imported kernel came from (its artifact.json), None for a bare
    image or an artifact of another kind."""
    try:
        root = json.loads((art.dir / "artifact.json").read_text())["inputs"].get("root")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return Path(root) if isinstance(root, str) and root else None
