/* SPDX-License-Identifier: MIT */
/*
 * lanes.c - connection setup without the monitor (proto.h, "Lanes").
 *
 * Connector side. The first connect() from this process to a listening bind
 * that takes lanes goes through the monitor (CONNECT), which sends this
 * process its end of a lane with the answer. Later connect()s to the same
 * destination take a kit (a connection the monitor made ahead of need,
 * fetched IPCD_KITS_MAX at a time) and send it down the lane: one sendmsg,
 * no monitor, no round trip. The lane table is small and fixed
 * (IPCD_CLANES); a destination without a lane uses CONNECT as before.
 *
 * Listener side. The owner's ACCEPT of the connection that made a lane
 * brings the other end; it joins the listening socket's epoll set (sock.h
 * LISTEN), so a lane with a kit queued makes the listener readable like a
 * kernel backlog, and accept() receives the kit with one recvmsg.
 *
 * Endings. The connector sees EPIPE on the lane when the listener closed
 * its end: it closes the kits it still holds (CLOSE: they were never
 * connections) and goes back to CONNECT. The listener sees EOF when the
 * connector closed or died: it accepts what was sent before, then tells the
 * monitor how many kits it received and accepted (LANE_DONE). Before a
 * fork, and when the listening socket closes, the listener shuts its ends
 * (SHUT_RD: the connector's next send fails), drains them and says
 * LANE_DONE: kits received but not accepted go back to the monitor's
 * backlog, where any process holding the socket may accept them, so a
 * prefork server's workers share the connections as they would a kernel
 * listener's. A fork child forgets the connector lanes it inherited (they
 * are its parent's).
 *
 * Trust. A kit comes from the connecting process, not from the monitor:
 * the listener maps its region with the usual checks and requires the seals
 * the monitor puts on every region (a connector cannot shrink it under the
 * listener), and takes the peer's address from the region.
 *
 * IPCD_LANES=0 in the environment turns lanes off (every connection is then
 * set up by the monitor), for comparison and debugging.
 */
#undef _FORTIFY_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ipcd/ctl.h>
#include <ipcd/proto.h>
#include <ipcd/siphash.h>

#include "attach.h"
#include "interpose.h"
#include "sock.h"

#define IPCD_CLANES		8	/* connector lanes (the monitor allows as many) */
/*
 * Kits a connector lane holds. When it is down to IPCD_KITS_MAX / 2 it asks
 * for IPCD_KITS_MAX more without waiting (ipcd_mon_kits_post), so a
 * connect() waits for the monitor only when the monitor is slower than that
 * many connects.
 */
#define CLANE_KITS		(IPCD_KITS_MAX + IPCD_KITS_MAX / 2)
#define CLANE_LOW		(IPCD_KITS_MAX / 2)

struct clane {
	uint32_t id;			/* 0: free */
	uint32_t bind_id;
	uint8_t addr[16];		/* the destination this lane serves */
	uint16_t port;
	int fd;
	unsigned int head;		/* next kit to use */
	unsigned int n;			/* kits held, from @head (a ring) */
	bool pending;			/* a KITS is posted for it */
	uint64_t mon_id;		/* the monitor that made it, and its kits */
	struct ipcd_kit kits[CLANE_KITS];
};

static pthread_mutex_t c_mu = PTHREAD_MUTEX_INITIALIZER;
static struct clane clanes[IPCD_CLANES];
static int lanes_on = -1;		/* -1: IPCD_LANES not read yet */

bool ipcd_lanes_enabled(void)
{
	if (lanes_on < 0) {
		const char *v = getenv("IPCD_LANES");

		lanes_on = !(v && strcmp(v, "0") == 0);
	}
	return lanes_on;
}

static void close_kit(struct ipcd_kit *k)
{
	unsigned int i;

	for (i = 0; i < IPCD_CTL_CONN_NFDS; i++)
		if (k->fds[i] >= 0)
			ipcd_real.close(k->fds[i]);
}

/* Kit @conn_id never left us: the monitor closes both its ends. */
static void post_unsent(uint64_t conn_id)
{
	ipcd_mon_post_close(conn_id, IPCD_CLOSE_UNSENT);
}

/* Append @n kits, in lane order, to @c's ring (c_mu held; there is room). */
static void clane_append(struct clane *c, const struct ipcd_kit *kits, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		c->kits[(c->head + c->n++) % CLANE_KITS] = kits[i];
}

/*
 * The posted KITS of @c, if any (c_mu held): > 0 kits added, 0 not answered
 * yet (!@wait), or the monitor's -errno (none in flight any more).
 */
