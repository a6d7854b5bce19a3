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
 *  - A dies (or is cut off) while queued and had not closed: the entry is
 *    unlinked and freed at once (nobody else ever saw it).
 *  - The listener is unbound or its owner dies: every queued entry gets B's
 *    closed marks and IPCD_CONN_RESET_B (A sees ECONNRESET, as after the
 *    kernel's RST), and is freed when A closes it or dies.
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
#include <sys/mman.h>
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

enum end { END_OPEN, END_CLOSED, END_GONE };

struct conn {
	uint64_t id;			/* 0: free */
	uint64_t a_owner;		/* client ids */
	uint64_t b_owner;		/* the listener's owner; the acceptor once accepted */
	uint64_t size;			/* region bytes */
	uint64_t off[3];		/* area offsets, from the header we wrote: trusted */
	int fd;				/* the region's memfd */
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
	uint32_t bind_id;		/* 0: not listening */
	uint32_t slot;			/* the owner's client slot: LISTEN_READY goes there */
	uint64_t owner;
	uint32_t max;			/* connections it may hold (capped backlog + 1) */
	uint32_t count;
	uint32_t head;			/* oldest */
	uint32_t tail;
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
	k->next = NONE;
	k->id = ++cs.serial << CONN_IDX_BITS | idx;
	cs.st.active++;
	return k;
}

/* Give entry @k back; conn_free() for a connection that existed. */
static void conn_drop(struct conn *k)
{
	if (k->fd >= 0)
		close(k->fd);
	/* -ENOENT if ipcd_ns_release_owner() already took it with A's other binds. */
	if (k->eph_bind)
		ipcd_ns_unbind(mon.ns, k->a_owner, k->eph_bind);
	memset(k, 0, sizeof(*k));
	k->fd = -1;
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
	return k;
}

/* Unlink @k from the middle of a backlog: bounded by the backlog's cap. */
static void lis_remove(struct lis *l, struct conn *k)
{
	uint32_t idx = conn_idx(k), i, prev = NONE;

	for (i = l->head; i != NONE && i != idx; i = cs.tab[i].next)
		prev = i;
	if (i == NONE)
		return;
	if (prev == NONE)
		l->head = k->next;
	else
		cs.tab[prev].next = k->next;
	if (l->tail == idx)
		l->tail = prev;
	l->count--;
	k->next = NONE;
	k->queued = false;
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

static int region_make(struct conn *k, uint32_t ring_bytes)
{
	size_t sizes[3] = {
		[IPCD_AREA_CONN_A2B] = ipcd_spsc_mem_size(ring_bytes),
		[IPCD_AREA_CONN_B2A] = ipcd_spsc_mem_size(ring_bytes),
		[IPCD_AREA_CONN_CTL] = sizeof(struct ipcd_conn_ctl),
	};
	struct ipcd_region reg;
	struct ipcd_conn_ctl *ctl;
	uint32_t i;
	int rc;

	rc = ipcd_region_create("ipcd-conn", IPCD_REGION_CONN, sizes, 3, &reg);
	if (rc)
		return rc;
	for (i = 0; i < 2 && !rc; i++)
		rc = ipcd_spsc_init(ipcd_region_area(&reg, i, NULL), ring_bytes, 0,
				    IPCD_SPSC_F_STREAM);
	if (rc) {
		ipcd_region_close(&reg);
		return rc;
	}
	ctl = ipcd_region_area(&reg, IPCD_AREA_CONN_CTL, NULL);
	ctl->conn_id = k->id;
	memcpy(ctl->a_addr, k->a_addr, 16);
	memcpy(ctl->b_addr, k->b_addr, 16);
	ctl->a_port = k->a_port;
	ctl->b_port = k->b_port;
	ipcd_region_publish(&reg);
	for (i = 0; i < 3; i++)
		k->off[i] = reg.hdr.area[i].off;
	k->size = reg.size;
	k->fd = reg.fd;
	munmap(reg.base, reg.size);	/* keep the memfd, not the mapping */
	return 0;
}

/*
 * Close end @b_side (false: A) of @k for a process that can no longer do it:
 * prod_closed on the ring it wrote (the peer reads EOF), cons_closed on the
 * ring it read (the peer's writes fail), and the reset bit if that ring still
 * held data it never read (the kernel would have sent an RST) or @reset.
 * Then wake whoever sleeps on either ring. Every word we write is at an
 * offset we chose; what the endpoints wrote is only compared.
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
}

/* ---- control-socket messages -------------------------------------------- */

/*
 * Never blocks: a process whose control socket is full is not reading it,
 * and is cut off (its connections are then closed for it at reap).
 */
static int send_msg(struct mon_client *to, uint16_t type, uint64_t conn_id, uint32_t bind_id,
		    uint64_t size, int fd)
{
	struct ipcd_ctl_msg m = {
		.magic = IPCD_CTL_MAGIC,
		.type = type,
		.conn_id = conn_id,
		.bind_id = bind_id,
		.region_size = size,
	};
	int rc = control_send_fds(to->sock, &m, sizeof(m), fd >= 0 ? &fd : NULL, fd >= 0);

	if (!rc)
		return 0;
	log_warn("process %d (%s): cannot send it %s on its control socket: %s%s; "
		 "disconnecting it", to->pid, to->comm,
		 type == IPCD_CTL_CONN_FD ? "a connection's fd" : "a listener's wake-up",
		 strerror(-rc), rc == -EAGAIN ? " (it does not read its control socket)" : "");
	cs.st.fd_faults++;
	mon.ctr.faults++;
	clients_kill(to->slot, rc == -EAGAIN ? "it did not read its control socket (full)"
					     : "its control socket failed");
	return rc;
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

	if (r->flags || r->pad)
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
	rc = region_make(k, mon.cfg.ring_bytes);
	if (rc) {
		log_warn("process %d (%s): connect: cannot create a connection region: %s",
			 c->pid, c->comm, strerror(-rc));
		goto err_free;
	}
	/* The fd first: the response names a connection the process already holds. */
	rc = send_msg(c, IPCD_CTL_CONN_FD, k->id, 0, k->size, k->fd);
	if (rc) {
		conn_drop(k);
		return rc;
	}
	lis_push_tail(l, k);
	cs.st.created++;
	if (l->count == 1)
		send_msg(owner, IPCD_CTL_LISTEN_READY, 0, l->bind_id, 0, -1);
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
	if (e.owner != c->id)
		return -EPERM;
	l = lis_get(r->id);
	if (!e.listening || !l)
		return -EINVAL;
	k = lis_pop(l);
	if (!k)
		return -EAGAIN;
	rc = send_msg(c, IPCD_CTL_CONN_FD, k->id, r->id, k->size, k->fd);
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

	while ((k = lis_pop(l))) {
		if (k->b_end == END_OPEN) {
			mark_end(k, true, true);
			k->b_end = END_GONE;
		}
		conn_free_if_done(k);
	}
	memset(l, 0, sizeof(*l));
}

void conns_listen(struct mon_client *c, uint32_t bind_id, uint32_t backlog)
{
	int64_t idx = ipcd_ns_index(mon.ns, bind_id);
	uint32_t cap = IPCD_MIN(IPCD_MIN(IPCD_MAX(backlog, 1u), read_somaxconn()), BACKLOG_MAX);
	struct lis *l;

	if (idx < 0 || (uint64_t)idx >= cs.n_lis)
		return;
	l = &cs.lis[idx];
	if (l->bind_id != bind_id) {
		if (l->bind_id)		/* a bind released behind our back: cannot happen */
			lis_drop(l);
		l->bind_id = bind_id;
		l->head = l->tail = NONE;
		if ((uint32_t)idx >= cs.lis_hwm)
			cs.lis_hwm = (uint32_t)idx + 1;
	}
	l->owner = c->id;
	l->slot = c->slot;
	l->max = cap + 1;		/* Linux: full when ack_backlog > max_ack_backlog */
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
			if (k->queued) {
				/* Nobody else ever saw it. */
				struct lis *l = lis_get(k->listener);

				if (l)
					lis_remove(l, k);
				conn_free(k);
				continue;
			}
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
	/* One memfd per connection, one socket per process, and some slack. */
	need = (uint64_t)cs.cap + mon.cfg.max_processes + 64;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need
										  : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < need)
			log_warn("open files limited to %llu: fewer than max_connections=%u "
				 "connections can exist at once (CONNECT answers -EMFILE)",
				 (unsigned long long)rl.rlim_cur, cs.cap);
	}
	return 0;
}

