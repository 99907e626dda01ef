"""Stage `results`: the run directory (manifest, per-case files, junit.xml, summary.txt).

Per-case files are written into `<case>.new/` and swapped in by rename when the case finishes, so
a killed run keeps every finished case and never shows a half-written one.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from junit_xml import TestCase, TestSuite, to_xml_report_string

from pinrig import interrupt
from pinrig.cases.verdict import Verdict
from pinrig.outcome import FAILURES, Outcome
from pinrig.errors import UserError
from pinrig.paths import atomic_write
from pinrig.sanitize import xml_text


def read_manifest(path: Path, what: str = "results directory") -> dict:
    """The manifest.json of a results directory, or UserError naming what is wrong."""
    mpath = Path(path) / "manifest.json"
    if not Path(path).is_dir():
        raise UserError(f"{what} {path}: does not exist")
    if not mpath.exists():
        raise UserError(f"{what} {path}: not a results directory (no manifest.json)")
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{mpath}: unreadable manifest: {e}")
    if not isinstance(manifest, dict):
        raise UserError(f"{mpath}: top level must be an object")
    return manifest


def make_run_id(kernel: str, suite: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{kernel}-{suite}".replace("/", "_")


@dataclass(frozen=True)
class Unreadable:
    """A verdict.json that could not be read: never silently a missing case."""
    case: str
    attempt: int
    path: Path
    reason: str

    def __str__(self) -> str:
        at = "" if self.attempt == 1 else f" attempt {self.attempt}"
        return f"{self.case}{at}: {self.reason}"


@dataclass
class RunDir:
    path: Path
    manifest: dict = field(default_factory=dict)
    unreadable: list = field(default_factory=list)     # Unreadable, from finished_cases()

    def case_dir(self, case_id: str, attempt: int = 1) -> Path:
        """cases/<case-id>/ for the first attempt, cases/<case-id>/@<k>/ for repeat k ('@'
        never appears in a variant name, so repeats and variant cases cannot collide)."""
        base = self.path / "cases" / case_id
        return base if attempt == 1 else base / f"@{attempt}"

    def write_manifest(self) -> None:
        atomic_write(self.path / "manifest.json", json.dumps(self.manifest, indent=2) + "\n")

    def write_case(self, verdict: Verdict, files: dict) -> Path:
        """files: name → str|bytes. Each file is written as .new and renamed into place;
        verdict.json goes last, so a case without it never counts as finished. Only this
        case's files are replaced: a variant case lives in a subdirectory and is kept."""
        interrupt.check("case")        # a case cut short by Ctrl-C is not a result
        final = self.case_dir(verdict.case, verdict.attempt)
        shutil.rmtree(final.with_name(final.name + ".new"), ignore_errors=True)  # older layout
        final.mkdir(parents=True, exist_ok=True)
        (final / "verdict.json").unlink(missing_ok=True)
        names = {n for n, d in files.items() if d is not None}
        for old in final.iterdir():
            if old.is_file() and old.name not in names:
                old.unlink()
        for name in sorted(names):
            atomic_write(final / name, files[name])
        atomic_write(final / "verdict.json", json.dumps(verdict.to_dict(), indent=2) + "\n")
        return final

    def finished_cases(self) -> dict:
        """(case id, attempt) → Verdict dict for every readable case on disk.

        A verdict.json that cannot be read or validated is not dropped silently: it is listed
        in `self.unreadable` as Unreadable(case, attempt, path, reason), the case id and
        attempt taken from where the file lies."""
        out: dict = {}
        self.unreadable = []
        base = self.path / "cases"
        for vj in sorted(base.rglob("verdict.json")) if base.exists() else []:
            if vj.parent.name.endswith(".new"):
                continue
            case, attempt = self.locate(vj)
            try:
                d = json.loads(vj.read_text())
                v = Verdict.from_dict(d)
                if (v.case, v.attempt) != (case, attempt):
                    raise ValueError(f"it names {v.case} attempt {v.attempt}, but lies in the "
                                     f"directory of {case} attempt {attempt}")
            except (OSError, ValueError) as e:
                self.unreadable.append(Unreadable(case, attempt, vj, str(e)[:200]))
                continue
            out[(case, attempt)] = d
        return out

    def locate(self, verdict_json: Path) -> tuple:
        """(case id, attempt) a verdict.json belongs to, from its place under cases/."""
        parts = list(verdict_json.parent.relative_to(self.path / "cases").parts)
        attempt = 1
        if parts and parts[-1].startswith("@") and parts[-1][1:].isdigit():
            attempt = int(parts.pop()[1:])
        return "/".join(parts), attempt

    def read_case_file(self, case_id: str, name: str, attempt: int = 1) -> str:
        p = self.case_dir(case_id, attempt) / name
        return p.read_text(errors="replace") if p.exists() else ""


