"""`rig repro RESULT_DIR`: replay recorded case(s) exactly, from the manifest alone.

The manifest pins everything: the kernel's Debian packages ("name=version"), the guest image
hash, the suite's case parameters and pressure, the run seed (per-case seeds derive from it and
the case id). A repro writes a kernel spec and a suite file from those into its own results
directory, then runs them N times with run_suite, stopping early after K reproductions. Nothing
outside the results directory is read, so a directory copied from another machine replays too.

An attempt reproduces the original when its outcome is the same: the same verdict, the same
normalised crash headline for a crash, the same errno for a refusal (data loss: blocks lost again).
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import yaml

from pinrig import config, paths
from pinrig.cases.execute import case_seed
from pinrig.cases.verdict import Verdict
from pinrig.errors import InfraError, UserError
from pinrig.outcome import FAILURES, PASSES, Outcome
from pinrig.results.compare import (
    LoadedRun,
    attempt_titles,
    normalize_title,
    outcome_key,
    outcome_label,
)

CASE_KEYS = ("workload", "fs", "mapping", "variant", "expect", "size", "timeout")
PRESSURE_KEYS = ("dirty_ratio", "dirty_background_ratio", "dirty_expire_centisecs",
                 "dirty_writeback_centisecs", "sync_storm", "drop_caches", "memcg_limit_mb")
# a replay looks for an attempt that showed something: not a pass, not a skip
NOT_INTERESTING = PASSES | {Outcome.SKIPPED}
KERNEL_IMAGE_RE = re.compile(r"^linux-image-\d")


# ---------------------------------------------------------------------------- the plan (pure)

@dataclass
class ReproPlan:
    run: LoadedRun
    cases: list                    # case ids, suite order
    originals: dict                # case id → Verdict to reproduce
    kernel_yaml: str
    suite_yaml: str
    package: tuple                 # (name, version) pinned in the kernel spec
    seed: int
    warnings: list = field(default_factory=list)


def parse_packages(manifest: dict, where: str) -> list:
    pkgs = (manifest.get("kernel") or {}).get("packages") or []
    out = []
    for i, p in enumerate(pkgs):
        if not isinstance(p, str) or "=" not in p:
            raise UserError(f"{where}: kernel.packages[{i}]: expected 'name=version', got {p!r}")
        name, ver = p.split("=", 1)
        out.append((name, ver))
    if not out:
        raise UserError(f"{where}: kernel.packages: empty; the kernel cannot be pinned")
    return out


def kernel_spec_yaml(manifest: dict, where: str, mirror: Optional[str] = None) -> tuple:
    """A kernel spec pinning the recorded versioned package → (yaml text, (name, version))."""
    k = manifest.get("kernel") or {}
    fields = k.get("spec_fields") or {}
    kind = fields.get("kind", "debian")
    if kind == "image":
        return image_spec_yaml(manifest, where)
    if kind != "debian":
        raise UserError(f"{where}: kernel.spec_fields.kind: {kind} kernels cannot be replayed")
    suite = fields.get("suite") or k.get("suite")
    if not suite:
        raise UserError(f"{where}: kernel.suite: missing; cannot tell which Debian suite to use")
    pkgs = parse_packages(manifest, where)
    name, ver = next((p for p in pkgs if KERNEL_IMAGE_RE.match(p[0])), pkgs[0])
    # recorded data becomes file names and apt arguments: check it like any input
    for pname, pver in pkgs:
        if not config.PACKAGE_RE.fullmatch(pname) or not config.VERSION_RE.fullmatch(pver):
            raise UserError(f"{where}: kernel.packages: {pname}={pver!r} is not a Debian "
                            "package name and version")
    if suite not in config.DEBIAN_SUITES:
        raise UserError(f"{where}: kernel.suite: unknown Debian suite {suite!r}")
    spec = {"name": k.get("name") or fields.get("name") or "replay", "kind": "debian",
            "suite": suite, "package": name, "version": ver,
            "mirror": mirror or fields.get("mirror") or "http://deb.debian.org/debian",
            "description": f"replay of {manifest.get('run_id') or 'a recorded run'}: "
                           + " ".join(f"{n}={v}" for n, v in pkgs)}
    text = "# written by rig repro from a results manifest: the exact recorded kernel\n"
    return text + yaml.safe_dump(spec, sort_keys=False), (name, ver)


def image_spec_yaml(manifest: dict, where: str) -> tuple:
    """A kind: image spec for a recorded --kernel run: the artifact of the recorded hash when
    it is still cached (exactly that kernel), else the recorded path (the hash is checked
    by preflight) → (yaml text, ("image", hash))."""
    k = manifest.get("kernel") or {}
    fields = k.get("spec_fields") or {}
    want = k.get("hash")
    if not isinstance(want, str) or not re.fullmatch(r"[0-9a-f]{16}", want):
        raise UserError(f"{where}: kernel.hash: missing or not an artifact hash")
    cached = paths.cache_dir() / "kernels" / "local" / want
    image, modules = fields.get("image"), fields.get("modules")
    if (cached / "artifact.json").exists() and (cached / "vmlinuz").exists():
        image, modules = str(cached / "vmlinuz"), None
    elif not isinstance(image, str) or not Path(image).exists():
        raise UserError(f"{where}: the run's kernel {image} (artifact {want}) is neither there "
                        "nor in the cache any more")
    spec = {"name": k.get("name") or fields.get("name") or "replay", "kind": "image",
            "image": image}
    if isinstance(modules, str) and modules:
        spec["modules"] = modules
    text = "# written by rig repro from a results manifest: the recorded --kernel build\n"
    return text + yaml.safe_dump(spec, sort_keys=False), ("image", want)


def suite_yaml(manifest: dict, case_ids: list, where: str) -> tuple:
    """A suite restricted to case_ids, with the recorded parameters, pressure and seed →
    (yaml text, warnings)."""
    s = manifest.get("suite") or {}
    recorded = {c.get("id"): c for c in s.get("cases") or [] if isinstance(c, dict)}
    warnings = []
    cases = []
    for cid in case_ids:
        c = recorded[cid]
        entry = {}
        for key in CASE_KEYS:
            if c.get(key) is not None:
                entry[key] = c[key]
        extra = sorted(k for k in c if k not in CASE_KEYS + ("id",) and c[k] is not None)
        if extra:
            warnings.append(f"{cid}: recorded parameter(s) {', '.join(extra)} unknown to this "
                            "rig: not replayed")
        cases.append(entry)
    pressure = {}
    for k, v in (s.get("pressure") or {}).items():
        if k not in PRESSURE_KEYS:
            warnings.append(f"recorded pressure setting {k} unknown to this rig: not replayed")
        elif v is not None:
            pressure[k] = v
    seed = manifest.get("seed")
    data = {"name": s.get("name") or "replay",
            "description": f"replay of {manifest.get('run_id') or 'a recorded run'}",
            "seed": int(seed if seed is not None else 1)}
    if pressure:
        data["pressure"] = pressure
    data["cases"] = cases
    text = "# written by rig repro from a results manifest: the recorded cases and seed\n"
    return text + yaml.safe_dump(data, sort_keys=False), warnings


def original_verdict(attempts: list) -> Verdict:
    """The outcome to reproduce: the first attempt that was not ok/refused/skipped, else #1."""
    return next((v for v in attempts if v.verdict not in NOT_INTERESTING), attempts[0])


