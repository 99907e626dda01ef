/* SPDX-License-Identifier: MIT */
/*
 * anon-coherency: does a process still see what the device writes through a
 * long-term pin of its anonymous memory after the kernel had a chance to
 * replace the pinned pages behind the pin?  (The "GUP guarantees wrt
 * userspace mappings" thread: fork COW, KSM, khugepaged, migration.)
 *
 *   1. two anonymous private regions, 2 MiB aligned, small pages
 *      (MADV_NOHUGEPAGE while they are faulted in): the PINNED one and an
 *      unpinned TWIN of the same shape and content (the twin is the witness
 *      that the trigger really ran: KSM merges it, khugepaged collapses it,
 *      move_pages moves it)
 *   2. register the pinned region as a writable MR (FOLL_PIN|FOLL_LONGTERM)
 *   3. the trigger (--trigger):
 *        control            nothing
 *        fork-child-write   fork; the child writes a marker into every page
 *        fork-parent-write  fork; the parent writes a marker into every page
 *        ksm                MADV_MERGEABLE on both regions, ksmd running,
 *                           until the twin is merged and ksmd scanned twice more
 *        khugepaged         MADV_HUGEPAGE on both, khugepaged tuned fast,
 *                           until the twin is collapsed and khugepaged scanned twice more
 *        migrate            move_pages() of both regions to another NUMA node
 *        dontneed           MADV_DONTNEED on the pinned region
 *        mprotect           mprotect(PROT_READ) and back to PROT_READ|PROT_WRITE, then the
 *                           process writes a marker into every page (a write fault on a
 *                           pinned page: reused, or copied away from the pin?)
 *        pageout            MADV_PAGEOUT on both regions (swap on zram, set up here when
 *                           the guest has none), then the process reads every page and
 *                           writes a marker into it (reclaim may unmap a pinned page into
 *                           the swap cache; the later write fault: reuse or copy?)
 *        fork-ro-pin        fork FIRST (the child only waits), then a read-only pin
 *                           (REMOTE_READ MR) of the pages the child shares, then the parent
 *                           writes a marker into every page; the device RDMA READs: does it
 *                           read what the parent wrote?  (the R/O pin COW case of 5.10)
 *        uprobe             (not anonymous at first: a MAP_PRIVATE PROT_EXEC mapping of
 *                           --file, pinned read-only) uprobes on the first pages of the
 *                           file, enabled through tracefs: install_breakpoint() puts a
 *                           copy of the page with the breakpoint into the page table
 *                           (__replace_page, no page_count check in the thread's words);
 *                           the device can only RDMA READ this MR, so "the device's data"
 *                           is what it reads back
 *   4. the "device" RDMA WRITEs pattern B into the MR (loopback RC QP), then
 *      RDMA READs the MR back into a separate buffer (what the device sees)
 *   5. every page of the process's view is classified: device data (B), the
 *      original data, zeros, other.  The process should see exactly the
 *      device's data; after MADV_DONTNEED it should see zeros (the zap drops
 *      the process's reference; the device keeps writing the old page, which
 *      the pin keeps alive: documented semantics, not a bug).  The child of a
 *      fork must not see the device's data.
 *
 * The page frame numbers of both regions (/proc/self/pagemap, needs root)
 * before the pin, after the pin, after the trigger and after the write show
 * whether a pinned page was replaced in the page table.  Knobs changed in
 * /sys are restored on exit.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "rdma_loop.h"
#include "report.h"

#define HPAGE (2u << 20)
#define KPF_KSM_BIT 21
#define KPF_THP_BIT 22
#define MAX_KNOBS 16

#ifndef MPOL_MF_MOVE
#define MPOL_MF_MOVE (1 << 1)
#endif

enum trigger { T_CONTROL, T_FORK_CHILD, T_FORK_PARENT, T_KSM, T_KHUGEPAGED, T_MIGRATE, T_DONTNEED,
	       T_UPROBE, T_FORK_RO_PIN, T_MPROTECT, T_PAGEOUT };
static const char *const trigger_names[] = {
	"control", "fork-child-write", "fork-parent-write", "ksm", "khugepaged", "migrate", "dontneed",
	"uprobe", "fork-ro-pin", "mprotect", "pageout",
};
#define N_PROBES 8                 /* uprobe: one probe at the start of each of the first pages */
#define UPROBE_GROUP "pinrig_anon"
#define N_TRIGGERS (sizeof(trigger_names) / sizeof(trigger_names[0]))

static struct common_opts co = COMMON_OPTS_DEFAULTS;

static struct {
	int trigger;
	double wait;
	int port;
	int gid_index;
} opt = { .trigger = -1, .wait = 120.0, .port = 1, .gid_index = 1 };

/* one region's page frames at the four moments */
enum { M_BEFORE_PIN, M_AFTER_PIN, M_AFTER_TRIGGER, M_AFTER_WRITE, M_N };
static const char *const moment_names[M_N] = { "before_pin", "after_pin", "after_trigger", "after_write" };

struct region {
	const char *name;
	unsigned char *p;
	size_t npages;
	bool have[M_N];
	uint64_t *pfn[M_N];       /* 0 = not present / hidden */
	uint64_t *kflags[M_N];
	long long anon_huge_kb[M_N];
};

struct child_view {
	int mapped;               /* the region exists in the child (no MADV_DONTFORK) */
	long long device, expected, other, pfn_changed;
};

static struct {
	struct rdma_loop l;
	long long memlock;
	struct region pinned, twin;
	bool use_twin;
	const char *expect_process;   /* "device" or "zero" */
	long long proc_device, proc_original, proc_zero, proc_other;
	long long proc_matches_devview, devview_device, mismatched;
	long long first_mismatch;
	bool checked;
	bool have_child;
	struct child_view child;
	int child_status;
	int fork_init;                /* ibv_is_fork_initialized(), -1 unknown */
	const char *rdma_write_status, *rdma_read_status;
	bool trigger_ran;
	char trigger_note[512];
	char skip[256];
	/* trigger evidence */
	long long ksm_before[3], ksm_after[3];    /* pages_shared, pages_sharing, full_scans */
	long long khp_scans_before, khp_scans_after, khp_collapsed_before, khp_collapsed_after;
	char thp_enabled[64];
	double waited_s;
	int nodes, src_node, target_node;
	long long mig_status[2][6];   /* [pinned/twin][moved, stayed, EBUSY, EAGAIN+ENOMEM, not reported, other] */
	int mig_ret[2], mig_errno[2];
	int probes;                               /* uprobes registered */
	char tracefs[64];
	long long twin_breakpoints, pinned_breakpoints;
	char swap[128];                           /* pageout: the swap in use */
	long long twin_swapped, pinned_swapped;   /* pages with the pagemap swap bit after MADV_PAGEOUT */
} st = { .memlock = -2, .first_mismatch = -1, .fork_init = -1, .child_status = -1,
	 .mig_ret = { 1, 1 } };

