"""pinrig.runs.bisect: the search, flaky steps, skipped steps, and whole bisections over a fake series
built on the fake kernel tree (each step really builds the cumulative prefix)."""
import json
import shutil
from pathlib import Path

import pytest
import yaml

from pinrig import config
from pinrig.cases.verdict import Verdict
from pinrig.errors import UserError
from pinrig.kernels import fetch as kernel
from pinrig.kernels.source import builder
from pinrig.runs import bisect as B

REPO = Path(__file__).resolve().parents[3]
FAKE = REPO / "tests" / "data" / "fake-kernel"


# ------------------------------------------------------------------------------ search

@pytest.mark.parametrize("n,first", [(1, 1), (2, 1), (2, 2), (3, 2), (4, 3), (7, 1), (7, 7),
                                     (16, 11)])
def test_search_finds_first_new(n, first):
    probed = []

    def probe(k):
        probed.append(k)
        return B.NEW if k >= first else B.OLD
    assert B.search(n, probe) == (first, (first,))
    assert len(probed) <= max(1, (n - 1).bit_length())
    assert 0 not in probed and n not in probed      # the ends are known


def test_search_skips_third_outcomes():
    # step 4 errors out: the search goes around it
    res = {k: (B.OTHER if k == 4 else B.NEW if k >= 6 else B.OLD) for k in range(1, 8)}
    probed = []
    assert B.search(8, lambda k: probed.append(k) or res[k]) == (6, (6,))
    assert probed[0] == 4 and 3 in probed


def test_search_undecided_when_skips_hide_the_answer():
    res = {1: B.OLD, 2: B.OTHER, 3: B.OTHER}
    first, cands = B.search(4, lambda k: res[k])
    assert first is None and cands == (2, 3, 4)
    res = {1: B.OLD, 2: B.OTHER, 3: B.NEW, 4: B.NEW}
    assert B.search(5, lambda k: res[k]) == (None, (2, 3))


def test_classify_flaky_repeats():
    old, new = ("ok",), ("crash", "WARNING in f")
    assert B.classify([old, new, old], old, new) == B.NEW       # shows up once: new
    assert B.classify([old, old], old, new) == B.OLD
    assert B.classify([old, ("error",)], old, new) == B.OTHER
    assert B.classify([], old, new) == B.OTHER


def test_parse_outcome():
    assert B._parse_outcome("refused:EFAULT") == ("refused", "EFAULT")
    assert B._parse_outcome("refused EFAULT") == ("refused", "EFAULT")
    assert B._parse_outcome("ok") == ("ok",)
    assert B._parse_outcome("crash")[0] == "crash"
    with pytest.raises(UserError, match="unknown outcome 'fine'"):
        B._parse_outcome("fine")


# ------------------------------------------------------------------------------ whole bisections

GUP = "mm/gup.c"


def patch_append(path, old_last, new_line):
    return (f"--- a/{path}\n+++ b/{path}\n@@ -1,1 +1,2 @@\n {old_last}\n+{new_line}\n")


@pytest.fixture
def fake_spec(tmp_path, monkeypatch):
    """A dir: source kernel spec over the fake tree with a 4-patch series: only patch 3 adds the
    refusal the fake 'case' looks for."""
    monkeypatch.setattr(builder, "REQUIRED_TOOLS", ("make", "patch", "cp", "nice"))
    monkeypatch.setattr(builder, "REQUIRED_HEADERS", ())
    builder._TOOLCHAIN.clear()
    tree = tmp_path / "linux"
    shutil.copytree(FAKE, tree)
    (tree / "notes").mkdir()
    for i in range(1, 5):
        (tree / "notes" / f"n{i}.txt").write_text(f"note {i}\n")
    q = tmp_path / "series"
    q.mkdir()
    names = []
    for i in range(1, 5):
        name = f"000{i}-step-{i}.patch"
        target = "mm/gup.c" if i == 3 else f"notes/n{i}.txt"
        if i == 3:
            text = (f"Subject: [PATCH 3/4] mm/gup: refuse\n\n---\n--- a/{GUP}\n+++ b/{GUP}\n"
                    "@@ -1,2 +1,3 @@\n /* fake mm/gup.c */\n+/* REFUSE-LONGTERM */\n"
                    " static int check_vma_flags(unsigned long vm_flags, unsigned long gup_flags)\n")
        else:
            text = f"Subject: [PATCH {i}/4] note {i}\n\n---\n" + \
                f"--- a/{target}\n+++ b/{target}\n@@ -1 +1 @@\n-note {i}\n+note {i} changed\n"
        (q / name).write_text(text)
        names.append(name)
    (q / "series").write_text("\n".join(names) + "\n")
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ncases:\n  - {workload: ibverbs-pin, fs: ext4, mapping: shared, "
                     "expect: refused}\n  - {workload: ibverbs-pin, fs: tmpfs}\n")
    spec = tmp_path / "k.yaml"
    spec.write_text(f"name: fake-deny\nkind: source\nsource: dir:{tree}\nseries: {q}\n")
    return spec, suite


def fake_runner(calls, flaky_at=None):
    """Builds the step's kernel for real (fake tree) and 'runs' the case: refused when the
    image carries the refusal."""
    def run(kyaml, suite_yaml, out, repeat):
        spec = config.load_kernel_spec(str(kyaml))
        art = kernel.fetch(spec)
        s = yaml.safe_load(Path(suite_yaml).read_text())
        assert len(s["cases"]) == 1 and "expect" not in s["cases"][0]
        k = int(spec.name.rsplit(".step-", 1)[1])
        calls.append((k, art.dir))
        refused = "REFUSE-LONGTERM" in art.vmlinuz.read_text()
        out = []
        for a in range(1, repeat + 1):
            if flaky_at is not None and k == flaky_at and a == 1:
                out.append(Verdict("ibverbs-pin/ext4/shared", "error", attempt=a))
            elif refused:
                out.append(Verdict("ibverbs-pin/ext4/shared", "refused", errno="EFAULT",
                                   attempt=a))
            else:
                out.append(Verdict("ibverbs-pin/ext4/shared", "ok", pin="granted", attempt=a))
        return out
    return run


