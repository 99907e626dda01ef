"""pinrig.cases.crashclass: the crash-class workload's JSON → summary and pageflags.txt."""
import json

from pinrig.cases import crashclass
from pinrig.cases.execute import CaseRun, _take_result
from pinrig.cases.verdict import RawOutcome, decide
from pinrig.config import Case, load_suite
from pinrig.oops import parse_console

PRIVATE, DIRTY, LRU, MMAP, UPTODATE = 1 << 35, 1 << 4, 1 << 5, 1 << 11, 1 << 3


def snap(name, flags, mapped=True, pfn_changed=0):
    """A snapshot as crash-class.c emits it, the counts derived from the flags."""
    bits = {"private": 35, "dirty": 4, "lru": 5, "active": 6, "mmap": 11, "uptodate": 3,
            "writeback": 8, "referenced": 2, "reclaim": 9, "unevictable": 18, "mlocked": 33,
            "mappedtodisk": 34, "buddy": 10, "compound_head": 15, "compound_tail": 16,
            "nopage": 20}
    counts = {k: sum(f >> b & 1 for f in flags) for k, b in bits.items()}
    counts.update(readable=len(flags), present=len(flags) if mapped else 0, pfn_changed=pfn_changed,
                  mapcount_sum=sum(1 for f in flags if f & MMAP))
    return {"stage": name, "t": 1.5, "mapped": mapped, "foll_pin_acquired": 300,
            "foll_pin_released": 44, "counts": counts, "flags": [hex(f) for f in flags],
            "mapcount": [1 if f & MMAP else 0 for f in flags],
            "pfn_now": [hex(0x1000 + i) for i in range(len(flags))] if mapped else None}


def result(trigger="pageout", pages=4, stripped=2, pin="granted", ran=True, **cc):
    """A crash-class JSON line: `stripped` pages lose PRIVATE and MMAP over the trigger."""
    clean = UPTODATE | LRU | PRIVATE | MMAP
    after = [clean & ~(PRIVATE | MMAP) if i < stripped else clean for i in range(pages)]
    c = {"trigger": trigger, "trigger_ran": ran,
         "trigger_note": "4 x MADV_PAGEOUT: 4 returned 0", "method": "madvise(MADV_PAGEOUT)",
         "rounds": 4, "round_results": [{"ret": "0", "memory_current_before": None,
                                         "memory_current_after": None}] * 4,
         "unmapped_before_trigger": False, "cgroup": "/sys/fs/cgroup/pinrig-crash-7",
         "cgroup_note": None, "cpu0": True, "warn_once_cleared": True, "warn_once_note": None,
         "vmstat_delta": {"pgsteal_direct": 2, "nr_mapped": -2}, "rdma_status": "success",
         "dereg_ret": 0, "fsync": "0", "expect": "device",
         "readback_cache": {"device": pages, "old": 0, "zero": 0, "other": 0, "errno": None},
         "readback_medium": {"device": pages - stripped, "old": stripped, "zero": 0, "other": 0,
                             "errno": None},
         "pfns": [hex(0x1000 + i) for i in range(pages)],
         "snapshots": [snap("registered", [clean] * pages), snap("after-trigger", after),
                       snap("after-write", after),
                       snap("after-dereg", [f | DIRTY for f in after]),
                       snap("after-fsync", after)]}
    c.update(cc)
    return {"workload": "crash-class", "pin": pin, "errno": None, "errno_num": None,
            "file": "/mnt/test/crash.dat", "size": pages * 4096, "block_size": 4096,
            "error": None, "elapsed_s": 3.2, "seed": 5, "memlock_limit": "unlimited",
            "device": "rxe0", "skip": None, "crash_class": c, "expected": ["00"] * pages}


def test_parse_reads_the_stages_readback_and_rounds():
    ev = crashclass.parse(result())
    assert ev is not None and ev.trigger == "pageout" and ev.ran and ev.pages == 4
    assert [s.name for s in ev.stages] == ["registered", "after-trigger", "after-write",
                                           "after-dereg", "after-fsync"]
    assert ev.stage("registered").counts["private"] == 4
    assert ev.stage("after-trigger").counts["private"] == 2
    assert ev.stage("after-trigger").flags[0] == UPTODATE | LRU
    assert ev.readback == {"cache": {"device": 4, "old": 0, "zero": 0, "other": 0},
                           "medium": {"device": 2, "old": 2, "zero": 0, "other": 0}}
    assert ev.rounds == ("0",) * 4 and ev.vmstat == {"pgsteal_direct": 2, "nr_mapped": -2}
    assert ev.expect == "device" and ev.fsync == "0" and ev.warn_once_cleared is True


