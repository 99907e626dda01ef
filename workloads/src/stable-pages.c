/* SPDX-License-Identifier: MIT */
/*
 * stable-pages: a "device" keeps writing a MAP_SHARED file mapping while
 * writeback runs over it, and what reaches the medium is read back with
 * O_DIRECT (through the filesystem's / device's checksum verification)
 * while the overlap lasts.
 *
 * Writeback expects page content to stay put while a page is under I/O
 * (checksums, RAID parity, encryption are computed over it); a device writing
 * through a pin does not wait for it.  On btrfs (data checksums) and on a
 * filesystem over dm-integrity this surfaces as reads failing their checksum
 * (EIO/EILSEQ); on a filesystem without checksums as torn blocks on the medium.
 *
 * Every block of generation g holds word 0 = MAGIC<<32 | g and words 1..511
 * = mix(seed ^ g<<40 ^ block<<9 ^ k), so any block read back is classified:
 * consistent (one generation), torn (mixed), foreign (neither), or unreadable.
 *
 *   1. CPU writes generation 1 into the mapping; fsync
 *   2. --writer rdma:    register a writable MR (long-term pin; a refusal is a
 *                        valid outcome: reported, exit 0); a thread RDMA WRITEs
 *                        generation 2, 3, ... over the whole file, nonstop;
 *                        another dirties every page with a content-preserving
 *                        atomic add of 0 so writeback has something to write
 *      --writer cpu:     the control: the CPU copies generation 2, 3, ... in
 *                        (write faults: the filesystem can keep pages stable)
 *      --writer odirect: a thread O_DIRECT-reads source files of generations
 *                        2..5 into the mapping, nonstop (short-term FOLL_PIN)
 *   3. a thread loops fsync(file); a checker pass O_DIRECT-reads every block
 *      of the file and classifies it, again and again, for --duration seconds
 *   4. the JSON line ("overlap": what the checker saw); with --hold everything
 *      keeps running until the host power-cuts the guest; without it the
 *      writer stops, a last fsync runs and a last pass is reported ("after_stop")
 *
 * --check: only classify the file's blocks as they are now (after the crash).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli.h"
#include "rdma_loop.h"
#include "report.h"

#define MAGIC 0x50494e53u            /* "PINS" */
#define WORDS (PR_BLOCK / 8)
#define NSRC 4                       /* odirect: source generations 2..5 */
#define LIST_CAP 64

static struct common_opts co = COMMON_OPTS_DEFAULTS;

enum { W_RDMA, W_ODIRECT, W_CPU };
static const char *const writer_names[] = { "rdma", "odirect", "cpu" };

static struct {
	int writer;
	bool odirect;                    /* writer == W_ODIRECT */
	double duration;
	bool check;
} opt = { .duration = 8 };

/* one classification pass over the file */
struct pass {
	uint64_t consistent, torn, foreign, unreadable;
	uint64_t gen_min, gen_max;
	int first_errno;
	long long first_bad;             /* block index, -1 = none */
};

static struct {
	struct rdma_loop rl;
	const char *rdma_status;         /* of the last RDMA WRITE through the pin */
	long long memlock;
	atomic_ullong gens_written;      /* complete writer passes */
	atomic_ullong syncs, dirtied;
	atomic_int sync_errno;
	uint64_t passes;
	struct pass last;                /* the last overlap pass */
	uint64_t torn_max;               /* most torn blocks in one overlap pass */
	int overlap_errno;               /* the first failed read of any overlap pass */
	unsigned char *ever_unreadable;  /* per block */
	unsigned char *ever_torn;
	struct pass after;               /* after the writer stopped (no --hold) */
	bool have_after;
	struct pass now;                 /* --check */
	const char *read_mode;
} st = { .memlock = -2, .last = { .first_bad = -1 }, .after = { .first_bad = -1 },
	 .now = { .first_bad = -1 } };

/* RDMA WRITE len bytes from src (lkey) to dst (rkey) through the loopback QPs; any bad
 * completion is an infrastructure failure */
