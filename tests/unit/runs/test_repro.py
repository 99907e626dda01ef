"""pinrig.runs.repro: a replay plan from the manifest alone, judging attempts, early stop."""
import json
import shutil

import pytest
import yaml

from pinrig import cli, config, paths
from pinrig.cases.execute import case_seed
from pinrig.cases.verdict import Verdict
from pinrig.errors import InfraError, UserError
from pinrig.results.compare import load_run
from pinrig.results.rundir import RunDir
from pinrig.runs import repro
from tests.fakes import FakeReproRunSuite as FakeRunSuite

CASES = [
    {"workload": "ibverbs-pin", "fs": "ext4", "mapping": "shared", "variant": None,
     "expect": None, "size": 1048576, "timeout": 120, "id": "ibverbs-pin/ext4/shared"},
    {"workload": "ibverbs-pin", "fs": "ext4-dax", "mapping": "shared", "variant": None,
     "expect": "refused", "size": 65536, "timeout": 60, "id": "ibverbs-pin/ext4-dax/shared"},
    {"workload": "lost-write", "fs": "ext4", "mapping": "shared", "variant": None,
     "expect": None, "size": 1048576, "timeout": 120, "id": "lost-write/ext4/shared"},
    {"workload": "lost-write", "fs": "ext4", "mapping": "shared", "variant": "control",
     "expect": None, "size": 1048576, "timeout": 120, "id": "lost-write/ext4/shared/control"},
]
PRESSURE = {"dirty_ratio": None, "dirty_background_ratio": None, "dirty_expire_centisecs": 100,
            "dirty_writeback_centisecs": 50, "sync_storm": False, "drop_caches": False,
            "memcg_limit_mb": None}


def recorded_run(path, seed=5, verdicts=None):
    m = {"run_id": "r-pm61", "kernel": {
        "name": "debian-6.1", "spec": "/elsewhere/kernels/debian-6.1.yaml", "suite": "bookworm",
        "release": "6.1.0-50-amd64", "packages": ["linux-image-6.1.0-50-amd64=6.1.176-1"],
        "hash": "4904b0f192e87bd8",
        "spec_fields": {"name": "debian-6.1", "kind": "debian", "suite": "bookworm",
                        "package": "linux-image-amd64", "version": None,
                        "mirror": "http://deb.debian.org/debian", "description": "x"}},
        "guest": {"name": "bookworm", "hash": "59afcf757626ffd9"},
        "suite": {"name": "pin-matrix", "path": "/elsewhere/configs/suites/pin-matrix.yaml",
                  "cases": CASES, "pressure": PRESSURE},
        "seed": seed, "repeat": 1, "accel": "tcg"}
    run = RunDir(path, m)
    path.mkdir(parents=True)
    run.write_manifest()
    for v in verdicts if verdicts is not None else [
            Verdict("ibverbs-pin/ext4/shared", "ok", pin="granted"),
            Verdict("ibverbs-pin/ext4-dax/shared", "refused", pin="refused", errno="EOPNOTSUPP"),
            Verdict("lost-write/ext4/shared", "data-loss", pin="granted", blocks_lost=256,
                    blocks_checked=256, first_bad_offset=0,
                    seed=case_seed(seed, "lost-write/ext4/shared")),
            Verdict("lost-write/ext4/shared/control", "ok", pin="granted")]:
        run.write_case(v, {"guest.log": "log"})
    return load_run(path)


def test_default_case_is_first_interesting_one(tmp_path):
    plan = repro.plan_repro(recorded_run(tmp_path / "r"))
    assert plan.cases == ["lost-write/ext4/shared"]
    assert plan.originals["lost-write/ext4/shared"].verdict == "data-loss"
    assert plan.package == ("linux-image-6.1.0-50-amd64", "6.1.176-1")
    assert plan.seed == 5 and plan.warnings == []


def test_kernel_spec_pins_recorded_package(tmp_path):
    plan = repro.plan_repro(recorded_run(tmp_path / "r"))
    p = tmp_path / "kernel.yaml"
    p.write_text(plan.kernel_yaml)
    spec = config.load_kernel_spec(str(p))
    assert (spec.name, spec.kind, spec.suite) == ("debian-6.1", "debian", "bookworm")
    assert (spec.package, spec.version) == ("linux-image-6.1.0-50-amd64", "6.1.176-1")
    assert spec.mirror == "http://deb.debian.org/debian"
    plan = repro.plan_repro(load_run(tmp_path / "r"), mirror="http://snapshot.example/debian")
    assert yaml.safe_load(plan.kernel_yaml)["mirror"] == "http://snapshot.example/debian"


