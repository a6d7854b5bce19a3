/* SPDX-License-Identifier: MIT */
/*
 * cluster.c - the monitor across hosts (issue #7).
 *
 * The config's `peer` lines list every host of the RDMA cluster, this one
 * included (the entry whose address is local): the same list can go to every
 * host. Host numbers are this monitor's own (1-based, config order); frames
 * between monitors never carry them, since a frame's link says where it came
 * from.
 *
 * Three jobs, none of them on a data path:
 *  1. Links: one RDMA CM connection to each other host's monitor (rdma/link.c),
 *     carrying fixed frames (below).
 *  2. Connects: a CONNECT to another host's address goes there as F_CONNECT;
 *     its monitor queues a connection on the listener it reaches and answers
 *     F_CONNECTED (or refuses: the connector then uses the kernel). Only
 *     then does our connector get its region and its answer: the request
 *     waits here, in a bounded table, for at most CL_CONNECT_NS.
 *  3. Process channels: a process with remote connections has a
 *     SOCK_SEQPACKET socket to us (IPCD_OP_RATTACH) on which its library
 *     sends messages to a process of another host (queue pair and ring
 *     addresses: rdma/engine.c). We forward them stamped with the sender's
 *     key, so no process can speak for another, and tell every channel when
 *     a remote process or a whole host is gone.
 *
 * A link that goes down resets every connection to that host (conns.c) and
 * fails the connects waiting for it; a monitor that comes back makes a new
 * link, and new connections work again.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ipcd/compiler.h>
#include <ipcd/wait.h>

#include "monitor.h"
#include "rdma.h"

#define CL_MAGIC		0x52445049u	/* "IPDR" */
#define CL_MAX_PENDING		256		/* connects waiting for another host */
#define CL_CONNECT_NS		3000000000ull	/* < the library's 5 s call timeout */
#define CL_RETRY_MS		1000		/* link reconnects */
#define CL_CHAN_BURST		64		/* channel messages per event */
#define CL_PER_CLIENT		64		/* of CL_MAX_PENDING, for one process */
#define CL_BACKLOG		16384		/* frames queued per host while the link's window is full */
#define CL_PING_NS		1000000000ull	/* a frame to each linked host at least this often */
#define CL_SILENT_NS		5000000000ull	/* ... and one from it, or the link is dropped */

/* Frame types */
enum {
	F_CONNECT = 1,
	F_CONNECTED,
	F_END,
	F_MSG,
	F_GONE,
	F_ACCEPTED,
	F_PING,
};

struct f_hdr {
	uint32_t magic;
	uint16_t type;
	uint16_t pad;
};

struct f_connect {
	struct f_hdr h;
	uint32_t pend;			/* echoed in F_CONNECTED */
	uint32_t ring_bytes;		/* the connector's hint */
	uint64_t a_key;
	uint64_t a_conn;
	uint8_t a_addr[16];
	uint8_t dst[16];
	uint16_t a_port;
	uint16_t dst_port;
	uint32_t pad;
};

struct f_connected {
	struct f_hdr h;
	uint32_t pend;
	int32_t status;			/* 0 or -errno */
	uint64_t b_conn;
	uint32_t ring_bytes;		/* both regions' rings */
	uint16_t b_port;
	uint16_t pad;
	uint8_t b_addr[16];
};

#define F_END_GONE	(1u << 0)
#define F_END_RESET	(1u << 1)

struct f_end {
	struct f_hdr h;
	uint32_t flags;
	uint32_t pad;
	uint64_t conn;			/* the receiver's connection id */
};

struct f_msg {
	struct f_hdr h;
	uint32_t len;
	uint32_t pad;
	uint64_t src_key;
	uint64_t dst_key;
	uint8_t body[IPCD_RMSG_BODY];
};

struct f_gone {
	struct f_hdr h;
	uint32_t pad;
	uint64_t key;
};

struct f_accepted {
	struct f_hdr h;
	uint32_t pad;
	uint64_t conn;			/* the receiver's (the connector's) connection id */
	uint64_t b_key;			/* the process that accepted it */
};