static int clane_collect(struct clane *c, bool wait)
{
	struct ipcd_kit got[IPCD_KITS_MAX];
	int rc;

	if (!c->pending)
		return -ENOENT;
	rc = ipcd_mon_kits_collect(c->id, got, CLANE_KITS - c->n, wait);
	if (rc == 0)
		return 0;
	c->pending = false;
	if (rc > 0)
		clane_append(c, got, (unsigned int)rc);
	return rc;
}

/*
 * A KITS refusal that leaves the lane usable later: -EAGAIN (the listener
 * has not got its end yet) and the monitor's limits (-EMFILE, -ENOBUFS,
 * -EDQUOT: room comes back as connections close). The CONNECT that follows
 * says what the caller sees.
 */
static bool kits_later(int rc)
{
	return rc == -EAGAIN || rc == -EMFILE || rc == -ENOBUFS || rc == -EDQUOT;
}

/* Drop connector lane @c (c_mu held); @tell: CLOSE the kits left unsent. */
static void clane_drop(struct clane *c, bool tell)
{
	(void)clane_collect(c, true);	/* kits on their way are ours to close too */
	while (c->n) {
		struct ipcd_kit *k = &c->kits[c->head];

		c->head = (c->head + 1) % CLANE_KITS;
		c->n--;
		if (tell)
			post_unsent(k->conn_id);
		close_kit(k);
	}
	if (c->fd >= 0)
		ipcd_real.close(c->fd);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

void ipcd_lanes_adopt_connector(const struct ipcd_mon_lane *ml, const uint8_t addr[16],
				uint16_t port)
{
	struct clane *c = NULL;
	unsigned int i;

	if (ml->fd < 0)
		return;
	pthread_mutex_lock(&c_mu);
	for (i = 0; i < IPCD_CLANES && !c; i++)
		if (!clanes[i].id)
			c = &clanes[i];
	if (!c || !ipcd_lanes_enabled()) {
		/* No room: the listener sees EOF, and the monitor ends the lane. */
		pthread_mutex_unlock(&c_mu);
		ipcd_real.close(ml->fd);
		return;
	}
	memset(c, 0, sizeof(*c));
	c->id = ml->id;
	c->bind_id = ml->bind_id;
	c->fd = ml->fd;
	c->mon_id = ipcd_state_monitor_id();
	memcpy(c->addr, addr, 16);
	c->port = port;
	pthread_mutex_unlock(&c_mu);
}

static struct clane *clane_find(const uint8_t addr[16], uint16_t port)
{
	unsigned int i;

	for (i = 0; i < IPCD_CLANES; i++)
		if (clanes[i].id && clanes[i].port == port && !memcmp(clanes[i].addr, addr, 16))
			return &clanes[i];
	return NULL;
}

int ipcd_lane_connect(const uint8_t addr[16], uint16_t port, struct ipcd_conn *conn,
		      uint64_t *mon_id)
{
	struct ipcd_lane_msg msg = { .magic = IPCD_LANE_MAGIC };
	char cbuf[CMSG_SPACE(IPCD_CTL_CONN_NFDS * sizeof(int))];
	struct iovec iov = { .iov_base = &msg, .iov_len = sizeof(msg) };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cbuf,
		.msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cm;
	struct ipcd_kit kit;
	int fds[IPCD_CTL_CONN_NFDS], live[2];
	unsigned int nfds = IPCD_CTL_CONN_NFDS;
	struct clane *c;
	int rc;

	pthread_mutex_lock(&c_mu);
	c = clane_find(addr, port);
	if (!c) {
		pthread_mutex_unlock(&c_mu);
		return -ENOENT;
	}
	if (c->pending) {
		/* Wait only when nothing is left; the answer may be in already. */
		rc = clane_collect(c, c->n == 0);
		if (rc < 0 && !kits_later(rc) && !c->n) {
			clane_drop(c, false);
			pthread_mutex_unlock(&c_mu);
			return -ENOENT;
		}
	}
	if (!c->n) {
		c->head = 0;
		rc = ipcd_mon_kits(c->id, c->kits, IPCD_KITS_MAX);
		if (rc <= 0) {
			if (!kits_later(rc))
				clane_drop(c, false);
			pthread_mutex_unlock(&c_mu);
			return -ENOENT;
		}
		c->n = (unsigned int)rc;
	}
	kit = c->kits[c->head];
	/* Our mapping first, from a copy of the region's fd: the original travels. */
	fds[IPCD_CTL_CONN_FD_REGION] = ipcd_real.fcntl(kit.fds[IPCD_CTL_CONN_FD_REGION],
						       F_DUPFD_CLOEXEC, (void *)0);
	if (fds[IPCD_CTL_CONN_FD_REGION] < 0) {
		pthread_mutex_unlock(&c_mu);
		return -ENOENT;
	}
	fds[IPCD_CTL_CONN_FD_SELF] = kit.fds[IPCD_CTL_CONN_FD_SELF];
	fds[IPCD_CTL_CONN_FD_PEER] = kit.fds[IPCD_CTL_CONN_FD_PEER];
	/*
	 * The kit's life sockets are ours to make (ctl.h): one end stays with
	 * us, the other goes with the kit. Without them it still works.
	 */
	{
		/* A 3.6 monitor makes lanes to 3.6 listeners too, which take 3 fds. */
		struct ipcd_attach *a = ipcd_state_get();

		if (!a || a->welcome.abi_minor < 7 ||
		    ipcd_real.socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, live) < 0) {
			live[0] = live[1] = -1;
			nfds = IPCD_CTL_CONN_NFDS_MIN;
		}
	}
	fds[IPCD_CTL_CONN_FD_LIVE] = live[0];
	rc = ipcd_conn_open_id(fds, kit.size, false, kit.conn_id, conn); /* takes the wake fds */
	*mon_id = c->mon_id;
	c->head = (c->head + 1) % CLANE_KITS;
	c->n--;
	if (rc) {
		/* A kit we cannot map: never sent, so only the monitor must know. */
		ipcd_real.close(kit.fds[IPCD_CTL_CONN_FD_REGION]);
		if (live[1] >= 0)
			ipcd_real.close(live[1]);
		post_unsent(kit.conn_id);
		pthread_mutex_unlock(&c_mu);
		return -ENOENT;
	}
	/* The listener's view: its own (B's) wake eventfd, then ours. */
	msg.seq = kit.seq;
	msg.conn_id = kit.conn_id;
	msg.region_size = kit.size;
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
	fds[IPCD_CTL_CONN_FD_REGION] = kit.fds[IPCD_CTL_CONN_FD_REGION];
	fds[IPCD_CTL_CONN_FD_SELF] = conn->wake_peer;
	fds[IPCD_CTL_CONN_FD_PEER] = conn->wake_self;
	fds[IPCD_CTL_CONN_FD_LIVE] = live[1];
	memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	do
		rc = (int)ipcd_real.sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (rc < 0 && errno == EINTR);
	ipcd_real.close(kit.fds[IPCD_CTL_CONN_FD_REGION]);
	if (live[1] >= 0)
		ipcd_real.close(live[1]);	/* the listener's now, or gone with the kit */
	if (rc == (int)sizeof(msg)) {
		/* After the send: the listener is already on its way. */
		if (!c->pending && c->n <= CLANE_LOW &&
		    ipcd_mon_kits_post(c->id, CLANE_KITS - c->n) == 0)
			c->pending = true;
		pthread_mutex_unlock(&c_mu);
		return 0;
	}
	/*
	 * Not sent. A full lane (EAGAIN) keeps the lane: the monitor's answer
	 * to a CONNECT then says whether the backlog is full. Anything else
	 * (EPIPE: the listener closed its end) ends it. Either way this kit
	 * never reached the listener: closing it is all it takes.
	 */
	rc = rc < 0 ? errno : EPROTO;
	ipcd_conn_close(conn);
	post_unsent(kit.conn_id);
	if (rc != EAGAIN && rc != ENOBUFS)
		clane_drop(c, true);
	pthread_mutex_unlock(&c_mu);
	return -ENOENT;
}

