"""`rig compare`, `rig repro`, `rig nightly`: the commands built on results directories.

Registered into the main parser by pinrig.cli (RigError → exit 2 there). Progress goes to stderr
so stdout carries only the report (text, --markdown or --json).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional

from pinrig import config, paths
from pinrig.cli import kernelarg
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

REPRO_CMD_ONLY = ("timeout", "expect_title", "cold", "junit")
REPRO_BUILD_ONLY = ("dynamic", "cflags", "test_module")
REPRO_DIR_ONLY = ("case", "mirror")


def cmd_repro(args) -> int:
    """`rig repro RESULT_DIR` replays recorded cases; `rig repro KERNEL --c FILE|--cmd CMD`
    runs a reproducer the user brings; `rig repro DIR` of such a run runs it again."""
    import json

    from pinrig.results.compare import load_run
    from pinrig.results.rundir import read_manifest
    from pinrig.runs import repro
    if args.c_file is not None or args.cmd is not None:
        _only(args, REPRO_DIR_ONLY, "only for `rig repro RESULT_DIR`, not with --c/--cmd")
        return _repro_cmd(args)
    if args.repro_kernel_path or args.modules:
        raise UserError("--kernel/--modules: only with --c FILE or --cmd CMD")
    if not args.kernel:
        raise UserError("name a results directory to replay, or a kernel with --c FILE or "
                        "--cmd CMD")
    if read_manifest(Path(args.kernel)).get("kind") == "repro":
        _only(args, REPRO_DIR_ONLY + REPRO_BUILD_ONLY, "not when running a recorded reproducer "
              "again (it is rebuilt as recorded)")
        return _replay_reprocmd(args)
    _only(args, REPRO_CMD_ONLY + REPRO_BUILD_ONLY, "only with --c FILE or --cmd CMD")
    run = load_run(Path(args.kernel))
    plan = repro.plan_repro(run, args.case, mirror=args.mirror)
    out = Path(args.out) if args.out else repro.default_out(run)
    _stderr(f"rig: replaying {', '.join(plan.cases)} from {run.path} "
            f"({'='.join(plan.package)}, seed {plan.seed})")
    rep = repro.run_repro(plan, out, attempts=_attempts(args), stop_after=args.stop_after,
                          echo=_stderr)
    sys.stdout.write(json.dumps(rep.to_dict(), indent=2) + "\n" if args.json
                     else repro.format_text(rep))
    return rep.exit_code


def _only(args, names: tuple, why: str) -> None:
    for name in names:
        if getattr(args, name) not in (None, False):
            raise UserError(f"--{name.replace('_', '-')}: {why}")


def _attempts(args, default: int = 3) -> int:
    n = default if args.attempts is None else args.attempts
    if n < 1:
        raise UserError("--attempts: must be at least 1")
    return n


def _replay_reprocmd(args) -> int:
    """`rig repro DIR` on a directory written by `rig repro KERNEL --c/--cmd`: the same
    reproducer (rebuilt from the source kept there), kernel, timeout and expected title;
    --attempts, --timeout, --expect-title and --cold override."""
    from pinrig.results.rundir import read_manifest
    from pinrig.runs import reprocmd
    src = Path(args.kernel)
    rec = reprocmd.recorded(src, read_manifest(src))
    try:
        _stderr(f"rig: running the reproducer of {src} again on {rec.kernel}")
        args.attempts = _attempts(args, rec.attempts)
        timeout = rec.timeout if args.timeout is None else _timeout(args)
        title = rec.expect_title if args.expect_title is None else _title(args)
        return _run_reprocmd(args, rec.repro, rec.kernel, timeout, title, rec.test_module,
                             args.cold, build=rec.build, recorded_release=rec.release)
    finally:
        reprocmd.discard(rec.repro)


def _timeout(args) -> float:
    timeout = 300.0 if args.timeout is None else args.timeout
    if timeout <= 0:
        raise UserError("--timeout: must be more than 0 seconds")
    return timeout


def _title(args) -> Optional[str]:
    if args.expect_title is not None and not args.expect_title.strip():
        raise UserError("--expect-title: empty title")
    return args.expect_title


def _repro_cmd(args) -> int:
    """Build (or take) the reproducer, prepare the kernel environment, run the attempts."""
    from pinrig import config
    from pinrig.runs import reprocmd
    args.attempts = _attempts(args)
    timeout, title = _timeout(args), _title(args)
    if args.c_file is None and (args.dynamic or args.cflags):
        raise UserError("--dynamic/--cflags: only with --c FILE")
    ns = argparse.Namespace(kernel=args.kernel, kernel_path=args.repro_kernel_path,
                            modules=args.modules)
    kernelarg.resolve(ns)                       # a name, a spec file or a built kernel's path
    args.kernel = ns.kernel
    config.load_kernel_spec(args.kernel)        # a typo fails before any compile or boot
    out = Path(args.out) if args.out else None
    if out is not None:
        reprocmd.check_out(out)
    if args.c_file is not None:
        rep_src = reprocmd.build_c(args.c_file, static=not args.dynamic, cflags=args.cflags or "")
    else:
        rep_src = reprocmd.from_cmd(args.cmd)
    try:
        return _run_reprocmd(args, rep_src, args.kernel, timeout, title,
                             args.test_module, args.cold,
                             build={"cflags": args.cflags, "dynamic": args.dynamic},
                             argv=_repro_argv(args))
    finally:
        reprocmd.discard(rep_src)


def _run_reprocmd(args, rep_src, kernel: str, timeout: float, expect_title: Optional[str],
                  test_module: bool, cold: bool, build: dict, argv: Optional[list] = None,
                  recorded_release: Optional[str] = None) -> int:
    import json

    from pinrig.runs import reprocmd
    if args.stop_after is not None and args.stop_after < 1:
        raise UserError("--stop-after: must be at least 1")
    out = Path(args.out) if args.out else None
    if out is not None:
        reprocmd.check_out(out)
    env = _repro_env(kernel, test_module, cold, getattr(args, "symbolize", False))
    if recorded_release and env.art.release != recorded_release:
        _stderr(f"rig: warning: {kernel} is now {env.art.release}; the recorded run had "
                f"{recorded_release}")
    out = out or reprocmd.default_out(env.spec.name, rep_src)
    rep = reprocmd.run_reprocmd(env, rep_src, out, attempts=args.attempts, timeout=timeout,
                                stop_after=args.stop_after, expect_title=expect_title,
                                argv=argv, echo=_stderr, build=build,
                                junit=Path(args.junit) if args.junit else None)
    sys.stdout.write(json.dumps(rep.to_dict(), indent=2) + "\n" if args.json
                     else reprocmd.format_text(rep))
    return rep.exit_code


def _repro_argv(args) -> list:
    """The command line that runs this reproducer again (recorded in the manifest and JUnit)."""
    argv = ["rig", "repro", args.kernel]
    # FLAG=VALUE: a value starting with '-' (--cflags=-DX) must not read as an option
    argv.append(f"--c={Path(args.c_file).resolve()}" if args.c_file else f"--cmd={args.cmd}")
    argv.append(f"--attempts={args.attempts}")
    for flag, val in (("--timeout", args.timeout), ("--stop-after", args.stop_after),
                      ("--expect-title", args.expect_title), ("--cflags", args.cflags)):
        if val is not None:
            argv.append(f"{flag}={val}")
    for flag, on in (("--cold", args.cold), ("--dynamic", args.dynamic),
                     ("--test-module", args.test_module),
                     ("--symbolize", getattr(args, "symbolize", False))):
        if on:
            argv.append(flag)
    return argv


def _repro_env(kernel: str, test_module: bool, cold: bool, symbolize: bool = False):
    """The prepared kernel environment the attempts run on (a kernel name or spec path today;
    `--kernel PATH` resolves to the same Environment). Reports are symbolized as in `rig run`:
    from the vmlinux a source or --kernel build keeps, the test module, and with --symbolize
    a Debian kernel's -dbg package."""
    from pinrig.cases import kmod
    from pinrig.guest.session import prepare_env
    from pinrig.kernels.debug import symbolizer_for
    env = prepare_env(kernel, with_bins=False, cold=cold)
    if test_module:
        env.test_module = kmod.test_module(env.spec, env.art)
    env.symbolizer = symbolizer_for(env.art, env.test_module, symbolize, env.spec)
    return env


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

    s = sub.add_parser("repro", help="replay recorded case(s) of a results directory exactly, "
                       "or run a reproducer (--c FILE / --cmd CMD) on a kernel N times")
    s.add_argument("kernel", nargs="?", metavar="RESULT_DIR|KERNEL",
                   help="a results directory to replay; with --c/--cmd: the kernel (a spec "
                   "name, a spec file, or the path of a built kernel)")
    # (not dest kernel_path: the CLI resolves that before any command, and a RESULT_DIR is
    # not a kernel; _repro_cmd resolves it through kernelarg.resolve itself)
    s.add_argument("--kernel", dest="repro_kernel_path", metavar="PATH",
                   help="--c/--cmd: a kernel you built (bzImage, build directory or source tree; "
                   "as for `rig run --kernel`)")
    s.add_argument("--modules", metavar="DIR", help="with --kernel: its installed modules")
    what = s.add_mutually_exclusive_group()
    what.add_argument("--c", dest="c_file", metavar="FILE", help="a C reproducer: compiled on "
                      "the host (static), run in a fresh guest per attempt")
    what.add_argument("--cmd", metavar="CMD", help="a shell command line to run in a fresh guest "
                      "per attempt")
    s.add_argument("--case", action="append", metavar="CASE",
                   help="RESULT_DIR: case id to replay (repeatable; default: the first case that "
                   "was not ok/refused/skipped)")
    s.add_argument("--attempts", type=int, help="attempts (default 3; a recorded reproducer: "
                   "as recorded)")
    s.add_argument("--stop-after", type=int, metavar="K",
                   help="stop once every case (the reproducer) reproduced K times")
    s.add_argument("--mirror", metavar="URL", help="RESULT_DIR: Debian mirror for the pinned "
                   "packages, e.g. an archive snapshot once the version left the suite")
    s.add_argument("--timeout", type=float, metavar="S", help="--c/--cmd: seconds per attempt "
                   "before a still-running reproducer is called hung (default 300)")
    s.add_argument("--expect-title", metavar="TITLE", help="--c/--cmd: reproduced only when a "
                   "kernel report has this title (syzkaller-style; other crashes are listed)")
    s.add_argument("--cold", action="store_true", help="--c/--cmd: boot every guest (default: "
                   "resume the saved ready state of this kernel and image)")
    s.add_argument("--dynamic", action="store_true", help="--c: link against the host's "
                   "libraries (the bookworm guest has the same) instead of -static")
    s.add_argument("--cflags", metavar="FLAGS", help="--c: extra compiler/linker flags, "
                   "written --cflags='-DFOO -lrt'")
    s.add_argument("--test-module", action="store_true", help="--c/--cmd: load the rig's test "
                   "module (pinrig_oops.ko, Debian kernels) before the reproducer")
    s.add_argument("--symbolize", action="store_true", help="--c/--cmd: file:line for report "
                   "frames of a Debian kernel (its -dbg package, about 0.9 GB, fetched once; "
                   "source and --kernel builds are symbolized from their own vmlinux)")
    s.add_argument("--junit", metavar="FILE", help="--c/--cmd: also write the JUnit XML here")
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
