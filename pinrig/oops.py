"""Kernel console output -> crash reports.

Turns a raw console log (serial capture, dmesg, journal) into a list of
:class:`CrashReport` values with syzkaller-compatible titles, so that the same
bug gets the same title on every run and on every kernel, and a kernel
developer recognises it at once ("WARNING in ext4_dirty_folio",
"kernel BUG in mpage_prepare_extent_to_map", "possible deadlock in ...").

How it works (the model is syzkaller's pkg/report, re-expressed here):

* Every console line is cleaned (CR, ANSI escapes, control bytes removed,
  capped at ``MAX_LINE`` characters) and split into its console prefix
  (``<4>``, ``[   12.345678]``, printk caller id ``[ T123]`` / ``[C1]``) and
  the message.  The caller id (or "console" for timestamp-only lines, or ""
  for unprefixed lines) is the line's *context*: a report is assembled from
  lines of its own context only, which untangles output interleaved from
  several CPUs/tasks when CONFIG_PRINTK_CALLER is on.
* ``_OOPSES`` is a declarative table.  Each entry has a *header* (a plain
  substring that marks a line as the start of a report) and an ordered list of
  *formats*: a title regex, an optional regex the report must match, a title
  template and a *stack* recipe telling where the guilty function comes from
  (the RIP/PC line, the first ``Call Trace``, a lockdep ``at:`` line ...) and
  which generic helpers to skip.  The format whose title regex matches
  earliest in the report wins.
* Frames are function names with offsets and compiler suffixes (``.isra.0``,
  ``.constprop.0``, ``.cold``, ``.part.0`` ...) stripped; frames marked ``?``
  are never used.
* A report is ``corrupted`` when it is cut off or interleaved so that the
  title cannot be trusted: no stack trace, a stack keyword with no frames
  after it, or no guilty frame found (the title then ends in ``in corrupted``,
  as syzkaller does).
* Titles go through syzkaller's dynamic replacement (addresses -> ADDR, line
  numbers -> LINE, numbers -> NUM, ...), so they are already stable;
  :func:`normalize_title` applies a few more rules to get a grouping key.

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
(kind ``fs-error``/``assertion``, the same message repeated is reported once);
they are never mistaken for kernel ``WARNING``s, and mount-time informational
lines are not reports.  A "Linux version" banner or "Booting the kernel" line
ends any report before it; :func:`reboots` lists the banners after the first.
A second "Booting the kernel" (the x86 decompressor) after kernel output is an
``unexpected kernel reboot`` report, as in syzkaller.

Standard library only.
"""
from __future__ import annotations

import argparse
import bisect
import json
import re
import sys
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

__all__ = [
    "CrashReport",
    "KINDS",
    "parse_console",
    "normalize_title",
    "split_by_case",
    "reboots",
    "format_text",
    "main",
]

KINDS = (
    "BUG", "WARNING", "Oops", "GPF", "panic", "KASAN", "KFENCE", "UBSAN", "KMSAN",
    "KCSAN", "memory-leak", "hung-task", "rcu-stall", "lockup", "lockdep", "bad-page",
    "list-corruption", "fs-error", "assertion", "reboot", "other",
)

MAX_LINE = 4096            # characters kept of any console line
MAX_ANALYSED_LINES = 3000  # lines of a report looked at for its title
MAX_TEXT_LINES = 400       # lines kept in CrashReport.text
MAX_TEXT_CHARS = 64 * 1024
MAX_REPORTS = 100          # reports returned for one log
MAX_TITLE = 120

# --------------------------------------------------------------------------
# Regex building blocks.  <PC>, <FUNC> and <SRC> are expanded by _rx().

_PC = r"\[<?(?:0x)?[0-9a-f]+>?\]"
# A function name in a frame: the name is captured, the "+0x..." offset or the
# ".isra.0"/".constprop.0"/".cold" compiler suffix that follows is not.
_FUNC = r"([a-zA-Z0-9_]+)(?:\.|\+)"
_SRC = r"([a-zA-Z0-9_/.-]+\.[a-z]+:[0-9]+)"


def _rx(pattern: str) -> "re.Pattern[str]":
    pattern = (pattern.replace("<PC>", _PC).replace("<FUNC>", _FUNC)
               .replace("<SRC>", _SRC))
    return re.compile(pattern, re.ASCII)


PARSE = object()  # stack part: "parse a stack trace from here"

_RIP = (r"(?:IP|NIP|pc |PC is at):? (?:(?:[0-9]+:)?(?:<PC> +){0,2}<FUNC>|"
        r"(?:[0-9]+:)?0x[0-9a-f]+|(?:[0-9]+:)?<PC> +\[< *\(null\)>\] +\(null\)|"
        r"[0-9]+: +\(null\))")
RIP = _rx(_RIP)
CALL_TRACE = _rx(r"(?:Call (?:T|t)race:)|(?:Backtrace:)")

# Lines that start a stack trace (a stack parse stops at the next one).
_STACK_START = [_rx(p) for p in (
    r"Call (?:T|t)race",
    r"Allocated:",
    r"Allocated by task [0-9]+:",
    r"Freed:",
    r"Freed by task [0-9]+:",
    r"[^k] backtrace(?: \(crc [0-9a-fA-F]*\))?:",  # not "stack backtrace:"
    r"Backtrace:",
    r"Uninit was stored to memory at",
)]
# Extra keywords accepted as "this report has a stack trace" (KFENCE prints
# its stacks without a "Call Trace:" line).
_STACK_PRESENT = _STACK_START + [_rx(p) for p in (
    r"(?:Out-of-bounds|Use-after-free|Invalid|Corrupted memory) (?:read|write|free)? ?at 0x",
    r"(?:allocated|freed) by task [0-9]+ on cpu",
)]
_FRAME_RES = [
    _rx(r"^ *(?:<PC> ){0,2}<FUNC>"),
    # arm: "[<c0123>] (foo) from [<c0456>] (bar+0x..)"
    _rx(r"^ *<PC> \(([a-zA-Z0-9_.]+)\) from <PC> \(<FUNC>"),
]
_CORRUPTED_LINES = [
    # fault injection stacks are often intermixed with crash reports
    _rx(r"^( \[<?(?:0x)?[0-9a-f]+>?\])? should_fail(slab)?(\.[a-z0-9.]+)?\+0x"),
]
_INLINE_FRAME = _rx(r"^ *([a-zA-Z0-9_]+)(?:\.[a-z0-9.]+)? [a-zA-Z0-9_/.-]+:[0-9]+ \[inline\]")

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


