"""YAML is loaded and validated here, and only here. Everything else sees dataclasses.

Errors name the file and the field: "kernels/x.yaml: suite: must be one of …".
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from pinrig import outcome, paths
from pinrig.cases import workloads
from pinrig.errors import UserError

DEBIAN_SUITES = ("bullseye", "bookworm", "bookworm-backports", "trixie", "sid", "unstable")
FILESYSTEMS = ("ext4", "xfs", "ext4-dax", "xfs-dax", "tmpfs", "btrfs", "ext4-integrity")
# btrfs: data checksums; ext4-integrity: ext4 on dm-integrity (crc32c per 4 KiB sector, direct
# writes, no journal) on /dev/pmem0 -- the stable-page filesystems of issue 15
MAPPINGS = ("shared", "private")
PROVIDERS = ("rxe", "siw")        # soft RDMA providers (RoCE / iWARP); rxe is the default
DEFAULT_PROVIDER = "rxe"

# Names that become path components, case ids, shell words and console markers: one character
# set for all of them (checked when the YAML is loaded, so nothing else needs to quote them).
NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
NAME_RULE = "letters, digits, '.', '_', '-' (not starting with '.' or '@'), at most 64"
MIRROR_RE = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~%+/-]*)?")
VERSION_RE = re.compile(r"[A-Za-z0-9.+~:-]{1,64}")        # a Debian package version
PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]{1,99}")      # a Debian package name
# Writeback knobs: the kernel's own ranges (Documentation/admin-guide/sysctl/vm.rst)
PRESSURE_RANGES = {"dirty_ratio": (0, 100), "dirty_background_ratio": (0, 100),
                   "dirty_expire_centisecs": (0, 100_000_000),
                   "dirty_writeback_centisecs": (0, 100_000_000),
                   "memcg_limit_mb": (16, 1 << 20)}


def check_name(value: str) -> bool:
    """True when value is safe as a path component, id part, shell word and marker."""
    return bool(NAME_RE.fullmatch(value)) and value not in (".", "..")


# ---------------------------------------------------------------------------- helpers

def load_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as e:
        raise UserError(f"{path}: cannot read: {e.strerror}")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}): is this a YAML file?")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}:{where}: invalid YAML: {getattr(e, 'problem', e)}")
    if not isinstance(data, dict):
        raise UserError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


class Fields:
    """Typed access to a YAML mapping that reports file and field on error."""

    def __init__(self, path: Path, data: dict, prefix: str = ""):
        self.path, self.data, self.prefix = path, data, prefix
        self.used: set = set()

    def err(self, key: str, msg: str) -> UserError:
        return UserError(f"{self.path}: {self.prefix}{key}: {msg}")

    def get(self, key: str, typ, default: Any = ..., choices=None):
        self.used.add(key)
        if key not in self.data or self.data[key] is None:
            if default is ...:
                raise self.err(key, "is required")
            return default
        val = self.data[key]
        if typ is float and isinstance(val, int) and not isinstance(val, bool):
            val = float(val)
        if not isinstance(val, typ) or (typ is int and isinstance(val, bool)):
            tn = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
            raise self.err(key, f"must be {tn}, got {type(val).__name__} {val!r}")
        if choices is not None and val not in choices:
            raise self.err(key, f"unknown value {val!r} (known: {', '.join(choices)})")
        return val

    def name(self, key: str, default: Any = ...) -> Any:
        """A string that will become a path component or an id part (see NAME_RULE)."""
        val = self.get(key, str, default)
        if isinstance(val, str) and not check_name(val):   # a file's stem as default too
            raise self.err(key, f"{val!r} is not a valid name ({NAME_RULE})")
        return val

    def mirror(self, key: str = "mirror") -> str:
        val = self.get(key, str, "http://deb.debian.org/debian")
        if not MIRROR_RE.fullmatch(val):
            raise self.err(key, f"{val!r} is not an http(s) URL (no spaces, quotes or newlines)")
        return val

    def package(self, key: str = "package") -> str:
        val = self.get(key, str, "linux-image-amd64")
        if not PACKAGE_RE.fullmatch(val):
            raise self.err(key, f"{val!r} is not a Debian package name")
        return val

    def version(self, key: str = "version") -> Optional[str]:
        val = self.get(key, str, None)
        if val is not None and not VERSION_RE.fullmatch(val):
            raise self.err(key, f"{val!r} is not a Debian package version")
        return val

    def str_list(self, key: str, default=..., choices=None) -> list:
        val = self.get(key, (list, str), default)
        if isinstance(val, str):
            val = [val]
        for i, v in enumerate(val):
            if not isinstance(v, str):
                raise self.err(f"{key}[{i}]", f"must be a string, got {v!r}")
            if choices is not None and v not in choices:
                raise self.err(f"{key}[{i}]", f"unknown value {v!r} (known: {', '.join(choices)})")
        return list(val)

    def finish(self) -> None:
        extra = sorted(set(self.data) - self.used)
        if extra:
            raise self.err(extra[0], "unknown field")


def find_spec(kind_dir: Path, name_or_path: str, what: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if not _exists(p):
            raise UserError(f"{what} file {name_or_path} does not exist")
        return p
    cand = kind_dir / f"{name_or_path}.yaml"
    if check_name(name_or_path) and _exists(cand):
        return cand
    known = ", ".join(sorted(x.stem for x in kind_dir.glob("*.yaml"))) or "none"
    raise UserError(f"unknown {what} '{name_or_path}' (known: {known})")


def file_hash(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


# ---------------------------------------------------------------------------- kernels

@dataclass(frozen=True)
class KernelSpec:
    name: str
    kind: str                 # "debian" (prebuilt package) or "source" (built by pinrig.kernels.source.builder)
    suite: str                # Debian suite ("" for a source kernel from git or a directory)
    package: str = "linux-image-amd64"
    version: Optional[str] = None   # pin an exact package version (else newest in suite)
    mirror: str = "http://deb.debian.org/debian"
    description: str = ""
    path: Optional[Path] = None
    # kind: source only (plain strings/tuples: the manifest records these fields as JSON)
    source: Optional[str] = None    # "debian:linux-source-6.1" | "git:/abs/repo" | "dir:/abs/tree"
    ref: Optional[str] = None       # git source: commit-ish of the base tree
    series: Optional[str] = None    # absolute path (quilt dir, mbox, .eml dir, .patch), "git:A..B"
    #                                 or "lore:MESSAGE-ID"
    config_base: tuple = ()         # make targets for the base config
    config: tuple = ()              # absolute paths of config fragments, merged in order
    series_mbox: Optional[str] = None   # lore: series: a local copy of the thread (offline)
    series_rev: Optional[int] = None    # the revision to take from a thread (default: newest
    #                                     complete); --rev N overrides
    fuzz: int = 0                   # GNU patch fuzz (0: strict); --fuzz N overrides
    # kind: image only (a kernel the user built: `--kernel PATH`, or a spec with image:)
    image: Optional[str] = None     # bzImage, build directory (O=) or source tree with one
    modules: Optional[str] = None   # installed modules (INSTALL_MOD_PATH or lib/modules/REL)


SOURCE_KINDS = ("debian", "git", "dir")
DEFAULT_CONFIG_BASE = ("defconfig", "kvm_guest.config")


def is_kernel_path(arg: str) -> bool:
    """True when a kernel argument names a built kernel (a file or directory that is not a
    YAML spec) rather than a spec: it has a '/' in it, or is no spec's name but exists."""
    p = Path(arg)
    if p.suffix in (".yaml", ".yml"):
        return False
    if "/" in arg:
        return True
    return not (check_name(arg) and _exists(paths.KERNELS_DIR / f"{arg}.yaml")) and _exists(p)