static void device_write(const void *src, uint32_t lkey, const void *dst, uint32_t rkey,
			 uint64_t len)
{
	const char *bad = rdma_loop_xfer(&st.rl, IBV_WR_RDMA_WRITE, (void *)src, lkey,
					 (uintptr_t)dst, rkey, len);

	st.rdma_status = bad ? bad : "success";
	if (bad)
		fail("RDMA WRITE through the pin completed with status %s", bad);
}

static atomic_bool stop_writer, stop_bg;
static unsigned char *map;
static int fd = -1;
static uint64_t nblocks;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: stable-pages --file PATH [--size BYTES] [--seed N] [--writer rdma|odirect|cpu]\n"
		"                    [--duration SECONDS] [--device NAME] [--timeout S] [--hold]\n"
		"       stable-pages --check --file PATH [--size BYTES] [--seed N]\n"
		"  Keep a device writing a MAP_SHARED mapping of PATH (RDMA WRITE through a pinned MR,\n"
		"  or O_DIRECT reads into it) while fsync loops, and read back what reached the medium\n"
		"  with O_DIRECT during the overlap: unreadable (checksum), torn and consistent blocks.\n"
		"  --duration  seconds of overlap before the JSON line (default 8)\n"
		"  --check     classify the blocks of PATH as they are now (after a crash)\n");
}

static void jk_pass(struct jbuf *j, const char *key, const struct pass *p)
{
	jb_key(j, key);
	jb_obj_open(j);
	jk_u64(j, "consistent", p->consistent);
	jk_u64(j, "torn", p->torn);
	jk_u64(j, "foreign", p->foreign);
	jk_u64(j, "unreadable", p->unreadable);
	jk_str(j, "first_errno", p->first_errno ? errno_name(p->first_errno) : NULL);
	jk_opt(j, "first_bad_block", p->first_bad);
	jk_u64(j, "gen_min", p->gen_min);
	jk_u64(j, "gen_max", p->gen_max);
	jb_obj_close(j);
}

static void jk_blocklist(struct jbuf *j, const char *key, const unsigned char *set)
{
	uint64_t n = 0;

	jb_key(j, key);
	jb_arr_open(j);
	for (uint64_t b = 0; set && b < nblocks; b++)
		if (set[b] && n++ < LIST_CAP)
			jb_u64(j, b);
	jb_arr_close(j);
}

static uint64_t count_set(const unsigned char *set)
{
	uint64_t n = 0;

	for (uint64_t b = 0; set && b < nblocks; b++)
		n += set[b] != 0;
	return n;
}

static void extra(struct jbuf *j)
{
	int se = atomic_load(&st.sync_errno);

	jk_u64(j, "seed", co.seed);
	jk_u64(j, "blocks", nblocks);
	if (opt.check) {
		jk_bool(j, "check", true);
		jk_str(j, "read_mode", st.read_mode);
		jk_pass(j, "now", &st.now);
		return;
	}
	jk_str(j, "writer", writer_names[opt.writer]);
	jk_bool(j, "hold", co.hold);
	jk_memlock(j, st.memlock);
	if (opt.writer == W_RDMA) {
		jk_str(j, "device", st.rl.devname[0] ? st.rl.devname : co.device);
		jk_opt(j, "gid_index", st.rl.gid_index);
		jk_str(j, "rdma_status", st.rdma_status);
		jk_u64(j, "rdma_writes", st.rl.ops);
	}
	jk_dbl(j, "duration_s", opt.duration);
	jk_u64(j, "writer_passes", atomic_load(&st.gens_written));
	jk_u64(j, "fsyncs", atomic_load(&st.syncs));
	jk_str(j, "fsync_errno", se ? errno_name(se) : NULL);
	jk_u64(j, "pages_dirtied", atomic_load(&st.dirtied));
	jk_u64(j, "check_passes", st.passes);
	jk_u64(j, "overlap_unreadable_blocks", count_set(st.ever_unreadable));
	jk_str(j, "overlap_first_errno", st.overlap_errno ? errno_name(st.overlap_errno) : NULL);
	jk_blocklist(j, "overlap_unreadable_list", st.ever_unreadable);
	jk_u64(j, "overlap_torn_blocks", count_set(st.ever_torn));
	jk_u64(j, "overlap_torn_max", st.torn_max);
	jk_pass(j, "overlap_last", &st.last);
	if (st.have_after)
		jk_pass(j, "after_stop", &st.after);
}

