/* SPDX-License-Identifier: MIT */
/*
 * conns.c - the connection table: CONNECT, ACCEPT, CLOSE, listener backlogs,
 * and what a process's death means for its connections.
 *
 * A connection is one IPCD_REGION_CONN memfd (ring A->B, ring B->A, struct
 * ipcd_conn_ctl) that the two endpoints map; A connected, B accepted. The
 * monitor keeps only the memfd (thousands of mappings would cost it address
 * space and page tables) and maps the region for the moment it marks the
 * rings of a side that died.
 *
 * Lifetime. An entry is taken at CONNECT and queued on the listener's
 * backlog; ACCEPT unlinks it. Each end is OPEN until its process sends
 * CLOSE (CLOSED) or dies, is cut off, or, for B, its listener goes away
 * before accepting it (GONE). The entry is freed, memfd closed and A's
 * ephemeral port released, once neither end is OPEN and it is in no backlog:
 *  - A closes while queued: the entry stays queued, as the kernel keeps a
 *    connection whose client closed in the accept queue: the acceptor reads
 *    what A wrote, then EOF. It is freed after B closes it, or when the
 *    listener goes away.
 *  - A dies (or is cut off) while queued and had not closed: as if it had
 *    closed (its rings are marked; reset only if it left data unread); the
 *    acceptor still gets the connection, as the kernel's accept queue keeps
 *    it.
 *  - The listener is unbound or its owner dies: every queued entry gets B's
 *    closed marks and IPCD_CONN_RESET_B (A sees ECONNRESET, as after the
 *    kernel's RST), and is freed when A closes it or dies.
 *
 * Wake eventfds. Each connection has two, one per end (ctl.h): a side about
 * to sleep in poll/epoll sets IPCD_DB_EVENT in a doorbell word and the other
 * side signals its eventfd after publishing. The monitor creates both with
 * the region, sends [memfd, own, peer's] to each end (IPCD_CTL_CONN_FD), and
 * keeps them until the entry is freed, so that when a process dies it can
 * wake a survivor sleeping in poll/epoll, not only one sleeping on a futex.
 *
 * Backlog. LISTEN's backlog is capped like listen(2): min(max(backlog, 1),
 * net.core.somaxconn (read at each LISTEN), 4096), and, as Linux's
 * sk_acceptq_is_full() (ack_backlog > max_ack_backlog), a listener holds up
 * to cap + 1 connections: listen(fd, 1) takes two. A full backlog answers
 * CONNECT with -EAGAIN. Each backlog is a FIFO threaded through the table's
 * next links, so all backlogs together never need more than the table.
 * Per-bind state lives in an array parallel to the port namespace's table
 * (ipcd_ns_index()), valid while its bind_id matches.
 *
 * Accept eventfd. The first LISTEN of a bind creates an eventfd and sends it
 * to the owner (IPCD_CTL_LISTEN_FD) before the response. Invariant: it is
 * readable exactly while the backlog is non-empty (lis_level() after every
 * change of count), so a blocking accept, poll or epoll on the listener can
 * sleep in the kernel. It is closed when the listener goes.
 *
 * Ring sizes. Each ring of a connection gets min(ring_max_bytes,
 * next_pow2(max(ring_bytes, the connector's hint, the listener's hint))):
 * the hints are what the sockets asked for (SO_SNDBUF / SO_RCVBUF), so a
 * program never has less buffering than the kernel would give it, and the
 * config bounds what one connection may cost.
 *
 * Ids: (serial << CONN_IDX_BITS) | table index, serial from 1 up: never 0,
 * never reused while the monitor runs, and CLOSE finds its entry directly.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ipcd/spsc.h>

#include "monitor.h"

#define CONN_IDX_BITS	20		/* config.c caps max_connections at 1 << 20 */
#define CONN_IDX_MASK	((1ull << CONN_IDX_BITS) - 1)
#define NONE		UINT32_MAX
#define BACKLOG_MAX	4096u
#define LOCAL_ADDRS	64		/* interface addresses remembered */
#define LOCAL_TTL_NS	1000000000ull	/* how long the interface list is trusted */
#define HINT_MAX	(1u << 30)	/* largest ring-size hint a request may carry */
#define FD_SLACK	64u		/* epoll, signalfd, sockets, the global region, ... */

enum end { END_OPEN, END_CLOSED, END_GONE };

struct conn {
	uint64_t id;			/* 0: free */
	uint64_t a_owner;		/* client ids */
	uint64_t b_owner;		/* the listener's owner; the acceptor once accepted */
	uint64_t size;			/* region bytes */
	uint64_t off[3];		/* area offsets, from the header we wrote: trusted */
	int fd;				/* the region's memfd */
	int wake[2];			/* wake eventfds of end A [0] and end B [1] */
	uint32_t ring_bytes;		/* capacity of each ring */
	uint32_t eph_bind;		/* A's ephemeral port in the namespace */
	uint32_t listener;		/* bind id while queued */
	uint32_t next;			/* backlog FIFO while queued, free list while free */
	pid_t a_pid;
	pid_t b_pid;
	uid_t a_uid;
	uid_t b_uid;
	uint8_t a_addr[16];
	uint8_t b_addr[16];
	uint16_t a_port;
	uint16_t b_port;
	uint8_t a_end;			/* enum end */
	uint8_t b_end;
	uint8_t reset;			/* IPCD_CONN_RESET_* we set */
	bool queued;
	bool accepted;
};

