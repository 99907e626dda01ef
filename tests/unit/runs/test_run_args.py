"""`rig run` refuses what cannot be right before any kernel fetch or boot (issue 11: 4, 5)."""
import json

import pytest

from pinrig.errors import UserError
from pinrig.runs import runner


@pytest.fixture
def no_work(monkeypatch):
    """Any kernel fetch, image build or boot fails the test: validation must come first."""
    def forbidden(*a, **k):
        raise AssertionError("prepare_env called before the arguments were checked")
    monkeypatch.setattr(runner, "prepare_env", forbidden)


@pytest.mark.parametrize("kw, msg", [({"repeat": 0}, "--repeat 0: must be at least 1"),
                                     ({"repeat": -2}, "--repeat -2"),
                                     ({"jobs": 0}, "--jobs 0: must be at least 1")])
def test_counts_are_checked_first(no_work, kw, msg):
    with pytest.raises(UserError, match=msg):
        runner.run_suite("debian-6.1", "smoke", echo=lambda *a: None, **kw)


def test_resume_of_a_missing_directory_is_noticed_first(no_work, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        runner.run_suite("debian-6.1", "smoke", resume=tmp_path / "nope", echo=lambda *a: None)


@pytest.mark.parametrize("text, msg", [("{", "unreadable"), ("[]", "must be an object"),
                                       ('{"kernel": {"name": "debian-6.1"}, "suite": {"name": "smoke"}}',
                                        "seed")])
def test_resume_with_a_bad_manifest(no_work, tmp_path, text, msg):
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(UserError, match=msg):
        runner.run_suite("debian-6.1", "smoke", resume=tmp_path, echo=lambda *a: None)


def test_resume_of_another_kernels_run(no_work, tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"kernel": {"name": "debian-6.12"}, "suite": {"name": "smoke"}, "seed": 1}))
    with pytest.raises(UserError, match="that run is debian-6.12 --suite smoke"):
        runner.run_suite("debian-6.1", "smoke", resume=tmp_path, echo=lambda *a: None)


def test_out_holding_another_run_is_refused(no_work, tmp_path):
    """It used to run nothing and relabel the old verdicts as the new kernel's."""
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "cases").mkdir()
    with pytest.raises(UserError, match="not empty .*another run's results.*--resume"):
        runner.run_suite("debian-6.12", "smoke", out=tmp_path, echo=lambda *a: None)


def test_out_and_resume_together(no_work, tmp_path):
    with pytest.raises(UserError, match="not both"):
        runner.run_suite("debian-6.1", "smoke", out=tmp_path / "a", resume=tmp_path / "b",
                         echo=lambda *a: None)


def test_empty_or_new_out_is_fine(tmp_path):
    from pinrig.config import load_suite
    suite = load_suite("smoke")
    assert runner.check_run_args("debian-6.1", suite, tmp_path, None, 1, 1) is None
    assert runner.check_run_args("debian-6.1", suite, tmp_path / "new", None, 1, None) is None
