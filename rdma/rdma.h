/* SPDX-License-Identifier: MIT */
/*
 * rdma.h - IPC-Direct's cross-host transport primitives (rdma-core).
 *
 * Two users, two parts:
 *
 *  - verbs.c (libipcd-rdma.so, loaded by the preload with dlopen on the first
 *    remote connection, so that programs that never leave the host never
 *    load libibverbs): one device context per process, a protection domain,
 *    one completion queue with a completion channel, RC queue pairs brought
 *    up from an out-of-band exchange of struct ipcd_rqp_info (the two
 *    monitors carry it), and memory registration.
 *
 *  - link.c (ipcd-monitor): the monitors of a cluster talk to each other over
 *    RDMA CM, one reliable connection per pair of hosts, carrying fixed-size
 *    frames (struct ipcd_rlink_frame) with SEND/RECV. Everything is driven
 *    from the monitor's epoll: ipcd_rlink_fds() names the fds to watch and
 *    ipcd_rlink_poll() does the work they signal, never blocking.
 *
 * Nothing here knows sockets or rings; preload/remote.c and monitor/cluster.c
 * put them together.
 */
#ifndef IPCD_RDMA_H
#define IPCD_RDMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ipcd/compiler.h>

struct ibv_context;
struct ibv_pd;
struct ibv_cq;
struct ibv_qp;
struct ibv_mr;
struct ibv_comp_channel;

/* ------------------------------------------------------------------------ */
/* verbs.c: device, queue pairs, registration                                */
/* ------------------------------------------------------------------------ */

/**
 * struct ipcd_rdev - one process's RDMA device context. Fields are public so
 * the data path can post and poll without a call per operation.
 */
struct ipcd_rdev {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_comp_channel *chan;	/* fd is nonblocking */
	struct ibv_cq *cq;		/* one CQ for every QP's sends and receives */
	uint8_t port;			/* port number (1-based) */
	uint8_t gid_index;		/* the GID for the local address (RoCE v2 first) */
	uint8_t mtu;			/* enum ibv_mtu: the port's active MTU */
	uint8_t pad;
	uint16_t lid;			/* InfiniBand; 0 on RoCE */
	uint16_t pad2;
	uint8_t gid[16];		/* that GID's raw bytes */
	uint32_t max_inline;		/* inline bytes a QP of ours can take (>= 64) */
	char name[64];			/* ibv_get_device_name() */
};

/**
 * ipcd_rdev_open - open the device that carries local address @addr.
 * @addr: IPv6 or IPv4-mapped IPv6 (network order) of this host; NULL: the
 *        first device with an active port.
 * @cqe:  completion queue entries.
 *
 * Picks the first device/port whose GID table holds @addr (a RoCE v2 GID
 * before a RoCE v1 one; for InfiniBand, a port whose IPoIB netdev has the
 * address). Calls ibv_fork_init() first unless the kernel makes it
 * unnecessary (ibv_is_fork_initialized() == IBV_FORK_UNNEEDED). Returns 0, or
 * -ENODEV (no device, or none with that address), or -errno of the first
 * verbs call that failed; in every failure case it logs nothing and leaves
 * nothing open (the caller decides how loud a fallback to TCP is).
 */
int ipcd_rdev_open(const uint8_t addr[16], uint32_t cqe, struct ipcd_rdev **out);
void ipcd_rdev_close(struct ipcd_rdev *d);
/* Describe the last ipcd_rdev_open failure of this thread (static string). */
const char *ipcd_rdev_why(void);

/**
 * struct ipcd_rqp_info - what the other end needs to reach one RC QP.
 * Wire format (both monitors copy it as bytes): little endian fields.
 */
struct ipcd_rqp_info {
	uint32_t qpn;
	uint32_t psn;			/* 24 bits */
	uint8_t gid[16];
	uint16_t lid;
	uint8_t mtu;			/* enum ibv_mtu */
	uint8_t pad;
	uint32_t pad2;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_rqp_info) == 32);

/**
 * ipcd_rqp_create - an RC QP on @d in state INIT (both send and receive on
 * @d->cq), with remote write access, @max_send send and @max_recv receive
 * work requests, one SGE each way and at least 64 bytes inline.
 * @pd:   its protection domain; NULL: @d->pd. A QP reaches only the memory
 *        registered in its own PD: one PD per peer keeps a peer out of the
 *        memory of every other peer's connections.
 * @self: filled with its info (random PSN).
 * Returns the QP, or NULL with errno.
 */
struct ibv_qp *ipcd_rqp_create(struct ipcd_rdev *d, struct ibv_pd *pd, uint32_t max_send,
			       uint32_t max_recv, struct ipcd_rqp_info *self);

/**
 * ipcd_rqp_connect - INIT -> RTR -> RTS towards @peer (the remote QP's info,
 * untrusted: a bad QPN or GID only makes this QP fail). Uses the smaller of
 * the two MTUs, a GRH (always; RoCE needs it), timeout 14, retry_cnt 7,
 * rnr_retry 7, 16 outstanding reads/atomics. Returns 0 or -errno.
 */
int ipcd_rqp_connect(struct ipcd_rdev *d, struct ibv_qp *qp, const struct ipcd_rqp_info *self,
		     const struct ipcd_rqp_info *peer);

