/* SPDX-License-Identifier: MIT */
/*
 * odirect-into-mmap: O_DIRECT reads whose destination buffer is a MAP_SHARED
 * mapping of another file.  The block layer pins the destination page-cache
 * pages (FOLL_PIN, short term) and the "device" (the disk's DMA) writes into
 * them; with --pressure a second thread keeps calling fsync/sync_file_range
 * on the destination file, so writeback races the in-flight reads -- the
 * classic set_page_dirty-on-a-clean-page path.
 *
 *   src: pattern A, fsync          dst: zeros, fsync, mmap MAP_SHARED
 *   N iterations: pread(O_DIRECT src) into the dst mapping, chunk by chunk,
 *   in a different order each iteration
 *   msync + fsync + munmap;  "expected" = pattern A
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli.h"
#include "report.h"

static struct common_opts co = COMMON_OPTS_DEFAULTS;

static struct {
	const char *dst;
	uint64_t iterations;
	uint64_t chunk;
	bool pressure;
} opt = {
	.iterations = 50,
	.chunk = 64 * 1024,
};

static struct {
	uint64_t iterations_done;
	uint64_t reads;
	uint64_t bytes_read;
	long long fail_offset;        /* -1 = none */
	atomic_ullong pressure_syncs;
	atomic_int pressure_err;
	int matching_blocks;          /* -1 = not checked */
} st = { .fail_offset = -1, .matching_blocks = -1 };

static atomic_bool stop_pressure;
static int dst_fd = -1;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: odirect-into-mmap --src PATH --dst PATH [--size BYTES] [--seed N]\n"
		"                         [--iterations N] [--chunk BYTES] [--pressure]\n"
		"  Fill SRC with pattern A, DST with zeros, map DST MAP_SHARED and read SRC with\n"
		"  O_DIRECT into the mapping ITERATIONS times; msync/fsync; report pattern A as expected.\n"
		"  --size        multiple of 4096 (default 1M)\n"
		"  --iterations  passes over the whole size (default 50)\n"
		"  --chunk       bytes per pread, multiple of 4096 (default 64K)\n"
		"  --pressure    a thread loops fsync(dst) + sync_file_range(dst) during the reads\n");
}

static void extra(struct jbuf *j)
{
	int perr = atomic_load(&st.pressure_err);

	jk_str(j, "src", co.src);
	jk_u64(j, "seed", co.seed);
	jk_u64(j, "iterations", opt.iterations);
	jk_u64(j, "iterations_done", st.iterations_done);
	jk_u64(j, "chunk_size", opt.chunk);
	jk_u64(j, "reads", st.reads);
	jk_u64(j, "bytes_read", st.bytes_read);
	jk_opt(j, "fail_offset", st.fail_offset);
	jk_bool(j, "pressure", opt.pressure);
	jk_u64(j, "pressure_syncs", atomic_load(&st.pressure_syncs));
	jk_str(j, "pressure_errno", perr ? errno_name(perr) : NULL);
	jk_opt(j, "mapping_matching_blocks", st.matching_blocks);
	jk_u64(j, "blocks", co.size / PR_BLOCK);
}

static void own_opt(int c, const char *arg)
{
	switch (c) {
	case 'w': opt.dst = arg; break;
	case 'i':
		/* the JSON of a usage error shows the rejected value */
		if (!parse_u64(arg, &opt.iterations) || opt.iterations < 1 || opt.iterations > 1000000)
			usage_fail(usage, "--iterations must be 1..1000000: '%s'", arg);
		break;
	case 'c':
		if (!parse_size(arg, &opt.chunk))
			usage_fail(usage, "--chunk must be a positive multiple of 4096: '%s'", arg);
		break;
	case 'p': opt.pressure = true; break;
	}
}

static const struct option own_opts[] = {
	{ "dst", required_argument, NULL, 'w' },
	{ "iterations", required_argument, NULL, 'i' },
	{ "chunk", required_argument, NULL, 'c' },
	{ "pressure", no_argument, NULL, 'p' },
	{ 0 }
};

static const struct program prog = {
	.name = "odirect-into-mmap",
	.usage = usage,
	.extra = extra,
	.fault_handler = true,
	.stages = true,
	.expected = true,
	.common = CLI_SRC | CLI_SIZE | CLI_SEED,
	.own = own_opts,
	.own_opt = own_opt,
};

static void *pressure_thread(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_pressure)) {
		if (fsync(dst_fd) != 0 ||
		    sync_file_range(dst_fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
				    SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
			atomic_store(&st.pressure_err, errno);
			fprintf(stderr, "%s: pressure thread: %s, stopping\n", pr_prog, strerror(errno));
			break;
		}
		atomic_fetch_add(&st.pressure_syncs, 1);
	}
	return NULL;
}

