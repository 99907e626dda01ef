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
#include <getopt.h>

#include "common.h"

static struct {
	const char *file;
	bool have_size;
	uint64_t size;
	int tag; /* 0 = file mode */
	const char *pattern;
	bool have_seed;
	uint64_t seed;
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
		jk_u64(j, "seed", opt.seed);
	else
		jk_null(j, "seed");
	jb_key(j, "blocks");
	if (!have_sums) {
		jb_null(j);
		return;
	}
	jb_arr_open(j);
	for (size_t i = 0; i < nsums; i++)
		jb_sum(j, sums[i]);
	jb_arr_close(j);
}

static void parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "size", required_argument, NULL, 's' },
		{ "pattern", required_argument, NULL, 'p' },
		{ "seed", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': opt.file = optarg; break;
		case 's':
			if (!parse_u64(optarg, &opt.size))
				usage_fail(usage, "--size must be an unsigned integer: '%s'", optarg);
			opt.have_size = true;
			break;
		case 'p':
			opt.pattern = optarg;
			if (!strcmp(optarg, "A") || !strcmp(optarg, "a"))
				opt.tag = TAG_A;
			else if (!strcmp(optarg, "B") || !strcmp(optarg, "b"))
				opt.tag = TAG_B;
			else
				usage_fail(usage, "--pattern must be A or B: '%s'", optarg);
			break;
		case 'S':
			if (!parse_u64(optarg, &opt.seed))
				usage_fail(usage, "--seed must be an unsigned integer: '%s'", optarg);
			opt.have_seed = true;
			break;
		case 'h': usage(stdout); exit(0);
		default:
			usage_fail(usage, "%s", bad_option(argc, argv, optopt, optind));
		}
	}
	if (optind < argc)
		usage_fail(usage, "unexpected argument '%s'", argv[optind]);
	if (!!opt.file == !!opt.tag)
		usage_fail(usage, "exactly one of --file PATH or --pattern A|B is required");
	if (opt.tag && (!opt.have_seed || !opt.have_size))
		usage_fail(usage, "--pattern needs --seed N and --size BYTES");
	if (opt.tag && opt.size > (1ULL << 34))
		usage_fail(usage, "--size is too large for a generated pattern");
	if (opt.file && opt.have_seed)
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
	fd = open(opt.file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail_errno(errno, "open(%s)", opt.file);
	for (;;) {
		size_t want = PR_BLOCK, got = 0;

		if (opt.have_size) {
			if (total >= opt.size)
				break;
			if (opt.size - total < want)
				want = (size_t)(opt.size - total);
		}
		/* fill a whole block unless EOF */
		while (got < want) {
			ssize_t n = read(fd, blk + got, want - got);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				fail_errno(errno, "read(%s) at offset %" PRIu64, opt.file, total + got);
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
	report_init("blocksum");
	R.extra = extra;
	parse_args(argc, argv);
	R.file = opt.file;

	if (opt.tag) {
		R.size = opt.size;
		sums = pattern_checksums(opt.seed, (uint64_t)opt.tag, opt.size, &nsums);
		if (!sums)
			fail_errno(ENOMEM, "allocating checksums");
		have_sums = true;
	} else {
		sum_file();
	}
	report_emit();
	return 0;
}
