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
 * Shared listeners. A listener whose owner LISTENs again for it is being
 * shared with a child (the preload does so before fork()). When its owner
 * goes, it is not dropped but orphaned (owner ORPHAN): a daemon's first
 * process binds, forks and exits, and its descendants accept with the
 * token. The first ACCEPT with the token adopts it (bind and listener pass
 * to that process). A CONNECT to an orphan first asks the kernel whether
 * any process still has a TCP socket listening on that port
 * (/proc/net/tcp, tcp6): if none does, the orphan is dropped and the
 * connector refused, as the kernel would refuse it.
 *
 * Ids: (serial << CONN_IDX_BITS) | table index, serial from 1 up: never 0,
 * never reused while the monitor runs, and CLOSE finds its entry directly.
 *
 * Lanes (proto.h). A lane joins one connecting process to one listening
 * bind, so that its connections are set up without us: we make them ahead
 * of need as kits (IPCD_OP_KITS), A end the connector, B end the bind's
 * owner from the start (k->accepted: a kit is never queued), and the
 * connector hands each one to the listener down the lane. We never see a
 * kit change hands, so what the listener had is what its LANE_DONE counts
 * say, and nothing else: kits numbered past @received never reached it
 * (their B end is closed with a reset: a connector that sent one sees
 * ECONNRESET, one that still holds it closes it unsent), kits received but
 * not accepted go back to the bind's backlog (after a fork, any process may
 * accept them) or are reset. A lane's record lives until its listener's
 * LANE_DONE or death; the listener's end stays here until the owner's ACCEPT
 * of the connection that made the lane takes it. Bounded: LANES_MAX lanes,
 * LANES_PER_CONNECTOR per connecting process, and kits are connections
 * (max_connections counts them).
 *
 * Lane regions. Making a region (memfd, seals, page faults) and freeing it
 * (evicting its pages) cost us ~40 us of CPU per connection, on the cores
 * the two processes need. A lane instead owns up to LANE_REGIONS regions
 * that only its two processes ever see, kept mapped here, and gives a kit a
 * region the pair has used before once both its ends are closed: by their
 * CLOSE requests, or, since those are lazy, by the IPCD_CONN_CLOSED_* bits
 * the ends set in the region (a lie there only harms the pair that shares
 * the region anyway). Before reuse the bytes its rings held are zeroed
 * (large ones by punching the pages out, which also bounds what an idle lane
 * keeps resident), the header rewritten from our copy and the rings
 * formatted: a region never carries one connection's bytes to another, nor
 * to a third process. A region whose connection ended abnormally (a death,
 * a reset) is not reused. When the lane ends, regions in use become their
 * connections' own (freed with them) and the others are freed.
 *
 * Named AF_UNIX sockets (proto.h ULISTEN, UCONNECT, UCLAIM). A registry of
 * the names preloaded processes listen on (ULIS_MAX on the host,
 * ULIS_PER_PROCESS each): a UCONNECT to a registered name makes a
 * connection of kind UNIX whose B end waits for a claim (k->utoken set,
 * k->accepted false). The claimer proves it accepted the connector's kernel
 * connection: we take its fd (pidfd_getfd) and read the peer's name, which
 * the connector bound to the connection's id and token. Where the kernel
 * does not let us take the fd (a monitor without the right to), the claim
 * is granted to a process of the registrant's user only. The registration
 * has a token (a pipe's write end, as a listener's hold token) that fork
 * copies with the listening socket: it ends when the last process holding
 * the listener closes it or exits, or at a DROP (an exec that hands the
 * listener to a program that will not load the library), and its
 * connections still unclaimed are then reset: nothing would claim them.
 */
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/sockios.h>

#include <ipcd/addr.h>
#include <ipcd/siphash.h>
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
#define LANES_MAX	1024u		/* lanes on the host */
#define LANES_PER_CONNECTOR 8u		/* lanes one connecting process may have */
#define LANE_IDX_BITS	10		/* LANES_MAX == 1 << LANE_IDX_BITS */
#define LANE_REGIONS	16u		/* regions one lane may own (in use or free) */
#define SCRUB_PUNCH	(16u << 10)	/* ring bytes past which reuse punches pages out */
#define ULIS_MAX	1024u		/* named AF_UNIX listeners registered on the host */
#define ULIS_PER_PROCESS 64u		/* ... by one process */
#define ULIS_UNCLAIMED	1024u		/* connections waiting for a claim, per registration */

enum end { END_OPEN, END_CLOSED, END_GONE };

struct conn {
	uint64_t id;			/* 0: free */
	uint64_t a_owner;		/* client ids */
	uint64_t b_owner;		/* the listener's owner; the acceptor once accepted */
	uint64_t size;			/* region bytes */
	uint64_t off[3];		/* area offsets, from the header we wrote: trusted */
	int fd;				/* the region's memfd */
	int wake[2];			/* wake eventfds of end A [0] and end B [1] */
	int hold[2];			/* read ends of the ends' hold tokens (HOLD); -1: none */
	int live[2];			/* life sockets of end A [0] and B [1] not yet sent; -1: none */
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
	uint8_t kind;			/* IPCD_CONN_KIND_* */
	bool queued;
	bool accepted;
	bool kit;			/* made by KITS: B's is the lane's listener until LANE_DONE */
	bool kit_seen;			/* its listener said it accepted it (KIT_ACCEPTED) */
	uint32_t lane;			/* kit: its lane's id; 0 once the lane is done */
	uint32_t lane_seq;		/* kit: its number on the lane */
	uint32_t reg_lane;		/* the lane whose region it uses (@fd is the lane's); 0: own */
	uint32_t reg_idx;		/* that region's index in the lane's regs[] */
	uint64_t ukey;			/* UCONNECT: the listener's name (key) */
	uint64_t utoken;		/* UCONNECT: the claim's token; 0: not a named AF_UNIX one */
	bool uapp;			/* ... the hash of the connector's own name (proto.h) */
	bool ukconn;			/* ... its connector said its kernel connection is made */
	/* Across hosts ("Remote connections" below); remote_host 0: a local one. */
	uint32_t remote_host;		/* the other end's host, 1-based */
	bool remote_b;			/* the B end is the remote one (we connected) */
	bool remote_told;		/* the other host knows our end is done */
	uint64_t peer_key;		/* the other end's process at its host; 0: not known */
	uint64_t peer_conn;		/* the other end's connection id at its host */
	/* What it counts against ("Limits" below): the processes charged, and its bytes. */
	uint64_t chg_id[2];		/* client ids; 0: nobody */
	uint32_t chg_slot[2];
	uint64_t chg_bytes;
};

/* A named AF_UNIX listener of a preloaded process (ULISTEN). */
struct ulis {
	uint64_t key;
	uint64_t owner;			/* client id (the registrant, maybe gone); 0: free */
	pid_t pid;
	uid_t uid;
	int hold;			/* read end of its token: every holder of the listener */
	uint32_t slot;			/* the registrant's client slot */
	bool retired;			/* no new connects; its unclaimed ones wait for the hang-up */
};

/* A region a lane owns ("Lane regions" above). */
struct lane_reg {
	struct ipcd_region reg;		/* base NULL: slot empty. hdr: our trusted copy */
	uint32_t ring_bytes;
	uint32_t conn;			/* table index of the connection using it; NONE: free */
};

/* A lane (proto.h): connector -> listening bind, without the monitor. */
struct lane {
	uint32_t id;			/* 0: free; (serial << LANE_IDX_BITS) | index */
	uint32_t bind_id;
	uint64_t key;			/* its kits' tag key: ours and the listener's only */
	uint32_t key2;			/* ... its other 32 bits */
	uint64_t c_owner;		/* the connecting process */
	uint64_t l_owner;		/* the bind's owner when the lane was made */
	uint32_t issued;		/* kits numbered so far */
	uint32_t ring_bytes;		/* of its kits */
	int l_fd;			/* the listener's end until an ACCEPT takes it */
	bool delivered;			/* the listener has its end */
	uint8_t a_addr[16];		/* the connector's source address */
	uint8_t b_addr[16];
	uint16_t b_port;
	struct lane_reg *regs;		/* [LANE_REGIONS]; NULL: no reuse */
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
	bool lanes_ok;			/* its latest LISTEN had IPCD_LISTEN_LANES */
	bool shared;			/* its owner LISTENed again (fork): orphaned, not dropped */
	int hold;			/* read end of its hold token (HOLD); -1: none */
	int kfd;			/* our copy of its kernel listening socket; -1: none */
	uid_t uid;			/* of the process that listened first */
};

#define ORPHAN		UINT64_MAX	/* struct lis.owner of a shared listener whose owner went */
#define REMOTE		(UINT64_MAX - 1)	/* owner of a remote end ("Remote connections") */

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
	uint32_t orphans;		/* listeners with owner ORPHAN */
	uint32_t n_local;
	uint8_t local[LOCAL_ADDRS][16];
	struct lane lanes[LANES_MAX];
	uint32_t lane_serial;
	struct ulis ulis[ULIS_MAX];
	uint32_t n_ulis;
	/* Limits in force (conns_limits_apply()) and the bytes charged against them. */
	uint64_t lim_mem;
	uint64_t lim_proc_mem;
	uint32_t lim_proc_conns;
	uint64_t mem;
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
	k->hold[0] = k->hold[1] = -1;
	k->live[0] = k->live[1] = -1;
	k->next = NONE;
	k->id = ++cs.serial << CONN_IDX_BITS | idx;
	cs.st.active++;
	return k;
}

static void lane_reg_return(struct conn *k);

/* ---- limits ------------------------------------------------------------- */

/*
 * Limits. A connection counts, for as long as its entry lives, against the
 * process that made it (the connector; a pipe's or socketpair's creator)
 * and the process whose listener it reached: one connection and its
 * region's bytes each (max_process_connections, max_process_memory), and
 * its bytes once against max_memory. Forked holders of an end are not
 * charged: the process that made the end is. A refusal is -EMFILE (the
 * caller's own count), -ENOBUFS (memory: the caller's, or the host's) or
 * -EDQUOT (the listener's process is at its caps: the caller's library
 * makes that ECONNREFUSED), so that the library can fail the call with the
 * kernel's errno (limit_action = error) or take the kernel's path (kernel).
 */

/* The bytes of a connection region with two rings of @ring_bytes. */
static uint64_t conn_bytes(uint32_t ring_bytes)
{
	/* ipcd_region_create()'s layout, give or take its alignment: a header, then the areas. */
	return 2ull * ipcd_spsc_mem_size(ring_bytes) + sizeof(struct ipcd_conn_ctl) +
	       sizeof(struct ipcd_shm_hdr);
}

static int charge_check(const struct mon_client *c, uint64_t bytes, bool peer)
{
	if (c->n_conns >= cs.lim_proc_conns) {
		cs.st.limit_conns++;
		return peer ? -EDQUOT : -EMFILE;
	}
	if (c->conn_bytes + bytes > cs.lim_proc_mem) {
		cs.st.limit_memory++;
		return peer ? -EDQUOT : -ENOBUFS;
	}
	return 0;
}

/* Charge @k's bytes and one connection to @c, as its party @i (0: maker, 1: listener). */
static void charge_party(struct conn *k, unsigned int i, struct mon_client *c)
{
	c->n_conns++;
	c->conn_bytes += k->chg_bytes;
	k->chg_id[i] = c->id;
	k->chg_slot[i] = c->slot;
}

/*
 * Charge new connection @k with rings of @ring_bytes to @a (its maker) and
 * @b (the listener's process; NULL: none here, or the same as @a): 0, or
 * the refusal with nothing charged.
 */
static int conn_charge(struct conn *k, struct mon_client *a, struct mon_client *b,
		       uint32_t ring_bytes)
{
	uint64_t bytes = conn_bytes(ring_bytes);
	struct mon_client *who[2] = { a, b == a ? NULL : b };
	unsigned int i;
	int rc;

	if (cs.mem + bytes > cs.lim_mem) {
		cs.st.limit_memory++;
		return -ENOBUFS;
	}
	for (i = 0; i < 2; i++)
		if (who[i] && (rc = charge_check(who[i], bytes, i == 1)))
			return rc;
	k->chg_bytes = bytes;
	for (i = 0; i < 2; i++)
		if (who[i])
			charge_party(k, i, who[i]);
	cs.mem += bytes;
	return 0;
}

/* What conn_charge() charged goes back (a process since gone has no count left). */
static void conn_uncharge(struct conn *k)
{
	unsigned int i;

	for (i = 0; i < 2; i++) {
		struct mon_client *c;

		if (!k->chg_id[i])
			continue;
		c = clients_get(k->chg_slot[i]);
		if (c && c->id == k->chg_id[i]) {
			c->n_conns--;
			c->conn_bytes -= k->chg_bytes;
		}
	}
	cs.mem -= k->chg_bytes;
}

/* A listener's owner as a client to charge: NULL for an orphan's or another host's. */
static struct mon_client *chargeable(struct mon_client *c)
{
	return c && c->id != ORPHAN && c->id != REMOTE ? c : NULL;
}