def image_spec(image: str, modules: Optional[str] = None, name: Optional[str] = None,
               path: Optional[Path] = None, description: str = "") -> KernelSpec:
    """kind: image — a kernel the user built (bzImage, build directory or source tree)."""
    img = Path(image).expanduser()
    if not _exists(img):
        where = f"{path}: image: {image}" if path else f"--kernel {image}"
        raise UserError(f"{where}: no such file or directory")
    img = img.resolve()
    mods = str(Path(modules).expanduser().resolve()) if modules else None
    if name is None:
        parts = img.parts
        root = img.parents[3] if len(parts) > 4 and parts[-4:-1] == ("arch", "x86", "boot") \
            else img
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", root.name).strip(".-") or "kernel"
        name = f"local-{stem}"[:64]
    return KernelSpec(name=name, kind="image", suite="", package="", mirror="",
                      description=description or f"built kernel {img}", path=path,
                      image=str(img), modules=mods)


def load_kernel_spec(name_or_path: str) -> KernelSpec:
    if is_kernel_path(name_or_path):
        return image_spec(name_or_path)
    path = find_spec(paths.KERNELS_DIR, name_or_path, "kernel")
    f = Fields(path, load_yaml(path))
    kind = f.get("kind", str, "debian", choices=("debian", "source", "image"))
    if kind == "source":
        spec = _load_source_spec(path, f)
    elif kind == "image":
        base = path.parent
        image = f.get("image", str)
        modules = f.get("modules", str, None)
        spec = image_spec(str(base / Path(image).expanduser()),
                          str(base / Path(modules).expanduser()) if modules else None,
                          name=f.name("name", path.stem), path=path,
                          description=f.get("description", str, ""))
    else:
        spec = KernelSpec(
            name=f.name("name", path.stem),
            kind=kind,
            suite=f.get("suite", str, choices=DEBIAN_SUITES),
            package=f.package(),
            version=f.version(),
            mirror=f.mirror(),
            description=f.get("description", str, ""),
            path=path,
        )
    f.finish()
    return spec


