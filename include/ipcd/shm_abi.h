/* SPDX-License-Identifier: MIT */
/*
 * shm_abi.h - every structure that IPC-Direct shares between processes.
 *
 * WARNING: this file is an ABI between the monitor and every preloaded
 * process, possibly built from different versions. Appending a field into
 * reserved space, or a new region kind, bumps IPCD_SHM_ABI_MINOR. Any other
 * change (moving, resizing or re-typing a field, changing a meaning) bumps
 * IPCD_SHM_ABI_MAJOR. A reader refuses a different major and accepts a newer
 * minor.
 *
 * Rules for everything below:
 *  - fixed-width integers only: no pointers (offsets instead), no bool, enum,
 *    long or size_t;
 *  - padding is explicit; reserved[] space is zero and kept for growth;
 *  - each field names its writer ("W:"); every other party only reads it;
 *  - fields written by one side and read by another sit IPCD_CACHE_GUARD
 *    bytes apart;
 *  - everything an application can write is untrusted input to the monitor
 *    and to its peer: readers bounds-check and copy before validating.
 */
#ifndef IPCD_SHM_ABI_H
#define IPCD_SHM_ABI_H

#include <stddef.h>
#include <stdint.h>

#include "compiler.h"

#define IPCD_SHM_MAGIC		0x44435049u	/* "IPCD" little endian */
#define IPCD_SHM_ABI_MAJOR	3
#define IPCD_SHM_ABI_MINOR	7

/* struct ipcd_client_ctl.limit_action */
#define IPCD_LIMIT_KERNEL	0
#define IPCD_LIMIT_ERROR	1

/* Region kinds (struct ipcd_shm_hdr.kind). */
#define IPCD_REGION_CONN	1	/* one connection: two SPSC data rings */
#define IPCD_REGION_CLIENT	2	/* one process: request + response rings */
#define IPCD_REGION_GLOBAL	3	/* monitor state + shared request doorbells */

/* Sub-area indices (struct ipcd_shm_hdr.area[]). A connects, B accepts. */
#define IPCD_AREA_CONN_A2B	0	/* struct ipcd_spsc_shm: A writes, B reads */
#define IPCD_AREA_CONN_B2A	1	/* struct ipcd_spsc_shm: B writes, A reads */
#define IPCD_AREA_CONN_CTL	2	/* struct ipcd_conn_ctl */
#define IPCD_AREA_CLIENT_CTL	0	/* struct ipcd_client_ctl */
#define IPCD_AREA_CLIENT_REQ	1	/* struct ipcd_spsc_shm: client -> monitor */
#define IPCD_AREA_CLIENT_RESP	2	/* struct ipcd_spsc_shm: monitor -> client */
#define IPCD_AREA_GLOBAL_CTL	0	/* struct ipcd_global_ctl */
#define IPCD_AREA_GLOBAL_MPSC	1	/* struct ipcd_mpsc_shm (shared mode only) */
#define IPCD_SHM_MAX_AREAS	6

/* struct ipcd_shm_hdr.features */
#define IPCD_FEAT_FUTEX_WAIT	(1u << 0)	/* sleepers use futexes on doorbell words */

/**
 * struct ipcd_shm_area - where one sub-area of a region lives.
 * @off:  byte offset from the start of the region; 0 means absent.
 * @size: byte size of the sub-area.
 */
struct ipcd_shm_area {
	uint64_t off;
	uint64_t size;
};

/**
 * struct ipcd_shm_hdr - first bytes of every shared region.
 *
 * Written once by the region's creator (the monitor, or a test), which stores
 * @ready last with release semantics. A reader waits for @ready, copies the
 * whole header, and validates the copy (magic, major, sizes, every area
 * inside the region) before it maps a single pointer from it.
 */
struct ipcd_shm_hdr {
	uint32_t magic;			/* W: creator. IPCD_SHM_MAGIC */
	uint16_t abi_major;		/* W: creator. IPCD_SHM_ABI_MAJOR */
	uint16_t abi_minor;		/* W: creator. IPCD_SHM_ABI_MINOR */
	uint32_t hdr_size;		/* W: creator. sizeof(struct ipcd_shm_hdr) */
	uint32_t kind;			/* W: creator. IPCD_REGION_* */
	uint64_t region_size;		/* W: creator. bytes mapped */
	uint64_t features;		/* W: creator. IPCD_FEAT_* */
	uint32_t n_areas;		/* W: creator. used entries of area[] */
	uint32_t ready;			/* W: creator, last, release. 0: not yet */
	struct ipcd_shm_area area[IPCD_SHM_MAX_AREAS];	/* W: creator */
	uint8_t reserved[56];
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_shm_area) == 16);
IPCD_BUILD_ASSERT(sizeof(struct ipcd_shm_hdr) == 3 * IPCD_CACHE_LINE);
IPCD_BUILD_ASSERT(offsetof(struct ipcd_shm_hdr, ready) == 36);
IPCD_BUILD_ASSERT(offsetof(struct ipcd_shm_hdr, area) == 40);

