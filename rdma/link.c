/* SPDX-License-Identifier: MIT */
/* link.c - monitor-to-monitor fixed-size frames over RDMA CM, one RC connection per peer. */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "rdma.h"

#define LINK_MAGIC		0x4b4e4c49u	/* "ILNK" */
#define LINK_VERSION		1
#define RESOLVE_MS		5000		/* address and route resolution, each */
/*
 * Our own bound on one connect (resolution, REQ/REP/RTU): the CM gives up by
 * itself long before on a sane fabric; this only catches one that never does.
 */
#define CONNECT_TIMEOUT_MS	60000
#define CM_BATCH		64		/* CM events per poll */
#define CQ_BATCH		32		/* work completions per ibv_poll_cq */
#define CQ_BUDGET		(4 * IPCD_RLINK_DEPTH)	/* completions per CQ per poll */
#define RING_BYTES		(IPCD_RLINK_DEPTH * IPCD_RLINK_FRAME)

/* wr_id: the kind in bit 32, the ring slot below. */
#define WR_SEND			(1ull << 32)
#define WR_SLOT(wr_id)		((uint32_t)((wr_id) & 0xffff))

IPCD_BUILD_ASSERT(IPCD_RLINK_DEPTH <= 0x10000 && IPCD_IS_POW2(IPCD_RLINK_DEPTH));

/*
 * The connector's CM private data: who it claims to be. The acceptor checks
 * it against its peer table and the address the request came from.
 */
struct link_hello {
	uint32_t magic;			/* LINK_MAGIC, little endian */
	uint16_t version;		/* LINK_VERSION, little endian */
	uint16_t port;			/* the connector's listen port, network order */
	uint8_t addr[16];		/* the connector's listen address */
};
IPCD_BUILD_ASSERT(sizeof(struct link_hello) == 24);

enum peer_state {
	PEER_DOWN,		/* no connection; an initiator retries at due_ms */
	PEER_CONNECTING,	/* id set, not yet established; given up at due_ms */
	PEER_UP,
};

struct rlink_peer {
	struct ipcd_rlink *l;
	unsigned int idx;
	uint8_t addr[16];
	uint16_t port;
	bool initiator;			/* ours is the smaller (address, port): we connect */
	bool broken;			/* a post failed outside poll: torn down by the next */
	bool cq_more;			/* completions left behind by CQ_BUDGET */
	enum peer_state state;
	uint64_t due_ms;
	struct rdma_cm_id *id;		/* the current connection (id->qp), or NULL */
	struct ibv_cq *cq;		/* its sends and receives, on the shared channel */
	uint32_t tx_head;		/* free running: sends posted ... */
	uint32_t tx_tail;		/* ... and completed (RC completes them in order) */
	uint8_t *rx_buf;		/* IPCD_RLINK_DEPTH frames, registered once */
	uint8_t *tx_buf;
	struct ibv_mr *rx_mr;
	struct ibv_mr *tx_mr;
	struct ipcd_rlink_stats st;
};

struct ipcd_rlink {
	struct ipcd_rlink_cb cb;
	uint8_t addr[16];
	uint16_t port;
	bool dead;			/* the device went away: nothing more to do */
	bool again;			/* a batch limit left work: poll again at once */
	bool ev_doomed;			/* destroy ev_id once its event is acked */
	uint32_t retry_ms;
	struct rdma_event_channel *ec;	/* fd nonblocking */
	struct rdma_cm_id *listen;
	struct ibv_context *ctx;	/* the listen address's device: every link's */
	struct ibv_pd *pd;
	struct ibv_comp_channel *chan;	/* fd nonblocking; every link's CQ reports here */
	struct rdma_cm_id *ev_id;	/* the id of the CM event being handled */
	uint64_t rejects;		/* connectors that are none of our peers */
	char why[128];			/* a down() reason built at run time */
	unsigned int npeers;
	struct rlink_peer peers[];
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool is_v4mapped(const uint8_t a[16])
{
	static const uint8_t prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	return memcmp(a, prefix, sizeof(prefix)) == 0;
}

/* An IPv4-mapped address becomes AF_INET: RoCE v2 over IPv4 is routed as such. */
static void to_sockaddr(const uint8_t a[16], uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (is_v4mapped(a)) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, a + 12, 4);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, a, 16);
	}
}

