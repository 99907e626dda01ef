#!/usr/bin/env python3
"""Capture real kernel crash reports for the oops corpus (tests/data/oops/).

Every log is the console of a real Debian kernel booted by the rig (one fresh boot per scenario),
made to print a report on demand:

* no module: a sysrq crash (`echo c > /proc/sysrq-trigger`), a hung task (a writer blocked on a
  frozen ext4 on /dev/pmem0), and a clean boot (no report at all);
* workloads/oopsmod/pinrig_oops.ko, built here against Debian's linux-headers package for the
  booted kernel: WARN, BUG, NULL dereference, paging request (use after vfree), GPF (LIST_POISON
  dereference), divide error, invalid opcode, list_add/list_del corruption, refcount on zero,
  scheduling while atomic, soft lockup, RCU stall, stack overflow, KFENCE (6.12).

The headers (linux-headers-<release> + linux-headers-*-common + linux-kbuild-*) are fetched with
the rig's private apt state into <cache>/headers/<release>/ and unpacked there (never into the
host's /usr); the one absolute path in them (the arch Makefile's include of the common tree) is
rewritten to the unpacked copy. The module must be built by the compiler that built the kernel:
Debian 6.1 uses gcc-12, which a bookworm host has, so it is built on the host; Debian 6.12 uses
gcc-14 and its kbuild tools (modpost, objtool) need glibc >= 2.38, so when the host lacks the
kernel's compiler the module is built in a debootstrap'd root of the kernel's suite (cached in
<cache>/buildroot/, the headers unpacked there at their packaged paths; --build-root).

Each log is written as tests/data/oops/<what-it-shows>-<kernel>.log with a header from the current
parser (TITLE/TYPE/FRAME/CORRUPTED, plus a CAPTURED provenance line), the boot part trimmed to the
last TRIM_BEFORE lines before the report. Review the headers by hand afterwards.

    .venv/bin/python scripts/capture_oops.py --list
    .venv/bin/python scripts/capture_oops.py [--kernel debian-6.1] [--only warning-module,kernel-bug-module] [--out DIR]
    .venv/bin/python scripts/capture_oops.py --build-only --kernel debian-6.1
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pinrig import config, oops, paths, proc  # noqa: E402
from pinrig.errors import InfraError, RigError, UserError  # noqa: E402
from pinrig.guest.session import Session, prepare_env  # noqa: E402
from pinrig.kernels.apt import PrivateApt, depends_names  # noqa: E402
from pinrig.kernels.artifact import KernelArtifact  # noqa: E402

MODULE_SRC = REPO / "workloads" / "oopsmod"
MODULE_FILES = ("pinrig_oops.c", "Kbuild")
CORPUS = REPO / "tests" / "data" / "oops"
GUEST_KO = "/tmp/pinrig_oops.ko"
TRIM_BEFORE = 150          # console lines kept before the first report
FATAL_EXIT_S = 90.0        # a fatal report must end QEMU within this (panic=-1, -no-reboot)
REPORT_WAIT_S = 120.0      # a non-fatal report must show up within this
SETTLE_S = 3.0             # after a non-fatal report: let the rest of it reach the console


def say(msg: str) -> None:
    print(f"capture: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- headers + module

@dataclass(frozen=True)
class Headers:
    release: str
    kdir: Path          # <root>/usr/src/linux-headers-<release>
    cc: str             # compiler the kernel was built with (from .kernelvariables), e.g. gcc-12


def _image_version(art: KernelArtifact) -> str:
    for p in art.packages:
        name, _, ver = p.partition("=")
        if name.startswith(("linux-image-", "linux-binary-")) and ver:
            return ver
    raise InfraError(f"{art.name}: no linux-image package version in {art.packages}")


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
        version = _image_version(art)
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


def _module_dir_name() -> str:
    digest = hashlib.sha256()
    for f in MODULE_FILES:
        digest.update((MODULE_SRC / f).read_bytes())
    return f"oopsmod-{digest.hexdigest()[:12]}"


def build_module(h: Headers, chroot: Optional[Path] = None) -> Path:
    """pinrig_oops.ko for this kernel, built once per source version (cached). With `chroot`,
    build inside that root (which holds the same headers at their packaged /usr/src paths)."""
    name = _module_dir_name()
    out = paths.cache_dir() / "headers" / h.release / name / "pinrig_oops.ko"
    if out.exists():
        return out
    if chroot is None:
        if not shutil.which(h.cc):
            raise UserError(f"building a module for {h.release} needs {h.cc} (the compiler that "
                            f"built that kernel); the host has {_host_gccs() or 'no gcc'} "
                            "(use --build-root)")
        bdir, argv = out.parent, ["make", "-C", h.kdir, f"M={out.parent}", "modules"]
    else:
        bdir = chroot / "build" / name
        argv = ["chroot", chroot, "make", "-C", f"/usr/src/linux-headers-{h.release}",
                f"M=/build/{name}", "modules"]
    shutil.rmtree(bdir, ignore_errors=True)
    bdir.mkdir(parents=True)
    for f in MODULE_FILES:
        shutil.copy2(MODULE_SRC / f, bdir / f)
    where = f" in {chroot}" if chroot else ""
    say(f"building pinrig_oops.ko for {h.release} with {h.cc}{where}")
    res = proc.run(argv, check=False, timeout=900)
    ko = bdir / "pinrig_oops.ko"
    if res.returncode != 0 or not ko.exists():
        lines = [ln for ln in (res.stderr + res.stdout).splitlines() if ln.strip()]
        raise InfraError(f"module build for {h.release} failed: {' | '.join(lines[-4:])}")
    if ko != out:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ko, out)
    return out


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
    pkgs = headers_packages(apt, art.release, _image_version(art))
    extra = {"make"}
    top = apt.show(pkgs[0][0], pkgs[0][1])
    kbuild = next(n for n, _ in pkgs if n.startswith("linux-kbuild-"))
    for dep in depends_names(top.get("Depends", "")) + \
            depends_names(apt.show(kbuild).get("Depends", "")):
        if not dep.startswith("linux-"):
            extra.add(dep)
    key = hashlib.sha256(" ".join(sorted(extra) + [f"{n}={v}" for n, v in pkgs]).encode())
    root = paths.cache_dir() / "buildroot" / f"{spec.suite}-{key.hexdigest()[:12]}"
    if (root / ".pinrig-ready").exists():
        return root
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    say(f"build root: debootstrap {spec.suite} with {', '.join(sorted(extra))} (a few minutes)")
    proc.run(["debootstrap", "--variant=minbase", f"--include={','.join(sorted(extra))}",
              spec.suite, tmp, spec.mirror], what=f"debootstrap {spec.suite} (build root)",
             timeout=3600)
    for name, ver in pkgs:
        deb = apt.download(name, ver, paths.cache_dir() / "headers" / art.release / "debs")
        proc.run(["dpkg-deb", "-x", deb, tmp], what=f"dpkg-deb -x {deb.name}")
    (tmp / ".pinrig-ready").write_text(json.dumps({"packages": pkgs, "extra": sorted(extra)}))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return root


def module_for(spec: config.KernelSpec, art: KernelArtifact, mode: str) -> Path:
    """Build (or reuse) the module: on the host when it has the kernel's compiler, else (or with
    mode 'always') in a build root of the kernel's suite."""
    h = fetch_headers(spec, art)
    cached = paths.cache_dir() / "headers" / h.release / _module_dir_name() / "pinrig_oops.ko"
    if cached.exists():
        return cached
    if mode == "always" or (mode == "auto" and not shutil.which(h.cc)):
        return build_module(h, chroot=build_root(spec, art))
    return build_module(h)


