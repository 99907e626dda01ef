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

from pinrig import config, oops, paths  # noqa: E402
from pinrig.cases.kmod import (  # noqa: E402
    build_module,
    build_root,
    fetch_headers,
    module_dir_name,
)
from pinrig.errors import InfraError, RigError, UserError  # noqa: E402
from pinrig.guest.session import Session, prepare_env  # noqa: E402
from pinrig.kernels.artifact import KernelArtifact  # noqa: E402

CORPUS = REPO / "tests" / "data" / "oops"
GUEST_KO = "/tmp/pinrig_oops.ko"
TRIM_BEFORE = 150          # console lines kept before the first report
FATAL_EXIT_S = 90.0        # a fatal report must end QEMU within this (panic=-1, -no-reboot)
REPORT_WAIT_S = 120.0      # a non-fatal report must show up within this
SETTLE_S = 3.0             # after a non-fatal report: let the rest of it reach the console


def say(msg: str) -> None:
    print(f"capture: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- headers + module

def module_for(spec: config.KernelSpec, art: KernelArtifact, mode: str) -> Path:
    """Build (or reuse) the module: on the host when it has the kernel's compiler, else (or with
    mode 'always') in a build root of the kernel's suite."""
    h = fetch_headers(spec, art)
    cached = paths.cache_dir() / "headers" / h.release / module_dir_name() / "pinrig_oops.ko"
    if cached.exists():
        return cached
    if mode == "always" or (mode == "auto" and not shutil.which(h.cc)):
        return build_module(h, chroot=build_root(spec, art))
    return build_module(h)


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