static bool from_sockaddr(const struct sockaddr *sa, uint8_t a[16])
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

		memset(a, 0, 10);
		a[10] = 0xff;
		a[11] = 0xff;
		memcpy(a + 12, &sin->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;

		memcpy(a, &sin6->sin6_addr, 16);
		return true;
	}
	return false;
}

static int endpoint_cmp(const uint8_t a[16], uint16_t ap, const uint8_t b[16], uint16_t bp)
{
	int c = memcmp(a, b, 16);

	if (c)
		return c;
	return ap < bp ? -1 : ap > bp;
}

static int set_nonblock(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static int errno_or(int fallback)
{
	return errno > 0 ? -errno : -fallback;
}

/* The id of the event being handled is destroyed only after its ack. */
static void id_destroy(struct ipcd_rlink *l, struct rdma_cm_id *id)
{
	if (id == l->ev_id) {
		l->ev_doomed = true;
		return;
	}
	rdma_destroy_id(id);
}

/* Tear the current connection down, no callback: the peer's state is DOWN after. */
static void conn_drop(struct rlink_peer *p)
{
	struct rdma_cm_id *id = p->id;

	if (id) {
		if (p->state == PEER_UP)
			rdma_disconnect(id);	/* the peer hears DISCONNECTED now */
		if (id->qp)
			rdma_destroy_qp(id);
		id->context = NULL;
		id_destroy(p->l, id);
	}
	if (p->cq)
		ibv_destroy_cq(p->cq);
	p->id = NULL;
	p->cq = NULL;
	p->state = PEER_DOWN;
	p->broken = false;
	p->cq_more = false;
	p->tx_head = 0;
	p->tx_tail = 0;
}

/* The connection ended (or never came up): down() if it was up, and retry later. */
static void conn_fail(struct rlink_peer *p, const char *why)
{
	struct ipcd_rlink *l = p->l;
	bool was_up = p->state == PEER_UP;

	conn_drop(p);
	p->due_ms = now_ms() + l->retry_ms;
	if (was_up) {
		p->st.drops++;
		if (l->cb.down)
			l->cb.down(l->cb.arg, p->idx, why);
	}
}

static void conn_up(struct rlink_peer *p)
{
	struct ipcd_rlink *l = p->l;

	if (p->state != PEER_CONNECTING)
		return;
	p->state = PEER_UP;
	p->st.connects++;
	if (l->cb.up)
		l->cb.up(l->cb.arg, p->idx);
}

static int post_recv(struct rlink_peer *p, uint32_t slot)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)(p->rx_buf + (size_t)slot * IPCD_RLINK_FRAME),
		.length = IPCD_RLINK_FRAME,
		.lkey = p->rx_mr->lkey,
	};
	struct ibv_recv_wr wr = { .wr_id = slot, .sg_list = &sge, .num_sge = 1 }, *bad;

	return ibv_post_recv(p->id->qp, &wr, &bad);
}

/* Rings registered once, on the peer's first connection, kept until close. */
static int peer_rings(struct rlink_peer *p, const char **why)
{
	struct ipcd_rlink *l = p->l;

	if (p->rx_mr)
		return 0;
	p->rx_buf = aligned_alloc(4096, RING_BYTES);
	p->tx_buf = aligned_alloc(4096, RING_BYTES);
	if (!p->rx_buf || !p->tx_buf) {
		*why = "out of memory for the frame rings";
		goto err_free;
	}
	p->rx_mr = ibv_reg_mr(l->pd, p->rx_buf, RING_BYTES, IBV_ACCESS_LOCAL_WRITE);
	if (!p->rx_mr) {
		*why = "ibv_reg_mr of the receive ring failed";
		goto err_free;
	}
	p->tx_mr = ibv_reg_mr(l->pd, p->tx_buf, RING_BYTES, 0);
	if (!p->tx_mr) {
		*why = "ibv_reg_mr of the send ring failed";
		goto err_rx;
	}
	return 0;

err_rx:
	ibv_dereg_mr(p->rx_mr);
	p->rx_mr = NULL;
err_free:
	free(p->rx_buf);
	free(p->tx_buf);
	p->rx_buf = NULL;
	p->tx_buf = NULL;
	return -ENOMEM;
}