def _host_gccs() -> str:
    found = sorted({p.name for d in os.environ.get("PATH", "").split(":") if d
                    for p in Path(d).glob("gcc-[0-9]*") if re.fullmatch(r"gcc-\d+", p.name)})
    return ", ".join(found)


# ---------------------------------------------------------------------------- scenarios

# Guest shell snippets (run as root over ssh).
PMEM_EXT4 = ("mkfs.ext4 -q -F /dev/pmem0 && mount /dev/pmem0 /mnt/test && "
             "dd if=/dev/zero of=/mnt/test/f bs=4096 count=16 status=none && sync")
HUNG5 = "echo 5 > /proc/sys/kernel/hung_task_timeout_secs"
# a writer with the file already open, so it blocks in write(2) itself, not in open(2)
BLOCKED_WRITE = ("setsid sh -c 'exec 3>>/mnt/test/f; echo opened > /tmp/writer; "
                 "while [ ! -e /tmp/frozen ]; do sleep 0.1; done; echo x >&3' "
                 "</dev/null >/dev/null 2>&1 &")
# a writer through a shared file mapping: blocks in the write fault (page_mkwrite)
BLOCKED_MMAP = ("setsid python3 -c \"import mmap,os,time\n"
                "fd=os.open('/mnt/test/f',os.O_RDWR)\n"
                "m=mmap.mmap(fd,16*4096)\n"
                "open('/tmp/writer','w').write('mapped')\n"
                "while not os.path.exists('/tmp/frozen'): time.sleep(0.1)\n"
                "m[0:1]=b'x'\n\" </dev/null >/dev/null 2>&1 &")
