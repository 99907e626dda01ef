"""What Linux's crash reports look like: the report table for :mod:`pinrig.oops`.

Everything here is knowledge about Linux's crash reports; the engine
(:mod:`pinrig.oops.engine`) applies it, knowing only the console's line format
(printk prefixes).  The model and most of the entries are syzkaller's
pkg/report (linux.go).

* ``TABLE.oopses`` is a declarative table.  Each entry has a *header* (a plain
  substring that marks a line as the start of a report) and an ordered list of
  *formats*: a title regex, an optional regex the report must match, a title
  template and a *stack* recipe telling where the guilty function comes from
  (the RIP/PC line, the first ``Call Trace``, a lockdep ``at:`` line ...) and
  which generic helpers to skip.  The format whose title regex matches
  earliest in the report wins.
* Regexes use the placeholders ``<PC>`` (a ``[<ffffffff81234567>]`` address),
  ``<FUNC>`` (a function name, captured without its offset or compiler
  suffix) and ``<SRC>`` (``file.c:123``); :func:`rx` expands them.


Report kinds (``CrashReport.kind``):

==================  ==========================================================
``BUG``             ``kernel BUG at``, ``BUG: sleeping function called from
                    invalid context``, ``BUG: scheduling while atomic``,
                    spinlock bugs, other ``BUG:`` lines
``WARNING``         kernel ``WARN*()`` splats
``Oops``            page faults / NULL derefs, ``Unable to handle kernel ...``,
                    arm64 ``Internal error``, divide error, invalid opcode,
                    double fault, stack segment, a bare ``Oops:``
``GPF``             general protection fault
``panic``           ``Kernel panic - not syncing`` (when it is the report)
``KASAN`` ``KFENCE`` ``UBSAN`` ``KMSAN`` ``KCSAN``   sanitizer reports
``memory-leak``     kmemleak
``hung-task``       ``INFO: task ... blocked for more than N seconds``
``rcu-stall``       ``rcu: INFO: rcu_* (self-)detected stall(s)``
``lockup``          soft / hard lockup, workqueue lockup
``lockdep``         possible deadlock, inconsistent lock state, bad unlock
                    balance, suspicious RCU usage, other lockdep complaints
``bad-page``        ``BUG: Bad page state/map/cache``, bad rss-counter
``list-corruption`` ``list_add/list_del corruption`` (BUG or WARN flavour)
``fs-error``        ``EXT4-fs error/warning (device ...)``, XFS corruption /
                    internal error / metadata I/O error, ``Buffer I/O error``
``assertion``       ``XFS: Assertion failed: ...``
``reboot``          the kernel started booting again in the middle of a log
``other``           anything else (syzkaller/Go runtime messages ...)
==================  ==========================================================

Reports are returned in log order, except that filesystem reports (kind
``fs-error``) come after all kernel reports, so that the first report -- the
headline -- is the crash when there is one.  A line that merely continues a
report already under way (``Oops: 0000 [#1]``, ``invalid opcode: 0000`` after
``kernel BUG at``, ``Kernel panic - not syncing: Fatal exception`` or
``panic_on_warn set`` after the report that caused it, ``Internal error:``
after an arm64 fault, the ``kernel BUG`` an XFS assertion triggers ...) does
not start a report of its own.  A ``list_add corruption`` line is folded into
the BUG/WARNING that follows it.  Filesystem messages are reports of their own
(kind ``fs-error``/``assertion``, the same message repeated is reported once,
its ``count`` says how often);
they are never mistaken for kernel ``WARNING``s, and mount-time informational
lines are not reports.  A "Linux version" banner or "Booting the kernel" line
ends any report before it; ``reboots()`` lists the banners after the first.
A second "Booting the kernel" (the x86 decompressor) after kernel output is an
``unexpected kernel reboot`` report, as in syzkaller.

Standard library only.
"""
from __future__ import annotations

import re
from typing import Optional, Sequence, Tuple

from pinrig.oops.table import PARSE, Continuation, Format, Oops, Stack, Table

__all__ = ["KINDS", "FATAL_KINDS", "TABLE", "RIP", "CALL_TRACE", "rx"]

KINDS = (
    "BUG", "WARNING", "Oops", "GPF", "panic", "KASAN", "KFENCE", "UBSAN", "KMSAN",
    "KCSAN", "memory-leak", "hung-task", "rcu-stall", "lockup", "lockdep", "bad-page",
    "list-corruption", "fs-error", "assertion", "reboot", "other",
)
# Reports after which the kernel (or at least the task) is dead: the crash of a log.
FATAL_KINDS = frozenset(("BUG", "Oops", "GPF", "panic"))

# --------------------------------------------------------------------------
# Regex building blocks.  <PC>, <FUNC> and <SRC> are expanded by rx().

_PC = r"\[<?(?:0x)?[0-9a-f]+>?\]"
# A function name in a frame: the name is captured, the "+0x..." offset or the
# ".isra.0"/".constprop.0"/".cold" compiler suffix that follows is not.
_FUNC = r"([a-zA-Z0-9_]+)(?:\.|\+)"
_SRC = r"([a-zA-Z0-9_/.-]+\.[a-z]+:[0-9]+)"


def rx(pattern: str) -> "re.Pattern[str]":
    pattern = (pattern.replace("<PC>", _PC).replace("<FUNC>", _FUNC)
               .replace("<SRC>", _SRC))
    return re.compile(pattern, re.ASCII)



_RIP = (r"(?:IP|NIP|pc |PC is at):? (?:(?:[0-9]+:)?(?:<PC> +){0,2}<FUNC>|"
        r"(?:[0-9]+:)?0x[0-9a-f]+|(?:[0-9]+:)?<PC> +\[< *\(null\)>\] +\(null\)|"
        r"[0-9]+: +\(null\))")
RIP = rx(_RIP)
CALL_TRACE = rx(r"(?:Call (?:T|t)race:)|(?:Backtrace:)")

# Lines that start a stack trace (a stack parse stops at the next one).
_STACK_START = tuple(rx(p) for p in (
    r"Call (?:T|t)race",
    r"Allocated:",
    r"Allocated by task [0-9]+:",
    r"Freed:",
    r"Freed by task [0-9]+:",
    r"[^k] backtrace(?: \(crc [0-9a-fA-F]*\))?:",  # not "stack backtrace:"
    r"Backtrace:",
    r"Uninit was stored to memory at",
))
# Extra keywords accepted as "this report has a stack trace" (KFENCE prints
# its stacks without a "Call Trace:" line).
_STACK_PRESENT = _STACK_START + tuple(rx(p) for p in (
    r"(?:Out-of-bounds|Use-after-free|Invalid|Corrupted memory) (?:read|write|free)? ?at 0x",
    r"(?:allocated|freed) by task [0-9]+ on cpu",
))
_FRAME_RES = (
    rx(r"^ *(?:<PC> ){0,2}<FUNC>"),
    # arm: "[<c0123>] (foo) from [<c0456>] (bar+0x..)"
    rx(r"^ *<PC> \(([a-zA-Z0-9_.]+)\) from <PC> \(<FUNC>"),
)
_CORRUPTED_LINES = (
    # fault injection stacks are often intermixed with crash reports
    rx(r"^( \[<?(?:0x)?[0-9a-f]+>?\])? should_fail(slab)?(\.[a-z0-9.]+)?\+0x"),
)
_INLINE_FRAME = rx(r"^ *([a-zA-Z0-9_]+)(?:\.[a-z0-9.]+)? [a-zA-Z0-9_/.-]+:[0-9]+ \[inline\]")

