"""LAVA's log of a pinrig job → a normal results directory (verdict.json per case, JUnit,
summary), judged by the rig's own stages: the case scripts' tagged evidence is put back into
a RawOutcome the way pinrig.cases.execute builds it over SSH, kernel reports come from the
console slice between the case markers (pinrig.oops), and pinrig.cases.verdict.decide gives the
verdict. The log comes from the guest and from LAVA: every field is read defensively."""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import yaml

from pinrig import __version__, oops
from pinrig.cases import execute, integrity, workloads
from pinrig.cases.verdict import RawOutcome, Verdict, decide
from pinrig.config import Case
from pinrig.errors import UserError
from pinrig.lava import export, guestside
from pinrig.outcome import Outcome
from pinrig.results.rundir import RunDir, atomic_write, host_info, junit_xml, summary_text

TAG_RE = re.compile(r"pinrig-lava:(\d+):([a-z-]+)(\| ?(.*)| rc=(\d+)| result=(\w+)| (.*))?$")
MAX_LINES = 2_000_000


# ---------------------------------------------------------------------------- the LAVA log

def read_log(text: str) -> list:
    """LAVA's job log (one YAML/JSON mapping per line, `- {...}` or `{...}`) → entries
    {dt, lvl, msg}; lines that are not entries are dropped."""
    out = []
    for line in text.splitlines()[:MAX_LINES]:
        line = line.strip()
        if line.startswith("- {"):
            line = line[2:]
        if not line.startswith("{"):
            continue
        try:
            d = json.loads(line)
        except ValueError:
            try:
                d = yaml.safe_load(line)
            except yaml.YAMLError:
                continue
        if isinstance(d, dict) and isinstance(d.get("lvl"), str):
            out.append(d)
    return out


def _when(entry: dict) -> Optional[float]:
    try:
        return datetime.fromisoformat(str(entry.get("dt"))).timestamp()
    except ValueError:
        return None


def console(entries: list) -> list:
    """(time, line) of everything the guest printed on its console. LAVA's shell logger
    escapes every double quote (" → \\"); that is undone here (its exact inverse)."""
    return [(_when(e), e["msg"].replace('\\"', '"')) for e in entries
            if e.get("lvl") == "target" and isinstance(e.get("msg"), str)]


def lava_results(entries: list) -> list:
    return [e["msg"] for e in entries if e.get("lvl") == "results" and isinstance(e.get("msg"),
                                                                                   dict)]


def job_error(entries: list) -> Optional[str]:
    """Why LAVA failed the job (its own `job` result), or None when it completed."""
    for r in lava_results(entries):
        if r.get("definition") == "lava" and r.get("case") == "job":
            if r.get("result") == "pass":
                return None
            extra = r.get("extra") if isinstance(r.get("extra"), dict) else {}
            return str(extra.get("error_msg") or extra.get("error_type") or "LAVA job failed")
    errs = [str(e.get("msg")) for e in entries if e.get("lvl") in ("error", "exception")]
    return errs[-1][:300] if errs else "LAVA job did not finish (no job result in its log)"


# ---------------------------------------------------------------------------- evidence

@dataclass
class Step:
    name: str
    lines: list = field(default_factory=list)
    rc: Optional[int] = None

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + ("\n" if self.lines else "")


@dataclass
class Evidence:
    """What the case scripts of one case printed (both boots for crash-and-verify)."""
    begun: bool = False
    verify_begun: bool = False
    result: Optional[str] = None          # pin boot (or only boot): pass/fail/skip
    verify_result: Optional[str] = None
    steps: list = field(default_factory=list)
    needs: str = ""
    holding: bool = False
    t_begin: Optional[float] = None
    t_end: Optional[float] = None

    def step(self, name: str) -> list:
        return [s for s in self.steps if s.name == name]

    @property
    def dmesg(self) -> str:
        return "".join(s.text for s in self.step("dmesg"))


