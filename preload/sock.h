/* SPDX-License-Identifier: MIT */
/*
 * sock.h - accelerated sockets inside libipcd.so (internal, hidden symbols).
 *
 * An accelerated socket is a struct ipcd_sock reached from the fd table
 * (fdtab.c). The application's fd number is always a real kernel fd, so fd
 * numbers never collide and poll/epoll/select/close/dup keep working:
 *
 *   state        the application's fd is            calls go to
 *   FRESH        the kernel TCP socket itself        the kernel (bind is
 *                                                    recorded for listen)
 *   LISTEN       an epoll fd holding the kernel      accept: lanes, monitor
 *                listening socket (@kfd), the        backlog and kernel; the
 *                monitor's accept eventfd (@lfd)     fd is readable if any is
 *                and its lanes' sockets (lanes.c)
 *   CONN         this end's wake eventfd             the connection's rings
 *
 * A CONN fd's eventfd is kept "level": while the application may wait in the
 * kernel (after a recv that returned EAGAIN, or inside our poll), the ring's
 * doorbell word carries IPCD_DB_EVENT and the peer writes the eventfd when
 * it publishes; so an un-interposed epoll on the fd still wakes. Blocking
 * calls without a timeout sleep on the futex instead (IPCD_DB_FUTEX), which
 * the kernel restarts after an SA_RESTART handler, exactly as a socket call.
 *
 * Lifetime: one reference per fd (dup adds one); the last close tears the
 * socket down. After fork both processes hold the end (holders_* in the
 * shared struct ipcd_conn_ctl); the last holder marks the rings closed.
 */
#ifndef IPCD_SOCK_H
#define IPCD_SOCK_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <ipcd/proto.h>

#include "attach.h"
#include "interpose.h"

#define IPCD_FDTAB_MAX		65536	/* fds at or above this are not accelerated */
#define IPCD_SOCK_OPTS		16	/* integer options remembered per socket */
#define IPCD_LLANES		64	/* lanes one listening socket takes (lanes.c) */

enum ipcd_sk_state {
	IPCD_SK_FRESH,
	IPCD_SK_LISTEN,
	IPCD_SK_CONN,
};

struct ipcd_sockopt {
	int level;
	int name;
	int val;
};

/* A lock that costs one exchange when uncontended (the common case). */
struct ipcd_lock {
	uint32_t word;		/* 0 free, 1 held, 2 held with waiters (futex) */
};

/* An adaptive spin budget (data.c ipcd_spin). */
struct ipcd_spin {
	uint32_t ns;
	uint32_t misses;
};

struct ipcd_sock {
	atomic_uint refs;		/* fds of this process naming it */
	int domain;			/* AF_INET, AF_INET6; AF_UNIX (socketpair); AF_UNSPEC: a pipe */
	uint8_t state;			/* enum ipcd_sk_state */
	uint8_t kind;			/* CONN: IPCD_CONN_KIND_* (shm_abi.h) */
	atomic_bool nonblock;		/* the application's O_NONBLOCK */
	bool bound;			/* FRESH: bound in the kernel */
	atomic_bool shut_rd;
	atomic_bool shut_wr;
	atomic_bool reset_told;		/* ECONNRESET reported once */
	atomic_bool rst_sent;		/* wrote after the peer closed: the kernel's RST came back */
	atomic_bool connect_pending;	/* CONN: EINPROGRESS answered, no repeat yet */
	atomic_bool rst_told;		/* ... and its EPIPE was reported (EPOLLERR until then) */
	atomic_uint pollers;		/* threads inside our poll on this fd's eventfd */

	/* options */
	int64_t rcvtimeo_ns;		/* 0: none (SO_RCVTIMEO) */
	int64_t sndtimeo_ns;
	int sndbuf;			/* as the application set them; 0: default */
	int rcvbuf;
	struct linger linger;
	unsigned int nopts;
	struct ipcd_sockopt opts[IPCD_SOCK_OPTS];