WAIT_WRITER = "i=0; while [ ! -s /tmp/writer ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done"
FREEZE = "fsfreeze -f /mnt/test && touch /tmp/frozen"


def module_trigger(name: str) -> str:
    """Background the write so the ssh command returns even when the guest dies."""
    return f"(sleep 0.5; echo {name} > /proc/pinrig_oops) </dev/null >/dev/null 2>&1 &"


@dataclass
class Scenario:
    name: str                       # what the log shows (file stem before the kernel name)
    kernels: tuple
    trigger: str                    # guest shell line that provokes the report
    fatal: bool                     # the report must end QEMU (Oops/BUG/panic with oops=panic)
    module: bool = False            # needs pinrig_oops.ko loaded first
    setup: tuple = ()               # guest shell lines before the trigger
    wait_re: Optional[str] = None   # non-fatal: console regex that says the report is out
    append: tuple = ()              # extra kernel command line words
    insmod_args: str = ""           # module parameters for insmod (e.g. trigger=warn)
    note: str = ""


K61 = ("debian-6.1",)
BOTH = ("debian-6.1", "debian-6.12")
END_TRACE = r"---\[ end trace [0-9a-f]+ \]---"

SCENARIOS = [
    Scenario("clean-boot", BOTH, trigger="true", fatal=False,
             note="boot, ssh in, run a command, power off"),
    Scenario("panic-sysrq-crash", BOTH, trigger="(sleep 0.5; echo c > /proc/sysrq-trigger) "
             "</dev/null >/dev/null 2>&1 &", fatal=True, note="echo c > /proc/sysrq-trigger"),
    Scenario("hung-task-write-frozen-ext4", BOTH, setup=(PMEM_EXT4, HUNG5, BLOCKED_WRITE,
             WAIT_WRITER), trigger=FREEZE, fatal=False,
             wait_re=r"INFO: task \S+ blocked for more than \d+ seconds(?s:.*)</TASK>",
             note="write(2) to an ext4 frozen with fsfreeze -f, hung_task_timeout_secs=5"),
    Scenario("hung-task-mmap-write-frozen-ext4", BOTH, setup=(PMEM_EXT4, HUNG5, BLOCKED_MMAP,
             WAIT_WRITER), trigger=FREEZE, fatal=False,
             wait_re=r"INFO: task \S+ blocked for more than \d+ seconds(?s:.*)</TASK>",
             note="store through a MAP_SHARED mapping of a file on a frozen ext4"),
    Scenario("warning-module", BOTH, module=True, trigger=module_trigger("warn"), fatal=False,
             wait_re=END_TRACE, note="WARN() in pinrig_warn"),
    Scenario("warning-module-init", K61, module=True, insmod_args="trigger=warn", trigger="true",
             fatal=False,
             wait_re=END_TRACE, note="insmod pinrig_oops.ko trigger=warn (WARN from init_module)"),
    Scenario("kernel-bug-module", BOTH, module=True, trigger=module_trigger("bug"), fatal=True,
             note="BUG_ON() in pinrig_bug"),
    Scenario("null-deref-write-module", BOTH, module=True, trigger=module_trigger("null-deref"),
             fatal=True, note="store through a NULL struct pointer"),
    Scenario("paging-request-use-after-vfree-module", BOTH, module=True,
             trigger=module_trigger("paging-request"), fatal=True,
             note="read of vmalloc memory after vfree"),
    Scenario("gpf-list-poison-module", BOTH, module=True, trigger=module_trigger("gpf"),
             fatal=True, note="dereference of LIST_POISON1 (non-canonical)"),
    Scenario("divide-error-module", BOTH, module=True, trigger=module_trigger("divide-error"),
             fatal=True, note="integer division by zero"),
    Scenario("invalid-opcode-module", BOTH, module=True, trigger=module_trigger("invalid-opcode"),
             fatal=True, note="ud2 without a bug table entry"),
    Scenario("list-add-corruption-module", BOTH, module=True,
             trigger=module_trigger("list-add-corruption"), fatal=True,
             note="list_add next to a node whose prev was overwritten (CONFIG_DEBUG_LIST, "
                  "CONFIG_BUG_ON_DATA_CORRUPTION)"),
    Scenario("list-del-corruption-module", BOTH, module=True,
             trigger=module_trigger("list-del-corruption"), fatal=True,
             note="list_del twice (LIST_POISON1)"),
    Scenario("refcount-addition-on-zero-module", BOTH, module=True,
             trigger=module_trigger("refcount"), fatal=False, wait_re=END_TRACE,
             note="refcount_inc() of a zero refcount_t"),
    Scenario("scheduling-while-atomic-module", BOTH, module=True,
             trigger=module_trigger("sched-atomic"), fatal=False,
             wait_re=r"BUG: scheduling while atomic(?s:.*)</TASK>",
             note="schedule_timeout_uninterruptible() with preemption disabled"),
    Scenario("soft-lockup-module", BOTH, module=True,
             setup=("echo 3 > /proc/sys/kernel/watchdog_thresh",),
             trigger=module_trigger("soft-lockup"), fatal=False,
             wait_re=r"trigger soft-lockup returned",
             note="spin 12 s with preemption disabled, watchdog_thresh=3"),
    Scenario("rcu-stall-module", BOTH, module=True,
             setup=("echo 0 > /proc/sys/kernel/soft_watchdog",
                    "echo 3 > /sys/module/rcupdate/parameters/rcu_cpu_stall_timeout"),
             trigger=module_trigger("rcu-stall"), fatal=False,
             wait_re=r"trigger rcu-stall returned",
             note="spin 12 s with preemption disabled, soft lockup detector off, "
                  "rcu_cpu_stall_timeout=3"),
    Scenario("stack-overflow-guard-page-module", BOTH, module=True,
             trigger=module_trigger("stack-overflow"), fatal=True,
             note="unbounded recursion with 512-byte frames (CONFIG_VMAP_STACK)"),
    Scenario("kfence-out-of-bounds-read-module", ("debian-6.12",), module=True,
             append=("kfence.sample_interval=10",), trigger=module_trigger("kfence-oob"),
             fatal=False, wait_re=r"BUG: KFENCE:(?s:.*?)\n[^\n]*={60,}",
             note="read one byte across a KFENCE object's guard page edge "
                  "(kfence.sample_interval=10)"),
    Scenario("kfence-use-after-free-read-module", ("debian-6.12",), module=True,
             append=("kfence.sample_interval=10",), trigger=module_trigger("kfence-uaf"),
             fatal=False, wait_re=r"BUG: KFENCE:(?s:.*?)\n[^\n]*={60,}",
             note="read a KFENCE-guarded kmalloc object after kfree (kfence.sample_interval=10)"),
]


