/* SPDX-License-Identifier: MIT */
/*
 * crash-class: drive clean, long-term pinned file pages through what can strip or move them,
 * then write through the pin and unpin with dirtying (issue 15 item 4: "a page dirtied through
 * a pin after the filesystem let go of it" -- the ext4 "page without buffers" reports).
 *
 *   1. join a memory cgroup of its own (/sys/fs/cgroup/pinrig-crash, created once per boot and
 *      left in place): memcg reclaim then reaches this program's page cache; run on CPU 0 (the LRU pagevecs are local);
 *      reset the kernel's WARN_ON_ONCE state (debugfs clear_warn_once) so this case's warnings
 *      are printed even when an earlier case in the same boot hit the same one
 *   2. MAP_SHARED --file, the CPU writes pattern A, fsync: the pages are clean, write-protected
 *      and (ext4) have clean buffer heads attached
 *   3. register a writable MR on the mapping: the long-term pin; a refusal is a valid outcome
 *      (reported, exit 0, the file keeps A); fsync again: the pin faulted the pages for
 *      write (dirty again), writeback cleans and write-protects them
 *   4. ONE --trigger:
 *        control         nothing
 *        reclaim         memcg reclaim of the cgroup, --rounds times: memory.reclaim (5.19+) of
 *                        --size bytes, else memory.high set to 0 and back to max (reclaims
 *                        synchronously down to the limit)
 *        munmap-reclaim  munmap the mapping first (the pin stays), then as reclaim
 *        pageout         MADV_PAGEOUT of the mapping, --rounds times
 *        compact         1 > /proc/sys/vm/compact_memory, --rounds times
 *        migrate         move_pages() of every page to the other NUMA node (numa=fake=2);
 *                        the per-page status codes are recorded
 *        drop-caches     munmap the mapping first (the pin stays), then sync, 1 and 3 >
 *                        /proc/sys/vm/drop_caches, --rounds times
 *        truncate        ftruncate to 0 and back to --size
 *        punch           fallocate(PUNCH_HOLE|KEEP_SIZE) over the whole file
 *        splice-steal    a FUSE file system served by this program (a thread on /dev/fuse)
 *                        answers every READ by splicing the pinned file's page cache pages
 *                        into /dev/fuse with SPLICE_F_MOVE: FUSE tries to steal each page
 *                        (fuse_try_move_page -> page_cache_pipe_buf_try_steal), which
 *                        releases the page's buffers before remove_mapping() refuses the
 *                        pinned page; the program reads the FUSE file once
 *   5. RDMA WRITE pattern B through the pin (loopback RC QP, rdma_loop.c)
 *   6. deregister the MR: the kernel unpins with dirtying (set_page_dirty_lock)
 *   7. fsync; read the file back buffered (what the page cache holds) and with O_DIRECT (what
 *      the medium holds): blocks with the device's data (B), the old data (A), zeros, other
 *
 * Evidence: the PFN of every pinned page (/proc/self/pagemap while mapped), and at each stage
 * the /proc/kpageflags and /proc/kpagecount of those PFNs (PRIVATE = buffer heads / iomap state
 * attached, DIRTY, LRU, MMAP ...) plus the PFN the mapping now points at; the trigger's own
 * return codes, memory.current around it, /proc/vmstat deltas, move_pages statuses.
 * "expected" is what the file must hold afterwards: B, or zeros after truncate/punch (the
 * device then writes into pages the file no longer has -- documented semantics).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cli.h"
#include "rdma_loop.h"
#include "report.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MPOL_MF_MOVE
#define MPOL_MF_MOVE (1 << 1)
#endif
#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif

#define CGROOT "/sys/fs/cgroup"
#define MAX_SNAPS 8
#define MAX_ROUNDS 32
#define STATUS_KINDS 8

static struct common_opts co = COMMON_OPTS_DEFAULTS;

static const char *const triggers[] = {
	"control", "reclaim", "munmap-reclaim", "pageout", "compact", "migrate", "drop-caches",
	"truncate", "punch", "splice-steal",
};
#define N_TRIGGERS (sizeof(triggers) / sizeof(triggers[0]))

/* the kpageflags bits counted per stage (bit, JSON name) */
static const struct { int bit; const char *name; } counted[] = {
	{ 35, "private" }, { 4, "dirty" }, { 5, "lru" }, { 6, "active" }, { 11, "mmap" },
	{ 3, "uptodate" }, { 8, "writeback" }, { 2, "referenced" }, { 9, "reclaim" },
	{ 18, "unevictable" }, { 33, "mlocked" }, { 34, "mappedtodisk" }, { 10, "buddy" },
	{ 15, "compound_head" }, { 16, "compound_tail" }, { 20, "nopage" },
};
#define N_COUNTED (sizeof(counted) / sizeof(counted[0]))

/* /proc/vmstat counters whose change over the trigger is reported */
static const char *const vm_keys[] = {
	"pgmigrate_success", "pgmigrate_fail", "compact_isolated", "compact_migrate_scanned",
	"compact_stall", "pgsteal_direct", "pgsteal_kswapd", "pgscan_direct", "pgscan_kswapd",
	"pgdeactivate", "pgactivate", "pgrotated", "nr_file_pages", "nr_mapped", "nr_dirty",
	"pginodesteal", "slabs_scanned", "drop_pagecache", "drop_slab", "pgsteal_anon",
	"pgsteal_file", "pgscan_file", "workingset_refault_file", "thp_migration_fail",
};
#define N_VM (sizeof(vm_keys) / sizeof(vm_keys[0]))

struct snap {
	char name[32];
	double t;
	bool mapped;             /* the mapping still existed (pfn_now meaningful) */
	uint64_t *flags;         /* kpageflags of the pinned PFN, per page (0 = unreadable) */
	int64_t *count;          /* kpagecount (mapcount) of the pinned PFN, -1 = unreadable */
	uint64_t *pfn_now;       /* PFN the mapping points at now, 0 = not present */
	size_t readable;         /* pages whose kpageflags could be read */
	long long foll_acq, foll_rel;
};

struct round {
	int ret;                 /* 0 or the errno of the call */
	long long before, after; /* memory.current (reclaim), -1 = n/a */
};

static struct {
	const char *trigger;
	int rounds;
	int sleep_ms;
} opt = { .trigger = "control", .rounds = 0 };

