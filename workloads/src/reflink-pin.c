/* SPDX-License-Identifier: MIT */
/*
 * reflink-pin: COW sharing of a file whose pages a device holds pinned.
 *
 *   1. (--how snapshot) create a btrfs subvolume DIR/vol and put --file in it
 *   2. MAP_SHARED the file; the CPU writes pattern A; fsync
 *   3. register a writable MR on the mapping (long-term pin); a refusal is a
 *      valid outcome: report it and exit 0
 *   4. fsync: writeback cleans the pinned pages
 *   5. share the blocks: --how reflink: FICLONE into --clone (what
 *      `cp --reflink=always` does); --how snapshot: a btrfs snapshot of the
 *      subvolume (BTRFS_IOC_SNAP_CREATE_V2), the clone is the file in it
 *   6. (--dirty) the CPU writes every page of the original without changing it
 *      (atomic add of 0): the filesystem must COW these blocks at writeback
 *   7. RDMA WRITE pattern B through the pin (loopback RC QP)
 *   8. (--control) deregister the MR (the unpin dirties the pages)
 *   9. fsync the original and the clone; the JSON line: the original should
 *      hold B, the clone A (the host checks both after the power cut)
 *  10. --hold: keep everything registered until the host crashes the guest
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <linux/btrfs.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "rdma_loop.h"
#include "report.h"

static struct common_opts co = COMMON_OPTS_DEFAULTS;

static struct {
	const char *clone;
	bool snapshot;
	bool dirty;
	bool control;
} opt;

static struct {
	struct rdma_loop rl;
	const char *rdma_status;         /* of the last RDMA WRITE through the pin */
	long long memlock;
	char file[4096];
	char clone[4096];
	int landed;
	bool deregistered;
	uint64_t dirtied;
} st = { .memlock = -2, .landed = -1 };

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

static void usage(FILE *f)
{
	fprintf(f,
		"usage: reflink-pin --file PATH --clone PATH [--how reflink|snapshot] [--dirty]\n"
		"                   [--control] [--size BYTES] [--seed N] [--device NAME] [--hold]\n"
		"  Pin a MAP_SHARED file as an RDMA MR, clone it (FICLONE, or a btrfs snapshot of the\n"
		"  subvolume the program creates in PATH's directory), RDMA WRITE pattern B through the\n"
		"  pin, fsync both: the original should hold B, the clone A.\n"
		"  --how snapshot  PATH's directory must be on btrfs; the file goes to DIR/vol/NAME,\n"
		"                  the clone is DIR/snap/NAME (--clone is ignored)\n"
		"  --dirty         CPU-write every page (content unchanged) after the clone\n"
		"  --control       deregister the MR before the final fsync\n");
}

static void extra(struct jbuf *j)
{
	jk_str(j, "how", opt.snapshot ? "snapshot" : "reflink");
	jk_str(j, "original", st.file[0] ? st.file : co.file);
	jk_str(j, "clone", st.clone[0] ? st.clone : opt.clone);
	jk_bool(j, "dirty", opt.dirty);
	jk_bool(j, "control", opt.control);
	jk_u64(j, "pages_dirtied", st.dirtied);
	jk_bool(j, "deregistered_before_final_fsync", st.deregistered);
	jk_u64(j, "seed", co.seed);
	jk_bool(j, "hold", co.hold);
	jk_memlock(j, st.memlock);
	jk_str(j, "device", st.rl.devname[0] ? st.rl.devname : co.device);
	jk_str(j, "rdma_status", st.rdma_status);
	jk_landed(j, "rdma_landed", st.landed, co.size / PR_BLOCK);
}

static void own_opt(int c, const char *arg)
{
	switch (c) {
	case 'c': opt.clone = arg; break;
	case 'w':
		if (!strcmp(arg, "reflink"))
			opt.snapshot = false;
		else if (!strcmp(arg, "snapshot"))
			opt.snapshot = true;
		else
			usage_fail(usage, "--how must be reflink or snapshot: '%s'", arg);
		break;
	case 'y': opt.dirty = true; break;
	case 'k': opt.control = true; break;
	}
}

static const struct option own_opts[] = {
	{ "clone", required_argument, NULL, 'c' },
	{ "how", required_argument, NULL, 'w' },
	{ "dirty", no_argument, NULL, 'y' },
	{ "control", no_argument, NULL, 'k' },
	{ 0 }
};

static const struct program prog = {
	.name = "reflink-pin",
	.usage = usage,
	.extra = extra,
	.fault_handler = true,
	.stages = true,
	.expected = true,
	.common = CLI_FILE | CLI_SIZE | CLI_SEED | CLI_DEVICE | CLI_TIMEOUT | CLI_HOLD,
	.own = own_opts,
	.own_opt = own_opt,
};

/* DIR/vol/NAME, DIR/snap/NAME; the subvolume DIR/vol is created */
static void make_subvolume(void)
{
	char tmp[4096], dir[2048], name[256];
	struct btrfs_ioctl_vol_args va;
	int dfd;

	snprintf(tmp, sizeof(tmp), "%s", co.file);
	snprintf(dir, sizeof(dir), "%s", dirname(tmp));
	snprintf(tmp, sizeof(tmp), "%s", co.file);
	snprintf(name, sizeof(name), "%s", basename(tmp));
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		fail_errno(errno, "open(%s)", dir);
	memset(&va, 0, sizeof(va));
	snprintf(va.name, sizeof(va.name), "vol");
	if (ioctl(dfd, BTRFS_IOC_SUBVOL_CREATE, &va) != 0)
		fail_errno(errno, "BTRFS_IOC_SUBVOL_CREATE(%s/vol) (is %s on btrfs?)", dir, dir);
	close(dfd);
	snprintf(st.file, sizeof(st.file), "%s/vol/%s", dir, name);
	snprintf(st.clone, sizeof(st.clone), "%s/snap/%s", dir, name);
}

