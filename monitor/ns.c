/* SPDX-License-Identifier: MIT */
/* ns.c - the port namespace: binds, listeners and Linux's TCP bind-conflict rules. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "monitor.h"

/*
 * Ids: (generation << ID_IDX_BITS) | (slot + 1). The low bits are never 0, so
 * 0 is never a valid id. A slot's 12-bit generation is bumped when it is
 * released, and free slots are reused FIFO (oldest free first), so a stale id
 * names a new bind only after its slot went round all free slots 4096 times.
 */
#define ID_IDX_BITS	20
#define ID_IDX_MASK	((1u << ID_IDX_BITS) - 1)
#define ID_GEN_MASK	((1u << (32 - ID_IDX_BITS)) - 1)
#define MAX_BINDS	ID_IDX_MASK
#define NONE		UINT32_MAX
#define MAX_BUCKETS	65536u		/* one per port: more would stay empty */
#define PRIV_PORTS	1024
#define SOCK_FLAGS	(IPCD_NS_REUSEADDR | IPCD_NS_REUSEPORT | IPCD_NS_V6ONLY)

/* Address families, as bits: what an exact address is, what a wildcard covers. */
#define FAM_V4		1u
#define FAM_V6		2u

struct bind {
	uint8_t addr[16];
	uint64_t owner;
	uint64_t served;	/* ns->clock when a lookup last chose it (round robin) */
	uint32_t uid;
	uint32_t flags;		/* SOCK_FLAGS only */
	uint32_t next;		/* port chain when in use, free list when not */
	uint32_t prev;		/* port chain */
	uint16_t port;
	uint16_t gen;
	uint8_t fam;		/* FAM_V4 (IPv4-mapped) or FAM_V6; a wildcard's own family */
	uint8_t any;		/* families a wildcard covers; 0 for an exact address */
	bool in_use;
	bool listening;
};

/*
 * One calloc at create holds this struct, binds[max_binds] and heads[]. Binds
 * hash by port alone (bucket = port & bucket_mask, at least max_binds buckets
 * up to one per port), so every bind of a port is on one chain and bind,
 * listen and lookup cost the binds of that bucket.
 */
struct ipcd_ns {
	uint32_t max_binds;
	uint32_t count;
	uint32_t bucket_mask;
	uint32_t free_head;
	uint32_t free_tail;
	uint16_t eph_lo;
	uint16_t eph_hi;
	uint64_t rng;		/* xorshift64: where an ephemeral scan starts */
	uint64_t clock;		/* lookup counter for round robin */
	uint32_t *heads;	/* bucket -> first slot of its chain, NONE if empty */
	struct bind binds[];
};

static const uint8_t v4_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static bool is_v4(const uint8_t a[16])
{
	return memcmp(a, v4_prefix, sizeof(v4_prefix)) == 0;
}

static bool is_zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

/* Fill fam/any of @b from its address and flags. */
static void classify(struct bind *b)
{
	if (is_v4(b->addr)) {
		b->fam = FAM_V4;
		b->any = is_zero(b->addr + 12, 4) ? FAM_V4 : 0;
	} else {
		b->fam = FAM_V6;
		b->any = 0;
		if (is_zero(b->addr, 16))
			b->any = (b->flags & IPCD_NS_V6ONLY) ? FAM_V6 : FAM_V4 | FAM_V6;
	}
}

/* Do two binds on one port share an address (inet_rcv_saddr_equal, match_wildcard)? */
static bool overlap(const struct bind *a, const struct bind *b)
{
	if (a->any && b->any)
		return a->any & b->any;
	if (a->any)
		return a->any & b->fam;
	if (b->any)
		return b->any & a->fam;
	return memcmp(a->addr, b->addr, 16) == 0;
}

static bool reuseport_pair(const struct bind *a, const struct bind *b)
{
	return (a->flags & IPCD_NS_REUSEPORT) && (b->flags & IPCD_NS_REUSEPORT) &&
	       a->uid == b->uid;
}

/* May @n be bound next to the overlapping bind @e (inet_bind_conflict, relax)? */
static bool may_coexist(const struct bind *e, const struct bind *n)
{
	if (reuseport_pair(e, n))
		return true;
	return (e->flags & IPCD_NS_REUSEADDR) && (n->flags & IPCD_NS_REUSEADDR) && !e->listening;
}

