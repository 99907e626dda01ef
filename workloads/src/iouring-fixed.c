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
#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli.h"
#include "report.h"

#define RING_ENTRIES 32
#define CHUNK (256u * 1024u)

static struct common_opts co = COMMON_OPTS_DEFAULTS;

static struct {
	bool clean;
} opt = {
	.clean = true,
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
	jk_str(j, "src", co.src);
	jk_str(j, "map", map_name(co.shared));
	jk_u64(j, "seed", co.seed);
	jk_bool(j, "clean_after_pin", opt.clean);
	jk_bool(j, "hold", co.hold);
	jk_memlock(j, st.memlock);
	jk_u64(j, "ring_features", st.features);
	jk_u64(j, "reads", st.reads);
	jk_u64(j, "bytes_read", st.bytes_read);
	jk_landed(j, "read_landed", st.landed_blocks, co.size / PR_BLOCK);
}

static void own_opt(int c, const char *arg)
{
	(void)c; /* only --no-clean */
	(void)arg;
	opt.clean = false;
}

static const struct option own_opts[] = {
	{ "no-clean", no_argument, NULL, 'n' },
	{ 0 }
};

static const struct program prog = {
	.name = "iouring-fixed",
	.usage = usage,
	.extra = extra,
	.fault_handler = true,
	.stages = true,
	.expected = true,
	.common = CLI_FILE | CLI_SRC | CLI_SIZE | CLI_SEED | CLI_MAP | CLI_TIMEOUT | CLI_HOLD,
	.own = own_opts,
	.own_opt = own_opt,
};

/* one READ_FIXED of [off, off+len) of src into map+off; fails hard on error */
static void read_fixed(struct io_uring *ring, int src_fd, unsigned char *map, uint64_t off, uint64_t len)
{
	while (len) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
		struct io_uring_cqe *cqe = NULL;
		struct __kernel_timespec ts = { .tv_sec = (long long)co.timeout, .tv_nsec = 0 };
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
			fail_errno(ETIMEDOUT, "READ_FIXED at %" PRIu64 " did not complete within %.0f s", off, co.timeout);
		if (ret < 0)
			fail_errno(-ret, "io_uring_wait_cqe(READ_FIXED at %" PRIu64 ")", off);
		res = cqe->res;
		io_uring_cqe_seen(ring, cqe);
		if (res < 0)
			fail_errno(-res, "READ_FIXED into the registered mapping at offset %" PRIu64 " failed", off);
		if (res == 0)
			fail("READ_FIXED at %" PRIu64 ": unexpected end of %s", off, co.src);
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

	program_start(&prog, &co, argc, argv);
	if (!co.file || !*co.file || !co.src || !*co.src)
		usage_fail(usage, "--file PATH and --src PATH are required");
	if (!strcmp(co.file, co.src))
		usage_fail(usage, "--file and --src must be different files");
	R.file = co.file;
	R.size = co.size;
	st.memlock = raise_memlock();

	/* FILE: pattern A on disk, clean */
	fd = create_pattern_file(co.file, co.seed, TAG_A, co.size);
	if (fd < 0)
		fail_errno(errno, "writing pattern A to %s", co.file);
	map = mmap(NULL, co.size, PROT_READ | PROT_WRITE, co.shared ? MAP_SHARED : MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		fail_errno(errno, "mmap(%s, %s)", co.file, co.shared ? "MAP_SHARED" : "MAP_PRIVATE");
	(void)*(volatile unsigned char *)map; /* read fault: page 0 mapped, not dirtied */
	stage("mapped", map);

	memset(&params, 0, sizeof(params));
	ret = io_uring_queue_init_params(RING_ENTRIES, &ring, &params);
	if (ret < 0)
		fail_errno(-ret, "io_uring_queue_init (io_uring disabled or not built?)");
	st.features = params.features;

	/* the long-term pin */
	iov.iov_base = map;
	iov.iov_len = co.size;
	pr_log("io_uring_register_buffers(%s %s mapping, %" PRIu64 ")", map_name(co.shared),
	       "file", co.size);
	ret = io_uring_register_buffers(&ring, &iov, 1);
	if (ret < 0) {
		report_pin_refused(-ret, "io_uring_register_buffers", map);
		set_expected_pattern(co.seed, TAG_A, co.size); /* nothing changed on disk */
		report_emit();
		io_uring_queue_exit(&ring);
		munmap(map, co.size);
		close(fd);
		return 0;
	}
	R.pin = "granted";
	pr_log("pin granted");
	stage("registered", map);

	if (opt.clean) {
		/* writeback cleans and write-protects the pinned pages */
		if (fsync(fd) != 0)
			fail_errno(errno, "fsync #1 (%s)", co.file);
		stage("fsync_after_pin", map);
	}

	/* SRC: pattern B */
	src_fd = create_pattern_file(co.src, co.seed, TAG_B, co.size);
	if (src_fd < 0)
		fail_errno(errno, "writing pattern B to %s", co.src);

	for (uint64_t off = 0; off < co.size; off += CHUNK) {
		uint64_t len = co.size - off < CHUNK ? co.size - off : CHUNK;
		read_fixed(&ring, src_fd, map, off, len);
	}
	stage("read_fixed_b", map);
	st.landed_blocks = (int)count_pattern_blocks(map, co.seed, TAG_B, co.size);
	pr_log("READ_FIXED landed in %d of %" PRIu64 " blocks", st.landed_blocks, co.size / PR_BLOCK);

	if (fsync(fd) != 0)
		fail_errno(errno, "final fsync (%s)", co.file);
	stage("fsync_final", map);

	set_expected_pattern(co.seed, co.shared ? TAG_B : TAG_A, co.size);
	report_emit();

	if (co.hold)
		hold_forever();

	io_uring_unregister_buffers(&ring);
	io_uring_queue_exit(&ring);
	munmap(map, co.size);
	close(src_fd);
	close(fd);
	return 0;
}
