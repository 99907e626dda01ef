/* SPDX-License-Identifier: MIT */
/* pinrig guest workloads: the result object (see report.h). */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "report.h"

struct report R = { .pin = "n/a" };

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)(ts.tv_sec - R.t0.tv_sec) + (double)(ts.tv_nsec - R.t0.tv_nsec) / 1e9;
}

void report_init(const char *workload)
{
	pr_prog = workload;
	R.workload = workload;
	R.pin = "n/a";
	clock_gettime(CLOCK_MONOTONIC, &R.t0);
	/* stdout carries exactly one JSON line; keep it fully buffered until we flush */
}

void stage(const char *name, const void *addr)
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

void set_expected_pattern(uint64_t seed, uint64_t tag, uint64_t size)
{
	free(R.expected);
	R.expected = pattern_checksums(seed, tag, size, &R.nexpected);
}

void report_pin_refused(int e, const char *call, const void *map)
{
	R.pin = "refused";
	R.err = e;
	if (!e)
		snprintf(R.error, sizeof(R.error), "%s returned NULL without setting errno", call);
	pr_log("pin refused: %s (%s)", e ? errno_name(e) : "no errno", e ? strerror(e) : "?");
	stage("refused", map);
}

void jk_memlock(struct jbuf *j, long long v)
{
	if (v == -1)
		jk_str(j, "memlock_limit", "unlimited");
	else
		jk_opt(j, "memlock_limit", v);
}

void jk_landed(struct jbuf *j, const char *key, int landed, uint64_t nblocks)
{
	jk_tribool(j, key, landed < 0 ? -1 : (uint64_t)landed == nblocks);
	jk_opt(j, "landed_blocks", landed);
	jk_u64(j, "blocks", nblocks);
}

static void emit_stages(struct jbuf *j)
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
			for (size_t b = 0; b < kpf_count; b++)
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

void report_emit(void)
{
	struct jbuf j = { 0 };

	if (R.emitted)
		return;
	R.emitted = true;
	jb_obj_open(&j);
	jk_str(&j, "workload", R.workload);
	jk_str(&j, "pin", R.pin);
	jk_str(&j, "errno", R.err ? errno_name(R.err) : NULL);
	jk_opt(&j, "errno_num", R.err ? R.err : -1);
	jk_str(&j, "file", R.file);
	jk_u64(&j, "size", R.size);
	jk_u64(&j, "block_size", PR_BLOCK);
	jk_str(&j, "error", R.error[0] ? R.error : NULL);
	jk_dbl(&j, "elapsed_s", now_s());
	if (R.extra)
		R.extra(&j);
	if (R.with_stages)
		emit_stages(&j);
	if (R.with_expected)
		jk_sums(&j, "expected", R.expected, R.nexpected);
	jb_obj_close(&j);
	jb_raw(&j, "\n", 1);
	fwrite(j.s, 1, j.len, stdout);
	fflush(stdout);
	free(j.s);
}

void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(R.error, sizeof(R.error), fmt, ap);
	va_end(ap);
	pr_log("error: %s", R.error);
	report_emit();
	exit(1);
}

void usage_fail(void (*usage)(FILE *), const char *fmt, ...)
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

/*
 * A SIGBUS/SIGSEGV while touching a mapping (e.g. ENOSPC on a page fault of
 * a file mapping) is an infrastructure failure: report it instead of dying
 * silently.  Not strictly async-signal-safe, but the faults we expect happen
 * in our own copy loops, never inside stdio or malloc.
 */
static void fault_handler(int sig)
{
	snprintf(R.error, sizeof(R.error), "fatal signal %s while accessing a mapping (ENOSPC or truncated file?)",
		 sig == SIGBUS ? "SIGBUS" : "SIGSEGV");
	report_emit();
	_exit(1);
}

void install_fault_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fault_handler;
	sa.sa_flags = SA_RESETHAND;
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
}