def _strip_frame(name: str) -> str:
    best = name
    for prefix in _STRIP_PREFIXES:
        if name.startswith(prefix) and len(name) - len(prefix) < len(best):
            best = name[len(prefix):]
    return best


# Stalls and lockups loop somewhere in a call chain; take the frame just
# above a well-known dispatch point (syscall entry, workqueue, timer, ...).
_STALL_ANCHORS = _rx("|".join((
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


@dataclass(frozen=True)
class Stack:
    """Where the guilty frame of a report comes from.

    ``parts`` are matched against the report's lines in order: a regex
    consumes lines up to its first match and contributes its captured
    function names; ``PARSE`` parses a stack trace from there on.  ``parts2``
    is tried when ``parts`` yields no usable frame.  Frames matching ``skip``
    (or the common skip list) are never guilty.  ``extractor`` picks the frame
    from the candidate list instead of taking the first one.
    """
    parts: Tuple[object, ...]
    parts2: Tuple[object, ...] = ()
    skip: Tuple[str, ...] = ()
    extractor: Optional[Callable[[Sequence[str]], str]] = None

    def skip_re(self) -> "re.Pattern[str]":
        cached = _SKIP_CACHE.get(self.skip)
        if cached is None:
            cached = re.compile("|".join(_SKIP_COMMON + self.skip), re.ASCII)
            _SKIP_CACHE[self.skip] = cached
        return cached


_SKIP_CACHE: Dict[Tuple[str, ...], "re.Pattern[str]"] = {}


@dataclass(frozen=True)
class Format:
    """One report shape: ``title`` regex, title template ``fmt`` ({1}, {2}...
    are the regex groups, then the guilty frame(s)), and how to get the frame."""
    title: "re.Pattern[str]"
    fmt: str
    kind: str
    report: Optional["re.Pattern[str]"] = None
    stack: Optional[Stack] = None
    no_stack: bool = False      # the report has no stack trace by nature
    corrupted: bool = False     # this shape only occurs in damaged reports
    bare: str = ""              # title when the stack yields no frame (not corrupted)


@dataclass(frozen=True)
class Oops:
    """A report class: a line containing ``header`` starts a report."""
    header: str
    formats: Tuple[Format, ...]
    kind: str
    suppress: Tuple["re.Pattern[str]", ...] = ()
    at_start: bool = False       # header must begin the message
    need_format: bool = False    # the line must match one of the formats' titles
    extra: bool = False          # not a syzkaller class: never ends another report
    weak: bool = False           # folded into a report that starts right after it


def _f(title: str, fmt: str, kind: str, report: Optional[str] = None,
       stack: Optional[Stack] = None, no_stack: bool = False,
       corrupted: bool = False, bare: str = "") -> Format:
    return Format(_rx(title), fmt, kind, _rx(report) if report else None, stack,
                  no_stack, corrupted, bare)


def _warn_stack(*skip: str) -> Stack:
    # A WARN names the function in its RIP line (x86) or "--- interrupt" line
    # (powerpc); older kernels only print the call trace.
    return Stack(parts=(_rx("(?:" + _RIP + r"|--- interrupt: [0-9]+ at <FUNC>)"), PARSE),
                 parts2=(CALL_TRACE, PARSE), skip=tuple(skip))


_FAULT_STACK = Stack(parts=(RIP, CALL_TRACE, PARSE))
_TRACE_STACK = Stack(parts=(CALL_TRACE, PARSE))
_RIP_ONLY = Stack(parts=(RIP,))
_AT_FUNC = r"at: (?:<PC> +)?<FUNC>"

_OOPSES: Tuple[Oops, ...] = (
    Oops("BUG:", kind="BUG", formats=(
        _f(r"BUG: KASAN:", "KASAN: {1} {3} in {4}", "KASAN",
           report=r"BUG: KASAN: ([a-z\-]+) in <FUNC>(?:.*\n)+?.*(Read|Write) (?:of size|at addr) (?:[0-9a-f]+)",
           stack=Stack(parts=(_rx(r"BUG: KASAN: (?:[a-z\-]+) in <FUNC>"), CALL_TRACE, PARSE),
                       skip=("kernel_fault", "tag_check", "mem_abort", "^el1_", "^el1h_"))),
        _f(r"BUG: KASAN:", "KASAN: invalid-free in {2}", "KASAN",
           report=r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in <FUNC>",
           stack=Stack(parts=(_rx(r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in <FUNC>"),
                              CALL_TRACE, PARSE),
                       skip=("slab_", "kfree", "vunmap", "vfree"))),
        _f(r"BUG: KASAN: ([a-z\-]+) on address(?:.*\n)+?.*(Read|Write) of size ([0-9]+)",
           "KASAN: {1} {2}", "KASAN"),
        _f(r"BUG: KASAN: (.*)", "KASAN: {1}", "KASAN", corrupted=True),
        _f(r"BUG: KMSAN: kernel-usb-infoleak", "KMSAN: kernel-usb-infoleak in {2}", "KMSAN",
           report=r"BUG: KMSAN: kernel-usb-infoleak in <FUNC>", no_stack=True,
           stack=Stack(parts=(PARSE, _rx(r"(Local variable .* created at:|Uninit was created at:)"), PARSE),
                       skip=("alloc_skb", "usb_submit_urb", "usb_start_wait_urb", "usb_bulk_msg",
                             "usb_interrupt_msg", "usb_control_msg"))),
        _f(r"BUG: KMSAN:", "KMSAN: {1} in {3}", "KMSAN",
           report=r"BUG: KMSAN: ([a-z\-]+) in <FUNC>", no_stack=True,
           stack=Stack(parts=(PARSE, _rx(r"(Local variable .* created at:|Uninit was created at:)"), PARSE),
                       skip=("alloc_skb", "netlink_ack", "netlink_rcv_skb", "_encrypt$",
                             "^(?:crypto|cipher|drbg|rng)_"))),
        _f(r"BUG: KCSAN: data-race", "KCSAN: {1}", "KCSAN", report=r"BUG: KCSAN: (.*)", no_stack=True),
        _f(r"BUG: KCSAN:", "KCSAN: {1}", "KCSAN", report=r"BUG: KCSAN: (.*)", no_stack=True),
        _f(r"BUG: KFENCE: (use-after-free|out-of-bounds) (read|write) in <FUNC>",
           "KFENCE: {1} {2} in {4}", "KFENCE",
           stack=Stack(parts=(_rx(r"BUG: KFENCE: (?:[a-z\- ]+) in <FUNC>"), PARSE))),
        _f(r"BUG: KFENCE: invalid free in <FUNC>", "KFENCE: invalid free in {2}", "KFENCE",
           no_stack=True, stack=Stack(parts=(_rx(r"BUG: KFENCE: (?:[a-z\- ]+) in <FUNC>"), PARSE))),
        _f(r"BUG: KFENCE: invalid (read|write) in <FUNC>", "KFENCE: invalid {1} in {3}", "KFENCE",
           stack=Stack(parts=(_rx(r"BUG: KFENCE: (?:[a-z\- ]+) in <FUNC>"), PARSE))),
        _f(r"BUG: KFENCE: memory corruption in <FUNC>", "KFENCE: memory corruption in {2}", "KFENCE",
           no_stack=True, stack=Stack(parts=(_rx(r"BUG: KFENCE: (?:[a-z\- ]+) in <FUNC>"), PARSE))),
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
           stack=Stack(parts=(_rx(r"<PC> +<FUNC>"), CALL_TRACE, PARSE))),
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
           stack=Stack(parts=(_rx(r"page last allocated"), PARSE), parts2=(CALL_TRACE, PARSE),
                       skip=("(free|put|get|update|release)_page", "free_unref", "^_*folio",
                             "truncate_inode_pages", "page_frag_free", "alloc", "vmap",
                             "page_owner", "bad_page", "free_page_is_bad", "free_pages",
                             "check_new_page", "free_pcp", "free_one_page"))),
        _f(r"BUG: Bad page map", "BUG: Bad page map", "bad-page"),
        _f(r"BUG: workqueue lockup", "BUG: workqueue lockup in {1}", "lockup", no_stack=True,
           bare="BUG: workqueue lockup",
           stack=Stack(parts=(_rx(r"Showing backtraces of busy workers"),
                              _rx(r"^Workqueue: \S+ ([a-zA-Z0-9_]+)")),
                       parts2=(_rx(r"in-flight: [0-9]+(?:\(RESCUER\))?:([a-zA-Z0-9_]+)"),))),
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
           stack=Stack(parts=(_rx(r"backtrace(?: \(crc [0-9a-fA-F]*\))?:"), PARSE),
                       skip=("kmemleak", "mmap", "kmem", "slab", "alloc", "create_object",
                             "idr_get", "list_lru_init", "kasprintf", "kvasprintf",
                             "pcpu_create", "strdup", "strndup", "memdup"))),
        _f(r"BUG: .*stack guard page was hit at", "BUG: stack guard page was hit in {1}", "BUG",
           stack=Stack(parts=(RIP, CALL_TRACE, PARSE), extractor=_stall_frame)),
        _f(r"BUG: Invalid wait context", "WARNING: locking bug in {1}", "lockdep",
           stack=Stack(parts=(CALL_TRACE, PARSE), skip=("lock_sock", "release_sock"))),
        _f(r"BUG:\s*(?:\n|$)", "BUG: corrupted", "BUG", corrupted=True),
    ), suppress=tuple(_rx(p) for p in (
        r"ODEBUG:", r"Boot_DEBUG:", r"xlog_status:", r"DEBUG:",
        r"BUG: no syscalls can create resource",
    ))),
    Oops("WARNING:", kind="WARNING", formats=(
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
           stack=Stack(parts=(_rx(_AT_FUNC), _rx(_AT_FUNC), PARSE),
                       skip=("process_one_work", "flush_workqueue", "drain_workqueue",
                             "destroy_workqueue"))),
        _f(r"WARNING: possible irq lock inversion dependency detected", "possible deadlock in {1}",
           "lockdep",
           report=r"WARNING: possible irq lock inversion dependency detected(?:.*\n)+?.*just changed the state of lock(?:.*\n)+?.*" + _AT_FUNC),
        _f(r"WARNING: .*-safe -> .*-unsafe lock order detected", "possible deadlock in {1}",
           "lockdep", stack=Stack(parts=(_rx(r"which became (?:.*) at:"), PARSE))),
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
           stack=Stack(parts=(_rx(r"<PC> +<FUNC>"), CALL_TRACE, PARSE))),
        _f(r"WARNING: held lock freed!", "WARNING: held lock freed in {1}", "lockdep",
           report=r"WARNING: held lock freed!(?:.*\n)+?.*at:(?: <PC>)? +<FUNC>"),
        _f(r"WARNING: kernel stack regs .* has bad 'bp' value",
           "WARNING: kernel stack regs has bad value", "WARNING", no_stack=True),
        _f(r"WARNING: kernel stack frame pointer .* has bad value",
           "WARNING: kernel stack regs has bad value", "WARNING", no_stack=True),
        _f(r"WARNING:\s*(?:\n|$)", "WARNING: corrupted", "WARNING", corrupted=True),
    ), suppress=tuple(_rx(p) for p in (
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
           stack=Stack(parts=(_rx(r"apic_timer_interrupt"), RIP, PARSE),
                       parts2=(_rx(r"(?:apic_timer_interrupt|Exception stack|el1h_64_irq)"), PARSE),
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
    ), suppress=tuple(_rx(p) for p in (
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
    ), suppress=(_rx(r"general protection fault .* error:\d+ in "),)),  # user-space trap
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
    Oops("Booting the kernel", kind="reboot", formats=(
        _f(r"^Booting the kernel", "unexpected kernel reboot", "reboot", no_stack=True),
    ), suppress=(_rx(r"Parsing ELF|Decompressing Linux|Unknown parameter '"),)),
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
    ), suppress=(_rx(r"ALSA"), _rx(r"fatal error: cannot create timer"))),
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
    ), suppress=(_rx(r"_panic:"), _rx(r"xlog_status:"), _rx(r"ddb\.onpanic:"), _rx(r"evtlog_status:"))),
)

