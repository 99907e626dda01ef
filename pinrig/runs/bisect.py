"""`rig bisect`: which patch of a series flips a case's verdict?

For a source kernel spec with a series of n patches, step k means "the base tree + patches 1..k"
(k = 0 is the bare base). The outcomes at k = 0 ("old") and k = n ("new") are measured first
(unless given); then binary search finds the first k whose outcome is "new". Each step builds
the cumulative prefix through the content-keyed build cache (so a step already built, or the full
series, costs nothing) and runs the one case `--repeat` times. With repeats, a step counts as
"new" when any attempt shows the new outcome (a flaky crash shows up at least once), as "old"
when every attempt shows the old one; anything else is a third outcome, and that step is skipped
like `git bisect skip`.

A series from a git range bisects the same way: each commit of the range is one patch.

Every step is a normal run directory (results/<bisect-id>/step-<k>/ with its own manifest,
written through run_suite) next to a generated kernel spec and quilt directory holding exactly
the patches of that prefix, so any step can be replayed with `rig run` alone.
"""
from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import yaml

from pinrig import config, outcome, paths
from pinrig.cases.verdict import Verdict
from pinrig.errors import UserError
from pinrig.results.compare import outcome_key, outcome_label

OLD, NEW, OTHER = "old", "new", "other"


@dataclass
class Step:
    k: int                          # patches applied: 1..k
    outcomes: list                  # outcome keys, one per attempt
    label: str                      # "old" / "new" / "other"
    run_dir: Optional[str] = None
    titles: list = field(default_factory=list)
    wall_s: float = 0.0

    def to_dict(self) -> dict:
        return {"k": self.k, "class": self.label, "outcomes": [list(o) for o in self.outcomes],
                "run": self.run_dir, "titles": self.titles, "wall_s": round(self.wall_s, 1)}


@dataclass
class BisectResult:
    kernel: str
    case: str
    n: int
    old: tuple
    new: tuple
    first_new: Optional[int]        # 1-based patch index, None when undecided
    candidates: tuple               # when skipped steps leave more than one possibility
    steps: list
    patches: list                   # [(name, subject)]

    def to_dict(self) -> dict:
        d = {"kernel": self.kernel, "case": self.case, "patches": len(self.patches),
             "old": outcome_label(self.old), "new": outcome_label(self.new),
             "first_new": self.first_new, "candidates": list(self.candidates),
             "steps": [s.to_dict() for s in sorted(self.steps, key=lambda s: s.k)]}
        if self.first_new:
            name, subject = self.patches[self.first_new - 1]
            d["patch"] = {"index": self.first_new, "name": name, "subject": subject}
        return d

    def text(self) -> str:
        lines = [f"bisect {self.kernel} {self.case}: {self.n} patches, "
                 f"old = {outcome_label(self.old)}, new = {outcome_label(self.new)}"]
        for s in sorted(self.steps, key=lambda s: s.k):
            what = ", ".join(outcome_label(o) for o in s.outcomes)
            lines.append(f"  step {s.k:>3} ({'base' if s.k == 0 else f'1..{s.k}'}): {s.label:<5} "
                         f"[{what}]" + (f"  {s.run_dir}" if s.run_dir else ""))
        if self.first_new:
            name, subject = self.patches[self.first_new - 1]
            lines.append(f"first new patch: {self.first_new}/{self.n} {name}"
                         + (f" — {subject}" if subject else ""))
        else:
            lines.append("undecided: the first new patch is one of "
                         + ", ".join(f"{k}" for k in self.candidates)
                         + " (steps in between gave a third outcome)")
        return "\n".join(lines)


# ---------------------------------------------------------------------------- the search (pure)

def classify(outcomes: list, old: tuple, new: tuple) -> str:
    if any(o == new for o in outcomes):
        return NEW
    if outcomes and all(o == old for o in outcomes):
        return OLD
    return OTHER


def search(n: int, probe: Callable[[int], str]) -> tuple:
    """First k in 1..n that is NEW, given 0 is OLD and n is NEW; probe(k) → OLD/NEW/OTHER.
    Returns (first_new or None, candidates): OTHER steps are skipped (tried around) and, when
    they leave several possibilities, all of those are returned."""
    lo, hi = 0, n
    skipped: set = set()
    while hi - lo > 1:
        free = [k for k in range(lo + 1, hi) if k not in skipped]
        if not free:
            return None, tuple(range(lo + 1, hi + 1))
        mid = (lo + hi) // 2
        k = min(free, key=lambda x: (abs(x - mid), x))
        r = probe(k)
        if r == NEW:
            hi = k
        elif r == OLD:
            lo = k
        else:
            skipped.add(k)
    return hi, (hi,)


