/* SPDX-License-Identifier: MIT */
/*
 * attach.h - a process registers with the monitor and maps its queues.
 *
 * Used by the preload library, and by tests and benchmarks that talk to a
 * real monitor. Calls return 0 or -errno and never touch errno.
 */
#ifndef IPCD_ATTACH_H
#define IPCD_ATTACH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ipcd/ctl.h>
#include <ipcd/mpsc.h>
#include <ipcd/reqq.h>
#include <ipcd/shm.h>
#include <ipcd/spsc.h>

/**
 * struct ipcd_attach - one registration with the monitor.
 * @sock:    the control socket; closing it (or dying) unregisters.
 * @welcome: what the monitor said (queue mode, client id, slot).
 * @cl:      the request channel: ipcd_reqq_call(&a->cl, ...).
 */
struct ipcd_attach {
	int sock;
	int wake_fd;
	struct ipcd_region client_reg;
	struct ipcd_region global_reg;
	struct ipcd_global_ctl *gctl;
	struct ipcd_mpsc db;
	struct ipcd_reqq_client cl;
	struct ipcd_ctl_welcome welcome;
};

#define IPCD_CTL_MAX_FDS	8	/* descriptors ipcd_ctl_recv() takes at most */

/**
 * ipcd_ctl_recv - one message from a control socket and the descriptors that
 * came with it (SCM_RIGHTS, received close-on-exec).
 * @flags:   extra recvmsg() flags (MSG_DONTWAIT).
 * @fds:     receives up to @max_fds (<= IPCD_CTL_MAX_FDS) descriptors; *@nfds
 *           their number. The caller owns them.
 *
 * Returns the message length (0: EOF), -EMSGSIZE if the message or its
 * descriptors did not fit (whatever arrived is closed), or -errno.
 */
ssize_t ipcd_ctl_recv(int sock, void *buf, size_t len, int flags, int *fds,
		      unsigned int max_fds, unsigned int *nfds);

/**
 * ipcd_ctl_path - the control socket to use: @path, else $IPCD_SOCKET, else
 * the default.
 */
const char *ipcd_ctl_path(const char *path);

/**
 * ipcd_attach - connect to the monitor at ipcd_ctl_path(@path) and register.
 * @comm: a name shown by ipcdctl (NULL: this process's name).
 * @why:  receives a one-line reason on failure.
 *
 * Returns 0, -ENOENT/-ECONNREFUSED (no monitor), -EPROTONOSUPPORT (ABI
 * mismatch; @why names both versions), the monitor's refusal, or -EPROTO.
 */
int ipcd_attach(const char *path, const char *comm, struct ipcd_attach *a, char *why,
		size_t whylen);

/** ipcd_detach - unregister (close the control socket) and unmap. */
void ipcd_detach(struct ipcd_attach *a);

/**
 * ipcd_attach_recv_msg - receive one monitor message (ctl.h, struct
 * ipcd_ctl_msg) from the control socket.
 * @fds:        receives the descriptors that came with it (close-on-exec):
 *              IPCD_CTL_CONN_NFDS for IPCD_CTL_CONN_FD (IPCD_CTL_CONN_FD_*
 *              order), one for IPCD_CTL_LISTEN_FD and IPCD_CTL_LANE_FD;
 *              unused entries are -1. The caller owns them.
 * @timeout_ms: negative waits forever, 0 only looks.
 *
 * Returns 0, -ETIMEDOUT (nothing arrived), -ECONNRESET (the monitor closed
 * the socket: this process is no longer registered), -EPROTO (a message that
 * is not one of ours: wrong size, magic or type, or the wrong number of
 * descriptors; any that came with it are closed), or -errno.
 */
int ipcd_attach_recv_msg(struct ipcd_attach *a, struct ipcd_ctl_msg *m,
			 int fds[IPCD_CTL_CONN_NFDS], int timeout_ms);

/**
 * struct ipcd_conn - one end of an accelerated connection (IPCD_REGION_CONN).
 * @tx:  the ring this end writes (A2B for the connector, B2A for the acceptor).
 * @rx:  the ring this end reads.
 * @ctl: identity and the monitor's reset bits (read ipcd_conn_ctl.reset with
 *       acquire after seeing the peer's prod_closed).
 * @wake_self: this end's wake eventfd (ctl.h); the caller may take it
 *       (set -1), e.g. to put it under the application's fd number.
 * @wake_peer: the peer's wake eventfd: @tx and @rx signal it.
 * @conn_id: copied from @ctl at open: the id to send in IPCD_OP_CLOSE.
 */
/*
 * The library's own fds (a peer's wake eventfd, a hold token, a kernel
 * socket behind an end): marked so that close() by the application (a
 * spawner closing every fd before exec, as python's subprocess does with
 * pass_fds) leaves them open. A mark is only a hint: close() confirms it
 * against the library's state (sock.c).
 */
