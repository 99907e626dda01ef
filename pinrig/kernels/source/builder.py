"""Build a kernel from source: KernelSpec (kind: source) → KernelArtifact, cached by content.

The cache key is a hash of the exact source version, the series content (every patch's name,
strip level and text, in order), the config (base make targets and each fragment's text) and the
toolchain (gcc and binutils version lines): a hit costs a few stat() calls and two `--version`
runs. A miss goes: lock the source's work tree → restore the files a previous series touched →
apply the series (a patch that does not apply stops here, naming patch, file and hunk) → base
config + fragments + olddefconfig → check every requested option → make bzImage modules
(out-of-tree, ccache, niced; progress on a TTY; the full log kept) → modules_install → artifact.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pinrig import paths, proc
from pinrig.config import KernelSpec
from pinrig.errors import InfraError, MissingTool, UserError
from pinrig.kernels.artifact import CacheCorrupt, file_sha256, load_artifact
from pinrig.kernels.source import apply, kconfig, sources
from pinrig.kernels.source.series import Series, load_series
from pinrig.paths import atomic_write

BUILDER_FORMAT = "srcbuild-1"   # bump when the build recipe changes what an artifact contains
ARCH_IMAGE = "arch/x86/boot/bzImage"
# host tools and headers a kernel build needs (checked before anything is unpacked or patched)
REQUIRED_TOOLS = ("make", "gcc", "ld", "patch", "cp", "tar", "nice", "flex", "bison", "bc", "perl")
REQUIRED_HEADERS = (("/usr/include/libelf.h", "libelf-dev"),       # objtool
                    ("/usr/include/openssl/opensslv.h", "libssl-dev"))  # certs, sign-file


@dataclass(frozen=True)
class BuildPlan:
    """Everything the cache key is made of (computed without touching the source tree)."""
    spec: KernelSpec
    ref: sources.SourceRef
    series: Series
    fragments: tuple
    config_base: tuple
    toolchain: str
    key: str

    @property
    def artifact_dir(self) -> Path:
        return artifacts_dir() / self.key[:20]

    def packages(self) -> tuple:
        out = []
        if self.ref.package:
            out.append(f"{self.ref.package[0]}={self.ref.package[1]}")
        else:
            out.append(f"source={self.ref.ident.split('@')[0]}")
        if self.series.patches:
            out.append(f"series={self.series.name or 'series'}@{self.series.digest[:12]}"
                       f"+{len(self.series.patches)}")
        out.append(f"config={kconfig.config_digest(self.config_base, self.fragments)[:12]}")
        return tuple(out)


def artifacts_dir() -> Path:
    return paths.cache_dir() / "kernels" / "source"


def ccache_dir() -> Path:
    return paths.cache_dir() / "ccache"


def cache_key(source_ident: str, series_digest: str, config_digest: str, toolchain: str) -> str:
    h = hashlib.sha256()
    for part in (BUILDER_FORMAT, source_ident, series_digest, config_digest, toolchain):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


_TOOLCHAIN: dict = {}


def toolchain_id(cc: str = "gcc") -> str:
    """First line of `gcc --version` and `ld --version` (what changes the generated code)."""
    if cc not in _TOOLCHAIN:
        parts = []
        for tool in (cc, "ld"):
            res = proc.run([tool, "--version"], check=False)
            parts.append((res.stdout.splitlines() or ["?"])[0].strip())
        _TOOLCHAIN[cc] = " | ".join(parts)
    return _TOOLCHAIN[cc]


def plan(spec: KernelSpec, refresh: bool = False, series: Optional[Series] = None) -> BuildPlan:
    if spec.kind != "source":
        raise UserError(f"{spec.path}: kind: {spec.kind} is not a source kernel")
    ref = sources.resolve(spec, refresh)
    if series is None:
        series = spec_series(spec, ref, refresh)
    fragments = kconfig.load_fragments(spec.config)
    base = tuple(spec.config_base) or ("defconfig", "kvm_guest.config")
    tc = toolchain_id()
    # a fuzzed build is another tree than a strict one (a strict request must never get it)
    sdigest = series.digest + (f"+fuzz{spec.fuzz}" if spec.fuzz and series.patches else "")
    key = cache_key(ref.ident, sdigest, kconfig.config_digest(base, fragments), tc)
    return BuildPlan(spec, ref, series, fragments, base, tc, key)


def spec_series(spec: KernelSpec, ref: sources.SourceRef, refresh: bool = False) -> Series:
    return load_series(spec.series, ref.repo if ref.kind == "git" else None, rev=spec.series_rev,
                       local_mbox=spec.series_mbox, refresh=refresh)


def apply_method(p: BuildPlan) -> str:
    """git am -3 on a git base (unless fuzz was asked for: that is GNU patch's), else patch."""
    if p.ref.kind == "git" and not p.spec.fuzz:
        return "git am -3"
    return f"patch --fuzz={p.spec.fuzz}"


def cached(p: BuildPlan):
    meta = p.artifact_dir / "artifact.json"
    if meta.exists():
        try:
            return load_artifact(meta, p.spec.name)
        except CacheCorrupt as e:
            proc.progress(f"cache: {e}; building again")
            shutil.rmtree(p.artifact_dir, ignore_errors=True)
    return None


def build(spec: KernelSpec, refresh: bool = False, series: Optional[Series] = None,
          jobs: Optional[int] = None):
    """The artifact for spec (and optionally another series, e.g. a bisection prefix)."""
    p = plan(spec, refresh, series)
    art = cached(p)
    if art is not None:
        return art
    with locked_tree(p.ref):
        art = cached(p)                 # built by someone else while we waited
        if art is not None:
            return art
        return _build(p, jobs or default_jobs())


def default_jobs() -> int:
    env = os.environ.get("PINRIG_BUILD_JOBS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return os.cpu_count() or 1


@contextmanager
def locked_tree(ref: sources.SourceRef):
    ref.slot.mkdir(parents=True, exist_ok=True)
    with open(ref.lock_file, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            proc.progress(f"build: waiting for another build in {ref.slot}")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------- the build

def _build(p: BuildPlan, jobs: int):
    spec, ref = p.spec, p.ref
    t0 = time.monotonic()
    for tool in REQUIRED_TOOLS:
        proc.require(tool)
    for header, package in REQUIRED_HEADERS:
        if not Path(header).exists():
            raise MissingTool(Path(header).name, package)
    sources.materialize(ref, spec)
    work, out = ref.work, ref.out_for(kconfig.config_digest(p.config_base, p.fragments))
    # 1. the work tree back to pristine, then the series (fails here, before any build)
    state = sources.read_state(ref)
    apply.restore(work, ref.pristine, state.get("touched", []))
    sources.write_state(ref, {"touched": []})

    def remember(touched):
        sources.write_state(ref, {"touched": touched, "series": p.series.name})

    target = ref.label
    notes: list = []
    method = apply_method(p)
    try:
        if p.series.patches:
            proc.progress(f"build {spec.name}: applying {len(p.series.patches)} patch(es) "
                          f"of {p.series.name} ({method})")
            if method == "git am -3":
                apply.apply_series_git(work, p.series, ref.slot / "am.tmp", target,
                                       sources.need_repo(ref), sources.need_commit(ref),
                                       remember, notes)
            else:
                apply.apply_series(work, p.series, ref.slot / "patches.tmp", target, remember,
                                   fuzz=spec.fuzz, notes=notes)
    except apply.PatchDoesNotApply:
        apply.restore(work, ref.pristine, sources.read_state(ref).get("touched", []))
        sources.write_state(ref, {"touched": []})
        raise
    # 2. config
    tmp = p.artifact_dir.with_name(p.artifact_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log = tmp / "build.log"
    out.mkdir(parents=True, exist_ok=True)
    env = build_env(ref)
    make = ["make", "-C", str(work), f"O={out}"]
    _log_header(log, p, jobs)
    proc.progress(f"build {spec.name}: config {' + '.join(p.config_base)}"
                  + (f" + {', '.join(f.name for f in p.fragments)}" if p.fragments else ""))
    _make(make + list(p.config_base), log, env, "base config")
    cfg = out / ".config"
    cfg.write_text(kconfig.merge_into(cfg.read_text(), p.fragments))
    _make(make + ["olddefconfig"], log, env, "olddefconfig")
    bad = kconfig.check(cfg.read_text(), p.fragments)
    if bad:
        hints = kconfig_hints(work, [m.option.symbol for m in bad],
                              current=kconfig.parse_config(cfg.read_text()))
        msg = kconfig.describe(bad, f"kernel {spec.name}")
        if hints:
            msg += " — " + "; ".join(f"{s}: {h}" for s, h in hints.items())
        raise UserError(msg)
    t_cfg = time.monotonic()
    # 3. compile
    have = kconfig.parse_config(cfg.read_text())
    targets = ["bzImage"] + (["modules"] if have.get("CONFIG_MODULES") == "y" else [])
    proc.progress(f"build {spec.name}: make -j{jobs} {' '.join(targets)} (log: {log})")
    _make(make + [f"-j{jobs}", *cc_vars()] + targets, log, env, "kernel build", progress=True)
    t_build = time.monotonic()
    # 4. collect
    release = (out / "include/config/kernel.release").read_text().strip()
    modroot = tmp / "modroot"
    moddir = modroot / "lib" / "modules" / release
    if "modules" in targets:
        _make(make + [f"INSTALL_MOD_PATH={modroot}", "INSTALL_MOD_STRIP=1", "modules_install"],
              log, env, "modules_install")
        for link in ("build", "source"):
            link_path = moddir / link
            if link_path.is_symlink():
                link_path.unlink()
    moddir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(out / ARCH_IMAGE, tmp / "vmlinuz")
    shutil.copy2(cfg, tmp / "config")
    if (out / "System.map").exists():
        shutil.copy2(out / "System.map", tmp / "System.map")
    if (out / "vmlinux").exists():       # symbols for reports (file:line with debug-info.config)
        shutil.copy2(out / "vmlinux", tmp / "vmlinux")
    h = hashlib.sha256()
    h.update((tmp / "vmlinuz").read_bytes())
    h.update(p.key.encode())
    timings = {"prepare_s": round(t_cfg - t0, 1), "compile_s": round(t_build - t_cfg, 1),
               "total_s": round(time.monotonic() - t0, 1), "jobs": jobs}
    d = {"name": spec.name, "release": release, "vmlinuz": "vmlinuz", "modroot": "modroot",
         "config": "config", "packages": list(p.packages()), "hash": p.key[:16],
         "vmlinux": "vmlinux" if (tmp / "vmlinux").exists() else None,
         "system_map": "System.map" if (tmp / "System.map").exists() else None,
         "kind": "source",
         "inputs": {"key": p.key, "source": p.ref.ident, "source_label": p.ref.label,
                    "series": p.series.name, "series_origin": p.series.origin,
                    "series_digest": p.series.digest,
                    "patches": [x.name for x in p.series.patches],
                    "series_apply": series_record(p, method, notes),
                    "config_base": list(p.config_base),
                    "fragments": [f.name for f in p.fragments],
                    "toolchain": p.toolchain, "builder": BUILDER_FORMAT},
         "vmlinuz_sha256": h.hexdigest(),
         "timings": timings,
         "built": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    d["vmlinuz_sha256"] = file_sha256(tmp / "vmlinuz")
    atomic_write(tmp / "artifact.json", json.dumps(d, indent=2))
    shutil.rmtree(p.artifact_dir, ignore_errors=True)
    tmp.rename(p.artifact_dir)
    proc.progress(f"build {spec.name}: {release} in {timings['total_s']:.0f}s → "
                  f"{p.artifact_dir}")
    return cached(p)


def series_record(p: BuildPlan, method: str, notes: list) -> dict:
    """How the series went in: method, fuzz, the revision used and why, and a warning for every
    hunk that needed an offset, fuzz or a 3-way merge (these go into run manifests and reports)."""
    warnings = [n.text() if isinstance(n, apply.Applied) else str(n) for n in notes]
    return {"method": method if p.series.patches else None, "fuzz": p.spec.fuzz,
            "name": p.series.name, "origin": p.series.origin,
            "revision": p.series.revision, "title": p.series.title,
            "notes": list(p.series.notes),
            "hunks": [n.to_dict() for n in notes if isinstance(n, apply.Applied)],
            "warnings": warnings}


def nice_level() -> int:
    env = os.environ.get("PINRIG_BUILD_NICE", "19")
    return int(env) if env.lstrip("-").isdigit() else 19


def cc_vars() -> list:
    """CC/HOSTCC through ccache when it is installed (it is what makes rebuilds cheap)."""
    if shutil.which("ccache"):
        return ["CC=ccache gcc", "HOSTCC=ccache gcc"]
    proc.progress("build: ccache not installed (apt-get install ccache): rebuilds will be slow")
    return []


def build_env(ref: sources.SourceRef) -> dict:
    env = dict(os.environ)
    env.update({"CCACHE_DIR": str(ccache_dir()), "CCACHE_BASEDIR": str(ref.slot),
                "CCACHE_NOHASHDIR": "1", "CCACHE_SLOPPINESS": "time_macros",
                "KBUILD_BUILD_USER": "pinrig", "KBUILD_BUILD_HOST": "pinrig",
                "LC_ALL": "C"})
    env.pop("MAKEFLAGS", None)
    env.pop("MFLAGS", None)
    return env


def _log_header(log: Path, p: BuildPlan, jobs: int) -> None:
    with open(log, "a") as fh:
        fh.write(f"# pinrig source build {p.spec.name}\n# source: {p.ref.label}\n"
                 f"# series: {p.series.name or '(none)'} "
                 f"({', '.join(x.name for x in p.series.patches) or 'no patches'})\n"
                 f"# config: {' '.join(p.config_base)} + "
                 f"{' '.join(f.name for f in p.fragments) or '(no fragments)'}\n"
                 f"# toolchain: {p.toolchain}\n# key: {p.key}\n# jobs: {jobs}\n")


def _make(argv: list, log: Path, env: dict, what: str, progress: bool = False) -> None:
    """Every make runs niced: the box is shared with QEMU guests."""
    rc = STREAM(["nice", "-n", str(nice_level())] + argv, log, env=env, progress=progress)
    if rc != 0:
        tail = _log_tail(log)
        raise InfraError(f"{what} failed (exit {rc}); full log: {log}" + (f" | {tail}" if tail else ""))


def _log_tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    errs = [line for line in lines if re.search(r"\berror\b|Error \d|\*\*\*", line)]
    return " | ".join((errs or lines)[-3:]).strip()


_STEP_RE = re.compile(r"^\s+(CC|LD|AR|AS|HOSTCC|OBJCOPY|GEN|CHK|UPD|BUILD|MODPOST|CC \[M\])\s+(\S+)")


def stream(argv: list, log: Path, env: Optional[dict] = None, progress: bool = False) -> int:
    """Run argv with stdout+stderr appended to log; on a TTY, one progress line updated in place.
    The build's only subprocess outside proc.run: its output is too long to hold in memory and
    progress needs it line by line (tests replace STREAM)."""
    exe = argv[0]
    proc.require(exe)
    tty = progress and sys.stderr.isatty()
    steps, last, t0 = 0, 0.0, time.monotonic()
    with open(log, "ab") as fh:
        fh.write(("$ " + " ".join(map(str, argv)) + "\n").encode())
        fh.flush()
        p = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, env=env)
        assert p.stdout is not None
        for raw in p.stdout:
            fh.write(raw)
            if tty:
                m = _STEP_RE.match(raw.decode(errors="replace"))
                if m:
                    steps += 1
                    now = time.monotonic()
                    if now - last > 0.5:
                        last = now
                        msg = f"rig: build: {now - t0:5.0f}s {steps:6d} steps  {m.group(2)}"
                        sys.stderr.write("\r" + msg[:100].ljust(100))
                        sys.stderr.flush()
        rc = p.wait()
    if tty and steps:
        sys.stderr.write("\r" + " " * 100 + "\r")
    return rc


STREAM = stream


CHOICE_RE = re.compile(r"^choice\b(.*?)^endchoice\b", re.M | re.S)
CHOICE_MEMBER_RE = re.compile(r"^[ \t]*config[ \t]+(\w+)", re.M)


def enclosing_ifs(text: str, want) -> list:
    """[(symbol, [conditions of the `if COND … endif` blocks around its `config` line])] for
    the wanted symbols a Kconfig text declares (`menuconfig FOO` + `if FOO` is how a whole
    menu depends on one option, e.g. RUNTIME_TESTING_MENU around LKDTM)."""
    stack: list = []
    found = []
    for line in text.splitlines():
        t = line.strip()
        if t.startswith("if ") or t.startswith("if\t"):
            stack.append(t[3:].split("#")[0].strip())
        elif t == "endif" or t.startswith("endif ") or t.startswith("endif#"):
            if stack:
                stack.pop()
        else:
            m = re.match(r"(?:menu)?config\s+(\w+)\s*$", t)
            if m and m.group(1) in want and stack:
                found.append((m.group(1), list(stack)))
    return found


def kconfig_hints(tree: Path, symbols: list, limit_s: float = 5.0,
                  current: Optional[dict] = None) -> dict:
    """For options that did not stick: their `depends on` lines from the tree's Kconfig files,
    or that no Kconfig file declares them (a typo, or not in this version). A member of a
    `choice` whose other member the base selected (in `current`, the .config after
    olddefconfig) is told to unset that member: a fragment cannot set two members of one choice."""
    want = {s[len("CONFIG_"):]: s for s in symbols}
    out: dict = {}
    chosen: dict = {}
    declared = set()
    have = current or {}
    t0 = time.monotonic()
    complete = True
    for root, dirs, files in os.walk(tree):
        dirs[:] = [d for d in dirs if d not in (".git", "Documentation", "tools")]
        for name in files:
            if not name.startswith("Kconfig"):
                continue
            try:
                text = (Path(root) / name).read_text(errors="replace")
            except OSError:
                continue
            for m in re.finditer(r"^(?:menu)?config[ \t]+(\w+)[ \t]*\n((?:(?![ \t]*(?:menu)?config[ \t])"
                                 r".*\n){0,40})", text, re.M):
                sym = m.group(1)
                if sym in want:
                    declared.add(sym)
                    deps = re.findall(r"^\s*depends on\s+(.+)$", m.group(2), re.M)
                    if deps and want[sym] not in chosen:
                        out[want[sym]] = "depends on " + " && ".join(
                            f"({d.strip()})" if len(deps) > 1 else d.strip() for d in deps)
            for sym, conds in enclosing_ifs(text, want) if have else ():
                unmet = [c for c in conds if re.fullmatch(r"\w+", c)
                         and have.get(f"CONFIG_{c}") not in ("y", "m")]
                if unmet and want[sym] not in chosen:
                    chosen[want[sym]] = out[want[sym]] = (
                        f"inside `if {unmet[0]}`, which the base left unset: add "
                        f"CONFIG_{unmet[0]}=y to the same fragment")
            for block in CHOICE_RE.finditer(text) if have else ():
                members = CHOICE_MEMBER_RE.findall(block.group(1))
                picked = [m for m in members if have.get(f"CONFIG_{m}") == "y"]
                for sym in members:
                    if sym in want and picked and sym not in picked:
                        declared.add(sym)
                        chosen[want[sym]] = out[want[sym]] = (
                            f"a choice with CONFIG_{picked[0]}=y from the base: add "
                            f"'# CONFIG_{picked[0]} is not set' to the same fragment")
        if time.monotonic() - t0 > limit_s:
            complete = False
            break
    if complete:
        for short, sym in want.items():
            if short not in declared:
                out[sym] = "declared in no Kconfig file of this tree"
    return out
