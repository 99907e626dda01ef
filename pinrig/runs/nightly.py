"""`rig nightly PLAN`: kernels × suites every night, a history, and what changed since last night.

    results/nightly/                  (or the plan's `results:`, or --results)
      history.sqlite                  nights, runs, case results, changes against the night before
      index.html                      every night, with a trend chart of pass rates
      <night>/                        one night: <date>, or <date>.2 for a second night that day
        <label>-<suite>/              a results directory, written by run_suite
        junit.xml                     every run's testsuite in one file (what CI reads)
        index.html, night.json, summary.txt

A night interrupted half-way is resumed by the next `rig nightly` of the same plan that day:
finished runs are reused, a half-done run continues with run_suite(resume=…). Each run is
compared with the same kernel × suite in the previous night that ran it (from the history, so
retention does not lose the baseline); a new failure or a new crash title makes the exit code 1.
"""
from __future__ import annotations

import fcntl
import json
import re
import shutil
import sqlite3
import time
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from pinrig import config, paths
from pinrig.errors import InfraError, RigError, UserError
from pinrig.outcome import FAILURES, INCONCLUSIVE, PASSES, Outcome, sql_set
from pinrig.results.compare import LoadedRun, compare_runs, load_run, verdict_from_dict
from pinrig.results.rundir import RunDir, atomic_write, junit_xml
from pinrig.sanitize import xml_text

NIGHT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(\.\d+)?$")


# ---------------------------------------------------------------------------- the plan

@dataclass(frozen=True)
class PlanKernel:
    label: str        # what the history calls it (stable across nights)
    kernel: str       # kernel spec name or path, as run_suite takes it


@dataclass(frozen=True)
class NightlyPlan:
    name: str
    kernels: tuple
    suites: tuple
    repeat: Optional[int] = None      # None: each suite's own repeat
    retention: int = 14
    results: Optional[Path] = None
    description: str = ""
    path: Optional[Path] = None
    lava: Optional[config.LavaLab] = None   # run the guests in this LAVA lab, not here

    def runs(self) -> list:
        return [(k, s) for k in self.kernels for s in self.suites]


def load_plan(path_arg: str) -> NightlyPlan:
    """Load and validate a plan; errors name the file and the field."""
    p = Path(path_arg)
    if not p.exists() and "/" not in path_arg and p.suffix not in (".yaml", ".yml"):
        cand = paths.CONFIGS_DIR / "nightly" / f"{path_arg}.yaml"
        if not cand.exists():
            known = ", ".join(sorted(x.stem for x in (paths.CONFIGS_DIR / "nightly")
                                     .glob("*.yaml"))) or "none"
            raise UserError(f"unknown nightly plan '{path_arg}' (known: {known})")
        p = cand
    data = config.load_yaml(p)
    f = config.Fields(p, data)
    name = f.get("name", str, p.stem)
    description = f.get("description", str, "")
    repeat = f.get("repeat", int, None)
    retention = f.get("retention", int, 14)
    results = f.get("results", str, None)
    raw_kernels = f.get("kernels", list)
    suites = f.str_list("suites")
    lava_data = f.get("lava", dict, None)
    f.finish()
    lava = config.load_lava_lab(p, lava_data) if lava_data is not None else None
    if repeat is not None and repeat < 1:
        raise f.err("repeat", "must be at least 1")
    if retention < 1:
        raise f.err("retention", "must be at least 1 (nights whose results are kept)")
    if not raw_kernels:
        raise f.err("kernels", "empty list (a plan needs at least one kernel)")
    if not suites:
        raise f.err("suites", "empty list (a plan needs at least one suite)")
    kernels = []
    for i, k in enumerate(raw_kernels):
        if isinstance(k, str):
            label, arg = None, k
        elif isinstance(k, dict):
            kf = config.Fields(p, k, f"kernels[{i}].")
            arg = kf.get("kernel", str)
            label = kf.get("name", str, None)
            kf.finish()
        else:
            raise f.err(f"kernels[{i}]", f"must be a kernel name or a mapping "
                        f"{{name: LABEL, kernel: SPEC}}, got {k!r}")
        arg = _relative(p, arg)
        try:
            spec = config.load_kernel_spec(arg)
        except UserError as e:
            raise f.err(f"kernels[{i}]", str(e))
        label = label or spec.name
        if not re.fullmatch(r"[\w.+-]+", label):
            raise f.err(f"kernels[{i}]", f"name {label!r}: use letters, digits, '.', '+', '-'")
        kernels.append(PlanKernel(label, arg))
    labels = [k.label for k in kernels]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise f.err("kernels", f"kernel {dup[0]} listed twice (give one a `name:`)")
    suite_args: list[str] = []
    for i, s in enumerate(suites):
        s = _relative(p, s)
        try:
            sname = config.load_suite(s).name
        except UserError as e:
            raise f.err(f"suites[{i}]", str(e))
        if any(config.load_suite(x).name == sname for x in suite_args):
            raise f.err(f"suites[{i}]", f"suite {sname} listed twice")
        suite_args.append(s)
    res = None
    if results:
        res = Path(results)
        if not res.is_absolute():
            res = paths.REPO / res
    return NightlyPlan(name=name, kernels=tuple(kernels), suites=tuple(suite_args),
                       repeat=repeat, retention=retention, results=res,
                       description=description, path=p, lava=lava)