	/* addresses: IPv6 or IPv4-mapped, port in host order */
	uint8_t self_addr[16];
	uint16_t self_port;
	uint8_t peer_addr[16];
	uint16_t peer_port;

	/* LISTEN */
	int kfd;			/* the kernel listening socket (hidden fd) */
	int lfd;			/* the monitor's accept eventfd (hidden fd) */
	int lhold;			/* its hold token (IPCD_HOLD_LISTENER; hidden fd); -1: none */
	uint32_t bind_id;
	uint64_t accept_token;		/* proto.h struct ipcd_accept_req */
	atomic_uint accept_turn;	/* alternates kernel / accelerated */
	atomic_bool kernel_seen;	/* a peer that is not preloaded came */
	atomic_bool accel_off;		/* LISTEN: the monitor cannot serve our accepts (sock.c) */
	bool forked;			/* LISTEN: other processes may hold it (fork) */
	struct ipcd_spin accept_spin;	/* LISTEN: blocking accept spins first */
	int backlog;			/* LISTEN: as the application asked */
	struct ipcd_llanes *lanes;	/* LISTEN: its lanes (lanes.c); NULL: none yet */
	bool exec_released;		/* CONN: exec dropped our hold (undone if it fails) */
	bool hold_asked;		/* a hold token was asked for (fdtab.c, exec.c) */
	bool exec_keep;			/* CONN: handed to the new image by an exec (exec.c) */
	atomic_bool moved;		/* CONN: made the kernel's (ipcd_sock_settle) */
	uint64_t mon_id;		/* CONN: the monitor at connect (ipcd_state_monitor_id) */
	_Atomic uint64_t live_at;	/* CONN: its peer's life socket last looked at */
	uint64_t tx_at;			/* CONN, pipe: its last write (tx_lock; data.c) */
	uint32_t ho_idx;		/* exec.c: its slot + 1 while a handover is prepared */

	/* named AF_UNIX (unix.c) */
	uint64_t ukey;			/* the bound name's key (proto.h ULISTEN) */
	bool ukey_ok;			/* ... taken at bind() */
	bool ulisten;			/* FRESH: listening, registered (token: @lhold) */
	bool uname;			/* FRESH: bound to a name of ours (a failed connect) */

	/* CONN */
	struct ipcd_conn conn;
	struct ipcd_lock rx_lock;
	struct ipcd_lock tx_lock;
	struct ipcd_spin rx_spin;	/* adaptive spin budgets (data.c ipcd_spin) */
	struct ipcd_spin tx_spin;

	/* epoll.c: this socket's registrations in epoll sets (under its registry lock) */
	struct ipcd_ep_item *ep_items;
	atomic_uint ep_nregs;		/* its items in sets of ours (read without the lock) */
	atomic_uint tx_short;		/* CONN: sends that found the ring full (EPOLLOUT edges) */
	struct ucred rx_cred;		/* AF_UNIX: the credentials of the last mark read */
	bool rx_cred_ok;		/* ... if one was (else the kernel's SO_PEERCRED) */

	/* every live socket of the process (fork walks them) */
	struct ipcd_sock *next;
	struct ipcd_sock *prev;
};

/* ---- unix.c: named AF_UNIX stream sockets --------------------------------------- */

/* bind() of AF_UNIX socket @s at @fd succeeded: the name's key. */
void ipcd_unix_bound(struct ipcd_sock *s, int fd);
/* listen() on a FRESH AF_UNIX socket: the kernel's, then registered. */
int ipcd_unix_listen(struct ipcd_sock *s, int fd, int n);
/* connect() of a FRESH AF_UNIX socket: the kernel's, through a region if registered. */
int ipcd_unix_connect(struct ipcd_sock *s, int fd, const struct sockaddr *sa, socklen_t len);
/* accept4() on an AF_UNIX listener (FRESH): a connection of ours is claimed. */
int ipcd_unix_accept(struct ipcd_sock *l, int fd, struct sockaddr *addr, socklen_t *addrlen,
		     int flags);
