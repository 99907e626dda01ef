/* SPDX-License-Identifier: MIT */
/* pinrig guest workloads: libibverbs helpers (see verbs_util.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "report.h"
#include "verbs_util.h"

struct ibv_context *open_ibv_device(const char *name, char *chosen, size_t chosen_len)
{
	struct ibv_device **list, *dev = NULL;
	struct ibv_context *ctx;
	char avail[256] = "";
	int num = 0;

	errno = 0;
	list = ibv_get_device_list(&num);
	if (!list)
		fail_errno(errno ? errno : ENODEV,
			   "ibv_get_device_list failed (is ib_uverbs loaded?)");
	for (int i = 0; i < num; i++) {
		const char *n = ibv_get_device_name(list[i]);
		size_t l = strlen(avail);
		snprintf(avail + l, sizeof(avail) - l, "%s%s", l ? "," : "", n ? n : "?");
		if (!dev && (!name || !*name || (n && !strcmp(n, name))))
			dev = list[i];
	}
	if (!dev) {
		ibv_free_device_list(list);
		if (num == 0)
			fail("no RDMA device found (load rdma_rxe and run 'rdma link add rxe0 type rxe netdev NIC')");
		fail("RDMA device '%s' not found (available: %s)", name, avail);
	}
	snprintf(chosen, chosen_len, "%s", ibv_get_device_name(dev));
	errno = 0;
	ctx = ibv_open_device(dev);
	if (!ctx) {
		int e = errno ? errno : ENODEV;
		ibv_free_device_list(list);
		fail_errno(e, "ibv_open_device(%s) failed", chosen);
	}
	ibv_free_device_list(list);
	pr_log("opened RDMA device %s", chosen);
	return ctx;
}

struct ibv_pd *alloc_pd_or_fail(struct ibv_context *ctx)
{
	struct ibv_pd *pd;

	errno = 0;
	pd = ibv_alloc_pd(ctx);
	if (!pd)
		fail_errno(errno ? errno : ENOMEM, "ibv_alloc_pd failed");
	return pd;
}

const char *access_str(int access)
{
	static char buf[128];

	buf[0] = '\0';
	if (access & IBV_ACCESS_LOCAL_WRITE)
		strcat(buf, "|LOCAL_WRITE");
	if (access & IBV_ACCESS_REMOTE_WRITE)
		strcat(buf, "|REMOTE_WRITE");
	if (access & IBV_ACCESS_REMOTE_READ)
		strcat(buf, "|REMOTE_READ");
	if (access & IBV_ACCESS_REMOTE_ATOMIC)
		strcat(buf, "|REMOTE_ATOMIC");
	return buf[0] ? buf + 1 : "0";
}