# Lines that can appear inside a report without starting a new one: they are
# part of the crash that is already being reported.  (pattern, lines window,
# kinds of the open report it may continue; () = any).
_CONTINUATIONS: Tuple[Tuple["re.Pattern[str]", int, Tuple[str, ...]], ...] = (
    (_rx(r"invalid opcode: 0000"), 60, ()),
    (_rx(r"Oops: (?:[a-z][a-z ]{0,40}: )?[0-9a-f]{4} \[#[0-9]+\]"), 60, ()),   # 6.12: "Oops: stack guard page: 0000 [#1]"
    (_rx(r"Internal error:"), 60, ()),
    (_rx(r"PANIC: double fault"), 60, ()),
    (_rx(r"unregister_netdevice: waiting for"), 1000, ()),
    (_rx(r"Kernel panic - not syncing: (?:Oops(?: - BUG)?: )?(?:Fatal exception|.*panic_on_warn set|"
         r"hung_task: blocked tasks|softlockup: hung tasks|[Hh]ard LOCKUP|RCU Stall|rcu_.*stall|"
         r".*panic forced after error|Fatal [Mm]achine check|Machine halted)"), 1000, ()),
    (_rx(r"XFS \([^)]*\): (?:Corruption (?:detected|of in-memory data)|[Mm]etadata I/O error|"
         r"Unmount and run|Please unmount)"), 30, ("fs-error",)),
    (_rx(r"kernel BUG at fs/xfs/xfs_message\.c|WARNING: .*fs/xfs/xfs_message\.c"), 30, ("assertion",)),
)
# Same list as syzkaller's: these do not end the report before them.
_REPORT_START_IGNORES = tuple(_rx(p) for p in (
    r"invalid opcode: 0000", r"Kernel panic - not syncing", r"unregister_netdevice: waiting for",
    r"PANIC: double fault", r"Internal error:",
))
# Messages with a stack trace that are not bugs: they end the report before them.
_INFO_WITH_STACK = ("vmalloc: allocation failure:", "FAULT_INJECTION: forcing a failure",
                    "FAULT_FLAG_ALLOW_RETRY missing")
