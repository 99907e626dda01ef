/* SPDX-License-Identifier: MIT */
/*
 * lost-write: the long-term-pin data-loss scenario, end to end.
 *
 *   1. MAP_SHARED the file; the CPU writes pattern A; fsync
 *   2. register a writable MR on the file mapping (FOLL_LONGTERM pin);
 *      a refusal is a valid outcome: report it and exit 0
 *   3. fsync again: writeback cleans and write-protects the pinned pages
 *   4. RDMA WRITE pattern B into the file MR through an RC QP connected to
 *      a second QP on the same device/port (loopback) -- the "device" writes
 *      behind the filesystem's back, no page fault, no dirty bit
 *   5. check that the mapping reads pattern B
 *   6. (--control: ibv_dereg_mr first, which dirties the pages on unpin)
 *      fsync; "expected" is pattern B
 *   7. --hold: keep everything registered so the host can crash the guest
 *
 * The loopback connection: on RoCE (rxe) the two QPs are moved RESET->INIT->RTR->RTS by hand
 * with the GID of the port.  An iWARP device (siw) has no such path: its connections are TCP
 * connections set up by the iWARP connection manager, so there the QPs are created and
 * connected through librdmacm (a listener and a client on the device's own IPv4 address), and
 * every verbs object lives on the context rdma_cm opened for that device.
 *
 * Without --control, a kernel that granted the pin typically leaves pattern A
 * on disk after a crash: the device write was never seen by writeback.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <poll.h>
#include <rdma/rdma_cma.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli.h"
#include "report.h"
#include "verbs_util.h"

static struct common_opts co = COMMON_OPTS_DEFAULTS;

static struct {
	int port;
	int gid_index;
	bool control;
} opt = {
	.port = 1,
	.gid_index = 1,
};

static struct {
	char devname[64];
	long long memlock;
	int gid_index;          /* used, -1 = not chosen yet */
	char gid[INET6_ADDRSTRLEN];
	const char *gid_type;
	int path_mtu;           /* bytes, 0 = unknown */
	uint64_t max_msg_sz;
	uint64_t chunk;
	uint64_t chunks_done;
	const char *rdma_status;
	int landed_blocks;      /* -1 = not checked */
	bool deregistered_before_final_fsync;
	const char *transport;  /* "RoCE/IB" or "iWARP" */
	const char *connect;    /* "modify_qp" or "rdma_cm" */
	char cm_addr[INET_ADDRSTRLEN];
} st = { .gid_index = -1, .landed_blocks = -1, .memlock = -2 };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lost-write --file PATH [--size BYTES] [--seed N] [--device NAME]\n"
		"                  [--port N] [--gid-index N] [--timeout SECONDS]\n"
		"                  [--control] [--hold]\n"
		"  Pin a MAP_SHARED file mapping as an RDMA MR, let writeback clean it, RDMA WRITE\n"
		"  a new pattern into it over a loopback RC QP, fsync, and report what should be on disk.\n"
		"  --size       multiple of 4096 (default 1M)\n"
		"  --seed       pattern seed (default 1)\n"
		"  --device     RDMA device (default: the first one); --port (default 1)\n"
		"  --gid-index  GID table index for the GRH (default 1; falls back to a search\n"
		"               for an IPv4-mapped RoCEv2 GID)\n"
		"  --timeout    completion timeout in seconds (default 10)\n"
		"  --control    deregister the MR before the final fsync (data should survive)\n"
		"  --hold       after the JSON line, print PINRIG-HOLD on stderr and sleep forever\n");
}