/* Move @qp to ERR (flushes its work requests) and destroy it. */
void ipcd_rqp_destroy(struct ibv_qp *qp);

/**
 * ipcd_rdev_reg - register @len bytes at @addr in @pd (NULL: @d->pd): local
 * write, plus remote write when @remote. NULL with errno on failure.
 */
struct ibv_mr *ipcd_rdev_reg(struct ipcd_rdev *d, struct ibv_pd *pd, void *addr, size_t len,
			     bool remote);
void ipcd_rdev_dereg(struct ibv_mr *mr);

/*
 * Completion channel: arm the CQ (ibv_req_notify_cq, any completion), and
 * after the channel fd polled readable, take and ack its event. Both return
 * 0 or -errno; ipcd_rdev_take_event returns -EAGAIN when there was none.
 */
int ipcd_rdev_arm(struct ipcd_rdev *d);
int ipcd_rdev_take_event(struct ipcd_rdev *d);
int ipcd_rdev_fd(const struct ipcd_rdev *d);

/* ------------------------------------------------------------------------ */
/* link.c: monitor-to-monitor frames over RDMA CM                           */
/* ------------------------------------------------------------------------ */

#define IPCD_RLINK_FRAME	256	/* bytes per frame, fixed */
#define IPCD_RLINK_MAX_PEERS	64
#define IPCD_RLINK_DEPTH	256	/* frames in flight per direction and link */

/* A frame is opaque bytes to link.c; monitor/cluster.c gives it meaning. */
struct ipcd_rlink_frame {
	uint8_t b[IPCD_RLINK_FRAME];
};

struct ipcd_rlink;

/* Events ipcd_rlink_poll() reports, through these callbacks. */
struct ipcd_rlink_cb {
	/* Peer @peer's link is up (it was connected, by either side). */
	void (*up)(void *arg, unsigned int peer);
	/* It went down (disconnect, error, peer gone); pending frames are lost. */
	void (*down)(void *arg, unsigned int peer, const char *why);
	/* A frame from @peer; @f is valid only during the call. */
	void (*frame)(void *arg, unsigned int peer, const struct ipcd_rlink_frame *f);
	void *arg;
};

/**
 * ipcd_rlink_open - listen on @addr:@port (RDMA CM; @addr IPv6 or IPv4-mapped,
 * network order) for the other monitors, and prepare links to @npeers peers
 * (@peer_addr[i], @peer_port[i]). A link to peer i is initiated by the side
 * with the smaller (address, port) (compared as 16 address bytes, then the
 * port). The connector puts its own listen address and port in the CM
 * private data; the acceptor takes it only if that is one of its peers and
 * the address is the one the connection came from (anyone else is rejected
 * and counted). Nothing blocks: connects are started by ipcd_rlink_poll(),
 * and retried every @retry_ms while a link is down. A peer that connects
 * while its link is up replaces the old link (a restarted monitor): down()
 * for the old one, then up().
 * Returns 0 or -errno (-ENODEV: no RDMA device carries @addr); *@why
 * then names the step that failed.
 */
int ipcd_rlink_open(const uint8_t addr[16], uint16_t port, unsigned int npeers,
		    const uint8_t (*peer_addr)[16], const uint16_t *peer_port, uint32_t retry_ms,
		    const struct ipcd_rlink_cb *cb, struct ipcd_rlink **out, const char **why);
void ipcd_rlink_close(struct ipcd_rlink *l);

/* The fds the caller's epoll must watch for EPOLLIN (at most 4; returns count). */
int ipcd_rlink_fds(const struct ipcd_rlink *l, int *fds, int max);

/**
 * ipcd_rlink_poll - do what is pending: CM events, completions, retries whose
 * time came. Never blocks. Returns the milliseconds until it needs to be
 * called again without an fd event (a retry timer), or -1 for none.
 */
int ipcd_rlink_poll(struct ipcd_rlink *l);

/*
 * ipcd_rlink_send - queue one frame to peer @peer. 0, -ENOTCONN (link
 * down), or -ENOBUFS (@IPCD_RLINK_DEPTH frames in flight: the caller drops
 * or retries later). Frames to one peer arrive in order, once each, while
 * the link stays up.
 */
int ipcd_rlink_send(struct ipcd_rlink *l, unsigned int peer, const struct ipcd_rlink_frame *f);
bool ipcd_rlink_is_up(const struct ipcd_rlink *l, unsigned int peer);
/*
 * Drop peer @peer's link now (down() with @why, then retries as for any
 * loss): the caller's keepalive found it silent. Not from a callback.
 */
void ipcd_rlink_drop(struct ipcd_rlink *l, unsigned int peer, const char *why);

/* Counters for ipcdctl. */
struct ipcd_rlink_stats {
	uint64_t frames_tx;
	uint64_t frames_rx;
	uint64_t connects;		/* links that came up */
	uint64_t drops;			/* links that went down */
	uint64_t rejects;		/* unknown connectors refused */
};
void ipcd_rlink_stats(const struct ipcd_rlink *l, unsigned int peer, struct ipcd_rlink_stats *s);

#endif /* IPCD_RDMA_H */