def scenario_by_name(name: str) -> Scenario:
    for s in SCENARIOS:
        if s.name == name:
            return s
    raise UserError(f"unknown scenario {name!r}; --list shows them")


# ---------------------------------------------------------------------------- one capture

@dataclass
class Capture:
    scenario: Scenario
    kernel: str
    release: str
    package: str
    log: bytes
    reports: list
    exited: bool
    wall_s: float
    path: Optional[Path] = None


def kmsg(text: str) -> str:
    return f"echo {shlex.quote('pinrig: ' + text)} > /dev/kmsg"


def _guest(sess: Session, cmd: str, timeout: float = 60.0) -> None:
    res = sess.guest.run(cmd, timeout=timeout)
    if res.rc != 0:
        raise InfraError(f"guest command failed (exit {res.rc}): {cmd[:100]}: "
                         f"{(res.stderr or res.stdout).strip()[-300:]}")


def capture(env, sc: Scenario, ko: Optional[Path], work: Path) -> Capture:
    t0 = time.monotonic()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    sess = Session(env, work, append=sc.append)
    exited = False
    try:
        br = sess.boot()
        if br.status != "ready":
            raise InfraError(f"boot failed ({br.status}): {br.reason}\n{br.console_tail}")
        case = f"capture/{sc.name}"
        if sc.module:
            sess.guest.put(ko, GUEST_KO)
            for line in sc.setup:
                _guest(sess, line)
            _guest(sess, kmsg(f"case-start {case}"))
            _guest(sess, f"insmod {GUEST_KO} {sc.insmod_args}".rstrip())
        else:
            for line in sc.setup:
                _guest(sess, line)
            _guest(sess, kmsg(f"case-start {case}"))
        _guest(sess, sc.trigger)
        m = sess.machine
        if sc.fatal:
            sess.guest.close()          # the guest is about to die: no polite poweroff
            sess.guest = None
            exited = m.wait_exit(FATAL_EXIT_S)
            if not exited:
                raise InfraError(f"QEMU still running {FATAL_EXIT_S:.0f}s after a fatal trigger")
        else:
            if sc.wait_re:
                rx = re.compile(sc.wait_re.encode())
                ok = m.console.wait_for(lambda: bool(rx.search(bytes(m.console.buf))),
                                        REPORT_WAIT_S)
                if not ok:
                    raise InfraError(f"no match for {sc.wait_re!r} on the console after "
                                     f"{REPORT_WAIT_S:.0f}s")
                time.sleep(SETTLE_S)
            if not m.alive():
                raise InfraError("QEMU exited after a non-fatal trigger")
            _guest(sess, kmsg(f"case-end {case}"))
            # power off through sysrq: the kernel says "reboot: Power down" and QEMU exits
            _guest(sess, "(sleep 0.5; sync; echo o > /proc/sysrq-trigger) "
                         "</dev/null >/dev/null 2>&1 &")
            sess.guest.close()
            sess.guest = None
            exited = m.wait_exit(FATAL_EXIT_S)
    finally:
        sess.close()
        sess.discard_pmem()
    log = sess.machine.console_text() if sess.machine else b""
    shutil.rmtree(work, ignore_errors=True)
    pkg = next((p for p in env.art.packages if p.startswith(("linux-image-", "linux-binary-"))),
               env.art.packages[0])
    return Capture(sc, env.spec.name, env.art.release, pkg, log, oops.parse_console(log), exited,
                   time.monotonic() - t0)


