"""pinrig.results.compare: per-case classification of two results directories, and its formats."""
import json

import pytest

from pinrig import cli
from pinrig.cases.verdict import Verdict
from pinrig.errors import UserError
from pinrig.results.compare import (
    classify,
    compare_runs,
    format_json,
    format_markdown,
    format_text,
    load_run,
)
from pinrig.results.rundir import RunDir


def manifest(kernel, release, suite="smoke", cases=(), seed=1, repeat=1):
    return {"run_id": f"run-{kernel}", "kernel": {
        "name": kernel, "suite": "bookworm", "release": release, "hash": f"h-{kernel}",
        "packages": [f"linux-image-{release}={release}-1"]},
        "guest": {"name": "bookworm", "hash": "g1"},
        "suite": {"name": suite, "cases": [
            {"workload": c.split("/")[0], "fs": c.split("/")[1], "mapping": c.split("/")[2],
             "variant": None, "expect": None, "size": 1048576, "timeout": 120, "id": c}
            for c in cases]},
        "seed": seed, "repeat": repeat, "accel": "tcg"}


def make_run(path, kernel, outcomes, release=None, suite="smoke", seed=1):
    """outcomes: case id → list of verdict dicts (one per attempt) or a single dict."""
    outcomes = {c: (o if isinstance(o, list) else [o]) for c, o in outcomes.items()}
    repeat = max(len(o) for o in outcomes.values())
    run = RunDir(path, manifest(kernel, release or kernel, suite, list(outcomes), seed, repeat))
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_manifest()
    for case, attempts in outcomes.items():
        for k, fields in enumerate(attempts, 1):
            run.write_case(Verdict(case, attempt=k, **fields), {"guest.log": "x"})
    return load_run(path)


OK = {"verdict": "ok", "pin": "granted", "reason": "pin granted"}
OK_NA = {"verdict": "ok", "pin": "n/a"}
EFAULT = {"verdict": "refused", "pin": "refused", "errno": "EFAULT"}
EOPNOTSUPP = {"verdict": "refused", "pin": "refused", "errno": "EOPNOTSUPP"}
LOSS = {"verdict": "data-loss", "pin": "granted", "blocks_lost": 256, "blocks_checked": 256,
        "first_bad_offset": 0}
ERROR = {"verdict": "error", "reason": "guest not ready after 180s"}
SKIP = {"verdict": "skipped", "reason": "tmpfs does not survive a guest crash"}


def crash(title):
    return {"verdict": "crash", "pin": "granted", "title": title, "titles": [title]}


def V(case="w/fs/shared", **f):
    return [Verdict(case, attempt=k + 1, **x) for k, x in enumerate(f["attempts"])]


@pytest.mark.parametrize("a,b,cls", [
    ([OK], [EFAULT], "behaviour change"),
    ([EOPNOTSUPP], [EFAULT], "behaviour change"),
    ([EFAULT], [EFAULT], "same"),
    ([OK], [OK], "same"),
    ([OK_NA], [OK_NA], "same"),
    ([OK], [LOSS], "regressed"),
    ([LOSS], [OK], "fixed"),
    ([LOSS], [LOSS], "same"),
    ([OK], [crash("WARNING in ext4_writepages")], "new crash"),
    ([crash("WARNING in ext4_writepages")], [OK], "gone crash"),
    ([crash("BUG: Bad page state in process rxe 0x1234")],
     [crash("BUG: Bad page state in process rxe 0x9abc")], "same"),
    ([crash("WARNING in ext4_writepages")], [crash("kernel BUG in try_to_unmap")], "new crash"),
    ([OK, OK, OK], [OK, LOSS, OK], "regressed"),
    ([OK, LOSS, OK], [OK, OK, OK], "fixed"),
    ([OK, EFAULT], [OK, EFAULT], "flaky"),
    ([OK, OK], [OK, EFAULT], "flaky"),
    ([OK], [ERROR], "inconclusive"),
    ([SKIP], [SKIP], "same"),
    ([OK], [SKIP], "inconclusive"),
    ([{"verdict": "unexpected", "pin": "granted", "expect": "refused"}], [EFAULT], "fixed"),
    ([LOSS], [{"verdict": "unexpected", "pin": "granted"}], "changed"),
])
def test_classify(a, b, cls):
    d = classify("w/fs/shared", V(attempts=a), V(attempts=b))
    assert d.cls == cls, (d.cls, d.tags, d.notes)
    assert d.regression == (cls in ("regressed", "new crash"))


