/* SPDX-License-Identifier: MIT */
/*
 * pinrig guest workloads: a loopback RC "device" for programs that write
 * through a pin with RDMA WRITE (rdma_loop.c).  Two RC QPs on one port of one
 * device, connected to each other over the port's RoCEv2 GID: an RDMA WRITE
 * posted on one lands in an MR through the other, without the CPU or the
 * page tables being involved -- what a NIC's DMA does.
 *
 * The same steps as lost-write.c (which keeps its own copy); every failure is
 * an infrastructure failure (fail(), exit 1).
 */
#ifndef PINRIG_RDMA_LOOP_H
#define PINRIG_RDMA_LOOP_H

#include <stdint.h>
#include <netinet/in.h>
#include <infiniband/verbs.h>

struct rdma_loop {
	/* in */
	int port;
	int gid_index_req;
	double timeout;           /* completion timeout, seconds */
	/* out */
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *qp1, *qp2;
	union ibv_gid gid;
	int gid_index;
	char devname[64];
	char gid_str[INET6_ADDRSTRLEN];
	const char *gid_type;
	enum ibv_mtu mtu;
	uint64_t max_msg_sz;
	uint64_t chunk;           /* bytes per RDMA WRITE */
	uint64_t writes;          /* RDMA WRITEs completed */
	const char *status;       /* last completion status ("success", "timeout", ...) */
};

/* open the device (NULL/"" = first), PD, port and GID; chunk <= max_len */
void rl_open(struct rdma_loop *l, const char *device, uint64_t max_len);
/* CQ + two connected RC QPs */
void rl_connect(struct rdma_loop *l);
/* RDMA WRITE [src, src+len) (lkey) to remote address dst (rkey), in chunks, waiting for each */
void rl_write(struct rdma_loop *l, const void *src, uint32_t lkey, uint64_t dst, uint32_t rkey,
	      uint64_t len);
/* destroy QPs, CQ, PD, close the device */
void rl_close(struct rdma_loop *l);

#endif /* PINRIG_RDMA_LOOP_H */
