/* SPDX-License-Identifier: MIT */
/*
 * iouring-fixed: io_uring fixed buffers on a file mapping.
 *
 * io_uring_register_buffers() pins the buffer long term (FOLL_LONGTERM).
 * FILE is filled with pattern A and mapped (shared or private); the whole
 * mapping is registered as one fixed buffer ("refused" with the errno if the
 * kernel says no).  When granted, the pinned pages are cleaned by an fsync
 * (unless --no-clean), then IORING_OP_READ_FIXED copies pattern B from SRC
 * into them -- a kernel-side write through the pin, invisible to the page
 * tables -- and FILE is fsynced again.
 *
 *   map shared:  "expected" = pattern B (what the application wrote)
 *   map private: "expected" = pattern A (the private copy never reaches disk)
 *
 * --hold keeps the ring and its registered buffer alive after the JSON line.
 */
#include <getopt.h>
#include <liburing.h>

#include "common.h"

#define RING_ENTRIES 32
#define CHUNK (256u * 1024u)

static struct {
	const char *file;
	const char *src;
	uint64_t size;
	uint64_t seed;
	bool shared;
	bool hold;
	bool clean;
	double timeout;
} opt = {
	.size = DEFAULT_SIZE,
	.seed = 1,
	.shared = true,
	.clean = true,
	.timeout = 10.0,
};

static struct {
	long long memlock;
	uint64_t reads;
	uint64_t bytes_read;
	int landed_blocks; /* -1 = not checked */
	unsigned features;
} st = { .memlock = -2, .landed_blocks = -1 };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: iouring-fixed --file PATH --src PATH [--size BYTES] [--seed N]\n"
		"                     [--map shared|private] [--no-clean] [--timeout SECONDS] [--hold]\n"
		"  Fill FILE with pattern A, map it, register the mapping as an io_uring fixed buffer,\n"
		"  fsync, READ_FIXED pattern B from SRC into it, fsync, report what should be on disk.\n"
		"  --size      multiple of 4096 (default 1M)\n"
		"  --map       MAP_SHARED (default; expected = B) or MAP_PRIVATE (expected = A)\n"
		"  --no-clean  skip the fsync between registering and READ_FIXED\n"
		"  --timeout   completion timeout in seconds (default 10)\n"
		"  --hold      after the JSON line, print PINRIG-HOLD on stderr and sleep forever\n");
}

static void extra(struct jbuf *j)
{
	uint64_t nblocks = opt.size / PR_BLOCK;

	jk_str(j, "src", opt.src);
	jk_str(j, "map", opt.shared ? "shared" : "private");
	jk_u64(j, "seed", opt.seed);
	jk_bool(j, "clean_after_pin", opt.clean);
	jk_bool(j, "hold", opt.hold);
	if (st.memlock == -1)
		jk_str(j, "memlock_limit", "unlimited");
	else
		jk_opt(j, "memlock_limit", st.memlock);
	jk_u64(j, "ring_features", st.features);
	jk_u64(j, "reads", st.reads);
	jk_u64(j, "bytes_read", st.bytes_read);
	jb_key(j, "read_landed");
	if (st.landed_blocks < 0)
		jb_null(j);
	else
		jb_bool(j, (uint64_t)st.landed_blocks == nblocks);
	jk_opt(j, "landed_blocks", st.landed_blocks);
	jk_u64(j, "blocks", nblocks);
}

static void parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "src", required_argument, NULL, 'r' },
		{ "size", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'S' },
		{ "map", required_argument, NULL, 'm' },
		{ "no-clean", no_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "hold", no_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	uint64_t v;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': opt.file = optarg; break;
		case 'r': opt.src = optarg; break;
		case 's':
			if (!parse_size(optarg, &opt.size))
				usage_fail(usage, "--size must be a positive multiple of 4096 up to 1G: '%s'", optarg);
			break;
		case 'S':
			if (!parse_u64(optarg, &opt.seed))
				usage_fail(usage, "--seed must be an unsigned integer: '%s'", optarg);
			break;
		case 'm':
			if (!strcmp(optarg, "shared"))
				opt.shared = true;
			else if (!strcmp(optarg, "private"))
				opt.shared = false;
			else
				usage_fail(usage, "--map must be shared or private: '%s'", optarg);
			break;
		case 'n': opt.clean = false; break;
		case 't':
			if (!parse_u64(optarg, &v) || v < 1 || v > 3600)
				usage_fail(usage, "--timeout must be 1..3600 seconds: '%s'", optarg);
			opt.timeout = (double)v;
			break;
		case 'H': opt.hold = true; break;
		case 'h': usage(stdout); exit(0);
		default:
			usage_fail(usage, "%s", bad_option(argc, argv, optopt, optind));
		}
	}
	if (optind < argc)
		usage_fail(usage, "unexpected argument '%s'", argv[optind]);
	if (!opt.file || !*opt.file || !opt.src || !*opt.src)
		usage_fail(usage, "--file PATH and --src PATH are required");
	if (!strcmp(opt.file, opt.src))
		usage_fail(usage, "--file and --src must be different files");
}