/* The CQ and QP of the connection on p->id, every receive posted. */
static int conn_setup(struct rlink_peer *p, const char **why)
{
	struct ipcd_rlink *l = p->l;
	struct ibv_qp_init_attr qa = {
		.cap = { .max_send_wr = IPCD_RLINK_DEPTH, .max_recv_wr = IPCD_RLINK_DEPTH,
			 .max_send_sge = 1, .max_recv_sge = 1 },
		.qp_type = IBV_QPT_RC,
	};
	int err;

	if (p->id->verbs != l->ctx) {
		*why = "the connection goes through another RDMA device than the listener";
		return -EXDEV;
	}
	err = peer_rings(p, why);
	if (err)
		return err;
	/* Sends and receives in flight: the CQ can never overrun. */
	p->cq = ibv_create_cq(l->ctx, 2 * IPCD_RLINK_DEPTH, p, l->chan, 0);
	if (!p->cq) {
		*why = "ibv_create_cq failed";
		return errno_or(ENOMEM);
	}
	if (ibv_req_notify_cq(p->cq, 0) != 0) {
		*why = "ibv_req_notify_cq failed";
		return -EIO;
	}
	qa.send_cq = p->cq;
	qa.recv_cq = p->cq;
	if (rdma_create_qp(p->id, l->pd, &qa) != 0) {
		*why = "rdma_create_qp failed";
		return errno_or(ENOMEM);
	}
	for (uint32_t s = 0; s < IPCD_RLINK_DEPTH; s++) {
		if (post_recv(p, s) != 0) {
			*why = "ibv_post_recv failed";
			return -EIO;
		}
	}
	return 0;
}

static void conn_param_init(struct rdma_conn_param *cp)
{
	memset(cp, 0, sizeof(*cp));
	cp->retry_count = 7;
	cp->rnr_retry_count = 7;	/* a full receive ring only delays the sender */
}

static void start_connect(struct rlink_peer *p, uint64_t now)
{
	struct ipcd_rlink *l = p->l;
	struct sockaddr_storage src, dst;
	struct rdma_cm_id *id;

	p->due_ms = now + l->retry_ms;
	if (rdma_create_id(l->ec, &id, p, RDMA_PS_TCP) != 0)
		return;
	/* From our listen address: the same device, and what the peer checks. */
	to_sockaddr(l->addr, 0, &src);
	to_sockaddr(p->addr, p->port, &dst);
	if (rdma_resolve_addr(id, (struct sockaddr *)&src, (struct sockaddr *)&dst,
			      RESOLVE_MS) != 0) {
		rdma_destroy_id(id);
		return;
	}
	p->id = id;
	p->state = PEER_CONNECTING;
	p->due_ms = now + CONNECT_TIMEOUT_MS;
}

static void route_resolved(struct rlink_peer *p)
{
	struct ipcd_rlink *l = p->l;
	struct rdma_conn_param cp;
	struct link_hello h;
	const char *why = NULL;

	if (conn_setup(p, &why) != 0) {
		conn_fail(p, why);
		return;
	}
	h.magic = htole32(LINK_MAGIC);
	h.version = htole16(LINK_VERSION);
	h.port = htons(l->port);
	memcpy(h.addr, l->addr, sizeof(h.addr));
	conn_param_init(&cp);
	cp.private_data = &h;
	cp.private_data_len = sizeof(h);
	if (rdma_connect(p->id, &cp) != 0)
		conn_fail(p, "rdma_connect failed");
}