/*
 * Before an exec of an image that will not load this library: the AF_UNIX
 * listeners it inherits leave the registry (connectors would wait for a
 * claim that never comes).
 */
void ipcd_unix_before_exec(void);
/*
 * getsockname (@peer false) / getpeername of AF_UNIX socket @s at @fd, the
 * kernel's answer except that a name a connector of ours bound is reported
 * unbound (wherever the end went since: exec, SCM_RIGHTS).
 */
int ipcd_unix_name(struct ipcd_sock *s, int fd, bool peer, struct sockaddr *addr,
		   socklen_t *len);

/* ---- anc.c: control data on socketpair ends --------------------------------- */

/* AF_UNIX end @s's SO_PASSCRED (@on) for its peer's writers to see (ctl->passcred). */
void ipcd_unix_passcred(struct ipcd_sock *s, bool on);

/* What a mark's kernel message says of itself (its sender's claim). */
struct ipcd_anc_info {
	bool fds;			/* it carries fds: a read ends after its data */
	struct ucred cred;		/* the credentials it claims */
};

/*
 * sendmsg's control data of @msg over @s's kernel socket: 0 (and @sent) or
 * an errno.
 */
int ipcd_anc_send(struct ipcd_sock *s, const struct msghdr *msg, bool nb,
		  struct ipcd_anc_info *sent);
/*
 * A writer's first bytes to a reader with SO_PASSCRED: a message with no
 * control data, to which the kernel attaches the writer's credentials.
 */
int ipcd_anc_send_creds(struct ipcd_sock *s, bool nb, struct ipcd_anc_info *sent);
/* At a mark: what its kernel message claims, without taking it. 0 or -EPROTO. */
int ipcd_anc_peek(struct ipcd_sock *s, struct ipcd_anc_info *in);
/*
 * At a mark: the kernel message that goes with it, its control data into
 * @msg's buffer (@cap bytes; @msg NULL: its fds closed, as read() does).
 * True if the kernel gave credentials with it (*@cred).
 */
bool ipcd_anc_take(struct ipcd_sock *s, struct msghdr *msg, socklen_t cap, int flags, bool peek,
		   struct ucred *cred);

/* ---- hidden fds ----------------------------------------------------------- */

/*
 * The descriptors the library keeps for itself (the monitor's socket, wake
 * eventfds, hold tokens, lanes, kernel listeners): close_range() and
 * closefrom() of a whole range, as a spawning program calls them before
 * exec (python's subprocess), must leave them open. Collected when asked.
 */
struct ipcd_fdset {
	int *fds;
	size_t n;
	size_t max;
};
void ipcd_hidden_fds(struct ipcd_fdset *h);	/* fdtab.c: all of them */
/* Is @fd one of them (marked, and confirmed)? close() leaves it open then. */
bool ipcd_fd_hidden(int fd);
/*
 * The application dup2()s onto @fd, one of them: a socket's fd there moves
 * to another number first (the library would otherwise write its eventfd
 * counts into the application's file). The monitor's socket is not moved:
 * the registration is lost then, as when the application closes it.
 */
void ipcd_fd_relocate(int fd);
void ipcd_state_hidden_fds(struct ipcd_fdset *h);
/* Is @fd one of the registration's? Move it to another number (true if it was). */
bool ipcd_state_fd(int fd);
bool ipcd_state_fd_relocate(int fd);
void ipcd_lanes_hidden_fds(struct ipcd_fdset *h);
void ipcd_llanes_hidden_fds(struct ipcd_sock *s, struct ipcd_fdset *h);

/* ---- pipe.c --------------------------------------------------------------- */