/*
 * ---------------------------------------------------------------------------
 * SPSC ring of records (connection data, per-process requests and responses)
 * ---------------------------------------------------------------------------
 *
 * A byte ring of @capacity bytes (a power of two) holding 8-byte aligned
 * records: a struct ipcd_rec_hdr, then @len payload bytes, padded to 8.
 * Positions are free-running uint32_t byte counters; the ring offset of a
 * position is (pos & (capacity - 1)). A header never straddles the end (every
 * record starts 8-aligned and capacity is a multiple of 8); a payload may, and
 * is then copied in two pieces.
 *
 * Publication: the producer writes the payload, then stamps the header of the
 * *next* record position as not-yet-written (seq = ~next), then stores this
 * record's header with release, seq = its own position. The consumer polls the
 * header at its head position and owns the record once seq == head. So the
 * consumer's fast path touches only the record's own cache lines, never a
 * producer index, and a stale header or stale payload bytes from an earlier
 * lap can never look valid: the slot a consumer polls was always stamped
 * before the record ahead of it was published.
 *
 * In message mode a record is one message. In stream mode a record is one
 * write; the consumer may take part of it and records how much in @head_off.
 */
#define IPCD_SPSC_F_STREAM	(1u << 0)	/* byte stream; else messages */

/*
 * Doorbell words (cons_wait, prod_wait): a side about to sleep ORs in how it
 * sleeps; the other side, after publishing, exchanges the word with 0 and
 * wakes each kind named (wait.h protocol S1/W1).
 *   IPCD_DB_FUTEX: FUTEX_WAIT on the word itself;
 *   IPCD_DB_EVENT: poll/epoll on the sleeper's wake eventfd (connections:
 *                  the waker holds it, ctl.h IPCD_CTL_CONN_FD).
 *   IPCD_DB_REMOTE (ABI 3.5): never cleared while the connection lives: the
 *                  other side is on another host. A waker that finds it calls
 *                  the ring's remote hook (spsc.h) instead of waking anyone:
 *                  the hook pushes what changed over RDMA. Only the process's
 *                  own struct ipcd_spsc says whether a hook exists: the bit
 *                  alone, which any writer of the word can set, does nothing.
 */
#define IPCD_DB_FUTEX		(1u << 0)
#define IPCD_DB_EVENT		(1u << 1)
#define IPCD_DB_REMOTE		(1u << 2)

/* prod_lock / cons_lock: a holder's pid, and this bit while others wait. */
#define IPCD_RING_LOCK_WAITERS	(1u << 31)

#define IPCD_SPSC_MIN_CAPACITY	64u
#define IPCD_SPSC_MAX_CAPACITY	(1u << 30)
#define IPCD_REC_ALIGN		8u

/**
 * struct ipcd_rec_hdr - header of one record in an SPSC ring.
 * @len: payload bytes (W: producer).
 * @seq: the record's own position; anything else means "not yet" (W: producer).
 *
 * Stored as one 64-bit release store so the consumer never sees half of it.
 */
struct ipcd_rec_hdr {
	uint32_t len;
	uint32_t seq;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_rec_hdr) == 8);

/**
 * struct ipcd_spsc_shm - control block of one SPSC ring; data follows it.
 *
 * Four guarded groups: constants, producer-written, consumer-written, and the
 * doorbell. The doorbell words change only when a side goes to sleep or shuts
 * down, so the other side's check of them after every publish is a cache hit.
 */
struct ipcd_spsc_shm {
	/* constants, W: creator before the region is ready */
	uint32_t capacity;		/* data bytes, power of two */
	uint32_t flags;			/* IPCD_SPSC_F_* */
	uint32_t max_msg;		/* largest payload a record may carry */
	uint32_t reserved0[29];