/* one READ_FIXED of [off, off+len) of src into map+off; fails hard on error */
static void read_fixed(struct io_uring *ring, int src_fd, unsigned char *map, uint64_t off, uint64_t len)
{
	while (len) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
		struct io_uring_cqe *cqe = NULL;
		struct __kernel_timespec ts = { .tv_sec = (long long)opt.timeout, .tv_nsec = 0 };
		int ret, res;

		if (!sqe)
			fail("io_uring_get_sqe: submission queue full");
		io_uring_prep_read_fixed(sqe, src_fd, map + off, (unsigned)len, off, 0);
		sqe->user_data = off;
		ret = io_uring_submit(ring);
		if (ret < 0)
			fail_errno(-ret, "io_uring_submit(READ_FIXED at %" PRIu64 ")", off);
		ret = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
		if (ret == -ETIME || ret == -ETIMEDOUT)
			fail_errno(ETIMEDOUT, "READ_FIXED at %" PRIu64 " did not complete within %.0f s", off, opt.timeout);
		if (ret < 0)
			fail_errno(-ret, "io_uring_wait_cqe(READ_FIXED at %" PRIu64 ")", off);
		res = cqe->res;
		io_uring_cqe_seen(ring, cqe);
		if (res < 0)
			fail_errno(-res, "READ_FIXED into the registered mapping at offset %" PRIu64 " failed", off);
		if (res == 0)
			fail("READ_FIXED at %" PRIu64 ": unexpected end of %s", off, opt.src);
		st.reads++;
		st.bytes_read += (uint64_t)res;
		off += (uint64_t)res;
		len -= (uint64_t)res;
	}
}

int main(int argc, char **argv)
{
	struct io_uring ring;
	struct io_uring_params params;
	struct iovec iov;
	unsigned char *map;
	int fd, src_fd, ret;

	report_init("iouring-fixed");
	install_fault_handler();
	R.extra = extra;
	R.with_stages = true;
	R.with_expected = true;
	parse_args(argc, argv);
	R.file = opt.file;
	R.size = opt.size;
	st.memlock = raise_memlock();

	/* FILE: pattern A on disk, clean */
	fd = create_pattern_file(opt.file, opt.seed, TAG_A, opt.size);
	if (fd < 0)
		fail_errno(errno, "writing pattern A to %s", opt.file);
	map = mmap(NULL, opt.size, PROT_READ | PROT_WRITE, opt.shared ? MAP_SHARED : MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		fail_errno(errno, "mmap(%s, %s)", opt.file, opt.shared ? "MAP_SHARED" : "MAP_PRIVATE");
	(void)*(volatile unsigned char *)map; /* read fault: page 0 mapped, not dirtied */
	stage("mapped", map);

	memset(&params, 0, sizeof(params));
	ret = io_uring_queue_init_params(RING_ENTRIES, &ring, &params);
	if (ret < 0)
		fail_errno(-ret, "io_uring_queue_init (io_uring disabled or not built?)");
	st.features = params.features;

	/* the long-term pin */
	iov.iov_base = map;
	iov.iov_len = opt.size;
	pr_log("io_uring_register_buffers(%s %s mapping, %" PRIu64 ")", opt.shared ? "shared" : "private",
	       "file", opt.size);
	ret = io_uring_register_buffers(&ring, &iov, 1);
	if (ret < 0) {
		R.pin = "refused";
		R.err = -ret;
		pr_log("pin refused: %s (%s)", errno_name(-ret), strerror(-ret));
		stage("refused", map);
		set_expected_pattern(opt.seed, TAG_A, opt.size); /* nothing changed on disk */
		report_emit();
		io_uring_queue_exit(&ring);
		munmap(map, opt.size);
		close(fd);
		return 0;
	}
	R.pin = "granted";
	pr_log("pin granted");
	stage("registered", map);

	if (opt.clean) {
		/* writeback cleans and write-protects the pinned pages */
		if (fsync(fd) != 0)
			fail_errno(errno, "fsync #1 (%s)", opt.file);
		stage("fsync_after_pin", map);
	}

	/* SRC: pattern B */
	src_fd = create_pattern_file(opt.src, opt.seed, TAG_B, opt.size);
	if (src_fd < 0)
		fail_errno(errno, "writing pattern B to %s", opt.src);

	for (uint64_t off = 0; off < opt.size; off += CHUNK) {
		uint64_t len = opt.size - off < CHUNK ? opt.size - off : CHUNK;
		read_fixed(&ring, src_fd, map, off, len);
	}
	stage("read_fixed_b", map);
	st.landed_blocks = (int)count_pattern_blocks(map, opt.seed, TAG_B, opt.size);
	pr_log("READ_FIXED landed in %d of %" PRIu64 " blocks", st.landed_blocks, opt.size / PR_BLOCK);

	if (fsync(fd) != 0)
		fail_errno(errno, "final fsync (%s)", opt.file);
	stage("fsync_final", map);

	set_expected_pattern(opt.seed, opt.shared ? TAG_B : TAG_A, opt.size);
	report_emit();

	if (opt.hold)
		hold_forever();

	io_uring_unregister_buffers(&ring);
	io_uring_queue_exit(&ring);
	munmap(map, opt.size);
	close(src_fd);
	close(fd);
	return 0;
}
