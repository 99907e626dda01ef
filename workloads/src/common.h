/* SPDX-License-Identifier: MIT */
/*
 * pinrig guest workloads: shared helpers (header only, one translation unit
 * per program).
 *
 *  - logging to stderr, prefixed with the program name
 *  - a tiny JSON writer and the common result object (exactly one JSON line
 *    on stdout per run, flushed as soon as the outcome is known)
 *  - errno naming
 *  - the deterministic data pattern (splitmix64) and FNV-1a block checksums
 *  - diagnostics: /proc/vmstat counters and /proc/kpageflags of a mapped page
 */
#ifndef PINRIG_COMMON_H
#define PINRIG_COMMON_H

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define PR_API static __attribute__((unused))

#define PR_BLOCK 4096u
#define TAG_A 1u
#define TAG_B 2u
#define DEFAULT_SIZE (1024u * 1024u)

PR_API const char *pr_prog = "pinrig";

/* ------------------------------------------------------------------ */
/* logging                                                             */

PR_API void pr_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
PR_API void pr_log(const char *fmt, ...)
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

PR_API const char *errno_name(int e)
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
/* JSON writer                                                         */

#define JB_MAXDEPTH 32

struct jbuf {
	char *s;
	size_t len, cap;
	int depth;
	bool first[JB_MAXDEPTH];
	bool after_key;
};

PR_API void jb_reserve(struct jbuf *j, size_t n)
{
	if (j->len + n + 1 <= j->cap)
		return;
	size_t cap = j->cap ? j->cap : 1024;
	while (j->len + n + 1 > cap)
		cap *= 2;
	char *s = realloc(j->s, cap);
	if (!s) {
		fprintf(stderr, "%s: out of memory building JSON\n", pr_prog);
		abort();
	}
	j->s = s;
	j->cap = cap;
}

PR_API void jb_raw(struct jbuf *j, const char *s, size_t n)
{
	jb_reserve(j, n);
	memcpy(j->s + j->len, s, n);
	j->len += n;
	j->s[j->len] = '\0';
}

PR_API void jb_rawz(struct jbuf *j, const char *s)
{
	jb_raw(j, s, strlen(s));
}