static void own_opt(int c, const char *arg)
{
	switch (c) {
	case 'w':
		if (!strcmp(arg, "rdma"))
			opt.writer = W_RDMA;
		else if (!strcmp(arg, "odirect"))
			opt.writer = W_ODIRECT;
		else if (!strcmp(arg, "cpu"))
			opt.writer = W_CPU;
		else
			usage_fail(usage, "--writer must be rdma, odirect or cpu: '%s'", arg);
		opt.odirect = opt.writer == W_ODIRECT;
		break;
	case 'D': opt.duration = (double)cli_range("--duration", arg, 1, 3600, " seconds"); break;
	case 'C': opt.check = true; break;
	}
}

static const struct option own_opts[] = {
	{ "writer", required_argument, NULL, 'w' },
	{ "duration", required_argument, NULL, 'D' },
	{ "check", no_argument, NULL, 'C' },
	{ 0 }
};

static const struct program prog = {
	.name = "stable-pages",
	.usage = usage,
	.extra = extra,
	.fault_handler = true,
	.stages = true,
	.expected = false,
	.common = CLI_FILE | CLI_SIZE | CLI_SEED | CLI_DEVICE | CLI_TIMEOUT | CLI_HOLD,
	.own = own_opts,
	.own_opt = own_opt,
};

/* ------------------------------------------------------------------ */
/* the generation pattern                                              */