/* ------------------------------------------------------------------ */
/* /sys knobs, restored at exit                                        */

static struct knob {
	char path[128];
	char old[64];
} knobs[MAX_KNOBS];
static int nknobs;
static pid_t main_pid;

static bool read_text(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return false;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return true;
}

static long long read_ll(const char *path)
{
	char buf[64];

	return read_text(path, buf, sizeof(buf)) ? strtoll(buf, NULL, 10) : -1;
}

static bool write_text(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = write(fd, val, strlen(val));
	close(fd);
	return n == (ssize_t)strlen(val);
}

static void restore_knobs(void)
{
	if (getpid() != main_pid)
		return;
	for (int i = nknobs - 1; i >= 0; i--) {
		if (strstr(knobs[i].path, "/ksm/run") && strcmp(knobs[i].old, "2"))
			write_text(knobs[i].path, "2");      /* unmerge everything first */
		if (!write_text(knobs[i].path, knobs[i].old))
			pr_log("could not restore %s to %s", knobs[i].path, knobs[i].old);
	}
	nknobs = 0;
}

/* set a knob, remembering its old value; fail when the kernel refuses */
static void set_knob(const char *path, const char *val)
{
	struct knob *k;

	if (nknobs == MAX_KNOBS)
		fail("too many knobs");
	k = &knobs[nknobs];
	snprintf(k->path, sizeof(k->path), "%s", path);
	if (!read_text(path, k->old, sizeof(k->old)))
		fail_errno(errno, "read %s", path);
	/* thp "enabled" reads "always [madvise] never": keep the bracketed word */
	if (strchr(k->old, '[')) {
		char *b = strchr(k->old, '['), *e = strchr(b, ']');
		if (e) {
			*e = '\0';
			memmove(k->old, b + 1, strlen(b + 1) + 1);
		}
	}
	nknobs++;
	if (!write_text(path, val))
		fail_errno(errno, "write %s to %s", val, path);
}

/* ------------------------------------------------------------------ */
/* page frames                                                          */

static void snap(struct region *r, int m)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int kfd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	uint64_t *ents = calloc(r->npages, 8);
	size_t psz = PR_BLOCK;

	if (!r->pfn[m]) {
		r->pfn[m] = calloc(r->npages, 8);
		r->kflags[m] = calloc(r->npages, 8);
	}
	if (!ents || !r->pfn[m] || !r->kflags[m])
		fail("out of memory");
	r->have[m] = false;
	if (fd >= 0 && pread(fd, ents, r->npages * 8, (off_t)((uintptr_t)r->p / psz) * 8) ==
	    (ssize_t)(r->npages * 8)) {
		r->have[m] = true;
		for (size_t i = 0; i < r->npages; i++) {
			uint64_t pfn = (ents[i] >> 63) ? (ents[i] & ((1ULL << 55) - 1)) : 0;
			r->pfn[m][i] = pfn;
			r->kflags[m][i] = 0;
			if (pfn && kfd >= 0 && pread(kfd, &r->kflags[m][i], 8, (off_t)(pfn * 8)) != 8)
				r->kflags[m][i] = 0;
		}
	}
	if (fd >= 0)
		close(fd);
	if (kfd >= 0)
		close(kfd);
	free(ents);
}