_WEAK_WINDOW = 12  # a weak header is folded into a report starting this close after it

_HEADER_RE = re.compile("|".join(re.escape(o.header) for o in _OOPSES))

# --------------------------------------------------------------------------
# Console lines.

_ANSI_RE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[()][0-9A-Za-z]|[@-Z\\-_])")
_CTRL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PREFIX_RE = re.compile(
    r"(?:\*\* [0-9]+ printk messages dropped \*\* )?(?:<[0-9]+>)?"
    r"\[ *([0-9]+\.[0-9]+)\](?: ?\[ *([CT][0-9]+)\])?(?: |$)", re.ASCII)
_LEVEL_RE = re.compile(r"<[0-9]{1,2}>", re.ASCII)
_QUESTIONABLE_RE = re.compile(r"(?:\[<[0-9a-f]+>\])? \? ", re.ASCII)
_BANNER_RE = re.compile(r"Linux version [0-9]", re.ASCII)


@dataclass
class _Line:
    num: int           # 1-based line number in the log
    raw: str           # cleaned line, console prefix kept
    text: str          # message without console prefix ('?' frames reduced to the frame)
    context: str       # "", "console" or the printk caller id ("T123", "C1")
    questionable: bool
    stamp: Optional[float] = None
    banner: bool = False    # a "Linux version" boot banner
    restart: bool = False   # the kernel (re)starts booting here


def _decode(data: Union[bytes, bytearray, str]) -> str:
    if isinstance(data, (bytes, bytearray)):
        return bytes(data).decode("utf-8", errors="replace")
    return str(data)


def _clean(line: str) -> str:
    line = line[:MAX_LINE]
    if "\x1b" in line:
        line = _ANSI_RE.sub("", line)
    if _CTRL_RE.search(line):
        line = _CTRL_RE.sub("", line)
    return line


def _split_prefix(line: str) -> Tuple[str, str, Optional[float]]:
    """(context, message, timestamp) of a cleaned console line."""
    m = _PREFIX_RE.match(line)
    if m is None and " login: " in line:
        # "syzkaller login: [   12.3] BUG: ..." -- a getty prompt got glued on
        pos = line.find(" login: ")
        m2 = _PREFIX_RE.match(line, pos + 8)
        if m2 is not None:
            m = m2
    if m is None:
        lm = _LEVEL_RE.match(line)
        return "", (line[lm.end():] if lm else line), None
    ctx = m.group(2) or "console"
    return ctx, line[m.end():], float(m.group(1))


def _lines(data: Union[bytes, bytearray, str]) -> List[_Line]:
    out: List[_Line] = []
    for num, physical in enumerate(_decode(data).split("\n"), 1):
        physical = physical.strip("\r")
        # a bare CR inside a line separates messages too
        for piece in physical.split("\r") if "\r" in physical else (physical,):
            raw = _clean(piece)
            ctx, text, stamp = _split_prefix(raw)
            questionable = False
            if ctx and "<EOI>" not in text:
                q = _QUESTIONABLE_RE.search(text)
                if q is not None:
                    text = text[text.find(" ? ") + 2:]
                    questionable = True
                elif text.endswith(" (unreliable)"):
                    text = text[:-13]
                    questionable = True
            line = _Line(num, raw, text, ctx, questionable, stamp)
            # with timestamps the kernel's banner is printed at 0.000000; a
            # later "Linux version" is somebody cat'ing /proc/version
            line.banner = (text.startswith("Linux version ") and bool(_BANNER_RE.match(text))
                           and (stamp is None or stamp == 0.0))
            line.restart = line.banner or text.startswith("Booting the kernel")
            out.append(line)
    return out