IPCD_BUILD_ASSERT(sizeof(struct f_connect) <= IPCD_RLINK_FRAME);
IPCD_BUILD_ASSERT(sizeof(struct f_connected) <= IPCD_RLINK_FRAME);
IPCD_BUILD_ASSERT(sizeof(struct f_msg) <= IPCD_RLINK_FRAME);

struct host {
	uint8_t addr[16];
	uint16_t port;
	bool self;
	bool up;
	int link;			/* index in the link's peer table; -1: self */
	uint64_t rx_ns;			/* the last frame from it */
	uint64_t tx_ns;			/* the last frame to it */
	/*
	 * Frames the link could not take yet (its window of IPCD_RLINK_DEPTH
	 * was full), in order: an F_END or F_ACCEPTED must not be lost.
	 * Allocated on first need; a host that lets it overflow loses its link.
	 */
	struct ipcd_rlink_frame *q;
	uint32_t q_head;
	uint32_t q_n;
	bool q_overflow;
};

struct pending {
	uint32_t pend;			/* 0: free; serial << 8 | index */
	uint32_t host;
	uint32_t slot;
	uint64_t client;		/* the connector's id */
	uint64_t a_conn;
	uint64_t deadline;
	struct ipcd_req req;		/* answered with its cookie */
};

struct chan {
	int fd;				/* our end; -1: none */
	uint64_t client;
};

static struct {
	uint32_t n;			/* hosts (config peers); 0: off */
	uint32_t self;			/* 1-based */
	struct host hosts[IPCD_MAX_PEERS];
	uint32_t link_host[IPCD_MAX_PEERS];	/* link peer index -> host number */
	struct ipcd_rlink *link;
	struct pending pend[CL_MAX_PENDING];
	uint32_t serial;
	struct chan *chans;		/* [max_processes], by client slot */
	uint32_t n_chans;
	struct cluster_stats st;
	int link_ms;			/* what ipcd_rlink_poll asked for last */
	uint32_t queued;		/* frames in every host's backlog */
} cl;

static uint64_t key_of(const struct mon_client *c)
{
	return c->id << 16 | c->slot;
}

static struct mon_client *client_of_key(uint64_t key)
{
	struct mon_client *c = clients_get((uint32_t)(key & 0xffff));

	return c && c->state == CL_ACTIVE && key_of(c) == key ? c : NULL;
}

static void frame_init(struct ipcd_rlink_frame *f, uint16_t type)
{
	struct f_hdr *h = (void *)f->b;

	memset(f, 0, sizeof(*f));
	h->magic = CL_MAGIC;
	h->type = type;
}

/* Send what waits for host @h, in order, while the link takes it. */
static void flush_frames(struct host *h)
{
	while (h->q_n) {
		int rc = ipcd_rlink_send(cl.link, (unsigned int)h->link, &h->q[h->q_head]);

		if (rc == -ENOBUFS)
			return;
		if (rc) {
			cl.queued -= h->q_n;
			h->q_n = 0;	/* the link is down: its down() resets everything */
			return;
		}
		h->q_head = (h->q_head + 1) % CL_BACKLOG;
		h->q_n--;
		cl.queued--;
	}
}

static int send_frame(uint32_t host, const struct ipcd_rlink_frame *f)
{
	struct host *h;
	int rc;

	if (!cl.link || host == 0 || host > cl.n || cl.hosts[host - 1].self)
		return -EINVAL;
	h = &cl.hosts[host - 1];
	h->tx_ns = ipcd_now_ns();
	if (!h->q_n) {
		rc = ipcd_rlink_send(cl.link, (unsigned int)h->link, f);
		if (rc != -ENOBUFS)
			return rc;
	}
	if (!h->q && !(h->q = malloc(CL_BACKLOG * sizeof(*h->q))))
		h->q_overflow = true;
	if (h->q_overflow || h->q_n == CL_BACKLOG) {
		h->q_overflow = true;	/* cluster_tick drops the link: nothing is lost silently */
		return -ENOBUFS;
	}
	h->q[(h->q_head + h->q_n) % CL_BACKLOG] = *f;
	h->q_n++;
	cl.queued++;
	return 0;
}