static void extra(struct jbuf *j)
{
	jk_str(j, "device", st.devname[0] ? st.devname : co.device);
	jk_i64(j, "port", opt.port);
	jk_i64(j, "gid_index_requested", opt.gid_index);
	jk_opt(j, "gid_index", st.gid_index);
	jk_str(j, "gid", st.gid[0] ? st.gid : NULL);
	jk_str(j, "gid_type", st.gid_type);
	jk_opt(j, "path_mtu", st.path_mtu ? st.path_mtu : -1);
	jk_opt(j, "max_msg_sz", st.max_msg_sz ? (long long)st.max_msg_sz : -1);
	jk_opt(j, "chunk_size", st.chunk ? (long long)st.chunk : -1);
	jk_u64(j, "chunks_written", st.chunks_done);
	jk_u64(j, "seed", co.seed);
	jk_bool(j, "control", opt.control);
	jk_bool(j, "hold", co.hold);
	jk_bool(j, "deregistered_before_final_fsync", st.deregistered_before_final_fsync);
	jk_memlock(j, st.memlock);
	jk_str(j, "rdma_status", st.rdma_status);
	jk_str(j, "transport", st.transport);
	jk_str(j, "connect", st.connect);
	jk_str(j, "cm_addr", st.cm_addr[0] ? st.cm_addr : NULL);
	jk_landed(j, "rdma_landed", st.landed_blocks, co.size / PR_BLOCK);
}

static void own_opt(int c, const char *arg)
{
	switch (c) {
	case 'p': opt.port = (int)cli_range("--port", arg, 1, 255, ""); break;
	case 'g': opt.gid_index = (int)cli_range("--gid-index", arg, 0, 65535, ""); break;
	case 'c': opt.control = true; break;
	}
}

static const struct option own_opts[] = {
	{ "port", required_argument, NULL, 'p' },
	{ "gid-index", required_argument, NULL, 'g' },
	{ "control", no_argument, NULL, 'c' },
	{ 0 }
};

static const struct program prog = {
	.name = "lost-write",
	.usage = usage,
	.extra = extra,
	.fault_handler = true,
	.stages = true,
	.expected = true,
	.common = CLI_FILE | CLI_SIZE | CLI_SEED | CLI_DEVICE | CLI_TIMEOUT | CLI_HOLD,
	.own = own_opts,
	.own_opt = own_opt,
};

/* ------------------------------------------------------------------ */
/* GID selection                                                       */

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