def _match_oops(line: _Line) -> Optional[Oops]:
    text = line.text
    if not _HEADER_RE.search(text) or text.startswith("---[ end"):
        return None
    for oops in _OOPSES:
        pos = text.find(oops.header)
        if pos == -1:
            continue
        if any(s.search(text) for s in oops.suppress):
            continue
        if oops.at_start and pos != 0:
            continue
        if oops.need_format or (oops.header == "WARNING:" and pos != 0):
            # only recognised shapes count; mid-line "...: WARNING: ..." from a
            # subsystem is informational
            probe = text + "\n"
            if not any(f.title.search(probe) for f in oops.formats if not f.corrupted):
                continue
        return oops
    return None


# --------------------------------------------------------------------------
# Title and frame extraction (per report).


def _frame_names(match: "re.Match[str]", skip: "re.Pattern[str]") -> List[str]:
    return [g for g in match.groups() if g and not skip.search(g)]


def _stack_frames(stack: Stack, text: str) -> Tuple[List[str], bool]:
    skip = stack.skip_re()

    def pick(raw: List[str]) -> str:
        if not raw:
            return ""
        stripped = [_strip_frame(f) for f in raw]
        return stack.extractor(stripped) if stack.extractor else stripped[0]

    frames, ok = _walk_parts(stack.parts, text, skip, pick)
    if ok or not stack.parts2:
        return frames, ok
    return _walk_parts(stack.parts2, text, skip, pick)


def _walk_parts(parts: Sequence[object], text: str, skip: "re.Pattern[str]",
                pick: Callable[[List[str]], str]) -> Tuple[List[str], bool]:
    lines = text.split("\n")
    pos, i, stacks = 0, 0, 0
    raw: List[str] = []
    results: List[str] = []
    ok = True
    while True:
        if i == len(parts) or (parts[i] is PARSE and stacks > 0):
            key = pick(raw)
            if not key:
                key, ok = "corrupted", False
            results.append(key)
            raw = []
        if i == len(parts):
            break
        part = parts[i]
        if part is PARSE:
            stacks += 1
            nxt = parts[i + 1] if i + 1 < len(parts) and parts[i + 1] is not PARSE else None
            while pos < len(lines):
                ln = lines[pos]
                pos += 1
                if any(r.search(ln) for r in _CORRUPTED_LINES):
                    ok = False
                    break
                if any(r.search(ln) for r in _STACK_START):
                    break
                if nxt is not None:
                    m = nxt.search(ln)  # type: ignore[union-attr]
                    if m is not None:
                        raw += _frame_names(m, skip)
                        i += 1
                        break
                for fre in _FRAME_RES:
                    m = fre.search(ln)
                    if m is not None:
                        raw += _frame_names(m, skip)
                        break
        else:
            while pos < len(lines):
                ln = lines[pos]
                pos += 1
                if any(r.search(ln) for r in _CORRUPTED_LINES):
                    ok = False
                    break
                m = part.search(ln)  # type: ignore[union-attr]
                if m is not None:
                    raw += _frame_names(m, skip)
                    break
        i += 1
    return results, ok


@dataclass
class _Description:
    title: str
    corrupted: bool
    fmt: Optional[Format]


def _describe(text: str, oops: Oops) -> _Description:
    start = len(text) + 1
    desc, corrupted, used = "", False, None
    matched_title = False
    for f in oops.formats:
        m = f.title.search(text)
        if m is None or m.start() > start or (m.start() == start and desc):
            continue
        if m.start() < start:
            desc, used, start = "", None, m.start()
        matched_title = True
        if f.report is not None:
            m = f.report.search(text)
            if m is None:
                continue
        args = [g or "" for g in m.groups()]
        corrupted = False
        frames: List[str] = []
        if f.stack is not None:
            frames, ok = _stack_frames(f.stack, text[m.start():])
            corrupted = not ok
            if corrupted and f.bare:
                desc, corrupted, used = f.bare, False, f
                continue
        desc = f.fmt.format("", *args, *frames)
        used = f
    if not desc:
        corrupted = matched_title
        pos = text.find(oops.header)
        end = text.find("\n", pos)
        desc = text[pos:end if end != -1 else len(text)] if pos != -1 else oops.header
    if used is not None and used.corrupted:
        corrupted = True
    return _Description(desc, corrupted, used)


_TIMESTAMP_IN_TITLE = re.compile(r"\[ *[0-9]+\.[0-9]+\]")


def _is_corrupted(title: str, text: str, fmt: Optional[Format]) -> bool:
    if _TIMESTAMP_IN_TITLE.search(title):
        return True   # another line got merged into the header
    if fmt is None or fmt.no_stack:
        return False
    has_stack = False
    for key in _STACK_PRESENT:
        m = key.search(text)
        if m is None:
            continue
        after = text[text.rfind("\n", 0, m.start()) + 1:].split("\n", 16)
        if len(after) < 4:
            return True   # call trace is cut off
        found = False
        for ln in after[1:16]:
            if any(k.search(ln) for k in _STACK_START):
                break
            if "(stack is not available)" in ln or any(r.search(ln) for r in _FRAME_RES):
                found = True
                break
        if not found:
            return True   # a stack keyword with no frames after it
        has_stack = True
    return not has_stack


# --------------------------------------------------------------------------
# Title sanitizing (syzkaller's dynamic replacements) and normalization.