/* Backlog of one listening bind; index = ipcd_ns_index() of the bind. */
struct lis {
	uint32_t bind_id;		/* 0: not listening (then nothing else is valid) */
	uint32_t slot;			/* the owner's client slot */
	uint64_t owner;
	uint32_t max;			/* connections it may hold (capped backlog + 1) */
	uint32_t count;
	uint32_t head;			/* oldest */
	uint32_t tail;
	uint32_t ring_bytes;		/* the hint of its latest LISTEN; 0: none */
	int efd;			/* accept eventfd: readable iff count > 0 */
	uint64_t token;			/* accept token: the owner's inheritors know it */
	bool readable;			/* what we last made efd */
};

static struct {
	struct conn *tab;		/* [cap] */
	uint32_t cap;
	uint32_t hwm;			/* entries ever used: the rest was never touched */
	uint32_t free_head;
	struct lis *lis;		/* [n_lis] */
	uint32_t n_lis;
	uint32_t lis_hwm;
	uint64_t serial;
	struct conns_stats st;
	uint64_t local_at;		/* when local[] was read; 0: never */
	uint32_t n_local;
	uint8_t local[LOCAL_ADDRS][16];
} cs = { .free_head = NONE };

static const uint8_t v4_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
static const uint8_t v6_loopback[16] = { [15] = 1 };

static bool is_v4(const uint8_t a[16])
{
	return memcmp(a, v4_prefix, sizeof(v4_prefix)) == 0;
}

static bool is_wildcard(const uint8_t a[16])
{
	static const uint8_t zero[16];

	return is_v4(a) ? memcmp(a + 12, zero, 4) == 0 : memcmp(a, zero, 16) == 0;
}

static bool is_loopback(const uint8_t a[16])
{
	return is_v4(a) ? a[12] == 127 : memcmp(a, v6_loopback, 16) == 0;
}

static void set_v4(uint8_t a[16], uint8_t b0, uint8_t b1, uint8_t b2, uint8_t b3)
{
	memcpy(a, v4_prefix, sizeof(v4_prefix));
	a[12] = b0;
	a[13] = b1;
	a[14] = b2;
	a[15] = b3;
}