/* ---- process channels ---------------------------------------------------- */

static void chan_send(uint32_t slot, const struct ipcd_rmsg *m)
{
	struct chan *ch = &cl.chans[slot];

	if (send(ch->fd, m, sizeof(*m), MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)sizeof(*m)) {
		/* A process that does not read its channel loses messages, never blocks us. */
		cl.st.msgs_dropped++;
		log_debug("cluster: channel of client slot %u: message lost (%s)", slot,
			  strerror(errno));
	}
}

static void chan_close(uint32_t slot)
{
	struct chan *ch = &cl.chans[slot];

	if (ch->fd < 0)
		return;
	close(ch->fd);		/* leaves our epoll set with it */
	ch->fd = -1;		/* ->client stays: its death is still news to the other hosts */
	cl.st.chans--;
}

/* Tell every local channel that (@host, @key) is gone (@key 0: the whole host). */
static void chans_gone(uint32_t host, uint64_t key)
{
	struct ipcd_rmsg m = { .type = IPCD_RMSG_GONE, .host = host, .key = key };
	uint32_t i;

	for (i = 0; i < cl.n_chans; i++)
		if (cl.chans[i].fd >= 0)
			chan_send(i, &m);
}

void cluster_rattach(struct mon_client *c, const struct ipcd_req *req)
{
	struct ipcd_rattach_resp out = { 0 };
	struct ipcd_ctl_msg msg = { .magic = IPCD_CTL_MAGIC, .type = IPCD_CTL_RCHAN_FD };
	struct epoll_event ev = { .events = EPOLLIN };
	int sv[2];
	int rc;

	if (!cl.link) {
		reqs_respond(c, req, -ENOTCONN, NULL, 0);
		return;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv)) {
		rc = -errno;
		log_warn("process %d (%s): RDMA channel: socketpair: %s", c->pid, c->comm,
			 strerror(errno));
		reqs_respond(c, req, rc, NULL, 0);
		return;
	}
	ev.data.u64 = MON_EV(MON_EV_RCHAN, c->slot);
	if (epoll_ctl(mon.epfd, EPOLL_CTL_ADD, sv[0], &ev)) {
		rc = -errno;
		close(sv[0]);
		close(sv[1]);
		reqs_respond(c, req, rc, NULL, 0);
		return;
	}
	rc = control_send_fds(c->sock, &msg, sizeof(msg), &sv[1], 1);
	close(sv[1]);
	if (rc) {
		close(sv[0]);
		clients_kill(c->slot, "its control socket failed (RDMA channel)");
		return;
	}
	chan_close(c->slot);	/* a second RATTACH replaces the first */
	cl.chans[c->slot].fd = sv[0];
	cl.chans[c->slot].client = c->id;
	cl.st.chans++;
	out.host = cl.self;
	out.key = key_of(c);
	memcpy(out.addr, cl.hosts[cl.self - 1].addr, 16);
	reqs_respond(c, req, 0, &out, sizeof(out));
}

