"""`rig series` and the series fields of a kernel spec: what was picked, bad input as one line."""
import json
from pathlib import Path

import pytest

from pinrig import cli, config, proc
from pinrig.kernels.source import lore

DATA = Path(__file__).resolve().parents[2] / "data" / "series"
MSGID = "20260101.v1.0-series@example.org"


@pytest.fixture(autouse=True)
def _signals(keep_signal_handlers):
    yield


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("rig: error: ") and "Traceback" not in err[0]
    return err[0]


def test_series_says_which_revision(capsys):
    assert cli.main(["series", str(DATA / "all-revisions.mbox")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("series all-revisions.mbox v2: 3 patch(es) — mm/gup: refuse long-term")
    assert "using v2, the newest complete revision" in out
    assert cli.main(["series", str(DATA / "all-revisions.mbox"), "--rev", "1", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["revision"] == 1 and len(d["patches"]) == 3
    assert d["patches"][1]["trailers"][0] == "Reviewed-by: Bob Reviewer <bob@example.org>"


def test_series_trial_on_a_tree(capsys, monkeypatch):
    monkeypatch.setattr(proc, "RUNNER", proc.Runner())
    assert cli.main(["series", str(DATA / "v1.mbox"), "--tree", str(DATA / "drifted")]) == 2
    assert "hunk #1 of 1 FAILED at line 13" in one_error_line(capsys)
    assert cli.main(["series", str(DATA / "v1.mbox"), "--tree", str(DATA / "drifted"),
                     "--fuzz", "1", "--json"]) == 0
    trial = json.loads(capsys.readouterr().out)["trial"]
    assert [h["fuzz"] for h in trial["hunks"]] == [0, 1, 0]
    assert len(trial["warnings"]) == 3


@pytest.mark.parametrize("argv, words", [
    ([str(DATA / "no-patch.mbox")], "no-patch.mbox: no patch in it"),
    ([str(DATA / "v1.mbox"), "--rev", "4"], "--rev 4: no revision 4 in it (has v1)"),
    ([str(DATA / "v1.mbox"), "--fuzz", "2"], "--fuzz: only with --tree DIR"),
    ([str(DATA / "v1.mbox"), "--mbox", "x"], "--mbox: only with lore:MESSAGE-ID"),
    (["lore:not a msgid"], "not a Message-ID"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, words):
    assert cli.main(["series", *argv]) == 2
    assert words in one_error_line(capsys)


def test_lore_offline_exit_2_and_nothing_cached(capsys, monkeypatch):
    monkeypatch.setattr(proc, "RUNNER", proc.Runner())       # the real b4, no network
    assert cli.main(["series", f"lore:{MSGID}"]) == 2
    line = one_error_line(capsys)
    assert f"lore:{MSGID}: cannot fetch the thread (b4 mbox failed" in line
    ids = lore.cache_root() / "ids"
    assert not ids.exists() or not list(ids.iterdir())
    assert cli.main(["series", f"lore:{MSGID}", "--mbox", str(DATA / "v1.mbox")]) == 0
    assert "from local mbox" in capsys.readouterr().out


def spec(tmp_path, body):
    tree = tmp_path / "linux"
    tree.mkdir(exist_ok=True)
    (tree / "Makefile").write_text("")
    p = tmp_path / "k.yaml"
    p.write_text(f"kind: source\nsource: dir:{tree}\n" + body)
    return p


def test_spec_lore_series_fields(tmp_path):
    s = config.load_kernel_spec(str(spec(tmp_path, f"series: lore:<{MSGID}>\n"
                                         f"series_mbox: {DATA / 'v1.mbox'}\nseries_rev: 1\n"
                                         "fuzz: 1\n")))
    assert (s.series, s.series_mbox, s.series_rev, s.fuzz) == (
        f"lore:{MSGID}", str(DATA / "v1.mbox"), 1, 1)
    o = config.override_spec(s, fuzz=0, rev=None)
    assert (o.fuzz, o.series_rev) == (0, 1)


@pytest.mark.parametrize("body, words", [
    ("series: lore:nope\n", "series: 'lore:nope': not a Message-ID"),
    (f"series: {DATA / 'v1.mbox'}\nseries_mbox: x.mbox\n", "series_mbox: only with series: lore:"),
    (f"series: lore:{MSGID}\nseries_mbox: nothere.mbox\n", "nothere.mbox does not exist"),
    (f"series: {DATA / 'v1.mbox'}\nfuzz: 5\n", "fuzz: must be 0..3"),
    (f"series: {DATA / 'v1.mbox'}\nseries_rev: 0\n", "series_rev: must be 1 or more"),
])
def test_spec_bad_series_fields(tmp_path, body, words):
    with pytest.raises(config.UserError, match=None) as e:
        config.load_kernel_spec(str(spec(tmp_path, body)))
    assert words in str(e.value) and "k.yaml" in str(e.value)


def test_fuzz_on_a_kernel_without_series(tmp_path):
    s = config.load_kernel_spec(str(spec(tmp_path, "")))
    with pytest.raises(config.UserError, match="--fuzz: kernel k has no patch series"):
        config.override_spec(s, fuzz=1)