/* query one GID entry; type = -1 when unknown.  0 on success. */
static int query_gid(struct ibv_context *ctx, int port, int idx, union ibv_gid *gid, int *type)
{
	struct ibv_gid_entry e;

	memset(&e, 0, sizeof(e));
	if (ibv_query_gid_ex(ctx, (uint32_t)port, (uint32_t)idx, &e, 0) == 0) {
		*gid = e.gid;
		*type = (int)e.gid_type;
		return 0;
	}
	/* older kernels without the GID table ioctl: plain sysfs query */
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

static int choose_gid(struct ibv_context *ctx, int port, int tbl_len, union ibv_gid *out)
{
	union ibv_gid g;
	int type, best = -1, best_rank = 0, best_type = -1;

	if (opt.gid_index < tbl_len && opt.gid_index <= 255 && query_gid(ctx, port, opt.gid_index, &g, &type) == 0 &&
	    !gid_is_zero(&g)) {
		*out = g;
		st.gid_type = gid_type_str(type);
		return opt.gid_index;
	}
	pr_log("GID index %d unusable on port %d, searching the GID table (%d entries)",
	       opt.gid_index, port, tbl_len);
	for (int i = 0; i < tbl_len; i++) {
		int rank;
		if (i > 255)
			break; /* the GRH sgid_index is 8 bits */
		if (query_gid(ctx, port, i, &g, &type) != 0 || gid_is_zero(&g))
			continue;
		/* prefer IPv4-mapped RoCEv2, then IPv4-mapped, then anything */
		if (gid_is_ipv4_mapped(&g))
			rank = type == IBV_GID_TYPE_ROCE_V2 ? 3 : 2;
		else
			rank = 1;
		if (rank > best_rank) {
			best = i;
			best_rank = rank;
			best_type = type;
			*out = g;
		}
	}
	if (best < 0)
		fail("no usable GID on port %d (is an IP address configured on the rxe netdev?)", port);
	st.gid_type = gid_type_str(best_type);
	return best;
}

/* ------------------------------------------------------------------ */
/* QPs                                                                 */

static struct ibv_qp *create_rc_qp(struct ibv_pd *pd, struct ibv_cq *cq, const char *what)
{
	struct ibv_qp_init_attr ia;
	struct ibv_qp *qp;

	memset(&ia, 0, sizeof(ia));
	ia.send_cq = cq;
	ia.recv_cq = cq;
	ia.qp_type = IBV_QPT_RC;
	ia.sq_sig_all = 1;
	ia.cap.max_send_wr = 16;
	ia.cap.max_recv_wr = 1;
	ia.cap.max_send_sge = 1;
	ia.cap.max_recv_sge = 1;
	errno = 0;
	qp = ibv_create_qp(pd, &ia);
	if (!qp)
		fail_errno(errno ? errno : ENOMEM, "ibv_create_qp(%s) failed", what);
	return qp;
}

static void connect_qp(struct ibv_qp *qp, uint32_t dest_qpn, const union ibv_gid *dgid, int sgid_index,
		       enum ibv_mtu mtu, const char *what)
{
	struct ibv_qp_attr a;
	int ret;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_INIT;
	a.pkey_index = 0;
	a.port_num = (uint8_t)opt.port;
	a.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
	ret = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
	if (ret)
		fail_errno(ret, "ibv_modify_qp(%s, RESET->INIT) failed", what);

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = mtu;
	a.dest_qp_num = dest_qpn;
	a.rq_psn = 0;
	a.max_dest_rd_atomic = 1;
	a.min_rnr_timer = 12;
	a.ah_attr.is_global = 1;
	a.ah_attr.grh.dgid = *dgid;
	a.ah_attr.grh.sgid_index = (uint8_t)sgid_index;
	a.ah_attr.grh.hop_limit = 64;
	a.ah_attr.grh.flow_label = 0;
	a.ah_attr.grh.traffic_class = 0;
	a.ah_attr.dlid = 0;
	a.ah_attr.sl = 0;
	a.ah_attr.src_path_bits = 0;
	a.ah_attr.port_num = (uint8_t)opt.port;
	ret = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
			    IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
	if (ret)
		fail_errno(ret, "ibv_modify_qp(%s, INIT->RTR, dest_qpn=%u, sgid_index=%d) failed",
			   what, dest_qpn, sgid_index);

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.sq_psn = 0;
	a.max_rd_atomic = 1;
	ret = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
			    IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
	if (ret)
		fail_errno(ret, "ibv_modify_qp(%s, RTR->RTS) failed", what);
}

/* ------------------------------------------------------------------ */
/* iWARP: loopback connection through rdma_cm                           */

static struct rdma_event_channel *cm_ch;
static struct rdma_cm_id *cm_listen, *cm_client, *cm_server;

/* is the device called `name` (NULL/"" = the first one) an iWARP device? */
static bool device_is_iwarp(const char *name)
{
	struct ibv_device **list;
	bool iwarp = false;
	int num = 0;

	list = ibv_get_device_list(&num);
	if (!list)
		return false;
	for (int i = 0; i < num; i++) {
		const char *n = ibv_get_device_name(list[i]);
		if (!name || !*name || (n && !strcmp(n, name))) {
			iwarp = list[i]->transport_type == IBV_TRANSPORT_IWARP;
			break;
		}
	}
	ibv_free_device_list(list);
	return iwarp;
}

static const char *cm_event_name(enum rdma_cm_event_type t)
{
	return rdma_event_str(t);
}

/* the next event on the channel: it must be `want` (on any id); returns its id */
static struct rdma_cm_id *cm_wait(enum rdma_cm_event_type want, struct rdma_conn_param *param_out)
{
	struct rdma_cm_event *ev;
	struct rdma_cm_id *id;
	struct pollfd pfd = { .fd = cm_ch->fd, .events = POLLIN };
	int ms = (int)(co.timeout * 1000);

	if (poll(&pfd, 1, ms) <= 0)
		fail_errno(ETIMEDOUT, "rdma_cm: no %s event within %.0f s", cm_event_name(want),
			   co.timeout);
	if (rdma_get_cm_event(cm_ch, &ev))
		fail_errno(errno, "rdma_get_cm_event");
	if (ev->event != want) {
		enum rdma_cm_event_type got = ev->event;
		int status = ev->status;
		rdma_ack_cm_event(ev);
		fail("rdma_cm: expected %s, got %s (status %d)", cm_event_name(want),
		     cm_event_name(got), status);
	}
	id = ev->id;
	if (param_out)
		*param_out = ev->param.conn;
	rdma_ack_cm_event(ev);
	return id;
}

/*
 * Listen on the IPv4 address of the netdev under the RDMA device `name`: every local IPv4
 * address is tried until rdma_bind_addr() lands on that device.  Returns its verbs context.
 */
static struct ibv_context *cm_listen_on_device(const char *name)
{
	struct ifaddrs *ifa, *i;
	struct ibv_context *ctx = NULL;

	cm_ch = rdma_create_event_channel();
	if (!cm_ch)
		fail_errno(errno, "rdma_create_event_channel (is rdma_ucm loaded?)");
	if (getifaddrs(&ifa))
		fail_errno(errno, "getifaddrs");
	for (i = ifa; i && !ctx; i = i->ifa_next) {
		struct sockaddr_in sin;

		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
			continue;
		memcpy(&sin, i->ifa_addr, sizeof(sin));
		sin.sin_port = 0;
		if (rdma_create_id(cm_ch, &cm_listen, NULL, RDMA_PS_TCP))
			fail_errno(errno, "rdma_create_id(listen)");
		if (rdma_bind_addr(cm_listen, (struct sockaddr *)&sin) == 0 && cm_listen->verbs &&
		    (!name || !*name || !strcmp(ibv_get_device_name(cm_listen->verbs->device), name))) {
			ctx = cm_listen->verbs;
			inet_ntop(AF_INET, &sin.sin_addr, st.cm_addr, sizeof(st.cm_addr));
			snprintf(st.devname, sizeof(st.devname), "%s",
				 ibv_get_device_name(ctx->device));
			break;
		}
		rdma_destroy_id(cm_listen);
		cm_listen = NULL;
	}
	freeifaddrs(ifa);
	if (!ctx)
		fail("rdma_cm: no local IPv4 address binds to RDMA device '%s' (is the netdev up "
		     "with an address?)", name ? name : "");
	if (rdma_listen(cm_listen, 1))
		fail_errno(errno, "rdma_listen(%s)", st.cm_addr);
	pr_log("rdma_cm: listening on %s:%u (device %s)", st.cm_addr,
	       ntohs(rdma_get_src_port(cm_listen)), st.devname);
	return ctx;
}

static void cm_qp_attr(struct ibv_qp_init_attr *ia, struct ibv_cq *cq)
{
	memset(ia, 0, sizeof(*ia));
	ia->send_cq = cq;
	ia->recv_cq = cq;
	ia->qp_type = IBV_QPT_RC;
	ia->sq_sig_all = 1;
	ia->cap.max_send_wr = 16;
	ia->cap.max_recv_wr = 1;
	ia->cap.max_send_sge = 1;
	ia->cap.max_recv_sge = 1;
}

/* connect a client QP to the listener (both on pd/cq); *sender = the client's QP */
static void cm_connect_loopback(struct ibv_pd *pd, struct ibv_cq *cq, struct ibv_qp **sender,
				struct ibv_qp **receiver)
{
	struct sockaddr_in dst;
	struct ibv_qp_init_attr ia;
	struct rdma_conn_param cp;

	memset(&dst, 0, sizeof(dst));
	dst.sin_family = AF_INET;
	dst.sin_port = rdma_get_src_port(cm_listen);
	inet_pton(AF_INET, st.cm_addr, &dst.sin_addr);
	if (rdma_create_id(cm_ch, &cm_client, NULL, RDMA_PS_TCP))
		fail_errno(errno, "rdma_create_id(client)");
	if (rdma_resolve_addr(cm_client, NULL, (struct sockaddr *)&dst, (int)(co.timeout * 1000)))
		fail_errno(errno, "rdma_resolve_addr(%s)", st.cm_addr);
	cm_wait(RDMA_CM_EVENT_ADDR_RESOLVED, NULL);
	if (rdma_resolve_route(cm_client, (int)(co.timeout * 1000)))
		fail_errno(errno, "rdma_resolve_route(%s)", st.cm_addr);
	cm_wait(RDMA_CM_EVENT_ROUTE_RESOLVED, NULL);
	if (cm_client->verbs != pd->context)
		fail("rdma_cm: the client id resolved to another device context (%s)",
		     cm_client->verbs ? ibv_get_device_name(cm_client->verbs->device) : "none");
	cm_qp_attr(&ia, cq);
	if (rdma_create_qp(cm_client, pd, &ia))
		fail_errno(errno, "rdma_create_qp(client)");
	memset(&cp, 0, sizeof(cp));
	cp.initiator_depth = 1;
	cp.responder_resources = 1;
	cp.retry_count = 7;
	if (rdma_connect(cm_client, &cp))
		fail_errno(errno, "rdma_connect(%s)", st.cm_addr);
	cm_server = cm_wait(RDMA_CM_EVENT_CONNECT_REQUEST, NULL);
	cm_qp_attr(&ia, cq);
	if (rdma_create_qp(cm_server, pd, &ia))
		fail_errno(errno, "rdma_create_qp(server)");
	memset(&cp, 0, sizeof(cp));
	cp.initiator_depth = 1;
	cp.responder_resources = 1;
	if (rdma_accept(cm_server, &cp))
		fail_errno(errno, "rdma_accept");
	/* one ESTABLISHED per side, in either order */
	cm_wait(RDMA_CM_EVENT_ESTABLISHED, NULL);
	cm_wait(RDMA_CM_EVENT_ESTABLISHED, NULL);
	*sender = cm_client->qp;
	*receiver = cm_server->qp;
}

static void cm_teardown(void)
{
	if (cm_client)
		rdma_disconnect(cm_client);
	if (cm_server) {
		rdma_destroy_qp(cm_server);
		rdma_destroy_id(cm_server);
	}
	if (cm_client) {
		rdma_destroy_qp(cm_client);
		rdma_destroy_id(cm_client);
	}
	if (cm_listen)
		rdma_destroy_id(cm_listen);
	if (cm_ch)
		rdma_destroy_event_channel(cm_ch);
}

/* wait for one completion, at most --timeout seconds */
static void poll_one(struct ibv_cq *cq, struct ibv_wc *wc, uint64_t chunk_no)
{
	double deadline = now_s() + co.timeout;

	for (;;) {
		int n = ibv_poll_cq(cq, 1, wc);
		if (n < 0)
			fail_errno(EIO, "ibv_poll_cq failed (chunk %" PRIu64 ")", chunk_no);
		if (n == 1)
			return;
		if (now_s() > deadline) {
			st.rdma_status = "timeout";
			R.err = ETIMEDOUT;
			fail("no completion for RDMA WRITE chunk %" PRIu64 " within %.0f s", chunk_no, co.timeout);
		}
		usleep(100);
	}
}

int main(int argc, char **argv)
{
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_port_attr pattr;
	struct ibv_mr *file_mr, *src_mr;
	struct ibv_cq *cq;
	struct ibv_qp *qp1, *qp2;
	union ibv_gid gid;
	unsigned char *map, *src;
	int fd, ret;
	size_t nblocks;
	bool iwarp;

	program_start(&prog, &co, argc, argv);
	if (!co.file || !*co.file)
		usage_fail(usage, "--file PATH is required");
	R.file = co.file;
	R.size = co.size;
	nblocks = (size_t)(co.size / PR_BLOCK);

	st.memlock = raise_memlock();

	/* the RDMA side first: fail fast on infrastructure before touching the file */
	iwarp = device_is_iwarp(co.device);
	st.transport = iwarp ? "iWARP" : "RoCE/IB";
	st.connect = iwarp ? "rdma_cm" : "modify_qp";
	if (iwarp)
		ctx = cm_listen_on_device(co.device);   /* rdma_cm's context for the device */
	else
		ctx = open_ibv_device(co.device, st.devname, sizeof(st.devname));
	pd = alloc_pd_or_fail(ctx);
	memset(&pattr, 0, sizeof(pattr));
	ret = ibv_query_port(ctx, (uint8_t)opt.port, &pattr);
	if (ret)
		fail_errno(ret, "ibv_query_port(%s, %d) failed", st.devname, opt.port);
	if (pattr.state != IBV_PORT_ACTIVE)
		fail("port %d of %s is not active (state %s); is the netdev up?", opt.port, st.devname,
		     ibv_port_state_str(pattr.state));
	st.path_mtu = 128 << pattr.active_mtu;
	st.max_msg_sz = pattr.max_msg_sz;
	if (!iwarp) {
		st.gid_index = choose_gid(ctx, opt.port, pattr.gid_tbl_len, &gid);
		inet_ntop(AF_INET6, gid.raw, st.gid, sizeof(st.gid));
		pr_log("port %d: active_mtu=%d max_msg_sz=%" PRIu64 " gid[%d]=%s (%s)", opt.port,
		       st.path_mtu, st.max_msg_sz, st.gid_index, st.gid,
		       st.gid_type ? st.gid_type : "type unknown");
	} else {
		memset(&gid, 0, sizeof(gid));
		pr_log("port %d: iWARP, max_msg_sz=%" PRIu64 ", connecting through rdma_cm", opt.port,
		       st.max_msg_sz);
	}
	st.chunk = co.size;
	if (st.chunk > (1u << 20))
		st.chunk = 1u << 20;
	if (st.max_msg_sz && st.chunk > st.max_msg_sz)
		st.chunk = st.max_msg_sz & ~(uint64_t)(PR_BLOCK - 1);
	if (!st.chunk)
		st.chunk = PR_BLOCK; /* absurdly small max_msg_sz */

	/* 1. the file, pattern A, fsync */
	fd = open(co.file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_errno(errno, "open(%s)", co.file);
	if (ftruncate(fd, (off_t)co.size) != 0)
		fail_errno(errno, "ftruncate(%s)", co.file);
	map = mmap(NULL, co.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		fail_errno(errno, "mmap(%s, MAP_SHARED)", co.file);
	stage("mapped", map);
	pattern_fill(map, co.seed, TAG_A, 0, co.size);
	stage("cpu_write_a", map);
	if (fsync(fd) != 0)
		fail_errno(errno, "fsync #1 (%s)", co.file);
	stage("fsync1", map);

	/* 2. the long-term pin */
	pr_log("ibv_reg_mr(file mapping, %" PRIu64 ", LOCAL_WRITE|REMOTE_WRITE)", co.size);
	errno = 0;
	file_mr = ibv_reg_mr(pd, map, co.size, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	if (!file_mr) {
		report_pin_refused(errno, "ibv_reg_mr", map);
		/* nothing was pinned, nothing can be lost: what the CPU wrote is on disk */
		set_expected_pattern(co.seed, TAG_A, co.size);
		report_emit();
		munmap(map, co.size);
		close(fd);
		ibv_dealloc_pd(pd);
		if (iwarp)
			cm_teardown();
		else
			ibv_close_device(ctx);
		return 0;
	}
	R.pin = "granted";
	pr_log("pin granted: rkey=0x%x", file_mr->rkey);
	stage("registered", map);

	/* 3. writeback cleans and write-protects the pinned pages */
	if (fsync(fd) != 0)
		fail_errno(errno, "fsync #2 (%s)", co.file);
	stage("fsync2", map);

	/* 4. the "device" writes pattern B through the pin */
	src = mmap(NULL, co.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED)
		fail_errno(errno, "mmap(source buffer)");
	pattern_fill(src, co.seed, TAG_B, 0, co.size);
	errno = 0;
	src_mr = ibv_reg_mr(pd, src, co.size, IBV_ACCESS_LOCAL_WRITE);
	if (!src_mr)
		fail_errno(errno ? errno : ENOMEM, "ibv_reg_mr(anonymous source buffer) failed");
	errno = 0;
	cq = ibv_create_cq(ctx, 64, NULL, NULL, 0);
	if (!cq)
		fail_errno(errno ? errno : ENOMEM, "ibv_create_cq failed");
	if (iwarp) {
		cm_connect_loopback(pd, cq, &qp1, &qp2);
	} else {
		qp1 = create_rc_qp(pd, cq, "qp1");
		qp2 = create_rc_qp(pd, cq, "qp2");
		connect_qp(qp1, qp2->qp_num, &gid, st.gid_index, pattr.active_mtu, "qp1");
		connect_qp(qp2, qp1->qp_num, &gid, st.gid_index, pattr.active_mtu, "qp2");
	}
	pr_log("loopback RC QPs connected: qp%u <-> qp%u", qp1->qp_num, qp2->qp_num);

	for (uint64_t off = 0, i = 0; off < co.size; off += st.chunk, i++) {
		uint64_t len = co.size - off < st.chunk ? co.size - off : st.chunk;
		struct ibv_sge sge = {
			.addr = (uintptr_t)(src + off),
			.length = (uint32_t)len,
			.lkey = src_mr->lkey,
		};
		struct ibv_send_wr wr, *bad = NULL;
		struct ibv_wc wc;

		memset(&wr, 0, sizeof(wr));
		wr.wr_id = i;
		wr.sg_list = &sge;
		wr.num_sge = 1;
		wr.opcode = IBV_WR_RDMA_WRITE;
		wr.send_flags = IBV_SEND_SIGNALED;
		wr.wr.rdma.remote_addr = (uintptr_t)(map + off);
		wr.wr.rdma.rkey = file_mr->rkey;
		ret = ibv_post_send(qp1, &wr, &bad);
		if (ret)
			fail_errno(ret, "ibv_post_send(RDMA_WRITE chunk %" PRIu64 ")", i);
		poll_one(cq, &wc, i);
		if (wc.status != IBV_WC_SUCCESS) {
			st.rdma_status = ibv_wc_status_str(wc.status);
			fail("RDMA WRITE chunk %" PRIu64 " completed with status %s (vendor_err 0x%x)", i,
			     ibv_wc_status_str(wc.status), wc.vendor_err);
		}
		st.chunks_done++;
	}
	st.rdma_status = "success";
	stage("rdma_write_b", map);

	/* 5. did the device write land in the page cache? */
	st.landed_blocks = (int)count_pattern_blocks(map, co.seed, TAG_B, co.size);
	pr_log("RDMA WRITE landed in %d of %zu blocks", st.landed_blocks, nblocks);

	/* 6. the final fsync (control: after the unpin, which dirties the pages) */
	if (opt.control) {
		errno = 0;
		ret = ibv_dereg_mr(file_mr);
		if (ret)
			fail_errno(ret, "ibv_dereg_mr(file MR) failed");
		file_mr = NULL;
		st.deregistered_before_final_fsync = true;
		stage("deregistered", map);
	}
	if (fsync(fd) != 0)
		fail_errno(errno, "fsync #3 (%s)", co.file);
	stage("fsync3", map);

	set_expected_pattern(co.seed, TAG_B, co.size);
	report_emit();

	/* 7. keep the pin for the host's crash */
	if (co.hold)
		hold_forever();

	if (iwarp) {
		cm_teardown();       /* destroys both QPs; the context is rdma_cm's */
	} else {
		ibv_destroy_qp(qp1);
		ibv_destroy_qp(qp2);
	}
	ibv_destroy_cq(cq);
	ibv_dereg_mr(src_mr);
	if (file_mr)
		ibv_dereg_mr(file_mr);
	ibv_dealloc_pd(pd);
	if (!iwarp)
		ibv_close_device(ctx);
	munmap(src, co.size);
	munmap(map, co.size);
	close(fd);
	return 0;
}
