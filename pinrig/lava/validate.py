"""Every job is checked with LAVA's own schema (lava_common.schemas, Debian package lava-common)
before it is written or submitted. lava-common is a system package for the system python3; the
rig's venv does not see it, so the check runs in /usr/bin/python3 (a subprocess) and the jobs go
over as JSON on stdin."""
from __future__ import annotations

import json
import os
import subprocess
from typing import Optional

from pinrig.errors import InfraError, MissingTool, UserError

SYSTEM_PYTHON = os.environ.get("PINRIG_LAVA_PYTHON", "/usr/bin/python3")

CHECK = r"""
import json, sys
try:
    from lava_common.schemas import validate
except ImportError as e:
    print(json.dumps({"missing": str(e)}))
    sys.exit(0)
errors = []
for doc in json.load(sys.stdin):
    try:
        validate(doc, strict=True)
        errors.append(None)
    except Exception as e:
        path = "/".join(str(p) for p in getattr(e, "path", []) or [])
        errors.append((path + ": " if path else "") + str(getattr(e, "msg", e)))
print(json.dumps({"errors": errors}))
"""


def schema_errors(docs: list, python: Optional[str] = None) -> list:
    """One entry per job: None when LAVA's schema accepts it, else the error (path: message).
    MissingTool when lava-common is not installed: a check that cannot run never passes."""
    python = python or SYSTEM_PYTHON
    if not os.access(python, os.X_OK):
        raise MissingTool(python, "python3")
    try:
        res = subprocess.run([python, "-c", CHECK], input=json.dumps(docs), text=True,
                             capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InfraError(f"LAVA schema check ({python}) failed to run: {e}")
    try:
        out = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise InfraError(f"LAVA schema check ({python}) exit {res.returncode}: "
                         f"{res.stderr.strip()[-300:]}")
    if "missing" in out:
        raise MissingTool("lava_common (LAVA's job schema)", "lava-common")
    errors = out.get("errors")
    if not isinstance(errors, list) or len(errors) != len(docs):
        raise InfraError(f"LAVA schema check ({python}) gave no verdict per job")
    return errors


def validate_jobs(docs: list, names: Optional[list] = None) -> None:
    """UserError naming the first job LAVA's schema refuses, and why."""
    for i, err in enumerate(schema_errors(docs)):
        if err is not None:
            name = names[i] if names else docs[i].get("job_name", f"job {i + 1}")
            raise UserError(f"{name}: refused by LAVA's job schema: {err}")