void cluster_chan_event(uint32_t slot, uint32_t events)
{
	struct chan *ch;
	struct mon_client *c;
	unsigned int i;

	if (slot >= cl.n_chans || cl.chans[slot].fd < 0)
		return;
	ch = &cl.chans[slot];
	c = clients_get(slot);
	if (!c || c->id != ch->client || c->state != CL_ACTIVE) {
		chan_close(slot);
		if (!c || c->id != ch->client)
			ch->client = 0;	/* a dying one's death is still to be told (F_GONE) */
		return;
	}
	for (i = 0; i < CL_CHAN_BURST; i++) {
		struct ipcd_rlink_frame f;
		struct f_msg *fm = (void *)f.b;
		struct ipcd_rmsg m;
		ssize_t n = recv(ch->fd, &m, sizeof(m), MSG_DONTWAIT | MSG_TRUNC);
		int rc;

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			chan_close(slot);	/* the process closed it (or exec'd) */
			return;
		}
		/* Everything here was written by the process: check it all. */
		if (n != (ssize_t)sizeof(m) || m.type != IPCD_RMSG_SEND || m.len > IPCD_RMSG_BODY ||
		    m.host == 0 || m.host > cl.n || m.host == cl.self) {
			log_warn("process %d (%s): malformed message on its RDMA channel (%zd bytes, "
				 "type %u, host %u): channel closed", c->pid, c->comm, n, m.type,
				 m.host);
			mon.ctr.faults++;
			chan_close(slot);
			return;
		}
		/*
		 * Only to a process it shares a connection with: nobody can fill
		 * a stranger's tables with offers and binds.
		 */
		if (!conns_remote_pair(c->id, m.host, m.key)) {
			cl.st.msgs_dropped++;
			log_debug("process %d: message to host %u process %" PRIx64 ", with which it "
				  "has no connection: dropped", c->pid, m.host, m.key);
			continue;
		}
		frame_init(&f, F_MSG);
		fm->len = m.len;
		fm->src_key = key_of(c);
		fm->dst_key = m.key;
		memcpy(fm->body, m.body, m.len);
		rc = send_frame(m.host, &f);
		if (rc) {
			cl.st.msgs_dropped++;
			log_debug("process %d: message to host %u lost (%s)", c->pid, m.host,
				  strerror(-rc));
			continue;
		}
		cl.st.msgs_fwd++;
	}
	(void)events;
}

void cluster_client_gone(struct mon_client *c)
{
	struct ipcd_rlink_frame f;
	struct f_gone *g = (void *)f.b;
	uint32_t h;

	if (!cl.link || c->slot >= cl.n_chans)
		return;
	if (cl.chans[c->slot].client != c->id)
		return;		/* never talked to another host: nobody there knows it */
	/* Its channel may have hung up first (exit): the other hosts must hear it anyway. */
	chan_close(c->slot);
	cl.chans[c->slot].client = 0;
	frame_init(&f, F_GONE);
	g->key = key_of(c);
	for (h = 1; h <= cl.n; h++)
		if (cl.hosts[h - 1].up)
			send_frame(h, &f);
}

/* ---- connects ------------------------------------------------------------ */

static uint32_t host_of_addr(const uint8_t a[16])
{
	uint32_t h;

	for (h = 1; h <= cl.n; h++)
		if (!memcmp(cl.hosts[h - 1].addr, a, 16))
			return h;
	return 0;
}

static struct pending *pend_find(uint32_t pend)
{
	struct pending *p = &cl.pend[pend & (CL_MAX_PENDING - 1)];

	return pend && p->pend == pend ? p : NULL;
}

/* Answer @p's connector (if it still lives) with @status, and free @p. */
static void pend_finish(struct pending *p, int status, const struct ipcd_conn_resp *out)
{
	struct mon_client *c = clients_get(p->slot);

	if (status)
		conns_remote_a_drop(p->a_conn);
	if (c && c->id == p->client && c->state == CL_ACTIVE)
		reqs_respond(c, &p->req, status, status ? NULL : out,
			     status ? 0 : (uint16_t)sizeof(*out));
	p->pend = 0;
}

