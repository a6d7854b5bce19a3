/* SPDX-License-Identifier: MIT */
/*
 * engine.c - a process's RDMA engine (libipcd-rdma.so): remote connections'
 * rings kept in step with their peers' over RC queue pairs (engine.h).
 *
 * Sending. A ring's producer publishes records locally exactly as for a
 * local peer; the ring's remote hook (tx_push) then copies what is new to
 * the same positions of the peer's copy:
 *
 *   1. RDMA WRITE of [sent + 8, tail): every new record except the first
 *      one's header (one or two WRs: the range may wrap);
 *   2. the stamp of the next slot (~tail), inline;
 *   3. the first record's header, inline: the consumer polls headers, and
 *      that one is the door to the rest;
 *   4. the doorbell group's prod_closed, inline, when it changed;
 *   5. WRITE WITH IMMEDIATE of the producer group (tail, byte counts),
 *      inline: the peer's progress thread wakes whoever sleeps there.
 *
 * An RC queue pair places one WRITE's data before the next's (rxe does, as
 * do the NICs we know), so the consumer, which reads in order from its head,
 * never sees a header before the bytes it announces. Inline pieces are
 * copied at post time: the producer may reuse the slot after the stamp at
 * once, and the NIC must not read it later.
 *
 * Credits. The consumer's hook (rx_push) writes the consumer group (head,
 * counts) and cons_closed back, with an immediate, when it has freed an
 * eighth of the ring or emptied it (a producer can only be waiting for room
 * when the ring is not empty), or closed.
 *
 * Waking. An immediate names the connection (our table index and its
 * generation) and whether data or room arrived; the progress thread wakes
 * a sleeper of the ring's doorbell word exactly as a local peer would (futex
 * and/or the end's eventfd). It spins on the completion queue for spin_ns,
 * then arms the completion channel and sleeps in poll() on it, the monitor
 * channel and its kick eventfd: nothing spins forever.
 *
 * Setup. The acceptor's engine makes (or reuses) the queue pair to the
 * connector's process and says so (E_OFFER with its QP's address, then
 * E_BIND with its region's address and rkey); the connector's engine
 * answers E_ANSWER and its own E_BIND. The monitors carry these and stamp
 * the sender, and the connector accepts a BIND only from the process its
 * monitor names as the acceptor (ctl->peer_key). Data written before the
 * connection is bound waits in the local ring and goes out when it is.
 *
 * Memory. One registration per connection region, made at attach and
 * reused for every send; it lives until the peer can no longer write into
 * it (its rings say closed, or its queue pair is gone). At most
 * ENG_MAX_CONNS regions and ENG_MAX_PEERS queue pairs per process.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include <ipcd/atomic.h>
#include <ipcd/compiler.h>
#include <ipcd/proto.h>
#include <ipcd/wait.h>

#include "engine.h"
#include "rdma.h"

#define ENG_MAX_CONNS	4096		/* < 1 << IMM_IDX_BITS */
#define ENG_MAX_PEERS	256		/* fewer if the device's CQ is smaller (eng.max_peers) */
#define ENG_SQ		128		/* send WRs per queue pair */
#define ENG_RQ		128		/* receive WRs per queue pair (immediates) */
#define ENG_CQ		(ENG_MAX_PEERS * (ENG_SQ + ENG_RQ))
#define ENG_PEND_BINDS	64		/* BINDs that came before their attach */
#define ENG_CHAIN	8		/* WRs in one push */
#define ENG_BIND_NS	30000000000ull	/* an end not bound by then is reset */

/* Immediate: kind bits, generation, table index. */
#define IMM_ROOM	(1u << 31)	/* credits: room in the receiver's tx ring */
#define IMM_FIN		(1u << 30)	/* the sender's last write to this connection */
#define IMM_IDX_BITS	16
#define IMM_GEN_MASK	0x3fffu

/* Engine messages (the body of struct ipcd_rmsg; only engines read them). */
enum { E_OFFER = 1, E_ANSWER, E_BIND };

struct ebind {
	uint64_t conn;			/* the sender's connection id */
	uint64_t to;			/* the receiver's */
	uint64_t addr;			/* the sender's region, in its address space */
	uint64_t size;
	uint64_t off[3];
	uint32_t rkey;
	uint32_t imm;			/* what the sender wants in our immediates */
	uint32_t ring_bytes;
	uint32_t pad;
};

struct emsg {
	uint32_t type;
	uint32_t pad;
	union {
		struct ipcd_rqp_info qp;
		struct ebind bind;
	};
};
IPCD_BUILD_ASSERT(sizeof(struct emsg) <= IPCD_RMSG_BODY);

enum peer_state { P_FREE, P_NEW, P_OFFERED, P_READY, P_DEAD };

struct peer {
	enum peer_state state;
	uint32_t host;
	uint64_t key;
	/*
	 * Its own protection domain: its queue pair reaches only the regions
	 * of the connections with this peer, whatever rkey it guesses. Kept,
	 * with the slot, while regions registered in it remain (@mrs).
	 */
	struct ibv_pd *pd;
	uint32_t mrs;
	struct ibv_qp *qp;
	struct ipcd_rqp_info self;
	struct ipcd_rqp_info remote;
	atomic_uint sq_used;		/* send WRs posted, not completed */
	uint32_t conns;			/* connections bound to it */
};

struct rconn {
	uint32_t gen;			/* IMM_GEN_MASK bits; bumped at each reuse */
	bool used;
	bool closing;			/* detached: freed once the peer is done with it */
	bool released;			/* detached while forked children still hold the end */
	bool dead;			/* its peer or queue pair failed */
	atomic_bool ready;		/* bound and its queue pair up: the hooks post */
	bool fin_sent;			/* our last write is posted: no more (under both locks) */
	atomic_bool peer_fin;		/* the peer's last write arrived: it writes no more */
	struct ipcd_engine_conn *pc;	/* NULL once detached */
	uint64_t conn_id;
	struct peer *peer;
	struct ipcd_conn_ctl *ctl;
	struct ipcd_spsc tx;		/* copies of the preload's handles (geometry only) */
	struct ipcd_spsc rx;
	void *base;
	size_t size;
	uint64_t off[3];
	bool acceptor;
	bool foreign;			/* a forked child's copy: the parent's engine serves it */
	int owner_kick;			/* that engine's kick eventfd (inherited by fork) */
	int wake_fd;
	uint64_t attach_ns;		/* when it was attached (the bind deadline) */
	struct ibv_mr *mr;		/* in mr_peer's protection domain */
	struct peer *mr_peer;
	uint64_t raddr;			/* the peer's region */
	uint32_t rkey;
	uint32_t rimm;			/* the peer's name for this connection */
	atomic_uint inflight;		/* signaled chains posted, not completed */
	pthread_mutex_t tx_mu;
	uint32_t tx_sent;		/* tail the peer has */
	uint32_t tx_closed;		/* prod_closed the peer has */
	uint64_t tx_bytes;		/* prod_bytes the peer has (statistics) */
	atomic_bool tx_retry;		/* a push found the send queue full */
	pthread_mutex_t rx_mu;
	uint32_t rx_credited;		/* head the peer has */
	uint32_t rx_closed;
	uint32_t rx_reset;
	atomic_bool rx_retry;
};