static struct {
	struct rdma_loop rl;
	size_t npages;
	uint64_t *pfn;           /* the pinned PFNs (at registration) */
	struct snap snaps[MAX_SNAPS];
	int nsnaps;
	char cg[96];             /* our cgroup ("" = none) */
	char cg_note[200];
	bool warn_once_cleared;
	char warn_once_note[120];
	bool cpu0;
	/* trigger */
	bool trigger_ran;
	char trigger_note[400];
	char method[64];
	struct round rounds[MAX_ROUNDS];
	int nrounds;
	bool unmapped;
	long long vm_before[N_VM], vm_after[N_VM];
	/* migrate */
	int nodes, src_node, target_node;
	long mig_ret;
	int mig_errno;
	int *mig_status;         /* per page (-1000 = not reported) */
	int *node_after;         /* per page, node after the move (-1000 = not reported) */
	/* truncate / punch */
	int trunc_ret[2];
	/* splice-steal */
	bool fuse_used;
	int fuse_minor;
	long fuse_reads, fuse_read_pages, fuse_splice_short;
	long long fuse_client_bytes, fuse_client_a_blocks;
	int fuse_err;
	/* later steps */
	const char *rdma_status;
	int dereg_ret;
	int fsync_ret;
	bool expect_zero;
	/* read-back: [0] buffered, [1] O_DIRECT; new/old/zero/other */
	long long rb[2][4];
	int rb_errno[2];
	char skip[400];
	long long memlock;
} st = { .memlock = -2, .src_node = -1, .target_node = -1, .dereg_ret = -1, .fsync_ret = -1,
	 .rb = { { -1, -1, -1, -1 }, { -1, -1, -1, -1 } } };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: crash-class --file PATH --trigger NAME [--rounds N] [--size BYTES] [--seed N]\n"
		"                   [--device NAME] [--timeout SECONDS]\n"
		"  Pin a clean MAP_SHARED file mapping as a writable RDMA MR, apply one trigger that may\n"
		"  strip or move the pinned pages, RDMA WRITE through the pin, deregister (unpin with\n"
		"  dirtying), fsync, read back. Triggers: control reclaim munmap-reclaim pageout compact\n"
		"  migrate drop-caches truncate punch splice-steal. --rounds: how often the trigger repeats (reclaim 8,\n"
		"  pageout 4, compact 2, drop-caches 2 by default; 1..32).\n");
}

/* ------------------------------------------------------------------ */
/* small file helpers                                                   */

static int write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;
	int e;

	if (fd < 0)
		return errno;
	n = write(fd, val, strlen(val));
	e = n == (ssize_t)strlen(val) ? 0 : (n < 0 ? errno : EIO);
	close(fd);
	return e;
}

static long long read_ll(const char *path)
{
	FILE *f = fopen(path, "re");
	long long v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%lld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static void vm_read(long long out[N_VM])
{
	FILE *f = fopen("/proc/vmstat", "re");
	char key[128];
	long long val;

	for (size_t i = 0; i < N_VM; i++)
		out[i] = -1;
	if (!f)
		return;
	while (fscanf(f, "%127s %lld", key, &val) == 2)
		for (size_t i = 0; i < N_VM; i++)
			if (!strcmp(key, vm_keys[i]))
				out[i] = val;
	fclose(f);
}

/* ------------------------------------------------------------------ */
/* environment: cgroup, CPU, warn-once                                 */

static void leave_cgroup(void)
{
	char path[300];

	if (!st.cg[0])
		return;
	snprintf(path, sizeof(path), "%d\n", getpid());
	write_file(CGROOT "/cgroup.procs", path);
	/* the cgroup stays: removing it (and creating the next) flips the memcg socket static
	 * key each time, and under TCG a flip once left a stale int3 in sk_forced_mem_schedule
	 * for another CPU to hit (seen on debian-6.12: "Oops: int3" in sshd) */
	st.cg[0] = '\0';
}

static void join_cgroup(void)
{
	char path[300], pid[32];
	int e;

	e = write_file(CGROOT "/cgroup.subtree_control", "+memory");
	if (e) {
		snprintf(st.cg_note, sizeof(st.cg_note), "+memory > %s/cgroup.subtree_control: %s",
			 CGROOT, errno_name(e));
		return;
	}
	snprintf(st.cg, sizeof(st.cg), CGROOT "/pinrig-crash");
	if (mkdir(st.cg, 0755) != 0 && errno != EEXIST) {
		snprintf(st.cg_note, sizeof(st.cg_note), "mkdir %s: %s", st.cg, errno_name(errno));
		st.cg[0] = '\0';
		return;
	}
	snprintf(path, sizeof(path), "%s/cgroup.procs", st.cg);
	snprintf(pid, sizeof(pid), "%d\n", getpid());
	e = write_file(path, pid);
	if (e) {
		snprintf(st.cg_note, sizeof(st.cg_note), "joining %s: %s", st.cg, errno_name(e));
		st.cg[0] = '\0';
		return;
	}
	atexit(leave_cgroup);
}

static void pin_cpu0(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	st.cpu0 = sched_setaffinity(0, sizeof(set), &set) == 0;
}

static void clear_warn_once(void)
{
	const char *p = "/sys/kernel/debug/clear_warn_once";
	int e;

	if (access(p, F_OK) != 0)
		mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);
	e = write_file(p, "1");
	st.warn_once_cleared = e == 0;
	if (e)
		snprintf(st.warn_once_note, sizeof(st.warn_once_note), "%s: %s", p, errno_name(e));
}

/* ------------------------------------------------------------------ */
/* evidence: PFNs and page flags                                       */

static void read_pagemap(const unsigned char *map, uint64_t *pfn)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t *ents = calloc(st.npages, 8);

	memset(pfn, 0, st.npages * 8);
	if (fd >= 0 && ents && map &&
	    pread(fd, ents, st.npages * 8, (off_t)((uintptr_t)map / PR_BLOCK) * 8) ==
	    (ssize_t)(st.npages * 8)) {
		for (size_t i = 0; i < st.npages; i++)
			pfn[i] = (ents[i] >> 63) ? (ents[i] & ((1ULL << 55) - 1)) : 0;
	}
	if (fd >= 0)
		close(fd);
	free(ents);
}