static struct rlink_peer *peer_find(struct ipcd_rlink *l, const uint8_t addr[16], uint16_t port)
{
	for (unsigned int i = 0; i < l->npeers; i++) {
		if (endpoint_cmp(l->peers[i].addr, l->peers[i].port, addr, port) == 0)
			return &l->peers[i];
	}
	return NULL;
}

static void reject(struct ipcd_rlink *l, struct rdma_cm_id *id, struct rlink_peer *p)
{
	rdma_reject(id, NULL, 0);
	if (p)
		p->st.rejects++;
	else
		l->rejects++;
	id_destroy(l, id);
}

/* A connector: one of our peers, from its own address, and one that should connect? */
static void conn_request(struct ipcd_rlink *l, struct rdma_cm_event *ev)
{
	struct rdma_cm_id *id = ev->id;
	const struct rdma_conn_param *c = &ev->param.conn;
	struct rdma_conn_param cp;
	struct rlink_peer *p;
	struct link_hello h;
	const char *why = NULL;
	uint8_t src[16];

	if (l->dead || !c->private_data || c->private_data_len < sizeof(h)) {
		reject(l, id, NULL);
		return;
	}
	memcpy(&h, c->private_data, sizeof(h));
	if (le32toh(h.magic) != LINK_MAGIC || le16toh(h.version) != LINK_VERSION) {
		reject(l, id, NULL);
		return;
	}
	p = peer_find(l, h.addr, ntohs(h.port));
	if (!p) {
		reject(l, id, NULL);
		return;
	}
	/*
	 * A peer that claims an address it does not connect from is lying; one
	 * that should be accepting from us has another peer table than ours.
	 */
	if (p->initiator || !from_sockaddr(rdma_get_peer_addr(id), src) ||
	    memcmp(src, h.addr, 16) != 0 || id->verbs != l->ctx) {
		reject(l, id, p);
		return;
	}

	/* A restarted peer: its old link is dead even if we have not heard so yet. */
	if (p->id)
		conn_fail(p, "replaced by a new connection from the peer");
	id->context = p;
	p->id = id;
	p->state = PEER_CONNECTING;
	p->due_ms = now_ms() + CONNECT_TIMEOUT_MS;
	if (conn_setup(p, &why) != 0) {
		rdma_reject(id, NULL, 0);
		conn_fail(p, why);
		return;
	}
	conn_param_init(&cp);
	if (rdma_accept(id, &cp) != 0)
		conn_fail(p, "rdma_accept failed");
}

/* The device under every link is gone: drop it all; the link stays dead. */
static void device_gone(struct ipcd_rlink *l)
{
	for (unsigned int i = 0; i < l->npeers; i++) {
		struct rlink_peer *p = &l->peers[i];

		conn_fail(p, "RDMA device removed");
		if (p->rx_mr)
			ibv_dereg_mr(p->rx_mr);
		if (p->tx_mr)
			ibv_dereg_mr(p->tx_mr);
		p->rx_mr = NULL;
		p->tx_mr = NULL;
	}
	id_destroy(l, l->listen);
	l->listen = NULL;
	ibv_destroy_comp_channel(l->chan);
	l->chan = NULL;
	ibv_dealloc_pd(l->pd);
	l->pd = NULL;
	l->ctx = NULL;
	l->dead = true;
}