struct pend_bind {
	bool used;
	uint32_t host;
	uint64_t key;
	uint64_t at;			/* dropped ENG_BIND_NS after */
	struct ebind b;
};

static struct {
	struct ipcd_engine_env env;
	struct ipcd_rdev *dev;
	pthread_mutex_t mu;		/* tables and setup; never on a data path */
	struct rconn conns[ENG_MAX_CONNS];
	struct peer peers[ENG_MAX_PEERS];
	struct pend_bind pend[ENG_PEND_BINDS];
	int kick_fd;
	unsigned int max_peers;		/* queue pairs the CQ can serve: <= ENG_MAX_PEERS */
	pthread_t thread;
	bool started;
	bool broken;			/* init failed, or the channel is gone */
} eng = { .mu = PTHREAD_MUTEX_INITIALIZER, .kick_fd = -1 };

#define LOG(...)	do { if (eng.env.log) eng.env.log(__VA_ARGS__); } while (0)

static void stat_add(uint64_t *ctr, uint64_t n)
{
	if (eng.env.stats)
		ipcd_store_relaxed(ctr, ipcd_load_relaxed(ctr) + n);
}

static void stat_set(uint32_t *ctr, uint32_t v)
{
	if (eng.env.stats)
		ipcd_store_relaxed(ctr, v);
}

static void kick(void)
{
	if (eng.kick_fd >= 0)
		ipcd_eventfd_signal(eng.kick_fd);
}

/* ---- waking this host's sleepers ------------------------------------------- */

/* wait.h W1 as the remote peer's stand-in: wake a sleeper of @word, if any. */
static void wake_word(const struct rconn *rc, uint32_t *word, bool room)
{
	uint32_t v;

	ipcd_smp_mb();
	v = ipcd_load_relaxed(word);
	if (!(v & (IPCD_DB_FUTEX | IPCD_DB_EVENT)))
		return;
	v = ipcd_xchg(word, 0);
	if (v & IPCD_DB_FUTEX)
		ipcd_futex_wake(word);
	if ((v & IPCD_DB_EVENT) && rc->wake_fd >= 0) {
		if (room)
			ipcd_eventfd_signal_out(rc->wake_fd);
		else
			ipcd_eventfd_signal(rc->wake_fd);
	}
}

/*
 * The transport under @rc failed: its end sees what a peer's death shows
 * (EOF, and ECONNRESET), as the monitor marks it when a process dies.
 */
static void rconn_kill(struct rconn *rc)
{
	uint32_t bit = rc->acceptor ? IPCD_CONN_RESET_A : IPCD_CONN_RESET_B;

	pthread_mutex_lock(&rc->tx_mu);
	pthread_mutex_lock(&rc->rx_mu);
	atomic_store(&rc->ready, false);
	rc->dead = true;
	atomic_store(&rc->tx_retry, false);
	atomic_store(&rc->rx_retry, false);
	pthread_mutex_unlock(&rc->rx_mu);
	pthread_mutex_unlock(&rc->tx_mu);
	/*
	 * Nobody here reads it any more; or the peer closed cleanly (its FIN
	 * came after its last data and flags): no reset for what already ended.
	 */
	if (rc->closing || atomic_load(&rc->peer_fin))
		return;
	ipcd_fetch_or(&rc->ctl->reset, bit);
	ipcd_store_release(&rc->rx.shm->prod_closed, 1);
	ipcd_store_release(&rc->tx.shm->cons_closed, 1);
	wake_word(rc, &rc->rx.shm->cons_wait, false);
	wake_word(rc, &rc->tx.shm->prod_wait, true);
}

/* ---- posting ------------------------------------------------------------------ */

/* This end's last holder closed it: it writes and reads no more. */
static bool local_closed(const struct rconn *rc)
{
	return ipcd_load_acquire(&rc->tx.shm->prod_closed) &&
	       ipcd_load_acquire(&rc->rx.shm->cons_closed);
}

static uint64_t remote_ring(const struct rconn *rc, const struct ipcd_spsc *r)
{
	return rc->raddr + (uint64_t)((const uint8_t *)r->shm - (const uint8_t *)rc->base);
}

static void wr_write(struct ibv_send_wr *wr, struct ibv_sge *sge, uint64_t laddr, uint32_t len,
		     uint32_t lkey, uint64_t raddr, uint32_t rkey, bool inl)
{
	memset(wr, 0, sizeof(*wr));
	sge->addr = laddr;
	sge->length = len;
	sge->lkey = lkey;
	wr->sg_list = sge;
	wr->num_sge = 1;
	wr->opcode = IBV_WR_RDMA_WRITE;
	wr->send_flags = inl ? IBV_SEND_INLINE : 0;
	wr->wr.rdma.remote_addr = raddr;
	wr->wr.rdma.rkey = rkey;
}

/*
 * Post @n WRs as one chain, the last one signaled (its completion frees
 * the whole chain's send-queue room). 0, -EAGAIN (the send queue is full:
 * retry from the progress thread) or -errno.
 */
static int post_chain(struct rconn *rc, struct ibv_send_wr *wr, unsigned int n)
{
	struct peer *p = rc->peer;
	struct ibv_send_wr *bad = NULL;
	unsigned int i;
	int rc2;

	if (atomic_fetch_add(&p->sq_used, n) + n > ENG_SQ) {
		atomic_fetch_sub(&p->sq_used, n);
		return -EAGAIN;
	}
	for (i = 0; i + 1 < n; i++)
		wr[i].next = &wr[i + 1];
	wr[n - 1].next = NULL;
	wr[n - 1].send_flags |= IBV_SEND_SIGNALED;
	wr[n - 1].wr_id = (uint64_t)n << 32 | (uint64_t)(rc - eng.conns);
	atomic_fetch_add(&rc->inflight, 1);
	rc2 = ibv_post_send(p->qp, wr, &bad);
	if (rc2) {
		atomic_fetch_sub(&rc->inflight, 1);
		atomic_fetch_sub(&p->sq_used, n);
		if (eng.env.stats)
			stat_add(&eng.env.stats->errors, 1);
		return rc2 > 0 ? -rc2 : -EIO;
	}
	if (eng.env.stats)
		stat_add(&eng.env.stats->writes, 1);
	return 0;
}

/*
 * Push what tx has that the peer lacks. Under tx_mu. True when the peer has
 * it all (or the queue pair failed, which peer_fail handles); false when it
 * must be tried again: not bound yet, or the send queue was full.
 */