_REPLACEMENTS: Tuple[Tuple["re.Pattern[str]", str], ...] = tuple(
    (re.compile(p, re.ASCII), r) for p, r in (
        (r"syz-executor\.?[0-9]+((/|:)[0-9]+)?", "syz-executor"),
        (r"syzkaller[0-9]+((/|:)[0-9]+)?", "syzkaller"),
        (r"([^a-zA-Z0-9])(?:0x)?[0-9a-f]{6,}", r"\1ADDR"),          # addresses
        (r"([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})", "IP"),
        (r"(?<![\w:])(?:(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|"
         r"(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*)?::(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*)?)"
         r"(?![\w:])", "IPV6ADDR"),
        (r"(\.\w+)(:[0-9]+)+", r"\1:LINE"),                           # file.c:123
        (r"([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+", r"\1"),  # func+0x1/0x2
        (r"CPU#[0-9]+", "CPU"),
        (r"(\W)(\d+)(\W|$)", r"\1NUM\3"),
        (r"\d{7,}", "NUM"),
    ))
# Extra rules for the grouping key only (titles keep syzkaller's form).
_NORMALIZE_EXTRA: Tuple[Tuple["re.Pattern[str]", str], ...] = tuple(
    (re.compile(p, re.ASCII), r) for p, r in (
        (r"\b0x[0-9a-fA-F]+\b", "ADDR"),
        (r"\b[0-9]+(?:s|ms|us|ns|min|sec|seconds|jiffies)\b", "NUM"),
        (r"\[[^\]\[]*[:/][0-9]+\]", "[TASK]"),                       # [comm:pid]
        (r"\b(?:pid|PID|tid)[ =:]+[0-9]+", "pid NUM"),
        (r"(\W)(?:NUM|ADDR)(?:[.,:/-](?:NUM|ADDR|[0-9]+))+", r"\1NUM"),
    ))


def _replace_all(table: Sequence[Tuple["re.Pattern[str]", str]], text: str) -> str:
    for pattern, repl in table:
        for _ in range(50):
            new = pattern.sub(repl, text)
            if new == text:
                break
            text = new
    return text


def _sanitize(title: str) -> str:
    out: List[str] = []
    prev = " "
    for ch in title[:MAX_TITLE]:
        if ch == "\t":
            ch = " "
        elif ch < " " or ch >= "\x7f":
            continue
        if ch == " " and prev == " ":
            continue
        out.append(ch)
        prev = ch
    return "".join(out).strip()


def _make_title(desc: str) -> str:
    return _sanitize(_replace_all(_REPLACEMENTS, desc))


def normalize_title(title: str) -> str:
    """A stable grouping key for a title: addresses, numbers, line numbers,
    pids and CPU numbers replaced, whitespace collapsed.  Idempotent; the same
    bug seen with different addresses/lines/pids gives the same key."""
    text = _replace_all(_REPLACEMENTS, _sanitize(title))
    text = _replace_all(_NORMALIZE_EXTRA, text)
    return _sanitize(text)


_TITLE_FRAME_RE = re.compile(r".* in ((?:<[a-zA-Z0-9_: ]+>)?[a-zA-Z0-9_:]+)")


def _title_frame(title: str) -> str:
    m = _TITLE_FRAME_RE.match(title)
    return m.group(1) if m else ""


# --------------------------------------------------------------------------
# Reports.


@dataclass
class CrashReport:
    """One kernel report found in a console log."""
    title: str          # syzkaller-style title, e.g. "WARNING in ext4_set_page_dirty"
    kind: str           # one of KINDS
    frames: List[str]   # call-trace function names ('?' frames excluded, suffixes stripped)
    corrupted: bool     # cut off or interleaved: title/frames not fully trustworthy
    line: int           # 1-based line in the log where the report starts
    text: str           # the report's (cleaned) lines, capped
    frame: str = ""     # the guilty function named in the title ("" if none)

    @property
    def normalized(self) -> str:
        return normalize_title(self.title)

    def to_dict(self) -> dict:
        return {
            "title": self.title,
            "kind": self.kind,
            "frame": self.frame,
            "frames": list(self.frames),
            "corrupted": self.corrupted,
            "line": self.line,
            "normalized": self.normalized,
            "text": self.text,
        }


def _report_body(lines: List[_Line], start: int, headers: Dict[int, Oops]) -> Tuple[str, str]:
    """syzkaller's report assembly: the lines of the report's context from the
    header on (questionable frames dropped), and the part of it that precedes
    the next report ("title text")."""
    ctx = lines[start].context
    body: List[str] = []
    title_len = 0
    second = False
    cpu_traceback = False
    skip_text = False
    min_lines = 16 if "BUG: KMSAN:" in lines[start].text else 22
    count = 0
    for idx in range(start, min(len(lines), start + MAX_ANALYSED_LINES)):
        ln = lines[idx]
        is_start = idx == start
        if not is_start and ln.restart:
            break   # the machine rebooted: nothing after this belongs to the report
        if not is_start and not second:
            oops = headers.get(idx)
            if oops is not None and not oops.extra:
                if not any(r.search(ln.text) for r in _REPORT_START_IGNORES):
                    second = True
            elif any(p in ln.text for p in _INFO_WITH_STACK):
                second = True
        if not is_start and (ln.questionable or (ln.context != ctx and not (
                cpu_traceback and ln.context.startswith("C")))):
            continue
        count += 1
        skip = skip_text
        if "Disabling lock debugging due to kernel taint" in ln.text:
            skip = True
        elif "Sending NMI from CPU" in ln.text:
            cpu_traceback = True
        elif count > min_lines and ("Kernel panic - not syncing" in ln.text or
                                    "WARNING: possible circular locking dependency detected" in ln.text):
            # a panic_on_warn panic or a lockdep splat provoked by the oops
            # itself: the real report is long enough already
            skip_text = skip = True
        if not is_start and skip:
            continue
        body.append(ln.text)
        if not second or ctx not in ("", "console"):
            title_len = len(body)
    return "\n".join(body) + "\n", "\n".join(body[:title_len]) + "\n"