# ---------------------------------------------------------------------------- corpus file

def trim(log: bytes, first_line: Optional[int], keep: int = TRIM_BEFORE) -> bytes:
    """Drop console lines before the last `keep` ones ahead of the report (1-based line)."""
    if not first_line:
        return log
    lines = log.split(b"\n")
    start = max(0, first_line - 1 - keep)
    return b"\n".join(lines[start:])


def header_lines(reports: list) -> list:
    if not reports:
        return []
    rep = reports[0]
    out = [f"TITLE: {rep.title}", f"TYPE: {rep.kind}"]
    if rep.frame:
        out.append(f"FRAME: {rep.frame}")
    out.append(f"CORRUPTED: {'Y' if rep.corrupted else 'N'}")
    return out


def write_corpus(c: Capture, out_dir: Path) -> Path:
    first = c.reports[0].line if c.reports else None
    log = trim(c.log, first)
    reports = oops.parse_console(log)     # headers describe the trimmed log, as the test sees it
    how = c.scenario.note or c.scenario.trigger
    provenance = (f"CAPTURED: {c.kernel} {c.release} ({c.package}) under QEMU by "
                  f"scripts/capture_oops.py: {how}")
    head = header_lines(reports) + [provenance]
    path = out_dir / f"{c.scenario.name}-{c.kernel}.log"
    tmp = path.with_suffix(".log.new")
    tmp.write_bytes(("\n".join(head) + "\n\n").encode() + log)
    tmp.rename(path)
    c.path = path
    return path