void ipcd_lanes_fork_prepare(void)
{
	pthread_mutex_lock(&c_mu);
}

void ipcd_lanes_fork_parent(void)
{
	pthread_mutex_unlock(&c_mu);
}

void ipcd_lanes_fork_child(void)
{
	unsigned int i;

	/* The parent's lanes and kits: ours are copies to close, silently. */
	for (i = 0; i < IPCD_CLANES; i++)
		if (clanes[i].id)
			clane_drop(&clanes[i], false);
	pthread_mutex_unlock(&c_mu);
}

/*
 * exit(): give back the kits we hold and those on their way (CLOSE
 * UNSENT, served even if we are gone by then), rather than leave the
 * monitor to close them as a dead process's. _exit and signals skip this;
 * the monitor's death handling covers them.
 */
__attribute__((destructor)) static void lanes_at_exit(void)
{
	unsigned int i;

	ipcd_inside++;
	pthread_mutex_lock(&c_mu);
	for (i = 0; i < IPCD_CLANES; i++)
		if (clanes[i].id)
			clane_drop(&clanes[i], true);
	pthread_mutex_unlock(&c_mu);
	ipcd_inside--;
}

/* ---- listener side ---------------------------------------------------------- */

struct llane {
	uint32_t id;			/* 0: free */
	int fd;
	uint64_t key;			/* its kits' tag key (ipcd_kit_tag); 0: a monitor before 3.6 */
	uint32_t key2;
	uint32_t received;		/* one past the last kit number that came */
	uint32_t accepted;		/* one past the last kit number accepted */
};