static uint64_t mix64(uint64_t x)
{
	uint64_t z = x + 0x9E3779B97F4A7C15ull;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint64_t gen_word(uint64_t gen, uint64_t block, uint64_t k)
{
	if (k == 0)
		return ((uint64_t)MAGIC << 32) | (gen & 0xffffffffu);
	return mix64(co.seed ^ (gen << 40) ^ (block << 9) ^ k);
}

static void fill_gen(unsigned char *dst, uint64_t gen, uint64_t size)
{
	uint64_t *w = (uint64_t *)dst;

	for (uint64_t b = 0; b < size / PR_BLOCK; b++)
		for (uint64_t k = 0; k < WORDS; k++)
			w[b * WORDS + k] = gen_word(gen, b, k);
}

enum { B_CONSISTENT, B_TORN, B_FOREIGN };

static int classify(const unsigned char *p, uint64_t block, uint64_t *gen)
{
	const uint64_t *w = (const uint64_t *)p;

	if ((w[0] >> 32) != MAGIC)
		return B_FOREIGN;
	*gen = w[0] & 0xffffffffu;
	for (uint64_t k = 1; k < WORDS; k++)
		if (w[k] != gen_word(*gen, block, k))
			return B_TORN;
	return B_CONSISTENT;
}

/* read every block of the file from the medium (O_DIRECT) and classify it */
static void check_pass(int rfd, unsigned char *buf, struct pass *p, bool overlap)
{
	memset(p, 0, sizeof(*p));
	p->first_bad = -1;
	p->gen_min = UINT64_MAX;
	for (uint64_t b = 0; b < nblocks; b++) {
		ssize_t n = pread(rfd, buf, PR_BLOCK, (off_t)(b * PR_BLOCK));
		uint64_t gen = 0;
		int kind;

		if (n != (ssize_t)PR_BLOCK) {
			int e = n < 0 ? errno : ENODATA;
			p->unreadable++;
			if (!p->first_errno)
				p->first_errno = e;
			if (p->first_bad < 0)
				p->first_bad = (long long)b;
			if (overlap)
				st.ever_unreadable[b] = 1;
			continue;
		}
		kind = classify(buf, b, &gen);
		if (kind == B_CONSISTENT) {
			p->consistent++;
			if (gen < p->gen_min)
				p->gen_min = gen;
			if (gen > p->gen_max)
				p->gen_max = gen;
			continue;
		}
		if (kind == B_TORN) {
			p->torn++;
			if (overlap)
				st.ever_torn[b] = 1;
		} else {
			p->foreign++;
		}
		if (p->first_bad < 0)
			p->first_bad = (long long)b;
	}
	if (p->gen_min == UINT64_MAX)
		p->gen_min = 0;
}

static int open_reader(unsigned char **buf)
{
	int rfd = open(co.file, O_RDONLY | O_DIRECT | O_CLOEXEC);

	st.read_mode = "O_DIRECT";
	if (rfd < 0 && errno == EINVAL) {
		rfd = open(co.file, O_RDONLY | O_CLOEXEC);
		st.read_mode = "buffered";
	}
	if (rfd < 0)
		fail_errno(errno, "open(%s) for read-back", co.file);
	if (posix_memalign((void **)buf, PR_BLOCK, PR_BLOCK))
		fail("out of memory");
	return rfd;
}

/* ------------------------------------------------------------------ */
/* the threads                                                         */

static struct ibv_mr *file_mr;

static void *rdma_writer(void *arg)
{
	unsigned char *src = arg;
	struct ibv_mr *src_mr;

	errno = 0;
	src_mr = ibv_reg_mr(st.rl.pd, src, co.size, IBV_ACCESS_LOCAL_WRITE);
	if (!src_mr)
		fail_errno(errno ? errno : ENOMEM, "ibv_reg_mr(source buffer)");
	for (uint64_t gen = 2; !atomic_load(&stop_writer); gen++) {
		fill_gen(src, gen, co.size);
		device_write(src, src_mr->lkey, map, file_mr->rkey, co.size);
		atomic_fetch_add(&st.gens_written, 1);
	}
	return NULL;
}

/* the control: the CPU writes the generations (page faults, stable-page waits) */
static void *cpu_writer(void *arg)
{
	unsigned char *src = arg;

	for (uint64_t gen = 2; !atomic_load(&stop_writer); gen++) {
		fill_gen(src, gen, co.size);
		for (uint64_t off = 0; off < co.size; off += PR_BLOCK)
			memcpy(map + off, src + off, PR_BLOCK);
		atomic_fetch_add(&st.gens_written, 1);
	}
	return NULL;
}

static int src_fds[NSRC];

static void *odirect_writer(void *arg)
{
	const uint64_t chunk = 64 * 1024 < co.size ? 64 * 1024 : co.size;

	(void)arg;
	for (uint64_t i = 0; !atomic_load(&stop_writer); i++) {
		int sfd = src_fds[i % NSRC];
		for (uint64_t off = 0; off < co.size && !atomic_load(&stop_writer); off += chunk) {
			uint64_t len = co.size - off < chunk ? co.size - off : chunk;
			ssize_t n = pread(sfd, map + off, len, (off_t)off);
			if (n < 0 && errno != EINTR) {
				R.err = errno;
				fail_errno(errno, "O_DIRECT read into the mapping at %" PRIu64, off);
			}
		}
		atomic_fetch_add(&st.gens_written, 1);
	}
	return NULL;
}

static void *dirtier(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_bg)) {
		for (uint64_t b = 0; b < nblocks && !atomic_load(&stop_bg); b++) {
			/* a write access that keeps the content: write fault, page dirty */
			__atomic_fetch_add((uint64_t *)(map + b * PR_BLOCK), 0, __ATOMIC_SEQ_CST);
			atomic_fetch_add(&st.dirtied, 1);
		}
		usleep(1000);
	}
	return NULL;
}

static void *syncer(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_bg)) {
		if (fsync(fd) != 0) {
			if (!atomic_load(&st.sync_errno))
				atomic_store(&st.sync_errno, errno);
			usleep(10000);
			continue;
		}
		atomic_fetch_add(&st.syncs, 1);
	}
	return NULL;
}

static void make_sources(unsigned char *tmp)
{
	char path[4096];

	for (int i = 0; i < NSRC; i++) {
		int sfd;
		snprintf(path, sizeof(path), "%s.src%d", co.file, i + 2);
		sfd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (sfd < 0)
			fail_errno(errno, "open(%s)", path);
		fill_gen(tmp, (uint64_t)i + 2, co.size);
		if (pwrite_all(sfd, tmp, co.size, 0) != 0 || fsync(sfd) != 0)
			fail_errno(errno, "writing %s", path);
		close(sfd);
		src_fds[i] = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
		if (src_fds[i] < 0)
			fail_errno(errno, "open(%s, O_DIRECT)", path);
	}
}

