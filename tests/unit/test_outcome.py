"""pinrig.outcome: one vocabulary, and every consumer agrees with its pass/fail/inconclusive sets."""
import json

import pytest

from pinrig import outcome
from pinrig.cases.verdict import Verdict
from pinrig.outcome import FAILURES, INCONCLUSIVE, PASSES, Outcome
from pinrig.results import kcidb
from pinrig.runs.nightly import History


def test_sets_partition_the_vocabulary():
    assert PASSES | FAILURES | INCONCLUSIVE == set(Outcome)
    assert not (PASSES & FAILURES) and not (PASSES & INCONCLUSIVE) and not (FAILURES & INCONCLUSIVE)
    assert outcome.NAMES == ("ok", "refused", "data-loss", "crash", "unexpected", "pin-leak",
                             "pin-incoherent", "checksum-error", "writeback-error",
                             "clone-changed", "error", "skipped")


@pytest.mark.parametrize("o, junit, status", [
    (Outcome.OK, "pass", "PASS"), (Outcome.REFUSED, "pass", "PASS"),
    (Outcome.DATA_LOSS, "failure", "FAIL"), (Outcome.CRASH, "failure", "FAIL"),
    (Outcome.UNEXPECTED, "failure", "FAIL"), (Outcome.PIN_LEAK, "failure", "FAIL"),
    (Outcome.PIN_INCOHERENT, "failure", "FAIL"),
    (Outcome.CHECKSUM_ERROR, "failure", "FAIL"), (Outcome.CLONE_CHANGED, "failure", "FAIL"),
    (Outcome.WRITEBACK_ERROR, "failure", "FAIL"),
    (Outcome.ERROR, "error", "ERROR"),
    (Outcome.SKIPPED, "skipped", "SKIP")])
def test_junit_and_kcidb_mapping(o, junit, status):
    assert o.junit == junit and o.kcidb == status
    assert kcidb._status(o.value) == status


def test_str_format_and_json_are_the_plain_name():
    assert str(Outcome.DATA_LOSS) == "data-loss" and f"{Outcome.CRASH:>6}" == " crash"
    assert json.dumps({"v": Outcome.OK}) == '{"v": "ok"}'
    assert Outcome.OK == "ok"


def test_parse_names_the_valid_names():
    with pytest.raises(ValueError, match="unknown verdict 'fine'.*ok, refused"):
        Outcome.parse("fine")


def test_verdict_round_trip_and_validation():
    v = Verdict(case="a/ext4/shared", verdict=Outcome.REFUSED, errno="EFAULT")
    d = json.loads(json.dumps(v.to_dict()))
    assert d["verdict"] == "refused"
    back = Verdict.from_dict(d)
    assert back.verdict is Outcome.REFUSED and back == v
    for bad, msg in (({"case": "x"}, "verdict"), ({"case": "x", "verdict": "fine"}, "unknown"),
                     ({"case": "x", "verdict": "ok", "blocks_lost": "many"}, "blocks_lost"),
                     ([], "object")):
        with pytest.raises(ValueError, match=msg):
            Verdict.from_dict(bad)


def test_nightly_pass_rate_leaves_inconclusive_out(tmp_path):
    """A skipped case passes the exit code; it must not lower the nightly pass rate either."""
    hist = History(tmp_path / "h.sqlite")
    rows = [("ok", 1), ("refused", 2), ("skipped", 3), ("error", 4), ("crash", 5)]
    with hist.db:
        for verdict, i in rows:
            hist.db.execute("INSERT INTO case_results (night, label, suite, case_id, attempt, "
                            "verdict) VALUES ('n1', 'k', 's', ?, 1, ?)", (f"c{i}", verdict))
        hist.db.execute("INSERT INTO case_results (night, label, suite, case_id, attempt, "
                        "verdict) VALUES ('n1', 'k', 'only-skips', 'c', 1, 'skipped')")
    rates = hist.pass_rates()
    assert rates[("k:s", "n1")] == pytest.approx(2 / 3)
    assert ("k:only-skips", "n1") not in rates
