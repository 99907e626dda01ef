"""The kernel's own GUP selftests as workloads of a suite: gup_longterm, cow and gup_test.

The binaries are built on the host from the source tree the kernel came from (a source
kernel's own tree; for a Debian kernel the linux-source-X.Y package of the image's version),
against that tree's UAPI headers (pinrig.cases.kselftest.build). In the guest each case:

- reserves hugetlb pages the way tools/testing/selftests/mm/run_vmtests.sh does (at least 256 MiB
  worth, or 2 × nr_cpus huge pages if that is more; drop caches, up to two tries, then whatever
  the kernel gave) and puts the old count back afterwards;
- gives the guest swap when it has none (a 512 MiB zram device, removed afterwards): cow's
  MADV_PAGEOUT subtests skip without swap ("is swap enabled?"), and a test box has swap;
- runs the program with the case's filesystem as its current directory (gup_longterm and cow
  create their test files there);
- turns the output into subtests: TAP lines for gup_longterm and cow (and gup_test on trees that
  print TAP), the exit code for older gup_test (0 pass, 4 skip, else fail).

gup_test variants: `vmtests` is run_vmtests.sh's run_gup_matrix (THP on / off / hugetlb ×
gup-fast, gup, pin-fast, pin, pin-longterm × write / read × shared / private × 1, 512, 123 pages:
180 runs), `file` is the rig's long-term matrix on a file of the case's filesystem
(pinrig.cases.tap.GUP_TEST_MATRIX: pinned / refused). gup_test needs CONFIG_GUP_TEST
(/sys/kernel/debug/gup_test): without it the case is skipped and says so.

The case verdict: any failed subtest → `unexpected` naming them; every subtest skipped →
`skipped` with the first reason; else `ok` with the counts. The full TAP is the case's evidence.
"""
from __future__ import annotations

import shlex
from dataclasses import asdict
from typing import Callable, Optional

from pinrig.cases import tap
from pinrig.cases.tap import Subtest

GUEST_DIR = "/opt/pinrig/kselftest"
PROGRAMS = ("gup_longterm", "cow", "gup_test")
GUP_TEST_FILE = "/sys/kernel/debug/gup_test"
HUGETLB_MIN_KB = 256 * 1024

# run_vmtests.sh's run_gup_matrix, in its order
HUGE = ("-t", "-T", "-H")
GUP_CMDS = ("-u", "-U", "-a", "-b", "-L")
WRITES = ("-w", "-W")
SHARES = ("-S", "")
NUMS = ("1", "512", "123")


def vmtests_matrix(hugetlb_mb: int) -> list:
    """[(name, argv)] of run_gup_matrix: 3 × 5 × 2 × 2 × 3 = 180 gup_test runs."""
    out = []
    for huge in HUGE:
        for cmd in GUP_CMDS:
            for write in WRITES:
                for share in SHARES:
                    for num in NUMS:
                        argv = [huge] + (["-m", str(hugetlb_mb)] if huge == "-H" else [])
                        argv += [cmd, write] + ([share] if share else []) + ["-n", num]
                        out.append((" ".join(argv), argv))
    return out


def hugetlb_script(need_kb: int = HUGETLB_MIN_KB) -> str:
    """Shell that reserves huge pages as run_vmtests.sh does and prints
    'PINRIG-HUGETLB size_kb=… need=… free=… old=…' (the old count is kept in /run)."""
    return (
        "hp=$(awk '/^Hugepagesize:/{print $2}' /proc/meminfo); "
        "free=$(awk '/^HugePages_Free:/{print $2}' /proc/meminfo); "
        "old=$(cat /proc/sys/vm/nr_hugepages); echo $old > /run/pinrig-nr_hugepages.orig; "
        f"need=$(( {need_kb} / hp )); cpu=$(( $(nproc) * 2 )); [ $cpu -gt $need ] && need=$cpu; "
        "tries=2; while [ $tries -gt 0 ] && [ $free -lt $need ]; do "
        "echo 3 > /proc/sys/vm/drop_caches; echo $(( need - free + old )) > /proc/sys/vm/nr_hugepages; "
        "free=$(awk '/^HugePages_Free:/{print $2}' /proc/meminfo); tries=$((tries-1)); done; "
        "echo PINRIG-HUGETLB size_kb=$hp need=$need free=$free old=$old")
HUGETLB_RESTORE = ("cat /run/pinrig-nr_hugepages.orig > /proc/sys/vm/nr_hugepages 2>/dev/null; "
                   "true")


SWAP_ON = ("if [ -z \"$(tail -n +2 /proc/swaps)\" ]; then modprobe zram num_devices=1 && "
           "echo 512M > /sys/block/zram0/disksize && mkswap /dev/zram0 >/dev/null && "
           "swapon /dev/zram0 && echo PINRIG-SWAP zram0 512M; else echo PINRIG-SWAP present; fi")
SWAP_OFF = ("if grep -q '^/dev/zram0 ' /proc/swaps; then swapoff /dev/zram0 && "
            "echo 1 > /sys/block/zram0/reset; fi; true")


def parse_hugetlb(line: str) -> dict:
    out = {}
    for word in line.split():
        k, eq, v = word.partition("=")
        if eq and v.isdigit():
            out[k] = int(v)
    return out