def plan_repro(run: LoadedRun, cases: Optional[list] = None,
               mirror: Optional[str] = None) -> ReproPlan:
    where = str(run.path / "manifest.json")
    params = run.case_params
    if not params:
        raise UserError(f"{where}: suite.cases: no recorded cases; nothing to replay")
    by_case = run.by_case()
    bad = {u.case: u for u in run.unreadable}
    for c in cases or []:
        if c in bad:
            raise UserError(f"{run.path}: the recorded verdict of {c} is unreadable "
                            f"({bad[c].reason}); nothing to match a replay against")
    if bad and not cases:
        raise UserError(f"{run.path}: {len(bad)} unreadable verdict(s) ("
                        + "; ".join(map(str, run.unreadable))
                        + "): name the case to replay with --case")
    if cases:
        for c in cases:
            if c not in params:
                known = ", ".join(list(params)[:8]) + (" …" if len(params) > 8 else "")
                raise UserError(f"{run.path}: no case '{c}' in this run (cases: {known})")
        chosen = [c for c in params if c in cases]
    else:
        chosen = [next((c for c in params if any(v.verdict not in NOT_INTERESTING
                                                 for v in by_case.get(c, []))), None)]
        if chosen[0] is None:
            raise UserError(f"{run.path}: every recorded case is ok, refused or skipped; "
                            "name the case to replay with --case")
    originals = {}
    warnings = []
    for c in chosen:
        if by_case.get(c):
            originals[c] = original_verdict(by_case[c])
        else:
            warnings.append(f"{c}: no recorded verdict (the run did not finish it); "
                            "replaying without an outcome to match")
    seed = manifest_seed(run.manifest)
    ktext, pkg = kernel_spec_yaml(run.manifest, where, mirror)
    stext, w = suite_yaml(run.manifest, chosen, where)
    warnings += w
    warnings += _seed_warnings(run, originals, seed)
    return ReproPlan(run, chosen, originals, ktext, stext, pkg, seed, warnings)