def test_summary_says_what_the_trigger_did_and_what_was_read_back():
    text = crashclass.summary(crashclass.parse(result()))
    assert text.startswith("trigger pageout: 4 x MADV_PAGEOUT: 4 returned 0")
    assert "pinned pages over the trigger (of 4): PRIVATE 4->2, DIRTY 0->0, MMAP 4->2, LRU 4->4" in text
    assert "PFN changed 0" in text
    assert "unpin: DIRTY 0->4 (PRIVATE 2)" in text
    assert "medium: device 2, old 2; cache: device 4" in text


def test_summary_of_a_migration_lists_the_move_pages_statuses():
    mig = {"nodes": 2, "from": 0, "to": 1, "ret": 4, "errno": None,
           "status": {"EBUSY": 3, "EAGAIN": 1}, "node_after": {"node0": 4},
           "status_per_page": [-16, -16, -16, -11]}
    ev = crashclass.parse(result("migrate", stripped=0, migrate=mig))
    assert ev.migrate["status"] == {"EBUSY": 3, "EAGAIN": 1} and ev.migrate["to"] == 1
    assert "move_pages status EBUSY 3, EAGAIN 1" in crashclass.summary(ev)
    text = crashclass.evidence_text(ev)
    assert "move_pages node 0 -> 1: returned 4; status EBUSY 3, EAGAIN 1; node afterwards node0 4" \
        in text


def test_evidence_text_has_the_count_table_and_groups_pages_by_history():
    text = crashclass.evidence_text(crashclass.parse(result(pages=6, stripped=3)))
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("stage"))
    assert lines[head].split()[:4] == ["stage", "private", "dirty", "lru"]
    assert lines[head + 1].split()[:3] == ["registered", "6", "0"]
    assert lines[head + 2].split()[:3] == ["after-trigger", "3", "0"]
    assert "  3 page(s) 0-2:" in lines and "  3 page(s) 3-5:" in lines
    grp = lines.index("  3 page(s) 0-2:")
    assert lines[grp + 1].split() == ["registered", "UPTODATE", "LRU", "MMAP", "PRIVATE"]
    assert lines[grp + 2].split() == ["after-trigger", "UPTODATE", "LRU"]
    assert "read back (O_DIRECT read): device 3, old 3, zero 0, other 0" in text


def test_untrusted_fields_are_dropped_not_trusted():
    bad = result()
    c = bad["crash_class"]
    c["snapshots"] = [{"stage": 5}, "x", {"stage": "registered", "counts": {"private": -3,
                                                                             "dirty": True},
                                          "flags": ["nothex", "0x" + "f" * 40]}]
    c["readback_medium"] = {"device": "all"}
    c["round_results"] = "nope"
    c["migrate"] = {"status": {"EBUSY": "many"}}
    ev = crashclass.parse(bad)
    assert [s.name for s in ev.stages] == ["registered"] and ev.stages[0].counts == {}
    assert ev.stages[0].flags == ()          # wrong length for 4 pages: not per page
    assert "medium" not in ev.readback and ev.rounds == ()
    assert ev.migrate["status"] == {}
    crashclass.summary(ev)
    crashclass.evidence_text(ev)
    assert crashclass.parse({"crash_class": {"trigger": 3}}) is None
    assert crashclass.parse({"pin": "granted"}) is None
    assert crashclass.parse("x") is None
    huge = result()
    huge["size"] = 1 << 50
    assert crashclass.parse(huge).pages == 4          # from the PFN list instead
    huge["crash_class"]["pfns"] = None
    assert crashclass.parse(huge).pages == 0


def test_a_kernel_without_kpageflags_says_so_instead_of_counting_zeros():
    res = result()
    for sn in res["crash_class"]["snapshots"]:
        sn["counts"]["readable"] = 0
    text = crashclass.summary(crashclass.parse(res))
    assert "no /proc/kpageflags evidence" in text and "PRIVATE" not in text