void conns_limits_apply(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	uint64_t ram = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 8ull << 30;

	cs.lim_mem = mon.cfg.max_memory ? mon.cfg.max_memory : ram / 2;
	cs.lim_proc_mem = mon.cfg.max_process_memory ? mon.cfg.max_process_memory
						     : cs.lim_mem / 2;
	cs.lim_proc_conns = IPCD_MIN(mon.cfg.max_process_connections, mon.cfg.max_connections);
	clients_publish();
}

void conns_get_limits(struct conns_limits *l)
{
	l->max_memory = cs.lim_mem;
	l->max_process_memory = cs.lim_proc_mem;
	l->max_process_connections = cs.lim_proc_conns;
	l->memory = cs.mem;
}

static void conn_close_fds(struct conn *k)
{
	unsigned int i;

	if (k->reg_lane)
		lane_reg_return(k);	/* the lane's memfd: reused or freed there */
	else if (k->fd >= 0)
		close(k->fd);
	for (i = 0; i < 2; i++) {
		if (k->wake[i] >= 0)
			close(k->wake[i]);
		if (k->hold[i] >= 0)
			close(k->hold[i]);	/* leaves our epoll set with it */
		if (k->live[i] >= 0)
			close(k->live[i]);	/* an end never sent: its peer sees the hang-up */
	}
	k->fd = k->wake[0] = k->wake[1] = k->hold[0] = k->hold[1] = -1;
	k->live[0] = k->live[1] = -1;
}

/* Give entry @k back; conn_free() for a connection that existed. */
static void conn_drop(struct conn *k)
{
	conn_uncharge(k);
	conn_close_fds(k);
	/* -ENOENT if ipcd_ns_release_owner() already took it with A's other binds. */
	if (k->eph_bind)
		ipcd_ns_unbind(mon.ns, k->a_owner, k->eph_bind);
	memset(k, 0, sizeof(*k));
	k->fd = k->wake[0] = k->wake[1] = k->hold[0] = k->hold[1] = -1;
	k->live[0] = k->live[1] = -1;
	k->next = cs.free_head;
	cs.free_head = conn_idx(k);
	cs.st.active--;
}

static void conn_free(struct conn *k)
{
	conn_drop(k);
	cs.st.freed++;
}

static void remote_local_done(struct conn *k);
static uint32_t ctl_reset(const struct conn *k);
static bool remote_owner_gone(struct conn *k, const struct mon_client *c);

static void conn_free_if_done(struct conn *k)
{
	if (k->remote_host)
		remote_local_done(k);
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

/* Take @k out of the middle of its listener's backlog (a CANCEL). */
static void lis_remove(struct lis *l, struct conn *k)
{
	uint32_t idx = conn_idx(k), prev = NONE, i;

	for (i = l->head; l->count && i != NONE; prev = i, i = cs.tab[i].next) {
		if (i != idx)
			continue;
		if (prev == NONE)
			l->head = k->next;
		else
			cs.tab[prev].next = k->next;
		if (l->tail == idx)
			l->tail = prev;
		l->count--;
		break;
	}
	k->next = NONE;
	k->queued = false;
	lis_level(l);
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
 * Regions of the default size, and of a pipe's (proto.h IPCD_PIPE_RING_BYTES),
 * are made ahead of need (conns_refill(), after answering a CONNECT or a
 * PAIR): creating one (memfd, size, seals, mapping, page faults, two
 * eventfds) costs ~25 us, which a CONNECT or a pipe() then does not wait
 * for. No process has seen a pooled region, so nothing can leak through it.
 */
#define POOL_MAX	8
#define POOLS		2		/* connections, pipes */

static struct {
	struct prepared p[POOL_MAX];
	unsigned int n;
} pools[POOLS];

/*
 * Life socket pairs (live_pair()), made ahead of need as the regions are:
 * a socketpair() is two sockets and two inodes, which a CONNECT or UCONNECT
 * then does not wait for.
 */
static struct {
	int sv[POOL_MAX][2];
	unsigned int n;
} lives;

/* The ring size pool @i holds (the config may change it at a reload). */
static uint32_t pool_size(unsigned int i)
{
	return i == 0 ? mon.cfg.ring_bytes : ring_size(IPCD_PIPE_RING_BYTES, 0);
}

static void prepared_close(struct prepared *p)
{
	unsigned int i;

	ipcd_region_close(&p->reg);
	for (i = 0; i < 2; i++)
		if (p->wake[i] >= 0)
			close(p->wake[i]);
	p->wake[0] = p->wake[1] = -1;
}

/* Two new wake eventfds in @wake; on failure the one made is left for the caller to close. */
static int wake_pair(int wake[2])
{
	unsigned int i;

	for (i = 0; i < 2; i++) {
		wake[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (wake[i] < 0)
			return -errno;
	}
	return 0;
}

/* Format both data rings of connection region @reg (stream rings of @ring_bytes). */
static int rings_format(struct ipcd_region *reg, uint32_t ring_bytes)
{
	uint32_t i;
	int rc = 0;

	for (i = 0; i < 2 && !rc; i++)
		rc = ipcd_spsc_init(ipcd_region_area(reg, i, NULL), ring_bytes, 0,
				    IPCD_SPSC_F_STREAM);
	return rc;
}

static int region_prepare(struct prepared *p, uint32_t ring_bytes)
{
	size_t sizes[3] = {
		[IPCD_AREA_CONN_A2B] = ipcd_spsc_mem_size(ring_bytes),
		[IPCD_AREA_CONN_B2A] = ipcd_spsc_mem_size(ring_bytes),
		[IPCD_AREA_CONN_CTL] = sizeof(struct ipcd_conn_ctl),
	};
	int rc;

	memset(p, 0, sizeof(*p));
	p->reg.fd = -1;
	p->wake[0] = p->wake[1] = -1;
	p->ring_bytes = ring_bytes;
	rc = wake_pair(p->wake);
	if (rc)
		goto err;
	rc = ipcd_region_create("ipcd-conn", IPCD_REGION_CONN, sizes, 3, &p->reg);
	if (rc)
		goto err;
	rc = rings_format(&p->reg, ring_bytes);
	if (rc)
		goto err;
	return 0;
err:
	prepared_close(p);
	return rc;
}

void conns_refill(void)
{
	unsigned int i;

	while (lives.n < POOL_MAX) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
			       lives.sv[lives.n]) < 0)
			break;	/* out of fds: live_pair() will say so */
		lives.n++;
	}

	for (i = 0; i < POOLS; i++) {
		/* Pipes' size may be the default one: then one pool serves both. */
		if (i && pool_size(i) == pool_size(0))
			break;
		while (pools[i].n < (i ? POOL_MAX / 2 : POOL_MAX)) {
			struct prepared *p = &pools[i].p[pools[i].n];

			if (region_prepare(p, pool_size(i)))
				return;	/* out of fds or memory: CONNECT will say so */
			pools[i].n++;
		}
	}
}

/* A new region and its two wake eventfds: from a pool when one has the size. */
static int prepared_take(struct prepared *p, uint32_t ring_bytes)
{
	unsigned int i;

	for (i = 0; i < POOLS; i++) {
		/* A reload may have changed the size: older pooled regions go. */
		while (pools[i].n && pools[i].p[pools[i].n - 1].ring_bytes != pool_size(i))
			prepared_close(&pools[i].p[--pools[i].n]);
		if (pools[i].n && ring_bytes == pool_size(i)) {
			*p = pools[i].p[--pools[i].n];
			cs.st.pooled++;
			return 0;
		}
	}
	return region_prepare(p, ring_bytes);
}

/* Region @reg (mapped, formatted) becomes @k's: its identity, then published. */
static struct lane *lane_find(uint32_t id);

static void region_give(struct conn *k, struct ipcd_region *reg, uint32_t ring_bytes)
{
	struct ipcd_conn_ctl *ctl = ipcd_region_area(reg, IPCD_AREA_CONN_CTL, NULL);
	uint32_t i;

	memset(ctl, 0, sizeof(*ctl));
	ctl->conn_id = k->id;
	memcpy(ctl->a_addr, k->a_addr, 16);
	memcpy(ctl->b_addr, k->b_addr, 16);
	ctl->a_port = k->a_port;
	ctl->b_port = k->b_port;
	ctl->kind = k->kind;
	if (k->kit) {
		struct lane *n = lane_find(k->lane);

		ctl->kit_tag = n ? ipcd_kit_tag(n->key, n->key2, n->id, k->id) : 0;
	}
	/* One process per end for now; the ends count forks themselves. */
	ctl->holders_a = 1;
	ctl->holders_b = 1;
	if (k->remote_host) {
		struct ipcd_spsc_shm *a2b = ipcd_region_area(reg, IPCD_AREA_CONN_A2B, NULL);
		struct ipcd_spsc_shm *b2a = ipcd_region_area(reg, IPCD_AREA_CONN_B2A, NULL);

		ctl->remote_host = k->remote_host;
		ctl->peer_key = k->peer_key;
		ctl->peer_conn = k->peer_conn;
		/*
		 * The remote side's doorbell words say "remote" for good: the
		 * local end's publishes and consumes call its library's hook
		 * (shm_abi.h IPCD_DB_REMOTE).
		 */
		if (k->remote_b) {
			a2b->cons_wait = IPCD_DB_REMOTE;
			b2a->prod_wait = IPCD_DB_REMOTE;
		} else {
			a2b->prod_wait = IPCD_DB_REMOTE;
			b2a->cons_wait = IPCD_DB_REMOTE;
		}
	}
	ipcd_region_publish(reg);
	for (i = 0; i < 3; i++)
		k->off[i] = reg->hdr.area[i].off;
	k->size = reg->size;
	k->fd = reg->fd;
	k->ring_bytes = ring_bytes;
}

/*
 * The connection's own region (memfd kept, mapping dropped) and its two
 * wake eventfds, all in @k. On failure nothing is left open.
 */