_FRAME_LINE = re.compile(r"^ *(?:" + _PC + r" ){0,2}([a-zA-Z0-9_]+)(?:\.[a-zA-Z0-9_.]+)?\+0x", re.ASCII)
_TRACE_NOISE = re.compile(
    r"^ *(?:</?(?:IRQ|TASK|NMI|EOI|SOFTIRQ|#DF|#MC)>|(?:RIP|RSP|RAX|RBX|RCX|RDX|RSI|RDI|RBP|R[0-9]+|"
    r"FS|GS|CS|DS|ES|CR[0-9]|DR[0-9]|Code|PKRU|ORIG_RAX|EFLAGS|pc|lr|sp|x[0-9]+)\s*:|"
    r"--- interrupt|Exception stack|Workqueue:|irq event stamp|hardirqs|softirqs)", re.ASCII)
_AFTER_END = re.compile(r"\s*$|Kernel panic|Kernel Offset|---\[ end Kernel panic|Rebooting in|"
                        r"note: |Fixing recursive fault|Shutting down cpus|Dumping ftrace", re.ASCII)
_TRACE_END = re.compile(r"---\[ end|Modules linked in|Kernel panic|Kernel Offset|"
                        r"Allocated by task|Freed by task|The buggy address|Memory state", re.ASCII)


def _call_trace(body: str) -> List[str]:
    """Function names of the report's first call trace ('?' frames are gone
    already), preceded by the function of a kernel-mode RIP/PC line printed
    before it."""
    lines = body.split("\n")
    start = next((i for i, ln in enumerate(lines) if CALL_TRACE.search(ln)), None)
    if start is None:
        start = next((i for i, ln in enumerate(lines)
                      if any(k.search(ln) for k in _STACK_PRESENT)), None)
    frames: List[str] = []
    if start is None:
        return frames
    for ln in lines[:start]:
        if "RIP: 0033:" in ln:
            continue
        m = RIP.search(ln)
        if m is not None and m.group(1):
            frames.append(m.group(1))
            break
    rip_first = bool(frames)
    misses = 0
    for ln in lines[start + 1:]:
        if _TRACE_END.search(ln) or any(k.search(ln) for k in _STACK_START):
            break
        m = _FRAME_LINE.match(ln) or _INLINE_FRAME.match(ln)
        if m is not None:
            if not (len(frames) == 1 and frames[0] == m.group(1) and rip_first):
                frames.append(m.group(1))
            misses = 0
            if len(frames) >= 64:
                break
        elif _TRACE_NOISE.match(ln) or not ln.strip():
            continue
        else:
            misses += 1
            if misses >= 2 and frames:
                break
    return frames


def _report_text(lines: List[_Line], start: int, end: int) -> str:
    ctx = lines[start].context
    first = start
    taken = 0
    for idx in range(start - 1, max(-1, start - 20), -1):
        ln = lines[idx]
        if ln.restart or _is_boundary(ln):
            break
        if ln.context == ctx and ln.text.strip():
            first = idx
            taken += 1
            if taken == 5:
                break
    out: List[str] = []
    size = 0
    for idx in range(first, end):
        raw = lines[idx].raw
        out.append(raw)
        size += len(raw) + 1
        if len(out) >= MAX_TEXT_LINES or size >= MAX_TEXT_CHARS:
            break
    return "\n".join(out)


def _is_boundary(line: _Line) -> bool:
    """Lines that never belong to a report's text: the rig's case markers and
    the end of a previous report."""
    return "pinrig: case-" in line.text or line.text.startswith("---[ end")


_FS_TEXT = re.compile(r"XFS|EXT4-fs|JBD2|Buffer I/O error|I/O error, dev|^[0-9a-f]{8}: |"
                      r"Remounting filesystem|Aborting journal|CPU: |Hardware name|Call Trace|"
                      r"^ *(?:<PC> )?[a-zA-Z0-9_.]+\+0x|^ *</?TASK>".replace("<PC>", _PC), re.ASCII)


def _text_end(lines: List[_Line], start: int, limit: int, kind: str) -> int:
    end = min(limit, start + MAX_TEXT_LINES)
    for idx in range(start + 1, end):
        text = lines[idx].text
        if lines[idx].restart or "pinrig: case-" in text:
            return idx
        if kind == "fs-error" and not (_FS_TEXT.search(text) or not text.strip()):
            return idx
        if text.startswith("---[ end Kernel panic"):
            return idx + 1
        if text.startswith("---[ end trace"):
            # x86 re-prints the registers after the end marker, then maybe
            # panics (panic_on_oops/panic_on_warn): keep that tail
            j = idx + 1
            while j < end and (_TRACE_NOISE.match(lines[j].text) or _AFTER_END.match(lines[j].text)):
                if lines[j].text.startswith("---[ end Kernel panic"):
                    return j + 1
                j += 1
            return j
    return end


def _pick_starts(lines: List[_Line], headers: Dict[int, Oops]) -> List[int]:
    """Which header lines start a report of their own (see _CONTINUATIONS and
    Oops.weak for the ones that do not)."""
    order = sorted(headers)
    restarts = [i for i, ln in enumerate(lines) if ln.restart]
    # the first line that shows a kernel is running: a "Booting the kernel"
    # before it is the first boot, not a reboot
    kernel_up = next((i for i, ln in enumerate(lines) if ln.stamp is not None or ln.banner),
                     len(lines))
    next_strong: List[Optional[int]] = [None] * len(order)
    upcoming: Optional[int] = None
    for pos in range(len(order) - 1, -1, -1):
        next_strong[pos] = upcoming
        if not headers[order[pos]].weak:
            upcoming = order[pos]
    starts: List[int] = []
    kinds: List[str] = []
    seen_fs: set = set()
    for pos, idx in enumerate(order):
        oops = headers[idx]
        text = lines[idx].text
        if starts:
            prev = starts[-1]
            rebooted = bisect.bisect_right(restarts, prev) < bisect.bisect_left(restarts, idx)
            if not rebooted and _continues(text, idx - prev, kinds[-1]):
                continue
        if oops.weak:
            nxt = next_strong[pos]
            if nxt is not None and nxt - idx <= _WEAK_WINDOW:
                continue
        if oops.header == "Booting the kernel" and idx <= kernel_up:
            continue
        kind = _kind_guess(oops, text)
        if kind in ("fs-error", "assertion"):
            # the same filesystem complaint, repeated: report it once
            key = normalize_title(_make_title(_describe(text + "\n", oops).title))
            if key in seen_fs:
                continue
            seen_fs.add(key)
        starts.append(idx)
        kinds.append(kind)
        if len(starts) >= MAX_REPORTS:
            break
    return starts