/* An accelerated fd is now at @fd (0, 1 or 2): its stdio stream must use our read/write. */
void ipcd_stdio_take(int fd);
/* A kernel fd is at @fd again (dup2): its own stdio stream back (a terminal's buffering). */
void ipcd_stdio_give_back(int fd);
/*
 * Before an exec of @image (looked up in PATH if @search): if the new image
 * will not load this library (setuid, static, Go), the pipe ends it would
 * inherit become kernel pipes relayed to the accelerated ends.
 */
void ipcd_pipes_before_exec(const char *image, bool search);

/* ---- fdtab.c ------------------------------------------------------------- */

extern _Atomic(struct ipcd_sock *) ipcd_fdtab[IPCD_FDTAB_MAX];

/** ipcd_fdtab_get - the socket behind @fd, or NULL (a kernel fd). One load. */
static __ipcd_always_inline struct ipcd_sock *ipcd_fdtab_get(int fd)
{
	if (unlikely((unsigned int)fd >= IPCD_FDTAB_MAX))
		return NULL;
	return atomic_load_explicit(&ipcd_fdtab[fd], memory_order_acquire);
}

struct ipcd_sock *ipcd_sock_new(int domain, int type);
/* Install @s at @fd (a reference is taken) with the emulated FD_CLOEXEC. */
void ipcd_fdtab_set(int fd, struct ipcd_sock *s, bool cloexec);
/* Remove @fd from the table; returns its socket (whose reference the caller now owns). */
struct ipcd_sock *ipcd_fdtab_take(int fd);
bool ipcd_fdtab_cloexec(int fd);
void ipcd_fdtab_set_cloexec(int fd, bool on);
/* The fds naming @s (a scan of the table), at most @max of them in @out. */
unsigned int ipcd_fdtab_fds_of(const struct ipcd_sock *s, int *out, unsigned int max);
/*
 * ipcd_sock_get - the socket behind @fd with a reference for the duration
 * of a call (NULL: a kernel fd, or closed meanwhile). A close by another
 * thread during the call then leaves the connection alive until the call
 * returns, as the kernel keeps a file alive during a syscall on it.
 */
struct ipcd_sock *ipcd_sock_get(int fd);
/* A socket that will only ever be the kernel's: forget it (the fd stays). */
void ipcd_sock_to_kernel(int fd);
/* Drop one reference; the last one tears the socket down (no fd is closed). */
void ipcd_sock_put(struct ipcd_sock *s);
/* Every fd in [first, last] leaves the table (close_range / closefrom). */
void ipcd_fdtab_drop_range(unsigned int first, unsigned int last);
/*
 * fork: one more process holds every connection end (@delta +1, counted in
 * the parent before the child exists, so that a parent closing right after
 * fork cannot close an end the child still uses); -1 if fork failed.
 * Called with ipcd_socks_lock() held.
 */
void ipcd_socks_hold_all(int delta);
/*
 * exec (@prepare: before the call): this process stops holding every
 * connection end, as if it closed them (the last holder closes the end);
 * after a failed exec (@prepare false) the ends still open are held again.
 * Called with ipcd_socks_lock() held.
 */
void ipcd_socks_exec(bool prepare);
/* One more (@delta +1) or one fewer holder of @s's end; socks lock held. */
void ipcd_socks_hold_one(struct ipcd_sock *s, int delta);
/* A CONN socket built from a handover (exec.c) is ready for the data path. */
void ipcd_sock_conn_ready(struct ipcd_sock *s);

/* ---- exec.c: accelerated connections across exec and posix_spawn ----------------- */

/*
 * Before an exec by this process: hand the inheritable connection ends to
 * the new image and release the others; returns the environment the exec
 * must get (@envp, or ours with IPCD_HANDOFF). ipcd_exec_failed undoes it.
 */
char *const *ipcd_exec_prepare(char *const envp[]);
void ipcd_exec_failed(void);
/* posix_spawn / posix_spawnp (@search) with the handover for the child. */
int ipcd_spawn(bool search, pid_t *pid, const char *path,
	       const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr,
	       char *const argv[], char *const envp[]);
