"""Nightly plans that name a LAVA lab: validated like every other file (file + field), and run
through export → submit → wait → collect against a fake XML-RPC server."""
import json
import shutil
from pathlib import Path

import pytest

from pinrig.config import load_lava_lab
from pinrig.errors import UserError
from pinrig.lava import lab as lablib
from pinrig.runs import nightly
from tests.fakes import FakeLavaServer

DATA = Path(__file__).resolve().parents[2] / "data" / "lava"
GOOD = {"url": "https://lava.example.org/RPC2", "user": "ci", "token_env": "LAVA_TOKEN",
        "artifacts": {"dir": "/srv/pinrig", "url": "https://files.example.org/pinrig"}}


@pytest.mark.parametrize("change, msg", [
    ({"token": "abc"}, "lava.token: tokens do not belong in a file"),
    ({"url": "lava.example.org"}, "lava.url: 'lava.example.org' is not an http(s) URL"),
    ({"token_env": "not a name"}, "lava.token_env: 'not a name' is not an environment"),
    ({"user": None}, "lava.user: is required with token_env"),
    ({"artifacts": {"dir": "/x"}}, "lava.artifacts.url: is required"),
    ({"artifacts": {"dir": "/x", "url": "ftp://x"}}, "lava.artifacts.url: 'ftp://x' is not"),
    ({"accel": "hvf"}, "lava.accel: unknown value 'hvf'"),
    ({"timeout": 0}, "lava.timeout: must be positive"),
    ({"colour": "red"}, "lava.colour: unknown field"),
])
def test_lab_errors_name_file_and_field(tmp_path, change, msg):
    data = {**GOOD, **change}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(UserError) as e:
        load_lava_lab(tmp_path / "plan.yaml", data)
    assert str(e.value).startswith(f"{tmp_path / 'plan.yaml'}: {msg}")


def test_plan_with_a_lab(tmp_path):
    p = tmp_path / "plan.yaml"
    p.write_text("name: labnight\nkernels: [debian-6.1]\nsuites: [smoke]\n"
                 "lava:\n  url: https://lava.example.org/RPC2\n  artifacts:\n"
                 "    dir: exports\n    url: https://files.example.org/pinrig\n")
    plan = nightly.load_plan(str(p))
    assert plan.lava is not None and plan.lava.artifacts_dir == tmp_path / "exports"
    p.write_text("name: labnight\nkernels: [debian-6.1]\nsuites: [smoke]\nlava: yes\n")
    with pytest.raises(UserError, match=r"plan.yaml: lava: must be dict"):
        nightly.load_plan(str(p))


def test_lab_runner_exports_submits_waits_collects_and_resumes(tmp_path, monkeypatch):
    job_text = (DATA / "smoke-debian-6.1.job.yaml").read_text()
    exports = []

    def fake_export(kernel, suite, out, artifact_url=None, accel="tcg", **_kw):
        exports.append((kernel, suite, artifact_url))
        (out / "jobs").mkdir(parents=True)
        (out / "jobs" / "01.yaml").write_text(job_text)

    monkeypatch.setattr("pinrig.lava.export.export", fake_export)
    monkeypatch.setenv("LAB_TOKEN", "t0k")
    with FakeLavaServer(user="ci", token="t0k") as server:
        cfg = load_lava_lab(tmp_path / "plan.yaml", {
            "url": server.url, "user": "ci", "token_env": "LAB_TOKEN", "poll": 1,
            "artifacts": {"dir": str(tmp_path / "exp"), "url": "https://f.example/p"}})
        naps = []

        from pinrig.lava.client import Lab as RealLab

        def factory(*a, **k):
            lab = RealLab(*a, **k)
            real_wait = lab.wait

            def wait(ids, timeout, poll=30.0, echo=print, sleep=None):
                def nap(s):          # the lab finishes the job while we wait
                    naps.append(s)
                    for j in ids:
                        server.jobs[j].update(state="Finished",
                                              log=(DATA / "smoke-debian-6.1.log").read_text())
                return real_wait(ids, timeout, poll, echo=lambda *_: None, sleep=nap)
            lab.wait = wait
            return lab

        run = lablib.suite_runner(cfg, lab_factory=factory)
        out = tmp_path / "night" / "debian-6.1-smoke"
        run("debian-6.1", "smoke", out=out, echo=lambda *_: None)
        assert exports == [("debian-6.1", "smoke",
                            "https://f.example/p/night/debian-6.1-smoke/artifacts")]
        assert server.submitted == [job_text] and naps
        verdicts = {json.loads(p.read_text())["verdict"]
                    for p in (out / "cases").rglob("verdict.json")}
        assert verdicts == {"ok"}
        # resumed: the jobs submitted earlier are waited for again, nothing is resubmitted
        shutil.rmtree(out)
        run("debian-6.1", "smoke", resume=out, echo=lambda *_: None)
        assert len(server.submitted) == 1 and len(exports) == 1
        assert (out / "manifest.json").exists()


def test_lab_runner_needs_the_token_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("LAVA_TOKEN", raising=False)
    cfg = load_lava_lab(tmp_path / "p.yaml", GOOD)
    with pytest.raises(UserError, match=r"\$LAVA_TOKEN is not set"):
        lablib.suite_runner(cfg)("debian-6.1", "smoke", out=tmp_path / "n" / "r")