static void snapshot(const char *name, const unsigned char *map)
{
	struct snap *s;
	int kf, kc;
	long long v[VM_NR];

	if (st.nsnaps >= MAX_SNAPS || !st.pfn)
		return;
	s = &st.snaps[st.nsnaps++];
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->t = now_s();
	s->flags = calloc(st.npages, 8);
	s->count = calloc(st.npages, 8);
	s->pfn_now = calloc(st.npages, 8);
	if (!s->flags || !s->count || !s->pfn_now)
		fail("out of memory");
	s->mapped = map != NULL;
	if (map)
		read_pagemap(map, s->pfn_now);
	kf = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	kc = open("/proc/kpagecount", O_RDONLY | O_CLOEXEC);
	for (size_t i = 0; i < st.npages; i++) {
		uint64_t pfn = st.pfn[i];
		s->count[i] = -1;
		if (!pfn)
			continue;
		if (kf < 0 || pread(kf, &s->flags[i], 8, (off_t)(pfn * 8)) != 8)
			s->flags[i] = 0;
		else
			s->readable++;
		if (kc >= 0) {
			uint64_t c;
			if (pread(kc, &c, 8, (off_t)(pfn * 8)) == 8)
				s->count[i] = (int64_t)c;
		}
	}
	if (kf >= 0)
		close(kf);
	if (kc >= 0)
		close(kc);
	vmstat_snapshot(v);
	s->foll_acq = v[VM_PIN_ACQ];
	s->foll_rel = v[VM_PIN_REL];
	{
		size_t priv = 0, dirty = 0;
		for (size_t i = 0; i < st.npages; i++) {
			priv += (s->flags[i] >> 35) & 1;
			dirty += (s->flags[i] >> 4) & 1;
		}
		pr_log("stage %s: %zu of %zu pinned pages PRIVATE, %zu DIRTY", name, priv, st.npages, dirty);
	}
}

/* ------------------------------------------------------------------ */
/* triggers                                                             */

static void memcg_reclaim(void)
{
	char path[300], hpath[300], cur[300], amount[32];
	bool have_reclaim;

	if (!st.cg[0]) {
		snprintf(st.skip, sizeof(st.skip), "no memory cgroup of its own (%s)", st.cg_note);
		return;
	}
	snprintf(path, sizeof(path), "%s/memory.reclaim", st.cg);
	snprintf(hpath, sizeof(hpath), "%s/memory.high", st.cg);
	snprintf(cur, sizeof(cur), "%s/memory.current", st.cg);
	have_reclaim = access(path, F_OK) == 0;
	snprintf(st.method, sizeof(st.method), "%s", have_reclaim ? "memory.reclaim" : "memory.high");
	snprintf(amount, sizeof(amount), "%" PRIu64, co.size);
	for (int r = 0; r < opt.rounds; r++) {
		struct round *rd = &st.rounds[st.nrounds++];
		rd->before = read_ll(cur);
		if (have_reclaim) {
			rd->ret = write_file(path, amount);
		} else {
			rd->ret = write_file(hpath, "0");
			write_file(hpath, "max");
		}
		rd->after = read_ll(cur);
		/* EAGAIN: memory.reclaim could not reclaim all it was asked to -- it did run */
		if (rd->ret == 0 || rd->ret == EAGAIN)
			st.trigger_ran = true;
	}
	if (!st.trigger_ran)
		snprintf(st.skip, sizeof(st.skip), "memcg reclaim failed: %s (%s)",
			 errno_name(st.rounds[0].ret), st.method);
	snprintf(st.trigger_note, sizeof(st.trigger_note),
		 "%d x %s in %s: memory.current %lld -> %lld bytes", opt.rounds, st.method, st.cg,
		 st.rounds[0].before, st.rounds[st.nrounds - 1].after);
}

static void do_munmap(unsigned char **map)
{
	if (munmap(*map, co.size) != 0)
		fail_errno(errno, "munmap(the pinned mapping)");
	*map = NULL;
	st.unmapped = true;
}

static void trigger_pageout(unsigned char *map)
{
	int ok = 0;

	snprintf(st.method, sizeof(st.method), "madvise(MADV_PAGEOUT)");
	for (int r = 0; r < opt.rounds; r++) {
		struct round *rd = &st.rounds[st.nrounds++];
		rd->before = rd->after = -1;
		rd->ret = madvise(map, co.size, MADV_PAGEOUT) == 0 ? 0 : errno;
		ok += rd->ret == 0;
	}
	st.trigger_ran = ok > 0;
	if (!ok)
		snprintf(st.skip, sizeof(st.skip), "MADV_PAGEOUT refused: %s (kernel before 5.4?)",
			 errno_name(st.rounds[0].ret));
	snprintf(st.trigger_note, sizeof(st.trigger_note), "%d x MADV_PAGEOUT: %d returned 0",
		 opt.rounds, ok);
}

static void trigger_write_knob(const char *path, const char *vals[], int nvals, const char *what)
{
	int ok = 0;

	snprintf(st.method, sizeof(st.method), "%s", path);
	for (int r = 0; r < opt.rounds; r++) {
		for (int k = 0; k < nvals && st.nrounds < MAX_ROUNDS; k++) {
			struct round *rd = &st.rounds[st.nrounds++];
			rd->before = rd->after = -1;
			if (!strcmp(what, "drop-caches"))
				sync();
			rd->ret = write_file(path, vals[k]);
			ok += rd->ret == 0;
		}
	}
	st.trigger_ran = ok > 0;
	if (!ok)
		snprintf(st.skip, sizeof(st.skip), "writing %s failed: %s", path,
			 errno_name(st.rounds[0].ret));
	snprintf(st.trigger_note, sizeof(st.trigger_note), "%d write(s) to %s, %d succeeded",
		 st.nrounds, path, ok);
}