	/* producer group */
	uint32_t tail __ipcd_guard_aligned;	/* W: producer. next record position */
	/*
	 * W: producers. The pid of the process writing now, 0: none, with
	 * IPCD_RING_LOCK_WAITERS when another sleeps on it (ABI 3.3). Several
	 * processes may share one end (fork: a pipe's writers); each takes
	 * it around its copy, never across a sleep (preload/data.c).
	 */
	uint32_t prod_lock;
	uint64_t prod_bytes;		/* W: producer. payload bytes ever written */
	uint64_t prod_msgs;		/* W: producer. records ever written */
	uint8_t reserved2[IPCD_CACHE_GUARD - 24];

	/* consumer group */
	uint32_t head __ipcd_guard_aligned;	/* W: consumer. position of the oldest record */
	uint32_t head_off;		/* W: consumer. bytes taken from that record (stream) */
	uint64_t cons_bytes;		/* W: consumer. payload bytes ever read */
	uint64_t cons_msgs;		/* W: consumer. records ever finished */
	uint32_t cons_lock;		/* W: consumers. as prod_lock, for the readers (ABI 3.3) */
	uint8_t reserved3[IPCD_CACHE_GUARD - 28];

	/* doorbell group: sleeper words (IPCD_DB_*) and shutdown flags */
	uint32_t cons_wait __ipcd_guard_aligned; /* W: consumer sets IPCD_DB_* to sleep; producer clears */
	uint32_t prod_wait;		/* W: producer sets IPCD_DB_* to sleep; consumer clears */
	uint32_t prod_closed;		/* W: producer (or monitor on its death). no more data */
	uint32_t cons_closed;		/* W: consumer (or monitor on its death). nobody reads */
	uint8_t reserved4[IPCD_CACHE_GUARD - 16];
};
IPCD_BUILD_ASSERT(offsetof(struct ipcd_spsc_shm, tail) == 1 * IPCD_CACHE_GUARD);
IPCD_BUILD_ASSERT(offsetof(struct ipcd_spsc_shm, head) == 2 * IPCD_CACHE_GUARD);
IPCD_BUILD_ASSERT(offsetof(struct ipcd_spsc_shm, cons_wait) == 3 * IPCD_CACHE_GUARD);
IPCD_BUILD_ASSERT(sizeof(struct ipcd_spsc_shm) == 4 * IPCD_CACHE_GUARD);

/*
 * ---------------------------------------------------------------------------
 * Multi-producer doorbell queue (shared request-queue mode)
 * ---------------------------------------------------------------------------
 *
 * @capacity slots of 64 bits: the low half is a sequence number, the high
 * half a 32-bit payload. Slot i starts as seq = i. A producer claims position
 * p by CAS on @tail when slot[p].seq == p, and publishes with one 64-bit CAS
 * from {p, 0} to {p + 1, payload}. The consumer takes slot[p] when its seq is
 * p + 1 and frees it as {p + capacity, 0}.
 *
 * A producer that dies or stalls between claim and publish leaves seq == p
 * while @tail > p. After a bounded time the consumer CASes {p, 0} to
 * {p + capacity, 0} and moves on. Both sides change the slot only by CAS, so
 * exactly one of "publish" and "skip" wins: a late producer learns that its
 * entry was dropped and enqueues again; nothing is ever half-written.
 *
 * Every process in shared mode can write this memory, so a payload proves
 * nothing about who wrote it: the queue carries doorbells only ("client slot
 * N has work"). Requests themselves travel in each client's private ring.
 */
#define IPCD_MPSC_MIN_SLOTS	8u
#define IPCD_MPSC_MAX_SLOTS	(1u << 20)

struct ipcd_mpsc_shm {
	uint32_t capacity;		/* W: creator. slots, power of two */
	uint32_t reserved0[31];

	uint32_t tail __ipcd_guard_aligned;	/* W: producers (CAS). next position to claim */
	uint8_t reserved1[IPCD_CACHE_GUARD - 4];

	uint32_t head __ipcd_guard_aligned;	/* W: consumer. informational (depth) */
	uint32_t cons_heartbeat;	/* W: consumer. bumped every poll batch */
	uint64_t skipped;		/* W: consumer. claims skipped after a stall */
	uint64_t corrupt;		/* W: consumer. slots found with an impossible seq */
	uint8_t reserved2[IPCD_CACHE_GUARD - 24];

	uint32_t cons_wait __ipcd_guard_aligned; /* W: consumer sets 1 to sleep; producers clear */
	uint8_t reserved3[IPCD_CACHE_GUARD - 4];