def override_spec(spec: KernelSpec, fuzz: Optional[int] = None,
                  rev: Optional[int] = None) -> KernelSpec:
    """The spec with --fuzz N / --rev N from the command line (source kernels with a series)."""
    import dataclasses
    if fuzz is None and rev is None:
        return spec
    flag = "--fuzz" if fuzz is not None else "--rev"
    if spec.kind != "source" or not spec.series:
        raise UserError(f"{flag}: kernel {spec.name} has no patch series to apply")
    if fuzz is not None and not 0 <= fuzz <= 3:
        raise UserError(f"--fuzz {fuzz}: must be 0..3 (GNU patch fuzz)")
    if rev is not None and rev < 1:
        raise UserError(f"--rev {rev}: must be 1 or more")
    return dataclasses.replace(spec, fuzz=spec.fuzz if fuzz is None else fuzz,
                               series_rev=spec.series_rev if rev is None else rev)


def _local_path(base: Path, text: str) -> Path:
    p = Path(text).expanduser()
    return p if p.is_absolute() else (base / p)


def _load_source_spec(path: Path, f: "Fields") -> KernelSpec:
    """kind: source — a kernel built from a source tree, a patch series and config fragments.

    source: debian:linux-source-6.1 (with suite:) | git:PATH (with ref:) | dir:PATH
    series: NAME (kernels/patches/NAME[.mbox|.patch]) | PATH (quilt dir, mbox, .eml dir, patch)
            | git:A..B | lore:MESSAGE-ID (with series_mbox: PATH as the offline copy)
    series_rev: N (the revision of a thread to use), fuzz: N (GNU patch fuzz, opt-in)
    config: [FRAGMENT…] (configs/kconfig/FRAGMENT.config or a path), base: [make targets…]
    """
    src = f.get("source", str)
    kind, sep, arg = src.partition(":")
    if not sep and src.startswith("linux-source-"):
        kind, arg = "debian", src
    if kind not in SOURCE_KINDS or not arg:
        raise f.err("source", f"must be debian:PACKAGE, git:PATH or dir:PATH, got {src!r}")
    suite = f.get("suite", str, "" if kind != "debian" else ..., choices=DEBIAN_SUITES)
    if kind != "debian" and suite:
        raise f.err("suite", "only a debian: source has a suite")
    ref = f.get("ref", str, None)
    if kind == "debian":
        source = f"debian:{arg}"
        if not arg.startswith("linux-source-"):
            raise f.err("source", f"Debian package must be linux-source-X, got {arg!r}")
    else:
        tree = _local_path(path.parent, arg).resolve()
        if not tree.is_dir():
            raise f.err("source", f"{tree} is not a directory")
        if kind == "git" and not (tree / ".git").exists() and not (tree / "HEAD").exists():
            raise f.err("source", f"{tree} is not a git repository")
        source = f"{kind}:{tree}"
    if ref is not None and kind != "git":
        raise f.err("ref", "only a git: source has a ref")
    series_text = f.get("series", str, None)
    series = None
    if series_text is not None:
        if series_text.startswith("git:"):
            if kind != "git":
                raise f.err("series", "a git range series needs a git: source")
            lo, dots, hi = series_text[4:].partition("..")
            if not dots or not lo or not hi:
                raise f.err("series", f"git range must be git:A..B, got {series_text!r}")
            series = series_text
            ref = ref or lo
        elif series_text.startswith("lore:"):
            from pinrig.kernels.source.lore import clean_msgid
            try:
                series = "lore:" + clean_msgid(series_text[5:])
            except UserError:
                raise f.err("series", f"{series_text!r}: not a Message-ID "
                                      "(want lore:local-part@domain)")
        else:
            series = str(_find_series(path, f, series_text))
    mbox_text = f.get("series_mbox", str, None)
    series_mbox = None
    if mbox_text is not None:
        if not (series or "").startswith("lore:"):
            raise f.err("series_mbox", "only with series: lore:MESSAGE-ID (a local copy of it)")
        mp = _local_path(path.parent, mbox_text)
        if not _exists(mp):
            raise f.err("series_mbox", f"{mp} does not exist")
        series_mbox = str(mp.resolve())
    series_rev = f.get("series_rev", int, None)
    if series_rev is not None and series_rev < 1:
        raise f.err("series_rev", f"must be 1 or more, got {series_rev}")
    fuzz = f.get("fuzz", int, 0)
    if not 0 <= fuzz <= 3:
        raise f.err("fuzz", f"must be 0..3 (GNU patch fuzz), got {fuzz}")
    if kind == "git" and not ref:
        raise f.err("ref", "is required for a git: source (or give series: git:A..B)")
    frags = []
    for i, name in enumerate(f.str_list("config", [])):
        frags.append(str(_find_fragment(path, f, i, name)))
    base = f.str_list("base", list(DEFAULT_CONFIG_BASE))
    if not base:
        raise f.err("base", "empty: give at least one make target (e.g. defconfig)")
    return KernelSpec(
        name=f.name("name", path.stem), kind="source", suite=suite,
        package=arg if kind == "debian" else "",
        version=f.version(),
        mirror=f.mirror(),
        description=f.get("description", str, ""), path=path,
        source=source, ref=ref, series=series, config_base=tuple(base), config=tuple(frags),
        series_mbox=series_mbox, series_rev=series_rev, fuzz=fuzz)