static int online_nodes(int *first, int *second)
{
	DIR *d = opendir("/sys/devices/system/node");
	struct dirent *e;
	int n = 0;

	*first = *second = -1;
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char path[300];
		int id;
		if (sscanf(e->d_name, "node%d", &id) != 1)
			continue;
		snprintf(path, sizeof(path), "/sys/devices/system/node/%s/cpulist", e->d_name);
		if (access(path, F_OK) != 0)
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

static void trigger_migrate(unsigned char *map)
{
	void **pages = calloc(st.npages, sizeof(void *));
	int *nodes = calloc(st.npages, sizeof(int));
	int first, second, moved = 0;

	st.mig_status = calloc(st.npages, sizeof(int));
	st.node_after = calloc(st.npages, sizeof(int));
	if (!pages || !nodes || !st.mig_status || !st.node_after)
		fail("out of memory");
	snprintf(st.method, sizeof(st.method), "move_pages(MPOL_MF_MOVE)");
	st.nodes = online_nodes(&first, &second);
	if (st.nodes < 2) {
		snprintf(st.skip, sizeof(st.skip),
			 "the guest has %d NUMA node(s): move_pages needs two (boot with numa=fake=2)",
			 st.nodes);
		free(pages);
		free(nodes);
		return;
	}
	/* where the pages are now: move_pages with nodes = NULL reports, moves nothing */
	for (size_t i = 0; i < st.npages; i++) {
		pages[i] = map + i * PR_BLOCK;
		st.mig_status[i] = -1000;
	}
	if (syscall(SYS_move_pages, 0, 1UL, pages, NULL, st.mig_status, 0) != 0 || st.mig_status[0] < 0)
		fail_errno(errno ? errno : EINVAL, "move_pages(query the node of the first page)");
	st.src_node = st.mig_status[0];
	st.target_node = st.src_node == first ? second : first;
	for (size_t i = 0; i < st.npages; i++) {
		nodes[i] = st.target_node;
		st.mig_status[i] = -1000;
		st.node_after[i] = -1000;
	}
	errno = 0;
	st.mig_ret = syscall(SYS_move_pages, 0, (unsigned long)st.npages, pages, nodes, st.mig_status,
			     MPOL_MF_MOVE);
	st.mig_errno = st.mig_ret < 0 ? errno : 0;
	st.rounds[st.nrounds++] = (struct round){ .ret = st.mig_errno, .before = -1, .after = -1 };
	syscall(SYS_move_pages, 0, (unsigned long)st.npages, pages, NULL, st.node_after, 0);
	for (size_t i = 0; i < st.npages; i++)
		moved += st.node_after[i] == st.target_node;
	/* move_pages returns the number of pages it could not move (>= 0) or -1 */
	st.trigger_ran = st.mig_ret >= 0 || st.mig_errno == ENOENT || st.mig_errno == EBUSY;
	if (!st.trigger_ran)
		snprintf(st.skip, sizeof(st.skip), "move_pages failed: %s", errno_name(st.mig_errno));
	snprintf(st.trigger_note, sizeof(st.trigger_note),
		 "move_pages node %d -> %d returned %ld%s%s: %d of %zu pages now on node %d",
		 st.src_node, st.target_node, st.mig_ret, st.mig_errno ? " " : "",
		 st.mig_errno ? errno_name(st.mig_errno) : "", moved, st.npages, st.target_node);
	free(pages);
	free(nodes);
}

static void trigger_truncate(int fd, bool punch)
{
	if (punch) {
		snprintf(st.method, sizeof(st.method), "fallocate(PUNCH_HOLE|KEEP_SIZE)");
		st.trunc_ret[0] = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
					    (off_t)co.size) == 0 ? 0 : errno;
		st.trunc_ret[1] = 0;
	} else {
		snprintf(st.method, sizeof(st.method), "ftruncate(0) + ftruncate(size)");
		st.trunc_ret[0] = ftruncate(fd, 0) == 0 ? 0 : errno;
		st.trunc_ret[1] = ftruncate(fd, (off_t)co.size) == 0 ? 0 : errno;
		if (st.trunc_ret[1])
			fail_errno(st.trunc_ret[1], "ftruncate(back to %" PRIu64 ")", co.size);
	}
	st.rounds[st.nrounds++] = (struct round){ .ret = st.trunc_ret[0], .before = -1, .after = -1 };
	st.trigger_ran = st.trunc_ret[0] == 0;
	st.expect_zero = st.trigger_ran;
	if (!st.trigger_ran)
		snprintf(st.skip, sizeof(st.skip), "%s failed: %s", st.method, errno_name(st.trunc_ret[0]));
	snprintf(st.trigger_note, sizeof(st.trigger_note), "%s: %s", st.method,
		 st.trunc_ret[0] ? errno_name(st.trunc_ret[0]) : "0");
}

/* ---- splice-steal: a FUSE server whose READ replies are spliced page cache pages ---- */

#define FUSE_DIR "/run/pinrig-fuse"
#define FUSE_NAME "f"
#define FUSE_BUFSZ (FUSE_MIN_READ_BUFFER + (1u << 20))

static struct {
	int dev;                 /* /dev/fuse */
	int src;                 /* the pinned file */
	pthread_mutex_t lock;
} fz = { .dev = -1, .src = -1, .lock = PTHREAD_MUTEX_INITIALIZER };

static void fz_error(int e)
{
	pthread_mutex_lock(&fz.lock);
	if (!st.fuse_err)
		st.fuse_err = e;
	pthread_mutex_unlock(&fz.lock);
}

static void fz_reply(uint64_t unique, int error, const void *arg, size_t len)
{
	struct fuse_out_header oh = { .len = (uint32_t)(sizeof(oh) + (arg ? len : 0)),
				      .error = error, .unique = unique };
	struct iovec iov[2] = { { &oh, sizeof(oh) }, { (void *)arg, len } };

	if (writev(fz.dev, iov, arg ? 2 : 1) < 0 && errno != ENOENT)
		fz_error(errno);
}

static void fz_attr(struct fuse_attr *a, uint64_t ino)
{
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->mode = ino == FUSE_ROOT_ID ? (S_IFDIR | 0755) : (S_IFREG | 0644);
	a->nlink = ino == FUSE_ROOT_ID ? 2 : 1;
	a->size = ino == FUSE_ROOT_ID ? 0 : co.size;
	a->blocks = a->size / 512;
	a->blksize = PR_BLOCK;
}

/*
 * READ: the reply header goes into a pipe by vmsplice, the data by splice() from the pinned
 * file (the pipe then holds references to its page cache pages, page_cache_pipe_buf_ops), and
 * the whole reply into /dev/fuse with SPLICE_F_MOVE, so fuse_copy_page() tries to move each
 * page-sized, page-aligned buffer into the FUSE file's page cache instead of copying it.
 */