/* In a new image (constructor): take the connections the old one handed over. */
void ipcd_exec_adopt(void);
/* fork child: the handover lock may have been held by a thread of the parent. */
void ipcd_exec_atfork_child(void);
/* The pid the holders were counted for (set at load and in a fork child). */
extern pid_t ipcd_self_pid;
void ipcd_socks_lock(void);
void ipcd_socks_unlock(void);

/* ---- state.c: the monitor ---------------------------------------------------- */

struct ipcd_attach *ipcd_state_get(void);
/*
 * The monitor this process is registered with (its start time; 0: none),
 * and whether the one named @id is still that one and alive (a look at
 * the control socket; true while another thread is in a call, or for id 0:
 * not known, so never taken for gone).
 */
uint64_t ipcd_state_monitor_id(void);
bool ipcd_state_monitor_alive(uint64_t id);
/*
 * ipcd_mon_call - one request and its response, bounded in time; on a
 * CONNECT/ACCEPT/LISTEN success also the descriptors the monitor sent
 * first (@fds, IPCD_CTL_CONN_NFDS entries, -1 when unused) and @aux: the
 * region size of a CONN_FD, the accept token of a LISTEN_FD.
 * Returns 0 (see @resp->status) or -errno: -ENOTCONN (no registration),
 * -ECONNRESET/-ETIMEDOUT (the monitor is gone: the process is detached and
 * uses the kernel from now on).
 */
int ipcd_mon_call(struct ipcd_req *req, struct ipcd_resp *resp, int *fds, uint64_t *aux);
/*
 * ipcd_limit_errno - what to do with a CONNECT, UCONNECT or PAIR answer
 * @status: when it is one of the monitor's limits (proto.h "Limits") and the
 * monitor says limit_action = error, the errno the call fails with (-EDQUOT,
 * the listener's process at its caps, is ECONNREFUSED); otherwise 0: the
 * call goes to the kernel, as for any refusal.
 */
int ipcd_limit_errno(int32_t status);
/*
 * The LISTEN body's length for our monitor: a monitor before ABI 3.6 cuts
 * off a process whose LISTEN is longer than its 16 bytes (no kfd).
 */
uint16_t ipcd_listen_req_len(void);
/*
 * ipcd_mon_hold - a hold token (proto.h IPCD_OP_HOLD) for end @end
 * (IPCD_CLOSE_A/B) of connection @id, or for listening bind @id
 * (IPCD_HOLD_LISTENER): the pipe's write end (close-on-exec), or -errno.
 */
int ipcd_mon_hold(uint64_t id, uint32_t end);
/*
 * ipcd_sock_hold - @s's hold token (a CONN end's, or a LISTEN's), asked of
 * the monitor if it has none (hold_asked is then set): its fd, or -1.
 * The caller holds a reference on @s.
 */
int ipcd_sock_hold(struct ipcd_sock *s);
/* The hold end of @s's connection. */
#define IPCD_END_OF(s)	((s)->conn.acceptor ? IPCD_CLOSE_B : IPCD_CLOSE_A)
/* ipcd_mon_region - the region memfd of @conn_id (IPCD_OP_REGION) and its @size, or -errno. */
int ipcd_mon_region(uint64_t conn_id, bool b_side, uint64_t *size);
/* A lane's end that came with a CONNECT or ACCEPT answer (fd -1: none). */
struct ipcd_mon_lane {
	int fd;
	uint32_t id;
	uint32_t bind_id;
	uint64_t key;		/* a listener's: its kits' tag key (ctl.h LANE_FD); 0: none */
	uint32_t key2;		/* ... its other 32 bits */
};
/* ipcd_mon_call, keeping the lane's end the monitor may send first (@lane). */
int ipcd_mon_call_lane(struct ipcd_req *req, struct ipcd_resp *resp, int *fds, uint64_t *aux,
		       struct ipcd_mon_lane *lane);