PR_API void jb_fmt(struct jbuf *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
PR_API void jb_fmt(struct jbuf *j, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(tmp)) {
		jb_raw(j, tmp, (size_t)n);
		return;
	}
	jb_reserve(j, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(j->s + j->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	j->len += (size_t)n;
}

/* separator before a value (or a key) */
PR_API void jb_sep(struct jbuf *j)
{
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (j->depth > 0) {
		if (!j->first[j->depth])
			jb_raw(j, ",", 1);
		j->first[j->depth] = false;
	}
}

PR_API void jb_quoted(struct jbuf *j, const char *s)
{
	jb_raw(j, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': jb_raw(j, "\\\"", 2); break;
		case '\\': jb_raw(j, "\\\\", 2); break;
		case '\n': jb_raw(j, "\\n", 2); break;
		case '\r': jb_raw(j, "\\r", 2); break;
		case '\t': jb_raw(j, "\\t", 2); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				jb_fmt(j, "\\u%04x", *p);
			else
				jb_raw(j, (const char *)p, 1);
		}
	}
	jb_raw(j, "\"", 1);
}

PR_API void jb_key(struct jbuf *j, const char *k)
{
	jb_sep(j);
	jb_quoted(j, k);
	jb_raw(j, ":", 1);
	j->after_key = true;
}

PR_API void jb_open(struct jbuf *j, char c)
{
	jb_sep(j);
	jb_raw(j, &c, 1);
	if (j->depth + 1 >= JB_MAXDEPTH)
		abort();
	j->depth++;
	j->first[j->depth] = true;
}

PR_API void jb_close(struct jbuf *j, char c)
{
	jb_raw(j, &c, 1);
	j->depth--;
}

PR_API void jb_obj_open(struct jbuf *j) { jb_open(j, '{'); }
PR_API void jb_obj_close(struct jbuf *j) { jb_close(j, '}'); }
PR_API void jb_arr_open(struct jbuf *j) { jb_open(j, '['); }
PR_API void jb_arr_close(struct jbuf *j) { jb_close(j, ']'); }

PR_API void jb_null(struct jbuf *j) { jb_sep(j); jb_rawz(j, "null"); }
PR_API void jb_str(struct jbuf *j, const char *s)
{
	jb_sep(j);
	if (s)
		jb_quoted(j, s);
	else
		jb_rawz(j, "null");
}
PR_API void jb_bool(struct jbuf *j, bool b) { jb_sep(j); jb_rawz(j, b ? "true" : "false"); }
PR_API void jb_i64(struct jbuf *j, long long v) { jb_sep(j); jb_fmt(j, "%lld", v); }
PR_API void jb_u64(struct jbuf *j, unsigned long long v) { jb_sep(j); jb_fmt(j, "%llu", v); }
PR_API void jb_dbl(struct jbuf *j, double v) { jb_sep(j); jb_fmt(j, "%.6f", v); }
PR_API void jb_hex(struct jbuf *j, uint64_t v) { jb_sep(j); jb_fmt(j, "\"0x%" PRIx64 "\"", v); }
PR_API void jb_sum(struct jbuf *j, uint64_t v) { jb_sep(j); jb_fmt(j, "\"%016" PRIx64 "\"", v); }

/* key + value shorthands */
PR_API void jk_str(struct jbuf *j, const char *k, const char *v) { jb_key(j, k); jb_str(j, v); }
PR_API void jk_bool(struct jbuf *j, const char *k, bool v) { jb_key(j, k); jb_bool(j, v); }
PR_API void jk_i64(struct jbuf *j, const char *k, long long v) { jb_key(j, k); jb_i64(j, v); }
PR_API void jk_u64(struct jbuf *j, const char *k, unsigned long long v) { jb_key(j, k); jb_u64(j, v); }
PR_API void jk_dbl(struct jbuf *j, const char *k, double v) { jb_key(j, k); jb_dbl(j, v); }
PR_API void jk_null(struct jbuf *j, const char *k) { jb_key(j, k); jb_null(j); }
/* non-negative value, or null when v < 0 ("unknown") */
PR_API void jk_opt(struct jbuf *j, const char *k, long long v)
{
	jb_key(j, k);
	if (v < 0)
		jb_null(j);
	else
		jb_i64(j, v);
}

/* ------------------------------------------------------------------ */
/* pattern and checksums                                               */

PR_API inline uint64_t splitmix64_mix(uint64_t x)
{
	uint64_t z = x + 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* word k (little-endian u64 at byte offset 8k) of pattern `tag` */
PR_API inline uint64_t pattern_word(uint64_t seed, uint64_t tag, uint64_t k)
{
	return splitmix64_mix(seed ^ (tag << 56) ^ k);
}

/* fill dst with bytes [offset, offset+len) of the pattern */
PR_API void pattern_fill(void *dst, uint64_t seed, uint64_t tag, uint64_t offset, size_t len)
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

/* does the block at p (len bytes, 8-aligned file offset) hold the pattern? */
PR_API bool pattern_matches(const void *p, uint64_t seed, uint64_t tag, uint64_t offset, size_t len)
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

PR_API uint64_t fnv1a64(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* per-block checksums of pattern `tag` over [0, size); caller frees */
PR_API uint64_t *pattern_checksums(uint64_t seed, uint64_t tag, uint64_t size, size_t *nblocks)
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

/* number of whole blocks of `p` (size bytes from file offset 0) holding `tag` */
PR_API size_t count_pattern_blocks(const void *p, uint64_t seed, uint64_t tag, uint64_t size)
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

enum { VM_PIN_ACQ, VM_PIN_REL, VM_DIRTY, VM_WRITEBACK, VM_NR };
PR_API const char *const vm_counter[VM_NR] = {
	"nr_foll_pin_acquired", "nr_foll_pin_released", "nr_dirty", "nr_writeback",
};
PR_API const char *const vm_json_key[VM_NR] = {
	"foll_pin_acquired", "foll_pin_released", "nr_dirty", "nr_writeback",
};

/* fill v[] from /proc/vmstat; -1 for counters that are absent */
PR_API void vmstat_snapshot(long long v[VM_NR])
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

PR_API const char *const kpf_names[] = {
	"LOCKED", "ERROR", "REFERENCED", "UPTODATE", "DIRTY", "LRU", "ACTIVE",
	"SLAB", "WRITEBACK", "RECLAIM", "BUDDY", "MMAP", "ANON", "SWAPCACHE",
	"SWAPBACKED", "COMPOUND_HEAD", "COMPOUND_TAIL", "HUGE", "UNEVICTABLE",
	"HWPOISON", "NOPAGE", "KSM", "THP", "OFFLINE", "ZERO_PAGE", "IDLE",
	"PGTABLE",
};

/*
 * Page-table entry (from /proc/self/pagemap) and kpageflags of the page
 * mapped at addr.  Never faults the page in.  Returns false for anything
 * unavailable (no such file, page not present, PFN hidden without
 * CAP_SYS_ADMIN).
 */
PR_API bool page_info(const void *addr, uint64_t *pagemap, bool *have_pagemap, uint64_t *flags)
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
/* the result object                                                   */

#define MAX_STAGES 32

struct stage {
	char name[48];
	double t;
	bool have_flags, have_pagemap;
	uint64_t flags, pagemap;
	long long vm[VM_NR];
};

struct report {
	const char *workload;
	const char *pin;          /* "granted" | "refused" | "n/a" */
	int err;                  /* errno for the "errno" field, 0 = null */
	const char *file;
	uint64_t size;
	char error[512];          /* "" = null */
	bool with_stages;
	struct stage stages[MAX_STAGES];
	int nstages;
	bool with_expected;       /* emit "expected" (null unless have_expected) */
	bool have_expected;
	uint64_t *expected;
	size_t nexpected;
	void (*extra)(struct jbuf *j);
	bool emitted;
	struct timespec t0;
};

static struct report R = { .pin = "n/a" };

PR_API double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)(ts.tv_sec - R.t0.tv_sec) + (double)(ts.tv_nsec - R.t0.tv_nsec) / 1e9;
}

PR_API void report_init(const char *workload)
{
	pr_prog = workload;
	R.workload = workload;
	R.pin = "n/a";
	clock_gettime(CLOCK_MONOTONIC, &R.t0);
	/* stdout carries exactly one JSON line; keep it fully buffered until we flush */
}

/* record a diagnostic stage; addr is the first page of the mapping (or NULL) */
PR_API void stage(const char *name, const void *addr)
{
	struct stage *s;

	if (R.nstages >= MAX_STAGES) {
		pr_log("too many stages, dropping '%s'", name);
		return;
	}
	s = &R.stages[R.nstages++];
	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->t = now_s();
	vmstat_snapshot(s->vm);
	s->have_flags = page_info(addr, &s->pagemap, &s->have_pagemap, &s->flags);
	if (s->have_flags)
		fprintf(stderr, "%s: stage %s: page0_flags=0x%" PRIx64 " foll_pin_acquired=%lld foll_pin_released=%lld\n",
			pr_prog, name, s->flags, s->vm[VM_PIN_ACQ], s->vm[VM_PIN_REL]);
	else
		fprintf(stderr, "%s: stage %s: page0_flags=n/a foll_pin_acquired=%lld foll_pin_released=%lld\n",
			pr_prog, name, s->vm[VM_PIN_ACQ], s->vm[VM_PIN_REL]);
}

PR_API void set_expected_pattern(uint64_t seed, uint64_t tag, uint64_t size)
{
	free(R.expected);
	R.expected = pattern_checksums(seed, tag, size, &R.nexpected);
	R.have_expected = R.expected != NULL;
}

PR_API void emit_stages(struct jbuf *j)
{
	jb_key(j, "stages");
	jb_arr_open(j);
	for (int i = 0; i < R.nstages; i++) {
		struct stage *s = &R.stages[i];
		jb_obj_open(j);
		jk_str(j, "stage", s->name);
		jk_dbl(j, "t", s->t);
		jb_key(j, "page0_flags");
		if (s->have_flags)
			jb_hex(j, s->flags);
		else
			jb_null(j);
		jb_key(j, "page0_flag_names");
		if (s->have_flags) {
			jb_arr_open(j);
			for (size_t b = 0; b < sizeof(kpf_names) / sizeof(kpf_names[0]); b++)
				if (s->flags & (1ULL << b))
					jb_str(j, kpf_names[b]);
			jb_arr_close(j);
		} else {
			jb_null(j);
		}
		jb_key(j, "page0_pagemap");
		if (s->have_pagemap)
			jb_hex(j, s->pagemap);
		else
			jb_null(j);
		for (int v = 0; v < VM_NR; v++)
			jk_opt(j, vm_json_key[v], s->vm[v]);
		jb_obj_close(j);
	}
	jb_arr_close(j);
}

/* print the one JSON line (once) */
PR_API void report_emit(void)
{
	struct jbuf j = { 0 };

	if (R.emitted)
		return;
	R.emitted = true;
	jb_obj_open(&j);
	jk_str(&j, "workload", R.workload);
	jk_str(&j, "pin", R.pin);
	jb_key(&j, "errno");
	if (R.err)
		jb_str(&j, errno_name(R.err));
	else
		jb_null(&j);
	jk_opt(&j, "errno_num", R.err ? R.err : -1);
	jk_str(&j, "file", R.file);
	jk_u64(&j, "size", R.size);
	jk_u64(&j, "block_size", PR_BLOCK);
	jb_key(&j, "error");
	if (R.error[0])
		jb_str(&j, R.error);
	else
		jb_null(&j);
	jk_dbl(&j, "elapsed_s", now_s());
	if (R.extra)
		R.extra(&j);
	if (R.with_stages)
		emit_stages(&j);
	if (R.with_expected) {
		jb_key(&j, "expected");
		if (R.have_expected) {
			jb_arr_open(&j);
			for (size_t i = 0; i < R.nexpected; i++)
				jb_sum(&j, R.expected[i]);
			jb_arr_close(&j);
		} else {
			jb_null(&j);
		}
	}
	jb_obj_close(&j);
	jb_raw(&j, "\n", 1);
	fwrite(j.s, 1, j.len, stdout);
	fflush(stdout);
	free(j.s);
}

/* unexpected infrastructure failure: report and exit 1 */
PR_API void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
PR_API void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(R.error, sizeof(R.error), fmt, ap);
	va_end(ap);
	pr_log("error: %s", R.error);
	report_emit();
	exit(1);
}