# Generic helpers that are never the guilty frame (matched anywhere in the
# function name, like syzkaller's skip list).
_SKIP_COMMON = (
    # sanitizers and report machinery
    "__sanitizer", "__asan", "kasan", "hwasan", "__msan", "kmsan",
    "kcsan_setup_watchpoint", "check_memory_region", "check_heap_object",
    "check_object", "read_word_at_a_time", "(read|write)_once_.*nocheck",
    "print_address_description", "panic", "invalid_op", "report_bug", "fixup_bug",
    "print_report", "print_usage_bug", "valid_state", "do_error", r"_trap$|do_trap",
    "show_stack", "dump_stack", "walk_stack", "dump_backtrace", "warn_slowpath",
    "warn_alloc", "warn_bogus", "__warn", "handle_bug", "exc_invalid_op",
    "asm_exc_", "^die$", "__die", "oops_end",
    # allocators
    "alloc_page", "k?v?(?:m|z|c)alloc", "krealloc", "kmem_cache", "allocate_slab",
    "__alloc_frozen_pages_noprof", "folio_(?:alloc|unlock)", "filemap_alloc_folio",
    "__filemap_get_folio", "find_or_create_page", "do_read_cache_folio",
    "read_cache_page", "pagecache_get_page", "grab_cache_page_write_begin", "slab_",
    "debug_object", "timer_is_static_object", "work_is_static_object",
    "__might_fault", "print_unlock", "imbalance_bug",
    # locking and lockdep internals
    "lockdep", "bh_enable", "bh_disable", "perf_trace", "lock_acquire",
    "lock_release", "lock_class", "mark_lock", "(reacquire|mark)_held_locks",
    "raw_spin_rq", "spin_lock", "spin_trylock", "spin_unlock", "read_lock",
    "read_trylock", "write_lock", "write_trylock", "read_unlock", "write_unlock",
    "^down$", "down_read", "down_write", "down_read_trylock", "down_write_trylock",
    "down_trylock", "up_read", "up_write", "^mutex_", "^__mutex_", "^rt_mutex_",
    "owner_on_cpu", "osq_lock", "osq_unlock", "^lock_sock", "^release_sock",
    "atomic(64)?_(dec|inc|read|set|or|xor|and|add|sub|fetch|xchg|cmpxchg|try)",
    "(set|clear|change|test)_bit", "__wake_up", "^refcount_", "^kref_",
    "ref_tracker", "seqprop_assert",
    # mem*/str*/copy helpers
    "memcpy", "memcmp", "memset", "memchr", "memmove", "memdup", "strcmp",
    "strncmp", "strcpy", "strlcpy", "strncpy", "strscpy", "strlen", "strstr",
    "strnstr", "strnlen", "strchr", "strdup", "strndup", "copy_to_user",
    "copy_from_user", "copy_to_iter", "copy_from_iter", "copy_page_to_iter",
    "copy_page_from_iter", "copy_folio_to_iter", "^copyin$", "^copyout$",
    "put_user", "get_user", "might_fault", "might_sleep",
    # list / rbtree helpers
    "list_add", "list_del", "list_replace", "list_move", "list_splice", "^rb_",
    "^__rb_", "_indirect_thunk_",
    # printk and friends
    "string", "pointer", "snprintf", "scnprintf", "kasprintf", "kvasprintf",
    "printk", "va_format", "dev_info", "dev_notice", "dev_warn", "dev_err",
    "dev_alert", "dev_crit", "dev_emerg", "program_check_exception",
    "program_check_common",
    # timers, workqueues, devices: the caller is the interesting part
    "del_timer", "flush_work", "__cancel_work_timer", "cancel_work_sync",
    "try_to_grab_pending", "flush_workqueue", "drain_workqueue", "destroy_workqueue",
    "queue_work", "finish_wait", "kthread_stop", "kobject_", "add_uevent_var",
    "get_device_parent", "device_add", "device_del", "device_unregister",
    "device_destroy", "device_release", "devres_release_all", "hwrng_unregister",
    "i2c_del_adapter", "__unregister_client", "device_for_each_child",
    "rollback_registered", "unregister_netdev", "sysfs_remove",
    "device_remove_file", "tty_unregister_device", "dummy_urb_enqueue",
    "usb_kill_urb", "usb_kill_anchored_urbs", "usb_control_msg",
    "usb_hcd_submit_urb", "usb_submit_urb", "^complete$", "wait_for_completion",
    "^kv?free$", "kfree_skb", "readb$", "readw$", "readl$", "readq$", "writeb$",
    "writew$", "writel$", "writeq$", "logic_in", "logic_out", r"^crc\d+",
    "crc_itu_t", "__might_resched", "assertfail", "^iput$", "^iput_final$",
    "^ihold$", "hex_dump_to_buffer", "print_hex_dump", "^klist_",
    "(trace|lockdep)_(hard|soft)irq", "^(un)?lock_page", "stack_trace_consume_entry",
    "arch_stack_walk", "stack_trace_save", "insert_work", "__queue_delayed_work",
    "queue_delayed_work_on", "ida_free",
    # arm64 fault handling path
    "do_(kernel|translation)_fault", "do_mem_abort", "el1_abort",
    "el1h_64_sync(?:_handler)?", "print_tainted", "xas_(?:start|load|find)",
    "find_lock_entries", "truncate_inode_pages_range", "__phys_addr",
    "__fortify_report", "cleanup_srcu_struct", "rhashtable_lookup",
    "extract_(user|iter)_to_sg", "drop_nlink", "^get_taint$", "^put_device$",
    "lock_timer_base", "__timer_delete_sync", "sk_stop_timer_sync", "__mod_timer",
    "fast_dput", "dput",
)

# Syscall wrappers: "__x64_sys_ioctl" and "__se_sys_ioctl" are the same frame.
_STRIP_PREFIXES = (
    "SYSC_", "SyS_", "sys_", "__x64_", "__ia32_", "__arm64_", "____sys_", "___sys_",
    "__sys_", "__se_", "__se_sys_", "__do_sys_", "compat_SYSC_", "compat_SyS_", "ksys_",
)


