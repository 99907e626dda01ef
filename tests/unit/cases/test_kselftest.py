"""pinrig.cases.kselftest: kselftest TAP (gup_longterm) and gup_test output → per-subtest results."""
from pinrig.cases import kselftest as KS

TAP = """\
TAP version 13
1..5
# [RUN] R/W longterm GUP pin in MAP_SHARED file mapping ... with memfd
ok 1 Should have worked
# [RUN] R/W longterm GUP pin in MAP_SHARED file mapping ... with local tmpfile
not ok 2 Should have failed
# [RUN] R/W longterm GUP-fast pin in MAP_SHARED file mapping ... with local tmpfile
ok 3 Should have failed
# [RUN] R/W longterm GUP pin in MAP_SHARED file mapping ... with memfd hugetlb (2048 kB)
ok 4 # SKIP need more free huge pages
# [RUN] io_uring fixed buffer with MAP_SHARED file mapping ... with tmpfile
ok 5 # xfail known
# Totals: pass:3 fail:1 xfail:0 xpass:0 skip:1 error:0
"""


def test_parse_tap_names_subtests_after_run_lines():
    plan, subs, totals = KS.parse_tap(TAP, "gup_longterm", "ext4")
    assert plan == 5 and totals == "Totals: pass:3 fail:1 xfail:0 xpass:0 skip:1 error:0"
    assert [(s.number, s.result) for s in subs] == [
        (1, "pass"), (2, "fail"), (3, "pass"), (4, "skip"), (5, "pass")]
    assert subs[1].name == ("R/W longterm GUP pin in MAP_SHARED file mapping ... "
                            "with local tmpfile")
    assert subs[1].detail == "Should have failed"
    assert subs[3].detail == "need more free huge pages"
    assert subs[1].id == ("gup_longterm/ext4/2:R/W longterm GUP pin in MAP_SHARED file mapping"
                          " ... with local tmpfile")


def test_parse_tap_without_run_lines_uses_descriptions():
    plan, subs, _ = KS.parse_tap("1..2\nok 1 - first thing\nnot ok 2 second # TODO later\n",
                                 "t", "tmpfs")
    assert [(s.name, s.result) for s in subs] == [("first thing", "pass"), ("second", "fail")]


def test_parse_gup_test_outputs():
    ok = "PIN_LONGTERM_BENCHMARK: Time: get:120 put:30 us\n"
    refused = "PIN_LONGTERM_BENCHMARK: Time: get:5 put:0 us, truncated (size: 0)\n"
    assert KS.parse_gup_test("a", 1, "ext4", 0, ok).result == "pinned"
    r = KS.parse_gup_test("a", 1, "ext4", 0, refused)
    assert (r.result, r.detail) == ("refused", refused.strip())
    assert KS.parse_gup_test("a", 1, "ext4", 0,
                             ok.replace(" us", " us, truncated (size: 4096)")).result == "partial"
    assert KS.parse_gup_test("a", 1, "ext4", 4, "check if CONFIG_GUP_TEST").result == "skip"
    assert KS.parse_gup_test("a", 1, "ext4", 1, "ioctl: Bad address").result == "error"


def test_gup_test_matrix_uses_the_trees_foll_longterm_on_the_fast_path(tmp_path):
    inc = tmp_path / "include" / "linux"
    inc.mkdir(parents=True)
    (inc / "mm.h").write_text("#define FOLL_WRITE\t0x01\n#define FOLL_LONGTERM\t0x10000\t/* x */\n")
    assert KS.foll_longterm(tmp_path) == 0x10000                   # 6.1
    (inc / "mm_types.h").write_text("enum {\n\tFOLL_WRITE = 1 << 0,\n\tFOLL_LONGTERM = 1 << 8,\n};\n")
    assert KS.foll_longterm(tmp_path) == 0x100                     # 6.3+
    m = dict(KS.gup_test_matrix(0x100))
    assert m["fast-longterm-rw-shared"][:3] == ["-a", "-F", "0x100"]
    assert "-S" in m["longterm-rw-shared"] and "-S" not in m["longterm-rw-private"]


def test_parse_gup_test_tap_style_output_of_newer_trees():
    out = ("TAP version 13\n1..1\n# PIN_FAST_BENCHMARK: Time: get:22 put:1 us# , truncated "
           "(size: 0)# \nok 1 ioctl status 0\n# Totals: pass:1 fail:0\n")
    r = KS.parse_gup_test("fast", 4, "ext4", 0, out)
    assert r.result == "refused" and "truncated (size: 0)" in r.detail
    ok = "TAP version 13\n1..1\n# PIN_LONGTERM_BENCHMARK: Time: get:472 put:26 us# \nok 1 ioctl status 0\n"
    r = KS.parse_gup_test("lt", 1, "ext4", 0, ok)
    assert r.result == "pinned" and r.detail.startswith("# PIN_LONGTERM_BENCHMARK: Time:")