static bool tx_push_locked(struct rconn *rc)
{
	const struct ipcd_spsc *r = &rc->tx;
	struct ipcd_spsc_shm *s = r->shm;
	struct ibv_send_wr wr[ENG_CHAIN];
	struct ibv_sge sge[ENG_CHAIN];
	uint64_t stamp, hdr, ring = remote_ring(rc, r);
	uint64_t data = ring + sizeof(struct ipcd_spsc_shm);
	struct { uint32_t tail, lock; uint64_t bytes, msgs; } pg;
	uint32_t lkey, tail, closed, n = 0;
	uint64_t bytes;
	int err;

	if (rc->fin_sent)
		return true;
	if (!atomic_load_explicit(&rc->ready, memory_order_acquire))
		return false;
	lkey = rc->mr->lkey;	/* registered before it was ready */
	tail = ipcd_load_acquire(&s->tail);
	closed = ipcd_load_acquire(&s->prod_closed);
	if (tail == rc->tx_sent && closed == rc->tx_closed)
		return true;
	if (tail - rc->tx_sent > r->capacity || (tail & (IPCD_REC_ALIGN - 1)))
		return true;	/* our own process wrote nonsense: the ring's reader says -EPROTO */
	/*
	 * The producer stores tail (relaxed) after the header's release: on a
	 * weakly ordered CPU another thread may see the tail first. Never send
	 * a header that is not published yet; the producer's own hook follows.
	 */
	if (tail != rc->tx_sent &&
	    (uint32_t)(ipcd_load_acquire(__ipcd_rec_at(r, rc->tx_sent)) >> 32) != rc->tx_sent)
		return local_closed(rc);	/* after the last close: corrupt, nothing to wait for */
	bytes = ipcd_load_relaxed(&s->prod_bytes);
	if (tail != rc->tx_sent) {
		uint32_t from = rc->tx_sent + (uint32_t)sizeof(struct ipcd_rec_hdr);
		uint32_t len = tail - from, off = from & r->mask;

		if (len) {
			uint32_t first = IPCD_MIN(len, r->capacity - off);

			wr_write(&wr[n], &sge[n], (uint64_t)(uintptr_t)(r->data + off), first, lkey,
				 data + off, rc->rkey, false);
			n++;
			if (len > first) {
				wr_write(&wr[n], &sge[n], (uint64_t)(uintptr_t)r->data, len - first,
					 lkey, data, rc->rkey, false);
				n++;
			}
		}
		stamp = __ipcd_rec_pack(0, ~tail);
		wr_write(&wr[n], &sge[n], (uint64_t)(uintptr_t)&stamp, 8, 0, data + (tail & r->mask),
			 rc->rkey, true);
		n++;
		hdr = ipcd_load_acquire(__ipcd_rec_at(r, rc->tx_sent));
		wr_write(&wr[n], &sge[n], (uint64_t)(uintptr_t)&hdr, 8, 0,
			 data + (rc->tx_sent & r->mask), rc->rkey, true);
		n++;
	}
	if (closed != rc->tx_closed) {
		wr_write(&wr[n], &sge[n], (uint64_t)(uintptr_t)&closed, 4, 0,
			 ring + offsetof(struct ipcd_spsc_shm, prod_closed), rc->rkey, true);
		n++;
	}
	pg.tail = tail;
	pg.lock = 0;
	pg.bytes = bytes;
	pg.msgs = ipcd_load_relaxed(&s->prod_msgs);
	wr_write(&wr[n], &sge[n], (uint64_t)(uintptr_t)&pg, sizeof(pg), 0,
		 ring + offsetof(struct ipcd_spsc_shm, tail), rc->rkey, true);
	wr[n].opcode = IBV_WR_RDMA_WRITE_WITH_IMM;
	wr[n].imm_data = htonl(rc->rimm);
	n++;
	err = post_chain(rc, wr, n);
	if (err == -EAGAIN) {
		atomic_store(&rc->tx_retry, true);
		kick();
		return false;
	}
	if (err) {
		LOG("ipcd: RDMA connection %" PRIu64 ": posting its data failed: %s",
		    rc->conn_id, strerror(-err));
		return true;
	}
	if (eng.env.stats)
		stat_add(&eng.env.stats->tx_bytes, bytes - rc->tx_bytes);
	rc->tx_bytes = bytes;
	rc->tx_sent = tail;
	rc->tx_closed = closed;
	return true;
}

/* Credits (and cons_closed, and our reset bit) for the peer's tx. Under rx_mu. As tx_push_locked. */
static bool rx_push_locked(struct rconn *rc, bool force)
{
	const struct ipcd_spsc *r = &rc->rx;
	struct ipcd_spsc_shm *s = r->shm;
	struct ibv_send_wr wr[3];
	struct ibv_sge sge[3];
	uint64_t ring = remote_ring(rc, r);
	struct { uint32_t head, head_off; uint64_t bytes, msgs; } cg;
	uint32_t bit = rc->acceptor ? IPCD_CONN_RESET_B : IPCD_CONN_RESET_A;
	uint32_t head, closed, reset, n = 0;
	int err;

	if (rc->fin_sent)
		return true;
	if (!atomic_load_explicit(&rc->ready, memory_order_acquire))
		return false;
	head = ipcd_load_acquire(&s->head);
	closed = ipcd_load_acquire(&s->cons_closed);
	reset = ipcd_load_acquire(&rc->ctl->reset) & bit;
	if (closed == rc->rx_closed && reset == rc->rx_reset) {
		if (head == rc->rx_credited)
			return true;
		/* An eighth of the ring, or all of it (then the producer may be waiting). */
		if (!force && head - rc->rx_credited < r->capacity / 8 && ipcd_spsc_unread(r))
			return true;
	}
	if (reset != rc->rx_reset) {
		wr_write(&wr[n], &sge[n], (uint64_t)(uintptr_t)&reset, 4, 0,
			 rc->raddr + rc->off[IPCD_AREA_CONN_CTL] +
			 offsetof(struct ipcd_conn_ctl, reset), rc->rkey, true);
		n++;
	}
	if (closed != rc->rx_closed) {
		wr_write(&wr[n], &sge[n], (uint64_t)(uintptr_t)&closed, 4, 0,
			 ring + offsetof(struct ipcd_spsc_shm, cons_closed), rc->rkey, true);
		n++;
	}
	cg.head = head;
	cg.head_off = ipcd_load_relaxed(&s->head_off);
	cg.bytes = ipcd_load_relaxed(&s->cons_bytes);
	cg.msgs = ipcd_load_relaxed(&s->cons_msgs);
	wr_write(&wr[n], &sge[n], (uint64_t)(uintptr_t)&cg, sizeof(cg), 0,
		 ring + offsetof(struct ipcd_spsc_shm, head), rc->rkey, true);
	wr[n].opcode = IBV_WR_RDMA_WRITE_WITH_IMM;
	wr[n].imm_data = htonl(rc->rimm | IMM_ROOM);
	n++;
	err = post_chain(rc, wr, n);
	if (err == -EAGAIN) {
		atomic_store(&rc->rx_retry, true);
		kick();
		return false;
	}
	if (err)
		return true;
	rc->rx_credited = head;
	rc->rx_closed = closed;
	rc->rx_reset = reset;
	return true;
}

/*
 * The last write of a detached end, after its final pushes: a zero-length
 * WRITE WITH IMMEDIATE (IMM_FIN). RC delivers it after everything we posted
 * before, so the peer knows we will never write into its region again and
 * may unregister it. Under both locks. False if the send queue was full.
 */