def evidence(lines: list) -> dict:
    """case number → Evidence, from (time, console line) pairs."""
    out: dict = {}
    open_steps: dict = {}
    for t, raw in lines:
        line = raw.rstrip("\r")
        pos = line.find("pinrig-lava:")
        if pos < 0:
            continue
        m = TAG_RE.match(line[pos:])
        if not m:
            continue
        n, name = int(m.group(1)), m.group(2)
        ev = out.setdefault(n, Evidence())
        if name not in ("begin", "verify-begin", "dmesg") and not ev.begun:
            # the begin line itself can be cut by a kernel message on the console: any later
            # line of the case says it began
            ev.begun = True
            ev.t_begin = t
        if name in ("begin", "verify-begin"):
            ev.begun = True
            ev.verify_begun = ev.verify_begun or name == "verify-begin"
            ev.t_begin = ev.t_begin if ev.t_begin is not None else t
            continue
        if name == "end" and m.group(6):
            if ev.verify_begun:
                ev.verify_result = m.group(6)
            else:
                ev.result = m.group(6)
            ev.t_end = t
            continue
        if m.group(3) is not None and m.group(3).startswith("|"):
            text = m.group(4) or ""
            if name == "needs":
                ev.needs = text
            elif name == "holding":
                ev.holding = True
            else:
                st = open_steps.get((n, name))
                if st is None:
                    st = open_steps[(n, name)] = Step(name)
                    ev.steps.append(st)
                st.lines.append(text)
        elif m.group(5) is not None:
            st = open_steps.pop((n, name), None)
            if st is None:
                st = Step(name)
                ev.steps.append(st)
            st.rc = int(m.group(5))
    return out


def _info(ev: Evidence) -> dict:
    """The guest's ready facts (as pinrig-init's ready line gives them to the runner)."""
    info = {"rdma": "none", "pmem": "none"}
    m = re.search(r"rdma=(.*?) pmem=(.*)$", ev.needs)
    if m:
        info["rdma"] = m.group(1).strip() or "none"
        info["pmem"] = m.group(2).strip() or "none"
    return info


def _pins(step: list) -> Optional[dict]:
    out = {}
    for line in (step[-1].lines if step else []):
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0].removeprefix("nr_foll_pin_")] = int(parts[1])
    return out if set(out) == {"acquired", "released"} else None


def _failed(ev: Evidence, names: tuple) -> Optional[Step]:
    for s in ev.steps:
        if s.name in names and s.rc not in (0, None):
            return s
    return None


def _tail(s: Step) -> str:
    return " ".join(s.lines)[-200:]


def _take_result(raw: RawOutcome, case: Case, out: str, rc: Optional[int]) -> bool:
    """As pinrig.cases.execute records the program's JSON line."""
    result = execute.parse_result(out)
    raw.exit_code = rc
    if result is None:
        raw.infra_error = f"{case.workload} printed no JSON result (exit {rc})"
        return False
    raw.result, raw.pin, raw.errno = result, result.get("pin"), result.get("errno")
    if rc not in (0, None) or result.get("error"):
        raw.infra_error = f"{case.workload} failed (exit {rc}): {result.get('error') or ''}"
        return False
    return True


def _verify(raw: RawOutcome, case: Case, ev: Evidence):
    """(IntegrityResult, checksums dict) from the blocksum step, or (None, None)."""
    raw.phase = "verify"
    expected = raw.result.get("expected")
    if not expected:
        return None, None
    bad = _failed(ev, ("verify-setup",))
    if bad:
        raw.infra_error = f"verification setup failed (exit {bad.rc}): {_tail(bad)}"
        return None, None
    bs = ev.step("blocksum")
    if not bs or bs[-1].rc is None:
        raw.infra_error = "blocksum did not finish (guest gone?)"
        raw.guest_died = True
        return None, None
    got = execute.parse_result(bs[-1].text)
    if bs[-1].rc != 0 or not got or "blocks" not in got:
        if "No such file" in bs[-1].text or (got and "ENOENT" in str(got.get("errno"))):
            got = {"blocks": []}
        else:
            raw.infra_error = f"blocksum failed (exit {bs[-1].rc}): {_tail(bs[-1])}"
            return None, None
    res = integrity.verify(expected, got["blocks"])
    sums = {"file": execute.data_file(case), "seed": raw.result.get("seed"),
            "block_size": integrity.BLOCK, "expected": expected, "actual": got["blocks"],
            "result": res.to_dict()}
    return res, sums


