/* SPDX-License-Identifier: MIT */
/*
 * pinrig guest workloads: a loopback RC QP pair on one RDMA device (rdma_loop.c).
 *
 * The "device" of the anonymous-memory workloads: two RC QPs on the same port
 * connected to each other, so an RDMA WRITE or READ posted on one reaches an
 * MR of this very process through the provider (rxe), never through the CPU's
 * page tables.  Any failure is an infrastructure failure (fail(), exit 1).
 * lost-write.c carries its own copy of this setup (older); new programs use this.
 */
#ifndef PINRIG_RDMA_LOOP_H
#define PINRIG_RDMA_LOOP_H

#include <arpa/inet.h>
#include <stdint.h>
#include <infiniband/verbs.h>

struct rdma_loop {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *qp1, *qp2;
	int port;
	int gid_index;              /* used */
	char devname[64];
	char gid[INET6_ADDRSTRLEN];
	const char *gid_type;       /* NULL = unknown */
	int path_mtu;               /* bytes */
	uint64_t max_msg_sz;
	uint64_t chunk;             /* bytes per work request */
	double timeout;             /* seconds per completion */
	uint64_t ops;               /* work requests completed */
};

/*
 * Open `device` (NULL/"" = the first), allocate a PD (the caller registers its
 * MRs on l->pd), then rdma_loop_connect() the QPs.
 */
void rdma_loop_open(struct rdma_loop *l, const char *device, int port, int gid_index, double timeout);
void rdma_loop_connect(struct rdma_loop *l);

/*
 * RDMA WRITE (opcode IBV_WR_RDMA_WRITE) or READ (IBV_WR_RDMA_READ) of len
 * bytes between the local buffer (lkey) and the remote address (rkey), in
 * chunks, each waited for.  Returns NULL on success, else the failing work
 * completion status as a string (the caller decides what that means).
 */
const char *rdma_loop_xfer(struct rdma_loop *l, enum ibv_wr_opcode opcode, void *local, uint32_t lkey,
			   uint64_t remote, uint32_t rkey, uint64_t len);

void rdma_loop_close(struct rdma_loop *l);

#endif /* PINRIG_RDMA_LOOP_H */
