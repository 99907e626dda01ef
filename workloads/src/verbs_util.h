/* SPDX-License-Identifier: MIT */
/* pinrig guest workloads: libibverbs helpers shared by ibverbs-pin and lost-write (verbs_util.c). */
#ifndef PINRIG_VERBS_UTIL_H
#define PINRIG_VERBS_UTIL_H

#include <stddef.h>
#include <infiniband/verbs.h>

/*
 * Open the device called `name` (NULL or "" = the first one).  Any failure
 * is an infrastructure failure (exit 1).  The chosen name is copied to
 * `chosen`.
 */
struct ibv_context *open_ibv_device(const char *name, char *chosen, size_t chosen_len);

/* ibv_alloc_pd, exit 1 on failure */
struct ibv_pd *alloc_pd_or_fail(struct ibv_context *ctx);

/* ibv_access_flags as a readable string */
const char *access_str(int access);

#endif /* PINRIG_VERBS_UTIL_H */