def test_bisect_finds_the_patch_that_flips_the_verdict(fake_spec, tmp_path):
    spec, suite = fake_spec
    calls = []
    res = B.run_bisect(str(spec), str(suite), "ibverbs-pin/ext4/shared", out=tmp_path / "b",
                       echo=lambda *a: None, runner=fake_runner(calls))
    assert res.first_new == 3
    assert res.old == ("ok",) and res.new == ("refused", "EFAULT")
    ks = [k for k, _ in calls]
    assert ks[:2] == [0, 4] and sorted(ks[2:]) == [2, 3]
    assert len({d for _, d in calls}) == 4                 # four distinct builds
    d = json.loads((tmp_path / "b" / "bisect.json").read_text())
    assert d["patch"] == {"index": 3, "name": "0003-step-3.patch", "subject": "mm/gup: refuse"}
    assert "first new patch: 3/4 0003-step-3.patch — mm/gup: refuse" in res.text()
    # each step is replayable: a kernel spec and its quilt prefix
    k2 = yaml.safe_load((tmp_path / "b" / "step-2" / "kernel.yaml").read_text())
    assert (tmp_path / "b" / "step-2" / "series-1..2" / "series").read_text().split() == \
        ["0001-step-1.patch", "0002-step-2.patch"]
    assert k2["name"] == "fake-deny.step-2" and "series" in k2
    assert "series" not in yaml.safe_load((tmp_path / "b" / "step-0" / "kernel.yaml").read_text())


def test_bisect_full_series_step_reuses_the_cached_build(fake_spec, tmp_path):
    spec, suite = fake_spec
    full = kernel.fetch(config.load_kernel_spec(str(spec)))
    calls = []
    B.run_bisect(str(spec), str(suite), "ibverbs-pin/ext4/shared", out=tmp_path / "b",
                 echo=lambda *a: None, runner=fake_runner(calls))
    assert dict(calls)[4] == full.dir


def test_bisect_with_repeats_and_a_flaky_step(fake_spec, tmp_path):
    spec, suite = fake_spec
    res = B.run_bisect(str(spec), str(suite), "ibverbs-pin/ext4/shared", repeat=2,
                       out=tmp_path / "b", echo=lambda *a: None,
                       runner=fake_runner([], flaky_at=3))
    # step 3: one attempt errored, the other refused → counts as new
    assert res.first_new == 3
    st = {s.k: s for s in res.steps}
    assert st[3].outcomes == [("error",), ("refused", "EFAULT")] and st[3].label == B.NEW


def test_bisect_nothing_to_bisect(fake_spec, tmp_path):
    spec, suite = fake_spec

    def same(kyaml, suite_yaml, out, repeat):
        return [Verdict("ibverbs-pin/ext4/shared", "ok")]
    with pytest.raises(UserError, match="is ok both without the series and with all 4 patches"):
        B.run_bisect(str(spec), str(suite), "ibverbs-pin/ext4/shared", out=tmp_path / "b",
                     echo=lambda *a: None, runner=same)


def test_bisect_unknown_case_and_non_source_kernel(fake_spec, tmp_path):
    spec, suite = fake_spec
    with pytest.raises(UserError, match=r"case 'nope/ext4/shared' is not in suite s \(its cases: "
                                        r"ibverbs-pin/ext4/shared, ibverbs-pin/tmpfs/shared\)"):
        B.run_bisect(str(spec), str(suite), "nope/ext4/shared", out=tmp_path / "b",
                     echo=lambda *a: None, runner=lambda *a: [])
    with pytest.raises(UserError, match="bisect needs a source kernel spec with a series"):
        B.run_bisect("debian-6.1", str(suite), "ibverbs-pin/ext4/shared", out=tmp_path / "c",
                     echo=lambda *a: None, runner=lambda *a: [])


def test_bisect_cli_parses(monkeypatch, fake_spec, tmp_path, capsys):
    from pinrig import cli
    spec, suite = fake_spec
    seen = {}

    def fake_run(kernel, suite_name, case_id, **kw):
        seen.update(kernel=kernel, suite=suite_name, case=case_id, **kw)
        return B.BisectResult("k", case_id, 4, ("ok",), ("refused", "EFAULT"), 3, (3,), [],
                              [("a", ""), ("b", ""), ("c", "mm/gup: refuse"), ("d", "")])
    monkeypatch.setattr(B, "run_bisect", fake_run)
    rc = cli.main(["bisect", str(spec), "--suite", str(suite), "--case", "ibverbs-pin/ext4/shared",
                   "--repeat", "3", "--json"])
    assert rc == 0
    assert seen["repeat"] == 3 and seen["case"] == "ibverbs-pin/ext4/shared"
    assert json.loads(capsys.readouterr().out)["patch"]["subject"] == "mm/gup: refuse"


def test_bisect_with_a_relative_out_dir(fake_spec, tmp_path, monkeypatch):
    spec, suite = fake_spec
    monkeypatch.chdir(tmp_path)
    res = B.run_bisect(str(spec), str(suite), "ibverbs-pin/ext4/shared", out=Path("rel/b"),
                       echo=lambda *a: None, runner=fake_runner([]))
    assert res.first_new == 3
    k4 = yaml.safe_load((tmp_path / "rel/b/step-4/kernel.yaml").read_text())
    assert Path(k4["series"]).is_absolute()