bool cluster_connect(struct mon_client *c, const struct ipcd_req *req,
		     const struct ipcd_connect_req *r)
{
	struct ipcd_rlink_frame f;
	struct f_connect *fc = (void *)f.b;
	struct pending *p = NULL;
	uint32_t host, i, n;
	uint16_t a_port;
	int rc;

	if (!cl.link || r->flags != IPCD_CONNECT_REMOTE || r->port == 0 || r->pad || r->pad2)
		return false;	/* conns_connect() has the answer, or the error */
	host = host_of_addr(r->addr);
	if (!host || cl.hosts[host - 1].self || !cl.hosts[host - 1].up || conns_is_local(r->addr))
		return false;
	for (i = 0, n = 0; i < CL_MAX_PENDING; i++) {
		if (!cl.pend[i].pend)
			p = p ? p : &cl.pend[i];
		else if (cl.pend[i].client == c->id)
			n++;
	}
	i = p ? (uint32_t)(p - cl.pend) : 0;
	if (!p || n >= CL_PER_CLIENT) {
		reqs_respond(c, req, -ENOBUFS, NULL, 0);
		return true;
	}
	rc = conns_remote_a_new(c, cl.hosts[cl.self - 1].addr, r->addr, r->port, host, &p->a_conn,
				&a_port);
	if (rc) {
		reqs_respond(c, req, rc, NULL, 0);
		return true;
	}
	cl.serial++;
	p->pend = (cl.serial << 8 | i) ? (cl.serial << 8 | i) : (1u << 8 | i);
	p->host = host;
	p->slot = c->slot;
	p->client = c->id;
	p->deadline = ipcd_now_ns() + CL_CONNECT_NS;
	p->req = *req;
	frame_init(&f, F_CONNECT);
	fc = (void *)f.b;
	fc->pend = p->pend;
	fc->ring_bytes = r->ring_bytes;
	fc->a_key = key_of(c);
	fc->a_conn = p->a_conn;
	fc->a_port = a_port;
	memcpy(fc->a_addr, cl.hosts[cl.self - 1].addr, 16);
	memcpy(fc->dst, r->addr, 16);
	fc->dst_port = r->port;
	rc = send_frame(host, &f);
	if (rc) {
		pend_finish(p, -ECONNREFUSED, NULL);	/* the kernel's turn */
		return true;
	}
	cl.st.connects++;
	return true;
}

static void on_connect(uint32_t host, const struct f_connect *fc)
{
	struct ipcd_rlink_frame f;
	struct f_connected *out;
	struct conns_remote_b b;
	int rc;

	rc = conns_remote_b_new(host, fc->a_key, fc->a_conn, fc->a_addr, fc->a_port, fc->dst,
				fc->dst_port, fc->ring_bytes, &b);
	frame_init(&f, F_CONNECTED);
	out = (void *)f.b;
	out->pend = fc->pend;
	out->status = rc;
	if (!rc) {
		out->b_conn = b.conn_id;
		out->ring_bytes = b.ring_bytes;
		out->b_port = b.b_port;
		memcpy(out->b_addr, b.b_addr, 16);
	}
	if (send_frame(host, &f) && !rc)
		conns_remote_end(host, b.conn_id, true, true);	/* the connector never hears */
}

static void on_connected(uint32_t host, const struct f_connected *fc)
{
	struct pending *p = pend_find(fc->pend);
	struct ipcd_conn_resp out;
	struct mon_client *c;
	int rc;

	if (!p || p->host != host) {
		/* Too late (timed out): its B end will never have a connector. */
		if (!fc->status)
			cluster_tell_end(host, fc->b_conn, true, true);
		return;
	}
	if (fc->status) {
		cl.st.refused++;
		pend_finish(p, fc->status == -EAGAIN ? -EAGAIN : -ECONNREFUSED, NULL);
		return;
	}
	c = clients_get(p->slot);
	if (!c || c->id != p->client || c->state != CL_ACTIVE) {
		cluster_tell_end(host, fc->b_conn, true, true);
		pend_finish(p, -ECONNREFUSED, NULL);
		return;
	}
	rc = conns_remote_a_ready(c, p->a_conn, fc->b_conn, fc->ring_bytes, &out);
	if (rc) {
		cluster_tell_end(host, fc->b_conn, true, true);
		p->a_conn = 0;	/* conns_remote_a_ready dropped or freed it */
	}
	pend_finish(p, rc, &out);
}

void cluster_tell_accepted(uint32_t host, uint64_t peer_conn, const struct mon_client *c)
{
	struct ipcd_rlink_frame f;
	struct f_accepted *a = (void *)f.b;

	if (!cl.link || host == 0 || host > cl.n || !cl.hosts[host - 1].up)
		return;
	frame_init(&f, F_ACCEPTED);
	a->conn = peer_conn;
	a->b_key = key_of(c);
	send_frame(host, &f);
}

