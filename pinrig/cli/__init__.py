"""The `rig` command line. Errors are caught once here and mapped to exit codes:
0 all cases passed · 1 some case failed · 2 the rig could not do its job."""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from pinrig import __version__, config, paths
from pinrig.errors import RigError, UserError
from pinrig.guest import image as guest
from pinrig.guest import vm
from pinrig.kernels import artifact
from pinrig.kernels import fetch as kernel


def cmd_kernels(args) -> int:
    cached = {}
    for name, release, h, d in artifact.cached_artifacts():
        cached.setdefault(name, []).append(f"{release} [{h}]")
    for name in config.kernel_names():
        spec = config.load_kernel_spec(name)
        have = ", ".join(cached.get(name, [])) or "not cached"
        if spec.kind == "source":         # cached by content, whichever spec built it
            from pinrig.kernels.source import builder
            try:
                art = builder.cached(builder.plan(spec))
                have = f"{art.release} [{art.hash}]" if art else "not built"
            except RigError as e:
                have = f"? ({e})"
        print(f"{name:<22} {spec.kind:<7} {spec.suite or '-':<12} {have}")
    return 0


def cmd_build(args) -> int:
    art = kernel.fetch(config.load_kernel_spec(args.kernel), refresh=args.refresh)
    guest.boot_files(art)
    if args.json:
        print(json.dumps(art.to_dict(), indent=2))
    else:
        print(f"{art.name} {art.release} {art.hash}\n{art.dir}")
    return 0


def cmd_image(args) -> int:
    img = guest.build_image(config.load_guest_spec(args.guest))
    print(f"{img.name} {img.hash}\n{img.rootfs}")
    return 0


def cmd_boot(args) -> int:
    from pinrig.guest import qemu
    from pinrig.guest.session import Session, prepare_env
    cmd = args.cmd
    env = prepare_env(args.kernel, with_bins=not args.dry_run)
    if args.dry_run:
        cfg_argv = vm.prepare(env.art, env.boot, env.image,
                              Path(tempfile.mkdtemp(prefix="pinrig-dry-")), env.accel).argv
        print(shlex.join(cfg_argv))
        return 0
    work = Path(tempfile.mkdtemp(prefix="pinrig-boot-", dir=paths.cache_dir()))
    sess = Session(env, work)
    try:
        br = sess.boot()
        if br.status != "ready":
            print(br.console_tail, file=sys.stderr)
            raise RigError(f"boot of {env.spec.name} failed ({br.status}): {br.reason}; "
                           f"console in {work}/console.log")
        sess.upload_bins()
        if not cmd:
            return _interactive(sess)
        line = cmd[0] if len(cmd) == 1 else shlex.join(cmd)
        res = sess.guest.run(line, timeout=args.timeout)
        sys.stdout.write(res.stdout)
        sys.stderr.write(res.stderr)
        return res.rc
    finally:
        sess.close()


def _interactive(sess) -> int:
    """An interactive shell through the system ssh client, pinned to the image's host key."""
    from pinrig import proc
    proc.require("ssh")
    with tempfile.NamedTemporaryFile("w", suffix=".known_hosts", delete=False) as kh:
        kh.write(f"[127.0.0.1]:{sess.machine.ssh_port} {sess.env.image.host_key_pub}\n")
    print(f"rig: guest shell (console log: {sess.machine.console_log}); exit to power off",
          file=sys.stderr)
    return subprocess.call(["ssh", "-i", str(sess.env.image.ssh_key), "-p",
                            str(sess.machine.ssh_port), "-o", f"UserKnownHostsFile={kh.name}",
                            "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes",
                            "root@127.0.0.1"])


def cmd_run(args) -> int:
    from pinrig.runs.runner import default_jobs, run_suite
    echo = (lambda *_a, **_k: None) if args.json else print
    pool = None
    if args.hosts:
        from pinrig.fleet.pool import load_pool
        pool = load_pool(args.hosts)         # bad pool: fail before any kernel work
    out = run_suite(args.kernel, args.suite, out=Path(args.out) if args.out else None,
                    seed=args.seed, resume=Path(args.resume) if args.resume else None,
                    junit=Path(args.junit) if args.junit else None, echo=echo,
                    repeat=args.repeat,
                    jobs=args.jobs if pool is not None else (args.jobs or default_jobs()),
                    hosts=pool)
    if args.json:
        print(json.dumps({"run": str(out.run.path), "manifest": out.run.manifest,
                          "cases": [v.to_dict() for v in out.verdicts]}, indent=2))
    else:
        print((out.run.path / "summary.txt").read_text())
    return out.exit_code