	uint64_t slot[];		/* W: producers and consumer, CAS only */
};
IPCD_BUILD_ASSERT(offsetof(struct ipcd_mpsc_shm, tail) == 1 * IPCD_CACHE_GUARD);
IPCD_BUILD_ASSERT(offsetof(struct ipcd_mpsc_shm, head) == 2 * IPCD_CACHE_GUARD);
IPCD_BUILD_ASSERT(offsetof(struct ipcd_mpsc_shm, cons_wait) == 3 * IPCD_CACHE_GUARD);
IPCD_BUILD_ASSERT(offsetof(struct ipcd_mpsc_shm, slot) == 4 * IPCD_CACHE_GUARD);

/*
 * ---------------------------------------------------------------------------
 * Per-process request channel and monitor-global state
 * ---------------------------------------------------------------------------
 */

/**
 * struct ipcd_client_ctl - control words of one process's request channel.
 *
 * Mapped only by that process and the monitor.
 */
struct ipcd_rdma_stats {
	uint32_t qps;			/* queue pairs to other hosts' processes now */
	uint32_t conns;			/* remote connections attached now */
	uint64_t writes;		/* RDMA WRITE chains posted (data, credits, flags) */
	uint64_t tx_bytes;		/* payload bytes written to other hosts */
	uint64_t rx_events;		/* write-with-immediate completions taken */
	uint64_t sleeps;		/* progress-thread sleeps on the completion channel */
	uint64_t errors;		/* failed work requests and queue pairs */
};

struct ipcd_client_ctl {
	uint32_t slot;			/* W: monitor. this client's index in its table */
	uint32_t gen;			/* W: monitor. generation of that index */
	/*
	 * W: the process's RDMA engine (ABI 3.5), relaxed stores; for
	 * ipcdctl only: nothing the monitor decides reads it.
	 */
	struct ipcd_rdma_stats rdma;
	/*
	 * ABI 3.6, W: monitor. Settings the library follows, here rather than
	 * in the global region, which every client maps writable: another
	 * process must not be able to change them for this one.
	 * @limit_action: what a call refused for one of the monitor's limits
	 * does (config limit_action, docs/limits.md): IPCD_LIMIT_KERNEL, it
	 * goes to the kernel unaccelerated; IPCD_LIMIT_ERROR, it fails with the
	 * kernel's errno for the limit. 0 (a monitor before 3.6): kernel.
	 * @cluster_up: as ipcd_global_ctl.cluster_up (kept there for 3.5
	 * libraries), which a library of 3.6 or later reads here.
	 */
	uint32_t limit_action;
	uint32_t cluster_up;
	uint32_t reserved0[14];

	/*
	 * Shared mode: 1 while a doorbell for this client is queued or being
	 * served. The client sets it (exchange) after queueing requests and
	 * rings only on a 0 -> 1 transition; the monitor clears it (exchange)
	 * before it drains the request ring. So each client has at most one
	 * doorbell in flight.
	 */
	uint32_t doorbell_pending __ipcd_guard_aligned;	/* W: client and monitor */
	uint8_t reserved1[IPCD_CACHE_GUARD - 4];

	/*
	 * The monitor sets this to 1 in every client before it sleeps; a client
	 * that queued work clears it (exchange) and, on 1 -> 0, signals the
	 * monitor's eventfd (wait.h protocol, S1/W1). Per client, so a process
	 * can only suppress wake-ups of its own requests.
	 */
	uint32_t mon_wait __ipcd_guard_aligned;	/* W: monitor sets, client clears */
	uint8_t reserved2[IPCD_CACHE_GUARD - 4];
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_rdma_stats) == 48);
IPCD_BUILD_ASSERT(offsetof(struct ipcd_client_ctl, doorbell_pending) == IPCD_CACHE_GUARD);
IPCD_BUILD_ASSERT(offsetof(struct ipcd_client_ctl, mon_wait) == 2 * IPCD_CACHE_GUARD);
IPCD_BUILD_ASSERT(sizeof(struct ipcd_client_ctl) == 3 * IPCD_CACHE_GUARD);

/* struct ipcd_conn_ctl.reset */
#define IPCD_CONN_RESET_A	(1u << 0)	/* A is gone abortively: B sees ECONNRESET */
#define IPCD_CONN_RESET_B	(1u << 1)	/* B is gone abortively: A sees ECONNRESET */

/*
 * struct ipcd_conn_ctl.kind (ABI 3.3): what the two ends are. A pipe's A end
 * is its write end, B its read end; only the A->B ring carries data, and an
 * end never resets (a reader gone is EPIPE for the writers).
 */