/* like fail(), recording errno e in the "errno" field */
#define fail_errno(e, fmt, ...) do {                                        \
		int e_ = (e);                                               \
		R.err = e_;                                                 \
		fail(fmt ": %s", ##__VA_ARGS__, strerror(e_));             \
	} while (0)

/* bad usage: message + usage on stderr, a JSON error line, exit 2 */
PR_API void usage_fail(void (*usage)(FILE *), const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
PR_API void usage_fail(void (*usage)(FILE *), const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", pr_prog, msg);
	usage(stderr);
	snprintf(R.error, sizeof(R.error), "usage: %s", msg);
	report_emit();
	exit(2);
}

/* the message for a getopt_long '?' return */
PR_API const char *bad_option(int argc, char **argv, int opt_optopt, int opt_optind)
{
	static char buf[160];

	if (opt_optopt)
		snprintf(buf, sizeof(buf), "unrecognized or incomplete option '-%c'", opt_optopt);
	else if (opt_optind > 0 && opt_optind <= argc)
		snprintf(buf, sizeof(buf), "unrecognized or incomplete option '%s'", argv[opt_optind - 1]);
	else
		snprintf(buf, sizeof(buf), "unrecognized option");
	return buf;
}

/* unsigned integer with optional K/M/G suffix (binary); false on garbage */
PR_API bool parse_u64(const char *s, uint64_t *out)
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

/* --size: positive multiple of the block size, at most 1 GiB */
PR_API bool parse_size(const char *s, uint64_t *out)
{
	uint64_t v;

	if (!parse_u64(s, &v) || v == 0 || v % PR_BLOCK || v > (1ULL << 30))
		return false;
	*out = v;
	return true;
}

/* root has CAP_IPC_LOCK, but lift RLIMIT_MEMLOCK anyway; returns the limit in effect */
PR_API long long raise_memlock(void)
{
	struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };

	if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
		getrlimit(RLIMIT_MEMLOCK, &rl);
	return rl.rlim_cur == RLIM_INFINITY ? -1 : (long long)rl.rlim_cur;
}