static const char *cm_fail_why(struct ipcd_rlink *l, const struct rdma_cm_event *ev)
{
	const char *what;

	switch (ev->event) {
	case RDMA_CM_EVENT_ADDR_ERROR:
		what = "address resolution failed";
		break;
	case RDMA_CM_EVENT_ROUTE_ERROR:
		what = "route resolution failed";
		break;
	case RDMA_CM_EVENT_UNREACHABLE:
		what = "peer unreachable";
		break;
	case RDMA_CM_EVENT_REJECTED:
		what = "rejected by the peer (not listening, or we are not in its peer table)";
		break;
	case RDMA_CM_EVENT_CONNECT_ERROR:
		what = "connection setup failed";
		break;
	case RDMA_CM_EVENT_ADDR_CHANGE:
		what = "the local address moved to another device";
		break;
	default:
		what = "unexpected CM event";
		break;
	}
	snprintf(l->why, sizeof(l->why), "%s (%s, status %d)", what, rdma_event_str(ev->event),
		 ev->status);
	return l->why;
}

static void cm_event(struct ipcd_rlink *l, struct rdma_cm_event *ev)
{
	struct rdma_cm_id *id = ev->id;
	struct rlink_peer *p;

	if (ev->event == RDMA_CM_EVENT_DEVICE_REMOVAL) {
		if (!l->dead)
			device_gone(l);
		return;
	}
	if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST) {
		conn_request(l, ev);
		return;
	}
	p = id->context;
	if (id == l->listen || !p || p->id != id)
		return;		/* nothing of a connection we still have */

	switch (ev->event) {
	case RDMA_CM_EVENT_ADDR_RESOLVED:
		if (id->verbs != l->ctx)
			conn_fail(p, "the peer is reached through another RDMA device");
		else if (rdma_resolve_route(id, RESOLVE_MS) != 0)
			conn_fail(p, "rdma_resolve_route failed");
		break;
	case RDMA_CM_EVENT_ROUTE_RESOLVED:
		route_resolved(p);
		break;
	case RDMA_CM_EVENT_ESTABLISHED:
		conn_up(p);
		break;
	case RDMA_CM_EVENT_DISCONNECTED:
		conn_fail(p, "disconnected by the peer");
		break;
	case RDMA_CM_EVENT_ADDR_ERROR:
	case RDMA_CM_EVENT_ROUTE_ERROR:
	case RDMA_CM_EVENT_UNREACHABLE:
	case RDMA_CM_EVENT_REJECTED:
	case RDMA_CM_EVENT_CONNECT_ERROR:
	case RDMA_CM_EVENT_ADDR_CHANGE:
		conn_fail(p, cm_fail_why(l, ev));
		break;
	default:
		break;		/* TIMEWAIT_EXIT, CONNECT_RESPONSE (no QP-less ids here) */
	}
}

static void cm_events(struct ipcd_rlink *l)
{
	struct rdma_cm_event *ev;
	int n;

	for (n = 0; n < CM_BATCH; n++) {
		if (rdma_get_cm_event(l->ec, &ev) != 0)
			return;		/* EAGAIN: none left */
		l->ev_id = ev->id;
		l->ev_doomed = false;
		cm_event(l, ev);
		rdma_ack_cm_event(ev);
		/* rdma_destroy_id waits for the acks of the id's events. */
		if (l->ev_doomed)
			rdma_destroy_id(l->ev_id);
		l->ev_id = NULL;
	}
	l->again = true;
}

/* One completion; false when it took the connection (and its CQ) down. */
static bool wc_handle(struct rlink_peer *p, const struct ibv_wc *wc)
{
	struct ipcd_rlink *l = p->l;
	uint32_t slot = WR_SLOT(wc->wr_id);

	if (wc->status != IBV_WC_SUCCESS) {
		snprintf(l->why, sizeof(l->why), "%s completion: %s",
			 (wc->wr_id & WR_SEND) ? "send" : "receive", ibv_wc_status_str(wc->status));
		conn_fail(p, l->why);
		return false;
	}
	if (wc->wr_id & WR_SEND) {
		p->tx_tail++;
		return true;
	}
	if (wc->byte_len != IPCD_RLINK_FRAME || slot >= IPCD_RLINK_DEPTH) {
		snprintf(l->why, sizeof(l->why), "received %u bytes, not a %d-byte frame",
			 wc->byte_len, IPCD_RLINK_FRAME);
		conn_fail(p, l->why);
		return false;
	}
	/*
	 * The acceptor can receive before its ESTABLISHED event is read: the
	 * connector sends once it has the REP. A frame proves the connection.
	 */
	conn_up(p);
	p->st.frames_rx++;
	if (l->cb.frame)
		l->cb.frame(l->cb.arg, p->idx,
			    (const struct ipcd_rlink_frame *)(const void *)(p->rx_buf +
									   (size_t)slot *
									   IPCD_RLINK_FRAME));
	if (post_recv(p, slot) != 0) {
		conn_fail(p, "ibv_post_recv failed");
		return false;
	}
	return true;
}