static int region_make(struct conn *k, uint32_t ring_bytes)
{
	struct prepared p;
	int rc = prepared_take(&p, ring_bytes);

	if (rc)
		return rc;
	region_give(k, &p.reg, ring_bytes);
	k->wake[0] = p.wake[0];
	k->wake[1] = p.wake[1];
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
 * only compared. The end is GONE from then on.
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

	*(b_side ? &k->b_end : &k->a_end) = END_GONE;
	base = mmap(NULL, k->size, PROT_READ | PROT_WRITE, MAP_SHARED, k->fd, 0);
	if (base == MAP_FAILED) {
		log_warn("connection %" PRIu64 ": cannot map it to record %s's death (%s): its "
			 "peer will not be told", k->id, b_side ? "B" : "A", strerror(errno));
		return;
	}
	out = ring_at(base, k, out_area);
	in = ring_at(base, k, in_area);
	ctl = (struct ipcd_conn_ctl *)(void *)(base + k->off[IPCD_AREA_CONN_CTL]);
	if (ipcd_conn_mark_gone(ctl, out, in, bit, reset, k->kind == IPCD_CONN_KIND_PIPE)) {
		if (!k->reset)
			cs.st.reset++;
		k->reset |= (uint8_t)bit;
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
		    uint32_t lane_id, uint64_t size, const int *fds, unsigned int nfds)
{
	struct ipcd_ctl_msg m = {
		.magic = IPCD_CTL_MAGIC,
		.type = type,
		.conn_id = conn_id,
		.bind_id = bind_id,
		.lane_id = lane_id,
		.region_size = size,
	};
	int rc = control_send_fds(to->sock, &m, sizeof(m), fds, nfds);

	if (!rc)
		return 0;
	if (rc == -EPIPE || rc == -ECONNRESET) {
		/*
		 * It died (or exited) between its request and our answer: no
		 * fault of its. Its socket's EOF reaps it as usual (what it
		 * queued before is served first).
		 */
		log_debug("process %d (%s): gone before its %s could be sent", to->pid, to->comm,
			  type == IPCD_CTL_CONN_FD ? "connection's fds" : "descriptor");
		return rc;
	}
	log_warn("process %d (%s): cannot send it %s on its control socket: %s%s; "
		 "disconnecting it", to->pid, to->comm,
		 type == IPCD_CTL_CONN_FD ? "a connection's fds"
		 : type == IPCD_CTL_HOLD_FD ? "a hold token"
		 : type == IPCD_CTL_REGION_FD ? "a connection's region" : "a listener's eventfd",
		 strerror(-rc), rc == -EAGAIN ? " (it does not read its control socket)" : "");
	cs.st.fd_faults++;
	mon.ctr.faults++;
	clients_kill(to->slot, rc == -EAGAIN ? "it did not read its control socket (full)"
					     : "its control socket failed");
	return rc;
}

/*
 * IPCD_CTL_CONN_FD to end @b_side of @k: [memfd, its own wake fd, the
 * peer's], and the end's life socket to a library that takes it (3.7),
 * which is then no longer ours: from then on only that end's processes
 * hold it, so its hang-up at the peer means all of them are gone.
 */
static int send_conn(struct mon_client *to, struct conn *k, uint32_t bind_id, bool b_side)
{
	int fds[IPCD_CTL_CONN_NFDS];
	unsigned int n = IPCD_CTL_CONN_NFDS_MIN;
	int rc;

	fds[IPCD_CTL_CONN_FD_REGION] = k->fd;
	fds[IPCD_CTL_CONN_FD_SELF] = k->wake[b_side];
	fds[IPCD_CTL_CONN_FD_PEER] = k->wake[!b_side];
	if (k->live[b_side] >= 0 && to->abi_minor >= 7)
		fds[n++] = k->live[b_side];
	rc = send_msg(to, IPCD_CTL_CONN_FD, k->id, bind_id, k->kit && !b_side ? k->lane : 0,
		      k->size, fds, n);
	if (!rc && n > IPCD_CTL_CONN_NFDS_MIN) {
		close(k->live[b_side]);
		k->live[b_side] = -1;
	}
	return rc;
}

/*
 * The life sockets of connection @k, whose ends we hand to processes @a
 * and @b (NULL: not known yet) ourselves: only when both take them (3.7),
 * since an end without one would look dead to its peer once we are gone.
 * Without them (a failure is only logged) the connection still works; its
 * peers then learn of a death from us alone.
 */
static void live_pair(struct conn *k, const struct mon_client *a, const struct mon_client *b)
{
	if (a->abi_minor < 7 || (b && b->abi_minor < 7))
		return;
	if (lives.n) {
		lives.n--;
		k->live[0] = lives.sv[lives.n][0];
		k->live[1] = lives.sv[lives.n][1];
		return;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, k->live) < 0) {
		log_debug("connection %" PRIu64 ": no life sockets: %s", k->id, strerror(errno));
		k->live[0] = k->live[1] = -1;
	}
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


/*
 * @k's ends: A is @a's, with an ephemeral port at k->a_addr (connecting is
 * not binding: the config's bind rules do not apply), B is @b's. 0, or
 * ipcd_ns_bind()'s -errno with no port taken.
 */
static int conn_set_ends(struct conn *k, const struct mon_client *a, const struct mon_client *b)
{
	struct ipcd_ns_who who = { .owner = a->id, .uid = a->uid, .gid = a->gid };
	int rc = ipcd_ns_bind(mon.ns, &who, k->a_addr, 0, 0, NULL, &k->eph_bind, &k->a_port);

	if (rc) {
		k->eph_bind = 0;
		return rc;
	}
	k->a_owner = a->id;
	k->a_pid = a->pid;
	k->a_uid = a->uid;
	k->b_owner = b->id;
	k->b_pid = b->pid;
	k->b_uid = b->uid;
	return 0;
}

/* ---- lanes -------------------------------------------------------------- */

static struct lane *lane_find(uint32_t id)
{
	uint32_t idx = id & (LANES_MAX - 1);

	if (!id || cs.lanes[idx].id != id)
		return NULL;
	return &cs.lanes[idx];
}

/* ---- lane regions ("Lane regions" above) --------------------------------- */

static void lane_reg_destroy(struct lane_reg *r)
{
	ipcd_region_close(&r->reg);
	r->conn = NONE;
}

/* @k's connection is freed: its lane region is free again, or destroyed. */
static void lane_reg_return(struct conn *k)
{
	struct lane *n = lane_find(k->reg_lane);
	struct lane_reg *r;

	k->reg_lane = 0;
	k->fd = -1;		/* the lane's */
	/* lane_end() makes a region its connection's own: never here without a lane. */
	if (!n || !n->regs || k->reg_idx >= LANE_REGIONS)
		return;
	r = &n->regs[k->reg_idx];
	if (r->conn != conn_idx(k))
		return;
	if (k->a_end == END_CLOSED && k->b_end == END_CLOSED && !k->reset)
		r->conn = NONE;
	else
		lane_reg_destroy(r);	/* a death or a reset: not worth the doubt */
}

/*
 * The lane ends: a region in use becomes its connection's own (the memfd,
 * closed when the connection is freed), the others are freed.
 */
static void lane_regs_end(struct lane *n)
{
	uint32_t i;

	for (i = 0; n->regs && i < LANE_REGIONS; i++) {
		struct lane_reg *r = &n->regs[i];

		if (!r->reg.base)
			continue;
		if (r->conn != NONE) {
			cs.tab[r->conn].reg_lane = 0;
			munmap(r->reg.base, r->reg.size);
			memset(&r->reg, 0, sizeof(r->reg));
			r->reg.fd = -1;
		} else {
			lane_reg_destroy(r);
		}
	}
	free(n->regs);
	n->regs = NULL;
}

/*
 * Both ends of region @r's connection set their closed bit: take it as their
 * two CLOSE requests, which may lie unread in lazy queues (they will find no
 * entry). True if that freed the region.
 */
static bool lane_reg_retire(struct lane_reg *r)
{
	const uint32_t both = IPCD_CONN_CLOSED_A | IPCD_CONN_CLOSED_B;
	struct ipcd_conn_ctl *ctl = ipcd_region_area(&r->reg, IPCD_AREA_CONN_CTL, NULL);
	struct conn *k = &cs.tab[r->conn];

	if ((ipcd_load_acquire(&ctl->closed) & both) != both || k->queued ||
	    k->a_end == END_GONE || k->b_end == END_GONE)
		return false;
	if (!k->kit_seen) {		/* B closed it, so its listener accepted it */
		k->kit_seen = true;
		cs.st.created++;
		cs.st.accepted++;
	}
	if (k->a_end == END_OPEN) {
		k->a_end = END_CLOSED;
		cs.st.closed_early++;
	}
	if (k->b_end == END_OPEN) {
		k->b_end = END_CLOSED;
		cs.st.closed_early++;
	}
	conn_free_if_done(k);
	return r->reg.base && r->conn == NONE;
}

/*
 * Zero what ring @area of @r held. Its producer wrote the position we trust
 * for that: a lie can only leave its own bytes behind, for its own peer.
 */
static void ring_scrub(struct lane_reg *r, uint32_t area)
{
	uint64_t off = r->reg.hdr.area[area].off + sizeof(struct ipcd_spsc_shm);
	struct ipcd_spsc_shm *shm = (void *)((uint8_t *)r->reg.base + r->reg.hdr.area[area].off);
	uint64_t cap = r->ring_bytes, used = ipcd_load_relaxed(&shm->tail);
	uint8_t *base = r->reg.base;

	if (used >= cap || ipcd_load_relaxed(&shm->prod_bytes) >= cap)
		used = cap;
	else
		used = IPCD_MIN(cap, used + sizeof(struct ipcd_rec_hdr)); /* and the next stamp */
	if (used > SCRUB_PUNCH) {
		uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
		uint64_t lo = IPCD_ALIGN_UP(off, pg), hi = (off + used) / pg * pg;

		if (hi > lo && fallocate(r->reg.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					 (off_t)lo, (off_t)(hi - lo)) == 0) {
			memset(base + off, 0, lo - off);
			memset(base + hi, 0, off + used - hi);
			return;
		}
	}
	memset(base + off, 0, used);
}

/*
 * A region of lane @n for its kit @k, with two new wake eventfds: one the
 * pair used before, or a new one the lane keeps. 1: none (the lane has
 * LANE_REGIONS in use, or no table): the caller makes @k its own.
 */
static int lane_region(struct lane *n, struct conn *k)
{
	struct lane_reg *r = NULL, *empty = NULL;
	struct prepared p;
	uint32_t i;
	int rc;

	if (!n->regs)
		return 1;
	for (i = 0; i < LANE_REGIONS && !r; i++)
		if (n->regs[i].reg.base && n->regs[i].conn == NONE)
			r = &n->regs[i];
	for (i = 0; i < LANE_REGIONS && !r; i++)
		if (n->regs[i].reg.base && lane_reg_retire(&n->regs[i]))
			r = &n->regs[i];
	if (r) {
		rc = wake_pair(k->wake);
		if (rc)
			return rc;	/* conn_drop() closes the one made */
		ring_scrub(r, IPCD_AREA_CONN_A2B);
		ring_scrub(r, IPCD_AREA_CONN_B2A);
		memcpy(r->reg.base, &r->reg.hdr, sizeof(r->reg.hdr));
		(void)rings_format(&r->reg, r->ring_bytes);	/* it took them before */
		cs.st.regions_reused++;
	} else {
		for (i = 0; i < LANE_REGIONS && !empty; i++)
			if (!n->regs[i].reg.base)
				empty = &n->regs[i];
		if (!empty)
			return 1;
		rc = prepared_take(&p, n->ring_bytes);
		if (rc)
			return rc;
		r = empty;
		r->reg = p.reg;		/* stays mapped: we reuse it */
		r->ring_bytes = n->ring_bytes;
		k->wake[0] = p.wake[0];
		k->wake[1] = p.wake[1];
	}
	region_give(k, &r->reg, r->ring_bytes);
	r->conn = conn_idx(k);
	k->reg_lane = n->id;
	k->reg_idx = (uint32_t)(r - n->regs);
	return 0;
}

/*
 * Lane @n is done (its listener's LANE_DONE, or a lane whose listener never
 * got its end): kits numbered >= @received never reached the listener,
 * those in [@accepted, @received) reached it and were not accepted. See the
 * comment at the top.
 */
static int by_lane_seq(const void *x, const void *y)
{
	const struct conn *a = &cs.tab[*(const uint32_t *)x], *b = &cs.tab[*(const uint32_t *)y];

	return a->lane_seq < b->lane_seq ? -1 : a->lane_seq > b->lane_seq;
}

static void lane_finish(struct lane *n, uint32_t received, uint32_t accepted)
{
	struct lis *l = lis_get(n->bind_id);
	uint32_t i, nback = 0, *back = NULL;

	if (l && l->owner != n->l_owner)
		l = NULL;
	/* Received, not accepted: back to the backlog in lane (connect) order. */
	if (l && received > accepted)
		back = malloc((size_t)(received - accepted) * sizeof(*back));
	for (i = 0; i < cs.hwm; i++) {
		struct conn *k = &cs.tab[i];

		if (!k->id || !k->kit || k->lane != n->id)
			continue;
		k->lane = 0;
		if (k->lane_seq >= received)
			cs.st.kits_unused++;
		if (k->b_end != END_OPEN || k->hold[1] >= 0) {
			/* a hold token: accepted, and its hang-up ends it (conns_hold) */
			conn_free_if_done(k);
			continue;
		}
		if (k->lane_seq < received && k->lane_seq >= accepted && back) {
			back[nback++] = i;
			continue;
		}
		if (k->lane_seq >= accepted) {
			mark_end(k, true, true);
			if (k->lane_seq < received)
				cs.st.dead_ends++;	/* it had it: its listener is gone */
		}
		conn_free_if_done(k);
	}
	if (nback)
		qsort(back, nback, sizeof(*back), by_lane_seq);
	for (i = 0; i < nback; i++) {
		struct conn *k = &cs.tab[back[i]];

		if (l->count < l->max) {
			/* An ACCEPT sends the fds again; now it is a connection like CONNECT's. */
			k->accepted = false;
			k->kit = false;
			lis_push_tail(l, k);
			cs.st.kits_requeued++;
			cs.st.created++;
		} else {
			mark_end(k, true, true);
			cs.st.dead_ends++;
		}
		conn_free_if_done(k);
	}
	free(back);
	lane_regs_end(n);
	if (n->l_fd >= 0)
		close(n->l_fd);
	memset(n, 0, sizeof(*n));
	n->l_fd = -1;
	cs.st.lanes--;
}

/*
 * CONNECT from @c reached listener @l and made @k: give @c a lane to the
 * bind if it takes lanes and the pair has none (IPCD_CTL_LANE_FD, before the
 * CONN_FD). The listener's end waits in the lane until the owner's ACCEPT of
 * @k. Returns 0 (a lane or not) or the failed send's -errno (@c is cut off).
 */
static int lane_offer(struct mon_client *c, struct lis *l, struct conn *k)
{
	struct lane *n = NULL;
	uint32_t i, mine = 0;
	int sv[2], rc;

	if (!l->lanes_ok)
		return 0;
	for (i = 0; i < LANES_MAX; i++) {
		struct lane *x = &cs.lanes[i];

		if (!x->id) {
			if (!n)
				n = x;
			continue;
		}
		if (x->c_owner != c->id)
			continue;
		if (x->bind_id == l->bind_id)
			return 0;	/* it has one */
		mine++;
	}
	if (!n || mine >= LANES_PER_CONNECTOR)
		return 0;		/* full: the monitor's path still works */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
		log_debug("process %d (%s): no lane to bind %u: socketpair: %s", c->pid, c->comm,
			  l->bind_id, strerror(errno));
		return 0;
	}
	if (++cs.lane_serial >= 1u << (32 - LANE_IDX_BITS))
		cs.lane_serial = 1;
	memset(n, 0, sizeof(*n));
	n->id = cs.lane_serial << LANE_IDX_BITS | (uint32_t)(n - cs.lanes);
	/* Only the listener hears it (lane_deliver): the connector must not tag kits. */
	while (!n->key)
		if (getrandom(&n->key, sizeof(n->key), 0) != (ssize_t)sizeof(n->key))
			n->key = ipcd_now_ns() * 0x9e3779b97f4a7c15ull;
	if (getrandom(&n->key2, sizeof(n->key2), 0) != (ssize_t)sizeof(n->key2))
		n->key2 = (uint32_t)(ipcd_now_ns() >> 7);
	rc = send_msg(c, IPCD_CTL_LANE_FD, n->id, l->bind_id, 0, 0, &sv[0], 1);
	close(sv[0]);
	if (rc) {
		close(sv[1]);
		memset(n, 0, sizeof(*n));
		n->l_fd = -1;
		return rc;
	}
	n->bind_id = l->bind_id;
	n->c_owner = c->id;
	n->l_owner = l->owner;
	n->ring_bytes = k->ring_bytes;
	n->regs = calloc(LANE_REGIONS, sizeof(*n->regs));	/* NULL: no reuse, still a lane */
	for (i = 0; n->regs && i < LANE_REGIONS; i++) {
		n->regs[i].reg.fd = -1;
		n->regs[i].conn = NONE;
	}
	n->l_fd = sv[1];
	memcpy(n->a_addr, k->a_addr, 16);
	memcpy(n->b_addr, k->b_addr, 16);
	n->b_port = k->b_port;
	k->lane = n->id;
	cs.st.lanes++;
	cs.st.lanes_made++;
	return 0;
}

