"""`rig compare`: the same suite on two kernels → per-case classification, built on results dirs.

Each side is a results directory (run now, or reused). Per case and side the attempts (N with
--repeat N) are summarised as outcome rates; the two sides are then classified:

  new crash         B shows a crash title (normalised) that A never showed          regression
  regressed         A never failed, B failed at least once                            regression
  gone crash        A showed a crash title that B never shows
  fixed             A failed at least once, B never failed
  flaky             mixed outcomes within a side (and none of the above)
  behaviour change  pin granted ↔ refused, or a different errno (both sides consistent)
  changed           different outcomes that none of the above names (e.g. data-loss → unexpected)
  inconclusive      a side has no conclusive attempt (only error/skipped) and the sides differ
  same              nothing to report

Nothing here knows about particular kernels or cases: it reads each verdict's `verdict`, `pin`,
`errno` and crash titles. `error` and `skipped` attempts count in the rates but not as outcomes.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from pinrig.cases.verdict import Verdict
from pinrig.errors import UserError
from pinrig.oops import normalize_title
from pinrig.outcome import FAILURES, INCONCLUSIVE, Outcome
from pinrig.results.rundir import RunDir, read_manifest

REGRESSION_CLASSES = ("new crash", "regressed")
# priority order: the first that applies is a case's class; all that apply are its tags
CLASSES = ("new crash", "regressed", "gone crash", "fixed", "flaky", "behaviour change",
           "changed", "inconclusive", "same")


# ---------------------------------------------------------------------------- reading runs

@dataclass
class LoadedRun:
    """A results directory read back: its manifest and every finished attempt as a Verdict."""
    path: Path
    manifest: dict
    verdicts: list            # Verdict, in the suite's case order, then by attempt
    unreadable: list = field(default_factory=list)   # rundir.Unreadable: counted, never dropped

    @property
    def kernel(self) -> dict:
        return self.manifest.get("kernel") or {}

    @property
    def suite_name(self) -> Optional[str]:
        return (self.manifest.get("suite") or {}).get("name")

    @property
    def case_params(self) -> dict:
        """case id → recorded case parameters (workload, fs, mapping, variant, size, …)."""
        out = {}
        for c in (self.manifest.get("suite") or {}).get("cases") or []:
            if isinstance(c, dict) and c.get("id"):
                out[c["id"]] = c
        return out

    def by_case(self) -> dict:
        out: dict = {}
        for v in self.verdicts:
            out.setdefault(v.case, []).append(v)
        return out


def verdict_from_dict(d: dict, attempt: Optional[int] = None) -> Verdict:
    return Verdict.from_dict(d, attempt)


def load_run(path) -> LoadedRun:
    """Read a results directory (manifest.json + cases/**/verdict.json)."""
    path = Path(path)
    manifest = read_manifest(path)
    run = RunDir(path, manifest)
    verdicts = [verdict_from_dict(d, attempt) for (case, attempt), d in run.finished_cases().items()]
    # An unreadable verdict stands as an inconclusive attempt of its case, so a comparison
    # cannot mistake a lost crash for a "new crash" on the other side or a missing case.
    verdicts += [Verdict(case=u.case, verdict=Outcome.ERROR, attempt=u.attempt,
                         reason=f"unreadable verdict.json: {u.reason}") for u in run.unreadable]
    order = {c: i for i, c in enumerate(LoadedRun(path, manifest, []).case_params)}
    verdicts.sort(key=lambda v: (order.get(v.case, len(order)), v.case, v.attempt))
    return LoadedRun(path, manifest, verdicts, list(run.unreadable))


# ---------------------------------------------------------------------------- titles



def attempt_titles(v: Verdict) -> list:
    titles = list(v.titles or [])
    if v.title and v.title not in titles:
        titles.insert(0, v.title)
    return titles


# ---------------------------------------------------------------------------- outcomes

def outcome_key(v: Verdict) -> tuple:
    """What 'the same outcome' means for one attempt: the verdict, plus the errno of a refusal
    and the normalised headline of a crash."""
    if v.verdict == Outcome.CRASH:
        return (Outcome.CRASH, normalize_title(v.title) if v.title else "")
    if v.verdict == Outcome.REFUSED:
        return (Outcome.REFUSED, v.errno or "")
    return (v.verdict,)


def outcome_label(key: tuple, title: Optional[str] = None) -> str:
    """How an outcome reads; `title` shows a crash as reported rather than normalised."""
    if key[0] == Outcome.CRASH:
        shown = title or key[1]
        return f"crash: {shown}" if shown else "crash"
    if key[0] == Outcome.REFUSED:
        return f"refused {key[1]}".strip()
    return str(key[0])


def pin_state(v: Verdict) -> Optional[tuple]:
    """(granted|refused, errno) when the attempt says what happened to the pin, else None."""
    if v.verdict in INCONCLUSIVE:
        return None
    pin = v.pin
    if pin not in ("granted", "refused"):
        if v.verdict == Outcome.REFUSED:
            pin = "refused"
        else:
            return None
    return (pin, v.errno if pin == "refused" else None)


def pin_label(p: tuple) -> str:
    return f"refused ({p[1]})" if p[0] == "refused" and p[1] else p[0]


@dataclass
class SideStats:
    """One case on one side: its attempts summarised."""
    attempts: list

    @property
    def n(self) -> int:
        return len(self.attempts)

    @property
    def conclusive(self) -> list:
        return [v for v in self.attempts if v.verdict not in INCONCLUSIVE]

    @property
    def failures(self) -> int:
        return sum(1 for v in self.attempts if v.verdict in FAILURES)

    @property
    def fail_rate(self) -> Optional[float]:
        c = len(self.conclusive)
        return self.failures / c if c else None

    @property
    def outcomes(self) -> Counter:
        """outcome key → attempts, for every attempt (error/skipped included)."""
        return Counter(outcome_key(v) for v in self.attempts)

    @property
    def conclusive_outcomes(self) -> set:
        return {outcome_key(v) for v in self.conclusive}

    @property
    def mixed(self) -> bool:
        return len(self.conclusive_outcomes) > 1

    @property
    def pins(self) -> set:
        return {p for p in (pin_state(v) for v in self.attempts) if p}

    @property
    def titles(self) -> set:
        return {normalize_title(t) for v in self.attempts for t in attempt_titles(v)}

    def raw_title(self, normalised: str) -> str:
        """The first title as reported whose normalised form is `normalised`."""
        for v in self.attempts:
            for t in attempt_titles(v):
                if normalize_title(t) == normalised:
                    return t
        return normalised

    def show(self, key: tuple) -> str:
        return outcome_label(key, self.raw_title(key[1]) if key[0] == "crash" else None)

    def label(self) -> str:
        """'ok', 'refused EFAULT', 'ok 2/3 · data-loss 1/3'."""
        counts = self.outcomes
        if len(counts) == 1 and self.n == 1:
            return self.show(next(iter(counts)))
        return " · ".join(f"{self.show(k)} {c}/{self.n}" for k, c in counts.most_common())

    def verdict_rates(self) -> dict:
        """verdict → fraction of attempts (what the chart draws)."""
        c = Counter(v.verdict for v in self.attempts)
        return {k: c[k] / self.n for k in c} if self.n else {}

    def to_dict(self) -> dict:
        return {
            "attempts": self.n,
            "label": self.label(),
            "outcomes": [{"outcome": self.show(k), "verdict": k[0], "count": c,
                          "rate": round(c / self.n, 4)} for k, c in self.outcomes.most_common()],
            "failures": self.failures,
            "fail_rate": None if self.fail_rate is None else round(self.fail_rate, 4),
            "pins": sorted(pin_label(p) for p in self.pins),
            "titles": sorted(self.titles),            # normalised
            "verdicts": [v.to_dict() for v in self.attempts],
        }


@dataclass
class CaseDiff:
    case: str
    cls: str
    tags: list = field(default_factory=list)
    a: Optional[SideStats] = None
    b: Optional[SideStats] = None
    notes: list = field(default_factory=list)

    @property
    def regression(self) -> bool:
        return self.cls in REGRESSION_CLASSES

    @property
    def detail(self) -> str:
        return "; ".join(self.notes)

    def to_dict(self) -> dict:
        return {"case": self.case, "class": self.cls, "tags": self.tags,
                "regression": self.regression, "detail": self.detail,
                "a": self.a.to_dict() if self.a else None,
                "b": self.b.to_dict() if self.b else None}


def _rate(s: SideStats) -> str:
    return f"{s.failures}/{len(s.conclusive)}"


def classify(case: str, a: list, b: list) -> CaseDiff:
    """Classify one case from its attempts on A and on B (lists of Verdict, non-empty)."""
    sa, sb = SideStats(a), SideStats(b)
    d = CaseDiff(case, "same", [], sa, sb)
    tags, notes = [], []
    if not sa.conclusive or not sb.conclusive:
        if sa.outcomes.keys() == sb.outcomes.keys():
            d.cls = "same"
        else:
            d.cls = "inconclusive"
            for name, s in (("A", sa), ("B", sb)):
                if not s.conclusive:
                    why = "; ".join(sorted({v.reason for v in s.attempts if v.reason}))
                    notes.append(f"no conclusive attempt on {name}"
                                 + (f" ({why})" if why else ""))
            d.tags, d.notes = ["inconclusive"], notes
        return d
    new_titles = sorted(sb.titles - sa.titles)
    gone_titles = sorted(sa.titles - sb.titles)
    if new_titles:
        tags.append("new crash")
        notes.append("new crash: " + ", ".join(sb.raw_title(t) for t in new_titles))
    fa, fb = sa.failures, sb.failures
    if fa == 0 and fb > 0:
        tags.append("regressed")
        notes.append(f"failures {_rate(sa)} → {_rate(sb)}")
    if gone_titles:
        tags.append("gone crash")
        notes.append("gone crash: " + ", ".join(sa.raw_title(t) for t in gone_titles))
    if fa > 0 and fb == 0:
        tags.append("fixed")
        notes.append(f"failures {_rate(sa)} → {_rate(sb)}")
    if sa.mixed or sb.mixed:
        tags.append("flaky")
        sides = [n for n, s in (("A", sa), ("B", sb)) if s.mixed]
        notes.append("mixed outcomes on " + " and ".join(sides))
    pa, pb = sa.pins, sb.pins
    if len(pa) == 1 and len(pb) == 1 and pa != pb:
        tags.append("behaviour change")
        notes.append(f"pin {pin_label(next(iter(pa)))} → {pin_label(next(iter(pb)))}")
    if not tags and sa.conclusive_outcomes != sb.conclusive_outcomes:
        tags.append("changed")
        notes.append(f"{sa.label()} → {sb.label()}")
    if not tags and fa and fb and sa.n == sb.n and fa != fb:
        notes.append(f"failures {_rate(sa)} → {_rate(sb)}")
    for extra in sorted(set(v.verdict for v in a + b) & set(INCONCLUSIVE)):
        na = sum(1 for v in a if v.verdict == extra)
        nb = sum(1 for v in b if v.verdict == extra)
        notes.append(f"{extra}: {na}/{sa.n} on A, {nb}/{sb.n} on B")
    d.tags = tags or ["same"]
    d.cls = next(c for c in CLASSES if c in d.tags)
    d.notes = notes
    return d


# ---------------------------------------------------------------------------- a comparison

@dataclass
class SideInfo:
    label: str                 # what the user called it (kernel arg)
    kernel: str
    release: str
    packages: list
    hash: str
    run: str
    suite: str
    seed: Optional[int]
    repeat: int
    accel: Optional[str]
    guest_hash: Optional[str]

    @classmethod
    def of(cls, label: str, run: LoadedRun) -> "SideInfo":
        k = run.kernel
        m = run.manifest
        return cls(label=label, kernel=k.get("name") or label, release=k.get("release") or "?",
                   packages=list(k.get("packages") or []), hash=k.get("hash") or "?",
                   run=str(run.path), suite=run.suite_name or "?", seed=m.get("seed"),
                   repeat=int(m.get("repeat") or 1), accel=m.get("accel"),
                   guest_hash=(m.get("guest") or {}).get("hash"))

    @property
    def title(self) -> str:
        return f"{self.label} ({self.release})"

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Comparison:
    a: SideInfo
    b: SideInfo
    cases: list                # CaseDiff, in suite order
    warnings: list = field(default_factory=list)
    only_a: list = field(default_factory=list)
    only_b: list = field(default_factory=list)

    @property
    def regressions(self) -> list:
        return [c for c in self.cases if c.regression]

    @property
    def counts(self) -> dict:
        c = Counter(d.cls for d in self.cases)
        return {k: c[k] for k in CLASSES if c[k]}

    @property
    def errors_only(self) -> list:
        """Cases the rig could not judge on a side because of infrastructure errors."""
        return [d for d in self.cases if d.cls == "inconclusive"
                and any(s and s.n and all(v.verdict == Outcome.ERROR for v in s.attempts)
                        for s in (d.a, d.b))]

    @property
    def exit_code(self) -> int:
        """1: B regresses against A · 2: some case could not be judged (infrastructure) · 0."""
        if self.regressions:
            return 1
        return 2 if self.errors_only else 0

    @property
    def verdict_line(self) -> str:
        if self.regressions:
            return (f"{self.b.label} REGRESSES against {self.a.label}: "
                    f"{len(self.regressions)} case(s) " +
                    ", ".join(f"{d.case} ({d.cls})" for d in self.regressions))
        line = f"{self.b.label} does not regress against {self.a.label}"
        if self.errors_only:
            line += f" (but {len(self.errors_only)} case(s) could not be judged: rig errors)"
        return line

    @property
    def suite(self) -> str:
        return self.a.suite if self.a.suite == self.b.suite else f"{self.a.suite} / {self.b.suite}"

    def to_dict(self) -> dict:
        return {"a": self.a.to_dict(), "b": self.b.to_dict(), "suite": self.suite,
                "summary": self.counts, "regression": bool(self.regressions),
                "exit_code": self.exit_code, "verdict": self.verdict_line,
                "warnings": self.warnings, "only_a": self.only_a, "only_b": self.only_b,
                "cases": [d.to_dict() for d in self.cases]}


def compare_runs(run_a: LoadedRun, run_b: LoadedRun, label_a: Optional[str] = None,
                 label_b: Optional[str] = None) -> Comparison:
    a = SideInfo.of(label_a or run_a.kernel.get("name") or "A", run_a)
    b = SideInfo.of(label_b or run_b.kernel.get("name") or "B", run_b)
    va, vb = run_a.by_case(), run_b.by_case()
    warnings = _manifest_warnings(run_a, run_b, a, b)
    for name, side, run in (("A", a, run_a), ("B", b, run_b)):
        if run.unreadable:
            warnings.append(f"{len(run.unreadable)} unreadable verdict(s) on {name} ({side.label}), "
                            "counted inconclusive: " + "; ".join(map(str, run.unreadable)))
    order = list(run_a.case_params) + [c for c in run_b.case_params if c not in run_a.case_params]
    order += [c for c in list(va) + list(vb) if c not in order]
    cases, only_a, only_b = [], [], []
    for case in order:
        if case in va and case in vb:
            cases.append(classify(case, va[case], vb[case]))
        elif case in va:
            only_a.append(case)
        elif case in vb:
            only_b.append(case)
    for name, side, lst in (("A", a, only_a), ("B", b, only_b)):
        if lst:
            warnings.append(f"{len(lst)} case(s) only on {name} ({side.label}), not compared: "
                            + ", ".join(lst))
    return Comparison(a, b, cases, warnings, only_a, only_b)


def _manifest_warnings(run_a: LoadedRun, run_b: LoadedRun, a: SideInfo, b: SideInfo) -> list:
    w = []
    if a.suite != b.suite:
        w.append(f"the sides ran different suites: {a.suite} on A, {b.suite} on B")
    if a.seed != b.seed:
        w.append(f"the sides ran with different seeds: {a.seed} on A, {b.seed} on B")
    if a.guest_hash != b.guest_hash:
        w.append(f"the sides used different guest images: {a.guest_hash} on A, "
                 f"{b.guest_hash} on B")
    if a.accel != b.accel:
        w.append(f"the sides ran with different accelerators: {a.accel} on A, {b.accel} on B")
    pa, pb = run_a.case_params, run_b.case_params
    for case in pa:
        if case in pb:
            diff = sorted(k for k in set(pa[case]) | set(pb[case])
                          if pa[case].get(k) != pb[case].get(k))
            if diff:
                w.append(f"{case}: case parameters differ between the sides ({', '.join(diff)})")
    ra, rb = Counter(v.case for v in run_a.verdicts), Counter(v.case for v in run_b.verdicts)
    if len(set(ra.values()) | set(rb.values())) > 1:
        w.append("attempt counts differ between cases or sides "
                 f"(A: {_span(ra)}, B: {_span(rb)} attempt(s) per case); rates are per side")
    return w


def _span(c: Counter) -> str:
    vals = sorted(set(c.values()))
    if not vals:
        return "0"
    return str(vals[0]) if len(vals) == 1 else f"{vals[0]}–{vals[-1]}"


# ---------------------------------------------------------------------------- text formats

def format_text(cmp: Comparison) -> str:
    a, b = cmp.a, cmp.b
    n = max(a.repeat, b.repeat)
    lines = [f"compare {a.title} → {b.title}, suite {cmp.suite}"
             + (f", {n} attempts per case" if n > 1 else ""),
             f"  A: {a.run}", f"  B: {b.run}", ""]
    rows = [("case", a.label, b.label, "class", "")]
    rows += [(d.case, d.a.label(), d.b.label(), d.cls, d.detail) for d in cmp.cases]
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    for i, r in enumerate(rows):
        line = "  " + "  ".join(r[j].ljust(w[j]) for j in range(4)) + "  " + r[4]
        lines.append(line.rstrip())
        if i == 0:
            lines.append("  " + "  ".join("-" * w[j] for j in range(4)))
    lines.append("")
    for msg in cmp.warnings:
        lines.append(f"  warning: {msg}")
    if cmp.warnings:
        lines.append("")
    lines.append("  " + (", ".join(f"{c} {k}" for k, c in cmp.counts.items()) or "no cases"))
    lines.append("  " + cmp.verdict_line)
    return "\n".join(lines) + "\n"


def _md(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def format_markdown(cmp: Comparison) -> str:
    a, b = cmp.a, cmp.b
    n = max(a.repeat, b.repeat)
    out = [f"### pinrig compare: `{_md(a.label)}` → `{_md(b.label)}`, suite `{_md(cmp.suite)}`",
           "",
           f"- **A** `{_md(a.label)}`: {_md(a.release)}, {_md(' '.join(a.packages))}, "
           f"artifact `{a.hash}`",
           f"- **B** `{_md(b.label)}`: {_md(b.release)}, {_md(' '.join(b.packages))}, "
           f"artifact `{b.hash}`",
           f"- {n} attempt(s) per case, seed {a.seed}, accel {a.accel}", "",
           f"**{_md(cmp.verdict_line)}**", "",
           f"| case | {_md(a.label)} | {_md(b.label)} | class | detail |",
           "|---|---|---|---|---|"]
    for d in cmp.cases:
        cls = f"**{d.cls}**" if d.cls not in ("same",) else d.cls
        out.append(f"| `{_md(d.case)}` | {_md(d.a.label())} | {_md(d.b.label())} | {cls} | "
                   f"{_md(d.detail)} |")
    out.append("")
    out.append(", ".join(f"{c} {k}" for k, c in cmp.counts.items()) or "no cases")
    if cmp.warnings:
        out.append("")
        out += [f"> warning: {_md(w)}" for w in cmp.warnings]
    return "\n".join(out) + "\n"


def format_json(cmp: Comparison) -> str:
    return json.dumps(cmp.to_dict(), indent=2) + "\n"