def test_sid_style_package_set_pins_the_image_package(tmp_path):
    m = {"kernel": {"name": "debian-sid", "suite": "sid", "packages": [
        "linux-binary-7.2.13+deb14-amd64=7.2.13-1", "linux-image-7.2.13+deb14-amd64=7.2.13-1",
        "linux-modules-7.2.13+deb14-amd64=7.2.13-1"]}}
    text, pkg = repro.kernel_spec_yaml(m, "m.json")
    assert pkg == ("linux-image-7.2.13+deb14-amd64", "7.2.13-1")
    assert yaml.safe_load(text)["suite"] == "sid"


def test_suite_restricted_with_recorded_parameters_and_seed(tmp_path):
    run = recorded_run(tmp_path / "r", seed=42)
    plan = repro.plan_repro(run, ["ibverbs-pin/ext4-dax/shared", "lost-write/ext4/shared"])
    p = tmp_path / "suite.yaml"
    p.write_text(plan.suite_yaml)
    suite = config.load_suite(str(p))
    assert suite.name == "pin-matrix" and suite.seed == 42
    assert [c.id for c in suite.cases] == ["ibverbs-pin/ext4-dax/shared", "lost-write/ext4/shared"]
    dax = suite.cases[0]
    assert (dax.expect, dax.size, dax.timeout) == ("refused", 65536, 60)
    assert suite.pressure.dirty_expire_centisecs == 100
    assert suite.pressure.dirty_writeback_centisecs == 50
    # per-case seeds derive from the run seed and the case id, so they match the recording
    assert case_seed(suite.seed, "lost-write/ext4/shared") == \
        plan.originals["lost-write/ext4/shared"].seed


def test_copied_results_dir_gives_the_same_replay(tmp_path):
    recorded_run(tmp_path / "orig")
    shutil.copytree(tmp_path / "orig", tmp_path / "elsewhere" / "copy")
    shutil.rmtree(tmp_path / "orig")
    plan = repro.plan_repro(load_run(tmp_path / "elsewhere" / "copy"))
    ref = repro.plan_repro(recorded_run(tmp_path / "again"))
    assert plan.kernel_yaml == ref.kernel_yaml and plan.suite_yaml == ref.suite_yaml
    assert "/elsewhere/" not in plan.kernel_yaml + plan.suite_yaml


def test_plan_errors(tmp_path):
    run = recorded_run(tmp_path / "r")
    with pytest.raises(UserError, match="no case 'nope/ext4/shared' in this run"):
        repro.plan_repro(run, ["nope/ext4/shared"])
    fine = recorded_run(tmp_path / "fine", verdicts=[Verdict("ibverbs-pin/ext4/shared", "ok")])
    with pytest.raises(UserError, match="name the case to replay with --case"):
        repro.plan_repro(fine)
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    m["kernel"]["packages"] = ["garbage"]
    (tmp_path / "r" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError, match=r"kernel.packages\[0\]: expected 'name=version'"):
        repro.plan_repro(load_run(tmp_path / "r"))


def test_mismatching_recorded_seed_is_warned(tmp_path):
    run = recorded_run(tmp_path / "r", verdicts=[
        Verdict("lost-write/ext4/shared", "data-loss", blocks_lost=1, seed=12345)])
    plan = repro.plan_repro(run)
    assert any("recorded case seed 12345" in w for w in plan.warnings)


# ------------------------------------------------------------------------------- judging

