/* SPDX-License-Identifier: MIT */
/*
 * engine.h - between libipcd.so (preload/remote.c) and its RDMA engine,
 * libipcd-rdma.so (rdma/engine.c), which the preload loads with dlopen() on
 * a process's first connection to another host. The engine's one exported
 * symbol is IPCD_ENGINE_SYMBOL, a struct ipcd_engine_ops.
 *
 * A remote connection's region is the same as a local one's (shm_abi.h); the
 * other host's process has its own. The engine keeps the two in step:
 *
 *   this end publishes into its tx ring    ->  the ring's remote hook posts
 *                                              RDMA WRITEs of the new records
 *                                              into the peer's copy, then a
 *                                              WRITE WITH IMMEDIATE of the
 *                                              producer's indices
 *   this end consumes from its rx ring     ->  the hook writes the consumer's
 *                                              indices (the credits) back
 *   an immediate arrives (progress thread) ->  whoever sleeps on that ring
 *                                              here is woken, as a local peer
 *                                              would wake it
 *
 * so data.c, epoll.c and the rest of the preload cannot tell a remote ring
 * from a local one. One RC queue pair per pair of processes carries all
 * their connections; the monitors carry the queue pair's and the regions'
 * addresses (proto.h "Across hosts").
 */
#ifndef IPCD_ENGINE_H
#define IPCD_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ipcd/shm_abi.h>
#include <ipcd/spsc.h>

#define IPCD_ENGINE_VERSION	1
#define IPCD_ENGINE_SYMBOL	"ipcd_engine_ops_v1"
#define IPCD_ENGINE_LIB		"libipcd-rdma.so"

/* What the preload gives the engine once (ipcd_engine_ops.init). */
struct ipcd_engine_env {
	int chan_fd;			/* the RDMA channel (proto.h IPCD_OP_RATTACH); engine's */
	uint32_t host;			/* this host's number */
	uint64_t key;			/* this process's key */
	uint8_t addr[16];		/* this host's cluster address: its device */
	struct ipcd_rdma_stats *stats;	/* in the process's client region (for ipcdctl) */
	uint32_t spin_ns;		/* the progress thread's spin before it sleeps */
	/* The preload's logger: one line, what and why. */
	void (*log)(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
};

/*
 * One end of a remote connection, as the preload holds it. The engine keeps
 * the pointer from attach to detach; the preload keeps the struct alive.
 */
struct ipcd_engine_conn {
	uint64_t conn_id;
	struct ipcd_conn_ctl *ctl;
	struct ipcd_spsc *tx;		/* the ring this end writes */
	struct ipcd_spsc *rx;		/* the ring this end reads */
	void *base;			/* the region's mapping (the engine registers it) */
	size_t size;
	uint64_t off[3];		/* area offsets (IPCD_AREA_CONN_*) */
	bool acceptor;			/* the B end */
	int wake_fd;			/* a dup of this end's wake eventfd; the engine's */
	void *priv;			/* the engine's */
};

struct ipcd_engine_ops {
	uint32_t version;		/* IPCD_ENGINE_VERSION */
	/* Open the device, start the progress thread. 0, or -errno (the preload then stays on TCP). */
	int (*init)(const struct ipcd_engine_env *env);
	/*
	 * Take end @c: its rings' hooks are set, its region registered, and
	 * the queue pair to its peer is made or reused. 0, or -errno: the
	 * preload then closes the end (the peer sees a reset).
	 */
	int (*attach)(struct ipcd_engine_conn *c);
	/*
	 * The end's last close, after the preload marked its rings closed:
	 * the engine takes over the mapping (it unmaps it once the peer can no
	 * longer write into it) and @c may be freed on return.
	 */
	void (*detach)(struct ipcd_engine_conn *c);
	/* In a forked child: no progress thread here; the parent's still serves the ends. */
	void (*atfork_child)(void);
	/* True if the engine can take new connections in this process now. */
	bool (*usable)(void);
};

#endif /* IPCD_ENGINE_H */