def _kind_guess(oops: Oops, text: str) -> str:
    probe = text + "\n"
    for f in oops.formats:
        if f.title.search(probe):
            return f.kind
    return oops.kind


def _continues(text: str, distance: int, open_kind: str) -> bool:
    for pattern, window, kinds in _CONTINUATIONS:
        if distance <= window and (not kinds or open_kind in kinds) and pattern.search(text):
            return True
    return False


def parse_console(data: Union[bytes, str]) -> List[CrashReport]:
    """All reports in a console log; ``reports[0]`` is the headline.

    Kernel reports come in log order, followed by the filesystem reports
    (kind ``fs-error``) in log order: an ``EXT4-fs error`` printed before a
    ``kernel BUG`` is evidence, the BUG is the crash."""
    lines = _lines(data)
    headers: Dict[int, Oops] = {}
    for idx, ln in enumerate(lines):
        oops = _match_oops(ln)
        if oops is not None:
            headers[idx] = oops
    if not headers:
        return []
    found = []   # (start, title, kind, corrupted, frame, body)
    for start in _pick_starts(lines, headers):
        oops = headers[start]
        body, title_text = _report_body(lines, start, headers)
        desc = _describe(title_text, oops)
        title = _make_title(desc.title)
        kind = desc.fmt.kind if desc.fmt is not None else oops.kind
        corrupted = desc.corrupted or _is_corrupted(desc.title, body, desc.fmt)
        frame = ""
        if desc.fmt is not None and " in {" in desc.fmt.fmt:
            frame = _title_frame(title)
        found.append((start, title, kind, corrupted, "" if frame == "corrupted" else frame, body))
    reports: List[CrashReport] = []
    for n, (start, title, kind, corrupted, frame, body) in enumerate(found):
        limit = found[n + 1][0] if n + 1 < len(found) else len(lines)
        reports.append(CrashReport(
            title=title,
            kind=kind,
            frames=_call_trace(body),
            corrupted=corrupted,
            line=lines[start].num,
            text=_report_text(lines, start, _text_end(lines, start, limit, kind)),
            frame=frame,
        ))
    # stable: log order within each tier
    reports.sort(key=lambda r: r.kind == "fs-error")
    return reports


# --------------------------------------------------------------------------
# Reboots and per-case attribution.


def reboots(data: Union[bytes, str]) -> List[int]:
    """1-based lines of "Linux version" boot banners after the first one: each
    means the guest rebooted (unexpectedly, for a test run)."""
    banners = [ln.num for ln in _lines(data) if ln.banner]
    return banners[1:]


_MARKER_RE = re.compile(r"pinrig: case-(start|end) (\S+)")


def split_by_case(data: Union[bytes, str]) -> Dict[str, str]:
    """Split a console log at the rig's ``pinrig: case-start <id>`` /
    ``pinrig: case-end <id>`` kmsg markers (timestamped, level-prefixed or not).

    Returns {case-id: slice}.  A slice runs from its start marker through its
    end marker; when the end marker is missing it runs up to the next start
    marker, or to the end of the log (the usual shape of a case that crashed
    the guest).  Text before the first start marker is "boot"; text outside
    any case after that (between an end and the next start, or after the last
    case) is appended to "between".  A case id seen twice gets both slices,
    concatenated.  Slices keep the original line endings, so the values put
    together are the whole log.
    """
    text = _decode(data)
    out: Dict[str, List[str]] = {"boot": []}
    current = "boot"
    for piece in re.split(r"(?<=\n)", text):
        if not piece:
            continue
        m = _MARKER_RE.search(piece)
        if m is not None and m.group(1) == "start":
            current = m.group(2)
        out.setdefault(current, []).append(piece)
        if m is not None and m.group(1) == "end" and current not in ("boot", "between"):
            current = "between"
    return {k: "".join(v) for k, v in out.items()}


# --------------------------------------------------------------------------
# Human output and CLI.


def format_text(path: str, reports: List[CrashReport]) -> str:
    """Human summary of the reports of one log (what ``rig oops LOG`` prints)."""
    if not reports:
        return f"{path}: no kernel reports\n"
    noun = "report" if len(reports) == 1 else "reports"
    out = [f"{path}: {len(reports)} kernel {noun}; headline: {reports[0].title}"]
    for rep in reports:
        flag = " (corrupted)" if rep.corrupted else ""
        out.append(f"  line {rep.line}: [{rep.kind}] {rep.title}{flag}")
        if rep.frames:
            shown = " < ".join(rep.frames[:8])
            more = " ..." if len(rep.frames) > 8 else ""
            out.append(f"      frames: {shown}{more}")
    return "\n".join(out) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    """``rig oops [--json] LOG...``"""
    parser = argparse.ArgumentParser(
        prog="rig oops", description="Find kernel crash reports in console logs.")
    parser.add_argument("--json", action="store_true",
                        help='print {"LOG": [report, ...]} as JSON')
    parser.add_argument("logs", nargs="+", metavar="LOG", help="console log file")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage error: argparse printed the message
        return int(exc.code or 0) if exc.code not in (None, 0) else 0
    results: Dict[str, List[CrashReport]] = {}
    for path in args.logs:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            print(f"rig oops: cannot read {path}: {reason}", file=sys.stderr)
            return 2
        results[path] = parse_console(data)
    if args.json:
        json.dump({p: [r.to_dict() for r in reps] for p, reps in results.items()},
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for path, reps in results.items():
            sys.stdout.write(format_text(path, reps))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