static uint32_t bucket(const struct ipcd_ns *ns, uint16_t port)
{
	return port & ns->bucket_mask;
}

static uint32_t slot_of(const struct ipcd_ns *ns, const struct bind *b)
{
	return (uint32_t)(b - ns->binds);
}

static uint32_t id_of(const struct ipcd_ns *ns, const struct bind *b)
{
	return (uint32_t)b->gen << ID_IDX_BITS | (slot_of(ns, b) + 1);
}

static struct bind *find_id(const struct ipcd_ns *ns, uint32_t id)
{
	uint32_t idx = id & ID_IDX_MASK;
	const struct bind *b;

	if (idx == 0 || idx > ns->max_binds)
		return NULL;
	b = &ns->binds[idx - 1];
	if (!b->in_use || b->gen != id >> ID_IDX_BITS)
		return NULL;
	return (struct bind *)b;
}

/* True if no bind on @port overlaps @n (@n itself not linked). */
static bool port_free(const struct ipcd_ns *ns, const struct bind *n, uint16_t port)
{
	uint32_t i;

	for (i = ns->heads[bucket(ns, port)]; i != NONE; i = ns->binds[i].next) {
		const struct bind *e = &ns->binds[i];

		if (e->port == port && overlap(e, n))
			return false;
	}
	return true;
}

static bool port_conflict(const struct ipcd_ns *ns, const struct bind *n, uint16_t port)
{
	uint32_t i;

	for (i = ns->heads[bucket(ns, port)]; i != NONE; i = ns->binds[i].next) {
		const struct bind *e = &ns->binds[i];

		if (e->port == port && overlap(e, n) && !may_coexist(e, n))
			return true;
	}
	return false;
}

static uint64_t rng_next(struct ipcd_ns *ns)
{
	uint64_t x = ns->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	ns->rng = x;
	return x;
}

/*
 * Like inet_csk_find_open_port(): start at a pseudo-random offset so that
 * ports are not handed out lowest first, then walk the whole range once.
 * The scan is bounded by the range; each step costs the binds of one bucket.
 */
static int pick_ephemeral(struct ipcd_ns *ns, const struct ipcd_ns_who *who, const struct bind *n,
			  const struct ipcd_config *cfg, uint16_t *port)
{
	uint32_t range = (uint32_t)ns->eph_hi - ns->eph_lo + 1;
	uint32_t off = (uint32_t)(rng_next(ns) % range);
	uint32_t i;

	for (i = 0; i < range; i++) {
		uint16_t p = (uint16_t)(ns->eph_lo + (off + i) % range);

		if (cfg && !ipcd_config_bind_allowed(cfg, who->uid, who->gid, p))
			continue;
		if (port_free(ns, n, p)) {
			*port = p;
			return 0;
		}
	}
	return -EADDRNOTAVAIL;
}

int ipcd_ns_create(uint32_t max_binds, uint16_t eph_lo, uint16_t eph_hi, struct ipcd_ns **out)
{
	struct ipcd_ns *ns;
	uint32_t nb = 16, i;

	if (!out || max_binds == 0 || max_binds > MAX_BINDS || eph_lo == 0 || eph_lo > eph_hi)
		return -EINVAL;
	while (nb < max_binds && nb < MAX_BUCKETS)
		nb <<= 1;
	ns = calloc(1, sizeof(*ns) + (size_t)max_binds * sizeof(struct bind) +
			       (size_t)nb * sizeof(uint32_t));
	if (!ns)
		return -ENOMEM;
	ns->max_binds = max_binds;
	ns->bucket_mask = nb - 1;
	ns->eph_lo = eph_lo;
	ns->eph_hi = eph_hi;
	/* Unpredictable start, like the kernel's: a neighbour cannot guess the next port. */
	if (getrandom(&ns->rng, sizeof(ns->rng), GRND_NONBLOCK) != (ssize_t)sizeof(ns->rng))
		ns->rng = ipcd_now_ns();
	ns->rng |= 1;			/* xorshift needs a non-zero state */
	ns->heads = (uint32_t *)(ns->binds + max_binds);
	for (i = 0; i < nb; i++)
		ns->heads[i] = NONE;
	for (i = 0; i < max_binds; i++)
		ns->binds[i].next = i + 1 < max_binds ? i + 1 : NONE;
	ns->free_head = 0;
	ns->free_tail = max_binds - 1;
	*out = ns;
	return 0;
}