def _exists(p: Path) -> bool:
    """Path.exists() that says False for names the OS refuses (too long, NUL…)."""
    try:
        return p.exists()
    except (OSError, ValueError):
        return False


def _find_series(path: Path, f: "Fields", text: str) -> Path:
    if "/" not in text and not text.startswith("."):
        if not check_name(text):
            raise f.err("series", f"{text!r} is not a series name ({NAME_RULE})")
        d = paths.KERNELS_DIR / "patches"
        for cand in (d / text, d / f"{text}.mbox", d / f"{text}.patch"):
            if cand.exists():
                return cand
        known = ", ".join(sorted(p.stem for p in d.glob("*"))) if d.is_dir() else ""
        raise f.err("series", f"unknown series {text!r} (known in {d}: {known or 'none'})")
    p = _local_path(path.parent, text)
    if not _exists(p):
        raise f.err("series", f"{p} does not exist")
    return p.resolve()


def _find_fragment(path: Path, f: "Fields", i: int, text: str) -> Path:
    if "/" not in text:
        if not check_name(text.removesuffix(".config")):
            raise f.err(f"config[{i}]", f"{text!r} is not a fragment name ({NAME_RULE})")
        d = paths.CONFIGS_DIR / "kconfig"
        cand = d / (text if text.endswith(".config") else f"{text}.config")
        if cand.exists():
            return cand
        known = ", ".join(sorted(p.stem for p in d.glob("*.config"))) if d.is_dir() else ""
        raise f.err(f"config[{i}]", f"unknown fragment {text!r} (known: {known or 'none'})")
    p = _local_path(path.parent, text)
    try:
        is_file = p.is_file()
    except (OSError, ValueError):
        is_file = False
    if not is_file:
        raise f.err(f"config[{i}]", f"{p} does not exist")
    return p.resolve()