static void fz_read(uint64_t unique, const struct fuse_read_in *in)
{
	uint64_t n = in->offset >= co.size ? 0 : in->size;
	struct fuse_out_header oh;
	struct iovec iov = { &oh, sizeof(oh) };
	loff_t off = (loff_t)in->offset;
	uint64_t left;
	int p[2];
	ssize_t w;

	if (n && in->offset + n > co.size)
		n = co.size - in->offset;
	if (pipe2(p, O_CLOEXEC) != 0) {
		fz_error(errno);
		fz_reply(unique, -EIO, NULL, 0);
		return;
	}
	/* the whole reply must fit: a READ is at most max_pages (32) pages + the header */
	if (fcntl(p[1], F_SETPIPE_SZ, 1 << 20) < 0)
		pr_log("F_SETPIPE_SZ(1M): %s", strerror(errno));
	oh = (struct fuse_out_header){ .len = (uint32_t)(sizeof(oh) + n), .error = 0, .unique = unique };
	if (vmsplice(p[1], &iov, 1, 0) != (ssize_t)sizeof(oh))
		goto fail;
	for (left = n; left;) {
		ssize_t r = splice(fz.src, &off, p[1], NULL, left, 0);
		if (r <= 0)
			goto fail;
		left -= (uint64_t)r;
	}
	w = splice(p[0], NULL, fz.dev, NULL, sizeof(oh) + n, SPLICE_F_MOVE);
	if (w != (ssize_t)(sizeof(oh) + n)) {
		if (w < 0)
			fz_error(errno);
		pthread_mutex_lock(&fz.lock);
		st.fuse_splice_short++;
		pthread_mutex_unlock(&fz.lock);
	}
	pthread_mutex_lock(&fz.lock);
	st.fuse_reads++;
	st.fuse_read_pages += (long)(n / PR_BLOCK);
	pthread_mutex_unlock(&fz.lock);
	close(p[0]);
	close(p[1]);
	return;
fail:
	fz_error(errno ? errno : EIO);
	close(p[0]);
	close(p[1]);
	fz_reply(unique, -EIO, NULL, 0);
}

/* end the FUSE connection (its waiting client gets ENOTCONN instead of hanging forever) */
static void fz_abort(void)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[1024], path[128];
	unsigned maj, min;
	bool found = false;

	if (!f)
		return;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, " " FUSE_DIR " ") && sscanf(line, "%*u %*u %u:%u", &maj, &min) == 2;
	fclose(f);
	if (!found)
		return;
	if (access("/sys/fs/fuse/connections", F_OK) == 0)
		mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, NULL);
	snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%u/abort", min);
	pr_log("FUSE server gave up: aborting the connection (%s): %s", path,
	       strerror(write_file(path, "1")));
}

static void *fz_serve(void *arg)
{
	char *buf = malloc(FUSE_BUFSZ);

	(void)arg;
	if (!buf)
		return NULL;
	for (;;) {
		ssize_t n = read(fz.dev, buf, FUSE_BUFSZ);
		struct fuse_in_header *ih = (struct fuse_in_header *)buf;
		void *in = ih + 1;

		if (n < 0 && (errno == EINTR || errno == ENOENT || errno == EAGAIN))
			continue;
		if (n < (ssize_t)sizeof(*ih)) {   /* ENODEV: unmounted */
			if (n < 0 && errno != ENODEV) {
				fz_error(errno);
				fz_abort();
			}
			pr_log("FUSE server: read(/dev/fuse) returned %zd (%s), exiting", n,
			       n < 0 ? errno_name(errno) : "short");
			break;
		}
		switch (ih->opcode) {
		case FUSE_INIT: {
			struct fuse_init_in *ii = in;
			struct fuse_init_out o;
			memset(&o, 0, sizeof(o));
			o.major = FUSE_KERNEL_VERSION;
			o.minor = ii->minor < FUSE_KERNEL_MINOR_VERSION ? ii->minor : FUSE_KERNEL_MINOR_VERSION;
			o.max_readahead = ii->max_readahead;
			o.max_write = 1u << 17;
			o.max_background = 16;
			o.congestion_threshold = 12;
			o.time_gran = 1;
			st.fuse_minor = (int)o.minor;
			fz_reply(ih->unique, 0, &o, sizeof(o));
			break;
		}
		case FUSE_LOOKUP: {
			struct fuse_entry_out e;
			if (ih->nodeid != FUSE_ROOT_ID || strcmp((char *)in, FUSE_NAME)) {
				fz_reply(ih->unique, -ENOENT, NULL, 0);
				break;
			}
			memset(&e, 0, sizeof(e));
			e.nodeid = 2;
			e.generation = 1;
			e.entry_valid = e.attr_valid = 3600;
			fz_attr(&e.attr, 2);
			fz_reply(ih->unique, 0, &e, sizeof(e));
			break;
		}
		case FUSE_GETATTR: {
			struct fuse_attr_out a;
			memset(&a, 0, sizeof(a));
			a.attr_valid = 3600;
			fz_attr(&a.attr, ih->nodeid);
			fz_reply(ih->unique, 0, &a, sizeof(a));
			break;
		}
		case FUSE_OPEN:
		case FUSE_OPENDIR: {
			struct fuse_open_out o;
			memset(&o, 0, sizeof(o));
			o.fh = 1;
			fz_reply(ih->unique, 0, &o, sizeof(o));
			break;
		}
		case FUSE_READ:
			fz_read(ih->unique, in);
			break;
		case FUSE_FLUSH:
		case FUSE_RELEASE:
		case FUSE_RELEASEDIR:
		case FUSE_DESTROY:
			fz_reply(ih->unique, 0, NULL, 0);
			break;
		case FUSE_FORGET:
		case FUSE_BATCH_FORGET:
		case FUSE_INTERRUPT:
			break;
		default:
			pr_log("FUSE server: opcode %u answered ENOSYS", ih->opcode);
			fz_reply(ih->unique, -ENOSYS, NULL, 0);
		}
	}
	free(buf);
	return NULL;
}

