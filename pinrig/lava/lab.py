"""A kernel × suite run in a LAVA lab, shaped like pinrig.runs.runner.run_suite so a nightly
plan can name a lab instead of local guests: export the jobs where the lab's workers can fetch
them, submit, wait, collect into the run's results directory. The job ids are kept next to the
export (submitted.json): a night resumed after an interruption waits for the jobs it already
submitted instead of submitting them again."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable, Optional

from pinrig.config import LavaLab
from pinrig.errors import UserError


def suite_runner(lab: LavaLab, lab_factory: Optional[Callable] = None) -> Callable:
    def run(kernel_arg: str, suite_arg: str, out: Optional[Path] = None,
            resume: Optional[Path] = None, repeat: Optional[int] = None, echo=print, **_kw):
        from pinrig.config import load_suite
        from pinrig.lava.client import Lab
        from pinrig.lava.export import export, job_files, load_job
        from pinrig.lava.results import Collected, write_run
        target = Path(resume or out or "")
        if not target.name:
            raise UserError("a LAVA run needs its results directory")
        suite = load_suite(suite_arg)
        if (repeat or suite.repeat) > 1:
            raise UserError(f"suite {suite.name}: repeat {repeat or suite.repeat} in a LAVA "
                            "lab is not supported (one attempt per case)")
        rel = Path(target.parent.name) / target.name
        exp = lab.artifacts_dir / rel
        token = os.environ.get(lab.token_env) if lab.token_env else None
        if lab.token_env and not token:
            raise UserError(f"lava.token_env: ${lab.token_env} is not set")
        client = (lab_factory or Lab)(lab.url, user=lab.user, token=token)
        submitted = exp / "submitted.json"
        if submitted.exists():
            ids = json.loads(submitted.read_text())["ids"]
            echo(f"rig: lava: waiting for jobs submitted earlier: {' '.join(ids)}")
        else:
            shutil.rmtree(exp, ignore_errors=True)
            exp.parent.mkdir(parents=True, exist_ok=True)
            export(kernel_arg, suite_arg, exp, artifact_url=f"{lab.artifacts_url}/{rel}/artifacts",
                   accel=lab.accel)
            ids = []
            for f in job_files(exp):
                load_job(f)
                ids += client.submit(f.read_text())
            submitted.write_text(json.dumps({"ids": ids}) + "\n")
            echo(f"rig: lava: submitted {' '.join(ids)} to {client.where}")
        client.wait(ids, lab.timeout, poll=lab.poll, echo=echo)
        import yaml
        collected = [Collected(yaml.safe_load(client.definition(j)) or {}, client.logs(j), j,
                               client.where) for j in ids]
        if target.exists():
            shutil.rmtree(target)       # a partial mapping from an interrupted collect
        write_run(target, collected, echo=echo)
    return run
