"""`rig run` (a suite on a kernel), `rig oops` (console logs → reports), `rig export`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from pinrig.cli import kernelarg


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
                    hosts=pool, cold=args.cold, symbolize=args.symbolize,
                    fuzz=args.fuzz, rev=args.rev)
    if args.json:
        print(json.dumps({"run": str(out.run.path), "manifest": out.run.manifest,
                          "cases": [v.to_dict() for v in out.verdicts]}, indent=2))
    else:
        print((out.run.path / "summary.txt").read_text())
    return out.exit_code


def cmd_oops(args) -> int:
    from pinrig import oops
    extra = (["--vmlinux", args.vmlinux] if args.vmlinux else []) + \
        (["--modules", args.modules] if args.modules else [])
    return oops.main((["--json"] if args.json else []) + extra + args.logs)


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


def register(sub) -> None:
    s = sub.add_parser("run", help="run a suite of cases on a kernel")
    kernelarg.add(s)
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
    s.add_argument("--cold", action="store_true", help="boot every guest (default: start them "
                   "from a saved ready state of this kernel and image, made once)")
    s.add_argument("--symbolize", action="store_true", help="file:line for report frames of a "
                   "Debian kernel: fetch its -dbg package once (about 0.9 GB) into the cache "
                   "(source and --kernel builds are symbolized from their own vmlinux)")
    s.add_argument("--fuzz", type=int, help="source kernel: apply its series with GNU patch "
                                            "fuzz N (opt-in; recorded as warnings)")
    s.add_argument("--rev", type=int, help="source kernel: the revision of its posted series")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("oops", help="console logs → crash reports")
    s.add_argument("--json", action="store_true")
    s.add_argument("--vmlinux", metavar="FILE", help="symbolize frames: file:line (and inlined "
                   "callers) from this vmlinux with debug info")
    s.add_argument("--modules", metavar="DIR", help="symbolize module frames from the .ko "
                   "(or .ko.debug) files under DIR")
    s.add_argument("logs", nargs="+", metavar="LOG")
    s.set_defaults(func=cmd_oops)

    s = sub.add_parser("export", help="export a results directory (kcidb)")
    esub = s.add_subparsers(dest="format", required=True)
    e = esub.add_parser("kcidb", help="KCIDB JSON (schema v5.3), validated before writing")
    e.add_argument("result_dir", metavar="RESULT_DIR")
    e.add_argument("-o", "--output", help="write here instead of stdout")
    e.set_defaults(func=cmd_export)