/*
 * ACCEPT of @k by @c: if @k made a lane, its listener end goes to @c when
 * @c owns the bind (before the CONN_FD); a forked worker does not get it,
 * and the lane ends (its connector sees EPIPE, then uses CONNECT).
 */
static int lane_deliver(struct mon_client *c, struct conn *k, uint32_t bind_id)
{
	struct lane *n = lane_find(k->lane);
	int rc;

	k->lane = 0;
	if (!n || n->delivered || n->l_fd < 0)
		return 0;
	if (c->id != n->l_owner) {
		lane_finish(n, 0, 0);
		return 0;
	}
	rc = send_msg(c, IPCD_CTL_LANE_FD, n->id, bind_id, n->key2, n->key, &n->l_fd, 1);
	if (rc)
		return rc;
	close(n->l_fd);
	n->l_fd = -1;
	n->delivered = true;
	return 0;
}

int conns_kits(struct mon_client *c, const struct ipcd_kits_req *r, struct ipcd_kits_resp *out)
{
	struct lane *n = lane_find(r->lane_id);
	struct mon_client *owner;
	struct lis *l;
	uint32_t i;
	int rc = 0;

	if (r->count == 0 || r->count > IPCD_KITS_MAX)
		return -EINVAL;
	if (!n || n->c_owner != c->id)
		return -ENOENT;
	if (!n->delivered)
		return -EAGAIN;		/* its listener has not got its end yet */
	l = lis_get(n->bind_id);
	if (!l || l->owner != n->l_owner || !l->lanes_ok)
		return -ENOENT;
	owner = clients_get(l->slot);
	if (!owner || owner->id != l->owner || owner->state != CL_ACTIVE)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	out->first_seq = n->issued;
	for (i = 0; i < r->count; i++) {
		struct conn *k = conn_alloc();

		if (!k) {
			rc = -ENOBUFS;
			break;
		}
		memcpy(k->a_addr, n->a_addr, 16);
		memcpy(k->b_addr, n->b_addr, 16);
		k->b_port = n->b_port;
		rc = conn_set_ends(k, c, owner);
		if (rc) {
			conn_drop(k);
			rc = rc == -ENOSPC ? -ENOBUFS : rc;
			break;
		}
		/*
		 * The connector's alone until the listener says it accepted it
		 * (KIT_ACCEPTED): a connector asking for kits must not use up
		 * the listener's caps (docs/limits.md). A listener at its caps
		 * gets no more kits, as it gets no more CONNECTs.
		 */
		rc = charge_check(owner, conn_bytes(n->ring_bytes), true);
		if (!rc)
			rc = conn_charge(k, c, NULL, n->ring_bytes);
		if (rc) {
			conn_drop(k);
			break;
		}
		k->accepted = true;
		k->kit = true;
		k->lane = n->id;
		k->lane_seq = n->issued;
		rc = lane_region(n, k);
		if (rc > 0)
			rc = region_make(k, n->ring_bytes);
		if (rc) {
			conn_drop(k);
			break;
		}
		rc = send_conn(c, k, n->bind_id, false);
		if (rc) {
			conn_drop(k);
			return rc;	/* cut off */
		}
		n->issued++;
		cs.st.kits++;
	}
	out->count = i;
	if (i)
		return 0;
	cs.st.no_room++;
	return rc;
}

int conns_kit_accepted(struct mon_client *c, const struct ipcd_kit_accepted_req *r)
{
	struct conn *k = conn_find(r->conn_id);

	if (!k || !k->kit)
		return -ENOENT;
	if (k->b_owner != c->id)
		return -EPERM;
	if (k->kit_seen)
		return -EALREADY;
	k->kit_seen = true;
	cs.st.created++;
	cs.st.accepted++;
	/* Its listener has it: now its share is charged too (conn_charge's slot 1). */
	if (!k->chg_id[1] && k->chg_id[0] != c->id)
		charge_party(k, 1, c);
	return 0;
}

int conns_lane_done(struct mon_client *c, const struct ipcd_lane_done_req *r)
{
	struct lane *n = lane_find(r->lane_id);

	if (!n)
		return -ENOENT;
	if (n->l_owner != c->id || !n->delivered)
		return -EPERM;
	if (r->pad || r->accepted > r->received || r->received > n->issued)
		return -EINVAL;
	lane_finish(n, r->received, r->accepted);
	return 0;
}

/* ---- requests ----------------------------------------------------------- */

static void lis_drop(struct lis *l);
static bool hung_up(int fd);
static int hold_pipe(int p[2], uint64_t tag);

/* A listener nobody holds any more (@why): it and its bind go. */
static void lis_drop_bind(struct lis *l, const char *why)
{
	struct ipcd_ns_entry e;
	bool bound = ipcd_ns_get(mon.ns, l->bind_id, &e) == 0;	/* a listener is a bind */

	log_info("listener %u: %s: dropped", l->bind_id, why);
	lis_drop(l);
	if (bound)
		(void)ipcd_ns_unbind(mon.ns, e.owner, e.id);
}

/* An orphaned listener whose port no kernel socket listens on. */
static void orphan_drop(struct lis *l)
{
	lis_drop_bind(l, "no process listens on its port any more");
}

/* Does a socket of this network namespace, made by user @uid, listen on TCP @port? */
static bool kernel_listening(uint16_t port, uid_t uid)
{
	static const char *const files[] = { "/proc/net/tcp", "/proc/net/tcp6" };
	char line[256];
	unsigned int i;

	for (i = 0; i < IPCD_ARRAY_SIZE(files); i++) {
		FILE *f = fopen(files[i], "re");

		if (!f)
			return true;	/* cannot tell: keep it */
		while (fgets(line, sizeof(line), f)) {
			char *colon = strchr(line, ':');
			unsigned int p, st, u;

			/* "sl: local_addr:PORT rem_addr:PORT st tx:rx tr:when retr uid ..." */
			colon = colon ? strchr(colon + 1, ':') : NULL;
			if (colon && sscanf(colon + 1, "%x %*s %x %*s %*s %*s %u", &p, &st, &u) == 3 &&
			    p == port && st == 0x0a && u == uid) {
				fclose(f);
				return true;
			}
		}
		fclose(f);
	}
	return false;
}

/*
 * The listener a connect to @dst:@port reaches (its bind in @e, its owner in
 * *@owner), or NULL with *@err: -ECONNREFUSED (none, or not accepting) or
 * -EAGAIN (its backlog is full). @remote: the connector is on another host,
 * whose address a wildcard listener covers as well.
 */
static struct lis *listener_for(const uint8_t dst[16], uint16_t port, bool remote,
				struct ipcd_ns_entry *e, struct mon_client **owner, int *err)
{
	static struct mon_client orphan = { .id = ORPHAN };
	struct lis *l;
	int64_t lid;

	*err = -ECONNREFUSED;
	lid = ipcd_ns_lookup_listener(mon.ns, dst, port);
	if (lid < 0 || ipcd_ns_get(mon.ns, (uint32_t)lid, e) || !(l = lis_get((uint32_t)lid)))
		return NULL;
	if (l->hold >= 0 && hung_up(l->hold)) {
		/* Its last holder is gone, its hang-up not handled yet: as the kernel, refuse. */
		conns_lis_hup((uint32_t)ipcd_ns_index(mon.ns, l->bind_id));
		return NULL;
	}
	if (l->owner == ORPHAN) {
		*owner = &orphan;	/* B's end is the acceptor's once accepted */
		if (!kernel_listening(port, l->uid)) {
			orphan_drop(l);	/* nobody holds its socket any more */
			return NULL;
		}
	} else {
		*owner = clients_get(l->slot);
		if (!*owner || (*owner)->id != l->owner || (*owner)->state != CL_ACTIVE)
			return NULL;	/* cut off this turn: reaped when it ends */
	}
	if (!remote && is_wildcard(e->addr) && !is_local(dst))
		return NULL;		/* another host's address: the kernel's business */
	if (l->count >= l->max) {
		cs.st.backlog_full++;
		*err = -EAGAIN;
		return NULL;
	}
	return l;
}

/*
 * listener_for(), then a table entry for the new connection: 0 with *@l
 * and *@k, or the answer to give (refusals and a full table counted).
 */
static int listener_conn(const uint8_t dst[16], uint16_t port, bool remote,
			 struct ipcd_ns_entry *e, struct mon_client **owner, struct lis **l,
			 struct conn **k)
{
	int rc;

	*l = listener_for(dst, port, remote, e, owner, &rc);
	if (!*l) {
		if (rc == -ECONNREFUSED)
			cs.st.refused++;
		return rc;
	}
	*k = conn_alloc();
	if (!*k) {
		cs.st.no_room++;
		return -ENOBUFS;
	}
	return 0;
}

int conns_connect(struct mon_client *c, const struct ipcd_connect_req *r,
		  struct ipcd_conn_resp *out)
{
	struct mon_client *owner;
	struct ipcd_ns_entry e;
	uint8_t dst[16];
	uint32_t ring;
	struct conn *k;
	struct lis *l;
	int rc;

