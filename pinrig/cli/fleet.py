"""Host pools: `rig hosts check`."""
from __future__ import annotations

import json
import sys

from pinrig.errors import InfraError, UserError


def cmd_hosts_check(args) -> int:
    from pinrig.fleet.checks import check_pool, format_checks
    from pinrig.fleet.pool import load_pool
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


def cmd_hosts_gc(args) -> int:
    from pinrig.fleet.connection import HostLost
    from pinrig.fleet.pool import load_pool
    from pinrig.fleet.shipping import gc_host
    if args.older_than < 0:
        raise UserError("--older-than must not be negative")
    pool = load_pool(args.pool)
    failed = 0
    for host in pool.hosts:
        try:
            found = gc_host(host, args.older_than, args.delete)
        except (HostLost, InfraError) as e:
            print(f"rig: hosts gc: {e}", file=sys.stderr)
            failed += 1
            continue
        verb = "deleted" if args.delete else "would delete"
        for kb, path in found:
            print(f"{host.name}: {verb} {kb / 1024:.1f} MiB {path}")
        print(f"{host.name}: {len(found)} entries, {sum(k for k, _ in found) / 1024:.1f} MiB"
              + ("" if args.delete else "; --delete to remove them"))
    return 2 if failed else 0


def register(sub) -> None:
    s = sub.add_parser("hosts", help="host pools for sharded runs")
    hsub = s.add_subparsers(dest="what", required=True)
    h = hsub.add_parser("check", help="connect to each host of POOL; report what is missing")
    h.add_argument("pool", metavar="POOL")
    h.add_argument("--jobs", type=int, help="guests per host to check memory for")
    h.add_argument("--json", action="store_true")
    h.set_defaults(func=cmd_hosts_check)

    h = hsub.add_parser("gc", help="shipped objects and run directories on the pool's hosts "
                                   "unused for DAYS (dry run unless --delete)")
    h.add_argument("pool", metavar="POOL")
    h.add_argument("--older-than", type=int, default=14, metavar="DAYS")
    h.add_argument("--delete", action="store_true")
    h.set_defaults(func=cmd_hosts_gc)