void ipcd_fd_hide(int fd, bool on);
bool ipcd_fd_marked(int fd);

struct ipcd_conn {
	struct ipcd_region reg;
	struct ipcd_conn_ctl *ctl;
	struct ipcd_spsc tx;
	struct ipcd_spsc rx;
	uint64_t conn_id;
	int wake_self;
	int wake_peer;
	int hold_fd;			/* this end's hold token (IPCD_OP_HOLD); -1: none */
	int live_fd;			/* this end's life socket (ctl.h, 3.7); -1: none */
	uint32_t peer_lost;		/* enum ipcd_peer: what its hang-up meant */
	bool acceptor;
	dev_t map_dev;			/* the region's memfd, when its mapping may be */
	ino_t map_ino;			/* kept for the next connection in it; 0: not */
	void *remote;			/* an end to another host: its engine's (remote.c) */
};

/*
 * Set by the preload's remote.c: ipcd_conn_release() of an end to another
 * host hands its mapping to the RDMA engine instead of unmapping it (the
 * peer may still write into it until it has seen the end closed).
 */
extern void (*ipcd_conn_remote_release)(struct ipcd_conn *c);

/**
 * ipcd_conn_open - map the connection region of a CONN_FD message and attach
 * this end's rings.
 * @fds:         the message's descriptors (IPCD_CTL_CONN_FD_* order).
 * @region_size: the message's region_size; the memfd must have that size.
 * @acceptor:    false for the connecting side (A), true for the accepting side (B).
 *
 * Always takes the descriptors (closed on failure; the region's memfd is
 * closed once mapped). Returns 0, -EPROTO (not a valid connection region:
 * bad header, areas, rings or conn_ctl), or -errno. The wake fds come from
 * the (trusted) monitor and are not checked.
 */
int ipcd_conn_open(const int fds[IPCD_CTL_CONN_NFDS], uint64_t region_size, bool acceptor,
		   struct ipcd_conn *out);
/*
 * ipcd_conn_open_id - ipcd_conn_open for connection @expect_id (a lane's kit):
 * the region must carry that id, and its mapping may come from, and go back
 * to, this process's cache of idle mappings (ipcd_conn_release).
 */
#define IPCD_MCACHE_SLOTS	16	/* idle mappings a process keeps (attach.c) */
int ipcd_conn_open_id(const int fds[IPCD_CTL_CONN_NFDS], uint64_t region_size, bool acceptor,
		      uint64_t expect_id, struct ipcd_conn *out);
/* fork child: the cache's lock may have been held by a thread of the parent. */
void ipcd_mcache_atfork_child(void);

/**
 * ipcd_conn_close - this end is done: prod_closed on @tx (the peer reads EOF
 * once drained), cons_closed on @rx (the peer's writes fail with EPIPE),
 * then unmap and close the wake fds still held. The caller tells the
 * monitor with IPCD_OP_CLOSE {conn_id}. Does nothing on a closed or zeroed
 * struct.
 */
void ipcd_conn_close(struct ipcd_conn *c);

/*
 * The peer's end, as its life socket (ctl.h) tells: for the deaths no
 * monitor reports (a connection made by a monitor since restarted, or one
 * a monitor held unaccepted when it died: docs/reliability.md, "Monitor
 * restarts").
 */
enum ipcd_peer {
	IPCD_PEER_HERE,		/* held, or closed and marked so, or no life socket */
	IPCD_PEER_GONE,		/* every holder gone, its end not marked: a death */
	IPCD_PEER_NEVER,	/* hung up before any process of the peer's opened it */
	IPCD_PEER_MOVED,	/* (set by the socket layer) being made the kernel's */
	IPCD_PEER_DEAF,		/* the peer opened it without a life socket: not watched */
};

/**
 * ipcd_conn_peer_state - one poll() of @c->live_fd: IPCD_PEER_HERE at once
 * for an end without one, or whose hang-up was handled already.
 */
enum ipcd_peer ipcd_conn_peer_state(struct ipcd_conn *c);

/**
 * ipcd_conn_peer_mark - close the peer's end as the monitor closes a dead
 * process's (EOF after what it wrote, EPIPE for our writes, a reset if it
 * left bytes unread) and wake this process's sleepers on the rings.
 */
void ipcd_conn_peer_mark(struct ipcd_conn *c);


/*
 * How long a sleep on an end with a life socket lasts before its peer is
 * checked (data.c, wait.c, epoll.c): the bound on noticing a death that no
 * monitor reports; it costs an idle sleeper one wake-up and one poll().
 */
#define IPCD_LIVE_CHECK_NS	1000000000ll

/**
 * ipcd_conn_release - unmap and close without marking the rings: another
 * process still holds this end (fork), or the caller marked them itself.
 */
void ipcd_conn_release(struct ipcd_conn *c);

#endif /* IPCD_ATTACH_H */