def raw_outcome(case: Case, ev: Optional[Evidence], crash: bool, lava_error: Optional[str]):
    """(RawOutcome, IntegrityResult|None, checksums|None) for one case."""
    raw = RawOutcome(case.id)
    if ev is None or not ev.begun:
        raw.infra_error = f"the case did not run under LAVA: {lava_error or 'no evidence'}"
        raw.phase = "boot"
        return raw, None, None
    if ev.t_begin is not None and ev.t_end is not None:
        raw.wall_s = max(0.0, ev.t_end - ev.t_begin)
    reason = execute.needs(case, SimpleNamespace(info=_info(ev)))   # type: ignore[arg-type]
    if ev.result == "skip":
        raw.skip_reason = reason or "the guest lacks what the case needs"
        return raw, None, None
    bad = _failed(ev, ("module",))
    if bad:
        raw.infra_error = f"insmod of the rig's test module failed: {_tail(bad)}"
        return raw, None, None
    raw.phase = "setup"
    bad = _failed(ev, ("setup",))
    if bad:
        if case.fs.endswith("-dax"):
            raw.skip_reason = f"fsdax unavailable: setup step failed: {_tail(bad)}"
        else:
            raw.infra_error = f"filesystem setup failed (exit {bad.rc}): {_tail(bad)}"
        return raw, None, None
    bad = _failed(ev, ("pressure",))
    if bad:
        raw.infra_error = f"pressure could not be applied (exit {bad.rc}): {_tail(bad)}"
        return raw, None, None
    raw.phase = "case"
    wl = ev.step("workload")
    if not wl or wl[-1].rc is None:
        raw.guest_died = True
        raw.infra_error = "guest died during the case with no kernel report"
        return raw, None, None
    out = wl[-1].text
    if crash:
        ok = _take_result(raw, case, out.split("--- stderr ---")[0], None if ev.holding else 0)
        if not ok or raw.pin != "granted":
            return raw, None, None
        if not ev.verify_begun:
            raw.infra_error = f"no verify boot after the power cut: {lava_error or 'no evidence'}"
            return raw, None, None
        res, sums = _verify(raw, case, ev)
        return raw, res, sums
    if wl[-1].rc == 137:
        raw.timed_out = True
        raw.infra_error = f"timeout: workload gave no result within {case.timeout}s"
        return raw, None, None
    res, sums = None, None
    if _take_result(raw, case, out, wl[-1].rc) and workloads.get(case.workload).verifies:
        res, sums = _verify(raw, case, ev)
    before, after = _pins(ev.step("pins-before")), _pins(ev.step("pins-after"))
    if before is not None and after is not None:
        raw.pins = {k: after[k] - before[k] for k in ("acquired", "released")}
    if ev.result is None and not raw.infra_error:
        raw.guest_died = True
        raw.infra_error = "guest died during the case with no kernel report"
    return raw, res, sums


# ---------------------------------------------------------------------------- one job

def job_meta(job: dict) -> dict:
    """The rig's metadata a generated job carries (export.META_KEY), checked."""
    meta = (job.get("metadata") or {}).get(export.META_KEY) if isinstance(job, dict) else None
    try:
        d = json.loads(meta) if isinstance(meta, str) else None
    except ValueError:
        d = None
    if not isinstance(d, dict) or not isinstance(d.get("cases"), list):
        raise UserError(f"job '{job.get('job_name') if isinstance(job, dict) else job}': "
                        f"not a pinrig job (no metadata.{export.META_KEY} with its cases)")
    return d


def meta_cases(meta: dict, key: str = "cases") -> list:
    """(number, Case) of a job's metadata (key "skipped": the cases the kernel lacks what
    they need for, which the runner skips without a boot)."""
    out = []
    fields = ("workload", "fs", "mapping", "variant", "expect", "size", "timeout", "provider")
    items = meta.get(key) or []
    if not isinstance(items, list):
        raise UserError(f"job metadata: {key}: not a list")
    for c in items:
        if not isinstance(c, dict):
            raise UserError(f"job metadata: case {c!r} unreadable (not a mapping)")
        try:
            case = Case(**{k: c[k] for k in fields if k in c})
            if case.id != c.get("id"):
                raise ValueError(c.get("id"))
            out.append((int(c["n"]), case))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"job metadata: case {c!r} unreadable ({e})")
    return out