def manifest_seed(manifest: dict) -> int:
    seed = manifest.get("seed")
    return 1 if seed is None else int(seed)


def _seed_warnings(run: LoadedRun, originals: dict, seed: int) -> list:
    out = []
    for c, v in originals.items():
        if v.seed is not None and v.seed != case_seed(seed, c):
            out.append(f"{c}: recorded case seed {v.seed} is not what this rig derives from run "
                       f"seed {seed} ({case_seed(seed, c)}); data patterns may differ")
    return out


# ---------------------------------------------------------------------------- judging attempts

@dataclass
class AttemptResult:
    attempt: int
    case: str
    verdict: Optional[Verdict]     # None: the rig failed before the case ran
    reproduced: bool
    verdict_match: bool
    title_match: Optional[bool] = None      # crash originals only
    errno_match: Optional[bool] = None      # refused originals only
    data_loss_match: Optional[bool] = None  # data-loss originals only
    note: str = ""
    run: Optional[str] = None

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["verdict"] = self.verdict.to_dict() if self.verdict else None
        return d


def describe(v: Optional[Verdict]) -> str:
    if v is None:
        return "no verdict"
    if v.verdict == Outcome.CRASH:
        return f"crash: {v.title}" if v.title else "crash"
    if v.verdict == Outcome.DATA_LOSS:
        return (f"data-loss, {v.blocks_lost} of {v.blocks_checked} blocks lost at "
                f"{v.first_bad_offset}")
    if v.verdict == Outcome.REFUSED:
        return f"refused {v.errno}"
    if v.verdict in (Outcome.ERROR, Outcome.SKIPPED, Outcome.UNEXPECTED):
        return f"{v.verdict}: {v.reason}"
    return v.verdict


def judge(original: Optional[Verdict], v: Optional[Verdict], attempt: int,
          note: str = "") -> AttemptResult:
    known = v or original
    if known is None:
        raise InfraError(f"repro attempt {attempt}: neither a verdict nor an original to judge"
                         + (f" ({note})" if note else ""))
    case = known.case
    if v is None:
        return AttemptResult(attempt, case, None, False, False, note=note or "no verdict")
    if original is None:
        return AttemptResult(attempt, case, v, False, False, note="no original to match")
    r = AttemptResult(attempt, case, v, outcome_key(original) == outcome_key(v),
                      v.verdict == original.verdict, note=note)
    if original.verdict == Outcome.CRASH:
        want = normalize_title(original.title or "")
        got = [normalize_title(t) for t in attempt_titles(v)]
        r.title_match = bool(got) and got[0] == want
        if not r.title_match and want in got:
            r.note = r.note or "original title seen, but not as the first report"
    if original.verdict == Outcome.REFUSED:
        r.errno_match = v.verdict == Outcome.REFUSED and v.errno == original.errno
    if original.verdict == Outcome.DATA_LOSS:
        r.data_loss_match = bool(v.blocks_lost)
        if r.data_loss_match and (v.blocks_lost, v.first_bad_offset) != \
                (original.blocks_lost, original.first_bad_offset):
            r.note = r.note or (f"blocks lost {v.blocks_lost} at {v.first_bad_offset}, "
                                f"original {original.blocks_lost} at {original.first_bad_offset}")
    return r


# ---------------------------------------------------------------------------- running

