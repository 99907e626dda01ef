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
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>

#include "common.h"

static struct {
	const char *src;
	const char *dst;
	uint64_t size;
	uint64_t seed;
	uint64_t iterations;
	uint64_t chunk;
	bool pressure;
} opt = {
	.size = DEFAULT_SIZE,
	.seed = 1,
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

	jk_str(j, "src", opt.src);
	jk_u64(j, "seed", opt.seed);
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
	jk_u64(j, "blocks", opt.size / PR_BLOCK);
}

static void parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "src", required_argument, NULL, 'r' },
		{ "dst", required_argument, NULL, 'w' },
		{ "size", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'S' },
		{ "iterations", required_argument, NULL, 'i' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "pressure", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'r': opt.src = optarg; break;
		case 'w': opt.dst = optarg; break;
		case 's':
			if (!parse_size(optarg, &opt.size))
				usage_fail(usage, "--size must be a positive multiple of 4096 up to 1G: '%s'", optarg);
			break;
		case 'S':
			if (!parse_u64(optarg, &opt.seed))
				usage_fail(usage, "--seed must be an unsigned integer: '%s'", optarg);
			break;
		case 'i':
			if (!parse_u64(optarg, &opt.iterations) || opt.iterations < 1 || opt.iterations > 1000000)
				usage_fail(usage, "--iterations must be 1..1000000: '%s'", optarg);
			break;
		case 'c':
			if (!parse_size(optarg, &opt.chunk))
				usage_fail(usage, "--chunk must be a positive multiple of 4096: '%s'", optarg);
			break;
		case 'p': opt.pressure = true; break;
		case 'h': usage(stdout); exit(0);
		default:
			usage_fail(usage, "%s", bad_option(argc, argv, optopt, optind));
		}
	}
	if (optind < argc)
		usage_fail(usage, "unexpected argument '%s'", argv[optind]);
	if (!opt.src || !*opt.src || !opt.dst || !*opt.dst)
		usage_fail(usage, "--src PATH and --dst PATH are required");
	if (!strcmp(opt.src, opt.dst))
		usage_fail(usage, "--src and --dst must be different files");
	if (opt.chunk > opt.size)
		opt.chunk = opt.size;
}

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

	report_init("odirect-into-mmap");
	install_fault_handler();
	R.extra = extra;
	R.with_stages = true;
	R.with_expected = true;
	parse_args(argc, argv);
	R.file = opt.dst;
	R.size = opt.size;
	nchunks = (opt.size + opt.chunk - 1) / opt.chunk;

	/* src: pattern A on disk */
	src_fd = create_pattern_file(opt.src, opt.seed, TAG_A, opt.size);
	if (src_fd < 0)
		fail_errno(errno, "writing pattern A to %s", opt.src);
	close(src_fd);
	src_fd = open(opt.src, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (src_fd < 0)
		fail_errno(errno, "open(%s, O_DIRECT) (does this filesystem support O_DIRECT?)", opt.src);

	/* dst: zeros on disk, clean in the page cache, mapped shared */
	dst_fd = create_pattern_file(opt.dst, opt.seed, 0, opt.size);
	if (dst_fd < 0)
		fail_errno(errno, "writing zeros to %s", opt.dst);
	map = mmap(NULL, opt.size, PROT_READ | PROT_WRITE, MAP_SHARED, dst_fd, 0);
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
			uint64_t len = opt.size - off < opt.chunk ? opt.size - off : opt.chunk;

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
		fail("short/unaligned O_DIRECT read from %s at offset %lld", opt.src, st.fail_offset);
	} else {
		st.matching_blocks = (int)count_pattern_blocks(map, opt.seed, TAG_A, opt.size);
		pr_log("%" PRIu64 " iterations, %" PRIu64 " reads; mapping holds pattern A in %d of %" PRIu64
		       " blocks", st.iterations_done, st.reads, st.matching_blocks, opt.size / PR_BLOCK);
	}

	if (msync(map, opt.size, MS_SYNC) != 0)
		fail_errno(errno, "msync(%s)", opt.dst);
	if (fsync(dst_fd) != 0)
		fail_errno(errno, "fsync(%s)", opt.dst);
	stage("after_fsync", map);
	if (munmap(map, opt.size) != 0)
		fail_errno(errno, "munmap(%s)", opt.dst);
	close(dst_fd);
	close(src_fd);

	if (!err)
		set_expected_pattern(opt.seed, TAG_A, opt.size);
	report_emit();
	return 0;
}