def cmd_hosts_check(args) -> int:
    from pinrig.fleet.pool import load_pool
    from pinrig.fleet.remote import check_pool, format_checks
    from pinrig.runs.runner import default_jobs
    pool = load_pool(args.pool)
    checks = check_pool(pool, args.jobs, local_jobs=default_jobs())
    if args.json:
        print(json.dumps({"pool": pool.name, "hosts": [c.to_dict() for c in checks]}, indent=2))
    else:
        sys.stdout.write(format_checks(checks))
    bad = [c.name for c in checks if not c.usable]
    if bad:
        print(f"rig: error: unusable host(s) in pool {pool.name}: {', '.join(bad)}",
              file=sys.stderr)
        return 2
    return 0


def cmd_oops(args) -> int:
    from pinrig import oops
    return oops.main((["--json"] if args.json else []) + args.logs)


def cmd_bench(args) -> int:
    from pinrig.guest.session import prepare_env
    from pinrig.runs.bench import bench_boot
    env = prepare_env(args.kernel, with_bins=False)
    echo = (lambda *_a, **_k: None) if args.json else print
    r = bench_boot(env, repeat=args.repeat, echo=echo)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print(f"boot-to-ready, {r['kernel']} ({r['release']}), accel {r['accel']}, "
              f"median of {r['repeat']}:\n  raw QEMU (trivial init): {r['raw_qemu_median_s']:.2f}s\n"
              f"  rig (init ready + ssh):  {r['rig_median_s']:.2f}s\n  ratio: {r['ratio']:.2f}")
    return 0