def test_classify_tags_and_notes():
    d = classify("c/x/shared", V(attempts=[OK, OK, OK]), V(attempts=[OK, LOSS, OK]))
    assert d.tags == ["regressed", "flaky"]
    assert "failures 0/3 → 1/3" in d.detail and "mixed outcomes on B" in d.detail
    assert d.b.label() == "ok 2/3 · data-loss 1/3"
    assert d.b.fail_rate == pytest.approx(1 / 3)
    d = classify("c", V(attempts=[OK]), V(attempts=[EFAULT]))
    assert d.detail == "pin granted → refused (EFAULT)"
    d = classify("c", V(attempts=[OK]), V(attempts=[crash("WARNING in foo")]))
    assert d.tags == ["new crash", "regressed"] and "new crash: WARNING in foo" in d.detail
    d = classify("c", V(attempts=[OK, ERROR]), V(attempts=[OK, OK]))
    assert d.cls == "same" and "error: 1/2 on A, 0/2 on B" in d.detail


def test_compare_runs_pin_matrix_like(tmp_path):
    a = make_run(tmp_path / "a", "k-old", {
        "ibverbs-pin/ext4/shared": OK, "ibverbs-pin/ext4-dax/shared": EOPNOTSUPP,
        "ibverbs-pin/tmpfs/shared": OK, "lost-write/ext4/shared": LOSS,
        "iouring-fixed/tmpfs/shared": SKIP, "only-old/ext4/shared": OK})
    b = make_run(tmp_path / "b", "k-new", {
        "ibverbs-pin/ext4/shared": EFAULT, "ibverbs-pin/ext4-dax/shared": EOPNOTSUPP,
        "ibverbs-pin/tmpfs/shared": OK, "lost-write/ext4/shared": EFAULT,
        "iouring-fixed/tmpfs/shared": SKIP, "only-new/xfs/shared": OK})
    cmp = compare_runs(a, b)
    got = {d.case: d.cls for d in cmp.cases}
    assert got == {"ibverbs-pin/ext4/shared": "behaviour change",
                   "ibverbs-pin/ext4-dax/shared": "same", "ibverbs-pin/tmpfs/shared": "same",
                   "lost-write/ext4/shared": "fixed", "iouring-fixed/tmpfs/shared": "same"}
    assert [d.case for d in cmp.cases][0] == "ibverbs-pin/ext4/shared"      # suite order
    assert cmp.only_a == ["only-old/ext4/shared"] and cmp.only_b == ["only-new/xfs/shared"]
    assert any("only on A" in w and "only-old/ext4/shared" in w for w in cmp.warnings)
    assert any("only on B" in w and "only-new/xfs/shared" in w for w in cmp.warnings)
    assert cmp.exit_code == 0 and not cmp.regressions
    assert "does not regress" in cmp.verdict_line


def test_exit_codes(tmp_path):
    a = make_run(tmp_path / "a", "a", {"x/ext4/shared": OK, "y/ext4/shared": OK})
    b = make_run(tmp_path / "b", "b", {"x/ext4/shared": LOSS, "y/ext4/shared": OK})
    cmp = compare_runs(a, b)
    assert cmp.exit_code == 1 and [d.case for d in cmp.regressions] == ["x/ext4/shared"]
    assert "REGRESSES" in cmp.verdict_line
    # the other way round B fixes A
    assert compare_runs(b, a).exit_code == 0
    c = make_run(tmp_path / "c", "c", {"x/ext4/shared": ERROR, "y/ext4/shared": OK})
    cmp = compare_runs(a, c)
    assert cmp.exit_code == 2 and "could not be judged" in cmp.verdict_line


def test_manifest_differences_warned(tmp_path):
    a = make_run(tmp_path / "a", "a", {"x/ext4/shared": OK}, seed=1)
    b = make_run(tmp_path / "b", "b", {"x/ext4/shared": OK}, seed=7, suite="other")
    w = " | ".join(compare_runs(a, b).warnings)
    assert "different seeds: 1 on A, 7 on B" in w and "different suites" in w


def test_formats(tmp_path):
    a = make_run(tmp_path / "a", "debian-6.1", {"ibverbs-pin/ext4/shared": OK,
                                                "lost-write/ext4/shared": [OK, OK]},
                 release="6.1.0-50-amd64")
    b = make_run(tmp_path / "b", "debian-6.12", {"ibverbs-pin/ext4/shared": EFAULT,
                                                 "lost-write/ext4/shared": [LOSS, OK]},
                 release="6.12.107+deb13-amd64")
    cmp = compare_runs(a, b)
    text = format_text(cmp)
    assert "debian-6.1 (6.1.0-50-amd64) → debian-6.12 (6.12.107+deb13-amd64)" in text
    assert "behaviour change" in text and "refused EFAULT" in text
    assert "data-loss 1/2 · ok 1/2" in text or "ok 1/2 · data-loss 1/2" in text
    md = format_markdown(cmp)
    rows = [x for x in md.splitlines() if x.startswith("| `")]
    assert len(rows) == 2 and "**regressed**" in rows[1]
    d = json.loads(format_json(cmp))
    assert d["regression"] is True and d["exit_code"] == 1
    assert d["summary"] == {"regressed": 1, "behaviour change": 1}
    c0 = d["cases"][0]
    assert c0["a"]["pins"] == ["granted"] and c0["b"]["pins"] == ["refused (EFAULT)"]
    assert d["cases"][1]["b"]["fail_rate"] == 0.5
    assert d["a"]["release"] == "6.1.0-50-amd64"