# ---------------------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", action="append", help="kernel spec (repeatable; default: all "
                    "the scenarios' kernels)")
    ap.add_argument("--only", help="comma-separated scenario names")
    ap.add_argument("--out", type=Path, default=CORPUS, help="corpus directory (default %(default)s)")
    ap.add_argument("--list", action="store_true", help="list scenarios and exit")
    ap.add_argument("--build-only", action="store_true", help="fetch headers, build the module")
    ap.add_argument("--keep-going", action="store_true", help="go on after a failed capture")
    ap.add_argument("--build-root", choices=("auto", "never", "always"), default="auto",
                    help="build the module in a debootstrap'd root of the kernel's suite: auto = "
                         "when the host lacks the kernel's compiler (default %(default)s)")
    args = ap.parse_args(argv)

    if args.list:
        for s in SCENARIOS:
            print(f"{s.name:<40} {','.join(s.kernels):<24} {'fatal' if s.fatal else '     '} "
                  f"{s.note}")
        return 0
    chosen = [scenario_by_name(n.strip()) for n in args.only.split(",")] if args.only \
        else list(SCENARIOS)
    kernels = args.kernel or sorted({k for s in chosen for k in s.kernels})
    failed = []
    try:
        for kname in kernels:
            todo = [s for s in chosen if kname in s.kernels]
            need_ko = args.build_only or any(s.module for s in todo)
            if not todo and not args.build_only:
                continue
            env = prepare_env(kname, with_bins=False)
            ko = None
            if need_ko:
                ko = module_for(env.spec, env.art, args.build_root)
                say(f"{kname}: {ko}")
            if args.build_only:
                continue
            for sc in todo:
                say(f"{kname}: {sc.name} …")
                work = paths.cache_dir() / "capture" / f"{sc.name}-{kname}"
                try:
                    c = capture(env, sc, ko, work)
                except RigError as e:
                    failed.append(f"{sc.name}-{kname}: {e}")
                    say(f"{kname}: {sc.name} FAILED: {e}")
                    if not args.keep_going:
                        break
                    continue
                args.out.mkdir(parents=True, exist_ok=True)
                path = write_corpus(c, args.out)
                title = c.reports[0].title if c.reports else "(no report)"
                say(f"{kname}: {sc.name}: {title}  [{c.wall_s:.0f}s, "
                    f"{'QEMU exited' if c.exited else 'powered off'}] -> {path.name}")
            if failed and not args.keep_going:
                break
    except RigError as e:
        print(f"capture: {e}", file=sys.stderr)
        return 2
    for f in failed:
        print(f"capture: failed: {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
