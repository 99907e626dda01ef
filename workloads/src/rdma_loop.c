/* SPDX-License-Identifier: MIT */
/* pinrig guest workloads: a loopback RC QP pair (see rdma_loop.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rdma_loop.h"
#include "report.h"
#include "verbs_util.h"

static bool gid_is_zero(const union ibv_gid *g)
{
	for (int i = 0; i < 16; i++)
		if (g->raw[i])
			return false;
	return true;
}

static bool gid_is_ipv4_mapped(const union ibv_gid *g)
{
	for (int i = 0; i < 10; i++)
		if (g->raw[i])
			return false;
	return g->raw[10] == 0xff && g->raw[11] == 0xff;
}

static int query_gid(struct ibv_context *ctx, int port, int idx, union ibv_gid *gid, int *type)
{
	struct ibv_gid_entry e;

	memset(&e, 0, sizeof(e));
	if (ibv_query_gid_ex(ctx, (uint32_t)port, (uint32_t)idx, &e, 0) == 0) {
		*gid = e.gid;
		*type = (int)e.gid_type;
		return 0;
	}
	*type = -1;
	return ibv_query_gid(ctx, (uint8_t)port, idx, gid);
}

static const char *gid_type_str(int type)
{
	switch (type) {
	case IBV_GID_TYPE_IB: return "IB";
	case IBV_GID_TYPE_ROCE_V1: return "RoCEv1";
	case IBV_GID_TYPE_ROCE_V2: return "RoCEv2";
	default: return NULL;
	}
}

/* the requested index when usable, else the best (IPv4-mapped RoCEv2 first) */
static int choose_gid(struct rdma_loop *l, int want, int tbl_len, union ibv_gid *out)
{
	union ibv_gid g;
	int type, best = -1, best_rank = 0, best_type = -1;

	if (want < tbl_len && want <= 255 && query_gid(l->ctx, l->port, want, &g, &type) == 0 &&
	    !gid_is_zero(&g)) {
		*out = g;
		l->gid_type = gid_type_str(type);
		return want;
	}
	pr_log("GID index %d unusable on port %d, searching the GID table (%d entries)", want, l->port,
	       tbl_len);
	for (int i = 0; i < tbl_len && i <= 255; i++) {
		int rank;
		if (query_gid(l->ctx, l->port, i, &g, &type) != 0 || gid_is_zero(&g))
			continue;
		rank = gid_is_ipv4_mapped(&g) ? (type == IBV_GID_TYPE_ROCE_V2 ? 3 : 2) : 1;
		if (rank > best_rank) {
			best = i;
			best_rank = rank;
			best_type = type;
			*out = g;
		}
	}
	if (best < 0)
		fail("no usable GID on port %d (is an IP address configured on the rxe netdev?)", l->port);
	l->gid_type = gid_type_str(best_type);
	return best;
}

static union ibv_gid the_gid;
static enum ibv_mtu the_mtu;

void rdma_loop_open(struct rdma_loop *l, const char *device, int port, int gid_index, double timeout)
{
	struct ibv_port_attr pattr;
	int ret;

	memset(l, 0, sizeof(*l));
	l->port = port;
	l->timeout = timeout;
	l->ctx = open_ibv_device(device, l->devname, sizeof(l->devname));
	l->pd = alloc_pd_or_fail(l->ctx);
	memset(&pattr, 0, sizeof(pattr));
	ret = ibv_query_port(l->ctx, (uint8_t)port, &pattr);
	if (ret)
		fail_errno(ret, "ibv_query_port(%s, %d) failed", l->devname, port);
	if (pattr.state != IBV_PORT_ACTIVE)
		fail("port %d of %s is not active (state %s); is the netdev up?", port, l->devname,
		     ibv_port_state_str(pattr.state));
	l->path_mtu = 128 << pattr.active_mtu;
	the_mtu = pattr.active_mtu;
	l->max_msg_sz = pattr.max_msg_sz;
	l->gid_index = choose_gid(l, gid_index, pattr.gid_tbl_len, &the_gid);
	inet_ntop(AF_INET6, the_gid.raw, l->gid, sizeof(l->gid));
	l->chunk = 1u << 20;
	if (l->max_msg_sz && l->chunk > l->max_msg_sz)
		l->chunk = l->max_msg_sz & ~(uint64_t)(PR_BLOCK - 1);
	if (!l->chunk)
		l->chunk = PR_BLOCK;
}

static struct ibv_qp *create_rc_qp(struct rdma_loop *l, const char *what)
{
	struct ibv_qp_init_attr ia;
	struct ibv_qp *qp;