static void take_snapshot(void)
{
	char tmp[4096], dir[2048], vol[2100];
	struct btrfs_ioctl_vol_args_v2 va;
	int dfd, vfd;

	snprintf(tmp, sizeof(tmp), "%s", co.file);
	snprintf(dir, sizeof(dir), "%s", dirname(tmp));
	snprintf(vol, sizeof(vol), "%s/vol", dir);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	vfd = open(vol, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || vfd < 0)
		fail_errno(errno, "open(%s or %s)", dir, vol);
	memset(&va, 0, sizeof(va));
	va.fd = vfd;
	snprintf(va.name, sizeof(va.name), "snap");
	if (ioctl(dfd, BTRFS_IOC_SNAP_CREATE_V2, &va) != 0)
		fail_errno(errno, "BTRFS_IOC_SNAP_CREATE_V2(%s -> %s/snap)", vol, dir);
	close(vfd);
	close(dfd);
}

static void reflink(int fd)
{
	int cfd = open(st.clone, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (cfd < 0)
		fail_errno(errno, "open(%s)", st.clone);
	if (ioctl(cfd, FICLONE, fd) != 0)
		fail_errno(errno, "ioctl(FICLONE, %s -> %s)", st.file, st.clone);
	if (fsync(cfd) != 0)
		fail_errno(errno, "fsync(%s)", st.clone);
	close(cfd);
}

int main(int argc, char **argv)
{
	struct ibv_mr *file_mr, *src_mr;
	unsigned char *map, *src;
	int fd, cfd;

	program_start(&prog, &co, argc, argv);
	if (!co.file || !*co.file)
		usage_fail(usage, "--file PATH is required");
	if (!opt.snapshot && (!opt.clone || !*opt.clone))
		usage_fail(usage, "--clone PATH is required with --how reflink");
	if (opt.snapshot) {
		make_subvolume();
	} else {
		snprintf(st.file, sizeof(st.file), "%s", co.file);
		snprintf(st.clone, sizeof(st.clone), "%s", opt.clone);
	}
	R.file = st.file;
	R.size = co.size;
	st.memlock = raise_memlock();
	rdma_loop_open(&st.rl, co.device, 1, 1, co.timeout);

	/* 2. pattern A on disk */
	fd = open(st.file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_errno(errno, "open(%s)", st.file);
	if (ftruncate(fd, (off_t)co.size) != 0)
		fail_errno(errno, "ftruncate(%s)", st.file);
	map = mmap(NULL, co.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		fail_errno(errno, "mmap(%s, MAP_SHARED)", st.file);
	pattern_fill(map, co.seed, TAG_A, 0, co.size);
	if (fsync(fd) != 0)
		fail_errno(errno, "fsync #1 (%s)", st.file);
	stage("fsync1", map);

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
	stage("registered", map);
	/* 4. clean */
	if (fsync(fd) != 0)
		fail_errno(errno, "fsync #2 (%s)", st.file);
	stage("fsync2", map);

	/* 5. share the blocks */
	if (opt.snapshot)
		take_snapshot();
	else
		reflink(fd);
	stage("cloned", map);

	/* 6. the CPU dirties the original (the filesystem must COW it) */
	if (opt.dirty) {
		for (uint64_t off = 0; off < co.size; off += PR_BLOCK, st.dirtied++)
			__atomic_fetch_add((uint64_t *)(map + off), 0, __ATOMIC_SEQ_CST);
		stage("dirtied", map);
	}

	/* 7. the device writes B through the pin */
	src = mmap(NULL, co.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED)
		fail_errno(errno, "mmap(source buffer)");
	pattern_fill(src, co.seed, TAG_B, 0, co.size);
	errno = 0;
	src_mr = ibv_reg_mr(st.rl.pd, src, co.size, IBV_ACCESS_LOCAL_WRITE);
	if (!src_mr)
		fail_errno(errno ? errno : ENOMEM, "ibv_reg_mr(source buffer)");
	rdma_loop_connect(&st.rl);
	device_write(src, src_mr->lkey, map, file_mr->rkey, co.size);
	stage("rdma_write_b", map);
	st.landed = (int)count_pattern_blocks(map, co.seed, TAG_B, co.size);

	/* 8-9. */
	if (opt.control) {
		if (ibv_dereg_mr(file_mr) != 0)
			fail("ibv_dereg_mr(file MR) failed");
		file_mr = NULL;
		st.deregistered = true;
		stage("deregistered", map);
	}
	if (fsync(fd) != 0)
		fail_errno(errno, "fsync #3 (%s)", st.file);
	cfd = open(st.clone, O_RDONLY | O_CLOEXEC);
	if (cfd < 0 || fsync(cfd) != 0)
		fail_errno(errno, "fsync(%s)", st.clone);
	close(cfd);
	stage("fsync3", map);
	set_expected_pattern(co.seed, TAG_B, co.size);
	report_emit();
	if (co.hold)
		hold_forever();
	if (file_mr)
		ibv_dereg_mr(file_mr);
	ibv_dereg_mr(src_mr);
	rdma_loop_close(&st.rl);
	munmap(map, co.size);
	close(fd);
	return 0;
}