def test_judge_outcomes():
    loss = Verdict("c", "data-loss", blocks_lost=256, first_bad_offset=0)
    r = repro.judge(loss, Verdict("c", "data-loss", blocks_lost=7, first_bad_offset=4096), 1)
    assert r.reproduced and r.data_loss_match and "original 256 at 0" in r.note
    r = repro.judge(loss, Verdict("c", "ok", blocks_lost=0), 2)
    assert not r.reproduced and r.data_loss_match is False
    oops = Verdict("c", "crash", title="BUG: Bad page state in process rxe  pfn:0x1a2b3")
    r = repro.judge(oops, Verdict("c", "crash", title="BUG: Bad page state in process rxe  "
                                  "pfn:0x77777", titles=["BUG: Bad page state in process rxe  "
                                                         "pfn:0x77777"]), 1)
    assert r.reproduced and r.title_match
    r = repro.judge(oops, Verdict("c", "crash", title="WARNING in foo", titles=["WARNING in foo"]),
                    1)
    assert not r.reproduced and r.verdict_match and r.title_match is False
    ref = Verdict("c", "refused", errno="EFAULT")
    r = repro.judge(ref, Verdict("c", "refused", errno="EOPNOTSUPP"), 1)
    assert not r.reproduced and r.errno_match is False and r.verdict_match
    r = repro.judge(ref, None, 1, "rig error: boom")
    assert not r.reproduced and r.note == "rig error: boom"


# ------------------------------------------------------------------------------- running


LOSS = {"verdict": "data-loss", "pin": "granted", "blocks_lost": 256, "blocks_checked": 256,
        "first_bad_offset": 0}
OK = {"verdict": "ok", "pin": "granted"}


def test_run_repro_rate_and_files(tmp_path):
    plan = repro.plan_repro(recorded_run(tmp_path / "r"))
    fake = FakeRunSuite([LOSS, OK, LOSS])
    rep = repro.run_repro(plan, tmp_path / "out", attempts=3, echo=lambda *a: None,
                          run_suite=fake, check=False)
    assert rep.rate("lost-write/ext4/shared") == (2, 3)
    assert rep.exit_code == 1 and not rep.stopped_early
    assert [c[2].name for c in fake.calls] == ["attempt-1", "attempt-2", "attempt-3"]
    assert all(c[3] == 5 for c in fake.calls)                         # the run seed
    assert (tmp_path / "out" / "kernel.yaml").exists()
    d = json.loads((tmp_path / "out" / "repro.json").read_text())
    case = d["cases"][0]
    assert case["reproduced"] == 2 and case["attempts"] == 3 and case["data_loss_matches"] == 2
    assert case["original_outcome"] == "data-loss"
    text = (tmp_path / "out" / "summary.txt").read_text()
    assert "reproduced 2/3 (67%)" in text and "data loss 2/3" in text


def test_run_repro_stops_early(tmp_path):
    plan = repro.plan_repro(recorded_run(tmp_path / "r"))
    fake = FakeRunSuite([OK, LOSS, LOSS, LOSS])
    rep = repro.run_repro(plan, tmp_path / "out", attempts=4, stop_after=1,
                          echo=lambda *a: None, run_suite=fake, check=False)
    assert len(fake.calls) == 2 and rep.stopped_early
    assert rep.rate("lost-write/ext4/shared") == (1, 2)
    assert "stopped early after 1 reproduction(s)" in repro.format_text(rep)


def test_run_repro_not_reproduced_and_rig_errors(tmp_path):
    plan = repro.plan_repro(recorded_run(tmp_path / "r"))
    rep = repro.run_repro(plan, tmp_path / "o1", attempts=2, echo=lambda *a: None,
                          run_suite=FakeRunSuite([OK, OK]), check=False)
    assert rep.rate("lost-write/ext4/shared") == (0, 2) and rep.exit_code == 0
    rep = repro.run_repro(plan, tmp_path / "o2", attempts=2, echo=lambda *a: None,
                          run_suite=FakeRunSuite([InfraError("pin boot failed"),
                                                  InfraError("pin boot failed")]), check=False)
    assert rep.exit_code == 2 and "rig error: pin boot failed" in repro.format_text(rep)
    with pytest.raises(UserError, match="--attempts"):
        repro.run_repro(plan, tmp_path / "o3", attempts=0, run_suite=FakeRunSuite([]),
                        check=False)


