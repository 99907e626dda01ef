"""Source kernels: `rig bisect` (which patch flips a verdict), `rig kselftest`."""
from __future__ import annotations

import json
import sys
from pathlib import Path


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


def register(sub) -> None:
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