def kernel_names() -> list:
    return sorted(x.stem for x in paths.KERNELS_DIR.glob("*.yaml"))


# ---------------------------------------------------------------------------- guests

@dataclass(frozen=True)
class GuestSpec:
    name: str
    suite: str
    packages: tuple
    mirror: str = "http://deb.debian.org/debian"
    size_mb: int = 2048
    files_dir: Optional[Path] = None   # copied over the rootfs (guests/<name>/ or guests/files/)
    path: Optional[Path] = None

    def recipe_hash(self) -> str:
        """Hash of the recipe and every file copied into the image."""
        parts = [self.path.read_bytes() if self.path else b""]
        if self.files_dir and self.files_dir.is_dir():
            for p in sorted(self.files_dir.rglob("*")):
                if p.is_file():
                    parts.append(str(p.relative_to(self.files_dir)).encode())
                    parts.append(oct(p.stat().st_mode & 0o7777).encode())
                    parts.append(p.read_bytes())
        parts.append(b"image-format-1")
        return file_hash(*parts)


def load_guest_spec(name_or_path: str = "bookworm") -> GuestSpec:
    path = find_spec(paths.GUESTS_DIR, name_or_path, "guest recipe")
    f = Fields(path, load_yaml(path))
    files = f.get("files", str, "files")
    spec = GuestSpec(
        name=f.name("name", path.stem),
        suite=f.get("suite", str, choices=DEBIAN_SUITES),
        packages=tuple(f.str_list("packages")),
        mirror=f.mirror(),
        size_mb=f.get("size_mb", int, 2048),
        files_dir=(path.parent / files),
        path=path,
    )
    f.finish()
    if spec.size_mb < 512:
        raise UserError(f"{path}: size_mb: must be at least 512")
    return spec


# ---------------------------------------------------------------------------- suites

@dataclass(frozen=True)
class Pressure:
    """Writeback pressure applied in the guest around each case."""
    dirty_ratio: Optional[int] = None
    dirty_background_ratio: Optional[int] = None
    dirty_expire_centisecs: Optional[int] = None
    dirty_writeback_centisecs: Optional[int] = None
    sync_storm: bool = False          # background `sync` loop during the workload
    drop_caches: bool = False         # drop caches before verification
    memcg_limit_mb: Optional[int] = None


@dataclass(frozen=True)
class Case:
    workload: str
    fs: str
    mapping: str
    variant: Optional[str] = None
    expect: Optional[str] = None
    size: int = 1 << 20
    timeout: int = 120
    provider: str = DEFAULT_PROVIDER   # RDMA provider of ibverbs workloads (rxe / siw)

    @property
    def id(self) -> str:
        base = f"{self.workload}/{self.fs}/{self.mapping}"
        base = f"{base}/{self.variant}" if self.variant else base
        # the default provider stays out of the id: ids (and results) from before the axis
        # existed stay comparable
        return base if self.provider == DEFAULT_PROVIDER else f"{base}@{self.provider}"


@dataclass(frozen=True)
class Suite:
    name: str
    cases: tuple
    seed: int = 1
    pressure: Pressure = field(default_factory=Pressure)
    description: str = ""
    path: Optional[Path] = None
    repeat: int = 1
    kernel_append: tuple = ()     # extra kernel command line words for this suite's guests
    guest_mem_mb: Optional[int] = None   # guest RAM for this suite's guests (None: the default)