@dataclass
class ReproReport:
    plan: ReproPlan
    out: Path
    attempts_asked: int
    stop_after: Optional[int]
    results: list = field(default_factory=list)       # AttemptResult
    warnings: list = field(default_factory=list)
    kernel_hash: Optional[str] = None
    stopped_early: bool = False

    def for_case(self, case: str) -> list:
        return [r for r in self.results if r.case == case]

    def rate(self, case: str) -> tuple:
        rs = self.for_case(case)
        return sum(r.reproduced for r in rs), len(rs)

    @property
    def exit_code(self) -> int:
        """The contract, applied to the replayed attempts: 1 some attempt failed (crash, data
        loss, unmet expectation), 2 the rig could not tell for any attempt, else 0. So a
        bisect script sees 1 while the bug reproduces."""
        vs = [r.verdict for r in self.results]
        if any(v is not None and v.verdict in FAILURES for v in vs):
            return 1
        if vs and all(v is None or v.verdict == Outcome.ERROR for v in vs):
            return 2
        return 0

    def to_dict(self) -> dict:
        m = self.plan.run.manifest
        cases = []
        for c in self.plan.cases:
            o = self.plan.originals.get(c)
            n, total = self.rate(c)
            rs = self.for_case(c)
            cases.append({
                "case": c, "original": o.to_dict() if o else None,
                "original_outcome": outcome_label(outcome_key(o)) if o else None,
                "reproduced": n, "attempts": total,
                "rate": round(n / total, 4) if total else None,
                "verdict_matches": sum(r.verdict_match for r in rs),
                "title_matches": _count(rs, "title_match"),
                "errno_matches": _count(rs, "errno_match"),
                "data_loss_matches": _count(rs, "data_loss_match"),
                "results": [r.to_dict() for r in rs]})
        return {"source": str(self.plan.run.path), "run_id": m.get("run_id"),
                "kernel": m.get("kernel", {}).get("name"),
                "release": m.get("kernel", {}).get("release"),
                "package": "=".join(self.plan.package), "recorded_hash":
                m.get("kernel", {}).get("hash"), "replayed_hash": self.kernel_hash,
                "guest_hash": (m.get("guest") or {}).get("hash"), "seed": self.plan.seed,
                "out": str(self.out), "attempts_asked": self.attempts_asked,
                "stop_after": self.stop_after, "stopped_early": self.stopped_early,
                "warnings": self.plan.warnings + self.warnings, "cases": cases,
                "exit_code": self.exit_code}


def _count(rs: list, attr: str) -> Optional[int]:
    vals = [getattr(r, attr) for r in rs if getattr(r, attr) is not None]
    return sum(vals) if vals else None


def preflight(plan: ReproPlan, kernel_path: Path) -> tuple:
    """Fetch (or find in the cache) the pinned kernel and check the artifact and guest recipe
    hashes against the recorded ones → (artifact hash, warnings)."""
    from pinrig import config
    from pinrig.kernels import debian
    from pinrig.kernels import fetch as kernel
    m = plan.run.manifest
    warnings = []
    spec = config.load_kernel_spec(str(kernel_path))
    if spec.kind == "debian":
        debian.remember_resolution(spec, parse_packages(m, str(plan.run.path / "manifest.json")))
    art = kernel.fetch(spec)
    want = (m.get("kernel") or {}).get("hash")
    if want and art.hash != want:
        warnings.append(f"kernel artifact hash {art.hash} differs from the recorded {want} "
                        "(same packages, different bytes: a rebuilt or re-published package?)")
    rel = (m.get("kernel") or {}).get("release")
    if rel and art.release != rel:
        warnings.append(f"kernel release {art.release} differs from the recorded {rel}")
    g = m.get("guest") or {}
    gname = g.get("name") or "bookworm"
    if gname != "bookworm":
        warnings.append(f"the run used guest recipe '{gname}'; run_suite boots the default "
                        "guest 'bookworm'")
    try:
        local = config.load_guest_spec(gname).recipe_hash()[:16]
    except UserError as e:
        warnings.append(f"guest recipe: {e}")
        local = None
    from pinrig.guest import image as guest_mod
    if local and g.get("hash") and local != g["hash"] and \
            not guest_mod.cached_image(gname, g["hash"]):
        warnings.append(f"guest image hash: the local recipe '{gname}' hashes to {local}, the "
                        f"run used {g['hash']}: the replay boots a different guest image")
    return art.hash, warnings