# Stalls and lockups loop somewhere in a call chain; take the frame just
# above a well-known dispatch point (syscall entry, workqueue, timer, ...).
_STALL_ANCHORS = rx("|".join((
    "process_one_work", "do_syscall_", "do_fast_syscall_", "sysenter_dispatch",
    "tracesys_phase2", "el0_svc_handler", "invoke_syscall", "ret_fast_syscall",
    "netif_receive_skb", "do_softirq", "call_timer_fn", "_run_timers",
    "run_timer_softirq", "hrtimer_run", "run_ksoftirqd", "smpboot_thread_fn",
    "^kthread$", "start_secondary", "cpu_startup_entry", "ret_from_fork",
    "vfs_write", "vfs_read", "vfs_iter_read", "vfs_iter_write", "do_iter_read",
    "do_iter_write", "call_read_iter", "call_write_iter", "new_sync_read",
    "new_sync_write", "vfs_ioctl", "ksys_ioctl", "compat_ioctl", "compat_sys_ioctl",
    "blkdev_driver_ioctl", "blkdev_ioctl", "do_iter_readv_writev", "^call_mmap",
    "mmap_region", "do_mmap", "do_dentry_open", "vfs_open", "^sock_sendmsg",
    "^sock_recvmsg", "^sock_release", "^__sock_release", "^setsockopt$",
    "kernel_setsockopt", "sock_common_setsockopt", "^listen$", "kernel_listen",
    "sk_common_release", "^sock_mmap", "^accept$", "kernel_accept",
    "^sock_do_ioctl", "^sock_ioctl", "^compat_sock_ioctl", "^nfnetlink_rcv_msg",
    "^rtnetlink_rcv_msg", "^netlink_dump", "^(sys_)?(socketpair|connect|ioctl)",
    "__do_fault", "do_page_fault", "^page_fault$", "__fput", "task_work_run",
    "exit_to_usermode", "smp_call_function", "tasklet_action", "tasklet_hi_action",
)))


def _stall_frame(frames: Sequence[str]) -> str:
    prev = frames[0]
    for frame in frames:
        if _STALL_ANCHORS.search(frame):
            if "smp_call_function" in frame:
                return "smp_call_function"
            return prev
        prev = frame
    return ""


_HANG_ANCHORS = (
    ("rtnl_lock", ""), ("synchronize_rcu", "synchronize_rcu"),
    ("synchronize_srcu", "synchronize_rcu"), ("synchronize_net", "synchronize_rcu"),
    ("synchronize_sched", "synchronize_rcu"),
)
_HANG_SKIP = ("sched", "_lock", "_slowlock", "down", "rwsem", "completion", "kthread",
              "wait", "synchronize", "context_switch", "__switch_to",
              "cancel_delayed_work", "rcu_barrier")


def _hang_frame(frames: Sequence[str]) -> str:
    # Hung tasks are victims; group the classic "everybody waits for RCU /
    # rtnl" hangs, otherwise skip the scheduler/waiting frames.
    for frame in frames:
        for anchor, replacement in _HANG_ANCHORS:
            if anchor in frame:
                return replacement or frame
    for frame in frames:
        if not any(s in frame for s in _HANG_SKIP):
            return frame
    return ""


# --------------------------------------------------------------------------
# The declarative table.


def _f(title: str, fmt: str, kind: str, report: Optional[str] = None,
       stack: Optional[Stack] = None, no_stack: bool = False,
       corrupted: bool = False, bare: str = "") -> Format:
    return Format(rx(title), fmt, kind, rx(report) if report else None, stack,
                  no_stack, corrupted, bare)


def _warn_stack(*skip: str) -> Stack:
    # A WARN names the function in its RIP line (x86) or "--- interrupt" line
    # (powerpc); older kernels only print the call trace.
    return Stack(parts=(rx("(?:" + _RIP + r"|--- interrupt: [0-9]+ at <FUNC>)"), PARSE),
                 parts2=(CALL_TRACE, PARSE), skip=tuple(skip))


_FAULT_STACK = Stack(parts=(RIP, CALL_TRACE, PARSE))
_TRACE_STACK = Stack(parts=(CALL_TRACE, PARSE))
_RIP_ONLY = Stack(parts=(RIP,))
_AT_FUNC = r"at: (?:<PC> +)?<FUNC>"

