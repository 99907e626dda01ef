/* SPDX-License-Identifier: MIT */
/* pinrig guest workloads: shared helpers (see common.h). */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common.h"

const char *pr_prog = "pinrig";

/* ------------------------------------------------------------------ */
/* logging                                                             */

void pr_log(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", pr_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ------------------------------------------------------------------ */
/* errno names                                                         */

const char *errno_name(int e)
{
	static char buf[24];

	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EINTR: return "EINTR";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case E2BIG: return "E2BIG";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EILSEQ: return "EILSEQ";
	case EUCLEAN: return "EUCLEAN";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case EXDEV: return "EXDEV";
	case ENODEV: return "ENODEV";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case EINVAL: return "EINVAL";
	case ENFILE: return "ENFILE";
	case EMFILE: return "EMFILE";
	case ETXTBSY: return "ETXTBSY";
	case EFBIG: return "EFBIG";
	case ENOSPC: return "ENOSPC";
	case ESPIPE: return "ESPIPE";
	case EROFS: return "EROFS";
	case ERANGE: return "ERANGE";
	case ENOSYS: return "ENOSYS";
	case ENODATA: return "ENODATA";
	case ETIME: return "ETIME";
	case EOVERFLOW: return "EOVERFLOW";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ETIMEDOUT: return "ETIMEDOUT";
	case ECANCELED: return "ECANCELED";
	case EHWPOISON: return "EHWPOISON";
	default:
		snprintf(buf, sizeof(buf), "E%d", e);
		return buf;
	}
}

/* ------------------------------------------------------------------ */
/* pattern and checksums                                               */

static inline uint64_t splitmix64_mix(uint64_t x)
{
	uint64_t z = x + 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* word k (little-endian u64 at byte offset 8k) of pattern `tag` */
static inline uint64_t pattern_word(uint64_t seed, uint64_t tag, uint64_t k)
{
	return splitmix64_mix(seed ^ (tag << 56) ^ k);
}

void pattern_fill(void *dst, uint64_t seed, uint64_t tag, uint64_t offset, size_t len)
{
	unsigned char *p = dst;

	while (len && (offset & 7)) {
		uint64_t w = pattern_word(seed, tag, offset >> 3);
		*p++ = (unsigned char)(w >> (8 * (offset & 7)));
		offset++;
		len--;
	}
	while (len >= 8) {
		uint64_t w = htole64(pattern_word(seed, tag, offset >> 3));
		memcpy(p, &w, 8);
		p += 8;
		offset += 8;
		len -= 8;
	}
	if (len) {
		uint64_t w = pattern_word(seed, tag, offset >> 3);
		for (size_t i = 0; i < len; i++)
			p[i] = (unsigned char)(w >> (8 * i));
	}
}

bool pattern_matches(const void *p, uint64_t seed, uint64_t tag, uint64_t offset, size_t len)
{
	const unsigned char *c = p;

	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, c + i, 8);
		if (le64toh(w) != pattern_word(seed, tag, (offset + i) >> 3))
			return false;
	}
	return true;
}