/* AnonHugePages (kB) of the VMA holding addr, -1 unknown */
static long long anon_huge_kb(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[512];
	bool in = false;
	long long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			if (in)
				break;
			in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
			continue;
		}
		if (in && sscanf(line, "AnonHugePages: %lld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

static void snap_all(int m)
{
	snap(&st.pinned, m);
	st.pinned.anon_huge_kb[m] = anon_huge_kb(st.pinned.p);
	if (st.use_twin) {
		snap(&st.twin, m);
		st.twin.anon_huge_kb[m] = anon_huge_kb(st.twin.p);
	}
}

static long long count_flag(const struct region *r, int m, int bit)
{
	long long n = 0;

	for (size_t i = 0; r->have[m] && i < r->npages; i++)
		n += r->pfn[m][i] && (r->kflags[m][i] >> bit & 1);
	return n;
}

static long long count_changed(const struct region *r, int a, int b)
{
	long long n = 0;

	if (!r->have[a] || !r->have[b])
		return -1;
	for (size_t i = 0; i < r->npages; i++)
		n += r->pfn[a][i] != r->pfn[b][i];
	return n;
}

static long long count_present(const struct region *r, int m)
{
	long long n = 0;

	for (size_t i = 0; r->have[m] && i < r->npages; i++)
		n += r->pfn[m][i] != 0;
	return r->have[m] ? n : -1;
}

/* ------------------------------------------------------------------ */
/* JSON                                                                 */

static void jk_region(struct jbuf *j, const struct region *r)
{
	jb_key(j, r->name);
	jb_obj_open(j);
	jk_u64(j, "pages", r->npages);
	jb_key(j, "addr");
	jb_hex(j, (uintptr_t)r->p);
	for (int m = 0; m < M_N; m++) {
		char key[64];
		jb_key(j, moment_names[m]);
		if (!r->have[m]) {
			jb_null(j);
			continue;
		}
		jb_obj_open(j);
		jk_opt(j, "present", count_present(r, m));
		jk_i64(j, "ksm", count_flag(r, m, KPF_KSM_BIT));
		jk_i64(j, "thp", count_flag(r, m, KPF_THP_BIT));
		jk_opt(j, "anon_huge_kb", r->anon_huge_kb[m]);
		if (m > 0) {
			snprintf(key, sizeof(key), "pfn_changed_since_%s", moment_names[m - 1]);
			jk_opt(j, key, count_changed(r, m - 1, m));
		}
		jb_key(j, "pfn");
		jb_arr_open(j);
		for (size_t i = 0; i < r->npages; i++)
			jb_u64(j, r->pfn[m][i]);
		jb_arr_close(j);
		jb_obj_close(j);
	}
	jk_opt(j, "pfn_changed_pin_to_write", count_changed(r, M_AFTER_PIN, M_AFTER_WRITE));
	jb_obj_close(j);
}

/* not_reported: move_pages() returned before it stored a status for the page (its return value
 * is then the number of pages it did not move) */
static const char *const mig_keys[6] = { "moved", "stayed", "EBUSY", "EAGAIN_or_ENOMEM", "not_reported",
					 "other" };

static void extra(struct jbuf *j)
{
	jk_str(j, "trigger", opt.trigger >= 0 ? trigger_names[opt.trigger] : NULL);
	jk_u64(j, "seed", co.seed);
	jk_str(j, "device", st.l.devname[0] ? st.l.devname : co.device);
	jk_str(j, "gid", st.l.gid[0] ? st.l.gid : NULL);
	jk_memlock(j, st.memlock);
	jk_str(j, "skip", st.skip[0] ? st.skip : NULL);
	jk_bool(j, "trigger_ran", st.trigger_ran);
	jk_str(j, "trigger_note", st.trigger_note[0] ? st.trigger_note : NULL);
	jk_str(j, "rdma_write_status", st.rdma_write_status);
	jk_str(j, "rdma_read_status", st.rdma_read_status);

	jb_key(j, "coherency");
	if (!st.checked) {
		jb_null(j);
	} else {
		jb_obj_open(j);
		jk_u64(j, "pages", st.pinned.npages);
		jk_str(j, "expect_process", st.expect_process);
		jk_i64(j, "process_device", st.proc_device);
		jk_i64(j, "process_original", st.proc_original);
		jk_i64(j, "process_zero", st.proc_zero);
		jk_i64(j, "process_other", st.proc_other);
		jk_i64(j, "process_matches_device_view", st.proc_matches_devview);
		jk_i64(j, "device_view_device", st.devview_device);
		jk_i64(j, "mismatched", st.mismatched);
		jk_opt(j, "first_mismatch_page", st.first_mismatch);
		jb_key(j, "child");
		if (!st.have_child) {
			jb_null(j);
		} else {
			jb_obj_open(j);
			jk_tribool(j, "mapped", st.child.mapped);
			jk_i64(j, "device", st.child.device);
			jk_i64(j, "expected", st.child.expected);
			jk_i64(j, "other", st.child.other);
			jk_opt(j, "pfn_changed_vs_parent_pin", st.child.pfn_changed);
			jk_i64(j, "exit_status", st.child_status);
			jb_obj_close(j);
		}
		jk_i64(j, "incoherent", st.mismatched + (st.have_child ? st.child.device : 0));
		jb_obj_close(j);
	}

	jb_key(j, "evidence");
	jb_obj_open(j);
	jk_dbl(j, "waited_s", st.waited_s);
	switch (opt.trigger) {
	case T_FORK_CHILD:
	case T_FORK_PARENT:
		jk_opt(j, "ibv_fork_initialized", st.fork_init);
		break;
	case T_KSM:
		jk_i64(j, "pages_shared_before", st.ksm_before[0]);
		jk_i64(j, "pages_sharing_before", st.ksm_before[1]);
		jk_i64(j, "full_scans_before", st.ksm_before[2]);
		jk_i64(j, "pages_shared_after", st.ksm_after[0]);
		jk_i64(j, "pages_sharing_after", st.ksm_after[1]);
		jk_i64(j, "full_scans_after", st.ksm_after[2]);
		break;
	case T_KHUGEPAGED:
		jk_str(j, "thp_enabled", st.thp_enabled);
		jk_i64(j, "full_scans_before", st.khp_scans_before);
		jk_i64(j, "full_scans_after", st.khp_scans_after);
		jk_i64(j, "thp_collapse_alloc_before", st.khp_collapsed_before);
		jk_i64(j, "thp_collapse_alloc_after", st.khp_collapsed_after);
		break;
	case T_MIGRATE:
		jk_i64(j, "nodes", st.nodes);
		jk_i64(j, "source_node", st.src_node);
		jk_i64(j, "target_node", st.target_node);
		for (int r = 0; r < 2; r++) {
			jb_key(j, r ? "twin_move_pages" : "pinned_move_pages");
			jb_obj_open(j);
			jk_i64(j, "ret", st.mig_ret[r]);
			jk_str(j, "errno", st.mig_errno[r] ? errno_name(st.mig_errno[r]) : NULL);
			for (int k = 0; k < 6; k++)
				jk_i64(j, mig_keys[k], st.mig_status[r][k]);
			jb_obj_close(j);
		}
		break;
	case T_PAGEOUT:
		jk_str(j, "swap", st.swap[0] ? st.swap : NULL);
		jk_i64(j, "twin_swapped", st.twin_swapped);
		jk_i64(j, "pinned_swapped", st.pinned_swapped);
		break;
	case T_UPROBE:
		jk_str(j, "tracefs", st.tracefs[0] ? st.tracefs : NULL);
		jk_i64(j, "probes", st.probes);
		jk_i64(j, "twin_breakpoints", st.twin_breakpoints);
		jk_i64(j, "pinned_breakpoints", st.pinned_breakpoints);
		break;
	default:
		break;
	}
	jb_obj_close(j);

	jb_key(j, "regions");
	jb_obj_open(j);
	if (st.pinned.p)
		jk_region(j, &st.pinned);
	if (st.use_twin && st.twin.p)
		jk_region(j, &st.twin);
	jb_obj_close(j);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: anon-coherency --trigger NAME [--size BYTES] [--seed N] [--device NAME] [--file PATH]\n"
		"                      [--port N] [--gid-index N] [--timeout SECONDS] [--wait SECONDS]\n"
		"  Pin anonymous memory as an RDMA MR, let the kernel try to replace the pinned pages,\n"
		"  RDMA WRITE through the pin and report whether the process sees the device's data.\n"
		"  --trigger    control | fork-child-write | fork-parent-write | ksm | khugepaged |\n"
		"               migrate | dontneed | uprobe | fork-ro-pin | mprotect | pageout\n"
		"  --file       uprobe only: the file to map PROT_EXEC and probe (created)\n"
		"  --size       multiple of 2M (default 2M)\n"
		"  --wait       how long ksm/khugepaged may take to act on the twin (default 120 s)\n"
		"  --timeout    RDMA completion timeout in seconds (default 10)\n");
}

static void own_opt(int c, const char *arg)
{
	switch (c) {
	case 'T':
		for (size_t i = 0; i < N_TRIGGERS; i++)
			if (!strcmp(arg, trigger_names[i]))
				opt.trigger = (int)i;
		if (opt.trigger < 0)
			usage_fail(usage, "--trigger: unknown trigger '%s'", arg);
		break;
	case 'w': opt.wait = (double)cli_range("--wait", arg, 1, 3600, " s"); break;
	case 'p': opt.port = (int)cli_range("--port", arg, 1, 255, ""); break;
	case 'g': opt.gid_index = (int)cli_range("--gid-index", arg, 0, 65535, ""); break;
	}
}

static const struct option own_opts[] = {
	{ "trigger", required_argument, NULL, 'T' },
	{ "wait", required_argument, NULL, 'w' },
	{ "port", required_argument, NULL, 'p' },
	{ "gid-index", required_argument, NULL, 'g' },
	{ 0 }
};

static const struct program prog = {
	.name = "anon-coherency",
	.usage = usage,
	.extra = extra,
	.fault_handler = true,
	.stages = true,
	.common = CLI_FILE | CLI_SIZE | CLI_SEED | CLI_DEVICE | CLI_TIMEOUT,
	.own = own_opts,
	.own_opt = own_opt,
};

/* ------------------------------------------------------------------ */
/* the triggers                                                         */

static unsigned char *map_region(size_t size)
{
	unsigned char *raw = mmap(NULL, size + HPAGE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t a;

	if (raw == MAP_FAILED)
		fail_errno(errno, "mmap(anonymous, %zu)", size + HPAGE);
	a = ((uintptr_t)raw + HPAGE - 1) & ~(uintptr_t)(HPAGE - 1);
	if (a > (uintptr_t)raw)
		munmap(raw, a - (uintptr_t)raw);
	if ((uintptr_t)raw + size + HPAGE > a + size)
		munmap((void *)(a + size), (uintptr_t)raw + size + HPAGE - (a + size));
	/* small pages while faulted in: the collapse is khugepaged's job, later */
	if (madvise((void *)a, size, MADV_NOHUGEPAGE) != 0)
		fail_errno(errno, "madvise(MADV_NOHUGEPAGE)");
	return (unsigned char *)a;
}

static void ksm_counts(long long v[3])
{
	v[0] = read_ll("/sys/kernel/mm/ksm/pages_shared");
	v[1] = read_ll("/sys/kernel/mm/ksm/pages_sharing");
	v[2] = read_ll("/sys/kernel/mm/ksm/full_scans");
}

static long long vmstat_value(const char *name)
{
	FILE *f = fopen("/proc/vmstat", "re");
	char key[64];
	long long v, out = -1;

	if (!f)
		return -1;
	while (fscanf(f, "%63s %lld", key, &v) == 2)
		if (!strcmp(key, name)) {
			out = v;
			break;
		}
	fclose(f);
	return out;
}

/* wait until done() and then `extra_scans` more full scans (counter), or opt.wait */
static bool wait_for(bool (*done)(void), const char *scans_path, int extra_scans)
{
	double t0 = now_s();
	long long goal = -1;

	for (;;) {
		long long scans = read_ll(scans_path);
		if (goal < 0 && done())
			goal = scans + extra_scans;
		if (goal >= 0 && scans >= goal)
			break;
		if (now_s() - t0 > opt.wait)
			break;
		usleep(100 * 1000);
	}
	st.waited_s = now_s() - t0;
	return goal >= 0;
}

static bool twin_merged(void)
{
	snap(&st.twin, M_AFTER_TRIGGER);
	return count_flag(&st.twin, M_AFTER_TRIGGER, KPF_KSM_BIT) == (long long)st.twin.npages;
}

static bool twin_collapsed(void)
{
	return anon_huge_kb(st.twin.p) >= (long long)(st.twin.npages * PR_BLOCK / 1024);
}

static void trigger_ksm(size_t size)
{
	const char *d = "/sys/kernel/mm/ksm/";
	char path[128];

	if (access("/sys/kernel/mm/ksm/run", W_OK) != 0) {
		snprintf(st.skip, sizeof(st.skip), "no writable /sys/kernel/mm/ksm/run (kernel without KSM?)");
		return;
	}
	ksm_counts(st.ksm_before);
	if (madvise(st.pinned.p, size, MADV_MERGEABLE) != 0)
		fail_errno(errno, "madvise(pinned, MADV_MERGEABLE)");
	if (madvise(st.twin.p, size, MADV_MERGEABLE) != 0)
		fail_errno(errno, "madvise(twin, MADV_MERGEABLE)");
	snprintf(path, sizeof(path), "%spages_to_scan", d);
	set_knob(path, "4096");
	snprintf(path, sizeof(path), "%ssleep_millisecs", d);
	set_knob(path, "20");
	snprintf(path, sizeof(path), "%srun", d);
	set_knob(path, "1");
	st.trigger_ran = wait_for(twin_merged, "/sys/kernel/mm/ksm/full_scans", 2);
	ksm_counts(st.ksm_after);
	snprintf(st.trigger_note, sizeof(st.trigger_note),
		 "ksmd merged %lld of %zu twin pages in %.1f s (full_scans %lld -> %lld)",
		 count_flag(&st.twin, M_AFTER_TRIGGER, KPF_KSM_BIT), st.twin.npages, st.waited_s,
		 st.ksm_before[2], st.ksm_after[2]);
}

static void trigger_khugepaged(size_t size)
{
	const char *d = "/sys/kernel/mm/transparent_hugepage/";
	char path[160];

	snprintf(path, sizeof(path), "%senabled", d);
	if (!read_text(path, st.thp_enabled, sizeof(st.thp_enabled))) {
		snprintf(st.skip, sizeof(st.skip), "no %s (kernel without THP?)", path);
		return;
	}
	if (strstr(st.thp_enabled, "[never]"))
		set_knob(path, "madvise");
	snprintf(path, sizeof(path), "%skhugepaged/scan_sleep_millisecs", d);
	set_knob(path, "100");
	snprintf(path, sizeof(path), "%skhugepaged/alloc_sleep_millisecs", d);
	set_knob(path, "100");
	snprintf(path, sizeof(path), "%skhugepaged/pages_to_scan", d);
	set_knob(path, "8192");
	snprintf(path, sizeof(path), "%skhugepaged/full_scans", d);
	st.khp_scans_before = read_ll(path);
	st.khp_collapsed_before = vmstat_value("thp_collapse_alloc");
	if (madvise(st.pinned.p, size, MADV_HUGEPAGE) != 0)
		fail_errno(errno, "madvise(pinned, MADV_HUGEPAGE)");
	if (madvise(st.twin.p, size, MADV_HUGEPAGE) != 0)
		fail_errno(errno, "madvise(twin, MADV_HUGEPAGE)");
	st.trigger_ran = wait_for(twin_collapsed, path, 2);
	st.khp_scans_after = read_ll(path);
	st.khp_collapsed_after = vmstat_value("thp_collapse_alloc");
	snprintf(st.trigger_note, sizeof(st.trigger_note),
		 "khugepaged collapsed the twin to %lld kB AnonHugePages in %.1f s (full_scans %lld -> %lld)",
		 anon_huge_kb(st.twin.p), st.waited_s, st.khp_scans_before, st.khp_scans_after);
}

static int online_nodes(int *first, int *second)
{
	DIR *d = opendir("/sys/devices/system/node");
	struct dirent *e;
	int n = 0;

	*first = *second = -1;
	if (!d)
		return 1;
	while ((e = readdir(d))) {
		int id;
		char c;
		if (sscanf(e->d_name, "node%d%c", &id, &c) != 1)
			continue;
		n++;
		if (*first < 0 || id < *first) {
			*second = *first;
			*first = id;
		} else if (*second < 0 || id < *second) {
			*second = id;
		}
	}
	closedir(d);
	return n;
}

static void move_region(int r, struct region *reg, int target)
{
	void **pages = calloc(reg->npages, sizeof(void *));
	int *nodes = calloc(reg->npages, sizeof(int));
	int *status = calloc(reg->npages, sizeof(int));
	long ret;

	if (!pages || !nodes || !status)
		fail("out of memory");
	for (size_t i = 0; i < reg->npages; i++) {
		pages[i] = reg->p + i * PR_BLOCK;
		nodes[i] = target;
		status[i] = -1000;
	}
	errno = 0;
	ret = syscall(SYS_move_pages, 0, (unsigned long)reg->npages, pages, nodes, status, MPOL_MF_MOVE);
	st.mig_ret[r] = (int)ret;
	st.mig_errno[r] = ret < 0 ? errno : 0;
	for (size_t i = 0; i < reg->npages; i++) {
		int s = status[i];
		int k = s == target ? 0 : s == st.src_node ? 1 : s == -EBUSY ? 2 :
			(s == -EAGAIN || s == -ENOMEM) ? 3 : s == -1000 ? 4 : 5;
		st.mig_status[r][k]++;
	}
	free(pages);
	free(nodes);
	free(status);
}

static int node_of(void *page)
{
	void *pages[1] = { page };
	int status[1] = { -1 };

	if (syscall(SYS_move_pages, 0, 1UL, pages, NULL, status, 0) != 0)
		return -1;
	return status[0];
}

static void trigger_migrate(void)
{
	int first, second;

	st.nodes = online_nodes(&first, &second);
	if (st.nodes < 2) {
		snprintf(st.skip, sizeof(st.skip),
			 "the guest has %d NUMA node(s): move_pages needs two (boot with numa=fake=2)", st.nodes);
		return;
	}
	st.src_node = node_of(st.pinned.p);
	if (st.src_node < 0)
		fail_errno(errno, "move_pages(query the node of the pinned region)");
	st.target_node = st.src_node == first ? second : first;
	move_region(1, &st.twin, st.target_node);
	move_region(0, &st.pinned, st.target_node);
	st.trigger_ran = st.mig_status[1][0] > 0;
	snprintf(st.trigger_note, sizeof(st.trigger_note),
		 "move_pages node %d -> %d: twin %lld of %zu moved, pinned %lld of %zu moved "
		 "(%lld stayed on node %d, move_pages returned %d)",
		 st.src_node, st.target_node, st.mig_status[1][0], st.twin.npages, st.mig_status[0][0],
		 st.pinned.npages, st.mig_status[0][1], st.src_node, st.mig_ret[0]);
}

/* ------------------------------------------------------------------ */
/* pageout                                                              */

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

static int zram_swapon;

static void zram_cleanup(void)
{
	if (!zram_swapon || getpid() != main_pid)
		return;
	zram_swapon = 0;
	if (system("swapoff /dev/zram0 && echo 1 > /sys/block/zram0/reset") != 0)
		pr_log("could not swapoff/reset /dev/zram0");
}

/* pages of the region whose pagemap entry says "swapped" (bit 62) */
static long long count_swapped(const struct region *r)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t *ents = calloc(r->npages, 8);
	long long n = -1;

	if (fd >= 0 && ents && pread(fd, ents, r->npages * 8, (off_t)((uintptr_t)r->p / PR_BLOCK) * 8) ==
	    (ssize_t)(r->npages * 8)) {
		n = 0;
		for (size_t i = 0; i < r->npages; i++)
			n += (ents[i] >> 62) & 1;
	}
	if (fd >= 0)
		close(fd);
	free(ents);
	return n;
}

/* the first active swap in /proc/swaps, into st.swap; false when there is none */
static bool active_swap(void)
{
	FILE *f = fopen("/proc/swaps", "re");
	char line[256];
	bool found = false;

	if (!f)
		return false;
	if (fgets(line, sizeof(line), f))
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "%127s", st.swap) == 1) {
				found = true;
				break;
			}
	fclose(f);
	return found;
}

