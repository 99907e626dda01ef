/* SPDX-License-Identifier: MIT */
/*
 * pinrig guest workloads: a tiny JSON writer.
 *
 * Builds one compact JSON text in a growing buffer: separators between values
 * and keys are inserted automatically, strings are escaped, 64-bit checksums
 * are written as 16 lowercase hex digits.
 */
#ifndef PINRIG_JSON_H
#define PINRIG_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JB_MAXDEPTH 32

struct jbuf {
	char *s;
	size_t len, cap;
	int depth;
	bool first[JB_MAXDEPTH];
	bool after_key;
};

/* raw bytes, no separator */
void jb_raw(struct jbuf *j, const char *s, size_t n);

void jb_key(struct jbuf *j, const char *k);
void jb_obj_open(struct jbuf *j);
void jb_obj_close(struct jbuf *j);
void jb_arr_open(struct jbuf *j);
void jb_arr_close(struct jbuf *j);

/* values */
void jb_null(struct jbuf *j);
void jb_str(struct jbuf *j, const char *s);          /* NULL = null */
void jb_bool(struct jbuf *j, bool b);
void jb_i64(struct jbuf *j, long long v);
void jb_u64(struct jbuf *j, unsigned long long v);
void jb_dbl(struct jbuf *j, double v);               /* %.6f */
void jb_hex(struct jbuf *j, uint64_t v);             /* "0x..." */
void jb_sum(struct jbuf *j, uint64_t v);             /* "%016x" */

/* key + value shorthands */
void jk_str(struct jbuf *j, const char *k, const char *v);
void jk_bool(struct jbuf *j, const char *k, bool v);
void jk_i64(struct jbuf *j, const char *k, long long v);
void jk_u64(struct jbuf *j, const char *k, unsigned long long v);
void jk_dbl(struct jbuf *j, const char *k, double v);
void jk_null(struct jbuf *j, const char *k);
/* non-negative value, or null when v < 0 ("unknown") */
void jk_opt(struct jbuf *j, const char *k, long long v);
/* true/false, or null when v < 0 ("unknown") */
void jk_tribool(struct jbuf *j, const char *k, int v);
/* an array of n checksums (jb_sum), or null when sums is NULL */
void jk_sums(struct jbuf *j, const char *k, const uint64_t *sums, size_t n);

#endif /* PINRIG_JSON_H */