	if ((r->flags & ~IPCD_CONNECT_REMOTE) || r->pad || r->pad2 || r->ring_bytes > HINT_MAX)
		return -EINVAL;
	if (mon.draining)
		return -ECONNREFUSED;	/* stopping: the kernel's (main.c drain) */
	memcpy(dst, r->addr, 16);
	if (is_wildcard(dst)) {		/* Linux connects a wildcard to loopback */
		if (is_v4(dst))
			set_v4(dst, 127, 0, 0, 1);
		else
			memcpy(dst, v6_loopback, 16);
	}
	rc = listener_conn(dst, r->port, false, &e, &owner, &l, &k);
	if (rc)
		return rc;
	/* Source address: as Linux picks it for a local destination. */
	if (is_v4(dst) && dst[12] == 127)
		set_v4(k->a_addr, 127, 0, 0, 1);
	else
		memcpy(k->a_addr, dst, 16);
	memcpy(k->b_addr, is_wildcard(e.addr) ? dst : e.addr, 16);
	k->b_port = e.port;
	rc = conn_set_ends(k, c, owner);
	if (rc)
		goto err_free;
	ring = ring_size(r->ring_bytes, l->ring_bytes);
	rc = conn_charge(k, c, chargeable(owner), ring);
	if (rc) {
		conn_drop(k);
		return rc;
	}
	rc = region_make(k, ring);
	if (rc) {
		log_warn("process %d (%s): connect: cannot create a connection region: %s",
			 c->pid, c->comm, strerror(-rc));
		goto err_free;
	}
	live_pair(k, c, owner);
	/*
	 * The fds first: the response names a connection the process already
	 * holds. A lane only between libraries that agree on life sockets
	 * (ctl.h struct ipcd_lane_msg).
	 */
	rc = !owner || (c->abi_minor >= 7) == (owner->abi_minor >= 7) ? lane_offer(c, l, k) : 0;
	if (!rc)
		rc = send_conn(c, k, 0, false);
	if (rc) {
		struct lane *n = lane_find(k->lane);

		if (n)
			lane_finish(n, 0, 0);
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
	if (l->owner == ORPHAN && ipcd_ns_give(mon.ns, r->id, ORPHAN, c->id) == 0) {
		cs.orphans--;
		l->owner = c->id;	/* an inheritor adopts it (Shared listeners) */
		l->slot = c->slot;
	}
	k = lis_pop(l);
	if (!k)
		return -EAGAIN;
	rc = lane_deliver(c, k, r->id);
	if (!rc)
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
	if (k->remote_host)
		cluster_tell_accepted(k->remote_host, k->peer_conn, c);
	return 0;
}

/*
 * @k's region (@ring_bytes rings), its A end's fds sent to @c: 0, or -errno
 * with @k dropped (@what names the call in the log).
 */
static int region_for_a(struct mon_client *c, struct conn *k, uint32_t ring_bytes,
			const char *what)
{
	int rc = region_make(k, ring_bytes);

	if (rc) {
		log_warn("process %d (%s): %s: cannot create its region: %s", c->pid, c->comm,
			 what, strerror(-rc));
		conn_drop(k);
		cs.st.no_room++;
		return rc == -ENOSPC ? -ENOBUFS : rc;
	}
	rc = send_conn(c, k, 0, false);
	if (rc)
		conn_drop(k);
	return rc;
}

/*
 * A pipe or socketpair: a connection with no listener and no address, both
 * ends the caller's from the start (as if connected and accepted). The
 * ends then live as any connection's: fork and exec share them through hold
 * tokens, the last holder of an end closes it, a death closes the ends its
 * process was the last to hold.
 */
int conns_pair(struct mon_client *c, const struct ipcd_pair_req *r, struct ipcd_conn_resp *out)
{
	struct conn *k;
	int rc;

	if ((r->kind != IPCD_CONN_KIND_PIPE && r->kind != IPCD_CONN_KIND_UNIX) || r->flags ||
	    r->pad || r->ring_bytes > HINT_MAX)
		return -EINVAL;
	k = conn_alloc();
	if (!k) {
		cs.st.no_room++;
		return -ENOBUFS;
	}
	k->kind = (uint8_t)r->kind;
	k->a_owner = k->b_owner = c->id;
	k->a_pid = k->b_pid = c->pid;
	k->a_uid = k->b_uid = c->uid;
	k->accepted = true;
	rc = conn_charge(k, c, NULL, ring_size(r->ring_bytes, 0));
	if (rc) {
		conn_drop(k);
		return rc;
	}
	rc = region_for_a(c, k, ring_size(r->ring_bytes, 0),
			  k->kind == IPCD_CONN_KIND_PIPE ? "pipe" : "socketpair");
	if (rc)
		return rc;
	if (k->kind == IPCD_CONN_KIND_PIPE)
		cs.st.pipes++;
	else
		cs.st.socketpairs++;
	fill_resp(out, k->id, k->b_addr, 0, 0);
	return 0;
}

/* ---- named AF_UNIX sockets ------------------------------------------------ */

static struct ulis *ulis_find(uint64_t key)
{
	uint32_t i;

	for (i = 0; i < ULIS_MAX; i++)
		if (cs.ulis[i].owner && !cs.ulis[i].retired && cs.ulis[i].key == key)
			return &cs.ulis[i];
	return NULL;
}

/*
 * @u takes no new connections (a DROP: an exec handed the listener to a
 * program that will not load the library; or the same name registered
 * anew). Its connections not claimed yet stay claimable: the processes
 * that still hold the listener may accept them. They are reset when its
 * token hangs up.
 */
static void ulis_retire(struct ulis *u)
{
	u->retired = true;
	if (hung_up(u->hold))
		conns_ulis_hup((uint32_t)(u - cs.ulis));
}

/* @u's registration ends: its connections nobody claimed are reset. */
static void ulis_drop(struct ulis *u)
{
	uint32_t i;

	for (i = 0; i < cs.hwm; i++) {
		struct conn *k = &cs.tab[i];

		if (!k->id || !k->utoken || k->accepted || k->ukey != u->key ||
		    k->b_owner != u->owner || k->b_end != END_OPEN)
			continue;
		mark_end(k, true, true);
		conn_free_if_done(k);
	}
	if (u->hold >= 0)
		close(u->hold);		/* leaves our epoll set with it */
	memset(u, 0, sizeof(*u));
	u->hold = -1;
	cs.n_ulis--;
}

void conns_ulis_hup(uint32_t idx)
{
	struct ulis *u = idx < ULIS_MAX ? &cs.ulis[idx] : NULL;

	if (!u || !u->owner || u->hold < 0 || !hung_up(u->hold))
		return;
	cs.st.hold_hups++;
	ulis_drop(u);
}

int conns_ulisten(struct mon_client *c, const struct ipcd_ulisten_req *r)
{
	struct ulis *u = ulis_find(r->key);
	uint32_t i, mine = 0;

	if (r->pad || (r->flags & ~IPCD_ULISTEN_DROP))
		return -EINVAL;
	if (r->flags & IPCD_ULISTEN_DROP) {
		/* Its owner, or a process of its user (a forked child's exec). */
		if (!u || (u->owner != c->id && u->uid != c->uid))
			return -ENOENT;
		ulis_retire(u);
		return 0;
	}
	if (u) {
		/*
		 * The same name again: the file's inode reused by a new socket
		 * (the old one unlinked), or a process listening on the same
		 * socket anew. The latest registrant is the one connects reach,
		 * if it is of the same user: another user's would take over
		 * the connections to come (and claims where the monitor may
		 * not look at fds), so it is refused while the first lives.
		 */
		if (u->uid != c->uid && !hung_up(u->hold))
			return -EADDRINUSE;
		ulis_retire(u);
	}
	for (i = 0; i < ULIS_MAX; i++)
		if (cs.ulis[i].owner == c->id)
			mine++;
	if (mine >= ULIS_PER_PROCESS || cs.n_ulis >= ULIS_MAX)
		return -ENOBUFS;
	for (i = 0; i < ULIS_MAX && cs.ulis[i].owner; i++)
		;
	{
		int p[2], rc = hold_pipe(p, MON_EV(MON_EV_UHOLD, i));

		if (rc)
			return rc;
		rc = send_msg(c, IPCD_CTL_HOLD_FD, r->key, 0, 0, 0, &p[1], 1);
		close(p[1]);
		if (rc) {
			close(p[0]);
			return rc;
		}
		u = &cs.ulis[i];
		u->hold = p[0];
	}
	u->key = r->key;
	u->owner = c->id;
	u->slot = c->slot;
	u->pid = c->pid;
	u->uid = c->uid;
	cs.n_ulis++;
	return 0;
}

/* ---- descriptors taken from a process (pidfd_getfd) ---------------------- */

/*
 * A descriptor a process names may be anything it can open: a file on a
 * FUSE mount whose daemon never answers (fstat, and every close, wait for
 * it) or a TCP socket lingering on unsent data (the last close waits). Our
 * one thread must never wait on either: we take only what /proc says is a
 * socket, check it with calls that do not block (getsockopt), and close
 * anything but an AF_UNIX or a listening socket in a thread of its own.
 * At most CLOSERS_MAX such closes run at once; past that, nothing is taken.
 */
#define CLOSERS_MAX	8

static atomic_uint closers;

static void *closer(void *arg)
{
	close((int)(intptr_t)arg);
	atomic_fetch_sub(&closers, 1);
	return NULL;
}

/* Close @fd, taken from a process, without waiting on it. */
static void close_taken(int fd)
{
	int type = 0, dom = 0, acc = 0;
	socklen_t l1 = sizeof(type), l2 = sizeof(dom), l3 = sizeof(acc);
	pthread_attr_t at;
	pthread_t t;

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) == 0 &&
	    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &l2) == 0 &&
	    (dom == AF_UNIX || (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l3) == 0 && acc))) {
		close(fd);	/* neither lingers nor calls a daemon */
		return;
	}
	atomic_fetch_add(&closers, 1);
	if (pthread_attr_init(&at) == 0) {
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&at, 64 << 10);
		if (pthread_create(&t, &at, closer, (void *)(intptr_t)fd) == 0) {
			pthread_attr_destroy(&at);
			return;
		}
		pthread_attr_destroy(&at);
	}
	atomic_fetch_sub(&closers, 1);
	log_warn("cannot start a thread to close a descriptor a process handed us: kept open");
}

/*
 * Process @pid's fd @fd, if /proc says it is a socket: our copy (>= 0), or
 * -errno: -EBADF (no such fd, or not a socket), -EAGAIN (too many closes
 * pending), or what pidfd_open/pidfd_getfd say. Close it with close_taken().
 */
static int take_socket(pid_t pid, int fd)
{
	char path[64], link[32];
	int pfd, sfd;
	ssize_t n;

	if (fd < 0)
		return -EBADF;
	if (atomic_load(&closers) >= CLOSERS_MAX)
		return -EAGAIN;
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
	n = readlink(path, link, sizeof(link) - 1);	/* the name only: nothing is opened */
	if (n < 8 || memcmp(link, "socket:[", 8))
		return -EBADF;
	pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0)
		return -errno;
	sfd = (int)syscall(SYS_pidfd_getfd, pfd, fd, 0);
	if (sfd < 0)
		sfd = -errno;
	close(pfd);
	return sfd;
}

/*
 * The name of the AF_UNIX socket process @pid has at its fd @fd (@peer: its
 * peer's, and the peer's credentials in *@cred if not NULL), read from a
 * copy of the fd (pidfd_getfd). 1 and *@sun, *@len; 0 if @fd is not such a
 * socket; -errno if the kernel will not let us look.
 */
static int sock_name(pid_t pid, int fd, bool peer, struct sockaddr_un *sun, socklen_t *len,
		     struct ucred *cred)
{
	int sfd, rc;

	sfd = take_socket(pid, fd);
	if (sfd < 0)
		return sfd == -EBADF ? 0 : sfd;
	memset(sun, 0, sizeof(*sun));
	*len = sizeof(*sun);
	rc = (peer ? getpeername : getsockname)(sfd, (struct sockaddr *)sun, len) == 0 &&
	     sun->sun_family == AF_UNIX && *len > offsetof(struct sockaddr_un, sun_path) &&
	     *len <= sizeof(*sun);
	if (rc && cred) {
		socklen_t cl = sizeof(*cred);

		rc = getsockopt(sfd, SOL_SOCKET, SO_PEERCRED, cred, &cl) == 0;
	}
	close_taken(sfd);
	return rc;
}

/* ipcd_unix_name_hash() of that name: 1 and *@h, 0, -errno as sock_name(). */
static int sock_name_hash(pid_t pid, int fd, bool peer, uint64_t *h)
{
	struct sockaddr_un sun;
	socklen_t len;
	int rc = sock_name(pid, fd, peer, &sun, &len, NULL);

	if (rc == 1)
		*h = ipcd_unix_name_hash(sun.sun_path, len - offsetof(struct sockaddr_un, sun_path));
	return rc;
}

/*
 * Does @c hold, at its fd @fd, a socket whose peer is @k's connector? Its
 * peer's name must be @k's and its peer's credentials (SO_PEERCRED: the
 * process that connected) the connector's: a name alone proves nothing,
 * anyone may bind the same abstract name in a network namespace of its
 * own. 1 yes, 0 no, -errno when the kernel will not let us look.
 */
static int claim_proven(const struct mon_client *c, const struct conn *k, int fd)
{
	char want[IPCD_UNIX_NAME_LEN + 1];
	struct sockaddr_un sun;
	struct ucred peer;
	socklen_t len;
	int rc;

	rc = sock_name(c->pid, fd, true, &sun, &len, &peer);
	if (rc != 1)
		return rc;
	if (peer.pid != k->a_pid || peer.uid != k->a_uid)
		return 0;
	if (k->uapp)
		return ipcd_unix_name_hash(sun.sun_path, len - offsetof(struct sockaddr_un,
									 sun_path)) == k->utoken;
	snprintf(want, sizeof(want), "%c" IPCD_UNIX_NAME_FMT, '@', k->id, k->utoken);
	want[0] = '\0';
	return len == offsetof(struct sockaddr_un, sun_path) + IPCD_UNIX_NAME_LEN &&
	       !memcmp(sun.sun_path, want, IPCD_UNIX_NAME_LEN);
}

/* The unclaimed connection of a connector named with hash @token (UCLAIM @conn_id 0). */
static struct conn *uapp_find(uint64_t token)
{
	uint32_t i;

	for (i = 0; i < cs.hwm; i++)
		if (cs.tab[i].id && cs.tab[i].uapp && !cs.tab[i].accepted &&
		    cs.tab[i].utoken == token)
			return &cs.tab[i];
	return NULL;
}

int conns_uconnect(struct mon_client *c, const struct ipcd_uconnect_req *r,
		   struct ipcd_uconnect_resp *out)
{
	struct ulis *u = ulis_find(r->key);
	struct mon_client *registrant;
	uint64_t utoken = 0;
	struct conn *k;
	int rc;

