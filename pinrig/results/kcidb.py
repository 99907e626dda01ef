"""`rig export kcidb RESULT_DIR`: a run as KCIDB JSON (schema v5.3, kcidb-io), so a KernelCI
instance can ingest it: one checkout and build per kernel artifact, one test per case run, one
issue per crash title (normalised) or data-loss kind, one incident per affected test."""
from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path

from pinrig.errors import UserError
from pinrig.oops import normalize_title
from pinrig.sanitize import deep
from pinrig.outcome import FAILURES, Outcome
from pinrig.results.rundir import RunDir, read_manifest

ORIGIN = "pinrig"
SCHEMA = (5, 3)


def _status(verdict: object) -> str:
    """KCIDB status of a recorded verdict name (ERROR for a name the rig does not know)."""
    try:
        return Outcome.parse(verdict).kcidb
    except ValueError:
        return "ERROR"


def _ts(text) -> str:
    """Manifest time ('2026-11-22T03:23:38+0000') → RFC 3339 with a colon in the offset."""
    if not text:
        return datetime.now(timezone.utc).isoformat()
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z").isoformat()
    except ValueError:
        return datetime.now(timezone.utc).isoformat()


def _path_part(s: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]", "_", s) or "_"


def _issue_id(key: str) -> str:
    return f"{ORIGIN}:{hashlib.sha1(key.encode()).hexdigest()[:16]}"


def export(run_path: Path) -> dict:
    run = RunDir(run_path, read_manifest(run_path))
    m = run.manifest
    k = m.get("kernel", {})
    start = _ts(m.get("start"))
    checkout_id = f"{ORIGIN}:{k.get('name')}-{k.get('hash')}"
    build_id = f"{ORIGIN}:build-{k.get('name')}-{k.get('hash')}"
    checkout = {"id": checkout_id, "origin": ORIGIN, "tree_name": _path_part(k.get("name", "")),
                "valid": True, "start_time": start,
                "comment": f"prebuilt {' '.join(k.get('packages', []))}".strip(),
                "misc": {"kernel_spec": k.get("spec_fields"), "packages": k.get("packages")}}
    build = {"id": build_id, "checkout_id": checkout_id, "origin": ORIGIN,
             "architecture": "x86_64", "config_name": k.get("name") or "unknown",
             "start_time": start, "status": "PASS",
             "comment": f"kernel release {k.get('release')}",
             "misc": {"release": k.get("release"), "artifact_hash": k.get("hash")}}
    suite = m.get("suite", {}).get("name", "suite")
    tests: list[dict] = []
    issues: dict[str, dict] = {}         # issue id -> issue (one per distinct crash/loss)
    incidents: list[dict] = []
    finished = run.finished_cases()
    if run.unreadable:
        raise UserError(f"{run_path}: {len(run.unreadable)} unreadable verdict(s), refusing to "
                        "export an incomplete run: " + "; ".join(map(str, run.unreadable)))
    for (case, attempt), v in sorted(finished.items()):
        tid = f"{ORIGIN}:{m.get('run_id', run_path.name)}:{case}" + \
            (f"#{attempt}" if attempt > 1 else "")
        status = _status(v.get("verdict"))
        test = {"id": tid, "build_id": build_id, "origin": ORIGIN,
                "path": ".".join(["pinrig", _path_part(suite)] +
                                 [_path_part(p) for p in case.split("/")]),
                "status": status, "start_time": start,
                "duration": float(v.get("wall_s") or 0.0),
                "environment": {"comment": f"QEMU {m.get('accel')} on {m.get('host', {}).get('hostname')}",
                                "misc": {"accel": m.get("accel"),
                                         "qemu_version": m.get("qemu_version"),
                                         "guest_image": m.get("guest", {}).get("hash")}},
                "misc": {k2: v.get(k2) for k2 in ("verdict", "errno", "pin", "title", "where",
                                                  "blocks_lost", "first_bad_offset", "seed",
                                                  "attempt", "reason") if v.get(k2) is not None}}
        if v.get("verdict") in FAILURES:
            test["log_excerpt"] = ((v.get("title") or v.get("reason") or "")
                                   + (f" at {v['where']}" if v.get("where") else ""))[:16384]
        tests.append(test)
        for key, subject in _issue_keys(v, case):
            iid = _issue_id(key)
            issues.setdefault(iid, {"id": iid, "version": 1, "origin": ORIGIN,
                                    "report_subject": subject[:1000],
                                    "culprit": {"code": True, "tool": False, "harness": False},
                                    "comment": f"pinrig {key.split(':', 1)[0]}",
                                    "misc": {"key": key}})
            incidents.append({"id": f"{tid}:{iid.split(':', 1)[1]}", "origin": ORIGIN,
                              "issue_id": iid, "issue_version": 1, "test_id": tid,
                              "present": True})
    # guest output may hold NUL and other characters KCIDB (and XML consumers) refuse
    data = {"version": {"major": SCHEMA[0], "minor": SCHEMA[1]}, "checkouts": [checkout],
            "builds": [build], "tests": tests, "issues": list(issues.values()),
            "incidents": incidents}
    # guest output may hold NUL and other characters KCIDB (and XML consumers) refuse
    cleaned = deep(data)
    assert isinstance(cleaned, dict)
    return cleaned


def _issue_keys(v: dict, case: str) -> list:
    out = []
    if v.get("verdict") == Outcome.CRASH:
        for t in dict.fromkeys(v.get("titles") or [v.get("title") or "kernel crash"]):
            out.append((f"crash:{normalize_title(t)}", t))
    elif v.get("verdict") == Outcome.DATA_LOSS:
        workload, fs = case.split("/")[:2]
        out.append((f"data-loss:{workload}/{fs}", f"data loss after power cut: {workload} on {fs}"))
    elif v.get("verdict") == Outcome.CHECKSUM_ERROR:
        workload, fs = case.split("/")[:2]
        out.append((f"checksum-error:{workload}/{fs}",
                    f"checksum failures on the medium: {workload} on {fs}"))
    elif v.get("verdict") == Outcome.WRITEBACK_ERROR:
        workload, fs = case.split("/")[:2]
        out.append((f"writeback-error:{workload}/{fs}",
                    f"writeback refused pages dirtied behind the fs: {workload} on {fs}"))
    elif v.get("verdict") == Outcome.CLONE_CHANGED:
        workload, fs = case.split("/")[:2]
        out.append((f"clone-changed:{workload}/{fs}", f"clone of a pinned file changed: {fs}"))
    return out


def validate(data: dict) -> None:
    """Raise UserError unless data validates against the KCIDB schema (needs kcidb-io)."""
    try:
        import kcidb_io
    except ImportError:
        raise UserError("KCIDB validation needs the kcidb-io package (pip install kcidb-io)")
    try:
        kcidb_io.schema.LATEST.validate(data)
    except Exception as e:          # jsonschema.ValidationError and friends
        raise UserError(f"KCIDB export does not validate: {str(e).splitlines()[0]}")