def _relative(plan_path: Path, arg: str) -> str:
    """A path in a plan is relative to the plan's directory (names are left alone)."""
    if ("/" in arg or arg.endswith((".yaml", ".yml"))) and not Path(arg).is_absolute():
        cand = plan_path.parent / arg
        if cand.exists():
            return str(cand)
    return arg


def suite_name(arg: str) -> str:
    return config.load_suite(arg).name


# ---------------------------------------------------------------------------- history

SCHEMA = """
CREATE TABLE IF NOT EXISTS nights (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT UNIQUE NOT NULL, date TEXT NOT NULL, plan TEXT NOT NULL, plan_path TEXT,
    started TEXT NOT NULL, finished TEXT, status TEXT NOT NULL,
    exit_code INTEGER, pruned INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS runs (
    night TEXT NOT NULL, label TEXT NOT NULL, suite TEXT NOT NULL, kernel TEXT NOT NULL,
    status TEXT NOT NULL, message TEXT, path TEXT, release TEXT, packages TEXT,
    artifact_hash TEXT, manifest TEXT, previous_night TEXT, recorded TEXT,
    PRIMARY KEY (night, label, suite));
CREATE TABLE IF NOT EXISTS case_results (
    night TEXT NOT NULL, label TEXT NOT NULL, suite TEXT NOT NULL, case_id TEXT NOT NULL,
    attempt INTEGER NOT NULL, verdict TEXT NOT NULL, errno TEXT, pin TEXT, title TEXT,
    titles TEXT, blocks_lost INTEGER, first_bad_offset INTEGER, wall_s REAL, data TEXT,
    PRIMARY KEY (night, label, suite, case_id, attempt));
CREATE TABLE IF NOT EXISTS changes (
    night TEXT NOT NULL, label TEXT NOT NULL, suite TEXT NOT NULL, case_id TEXT NOT NULL,
    class TEXT NOT NULL, previous TEXT, tonight TEXT, detail TEXT, regression INTEGER NOT NULL,
    PRIMARY KEY (night, label, suite, case_id));
"""


