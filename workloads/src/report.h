/* SPDX-License-Identifier: MIT */
/*
 * pinrig guest workloads: the result object (report.c).
 *
 * Exactly one JSON line on stdout per run, flushed as soon as the outcome is
 * known: the common fields, then the program's own (R.extra), then "stages"
 * and "expected" for the programs that report them.  fail() and usage_fail()
 * emit it with an "error" and exit 1 or 2.
 */
#ifndef PINRIG_REPORT_H
#define PINRIG_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "json.h"

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
	bool with_expected;       /* emit "expected" (null unless set_expected_pattern() succeeded) */
	uint64_t *expected;
	size_t nexpected;
	void (*extra)(struct jbuf *j);
	bool emitted;
	struct timespec t0;
};

/* the one result object of this process */
extern struct report R;

/* seconds since report_init() */
double now_s(void);
/* start the clock; `workload` names the program in the JSON and on stderr */
void report_init(const char *workload);
/* record a diagnostic stage; addr is the first page of the mapping (or NULL) */
void stage(const char *name, const void *addr);
/* "expected" = the checksums of pattern `tag` over [0, size) */
void set_expected_pattern(uint64_t seed, uint64_t tag, uint64_t size);
/* print the one JSON line (once) */
void report_emit(void);

/* the pin was refused with errno e (0: `call` returned NULL without setting errno): log, stage "refused" */
void report_pin_refused(int e, const char *call, const void *map);

/* "memlock_limit": "unlimited" (v == -1), the limit, or null (not queried, v < -1) */
void jk_memlock(struct jbuf *j, long long v);
/* "<key>": all nblocks blocks landed (null when landed < 0 = not checked), "landed_blocks", "blocks" */
void jk_landed(struct jbuf *j, const char *key, int landed, uint64_t nblocks);

/* unexpected infrastructure failure: report and exit 1 */
void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* like fail(), recording errno e in the "errno" field */
#define fail_errno(e, fmt, ...) do {                                        \
		int e_ = (e);                                               \
		R.err = e_;                                                 \
		fail(fmt ": %s", ##__VA_ARGS__, strerror(e_));             \
	} while (0)

/* bad usage: message + usage on stderr, a JSON error line, exit 2 */
void usage_fail(void (*usage)(FILE *), const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

/* a SIGBUS/SIGSEGV while touching a mapping: report it (exit 1) instead of dying silently */
void install_fault_handler(void);

#endif /* PINRIG_REPORT_H */