/* read [off, off+len) of src into map+off; 0 or the errno */
static int read_chunk(int fd, unsigned char *map, uint64_t off, uint64_t len)
{
	while (len) {
		ssize_t n = pread(fd, map + off, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			st.fail_offset = (long long)off;
			return errno;
		}
		if (n == 0) {
			st.fail_offset = (long long)off;
			return -1; /* unexpected EOF */
		}
		st.reads++;
		st.bytes_read += (uint64_t)n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
		if (off % PR_BLOCK) {
			/* a short O_DIRECT read that is not block aligned cannot continue */
			st.fail_offset = (long long)off;
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	unsigned char *map;
	pthread_t thr;
	bool thr_started = false;
	uint64_t nchunks;
	int src_fd, err = 0;

	program_start(&prog, &co, argc, argv);
	if (!co.src || !*co.src || !opt.dst || !*opt.dst)
		usage_fail(usage, "--src PATH and --dst PATH are required");
	if (!strcmp(co.src, opt.dst))
		usage_fail(usage, "--src and --dst must be different files");
	if (opt.chunk > co.size)
		opt.chunk = co.size;
	R.file = opt.dst;
	R.size = co.size;
	nchunks = (co.size + opt.chunk - 1) / opt.chunk;

	/* src: pattern A on disk */
	src_fd = create_pattern_file(co.src, co.seed, TAG_A, co.size);
	if (src_fd < 0)
		fail_errno(errno, "writing pattern A to %s", co.src);
	close(src_fd);
	src_fd = open(co.src, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (src_fd < 0)
		fail_errno(errno, "open(%s, O_DIRECT) (does this filesystem support O_DIRECT?)", co.src);

	/* dst: zeros on disk, clean in the page cache, mapped shared */
	dst_fd = create_pattern_file(opt.dst, co.seed, 0, co.size);
	if (dst_fd < 0)
		fail_errno(errno, "writing zeros to %s", opt.dst);
	map = mmap(NULL, co.size, PROT_READ | PROT_WRITE, MAP_SHARED, dst_fd, 0);
	if (map == MAP_FAILED)
		fail_errno(errno, "mmap(%s, MAP_SHARED)", opt.dst);
	(void)*(volatile unsigned char *)map; /* read fault: page 0 mapped, not dirtied */
	stage("mapped", map);

	if (opt.pressure) {
		int ret = pthread_create(&thr, NULL, pressure_thread, NULL);
		if (ret)
			fail_errno(ret, "pthread_create(pressure)");
		thr_started = true;
	}

	for (uint64_t it = 0; it < opt.iterations && !err; it++) {
		uint64_t start = (it * 7) % nchunks;
		bool reverse = it & 1;

		for (uint64_t k = 0; k < nchunks; k++) {
			uint64_t idx = reverse ? (start + nchunks - k) % nchunks : (start + k) % nchunks;
			uint64_t off = idx * opt.chunk;
			uint64_t len = co.size - off < opt.chunk ? co.size - off : opt.chunk;

			err = read_chunk(src_fd, map, off, len);
			if (err)
				break;
		}
		if (!err)
			st.iterations_done++;
	}

	if (thr_started) {
		atomic_store(&stop_pressure, true);
		pthread_join(thr, NULL);
	}
	stage("after_reads", map);

	if (err > 0) {
		/* the kernel would not do the O_DIRECT read into this mapping */
		R.pin = "refused";
		R.err = err;
		pr_log("O_DIRECT read into the mapping failed at offset %lld: %s (%s)", st.fail_offset,
		       errno_name(err), strerror(err));
	} else if (err < 0) {
		fail("short/unaligned O_DIRECT read from %s at offset %lld", co.src, st.fail_offset);
	} else {
		st.matching_blocks = (int)count_pattern_blocks(map, co.seed, TAG_A, co.size);
		pr_log("%" PRIu64 " iterations, %" PRIu64 " reads; mapping holds pattern A in %d of %" PRIu64
		       " blocks", st.iterations_done, st.reads, st.matching_blocks, co.size / PR_BLOCK);
	}

	if (msync(map, co.size, MS_SYNC) != 0)
		fail_errno(errno, "msync(%s)", opt.dst);
	if (fsync(dst_fd) != 0)
		fail_errno(errno, "fsync(%s)", opt.dst);
	stage("after_fsync", map);
	if (munmap(map, co.size) != 0)
		fail_errno(errno, "munmap(%s)", opt.dst);
	close(dst_fd);
	close(src_fd);

	if (!err)
		set_expected_pattern(co.seed, TAG_A, co.size);
	report_emit();
	return 0;
}