static void refresh_local(void)
{
	struct ifaddrs *ifa, *i;

	cs.n_local = 0;
	cs.local_at = ipcd_now_ns();
	if (getifaddrs(&ifa) < 0) {
		log_warn("connect: cannot list local addresses (%s): only loopback is local",
			 strerror(errno));
		return;
	}
	for (i = ifa; i && cs.n_local < LOCAL_ADDRS; i = i->ifa_next) {
		uint8_t *a = cs.local[cs.n_local];

		if (!i->ifa_addr)
			continue;
		if (i->ifa_addr->sa_family == AF_INET) {
			memcpy(a, v4_prefix, sizeof(v4_prefix));
			memcpy(a + 12, &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, 4);
		} else if (i->ifa_addr->sa_family == AF_INET6) {
			memcpy(a, &((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr, 16);
		} else {
			continue;
		}
		cs.n_local++;
	}
	freeifaddrs(ifa);
}

/*
 * Is @a an address of this host? A wildcard listener matches every
 * destination of its family, but a connect to another host's address must
 * go to the network, not to our listener.
 */
static bool is_local(const uint8_t a[16])
{
	uint32_t i;

	if (is_loopback(a))
		return true;
	if (!cs.local_at || ipcd_now_ns() - cs.local_at > LOCAL_TTL_NS)
		refresh_local();
	for (i = 0; i < cs.n_local; i++)
		if (!memcmp(cs.local[i], a, 16))
			return true;
	return false;
}

/* ---- table -------------------------------------------------------------- */

static uint32_t conn_idx(const struct conn *k)
{
	return (uint32_t)(k - cs.tab);
}

static struct conn *conn_find(uint64_t id)
{
	uint64_t idx = id & CONN_IDX_MASK;

	if (!id || idx >= cs.hwm || cs.tab[idx].id != id)
		return NULL;
	return &cs.tab[idx];
}

static struct conn *conn_alloc(void)
{
	struct conn *k;
	uint32_t idx;

	if (cs.free_head != NONE) {
		idx = cs.free_head;
		cs.free_head = cs.tab[idx].next;
	} else if (cs.hwm < cs.cap) {
		idx = cs.hwm++;
	} else {
		return NULL;
	}
	k = &cs.tab[idx];
	memset(k, 0, sizeof(*k));
	k->fd = -1;
	k->wake[0] = k->wake[1] = -1;
	k->next = NONE;
	k->id = ++cs.serial << CONN_IDX_BITS | idx;
	cs.st.active++;
	return k;
}

static void conn_close_fds(struct conn *k)
{
	unsigned int i;

	if (k->fd >= 0)
		close(k->fd);
	for (i = 0; i < 2; i++)
		if (k->wake[i] >= 0)
			close(k->wake[i]);
	k->fd = k->wake[0] = k->wake[1] = -1;
}

/* Give entry @k back; conn_free() for a connection that existed. */
static void conn_drop(struct conn *k)
{
	conn_close_fds(k);
	/* -ENOENT if ipcd_ns_release_owner() already took it with A's other binds. */
	if (k->eph_bind)
		ipcd_ns_unbind(mon.ns, k->a_owner, k->eph_bind);
	memset(k, 0, sizeof(*k));
	k->fd = k->wake[0] = k->wake[1] = -1;
	k->next = cs.free_head;
	cs.free_head = conn_idx(k);
	cs.st.active--;
}

static void conn_free(struct conn *k)
{
	conn_drop(k);
	cs.st.freed++;
}

static void conn_free_if_done(struct conn *k)
{
	if (k->a_end != END_OPEN && k->b_end != END_OPEN && !k->queued)
		conn_free(k);
}

/* ---- backlogs ----------------------------------------------------------- */

static struct lis *lis_get(uint32_t bind_id)
{
	int64_t idx = mon.ns ? ipcd_ns_index(mon.ns, bind_id) : -ENOENT;

	if (idx < 0 || (uint64_t)idx >= cs.n_lis || cs.lis[idx].bind_id != bind_id)
		return NULL;
	return &cs.lis[idx];
}

/*
 * Keep the accept eventfd readable exactly while the backlog is non-empty:
 * a write on empty -> non-empty, a (non-blocking) read of the whole counter
 * on non-empty -> empty. Only the monitor writes it; the owner only polls.
 */
static void lis_level(struct lis *l)
{
	uint64_t v;

	if (l->efd < 0 || l->readable == (l->count > 0))
		return;
	if (l->count) {
		if (ipcd_eventfd_signal(l->efd) == 0)
			l->readable = true;
	} else {
		ssize_t n = read(l->efd, &v, sizeof(v));

		if (n == (ssize_t)sizeof(v) || (n < 0 && errno == EAGAIN))
			l->readable = false;
	}
}

static void lis_push_tail(struct lis *l, struct conn *k)
{
	uint32_t idx = conn_idx(k);

	k->next = NONE;
	if (l->count++)
		cs.tab[l->tail].next = idx;
	else
		l->head = idx;
	l->tail = idx;
	k->queued = true;
	k->listener = l->bind_id;
	lis_level(l);
}

static void lis_push_head(struct lis *l, struct conn *k)
{
	uint32_t idx = conn_idx(k);

	k->next = l->count++ ? l->head : NONE;
	if (k->next == NONE)
		l->tail = idx;
	l->head = idx;
	k->queued = true;
	k->listener = l->bind_id;
	lis_level(l);
}

static struct conn *lis_pop(struct lis *l)
{
	struct conn *k;

	if (!l->count)
		return NULL;
	k = &cs.tab[l->head];
	l->head = k->next;
	l->count--;
	k->next = NONE;
	k->queued = false;
	lis_level(l);
	return k;
}

static uint32_t read_somaxconn(void)
{
	unsigned int v = BACKLOG_MAX;
	FILE *f = fopen("/proc/sys/net/core/somaxconn", "re");

	if (f) {
		if (fscanf(f, "%u", &v) != 1 || v == 0)
			v = BACKLOG_MAX;
		fclose(f);
	}
	return v;
}

/* ---- the region --------------------------------------------------------- */

static struct ipcd_spsc_shm *ring_at(uint8_t *base, const struct conn *k, uint32_t area)
{
	return (struct ipcd_spsc_shm *)(void *)(base + k->off[area]);
}

/* The smallest power of two >= @n (n <= HINT_MAX). */
static uint32_t pow2_ceil(uint32_t n)
{
	uint32_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

/* Bytes per ring for a new connection: see "Ring sizes" above. */
static uint32_t ring_size(uint32_t connect_hint, uint32_t listen_hint)
{
	uint32_t want = IPCD_MAX(mon.cfg.ring_bytes, IPCD_MAX(connect_hint, listen_hint));

	return IPCD_MIN(mon.cfg.ring_max_bytes, pow2_ceil(want));
}

/*
 * A connection's region before it belongs to anyone: memfd and mapping, both
 * rings formatted, not yet published; and its two wake eventfds.
 */
struct prepared {
	struct ipcd_region reg;
	int wake[2];
	uint32_t ring_bytes;
};

/*
 * Regions of the default size are made ahead of need (conns_refill(), after
 * answering a CONNECT): creating one (memfd, size, seals, mapping, page
 * faults, two eventfds) costs ~25 us, which a CONNECT then does not wait
 * for. No process has seen a pooled region, so nothing can leak through it.
 */
#define POOL_MAX	8

static struct {
	struct prepared p[POOL_MAX];
	unsigned int n;
} pool;

static void prepared_close(struct prepared *p)
{
	unsigned int i;

	ipcd_region_close(&p->reg);
	for (i = 0; i < 2; i++)
		if (p->wake[i] >= 0)
			close(p->wake[i]);
	p->wake[0] = p->wake[1] = -1;
}

static int region_prepare(struct prepared *p, uint32_t ring_bytes)
{
	size_t sizes[3] = {
		[IPCD_AREA_CONN_A2B] = ipcd_spsc_mem_size(ring_bytes),
		[IPCD_AREA_CONN_B2A] = ipcd_spsc_mem_size(ring_bytes),
		[IPCD_AREA_CONN_CTL] = sizeof(struct ipcd_conn_ctl),
	};
	uint32_t i;
	int rc;

	memset(p, 0, sizeof(*p));
	p->reg.fd = -1;
	p->wake[0] = p->wake[1] = -1;
	p->ring_bytes = ring_bytes;
	for (i = 0; i < 2; i++) {
		p->wake[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (p->wake[i] < 0) {
			rc = -errno;
			goto err;
		}
	}
	rc = ipcd_region_create("ipcd-conn", IPCD_REGION_CONN, sizes, 3, &p->reg);
	if (rc)
		goto err;
	for (i = 0; i < 2 && !rc; i++)
		rc = ipcd_spsc_init(ipcd_region_area(&p->reg, i, NULL), ring_bytes, 0,
				    IPCD_SPSC_F_STREAM);
	if (rc)
		goto err;
	return 0;
err:
	prepared_close(p);
	return rc;
}

void conns_refill(void)
{
	while (pool.n < POOL_MAX) {
		struct prepared *p = &pool.p[pool.n];

		if (region_prepare(p, mon.cfg.ring_bytes))
			return;		/* out of fds or memory: CONNECT will say so */
		pool.n++;
	}
}

/*
 * The connection's region (memfd kept, mapping dropped) and its two wake
 * eventfds, all in @k: from the pool when it has the size, else made now.
 * On failure nothing is left open.
 */
static int region_make(struct conn *k, uint32_t ring_bytes)
{
	struct ipcd_conn_ctl *ctl;
	struct prepared p;
	uint32_t i;
	int rc;

	/* A reload may have changed the default size: older pooled regions go. */
	while (pool.n && pool.p[pool.n - 1].ring_bytes != mon.cfg.ring_bytes)
		prepared_close(&pool.p[--pool.n]);
	if (pool.n && ring_bytes == pool.p[pool.n - 1].ring_bytes) {
		p = pool.p[--pool.n];
		cs.st.pooled++;
	} else {
		rc = region_prepare(&p, ring_bytes);
		if (rc)
			return rc;
	}
	ctl = ipcd_region_area(&p.reg, IPCD_AREA_CONN_CTL, NULL);
	ctl->conn_id = k->id;
	memcpy(ctl->a_addr, k->a_addr, 16);
	memcpy(ctl->b_addr, k->b_addr, 16);
	ctl->a_port = k->a_port;
	ctl->b_port = k->b_port;
	/* One process per end for now; the ends count forks themselves. */
	ctl->holders_a = 1;
	ctl->holders_b = 1;
	ipcd_region_publish(&p.reg);
	for (i = 0; i < 3; i++)
		k->off[i] = p.reg.hdr.area[i].off;
	k->size = p.reg.size;
	k->fd = p.reg.fd;
	k->wake[0] = p.wake[0];
	k->wake[1] = p.wake[1];
	k->ring_bytes = ring_bytes;
	munmap(p.reg.base, p.reg.size);	/* keep the memfd, not the mapping */
	return 0;
}

/*
 * Close end @b_side (false: A) of @k for a process that can no longer do it:
 * prod_closed on the ring it wrote (the peer reads EOF), cons_closed on the
 * ring it read (the peer's writes fail), and the reset bit if that ring still
 * held data it never read (the kernel would have sent an RST) or @reset.
 * Then wake whoever sleeps on either ring, on a futex or on a wake eventfd.
 * Every word we write is at an offset we chose; what the endpoints wrote is
 * only compared.
 */
static void mark_end(struct conn *k, bool b_side, bool reset)
{
	uint32_t out_area = b_side ? IPCD_AREA_CONN_B2A : IPCD_AREA_CONN_A2B;
	uint32_t in_area = b_side ? IPCD_AREA_CONN_A2B : IPCD_AREA_CONN_B2A;
	uint32_t bit = b_side ? IPCD_CONN_RESET_B : IPCD_CONN_RESET_A;
	struct ipcd_spsc_shm *out, *in;
	struct ipcd_conn_ctl *ctl;
	uint8_t *base;
	unsigned int i;

	cs.st.dead_ends++;
	base = mmap(NULL, k->size, PROT_READ | PROT_WRITE, MAP_SHARED, k->fd, 0);
	if (base == MAP_FAILED) {
		log_warn("connection %" PRIu64 ": cannot map it to record %s's death (%s): its "
			 "peer will not be told", k->id, b_side ? "B" : "A", strerror(errno));
		return;
	}
	out = ring_at(base, k, out_area);
	in = ring_at(base, k, in_area);
	ctl = (struct ipcd_conn_ctl *)(void *)(base + k->off[IPCD_AREA_CONN_CTL]);
	if (ipcd_load_acquire(&in->prod_bytes) != ipcd_load_relaxed(&in->cons_bytes))
		reset = true;
	if (reset) {
		ipcd_fetch_or(&ctl->reset, bit);
		if (!k->reset)
			cs.st.reset++;
		k->reset |= (uint8_t)bit;
	}
	/* R3 for the survivor's A3, as ipcd_spsc_close_prod() would have done. */
	ipcd_store_release(&out->prod_closed, 1);
	ipcd_store_release(&in->cons_closed, 1);
	/*
	 * wait.h protocol, as a waker: clear each word (a full barrier after the
	 * stores above) and wake. A sleeper that armed before our exchange either
	 * sleeps and is woken, or finds the word 0 and does not sleep.
	 */
	for (i = 0; i < 2; i++) {
		struct ipcd_spsc_shm *r = i ? in : out;

		ipcd_xchg(&r->cons_wait, 0);
		ipcd_futex_wake(&r->cons_wait);
		ipcd_xchg(&r->prod_wait, 0);
		ipcd_futex_wake(&r->prod_wait);
	}
	munmap(base, k->size);
	/*
	 * A sleeper in poll/epoll (IPCD_DB_EVENT) waits on its end's eventfd,
	 * not on the word: signal both ends (after the exchanges above, so a
	 * survivor that wakes finds the words cleared and the rings marked).
	 */
	for (i = 0; i < 2; i++)
		if (k->wake[i] >= 0)
			ipcd_eventfd_signal_out(k->wake[i]);	/* EPOLLIN and EPOLLOUT edges */
}

/* ---- control-socket messages -------------------------------------------- */

/*
 * Never blocks: a process whose control socket is full is not reading it,
 * and is cut off (its connections are then closed for it at reap).
 */
static int send_msg(struct mon_client *to, uint16_t type, uint64_t conn_id, uint32_t bind_id,
		    uint64_t size, const int *fds, unsigned int nfds)
{
	struct ipcd_ctl_msg m = {
		.magic = IPCD_CTL_MAGIC,
		.type = type,
		.conn_id = conn_id,
		.bind_id = bind_id,
		.region_size = size,
	};
	int rc = control_send_fds(to->sock, &m, sizeof(m), fds, nfds);

	if (!rc)
		return 0;
	log_warn("process %d (%s): cannot send it %s on its control socket: %s%s; "
		 "disconnecting it", to->pid, to->comm,
		 type == IPCD_CTL_CONN_FD ? "a connection's fds" : "a listener's eventfd",
		 strerror(-rc), rc == -EAGAIN ? " (it does not read its control socket)" : "");
	cs.st.fd_faults++;
	mon.ctr.faults++;
	clients_kill(to->slot, rc == -EAGAIN ? "it did not read its control socket (full)"
					     : "its control socket failed");
	return rc;
}

/* IPCD_CTL_CONN_FD to end @b_side of @k: [memfd, its own wake fd, the peer's]. */
static int send_conn(struct mon_client *to, const struct conn *k, uint32_t bind_id, bool b_side)
{
	int fds[IPCD_CTL_CONN_NFDS];

	fds[IPCD_CTL_CONN_FD_REGION] = k->fd;
	fds[IPCD_CTL_CONN_FD_SELF] = k->wake[b_side];
	fds[IPCD_CTL_CONN_FD_PEER] = k->wake[!b_side];
	return send_msg(to, IPCD_CTL_CONN_FD, k->id, bind_id, k->size, fds, IPCD_CTL_CONN_NFDS);
}

static void fill_resp(struct ipcd_conn_resp *out, uint64_t id, const uint8_t peer[16],
		      uint16_t peer_port, uint16_t self_port)
{
	memset(out, 0, sizeof(*out));
	out->conn_id = id;
	memcpy(out->peer_addr, peer, 16);
	out->peer_port = peer_port;
	out->self_port = self_port;
}

/* ---- requests ----------------------------------------------------------- */

int conns_connect(struct mon_client *c, const struct ipcd_connect_req *r,
		  struct ipcd_conn_resp *out)
{
	struct ipcd_ns_who who = { .owner = c->id, .uid = c->uid, .gid = c->gid };
	struct mon_client *owner;
	struct ipcd_ns_entry e;
	uint8_t dst[16];
	struct conn *k;
	struct lis *l;
	int64_t lid;
	int rc;

	if (r->flags || r->pad || r->pad2 || r->ring_bytes > HINT_MAX)
		return -EINVAL;
	memcpy(dst, r->addr, 16);
	if (is_wildcard(dst)) {		/* Linux connects a wildcard to loopback */
		if (is_v4(dst))
			set_v4(dst, 127, 0, 0, 1);
		else
			memcpy(dst, v6_loopback, 16);
	}
	lid = ipcd_ns_lookup_listener(mon.ns, dst, r->port);
	if (lid < 0 || ipcd_ns_get(mon.ns, (uint32_t)lid, &e) || !(l = lis_get((uint32_t)lid)))
		goto refused;
	owner = clients_get(l->slot);
	if (!owner || owner->id != l->owner || owner->state != CL_ACTIVE)
		goto refused;		/* cut off this turn: reaped when it ends */
	if (is_wildcard(e.addr) && !is_local(dst))
		goto refused;		/* another host's address: the kernel's business */
	if (l->count >= l->max) {
		cs.st.backlog_full++;
		return -EAGAIN;
	}
	k = conn_alloc();
	if (!k) {
		cs.st.no_room++;
		return -ENOBUFS;
	}
	/* Source address: as Linux picks it for a local destination. */
	if (is_v4(dst) && dst[12] == 127)
		set_v4(k->a_addr, 127, 0, 0, 1);
	else
		memcpy(k->a_addr, dst, 16);
	memcpy(k->b_addr, is_wildcard(e.addr) ? dst : e.addr, 16);
	k->b_port = e.port;
	/* Connecting is not binding: the config's bind rules do not apply (NULL). */
	rc = ipcd_ns_bind(mon.ns, &who, k->a_addr, 0, 0, NULL, &k->eph_bind, &k->a_port);
	if (rc) {
		k->eph_bind = 0;
		goto err_free;
	}
	k->a_owner = c->id;
	k->a_pid = c->pid;
	k->a_uid = c->uid;
	k->b_owner = owner->id;
	k->b_pid = owner->pid;
	k->b_uid = owner->uid;
	rc = region_make(k, ring_size(r->ring_bytes, l->ring_bytes));
	if (rc) {
		log_warn("process %d (%s): connect: cannot create a connection region: %s",
			 c->pid, c->comm, strerror(-rc));
		goto err_free;
	}
	/* The fds first: the response names a connection the process already holds. */
	rc = send_conn(c, k, 0, false);
	if (rc) {
		conn_drop(k);
		return rc;
	}
	lis_push_tail(l, k);	/* makes the accept eventfd readable on 0 -> 1 */
	cs.st.created++;
	fill_resp(out, k->id, k->b_addr, k->b_port, k->a_port);
	return 0;

err_free:
	conn_drop(k);
	cs.st.no_room++;
	return rc == -ENOSPC ? -ENOBUFS : rc;

refused:
	cs.st.refused++;
	return -ECONNREFUSED;
}

int conns_accept(struct mon_client *c, const struct ipcd_accept_req *r,
		 struct ipcd_conn_resp *out)
{
	struct ipcd_ns_entry e;
	struct conn *k;
	struct lis *l;
	int rc;

	if (r->pad)
		return -EINVAL;
	if (ipcd_ns_get(mon.ns, r->id, &e))
		return -ENOENT;
	l = lis_get(r->id);
	/*
	 * The listener's owner, or a process that inherited its socket (it
	 * knows the token): a prefork server's workers accept on the socket
	 * their parent listens on.
	 */
	if (e.owner != c->id && (!l || r->token != l->token))
		return -EPERM;
	if (!e.listening || !l)
		return -EINVAL;
	k = lis_pop(l);
	if (!k)
		return -EAGAIN;
	rc = send_conn(c, k, r->id, true);
	if (rc) {
		lis_push_head(l, k);	/* reset with the rest when its owner is reaped */
		return rc;
	}
	k->accepted = true;
	k->b_owner = c->id;
	k->b_pid = c->pid;
	k->b_uid = c->uid;
	cs.st.accepted++;
	fill_resp(out, k->id, k->a_addr, k->a_port, k->b_port);
	return 0;
}

int conns_close(struct mon_client *c, const struct ipcd_close_req *r)
{
	struct conn *k = conn_find(r->conn_id);

	if (!k)
		return -ENOENT;
	if (r->pad || r->end > IPCD_CLOSE_B)
		return -EINVAL;
	if (r->end != IPCD_CLOSE_MINE) {
		/* The last holder after fork: any process of the end owner's user. */
		bool b_side = r->end == IPCD_CLOSE_B;
		uint8_t *end = b_side ? &k->b_end : &k->a_end;

		if (b_side && !k->accepted)
			return -EPERM;
		if ((b_side ? k->b_owner : k->a_owner) != c->id &&
		    (b_side ? k->b_uid : k->a_uid) != c->uid)
			return -EPERM;
		if (*end != END_OPEN)
			return -ENOENT;
		*end = END_CLOSED;
		cs.st.closed++;
		conn_free_if_done(k);
		return 0;
	}
	/* A self-connection's process holds both ends: its first CLOSE is A's. */
	if (k->a_owner == c->id && k->a_end == END_OPEN)
		k->a_end = END_CLOSED;
	else if (k->b_owner == c->id && k->accepted && k->b_end == END_OPEN)
		k->b_end = END_CLOSED;
	else if (k->a_owner == c->id || (k->b_owner == c->id && k->accepted))
		return -ENOENT;		/* its end is closed already */
	else
		return -EPERM;		/* not an endpoint (a listener before ACCEPT is not) */
	cs.st.closed++;
	conn_free_if_done(k);
	return 0;
}

/* The listener is gone: every queued connection is reset for its connector. */
static void lis_drop(struct lis *l)
{
	struct conn *k;

	while ((k = lis_pop(l))) {	/* the last pop drains the accept eventfd */
		if (k->b_end == END_OPEN) {
			mark_end(k, true, true);
			k->b_end = END_GONE;
		}
		conn_free_if_done(k);
	}
	if (l->efd >= 0)
		close(l->efd);
	memset(l, 0, sizeof(*l));
	l->efd = -1;
}

int conns_listen(struct mon_client *c, const struct ipcd_listen_req *r)
{
	uint32_t cap = IPCD_MIN(IPCD_MIN(IPCD_MAX(r->backlog, 1u), read_somaxconn()), BACKLOG_MAX);
	bool first = !lis_get(r->id);
	int efd = -1, rc;
	struct lis *l;
	int64_t idx;

	if (r->pad || r->ring_bytes > HINT_MAX)
		return -EINVAL;
	/* Before the namespace says "listening": then nothing can fail but the send. */
	if (first) {
		efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (efd < 0) {
			rc = -errno;
			log_warn("process %d (%s): listen: cannot create an eventfd: %s", c->pid,
				 c->comm, strerror(-rc));
			return rc;
		}
	}
	rc = ipcd_ns_listen(mon.ns, c->id, r->id);
	if (rc)
		goto err_close;
	idx = ipcd_ns_index(mon.ns, r->id);
	if (idx < 0 || (uint64_t)idx >= cs.n_lis) {
		rc = -ENOENT;		/* cannot happen: the tables have one size */
		goto err_close;
	}
	l = &cs.lis[idx];
	if (first) {
		uint64_t token = 0;

		/* Unguessable: a process that did not inherit the socket cannot accept. */
		while (!token)
			if (getrandom(&token, sizeof(token), 0) != (ssize_t)sizeof(token))
				token = ipcd_now_ns() * 0x9e3779b97f4a7c15ull;
		/* The eventfd before the response, as the CONN_FD before CONNECT's. */
		rc = send_msg(c, IPCD_CTL_LISTEN_FD, token, r->id, 0, &efd, 1);
		if (rc)
			goto err_close;	/* cut off: its binds go when it is reaped */
		if (l->bind_id)		/* a bind released behind our back: cannot happen */
			lis_drop(l);
		memset(l, 0, sizeof(*l));
		l->bind_id = r->id;
		l->head = l->tail = NONE;
		l->efd = efd;
		l->token = token;
		if ((uint32_t)idx >= cs.lis_hwm)
			cs.lis_hwm = (uint32_t)idx + 1;
	}
	l->owner = c->id;
	l->slot = c->slot;
	l->max = cap + 1;		/* Linux: full when ack_backlog > max_ack_backlog */
	l->ring_bytes = r->ring_bytes;
	return 0;

err_close:
	if (efd >= 0)
		close(efd);
	return rc;
}

void conns_unbind(struct mon_client *c, uint32_t bind_id)
{
	struct lis *l = lis_get(bind_id);

	if (l && l->owner == c->id)
		lis_drop(l);
}

void conns_client_gone(struct mon_client *c)
{
	uint32_t i;

	/*
	 * SIGTERM: connections are peer to peer and outlive the monitor; the
	 * processes it is letting go of are not dying (conns_exit closes fds).
	 */
	if (mon.stop && c->state == CL_ACTIVE)
		return;
	for (i = 0; i < cs.lis_hwm; i++)
		if (cs.lis[i].bind_id && cs.lis[i].owner == c->id)
			lis_drop(&cs.lis[i]);
	for (i = 0; i < cs.hwm; i++) {
		struct conn *k = &cs.tab[i];

		if (!k->id)
			continue;
		if (k->a_owner == c->id && k->a_end == END_OPEN) {
			/*
			 * Queued or not, the connection was established: as the
			 * kernel does, the acceptor still gets it, reads what A
			 * wrote, then EOF (or ECONNRESET if A left data unread,
			 * which cannot happen before B wrote). A process that
			 * closes and exits at once may well die before its CLOSE
			 * request is read: the two must mean the same.
			 */
			mark_end(k, false, false);
			k->a_end = END_GONE;
		}
		if (k->b_owner == c->id && k->accepted && k->b_end == END_OPEN) {
			mark_end(k, true, false);
			k->b_end = END_GONE;
		}
		conn_free_if_done(k);
	}
}

/* ---- init, report ------------------------------------------------------- */

int conns_init(void)
{
	struct rlimit rl;
	uint64_t need;

	cs.cap = mon.cfg.max_connections;
	cs.n_lis = mon.cfg.max_connections;	/* the namespace's size (main.c ns_init) */
	cs.hwm = 0;
	cs.lis_hwm = 0;
	cs.free_head = NONE;
	cs.serial = 0;
	memset(&cs.st, 0, sizeof(cs.st));
	cs.st.max = cs.cap;
	/* calloc'ed pages stay untouched until the high-water mark reaches them. */
	cs.tab = calloc(cs.cap, sizeof(*cs.tab));
	cs.lis = calloc(cs.n_lis, sizeof(*cs.lis));
	if (!cs.tab || !cs.lis) {
		log_err("connection table: out of memory for %u connections", cs.cap);
		conns_exit();
		return -ENOMEM;
	}
	/*
	 * What the config can make us hold at once, never more: per connection
	 * its memfd and two wake eventfds, per listener its accept eventfd (a
	 * listener is a bind: at most max_connections), per process its control
	 * socket and client region, plus pending handshakes and our own few.
	 */
	need = 3ull * (cs.cap + POOL_MAX) + cs.n_lis + 2ull * mon.cfg.max_processes +
	       MON_MAX_PENDING + FD_SLACK;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need
										  : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < need)
			log_warn("open files limited to %llu, %llu needed for max_connections=%u "
				 "and max_processes=%u: CONNECT and LISTEN may fail with -EMFILE "
				 "before the tables are full", (unsigned long long)rl.rlim_cur,
				 (unsigned long long)need, cs.cap, mon.cfg.max_processes);
	}
	/* Full from the start: the pool is part of the monitor's steady state. */
	conns_refill();
	return 0;
}

void conns_exit(void)
{
	uint32_t i;

	while (pool.n)
		prepared_close(&pool.p[--pool.n]);
	/* SIGTERM leaves connections to their endpoints: only our fds go. */
	for (i = 0; cs.tab && i < cs.hwm; i++)
		if (cs.tab[i].id)
			conn_close_fds(&cs.tab[i]);
	for (i = 0; cs.lis && i < cs.lis_hwm; i++)
		if (cs.lis[i].bind_id && cs.lis[i].efd >= 0)
			close(cs.lis[i].efd);
	free(cs.tab);
	free(cs.lis);
	cs.tab = NULL;
	cs.lis = NULL;
	cs.hwm = 0;
	cs.lis_hwm = 0;
}

/* The counters of one ring, as its endpoints wrote them: informational only. */
static bool read_ring(const struct conn *k, uint32_t area, struct conns_dir *d)
{
	struct ipcd_spsc_shm shm;

	/* pread, not a mapping: no address space, and a copy of what we show. */
	if (pread(k->fd, &shm, sizeof(shm), (off_t)k->off[area]) != (ssize_t)sizeof(shm))
		return false;
	d->bytes = shm.prod_bytes;
	d->records = shm.prod_msgs;
	d->bytes_read = shm.cons_bytes;
	return true;
}

bool conns_next(uint32_t *cursor, struct conns_entry *e)
{
	uint32_t i;

	for (i = *cursor; i < cs.hwm; i++) {
		const struct conn *k = &cs.tab[i];

		if (!k->id)
			continue;
		memset(e, 0, sizeof(*e));
		e->id = k->id;
		memcpy(e->a_addr, k->a_addr, 16);
		memcpy(e->b_addr, k->b_addr, 16);
		e->a_port = k->a_port;
		e->b_port = k->b_port;
		e->a_pid = k->a_pid;
		e->b_pid = k->b_pid;
		e->a_uid = k->a_uid;
		e->b_uid = k->b_uid;
		e->reset = k->reset;
		e->ring_bytes = k->ring_bytes;
		if (k->queued)
			e->state = k->a_end == END_OPEN ? CONN_BACKLOG : CONN_CLOSING;
		else if (!k->accepted)
			e->state = CONN_CLOSING;
		else if (k->a_end == END_OPEN && k->b_end == END_OPEN)
			e->state = CONN_ESTABLISHED;
		else
			e->state = CONN_HALF_CLOSED;
		e->rings_known = read_ring(k, IPCD_AREA_CONN_A2B, &e->a2b) &&
				 read_ring(k, IPCD_AREA_CONN_B2A, &e->b2a);
		*cursor = i + 1;
		return true;
	}
	*cursor = cs.hwm;
	return false;
}

void conns_get_stats(struct conns_stats *st)
{
	*st = cs.st;
}

const char *conns_state_name(enum conn_state s)
{
	static const char *const names[] = {
		[CONN_BACKLOG] = "backlog",
		[CONN_ESTABLISHED] = "established",
		[CONN_HALF_CLOSED] = "half-closed",
		[CONN_CLOSING] = "closing",
	};

	return (unsigned int)s < IPCD_ARRAY_SIZE(names) ? names[s] : "?";
}