# kernel command line words a suite may add (e.g. numa=fake=2): key=value, no shell or QEMU
# metacharacters, and nothing that would take the console, root or panic behaviour away
APPEND_RE = re.compile(r"[A-Za-z0-9_.-]{1,40}(=[A-Za-z0-9_.:,=-]{1,60})?")
APPEND_RESERVED = ("console", "root", "panic", "oops", "init", "rdinit")


def load_suite(name_or_path: str) -> Suite:
    path = find_spec(paths.CONFIGS_DIR / "suites", name_or_path, "suite")
    data = load_yaml(path)
    f = Fields(path, data)
    name = f.name("name", path.stem)
    seed = f.get("seed", int, 1)
    description = f.get("description", str, "")
    default_timeout = f.get("timeout", int, 120)
    repeat = f.get("repeat", int, 1)
    if repeat < 1:
        raise UserError(f"{path}: repeat: must be at least 1")
    pdata = f.get("pressure", dict, {})
    pf = Fields(path, pdata, "pressure.")
    knobs = {}
    for knob, (lo, hi) in PRESSURE_RANGES.items():
        val = pf.get(knob, int, None)
        if val is not None and not lo <= val <= hi:
            raise pf.err(knob, f"{val} is out of range ({lo}..{hi})")
        knobs[knob] = val
    pressure = Pressure(sync_storm=pf.get("sync_storm", bool, False),
                        drop_caches=pf.get("drop_caches", bool, False), **knobs)
    pf.finish()
    kernel_append = f.str_list("kernel_append", [])
    for i, word in enumerate(kernel_append):
        if not APPEND_RE.fullmatch(word):
            raise f.err(f"kernel_append[{i}]", f"{word!r} is not a kernel parameter (word or "
                        "word=value, letters, digits, '.', '_', '-', ':', ',', '=')")
        if word.split("=")[0] in APPEND_RESERVED:
            raise f.err(f"kernel_append[{i}]", f"{word!r}: the rig sets "
                        f"{word.split('=')[0]}= itself")
    guest_mem_mb = f.get("guest_mem_mb", int, None)
    if guest_mem_mb is not None and not 1024 <= guest_mem_mb <= 8192:
        raise f.err("guest_mem_mb", f"{guest_mem_mb} is out of range (1024..8192)")
    raw_cases = f.get("cases", list)
    f.finish()
    cases = []
    for i, rc in enumerate(raw_cases):
        if not isinstance(rc, dict):
            raise UserError(f"{path}: cases[{i}]: must be a mapping")
        cases.extend(_expand_case(path, i, rc, default_timeout))
    ids = [c.id for c in cases]
    dup = sorted({x for x in ids if ids.count(x) > 1})
    if dup:
        raise UserError(f"{path}: cases: duplicate case id {dup[0]}")
    if not cases:
        raise UserError(f"{path}: cases: no cases")
    return Suite(name=name, cases=tuple(cases), seed=seed, pressure=pressure,
                 description=description, path=path, repeat=repeat,
                 kernel_append=tuple(kernel_append), guest_mem_mb=guest_mem_mb)