void cluster_tell_end(uint32_t host, uint64_t peer_conn, bool gone, bool reset)
{
	struct ipcd_rlink_frame f;
	struct f_end *e = (void *)f.b;

	if (!cl.link || host == 0 || host > cl.n || !cl.hosts[host - 1].up)
		return;		/* a link that is down reset everything at the other end */
	frame_init(&f, F_END);
	e->flags = (gone ? F_END_GONE : 0) | (reset ? F_END_RESET : 0);
	e->conn = peer_conn;
	send_frame(host, &f);
}

/* ---- frames from other monitors -------------------------------------------- */

static void on_msg(uint32_t host, const struct f_msg *fm)
{
	struct ipcd_rmsg m = { .type = IPCD_RMSG_DELIVER, .host = host };
	struct mon_client *c = client_of_key(fm->dst_key);

	if (!c || c->slot >= cl.n_chans || cl.chans[c->slot].fd < 0 || fm->len > IPCD_RMSG_BODY) {
		cl.st.msgs_dropped++;
		return;
	}
	m.key = fm->src_key;
	m.len = (uint16_t)fm->len;
	memcpy(m.body, fm->body, fm->len);
	chan_send(c->slot, &m);
	cl.st.msgs_in++;
}

static void link_frame(void *arg, unsigned int peer, const struct ipcd_rlink_frame *f)
{
	const struct f_hdr *h = (const void *)f->b;
	uint32_t host;

	(void)arg;
	if (peer >= IPCD_MAX_PEERS || h->magic != CL_MAGIC)
		return;
	host = cl.link_host[peer];
	cl.hosts[host - 1].rx_ns = ipcd_now_ns();
	switch (h->type) {
	case F_CONNECT:
		on_connect(host, (const void *)f->b);
		break;
	case F_CONNECTED:
		on_connected(host, (const void *)f->b);
		break;
	case F_END: {
		const struct f_end *e = (const void *)f->b;

		conns_remote_end(host, e->conn, e->flags & F_END_GONE, e->flags & F_END_RESET);
		break;
	}
	case F_MSG:
		on_msg(host, (const void *)f->b);
		break;
	case F_GONE:
		chans_gone(host, ((const struct f_gone *)(const void *)f->b)->key);
		break;
	case F_PING:
		break;
	case F_ACCEPTED: {
		const struct f_accepted *a = (const void *)f->b;

		conns_remote_accepted(host, a->conn, a->b_key);
		break;
	}
	default:
		log_debug("cluster: host %u sent a frame of unknown type %u", host, h->type);
		break;
	}
}

static void count_up(void)
{
	uint32_t h, up = 0;

	for (h = 0; h < cl.n; h++)
		up += cl.hosts[h].up;
	cl.st.up = up;
	mon.cluster_up = up;
	ipcd_store_release(&mon.gctl->cluster_up, up);	/* for libraries before ABI 3.6 */
	clients_publish();
}

static void link_up(void *arg, unsigned int peer)
{
	uint32_t host = cl.link_host[peer];

	(void)arg;
	cl.hosts[host - 1].up = true;
	cl.hosts[host - 1].rx_ns = ipcd_now_ns();
	count_up();
	log_info("cluster: link to host %u (%s) is up", host, mon.cfg.peers[host - 1].name);
}

static void link_down(void *arg, unsigned int peer, const char *why)
{
	uint32_t host = cl.link_host[peer];
	uint32_t i;

	(void)arg;
	if (!cl.hosts[host - 1].up)
		return;
	cl.hosts[host - 1].up = false;
	cl.queued -= cl.hosts[host - 1].q_n;
	cl.hosts[host - 1].q_n = 0;
	cl.hosts[host - 1].q_overflow = false;
	count_up();
	log_warn("cluster: link to host %u (%s) is down (%s): its connections are reset",
		 host, mon.cfg.peers[host - 1].name, why ? why : "?");
	for (i = 0; i < CL_MAX_PENDING; i++)
		if (cl.pend[i].pend && cl.pend[i].host == host)
			pend_finish(&cl.pend[i], -ECONNREFUSED, NULL);
	conns_remote_host_down(host);
	chans_gone(host, 0);
}

