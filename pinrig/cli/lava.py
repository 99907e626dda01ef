"""`rig lava …`: the rig's cases as LAVA jobs (export, validate, run here with lava-run,
submit to a lab, collect a lab's results into a results directory)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _lab(args):
    from pinrig.lava.client import Lab
    token = args.token or os.environ.get("LAVA_TOKEN")
    return Lab(args.url, user=args.user or os.environ.get("LAVA_USER"), token=token)


def cmd_export(args) -> int:
    from pinrig.lava.export import export
    out = Path(args.out) if args.out else None
    if out is None:
        from pinrig import paths
        from pinrig.results.rundir import make_run_id
        out = paths.RESULTS_DIR / "lava" / make_run_id(Path(args.kernel).stem, args.suite)
    res = export(args.kernel, args.suite, out, artifact_url=args.artifact_url, seed=args.seed,
                 jobs=args.jobs, accel=args.accel)
    for j in res.jobs:
        print(j)
    print(f"rig: {len(res.jobs)} LAVA job(s), validated with LAVA's schema; artifacts in "
          f"{out / 'artifacts'}", file=sys.stderr)
    return 0


def cmd_validate(args) -> int:
    from pinrig.lava.export import job_files, load_job
    from pinrig.lava.validate import schema_errors
    files = [f for a in args.jobs for f in job_files(Path(a))]
    errors = schema_errors([load_job(f) for f in files])
    for f, err in zip(files, errors):
        print(f"{f}: {'ok' if err is None else 'refused: ' + err}")
    return 2 if any(e is not None for e in errors) else 0


def cmd_run(args) -> int:
    from pinrig.lava.export import job_files
    from pinrig.lava.local import run_jobs
    from pinrig.lava.results import exit_code
    files = [f for a in args.jobs for f in job_files(Path(a))]
    out = Path(args.out)
    run, verdicts, _runs = run_jobs(files, out, timeout=args.timeout)
    print((run.path / "summary.txt").read_text())
    return exit_code(verdicts)


def cmd_submit(args) -> int:
    from pinrig.lava.export import job_files, load_job
    from pinrig.lava.validate import validate_jobs
    files = [f for a in args.jobs for f in job_files(Path(a))]
    docs = [load_job(f) for f in files]
    validate_jobs(docs, [str(f) for f in files])       # nothing invalid reaches the lab
    lab = _lab(args)
    ids = []
    for f in files:
        got = lab.submit(f.read_text())
        ids += got
        print(f"{f}: {' '.join(got)}", file=sys.stderr)
    print(" ".join(ids))
    return 0


def cmd_collect(args) -> int:
    from pinrig.lava.results import Collected, exit_code, write_run
    lab = _lab(args)
    if args.wait is not None:
        lab.wait(args.job_ids, args.wait, poll=args.poll)
    collected = []
    for jid in args.job_ids:
        state = lab.show(jid)
        if state.state != "Finished":
            from pinrig.errors import UserError
            raise UserError(f"LAVA job {jid} is {state.state or 'in an unknown state'}, not "
                            "finished (use --wait SECONDS)")
        import yaml
        try:
            job = yaml.safe_load(lab.definition(jid))
        except yaml.YAMLError as e:
            from pinrig.errors import InfraError
            raise InfraError(f"LAVA job {jid}: its definition is not YAML: {e}")
        collected.append(Collected(job if isinstance(job, dict) else {}, lab.logs(jid), jid,
                                   lab.where))
    out = Path(args.out) if args.out else None
    if out is None:
        from pinrig import paths
        out = paths.RESULTS_DIR / "lava" / f"collect-{'-'.join(args.job_ids)[:60]}"
    run, verdicts = write_run(out, collected,
                              echo=(lambda *_a, **_k: None) if args.json else print)
    if args.json:
        print(json.dumps({"run": str(run.path), "cases": [v.to_dict() for v in verdicts]},
                         indent=2))
    else:
        print((run.path / "summary.txt").read_text())
    return exit_code(verdicts)


def _lab_args(s) -> None:
    s.add_argument("--url", required=True, help="the lab's XML-RPC endpoint "
                   "(https://HOST/RPC2)")
    s.add_argument("--user", help="LAVA user (default $LAVA_USER)")
    s.add_argument("--token", help="LAVA API token (default $LAVA_TOKEN)")


def register(sub) -> None:
    p = sub.add_parser("lava", help="the cases as LAVA jobs: export, validate, run, submit, "
                       "collect")
    lsub = p.add_subparsers(dest="lava_command", required=True, metavar="ACTION")

    s = lsub.add_parser("export", help="one LAVA job per guest the rig would boot")
    s.add_argument("kernel")
    s.add_argument("--suite", required=True)
    s.add_argument("-o", "--out", help="export directory (default results/lava/<id>)")
    s.add_argument("--artifact-url", help="base URL the lab downloads the artifacts from "
                   "(default file:// of DIR/artifacts: this machine only)")
    s.add_argument("--seed", type=int, help="data pattern seed (default: the suite's)")
    s.add_argument("--jobs", type=int, default=1, help="split the shared cases over N guests, "
                   "as `rig run --jobs N` does (default 1)")
    s.add_argument("--accel", default="tcg", choices=("tcg", "kvm"),
                   help="tcg (default) or kvm on the lab's workers")
    s.set_defaults(func=cmd_export)

    s = lsub.add_parser("validate", help="check job files with LAVA's own schema")
    s.add_argument("jobs", nargs="+", metavar="JOB|EXPORT_DIR")
    s.set_defaults(func=cmd_validate)

    s = lsub.add_parser("run", help="run jobs here with lava-run; results as from `rig run`")
    s.add_argument("jobs", nargs="+", metavar="JOB|EXPORT_DIR")
    s.add_argument("-o", "--out", required=True, help="results directory (new or empty)")
    s.add_argument("--timeout", type=float, default=7200, help="seconds per job (default "
                   "7200)")
    s.set_defaults(func=cmd_run)

    s = lsub.add_parser("submit", help="submit jobs to a LAVA lab; prints the job ids")
    s.add_argument("jobs", nargs="+", metavar="JOB|EXPORT_DIR")
    _lab_args(s)
    s.set_defaults(func=cmd_submit)

    s = lsub.add_parser("collect", help="a lab's finished jobs → a results directory")
    s.add_argument("job_ids", nargs="+", metavar="JOB_ID")
    _lab_args(s)
    s.add_argument("-o", "--out", help="results directory (default results/lava/collect-…)")
    s.add_argument("--wait", type=float, metavar="SECONDS", help="wait this long for the jobs "
                   "to finish")
    s.add_argument("--poll", type=float, default=30.0, help="seconds between polls (--wait)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_collect)