uint64_t fnv1a64(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

uint64_t *pattern_checksums(uint64_t seed, uint64_t tag, uint64_t size, size_t *nblocks)
{
	size_t n = (size_t)((size + PR_BLOCK - 1) / PR_BLOCK);
	uint64_t *sums = calloc(n ? n : 1, sizeof(*sums));
	unsigned char *blk = malloc(PR_BLOCK);

	if (!sums || !blk) {
		free(sums);
		free(blk);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t off = (uint64_t)i * PR_BLOCK;
		size_t len = size - off < PR_BLOCK ? (size_t)(size - off) : PR_BLOCK;
		pattern_fill(blk, seed, tag, off, len);
		sums[i] = fnv1a64(blk, len);
	}
	free(blk);
	*nblocks = n;
	return sums;
}

size_t count_pattern_blocks(const void *p, uint64_t seed, uint64_t tag, uint64_t size)
{
	size_t good = 0;

	for (uint64_t off = 0; off < size; off += PR_BLOCK) {
		size_t len = size - off < PR_BLOCK ? (size_t)(size - off) : PR_BLOCK;
		if (pattern_matches((const unsigned char *)p + off, seed, tag, off, len))
			good++;
	}
	return good;
}

/* ------------------------------------------------------------------ */
/* diagnostics                                                         */

static const char *const vm_counter[VM_NR] = {
	"nr_foll_pin_acquired", "nr_foll_pin_released", "nr_dirty", "nr_writeback",
};
const char *const vm_json_key[VM_NR] = {
	"foll_pin_acquired", "foll_pin_released", "nr_dirty", "nr_writeback",
};

void vmstat_snapshot(long long v[VM_NR])
{
	char line[256];
	FILE *f;

	for (int i = 0; i < VM_NR; i++)
		v[i] = -1;
	f = fopen("/proc/vmstat", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char name[128];
		long long val;
		if (sscanf(line, "%127s %lld", name, &val) != 2)
			continue;
		for (int i = 0; i < VM_NR; i++)
			if (!strcmp(name, vm_counter[i]))
				v[i] = val;
	}
	fclose(f);
}

const char *const kpf_names[] = {
	"LOCKED", "ERROR", "REFERENCED", "UPTODATE", "DIRTY", "LRU", "ACTIVE",
	"SLAB", "WRITEBACK", "RECLAIM", "BUDDY", "MMAP", "ANON", "SWAPCACHE",
	"SWAPBACKED", "COMPOUND_HEAD", "COMPOUND_TAIL", "HUGE", "UNEVICTABLE",
	"HWPOISON", "NOPAGE", "KSM", "THP", "OFFLINE", "ZERO_PAGE", "IDLE",
	"PGTABLE",
};
const size_t kpf_count = sizeof(kpf_names) / sizeof(kpf_names[0]);

bool page_info(const void *addr, uint64_t *pagemap, bool *have_pagemap, uint64_t *flags)
{
	long psz = sysconf(_SC_PAGESIZE);
	uint64_t ent = 0, pfn;
	int fd;
	bool ok = false;

	*have_pagemap = false;
	if (!addr || psz <= 0)
		return false;
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (pread(fd, &ent, 8, (off_t)((uintptr_t)addr / (uintptr_t)psz) * 8) == 8) {
		*pagemap = ent;
		*have_pagemap = true;
	}
	close(fd);
	if (!*have_pagemap || !(ent >> 63))
		return false;
	pfn = ent & ((1ULL << 55) - 1);
	if (!pfn)
		return false;
	fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (pread(fd, flags, 8, (off_t)(pfn * 8)) == 8)
		ok = true;
	close(fd);
	return ok;
}

/* ------------------------------------------------------------------ */
/* parsing, files, process                                             */

bool parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	if (!s || !*s || *s == '-')
		return false;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return false;
	if (*end) {
		switch (*end) {
		case 'k': case 'K': mul = 1ULL << 10; break;
		case 'm': case 'M': mul = 1ULL << 20; break;
		case 'g': case 'G': mul = 1ULL << 30; break;
		default: return false;
		}
		end++;
		if (*end == 'i' || *end == 'I')
			end++;
		if (*end == 'b' || *end == 'B')
			end++;
		if (*end)
			return false;
	}
	if (v > UINT64_MAX / mul)
		return false;
	*out = v * mul;
	return true;
}

bool parse_size(const char *s, uint64_t *out)
{
	uint64_t v;

	if (!parse_u64(s, &v) || v == 0 || v % PR_BLOCK || v > (1ULL << 30))
		return false;
	*out = v;
	return true;
}

long long raise_memlock(void)
{
	struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };

	if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
		getrlimit(RLIMIT_MEMLOCK, &rl);
	return rl.rlim_cur == RLIM_INFINITY ? -1 : (long long)rl.rlim_cur;
}

int pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

int create_pattern_file(const char *path, uint64_t seed, uint64_t tag, uint64_t size)
{
	unsigned char *buf;
	size_t chunk = 1u << 20;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		return -1;
	buf = malloc(chunk);
	if (!buf) {
		close(fd);
		errno = ENOMEM;
		return -1;
	}
	for (uint64_t off = 0; off < size; off += chunk) {
		size_t len = size - off < chunk ? (size_t)(size - off) : chunk;
		if (tag)
			pattern_fill(buf, seed, tag, off, len);
		else
			memset(buf, 0, len);
		if (pwrite_all(fd, buf, len, (off_t)off) != 0) {
			int e = errno;
			free(buf);
			close(fd);
			errno = e;
			return -1;
		}
	}
	free(buf);
	if (fsync(fd) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

void hold_forever(void)
{
	fflush(stdout);
	fputs("PINRIG-HOLD\n", stderr);
	fflush(stderr);
	for (;;)
		pause();
}