def _expand_case(path: Path, i: int, rc: dict, default_timeout: int) -> list:
    """One YAML entry may list several filesystems/mappings/variants: expand the product."""
    f = Fields(path, rc, f"cases[{i}].")
    workload = f.get("workload", str, choices=workloads.NAMES)
    fss = f.str_list("fs", choices=FILESYSTEMS)
    maps = f.str_list("mapping", ["shared"], choices=MAPPINGS)
    variants = f.str_list("variant", [None]) if rc.get("variant") is not None else [None]
    f.used.add("variant")
    for k, v in enumerate(variants):
        where = f"variant[{k}]" if isinstance(rc.get("variant"), list) else "variant"
        if v is not None and not check_name(v):
            raise f.err(where, f"{v!r} is not a valid case id part ({NAME_RULE})")
        known = workloads.get(workload).variants
        if known is not None and v is not None and v not in known:
            raise f.err(where, f"unknown variant {v!r} of {workload} (known: {', '.join(known)})")
    expect = f.get("expect", str, None, choices=outcome.NAMES)
    size = f.get("size", int, 1 << 20)
    timeout = f.get("timeout", int, default_timeout)
    providers = f.str_list("provider", [DEFAULT_PROVIDER], choices=PROVIDERS)
    f.finish()
    if providers != [DEFAULT_PROVIDER] and not workloads.get(workload).needs_rdma:
        raise f.err("provider", f"workload {workload} uses no RDMA device (provider applies "
                    "to ibverbs workloads only)")
    for k, prov in enumerate(providers):
        if prov not in workloads.get(workload).providers:
            raise f.err(f"provider[{k}]" if isinstance(rc.get("provider"), list) else "provider",
                        f"workload {workload} runs on {', '.join(workloads.get(workload).providers)}"
                        f" only, not {prov}")
    for key, vals in (("fs", fss), ("mapping", maps), ("variant", variants),
                      ("provider", providers)):
        if not vals:
            raise UserError(f"{path}: cases[{i}].{key}: empty list (would expand to no cases)")
    if timeout <= 0:
        raise UserError(f"{path}: cases[{i}].timeout: must be positive")
    if size <= 0 or size % 4096:
        raise UserError(f"{path}: cases[{i}].size: must be a positive multiple of 4096")
    return [Case(workload, fs, m, v, expect, size, timeout, p)
            for fs in fss for m in maps for v in variants for p in providers]


# ---------------------------------------------------------------------------- LAVA labs

LAB_URL_RE = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~%+/-]*)?")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True)
class LavaLab:
    """Where a nightly plan's guests run when they run in a LAVA lab instead of here."""
    url: str                     # XML-RPC endpoint, https://HOST/RPC2
    artifacts_dir: Path          # exports are written under here…
    artifacts_url: str           # …and the lab's workers download them from here
    user: Optional[str] = None
    token_env: Optional[str] = None   # the environment variable holding the API token
    accel: str = "tcg"
    timeout: int = 6 * 3600      # seconds to wait for a kernel × suite's jobs
    poll: int = 60


def load_lava_lab(path: Path, data: object, prefix: str = "lava.") -> LavaLab:
    """A `lava:` mapping (nightly plans); errors name the file and the field. Tokens never go
    in a file: `token_env` names the environment variable that holds it."""
    if not isinstance(data, dict):
        raise UserError(f"{path}: {prefix.rstrip('.')}: must be a mapping "
                        "{url, artifacts: {dir, url}, …}")
    f = Fields(path, data, prefix)
    if "token" in data:
        raise f.err("token", "tokens do not belong in a file; name the environment variable "
                    "that holds it with token_env")
    url = f.get("url", str)
    if not LAB_URL_RE.fullmatch(url):
        raise f.err("url", f"{url!r} is not an http(s) URL (https://HOST/RPC2)")
    user = f.get("user", str, None)
    token_env = f.get("token_env", str, None)
    if token_env is not None and not ENV_NAME_RE.fullmatch(token_env):
        raise f.err("token_env", f"{token_env!r} is not an environment variable name")
    if token_env is not None and user is None:
        raise f.err("user", "is required with token_env (LAVA tokens belong to a user)")
    accel = f.get("accel", str, "tcg", choices=("tcg", "kvm"))
    timeout = f.get("timeout", int, 6 * 3600)
    if timeout <= 0:
        raise f.err("timeout", "must be positive (seconds to wait for the jobs)")
    poll = f.get("poll", int, 60)
    if poll <= 0:
        raise f.err("poll", "must be positive (seconds)")
    arts = f.get("artifacts", dict)
    af = Fields(path, arts, prefix + "artifacts.")
    adir = af.get("dir", str)
    aurl = af.get("url", str)
    af.finish()
    if not re.fullmatch(r"(https?|file)://\S+", aurl):
        raise af.err("url", f"{aurl!r} is not an http(s):// or file:// URL")
    f.finish()
    d = Path(adir)
    if not d.is_absolute():
        d = path.parent / d
    return LavaLab(url=url, artifacts_dir=d, artifacts_url=aurl.rstrip("/"), user=user,
                   token_env=token_env, accel=accel, timeout=timeout, poll=poll)