def run_repro(plan: ReproPlan, out: Path, attempts: int = 3, stop_after: Optional[int] = None,
              echo: Callable = print, run_suite: Optional[Callable] = None,
              check: bool = True) -> ReproReport:
    if attempts < 1:
        raise UserError("--attempts: must be at least 1")
    if stop_after is not None and stop_after < 1:
        raise UserError("--stop-after: must be at least 1")
    if run_suite is None:
        from pinrig.runs.runner import run_suite as default_run_suite
        run_suite = default_run_suite
    out.mkdir(parents=True, exist_ok=True)
    kpath, spath = out / "kernel.yaml", out / "suite.yaml"
    kpath.write_text(plan.kernel_yaml)
    spath.write_text(plan.suite_yaml)
    rep = ReproReport(plan, out, attempts, stop_after)
    if check:
        rep.kernel_hash, w = preflight(plan, kpath)
        rep.warnings += w
    for w in plan.warnings + rep.warnings:
        echo(f"rig: warning: {w}")
    for i in range(1, attempts + 1):
        adir = out / f"attempt-{i}"
        echo(f"rig: repro attempt {i}/{attempts} → {adir}")
        try:
            res = run_suite(str(kpath), str(spath), out=adir, seed=plan.seed, echo=echo,
                            repeat=1, guest_hash=(plan.run.manifest.get("guest") or {}).get("hash"))
            got = {v.case: v for v in res.verdicts if v.attempt == 1}
            if rep.kernel_hash is None:
                rep.kernel_hash = res.run.manifest.get("kernel", {}).get("hash")
            note = ""
        except InfraError as e:
            got, note = {}, f"rig error: {e}"
            echo(f"rig: attempt {i}: {note}")
        for c in plan.cases:
            r = judge(plan.originals.get(c), got.get(c), i, note)
            if r.verdict is None and plan.originals.get(c) is None:
                r.case = c
            r.run = str(adir)
            rep.results.append(r)
            echo(f"  {c} #{i}: {describe(r.verdict)} — "
                 f"{'reproduced' if r.reproduced else 'not reproduced'}")
        if stop_after and i < attempts and all(rep.rate(c)[0] >= stop_after for c in plan.cases):
            rep.stopped_early = True
            break
    (out / "repro.json").write_text(json.dumps(rep.to_dict(), indent=2) + "\n")
    (out / "summary.txt").write_text(format_text(rep))
    return rep


def default_out(run: LoadedRun) -> Path:
    rid = run.manifest.get("run_id") or run.path.name
    return paths.RESULTS_DIR / f"repro-{time.strftime('%Y%m%d-%H%M%S')}-{rid}".replace("/", "_")


def format_text(rep: ReproReport) -> str:
    d = rep.to_dict()
    lines = [f"repro of {d['source']} ({d['kernel']} {d['release']}, seed {d['seed']})",
             f"  kernel {d['package']}: artifact {d['replayed_hash'] or '?'}"
             + ("" if not d["recorded_hash"] or d["replayed_hash"] in (None, d["recorded_hash"])
                else f" (recorded {d['recorded_hash']}: DIFFERENT)")
             + (" (matches the recording)" if d["replayed_hash"] and
                d["replayed_hash"] == d["recorded_hash"] else ""),
             f"  results in {d['out']}", ""]
    for c in d["cases"]:
        orig = rep.plan.originals.get(c["case"])
        lines.append(f"  {c['case']}: original {describe(orig)}")
        for r in rep.for_case(c["case"]):
            extra = f" ({r.note})" if r.note else ""
            lines.append(f"    attempt {r.attempt}: {describe(r.verdict)} — "
                         f"{'reproduced' if r.reproduced else 'not reproduced'}{extra}")
        n, total = c["reproduced"], c["attempts"]
        pct = f" ({100 * n / total:.0f}%)" if total else ""
        matches = []
        for key, what in (("verdict_matches", "verdict"), ("title_matches", "crash title"),
                          ("errno_matches", "errno"), ("data_loss_matches", "data loss")):
            if c[key] is not None:
                matches.append(f"{what} {c[key]}/{total}")
        lines.append(f"    reproduced {n}/{total}{pct}"
                     + (f"; matches: {', '.join(matches)}" if matches else ""))
    if d["stopped_early"]:
        lines.append(f"  stopped early after {d['stop_after']} reproduction(s)")
    for w in d["warnings"]:
        lines.append(f"  warning: {w}")
    return "\n".join(lines) + "\n"