int main(int argc, char **argv)
{
	pthread_t wthr, dthr, sthr;
	unsigned char *src, *buf;
	int rfd;
	double end;

	program_start(&prog, &co, argc, argv);
	if (!co.file || !*co.file)
		usage_fail(usage, "--file PATH is required");
	R.file = co.file;
	R.size = co.size;
	nblocks = co.size / PR_BLOCK;

	if (opt.check) {
		rfd = open_reader(&buf);
		check_pass(rfd, buf, &st.now, false);
		report_emit();
		return 0;
	}

	st.ever_unreadable = calloc(nblocks, 1);
	st.ever_torn = calloc(nblocks, 1);
	src = mmap(NULL, co.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!st.ever_unreadable || !st.ever_torn || src == MAP_FAILED)
		fail("out of memory");
	st.memlock = raise_memlock();
	if (opt.writer == W_RDMA) {
		rdma_loop_open(&st.rl, co.device, 1, 1, co.timeout);
		rdma_loop_connect(&st.rl);
	} else if (opt.odirect) {
		make_sources(src);
	}

	/* 1. generation 1 by the CPU, on disk */
	fd = open(co.file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_errno(errno, "open(%s)", co.file);
	if (ftruncate(fd, (off_t)co.size) != 0)
		fail_errno(errno, "ftruncate(%s)", co.file);
	map = mmap(NULL, co.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		fail_errno(errno, "mmap(%s, MAP_SHARED)", co.file);
	fill_gen(map, 1, co.size);
	if (fsync(fd) != 0)
		fail_errno(errno, "fsync #1 (%s)", co.file);
	stage("gen1_fsynced", map);

	/* 2. the device */
	if (opt.writer == W_RDMA) {
		errno = 0;
		file_mr = ibv_reg_mr(st.rl.pd, map, co.size,
				     IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
		if (!file_mr) {
			report_pin_refused(errno, "ibv_reg_mr", map);
			report_emit();
			return 0;
		}
		R.pin = "granted";
		stage("registered", map);
	}
	rfd = open_reader(&buf);
	if (pthread_create(&wthr, NULL, opt.writer == W_RDMA ? rdma_writer :
			   opt.odirect ? odirect_writer : cpu_writer, src) ||
	    pthread_create(&sthr, NULL, syncer, NULL) ||
	    (opt.writer == W_RDMA && pthread_create(&dthr, NULL, dirtier, NULL)))
		fail("pthread_create failed");
	stage("overlap_started", map);

	/* 3. read back what reaches the medium while the device writes */
	end = now_s() + opt.duration;
	do {
		check_pass(rfd, buf, &st.last, true);
		st.passes++;
		if (st.last.torn > st.torn_max)
			st.torn_max = st.last.torn;
		if (!st.overlap_errno)
			st.overlap_errno = st.last.first_errno;
	} while (now_s() < end);
	stage("overlap_checked", map);

	/* 4. report; --hold: the overlap goes on until the power cut */
	if (co.hold) {
		report_emit();
		hold_forever();
	}
	atomic_store(&stop_writer, true);
	pthread_join(wthr, NULL);
	atomic_store(&stop_bg, true);
	pthread_join(sthr, NULL);
	if (opt.writer == W_RDMA)
		pthread_join(dthr, NULL);
	if (file_mr && ibv_dereg_mr(file_mr) == 0)
		file_mr = NULL;
	if (fsync(fd) != 0 && !atomic_load(&st.sync_errno))
		atomic_store(&st.sync_errno, errno);
	stage("stopped", map);
	check_pass(rfd, buf, &st.after, false);
	st.have_after = true;
	report_emit();
	munmap(map, co.size);
	close(fd);
	if (opt.writer == W_RDMA)
		rdma_loop_close(&st.rl);
	return 0;
}