/* A connection made ahead of need for a lane (proto.h IPCD_OP_KITS). */
struct ipcd_kit {
	uint64_t conn_id;
	uint64_t size;			/* the region's */
	uint32_t seq;			/* its number on the lane */
	int fds[IPCD_CTL_CONN_NFDS];	/* region, A's (our) wake eventfd, B's */
};
/*
 * ipcd_mon_kits - up to @max kits for lane @lane_id, in lane order. Returns
 * how many (>0), or -errno: the monitor's answer (-ENOENT: the lane is done,
 * -EAGAIN: not yet usable), -ENOTCONN/-ECONNRESET as ipcd_mon_call.
 */
int ipcd_mon_kits(uint32_t lane_id, struct ipcd_kit *kits, unsigned int max);
/*
 * ipcd_mon_kits_post - ask for @count kits for lane @lane_id without waiting
 * (one such request per process at a time): 0, -EBUSY (one is in flight),
 * -ENOTCONN. ipcd_mon_kits_collect then takes them: how many (> 0), 0 when
 * not answered yet and !@wait, or -errno (the monitor's refusal; -ENOENT:
 * none in flight for this lane, e.g. after fork). @max must be >= @count.
 */
int ipcd_mon_kits_post(uint32_t lane_id, unsigned int count);
int ipcd_mon_kits_collect(uint32_t lane_id, struct ipcd_kit *kits, unsigned int max, bool wait);
/*
 * ipcd_mon_post_close - tell the monitor that end @end (IPCD_CLOSE_*) of
 * connection @conn_id is closed, without waiting (ipcd_mon_post_lazy):
 * the peer knows from the rings, the monitor only frees its records.
 */
void ipcd_mon_post_close(uint64_t conn_id, uint32_t end);
/* ipcd_mon_post - queue a request whose answer nobody waits for. */
void ipcd_mon_post(struct ipcd_req *req);
/* ... and that may wait for the monitor's next look (ipcd_reqq_submit_lazy). */
void ipcd_mon_post_lazy(struct ipcd_req *req);
/* Spin budget before sleeping (IPCD_SPIN_US; default 20 us). */
extern uint64_t ipcd_spin_ns;

/* ---- remote.c: connections to other hosts over RDMA ---------------------------------- */

/*
 * Should a connect() to @dst offer the monitor an RDMA connection
 * (IPCD_CONNECT_REMOTE)? Loads and starts the engine on first need.
 */
bool ipcd_remote_wanted(const uint8_t dst[16]);
/* End @c (just opened) is to another host: the engine takes it. 0 or -errno. */
int ipcd_remote_attach(struct ipcd_conn *c);
void ipcd_remote_atfork_child(void);

/* ---- lanes.c: connection setup without the monitor ---------------------------- */

/* Lanes are on unless IPCD_LANES=0. */
bool ipcd_lanes_enabled(void);
/* A CONNECT to @addr:@port brought a lane (@ml->fd >= 0): keep it for the next ones. */
void ipcd_lanes_adopt_connector(const struct ipcd_mon_lane *ml, const uint8_t addr[16],
				uint16_t port);
/*
 * ipcd_lane_connect - connect to @addr:@port down this process's lane to it:
 * 0 and @conn opened (A end), or -ENOENT: no lane, no kit, or the lane is
 * over (the caller asks the monitor). @mon_id: the monitor that made the
 * kit (a process may use its kits after registering with another one).
 */
int ipcd_lane_connect(const uint8_t addr[16], uint16_t port, struct ipcd_conn *conn,
		      uint64_t *mon_id);
/* An ACCEPT brought a lane for listener @s, whose epoll fd is @ep. */
void ipcd_lanes_adopt_listener(struct ipcd_sock *s, int ep, const struct ipcd_mon_lane *ml);
/*
 * ipcd_lane_accept - one kit from @s's lanes: 0 and @fds (IPCD_CTL_CONN_FD_*
 * order, ours to open as B), @size and @conn_id (as its connector says),
 * and @tag: the kit_tag its region must carry if it is that connection
 * (0: not checkable, a monitor before ABI 3.6); or -EAGAIN. Lanes found
 * over are closed and reported (LANE_DONE).
 */