class History:
    """The SQLite store: one row per night, per run, per case attempt, per change."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(str(path))
            self.db.row_factory = sqlite3.Row
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise InfraError(f"{path}: history store unusable: {e}")
        self.path = path

    def close(self) -> None:
        self.db.close()

    # nights
    def night(self, name: str) -> Optional[sqlite3.Row]:
        return self.db.execute("SELECT * FROM nights WHERE name=?", (name,)).fetchone()

    def started_night(self, name: str) -> sqlite3.Row:
        """The row of a night start_night() recorded; InfraError when the store has none."""
        row = self.night(name)
        if row is None:
            raise InfraError(f"{self.path}: night {name} is not in the history store")
        return row

    def nights(self, plan: Optional[str] = None) -> list:
        if plan is None:
            return self.db.execute("SELECT * FROM nights ORDER BY seq").fetchall()
        return self.db.execute("SELECT * FROM nights WHERE plan=? ORDER BY seq",
                               (plan,)).fetchall()

    def pick_night(self, date: str, plan: str) -> tuple:
        """(name, resume?): the unfinished night of this plan on this date, else a new name."""
        rows = self.db.execute("SELECT * FROM nights WHERE date=? ORDER BY seq", (date,)).fetchall()
        mine = [r for r in rows if r["plan"] == plan]
        if mine and mine[-1]["status"] != "complete":
            return mine[-1]["name"], True
        taken = {r["name"] for r in rows}
        if date not in taken:
            return date, False
        k = 2
        while f"{date}.{k}" in taken:
            k += 1
        return f"{date}.{k}", False

    def start_night(self, name: str, date: str, plan: NightlyPlan) -> None:
        with self.db:
            if self.night(name):
                self.db.execute("UPDATE nights SET status='running', finished=NULL WHERE name=?",
                                (name,))
            else:
                self.db.execute("INSERT INTO nights (name, date, plan, plan_path, started, status)"
                                " VALUES (?,?,?,?,?,?)", (name, date, plan.name, str(plan.path),
                                                          _now(), "running"))

    def finish_night(self, name: str, status: str, exit_code: int) -> None:
        with self.db:
            self.db.execute("UPDATE nights SET status=?, finished=?, exit_code=? WHERE name=?",
                            (status, _now(), exit_code, name))

    def mark_pruned(self, name: str) -> None:
        with self.db:
            self.db.execute("UPDATE nights SET pruned=1 WHERE name=?", (name,))

    # runs
    def record_run(self, night: str, label: str, suite: str, kernel: str, status: str,
                   message: str = "", run: Optional[LoadedRun] = None,
                   previous_night: Optional[str] = None) -> None:
        k = run.kernel if run else {}
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (night, label, suite, kernel, status, message, str(run.path) if run else None,
                 k.get("release"), " ".join(k.get("packages") or []), k.get("hash"),
                 json.dumps(run.manifest) if run else None, previous_night, _now()))
            self.db.execute("DELETE FROM case_results WHERE night=? AND label=? AND suite=?",
                            (night, label, suite))
            for v in (run.verdicts if run else []):
                self.db.execute(
                    "INSERT OR REPLACE INTO case_results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (night, label, suite, v.case, v.attempt, v.verdict, v.errno, v.pin, v.title,
                     json.dumps(v.titles or []), v.blocks_lost, v.first_bad_offset, v.wall_s,
                     json.dumps(v.to_dict())))

    def runs(self, night: str) -> list:
        return self.db.execute("SELECT * FROM runs WHERE night=? ORDER BY rowid",
                               (night,)).fetchall()

    def run_as_loaded(self, row: sqlite3.Row) -> LoadedRun:
        """A recorded run as compare reads it (its results directory may be pruned)."""
        manifest = json.loads(row["manifest"]) if row["manifest"] else {}
        vs = [verdict_from_dict(json.loads(r["data"]), r["attempt"]) for r in self.db.execute(
            "SELECT * FROM case_results WHERE night=? AND label=? AND suite=? "
            "ORDER BY rowid", (row["night"], row["label"], row["suite"]))]
        return LoadedRun(Path(row["path"] or row["night"]), manifest, vs)

    def previous_run(self, night: str, label: str, suite: str) -> Optional[sqlite3.Row]:
        """The same kernel × suite in the latest earlier night that finished it."""
        seq = self.started_night(night)["seq"]
        return self.db.execute(
            "SELECT runs.* FROM runs JOIN nights ON nights.name = runs.night "
            "WHERE nights.seq < ? AND runs.label=? AND runs.suite=? AND runs.status='done' "
            "ORDER BY nights.seq DESC LIMIT 1", (seq, label, suite)).fetchone()

    # changes
    def record_changes(self, night: str, label: str, suite: str, changes: list) -> None:
        with self.db:
            self.db.execute("DELETE FROM changes WHERE night=? AND label=? AND suite=?",
                            (night, label, suite))
            for c in changes:
                self.db.execute("INSERT OR REPLACE INTO changes VALUES (?,?,?,?,?,?,?,?,?)",
                                (night, label, suite, c["case"], c["class"], c["previous"],
                                 c["tonight"], c["detail"], int(c["regression"])))

    def changes(self, night: str) -> list:
        return [dict(r) for r in self.db.execute(
            "SELECT * FROM changes WHERE night=? ORDER BY rowid", (night,))]

    def pass_rates(self) -> dict:
        """(label:suite, night) → fraction of conclusive attempts that passed (ok or refused).

        Inconclusive attempts (error, skipped) are left out of the fraction, as they are out of
        the exit code; a group with no conclusive attempt has no rate."""
        out = {}
        for r in self.db.execute(
                "SELECT night, label, suite, COUNT(*) AS n, "
                f"SUM(CASE WHEN verdict IN {sql_set(PASSES)} THEN 1 ELSE 0 END) AS p, "
                f"SUM(CASE WHEN verdict IN {sql_set(INCONCLUSIVE)} THEN 1 ELSE 0 END) AS i "
                "FROM case_results GROUP BY night, label, suite"):
            conclusive = r["n"] - r["i"]
            if conclusive:
                out[(f"{r['label']}:{r['suite']}", r["night"])] = r["p"] / conclusive
        return out

    def verdict_counts(self, night: str) -> dict:
        out: dict = {}
        for r in self.db.execute("SELECT label, suite, verdict, COUNT(*) AS n FROM case_results "
                                 "WHERE night=? GROUP BY label, suite, verdict", (night,)):
            out.setdefault((r["label"], r["suite"]), {})[r["verdict"]] = r["n"]
        return out


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# ---------------------------------------------------------------------------- a night

@dataclass
class RunReport:
    label: str
    suite: str
    kernel: str
    path: Path
    status: str                   # done / error
    message: str = ""
    run: Optional[LoadedRun] = None
    previous_night: Optional[str] = None
    changes: list = field(default_factory=list)   # dicts: case, class, previous, tonight, …
    warnings: list = field(default_factory=list)
    reused: bool = False

    @property
    def regressions(self) -> list:
        return [c for c in self.changes if c["regression"]]

    def counts(self) -> dict:
        out: dict = {}
        for v in (self.run.verdicts if self.run else []):
            out[v.verdict] = out.get(v.verdict, 0) + 1
        return out

    def to_dict(self) -> dict:
        k = self.run.kernel if self.run else {}
        return {"label": self.label, "suite": self.suite, "kernel": self.kernel,
                "path": str(self.path), "status": self.status, "message": self.message,
                "release": k.get("release"), "packages": k.get("packages"),
                "reused": self.reused, "previous_night": self.previous_night,
                "counts": self.counts(), "changes": self.changes, "warnings": self.warnings}


@dataclass
class NightReport:
    name: str
    plan: NightlyPlan
    root: Path
    resumed: bool
    runs: list = field(default_factory=list)
    pruned: list = field(default_factory=list)

    @property
    def dir(self) -> Path:
        return self.root / self.name

    @property
    def regressions(self) -> list:
        return [(r, c) for r in self.runs for c in r.regressions]

    @property
    def exit_code(self) -> int:
        """1 a new regression against the previous night · 2 a run could not be done, or a case
        ended in a rig error · 0."""
        if self.regressions:
            return 1
        if any(r.status != "done" for r in self.runs):
            return 2
        if any(v.verdict == Outcome.ERROR for r in self.runs if r.run for v in r.run.verdicts):
            return 2
        return 0

    @property
    def headline(self) -> str:
        reg = self.regressions
        if reg:
            return (f"{len(reg)} new regression(s) against the previous night: " +
                    ", ".join(f"{r.label} × {r.suite}: {c['case']} ({c['class']})"
                              for r, c in reg))
        n = sum(len(r.changes) for r in self.runs)
        bad = [r for r in self.runs if r.status != "done"]
        done = [r for r in self.runs if r.status == "done"]
        if done and all(r.previous_night is None for r in done):
            line = "first night for every run: baseline recorded"
        elif not n:
            line = "no change against the previous night"
        else:
            line = f"{n} change(s) against the previous night, no regression"
        if bad:
            line += f"; {len(bad)} run(s) could not be done"
        return line

    def to_dict(self) -> dict:
        return {"night": self.name, "plan": self.plan.name, "dir": str(self.dir),
                "resumed": self.resumed, "exit_code": self.exit_code,
                "headline": self.headline, "runs": [r.to_dict() for r in self.runs],
                "pruned": self.pruned}


@contextmanager
def locked(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    fh = open(root / ".lock", "w")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise InfraError(f"{root}: another rig nightly is running here (lock {root}/.lock)")
        yield
    finally:
        fh.close()


def run_complete(run: LoadedRun) -> bool:
    """Every recorded case × attempt has a verdict on disk."""
    ids = list(run.case_params)
    repeat = int(run.manifest.get("repeat") or 1)
    have = {(v.case, v.attempt) for v in run.verdicts}
    return bool(ids) and all((c, k) in have for c in ids for k in range(1, repeat + 1))


def run_night(plan: NightlyPlan, root: Optional[Path] = None, date: Optional[str] = None,
              night: Optional[str] = None, echo: Callable = print,
              run_suite: Optional[Callable] = None) -> NightReport:
    root = Path(root or plan.results or paths.RESULTS_DIR / "nightly")
    date = date or time.strftime("%Y-%m-%d")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
        raise UserError(f"--date {date}: expected YYYY-MM-DD")
    if night is not None and not NIGHT_RE.match(night):
        raise UserError(f"--night {night}: expected YYYY-MM-DD or YYYY-MM-DD.N")
    if run_suite is None and plan.lava is not None:
        from pinrig.lava.lab import suite_runner
        run_suite = suite_runner(plan.lava)
    if run_suite is None:
        from pinrig.runs.runner import run_suite
    with locked(root):
        hist = History(root / "history.sqlite")
        try:
            if night:
                row = hist.night(night)
                if row and row["plan"] != plan.name:
                    raise UserError(f"night {night} belongs to plan {row['plan']}, "
                                    f"not {plan.name}")
                name, resumed = night, bool(row)
                date = night.split(".")[0]
            else:
                name, resumed = hist.pick_night(date, plan.name)
            hist.start_night(name, date, plan)
            rep = NightReport(name, plan, root, resumed)
            echo(f"rig: night {name} of plan {plan.name}"
                 f"{' (resuming)' if resumed else ''}: {len(plan.runs())} run(s) → {rep.dir}")
            for pk, suite_arg in plan.runs():
                rep.runs.append(_one_run(hist, rep, pk, suite_arg, echo, run_suite))
            write_night_files(hist, rep)
            status = "complete" if all(r.status == "done" for r in rep.runs) else "partial"
            hist.finish_night(name, status, rep.exit_code)
            rep.pruned = prune(hist, root, plan, keep=plan.retention)
            write_index(hist, root)
            return rep
        finally:
            hist.close()


def _one_run(hist: History, rep: NightReport, pk: PlanKernel, suite_arg: str, echo,
             run_suite) -> RunReport:
    sname = suite_name(suite_arg)
    path = rep.dir / f"{pk.label}-{sname}"
    rr = RunReport(pk.label, sname, pk.kernel, path, "done")
    try:
        if (path / "manifest.json").exists():
            existing = load_run(path)
            if run_complete(existing):
                echo(f"rig: {pk.label} × {sname}: finished earlier tonight, reused")
                rr.reused = True
            else:
                echo(f"rig: {pk.label} × {sname}: resuming {path}")
                run_suite(pk.kernel, suite_arg, resume=path, echo=echo)
        else:
            run_suite(pk.kernel, suite_arg, out=path, repeat=rep.plan.repeat, echo=echo)
        rr.run = load_run(path)
    except RigError as e:
        rr.status, rr.message = "error", f"rig error: {e}"
        echo(f"rig: {pk.label} × {sname}: {rr.message}")
        if (path / "manifest.json").exists():
            try:
                rr.run = load_run(path)
            except RigError:
                rr.run = None
    prev = hist.previous_run(rep.name, pk.label, sname)
    hist.record_run(rep.name, pk.label, sname, pk.kernel, rr.status, rr.message, rr.run,
                    prev["night"] if prev else None)
    if rr.status == "done":
        _compare_with(hist, rr, prev, rep.name)
    return rr


def _compare_with(hist: History, rr: RunReport, prev, night: str) -> None:
    if prev is None:
        rr.message = "first night for this kernel × suite: baseline recorded"
        hist.record_changes(night, rr.label, rr.suite, [])
        return
    tonight = rr.run
    if tonight is None:
        raise InfraError(f"{rr.label} × {rr.suite}: run done but its results were not loaded")
    rr.previous_night = prev["night"]
    before = hist.run_as_loaded(prev)
    cmp = compare_runs(before, tonight, f"{rr.label}@{prev['night']}", f"{rr.label}@{night}")
    for d in cmp.cases:
        if d.cls == "same":
            continue
        rr.changes.append({"case": d.case, "class": d.cls, "previous": d.a.label(),
                           "tonight": d.b.label(), "detail": d.detail,
                           "regression": d.regression})
    for c in cmp.only_b:
        rr.changes.append({"case": c, "class": "new", "previous": "not run",
                           "tonight": ", ".join(sorted({v.verdict for v in tonight.verdicts
                                                        if v.case == c})),
                           "detail": "case not run the previous night", "regression": False})
    for c in cmp.only_a:
        rr.changes.append({"case": c, "class": "dropped", "previous": "run",
                           "tonight": "not run", "detail": "case no longer run",
                           "regression": False})
    rr.warnings = [w for w in cmp.warnings if "only on" not in w]
    hist.record_changes(night, rr.label, rr.suite, rr.changes)
    parts = []
    rel_a, rel_b = cmp.a.release, cmp.b.release
    pk_a, pk_b = " ".join(cmp.a.packages), " ".join(cmp.b.packages)
    if pk_a != pk_b:
        parts.append(f"kernel {pk_a or rel_a} → {pk_b or rel_b}")
    elif cmp.a.hash != cmp.b.hash:
        parts.append(f"kernel artifact {cmp.a.hash} → {cmp.b.hash}")
    if not rr.changes:
        parts.append(f"no change since {prev['night']}")
    else:
        counts: dict = {}
        for c in rr.changes:
            counts[c["class"]] = counts.get(c["class"], 0) + 1
        parts.append(", ".join(f"{n} {k}" for k, n in counts.items()) + f" since {prev['night']}")
    rr.message = "; ".join(parts)


# ---------------------------------------------------------------------------- outputs

def merge_junit(runs: list) -> str:
    """One <testsuites> holding every run's testsuite (named label:suite); a run the rig could
    not do becomes a testsuite with one errored testcase, so CI sees it."""
    top = ET.Element("testsuites")
    totals = {"tests": 0, "failures": 0, "errors": 0, "disabled": 0}   # junit-10.xsd's set
    total_time = 0.0
    for r in runs:
        suites = []
        if r.run is not None:
            xml = junit_xml(RunDir(r.run.path, r.run.manifest), r.run.verdicts)
            suites = list(ET.fromstring(xml).iter("testsuite"))
        if r.status != "done" or not suites:
            ts = ET.Element("testsuite", {"name": f"{r.label}:{r.suite}", "tests": "1",
                                          "failures": "0", "errors": "1", "skipped": "0",
                                          "time": "0"})
            tc = ET.SubElement(ts, "testcase", {"name": "run", "classname": r.suite,
                                                "time": "0"})
            ET.SubElement(tc, "error", {"type": "error",
                                        "message": r.message or "run could not be done"})
            if suites:
                ts.set("name", f"{r.label}:{r.suite}:rig")
            suites.append(ts)
        for ts in suites:
            if not ts.get("name", "").endswith(":rig"):
                ts.set("name", f"{r.label}:{r.suite}")
            for k in totals:
                totals[k] += int(ts.get(k) or 0)
            total_time += float(ts.get("time") or 0)
            top.append(ts)
    for k, v in totals.items():
        top.set(k, str(v))
    top.set("time", f"{total_time:.3f}")
    ET.indent(top)
    return xml_text('<?xml version="1.0" encoding="utf-8"?>\n'
                    + ET.tostring(top, encoding="unicode") + "\n") or ""


def format_text(rep: NightReport) -> str:
    lines = [f"night {rep.name} (plan {rep.plan.name}){' resumed' if rep.resumed else ''}: "
             f"{rep.dir}"]
    rows = []
    for r in rep.runs:
        k = r.run.kernel if r.run else {}
        counts = ", ".join(f"{n} {v}" for v, n in sorted(r.counts().items())) or "-"
        rows.append((f"{r.label} × {r.suite}", k.get("release") or "?", counts,
                     r.message or r.status))
    w = [max([len(x[i]) for x in rows] + [1]) for i in range(3)]
    for x in rows:
        lines.append("  " + "  ".join(x[i].ljust(w[i]) for i in range(3)) + "  " + x[3])
    changes = [(r, c) for r in rep.runs for c in r.changes]
    if changes:
        lines.append("")
        for r, c in changes:
            mark = "!" if c["regression"] else " "
            lines.append(f" {mark} {r.label} × {r.suite}: {c['case']}: {c['class']}: "
                         f"{c['previous']} → {c['tonight']}"
                         + (f" ({c['detail']})" if c["detail"] else ""))
    for r in rep.runs:
        for wmsg in r.warnings:
            lines.append(f"  warning: {r.label} × {r.suite}: {wmsg}")
    if rep.pruned:
        lines.append(f"  retention: removed results of {len(rep.pruned)} older night(s): "
                     + ", ".join(rep.pruned))
    lines += ["", rep.headline]
    return "\n".join(lines) + "\n"


def write_night_files(hist: History, rep: NightReport) -> None:
    from pinrig.results import html as report_html
    d = rep.dir
    d.mkdir(parents=True, exist_ok=True)
    atomic_write(d / "junit.xml", merge_junit(rep.runs))
    atomic_write(d / "night.json", json.dumps(rep.to_dict(), indent=2) + "\n")
    atomic_write(d / "summary.txt", format_text(rep))
    night = dict(hist.started_night(rep.name))
    night["status"] = "complete" if all(r.status == "done" for r in rep.runs) else "partial"
    runs = []
    for r in rep.runs:
        rd = r.to_dict()
        rd["href"] = f"{r.path.name}/summary.txt" if (r.path / "summary.txt").exists() else None
        runs.append(rd)
    changes = [dict(c, label=r.label, suite=r.suite, a=c["previous"], b=c["tonight"])
               for r in rep.runs for c in r.changes]
    atomic_write(d / "index.html", report_html.night_html(night, runs, changes))


def write_index(hist: History, root: Path) -> None:
    from pinrig.results import html as report_html
    nights = []
    for n in reversed(hist.nights()):
        runs = hist.runs(n["name"])
        counts = hist.verdict_counts(n["name"])
        ch = hist.changes(n["name"])
        total = sum(sum(c.values()) for c in counts.values())
        failed = sum(c.get(v.value, 0) for c in counts.values() for v in FAILURES)
        errors = sum(c.get(Outcome.ERROR.value, 0) for c in counts.values()) + \
            sum(1 for r in runs if r["status"] != "done")
        href = f"{n['name']}/index.html" if (not n["pruned"] and
                                             (root / n["name"] / "index.html").exists()) else None
        nights.append({"name": n["name"], "date": n["date"], "plan": n["plan"],
                       "status": n["status"], "runs": len(runs), "cases": total,
                       "failed": failed, "errors": errors, "changes": len(ch),
                       "regressions": sum(c["regression"] for c in ch), "href": href,
                       "baseline": bool(runs) and all(r["previous_night"] is None
                                                      for r in runs)})
    points = hist.pass_rates()
    series = sorted({s for s, _n in points})
    marks: dict = {}
    for n in hist.nights():
        for c in hist.changes(n["name"]):
            key = (f"{c['label']}:{c['suite']}", n["name"])
            if c["regression"] or marks.get(key) != "regression":
                marks[key] = "regression" if c["regression"] else "change"
    atomic_write(root / "index.html",
                 report_html.nightly_index_html("pinrig nightly", nights, series, points, marks))


def prune(hist: History, root: Path, plan: NightlyPlan, keep: int) -> list:
    """Delete the results directories of this plan's nights older than the newest `keep`
    (the history keeps their verdicts, so trends and baselines survive)."""
    nights = [n for n in hist.nights(plan.name)]
    old = nights[:-keep] if keep > 0 else nights
    removed = []
    for n in old:
        if n["pruned"]:
            continue
        name = n["name"]
        d = root / name
        if NIGHT_RE.match(name) and d.parent == root and d.is_dir() and not d.is_symlink():
            shutil.rmtree(d)
            removed.append(name)
        hist.mark_pruned(name)
    return removed