static void trigger_pageout(size_t size)
{
	volatile unsigned char sink = 0;

	if (!active_swap()) {
		atexit(zram_cleanup);
		zram_swapon = 1;
		if (system("{ test -e /sys/block/zram0 || modprobe zram num_devices=1; } && "
			   "echo 256M > /sys/block/zram0/disksize && mkswap /dev/zram0 >/dev/null && "
			   "swapon /dev/zram0") != 0 || !active_swap()) {
			snprintf(st.skip, sizeof(st.skip), "no swap and none could be set up on zram "
				 "(kernel without zram, or no mkswap/swapon in the guest)");
			return;
		}
	}
	if (madvise(st.twin.p, size, MADV_PAGEOUT) != 0) {
		if (errno == EINVAL) {
			snprintf(st.skip, sizeof(st.skip), "MADV_PAGEOUT not supported (EINVAL)");
			return;
		}
		fail_errno(errno, "madvise(twin, MADV_PAGEOUT)");
	}
	if (madvise(st.pinned.p, size, MADV_PAGEOUT) != 0)
		fail_errno(errno, "madvise(pinned, MADV_PAGEOUT)");
	st.twin_swapped = count_swapped(&st.twin);
	st.pinned_swapped = count_swapped(&st.pinned);
	snap(&st.pinned, M_AFTER_TRIGGER);
	st.trigger_ran = st.twin_swapped > 0;
	snprintf(st.trigger_note, sizeof(st.trigger_note),
		 "MADV_PAGEOUT (swap %s): twin %lld of %zu pages swapped out, pinned %lld swapped and "
		 "%lld still mapped; then the process read and wrote every page", st.swap,
		 st.twin_swapped, st.twin.npages, st.pinned_swapped, count_present(&st.pinned, M_AFTER_TRIGGER));
	for (size_t i = 0; i < st.pinned.npages; i++)
		sink ^= st.pinned.p[i * PR_BLOCK + 100];          /* read faults first */
	(void)sink;
}