def gup_test_run(name: str, number: int, fs: str, rc: Optional[int], out: str) -> Subtest:
    """One gup_test run of the vmtests matrix: TAP when the tree prints it, else the exit code."""
    _plan, subs, _totals = tap.parse_tap(out, "gup_test", fs)
    tail = out.strip()[-200:]
    if rc == 4:
        return Subtest("gup_test", fs, number, name, "skip", tail)
    if rc != 0:
        return Subtest("gup_test", fs, number, name, "fail", f"exit {rc}: {tail}")
    if any(s.result == "fail" for s in subs):
        return Subtest("gup_test", fs, number, name, "fail", tail)
    if subs and all(s.result == "skip" for s in subs):
        return Subtest("gup_test", fs, number, name, "skip", subs[0].detail)
    return Subtest("gup_test", fs, number, name, "pass", "")


def judge(subs: list, notes: list) -> tuple:
    """(failure or None, skip reason or None, summary) of a case's subtests."""
    counts: dict = {}
    for s in subs:
        counts[s.result] = counts.get(s.result, 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no subtests"
    bad = [s for s in subs if s.result in ("fail", "error")]
    if bad:
        names = "; ".join(f"{s.number}:{s.name}" for s in bad[:5])
        more = f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""
        return f"{len(bad)} of {len(subs)} subtests failed: {names}{more}", None, summary
    if not subs:
        return None, "; ".join(notes) or "the program reported no subtests", summary
    if all(s.result == "skip" for s in subs):
        return None, f"all {len(subs)} subtests skipped: {subs[0].detail}", summary
    return None, None, summary


def run_in_guest(g, program: str, variant: Optional[str], fs: str, mnt: str, longterm: int,
                 timeout: float, log: Callable) -> tuple:
    """Run one selftest case in a booted guest whose filesystem is mounted on mnt.
    Returns (subtests, notes, hugetlb dict). `log(title, res)` records each command."""
    notes: list = []
    res = g.run(SWAP_ON, timeout=120)
    log("swap for MADV_PAGEOUT (zram)", res)
    swap = "zram0 512M" if "PINRIG-SWAP zram0" in res.stdout else \
        ("present" if "PINRIG-SWAP present" in res.stdout else "none")
    if swap == "none":
        notes.append(f"no swap: zram unavailable ({res.stderr.strip()[-120:]})")
    res = g.run(hugetlb_script(), timeout=120)
    log("reserve hugetlb pages (run_vmtests.sh)", res)
    huge = parse_hugetlb(next((ln for ln in res.stdout.splitlines()
                               if ln.startswith("PINRIG-HUGETLB")), ""))
    huge["swap"] = swap
    if huge.get("free", 0) < huge.get("need", 1):
        notes.append(f"hugetlb: {huge.get('free', 0)} of {huge.get('need', '?')} huge pages "
                     "free after reserving")
    subs: list = []
    try:
        if program in ("gup_longterm", "cow"):
            cmd = f"cd {mnt} && {GUEST_DIR}/{program}"
            r = g.run(cmd, timeout=timeout)
            log(cmd, r)
            plan, subs, totals = tap.parse_tap(r.stdout, program, fs)
            if plan is not None and len(subs) != plan:
                notes.append(f"plan 1..{plan} but {len(subs)} results (exit {r.rc})")
            if r.rc not in (0, 4) and not any(s.result == "fail" for s in subs):
                subs.append(Subtest(program, fs, len(subs) + 1, "exit status", "fail",
                                    f"exit {r.rc}: {(r.stderr or r.stdout).strip()[-200:]}"))
        elif program == "gup_test":
            probe = g.run("mountpoint -q /sys/kernel/debug || mount -t debugfs none "
                          f"/sys/kernel/debug; test -e {GUP_TEST_FILE}", timeout=30)
            if probe.rc != 0:
                notes.append(f"no {GUP_TEST_FILE}: kernel without CONFIG_GUP_TEST")
                return [], notes, huge
            if variant == "file":
                for i, (name, args) in enumerate(tap.gup_test_matrix(longterm), 1):
                    f = f"{mnt}/gup_test.{i}"
                    cmd = (f"rm -f {f}; dd if=/dev/zero of={f} bs=1M count=1 status=none && "
                           f"{GUEST_DIR}/gup_test {' '.join(args)} -m 1 -r 1 -f {f} 2>&1")
                    r = g.run(cmd, timeout=120)
                    log(cmd, r)
                    subs.append(tap.parse_gup_test(name, i, fs, r.rc, r.stdout + r.stderr))
            else:
                mb = max(huge.get("need", 0) * huge.get("size_kb", 0) // 1024, 1) or 256
                for i, (name, args) in enumerate(vmtests_matrix(mb), 1):
                    cmd = f"cd {mnt} && {GUEST_DIR}/gup_test {shlex.join(args)} 2>&1"
                    r = g.run(cmd, timeout=300)
                    log(cmd, r)
                    subs.append(gup_test_run(name, i, fs, r.rc, r.stdout + r.stderr))
    finally:
        g.run(HUGETLB_RESTORE, timeout=60)
        g.run(SWAP_OFF, timeout=120)
    return subs, notes, huge


def result_dict(subs: list, notes: list, huge: dict, origin: str) -> dict:
    return {"source": origin, "hugetlb": huge, "notes": notes,
            "subtests": [asdict(s) | {"id": s.id} for s in subs]}