static void cq_drain(struct rlink_peer *p)
{
	struct ibv_wc wc[CQ_BATCH];
	unsigned int done = 0;
	int n;

	while (done < CQ_BUDGET) {
		n = ibv_poll_cq(p->cq, CQ_BATCH, wc);
		if (n < 0) {
			conn_fail(p, "ibv_poll_cq failed");
			return;
		}
		if (n == 0) {
			p->cq_more = false;
			return;
		}
		for (int i = 0; i < n; i++) {
			if (!wc_handle(p, &wc[i]))
				return;
		}
		done += (unsigned int)n;
	}
	/* No new event comes for what is already in the CQ: the next poll drains it. */
	p->cq_more = true;
	p->l->again = true;
}

static void cq_events(struct ipcd_rlink *l)
{
	struct ibv_cq *cq;
	void *ctx;

	for (unsigned int n = 0; n < 2 * l->npeers + 2; n++) {
		struct rlink_peer *p;

		if (ibv_get_cq_event(l->chan, &cq, &ctx) != 0)
			return;		/* EAGAIN: none left */
		/* Acked at once: ibv_destroy_cq (conn_drop) waits for every ack. */
		ibv_ack_cq_events(cq, 1);
		p = ctx;
		if (!p || p->cq != cq)
			continue;
		/* Armed before draining: a completion after the drain raises a new event. */
		if (ibv_req_notify_cq(cq, 0) != 0) {
			conn_fail(p, "ibv_req_notify_cq failed");
			continue;
		}
		cq_drain(p);
	}
	l->again = true;
}

static int next_timeout(struct ipcd_rlink *l, uint64_t now)
{
	uint64_t next = UINT64_MAX;

	if (l->dead)
		return -1;
	if (l->again)
		return 0;
	for (unsigned int i = 0; i < l->npeers; i++) {
		const struct rlink_peer *p = &l->peers[i];

		if (p->state == PEER_CONNECTING || (p->state == PEER_DOWN && p->initiator))
			next = IPCD_MIN(next, p->due_ms);
	}
	if (next == UINT64_MAX)
		return -1;
	if (next <= now)
		return 0;
	return next - now > INT_MAX ? INT_MAX : (int)(next - now);
}

int ipcd_rlink_poll(struct ipcd_rlink *l)
{
	uint64_t now;

	l->again = false;
	cm_events(l);
	if (l->dead)
		return -1;
	cq_events(l);
	now = now_ms();
	for (unsigned int i = 0; i < l->npeers; i++) {
		struct rlink_peer *p = &l->peers[i];

		if (p->broken)
			conn_fail(p, "ibv_post_send failed");
		else if (p->cq_more && p->cq)
			cq_drain(p);
		if (p->state == PEER_CONNECTING && now >= p->due_ms)
			conn_fail(p, "connect timed out");
		else if (p->state == PEER_DOWN && p->initiator && now >= p->due_ms)
			start_connect(p, now);
	}
	return next_timeout(l, now_ms());
}