/* ------------------------------------------------------------------ */
/* uprobes                                                              */

static int uprobe_cleanup_needed;

static bool tracefs_write(const char *name, const char *text, bool append)
{
	char path[160];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s", st.tracefs, name);
	fd = open(path, O_WRONLY | O_CLOEXEC | (append ? O_APPEND : O_TRUNC));
	if (fd < 0)
		return false;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text);
}

static void uprobe_cleanup(void)
{
	char line[64];

	if (!uprobe_cleanup_needed || getpid() != main_pid)
		return;
	uprobe_cleanup_needed = 0;
	tracefs_write("events/" UPROBE_GROUP "/enable", "0", false);
	for (int i = 0; i < N_PROBES; i++) {
		snprintf(line, sizeof(line), "-:%s/p%d\n", UPROBE_GROUP, i);
		tracefs_write("uprobe_events", line, true);
	}
}

/* bytes at the probe offsets that are the x86 breakpoint (0xcc) */
static long long count_breakpoints(const unsigned char *p)
{
	long long n = 0;

	for (int i = 0; i < N_PROBES; i++)
		n += p[(size_t)i * PR_BLOCK] == 0xcc;
	return n;
}

static void trigger_uprobe(void)
{
	char line[600];

	if (access("/sys/kernel/tracing/uprobe_events", F_OK) == 0) {
		snprintf(st.tracefs, sizeof(st.tracefs), "/sys/kernel/tracing");
	} else if (access("/sys/kernel/debug/tracing/uprobe_events", F_OK) == 0) {
		snprintf(st.tracefs, sizeof(st.tracefs), "/sys/kernel/debug/tracing");
	} else {
		if (access("/sys/kernel/tracing", F_OK) == 0)
			(void)!system("mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null");
		if (access("/sys/kernel/tracing/uprobe_events", F_OK) != 0) {
			snprintf(st.skip, sizeof(st.skip), "no uprobe_events in tracefs (kernel without "
				 "CONFIG_UPROBE_EVENTS, or tracefs cannot be mounted)");
			return;
		}
		snprintf(st.tracefs, sizeof(st.tracefs), "/sys/kernel/tracing");
	}
	uprobe_cleanup_needed = 1;
	atexit(uprobe_cleanup);
	for (int i = 0; i < N_PROBES; i++) {
		snprintf(line, sizeof(line), "p:%s/p%d %s:0x%lx\n", UPROBE_GROUP, i, co.file,
			 (unsigned long)i * PR_BLOCK);
		if (!tracefs_write("uprobe_events", line, true))
			fail_errno(errno, "register uprobe '%s' (%s/uprobe_events)", line, st.tracefs);
		st.probes++;
	}
	if (!tracefs_write("events/" UPROBE_GROUP "/enable", "1", false))
		fail_errno(errno, "enable %s/events/%s", st.tracefs, UPROBE_GROUP);
	st.twin_breakpoints = count_breakpoints(st.twin.p);
	st.pinned_breakpoints = count_breakpoints(st.pinned.p);
	st.trigger_ran = st.twin_breakpoints == N_PROBES;
	snprintf(st.trigger_note, sizeof(st.trigger_note),
		 "%d uprobes enabled: breakpoints in %lld of %d probed pages of the unpinned twin "
		 "mapping, in %lld of the pinned one", st.probes, st.twin_breakpoints, N_PROBES,
		 st.pinned_breakpoints);
}

