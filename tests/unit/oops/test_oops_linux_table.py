"""pinrig.oops.linux: the table of Linux's report formats, and the reports it
makes of real (corpus) and hand-made logs beyond the headline."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from pinrig.oops import KINDS, linux, parse_console, reboots
from pinrig.oops.table import PARSE, Table

# --------------------------------------------------------------------------
# The table itself.


def test_table_is_a_table():
    assert isinstance(linux.TABLE, Table)
    assert linux.TABLE.kinds == KINDS


def test_every_kind_in_the_table_is_known_and_documented():
    kinds = {o.kind for o in linux.TABLE.oopses}
    kinds |= {f.kind for o in linux.TABLE.oopses for f in o.formats}
    kinds |= set(linux.TABLE.once_kinds) | set(linux.TABLE.evidence_kinds)
    kinds |= set(linux.TABLE.fatal_kinds)
    kinds |= {k for c in linux.TABLE.continuations for k in c.kinds}
    assert kinds <= set(KINDS)
    for kind in KINDS:
        assert f"``{kind}``" in linux.__doc__


def test_fatal_kinds():
    assert linux.FATAL_KINDS == {"BUG", "Oops", "GPF", "panic"}
    assert linux.TABLE.fatal_kinds == linux.FATAL_KINDS


def test_headers_are_unique_and_stacks_well_formed():
    headers = [o.header for o in linux.TABLE.oopses]
    assert len(headers) == len(set(headers))
    for o in linux.TABLE.oopses:
        assert o.formats
        for f in o.formats:
            assert f.kind in KINDS
            for part in (f.stack.parts + f.stack.parts2) if f.stack else ():
                assert part is PARSE or isinstance(part, re.Pattern)


def test_restart_header_is_booting_the_kernel():
    assert [o.header for o in linux.TABLE.oopses if o.restart] == ["Booting the kernel"]


def test_rx_placeholders():
    m = linux.rx(r"<PC> <FUNC>").search(" [<ffffffff81234567>] ext4_dirty_folio+0x4c/0x60")
    assert m is not None and m.group(1) == "ext4_dirty_folio"
    m = linux.rx(r"at <SRC>").search("WARNING: at fs/ext4/inode.c:3585 ...")
    assert m is not None and m.group(1) == "fs/ext4/inode.c:3585"


def test_linux_imports_only_the_table_types():
    """No import cycle: linux.py knows the types, not the engine."""
    tree = ast.parse(Path(linux.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    assert imported <= {"pinrig.oops.table", "__future__", "re", "typing"}


def test_stall_and_hang_extractors_pick_the_interesting_frame():
    stall = next(f for o in linux.TABLE.oopses for f in o.formats
                 if f.fmt == "BUG: soft lockup in {1}").stack.extractor
    assert stall(["native_queued_spin_lock", "my_loop", "process_one_work", "kthread"]) == "my_loop"
    hang = next(f for o in linux.TABLE.oopses for f in o.formats
                if f.fmt == "INFO: task hung in {1}").stack.extractor
    assert hang(["__schedule", "schedule", "rwsem_down_write_slowpath", "ext4_sync_file"]) \
        == "ext4_sync_file"
    assert hang(["schedule", "synchronize_rcu_expedited", "foo"]) == "synchronize_rcu"


# --------------------------------------------------------------------------
# Report details beyond the headline.


def test_warning_frames_and_line(corpus_log):
    log = corpus_log("warn-ext4-dirty-folio-6.1.log")
    (rep,) = parse_console(log)
    lines = log.decode().split("\n")
    assert "WARNING: CPU: 0 PID: 534" in lines[rep.line - 1]
    # the RIP function first, then the call trace without the '?' frames
    assert rep.frames[:4] == ["ext4_dirty_folio", "folio_mark_dirty", "set_page_dirty_lock",
                              "unpin_user_pages_dirty_lock"]
    assert "__warn" not in rep.frames and "report_bug" not in rep.frames
    assert "---[ end trace" in rep.text.splitlines()[-1]
    assert "pinrig: case-end" not in rep.text


def test_suffixes_are_stripped_from_frames(corpus_log):
    (rep,) = parse_console(corpus_log("bug-mpage-prepare-extent-to-map-6.1.log"))
    assert rep.frames[0] == "mpage_prepare_extent_to_map"
    assert all("." not in f and "+" not in f for f in rep.frames)


def test_oops_followed_by_fatal_exception_panic_is_one_crash(corpus_log):
    reports = parse_console(corpus_log("null-deref-fatal-exception-in-interrupt-6.1.log"))
    assert [r.title for r in reports] == [
        "BUG: unable to handle kernel NULL pointer dereference in rxe_mr_copy"]
    assert "Kernel panic - not syncing: Fatal exception in interrupt" in reports[0].text


def test_panic_on_warn_is_part_of_the_warning(corpus_log):
    reports = parse_console(corpus_log("warn-panic-on-warn-6.1.log"))
    assert len(reports) == 1 and reports[0].kind == "WARNING"


def test_two_reports_in_log_order(corpus_log):
    reports = parse_console(corpus_log("two-reports-warn-then-bug-6.1.log"))
    assert [r.title for r in reports] == ["WARNING in ext4_dirty_folio",
                                          "kernel BUG in folio_end_writeback"]
    assert reports[0].line < reports[1].line


def test_kernel_reports_come_before_filesystem_reports(corpus_log):
    fs = b"[   61.118830] EXT4-fs error (device pmem0): ext4_validate_block_bitmap:421: comm fio: " \
         b"bg 0: bad block bitmap checksum\n"
    reports = parse_console(fs + corpus_log("bug-mpage-prepare-extent-to-map-6.1.log"))
    assert [r.kind for r in reports] == ["BUG", "fs-error"]
    assert reports[0].title == "kernel BUG in mpage_prepare_extent_to_map"
    assert reports[1].line == 1
    (only,) = parse_console(fs)
    assert only.kind == "fs-error"


def test_repeated_fs_error_is_reported_once(corpus_log):
    reports = parse_console(corpus_log("ext4-error-bad-block-bitmap-6.12.log"))
    assert [r.title for r in reports] == ["EXT4-fs error in ext4_validate_block_bitmap",
                                          "EXT4-fs error in ext4_mb_clear_bb"]
    assert all(r.kind == "fs-error" for r in reports)


def test_xfs_assertion_absorbs_the_bug_it_triggers(corpus_log):
    reports = parse_console(corpus_log("xfs-assertion-failed-6.12.log"))
    assert len(reports) == 1
    assert reports[0].kind == "assertion"
    assert "xfs_trans_cancel" in reports[0].frames


def test_oops_line_after_a_bug_is_no_second_report_6_12(corpus_log):
    """Real 6.12 capture: 'BUG: TASK stack guard page was hit' is followed by 6.12's
    'Oops: stack guard page: 0000 [#1]' -- the same crash, not a second report."""
    reports = parse_console(corpus_log("stack-overflow-guard-page-module-debian-6.12.log"))
    assert [r.title for r in reports] == ["BUG: stack guard page was hit in proc_reg_write"]


def test_reports_from_other_contexts_do_not_leak_frames(corpus_log):
    (rep,) = parse_console(corpus_log("printk-caller-id-interleaved-6.12.log"))
    assert "copy_data" not in rep.frames and "rxe_mr_copy" not in rep.frames
    assert rep.frames[:2] == ["ext4_iomap_begin", "iomap_iter"]


def test_report_cut_off_by_a_reboot_is_corrupted():
    log = "\n".join([
        "[   74.331870] BUG: kernel NULL pointer dereference, address: 0000000000000008",
        "[   74.332948] #PF: supervisor read access in kernel mode",
        "[    0.000000] Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org)",
        "[    0.100000] RIP: 0010:default_idle+0xb/0x10",
        "[    0.100001] Call Trace:",
        "[    0.100002]  default_idle_call+0x2c/0xe0",
        "[    0.100003]  do_idle+0x226/0x2b0",
        "[    0.100004]  cpu_startup_entry+0x19/0x20",
    ])
    (rep,) = parse_console(log)
    assert rep.title == "BUG: unable to handle kernel NULL pointer dereference in corrupted"
    assert rep.corrupted and rep.frame == "" and rep.frames == []
    assert "Linux version" not in rep.text
    assert reboots(log) == []   # only one banner


def test_fs_messages_are_not_kernel_warnings():
    log = b"\n".join([
        b"[   36.882101] EXT4-fs (pmem0): DAX enabled. Warning: DAX support in ext4 driver is experimental",
        b"[   36.882101] EXT4-fs (pmem0): DAX enabled. Warning: EXPERIMENTAL, use at your own risk",
        b"[   36.901337] EXT4-fs (pmem0): mounted filesystem with ordered data mode. Quota mode: none.",
        b"[   36.901337] EXT4-fs (pmem0): WARNING: mounting fs with errors, running e2fsck is recommended",
        b"[   37.001337] XFS (pmem0): Mounting V5 Filesystem",
        b"[   37.101337] XFS (pmem0): DAX enabled. Warning: EXPERIMENTAL, use at your own risk",
        b"[   37.201337] XFS (pmem0): Ending clean mount",
        b"[   38.977432] EXT4-fs warning (device pmem0): ext4_set_page_dirty: page without buffers",
    ])
    reports = parse_console(log)
    assert [(r.title, r.kind) for r in reports] == [
        ("EXT4-fs warning in ext4_set_page_dirty", "fs-error")]


def test_benign_boot_lines_are_not_reports():
    log = "\n".join([
        "[    0.143330] x86/cpu: VMX (outside TXT) disabled by BIOS",
        "[    0.147720] RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable to RETBleed "
        "attacks, data leaks possible!",
        "[    0.146530] Spectre V2 : WARNING: Unprivileged eBPF is enabled with eIBRS on, data leaks "
        "possible via Spectre v2 BHB attacks!",
        "[    0.034208] Booting paravirtualized kernel on KVM",
        "[    2.477213] pmem0: detected capacity change from 0 to 2097152",
        "[    2.902210] rdma_rxe: loaded",
        "[    3.970212] hrtimer: interrupt took 11284234 ns",
        "[    4.970212] INFO: NMI handler (perf_event_nmi_handler) took too long to run: 1.234 msecs",
        "[    5.970212] traps: fio[1234] general protection fault ip:7f0e5d5e8b5b sp:7ffc1a3a8e70 "
        "error:0 in libc.so.6[7f0e5d500000+155000]",
        "[    6.970212] Buffer I/O error is not the same as this line",
    ])
    assert parse_console(log) == []


@pytest.mark.parametrize("line", [
    "[    5.000000] RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable",
    "[    5.000000] foo: WARNING: something informational",
])
def test_mid_line_warning_is_not_a_report(line):
    assert parse_console(line) == []


def test_second_decompressor_boot_is_an_unexpected_reboot():
    log = "\n".join([
        "Booting the kernel.",                          # first boot: not a report
        "[    0.000000] Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org)",
        "[    5.000000] systemd[1]: started",
        "Booting the kernel.",
    ])
    reports = parse_console(log)
    assert [(r.title, r.kind) for r in reports] == [("unexpected kernel reboot", "reboot")]
    assert reports[0].line == 4


def test_kinds_of_corpus_reports_are_documented(corpus_logs):
    for log in corpus_logs:
        for rep in parse_console(log):
            assert rep.kind in KINDS
            assert rep.kind in linux.__doc__ or rep.kind == "other"