static bool fin_push_locked(struct rconn *rc)
{
	struct ibv_send_wr wr;

	if (rc->fin_sent)
		return true;
	if (rc->dead) {
		rc->fin_sent = true;	/* no transport: nothing more can go */
		return true;
	}
	/* Not bound yet: its data and flags wait for the bind (rconn_ready). */
	if (!atomic_load(&rc->ready))
		return false;
	/* The FIN only after everything else is posted: a refused push comes first. */
	if (!tx_push_locked(rc) || !rx_push_locked(rc, true))
		return false;	/* a full send queue kicked already: on_kick retries */
	memset(&wr, 0, sizeof(wr));
	wr.opcode = IBV_WR_RDMA_WRITE_WITH_IMM;
	wr.imm_data = htonl(rc->rimm | IMM_FIN);
	wr.wr.rdma.remote_addr = rc->raddr;
	wr.wr.rdma.rkey = rc->rkey;
	switch (post_chain(rc, &wr, 1)) {
	case 0:
		rc->fin_sent = true;
		return true;
	case -EAGAIN:
		kick();		/* retried by on_kick */
		return false;
	default:
		rc->fin_sent = true;	/* the queue pair failed: nothing more goes out anyway */
		return true;
	}
}

static void fin_push(struct rconn *rc)
{
	pthread_mutex_lock(&rc->tx_mu);
	pthread_mutex_lock(&rc->rx_mu);
	fin_push_locked(rc);
	pthread_mutex_unlock(&rc->rx_mu);
	pthread_mutex_unlock(&rc->tx_mu);
}

static void tx_push(struct rconn *rc)
{
	pthread_mutex_lock(&rc->tx_mu);
	tx_push_locked(rc);
	pthread_mutex_unlock(&rc->tx_mu);
}

static void rx_push(struct rconn *rc, bool force)
{
	pthread_mutex_lock(&rc->rx_mu);
	rx_push_locked(rc, force);
	pthread_mutex_unlock(&rc->rx_mu);
}

/* The rings' remote hooks (spsc.h), called by the application's threads. */
static void hook_tx(const struct ipcd_spsc *r, bool room)
{
	struct rconn *rc = r->remote_arg;

	(void)room;
	if (rc->foreign) {
		/* The ring is shared memory: the parent's progress thread pushes it. */
		ipcd_eventfd_signal(rc->owner_kick);
		return;
	}
	tx_push(rc);
}

static void hook_rx(const struct ipcd_spsc *r, bool room)
{
	struct rconn *rc = r->remote_arg;

	(void)room;
	if (rc->foreign) {
		ipcd_eventfd_signal(rc->owner_kick);
		return;
	}
	rx_push(rc, false);
}

/* ---- peers and queue pairs ------------------------------------------------------ */