def judge_job(meta: dict, entries: list) -> list:
    """[(Verdict, files)] for every case of one job, from its LAVA log entries."""
    lines = console(entries)
    text = "\n".join(line for _t, line in lines) + "\n"
    slices = oops.split_by_case(text)
    evs = evidence(lines)
    err = job_error(entries)
    # LAVA's own record of each test case: the end of a case whose end line was cut
    lava_cases = {str(r.get("case")): str(r.get("result")) for r in lava_results(entries)
                  if r.get("definition") != "lava"}
    seed = int(meta.get("seed", 1))
    crash = bool(meta.get("crash_and_verify"))
    out = []
    for n, case in meta_cases(meta):
        ev = evs.get(n)
        name = guestside.test_case_name(case.id)
        if ev is not None and ev.begun and ev.result is None:
            ev.result = lava_cases.get(name + ".pin" if crash else name)
        if ev is not None and ev.verify_begun and ev.verify_result is None:
            ev.verify_result = lava_cases.get(name)
        raw, res, sums = raw_outcome(case, ev, crash, err)
        cslice = slices.get(case.id, "")
        if raw.guest_died and not cslice:
            cslice = text[-200000:]
        dmesg = ev.dmesg if ev is not None else ""
        reports = oops.parse_console(cslice) or oops.parse_console(dmesg)
        if (ev is None or not ev.begun) and not reports:
            # a boot that never reached the case: a kernel report there is still the case's
            reports = oops.parse_console(slices.get("boot", ""))
        v = decide(case, raw, reports, res)
        v.seed = execute.case_seed(seed, case.id)
        guest_log = "\n".join(
            f"$ {s.name}\n[exit {s.rc}]\n{s.text}" for s in (ev.steps if ev else [])
            if s.name != "dmesg")
        if err:
            guest_log += f"\nLAVA: {err}\n"
        files = {"console.log": cslice, "dmesg.log": dmesg or cslice, "guest.log": guest_log,
                 "result.json": json.dumps(raw.result, indent=2) + "\n" if raw.result else None,
                 "checksums.json": json.dumps(sums, indent=2) + "\n" if sums else None,
                 "reports.json": json.dumps([r.to_dict() for r in reports], indent=2) + "\n"
                 if reports else None}
        out.append((v, files))
    for _n, case in meta_cases(meta, "skipped"):
        reason = next((str(c.get("reason")) for c in meta["skipped"]
                       if isinstance(c, dict) and c.get("id") == case.id), "")
        v = decide(case, RawOutcome(case.id, skip_reason=reason or "kernel lacks what the "
                                    "case needs", phase="setup"), [])
        v.seed = execute.case_seed(seed, case.id)
        out.append((v, {}))
    return out


# ---------------------------------------------------------------------------- results dir

@dataclass
class Collected:
    job: dict            # the job definition
    log: str             # LAVA's log text
    job_id: str = ""
    url: str = ""        # where it ran (a lab URL, or "lava-run" for a local run)


def write_run(out: Path, collected: list, echo=print) -> tuple:
    """A results directory from LAVA jobs of one kernel × suite. Returns (RunDir, verdicts)."""
    if not collected:
        raise UserError("no LAVA jobs to collect")
    metas = [job_meta(c.job) for c in collected]
    first = metas[0]
    for m in metas[1:]:
        if (m.get("kernel"), m.get("suite"), m.get("seed")) != \
                (first.get("kernel"), first.get("suite"), first.get("seed")):
            raise UserError("the jobs are not of one kernel × suite × seed: "
                            f"{first.get('kernel')}/{first.get('suite')} vs "
                            f"{m.get('kernel')}/{m.get('suite')}")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"-o {out}: not empty; give an empty or new directory")
    out.mkdir(parents=True, exist_ok=True)
    cases = sorted((nc for m in metas for key in ("cases", "skipped")
                    for nc in meta_cases(m, key)), key=lambda nc: nc[0])
    accel = "kvm" if not (collected[0].job.get("context") or {}).get("no_kvm") else "tcg"
    manifest: dict = {
        "rig_version": __version__, "run_id": out.name,
        "kernel": {"name": first.get("kernel"), "release": first.get("release"),
                   "hash": first.get("kernel_hash"), "packages": []},
        "guest": {"name": first.get("guest_image"), "hash": first.get("guest_hash")},
        "suite": {"name": first.get("suite"),
                  "cases": [c.__dict__ | {"id": c.id} for _n, c in cases]},
        "seed": first.get("seed"), "accel": accel, "host": host_info(),
        "executor": {"kind": "lava",
                     "jobs": [{"id": c.job_id, "url": c.url, "name": c.job.get("job_name")}
                              for c in collected]},
        "start": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "end": None,
        "reproducer": f"rig lava export {first.get('kernel')} --suite {first.get('suite')}"
                      f" --seed {first.get('seed')}",
        "repeat": 1,
    }
    run = RunDir(out, manifest)
    run.write_manifest()
    verdicts: dict = {}
    for c, m in zip(collected, metas):
        for v, files in judge_job(m, read_log(c.log)):
            run.write_case(v, files)
            verdicts[v.case] = v
            extra = v.message() if v.verdict != Outcome.OK else v.reason
            echo(f"  {v.case:<36} {v.verdict:<10} {v.wall_s:6.1f}s  {extra}")
    ordered = [verdicts[c.id] for _n, c in cases if c.id in verdicts]
    run.manifest["end"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    run.write_manifest()
    atomic_write(out / "junit.xml", junit_xml(run, ordered))
    atomic_write(out / "summary.txt", summary_text(run, ordered))
    return run, ordered


def exit_code(verdicts: list) -> int:
    if any(isinstance(v, Verdict) and v.failed for v in verdicts):
        return 1
    if any(v.verdict == Outcome.ERROR for v in verdicts):
        return 2
    return 0