int ipcd_rlink_send(struct ipcd_rlink *l, unsigned int peer, const struct ipcd_rlink_frame *f)
{
	struct rlink_peer *p;
	struct ibv_send_wr wr, *bad;
	struct ibv_sge sge;
	uint32_t slot;

	if (peer >= l->npeers)
		return -EINVAL;
	p = &l->peers[peer];
	if (p->state != PEER_UP || p->broken)
		return -ENOTCONN;
	if (p->tx_head - p->tx_tail >= IPCD_RLINK_DEPTH)
		return -ENOBUFS;
	slot = p->tx_head & (IPCD_RLINK_DEPTH - 1);
	memcpy(p->tx_buf + (size_t)slot * IPCD_RLINK_FRAME, f, IPCD_RLINK_FRAME);
	sge.addr = (uintptr_t)(p->tx_buf + (size_t)slot * IPCD_RLINK_FRAME);
	sge.length = IPCD_RLINK_FRAME;
	sge.lkey = p->tx_mr->lkey;
	memset(&wr, 0, sizeof(wr));
	wr.wr_id = WR_SEND | slot;
	wr.sg_list = &sge;
	wr.num_sge = 1;
	wr.opcode = IBV_WR_SEND;
	wr.send_flags = IBV_SEND_SIGNALED;	/* frees the slot */
	if (ibv_post_send(p->id->qp, &wr, &bad) != 0) {
		/* Not torn down here: the caller may be inside one of our callbacks. */
		p->broken = true;
		return -ENOTCONN;
	}
	p->tx_head++;
	p->st.frames_tx++;
	return 0;
}

void ipcd_rlink_drop(struct ipcd_rlink *l, unsigned int peer, const char *why)
{
	if (peer < l->npeers && l->peers[peer].state == PEER_UP)
		conn_fail(&l->peers[peer], why);
}

bool ipcd_rlink_is_up(const struct ipcd_rlink *l, unsigned int peer)
{
	return peer < l->npeers && l->peers[peer].state == PEER_UP && !l->peers[peer].broken;
}

/* @peer >= npeers: the sums over every peer, plus the unknown connectors' rejects. */
void ipcd_rlink_stats(const struct ipcd_rlink *l, unsigned int peer, struct ipcd_rlink_stats *s)
{
	if (peer < l->npeers) {
		*s = l->peers[peer].st;
		return;
	}
	memset(s, 0, sizeof(*s));
	for (unsigned int i = 0; i < l->npeers; i++) {
		const struct ipcd_rlink_stats *t = &l->peers[i].st;

		s->frames_tx += t->frames_tx;
		s->frames_rx += t->frames_rx;
		s->connects += t->connects;
		s->drops += t->drops;
		s->rejects += t->rejects;
	}
	s->rejects += l->rejects;
}

int ipcd_rlink_fds(const struct ipcd_rlink *l, int *fds, int max)
{
	int n = 0;

	if (n < max)
		fds[n++] = l->ec->fd;
	if (l->chan && n < max)
		fds[n++] = l->chan->fd;
	return n;
}

static int check_peers(const uint8_t addr[16], uint16_t port, unsigned int npeers,
		       const uint8_t (*peer_addr)[16], const uint16_t *peer_port, const char **why)
{
	if (npeers > IPCD_RLINK_MAX_PEERS) {
		*why = "more peers than IPCD_RLINK_MAX_PEERS";
		return -EINVAL;
	}
	for (unsigned int i = 0; i < npeers; i++) {
		if (endpoint_cmp(peer_addr[i], peer_port[i], addr, port) == 0) {
			*why = "a peer has our own address and port";
			return -EINVAL;
		}
		for (unsigned int j = 0; j < i; j++) {
			if (endpoint_cmp(peer_addr[i], peer_port[i], peer_addr[j],
					 peer_port[j]) == 0) {
				*why = "a peer is listed twice";
				return -EINVAL;
			}
		}
	}
	return 0;
}