# ---------------------------------------------------------------------------- steps on real kernels

def _parse_outcome(text: str) -> tuple:
    """'refused:EFAULT' / 'refused EFAULT' / 'ok' / 'crash:WARNING in f' → an outcome key."""
    t = text.strip()
    for sep in (":", " "):
        head, s, rest = t.partition(sep)
        if s and head in ("refused", "crash"):
            return (head, rest.strip()) if head == "refused" else ("crash", _norm(rest.strip()))
    if t in ("refused", "crash"):
        return (t, "")
    if t not in outcome.NAMES:
        raise UserError(f"--old/--new: unknown outcome {text!r} (a verdict, 'refused:ERRNO' "
                        "or 'crash:TITLE')")
    return (t,)


def _norm(title: str) -> str:
    from pinrig.results.compare import normalize_title
    return normalize_title(title)


def step_spec(spec: config.KernelSpec, k: int, step_dir: Path, patches,
              series_name: str = "series") -> Path:
    """A kernel spec for 'base + patches 1..k': same source and config, the prefix as quilt."""
    qdir = step_dir / f"{series_name.replace('/', '_').replace(':', '_')}-1..{k}"
    if k:
        qdir.mkdir(parents=True, exist_ok=True)
        for p in patches[:k]:
            (qdir / p.name).write_bytes(p.text.encode("utf-8", "surrogateescape"))
        (qdir / "series").write_text(
            "".join(f"{p.name}" + (f" -p{p.strip}" if p.strip != 1 else "") + "\n"
                    for p in patches[:k]))
    d: dict[str, object] = {
        "name": f"{spec.name}.step-{k}", "kind": "source",
        "description": f"{spec.name} with patches 1..{k} of {len(patches)} (rig bisect)",
        "source": spec.source}
    if spec.suite:
        d["suite"] = spec.suite
    if spec.version:
        d["version"] = spec.version
    if spec.ref:
        d["ref"] = spec.ref
    if spec.mirror != "http://deb.debian.org/debian":
        d["mirror"] = spec.mirror
    if k:
        d["series"] = str(qdir.resolve())
    if k and spec.fuzz:
        d["fuzz"] = spec.fuzz
    d["base"] = list(spec.config_base)
    d["config"] = list(spec.config)
    path = step_dir / "kernel.yaml"
    step_dir.mkdir(parents=True, exist_ok=True)
    path.write_text("# written by rig bisect\n" + yaml.safe_dump(d, sort_keys=False))
    return path


def case_suite(suite: config.Suite, case_id: str, dest: Path) -> Path:
    """A suite file with just that case (no expectation: the raw verdict is what is compared)."""
    case = next((c for c in suite.cases if c.id == case_id), None)
    if case is None:
        known = ", ".join(c.id for c in suite.cases)
        raise UserError(f"case {case_id!r} is not in suite {suite.name} (its cases: {known})")
    entry = {"workload": case.workload, "fs": case.fs, "mapping": case.mapping,
             "size": case.size, "timeout": case.timeout}
    if case.variant:
        entry["variant"] = case.variant
    pressure = {k: v for k, v in suite.pressure.__dict__.items() if v not in (None, False)}
    d = {"name": f"{suite.name}-bisect", "description": f"{case_id} from {suite.name} (rig bisect)",
         "seed": suite.seed, "cases": [entry]}
    if pressure:
        d["pressure"] = pressure
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("# written by rig bisect\n" + yaml.safe_dump(d, sort_keys=False))
    return dest


