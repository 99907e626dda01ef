"""GUP selftests from a source kernel's own tree, run in the guest on ext4, xfs and tmpfs.

- `gup_longterm` (tools/testing/selftests/mm, Linux ≥ 6.4): a TAP program; every `ok`/`not ok`
  line becomes a subtest result ("[RUN] …" lines name them). It tests R/O and R/W long-term pins
  through GUP and GUP-fast (and io_uring fixed buffers) on memfd, tmpfile and a file in the
  current directory — which the rig points at each filesystem in turn.
- `gup_test` (tools/testing/selftests/vm or mm, all versions): not a TAP program; the rig runs a
  small matrix of its long-term pin commands on a file of the filesystem (slow path `-L`, fast
  path `-a` with FOLL_LONGTERM; writable and read-only; MAP_SHARED and MAP_PRIVATE) and reads
  "truncated (size: 0)" as a refused pin.

The binaries are compiled on the host (the guest is the same Debian release) against the
tree's own UAPI headers (`make O=… headers` into the cache; the tree is never written) and
cached per source version.
"""
from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from pinrig import paths, proc
from pinrig.cases.tap import (  # noqa: F401  (re-exported: kselftest.parse_tap …)
    GUP_TEST_MATRIX,
    Subtest,
    gup_test_matrix,
    parse_gup_test,
    parse_tap,
)
from pinrig.errors import InfraError, UserError

KSELFTEST_FORMAT = "ks-2"        # bump when how the binaries are built changes
GUEST_DIR = "/opt/pinrig/kselftest"
MNT = "/mnt/test"
FILESYSTEMS = ("ext4", "xfs", "tmpfs")
TESTS = ("gup_longterm", "gup_test")

def foll_longterm(tree: Path) -> int:
    """FOLL_LONGTERM's value in this tree: `#define FOLL_LONGTERM 0x10000` (≤ 6.2) or
    `FOLL_LONGTERM = 1 << 8,` in an enum (6.3+). gup_test passes -F flags to the kernel as is."""
    for rel in ("include/linux/mm_types.h", "include/linux/mm.h"):
        try:
            text = (tree / rel).read_text(errors="replace")
        except OSError:
            continue
        m = re.search(r"#define\s+FOLL_LONGTERM\s+(0x[0-9a-fA-F]+|\d+)", text)
        if m:
            return int(m.group(1), 0)
        m = re.search(r"\bFOLL_LONGTERM\s*=\s*1\s*<<\s*(\d+)", text)
        if m:
            return 1 << int(m.group(1))
    raise UserError(f"{tree}: cannot find FOLL_LONGTERM in include/linux/mm*.h")


# ---------------------------------------------------------------------------- building

def selftest_dir(tree: Path) -> Optional[Path]:
    for sub in ("tools/testing/selftests/mm", "tools/testing/selftests/vm"):
        if (tree / sub / "gup_test.c").is_file():
            return tree / sub
    return None