static void trigger_splice_steal(int fd)
{
	char opts[160], path[64];
	unsigned char *buf;
	pthread_t th;
	int cfd;

	snprintf(st.method, sizeof(st.method), "FUSE READ replies spliced with SPLICE_F_MOVE");
	st.fuse_used = true;
	if (access("/dev/fuse", F_OK) != 0 && system("modprobe fuse 2>/dev/null") != 0)
		pr_log("modprobe fuse failed");
	fz.dev = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fz.dev < 0) {
		snprintf(st.skip, sizeof(st.skip), "no /dev/fuse (%s): kernel without FUSE?",
			 errno_name(errno));
		return;
	}
	fz.src = fd;
	mkdir(FUSE_DIR, 0755);
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0", fz.dev);
	if (mount("pinrig", FUSE_DIR, "fuse", MS_NOSUID | MS_NODEV, opts) != 0) {
		snprintf(st.skip, sizeof(st.skip), "mount -t fuse %s: %s", FUSE_DIR, errno_name(errno));
		close(fz.dev);
		return;
	}
	if (pthread_create(&th, NULL, fz_serve, NULL) != 0)
		fail("pthread_create(FUSE server)");
	/* the client: read the FUSE file through its page cache (READ requests of whole pages) */
	snprintf(path, sizeof(path), "%s/%s", FUSE_DIR, FUSE_NAME);
	buf = malloc(co.size);
	cfd = open(path, O_RDONLY | O_CLOEXEC);
	if (!buf || cfd < 0) {
		st.fuse_err = cfd < 0 ? errno : ENOMEM;
	} else {
		ssize_t r;
		uint64_t got = 0;
		while (got < co.size && (r = read(cfd, buf + got, co.size - got)) > 0)
			got += (uint64_t)r;
		st.fuse_client_bytes = (long long)got;
		st.fuse_client_a_blocks = (long long)count_pattern_blocks(buf, co.seed, TAG_A, got & ~(uint64_t)(PR_BLOCK - 1));
	}
	if (cfd >= 0)
		close(cfd);
	free(buf);
	if (umount2(FUSE_DIR, MNT_DETACH) != 0)
		pr_log("umount %s: %s", FUSE_DIR, strerror(errno));
	pthread_join(th, NULL);
	close(fz.dev);
	rmdir(FUSE_DIR);
	st.rounds[st.nrounds++] = (struct round){ .ret = st.fuse_err, .before = -1, .after = -1 };
	st.trigger_ran = st.fuse_read_pages > 0;
	if (!st.trigger_ran && !st.skip[0])
		snprintf(st.skip, sizeof(st.skip), "the FUSE file was never read (%s)",
			 errno_name(st.fuse_err ? st.fuse_err : EIO));
	snprintf(st.trigger_note, sizeof(st.trigger_note),
		 "FUSE (protocol 7.%d) served %ld READ(s), %ld page(s) spliced with SPLICE_F_MOVE "
		 "(%ld short); the client read %lld bytes, %lld blocks of the old data%s%s",
		 st.fuse_minor, st.fuse_reads, st.fuse_read_pages, st.fuse_splice_short,
		 st.fuse_client_bytes, st.fuse_client_a_blocks, st.fuse_err ? "; error " : "",
		 st.fuse_err ? errno_name(st.fuse_err) : "");
}

static void trigger(unsigned char **map, int fd)
{
	const char *t = opt.trigger;

	vm_read(st.vm_before);
	if (!strcmp(t, "control")) {
		st.trigger_ran = true;
		snprintf(st.trigger_note, sizeof(st.trigger_note), "no trigger (control)");
	} else if (!strcmp(t, "reclaim")) {
		memcg_reclaim();
	} else if (!strcmp(t, "munmap-reclaim")) {
		do_munmap(map);
		memcg_reclaim();
	} else if (!strcmp(t, "pageout")) {
		trigger_pageout(*map);
	} else if (!strcmp(t, "compact")) {
		const char *one[] = { "1" };
		trigger_write_knob("/proc/sys/vm/compact_memory", one, 1, t);
	} else if (!strcmp(t, "migrate")) {
		trigger_migrate(*map);
	} else if (!strcmp(t, "drop-caches")) {
		const char *vals[] = { "1", "3" };
		do_munmap(map);
		trigger_write_knob("/proc/sys/vm/drop_caches", vals, 2, t);
	} else if (!strcmp(t, "truncate")) {
		trigger_truncate(fd, false);
	} else if (!strcmp(t, "punch")) {
		trigger_truncate(fd, true);
	} else if (!strcmp(t, "splice-steal")) {
		trigger_splice_steal(fd);
	}
	vm_read(st.vm_after);
	pr_log("trigger %s: %s", t, st.trigger_note);
}

/* ------------------------------------------------------------------ */
/* read-back                                                            */

static void classify(const unsigned char *buf, long long out[4])
{
	static const unsigned char zero[PR_BLOCK];

	memset(out, 0, 4 * sizeof(out[0]));
	for (size_t i = 0; i < st.npages; i++) {
		const unsigned char *p = buf + i * PR_BLOCK;
		uint64_t off = (uint64_t)i * PR_BLOCK;
		if (pattern_matches(p, co.seed, TAG_B, off, PR_BLOCK))
			out[0]++;
		else if (pattern_matches(p, co.seed, TAG_A, off, PR_BLOCK))
			out[1]++;
		else if (!memcmp(p, zero, PR_BLOCK))
			out[2]++;
		else
			out[3]++;
	}
}

static void read_back(void)
{
	unsigned char *buf;

	if (posix_memalign((void **)&buf, PR_BLOCK, co.size) != 0)
		fail("out of memory");
	for (int v = 0; v < 2; v++) {
		int fd = open(co.file, O_RDONLY | O_CLOEXEC | (v ? O_DIRECT : 0));
		ssize_t n = -1;
		if (fd >= 0) {
			memset(buf, 0xa5, co.size);
			n = pread(fd, buf, co.size, 0);
			st.rb_errno[v] = n < 0 ? errno : 0;
			close(fd);
		} else {
			st.rb_errno[v] = errno;
		}
		if (n == (ssize_t)co.size)
			classify(buf, st.rb[v]);
		else if (n >= 0)
			st.rb_errno[v] = EIO;      /* short read */
	}
	free(buf);
}

/* ------------------------------------------------------------------ */
/* JSON                                                                 */

static const char *status_name(int s, char *buf, size_t len)
{
	if (s == -1000)
		return "not-reported";
	if (s >= 0) {
		snprintf(buf, len, "node%d", s);
		return buf;
	}
	return errno_name(-s);
}

static void emit_status_hist(struct jbuf *j, const char *key, const int *status)
{
	char names[STATUS_KINDS][24];
	int counts[STATUS_KINDS], nk = 0;

	for (size_t i = 0; i < st.npages; i++) {
		char b[24];
		const char *nm = status_name(status[i], b, sizeof(b));
		int k;
		for (k = 0; k < nk; k++)
			if (!strcmp(names[k], nm))
				break;
		if (k == nk) {
			if (nk == STATUS_KINDS) {
				k = nk - 1;       /* fold the rest into the last kind */
			} else {
				snprintf(names[nk], sizeof(names[nk]), "%s", nm);
				counts[nk++] = 0;
			}
		}
		counts[k]++;
	}
	jb_key(j, key);
	jb_obj_open(j);
	for (int k = 0; k < nk; k++)
		jk_i64(j, names[k], counts[k]);
	jb_obj_close(j);
}

