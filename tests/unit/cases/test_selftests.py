"""pinrig.cases.selftests: the kernel's selftests as suite workloads (guest side faked)."""
from pinrig.cases import selftests
from pinrig.cases.kselftest import Subtest
from tests.fakes import ScriptedGuest


def test_vmtests_matrix_is_run_vmtests_run_gup_matrix():
    m = selftests.vmtests_matrix(256)
    assert len(m) == 180
    assert m[0] == ("-t -u -w -S -n 1", ["-t", "-u", "-w", "-S", "-n", "1"])
    assert m[5][1] == ["-t", "-u", "-w", "-n", "123"]          # private: no empty argument
    hug = [argv for _, argv in m if argv[0] == "-H"]
    assert len(hug) == 60 and all(argv[1:3] == ["-m", "256"] for argv in hug)
    assert len({name for name, _ in m}) == 180


def test_hugetlb_line_parsed():
    got = selftests.parse_hugetlb("PINRIG-HUGETLB size_kb=2048 need=128 free=128 old=0")
    assert got == {"size_kb": 2048, "need": 128, "free": 128, "old": 0}
    assert selftests.parse_hugetlb("garbage x=y") == {}


def test_hugetlb_script_sets_and_keeps_old_count():
    s = selftests.hugetlb_script()
    assert "/proc/sys/vm/nr_hugepages" in s and "/run/pinrig-nr_hugepages.orig" in s
    assert f"{256 * 1024}" in s
    assert "/run/pinrig-nr_hugepages.orig" in selftests.HUGETLB_RESTORE


def test_gup_test_run_exit_codes_and_tap():
    assert selftests.gup_test_run("a", 1, "tmpfs", 0, "Time: 1 us\n").result == "pass"
    assert selftests.gup_test_run("a", 1, "tmpfs", 4, "skip\n").result == "skip"
    bad = selftests.gup_test_run("a", 1, "tmpfs", 1, "ioctl: Bad address\n")
    assert bad.result == "fail" and "exit 1" in bad.detail
    tap = "TAP version 13\n1..1\nnot ok 1 ioctl status 1\n"
    assert selftests.gup_test_run("a", 1, "tmpfs", 0, tap).result == "fail"
    tap = "TAP version 13\n1..1\nok 1 # SKIP Please run this test as root\n"
    assert selftests.gup_test_run("a", 1, "tmpfs", 0, tap).result == "skip"


def _s(result, n=1, name="x", detail=""):
    return Subtest("cow", "tmpfs", n, name, result, detail)


def test_judge():
    failure, skip, summary = selftests.judge([_s("pass"), _s("fail", 2, "bad"), _s("skip", 3)], [])
    assert failure.startswith("1 of 3 subtests failed: 2:bad") and skip is None
    assert summary == "1 fail, 1 pass, 1 skip"
    assert selftests.judge([_s("skip", detail="no hugetlb")], [])[1] == \
        "all 1 subtests skipped: no hugetlb"
    assert selftests.judge([], ["no /sys/kernel/debug/gup_test"])[1] == \
        "no /sys/kernel/debug/gup_test"
    assert selftests.judge([_s("pass"), _s("skip")], []) == (None, None, "1 pass, 1 skip")


COW_TAP = """TAP version 13
1..3
# [RUN] Basic COW after fork() ... with base page
ok 1 No leak from parent into child
# [RUN] Basic COW after fork() ... with hugetlb (2048 kB)
not ok 2 No leak from parent into child
# [RUN] R/O-mapping a page registered as iouring fixed buffer ... with hugetlb (1048576 kB)
ok 3 # SKIP need more free huge pages
# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0
"""


def _handler(tap, rc=1, free=128, gup_test_present=True, zram=True):
    def h(cmd):
        if cmd == selftests.SWAP_ON:
            return (0, "PINRIG-SWAP zram0 512M\n", "") if zram else (1, "", "modprobe: zram")
        if "PINRIG-HUGETLB" in cmd:
            return 0, f"PINRIG-HUGETLB size_kb=2048 need=128 free={free} old=0\n", ""
        if cmd.endswith("/cow") or cmd.endswith("/gup_longterm"):
            return rc, tap, ""
        if "test -e /sys/kernel/debug/gup_test" in cmd:
            return (0 if gup_test_present else 1), "", ""
        if "/gup_test " in cmd:
            return 0, "Time: get:1 put:1 us\n", ""
        return 0, "", ""
    return h


def test_run_in_guest_cow_reserves_hugetlb_parses_tap_and_restores():
    g = ScriptedGuest(_handler(COW_TAP))
    logged = []
    subs, notes, huge = selftests.run_in_guest(g, "cow", None, "tmpfs", "/mnt/test", 256, 60,
                                               lambda t, r: logged.append(t))
    assert [s.result for s in subs] == ["pass", "fail", "skip"]
    assert subs[1].name.endswith("with hugetlb (2048 kB)")
    assert huge["free"] == 128 and huge["swap"] == "zram0 512M" and notes == []
    assert "cd /mnt/test && /opt/pinrig/kselftest/cow" in g.commands
    # put back even after a failure
    assert g.commands[-2:] == [selftests.HUGETLB_RESTORE, selftests.SWAP_OFF]
    failure, _, _ = selftests.judge(subs, notes)
    assert failure and "2:Basic COW after fork() ... with hugetlb (2048 kB)" in failure


def test_run_in_guest_crash_exit_without_not_ok_is_a_failure():
    g = ScriptedGuest(_handler("TAP version 13\n1..5\nok 1 a\n", rc=139))
    subs, notes, _ = selftests.run_in_guest(g, "gup_longterm", None, "ext4", "/mnt/test", 256,
                                            60, lambda t, r: None)
    assert subs[-1].result == "fail" and "exit 139" in subs[-1].detail
    assert notes == ["plan 1..5 but 1 results (exit 139)"]


def test_run_in_guest_gup_test_without_config_is_skipped_with_reason():
    g = ScriptedGuest(_handler("", gup_test_present=False, free=10, zram=False))
    subs, notes, _ = selftests.run_in_guest(g, "gup_test", "vmtests", "tmpfs", "/mnt/test", 256,
                                            60, lambda t, r: None)
    assert subs == []
    assert "kernel without CONFIG_GUP_TEST" in notes[-1]
    assert notes[0].startswith("no swap: zram unavailable")           
    assert notes[1].startswith("hugetlb: 10 of 128")
    assert selftests.judge(subs, notes)[1].startswith("no swap")


def test_run_in_guest_gup_test_vmtests_runs_180_and_file_runs_the_longterm_matrix():
    g = ScriptedGuest(_handler(""))
    subs, _, _ = selftests.run_in_guest(g, "gup_test", "vmtests", "tmpfs", "/mnt/test", 256, 60,
                                        lambda t, r: None)
    assert len(subs) == 180 and all(s.result == "pass" for s in subs)
    assert any("gup_test -H -m 256 -L -w -S -n 512" in c for c in g.commands)
    g = ScriptedGuest(_handler(""))
    subs, _, _ = selftests.run_in_guest(g, "gup_test", "file", "ext4", "/mnt/test", 0x10000, 60,
                                        lambda t, r: None)
    assert [s.result for s in subs] == ["pinned"] * 5
    assert any("-F 0x10000" in c for c in g.commands)