def build(tree: Path, label: str, ident: str, tests: tuple = TESTS) -> dict:
    """Compile the tests the tree has (gup_longterm from 6.4, cow from 6.2, gup_test) →
    {test name: binary path}. Helper sources a test includes ("vm_util.h", "thp_settings.h")
    are compiled with it when the tree has their .c files."""
    import hashlib
    sdir = selftest_dir(tree)
    if sdir is None:
        raise UserError(f"{label}: no GUP selftests in this tree (tools/testing/selftests/mm)")
    key = f"{KSELFTEST_FORMAT}|{ident}" + ("" if tests == TESTS else "|" + ",".join(tests))
    out = paths.cache_dir() / "kselftest" / hashlib.sha256(key.encode()).hexdigest()[:20]
    meta = out / "binaries.json"
    if meta.exists():
        return {k: Path(v) for k, v in json.loads(meta.read_text()).items()}
    proc.require("make")
    proc.require("gcc")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "bin").mkdir(parents=True)
    proc.progress(f"kselftest: installing {label} UAPI headers")
    proc.run(["nice", "-n", "19", "make", "-C", tree, f"O={tmp / 'hdr'}", "headers"],
             what="make headers", timeout=1800)      # (headers_install only adds an rsync)
    hdr = tmp / "hdr" / "usr" / "include"
    have_uring = Path("/usr/include/liburing.h").exists()
    (tmp / "local_config.h").write_text("#define LOCAL_CONFIG_HAVE_LIBURING 1\n" if have_uring
                                        else "/* no liburing */\n")
    cflags: list[proc.Arg] = ["-O2", "-Wall", "-Wno-unused", "-isystem", hdr, "-I", tmp, "-I", sdir,
              "-I", tree / "tools/testing/selftests", "-I", tree / "tools/include/uapi",
              "-I", tree]                                 # <mm/gup_test.h> (≤ 6.2)
    bins = {}
    for test in tests:
        src = sdir / f"{test}.c"
        if not src.is_file():
            continue
        # relative source names: gup_longterm names its "local tmpfile" after __FILE__, which
        # must be a plain file name for mkstemp() in the guest's current directory
        srcs = [src.name]
        if (sdir / "vm_util.c").is_file() and '"vm_util.h"' in src.read_text():
            srcs.append("vm_util.c")
        if tests != TESTS:
            for helper in ("thp_settings",):
                if (sdir / f"{helper}.c").is_file() and f'"{helper}.h"' in src.read_text():
                    srcs.append(f"{helper}.c")
        libs = ["-lpthread", "-lrt", "-lm"] + (["-luring"] if have_uring else [])
        dest = tmp / "bin" / test
        proc.progress(f"kselftest: gcc {src.relative_to(tree)}")
        proc.run(["gcc", *cflags, *srcs, "-o", dest, *libs], what=f"gcc {test}.c", timeout=600,
                 cwd=sdir)
        bins[test] = out / "bin" / test
    (tmp / "binaries.json").write_text(json.dumps({k: str(v) for k, v in bins.items()}))
    shutil.rmtree(tmp / "hdr", ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return bins


# ---------------------------------------------------------------------------- running

@dataclass
class KselftestRun:
    kernel: str
    release: str
    out: Path
    subtests: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def failed(self) -> list:
        return [s for s in self.subtests if s.result in ("fail", "error")]

    def to_dict(self) -> dict:
        return {"kernel": self.kernel, "release": self.release, "notes": self.notes,
                "subtests": [asdict(s) | {"id": s.id} for s in self.subtests]}

    def text(self) -> str:
        lines = [f"kselftest on {self.kernel} ({self.release}): results in {self.out}"]
        lines += [f"  note: {n}" for n in self.notes]
        width = max((len(f"{s.test}/{s.fs} {s.name}") for s in self.subtests), default=10)
        for s in self.subtests:
            lines.append(f"  {f'{s.test}/{s.fs} {s.name}':<{width}}  {s.result}"
                         + (f"  ({s.detail})" if s.detail and s.result != "pass" else ""))
        counts: dict = {}
        for s in self.subtests:
            counts[s.result] = counts.get(s.result, 0) + 1
        lines.append("  " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
        return "\n".join(lines)


def run(kernel_name: str, tests=TESTS, filesystems=FILESYSTEMS, out: Optional[Path] = None,
        echo=print) -> KselftestRun:
    from pinrig import config
    from pinrig.cases.execute import fs_setup_commands
    from pinrig.guest.session import Session, prepare_env
    from pinrig.kernels.source import builder, sources
    spec = config.load_kernel_spec(kernel_name)
    if spec.kind != "source":
        raise UserError(f"{spec.path}: kselftest needs a source kernel (the selftests are "
                        f"built from the same tree)")
    for fs in filesystems:
        if fs not in FILESYSTEMS:
            raise UserError(f"--fs: unknown filesystem {fs!r} (known: {', '.join(FILESYSTEMS)})")
    env = prepare_env(kernel_name, with_bins=False)
    plan = builder.plan(spec)
    with builder.locked_tree(plan.ref):
        sources.materialize(plan.ref, spec)
    bins = build(plan.ref.pristine, plan.ref.label, plan.ref.ident + "|" + plan.toolchain)
    matrix = gup_test_matrix(foll_longterm(plan.ref.pristine))
    out = out or paths.RESULTS_DIR / f"kselftest-{time.strftime('%Y%m%d-%H%M%S')}-{spec.name}"
    out.mkdir(parents=True, exist_ok=True)
    res = KselftestRun(spec.name, env.art.release, out)
    for t in tests:
        if t not in bins:
            res.notes.append(f"{t}: not in this tree ({plan.ref.label}); gup_longterm is in "
                             "Linux 6.4 and later")
    sess = Session(env, Path(out) / "boot")
    (Path(out) / "boot").mkdir(exist_ok=True)
    try:
        br = sess.boot()
        if br.status != "ready":
            raise InfraError(f"boot of {spec.name} failed ({br.status}): {br.reason}")
        g = sess.connected_guest()
        g.run(["mkdir", "-p", GUEST_DIR], check=True)
        for t, b in bins.items():
            g.put(b, f"{GUEST_DIR}/{t}", mode=0o755)
        g.run("mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug")
        dax_state = "raw"
        for fs in filesystems:
            if fs != "tmpfs" and "pmem0" not in sess.info.get("pmem", ""):
                res.notes.append(f"{fs}: no /dev/pmem0 in the guest; skipped")
                continue
            for cmd in fs_setup_commands(fs, dax_state):
                r = g.run(cmd, timeout=120)
                if r.rc != 0:
                    raise InfraError(f"{fs}: '{cmd}' failed: {r.stderr.strip()[-200:]}")
            for t in tests:
                if t not in bins:
                    continue
                echo(f"rig: kselftest {t} on {fs}")
                if t == "gup_longterm":
                    r = g.run(f"cd {MNT} && {GUEST_DIR}/gup_longterm", timeout=600)
                    (out / f"{t}-{fs}.tap").write_text(r.stdout + r.stderr)
                    plan_n, subs, totals = parse_tap(r.stdout, t, fs)
                    res.subtests.extend(subs)
                    if plan_n is not None and len(subs) != plan_n:
                        res.notes.append(f"{t}/{fs}: plan 1..{plan_n} but {len(subs)} results "
                                         f"(exit {r.rc})")
                else:
                    log = []
                    for i, (name, args) in enumerate(matrix, 1):
                        f = f"{MNT}/gup_test.{i}"
                        cmd = (f"rm -f {f}; dd if=/dev/zero of={f} bs=1M count=1 status=none && "
                               f"{GUEST_DIR}/gup_test {' '.join(args)} -m 1 -r 1 -f {f} 2>&1")
                        r = g.run(cmd, timeout=120)
                        log.append(f"$ {cmd}\n[exit {r.rc}]\n{r.stdout}{r.stderr}")
                        res.subtests.append(parse_gup_test(name, i, fs, r.rc, r.stdout + r.stderr))
                    (out / f"{t}-{fs}.log").write_text("\n".join(log))
            g.run(f"umount {MNT} 2>/dev/null; true")
    finally:
        sess.close()
    (out / "kselftest.json").write_text(json.dumps(res.to_dict(), indent=2))
    (out / "summary.txt").write_text(res.text() + "\n")
    return res


def build_for(spec, art, programs: tuple) -> tuple:
    """({program: binary}, note, FOLL_LONGTERM) for a kernel, built from the source tree it came
    from (pinrig.cases.siwmod.source_tree); ({}, why, 0) when that tree has no GUP selftests."""
    from pinrig.cases import siwmod
    tree, label, ident = siwmod.source_tree(spec, art)
    if selftest_dir(tree) is None:
        return {}, f"{label}: no GUP selftests in the tree (no tools/testing/selftests/" \
                   "{mm,vm}/gup_test.c)", 0
    bins = build(tree, label, ident, tests=programs)
    missing = [p for p in programs if p not in bins]
    note = f"built from {label}" + (f"; not in this tree: {', '.join(missing)}"
                                    if missing else "")
    return bins, note, foll_longterm(tree)