def test_flag_names_and_ranges():
    assert crashclass.flag_names(PRIVATE | DIRTY | 1 << 60) == ["DIRTY", "PRIVATE", "bit60"]
    assert crashclass._ranges([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"


def run_of(res, rc=0):
    c = Case("crash-class", "ext4", "shared", res["crash_class"]["trigger"])
    run = CaseRun(RawOutcome(c.id))
    ok = _take_result(run, c, json.dumps(res) + "\n", rc)
    return c, run, ok


def test_take_result_keeps_the_evidence_and_notes_the_summary():
    c, run, ok = run_of(result())
    assert ok and "pageflags.txt" in run.files and run.raw.note.startswith("trigger pageout")
    assert run.raw.infra_error is None


def test_a_trigger_that_did_not_run_is_an_error_not_an_ok():
    c, run, ok = run_of(result(ran=False, trigger_note="memcg reclaim failed"))
    v = decide(c, run.raw, [])
    assert v.verdict == "error" and "the trigger pageout did not happen" in v.reason


def test_a_trigger_the_guest_cannot_do_is_skipped():
    res = result("migrate", ran=False)
    res["skip"] = "the guest has 1 NUMA node(s): move_pages needs two (boot with numa=fake=2)"
    c, run, ok = run_of(res)
    v = decide(c, run.raw, [])
    assert v.verdict == "skipped" and "1 NUMA node" in v.reason


def test_a_refused_pin_is_refused_with_the_evidence_file_but_no_trigger_note():
    res = result(pin="refused", ran=False, snapshots=[])
    res["errno"] = "EFAULT"
    c, run, ok = run_of(res)
    assert ok and run.raw.note is None and run.raw.infra_error is None
    assert "pageflags.txt" in run.files
    v = decide(c, run.raw, [])
    assert v.verdict == "refused" and v.errno == "EFAULT"


def test_a_warning_with_lost_blocks_is_a_crash_whose_reason_says_both():
    from pinrig.cases.integrity import verify
    c, run, ok = run_of(result())
    console = ("------------[ cut here ]------------\n"
               "WARNING: CPU: 0 PID: 812 at fs/ext4/inode.c:3707 ext4_set_page_dirty+0x3b/0x50 [ext4]\n"
               "Modules linked in: rdma_rxe ext4\n"
               "CPU: 0 PID: 812 Comm: crash-class Not tainted 5.10.0-46-amd64 #1 Debian 5.10.262-1\n"
               "RIP: 0010:ext4_set_page_dirty+0x3b/0x50 [ext4]\n"
               "Call Trace:\n"
               " set_page_dirty_lock+0x48/0x70\n"
               " unpin_user_pages_dirty_lock+0x7e/0x100\n"
               " __ib_umem_release+0x6a/0xa0 [ib_core]\n"
               "---[ end trace 1234567890abcdef ]---\n")
    reports = parse_console(console)
    v = decide(c, run.raw, reports, verify(["a", "b", "c", "d"], ["a", "b", "x", "y"]))
    assert v.verdict == "crash" and v.title.startswith("WARNING in ext4_set_page_dirty")
    assert "; and 2 of 4 blocks lost; trigger pageout" in v.reason


def test_the_suite_is_every_trigger_on_ext4_and_xfs_with_two_numa_nodes():
    s = load_suite("crash-class")
    assert s.kernel_append == ("numa=fake=2",)
    ids = [c.id for c in s.cases]
    assert len(ids) == 20 and "crash-class/ext4/shared/splice-steal" in ids
    assert {c.variant for c in s.cases} == set(crashclass_triggers())
    assert {c.fs for c in s.cases} == {"ext4", "xfs"}


def crashclass_triggers():
    from pinrig.cases.workloads import CRASH_TRIGGERS
    return CRASH_TRIGGERS


def test_case_files_add_the_evidence_but_never_replace_the_standard_ones():
    from pinrig.runs.runner import _case_files
    c, run, ok = run_of(result())
    run.files["result.json"] = "forged"
    files = _case_files("console", "dmesg", run, [])
    assert files["pageflags.txt"].startswith("trigger: pageout")
    assert files["result.json"] != "forged" and json.loads(files["result.json"])["seed"] == 5


DATA = __import__("pathlib").Path(__file__).resolve().parents[2] / "data" / "crash-class"


def test_a_real_splice_steal_result_from_debian61():
    """result.json of crash-class/ext4/shared/splice-steal on debian-6.1 (6.1.192-3): the pinned
    pages lost their buffers over the trigger and stayed mapped; the unpin dirtied them; the
    medium kept the old data while the page cache held the device's."""
    ev = crashclass.parse(json.loads((DATA / "splice-steal-ext4-debian-6.1.json").read_text()))
    assert ev.trigger == "splice-steal" and ev.ran and ev.pages == 256
    assert ev.stage("registered").counts["private"] == 256
    assert ev.stage("after-trigger").counts["private"] == 0
    assert ev.stage("after-trigger").counts["mmap"] == 256
    assert ev.stage("after-dereg").counts["dirty"] == 256
    assert ev.readback == {"cache": {"device": 256, "old": 0, "zero": 0, "other": 0},
                           "medium": {"device": 0, "old": 256, "zero": 0, "other": 0}}
    text = crashclass.summary(ev)
    assert "PRIVATE 256->0, DIRTY 0->0, MMAP 256->256" in text and "medium: old 256" in text
    assert "served 8 READ(s), 256 page(s) spliced" in text


def test_a_real_migrate_result_keeps_the_move_pages_outcome():
    ev = crashclass.parse(json.loads((DATA / "migrate-ext4-debian-6.1.json").read_text()))
    assert ev.migrate["from"] == 0 and ev.migrate["to"] == 1 and ev.migrate["ret"] == 256
    assert ev.migrate["status"] == {"not-reported": 256}
    assert ev.migrate["node_after"] == {"node0": 256}
    assert ev.vmstat.get("pgmigrate_fail") == 256
    assert "256 page(s) 0-255:" in crashclass.evidence_text(ev)