static void flush_all(void)
{
	uint32_t i;

	for (i = 0; i < cl.n; i++)
		if (cl.hosts[i].up && cl.hosts[i].q_n)
			flush_frames(&cl.hosts[i]);
}

bool cluster_backlogged(void)
{
	return cl.queued != 0;	/* asked every busy turn: no scan */
}

void cluster_link_event(void)
{
	if (!cl.link)
		return;
	cl.link_ms = ipcd_rlink_poll(cl.link);
	flush_all();	/* send completions free the window */
}

int cluster_tick(void)
{
	uint64_t now;
	int ms = -1;
	uint32_t i;

	if (!cl.link)
		return -1;
	cl.link_ms = ipcd_rlink_poll(cl.link);
	flush_all();
	now = ipcd_now_ns();	/* after the poll: its frames stamped rx_ns */
	/*
	 * Keepalive: a host that died without a word (power, kernel, a lost
	 * disconnect) is found by its silence; the links then retry as after
	 * any loss, and a monitor that comes back gets in again.
	 */
	for (i = 0; i < cl.n; i++) {
		struct host *h = &cl.hosts[i];
		struct ipcd_rlink_frame f;

		if (!h->up)
			continue;
		if (h->q_overflow) {
			log_warn("cluster: host %u (%s) did not take %u frames in time: link dropped",
				 i + 1, mon.cfg.peers[i].name, CL_BACKLOG);
			ipcd_rlink_drop(cl.link, (unsigned int)h->link, "frame backlog overflow");
			continue;
		}
		if (h->q_n)
			ms = 1;	/* the window reopens with send completions: look soon */
		if (now > h->rx_ns && now - h->rx_ns > CL_SILENT_NS) {
			log_warn("cluster: host %u (%s) said nothing for %.1f s (we last sent %.1f s "
				 "ago)", i + 1, mon.cfg.peers[i].name, (double)(now - h->rx_ns) / 1e9,
				 (double)(now - h->tx_ns) / 1e9);
			ipcd_rlink_drop(cl.link, (unsigned int)h->link, "silent");
			continue;
		}
		if (now >= h->tx_ns + CL_PING_NS) {
			int rc;

			frame_init(&f, F_PING);
			rc = send_frame(i + 1, &f);
			if (rc)
				log_debug("cluster: keepalive to host %u: %s", i + 1, strerror(-rc));
		}
		ms = ms < 0 || ms > (int)(CL_PING_NS / 1000000) ? (int)(CL_PING_NS / 1000000) : ms;
	}
	for (i = 0; i < CL_MAX_PENDING; i++) {
		struct pending *p = &cl.pend[i];
		int left;

		if (!p->pend)
			continue;
		if (now >= p->deadline) {
			log_warn("cluster: host %u did not answer a connect in %llu ms: the kernel's "
				 "turn", p->host, (unsigned long long)(CL_CONNECT_NS / 1000000));
			cl.st.refused++;
			pend_finish(p, -ECONNREFUSED, NULL);
			continue;
		}
		left = (int)((p->deadline - now) / 1000000) + 1;
		if (ms < 0 || left < ms)
			ms = left;
	}
	if (cl.link_ms >= 0 && (ms < 0 || cl.link_ms < ms))
		ms = cl.link_ms;
	return ms;
}

/* ---- init ------------------------------------------------------------------ */

