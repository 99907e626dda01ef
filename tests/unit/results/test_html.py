"""pinrig.results.html: self-contained pages (no scripts, no external assets), escaped text,
well-formed inline SVG charts."""
import re
import xml.etree.ElementTree as ET

from pinrig.cases.verdict import Verdict
from pinrig.results import html as report_html
from pinrig.results.compare import compare_runs, load_run
from pinrig.results.rundir import RunDir


def run(path, kernel, outcomes):
    cases = list(outcomes)
    m = {"kernel": {"name": kernel, "release": kernel + "-rel", "hash": "h", "packages": []},
         "guest": {"hash": "g"}, "suite": {"name": "smoke", "cases": [{"id": c} for c in cases]},
         "seed": 1, "repeat": max(len(v) for v in outcomes.values()), "accel": "tcg"}
    r = RunDir(path, m)
    path.mkdir(parents=True)
    r.write_manifest()
    for c, attempts in outcomes.items():
        for k, f in enumerate(attempts, 1):
            r.write_case(Verdict(c, attempt=k, **f), {})
    return load_run(path)


EVIL = "BUG: <script>alert(1)</script> & \"quoted\" in rxe_<mr>"


def comparison(tmp_path):
    a = run(tmp_path / "a", "k<a>", {
        "ibverbs-pin/ext4/shared": [{"verdict": "ok", "pin": "granted"}] * 2,
        "lost-write/ext4/shared": [{"verdict": "ok", "pin": "granted"}] * 2,
        "iouring-fixed/tmpfs/shared": [{"verdict": "skipped", "reason": "r"}] * 2})
    b = run(tmp_path / "b", "k&b", {
        "ibverbs-pin/ext4/shared": [{"verdict": "refused", "pin": "refused",
                                     "errno": "EFAULT"}] * 2,
        "lost-write/ext4/shared": [{"verdict": "crash", "title": EVIL, "titles": [EVIL],
                                    "where": "mm/<gup>.c:7"},
                                   {"verdict": "data-loss", "blocks_lost": 1}],
        "iouring-fixed/tmpfs/shared": [{"verdict": "skipped", "reason": "r"}] * 2,
        "extra/xfs/shared": [{"verdict": "ok"}]})
    return compare_runs(a, b)


def assert_self_contained(html):
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html
    assert "<link" not in html


def svgs(html):
    return re.findall(r"<svg.*?</svg>", html, re.S)


def test_compare_page(tmp_path):
    html = report_html.compare_html(comparison(tmp_path))
    assert_self_contained(html)
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "k&lt;a&gt; → k&amp;b" in html
    assert "REGRESSES" in html and 'class="verdict bad"' in html
    assert ">new crash<" in html and ">behaviour change<" in html
    assert "refused EFAULT 2/2" in html and "pin granted" in html
    assert "pin refused" not in html            # the chip already says so
    assert "extra/xfs/shared" in html and "only here" in html
    assert "at mm/&lt;gup&gt;.c:7" in html        # the symbolized line, escaped
    (svg,) = svgs(html)
    root = ET.fromstring(svg)                     # well-formed XML
    rects = [r for r in root.iter("{http://www.w3.org/2000/svg}rect")
             if r.get("fill") == report_html.VERDICT_COLOURS["crash"]]
    # the crash share of lost-write on B is half the bar width
    half = [r for r in rects if r.find("{http://www.w3.org/2000/svg}title") is not None
            and "50%" in r.find("{http://www.w3.org/2000/svg}title").text]
    assert half and float(half[0].get("width")) == 280.0


def test_trend_chart_and_index():
    nights = [{"name": "2026-11-21", "date": "2026-11-21", "plan": "p", "status": "complete",
               "runs": 2, "cases": 4, "failed": 1, "errors": 0, "changes": 1, "regressions": 1,
               "href": "2026-11-21/index.html"},
              {"name": "2026-11-20", "date": "2026-11-20", "plan": "p", "status": "complete",
               "runs": 2, "cases": 4, "failed": 0, "errors": 0, "changes": 0, "regressions": 0,
               "href": None}]
    points = {("a:smoke", "2026-11-20"): 1.0, ("a:smoke", "2026-11-21"): 0.5,
              ("b<x>:smoke", "2026-11-20"): 1.0, ("b<x>:smoke", "2026-11-21"): 1.0}
    html = report_html.nightly_index_html("pinrig nightly", nights, ["a:smoke", "b<x>:smoke"],
                                          points, {("a:smoke", "2026-11-21")})
    assert_self_contained(html)
    (svg,) = svgs(html)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}path")) == 2
    assert "b&lt;x&gt;:smoke" in svg and "new regression" in svg
    assert '<a href="2026-11-21/index.html">2026-11-21</a>' in html
    assert "1 new regression(s)" in html and "no change" in html


def test_single_night_chart_is_fine():
    svg = report_html.trend_chart_svg(["2026-11-20"], ["a"], {("a", "2026-11-20"): 0.75})
    root = ET.fromstring(svg)
    assert len(list(root.iter("{http://www.w3.org/2000/svg}circle"))) == 1


def test_night_page():
    html = report_html.night_html(
        {"name": "2026-11-21", "plan": "p", "status": "complete", "started": "t"},
        [{"label": "tip", "suite": "smoke", "release": "6.12", "status": "done",
          "counts": {"ok": 1, "data-loss": 1}, "href": "tip-smoke/summary.txt",
          "message": "1 regressed since 2026-11-20"}],
        [{"label": "tip", "suite": "smoke", "case": "x/ext4/shared", "class": "regressed",
          "a": "ok", "b": "data-loss", "detail": "failures 0/1 → 1/1", "regression": True}])
    assert_self_contained(html)
    assert "1 new regression(s) against the previous night" in html
    assert 'href="tip-smoke/summary.txt"' in html and 'class="hl"' in html