def test_preflight_finds_cached_artifact_without_apt(tmp_path, fake_runner):
    """The manifest's package set is remembered as the pinned package's resolution, so a
    kernel still in the cache is used with no apt call at all; hashes are checked."""
    def refuse(argv, kw):
        raise AssertionError(f"unexpected subprocess {argv}")
    fake_runner.handler = refuse
    key = "linux-image-6.1.0-50-amd64=6.1.176-1"
    kdir = paths.cache_dir() / "kernels" / "debian" / key
    kdir.mkdir(parents=True)
    (kdir / "vmlinuz").write_bytes(b"kernel")
    (kdir / "modroot").mkdir()
    (kdir / "artifact.json").write_text(json.dumps({
        "name": "debian-6.1", "release": "6.1.0-50-amd64", "vmlinuz": "vmlinuz",
        "modroot": "modroot", "config": None, "packages": [key], "hash": "ffff000011112222"}))
    plan = repro.plan_repro(recorded_run(tmp_path / "r"))
    kpath = tmp_path / "kernel.yaml"
    kpath.write_text(plan.kernel_yaml)
    h, warnings = repro.preflight(plan, kpath)
    assert h == "ffff000011112222"
    assert any("artifact hash ffff000011112222 differs from the recorded 4904b0f192e87bd8" in w
               for w in warnings)
    local = config.load_guest_spec("bookworm").recipe_hash()[:16]
    assert any(f"hashes to {local}" in w for w in warnings) == (local != "59afcf757626ffd9")


def test_cli_repro_unknown_case_is_one_line(tmp_path, capsys, keep_signal_handlers):
    recorded_run(tmp_path / "r")
    rc = cli.main(["repro", str(tmp_path / "r"), "--case", "x/y/z"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no case 'x/y/z' in this run" in err[0]


def test_cli_repro_not_a_results_dir(tmp_path, capsys, keep_signal_handlers):
    rc = cli.main(["repro", str(tmp_path)])
    assert rc == 2 and "no manifest.json" in capsys.readouterr().err


@pytest.mark.parametrize("pkg", ["linux-image-6.1.0-50-amd64=../../../tmp/x",
                                 "../../evil=1", "linux-image-x=1\nline"])
def test_recorded_package_fields_are_checked_before_use(pkg):
    """A manifest's version `../../…` made repro write outside the cache (issue 11: item 8)."""
    m = {"kernel": {"name": "debian-6.1", "suite": "bookworm", "packages": [pkg]}}
    with pytest.raises(UserError, match="kernel.packages.*is not a Debian package"):
        repro.kernel_spec_yaml(m, "m.json")


def test_unreadable_verdicts_are_named_not_replayed_around(tmp_path):
    run_path = tmp_path / "r"
    recorded_run(run_path)
    vj = run_path / "cases" / "lost-write" / "ext4" / "shared" / "verdict.json"
    vj.write_text("{")
    run = load_run(run_path)
    with pytest.raises(UserError, match="1 unreadable verdict.*lost-write/ext4/shared.*--case"):
        repro.plan_repro(run)
    with pytest.raises(UserError, match="verdict of lost-write/ext4/shared is unreadable"):
        repro.plan_repro(run, ["lost-write/ext4/shared"])
    assert repro.plan_repro(run, ["ibverbs-pin/ext4/shared"]).cases == ["ibverbs-pin/ext4/shared"]


def test_a_recorded_kernel_build_replays_from_the_cache_or_its_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PINRIG_CACHE", str(tmp_path / "cache"))
    image = tmp_path / "bzImage"
    image.write_bytes(b"x")
    m = {"kernel": {"name": "local-linux", "hash": "0123456789abcdef",
                    "spec_fields": {"kind": "image", "image": str(image), "modules": "/m"}}}
    text, pkg = repro.kernel_spec_yaml(m, "manifest.json")
    spec = yaml.safe_load(text)
    assert pkg == ("image", "0123456789abcdef")
    assert spec == {"name": "local-linux", "kind": "image", "image": str(image), "modules": "/m"}
    cached = tmp_path / "cache/kernels/local/0123456789abcdef"
    cached.mkdir(parents=True)
    (cached / "artifact.json").write_text("{}")
    (cached / "vmlinuz").write_bytes(b"x")
    spec = yaml.safe_load(repro.kernel_spec_yaml(m, "manifest.json")[0])
    assert spec["image"] == str(cached / "vmlinuz") and "modules" not in spec   # exactly it
    shutil.rmtree(cached)
    image.unlink()
    with pytest.raises(UserError, match="neither there nor in the cache"):
        repro.kernel_spec_yaml(m, "manifest.json")
    m["kernel"]["hash"] = "../../etc"
    with pytest.raises(UserError, match="kernel.hash"):
        repro.kernel_spec_yaml(m, "manifest.json")