int cluster_init(void)
{
	static const struct ipcd_rlink_cb cb = {
		.up = link_up, .down = link_down, .frame = link_frame,
	};
	uint8_t peer_addr[IPCD_MAX_PEERS][16];
	uint16_t peer_port[IPCD_MAX_PEERS];
	unsigned int np = 0;
	const char *why = NULL;
	uint32_t i;
	int fds[4], nfds, rc;

	cl.n_chans = mon.cfg.max_processes;
	cl.chans = calloc(cl.n_chans, sizeof(*cl.chans));
	if (!cl.chans)
		return -ENOMEM;
	for (i = 0; i < cl.n_chans; i++)
		cl.chans[i].fd = -1;
	if (!mon.cfg.n_peers)
		return 0;
	for (i = 0; i < mon.cfg.n_peers; i++) {
		const struct ipcd_peer *pe = &mon.cfg.peers[i];
		struct host *h = &cl.hosts[i];
		struct in_addr v4;

		memset(h->addr, 0, 16);
		if (inet_pton(AF_INET, pe->addr, &v4) == 1) {
			h->addr[10] = h->addr[11] = 0xff;
			memcpy(h->addr + 12, &v4, 4);
		} else if (inet_pton(AF_INET6, pe->addr, h->addr) != 1) {
			continue;	/* config.c checked it */
		}
		h->port = pe->port;
		h->link = -1;
		if (!cl.self && conns_is_local(h->addr)) {
			h->self = true;
			cl.self = i + 1;
			continue;
		}
		h->link = (int)np;
		cl.link_host[np] = i + 1;
		memcpy(peer_addr[np], h->addr, 16);
		peer_port[np] = h->port;
		np++;
	}
	cl.n = mon.cfg.n_peers;
	cl.st.hosts = cl.n;
	if (!cl.self) {
		log_warn("cluster: none of the %u peers in the config has an address of this host: "
			 "RDMA is off, connections to other hosts use the kernel", cl.n);
		cl.n = 0;
		return 0;
	}
	cl.st.self = cl.self;
	rc = ipcd_rlink_open(cl.hosts[cl.self - 1].addr, cl.hosts[cl.self - 1].port, np,
			     (const uint8_t (*)[16])peer_addr, peer_port, CL_RETRY_MS, &cb, &cl.link,
			     &why);
	if (rc) {
		log_warn("cluster: cannot listen for the other monitors on %s port %u: %s (%s): "
			 "RDMA is off, connections to other hosts use the kernel",
			 mon.cfg.peers[cl.self - 1].addr, cl.hosts[cl.self - 1].port,
			 why ? why : "?", strerror(-rc));
		cl.link = NULL;
		return 0;
	}
	nfds = ipcd_rlink_fds(cl.link, fds, 4);
	for (i = 0; i < (uint32_t)nfds; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = MON_EV(MON_EV_RLINK, 0) };

		if (epoll_ctl(mon.epfd, EPOLL_CTL_ADD, fds[i], &ev)) {
			rc = -errno;
			log_err("cluster: epoll_ctl: %s", strerror(errno));
			ipcd_rlink_close(cl.link);
			cl.link = NULL;
			return rc;
		}
	}
	log_info("cluster: host %u of %u (%s, %s port %u); links to %u other hosts",
		 cl.self, cl.n, mon.cfg.peers[cl.self - 1].name, mon.cfg.peers[cl.self - 1].addr,
		 cl.hosts[cl.self - 1].port, np);
	cl.link_ms = ipcd_rlink_poll(cl.link);
	return 0;
}

void cluster_exit(void)
{
	uint32_t i;

	for (i = 0; cl.chans && i < cl.n_chans; i++)
		chan_close(i);
	for (i = 0; i < IPCD_MAX_PEERS; i++)
		free(cl.hosts[i].q);
	free(cl.chans);
	if (cl.link)
		ipcd_rlink_close(cl.link);
	/*
	 * Everything as before cluster_init(), which may run again: the fuzz
	 * targets (tests/fuzz) start a monitor per input. The backlogs' memory
	 * is freed above, and this host's number is found anew.
	 */
	memset(&cl, 0, sizeof(cl));
}

void cluster_get_stats(struct cluster_stats *st)
{
	*st = cl.st;
	if (!cl.link)
		st->up = 0;
}

bool cluster_host(uint32_t h, const char **name, const char **addr, uint16_t *port, bool *up,
		  bool *self)
{
	if (h == 0 || h > cl.n)
		return false;
	*name = mon.cfg.peers[h - 1].name;
	*addr = mon.cfg.peers[h - 1].addr;
	*port = cl.hosts[h - 1].port;
	*up = cl.hosts[h - 1].up;
	*self = cl.hosts[h - 1].self;
	return true;
}