struct ipcd_llanes {
	pthread_mutex_t mu;
	unsigned int next;		/* round robin */
	struct llane l[IPCD_LLANES];
};

static pthread_mutex_t l_alloc_mu = PTHREAD_MUTEX_INITIALIZER;

/* Epoll tag of listener lane @i in the listening epoll set (sock.c uses 0 and 1). */
#define LANE_TAG(i)	(2u + (i))

void ipcd_lanes_adopt_listener(struct ipcd_sock *s, int ep, const struct ipcd_mon_lane *ml)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct ipcd_llanes *ls;
	struct llane *n = NULL;
	unsigned int i;

	if (ml->fd < 0)
		return;
	/* Two threads' ACCEPTs may each bring a lane: one table per socket. */
	pthread_mutex_lock(&l_alloc_mu);
	ls = s->lanes;
	if (!ls && !s->forked) {
		ls = calloc(1, sizeof(*ls));
		if (ls) {
			pthread_mutex_init(&ls->mu, NULL);
			s->lanes = ls;
		}
	}
	pthread_mutex_unlock(&l_alloc_mu);
	if (!ls || s->forked)
		goto refuse;
	pthread_mutex_lock(&ls->mu);
	for (i = 0; i < IPCD_LLANES && !n; i++)
		if (!ls->l[i].id)
			n = &ls->l[i];
	if (!n) {
		pthread_mutex_unlock(&ls->mu);
		goto refuse;
	}
	ev.data.u32 = LANE_TAG((unsigned int)(n - ls->l));
	if (ipcd_real.epoll_ctl(ep, EPOLL_CTL_ADD, ml->fd, &ev) < 0) {
		pthread_mutex_unlock(&ls->mu);
		goto refuse;
	}
	n->id = ml->id;
	n->fd = ml->fd;
	n->key = ml->key;
	n->key2 = ml->key2;
	n->received = n->accepted = 0;
	pthread_mutex_unlock(&ls->mu);
	return;
refuse:
	/* The connector sees EPIPE and goes back to CONNECT. */
	ipcd_real.close(ml->fd);
}

static void post_lane_done(const struct llane *n)
{
	struct ipcd_req req = { .opcode = IPCD_OP_LANE_DONE };
	struct ipcd_lane_done_req *d = (void *)req.body;

	req.len = sizeof(*d);
	d->lane_id = n->id;
	d->received = n->received;
	d->accepted = n->accepted;
	ipcd_mon_post(&req);
}

/*
 * Receive one kit from lane @n: 1 (fds and size filled), 0 (nothing
 * queued), or -1 (EOF, an error or a malformed message: the lane is over).
 */
static int lane_recv(struct llane *n, int fds[IPCD_CTL_CONN_NFDS], uint64_t *size,
		     uint64_t *conn_id)
{
	int want = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
	struct ipcd_lane_msg msg;
	unsigned int got = 0, i;
	int seals = -1;
	ssize_t r;

	/* As a control-socket message: truncated ones come back -EMSGSIZE, fds closed. */
	r = ipcd_ctl_recv(n->fd, &msg, sizeof(msg), MSG_DONTWAIT, fds, IPCD_CTL_CONN_NFDS, &got);
	if (r == -EAGAIN)
		return 0;
	if (r < 0 || (r == 0 && !got))
		return -1;		/* EOF (the connector closed or died), or an error */
	/*
	 * Numbers only grow (a kit the connector could not send leaves a gap).
	 * Only a region the monitor made: sealed, so it cannot shrink under us.
	 */
	if (r == (ssize_t)sizeof(msg) && msg.magic == IPCD_LANE_MAGIC && msg.seq >= n->received &&
	    msg.seq != UINT32_MAX && got >= IPCD_CTL_CONN_NFDS_MIN)
		seals = ipcd_real.fcntl(fds[IPCD_CTL_CONN_FD_REGION], F_GET_SEALS, (void *)0);
	if (seals < 0 || (seals & want) != want) {
		for (i = 0; i < got; i++)
			ipcd_real.close(fds[i]);
		return -1;		/* not our protocol: end the lane */
	}
	for (i = got; i < IPCD_CTL_CONN_NFDS; i++)
		fds[i] = -1;		/* a connector without life sockets */
	n->received = msg.seq + 1;
	*size = msg.region_size;
	*conn_id = msg.conn_id;		/* the region must say the same */
	return 1;
}

