"""The one table of workloads: what the rig knows about each guest program.

Adding a workload is one entry here plus its C file in workloads/src (linked with common.c and
json.c by workloads/Makefile). Suites name workloads by `name`; the rest of the rig asks this
table, never the name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, Optional, Tuple

if TYPE_CHECKING:
    from pinrig.config import Case

MNT = "/mnt/test"        # where each case's filesystem is mounted in the guest
# the RDMA device each provider's case opens (the guest init adds rxe0; siw0 is added when a
# siw case first needs it: pinrig.cases.execute)
RDMA_DEVICES = {"rxe": "rxe0", "siw": "siw0"}


def rdma_device(case: "Case") -> str:
    return RDMA_DEVICES[case.provider]


@dataclass(frozen=True)
class Workload:
    name: str
    program: str                       # binary built from workloads/src/<program>.c
    args: Callable[["Case", int, bool], list]   # (case, seed, hold) → its flags
    data_file: Optional[str] = None    # the file whose blocks are verified after the case
    needs_rdma: bool = False           # needs an RDMA device (rxe) in the guest
    crash_and_verify: Callable[["Case"], bool] = lambda case: False
    # ↑ True: the case pins, power-cuts the guest with the pin held and verifies after a second
    #   boot on the same pmem file, so it needs a guest of its own (and the program --hold)
    needs_module: Callable[["Case"], bool] = lambda case: False
    # ↑ True: the case needs the rig's test module (pinrig.cases.kmod) loaded in the guest
    providers: Tuple[str, ...] = ("rxe",)
    # ↑ the RDMA providers the program can work with (siw: iWARP, QPs connected through rdma_cm)
    kselftest: Optional[str] = None
    # ↑ a selftest program from the kernel's own tree (pinrig.cases.selftests), run instead of
    #   a workloads/src program; its TAP output decides the case
    kconfig: Tuple[str, ...] = ()
    # ↑ kernel options the workload needs beyond the guest's, filesystem's and RDMA's
    #   (pinrig.cases.needs: a kernel without them gets the case `skipped`, saying which)
    variants: Optional[Tuple[str, ...]] = None
    # ↑ the variants the program understands, when it takes no others (checked by the suite loader)
    verifier: str = "blocks"
    # ↑ how the data file is judged after the case (pinrig.cases.corruption):
    #   "blocks": per-block checksums against the workload's "expected" (blocksum);
    #   "stable": the program's own --check classifies every block (torn/unreadable/consistent);
    #   "clones": the original must hold pattern B, its reflink/snapshot clone pattern A

    @property
    def verifies(self) -> bool:
        return self.data_file is not None

    def argv(self, bindir: str, case: "Case", seed: int, hold: bool = False) -> list:
        return [f"{bindir}/{self.program}", *self.args(case, seed, hold)]

    def needs_own_guest(self, case: "Case") -> bool:
        if case.fs == "tmpfs":
            return False       # nothing survives a power cut there: verified in place
        return self.crash_and_verify(case)


def _ibverbs_pin(case: "Case", seed: int, hold: bool) -> list:
    access = {"ro": "ro", "none": "none"}.get(case.variant or "", "rw")
    return ["--file", f"{MNT}/pin.dat", "--size", str(case.size), "--map", case.mapping,
            "--access", access, "--device", rdma_device(case), "--seed", str(seed)] + \
        (["--leak"] if case.variant == "leak" else [])


def _lost_write(case: "Case", seed: int, hold: bool) -> list:
    argv = ["--file", f"{MNT}/lost.dat", "--size", str(case.size), "--device", rdma_device(case),
            "--seed", str(seed)]
    if case.variant == "control":
        argv.append("--control")      # deregister before the final fsync
    return argv + (["--hold"] if hold else [])


def _odirect_into_mmap(case: "Case", seed: int, hold: bool) -> list:
    argv = ["--src", f"{MNT}/src.dat", "--dst", f"{MNT}/dst.dat", "--size", str(case.size),
            "--seed", str(seed)]
    return argv + (["--pressure"] if case.variant != "nopressure" else [])


def _iouring_fixed(case: "Case", seed: int, hold: bool) -> list:
    return ["--file", f"{MNT}/ring.dat", "--src", f"{MNT}/ring-src.dat", "--size", str(case.size),
            "--seed", str(seed), "--map", case.mapping] + (["--hold"] if hold else [])


def _no_args(case: "Case", seed: int, hold: bool) -> list:
    return []

# anon-coherency: the variant names the trigger that may replace the pinned anonymous pages
ANON_TRIGGERS = ("control", "fork-child-write", "fork-parent-write", "ksm", "khugepaged",
                 "migrate", "dontneed", "uprobe", "fork-ro-pin", "mprotect", "pageout")


def _anon_coherency(case: "Case", seed: int, hold: bool) -> list:
    argv = ["--trigger", case.variant or "control", "--size", str(case.size), "--device", "rxe0",
            "--seed", str(seed), "--wait", str(max(10, case.timeout - 60))]
    # uprobe: a MAP_PRIVATE PROT_EXEC mapping of a file on the case's filesystem, pinned read-only
    return argv + (["--file", f"{MNT}/uprobe.bin"] if case.variant == "uprobe" else [])

def _stable_pages(case: "Case", seed: int, hold: bool) -> list:
    """stable-pages: variant cpu = the CPU writes instead of the device (the control)."""
    writer = "cpu" if case.variant == "cpu" else "rdma"
    return _stable_common(case, seed, hold, writer) + ["--device", "rxe0"]


def _odirect_race(case: "Case", seed: int, hold: bool) -> list:
    return _stable_common(case, seed, hold, "odirect")


def _stable_common(case: "Case", seed: int, hold: bool, writer: str) -> list:
    long = "long" in (case.variant or "").split("-")
    return ["--file", f"{MNT}/stable.dat", "--size", str(case.size), "--seed", str(seed),
            "--writer", writer, "--duration", str(STABLE_LONG_S if long else STABLE_DURATION_S)] + \
        (["--hold"] if hold else [])


STABLE_DURATION_S = 8       # seconds of overlap the checker reads back before the JSON line
STABLE_LONG_S = 40          # variant `long`


def stable_check_argv(bindir: str, case: "Case", seed: int) -> list:
    """The post-crash classification of the stable-pages data file."""
    return [f"{bindir}/stable-pages", "--check", "--file", f"{MNT}/stable.dat",
            "--size", str(case.size), "--seed", str(seed)]


REFLINK_VARIANTS = ("dirty", "control", "snapshot", "snapshot-dirty", "snapshot-control")


def _reflink_pin(case: "Case", seed: int, hold: bool) -> list:
    """Variants: snapshot (btrfs snapshot instead of FICLONE), dirty (the CPU dirties the
    original after the clone), control (deregister before the final fsync); joined by '-'."""
    parts = (case.variant or "").split("-")
    argv = ["--file", f"{MNT}/cow.dat", "--clone", f"{MNT}/cow-clone.dat", "--size",
            str(case.size), "--seed", str(seed), "--device", "rxe0",
            "--how", "snapshot" if "snapshot" in parts else "reflink"]
    argv += ["--dirty"] if "dirty" in parts else []
    argv += ["--control"] if "control" in parts else []
    return argv + (["--hold"] if hold else [])


# crash-class: the trigger that may strip (reclaim, pageout, drop caches, truncate, punch) or move
# (compaction, migration) the pinned pages before the device writes through the pin
CRASH_TRIGGERS = ("control", "reclaim", "munmap-reclaim", "pageout", "compact", "migrate",
                  "drop-caches", "truncate", "punch", "splice-steal")


def _crash_class(case: "Case", seed: int, hold: bool) -> list:
    return ["--file", f"{MNT}/crash.dat", "--trigger", case.variant or "control", "--size",
            str(case.size), "--seed", str(seed), "--device", rdma_device(case)]


_TABLE: Tuple[Workload, ...] = (
    # variant leak: the test module takes a pin and keeps it (proves the pin accounting bites)
    Workload("ibverbs-pin", "ibverbs-pin", _ibverbs_pin, needs_rdma=True, providers=("rxe", "siw"),
             needs_module=lambda case: case.variant == "leak"),
    Workload("lost-write", "lost-write", _lost_write, data_file=f"{MNT}/lost.dat",
             needs_rdma=True, providers=("rxe", "siw"), crash_and_verify=lambda case: True),
    Workload("odirect-into-mmap", "odirect-into-mmap", _odirect_into_mmap,
             data_file=f"{MNT}/dst.dat"),
    Workload("iouring-fixed", "iouring-fixed", _iouring_fixed, data_file=f"{MNT}/ring.dat",
             crash_and_verify=lambda case: case.mapping == "shared",
             kconfig=("CONFIG_IO_URING",)),
    # the kernel's own selftests (tools/testing/selftests/mm), built from the kernel's tree
    Workload("kselftest-gup_longterm", "gup_longterm", _no_args, kselftest="gup_longterm"),
    Workload("kselftest-cow", "cow", _no_args, kselftest="cow"),
    # variant vmtests: run_vmtests.sh's gup_test matrix; file: long-term pins of a file
    Workload("kselftest-gup_test", "gup_test", _no_args, kselftest="gup_test"),
    # anonymous memory (fs/mapping are the tmpfs control's; the program maps MAP_ANONYMOUS);
    # each trigger's own needs (KSM, THP, two NUMA nodes, uprobe events, zram) are checked by
    # the program in the guest, which reports a `skip` naming what is missing
    Workload("anon-coherency", "anon-coherency", _anon_coherency, needs_rdma=True,
             variants=ANON_TRIGGERS),
    # issue 15 item 2: a device writes a pinned mapping while fsync loops; what reached the
    # medium is read back during the overlap and after a power cut in the middle of it
    Workload("stable-pages", "stable-pages", _stable_pages, data_file=f"{MNT}/stable.dat",
             needs_rdma=True, crash_and_verify=lambda case: True, verifier="stable",
             variants=("cpu",)),
    # issue 15 item 6: the same with O_DIRECT reads into the mapping (short-term FOLL_PIN)
    Workload("odirect-race", "stable-pages", _odirect_race, data_file=f"{MNT}/stable.dat",
             crash_and_verify=lambda case: True, verifier="stable", variants=("long",)),
    # issue 15 item 3: reflink / snapshot of a pinned file, device write, fsync both, crash
    Workload("reflink-pin", "reflink-pin", _reflink_pin, data_file=f"{MNT}/cow.dat",
             needs_rdma=True, crash_and_verify=lambda case: True, verifier="clones",
             variants=REFLINK_VARIANTS),
    # issue 15 item 4: the crash class -- clean pinned pages through reclaim, pageout,
    # compaction, migration, drop_caches, truncate, hole punch; then the device writes through
    # the pin and the unpin dirties them; the file is verified after a remount (no power cut)
    Workload("crash-class", "crash-class", _crash_class, data_file=f"{MNT}/crash.dat",
             needs_rdma=True, variants=CRASH_TRIGGERS),
)
WORKLOADS: Dict[str, Workload] = {w.name: w for w in _TABLE}
NAMES: Tuple[str, ...] = tuple(WORKLOADS)


def get(name: str) -> Workload:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise KeyError(f"unknown workload {name!r} (one of: {', '.join(NAMES)})") from None


def needs_module(case: "Case") -> bool:
    return get(case.workload).needs_module(case)


def kselftest(case: "Case") -> Optional[str]:
    """The selftest program a case runs, or None for a workloads/src program."""
    return get(case.workload).kselftest


def needs_own_guest(case: "Case") -> bool:
    """A crash-and-verify case gets a guest of its own; the rest share one boot."""
    return get(case.workload).needs_own_guest(case)