int ipcd_rlink_open(const uint8_t addr[16], uint16_t port, unsigned int npeers,
		    const uint8_t (*peer_addr)[16], const uint16_t *peer_port, uint32_t retry_ms,
		    const struct ipcd_rlink_cb *cb, struct ipcd_rlink **out, const char **why)
{
	struct sockaddr_storage ss;
	struct ipcd_rlink *l;
	uint64_t now = now_ms();
	int err;

	*out = NULL;
	*why = "no error";
	err = check_peers(addr, port, npeers, peer_addr, peer_port, why);
	if (err)
		return err;
	l = calloc(1, sizeof(*l) + npeers * sizeof(l->peers[0]));
	if (!l) {
		*why = "out of memory for the link table";
		return -ENOMEM;
	}
	l->cb = *cb;
	memcpy(l->addr, addr, sizeof(l->addr));
	l->port = port;
	l->retry_ms = retry_ms ? retry_ms : 1;
	l->npeers = npeers;
	for (unsigned int i = 0; i < npeers; i++) {
		struct rlink_peer *p = &l->peers[i];

		p->l = l;
		p->idx = i;
		memcpy(p->addr, peer_addr[i], sizeof(p->addr));
		p->port = peer_port[i];
		p->initiator = endpoint_cmp(addr, port, p->addr, p->port) < 0;
		p->due_ms = now;
	}

	l->ec = rdma_create_event_channel();
	if (!l->ec) {
		err = errno_or(ENOMEM);
		*why = "rdma_create_event_channel failed";
		goto err_free;
	}
	err = set_nonblock(l->ec->fd);
	if (err) {
		*why = "fcntl(O_NONBLOCK) on the CM event channel failed";
		goto err_ec;
	}
	if (rdma_create_id(l->ec, &l->listen, NULL, RDMA_PS_TCP) != 0) {
		err = errno_or(ENOMEM);
		*why = "rdma_create_id failed";
		goto err_ec;
	}
	to_sockaddr(addr, port, &ss);
	if (rdma_bind_addr(l->listen, (struct sockaddr *)&ss) != 0) {
		err = errno_or(EINVAL);
		*why = "rdma_bind_addr to the listen address failed";
		goto err_listen;
	}
	/* Bound to a concrete address, the id knows its device: every link's. */
	l->ctx = l->listen->verbs;
	if (!l->ctx) {
		err = -ENODEV;
		*why = "no RDMA device carries the listen address";
		goto err_listen;
	}
	if (rdma_listen(l->listen, IPCD_RLINK_MAX_PEERS) != 0) {
		err = errno_or(EINVAL);
		*why = "rdma_listen failed";
		goto err_listen;
	}
	l->pd = ibv_alloc_pd(l->ctx);
	if (!l->pd) {
		err = errno_or(ENOMEM);
		*why = "ibv_alloc_pd failed";
		goto err_listen;
	}
	l->chan = ibv_create_comp_channel(l->ctx);
	if (!l->chan) {
		err = errno_or(ENOMEM);
		*why = "ibv_create_comp_channel failed";
		goto err_pd;
	}
	err = set_nonblock(l->chan->fd);
	if (err) {
		*why = "fcntl(O_NONBLOCK) on the completion channel failed";
		goto err_chan;
	}
	*out = l;
	return 0;

err_chan:
	ibv_destroy_comp_channel(l->chan);
err_pd:
	ibv_dealloc_pd(l->pd);
err_listen:
	rdma_destroy_id(l->listen);
err_ec:
	rdma_destroy_event_channel(l->ec);
err_free:
	free(l);
	return err;
}

void ipcd_rlink_close(struct ipcd_rlink *l)
{
	if (!l)
		return;
	for (unsigned int i = 0; i < l->npeers; i++) {
		struct rlink_peer *p = &l->peers[i];

		conn_drop(p);
		if (p->rx_mr)
			ibv_dereg_mr(p->rx_mr);
		if (p->tx_mr)
			ibv_dereg_mr(p->tx_mr);
		free(p->rx_buf);
		free(p->tx_buf);
	}
	if (l->listen)
		rdma_destroy_id(l->listen);
	if (l->chan)
		ibv_destroy_comp_channel(l->chan);
	if (l->pd)
		ibv_dealloc_pd(l->pd);
	rdma_destroy_event_channel(l->ec);
	free(l);
}