static int send_msg(uint32_t host, uint64_t key, const struct emsg *e)
{
	struct ipcd_rmsg m = { .type = IPCD_RMSG_SEND, .host = host, .key = key,
			       .len = sizeof(*e) };

	memcpy(m.body, e, sizeof(*e));
	if (send(eng.env.chan_fd, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof(m))
		return -errno;
	return 0;
}

static struct peer *peer_find(uint32_t host, uint64_t key)
{
	unsigned int i;

	for (i = 0; i < ENG_MAX_PEERS; i++)
		if (eng.peers[i].state != P_FREE && eng.peers[i].host == host &&
		    eng.peers[i].key == key)
			return &eng.peers[i];
	return NULL;
}

/*
 * The peer a completion belongs to, from its wr_id (a receive's: the
 * peer's index; a send chain's: its connection's), confirmed by the queue
 * pair number: NULL for a queue pair since destroyed. No scan per message.
 */
static struct peer *peer_of_wc(const struct ibv_wc *wc)
{
	uint32_t idx = (uint32_t)wc->wr_id;
	struct peer *p = NULL;

	if (!(wc->wr_id >> 32) && idx < ENG_MAX_PEERS)
		p = &eng.peers[idx];
	else if ((wc->wr_id >> 32) && idx < ENG_MAX_CONNS)
		p = eng.conns[idx].peer;
	return p && p->qp && p->qp->qp_num == wc->qp_num ? p : NULL;
}

static int post_recvs(struct peer *p, unsigned int n)
{
	struct ibv_recv_wr wr = { .wr_id = (uint64_t)(p - eng.peers), .num_sge = 0 };
	struct ibv_recv_wr *bad;

	while (n--)
		if (ibv_post_recv(p->qp, &wr, &bad))
			return -EIO;
	return 0;
}

/* A queue pair for @p in INIT, its receives posted. Under eng.mu. */
static int peer_qp(struct peer *p)
{
	if (!p->pd && !(p->pd = ibv_alloc_pd(eng.dev->ctx)))
		return errno ? -errno : -ENOMEM;
	p->qp = ipcd_rqp_create(eng.dev, p->pd, ENG_SQ, ENG_RQ, &p->self);
	if (!p->qp)
		return -errno;
	atomic_store(&p->sq_used, 0);
	if (post_recvs(p, ENG_RQ)) {
		ipcd_rqp_destroy(p->qp);
		p->qp = NULL;
		return -EIO;
	}
	return 0;
}

static struct peer *peer_new(uint32_t host, uint64_t key)
{
	unsigned int i;

	for (i = 0; i < eng.max_peers; i++)
		if (eng.peers[i].state == P_FREE && !eng.peers[i].pd) {
			struct peer *p = &eng.peers[i];

			memset(p, 0, sizeof(*p));
			p->state = P_NEW;
			p->host = host;
			p->key = key;
			return p;
		}
	return NULL;
}

static void count_peers(void)
{
	unsigned int i, n = 0;

	for (i = 0; i < ENG_MAX_PEERS; i++)
		n += eng.peers[i].qp != NULL;
	if (eng.env.stats)
		stat_set(&eng.env.stats->qps, n);
}

static void rconn_ready(struct rconn *rc);
static void peer_pd_put(struct peer *p);

/* @p's queue pair is connected: its bound connections go. Under eng.mu. */
static void peer_ready(struct peer *p)
{
	unsigned int i;

	p->state = P_READY;
	count_peers();
	for (i = 0; i < ENG_MAX_CONNS; i++) {
		struct rconn *rc = &eng.conns[i];

		if (rc->used && !rc->foreign && rc->peer == p && rc->rkey && !rc->dead)
			rconn_ready(rc);
	}
}

/* @p failed or left: its connections are reset, its queue pair goes. Under eng.mu. */
static void peer_fail(struct peer *p, const char *why)
{
	unsigned int i;

	if (p->state == P_FREE)
		return;
	if (p->state != P_DEAD && why)
		LOG("ipcd: RDMA peer (host %u, process %" PRIx64 "): %s: its connections are reset",
		    p->host, p->key, why);
	p->state = P_DEAD;
	for (i = 0; i < ENG_MAX_CONNS; i++) {
		struct rconn *rc = &eng.conns[i];

		if (rc->used && !rc->foreign && rc->peer == p) {
			rconn_kill(rc);
			rc->peer = NULL;
			/*
			 * A destroyed queue pair's flushed completions may never
			 * come (mlx5 drops them): nothing is in flight any more.
			 * Late ones find no queue pair and count nothing.
			 */
			atomic_store(&rc->inflight, 0);
		}
	}
	/* No hook can post on it now: every connection on it is not ready. */
	if (p->qp)
		ipcd_rqp_destroy(p->qp);
	p->qp = NULL;
	p->state = P_FREE;
	peer_pd_put(p);
	count_peers();
}

/* A free slot's protection domain goes with its last region. */
static void peer_pd_put(struct peer *p)
{
	if (p->state == P_FREE && !p->mrs && p->pd) {
		ibv_dealloc_pd(p->pd);
		p->pd = NULL;
	}
}

/* Register @rc's region in @p's protection domain. 0 or -errno. */
static int rconn_reg(struct rconn *rc, struct peer *p)
{
	rc->mr = ipcd_rdev_reg(eng.dev, p->pd, rc->base, rc->size, true);
	if (!rc->mr) {
		int err = errno ? -errno : -ENOMEM;

		LOG("ipcd: RDMA connection %" PRIu64 ": cannot register its %zu-byte region: %s",
		    rc->conn_id, rc->size, strerror(-err));
		return err;
	}
	rc->mr_peer = p;
	p->mrs++;
	return 0;
}

static bool info_less(const struct ipcd_rqp_info *a, const struct ipcd_rqp_info *b)
{
	int c = memcmp(a->gid, b->gid, 16);

	return c < 0 || (c == 0 && a->qpn < b->qpn);
}

static void on_offer(uint32_t host, uint64_t key, const struct ipcd_rqp_info *info)
{
	struct peer *p = peer_find(host, key);
	struct emsg e = { .type = E_ANSWER };
	int err;

	if (p && p->state == P_READY)
		peer_fail(p, "it made a new queue pair");	/* it lost the old one */
	p = peer_find(host, key);
	if (p && p->state == P_OFFERED && info_less(&p->self, info))
		return;		/* crossed offers: the larger side answers; ours will be */
	if (!p) {
		p = peer_new(host, key);
		if (!p) {
			LOG("ipcd: RDMA: %u peers already: host %u process %" PRIx64 " refused",
			    eng.max_peers, host, key);
			return;
		}
	}
	if (!p->qp && (err = peer_qp(p)) != 0) {
		LOG("ipcd: RDMA: cannot create a queue pair: %s", strerror(-err));
		peer_fail(p, NULL);
		return;
	}
	p->remote = *info;
	err = ipcd_rqp_connect(eng.dev, p->qp, &p->self, &p->remote);
	if (err) {
		LOG("ipcd: RDMA: cannot connect a queue pair to host %u: %s", host, strerror(-err));
		peer_fail(p, NULL);
		return;
	}
	e.qp = p->self;
	if (send_msg(host, key, &e))
		LOG("ipcd: RDMA: cannot answer host %u's offer: %s", host, strerror(errno));
	peer_ready(p);
}

static void on_answer(uint32_t host, uint64_t key, const struct ipcd_rqp_info *info)
{
	struct peer *p = peer_find(host, key);
	int err;

	if (!p || p->state != P_OFFERED)
		return;
	p->remote = *info;
	err = ipcd_rqp_connect(eng.dev, p->qp, &p->self, &p->remote);
	if (err) {
		LOG("ipcd: RDMA: cannot connect a queue pair to host %u: %s", host, strerror(-err));
		peer_fail(p, "queue pair");
		return;
	}
	peer_ready(p);
}

/* The queue pair to (@host, @key), made and offered if there is none. Under eng.mu. */
static struct peer *peer_get(uint32_t host, uint64_t key)
{
	struct peer *p = peer_find(host, key);
	struct emsg e = { .type = E_OFFER };

	if (p)
		return p;
	p = peer_new(host, key);
	if (!p || peer_qp(p)) {
		if (p) {
			p->state = P_FREE;
			peer_pd_put(p);
		}
		return NULL;
	}
	e.qp = p->self;
	if (send_msg(host, key, &e)) {
		ipcd_rqp_destroy(p->qp);
		p->qp = NULL;
		p->state = P_FREE;
		peer_pd_put(p);
		return NULL;
	}
	p->state = P_OFFERED;
	count_peers();
	return p;
}

/* ---- connections ------------------------------------------------------------------ */

static uint32_t imm_of(const struct rconn *rc)
{
	return (rc->gen & IMM_GEN_MASK) << IMM_IDX_BITS | (uint32_t)(rc - eng.conns);
}

static void rconn_ready(struct rconn *rc)
{
	if (atomic_load(&rc->ready))
		return;
	atomic_store_explicit(&rc->ready, true, memory_order_release);
	tx_push(rc);		/* what was written before the peer was bound */
	rx_push(rc, true);
	if (rc->closing)
		fin_push(rc);	/* closed before it was bound: everything goes now */
}

static int send_bind(struct rconn *rc, uint64_t to)
{
	struct emsg e = { .type = E_BIND };

	e.bind.conn = rc->conn_id;
	e.bind.to = to;
	e.bind.addr = (uint64_t)(uintptr_t)rc->base;
	e.bind.size = rc->size;
	memcpy(e.bind.off, rc->off, sizeof(e.bind.off));
	e.bind.rkey = rc->mr->rkey;
	e.bind.imm = imm_of(rc);
	e.bind.ring_bytes = rc->tx.capacity;
	return send_msg(rc->peer->host, rc->peer->key, &e);
}

/* @b from (@host, @key) names @rc: take the peer's region. Under eng.mu. */
static void bind_apply(struct rconn *rc, uint32_t host, uint64_t key, const struct ebind *b)
{
	if (rc->rkey || rc->dead)
		return;		/* bound already, or gone */
	/* Only the process our monitor names as the other end may bind it. */
	if (host != ipcd_load_relaxed(&rc->ctl->remote_host) ||
	    key != ipcd_load_acquire(&rc->ctl->peer_key) ||
	    (rc->acceptor && b->conn != ipcd_load_relaxed(&rc->ctl->peer_conn))) {
		LOG("ipcd: RDMA connection %" PRIu64 ": a bind from host %u process %" PRIx64
		    " that is not its peer: ignored", rc->conn_id, host, key);
		return;
	}
	if (b->size != rc->size || memcmp(b->off, rc->off, sizeof(rc->off)) ||
	    b->ring_bytes != rc->tx.capacity || (b->imm & (IMM_ROOM | IMM_FIN))) {
		LOG("ipcd: RDMA connection %" PRIu64 ": the peer's region differs from ours "
		    "(%" PRIu64 " bytes, rings of %u, against %zu and %u): reset", rc->conn_id,
		    b->size, b->ring_bytes, rc->size, rc->tx.capacity);
		rconn_kill(rc);
		return;
	}
	if (!rc->peer) {
		rc->peer = peer_get(host, key);
		if (!rc->peer) {
			LOG("ipcd: RDMA connection %" PRIu64 ": no queue pair to its peer: reset",
			    rc->conn_id);
			rconn_kill(rc);
			return;
		}
	}
	/* The connector registers now that it knows whose domain the region goes in. */
	if (!rc->mr && rconn_reg(rc, rc->peer)) {
		rconn_kill(rc);
		return;
	}
	rc->raddr = b->addr;
	rc->rimm = b->imm;
	rc->rkey = b->rkey;
	if (!rc->acceptor && send_bind(rc, b->conn)) {
		rconn_kill(rc);
		return;
	}
	if (rc->peer->state == P_READY)
		rconn_ready(rc);
}

static void on_bind(uint32_t host, uint64_t key, const struct ebind *b)
{
	unsigned int i;

	for (i = 0; i < ENG_MAX_CONNS; i++) {
		struct rconn *rc = &eng.conns[i];

		/* A closed end too: what it wrote before its bind still goes. */
		if (rc->used && !rc->foreign && rc->conn_id == b->to) {
			bind_apply(rc, host, key, b);
			return;
		}
	}
	/* Its connector has not attached it yet (the answer and the bind race). */
	for (i = 0; i < ENG_PEND_BINDS; i++)
		if (!eng.pend[i].used) {
			eng.pend[i] = (struct pend_bind){ .used = true, .host = host, .key = key,
							  .at = ipcd_now_ns(), .b = *b };
			return;
		}
	LOG("ipcd: RDMA: more than %u binds waiting for their connection: one dropped",
	    ENG_PEND_BINDS);
}

static void rconn_free(struct rconn *rc)
{
	if (rc->mr) {
		ipcd_rdev_dereg(rc->mr);
		rc->mr_peer->mrs--;
		peer_pd_put(rc->mr_peer);
	}
	if (rc->base)
		munmap(rc->base, rc->size);
	if (rc->wake_fd >= 0)
		close(rc->wake_fd);
	rc->mr = NULL;
	rc->mr_peer = NULL;
	rc->base = NULL;
	rc->wake_fd = -1;
	rc->used = false;
	rc->gen++;
	if (eng.env.stats)
		stat_set(&eng.env.stats->conns, ipcd_load_relaxed(&eng.env.stats->conns) - 1);
}

/*
 * Detached connections whose peer cannot write into them any more are
 * freed; ends never bound (a peer refused our queue pair, or its offer or
 * bind was lost) are reset at their deadline. True while either kind is
 * left (the progress thread then sleeps with a timeout). Under eng.mu.
 */
static bool reap_closing(void)
{
	uint64_t now = ipcd_now_ns();
	bool left = false;
	unsigned int i;

	for (i = 0; i < ENG_PEND_BINDS; i++)
		if (eng.pend[i].used && now - eng.pend[i].at > ENG_BIND_NS)
			eng.pend[i].used = false;	/* its connection never came */
	for (i = 0; i < ENG_MAX_CONNS; i++) {
		struct rconn *rc = &eng.conns[i];
		bool peer_done;

		if (!rc->used || rc->foreign)
			continue;	/* a foreign end is its owner's to reap */
		if (rc->released && !rc->closing && (rc->dead || local_closed(rc))) {
			/* Its forked holders are done (closed, killed: the monitor marked it). */
			fin_push(rc);
			rc->closing = true;
		}
		if (!rc->dead && !atomic_load(&rc->ready)) {
			if (now - rc->attach_ns <= ENG_BIND_NS) {
				left = true;
				continue;
			}
			LOG("ipcd: RDMA connection %" PRIu64 ": not bound to its peer in %llu s: reset",
			    rc->conn_id, (unsigned long long)(ENG_BIND_NS / 1000000000));
			rconn_kill(rc);
		}
		if (!rc->closing) {
			if (rc->released)
				left = true;	/* a killed child tells nobody: look every second */
			continue;
		}
		/*
		 * The peer may write into the region until its IMM_FIN, and the
		 * NIC reads from it until our own writes complete; our FIN goes
		 * after our last data (a full send queue delays it).
		 */
		if (!rc->fin_sent)
			fin_push(rc);
		peer_done = rc->dead || !rc->peer || atomic_load(&rc->peer_fin);
		if (peer_done && rc->fin_sent && atomic_load(&rc->inflight) == 0)
			rconn_free(rc);
		else
			left = true;
	}
	return left;
}

static int attach(struct ipcd_engine_conn *pc)
{
	struct rconn *rc = NULL;
	unsigned int i;
	int err = 0;

	if (eng.broken || !eng.dev)
		return -ENOTCONN;
	pthread_mutex_lock(&eng.mu);
	for (i = 0; i < ENG_MAX_CONNS; i++)
		if (!eng.conns[i].used) {
			rc = &eng.conns[i];
			break;
		}
	if (!rc) {
		err = -ENOBUFS;
		goto out;
	}
	rc->mr = NULL;
	rc->mr_peer = NULL;
	rc->base = pc->base;
	rc->size = pc->size;
	rc->conn_id = pc->conn_id;
	if (pc->acceptor) {
		/* The acceptor knows its peer now: its queue pair, and its domain for the region. */
		rc->peer = peer_get(ipcd_load_relaxed(&pc->ctl->remote_host),
				    ipcd_load_relaxed(&pc->ctl->peer_key));
		if (!rc->peer) {
			LOG("ipcd: RDMA connection %" PRIu64 ": no queue pair to its peer (%u peers at "
			    "most)", pc->conn_id, eng.max_peers);
			err = -ENOBUFS;
			goto out;
		}
		err = rconn_reg(rc, rc->peer);
		if (err)
			goto out;
	}
	rc->used = true;
	rc->closing = rc->dead = rc->released = false;
	rc->fin_sent = false;
	atomic_store(&rc->peer_fin, false);
	atomic_store(&rc->ready, false);
	atomic_store(&rc->inflight, 0);
	atomic_store(&rc->tx_retry, false);
	atomic_store(&rc->rx_retry, false);
	rc->pc = pc;
	if (!pc->acceptor)
		rc->peer = NULL;	/* its bind names it */
	rc->ctl = pc->ctl;
	rc->tx = *pc->tx;
	rc->rx = *pc->rx;
	rc->base = pc->base;
	rc->size = pc->size;
	memcpy(rc->off, pc->off, sizeof(rc->off));
	rc->acceptor = pc->acceptor;
	rc->foreign = false;
	rc->owner_kick = eng.kick_fd;
	rc->wake_fd = pc->wake_fd;
	rc->attach_ns = ipcd_now_ns();
	rc->raddr = 0;
	rc->rkey = 0;
	rc->rimm = 0;
	rc->tx_sent = ipcd_load_relaxed(&rc->tx.shm->tail);
	rc->tx_closed = 0;
	rc->tx_bytes = ipcd_load_relaxed(&rc->tx.shm->prod_bytes);
	rc->rx_credited = ipcd_load_relaxed(&rc->rx.shm->head);
	rc->rx_closed = 0;
	rc->rx_reset = 0;
	pthread_mutex_init(&rc->tx_mu, NULL);
	pthread_mutex_init(&rc->rx_mu, NULL);
	pc->priv = rc;
	/* The preload's handles call us from now on (the monitor set the words). */
	pc->tx->remote_arg = rc;
	pc->tx->remote = hook_tx;
	pc->rx->remote_arg = rc;
	pc->rx->remote = hook_rx;
	ipcd_fetch_or(&pc->tx->shm->cons_wait, IPCD_DB_REMOTE);
	ipcd_fetch_or(&pc->rx->shm->prod_wait, IPCD_DB_REMOTE);
	pc->tx->remote_word = &pc->tx->shm->cons_wait;
	pc->rx->remote_word = &pc->rx->shm->prod_wait;
	if (eng.env.stats)
		stat_set(&eng.env.stats->conns, ipcd_load_relaxed(&eng.env.stats->conns) + 1);
	if (pc->acceptor) {
		if (send_bind(rc, ipcd_load_relaxed(&pc->ctl->peer_conn))) {
			LOG("ipcd: RDMA connection %" PRIu64 ": cannot send its bind: reset",
			    pc->conn_id);
			rconn_kill(rc);
		}
	} else {
		for (i = 0; i < ENG_PEND_BINDS; i++)
			if (eng.pend[i].used && eng.pend[i].b.to == pc->conn_id) {
				eng.pend[i].used = false;
				bind_apply(rc, eng.pend[i].host, eng.pend[i].key, &eng.pend[i].b);
			}
	}
out:
	pthread_mutex_unlock(&eng.mu);
	return err;
}

static void detach(struct ipcd_engine_conn *pc)
{
	struct rconn *rc = pc->priv;

	if (!rc)
		return;
	if (rc->foreign) {
		ipcd_eventfd_signal(rc->owner_kick);
		return;		/* the parent still holds the end (fork shares it) */
	}
	pc->priv = NULL;
	if (!local_closed(rc)) {
		/*
		 * Only our mapping goes: a forked child still holds the end, and
		 * its hooks kick us. Its last close (both rings closed) is our
		 * signal to finish (on_kick).
		 */
		pthread_mutex_lock(&eng.mu);
		rc->pc = NULL;
		rc->released = true;
		pthread_mutex_unlock(&eng.mu);
		return;
	}
	/* The closed flags (and a reset) go out now, then our last write. */
	fin_push(rc);
	pthread_mutex_lock(&eng.mu);
	rc->pc = NULL;
	rc->closing = true;
	reap_closing();
	pthread_mutex_unlock(&eng.mu);
	kick();		/* the progress thread watches it until the peer is done */
}

/* ---- the progress thread ---------------------------------------------------------- */

static void on_completion(const struct ibv_wc *wc)
{
	if (wc->opcode == IBV_WC_RECV_RDMA_WITH_IMM && wc->status == IBV_WC_SUCCESS) {
		uint32_t imm = ntohl(wc->imm_data);
		uint32_t idx = imm & ((1u << IMM_IDX_BITS) - 1);
		struct peer *p = peer_of_wc(wc);
		struct rconn *rc;

		if (p)
			post_recvs(p, 1);
		if (eng.env.stats)
			stat_add(&eng.env.stats->rx_events, 1);
		if (idx >= ENG_MAX_CONNS)
			return;
		rc = &eng.conns[idx];
		if (!p || !rc->used || rc->peer != p ||
		    ((imm >> IMM_IDX_BITS) & IMM_GEN_MASK) != (rc->gen & IMM_GEN_MASK))
			return;		/* stale: a queue pair or a connection since gone */
		if (imm & IMM_FIN)
			atomic_store(&rc->peer_fin, true);
		if (rc->closing)
			return;		/* nobody here sleeps on it */
		if (imm & IMM_ROOM)
			wake_word(rc, &rc->tx.shm->prod_wait, true);
		else
			wake_word(rc, &rc->rx.shm->cons_wait, false);
		return;
	}
	/*
	 * A send chain's signaled WR (wr_id: its length above, its connection
	 * below), or a failure. A failed WC's opcode is undefined: the wr_id
	 * tells sends (length > 0) from receives (our peer index, length 0).
	 */
	{
		uint32_t idx = (uint32_t)wc->wr_id;
		uint32_t n = (uint32_t)(wc->wr_id >> 32);
		struct peer *p = peer_of_wc(wc);

		if (p && n && idx < ENG_MAX_CONNS)
			atomic_fetch_sub(&eng.conns[idx].inflight, 1);
		if (p && n)
			atomic_fetch_sub(&p->sq_used, n);
		if (wc->status != IBV_WC_SUCCESS && wc->status != IBV_WC_WR_FLUSH_ERR && p) {
			if (eng.env.stats)
				stat_add(&eng.env.stats->errors, 1);
			pthread_mutex_lock(&eng.mu);
			peer_fail(p, ibv_wc_status_str(wc->status));
			pthread_mutex_unlock(&eng.mu);
		}
	}
}

static void on_chan(void)
{
	struct ipcd_rmsg m;
	unsigned int i;

	for (i = 0; i < 64; i++) {
		ssize_t n = recv(eng.env.chan_fd, &m, sizeof(m), MSG_DONTWAIT);
		const struct emsg *e = (const void *)m.body;

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			/* Our monitor is gone: every remote connection is. */
			unsigned int j;

			LOG("ipcd: RDMA: the monitor's channel closed: remote connections are reset");
			pthread_mutex_lock(&eng.mu);
			eng.broken = true;
			for (j = 0; j < ENG_MAX_PEERS; j++)
				peer_fail(&eng.peers[j], NULL);
			pthread_mutex_unlock(&eng.mu);
			return;
		}
		if (n != (ssize_t)sizeof(m))
			continue;
		pthread_mutex_lock(&eng.mu);
		if (m.type == IPCD_RMSG_GONE) {
			unsigned int j;

			for (j = 0; j < ENG_MAX_PEERS; j++) {
				struct peer *p = &eng.peers[j];

				if (p->state != P_FREE && p->host == m.host && (!m.key || p->key == m.key))
					peer_fail(p, m.key ? "its process is gone" : "its host is gone");
			}
		} else if (m.type == IPCD_RMSG_DELIVER && m.len >= sizeof(struct emsg)) {
			switch (e->type) {
			case E_OFFER:
				on_offer(m.host, m.key, &e->qp);
				break;
			case E_ANSWER:
				on_answer(m.host, m.key, &e->qp);
				break;
			case E_BIND:
				on_bind(m.host, m.key, &e->bind);
				break;
			}
		}
		pthread_mutex_unlock(&eng.mu);
	}
}