static void emit_snap(struct jbuf *j, const struct snap *s)
{
	size_t moved = 0, present = 0;
	long long mapsum = 0;

	jb_obj_open(j);
	jk_str(j, "stage", s->name);
	jk_dbl(j, "t", s->t);
	jk_bool(j, "mapped", s->mapped);
	jk_opt(j, "foll_pin_acquired", s->foll_acq);
	jk_opt(j, "foll_pin_released", s->foll_rel);
	jb_key(j, "counts");
	jb_obj_open(j);
	for (size_t b = 0; b < N_COUNTED; b++) {
		long long n = 0;
		for (size_t i = 0; i < st.npages; i++)
			n += (s->flags[i] >> counted[b].bit) & 1;
		jk_i64(j, counted[b].name, n);
	}
	for (size_t i = 0; i < st.npages; i++) {
		if (s->pfn_now[i]) {
			present++;
			moved += s->pfn_now[i] != st.pfn[i];
		}
		if (s->count[i] > 0)
			mapsum += s->count[i];
	}
	jk_i64(j, "readable", (long long)s->readable);
	jk_i64(j, "present", (long long)present);
	jk_i64(j, "pfn_changed", (long long)moved);
	jk_i64(j, "mapcount_sum", mapsum);
	jb_obj_close(j);
	jb_key(j, "flags");
	jb_arr_open(j);
	for (size_t i = 0; i < st.npages; i++)
		jb_hex(j, s->flags[i]);
	jb_arr_close(j);
	jb_key(j, "mapcount");
	jb_arr_open(j);
	for (size_t i = 0; i < st.npages; i++)
		jb_i64(j, s->count[i]);
	jb_arr_close(j);
	jb_key(j, "pfn_now");
	if (s->mapped) {
		jb_arr_open(j);
		for (size_t i = 0; i < st.npages; i++)
			jb_hex(j, s->pfn_now[i]);
		jb_arr_close(j);
	} else {
		jb_null(j);
	}
	jb_obj_close(j);
}

static void emit_readback(struct jbuf *j, const char *key, int v)
{
	static const char *const names[4] = { "device", "old", "zero", "other" };

	jb_key(j, key);
	if (st.rb[v][0] < 0 && !st.rb_errno[v]) {
		jb_null(j);
		return;
	}
	jb_obj_open(j);
	for (int k = 0; k < 4; k++)
		jk_opt(j, names[k], st.rb[v][k]);
	jk_str(j, "errno", st.rb_errno[v] ? errno_name(st.rb_errno[v]) : NULL);
	jb_obj_close(j);
}

static void extra(struct jbuf *j)
{
	jk_u64(j, "seed", co.seed);
	jk_memlock(j, st.memlock);
	jk_str(j, "device", st.rl.devname[0] ? st.rl.devname : co.device);
	jk_str(j, "skip", st.skip[0] ? st.skip : NULL);
	jb_key(j, "crash_class");
	jb_obj_open(j);
	jk_str(j, "trigger", opt.trigger);
	jk_bool(j, "trigger_ran", st.trigger_ran);
	jk_str(j, "trigger_note", st.trigger_note[0] ? st.trigger_note : NULL);
	jk_str(j, "method", st.method[0] ? st.method : NULL);
	jk_i64(j, "rounds", opt.rounds);
	jb_key(j, "round_results");
	jb_arr_open(j);
	for (int r = 0; r < st.nrounds; r++) {
		jb_obj_open(j);
		jk_str(j, "ret", st.rounds[r].ret ? errno_name(st.rounds[r].ret) : "0");
		jk_opt(j, "memory_current_before", st.rounds[r].before);
		jk_opt(j, "memory_current_after", st.rounds[r].after);
		jb_obj_close(j);
	}
	jb_arr_close(j);
	jk_bool(j, "unmapped_before_trigger", st.unmapped);
	jk_str(j, "cgroup", st.cg[0] ? st.cg : NULL);
	jk_str(j, "cgroup_note", st.cg_note[0] ? st.cg_note : NULL);
	jk_bool(j, "cpu0", st.cpu0);
	jk_bool(j, "warn_once_cleared", st.warn_once_cleared);
	jk_str(j, "warn_once_note", st.warn_once_note[0] ? st.warn_once_note : NULL);
	jb_key(j, "vmstat_delta");
	jb_obj_open(j);
	for (size_t i = 0; i < N_VM; i++)
		if (st.vm_before[i] >= 0 && st.vm_after[i] >= 0 && st.vm_after[i] != st.vm_before[i])
			jk_i64(j, vm_keys[i], st.vm_after[i] - st.vm_before[i]);
	jb_obj_close(j);
	if (st.mig_status) {
		jb_key(j, "migrate");
		jb_obj_open(j);
		jk_i64(j, "nodes", st.nodes);
		jk_i64(j, "from", st.src_node);
		jk_i64(j, "to", st.target_node);
		jk_i64(j, "ret", st.mig_ret);
		jk_str(j, "errno", st.mig_errno ? errno_name(st.mig_errno) : NULL);
		emit_status_hist(j, "status", st.mig_status);
		emit_status_hist(j, "node_after", st.node_after);
		jb_key(j, "status_per_page");
		jb_arr_open(j);
		for (size_t i = 0; i < st.npages; i++)
			jb_i64(j, st.mig_status[i]);
		jb_arr_close(j);
		jb_obj_close(j);
	}
	if (st.fuse_used) {
		jb_key(j, "fuse");
		jb_obj_open(j);
		jk_i64(j, "protocol_minor", st.fuse_minor);
		jk_i64(j, "reads", st.fuse_reads);
		jk_i64(j, "pages_spliced", st.fuse_read_pages);
		jk_i64(j, "short_splices", st.fuse_splice_short);
		jk_i64(j, "client_bytes", st.fuse_client_bytes);
		jk_i64(j, "client_old_blocks", st.fuse_client_a_blocks);
		jk_str(j, "errno", st.fuse_err ? errno_name(st.fuse_err) : NULL);
		jb_obj_close(j);
	}
	jk_str(j, "rdma_status", st.rdma_status);
	jk_i64(j, "dereg_ret", st.dereg_ret);
	jk_str(j, "fsync", st.fsync_ret < 0 ? NULL : st.fsync_ret ? errno_name(st.fsync_ret) : "0");
	jk_str(j, "expect", st.expect_zero ? "zero" : "device");
	emit_readback(j, "readback_cache", 0);
	emit_readback(j, "readback_medium", 1);
	jb_key(j, "pfns");
	if (st.pfn) {
		jb_arr_open(j);
		for (size_t i = 0; i < st.npages; i++)
			jb_hex(j, st.pfn[i]);
		jb_arr_close(j);
	} else {
		jb_null(j);
	}
	jb_key(j, "snapshots");
	jb_arr_open(j);
	for (int i = 0; i < st.nsnaps; i++)
		emit_snap(j, &st.snaps[i]);
	jb_arr_close(j);
	jb_obj_close(j);
}