int ipcd_lane_accept(struct ipcd_sock *s, int fds[IPCD_CTL_CONN_NFDS], uint64_t *size,
		     uint64_t *conn_id, uint64_t *tag);
/*
 * The listening socket closes, or its process forks: shut and drain every
 * lane and report each (kits not accepted go back to the monitor's backlog).
 */
void ipcd_lanes_listener_close(struct ipcd_sock *s);
void ipcd_lanes_listener_free(struct ipcd_sock *s);
/* fork: the connector lane table (lock, unlock; the child forgets its copies). */
void ipcd_lanes_fork_prepare(void);
void ipcd_lanes_fork_parent(void);
void ipcd_lanes_fork_child(void);
/* Before fork(): listeners stop taking lanes (their connections are to be shared). */
void ipcd_socks_before_fork(void);

/* ---- epoll.c: epoll sets that hold accelerated fds ----------------------------- */

struct ipcd_ep;
struct ipcd_ep_item;

/* The epoll set behind @fd with a reference for the call, or NULL (not ours). */
struct ipcd_ep *ipcd_ep_get(int fd);
void ipcd_ep_put(struct ipcd_ep *ep);
/* True if @fd is an epoll fd this library keeps a set for (one load). */
bool ipcd_ep_is(int fd);
/* close/dup/dup2/dup3/F_DUPFD of an epoll fd (sock.c): @newfd names @ep too. */
void ipcd_ep_dup(struct ipcd_ep *ep, int newfd);
/* @fd no longer names its epoll set (close, or replaced by dup2): drop it. */
void ipcd_ep_fd_gone(int fd);
/* close_range/closefrom: every fd in [first, last] leaves the epoll table. */
void ipcd_ep_drop_range(unsigned int first, unsigned int last);
/*
 * poll()/select() on an epoll fd @fd whose set holds accelerated fds:
 * POLLIN if an epoll_wait would report something now (no sleep).
 * ipcd_ep_arm: before sleeping in the kernel on @fd; false if something is
 * ready after all (do not sleep).
 */
short ipcd_ep_poll_events(struct ipcd_ep *ep, int fd);
bool ipcd_ep_arm(struct ipcd_ep *ep);
/* True if @ep holds fds whose readiness the kernel cannot see by itself. */
bool ipcd_ep_accel(struct ipcd_ep *ep);
/*
 * A socket's kind changed under the same fd @fd (FRESH became CONN at
 * connect or LISTEN at listen: the kernel object behind the fd was
 * replaced): its registrations follow it. ipcd_ep_sock_gone: the socket is
 * torn down (its last fd closed) or left to the kernel: its registrations go.
 */
void ipcd_ep_sock_changed(struct ipcd_sock *s, int fd);
/*
 * close(@fd), the last fd of CONN socket @s: its kernel registrations go
 * now (the peer holds its eventfd open, so the kernel would keep them).
 */
void ipcd_ep_sock_closing(struct ipcd_sock *s, int fd);
void ipcd_ep_sock_gone(struct ipcd_sock *s);
/*
 * @fd of @s (a kernel object: FRESH, LISTEN) is about to name another one:
 * its registrations in our sets leave the kernel (ipcd_ep_sock_changed then
 * adds them back for the new object).
 */
void ipcd_ep_sock_kernel_del(struct ipcd_sock *s, int fd);
/*
 * @fd of connection @s closes while other fds keep it: the kernel keeps its
 * registrations made under that number, so the lazy ones are made now.
 */
void ipcd_ep_sock_fd_leaving(struct ipcd_sock *s, int fd);
/*
 * @fd of CONN socket @s names a kernel socket now (ipcd_sock_settle): its
 * registrations become the kernel's, with the application's events.
 */