/* A kick: retries the send queue refused, and pushes for forked children. */
static void on_kick(void)
{
	unsigned int i;

	for (i = 0; i < ENG_MAX_CONNS; i++) {
		struct rconn *rc = &eng.conns[i];

		if (!rc->used || rc->foreign || !atomic_load(&rc->ready))
			continue;
		atomic_store(&rc->tx_retry, false);
		atomic_store(&rc->rx_retry, false);
		if (rc->closing) {
			fin_push(rc);	/* one the send queue refused at detach */
			continue;
		}
		tx_push(rc);
		rx_push(rc, false);
		if (rc->released && local_closed(rc)) {
			/* The last forked holder closed it: as our own last close. */
			fin_push(rc);
			pthread_mutex_lock(&eng.mu);
			rc->closing = true;
			pthread_mutex_unlock(&eng.mu);
		}
	}
}

/*
 * What a busy progress thread must not leave for its next sleep, every 64
 * turns: the channel, kicks (retries, forked children's pushes), and at
 * most every second the reaping and the bind deadlines.
 */
static void busy_chores(uint64_t *reaped_at)
{
	uint64_t v, now = ipcd_now_ns();

	if (!eng.broken)
		on_chan();
	if (read(eng.kick_fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		on_kick();
	if (now - *reaped_at >= 1000000000ull) {
		*reaped_at = now;
		pthread_mutex_lock(&eng.mu);
		reap_closing();
		pthread_mutex_unlock(&eng.mu);
	}
}

static void *progress(void *arg)
{
	uint64_t idle_since = ipcd_now_ns(), reaped_at = idle_since;
	struct ibv_wc wc[32];
	unsigned int turns = 0;

	(void)arg;
	for (;;) {
		int n = ibv_poll_cq(eng.dev->cq, 32, wc), i;
		struct pollfd pfd[3];
		bool closing;

		for (i = 0; i < n; i++)
			on_completion(&wc[i]);
		if (n > 0) {
			idle_since = ipcd_now_ns();
			if (++turns % 64 == 0)
				busy_chores(&reaped_at);
			continue;
		}
		if (ipcd_now_ns() - idle_since < eng.env.spin_ns) {
			if (++turns % 64 == 0)
				busy_chores(&reaped_at);
			ipcd_cpu_relax();
			continue;
		}
		/* Sleep: arm, look once more (a completion may have slipped in), then poll. */
		if (ipcd_rdev_arm(eng.dev))
			break;
		n = ibv_poll_cq(eng.dev->cq, 32, wc);
		if (n > 0) {
			for (i = 0; i < n; i++)
				on_completion(&wc[i]);
			idle_since = ipcd_now_ns();
			continue;
		}
		pthread_mutex_lock(&eng.mu);
		closing = reap_closing();
		pthread_mutex_unlock(&eng.mu);
		pfd[0] = (struct pollfd){ .fd = ipcd_rdev_fd(eng.dev), .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = eng.env.chan_fd, .events = POLLIN };
		pfd[2] = (struct pollfd){ .fd = eng.kick_fd, .events = POLLIN };
		if (eng.env.stats)
			stat_add(&eng.env.stats->sleeps, 1);
		/* A raw syscall: the preload interposes poll(). */
		n = (int)syscall(SYS_poll, pfd, eng.broken ? 1 : 3, closing ? 1000 : -1);
		if (n < 0 && errno != EINTR)
			break;
		if (pfd[0].revents)
			while (ipcd_rdev_take_event(eng.dev) == 0)
				;
		if (!eng.broken && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
			on_chan();
		if (pfd[2].revents & POLLIN) {
			uint64_t v;

			if (read(eng.kick_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				break;
			on_kick();
		}
		idle_since = ipcd_now_ns();
	}
	LOG("ipcd: RDMA progress thread stopped: %s", strerror(errno));
	return NULL;
}

/* ---- entry points ----------------------------------------------------------------- */

static int init(const struct ipcd_engine_env *env)
{
	unsigned int i;
	int err;

	if (eng.started)
		return 0;
	eng.env = *env;
	eng.broken = false;
	for (i = 0; i < ENG_MAX_CONNS; i++)
		if (!eng.conns[i].used)
			eng.conns[i].wake_fd = -1;
	err = ipcd_rdev_open(env->addr, ENG_CQ, &eng.dev);
	if (err) {
		LOG("ipcd: RDMA: no device for this host's cluster address (%s: %s): connections "
		    "to other hosts use TCP", ipcd_rdev_why(), strerror(-err));
		eng.broken = true;
		return err;
	}
	/* Every queue pair's sends and receives must fit in the one CQ: never overrun it. */
	eng.max_peers = IPCD_MIN((unsigned int)eng.dev->cq->cqe / (ENG_SQ + ENG_RQ),
				 (unsigned int)ENG_MAX_PEERS);
	if (!eng.max_peers) {
		err = -ENOSPC;
		goto fail;
	}
	eng.kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (eng.kick_fd < 0) {
		err = -errno;
		goto fail;
	}
	{
		sigset_t all, old;

		/* The application's signals are for its own threads. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		err = -pthread_create(&eng.thread, NULL, progress, NULL);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (err)
		goto fail;
	pthread_setname_np(eng.thread, "ipcd-rdma");
	eng.started = true;
	return 0;
fail:
	if (eng.kick_fd >= 0)
		close(eng.kick_fd);
	eng.kick_fd = -1;
	ipcd_rdev_close(eng.dev);
	eng.dev = NULL;
	eng.broken = true;
	return err;
}

/*
 * A forked child. The parent's progress thread, queue pairs and channel
 * keep serving the ends we share: they become foreign here (their hooks
 * kick the parent). The verbs objects are the parent's too: the child
 * forgets them without destroying anything (a destroy would act on the
 * parent's, through the shared uverbs file). A new remote connection in
 * the child starts an engine of its own (the preload calls init again).
 */
static void atfork_child(void)
{
	unsigned int i;

	pthread_mutex_init(&eng.mu, NULL);	/* another thread may have held it */
	for (i = 0; i < ENG_MAX_CONNS; i++)
		if (eng.conns[i].used) {
			eng.conns[i].foreign = true;
			eng.conns[i].peer = NULL;	/* the parent's */
		}
	memset(eng.peers, 0, sizeof(eng.peers));
	memset(eng.pend, 0, sizeof(eng.pend));
	if (eng.env.chan_fd >= 0)
		close(eng.env.chan_fd);
	eng.env.chan_fd = -1;
	eng.env.stats = NULL;
	eng.dev = NULL;
	eng.kick_fd = -1;	/* the parent's stays open: the foreign ends' owner_kick */
	eng.started = false;
	eng.broken = false;
}

static bool usable(void)
{
	return eng.started && !eng.broken;
}

/*
 * At exit: what the application wrote (and its closes) must reach the peers
 * before the process's queue pairs die with it, as the kernel still sends a
 * closed socket's data after exit. Wait, bounded, for our posted writes.
 */
__attribute__((destructor)) static void linger(void)
{
	uint64_t end = ipcd_now_ns() + 2000000000ull;
	unsigned int i;

	if (!eng.started)
		return;
	for (;;) {
		unsigned int busy = 0;

		for (i = 0; i < ENG_MAX_CONNS; i++) {
			struct rconn *rc = &eng.conns[i];

			if (!rc->used || rc->foreign || rc->dead)
				continue;
			/* Posted writes, refused ones, and closed ends still waiting for their bind. */
			if (atomic_load(&rc->inflight) || atomic_load(&rc->tx_retry) ||
			    atomic_load(&rc->rx_retry) || (rc->closing && !rc->fin_sent))
				busy++;
		}
		if (!busy || ipcd_now_ns() >= end)
			return;
		kick();
		usleep(1000);
	}
}

IPCD_EXPORT const struct ipcd_engine_ops ipcd_engine_ops_v1 = {
	.version = IPCD_ENGINE_VERSION,
	.init = init,
	.attach = attach,
	.detach = detach,
	.atfork_child = atfork_child,
	.usable = usable,
};