void conns_exit(void)
{
	uint32_t i;

	/* SIGTERM leaves connections to their endpoints: only our fds go. */
	for (i = 0; cs.tab && i < cs.hwm; i++)
		if (cs.tab[i].id && cs.tab[i].fd >= 0)
			close(cs.tab[i].fd);
	free(cs.tab);
	free(cs.lis);
	cs.tab = NULL;
	cs.lis = NULL;
	cs.hwm = 0;
	cs.lis_hwm = 0;
}

static bool read_u64(int fd, uint64_t off, uint64_t *v)
{
	return pread(fd, v, sizeof(*v), (off_t)off) == (ssize_t)sizeof(*v);
}

bool conns_next(uint32_t *cursor, struct conns_entry *e)
{
	uint32_t i;

	for (i = *cursor; i < cs.hwm; i++) {
		const struct conn *k = &cs.tab[i];
		uint64_t pb = offsetof(struct ipcd_spsc_shm, prod_bytes);

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
		if (k->queued)
			e->state = k->a_end == END_OPEN ? CONN_BACKLOG : CONN_CLOSING;
		else if (!k->accepted)
			e->state = CONN_CLOSING;
		else if (k->a_end == END_OPEN && k->b_end == END_OPEN)
			e->state = CONN_ESTABLISHED;
		else
			e->state = CONN_HALF_CLOSED;
		/* pread, not a mapping: two syscalls per connection, no address space. */
		e->bytes_known = read_u64(k->fd, k->off[IPCD_AREA_CONN_A2B] + pb, &e->a2b_bytes) &&
				 read_u64(k->fd, k->off[IPCD_AREA_CONN_B2A] + pb, &e->b2a_bytes);
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
