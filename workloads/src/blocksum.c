/* SPDX-License-Identifier: MIT */
/*
 * blocksum: per-4096-byte-block FNV-1a 64 checksums.
 *
 *   blocksum --file PATH [--size BYTES]        checksums of a file, read with read()
 *   blocksum --pattern A|B --seed N --size B   checksums of a generated pattern
 *
 * A trailing partial block is checksummed over the bytes that exist.  With
 * --file and --size, at most SIZE bytes are read; "size" reports the bytes
 * actually checksummed (a shorter file shows up as fewer blocks).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "report.h"

static struct common_opts co; /* no defaults: --pattern needs --seed and --size */

static struct {
	int tag; /* 0 = file mode */
	const char *pattern;
} opt;

static uint64_t *sums;
static size_t nsums;
static bool have_sums;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: blocksum --file PATH [--size BYTES]\n"
		"       blocksum --pattern A|B --seed N --size BYTES\n"
		"  Print {\"file\", \"size\", \"block_size\": 4096, \"blocks\": [16-hex-digit FNV-1a 64, ...]}\n"
		"  for each 4096-byte block of PATH (plain read()) or of a generated pattern.\n");
}

static void extra(struct jbuf *j)
{
	jk_str(j, "pattern", opt.pattern);
	if (opt.tag)
		jk_u64(j, "seed", co.seed);
	else
		jk_null(j, "seed");
	jk_sums(j, "blocks", have_sums ? sums : NULL, nsums);
}

static void own_opt(int c, const char *arg)
{
	(void)c; /* only --pattern */
	opt.pattern = arg;
	if (!strcmp(arg, "A") || !strcmp(arg, "a"))
		opt.tag = TAG_A;
	else if (!strcmp(arg, "B") || !strcmp(arg, "b"))
		opt.tag = TAG_B;
	else
		usage_fail(usage, "--pattern must be A or B: '%s'", arg);
}

static const struct option own_opts[] = {
	{ "pattern", required_argument, NULL, 'p' },
	{ 0 }
};

static const struct program prog = {
	.name = "blocksum",
	.usage = usage,
	.extra = extra,
	.common = CLI_FILE | CLI_SIZE_ANY | CLI_SEED,
	.own = own_opts,
	.own_opt = own_opt,
};

static void check_args(void)
{
	if (!!co.file == !!opt.tag)
		usage_fail(usage, "exactly one of --file PATH or --pattern A|B is required");
	if (opt.tag && (!co.have_seed || !co.have_size))
		usage_fail(usage, "--pattern needs --seed N and --size BYTES");
	if (opt.tag && co.size > (1ULL << 34))
		usage_fail(usage, "--size is too large for a generated pattern");
	if (co.file && co.have_seed)
		usage_fail(usage, "--seed only applies to --pattern");
}

static void sum_file(void)
{
	size_t cap = 256;
	unsigned char *blk = malloc(PR_BLOCK);
	uint64_t total = 0;
	int fd;

	sums = malloc(cap * sizeof(*sums));
	if (!blk || !sums)
		fail_errno(ENOMEM, "allocating buffers");
	fd = open(co.file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail_errno(errno, "open(%s)", co.file);
	for (;;) {
		size_t want = PR_BLOCK, got = 0;

		if (co.have_size) {
			if (total >= co.size)
				break;
			if (co.size - total < want)
				want = (size_t)(co.size - total);
		}
		/* fill a whole block unless EOF */
		while (got < want) {
			ssize_t n = read(fd, blk + got, want - got);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				fail_errno(errno, "read(%s) at offset %" PRIu64, co.file, total + got);
			}
			if (n == 0)
				break;
			got += (size_t)n;
		}
		if (got == 0)
			break;
		if (nsums == cap) {
			uint64_t *s;
			cap *= 2;
			s = realloc(sums, cap * sizeof(*sums));
			if (!s)
				fail_errno(ENOMEM, "allocating checksums");
			sums = s;
		}
		sums[nsums++] = fnv1a64(blk, got);
		total += got;
		if (got < want)
			break; /* EOF */
	}
	close(fd);
	free(blk);
	R.size = total;
	have_sums = true;
}

int main(int argc, char **argv)
{
	program_start(&prog, &co, argc, argv);
	check_args();
	R.file = co.file;

	if (opt.tag) {
		R.size = co.size;
		sums = pattern_checksums(co.seed, (uint64_t)opt.tag, co.size, &nsums);
		if (!sums)
			fail_errno(ENOMEM, "allocating checksums");
		have_sums = true;
	} else {
		sum_file();
	}
	report_emit();
	return 0;
}