void ipcd_ns_destroy(struct ipcd_ns *ns)
{
	free(ns);
}

int ipcd_ns_bind(struct ipcd_ns *ns, const struct ipcd_ns_who *who, const uint8_t addr[16],
		 uint16_t port, uint32_t flags, const struct ipcd_config *cfg, uint32_t *id,
		 uint16_t *port_out)
{
	struct bind n = { 0 }, *b;
	uint32_t idx, *head;
	int ret;

	if (!ns || !who || !addr || !id || (flags & ~(SOCK_FLAGS | IPCD_NS_PRIV)))
		return -EINVAL;
	memcpy(n.addr, addr, 16);
	n.flags = flags & SOCK_FLAGS;
	n.uid = who->uid;
	n.owner = who->owner;
	classify(&n);
	if (n.fam == FAM_V4 && (flags & IPCD_NS_V6ONLY))
		return -EINVAL;		/* Linux: IPv4-mapped address on a V6ONLY socket */

	if (port) {
		if (port < PRIV_PORTS && !(flags & IPCD_NS_PRIV))
			return -EACCES;
		if (cfg && !ipcd_config_bind_allowed(cfg, who->uid, who->gid, port))
			return -EACCES;
	}
	if (ns->count == ns->max_binds)
		return -ENOSPC;
	if (port) {
		if (port_conflict(ns, &n, port))
			return -EADDRINUSE;
	} else {
		ret = pick_ephemeral(ns, who, &n, cfg, &port);
		if (ret)
			return ret;
	}
	n.port = port;

	idx = ns->free_head;
	b = &ns->binds[idx];
	ns->free_head = b->next;
	if (ns->free_head == NONE)
		ns->free_tail = NONE;
	n.gen = b->gen;
	n.in_use = true;
	head = &ns->heads[bucket(ns, port)];
	n.prev = NONE;
	n.next = *head;
	if (*head != NONE)
		ns->binds[*head].prev = idx;
	*head = idx;
	*b = n;
	ns->count++;
	*id = id_of(ns, b);
	if (port_out)
		*port_out = port;
	return 0;
}

static void release(struct ipcd_ns *ns, struct bind *b)
{
	uint32_t idx = slot_of(ns, b);

	if (b->prev != NONE)
		ns->binds[b->prev].next = b->next;
	else
		ns->heads[bucket(ns, b->port)] = b->next;
	if (b->next != NONE)
		ns->binds[b->next].prev = b->prev;

	b->in_use = false;
	b->listening = false;
	b->gen = (b->gen + 1) & ID_GEN_MASK;
	b->next = NONE;
	if (ns->free_tail != NONE)
		ns->binds[ns->free_tail].next = idx;
	else
		ns->free_head = idx;
	ns->free_tail = idx;
	ns->count--;
}

int ipcd_ns_listen(struct ipcd_ns *ns, uint64_t owner, uint32_t id)
{
	struct bind *b = find_id(ns, id);
	uint32_t i;

	if (!b)
		return -ENOENT;
	if (b->owner != owner)
		return -EPERM;
	if (b->listening)
		return 0;
	/*
	 * Binding checked every pair against the non-listening state; listening
	 * only withdraws the SO_REUSEADDR allowance, so only other listeners
	 * need a second look (inet_csk_listen_start() -> get_port()).
	 */
	for (i = ns->heads[bucket(ns, b->port)]; i != NONE; i = ns->binds[i].next) {
		const struct bind *e = &ns->binds[i];

		if (e != b && e->listening && e->port == b->port && overlap(e, b) &&
		    !reuseport_pair(e, b))
			return -EADDRINUSE;
	}
	b->listening = true;
	return 0;
}