	if (r->ring_bytes > HINT_MAX || r->fd < -1)
		return -EINVAL;
	if (!u || mon.draining)
		return -ENOENT;
	if (hung_up(u->hold)) {
		/* Its last holder is gone, its hang-up not handled yet: the kernel's. */
		conns_ulis_hup((uint32_t)(u - cs.ulis));
		return -ENOENT;
	}
	if (r->fd >= 0) {
		/* A connector with a name of its own: the token is its hash, and unique. */
		if (sock_name_hash(c->pid, r->fd, false, &utoken) != 1)
			return -ENOENT;
		if (uapp_find(utoken))
			return -EEXIST;
	}
	{
		/* Bounded as a backlog: connects beyond it stay the kernel's. */
		uint32_t i, waiting = 0;

		for (i = 0; i < cs.hwm; i++)
			if (cs.tab[i].id && cs.tab[i].utoken && !cs.tab[i].accepted &&
			    cs.tab[i].ukey == r->key && cs.tab[i].b_end == END_OPEN)
				waiting++;
		if (waiting >= ULIS_UNCLAIMED)
			return -EAGAIN;
	}
	k = conn_alloc();
	if (!k) {
		cs.st.no_room++;
		return -ENOBUFS;
	}
	k->kind = IPCD_CONN_KIND_UNIX;
	k->a_owner = c->id;
	k->a_pid = c->pid;
	k->a_uid = c->uid;
	k->b_owner = u->owner;		/* the acceptor's once claimed */
	k->b_pid = u->pid;
	k->b_uid = u->uid;
	k->ukey = r->key;
	k->utoken = utoken;
	k->uapp = utoken != 0;
	while (!k->utoken)
		if (getrandom(&k->utoken, sizeof(k->utoken), GRND_NONBLOCK) != sizeof(k->utoken))
			k->utoken = (k->id * 0x9e3779b97f4a7c15ull) ^ (uint64_t)c->pid;
	registrant = clients_get(u->slot);
	if (registrant && registrant->id != u->owner)
		registrant = NULL;
	rc = conn_charge(k, c, registrant, ring_size(r->ring_bytes, 0));
	if (rc) {
		conn_drop(k);
		return rc;
	}
	live_pair(k, c, registrant);
	rc = region_for_a(c, k, ring_size(r->ring_bytes, 0), "AF_UNIX connect");
	if (rc)
		return rc;
	cs.st.created++;
	memset(out, 0, sizeof(*out));
	out->conn_id = k->id;
	out->token = k->utoken;
	out->listener_pid = u->pid;
	return 0;
}

void conns_cancel(struct mon_client *c, uint16_t op, uint64_t id)
{
	struct conn *k = conn_find(id);
	struct lis *l;

	if (!k)
		return;
	switch (op) {
	case IPCD_OP_CONNECT:
	case IPCD_OP_UCONNECT:
		if (k->a_owner != c->id || k->a_end != END_OPEN)
			return;
		if (!k->accepted) {
			/* Nobody had it: as if never made (its lane too). */
			struct lane *n = lane_find(k->lane);

			if (n && !n->delivered)
				lane_finish(n, 0, 0);
			l = k->queued ? lis_get(k->listener) : NULL;
			if (l)
				lis_remove(l, k);
			k->a_end = END_CLOSED;
			k->b_end = END_GONE;
			cs.st.cancelled++;
			conn_free_if_done(k);
			return;
		}
		mark_end(k, false, true);	/* its acceptor was quicker: a reset */
		break;
	case IPCD_OP_ACCEPT:
	case IPCD_OP_UCLAIM:
		if (k->b_owner == c->id && k->accepted && k->b_end == END_OPEN)
			mark_end(k, true, true);	/* the connector sees a reset */
		break;
	case IPCD_OP_PAIR:
		if (k->a_owner == c->id && k->a_end == END_OPEN && k->b_end == END_OPEN) {
			k->a_end = END_CLOSED;
			k->b_end = END_CLOSED;
		}
		break;
	default:
		return;
	}
	cs.st.cancelled++;
	conn_free_if_done(k);
}

int conns_uconnected(struct mon_client *c, const struct ipcd_uconnected_req *r)
{
	struct conn *k = conn_find(r->conn_id);

	if (!k || !k->utoken || k->accepted || k->a_owner != c->id)
		return -ENOENT;
	k->ukconn = true;
	return 0;
}

int conns_uclaim(struct mon_client *c, const struct ipcd_uclaim_req *r,
		 struct ipcd_conn_resp *out)
{
	struct conn *k = r->conn_id ? conn_find(r->conn_id) : uapp_find(r->token);
	int rc;

	if (r->pad || r->fd < 0)
		return -EINVAL;
	if (!k || !k->utoken || k->utoken != r->token || k->accepted || k->b_end != END_OPEN)
		return -ENOENT;
	rc = claim_proven(c, k, r->fd);
	if (rc < 0 && c->uid == k->b_uid)
		rc = 1;		/* we may not look: the registrant's user may claim */
	if (rc <= 0) {
		log_info("process %d (%s): AF_UNIX claim of connection %" PRIu64 " refused: %s",
			 c->pid, c->comm, k->id, rc ? strerror(-rc) : "its fd is not that "
			 "connection's accepted socket");
		return -EPERM;
	}
	rc = send_conn(c, k, 0, true);
	if (rc)
		return rc;
	k->accepted = true;
	k->b_owner = c->id;
	k->b_pid = c->pid;
	k->b_uid = c->uid;
	cs.st.accepted++;
	cs.st.unix_connected++;
	fill_resp(out, k->id, k->a_addr, 0, 0);
	return 0;
}

int conns_close(struct mon_client *c, const struct ipcd_close_req *r)
{
	struct conn *k = conn_find(r->conn_id);

	if (!k)
		return -ENOENT;
	if (r->pad || r->end > IPCD_CLOSE_UNCLAIMED || r->end == IPCD_HOLD_LISTENER)
		return -EINVAL;
	if (r->end == IPCD_CLOSE_UNCLAIMED) {
		/* Its connector takes a named AF_UNIX connection back, unless claimed. */
		if (!k->utoken || k->a_owner != c->id)
			return -EPERM;
		if (k->accepted)
			return -EALREADY;
		if (k->a_end != END_OPEN || k->b_end != END_OPEN)
			return -ENOENT;
		k->a_end = END_CLOSED;
		k->b_end = END_GONE;
		conn_free_if_done(k);
		return 0;
	}
	if (r->end == IPCD_CLOSE_UNSENT) {
		/*
		 * A kit that never left its connector: nobody else has it. Its
		 * lane may be done already (the listener's LANE_DONE came first
		 * and reset it): the record still waits for this.
		 */
		if (!k->kit)
			return -EINVAL;
		if (k->a_owner != c->id && k->a_uid != c->uid)
			return -EPERM;
		if (k->a_end != END_OPEN)
			return -ENOENT;
		k->a_end = END_CLOSED;
		if (k->b_end == END_OPEN)
			k->b_end = END_GONE;
		if (k->lane)		/* else lane_finish() counted it */
			cs.st.kits_unused++;	/* never a connection: not in created, nor closed */
		conn_free_if_done(k);
		return 0;
	}
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
	else if (k->b_owner == c->id && k->accepted && k->b_end == END_OPEN) {
		k->b_end = END_CLOSED;
	}
	else if (k->a_owner == c->id || (k->b_owner == c->id && k->accepted))
		return -ENOENT;		/* its end is closed already */
	else
		return -EPERM;		/* not an endpoint (a listener before ACCEPT is not) */
	cs.st.closed++;
	conn_free_if_done(k);
	return 0;
}

/* ---- hold tokens -------------------------------------------------------- */

/* HOLD and REGION: end @r->end of @r->conn_id, open, and @c's to ask about. */
static struct conn *held_end(struct mon_client *c, const struct ipcd_hold_req *r, int *err)
{
	struct conn *k = conn_find(r->conn_id);
	bool b_side = r->end == IPCD_CLOSE_B;

	*err = 0;
	if (!k)
		*err = -ENOENT;
	else if (r->pad || (r->end != IPCD_CLOSE_A && r->end != IPCD_CLOSE_B))
		*err = -EINVAL;
	else if (b_side && !k->accepted)
		*err = -EPERM;
	else if ((b_side ? k->b_owner : k->a_owner) != c->id &&
		 (b_side ? k->b_uid : k->a_uid) != c->uid)
		*err = -EPERM;	/* as CLOSE: the end's owner, or a process of its user */
	else if ((b_side ? k->b_end : k->a_end) != END_OPEN)
		*err = -ENOENT;
	return *err ? NULL : k;
}

int conns_region(struct mon_client *c, const struct ipcd_hold_req *r)
{
	int rc;
	struct conn *k = held_end(c, r, &rc);

	if (!k) {
		k = conn_find(r->conn_id);
		log_debug("process %d (%s): region of connection %" PRIu64 " end %s: %s (ends %d/%d)",
			  c->pid, c->comm, r->conn_id, r->end == IPCD_CLOSE_B ? "B" : "A",
			  strerror(-rc), k ? k->a_end : -1, k ? k->b_end : -1);
		return rc;
	}
	return send_msg(c, IPCD_CTL_REGION_FD, k->id, r->end, 0, k->size, &k->fd, 1);
}

/* A pipe whose read end waits in our epoll set for its hang-up (@tag); 0 or -errno. */
static int hold_pipe(int p[2], uint64_t tag)
{
	struct epoll_event ev = { .events = 0, .data.u64 = tag };	/* EPOLLHUP always comes */
	int rc;

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	if (epoll_ctl(mon.epfd, EPOLL_CTL_ADD, p[0], &ev) < 0) {
		rc = -errno;
		log_warn("cannot watch a hold token: %s", strerror(-rc));
		close(p[0]);
		close(p[1]);
		return rc;
	}
	return 0;
}

/* Did the hold token read end @fd hang up (every write end closed)? */
static bool hung_up(int fd)
{
	struct pollfd p = { .fd = fd, .events = 0 };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLHUP);
}

/* HOLD of a listening bind (IPCD_HOLD_LISTENER). */
static int lis_hold(struct mon_client *c, const struct ipcd_hold_req *r)
{
	struct ipcd_ns_entry e;
	struct lis *l;
	int64_t idx;
	int p[2], rc;

	if (r->pad || r->conn_id > UINT32_MAX)
		return -EINVAL;
	if (ipcd_ns_get(mon.ns, (uint32_t)r->conn_id, &e) || !(l = lis_get(e.id)))
		return -ENOENT;
	if (e.owner != c->id && e.uid != c->uid)
		return -EPERM;
	if (l->hold >= 0)
		return -EEXIST;
	idx = ipcd_ns_index(mon.ns, e.id);
	if (idx < 0)
		return -ENOENT;
	rc = hold_pipe(p, MON_EV(MON_EV_LHOLD, (uint32_t)idx));
	if (rc)
		return rc;
	rc = send_msg(c, IPCD_CTL_HOLD_FD, e.id, IPCD_HOLD_LISTENER, 0, 0, &p[1], 1);
	close(p[1]);
	if (rc) {
		close(p[0]);
		return rc;
	}
	l->hold = p[0];
	cs.st.holds++;
	return 0;
}

void conns_lis_hup(uint32_t idx)
{
	struct lis *l;

	if (idx >= cs.lis_hwm)
		return;
	l = &cs.lis[idx];
	if (!l->bind_id || l->hold < 0 || !hung_up(l->hold))
		return;
	cs.st.hold_hups++;
	lis_drop_bind(l, "the last process holding it closed it or exited");
}

int conns_hold(struct mon_client *c, const struct ipcd_hold_req *r)
{
	struct conn *k;
	bool b_side;
	int p[2], rc;

	if (r->end == IPCD_HOLD_LISTENER)
		return lis_hold(c, r);
	k = held_end(c, r, &rc);
	if (!k)
		return rc;
	b_side = r->end == IPCD_CLOSE_B;
	if (k->hold[b_side] >= 0)
		return -EEXIST;
	rc = hold_pipe(p, MON_EV(MON_EV_HOLD, conn_idx(k) << 1 | (uint32_t)b_side));
	if (rc)
		return rc;
	rc = send_msg(c, IPCD_CTL_HOLD_FD, k->id, r->end, 0, 0, &p[1], 1);
	close(p[1]);		/* from now on, only the end's holders have it */
	if (rc) {
		close(p[0]);
		return rc;
	}
	k->hold[b_side] = p[0];
	cs.st.holds++;
	return 0;
}

/* The IPCD_CONN_CLOSED_* bits the ends wrote (0 if the region cannot be read). */
/* The 32-bit word at @field of @k's conn_ctl, as its ends wrote it (0 if unreadable). */
static uint32_t ctl_word(const struct conn *k, size_t field)
{
	const uint32_t *w;
	uint32_t v;
	void *base;

	base = mmap(NULL, k->size, PROT_READ, MAP_SHARED, k->fd, 0);
	if (base == MAP_FAILED)
		return 0;
	w = (const void *)((const uint8_t *)base + k->off[IPCD_AREA_CONN_CTL] + field);
	v = ipcd_load_acquire(w);
	munmap(base, k->size);
	return v;
}

/* The reset bits in @k's conn_ctl. */
static uint32_t ctl_reset(const struct conn *k)
{
	return ctl_word(k, offsetof(struct ipcd_conn_ctl, reset));
}