_OOPSES: Tuple[Oops, ...] = (
    Oops("BUG:", kind="BUG", formats=(
        _f(r"BUG: KASAN:", "KASAN: {1} {3} in {4}", "KASAN",
           report=r"BUG: KASAN: ([a-z\-]+) in <FUNC>(?:.*\n)+?.*(Read|Write) (?:of size|at addr) (?:[0-9a-f]+)",
           stack=Stack(parts=(rx(r"BUG: KASAN: (?:[a-z\-]+) in <FUNC>"), CALL_TRACE, PARSE),
                       skip=("kernel_fault", "tag_check", "mem_abort", "^el1_", "^el1h_"))),
        _f(r"BUG: KASAN:", "KASAN: invalid-free in {2}", "KASAN",
           report=r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in <FUNC>",
           stack=Stack(parts=(rx(r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in <FUNC>"),
                              CALL_TRACE, PARSE),
                       skip=("slab_", "kfree", "vunmap", "vfree"))),
        _f(r"BUG: KASAN: ([a-z\-]+) on address(?:.*\n)+?.*(Read|Write) of size ([0-9]+)",
           "KASAN: {1} {2}", "KASAN"),
        _f(r"BUG: KASAN: (.*)", "KASAN: {1}", "KASAN", corrupted=True),
        _f(r"BUG: KMSAN: kernel-usb-infoleak", "KMSAN: kernel-usb-infoleak in {2}", "KMSAN",
           report=r"BUG: KMSAN: kernel-usb-infoleak in <FUNC>", no_stack=True,
           stack=Stack(parts=(PARSE, rx(r"(Local variable .* created at:|Uninit was created at:)"), PARSE),
                       skip=("alloc_skb", "usb_submit_urb", "usb_start_wait_urb", "usb_bulk_msg",
                             "usb_interrupt_msg", "usb_control_msg"))),
        _f(r"BUG: KMSAN:", "KMSAN: {1} in {3}", "KMSAN",
           report=r"BUG: KMSAN: ([a-z\-]+) in <FUNC>", no_stack=True,
           stack=Stack(parts=(PARSE, rx(r"(Local variable .* created at:|Uninit was created at:)"), PARSE),
                       skip=("alloc_skb", "netlink_ack", "netlink_rcv_skb", "_encrypt$",
                             "^(?:crypto|cipher|drbg|rng)_"))),
        _f(r"BUG: KCSAN: data-race", "KCSAN: {1}", "KCSAN", report=r"BUG: KCSAN: (.*)", no_stack=True),
        _f(r"BUG: KCSAN:", "KCSAN: {1}", "KCSAN", report=r"BUG: KCSAN: (.*)", no_stack=True),
        _f(r"BUG: KFENCE: (use-after-free|out-of-bounds) (read|write) in <FUNC>",
           "KFENCE: {1} {2} in {4}", "KFENCE",
           stack=Stack(parts=(rx(r"BUG: KFENCE: (?:[a-z\- ]+) in <FUNC>"), PARSE))),
        _f(r"BUG: KFENCE: invalid free in <FUNC>", "KFENCE: invalid free in {2}", "KFENCE",
           no_stack=True, stack=Stack(parts=(rx(r"BUG: KFENCE: (?:[a-z\- ]+) in <FUNC>"), PARSE))),
        _f(r"BUG: KFENCE: invalid (read|write) in <FUNC>", "KFENCE: invalid {1} in {3}", "KFENCE",
           stack=Stack(parts=(rx(r"BUG: KFENCE: (?:[a-z\- ]+) in <FUNC>"), PARSE))),
        _f(r"BUG: KFENCE: memory corruption in <FUNC>", "KFENCE: memory corruption in {2}", "KFENCE",
           no_stack=True, stack=Stack(parts=(rx(r"BUG: KFENCE: (?:[a-z\- ]+) in <FUNC>"), PARSE))),
        _f(r"BUG: (?:unable to handle kernel paging request|unable to handle page fault for address|"
           r"Unable to handle kernel data access)",
           "BUG: unable to handle kernel paging request in {1}", "Oops", stack=_FAULT_STACK),
        _f(r"BUG: (?:unable to handle kernel NULL pointer dereference|kernel NULL pointer dereference|"
           r"Kernel NULL pointer dereference)",
           "BUG: unable to handle kernel NULL pointer dereference in {1}", "Oops", stack=_FAULT_STACK),
        # the second half of the header is a separate printk and gets lost
        _f(r"BUG: (?:unable to handle kernel|Unable to handle kernel)", "BUG: unable to handle kernel",
           "Oops", corrupted=True),
        _f(r"BUG: (spinlock|rwlock) (lockup suspected|already unlocked|recursion|cpu recursion|"
           r"bad magic|wrong owner|wrong CPU|trylock failure on UP)",
           "BUG: {1} {2} in {3}", "BUG",
           stack=Stack(parts=(CALL_TRACE, PARSE), skip=("spin_", "_lock", "_unlock"))),
        _f(r"BUG: soft lockup", "BUG: soft lockup in {1}", "lockup",
           stack=Stack(parts=(RIP, CALL_TRACE, PARSE), extractor=_stall_frame)),
        _f(r"BUG: .*still has locks held!", "BUG: still has locks held in {1}", "lockdep",
           report=r"BUG: .*still has locks held!(?:.*\n)+?.*<PC> +<FUNC>"),
        _f(r"BUG: scheduling while atomic", "BUG: scheduling while atomic in {1}", "BUG",
           stack=Stack(parts=(CALL_TRACE, PARSE), skip=("schedule",))),
        _f(r"BUG: lock held when returning to user space",
           "BUG: lock held when returning to user space in {1}", "lockdep", no_stack=True,
           report=r"BUG: lock held when returning to user space(?:.*\n)+?.*leaving the kernel with locks still held(?:.*\n)+?.*" + _AT_FUNC),
        _f(r"BUG: bad unlock balance detected!", "BUG: bad unlock balance in {1}", "lockdep",
           stack=Stack(parts=(rx(r"<PC> +<FUNC>"), CALL_TRACE, PARSE))),
        _f(r"BUG: held lock freed!", "BUG: held lock freed in {1}", "lockdep",
           report=r"BUG: held lock freed!(?:.*\n)+?.*<PC> +<FUNC>"),
        _f(r"BUG: Bad rss-counter state", "BUG: Bad rss-counter state", "bad-page", no_stack=True),
        _f(r"BUG: non-zero nr_ptes on freeing mm", "BUG: non-zero nr_ptes on freeing mm", "bad-page",
           no_stack=True),
        _f(r"BUG: non-zero nr_pmds on freeing mm", "BUG: non-zero nr_pmds on freeing mm", "bad-page",
           no_stack=True),
        _f(r"BUG: Dentry .* still in use", "BUG: Dentry still in use in {1}", "BUG",
           report=r"BUG: Dentry .* still in use \([0-9]+\) \[(unmount) of ([^\]]+)\]"),
        # With page_owner the allocation stack names the culprit; without it
        # (distribution kernels) fall back to the freeing stack.
        _f(r"BUG: Bad page (state|cache)", "BUG: Bad page {1} in {2}", "bad-page",
           stack=Stack(parts=(rx(r"page last allocated"), PARSE), parts2=(CALL_TRACE, PARSE),
                       skip=("(free|put|get|update|release)_page", "free_unref", "^_*folio",
                             "truncate_inode_pages", "page_frag_free", "alloc", "vmap",
                             "page_owner", "bad_page", "free_page_is_bad", "free_pages",
                             "check_new_page", "free_pcp", "free_one_page"))),
        _f(r"BUG: Bad page map", "BUG: Bad page map", "bad-page"),
        _f(r"BUG: workqueue lockup", "BUG: workqueue lockup in {1}", "lockup", no_stack=True,
           bare="BUG: workqueue lockup",
           stack=Stack(parts=(rx(r"Showing backtraces of busy workers"),
                              rx(r"^Workqueue: \S+ ([a-zA-Z0-9_]+)")),
                       parts2=(rx(r"in-flight: [0-9]+(?:\(RESCUER\))?:([a-zA-Z0-9_]+)"),))),
        _f(r"BUG: sleeping function called from invalid context at (.*)",
           "BUG: sleeping function called from invalid context in {2}", "BUG", stack=_TRACE_STACK),
        _f(r"BUG: using ([a-z_]+)\(\) in preemptible", "BUG: using {1}() in preemptible code in {2}",
           "BUG", stack=Stack(parts=(CALL_TRACE, PARSE),
                              skip=("dump_stack", "preemption", "preempt", "debug_",
                                    "processor_id", "this_cpu"))),
        _f(r"BUG: workqueue leaked lock or atomic", "BUG: workqueue leaked lock or atomic in {1}",
           "lockdep", no_stack=True,
           report=r"BUG: workqueue leaked lock or atomic(?:.*\n)+?.*last function: ([a-zA-Z0-9_]+)\n"),
        _f(r"BUG: memory leak", "memory leak in {1}", "memory-leak",
           stack=Stack(parts=(rx(r"backtrace(?: \(crc [0-9a-fA-F]*\))?:"), PARSE),
                       skip=("kmemleak", "mmap", "kmem", "slab", "alloc", "create_object",
                             "idr_get", "list_lru_init", "kasprintf", "kvasprintf",
                             "pcpu_create", "strdup", "strndup", "memdup"))),
        _f(r"BUG: .*stack guard page was hit at", "BUG: stack guard page was hit in {1}", "BUG",
           stack=Stack(parts=(RIP, CALL_TRACE, PARSE), extractor=_stall_frame)),
        _f(r"BUG: Invalid wait context", "WARNING: locking bug in {1}", "lockdep",
           stack=Stack(parts=(CALL_TRACE, PARSE), skip=("lock_sock", "release_sock"))),
        _f(r"BUG:\s*(?:\n|$)", "BUG: corrupted", "BUG", corrupted=True),
    ), suppress=tuple(rx(p) for p in (
        r"ODEBUG:", r"Boot_DEBUG:", r"xlog_status:", r"DEBUG:",
        r"BUG: no syscalls can create resource",
    ))),
    # mid-line "...: WARNING: ..." from a subsystem is informational unless it
    # has a known shape
    Oops("WARNING:", kind="WARNING", prefix_only=True, formats=(
        _f(r"WARNING: .*lib/debugobjects\.c.* (?:debug_print|debug_check|at)",
           "WARNING: ODEBUG bug in {1}", "WARNING",
           stack=_warn_stack("debug_", "rcu", "hrtimer_", "timer_", "work_", "percpu_", "vunmap",
                             "vfree", "__free_", "debug_check", "kobject_")),
        _f(r"WARNING: .*mm/usercopy\.c.* (?:usercopy_warn|at)", "WARNING: bad usercopy in {1}",
           "WARNING", stack=_warn_stack("usercopy", "__check")),
        _f(r"WARNING: .*lib/kobject\.c.* (?:kobject_|at)", "WARNING: kobject bug in {1}", "WARNING",
           stack=_warn_stack("kobject_")),
        _f(r"WARNING: .*fs/proc/generic\.c.* (?:proc_register|at)",
           "WARNING: proc registration bug in {1}", "WARNING", stack=_warn_stack("proc_")),
        _f(r"WARNING: .*lib/refcount\.c.* (?:refcount_|at)", "WARNING: refcount bug in {1}",
           "WARNING", stack=_warn_stack("refcount", "kobject_")),
        _f(r"WARNING: .*kernel/locking/lockdep\.c.*lock_", "WARNING: locking bug in {1}", "lockdep",
           stack=_warn_stack("lock_sock", "release_sock")),
        _f(r"WARNING: .*lib/list_debug\.c", "WARNING in {1}", "list-corruption",
           stack=_warn_stack()),
        _f(r"WARNING: .*still has locks held!", "WARNING: still has locks held in {1}", "lockdep",
           report=r"WARNING: .*still has locks held!(?:.*\n)+?.*at: <FUNC>"),
        _f(r"WARNING: Nested lock was not taken", "WARNING: nested lock was not taken in {1}",
           "lockdep", stack=_warn_stack()),
        _f(r"WARNING: lock held when returning to user space",
           "WARNING: lock held when returning to user space in {1}", "lockdep", no_stack=True,
           report=r"WARNING: lock held when returning to user space(?:.*\n)+?.*leaving the kernel with locks still held(?:.*\n)+?.*" + _AT_FUNC),
        _f(r"WARNING: .*mm/.*\.c.* k?.?malloc", "WARNING: kmalloc bug in {1}", "WARNING",
           stack=_warn_stack("kmalloc", "krealloc", "slab", "kmem")),
        _f(r"WARNING: .*mm/vmalloc.c.*__vmalloc_node", "WARNING: zero-size vmalloc in {1}",
           "WARNING", stack=_warn_stack()),
        _f(r"WARNING: .* usb_submit_urb", "WARNING in {1}/usb_submit_urb", "WARNING",
           stack=_warn_stack("usb_submit_urb", "usb_start_wait_urb", "usb_bulk_msg",
                             "usb_interrupt_msg", "usb_control_msg")),
        _f(r"WARNING: <SRC> at 0x\d+, CPU#\d+", "WARNING in {2}", "WARNING", stack=_warn_stack()),
        _f(r"WARNING: .* at <SRC> <FUNC>", "WARNING in {3}", "WARNING", stack=_warn_stack()),
        _f(r"WARNING: <SRC> at <FUNC>", "WARNING in {3}", "WARNING", stack=_warn_stack()),
        _f(r"WARNING: \[.*\] <SRC> at <FUNC>.*", "WARNING in {3}", "WARNING", stack=_warn_stack()),
        _f(r"WARNING: possible circular locking dependency detected", "possible deadlock in {1}",
           "lockdep",
           report=r"WARNING: possible circular locking dependency detected(?:.*\n)+?.*is trying to acquire lock",
           stack=Stack(parts=(rx(_AT_FUNC), rx(_AT_FUNC), PARSE),
                       skip=("process_one_work", "flush_workqueue", "drain_workqueue",
                             "destroy_workqueue"))),
        _f(r"WARNING: possible irq lock inversion dependency detected", "possible deadlock in {1}",
           "lockdep",
           report=r"WARNING: possible irq lock inversion dependency detected(?:.*\n)+?.*just changed the state of lock(?:.*\n)+?.*" + _AT_FUNC),
        _f(r"WARNING: .*-safe -> .*-unsafe lock order detected", "possible deadlock in {1}",
           "lockdep", stack=Stack(parts=(rx(r"which became (?:.*) at:"), PARSE))),
        _f(r"WARNING: possible recursive locking detected", "possible deadlock in {1}", "lockdep",
           report=r"WARNING: possible recursive locking detected(?:.*\n)+?.*is trying to acquire lock(?:.*\n)+?.*" + _AT_FUNC),
        _f(r"WARNING: inconsistent lock state", "inconsistent lock state in {2}", "lockdep",
           report=r"WARNING: inconsistent lock state(?:.*\n)+?.*takes(?:.*\n)+?.*" + _AT_FUNC,
           stack=_TRACE_STACK),
        _f(r"WARNING: suspicious RCU usage", "WARNING: suspicious RCU usage in {2}", "lockdep",
           report=r"WARNING: suspicious RCU usage(?:.*\n)+?.*?<SRC>",
           stack=Stack(parts=(CALL_TRACE, PARSE), skip=("rcu", "kmem", "slab"))),
        _f(r"WARNING: kernel stack regs at [0-9a-f]+ in [^ ]* has bad '([^']+)' value",
           "WARNING: kernel stack regs has bad '{1}' value", "WARNING", no_stack=True),
        _f(r"WARNING: kernel stack frame pointer at [0-9a-f]+ in [^ ]* has bad value",
           "WARNING: kernel stack frame pointer has bad value", "WARNING", no_stack=True),
        _f(r"WARNING: bad unlock balance detected!", "WARNING: bad unlock balance in {1}", "lockdep",
           stack=Stack(parts=(rx(r"<PC> +<FUNC>"), CALL_TRACE, PARSE))),
        _f(r"WARNING: held lock freed!", "WARNING: held lock freed in {1}", "lockdep",
           report=r"WARNING: held lock freed!(?:.*\n)+?.*at:(?: <PC>)? +<FUNC>"),
        _f(r"WARNING: kernel stack regs .* has bad 'bp' value",
           "WARNING: kernel stack regs has bad value", "WARNING", no_stack=True),
        _f(r"WARNING: kernel stack frame pointer .* has bad value",
           "WARNING: kernel stack regs has bad value", "WARNING", no_stack=True),
        _f(r"WARNING:\s*(?:\n|$)", "WARNING: corrupted", "WARNING", corrupted=True),
    ), suppress=tuple(rx(p) for p in (
        # informational messages that happen to say WARNING
        r"WARNING: /etc/ssh/moduli does not exist, using fixed modulus",
        r"WARNING: workqueue cpumask: online intersect > possible intersect",
        r"WARNING: [Tt]he mand mount option",
        r"WARNING: Unsupported flag value\(s\) of 0x%x in DT_FLAGS_1",
        r"WARNING: Unprivileged eBPF is enabled",
        r"WARNING: fbcon: Driver '(.*)' missed to adjust virtual screen size",
        r"WARNING: See https.* for mitigation options.",
        r"WARNING: kernel not compiled with",
        r"Spectre V[0-9] ?: WARNING", r"RETBleed: WARNING", r"MDS: WARNING", r"MMIO Stale Data: WARNING",
        r"EXT4-[Ff][Ss](?: \(.*\))?:",
        r"(?i)warning: .* uses (deprecated v2 capabilities|wireless extensions)",
        r"XFS \(\w+\): WARNING",
    ))),
    Oops("INFO:", kind="other", need_format=True, formats=(
        _f(r"INFO: possible circular locking dependency detected", "possible deadlock in {1}", "lockdep",
           report=r"INFO: possible circular locking dependency detected \](?:.*\n)+?.*is trying to acquire lock(?:.*\n)+?.*at: <PC> +<FUNC>"),
        _f(r"INFO: possible irq lock inversion dependency detected", "possible deadlock in {1}", "lockdep",
           report=r"INFO: possible irq lock inversion dependency detected \](?:.*\n)+?.*just changed the state of lock(?:.*\n)+?.*at: <PC> +<FUNC>"),
        _f(r"INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected", "possible deadlock in {1}",
           "lockdep",
           report=r"INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected \](?:.*\n)+?.*is trying to acquire(?:.*\n)+?.*at: <PC> +<FUNC>"),
        _f(r"INFO: possible recursive locking detected", "possible deadlock in {1}", "lockdep",
           report=r"INFO: possible recursive locking detected \](?:.*\n)+?.*is trying to acquire lock(?:.*\n)+?.*at: <PC> +<FUNC>"),
        _f(r"INFO: inconsistent lock state", "inconsistent lock state in {1}", "lockdep",
           report=r"INFO: inconsistent lock state \](?:.*\n)+?.*takes(?:.*\n)+?.*at: <PC> +<FUNC>"),
        _f(r"INFO: rcu_(?:preempt|sched|bh) (?:self-)?detected(?: expedited)? stall",
           "INFO: rcu detected stall in {1}", "rcu-stall",
           stack=Stack(parts=(rx(r"apic_timer_interrupt"), RIP, PARSE),
                       parts2=(rx(r"(?:apic_timer_interrupt|Exception stack|el1h_64_irq)"), PARSE),
                       skip=("apic_timer_interrupt", "rcu"), extractor=_stall_frame)),
        _f(r"INFO: trying to register non-static key", "INFO: trying to register non-static key in {1}",
           "lockdep", stack=Stack(parts=(CALL_TRACE, PARSE), skip=("stack", "lock", "IRQ"))),
        _f(r"INFO: suspicious RCU usage", "INFO: suspicious RCU usage in {2}", "lockdep",
           report=r"INFO: suspicious RCU usage(?:.*\n)+?.*?<SRC>",
           stack=Stack(parts=(CALL_TRACE, PARSE), skip=("rcu", "kmem", "slab"))),
        _f(r"INFO: task .* blocked (?:in I/O wait )?for more than [0-9]+ seconds", "INFO: task hung in {1}",
           "hung-task", stack=Stack(parts=(CALL_TRACE, PARSE), extractor=_hang_frame)),
        _f(r"INFO: task .* can't die for more than .* seconds", "INFO: task can't die in {1}",
           "hung-task", stack=Stack(parts=(CALL_TRACE, PARSE), skip=("schedule",))),
        _f(r"INFO: (Freed|Allocated) in (.*)", "INFO: {1} in {2}", "KASAN", corrupted=True),
        _f(r"INFO:\s*(?:\n|$)", "INFO: corrupted", "other", corrupted=True),
    ), suppress=tuple(rx(p) for p in (
        r"INFO: lockdep is turned off", r"INFO: Stall ended before state dump start",
        r"INFO: NMI handler", r"INFO: recovery required on readonly filesystem",
        r"(handler|interrupt).*took too long", r"INFO: sys_.* is not present in /proc/kallsyms",
        r"INFO: no syscalls can create resource", r"rmt_storage:INFO:", r"_INFO:",
    ))),
    Oops("Unable to handle kernel", kind="Oops", formats=(
        _f(r"Unable to handle kernel (paging request|NULL pointer dereference|access to user memory)",
           "BUG: unable to handle kernel {1} in {2}", "Oops", stack=_FAULT_STACK),
    )),
    Oops("general protection fault", kind="GPF", formats=(
        _f(r"general protection fault.*:", "general protection fault in {1}", "GPF",
           stack=_FAULT_STACK),
    ), suppress=(rx(r"general protection fault .* error:\d+ in "),)),  # user-space trap
    Oops("stack segment: ", kind="Oops", formats=(
        _f(r"stack segment: ", "stack segment fault in {1}", "Oops", stack=_FAULT_STACK),
    )),
    Oops("Kernel panic", kind="panic", formats=(
        _f(r"Kernel panic - not syncing: stack-protector:", "kernel panic: stack is corrupted in {1}",
           "panic", no_stack=True,
           report=r"Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: <FUNC>"),
        _f(r"Kernel panic - not syncing: stack-protector:", "kernel panic: stack is corrupted in {1}",
           "panic",
           report=r"Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: [a-f0-9]+",
           stack=Stack(parts=(CALL_TRACE, PARSE), skip=("stack_chk",))),
        _f(r"Kernel panic - not syncing: corrupted stack end", "kernel panic: corrupted stack end in {1}",
           "panic", report=r"Kernel panic - not syncing: corrupted stack end detected inside scheduler",
           stack=Stack(parts=(CALL_TRACE, PARSE), skip=("schedule", "retint_kernel"),
                       extractor=_stall_frame)),
        _f(r"Kernel panic - not syncing: kernel stack overflow", "kernel stack overflow in {1}", "panic",
           stack=Stack(parts=(CALL_TRACE, PARSE), skip=("bad_stack",), extractor=_stall_frame)),
        _f(r"Kernel panic - not syncing: Attempted to kill init!",
           "kernel panic: Attempted to kill init!", "panic"),
        _f(r"Kernel panic - not syncing: Couldn't open N_TTY ldisc for [^ ]+ --- error -[0-9]+",
           "kernel panic: Couldn't open N_TTY ldisc", "panic"),
        # The following normally come after the real report; if they are the
        # first thing we see, the real header was lost.
        _f(r"Kernel panic - not syncing: Fatal exception", "kernel panic: Fatal exception", "panic",
           corrupted=True),
        _f(r"Kernel panic - not syncing: panic_on_warn set", "kernel panic: panic_on_warn set",
           "panic", corrupted=True),
        _f(r"Kernel panic - not syncing: hung_task: blocked tasks",
           "kernel panic: hung_task: blocked tasks", "panic", corrupted=True),
        _f(r"Kernel panic - not syncing: (.*)", "kernel panic: {1}", "panic"),
    )),
    Oops("PANIC: double fault", kind="Oops", formats=(
        _f(r"PANIC: double fault", "PANIC: double fault in {1}", "Oops", stack=_RIP_ONLY),
    )),
    Oops("rust_kernel: panicked", kind="panic", formats=(
        _f(r"rust_kernel: panicked", "{1} in {2}", "panic",
           report=r"rust_kernel: panicked at [^\n]*?\n(.+?)\n",
           stack=Stack(parts=(CALL_TRACE, PARSE), skip=(re.escape("__rustc::rust_begin_unwind"),))),
    )),
    Oops("kernel BUG", kind="BUG", formats=(
        _f(r"kernel BUG at mm/usercopy.c", "BUG: bad usercopy in {1}", "BUG",
           stack=Stack(parts=(CALL_TRACE, PARSE), skip=("usercopy", "__check"))),
        _f(r"kernel BUG at lib/list_debug.c", "BUG: corrupted list in {1}", "list-corruption",
           stack=_TRACE_STACK),
        _f(r"kernel BUG at (.*)", "kernel BUG in {2}", "BUG",
           stack=Stack(parts=(RIP, CALL_TRACE, PARSE), skip=("^skb_",))),
    )),
    Oops("Kernel BUG", kind="BUG", formats=(
        _f(r"Kernel BUG (.*)", "kernel BUG {1}", "BUG"),
    )),
    Oops("BUG kmalloc-", kind="BUG", formats=(
        _f(r"BUG kmalloc-.*: Object already free", "BUG: Object already free", "BUG"),
    )),
    Oops("divide error:", kind="Oops", formats=(
        _f(r"divide error: ", "divide error in {1}", "Oops", stack=_RIP_ONLY),
    )),
    Oops("divide_error:", kind="Oops", formats=(
        _f(r"divide_error: ", "divide error in {1}", "Oops", stack=_RIP_ONLY),
    )),
    Oops("invalid opcode:", kind="Oops", formats=(
        _f(r"invalid opcode: ", "invalid opcode in {1}", "Oops", stack=_RIP_ONLY),
    )),
    Oops("UBSAN:", kind="UBSAN", formats=(
        _f(r"UBSAN:", "UBSAN: undefined-behaviour in {1}", "UBSAN",
           report=r"UBSAN: Undefined behaviour in",
           stack=Stack(parts=(CALL_TRACE, PARSE), skip=("ubsan", "overflow"))),
        _f(r"UBSAN: array-index-out-of-bounds in", "UBSAN: array-index-out-of-bounds in {1}", "UBSAN",
           stack=Stack(parts=(CALL_TRACE, PARSE), skip=("ubsan", "overflow"))),
        _f(r"UBSAN:", "UBSAN: {1} in {2}", "UBSAN", report=r"UBSAN: (.*?) in",
           stack=Stack(parts=(CALL_TRACE, PARSE), skip=("ubsan", "overflow"))),
    )),
    Oops("Booting the kernel", kind="reboot", restart=True, formats=(
        _f(r"^Booting the kernel", "unexpected kernel reboot", "reboot", no_stack=True),
    ), suppress=(rx(r"Parsing ELF|Decompressing Linux|Unknown parameter '"),)),
    Oops("unregister_netdevice: waiting for", kind="other", formats=(
        _f(r"unregister_netdevice: waiting for (?:.*) to become free",
           "unregister_netdevice: waiting for DEV to become free", "other", no_stack=True),
    )),
    Oops("VFS: Close: file count is 0", kind="BUG", formats=(
        _f(r"VFS: Close: file count is 0", "VFS: Close: file count is zero (use-after-free)", "BUG",
           no_stack=True),
    )),
    Oops("VFS: Busy inodes after unmount", kind="BUG", formats=(
        _f(r"VFS: Busy inodes after unmount", "VFS: Busy inodes after unmount (use-after-free)", "BUG",
           no_stack=True),
    )),
    Oops("Internal error:", kind="Oops", formats=(
        _f(r"Internal error:", "Internal error in {1}", "Oops", stack=_FAULT_STACK),
    )),
    Oops("Unhandled fault:", kind="Oops", formats=(
        _f(r"Unhandled fault:", "Unhandled fault in {1}", "Oops", stack=_FAULT_STACK),
    )),
    Oops("Alignment trap:", kind="Oops", formats=(
        _f(r"Alignment trap:", "Alignment trap in {1}", "Oops", stack=_FAULT_STACK),
    )),
    # ---- not in syzkaller's table -------------------------------------
    Oops("Watchdog detected hard LOCKUP", kind="lockup", extra=True, formats=(
        _f(r"Watchdog detected hard LOCKUP", "BUG: hard lockup in {1}", "lockup",
           stack=Stack(parts=(RIP, CALL_TRACE, PARSE), parts2=(CALL_TRACE, PARSE),
                       extractor=_stall_frame)),
    )),
    Oops(" corruption", kind="list-corruption", extra=True, weak=True, need_format=True, formats=(
        _f(r"list_(?:add|del|replace|splice)(?:_rcu)? corruption", "BUG: corrupted list in {1}",
           "list-corruption", stack=_TRACE_STACK),
    )),
    Oops("EXT4-fs ", kind="fs-error", extra=True, need_format=True, formats=(
        _f(r"EXT4-fs error \(device [^)]*\)(?::| in) <FUNC>?:", "EXT4-fs error in {1}", "fs-error",
           no_stack=True),
        _f(r"EXT4-fs warning \(device [^)]*\)(?::| in) <FUNC>?:", "EXT4-fs warning in {1}",
           "fs-error", no_stack=True),
        _f(r"EXT4-fs error \(device [^)]*\)", "EXT4-fs error", "fs-error", no_stack=True),
    )),
    Oops("XFS", kind="fs-error", extra=True, need_format=True, formats=(
        _f(r"XFS: Assertion failed: (.*), file: [^,]+, line: [0-9]+", "XFS: Assertion failed: {1}",
           "assertion", no_stack=True),
        _f(r"XFS \([^)]*\): Metadata corruption detected at <FUNC>", "XFS: metadata corruption in {1}",
           "fs-error", no_stack=True),
        _f(r"XFS \([^)]*\): Corruption of in-memory data .*detected at <FUNC>",
           "XFS: in-memory corruption in {1}", "fs-error", no_stack=True),
        _f(r"XFS \([^)]*\): Internal error .* Caller <FUNC>", "XFS: internal error in {1}",
           "fs-error", no_stack=True),
        _f(r"XFS \([^)]*\): [Mm]etadata I/O error in \"<FUNC>", "XFS: metadata I/O error in {1}",
           "fs-error", no_stack=True),
        _f(r"XFS \([^)]*\): [Mm]etadata I/O error(?:: block| in)", "XFS: metadata I/O error",
           "fs-error", no_stack=True),
        _f(r"XFS \([^)]*\): Corruption (?:detected|warning)", "XFS: corruption detected", "fs-error",
           no_stack=True),
    )),
    Oops("Buffer I/O error on dev", kind="fs-error", extra=True, formats=(
        _f(r"Buffer I/O error on dev ([^,\s]+)", "Buffer I/O error on dev {1}", "fs-error",
           no_stack=True),
    )),
    Oops("Oops: ", kind="Oops", extra=True, need_format=True, formats=(
        _f(r"Oops: (?:[0-9a-f]{4}|[a-z0-9 -]+: [0-9a-f]+) \[#[0-9]+\]", "Oops in {1}", "Oops",
           stack=_FAULT_STACK),
    )),
    # ---- syzkaller / Go runtime messages (user space) ------------------
    Oops("fatal error:", kind="other", at_start=True, formats=(
        _f(r"fatal error:", "go runtime error", "other", no_stack=True),
    ), suppress=(rx(r"ALSA"), rx(r"fatal error: cannot create timer"))),
    Oops("SYZFAIL:", kind="other", at_start=True, formats=(
        _f(r"SYZFAIL:(.*)", "SYZFAIL:{1}", "other", no_stack=True),
    )),
    Oops("SYZFATAL:", kind="other", at_start=True, formats=(
        _f(r"SYZFATAL:(.*)", "SYZFATAL:{1}", "other", no_stack=True),
    )),
    Oops("panic:", kind="other", at_start=True, formats=(
        _f(r"panic: Sentry detected .* stuck task", "panic: Sentry detected stuck tasks", "other",
           no_stack=True),
        _f(r"panic:(.*)", "panic:{1}", "other", no_stack=True),
    ), suppress=(rx(r"_panic:"), rx(r"xlog_status:"), rx(r"ddb\.onpanic:"), rx(r"evtlog_status:"))),
)

# Lines that can appear inside a report without starting a new one: they are
# part of the crash that is already being reported.  (pattern, lines window,
# kinds of the open report it may continue; () = any).
_CONTINUATIONS = (
    Continuation(rx(r"invalid opcode: 0000"), 60),
    # 6.12: "Oops: stack guard page: 0000 [#1]"
    Continuation(rx(r"Oops: (?:[a-z][a-z ]{0,40}: )?[0-9a-f]{4} \[#[0-9]+\]"), 60),
    Continuation(rx(r"Internal error:"), 60),
    Continuation(rx(r"PANIC: double fault"), 60),
    Continuation(rx(r"unregister_netdevice: waiting for"), 1000),
    Continuation(rx(r"Kernel panic - not syncing: (?:Oops(?: - BUG)?: )?(?:Fatal exception|"
                    r".*panic_on_warn set|hung_task: blocked tasks|softlockup: hung tasks|"
                    r"[Hh]ard LOCKUP|RCU Stall|rcu_.*stall|.*panic forced after error|"
                    r"Fatal [Mm]achine check|Machine halted)"), 1000),
    Continuation(rx(r"XFS \([^)]*\): (?:Corruption (?:detected|of in-memory data)|"
                    r"[Mm]etadata I/O error|Unmount and run|Please unmount)"), 30, ("fs-error",)),
    Continuation(rx(r"kernel BUG at fs/xfs/xfs_message\.c|WARNING: .*fs/xfs/xfs_message\.c"), 30,
                 ("assertion",)),
)
# Same list as syzkaller's: these do not end the report before them.
_REPORT_START_IGNORES = tuple(rx(p) for p in (
    r"invalid opcode: 0000", r"Kernel panic - not syncing", r"unregister_netdevice: waiting for",
    r"PANIC: double fault", r"Internal error:",
))
# Messages with a stack trace that are not bugs: they end the report before them.
_INFO_WITH_STACK = ("vmalloc: allocation failure:", "FAULT_INJECTION: forcing a failure",
                    "FAULT_FLAG_ALLOW_RETRY missing")
_WEAK_WINDOW = 12  # a weak header is folded into a report starting this close after it

# Tracing a call trace for CrashReport.frames.
_FRAME_LINE = re.compile(r"^ *(?:" + _PC + r" ){0,2}([a-zA-Z0-9_]+)(?:\.[a-zA-Z0-9_.]+)?\+0x", re.ASCII)
_TRACE_NOISE = re.compile(
    r"^ *(?:</?(?:IRQ|TASK|NMI|EOI|SOFTIRQ|#DF|#MC)>|(?:RIP|RSP|RAX|RBX|RCX|RDX|RSI|RDI|RBP|R[0-9]+|"
    r"FS|GS|CS|DS|ES|CR[0-9]|DR[0-9]|Code|PKRU|ORIG_RAX|EFLAGS|pc|lr|sp|x[0-9]+)\s*:|"
    r"--- interrupt|Exception stack|Workqueue:|irq event stamp|hardirqs|softirqs)", re.ASCII)
_AFTER_END = re.compile(r"\s*$|Kernel panic|Kernel Offset|---\[ end Kernel panic|Rebooting in|"
                        r"note: |Fixing recursive fault|Shutting down cpus|Dumping ftrace", re.ASCII)
_TRACE_END = re.compile(r"---\[ end|Modules linked in|Kernel panic|Kernel Offset|"
                        r"Allocated by task|Freed by task|The buggy address|Memory state", re.ASCII)
# Lines that go on a filesystem report (the rest of its text is not the report's).
_FS_TEXT = re.compile(r"XFS|EXT4-fs|JBD2|Buffer I/O error|I/O error, dev|^[0-9a-f]{8}: |"
                      r"Remounting filesystem|Aborting journal|CPU: |Hardware name|Call Trace|"
                      r"^ *(?:<PC> )?[a-zA-Z0-9_.]+\+0x|^ *</?TASK>".replace("<PC>", _PC), re.ASCII)

TABLE = Table(
    oopses=_OOPSES,
    kinds=KINDS,
    continuations=_CONTINUATIONS,
    start_ignores=_REPORT_START_IGNORES,
    info_with_stack=_INFO_WITH_STACK,
    weak_window=_WEAK_WINDOW,
    once_kinds=frozenset(("fs-error", "assertion")),
    evidence_kinds=frozenset(("fs-error",)),
    evidence_text=_FS_TEXT,
    end_marker="---[ end",
    end_trace="---[ end trace",
    end_panic="---[ end Kernel panic",
    taint_line="Disabling lock debugging due to kernel taint",
    cpu_backtrace="Sending NMI from CPU",
    # a panic_on_warn panic or a lockdep splat provoked by the oops itself
    tail_markers=("Kernel panic - not syncing",
                  "WARNING: possible circular locking dependency detected"),
    short_report="BUG: KMSAN:",
    # with timestamps the kernel's banner is printed at 0.000000; a later
    # "Linux version" is somebody cat'ing /proc/version (the engine checks that)
    banner=re.compile(r"Linux version [0-9]", re.ASCII),
    call_trace=CALL_TRACE,
    rip=RIP,
    user_rip="RIP: 0033:",
    stack_start=_STACK_START,
    stack_present=_STACK_PRESENT,
    frame_res=_FRAME_RES,
    corrupted_lines=_CORRUPTED_LINES,
    frame_line=_FRAME_LINE,
    inline_frame=_INLINE_FRAME,
    trace_noise=_TRACE_NOISE,
    trace_end=_TRACE_END,
    after_end=_AFTER_END,
    skip_common=_SKIP_COMMON,
    strip_prefixes=_STRIP_PREFIXES,
    fatal_kinds=FATAL_KINDS,
)