def host_info() -> dict:
    return {"hostname": socket.gethostname(), "cpus": os.cpu_count(),
            "kernel": os.uname().release}


def junit_xml(run: RunDir, verdicts: list) -> str:
    m = run.manifest
    props = {
        "kernel": m.get("kernel", {}).get("name"),
        "kernel_release": m.get("kernel", {}).get("release"),
        "kernel_artifact_hash": m.get("kernel", {}).get("hash"),
        "kernel_packages": " ".join(m.get("kernel", {}).get("packages", [])),
        "guest_image_hash": m.get("guest", {}).get("hash"),
        "accel": m.get("accel"),
        "qemu_version": m.get("qemu_version"),
        "seed": m.get("seed"),
        "cpus": m.get("host", {}).get("cpus"),
        "guest_memory_mb": m.get("guest_memory_mb"),
        "command": m.get("reproducer"),
    }
    suite_name = m.get("suite", {}).get("name", "suite")
    cases = []
    for v in verdicts:
        name = v.case if v.attempt == 1 else f"{v.case} #{v.attempt}"
        tc = TestCase(name=xml_text(name), classname=xml_text(suite_name), elapsed_sec=v.wall_s,
                      stdout=xml_text(run.read_case_file(v.case, "guest.log", v.attempt)[-65536:] or None),
                      stderr=xml_text(run.read_case_file(v.case, "dmesg.log", v.attempt)[-65536:] or None))
        if v.verdict in FAILURES:
            tc.add_failure_info(message=xml_text(v.message()), failure_type=str(v.verdict),
                                output=xml_text(v.reason))
        elif v.verdict == Outcome.ERROR:
            tc.add_error_info(message=xml_text(v.message()), error_type="error")
        elif v.verdict == Outcome.SKIPPED:
            tc.add_skipped_info(message=xml_text(v.reason or "skipped"))
        cases.append(tc)
    ts = TestSuite(xml_text(f"{props['kernel']}:{suite_name}"), cases,
                   properties={k: xml_text(v) for k, v in props.items() if v is not None},
                   hostname=xml_text(m.get("host", {}).get("hostname")))
    return to_xml_report_string([ts], prettyprint=True)


def summary_text(run: RunDir, verdicts: list) -> str:
    m = run.manifest
    k = m.get("kernel", {})
    lines = [f"pinrig run {run.path.name}",
             f"kernel {k.get('name')} ({k.get('release')}), suite {m.get('suite', {}).get('name')},"
             f" accel {m.get('accel')}, seed {m.get('seed')}", ""]
    ser = k.get("series") if isinstance(k, dict) else None
    if isinstance(ser, dict):
        rev = f" v{ser['revision']}" if ser.get("revision") else ""
        warns = [f"  warning: {w}" for w in (ser.get("warnings") or [])[:50]]
        picked = [f"  {n}" for n in (ser.get("notes") or [])[:3] if isinstance(n, str)]
        lines[2:2] = [f"series {ser.get('name') or ''}{rev} applied with {ser.get('method')}"
                      .replace("  ", " ")] + picked + warns
    def label(v):
        return v.case if v.attempt == 1 else f"{v.case} #{v.attempt}"
    w = max([len(label(v)) for v in verdicts] + [10])
    for v in verdicts:
        extra = v.message() if v.verdict != Outcome.OK else v.reason
        lines.append(f"  {label(v):<{w}}  {v.verdict:<10}  {v.wall_s:6.1f}s  {extra}")
    counts: dict = {}
    for v in verdicts:
        counts[v.verdict] = counts.get(v.verdict, 0) + 1
    lines += ["", "  " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))]
    return "\n".join(lines) + "\n"


__all__ = ["RunDir", "Unreadable", "atomic_write", "read_manifest", "host_info", "junit_xml", "make_run_id",
           "summary_text"]
