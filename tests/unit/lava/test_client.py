"""rig lava submit / collect against a fake LAVA XML-RPC server on 127.0.0.1."""
import json
from pathlib import Path

import pytest

from pinrig.cli import main
from pinrig.errors import InfraError, UserError
from pinrig.lava.client import Lab, rpc_url
from tests.fakes import FakeLavaServer

DATA = Path(__file__).resolve().parents[2] / "data" / "lava"
JOB = DATA / "smoke-debian-6.1.job.yaml"
LOG = DATA / "smoke-debian-6.1.log"


def test_rpc_url_credentials_and_path():
    assert rpc_url("https://lava.example.org") == "https://lava.example.org/RPC2"
    assert rpc_url("https://lava.example.org/RPC2/", "me", "t:k/") == \
        "https://me:t%3Ak%2F@lava.example.org/RPC2/"
    with pytest.raises(UserError):
        rpc_url("ftp://x/RPC2")
    with pytest.raises(UserError):
        rpc_url("https://x/RPC2", None, "token-without-user")


def test_submit_then_collect_maps_the_lab_log(tmp_path, capsys):
    with FakeLavaServer(user="ci", token="s3cret") as lab:
        rc = main(["lava", "submit", str(JOB), "--url", lab.url, "--user", "ci",
                   "--token", "s3cret"])
        assert rc == 0
        job_id = capsys.readouterr().out.strip()
        assert job_id == "100" and lab.submitted == [JOB.read_text()]
        # the lab ran it: its log is the real lava-run log of this very job
        lab.jobs[job_id].update(state="Finished", log=LOG.read_text())
        out = tmp_path / "res"
        rc = main(["lava", "collect", job_id, "--url", lab.url, "--user", "ci",
                   "--token", "s3cret", "-o", str(out), "--json"])
        assert rc == 0
        cases = {c["case"]: c for c in json.loads(capsys.readouterr().out)["cases"]}
    assert {k: v["verdict"] for k, v in cases.items()} == \
        {"ibverbs-pin/ext4/shared": "ok", "ibverbs-pin/tmpfs/shared": "ok"}
    m = json.loads((out / "manifest.json").read_text())
    assert m["executor"]["jobs"][0]["id"] == "100"
    assert "s3cret" not in json.dumps(m)
    assert (out / "junit.xml").exists()
    assert all(a and a.startswith("Basic ") for a in lab.auth)


def test_logs_are_read_page_by_page_and_reassembled():
    text = "".join(f"- {{dt: x, lvl: target, msg: line {i}}}\n" for i in range(1000))
    with FakeLavaServer({"7": {"definition": "x", "log": text, "state": "Finished"}},
                        page=33) as lab:
        assert Lab(lab.url).logs("7") == text


def test_collect_refuses_an_unfinished_job(tmp_path, capsys):
    with FakeLavaServer({"5": {"definition": JOB.read_text(), "log": "", "state": "Running"}}) \
            as lab:
        rc = main(["lava", "collect", "5", "--url", lab.url, "-o", str(tmp_path / "r")])
    assert rc == 2
    assert "LAVA job 5 is Running, not finished" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_wrong_token_is_an_error_that_does_not_show_the_token(capsys):
    with FakeLavaServer(user="ci", token="right") as lab:
        rc = main(["lava", "submit", str(JOB), "--url", lab.url, "--user", "ci",
                   "--token", "wrong-token"])
    err = capsys.readouterr().err
    assert rc == 2 and "HTTP 401" in err and "wrong-token" not in err


def test_unknown_job_is_the_servers_fault_message():
    with FakeLavaServer() as lab:
        with pytest.raises(InfraError, match="Job '9' was not found"):
            Lab(lab.url).show("9")


def test_wait_gives_up_naming_the_jobs_still_running():
    with FakeLavaServer({"3": {"definition": "x", "log": "", "state": "Running"}}) as lab:
        naps = []
        with pytest.raises(InfraError, match=r"job\(s\) 3 not finished"):
            Lab(lab.url).wait(["3"], timeout=0.0, poll=1, echo=lambda *_: None,
                              sleep=naps.append)
        lab.jobs["3"]["state"] = "Finished"
        Lab(lab.url).wait(["3"], timeout=10, poll=1, echo=lambda *_: None, sleep=naps.append)