static void own_opt(int c, const char *arg)
{
	size_t i;

	switch (c) {
	case 'T':
		for (i = 0; i < N_TRIGGERS; i++)
			if (!strcmp(arg, triggers[i]))
				break;
		if (i == N_TRIGGERS)
			usage_fail(usage, "--trigger must be one of control reclaim munmap-reclaim pageout "
				   "compact migrate drop-caches truncate punch splice-steal: '%s'", arg);
		opt.trigger = triggers[i];
		break;
	case 'R':
		opt.rounds = (int)cli_range("--rounds", arg, 1, MAX_ROUNDS / 2, "");
		break;
	}
}

static const struct option own_opts[] = {
	{ "trigger", required_argument, NULL, 'T' },
	{ "rounds", required_argument, NULL, 'R' },
	{ 0 }
};

static const struct program prog = {
	.name = "crash-class",
	.usage = usage,
	.extra = extra,
	.fault_handler = true,
	.stages = false,
	.expected = true,
	.common = CLI_FILE | CLI_SIZE | CLI_SEED | CLI_DEVICE | CLI_TIMEOUT,
	.own = own_opts,
	.own_opt = own_opt,
};

static int default_rounds(const char *t)
{
	if (!strcmp(t, "reclaim") || !strcmp(t, "munmap-reclaim"))
		return 8;
	if (!strcmp(t, "pageout"))
		return 4;
	if (!strcmp(t, "compact") || !strcmp(t, "drop-caches"))
		return 2;
	return 1;
}

/* "expected": B, or all-zero blocks after truncate/punch */
static void set_expected(void)
{
	if (!st.expect_zero) {
		set_expected_pattern(co.seed, TAG_B, co.size);
		return;
	}
	{
		static const unsigned char zero[PR_BLOCK];
		uint64_t z = fnv1a64(zero, PR_BLOCK);
		free(R.expected);
		R.expected = calloc(st.npages, sizeof(uint64_t));
		R.nexpected = R.expected ? st.npages : 0;
		for (size_t i = 0; R.expected && i < st.npages; i++)
			R.expected[i] = z;
	}
}

int main(int argc, char **argv)
{
	struct ibv_mr *file_mr, *src_mr;
	unsigned char *map, *src;
	int fd;

	program_start(&prog, &co, argc, argv);
	if (!co.file || !*co.file)
		usage_fail(usage, "--file PATH is required");
	if (!opt.rounds)
		opt.rounds = default_rounds(opt.trigger);
	R.file = co.file;
	R.size = co.size;
	st.npages = co.size / PR_BLOCK;
	st.memlock = raise_memlock();
	/* the device first: a machine without one (the host's unit tests) is left untouched */
	rdma_loop_open(&st.rl, co.device, 1, 1, co.timeout);
	pin_cpu0();
	join_cgroup();
	clear_warn_once();

	/* 2. pattern A, clean */
	fd = open(co.file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_errno(errno, "open(%s)", co.file);
	if (ftruncate(fd, (off_t)co.size) != 0)
		fail_errno(errno, "ftruncate(%s)", co.file);
	map = mmap(NULL, co.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		fail_errno(errno, "mmap(%s, MAP_SHARED)", co.file);
	pattern_fill(map, co.seed, TAG_A, 0, co.size);
	if (fsync(fd) != 0)
		fail_errno(errno, "fsync #1 (%s)", co.file);

	/* 3. the pin */
	errno = 0;
	file_mr = ibv_reg_mr(st.rl.pd, map, co.size, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	if (!file_mr) {
		report_pin_refused(errno, "ibv_reg_mr", map);
		set_expected_pattern(co.seed, TAG_A, co.size);
		report_emit();
		return 0;
	}
	R.pin = "granted";
	/* the writable pin faulted the pages for write (page_mkwrite: dirty again); writeback
	 * cleans and write-protects them: a clean, pinned page with clean buffers */
	if (fsync(fd) != 0)
		fail_errno(errno, "fsync #2 (%s)", co.file);
	st.pfn = calloc(st.npages, 8);
	if (!st.pfn)
		fail("out of memory");
	read_pagemap(map, st.pfn);
	snapshot("registered", map);

	/* 4. the trigger */
	trigger(&map, fd);
	snapshot("after-trigger", map);

	/* 5. the device writes B through the pin */
	src = mmap(NULL, co.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED)
		fail_errno(errno, "mmap(source buffer)");
	pattern_fill(src, co.seed, TAG_B, 0, co.size);
	errno = 0;
	src_mr = ibv_reg_mr(st.rl.pd, src, co.size, IBV_ACCESS_LOCAL_WRITE);
	if (!src_mr)
		fail_errno(errno ? errno : ENOMEM, "ibv_reg_mr(source buffer)");
	rdma_loop_connect(&st.rl);
	st.rdma_status = rdma_loop_xfer(&st.rl, IBV_WR_RDMA_WRITE, src, src_mr->lkey,
					(uintptr_t)file_mr->addr, file_mr->rkey, co.size);
	if (st.rdma_status)
		fail("RDMA WRITE through the pin completed with status %s", st.rdma_status);
	st.rdma_status = "success";
	snapshot("after-write", map);

	/* 6. unpin with dirtying */
	st.dereg_ret = ibv_dereg_mr(file_mr);
	snapshot("after-dereg", map);

	/* 7. */
	st.fsync_ret = fsync(fd) == 0 ? 0 : errno;
	snapshot("after-fsync", map);
	read_back();
	set_expected();
	pr_log("read back: cache %lld device / %lld old / %lld zero / %lld other; medium %lld / %lld / "
	       "%lld / %lld", st.rb[0][0], st.rb[0][1], st.rb[0][2], st.rb[0][3], st.rb[1][0],
	       st.rb[1][1], st.rb[1][2], st.rb[1][3]);
	report_emit();
	ibv_dereg_mr(src_mr);
	rdma_loop_close(&st.rl);
	if (map)
		munmap(map, co.size);
	close(fd);
	return 0;
}