/*
 * Lane @n is over (ls->mu held): close it (which takes it out of the
 * listening epoll set: we hold its only descriptor) and tell the monitor.
 */
static void llane_end(struct llane *n)
{
	ipcd_real.close(n->fd);
	post_lane_done(n);
	memset(n, 0, sizeof(*n));
	n->fd = -1;
}

int ipcd_lane_accept(struct ipcd_sock *s, int fds[IPCD_CTL_CONN_NFDS], uint64_t *size,
		     uint64_t *conn_id, uint64_t *tag)
{
	struct ipcd_llanes *ls = s->lanes;
	unsigned int i, idx;
	int rc = -EAGAIN;

	if (!ls)
		return -EAGAIN;
	pthread_mutex_lock(&ls->mu);
	for (i = 0; i < IPCD_LLANES && rc == -EAGAIN; i++) {
		struct llane *n;
		int r;

		idx = (ls->next + i) % IPCD_LLANES;
		n = &ls->l[idx];
		if (!n->id)
			continue;
		r = lane_recv(n, fds, size, conn_id);
		if (r > 0) {
			/* What the monitor wrote in the kit, if it is the one it says it is. */
			*tag = n->key ? ipcd_kit_tag(n->key, n->key2, n->id, *conn_id) : 0;
			n->accepted = n->received;
			ls->next = idx + 1;
			rc = 0;
		} else if (r < 0) {
			llane_end(n);
		}
	}
	pthread_mutex_unlock(&ls->mu);
	return rc;
}

void ipcd_lanes_listener_close(struct ipcd_sock *s)
{
	struct ipcd_llanes *ls = s->lanes;
	unsigned int i, j;

	if (!ls)
		return;
	pthread_mutex_lock(&ls->mu);
	for (i = 0; i < IPCD_LLANES; i++) {
		struct llane *n = &ls->l[i];
		int fds[IPCD_CTL_CONN_NFDS];
		uint64_t size, id;

		if (!n->id)
			continue;
		/* The connector's next send fails; what it sent before is here. */
		ipcd_real.shutdown(n->fd, SHUT_RD);
		while (lane_recv(n, fds, &size, &id) > 0)
			for (j = 0; j < IPCD_CTL_CONN_NFDS; j++)
				ipcd_real.close(fds[j]);
		llane_end(n);
	}
	pthread_mutex_unlock(&ls->mu);
}

void ipcd_lanes_listener_free(struct ipcd_sock *s)
{
	if (!s->lanes)
		return;
	pthread_mutex_destroy(&s->lanes->mu);
	free(s->lanes);
	s->lanes = NULL;
}

/* ---- close_range ------------------------------------------------------------- */

static void hide(struct ipcd_fdset *h, int fd)
{
	if (fd >= 0 && h->n < h->max)
		h->fds[h->n++] = fd;
}

void ipcd_lanes_hidden_fds(struct ipcd_fdset *h)
{
	unsigned int i, j, k;

	pthread_mutex_lock(&c_mu);
	for (i = 0; i < IPCD_CLANES; i++) {
		struct clane *c = &clanes[i];

		if (!c->id)
			continue;
		hide(h, c->fd);
		for (j = 0; j < c->n; j++)
			for (k = 0; k < IPCD_CTL_CONN_NFDS; k++)
				hide(h, c->kits[(c->head + j) % CLANE_KITS].fds[k]);
	}
	pthread_mutex_unlock(&c_mu);
}

void ipcd_llanes_hidden_fds(struct ipcd_sock *s, struct ipcd_fdset *h)
{
	struct ipcd_llanes *ls = s->lanes;
	unsigned int i;

	if (!ls)
		return;
	pthread_mutex_lock(&ls->mu);
	for (i = 0; i < IPCD_LLANES; i++)
		if (ls->l[i].id)
			hide(h, ls->l[i].fd);
	pthread_mutex_unlock(&ls->mu);
}
