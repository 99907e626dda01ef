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
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli.h"
#include "report.h"
#include "verbs_util.h"

static struct common_opts co = COMMON_OPTS_DEFAULTS;

static struct {
	const char *access_name;
	int access;
	bool anon;
	bool leak;
} opt = {
	.access_name = "rw",
	.access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE,
};

static char devname_buf[64];
static long long memlock = -2;
static int pattern_intact = -1; /* -1 unknown */
static int leaked_pin = -1;     /* --leak: 1 when the test module took (and kept) a pin */

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
		"  --seed     pattern seed (default 1)\n"
		"  --leak     afterwards, have the test module (/proc/pinrig_oops) pin a page of\n"
		"             this process and never unpin it: a leak the rig's accounting must catch\n");
}

static void extra(struct jbuf *j)
{
	jk_str(j, "map", map_name(co.shared));
	jk_bool(j, "anon", opt.anon);
	jk_str(j, "access", opt.access_name);
	jk_str(j, "access_flags", access_str(opt.access));
	jk_str(j, "device", devname_buf[0] ? devname_buf : co.device);
	jk_u64(j, "seed", co.seed);
	jk_memlock(j, memlock);
	jk_tribool(j, "pattern_intact", pattern_intact);
	if (opt.leak)
		jk_tribool(j, "leaked_pin", leaked_pin);
}

static void own_opt(int c, const char *arg)
{
	switch (c) {
	case 'a':
		opt.access_name = arg;
		if (!strcmp(arg, "rw"))
			opt.access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
		else if (!strcmp(arg, "ro"))
			opt.access = IBV_ACCESS_REMOTE_READ;
		else if (!strcmp(arg, "none"))
			opt.access = 0;
		else
			usage_fail(usage, "--access must be rw, ro or none: '%s'", arg);
		break;
	case 'A': opt.anon = true; break;
	case 'L': opt.leak = true; break;
	}
}

static const struct option own_opts[] = {
	{ "access", required_argument, NULL, 'a' },
	{ "anon", no_argument, NULL, 'A' },
	{ "leak", no_argument, NULL, 'L' },
	{ 0 }
};

static const struct program prog = {
	.name = "ibverbs-pin",
	.usage = usage,
	.extra = extra,
	.fault_handler = true,
	.stages = true,
	.common = CLI_FILE | CLI_SIZE | CLI_MAP | CLI_DEVICE | CLI_SEED,
	.own = own_opts,
	.own_opt = own_opt,
};

int main(int argc, char **argv)
{
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_mr *mr;
	void *map;
	int fd = -1;

	program_start(&prog, &co, argc, argv);
	if (opt.anon && co.file && *co.file)
		usage_fail(usage, "--anon takes no file (use --file '')");
	if (!opt.anon && (!co.file || !*co.file))
		usage_fail(usage, "--file PATH is required (or --anon)");
	R.file = opt.anon ? "" : co.file;
	R.size = co.size;

	memlock = raise_memlock();
	ctx = open_ibv_device(co.device, devname_buf, sizeof(devname_buf));
	pd = alloc_pd_or_fail(ctx);

	if (opt.anon) {
		map = mmap(NULL, co.size, PROT_READ | PROT_WRITE,
			   (co.shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);
		if (map == MAP_FAILED)
			fail_errno(errno, "mmap(anonymous, %" PRIu64 ")", co.size);
	} else {
		fd = open(co.file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			fail_errno(errno, "open(%s)", co.file);
		if (ftruncate(fd, (off_t)co.size) != 0)
			fail_errno(errno, "ftruncate(%s, %" PRIu64 ")", co.file, co.size);
		map = mmap(NULL, co.size, PROT_READ | PROT_WRITE,
			   co.shared ? MAP_SHARED : MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED)
			fail_errno(errno, "mmap(%s)", co.file);
	}
	stage("mapped", map);

	pattern_fill(map, co.seed, TAG_A, 0, co.size);
	stage("cpu_write_a", map);

	pr_log("ibv_reg_mr(%p, %" PRIu64 ", %s) on a %s %s mapping", map, co.size,
	       access_str(opt.access), map_name(co.shared), opt.anon ? "anonymous" : "file");
	errno = 0;
	mr = ibv_reg_mr(pd, map, co.size, opt.access);
	if (!mr) {
		report_pin_refused(errno, "ibv_reg_mr", map);
	} else {
		R.pin = "granted";
		pr_log("pin granted: lkey=0x%x rkey=0x%x", mr->lkey, mr->rkey);
		stage("registered", map);
		errno = 0;
		if (ibv_dereg_mr(mr) != 0)
			fail_errno(errno ? errno : EIO, "ibv_dereg_mr failed");
		stage("deregistered", map);
	}
	pattern_intact = count_pattern_blocks(map, co.seed, TAG_A, co.size) == co.size / PR_BLOCK;

	if (opt.leak) {
		char cmd[] = "leak-pin";   /* writable: the module pins it with FOLL_WRITE */
		int pfd = open("/proc/pinrig_oops", O_WRONLY | O_CLOEXEC);

		if (pfd < 0)
			fail_errno(errno, "open(/proc/pinrig_oops): is the test module loaded?");
		leaked_pin = write(pfd, cmd, sizeof(cmd) - 1) == (ssize_t)(sizeof(cmd) - 1);
		if (!leaked_pin)
			fail_errno(errno ? errno : EIO, "write(/proc/pinrig_oops, leak-pin)");
		close(pfd);
	}

	munmap(map, co.size);
	if (fd >= 0)
		close(fd);
	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	report_emit();
	return 0;
}