void ipcd_ep_sock_to_kernel(struct ipcd_sock *s, int fd);
/* fork: the registry lock (prepare/parent/child). */
void ipcd_ep_fork_prepare(void);
void ipcd_ep_fork_parent(void);
void ipcd_ep_fork_child(void);

/* ---- addresses (sock.c) ----------------------------------------------------- */

/* @sa to IPv6/IPv4-mapped + port; false if not AF_INET/AF_INET6 or too short. */
bool ipcd_addr_from(const struct sockaddr *sa, socklen_t len, uint8_t addr[16], uint16_t *port);
/* Fill @sa/@len as getsockname(2) would for @domain. */
void ipcd_addr_to(int domain, const uint8_t addr[16], uint16_t port, struct sockaddr *sa,
		  socklen_t *len);

/* ---- data.c ---------------------------------------------------------------- */

ssize_t ipcd_conn_recv(struct ipcd_sock *s, int fd, const struct iovec *iov, int iovcnt,
		       int flags);
ssize_t ipcd_conn_send(struct ipcd_sock *s, int fd, const struct iovec *iov, int iovcnt,
		       int flags);
/* poll(2) events of a CONN socket, computed from the rings (no syscall). */
short ipcd_conn_events(struct ipcd_sock *s, short want);
/* Announce a sleep in the kernel on @fd's eventfd for @want (IPCD_DB_EVENT). */
void ipcd_conn_arm(struct ipcd_sock *s, int fd, short want);
/* Reset the eventfd counter at @fd (after a wake-up), handing it on to other pollers. */
void ipcd_conn_clear(struct ipcd_sock *s, int fd);
/*
 * ipcd_spin - spin (adaptive budget @sp, at most ipcd_spin_ns) until
 * @done(@arg): true if it came in time, false to go to sleep.
 */
bool ipcd_spin(struct ipcd_spin *sp, bool (*done)(void *), void *arg);
/* EINTR from a sleep: true if the kernel would have restarted the call. */
bool ipcd_restartable(void);
/* Raise SIGPIPE on this thread, as the kernel does for a write to a closed socket. */
void ipcd_sigpipe(int flags);

/*
 * Monitor restarts (docs/reliability.md). ipcd_sock_peer_check: a sleep on
 * CONN socket @s timed out; look at its peer's life socket (attach.h):
 * a peer gone without a word is marked as a death; a connection whose
 * peer never had it, made by a monitor gone since (it was still in its
 * backlog), is flagged IPCD_PEER_MOVED for the socket's next call, and
 * sleepers are woken. True if anything changed. ipcd_sock_settle, at that
 * call (the wrapper, interpose.c; no lock of @s held): a flagged
 * connector becomes the kernel's connection to the same address, what it
 * sent replayed, at each of its fds; true if so (the caller then makes
 * the kernel's call), false if it stays ours (a failed move resets it).
 * Calls return -1 with errno IPCD_EMOVED when they find the flag.
 * ipcd_sock_settle_on_close: the same at the last close() of a connector
 * whose peer never opened its end, flagged or not yet looked at: what it
 * wrote then reaches the listener over the kernel connection the caller
 * closes, as a kernel close() would deliver it.
 */
#define IPCD_EMOVED	0x4d4f5645	/* internal: never reaches the application */
bool ipcd_sock_peer_check(struct ipcd_sock *s);
bool ipcd_sock_settle(struct ipcd_sock *s);
bool ipcd_sock_settle_on_close(struct ipcd_sock *s);

/*
 * The accelerated variant of every IPCD_FD_CALL: ipcd_sock_<name>(s, args),
 * called by the generated wrapper when the fd is in the table.
 */
#define IPCD_UNPAREN(...) __VA_ARGS__
#define IPCD_FD_CALL(ret, name, params, ...) \
	ret ipcd_sock_##name(struct ipcd_sock *s, IPCD_UNPAREN params);
#include "calls.def"
#undef IPCD_UNPAREN

#endif /* IPCD_SOCK_H */
