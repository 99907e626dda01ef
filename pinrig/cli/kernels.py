"""Kernels and the guest image: `rig kernels`, `rig build`, `rig image`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from pinrig import config, paths
from pinrig.cli import kernelarg
from pinrig.errors import RigError, UserError
from pinrig.guest import image as guest
from pinrig.kernels import artifact
from pinrig.kernels import fetch as kernel


def cmd_kernels(args) -> int:
    cached: dict[str, list[str]] = {}    # kernel name -> "release [hash]" of each cached build
    for name, release, h, _dir in artifact.cached_artifacts():
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
    spec = config.override_spec(config.load_kernel_spec(args.kernel), args.fuzz, args.rev)
    art = kernel.fetch(spec, refresh=args.refresh)
    guest.boot_files(art)
    from pinrig.runs.runner import series_applied
    ser = series_applied(art.dir)
    if ser and not args.json:
        rev = f" v{ser['revision']}" if ser.get("revision") else ""
        print(f"rig: series {ser.get('name')}{rev} applied with {ser.get('method')}",
              file=sys.stderr)
        for w in ser.get("warnings") or []:
            print(f"rig: warning: {w}", file=sys.stderr)
    if args.json:
        print(json.dumps(art.to_dict(), indent=2))
    else:
        print(f"{art.name} {art.release} {art.hash}\n{art.dir}")
    return 0


def cmd_image(args) -> int:
    img = guest.build_image(config.load_guest_spec(args.guest))
    print(f"{img.name} {img.hash}\n{img.rootfs}")
    return 0


def cmd_gc(args) -> int:
    from pinrig import cachegc
    if args.older_than < 0 or (args.max_size is not None and args.max_size < 0):
        raise UserError("--older-than and --max-size must not be negative")
    results = [Path(r) for r in (args.results or [str(paths.RESULTS_DIR)])]
    entries = cachegc.scan()
    p = cachegc.plan(entries, cachegc.references(results), older_than_days=args.older_than,
                     max_size=None if args.max_size is None else int(args.max_size * 2**30),
                     include_referenced=args.include_referenced, busy=cachegc.busy_dirs())
    errors = cachegc.execute(p) if args.delete else []
    print(cachegc.format_plan(p, deleting=args.delete))
    for e in errors:
        print(f"rig: gc: could not remove {e}", file=sys.stderr)
    return 2 if errors else 0


def register(sub) -> None:
    s = sub.add_parser("kernels", help="list kernel specs and cached artifacts")
    s.set_defaults(func=cmd_kernels)

    s = sub.add_parser("build", help="fetch/build a kernel artifact, print its path")
    kernelarg.add(s)
    s.add_argument("--refresh", action="store_true", help="re-resolve the newest package version")
    s.add_argument("--fuzz", type=int, help="apply the series with GNU patch fuzz N (opt-in; "
                                            "every offset and fuzz is recorded as a warning)")
    s.add_argument("--rev", type=int, help="the revision of a posted series to use")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_build)

    s = sub.add_parser("image", help="build (or reuse) the guest image")
    s.add_argument("guest", nargs="?", default="bookworm")
    s.set_defaults(func=cmd_image)

    s = sub.add_parser("gc", help="show (and with --delete remove) stale cache entries")
    s.add_argument("--older-than", type=float, default=30.0, metavar="DAYS",
                   help="entries unused this long go (default 30)")
    s.add_argument("--max-size", type=float, metavar="GIB",
                   help="also remove least recently used entries until the cache fits")
    s.add_argument("--results", action="append", metavar="DIR",
                   help="results directories whose manifests protect what they name "
                        "(default: results/; repeatable)")
    s.add_argument("--include-referenced", action="store_true",
                   help="also remove entries kept results still name")
    s.add_argument("--delete", action="store_true", help="remove (default: dry run)")
    s.set_defaults(func=cmd_gc)
