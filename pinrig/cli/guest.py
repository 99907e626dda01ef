"""A guest by hand: `rig boot` (a command or a shell), `rig bench boot`."""
from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pinrig import paths
from pinrig.cli import kernelarg
from pinrig.errors import RigError
from pinrig.guest import vm


def cmd_boot(args) -> int:
    from pinrig.guest.session import Session, prepare_env
    cmd = args.cmd
    env = prepare_env(args.kernel, with_bins=not args.dry_run,
                      cold=args.cold or args.dry_run)
    if args.dry_run:
        with tempfile.TemporaryDirectory(prefix="pinrig-dry-") as tmp:
            cfg_argv = vm.prepare(env.art, env.boot, env.image, Path(tmp), env.accel).argv
        print(shlex.join(cfg_argv))
        return 0
    work = Path(tempfile.mkdtemp(prefix="pinrig-boot-", dir=paths.cache_dir()))
    sess = Session(env, work)
    keep_console = False
    try:
        br = sess.boot()
        if br.status != "ready":
            keep_console = True
            print(br.console_tail, file=sys.stderr)
            raise RigError(f"boot of {env.spec.name} failed ({br.status}): {br.reason}; "
                           f"console in {work}/console.log")
        sess.upload_bins()
        if not cmd:
            return _interactive(sess)
        line = cmd[0] if len(cmd) == 1 else shlex.join(cmd)
        res = sess.connected_guest().run(line, timeout=args.timeout)
        sys.stdout.write(res.stdout)
        sys.stderr.write(res.stderr)
        return res.rc
    finally:
        sess.close()
        _tidy_boot_dir(work, keep_console)


def _tidy_boot_dir(work: Path, keep_console: bool) -> None:
    """A hand boot leaves nothing behind (its pmem file is 1 GiB), except the console log of
    a boot that failed, which the error message points at."""
    if not keep_console:
        shutil.rmtree(work, ignore_errors=True)
        return
    for p in work.iterdir():
        if p.name != "console.log":
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def _interactive(sess) -> int:
    """An interactive shell through the system ssh client, pinned to the image's host key."""
    from pinrig import proc
    proc.require("ssh")
    with tempfile.NamedTemporaryFile("w", suffix=".known_hosts", delete=False) as kh:
        kh.write(f"[127.0.0.1]:{sess.machine.ssh_port} {sess.env.image.host_key_pub}\n")
    print(f"rig: guest shell (console log: {sess.machine.console_log}); exit to power off",
          file=sys.stderr)
    try:
        return subprocess.call(["ssh", "-i", str(sess.env.image.ssh_key), "-p",
                                str(sess.machine.ssh_port), "-o", f"UserKnownHostsFile={kh.name}",
                                "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes",
                                "root@127.0.0.1"])
    finally:
        Path(kh.name).unlink(missing_ok=True)


def cmd_bench(args) -> int:
    from pinrig.guest.session import prepare_env
    from pinrig.runs.bench import bench_boot, format_boot
    env = prepare_env(args.kernel, with_bins=False, cold=args.cold)
    echo = (lambda *_a, **_k: None) if args.json else print
    r = bench_boot(env, repeat=args.repeat, echo=echo)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        lines = format_boot(r)
        print("\n".join(lines))
    return 0


def cmd_bench_all(args) -> int:
    from pinrig.guest.session import prepare_env
    from pinrig.runs.bench import bench_all, format_all
    env = prepare_env(args.kernel, with_bins=False, cold=False)   # restore is measured too
    echo = (lambda *_a, **_k: None) if args.json else print
    r = bench_all(env, args.kernel, repeat=args.repeat, echo=echo)
    print(json.dumps(r, indent=2) if args.json else format_all(r), end="" if not args.json else "\n")
    return 0


def register(sub) -> None:
    s = sub.add_parser("boot", help="boot a kernel; run CMD in the guest (or a shell)")
    kernelarg.add(s)
    s.add_argument("--dry-run", action="store_true", help="print the QEMU command line only")
    s.add_argument("--cold", action="store_true", help="boot (default: resume a saved ready "
                   "state of this kernel and image when there is one)")
    s.add_argument("--timeout", type=float, default=600, help="seconds for CMD (default 600)")
    s.add_argument("cmd", nargs="*", help="-- CMD… (everything after --)")
    s.set_defaults(func=cmd_boot)

    s = sub.add_parser("bench", help="benchmarks")
    bsub = s.add_subparsers(dest="what", required=True)
    b = bsub.add_parser("boot", help="boot-to-ready: rig vs raw QEMU, same kernel")
    kernelarg.add(b)
    b.add_argument("--repeat", type=int, default=3)
    b.add_argument("--cold", action="store_true", help="measure cold boots only")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench)
    b = bsub.add_parser("all", help="boot-to-ready (raw, cold, restore), pin-matrix and one "
                        "lost-write case (--jobs 1), each beside its target")
    kernelarg.add(b)
    b.add_argument("--repeat", type=int, default=3, help="boots of each kind (default 3)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench_all)
