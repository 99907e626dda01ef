"""Source kernels: `rig series` (what a posted series holds, whether it applies), `rig bisect`
(which patch flips a verdict), `rig kselftest`."""
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


def series_dict(series, applied=None) -> dict:
    return {"name": series.name, "origin": series.origin, "revision": series.revision,
            "title": series.title, "digest": series.digest, "notes": list(series.notes),
            "revisions": [{"version": v, "patches": n, "total": t} for v, n, t in series.revisions],
            "patches": [{"name": p.name, "subject": p.subject, "author": p.author, "date": p.date,
                         "msgid": p.msgid, "origin": p.origin, "files": p.touched(),
                         "trailers": list(p.trailers)} for p in series.patches],
            **({"trial": applied} if applied is not None else {})}


def series_text(series, applied=None) -> str:
    rev = f" v{series.revision}" if series.revision else ""
    out = [f"series {series.name}{rev}: {len(series.patches)} patch(es)"
           + (f" — {series.title}" if series.title else ""), f"  from {series.origin}"]
    out += [f"  {n}" for n in series.notes]
    w = max(len(p.name) for p in series.patches)
    for k, p in enumerate(series.patches, 1):
        who = f"  {p.author}" if p.author else ""
        out.append(f"  {k:>2}. {p.name:<{w}}{who}".rstrip())
        out.append(f"      {', '.join(p.touched())}")
        out += [f"      {t}" for t in p.trailers]
    if applied is not None:
        tree, warnings = applied["tree"], applied["warnings"]
        how = " with git am -3" if applied.get("method") == "git am -3" else \
            (f" with fuzz {applied['fuzz']}" if applied["fuzz"] else " strictly")
        out.append(f"applies to {tree}{how}"
                   + (f", {len(warnings)} warning(s):" if warnings else ""))
        out += [f"  warning: {x}" for x in warnings]
    return "\n".join(out)


def cmd_series(args) -> int:
    from pinrig.errors import UserError
    from pinrig.kernels.source import apply
    from pinrig.kernels.source import series as S
    text = args.series
    if not text.startswith(("lore:", "git:")):
        text = str(Path(text).expanduser().resolve())
    if args.mbox and not text.startswith("lore:"):
        raise UserError("--mbox: only with lore:MESSAGE-ID (a local copy of that thread)")
    s = S.load_series(text, Path(args.git).resolve() if args.git else None, rev=args.rev,
                      local_mbox=args.mbox, refresh=args.refresh)
    applied = None
    if args.tree:
        tree = Path(args.tree).resolve()
        if not tree.is_dir():
            raise UserError(f"--tree {args.tree}: not a directory")
        import tempfile

        from pinrig import proc
        is_git = not args.fuzz and (tree / ".git").exists()
        with tempfile.TemporaryDirectory(prefix="pinrig-series-") as tmp:
            if is_git:          # a git tree: as the build would, `git am -3` onto its HEAD
                head = proc.run(["git", "-C", tree, "rev-parse", "--verify", "HEAD^{commit}"],
                                what=f"git rev-parse HEAD in {tree}").stdout.strip()
                notes = apply.trial_git(tree, head, s, Path(tmp) / "t", f"{tree} HEAD {head[:12]}")
            else:
                notes = apply.trial(tree, s, Path(tmp) / "t", str(tree), fuzz=args.fuzz)
        applied = {"tree": str(tree), "fuzz": args.fuzz,
                   "method": "git am -3" if is_git else f"patch --fuzz={args.fuzz}",
                   "warnings": [n if isinstance(n, str) else n.text() for n in notes],
                   "hunks": [n.to_dict() for n in notes if not isinstance(n, str)]}
    elif args.fuzz:
        raise UserError("--fuzz: only with --tree DIR (or on rig build/run)")
    print(json.dumps(series_dict(s, applied), indent=2) if args.json else series_text(s, applied))
    return 0


def register(sub) -> None:
    s = sub.add_parser("series", help="show what a posted series holds (mbox, .eml dir, quilt, "
                                      "lore:MESSAGE-ID): revision, patches, trailers; --tree: "
                                      "does it apply")
    s.add_argument("series", help="an mbox, a directory of .eml, a quilt dir, a .patch, "
                                  "lore:MESSAGE-ID or git:A..B (with --git)")
    s.add_argument("--rev", type=int, help="the revision to use (default: newest complete)")
    s.add_argument("--mbox", help="lore: a local copy of the thread, used when it cannot be "
                                  "fetched")
    s.add_argument("--refresh", action="store_true", help="lore: fetch again even when cached")
    s.add_argument("--git", metavar="REPO", help="the repository of a git:A..B series")
    s.add_argument("--tree", metavar="DIR", help="try applying it to this source tree (on a "
                                                 "copy of the files it touches; DIR is not written;"
                                                 " a git tree: git am -3 onto its HEAD)")
    s.add_argument("--fuzz", type=int, default=0, help="with --tree: GNU patch fuzz (opt-in)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_series)

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