/* write all of buf at offset */
PR_API int pwrite_all(int fd, const void *buf, size_t len, off_t off)
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

/* create/truncate path and fill [0,size) with pattern tag (0 = zeros); fsync */
PR_API int create_pattern_file(const char *path, uint64_t seed, uint64_t tag, uint64_t size)
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

/*
 * A SIGBUS/SIGSEGV while touching a mapping (e.g. ENOSPC on a page fault of
 * a file mapping) is an infrastructure failure: report it instead of dying
 * silently.  Not strictly async-signal-safe, but the faults we expect happen
 * in our own copy loops, never inside stdio or malloc.
 */
PR_API void fault_handler(int sig)
{
	snprintf(R.error, sizeof(R.error), "fatal signal %s while accessing a mapping (ENOSPC or truncated file?)",
		 sig == SIGBUS ? "SIGBUS" : "SIGSEGV");
	report_emit();
	_exit(1);
}

PR_API void install_fault_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fault_handler;
	sa.sa_flags = SA_RESETHAND;
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
}

/* keep everything (pins included) alive until the host kills the machine */
PR_API void hold_forever(void) __attribute__((noreturn));
PR_API void hold_forever(void)
{
	fflush(stdout);
	fputs("PINRIG-HOLD\n", stderr);
	fflush(stderr);
	for (;;)
		pause();
}

#endif /* PINRIG_COMMON_H */