def run_bisect(kernel: str, suite_name: str, case_id: str, repeat: int = 1,
               out: Optional[Path] = None, old: Optional[str] = None, new: Optional[str] = None,
               echo=print, runner=None) -> BisectResult:
    """runner(kernel_yaml, suite_yaml, out_dir, repeat) → [Verdict] (default: run_suite)."""
    from pinrig.kernels.source.series import load_series
    from pinrig.kernels.source.sources import resolve
    spec = config.load_kernel_spec(kernel)
    if spec.kind != "source" or not spec.series:
        raise UserError(f"{spec.path}: bisect needs a source kernel spec with a series "
                        f"(kind: source, series: …)")
    suite = config.load_suite(suite_name)
    ref = resolve(spec)
    series = load_series(spec.series, ref.repo if ref.kind == "git" else None,
                         rev=spec.series_rev, local_mbox=spec.series_mbox)
    patches = list(series.patches)
    n = len(patches)
    if repeat < 1:
        raise UserError("--repeat: must be at least 1")
    out = out or paths.RESULTS_DIR / (f"bisect-{time.strftime('%Y%m%d-%H%M%S')}-{spec.name}-"
                                      + case_id.replace("/", "_"))
    out = out.resolve()            # the step specs name their quilt prefix by absolute path
    out.mkdir(parents=True, exist_ok=True)
    suite_file = case_suite(suite, case_id, out / "suite.yaml")
    run = runner or _run_with_run_suite
    steps: dict = {}

    def measure(k: int) -> Step:
        if k in steps:
            return steps[k]
        sdir = out / f"step-{k}"
        kyaml = step_spec(spec, k, sdir, patches, series.name)
        echo(f"rig: bisect step {k}/{n}: building and running {case_id} ×{repeat}")
        t0 = time.monotonic()
        verdicts = run(kyaml, suite_file, sdir / "run", repeat)
        outcomes = [outcome_key(v) for v in verdicts]
        titles = [v.title for v in verdicts if v.title]
        st = Step(k, outcomes, "", str(sdir / "run"), titles, time.monotonic() - t0)
        steps[k] = st
        return st

    old_key = _parse_outcome(old) if old else None
    new_key = _parse_outcome(new) if new else None
    if old_key is None:
        s0 = measure(0)
        old_key = _majority(s0.outcomes)
    if new_key is None:
        sn = measure(n)
        new_key = _pick_new(sn.outcomes, old_key)
    if old_key == new_key:
        raise UserError(f"{case_id} is {outcome_label(old_key)} both without the series and with "
                        f"all {n} patches of {series.name}: nothing to bisect")
    for st in steps.values():
        st.label = classify(st.outcomes, old_key, new_key)
    if 0 in steps and steps[0].label != OLD:
        raise UserError(f"step 0 (no patches) is not {outcome_label(old_key)}: "
                        f"{', '.join(outcome_label(o) for o in steps[0].outcomes)}")
    if n in steps and steps[n].label != NEW:
        raise UserError(f"step {n} (all patches) never shows {outcome_label(new_key)}: "
                        f"{', '.join(outcome_label(o) for o in steps[n].outcomes)}")

    def probe(k: int) -> str:
        st = measure(k)
        st.label = classify(st.outcomes, old_key, new_key)
        echo(f"rig: bisect step {k}/{n}: {st.label} "
             f"({', '.join(outcome_label(o) for o in st.outcomes)})")
        return st.label

    first, cands = search(n, probe)
    res = BisectResult(spec.name, case_id, n, old_key, new_key, first, cands,
                       list(steps.values()), [(p.name, p.subject) for p in patches])
    (out / "bisect.json").write_text(json.dumps(res.to_dict(), indent=2))
    (out / "bisect.txt").write_text(res.text() + "\n" + "reproduce: " + shlex.join(
        ["rig", "bisect", kernel, "--suite", suite_name, "--case", case_id,
         "--repeat", str(repeat)]) + "\n")
    return res


def _majority(outcomes: list) -> tuple:
    return max(set(outcomes), key=lambda o: (outcomes.count(o), str(o)))


def _pick_new(outcomes: list, old_key: tuple) -> tuple:
    """The 'new' outcome at the full series: the most frequent one that differs from old."""
    diff = [o for o in outcomes if o != old_key]
    return _majority(diff) if diff else old_key


def _run_with_run_suite(kernel_yaml: Path, suite_yaml: Path, out: Path, repeat: int) -> list:
    from pinrig.runs.runner import run_suite
    res = run_suite(str(kernel_yaml), str(suite_yaml), out=out, repeat=repeat,
                    echo=lambda *a, **k: None)
    return [v for v in res.verdicts if isinstance(v, Verdict)]
