/* SPDX-License-Identifier: MIT */
/*
 * pinrig guest workloads: shared helpers (common.c).
 *
 *  - logging to stderr, prefixed with the program name
 *  - errno naming
 *  - the deterministic data pattern (splitmix64) and FNV-1a block checksums
 *  - diagnostics: /proc/vmstat counters and /proc/kpageflags of a mapped page
 *  - size parsing, RLIMIT_MEMLOCK, pattern files, --hold
 *
 * The result object, fail() and usage errors are in report.h, the JSON
 * writer in json.h, the shared command-line flags in cli.h.
 */
#ifndef PINRIG_COMMON_H
#define PINRIG_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PR_BLOCK 4096u
#define TAG_A 1u
#define TAG_B 2u
#define DEFAULT_SIZE (1024u * 1024u)

/* ------------------------------------------------------------------ */
/* logging                                                             */

/* the program name prefixing every diagnostic line (set by report_init) */
extern const char *pr_prog;

/* "<prog>: <message>\n" on stderr */
void pr_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* symbolic errno name ("EFAULT"); "E<n>" for unknown values */
const char *errno_name(int e);

/* ------------------------------------------------------------------ */
/* pattern and checksums                                               */

/*
 * Word k (little-endian u64 at byte offset 8k) of pattern `tag` (A=1, B=2)
 * with seed s is splitmix64_mix(s ^ (tag << 56) ^ k); pinrig/cases/integrity.py
 * implements the same generator and the FNV-1a 64 block checksum.
 */

/* fill dst with bytes [offset, offset+len) of the pattern */
void pattern_fill(void *dst, uint64_t seed, uint64_t tag, uint64_t offset, size_t len);
/* does the block at p (len bytes, 8-aligned file offset) hold the pattern? */
bool pattern_matches(const void *p, uint64_t seed, uint64_t tag, uint64_t offset, size_t len);
uint64_t fnv1a64(const void *data, size_t len);
/* per-block checksums of pattern `tag` over [0, size); caller frees; NULL on ENOMEM */
uint64_t *pattern_checksums(uint64_t seed, uint64_t tag, uint64_t size, size_t *nblocks);
/* number of whole blocks of `p` (size bytes from file offset 0) holding `tag` */
size_t count_pattern_blocks(const void *p, uint64_t seed, uint64_t tag, uint64_t size);

/* ------------------------------------------------------------------ */
/* diagnostics                                                         */

enum { VM_PIN_ACQ, VM_PIN_REL, VM_DIRTY, VM_WRITEBACK, VM_NR };
/* the JSON key of each VM_* counter */
extern const char *const vm_json_key[VM_NR];
/* fill v[] from /proc/vmstat; -1 for counters that are absent */
void vmstat_snapshot(long long v[VM_NR]);

/* /proc/kpageflags bit names, bit 0 first */
extern const char *const kpf_names[];
extern const size_t kpf_count;

/*
 * Page-table entry (from /proc/self/pagemap) and kpageflags of the page
 * mapped at addr.  Never faults the page in.  Returns false for anything
 * unavailable (no such file, page not present, PFN hidden without
 * CAP_SYS_ADMIN).
 */
bool page_info(const void *addr, uint64_t *pagemap, bool *have_pagemap, uint64_t *flags);

/* ------------------------------------------------------------------ */
/* parsing, files, process                                             */

/* unsigned integer with optional K/M/G suffix (binary); false on garbage */
bool parse_u64(const char *s, uint64_t *out);
/* --size: positive multiple of the block size, at most 1 GiB */
bool parse_size(const char *s, uint64_t *out);

/* root has CAP_IPC_LOCK, but lift RLIMIT_MEMLOCK anyway; returns the limit in effect (-1 = unlimited) */
long long raise_memlock(void);

/* write all of buf at offset; 0 or -1 with errno */
int pwrite_all(int fd, const void *buf, size_t len, off_t off);
/* create/truncate path and fill [0,size) with pattern tag (0 = zeros); fsync; the fd or -1 with errno */
int create_pattern_file(const char *path, uint64_t seed, uint64_t tag, uint64_t size);

/* keep everything (pins included) alive until the host kills the machine */
void hold_forever(void) __attribute__((noreturn));

#endif /* PINRIG_COMMON_H */
