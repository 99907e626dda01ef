"""The `rig` command line. Errors are caught once here and mapped to exit codes:
0 all cases passed · 1 some case failed · 2 the rig could not do its job.

One module per command group registers its subcommands: kernels.py (kernels, build, image),
guest.py (boot, bench), run.py (run, oops, export), results.py (compare, repro, nightly),
source.py (bisect, kselftest), fleet.py (hosts).
"""
from __future__ import annotations

import argparse
import sys

from pinrig import __version__, interrupt
from pinrig.cli import fleet, guest, kernelarg, kernels, results, run, source
from pinrig.errors import RigError
from pinrig.guest import vm
from pinrig.sanitize import one_line

GROUPS = (kernels, source, guest, run, fleet, results)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rig", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=f"pinrig {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
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
    interrupt.reset()               # a new command starts unstopped (nightly runs several in-process)
    vm.install_signal_handlers()
    try:
        kernelarg.resolve(args)
        return args.func(args)
    except RigError as e:
        if args.debug:
            raise
        print(f"rig: error: {one_line(e, 2000)}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as e:
        # not the rig's own error, but still not "a case failed": exit 2 with one line
        if args.debug:
            raise
        print(f"rig: error: {one_line(_describe(e), 2000)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        vm.kill_all()
        print("rig: interrupted; QEMU stopped, finished cases are on disk", file=sys.stderr)
        return 130


def _describe(e: BaseException) -> str:
    """One line for an unexpected OSError/ValueError (which file, what went wrong)."""
    if isinstance(e, UnicodeDecodeError):
        return f"input is not UTF-8 text ({e.reason} at byte {e.start}); use --debug for where"
    if isinstance(e, OSError) and e.filename:
        return f"{e.filename}: {e.strerror or e}"
    return f"{type(e).__name__}: {e}"