def cmd_export(args) -> int:
    from pinrig.results import kcidb
    data = kcidb.export(Path(args.result_dir))
    kcidb.validate(data)
    text = json.dumps(data, indent=2) + "\n"
    if args.output:
        from pinrig.results.rundir import atomic_write
        atomic_write(Path(args.output), text)
        print(f"rig: KCIDB v{kcidb.SCHEMA[0]}.{kcidb.SCHEMA[1]}: {len(data['tests'])} tests, "
              f"{len(data['issues'])} issues → {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_bisect(args) -> int:
    from pinrig.runs import bisect
    echo = (lambda *_a, **_k: None) if args.json else (lambda *a, **k: print(*a, file=sys.stderr))
    res = bisect.run_bisect(args.kernel, args.suite, args.case, repeat=args.repeat,
                            out=Path(args.out) if args.out else None, old=args.old, new=args.new,
                            echo=echo)
    print(json.dumps(res.to_dict(), indent=2) if args.json else res.text())
    return 0 if res.first_new else 1


def cmd_kselftest(args) -> int:
    from pinrig.cases import kselftest
    echo = (lambda *_a, **_k: None) if args.json else (lambda *a, **k: print(*a, file=sys.stderr))
    res = kselftest.run(args.kernel, tests=args.test.split(","), filesystems=args.fs.split(","),
                        out=Path(args.out) if args.out else None, echo=echo)
    print(json.dumps(res.to_dict(), indent=2) if args.json else res.text())
    return 1 if res.failed else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rig", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=f"pinrig {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("kernels", help="list kernel specs and cached artifacts")
    s.set_defaults(func=cmd_kernels)

    s = sub.add_parser("build", help="fetch/build a kernel artifact, print its path")
    s.add_argument("kernel")
    s.add_argument("--refresh", action="store_true", help="re-resolve the newest package version")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_build)

    s = sub.add_parser("bisect", help="find the patch of a series that changes a case's verdict")
    s.add_argument("kernel", help="a source kernel spec with a series")
    s.add_argument("--suite", required=True)
    s.add_argument("--case", required=True, help="case id, e.g. ibverbs-pin/ext4/shared")
    s.add_argument("--repeat", type=int, default=1, help="attempts per step (flaky cases)")
    s.add_argument("--old", help="outcome without the series (default: measured), "
                                 "e.g. ok, refused:EFAULT, crash:TITLE")
    s.add_argument("--new", help="outcome with the whole series (default: measured)")
    s.add_argument("--out", help="directory for the steps (default results/bisect-…)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_bisect)

    s = sub.add_parser("kselftest", help="GUP selftests (gup_longterm, gup_test) of a source "
                                         "kernel's own tree, in the guest on ext4/xfs/tmpfs")
    s.add_argument("kernel", help="a source kernel spec")
    s.add_argument("--test", default="gup_longterm,gup_test")
    s.add_argument("--fs", default="ext4,xfs,tmpfs")
    s.add_argument("--out", help="results directory (default results/kselftest-…)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_kselftest)

    s = sub.add_parser("image", help="build (or reuse) the guest image")
    s.add_argument("guest", nargs="?", default="bookworm")
    s.set_defaults(func=cmd_image)

    s = sub.add_parser("boot", help="boot a kernel; run CMD in the guest (or a shell)")
    s.add_argument("kernel")
    s.add_argument("--dry-run", action="store_true", help="print the QEMU command line only")
    s.add_argument("--timeout", type=float, default=600, help="seconds for CMD (default 600)")
    s.add_argument("cmd", nargs="*", help="-- CMD… (everything after --)")
    s.set_defaults(func=cmd_boot)

    s = sub.add_parser("run", help="run a suite of cases on a kernel")
    s.add_argument("kernel")
    s.add_argument("--suite", required=True)
    s.add_argument("--out", help="results directory (default results/<run-id>)")
    s.add_argument("--junit", help="also write JUnit XML here")
    s.add_argument("--seed", type=int, help="data pattern seed (default: the suite's)")
    s.add_argument("--repeat", type=int, help="run every case N times (default: the suite's)")
    s.add_argument("--jobs", type=int, help="guests at once (default: from cores and memory; "
                   "with --hosts: per host)")
    s.add_argument("--hosts", metavar="POOL", help="shard the cases over a host pool "
                   "(configs/hosts/POOL.yaml or a path)")
    s.add_argument("--resume", metavar="DIR", help="continue an interrupted run in DIR")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("hosts", help="host pools for sharded runs")
    hsub = s.add_subparsers(dest="what", required=True)
    h = hsub.add_parser("check", help="connect to each host of POOL; report what is missing")
    h.add_argument("pool", metavar="POOL")
    h.add_argument("--jobs", type=int, help="guests per host to check memory for")
    h.add_argument("--json", action="store_true")
    h.set_defaults(func=cmd_hosts_check)

    s = sub.add_parser("oops", help="console logs → crash reports")
    s.add_argument("--json", action="store_true")
    s.add_argument("logs", nargs="+", metavar="LOG")
    s.set_defaults(func=cmd_oops)

    s = sub.add_parser("export", help="export a results directory (kcidb)")
    esub = s.add_subparsers(dest="format", required=True)
    e = esub.add_parser("kcidb", help="KCIDB JSON (schema v5.3), validated before writing")
    e.add_argument("result_dir", metavar="RESULT_DIR")
    e.add_argument("-o", "--output", help="write here instead of stdout")
    e.set_defaults(func=cmd_export)

    s = sub.add_parser("bench", help="benchmarks")
    bsub = s.add_subparsers(dest="what", required=True)
    b = bsub.add_parser("boot", help="boot-to-ready: rig vs raw QEMU, same kernel")
    b.add_argument("kernel")
    b.add_argument("--repeat", type=int, default=3)
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench)
    from pinrig.cli import results as cli_results  # compare / repro / nightly
    cli_results.register(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    guest_cmd = None
    if "--" in argv and "boot" in argv[:argv.index("--")]:
        # `rig boot K [opts] -- CMD…`: everything after -- belongs to the guest, options included
        i = argv.index("--")
        argv, guest_cmd = argv[:i], argv[i + 1:]
    args = parser.parse_args(argv)
    if guest_cmd is not None:
        args.cmd = guest_cmd
    vm.install_signal_handlers()
    try:
        return args.func(args)
    except RigError as e:
        if args.debug:
            raise
        print(f"rig: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        vm.kill_all()
        print("rig: interrupted; QEMU stopped, finished cases are on disk", file=sys.stderr)
        return 130
