/* SPDX-License-Identifier: MIT */
/* pinrig guest workloads: a tiny JSON writer (see json.h). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "json.h"

static void jb_reserve(struct jbuf *j, size_t n)
{
	if (j->len + n + 1 <= j->cap)
		return;
	size_t cap = j->cap ? j->cap : 1024;
	while (j->len + n + 1 > cap)
		cap *= 2;
	char *s = realloc(j->s, cap);
	if (!s) {
		pr_log("out of memory building JSON");
		abort();
	}
	j->s = s;
	j->cap = cap;
}

void jb_raw(struct jbuf *j, const char *s, size_t n)
{
	jb_reserve(j, n);
	memcpy(j->s + j->len, s, n);
	j->len += n;
	j->s[j->len] = '\0';
}

static void jb_rawz(struct jbuf *j, const char *s)
{
	jb_raw(j, s, strlen(s));
}

static void jb_fmt(struct jbuf *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jb_fmt(struct jbuf *j, const char *fmt, ...)
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
static void jb_sep(struct jbuf *j)
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

static void jb_quoted(struct jbuf *j, const char *s)
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

void jb_key(struct jbuf *j, const char *k)
{
	jb_sep(j);
	jb_quoted(j, k);
	jb_raw(j, ":", 1);
	j->after_key = true;
}

static void jb_open(struct jbuf *j, char c)
{
	jb_sep(j);
	jb_raw(j, &c, 1);
	if (j->depth + 1 >= JB_MAXDEPTH)
		abort();
	j->depth++;
	j->first[j->depth] = true;
}

static void jb_close(struct jbuf *j, char c)
{
	jb_raw(j, &c, 1);
	j->depth--;
}

void jb_obj_open(struct jbuf *j) { jb_open(j, '{'); }
void jb_obj_close(struct jbuf *j) { jb_close(j, '}'); }
void jb_arr_open(struct jbuf *j) { jb_open(j, '['); }
void jb_arr_close(struct jbuf *j) { jb_close(j, ']'); }

void jb_null(struct jbuf *j) { jb_sep(j); jb_rawz(j, "null"); }
void jb_str(struct jbuf *j, const char *s)
{
	jb_sep(j);
	if (s)
		jb_quoted(j, s);
	else
		jb_rawz(j, "null");
}
void jb_bool(struct jbuf *j, bool b) { jb_sep(j); jb_rawz(j, b ? "true" : "false"); }
void jb_i64(struct jbuf *j, long long v) { jb_sep(j); jb_fmt(j, "%lld", v); }
void jb_u64(struct jbuf *j, unsigned long long v) { jb_sep(j); jb_fmt(j, "%llu", v); }
void jb_dbl(struct jbuf *j, double v) { jb_sep(j); jb_fmt(j, "%.6f", v); }
void jb_hex(struct jbuf *j, uint64_t v) { jb_sep(j); jb_fmt(j, "\"0x%" PRIx64 "\"", v); }
void jb_sum(struct jbuf *j, uint64_t v) { jb_sep(j); jb_fmt(j, "\"%016" PRIx64 "\"", v); }

void jk_str(struct jbuf *j, const char *k, const char *v) { jb_key(j, k); jb_str(j, v); }
void jk_bool(struct jbuf *j, const char *k, bool v) { jb_key(j, k); jb_bool(j, v); }
void jk_i64(struct jbuf *j, const char *k, long long v) { jb_key(j, k); jb_i64(j, v); }
void jk_u64(struct jbuf *j, const char *k, unsigned long long v) { jb_key(j, k); jb_u64(j, v); }
void jk_dbl(struct jbuf *j, const char *k, double v) { jb_key(j, k); jb_dbl(j, v); }
void jk_null(struct jbuf *j, const char *k) { jb_key(j, k); jb_null(j); }

void jk_opt(struct jbuf *j, const char *k, long long v)
{
	jb_key(j, k);
	if (v < 0)
		jb_null(j);
	else
		jb_i64(j, v);
}

void jk_tribool(struct jbuf *j, const char *k, int v)
{
	jb_key(j, k);
	if (v < 0)
		jb_null(j);
	else
		jb_bool(j, v);
}

void jk_sums(struct jbuf *j, const char *k, const uint64_t *sums, size_t n)
{
	jb_key(j, k);
	if (!sums) {
		jb_null(j);
		return;
	}
	jb_arr_open(j);
	for (size_t i = 0; i < n; i++)
		jb_sum(j, sums[i]);
	jb_arr_close(j);
}
