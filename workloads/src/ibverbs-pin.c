/* SPDX-License-Identifier: MIT */
/*
 * ibverbs-pin: does the kernel grant a long-term pin (ibv_reg_mr) of a
 * file-backed (or anonymous) mapping?
 *
 * Creates/truncates FILE, maps it (shared or private), writes pattern A
 * through the mapping, registers the whole mapping as a memory region and
 * reports "granted" or "refused" with the errno.  A granted MR is
 * deregistered again at once.
 */
#include <getopt.h>

#include "verbs_util.h"

static struct {
	const char *file;
	uint64_t size;
	bool shared;
	const char *access_name;
	int access;
	const char *device;
	uint64_t seed;
	bool anon;
} opt = {
	.size = DEFAULT_SIZE,
	.shared = true,
	.access_name = "rw",
	.access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE,
	.seed = 1,
};

static char devname_buf[64];
static long long memlock = -2;
static int pattern_intact = -1; /* -1 unknown */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ibverbs-pin --file PATH [--size BYTES] [--map shared|private]\n"
		"                   [--access rw|ro|none] [--device NAME] [--seed N]\n"
		"       ibverbs-pin --anon [--file ''] [...]\n"
		"  Register a mapping of PATH (or an anonymous mapping with --anon) as an\n"
		"  RDMA memory region and report whether the long-term pin was granted.\n"
		"  --size     mapping size, multiple of 4096 (default 1M)\n"
		"  --map      MAP_SHARED (default) or MAP_PRIVATE\n"
		"  --access   rw = LOCAL_WRITE|REMOTE_WRITE (default), ro = REMOTE_READ, none = 0\n"
		"  --device   RDMA device name (default: the first one)\n"
		"  --seed     pattern seed (default 1)\n");
}

static void extra(struct jbuf *j)
{
	jk_str(j, "map", opt.shared ? "shared" : "private");
	jk_bool(j, "anon", opt.anon);
	jk_str(j, "access", opt.access_name);
	jk_str(j, "access_flags", access_str(opt.access));
	jk_str(j, "device", devname_buf[0] ? devname_buf : opt.device);
	jk_u64(j, "seed", opt.seed);
	if (memlock == -1)
		jk_str(j, "memlock_limit", "unlimited");
	else
		jk_opt(j, "memlock_limit", memlock);
	jb_key(j, "pattern_intact");
	if (pattern_intact < 0)
		jb_null(j);
	else
		jb_bool(j, pattern_intact);
}

static void parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "size", required_argument, NULL, 's' },
		{ "map", required_argument, NULL, 'm' },
		{ "access", required_argument, NULL, 'a' },
		{ "device", required_argument, NULL, 'd' },
		{ "seed", required_argument, NULL, 'S' },
		{ "anon", no_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': opt.file = optarg; break;
		case 's':
			if (!parse_size(optarg, &opt.size))
				usage_fail(usage, "--size must be a positive multiple of 4096 up to 1G: '%s'", optarg);
			break;
		case 'm':
			if (!strcmp(optarg, "shared"))
				opt.shared = true;
			else if (!strcmp(optarg, "private"))
				opt.shared = false;
			else
				usage_fail(usage, "--map must be shared or private: '%s'", optarg);
			break;
		case 'a':
			opt.access_name = optarg;
			if (!strcmp(optarg, "rw"))
				opt.access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
			else if (!strcmp(optarg, "ro"))
				opt.access = IBV_ACCESS_REMOTE_READ;
			else if (!strcmp(optarg, "none"))
				opt.access = 0;
			else
				usage_fail(usage, "--access must be rw, ro or none: '%s'", optarg);
			break;
		case 'd': opt.device = optarg; break;
		case 'S':
			if (!parse_u64(optarg, &opt.seed))
				usage_fail(usage, "--seed must be an unsigned integer: '%s'", optarg);
			break;
		case 'A': opt.anon = true; break;
		case 'h': usage(stdout); exit(0);
		default:
			usage_fail(usage, "%s", bad_option(argc, argv, optopt, optind));
		}
	}
	if (optind < argc)
		usage_fail(usage, "unexpected argument '%s'", argv[optind]);
	if (opt.anon && opt.file && *opt.file)
		usage_fail(usage, "--anon takes no file (use --file '')");
	if (!opt.anon && (!opt.file || !*opt.file))
		usage_fail(usage, "--file PATH is required (or --anon)");
}

int main(int argc, char **argv)
{
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_mr *mr;
	void *map;
	int fd = -1;

	report_init("ibverbs-pin");
	install_fault_handler();
	R.extra = extra;
	R.with_stages = true;
	parse_args(argc, argv);
	R.file = opt.anon ? "" : opt.file;
	R.size = opt.size;

	memlock = raise_memlock();
	ctx = open_ibv_device(opt.device, devname_buf, sizeof(devname_buf));
	pd = alloc_pd_or_fail(ctx);

	if (opt.anon) {
		map = mmap(NULL, opt.size, PROT_READ | PROT_WRITE,
			   (opt.shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);
		if (map == MAP_FAILED)
			fail_errno(errno, "mmap(anonymous, %" PRIu64 ")", opt.size);
	} else {
		fd = open(opt.file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			fail_errno(errno, "open(%s)", opt.file);
		if (ftruncate(fd, (off_t)opt.size) != 0)
			fail_errno(errno, "ftruncate(%s, %" PRIu64 ")", opt.file, opt.size);
		map = mmap(NULL, opt.size, PROT_READ | PROT_WRITE,
			   opt.shared ? MAP_SHARED : MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED)
			fail_errno(errno, "mmap(%s)", opt.file);
	}
	stage("mapped", map);

	pattern_fill(map, opt.seed, TAG_A, 0, opt.size);
	stage("cpu_write_a", map);

	pr_log("ibv_reg_mr(%p, %" PRIu64 ", %s) on a %s %s mapping", map, opt.size,
	       access_str(opt.access), opt.shared ? "shared" : "private", opt.anon ? "anonymous" : "file");
	errno = 0;
	mr = ibv_reg_mr(pd, map, opt.size, opt.access);
	if (!mr) {
		int e = errno;
		R.pin = "refused";
		R.err = e;
		if (!e)
			snprintf(R.error, sizeof(R.error), "ibv_reg_mr returned NULL without setting errno");
		pr_log("pin refused: %s (%s)", e ? errno_name(e) : "no errno", e ? strerror(e) : "?");
		stage("refused", map);
	} else {
		R.pin = "granted";
		pr_log("pin granted: lkey=0x%x rkey=0x%x", mr->lkey, mr->rkey);
		stage("registered", map);
		errno = 0;
		if (ibv_dereg_mr(mr) != 0)
			fail_errno(errno ? errno : EIO, "ibv_dereg_mr failed");
		stage("deregistered", map);
	}
	pattern_intact = count_pattern_blocks(map, opt.seed, TAG_A, opt.size) == opt.size / PR_BLOCK;

	munmap(map, opt.size);
	if (fd >= 0)
		close(fd);
	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	report_emit();
	return 0;
}