	memset(&ia, 0, sizeof(ia));
	ia.send_cq = l->cq;
	ia.recv_cq = l->cq;
	ia.qp_type = IBV_QPT_RC;
	ia.sq_sig_all = 1;
	ia.cap.max_send_wr = 16;
	ia.cap.max_recv_wr = 1;
	ia.cap.max_send_sge = 1;
	ia.cap.max_recv_sge = 1;
	errno = 0;
	qp = ibv_create_qp(l->pd, &ia);
	if (!qp)
		fail_errno(errno ? errno : ENOMEM, "ibv_create_qp(%s) failed", what);
	return qp;
}

static void connect_qp(struct rdma_loop *l, struct ibv_qp *qp, uint32_t dest_qpn, const char *what)
{
	struct ibv_qp_attr a;
	int ret;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_INIT;
	a.port_num = (uint8_t)l->port;
	a.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
	ret = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
	if (ret)
		fail_errno(ret, "ibv_modify_qp(%s, RESET->INIT) failed", what);

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = the_mtu;
	a.dest_qp_num = dest_qpn;
	a.max_dest_rd_atomic = 1;
	a.min_rnr_timer = 12;
	a.ah_attr.is_global = 1;
	a.ah_attr.grh.dgid = the_gid;
	a.ah_attr.grh.sgid_index = (uint8_t)l->gid_index;
	a.ah_attr.grh.hop_limit = 64;
	a.ah_attr.port_num = (uint8_t)l->port;
	ret = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
			    IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
	if (ret)
		fail_errno(ret, "ibv_modify_qp(%s, INIT->RTR, dest_qpn=%u, sgid_index=%d) failed",
			   what, dest_qpn, l->gid_index);

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.max_rd_atomic = 1;
	ret = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
			    IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
	if (ret)
		fail_errno(ret, "ibv_modify_qp(%s, RTR->RTS) failed", what);
}

void rdma_loop_connect(struct rdma_loop *l)
{
	errno = 0;
	l->cq = ibv_create_cq(l->ctx, 64, NULL, NULL, 0);
	if (!l->cq)
		fail_errno(errno ? errno : ENOMEM, "ibv_create_cq failed");
	l->qp1 = create_rc_qp(l, "qp1");
	l->qp2 = create_rc_qp(l, "qp2");
	connect_qp(l, l->qp1, l->qp2->qp_num, "qp1");
	connect_qp(l, l->qp2, l->qp1->qp_num, "qp2");
	pr_log("loopback RC QPs connected on %s: qp%u <-> qp%u (gid[%d]=%s)", l->devname,
	       l->qp1->qp_num, l->qp2->qp_num, l->gid_index, l->gid);
}

const char *rdma_loop_xfer(struct rdma_loop *l, enum ibv_wr_opcode opcode, void *local, uint32_t lkey,
			   uint64_t remote, uint32_t rkey, uint64_t len)
{
	const char *what = opcode == IBV_WR_RDMA_READ ? "RDMA READ" : "RDMA WRITE";

	for (uint64_t off = 0; off < len; off += l->chunk) {
		uint64_t n = len - off < l->chunk ? len - off : l->chunk;
		struct ibv_sge sge = {
			.addr = (uintptr_t)local + off,
			.length = (uint32_t)n,
			.lkey = lkey,
		};
		struct ibv_send_wr wr, *bad = NULL;
		struct ibv_wc wc;
		double deadline = now_s() + l->timeout;
		int ret, got;

		memset(&wr, 0, sizeof(wr));
		wr.wr_id = l->ops;
		wr.sg_list = &sge;
		wr.num_sge = 1;
		wr.opcode = opcode;
		wr.send_flags = IBV_SEND_SIGNALED;
		wr.wr.rdma.remote_addr = remote + off;
		wr.wr.rdma.rkey = rkey;
		ret = ibv_post_send(l->qp1, &wr, &bad);
		if (ret)
			fail_errno(ret, "ibv_post_send(%s at +%" PRIu64 ")", what, off);
		while ((got = ibv_poll_cq(l->cq, 1, &wc)) == 0) {
			if (now_s() > deadline) {
				R.err = ETIMEDOUT;
				fail("no completion for %s at +%" PRIu64 " within %.0f s", what, off, l->timeout);
			}
			usleep(100);
		}
		if (got < 0)
			fail_errno(EIO, "ibv_poll_cq failed (%s)", what);
		if (wc.status != IBV_WC_SUCCESS) {
			pr_log("%s at +%" PRIu64 " completed with status %s (vendor_err 0x%x)", what, off,
			       ibv_wc_status_str(wc.status), wc.vendor_err);
			return ibv_wc_status_str(wc.status);
		}
		l->ops++;
	}
	return NULL;
}

void rdma_loop_close(struct rdma_loop *l)
{
	if (l->qp1)
		ibv_destroy_qp(l->qp1);
	if (l->qp2)
		ibv_destroy_qp(l->qp2);
	if (l->cq)
		ibv_destroy_cq(l->cq);
	if (l->pd)
		ibv_dealloc_pd(l->pd);
	if (l->ctx)
		ibv_close_device(l->ctx);
	memset(l, 0, sizeof(*l));
}