static uint32_t ctl_closed(const struct conn *k)
{
	return ctl_word(k, offsetof(struct ipcd_conn_ctl, closed));
}

void conns_hold_hup(uint32_t v)
{
	uint32_t idx = v >> 1;
	bool b_side = v & 1;
	struct conn *k;
	uint8_t *end;

	if (idx >= cs.hwm)
		return;
	k = &cs.tab[idx];
	/* An event of this batch may name a slot since reused: ask the pipe itself. */
	if (!k->id || k->hold[b_side] < 0 || !hung_up(k->hold[b_side]))
		return;
	close(k->hold[b_side]);
	k->hold[b_side] = -1;
	cs.st.hold_hups++;
	end = b_side ? &k->b_end : &k->a_end;
	if (*end == END_OPEN) {
		/*
		 * The last holder closed it (its lazy CLOSE is on its way: the
		 * closed bit says so) or went without closing: as the kernel
		 * closes a dead process's sockets.
		 */
		if (ctl_closed(k) & (b_side ? IPCD_CONN_CLOSED_B : IPCD_CONN_CLOSED_A)) {
			*end = END_CLOSED;
			cs.st.closed++;
		} else {
			mark_end(k, b_side, false);
			cs.st.dead_ends++;
		}
	}
	conn_free_if_done(k);
}

/* The listener is gone: every queued connection is reset for its connector. */
static void lis_drop(struct lis *l)
{
	struct conn *k;
	uint32_t i;

	for (i = 0; i < LANES_MAX; i++)
		if (cs.lanes[i].id && cs.lanes[i].bind_id == l->bind_id && !cs.lanes[i].delivered)
			lane_finish(&cs.lanes[i], 0, 0);

	while ((k = lis_pop(l))) {	/* the last pop drains the accept eventfd */
		if (k->b_end == END_OPEN) {
			mark_end(k, true, true);
			cs.st.dead_ends++;
		}
		conn_free_if_done(k);
	}
	if (l->efd >= 0)
		close(l->efd);
	if (l->hold >= 0)
		close(l->hold);
	if (l->kfd >= 0)
		close(l->kfd);
	if (l->owner == ORPHAN)
		cs.orphans--;
	memset(l, 0, sizeof(*l));
	l->efd = -1;
	l->hold = -1;
	l->kfd = -1;
}

/*
 * A copy of @c's kernel socket @fd, if it listens on TCP @e's address and
 * port and @c's user made it: 0 with *@out, or -EPERM (not such a socket,
 * or the kernel will not let us look: the listener stays the kernel's).
 * Holding it, we hold the port in the kernel for as long as the listener
 * is accelerated: nobody can bind it there and receive, through the kernel,
 * the connections meant for this listener, nor can this listener take the
 * connections of a port it stopped listening on.
 */
/* Is socket @fd in the network namespace we run in (whose ports we judge)? */
static bool same_netns(int fd)
{
	static ino_t ours;
	struct stat st;
	int ns;
	bool same;

	if (!ours) {
		if (stat("/proc/self/ns/net", &st))
			return false;
		ours = st.st_ino;
	}
	ns = ioctl(fd, SIOCGSKNS);
	if (ns < 0)
		return false;
	same = fstat(ns, &st) == 0 && st.st_ino == ours;
	close(ns);
	return same;
}

static int take_kernel_listener(const struct mon_client *c, int fd, const struct ipcd_ns_entry *e,
				int *out)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int sfd, v = 0, t = 0;
	socklen_t vl = sizeof(v), tl = sizeof(t);
	uint8_t addr[16];
	uint16_t port;
	struct stat st;
	bool ok;

	sfd = take_socket(c->pid, fd);
	if (sfd < 0) {
		if (sfd != -EBADF)
			log_warn("process %d (%s): listen: cannot take its socket (fd %d) to check "
				 "it: %s; its listener stays the kernel's", c->pid, c->comm, fd,
				 strerror(-sfd));
		return -EPERM;
	}
	/* Non-blocking checks first (take_socket); then its user, netns, address. */
	ok = getsockopt(sfd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl) == 0 && v &&
	     getsockopt(sfd, SOL_SOCKET, SO_PROTOCOL, &t, &tl) == 0 && t == IPPROTO_TCP &&
	     fstat(sfd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_uid == c->uid &&
	     same_netns(sfd) &&
	     getsockname(sfd, (struct sockaddr *)&ss, &sl) == 0 &&
	     ipcd_sockaddr_key((struct sockaddr *)&ss, sl, addr, &port) && port == e->port &&
	     !memcmp(addr, e->addr, 16);
	if (!ok) {
		log_warn("process %d (%s): listen on port %u: fd %d is not its kernel socket "
			 "listening there (in our network namespace): refused", c->pid, c->comm,
			 e->port, fd);
		close_taken(sfd);
		return -EPERM;
	}
	*out = sfd;
	return 0;
}

int conns_listen(struct mon_client *c, const struct ipcd_listen_req *r)
{
	uint32_t cap = IPCD_MIN(IPCD_MIN(IPCD_MAX(r->backlog, 1u), read_somaxconn()), BACKLOG_MAX);
	bool first = !lis_get(r->id);
	int efd = -1, kfd = -1, rc;
	struct ipcd_ns_entry e;
	struct lis *l;
	int64_t idx;

	if ((r->flags & ~IPCD_LISTEN_LANES) || r->ring_bytes > HINT_MAX || r->pad)
		return -EINVAL;
	/* Before the namespace says "listening": then nothing can fail but the send. */
	if (first) {
		if (ipcd_ns_get(mon.ns, r->id, &e) || e.owner != c->id)
			return -ENOENT;
		rc = take_kernel_listener(c, r->kfd, &e, &kfd);
		if (rc)
			return rc;
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
		rc = send_msg(c, IPCD_CTL_LISTEN_FD, token, r->id, 0, 0, &efd, 1);
		if (rc)
			goto err_close;	/* cut off: its binds go when it is reaped */
		if (l->bind_id)		/* a bind released behind our back: cannot happen */
			lis_drop(l);
		memset(l, 0, sizeof(*l));
		l->bind_id = r->id;
		l->head = l->tail = NONE;
		l->efd = efd;
		l->hold = -1;
		l->kfd = kfd;
		l->uid = c->uid;
		l->token = token;
		if ((uint32_t)idx >= cs.lis_hwm)
			cs.lis_hwm = (uint32_t)idx + 1;
	}
	if (!first && l->owner == c->id)
		l->shared = true;	/* the preload does this before fork() */
	l->owner = c->id;
	l->slot = c->slot;
	l->max = cap + 1;		/* Linux: full when ack_backlog > max_ack_backlog */
	l->ring_bytes = r->ring_bytes;
	l->lanes_ok = (r->flags & IPCD_LISTEN_LANES) != 0;
	return 0;

err_close:
	if (efd >= 0)
		close(efd);
	if (kfd >= 0)
		close(kfd);
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
	if (mon.exiting && c->state == CL_ACTIVE)
		return;
	for (i = 0; i < cs.lis_hwm; i++) {
		struct lis *l = &cs.lis[i];

		if (!l->bind_id || l->owner != c->id)
			continue;
		if ((l->shared || l->hold >= 0) &&
		    ipcd_ns_give(mon.ns, l->bind_id, c->id, ORPHAN) == 0) {
			l->owner = ORPHAN;	/* its inheritors may still accept */
			cs.orphans++;
			/*
			 * Its inheritors hold the socket now, or nobody does: our
			 * copy goes, and kernel_listening() tells which.
			 */
			if (l->kfd >= 0)
				close(l->kfd);
			l->kfd = -1;
			log_info("listener %u: owner %d (%s) gone, kept for the processes that "
				 "inherited it", l->bind_id, c->pid, c->comm);
			continue;
		}
		lis_drop(l);
	}
	/*
	 * Its lanes as a connector: the listener sees EOF on the lane and says
	 * LANE_DONE (one that never got its end cannot). Kits' A ends are
	 * closed below like any connection's.
	 */
	for (i = 0; i < LANES_MAX; i++) {
		struct lane *n = &cs.lanes[i];

		if (n->id && n->c_owner == c->id && !n->delivered)
			lane_finish(n, 0, 0);
	}
	for (i = 0; i < cs.hwm; i++) {
		struct conn *k = &cs.tab[i];

		if (!k->id)
			continue;
		if (k->remote_host && remote_owner_gone(k, c))
			continue;
		/*
		 * An end with a hold token is closed at its hang-up instead
		 * (conns_hold); its port stays bound while a holder lives, as
		 * the kernel's stays with the socket (the bind is orphaned, so
		 * releasing the dead owner's binds leaves it).
		 */
		if (k->a_owner == c->id && k->a_end == END_OPEN && k->hold[0] >= 0 &&
		    k->eph_bind && ipcd_ns_give(mon.ns, k->eph_bind, c->id, ORPHAN) == 0)
			k->a_owner = ORPHAN;
		if (k->a_owner == c->id && k->a_end == END_OPEN && k->hold[0] < 0) {
			/*
			 * Queued or not, the connection was established: as the
			 * kernel does, the acceptor still gets it, reads what A
			 * wrote, then EOF (or ECONNRESET if A left data unread,
			 * which cannot happen before B wrote). A process that
			 * closes and exits at once may well die before its CLOSE
			 * request is read: the two must mean the same.
			 */
			mark_end(k, false, false);
			cs.st.dead_ends++;
			/*
			 * A named AF_UNIX one nobody claimed, whose connector
			 * never said it had its kernel connection (a 3.7
			 * library says so before connect() returns): there is
			 * nothing an acceptor could claim it with, and nothing
			 * was written to it. Without this it would wait for a
			 * claim as long as the listener lives (soak finding S1).
			 */
			if (k->utoken && !k->accepted && !k->ukconn && c->abi_minor >= 7 &&
			    k->b_end == END_OPEN) {
				k->b_end = END_GONE;
				cs.st.unix_unconnected++;
			}
		}
		if (k->b_owner == c->id && k->accepted && k->b_end == END_OPEN && k->hold[1] < 0) {
			mark_end(k, true, false);
			cs.st.dead_ends++;
		}
		conn_free_if_done(k);
	}
	/* Its registrations live on while a process holds their listener (the token). */
	for (i = 0; i < ULIS_MAX; i++)
		if (cs.ulis[i].owner == c->id)
			conns_ulis_hup(i);
	/* Its lanes as a listener: every kit's B end was its own, closed above. */
	for (i = 0; i < LANES_MAX; i++)
		if (cs.lanes[i].id && cs.lanes[i].l_owner == c->id)
			lane_finish(&cs.lanes[i], 0, 0);
}

/* ---- remote connections ----------------------------------------------------- */

/*
 * Remote connections (issue #7). A connection to a process on another
 * cluster host has one entry at each host, each with its own region: ours
 * holds the local end's rings (what it sends, what it received), the other
 * host's the other end's, and the two libraries keep them in step over
 * RDMA. Here the remote end is an end like any other, owned by REMOTE: it
 * is open until the other host says it is done (cluster.c: its F_END, or
 * the link going down), and the local end's close or death is told to the
 * other host once (remote_local_done). A death marks the survivor's rings
 * as mark_end() marks a local one's, so EOF and ECONNRESET come the same
 * way; a clean close needs nothing from us, since its flags travel behind
 * its data over RDMA.
 */
bool conns_is_local(const uint8_t a[16])
{
	return is_local(a);
}

/*
 * @c, gone, made the local end of remote @k: its RDMA engine, the only one
 * that moves the connection's data, went with it. Whoever else holds the
 * end (a forked child, the image an exec started) sees a reset, and the
 * other host hears of a death. True if @k was such a connection (maybe
 * freed).
 */
static bool remote_owner_gone(struct conn *k, const struct mon_client *c)
{
	bool mine = k->remote_b ? k->a_owner == c->id : k->b_owner == c->id && k->accepted;
	uint8_t end = k->remote_b ? k->a_end : k->b_end;

	if (!mine || end != END_OPEN)
		return false;
	mark_end(k, !k->remote_b, false);
	if ((k->remote_b ? k->b_end : k->a_end) == END_OPEN)
		mark_end(k, k->remote_b, true);
	cs.st.dead_ends++;
	conn_free_if_done(k);
	return true;
}

void conns_remote_accepted(uint32_t host, uint64_t conn_id, uint64_t b_key)
{
	struct conn *k = conn_find(conn_id);
	struct ipcd_conn_ctl *ctl;
	uint8_t *base;

	if (!k || k->remote_host != host || !k->remote_b || k->peer_key || k->fd < 0)
		return;
	k->peer_key = b_key;
	/*
	 * Before the acceptor's first message reaches our connector (it comes
	 * on the same link, after this): its engine takes a bind only from
	 * the process named here.
	 */
	base = mmap(NULL, k->size, PROT_READ | PROT_WRITE, MAP_SHARED, k->fd, 0);
	if (base == MAP_FAILED) {
		log_warn("connection %" PRIu64 ": cannot map it to name its acceptor (%s): it will "
			 "never be bound", k->id, strerror(errno));
		return;
	}
	ctl = (struct ipcd_conn_ctl *)(void *)(base + k->off[IPCD_AREA_CONN_CTL]);
	ipcd_store_release(&ctl->peer_key, b_key);
	munmap(base, k->size);
}