/* a MAP_PRIVATE PROT_READ|PROT_EXEC mapping of the file, faulted in */
static unsigned char *map_file(int fd, size_t size)
{
	unsigned char *p = mmap(NULL, size, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
	volatile unsigned char sink = 0;

	if (p == MAP_FAILED)
		fail_errno(errno, "mmap(%s, PROT_READ|PROT_EXEC, MAP_PRIVATE)", co.file);
	for (size_t i = 0; i < size; i += PR_BLOCK)
		sink ^= p[i];
	(void)sink;
	return p;
}

/* ------------------------------------------------------------------ */
/* fork                                                                 */

static const char marker_child[8] = "CHILDWR!";
static const char marker_parent[8] = "PARENTWR";

static void write_markers(unsigned char *p, size_t npages, const char m[8])
{
	for (size_t i = 0; i < npages; i++)
		memcpy(p + i * PR_BLOCK, m, 8);
}

static bool read_all(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

static bool write_all(int fd, const void *buf, size_t len)
{
	return write(fd, buf, len) == (ssize_t)len;
}

/*
 * The child: (child-write) write markers, say ready, wait for the parent's
 * device write, then look at its own view of the region.
 */
static void child_main(int to_parent, int from_parent, const unsigned char *orig, const unsigned char *dev,
		       bool child_writes, bool observe)
{
	struct child_view v = { .mapped = 1 };
	char go;

	if (!observe) {          /* fork-ro-pin: only keep the pages shared until the parent is done */
		if (!write_all(to_parent, "r", 1) || !read_all(from_parent, &go, 1))
			_exit(3);
		_exit(0);
	}

	/* still mapped in the child?  (libibverbs' fork support would MADV_DONTFORK it) */
	if (msync(st.pinned.p, st.pinned.npages * PR_BLOCK, MS_ASYNC) != 0)
		v.mapped = 0;
	if (v.mapped && child_writes)
		write_markers(st.pinned.p, st.pinned.npages, marker_child);
	if (!write_all(to_parent, "r", 1) || !read_all(from_parent, &go, 1))
		_exit(3);
	if (v.mapped) {
		snap(&st.pinned, M_AFTER_WRITE);
		v.pfn_changed = count_changed(&st.pinned, M_AFTER_PIN, M_AFTER_WRITE);
		for (size_t i = 0; i < st.pinned.npages; i++) {
			const unsigned char *pg = st.pinned.p + i * PR_BLOCK;
			bool exp = child_writes
				? !memcmp(pg, marker_child, 8) && !memcmp(pg + 8, orig + i * PR_BLOCK + 8, PR_BLOCK - 8)
				: !memcmp(pg, orig + i * PR_BLOCK, PR_BLOCK);
			if (!memcmp(pg, dev + i * PR_BLOCK, PR_BLOCK))
				v.device++;
			else if (exp)
				v.expected++;
			else
				v.other++;
		}
	} else {
		v.pfn_changed = -1;
	}
	if (!write_all(to_parent, &v, sizeof(v)))
		_exit(4);
	_exit(0);
}

static int p2c[2] = { -1, -1 }, c2p[2] = { -1, -1 };

/* fork a child (child_main), wait until it is ready; its pid */
static pid_t start_child(const unsigned char *orig, const unsigned char *dev, bool child_writes, bool observe)
{
	pid_t child;
	char ready;

	st.fork_init = (int)ibv_is_fork_initialized();
	if (pipe(p2c) != 0 || pipe(c2p) != 0)
		fail_errno(errno, "pipe");
	fflush(NULL);
	child = fork();
	if (child < 0)
		fail_errno(errno, "fork");
	if (child == 0) {
		close(p2c[1]);
		close(c2p[0]);
		child_main(c2p[1], p2c[0], orig, dev, child_writes, observe);
	}
	close(p2c[0]);
	close(c2p[1]);
	if (!read_all(c2p[0], &ready, 1))
		fail("the child died before it was ready");
	return child;
}

/* ------------------------------------------------------------------ */

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

int main(int argc, char **argv)
{
	struct ibv_mr *mr, *src_mr, *chk_mr;
	unsigned char *orig, *src, *chk;
	size_t size, npages;
	pid_t child = -1;
	bool read_only = false;      /* the device only reads: its data is what it reads back */

	co.size = HPAGE;
	program_start(&prog, &co, argc, argv);
	if (opt.trigger < 0)
		usage_fail(usage, "--trigger NAME is required");
	if (co.size % HPAGE)
		usage_fail(usage, "--size must be a multiple of 2M (one huge page): %" PRIu64, co.size);
	if ((opt.trigger == T_UPROBE) != (co.file && *co.file))
		usage_fail(usage, "--file PATH is for (and required by) --trigger uprobe");
	main_pid = getpid();
	atexit(restore_knobs);
	size = (size_t)co.size;
	npages = size / PR_BLOCK;
	R.size = co.size;
	R.file = "";
	st.expect_process = opt.trigger == T_DONTNEED ? "zero" : "device";
	st.use_twin = opt.trigger == T_KSM || opt.trigger == T_KHUGEPAGED || opt.trigger == T_MIGRATE ||
		      opt.trigger == T_UPROBE || opt.trigger == T_PAGEOUT;
	if (opt.trigger == T_CONTROL || opt.trigger == T_DONTNEED || opt.trigger == T_FORK_CHILD ||
	    opt.trigger == T_FORK_PARENT || opt.trigger == T_FORK_RO_PIN || opt.trigger == T_MPROTECT)
		st.trigger_ran = true;   /* done by this program itself, no witness needed */
	read_only = opt.trigger == T_UPROBE || opt.trigger == T_FORK_RO_PIN;

	st.memlock = raise_memlock();
	rdma_loop_open(&st.l, co.device, opt.port, opt.gid_index, co.timeout);
	rdma_loop_connect(&st.l);

	/* 1. the regions: pattern A (KSM: every page the same, so that merging is possible) */
	orig = malloc(size);
	src = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	chk = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!orig || src == MAP_FAILED || chk == MAP_FAILED)
		fail_errno(errno ? errno : ENOMEM, "allocating the source/check buffers");
	if (opt.trigger == T_KSM)
		for (size_t i = 0; i < npages; i++)
			pattern_fill(orig + i * PR_BLOCK, co.seed, TAG_A, 0, PR_BLOCK);
	else
		pattern_fill(orig, co.seed, TAG_A, 0, size);
	pattern_fill(src, co.seed, TAG_B, 0, size);
	memset(chk, 0, size);

	if (opt.trigger == T_UPROBE) {
		int fd;
		for (int i = 0; i < N_PROBES; i++)
			orig[(size_t)i * PR_BLOCK] = 0x90;          /* a NOP: an instruction uprobes accept */
		fd = open(co.file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
		if (fd < 0)
			fail_errno(errno, "open(%s)", co.file);
		if (pwrite_all(fd, orig, size, 0) != 0 || fsync(fd) != 0)
			fail_errno(errno, "write(%s)", co.file);
		R.file = co.file;
		st.pinned = (struct region){ .name = "pinned", .p = map_file(fd, size), .npages = npages };
		st.twin = (struct region){ .name = "twin", .p = map_file(fd, size), .npages = npages };
		close(fd);
	} else {
		st.pinned = (struct region){ .name = "pinned", .p = map_region(size), .npages = npages };
		memcpy(st.pinned.p, orig, size);
		if (st.use_twin) {
			st.twin = (struct region){ .name = "twin", .p = map_region(size), .npages = npages };
			memcpy(st.twin.p, orig, size);
		}
	}
	stage("mapped", st.pinned.p);
	snap_all(M_BEFORE_PIN);

	/* fork-ro-pin: the child shares the pages (COW) before the pin */
	if (opt.trigger == T_FORK_RO_PIN)
		child = start_child(orig, src, false, false);

	/* 2. the long-term pin */
	errno = 0;
	mr = ibv_reg_mr(st.l.pd, st.pinned.p, size, read_only ? IBV_ACCESS_REMOTE_READ :
			IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
	if (!mr) {
		report_pin_refused(errno, "ibv_reg_mr", st.pinned.p);
		report_emit();
		return 0;
	}
	R.pin = "granted";
	stage("registered", st.pinned.p);
	snap_all(M_AFTER_PIN);
	errno = 0;
	src_mr = ibv_reg_mr(st.l.pd, src, size, IBV_ACCESS_LOCAL_WRITE);
	chk_mr = ibv_reg_mr(st.l.pd, chk, size, IBV_ACCESS_LOCAL_WRITE);
	if (!src_mr || !chk_mr)
		fail_errno(errno ? errno : ENOMEM, "ibv_reg_mr(source/check buffer)");

	/* 3. the trigger */
	switch (opt.trigger) {
	case T_FORK_RO_PIN:
		write_markers(st.pinned.p, npages, marker_parent);
		for (size_t i = 0; i < npages; i++)
			memcpy(orig + i * PR_BLOCK, marker_parent, 8);
		snprintf(st.trigger_note, sizeof(st.trigger_note), "forked child %d before a read-only pin; "
			 "the parent wrote a marker into every page", (int)child);
		break;
	case T_MPROTECT:
		if (mprotect(st.pinned.p, size, PROT_READ) != 0 ||
		    mprotect(st.pinned.p, size, PROT_READ | PROT_WRITE) != 0)
			fail_errno(errno, "mprotect");
		write_markers(st.pinned.p, npages, marker_parent);
		for (size_t i = 0; i < npages; i++)
			memcpy(orig + i * PR_BLOCK, marker_parent, 8);
		snprintf(st.trigger_note, sizeof(st.trigger_note), "mprotect(PROT_READ) and back to "
			 "PROT_READ|PROT_WRITE, then the process wrote a marker into every page");
		break;
	case T_FORK_CHILD:
	case T_FORK_PARENT: {
		child = start_child(orig, src, opt.trigger == T_FORK_CHILD, true);
		st.have_child = true;
		if (opt.trigger == T_FORK_PARENT) {
			write_markers(st.pinned.p, npages, marker_parent);
			for (size_t i = 0; i < npages; i++)
				memcpy(orig + i * PR_BLOCK, marker_parent, 8);
		}
		snprintf(st.trigger_note, sizeof(st.trigger_note), "forked child %d; %s wrote a marker into every page",
			 (int)child, opt.trigger == T_FORK_CHILD ? "the child" : "the parent");
		break;
	}
	case T_KSM:
		trigger_ksm(size);
		break;
	case T_KHUGEPAGED:
		trigger_khugepaged(size);
		break;
	case T_MIGRATE:
		trigger_migrate();
		break;
	case T_UPROBE:
		trigger_uprobe();
		break;
	case T_PAGEOUT:
		trigger_pageout(size);
		if (st.skip[0])
			break;
		write_markers(st.pinned.p, npages, marker_parent);
		for (size_t i = 0; i < npages; i++)
			memcpy(orig + i * PR_BLOCK, marker_parent, 8);
		break;
	case T_DONTNEED:
		if (madvise(st.pinned.p, size, MADV_DONTNEED) != 0)
			fail_errno(errno, "madvise(MADV_DONTNEED)");
		snprintf(st.trigger_note, sizeof(st.trigger_note), "MADV_DONTNEED on the pinned range");
		break;
	default:
		break;
	}
	stage("triggered", st.pinned.p);
	snap_all(M_AFTER_TRIGGER);
	if (st.skip[0]) {
		pr_log("skip: %s", st.skip);
		restore_knobs();
		report_emit();
		return 0;
	}
	{
		size_t n = strlen(st.trigger_note);
		long long changed = count_changed(&st.pinned, M_AFTER_PIN, M_AFTER_TRIGGER);
		snprintf(st.trigger_note + n, sizeof(st.trigger_note) - n,
			 "%spinned region: %lld of %zu PFNs changed or unmapped, %lld KSM pages, %lld kB AnonHugePages",
			 n ? "; " : "", changed, npages, count_flag(&st.pinned, M_AFTER_TRIGGER, KPF_KSM_BIT),
			 st.pinned.anon_huge_kb[M_AFTER_TRIGGER]);
	}
	pr_log("trigger %s: %s", trigger_names[opt.trigger], st.trigger_note);

	/* 4. the device writes B through the pin (a read-only pin: it only reads), reads the MR back */
	if (!read_only) {
		st.rdma_write_status = rdma_loop_xfer(&st.l, IBV_WR_RDMA_WRITE, src, src_mr->lkey,
						      (uintptr_t)st.pinned.p, mr->rkey, size);
		if (st.rdma_write_status)
			fail("RDMA WRITE through the pin failed: %s", st.rdma_write_status);
		st.rdma_write_status = "success";
	}
	st.rdma_read_status = rdma_loop_xfer(&st.l, IBV_WR_RDMA_READ, chk, chk_mr->lkey,
					     (uintptr_t)st.pinned.p, mr->rkey, size);
	if (st.rdma_read_status)
		fail("RDMA READ of the MR failed: %s", st.rdma_read_status);
	st.rdma_read_status = "success";
	stage("rdma_write_b", st.pinned.p);

	/* 5. what does the process see? (reading faults in zero pages after DONTNEED) */
	for (size_t i = 0; i < npages; i++) {
		const unsigned char *pg = st.pinned.p + i * PR_BLOCK;
		const unsigned char *b = (read_only ? chk : src) + i * PR_BLOCK;
		bool is_dev = !memcmp(pg, b, PR_BLOCK);
		bool is_zero = !is_dev && all_zero(pg, PR_BLOCK);
		bool ok = st.expect_process[0] == 'z' ? is_zero : is_dev;

		if (is_dev)
			st.proc_device++;
		else if (is_zero)
			st.proc_zero++;
		else if (!memcmp(pg, orig + i * PR_BLOCK, PR_BLOCK))
			st.proc_original++;
		else
			st.proc_other++;
		st.proc_matches_devview += !memcmp(pg, chk + i * PR_BLOCK, PR_BLOCK);
		st.devview_device += !memcmp(chk + i * PR_BLOCK, b, PR_BLOCK);
		if (!ok) {
			st.mismatched++;
			if (st.first_mismatch < 0)
				st.first_mismatch = (long long)i;
		}
	}
	st.checked = true;
	snap_all(M_AFTER_WRITE);
	pr_log("process sees device data in %lld of %zu pages (%lld original, %lld zero, %lld other); "
	       "device view holds its data in %lld", st.proc_device, npages, st.proc_original, st.proc_zero,
	       st.proc_other, st.devview_device);

	if (child > 0) {
		int status;
		if (!write_all(p2c[1], "g", 1) ||
		    (st.have_child && !read_all(c2p[0], &st.child, sizeof(st.child))))
			fail("the child died before it reported its view");
		if (waitpid(child, &status, 0) == child)
			st.child_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		pr_log("child sees device data in %lld pages, its own data in %lld, other %lld (mapped %d)",
		       st.child.device, st.child.expected, st.child.other, st.child.mapped);
	}

	ibv_dereg_mr(mr);
	ibv_dereg_mr(src_mr);
	ibv_dereg_mr(chk_mr);
	stage("deregistered", st.pinned.p);
	uprobe_cleanup();
	zram_cleanup();
	restore_knobs();
	report_emit();
	rdma_loop_close(&st.l);
	return 0;
}