#define IPCD_CONN_KIND_TCP	0	/* CONNECT / ACCEPT */
#define IPCD_CONN_KIND_PIPE	1	/* IPCD_OP_PAIR: pipe(2) */
#define IPCD_CONN_KIND_UNIX	2	/* PAIR: socketpair(AF_UNIX, SOCK_STREAM); UCONNECT (3.4) */

/* struct ipcd_conn_ctl.passcred (ABI 3.4) */
#define IPCD_CONN_PASSCRED_A	(1u << 0)
#define IPCD_CONN_PASSCRED_B	(1u << 1)

/* struct ipcd_conn_ctl.closed (ABI 3.1) */
#define IPCD_CONN_CLOSED_A	(1u << 0)	/* A's last holder closed it */
#define IPCD_CONN_CLOSED_B	(1u << 1)

/* struct ipcd_conn_ctl.opened (ABI 3.7): IPCD_CONN_CLOSED_A/B, and these */
#define IPCD_CONN_LIVE_A	(1u << 2)	/* A opened it holding a life socket (ctl.h) */
#define IPCD_CONN_LIVE_B	(1u << 3)

/**
 * struct ipcd_conn_ctl - one connection's identity and fate, beside its rings.
 *
 * Mapped by the two endpoints; the monitor maps it only to record a death.
 * An endpoint that closes normally marks its own rings (prod_closed on the
 * ring it writes: the peer reads EOF; cons_closed on the ring it reads: the
 * peer's writes fail with EPIPE) and tells the monitor with IPCD_OP_CLOSE.
 * When a process dies, the monitor does the same for it, and sets the reset
 * bit when the kernel would have sent an RST (the dead side had unread data).
 */
struct ipcd_conn_ctl {
	uint64_t conn_id;		/* W: monitor at creation */
	uint8_t a_addr[16];		/* W: monitor. the connecting side's address */
	uint8_t b_addr[16];		/* W: monitor. the accepting side's address */
	uint16_t a_port;		/* W: monitor. host byte order */
	uint16_t b_port;		/* W: monitor */
	uint32_t kind;			/* W: monitor. IPCD_CONN_KIND_* (ABI 3.3; 0 before) */
	/*
	 * A pipe's size as F_GETPIPE_SZ reports it (0: 65536, the kernel's
	 * default), up to its ring's capacity. W: either end (F_SETPIPE_SZ).
	 */
	uint32_t pipe_size;
	/*
	 * AF_UNIX ends (ABI 3.4). @passcred: IPCD_CONN_PASSCRED_* when that end
	 * has SO_PASSCRED (W: that end's processes): its peer's writers then
	 * mark each change of writer, as the kernel attaches credentials to
	 * every write and never joins two writers' bytes in one read.
	 * @wcred[ring]: the credentials (pid, uid, gid) of the last mark in the
	 * A->B [0] or B->A [1] ring (W: its producers, under prod_lock).
	 * Trusted by nobody: a lie only moves where its own peer's reads stop.
	 */
	uint32_t passcred;
	uint32_t wcred[2][3];
	/*
	 * A connection to another host (ABI 3.5; all 0 for a local one). W:
	 * this host's monitor at creation, before the region is handed out.
	 * @remote_host: the other end's host, as the cluster table numbers it
	 * (1-based; 0: local). @peer_key: the other end's process as its
	 * monitor names it (0 until that end is accepted: the A side learns it
	 * from the acceptor's first message). @peer_conn: the other end's
	 * connection id at its host. Each side's region is its own: the A->B
	 * ring is A's copy of what it sends and B's copy of what it received,
	 * the two kept in step by RDMA WRITEs (docs/architecture.md, "Across
	 * hosts").
	 */
	uint32_t remote_host;
	uint32_t remote_pad;
	uint64_t peer_key;
	uint64_t peer_conn;
	/*
	 * ABI 3.6, W: monitor at creation. A lane kit's tag: ipcd_kit_tag()
	 * (siphash.h) of @conn_id under the key of its lane, which only the
	 * monitor and the listener know. The connector hands the kit over and
	 * can rewrite this region, but cannot tag another connection's id: the
	 * listener takes a kit only with the right tag. 0: not a kit.
	 */
	uint64_t kit_tag;
	/*
	 * ABI 3.7. IPCD_CONN_CLOSED_* bits (here: "opened"), and
	 * IPCD_CONN_LIVE_* if it held a life socket: W: that end's processes,
	 * each time one maps it. An end whose peer's life socket hung up
	 * (ctl.h) tells from it whether the peer ever had the connection:
	 * never, and the monitor that held it is gone, and the connector makes
	 * it the kernel's (preload/data.c); opened without a life socket (a
	 * lane kit given back to the backlog, a 3.6 acceptor), and the hang-up
	 * says nothing. Trusted by the two ends only, each about the other.
	 */
	uint32_t opened;
	uint32_t reserved0[3];