/* Our end of remote @k is done: tell the other host, once. */
static void remote_local_done(struct conn *k)
{
	uint8_t end = k->remote_b ? k->a_end : k->b_end;
	uint32_t bit = k->remote_b ? IPCD_CONN_RESET_A : IPCD_CONN_RESET_B;

	bool gone = end == END_GONE, reset = (k->reset & bit) != 0;

	if (end == END_OPEN || k->remote_told)
		return;
	k->remote_told = true;
	/*
	 * A close whose end says reset (it had data unread, or its library could
	 * not carry the connection: no engine, no registration, never bound)
	 * may have no RDMA path to say it: the other host resets its end.
	 */
	if (!gone && k->fd >= 0 && ctl_reset(k)) {
		gone = true;
		reset = true;
	}
	/* A connection its host never heard of (refused, or its CONNECT failed) has no peer_conn. */
	if (k->peer_conn)
		cluster_tell_end(k->remote_host, k->peer_conn, gone, reset);
}

int conns_remote_a_new(struct mon_client *c, const uint8_t self[16], const uint8_t dst[16],
		       uint16_t port, uint32_t host, uint64_t *conn_id, uint16_t *a_port)
{
	static const struct mon_client remote = { .id = REMOTE };
	struct conn *k = conn_alloc();
	int rc;

	if (!k) {
		cs.st.no_room++;
		return -ENOBUFS;
	}
	memcpy(k->a_addr, self, 16);
	memcpy(k->b_addr, dst, 16);
	k->b_port = port;
	k->remote_host = host;
	k->remote_b = true;
	rc = conn_set_ends(k, c, &remote);
	if (rc) {
		conn_drop(k);
		cs.st.no_room++;
		return rc == -ENOSPC ? -ENOBUFS : rc;
	}
	k->accepted = true;	/* the other host's listener has B; nothing queues here */
	*conn_id = k->id;
	*a_port = k->a_port;
	return 0;
}

int conns_remote_a_ready(struct mon_client *c, uint64_t conn_id, uint64_t peer_conn,
			 uint32_t ring_bytes, struct ipcd_conn_resp *out)
{
	struct conn *k = conn_find(conn_id);
	int rc;

	if (!k || !k->remote_host || !k->remote_b || k->a_owner != c->id || k->fd >= 0)
		return -ENOENT;
	k->peer_conn = peer_conn;
	if (ring_bytes < IPCD_SPSC_MIN_CAPACITY || ring_bytes > mon.cfg.ring_max_bytes ||
	    (ring_bytes & (ring_bytes - 1))) {
		log_warn("process %d (%s): connect to host %u: its monitor chose a %u-byte ring, "
			 "outside [%u, %u] or not a power of 2: refused", c->pid, c->comm,
			 k->remote_host, ring_bytes, IPCD_SPSC_MIN_CAPACITY,
			 mon.cfg.ring_max_bytes);
		rc = -ECONNREFUSED;
		goto refuse;
	}
	rc = conn_charge(k, c, NULL, ring_bytes);
	if (rc)
		goto refuse;
	rc = region_for_a(c, k, ring_bytes, "connect to another host");
	if (rc)
		return rc;	/* dropped; the other host hears of it at the death of its end */
	cs.st.created++;
	cs.st.remote_out++;
	fill_resp(out, k->id, k->b_addr, k->b_port, k->a_port);
	return 0;

refuse:
	/* The other host made its half: it hears that ours is gone. */
	k->a_end = END_CLOSED;
	k->b_end = END_GONE;
	remote_local_done(k);
	conn_free(k);
	return rc;
}

void conns_remote_a_drop(uint64_t conn_id)
{
	struct conn *k = conn_find(conn_id);

	if (k && k->remote_host && k->fd < 0)
		conn_drop(k);
}

int conns_remote_b_new(uint32_t host, uint64_t a_key, uint64_t a_conn, const uint8_t a_addr[16],
		       uint16_t a_port, const uint8_t dst[16], uint16_t port, uint32_t ring_hint,
		       struct conns_remote_b *out)
{
	struct mon_client *owner;
	struct ipcd_ns_entry e;
	struct conn *k;
	struct lis *l;
	int rc;

	if (ring_hint > HINT_MAX)
		return -EINVAL;
	rc = listener_conn(dst, port, true, &e, &owner, &l, &k);
	if (rc)
		return rc;
	memcpy(k->a_addr, a_addr, 16);
	k->a_port = a_port;
	memcpy(k->b_addr, is_wildcard(e.addr) ? dst : e.addr, 16);
	k->b_port = e.port;
	k->a_owner = REMOTE;
	k->b_owner = owner->id;
	k->b_pid = owner->pid;
	k->b_uid = owner->uid;
	k->remote_host = host;
	k->peer_key = a_key;
	k->peer_conn = a_conn;
	rc = conn_charge(k, NULL, chargeable(owner), ring_size(ring_hint, l->ring_bytes));
	if (rc) {
		k->peer_conn = 0;
		conn_drop(k);
		return rc;
	}
	rc = region_make(k, ring_size(ring_hint, l->ring_bytes));
	if (rc) {
		log_warn("connect from host %u to port %u: cannot create a connection region: %s",
			 host, port, strerror(-rc));
		k->peer_conn = 0;
		conn_drop(k);
		cs.st.no_room++;
		return rc == -ENOSPC ? -ENOBUFS : rc;
	}
	lis_push_tail(l, k);
	cs.st.created++;
	cs.st.remote_in++;
	out->conn_id = k->id;
	out->ring_bytes = k->ring_bytes;
	memcpy(out->b_addr, k->b_addr, 16);
	out->b_port = k->b_port;
	return 0;
}

/* The other end of remote @k is done: closed cleanly (@gone false), or its process or host died. */
static void remote_end_done(struct conn *k, bool gone, bool reset)
{
	uint8_t *end = k->remote_b ? &k->b_end : &k->a_end;

	if (*end != END_OPEN)
		return;
	if (gone) {
		/* mark_end() wakes and resets our end as a local peer's death would. */
		mark_end(k, k->remote_b, reset);
		cs.st.dead_ends++;
	} else {
		*end = END_CLOSED;
		cs.st.closed++;
	}
	conn_free_if_done(k);
}

void conns_remote_end(uint32_t host, uint64_t conn_id, bool gone, bool reset)
{
	struct conn *k = conn_find(conn_id);

	if (!k || k->remote_host != host)
		return;		/* gone here already, or not the sender's to end */
	remote_end_done(k, gone, reset);
}

bool conns_remote_pair(uint64_t client, uint32_t host, uint64_t key)
{
	uint32_t i;

	for (i = 0; i < cs.hwm; i++) {
		const struct conn *k = &cs.tab[i];

		if (k->id && k->remote_host == host && k->peer_key == key &&
		    (k->remote_b ? k->a_owner : k->b_owner) == client)
			return true;
	}
	return false;
}

void conns_remote_host_down(uint32_t host)
{
	uint32_t i;

	for (i = 0; i < cs.hwm; i++) {
		struct conn *k = &cs.tab[i];

		if (k->id && k->remote_host == host) {
			k->remote_told = true;	/* nobody to tell */
			remote_end_done(k, true, true);
		}
	}
}

/* ---- init, report ------------------------------------------------------- */

int conns_init(void)
{
	struct rlimit rl;
	uint64_t need;
	uint32_t i;

	cs.cap = mon.cfg.max_connections;
	cs.n_lis = mon.cfg.max_connections;	/* the namespace's size (main.c ns_init) */
	cs.hwm = 0;
	cs.lis_hwm = 0;
	cs.free_head = NONE;
	/*
	 * Ids never repeat a previous monitor's: processes that lived through
	 * a restart still close their older connections by id (a lazy CLOSE),
	 * and must not close one of ours that happens to have the same. So the
	 * serials start at random: 2^40 connection serials, 2^21 lane ones.
	 */
	if (getrandom(&cs.serial, sizeof(cs.serial), 0) != (ssize_t)sizeof(cs.serial))
		cs.serial = ipcd_now_ns();
	cs.serial &= (1ull << 40) - 1;
	if (getrandom(&cs.lane_serial, sizeof(cs.lane_serial), 0) !=
	    (ssize_t)sizeof(cs.lane_serial))
		cs.lane_serial = (uint32_t)ipcd_now_ns();
	cs.lane_serial &= (1u << 21) - 1;
	for (i = 0; i < LANES_MAX; i++) {
		memset(&cs.lanes[i], 0, sizeof(cs.lanes[i]));
		cs.lanes[i].l_fd = -1;
	}
	memset(&cs.st, 0, sizeof(cs.st));
	memset(cs.ulis, 0, sizeof(cs.ulis));
	for (i = 0; i < ULIS_MAX; i++)
		cs.ulis[i].hold = -1;
	cs.n_ulis = 0;
	cs.st.max = cs.cap;
	cs.mem = 0;
	conns_limits_apply();
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
	 * its memfd, two wake eventfds, up to two hold tokens and two life
	 * sockets not yet sent, per listener its accept eventfd and our copy of
	 * its kernel socket (a listener is a bind: at most max_connections), per
	 * process its control socket and client region, the pools (a region and
	 * two eventfds each, connections' and pipes'; life socket pairs), pending
	 * handshakes and our own few.
	 */
	need = 3ull * (cs.cap + POOL_MAX + POOL_MAX / 2) + 2ull * POOL_MAX + 4ull * cs.cap +
	       2ull * cs.n_lis + 2ull * mon.cfg.max_processes + LANES_MAX * (1ull + LANE_REGIONS) +
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

	for (i = 0; i < POOLS; i++)
		while (pools[i].n)
			prepared_close(&pools[i].p[--pools[i].n]);
	while (lives.n) {
		lives.n--;
		close(lives.sv[lives.n][0]);
		close(lives.sv[lives.n][1]);
	}
	/* SIGTERM leaves connections to their endpoints: only our fds go. */
	for (i = 0; cs.tab && i < cs.hwm; i++)
		if (cs.tab[i].id)
			conn_close_fds(&cs.tab[i]);
	for (i = 0; cs.lis && i < cs.lis_hwm; i++) {
		if (cs.lis[i].bind_id && cs.lis[i].efd >= 0)
			close(cs.lis[i].efd);
		if (cs.lis[i].bind_id && cs.lis[i].kfd >= 0)
			close(cs.lis[i].kfd);
	}
	for (i = 0; i < LANES_MAX; i++) {
		if (cs.lanes[i].id)
			lane_regs_end(&cs.lanes[i]);
		if (cs.lanes[i].id && cs.lanes[i].l_fd >= 0)
			close(cs.lanes[i].l_fd);
		memset(&cs.lanes[i], 0, sizeof(cs.lanes[i]));
		cs.lanes[i].l_fd = -1;
	}
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
		e->kind = k->kind;
		e->remote_host = k->remote_host;
		if (k->kit && k->lane && !k->kit_seen && k->a_end == END_OPEN &&
		    k->b_end == END_OPEN)
			e->state = CONN_KIT;
		else if (k->queued)
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
	st->unix_listeners = cs.n_ulis;
}

bool conns_orphans_check(uint64_t now)
{
	static uint64_t last;
	bool left = false;
	uint32_t i;

	if (!cs.orphans)
		return false;
	if (now - last < MON_HOUSEKEEP_NS)
		return true;
	last = now;
	for (i = 0; i < cs.lis_hwm; i++) {
		struct lis *l = &cs.lis[i];
		struct ipcd_ns_entry e;

		if (!l->bind_id || l->owner != ORPHAN)
			continue;
		if (ipcd_ns_get(mon.ns, l->bind_id, &e) == 0 && kernel_listening(e.port, l->uid)) {
			left = true;
			continue;
		}
		orphan_drop(l);
	}
	return left;
}

uint32_t conns_active(void)
{
	return cs.st.active;
}

uint32_t conns_unaccepted(void)
{
	uint32_t i, n = 0;

	for (i = 0; i < cs.hwm; i++) {
		const struct conn *k = &cs.tab[i];

		if (k->id && (k->queued || (k->utoken && !k->accepted && k->b_end == END_OPEN)))
			n++;
	}
	return n;
}

const char *conns_state_name(enum conn_state s)
{
	static const char *const names[] = {
		[CONN_BACKLOG] = "backlog",
		[CONN_ESTABLISHED] = "established",
		[CONN_HALF_CLOSED] = "half-closed",
		[CONN_CLOSING] = "closing",
		[CONN_KIT] = "lane-kit",
	};

	return (unsigned int)s < IPCD_ARRAY_SIZE(names) ? names[s] : "?";
}