int ipcd_ns_unbind(struct ipcd_ns *ns, uint64_t owner, uint32_t id)
{
	struct bind *b = find_id(ns, id);

	if (!b)
		return -ENOENT;
	if (b->owner != owner)
		return -EPERM;
	release(ns, b);
	return 0;
}

int ipcd_ns_give(struct ipcd_ns *ns, uint32_t id, uint64_t from, uint64_t to)
{
	struct bind *b = find_id(ns, id);

	if (!b)
		return -ENOENT;
	if (b->owner != from)
		return -EPERM;
	b->owner = to;
	return 0;
}

/* O(max_binds): a process dies far less often than it binds. */
uint32_t ipcd_ns_release_owner(struct ipcd_ns *ns, uint64_t owner)
{
	uint32_t i, n = 0;

	for (i = 0; i < ns->max_binds; i++) {
		struct bind *b = &ns->binds[i];

		if (b->in_use && b->owner == owner) {
			release(ns, b);
			n++;
		}
	}
	return n;
}

/*
 * How well listener @b matches a connect to @d: 3 exact address, 2 wildcard
 * of @d's family, 1 dual-stack :: for an IPv4 @d (Linux scores AF_INET
 * sockets above AF_INET6 ones), 0 no match.
 */
static int match_score(const struct bind *b, const struct bind *d)
{
	if (!b->any)
		return memcmp(b->addr, d->addr, 16) == 0 ? 3 : 0;
	if (!(b->any & d->fam))
		return 0;
	return b->fam == d->fam ? 2 : 1;
}

int64_t ipcd_ns_lookup_listener(struct ipcd_ns *ns, const uint8_t addr[16], uint16_t port)
{
	struct bind d = { 0 }, *best = NULL;
	int best_score = 0;
	uint32_t i;

	if (!ns || !addr)
		return -EINVAL;
	memcpy(d.addr, addr, 16);
	classify(&d);
	if (d.any) {
		/* Linux connects a wildcard destination to loopback. */
		if (d.fam == FAM_V4)
			d.addr[12] = 127;
		d.addr[15] = 1;
		d.any = 0;
	}
	/*
	 * Listeners that tie on the best score are all SO_REUSEPORT same-uid
	 * (two overlapping listeners can be nothing else), so they form one
	 * group: pick the least recently chosen, which is round robin.
	 */
	for (i = ns->heads[bucket(ns, port)]; i != NONE; i = ns->binds[i].next) {
		struct bind *b = &ns->binds[i];
		int s;

		if (!b->listening || b->port != port)
			continue;
		s = match_score(b, &d);
		if (s > best_score || (s == best_score && s && b->served < best->served)) {
			best = b;
			best_score = s;
		}
	}
	if (!best)
		return -ECONNREFUSED;
	best->served = ++ns->clock;
	return id_of(ns, best);
}

static void fill(const struct ipcd_ns *ns, const struct bind *b, struct ipcd_ns_entry *e)
{
	e->id = id_of(ns, b);
	e->owner = b->owner;
	e->uid = b->uid;
	memcpy(e->addr, b->addr, 16);
	e->port = b->port;
	e->flags = b->flags;
	e->listening = b->listening;
}

int ipcd_ns_get(const struct ipcd_ns *ns, uint32_t id, struct ipcd_ns_entry *e)
{
	const struct bind *b = find_id(ns, id);

	if (!b)
		return -ENOENT;
	fill(ns, b, e);
	return 0;
}

bool ipcd_ns_next(const struct ipcd_ns *ns, uint32_t *cursor, struct ipcd_ns_entry *e)
{
	uint32_t i;

	for (i = *cursor; i < ns->max_binds; i++) {
		if (ns->binds[i].in_use) {
			fill(ns, &ns->binds[i], e);
			*cursor = i + 1;
			return true;
		}
	}
	*cursor = ns->max_binds;
	return false;
}

int64_t ipcd_ns_index(const struct ipcd_ns *ns, uint32_t id)
{
	const struct bind *b = find_id(ns, id);

	return b ? (int64_t)slot_of(ns, b) : -ENOENT;
}

uint32_t ipcd_ns_count(const struct ipcd_ns *ns)
{
	return ns->count;
}
