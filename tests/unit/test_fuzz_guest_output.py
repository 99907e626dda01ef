"""Guest output is untrusted: whatever the kernel under test prints (titles, reasons, errno
names, console and guest logs) goes through verdict.json, JUnit, KCIDB, HTML, compare and repro
without breaking any of them (issue 11: item 3 and "guest output fuzzed end to end")."""
import json
import random
import xml.etree.ElementTree as ET

import pytest

from pinrig.cases.verdict import Verdict
from pinrig.outcome import Outcome
from pinrig.results import compare, html, kcidb
from pinrig.results.rundir import RunDir, junit_xml, summary_text
from pinrig.runs import repro

ATOMS = ["\ufffe", "\uffff", "\x00", "\x1b[31m", "\x07", "\ud800", "\r", "\n", "<script>alert(1)</script>",
         "]]>", "&amp;", "'\"", "\u202e", "💥", "\x7f", "\\", "{", "}", "%s%n", "A" * 5000]


def nasty(rng: random.Random) -> str:
    return "".join(rng.choice(ATOMS + ["BUG: ", "WARNING in ", "x"]) for _ in range(rng.randint(1, 12)))


def _run(path, rng, kernel):
    cases = ["lost-write/ext4/shared", "ibverbs-pin/ext4/shared", "iouring-fixed/xfs/shared"]
    m = {"run_id": path.name, "kernel": {"name": kernel, "release": nasty(rng), "hash": "h" + kernel,
                                          "packages": ["linux-image-6.1.0-50-amd64=6.1.176-1"],
                                          "suite": "bookworm"},
         "guest": {"name": "bookworm", "hash": "g"}, "seed": 1, "repeat": 1, "accel": "tcg",
         "host": {"hostname": nasty(rng)}, "start": "2026-11-29T00:00:00+0000",
         "suite": {"name": "fuzz", "cases": [dict(zip(("workload", "fs", "mapping"), c.split("/")),
                                                   id=c) for c in cases]}}
    run = RunDir(path, m)
    path.mkdir(parents=True)
    run.write_manifest()
    verdicts = []
    for c in cases:
        v = Verdict(c, rng.choice([Outcome.CRASH, Outcome.DATA_LOSS, Outcome.ERROR, Outcome.OK]),
                    errno=nasty(rng), title=nasty(rng), titles=[nasty(rng), nasty(rng)],
                    reason=nasty(rng), pin=rng.choice(["granted", "refused", nasty(rng)]),
                    blocks_lost=3, blocks_checked=256, first_bad_offset=4096)
        blob = nasty(rng).encode("utf-8", "surrogatepass") + bytes(rng.randrange(256) for _ in range(200))
        run.write_case(v, {"console.log": blob, "guest.log": blob, "dmesg.log": blob})
        verdicts.append(v)
    return run, verdicts


@pytest.mark.parametrize("seed", range(25))
def test_guest_output_never_breaks_a_report(tmp_path, seed):
    rng = random.Random(seed)
    run_a, va = _run(tmp_path / "a", rng, "debian-6.1")
    run_b, _vb = _run(tmp_path / "b", rng, "debian-6.12")

    ET.fromstring(junit_xml(run_a, va))                          # JUnit parses
    summary_text(run_a, va)
    for v in va:                                                 # verdict.json round-trips
        d = json.loads((run_a.case_dir(v.case) / "verdict.json").read_text())
        assert Verdict.from_dict(d) == v

    data = kcidb.export(tmp_path / "a")                          # KCIDB validates
    kcidb.validate(data)
    json.dumps(data)

    cmp = compare.compare_runs(compare.load_run(tmp_path / "a"), compare.load_run(tmp_path / "b"))
    json.loads(compare.format_json(cmp))
    compare.format_text(cmp)
    compare.format_markdown(cmp)
    page = html.compare_html(cmp)
    assert "<script>" not in page                                # escaped
    assert "\x00" not in page and "\ufffe" not in page

    plan = repro.plan_repro(compare.load_run(tmp_path / "a"))    # repro plans from it
    assert plan.cases