def test_load_run_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no manifest.json"):
        load_run(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{")
    with pytest.raises(UserError, match="unreadable manifest"):
        load_run(tmp_path / "bad")


def test_load_run_counts_broken_verdicts_as_inconclusive(tmp_path):
    """An unreadable verdict.json is never dropped silently (issue 11: item 6)."""
    make_run(tmp_path / "r", "k", {"x/ext4/shared": [OK, LOSS, OK]})
    (tmp_path / "r" / "cases" / "x" / "ext4" / "private").mkdir(parents=True)
    (tmp_path / "r" / "cases" / "x" / "ext4" / "private" / "verdict.json").write_text("{]")
    run = load_run(tmp_path / "r")
    assert [(v.case, v.attempt, v.verdict) for v in run.verdicts] == [
        ("x/ext4/shared", 1, "ok"), ("x/ext4/shared", 2, "data-loss"),
        ("x/ext4/shared", 3, "ok"), ("x/ext4/private", 1, "error")]
    assert [(u.case, u.attempt) for u in run.unreadable] == [("x/ext4/private", 1)]
    assert "unreadable verdict.json" in run.verdicts[-1].reason


def test_an_unreadable_crash_is_not_a_new_crash_on_the_other_side(tmp_path):
    crash = {"verdict": "crash", "title": "BUG: x"}
    make_run(tmp_path / "a", "debian-6.1", {"ibverbs-pin/ext4/shared": crash})
    make_run(tmp_path / "b", "debian-6.12", {"ibverbs-pin/ext4/shared": crash})
    (tmp_path / "a" / "cases" / "ibverbs-pin" / "ext4" / "shared" / "verdict.json").write_text("{trunc")
    cmp = compare_runs(load_run(tmp_path / "a"), load_run(tmp_path / "b"))
    (c,) = cmp.cases
    assert c.cls == "inconclusive"
    assert any("1 unreadable verdict(s) on A" in w for w in cmp.warnings)


# ------------------------------------------------------------------------------- the command

@pytest.fixture
def two_runs(tmp_path):
    make_run(tmp_path / "a", "debian-6.1", {"ibverbs-pin/ext4/shared": OK,
                                            "ibverbs-pin/tmpfs/shared": OK})
    make_run(tmp_path / "b", "debian-6.12", {"ibverbs-pin/ext4/shared": EFAULT,
                                             "ibverbs-pin/tmpfs/shared": OK})
    return tmp_path / "a", tmp_path / "b"


def test_cli_compare_reuse_json_and_html(two_runs, tmp_path, capsys, keep_signal_handlers):
    a, b = two_runs
    html = tmp_path / "out" / "cmp.html"
    rc = cli.main(["compare", "debian-6.1", "debian-6.12", "--suite", "smoke",
                   "--reuse-a", str(a), "--reuse-b", str(b), "--json", "--html", str(html)])
    out = capsys.readouterr().out
    assert rc == 0
    d = json.loads(out)
    assert d["summary"] == {"behaviour change": 1, "same": 1}
    assert "<svg" in html.read_text()


def test_cli_compare_regression_exit_1_and_out_dir(tmp_path, capsys, keep_signal_handlers):
    make_run(tmp_path / "a", "k1", {"lost-write/ext4/shared": OK})
    make_run(tmp_path / "b", "k2", {"lost-write/ext4/shared": LOSS})
    rc = cli.main(["compare", "k1", "k2", "--reuse-a", str(tmp_path / "a"), "--reuse-b",
                   str(tmp_path / "b"), "--markdown", "--out", str(tmp_path / "o")])
    cap = capsys.readouterr()
    assert rc == 1
    assert "| `lost-write/ext4/shared` | ok | data-loss | **regressed** |" in cap.out
    for f in ("compare.txt", "compare.md", "compare.json", "compare.html"):
        assert (tmp_path / "o" / f).exists()


def test_cli_compare_suite_mismatch_is_one_line(two_runs, capsys, keep_signal_handlers):
    a, b = two_runs
    rc = cli.main(["compare", "debian-6.1", "debian-6.12", "--suite", "pin-matrix",
                   "--reuse-a", str(a), "--reuse-b", str(b)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0] == f"rig: error: --reuse-a {a}: that run is of suite smoke, not pin-matrix"


def test_cli_compare_needs_suite_to_run(capsys, keep_signal_handlers, tmp_path):
    rc = cli.main(["compare", "debian-6.1", "debian-6.12", "--reuse-a", str(tmp_path)])
    assert rc == 2
    assert "--suite is required" in capsys.readouterr().err


def test_cli_compare_unknown_kernel_fails_before_running(capsys, keep_signal_handlers):
    rc = cli.main(["compare", "debian-6.1", "nope", "--suite", "smoke"])
    assert rc == 2
    assert "unknown kernel 'nope'" in capsys.readouterr().err