	/*
	 * IPCD_CONN_RESET_*: W: the monitor (a death) or that end's last
	 * holder (closed with bytes unread, as the kernel's RST).
	 */
	uint32_t reset __ipcd_guard_aligned;
	/*
	 * Processes holding each end (fork shares an end). W: that end's
	 * processes (atomic add on fork, subtract on their last close; the one
	 * that reaches 0 closes the end). The monitor sets 1 at creation and
	 * never trusts them: its own records decide a death.
	 */
	uint32_t holders_a;
	uint32_t holders_b;
	/*
	 * IPCD_CONN_CLOSED_*: W: that end's last holder, after its last touch
	 * of the rings, before its CLOSE request (ABI 3.1). It lets the monitor
	 * reuse a lane's region before a lazy CLOSE reaches it (monitor/conns.c
	 * "Lane regions"); a false bit only harms the pair that shares it.
	 */
	uint32_t closed;
	uint8_t reserved1[IPCD_CACHE_GUARD - 16];
};
IPCD_BUILD_ASSERT(offsetof(struct ipcd_conn_ctl, peer_key) == 88);
IPCD_BUILD_ASSERT(offsetof(struct ipcd_conn_ctl, reset) == IPCD_CACHE_GUARD);
IPCD_BUILD_ASSERT(offsetof(struct ipcd_conn_ctl, holders_a) == IPCD_CACHE_GUARD + 4);
IPCD_BUILD_ASSERT(offsetof(struct ipcd_conn_ctl, closed) == IPCD_CACHE_GUARD + 12);
IPCD_BUILD_ASSERT(sizeof(struct ipcd_conn_ctl) == 2 * IPCD_CACHE_GUARD);

/* struct ipcd_global_ctl.queue_mode */
#define IPCD_QMODE_PER_PROCESS	1
#define IPCD_QMODE_SHARED	2

/**
 * struct ipcd_global_ctl - the monitor's public state, mapped by every client.
 */
struct ipcd_global_ctl {
	uint32_t queue_mode;		/* W: monitor. IPCD_QMODE_* */
	uint32_t monitor_pid;		/* W: monitor */
	uint64_t start_ns;		/* W: monitor. CLOCK_MONOTONIC at start */
	/*
	 * ABI 3.5. Hosts of the RDMA cluster whose link is up now (0: none):
	 * a connect() to an address that is not local is worth asking the
	 * monitor (IPCD_CONNECT_REMOTE) only while this is non-zero.
	 */
	uint32_t cluster_up;
	uint32_t reserved0[27];

	uint64_t heartbeat __ipcd_guard_aligned; /* W: monitor. bumped by its loop */
	uint8_t reserved1[IPCD_CACHE_GUARD - 8];
};
IPCD_BUILD_ASSERT(offsetof(struct ipcd_global_ctl, heartbeat) == IPCD_CACHE_GUARD);
IPCD_BUILD_ASSERT(sizeof(struct ipcd_global_ctl) == 2 * IPCD_CACHE_GUARD);

/*
 * ---------------------------------------------------------------------------
 * Request and response envelopes (records of a client's request channel)
 * ---------------------------------------------------------------------------
 *
 * Opcodes and the meaning of @body per opcode are in proto.h. The monitor
 * copies a request out of the ring before it looks at any field, and rejects
 * a record whose length is not exactly sizeof(struct ipcd_req).
 */
#define IPCD_REQ_BODY		48

struct ipcd_req {
	uint16_t opcode;		/* IPCD_OP_* */
	uint16_t len;			/* bytes of @body in use */
	uint32_t flags;
	uint64_t cookie;		/* echoed in the response */
	uint8_t body[IPCD_REQ_BODY];
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_req) == IPCD_CACHE_LINE);

struct ipcd_resp {
	uint16_t opcode;		/* the request's opcode */
	uint16_t len;			/* bytes of @body in use */
	int32_t status;			/* 0 or -errno */
	uint64_t cookie;		/* the request's cookie */
	uint8_t body[IPCD_REQ_BODY];
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_resp) == IPCD_CACHE_LINE);

#endif /* IPCD_SHM_ABI_H */
