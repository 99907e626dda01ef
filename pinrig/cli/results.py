"""`rig compare`, `rig repro`, `rig nightly`: the commands built on results directories.

Registered into the main parser by pinrig.cli (RigError → exit 2 there). Progress goes to stderr
so stdout carries only the report (text, --markdown or --json).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

from pinrig import config, paths
from pinrig.errors import UserError


def _stderr(*a, **_k) -> None:
    print(*a, file=sys.stderr, flush=True)


def _label(kernel_arg: str) -> str:
    p = Path(kernel_arg)
    name = p.stem if p.suffix in (".yaml", ".yml") else kernel_arg
    if config.is_kernel_path(kernel_arg):
        name = config.image_spec(kernel_arg).name
    return name.replace("/", "_")


# ---------------------------------------------------------------------------- compare

def _side(args, which: str, kernel_arg: str, reuse, out_dir, suite: Optional[str], echo):
    from pinrig.results.compare import load_run
    if reuse:
        run = load_run(Path(reuse))
        rn = run.suite_name
        if suite and rn and rn != suite:
            raise UserError(f"--reuse-{which} {reuse}: that run is of suite {rn}, not {suite}")
        kn = run.kernel.get("name")
        if kn and kn != _label(kernel_arg):
            echo(f"rig: warning: --reuse-{which} {reuse} ran kernel {kn}; labelled "
                 f"{kernel_arg} as asked")
        have = int(run.manifest.get("repeat") or 1)
        if args.repeat and args.repeat != have:
            echo(f"rig: warning: --reuse-{which} {reuse} has {have} attempt(s) per case, "
                 f"not {args.repeat}")
        return run
    from pinrig.runs.runner import run_suite
    path = out_dir / f"{which}-{_label(kernel_arg)}"
    if (path / "manifest.json").exists():
        echo(f"rig: {kernel_arg}: continuing the run in {path}")
        run_suite(kernel_arg, args.suite, resume=path, echo=echo)
    else:
        run_suite(kernel_arg, args.suite, out=path, repeat=args.repeat, echo=echo)
    return load_run(path)


def cmd_compare(args) -> int:
    from pinrig import config
    from pinrig.results import compare
    from pinrig.results import html as report_html
    from pinrig.results.rundir import atomic_write
    if not args.suite and not (args.reuse_a and args.reuse_b):
        raise UserError("--suite is required unless both sides are reused "
                        "(--reuse-a and --reuse-b)")
    if args.repeat is not None and args.repeat < 1:
        raise UserError("--repeat: must be at least 1")
    suite = config.load_suite(args.suite).name if args.suite else None
    if not (args.reuse_a and args.reuse_b):
        for k in (args.kernel_a, args.kernel_b):
            config.load_kernel_spec(k)          # a typo fails before the first boot
    need_runs = not (args.reuse_a and args.reuse_b)
    out_dir = None
    if args.out:
        out_dir = Path(args.out)
    elif need_runs:
        out_dir = paths.RESULTS_DIR / (f"compare-{time.strftime('%Y%m%d-%H%M%S')}-"
                                       f"{_label(args.kernel_a)}-vs-{_label(args.kernel_b)}")
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    run_a = _side(args, "a", args.kernel_a, args.reuse_a, out_dir, suite, _stderr)
    run_b = _side(args, "b", args.kernel_b, args.reuse_b, out_dir, suite, _stderr)
    cmp = compare.compare_runs(run_a, run_b, args.kernel_a, args.kernel_b)
    text, md, js = compare.format_text(cmp), compare.format_markdown(cmp), compare.format_json(cmp)
    html = report_html.compare_html(cmp)
    if out_dir:
        for name, data in (("compare.txt", text), ("compare.md", md), ("compare.json", js),
                           ("compare.html", html)):
            atomic_write(out_dir / name, data)
    if args.html:
        atomic_write(Path(args.html), html)
    sys.stdout.write(js if args.json else md if args.markdown else text)
    if out_dir:
        _stderr(f"rig: comparison written to {out_dir}/compare.{{txt,md,json,html}}")
    return cmp.exit_code


# ---------------------------------------------------------------------------- repro

def cmd_repro(args) -> int:
    import json

    from pinrig.results.compare import load_run
    from pinrig.runs import repro
    run = load_run(Path(args.result_dir))
    plan = repro.plan_repro(run, args.case, mirror=args.mirror)
    out = Path(args.out) if args.out else repro.default_out(run)
    _stderr(f"rig: replaying {', '.join(plan.cases)} from {run.path} "
            f"({'='.join(plan.package)}, seed {plan.seed})")
    rep = repro.run_repro(plan, out, attempts=args.attempts, stop_after=args.stop_after,
                          echo=_stderr)
    sys.stdout.write(json.dumps(rep.to_dict(), indent=2) + "\n" if args.json
                     else repro.format_text(rep))
    return rep.exit_code


# ---------------------------------------------------------------------------- nightly

def cmd_nightly(args) -> int:
    import json

    from pinrig.results.rundir import atomic_write
    from pinrig.runs import nightly
    plan = nightly.load_plan(args.plan)
    rep = nightly.run_night(plan, root=Path(args.results) if args.results else None,
                            date=args.date, night=args.night, echo=_stderr)
    if args.junit:
        atomic_write(Path(args.junit), (rep.dir / "junit.xml").read_text())
    sys.stdout.write(json.dumps(rep.to_dict(), indent=2) + "\n" if args.json
                     else nightly.format_text(rep))
    return rep.exit_code


# ---------------------------------------------------------------------------- parser

def register(sub) -> None:
    s = sub.add_parser("compare", help="run (or reuse) a suite on two kernels and classify "
                       "the differences; exit 1 when B regresses against A")
    s.add_argument("kernel_a", metavar="KERNEL_A")
    s.add_argument("kernel_b", metavar="KERNEL_B")
    s.add_argument("--suite", help="suite to run on both (required unless both are reused)")
    s.add_argument("--repeat", type=int, default=None, help="attempts per case (default: the suite's repeat, "
                   "usually 1)")
    fmt = s.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the comparison as JSON")
    fmt.add_argument("--markdown", action="store_true", help="print a markdown table")
    s.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    s.add_argument("--reuse-a", metavar="DIR", help="results directory to use for KERNEL_A")
    s.add_argument("--reuse-b", metavar="DIR", help="results directory to use for KERNEL_B")
    s.add_argument("--out", metavar="DIR", help="where the runs and reports go (default "
                   "results/compare-<time>-A-vs-B; an existing one is continued)")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("repro", help="replay recorded case(s) of a results directory exactly")
    s.add_argument("result_dir", metavar="RESULT_DIR")
    s.add_argument("--case", action="append", metavar="CASE",
                   help="case id to replay (repeatable; default: the first case that was not "
                   "ok/refused/skipped)")
    s.add_argument("--attempts", type=int, default=3, help="attempts (default 3)")
    s.add_argument("--stop-after", type=int, metavar="K",
                   help="stop once every case reproduced K times")
    s.add_argument("--mirror", metavar="URL", help="Debian mirror for the pinned packages, "
                   "e.g. an archive snapshot once the version left the suite")
    s.add_argument("--out", metavar="DIR", help="results directory for the attempts")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_repro)

    s = sub.add_parser("nightly", help="run a nightly plan; exit 1 on a new regression")
    s.add_argument("plan", metavar="PLAN", help="plan file (or name in configs/nightly/)")
    s.add_argument("--date", help="night date YYYY-MM-DD (default today)")
    s.add_argument("--night", help="exact night name to run or resume (YYYY-MM-DD[.N])")
    s.add_argument("--results", metavar="DIR", help="nightly root (default the plan's "
                   "`results:` or results/nightly)")
    s.add_argument("--junit", metavar="FILE", help="also copy the night's JUnit here")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_nightly)
