/* SPDX-License-Identifier: MIT */
/*
 * fdtab.c - fd number -> accelerated socket, and the sockets' lifetime.
 *
 * A fixed table of IPCD_FDTAB_MAX pointers (bss: pages are touched only for
 * the fd numbers used). The wrappers' fast path is one acquire load; an fd
 * that is not in the table is the kernel's. Writers (socket, accept, dup,
 * close) hold no lock for the slot itself: the kernel gives each fd number
 * to one call at a time.
 *
 * FD_CLOEXEC of CONN and LISTEN fds is emulated here: at the kernel level
 * those fds are always close-on-exec, because a new program image has no
 * table to make sense of an eventfd or an epoll fd standing for a socket
 * (passing sockets across exec is issue #5's work).
 */
#undef _FORTIFY_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sock.h"

_Atomic(struct ipcd_sock *) ipcd_fdtab[IPCD_FDTAB_MAX];
static atomic_uchar fd_cloexec[IPCD_FDTAB_MAX];

static pthread_mutex_t socks_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ipcd_sock *socks;		/* every live socket (fork walks them) */

void ipcd_socks_lock(void)
{
	pthread_mutex_lock(&socks_mu);
}

void ipcd_socks_unlock(void)
{
	pthread_mutex_unlock(&socks_mu);
}

/*
 * Freed sockets are kept for reuse, never returned to malloc: a thread that
 * loaded a pointer from the table just before another thread's close may
 * still try to take a reference (ipcd_sock_get), and that must touch a
 * socket, never memory reused for something else.
 */
static struct ipcd_sock *spare;		/* under socks_mu */

struct ipcd_sock *ipcd_sock_new(int domain, int type)
{
	struct ipcd_sock *s;

	pthread_mutex_lock(&socks_mu);
	s = spare;
	if (s)
		spare = s->next;
	pthread_mutex_unlock(&socks_mu);
	if (s)
		memset(s, 0, sizeof(*s));	/* refs stays 0 until installed */
	else
		s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->domain = domain;
	s->state = IPCD_SK_FRESH;
	s->kfd = -1;
	s->lfd = -1;
	s->lhold = -1;
	s->conn.reg.fd = -1;
	s->conn.wake_self = -1;
	s->conn.wake_peer = -1;
	s->conn.hold_fd = -1;
	s->conn.live_fd = -1;
	atomic_init(&s->nonblock, (type & SOCK_NONBLOCK) != 0);
	pthread_mutex_lock(&socks_mu);
	s->next = socks;
	if (socks)
		socks->prev = s;
	socks = s;
	pthread_mutex_unlock(&socks_mu);
	return s;
}

void ipcd_fdtab_set(int fd, struct ipcd_sock *s, bool cloexec)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	atomic_store_explicit(&fd_cloexec[fd], cloexec, memory_order_relaxed);
	atomic_store_explicit(&ipcd_fdtab[fd], s, memory_order_release);
	if (unlikely(fd <= 2))
		ipcd_stdio_take(fd);
}

struct ipcd_sock *ipcd_fdtab_take(int fd)
{
	if ((unsigned int)fd >= IPCD_FDTAB_MAX)
		return NULL;
	return atomic_exchange_explicit(&ipcd_fdtab[fd], NULL, memory_order_acq_rel);
}

unsigned int ipcd_fdtab_fds_of(const struct ipcd_sock *s, int *out, unsigned int max)
{
	unsigned int n = 0;
	int fd;

	for (fd = 0; fd < IPCD_FDTAB_MAX && n < max; fd++)
		if (atomic_load_explicit(&ipcd_fdtab[fd], memory_order_relaxed) == s)
			out[n++] = fd;
	return n;
}

bool ipcd_fdtab_cloexec(int fd)
{
	return atomic_load_explicit(&fd_cloexec[fd], memory_order_relaxed);
}

void ipcd_fdtab_set_cloexec(int fd, bool on)
{
	atomic_store_explicit(&fd_cloexec[fd], on, memory_order_relaxed);
}

static void close_hidden(int fd)
{
	if (fd >= 0) {
		ipcd_fd_hide(fd, false);
		ipcd_real.close(fd);
	}
}

/* The processes holding this end of the connection (struct ipcd_conn_ctl). */
static uint32_t *holders_of(struct ipcd_sock *s)
{
	return s->conn.acceptor ? &s->conn.ctl->holders_b : &s->conn.ctl->holders_a;
}

/*
 * Drop this process's hold on the end; the last holder closes it: the peer
 * reads EOF (and its writes fail), the monitor is told which end. The
 * mapping stays (the caller unmaps, or exec discards it). The peer's process
 * may write the holders word too: it is never trusted below 1. Returns true
 * if other processes still hold the end.
 */
static bool end_release(struct ipcd_sock *s)
{
	if (ipcd_fetch_add(holders_of(s), (uint32_t)-1) > 1)
		return true;
	/*
	 * Closed with bytes it never read: the kernel answers with an RST, and
	 * the peer sees ECONNRESET and EPOLLERR|EPOLLHUP. Our reset bit before
	 * the rings' closed marks (the peer reads it after seeing them). A
	 * pipe's last reader leaves its writers EPIPE, never a reset.
	 */
	if (s->kind != IPCD_CONN_KIND_PIPE &&
	    (ipcd_spsc_unread(&s->conn.rx) ||
	     (s->linger.l_onoff && s->linger.l_linger == 0)))	/* SO_LINGER {1, 0}: an RST */
		ipcd_fetch_or(&s->conn.ctl->reset,
			      s->conn.acceptor ? IPCD_CONN_RESET_B : IPCD_CONN_RESET_A);
	ipcd_spsc_close_prod(&s->conn.tx);
	ipcd_spsc_close_cons(&s->conn.rx);
	/* Last: the monitor may reuse a lane's region once both bits are set. */
	ipcd_fetch_or(&s->conn.ctl->closed,
		      s->conn.acceptor ? IPCD_CONN_CLOSED_B : IPCD_CONN_CLOSED_A);
	ipcd_mon_post_close(s->conn.conn_id, IPCD_END_OF(s));
	return false;
}

/* The last reference: leave the monitor and the peer in the right state. */
static void sock_teardown(struct ipcd_sock *s)
{
	struct ipcd_req req = { 0 };

	switch (s->state) {
	case IPCD_SK_CONN:
		(void)end_release(s);
		ipcd_conn_release(&s->conn);
		close_hidden(s->kfd);	/* a socketpair end's kernel socket */
		break;
	case IPCD_SK_LISTEN: {
		struct ipcd_unbind_req *ur = (void *)req.body;

		/* Kits sent but not accepted go back to the backlog, then UNBIND resets them. */
		ipcd_lanes_listener_close(s);
		ipcd_lanes_listener_free(s);
		/*
		 * After fork another process may still accept on it: the bind
		 * then lives until its owner exits (the monitor drops it).
		 */
		if (!s->forked) {
			req.opcode = IPCD_OP_UNBIND;
			req.len = sizeof(*ur);
			ur->id = s->bind_id;
			ipcd_mon_post(&req);
		}
		close_hidden(s->kfd);
		close_hidden(s->lfd);
		close_hidden(s->lhold);	/* the monitor drops it if it was the last holder */
		break;
	}
	case IPCD_SK_FRESH:
		/* A named AF_UNIX listener's registration token (unix.c). */
		close_hidden(s->lhold);
		break;
	}
}

void ipcd_sock_put(struct ipcd_sock *s)
{
	int saved = errno;

	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	pthread_mutex_lock(&socks_mu);
	if (s->prev)
		s->prev->next = s->next;
	else
		socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	pthread_mutex_unlock(&socks_mu);
	ipcd_inside++;
	/* Its epoll registrations go first (a set may be looking at its rings). */
	ipcd_ep_sock_gone(s);
	sock_teardown(s);
	ipcd_inside--;
	pthread_mutex_lock(&socks_mu);
	s->state = IPCD_SK_FRESH;
	s->next = spare;
	spare = s;
	pthread_mutex_unlock(&socks_mu);
	errno = saved;
}

struct ipcd_sock *ipcd_sock_get(int fd)
{
	struct ipcd_sock *s = ipcd_fdtab_get(fd);
	unsigned int r;

	if (!s)
		return NULL;
	r = atomic_load_explicit(&s->refs, memory_order_relaxed);
	do {
		if (r == 0)
			return NULL;	/* being torn down: the fd is the kernel's again */
	} while (!atomic_compare_exchange_weak_explicit(&s->refs, &r, r + 1,
							memory_order_acquire,
							memory_order_relaxed));
	if (unlikely(ipcd_fdtab_get(fd) != s)) {
		/* Closed (and maybe reused) between the two loads. */
		ipcd_sock_put(s);
		return NULL;
	}
	return s;
}

void ipcd_fdtab_drop_range(unsigned int first, unsigned int last)
{
	unsigned int fd;

	if (first >= IPCD_FDTAB_MAX)
		return;
	if (last >= IPCD_FDTAB_MAX)
		last = IPCD_FDTAB_MAX - 1;
	for (fd = first; fd <= last; fd++) {
		struct ipcd_sock *s;

		if (!atomic_load_explicit(&ipcd_fdtab[fd], memory_order_relaxed))
			continue;
		s = ipcd_fdtab_take((int)fd);
		if (s)
			ipcd_sock_put(s);
	}
}

static void hide(struct ipcd_fdset *h, int fd)
{
	if (fd >= 0 && h->n < h->max)
		h->fds[h->n++] = fd;
}

bool ipcd_fd_hidden(int fd)
{
	struct ipcd_sock *s;
	bool r = false;

	if (likely(!ipcd_fd_marked(fd)))
		return false;
	/* Confirm against our state: a mark left on an fd number since reused is dropped. */
	pthread_mutex_lock(&socks_mu);
	for (s = socks; s && !r; s = s->next)
		r = fd == s->conn.wake_peer || fd == s->conn.hold_fd || fd == s->kfd ||
		    fd == s->lfd || fd == s->lhold || fd == s->conn.live_fd;
	pthread_mutex_unlock(&socks_mu);
	if (!r)
		r = ipcd_state_fd(fd);	/* the monitor's socket, the registration's memfds */
	if (!r)
		ipcd_fd_hide(fd, false);
	return r;
}

void ipcd_fd_relocate(int fd)
{
	struct ipcd_sock *s;
	int nfd = -1;

	pthread_mutex_lock(&socks_mu);
	for (s = socks; s; s = s->next) {
		int *f[] = { &s->conn.wake_peer, &s->conn.tx.wake_fd, &s->conn.rx.wake_fd,
			     &s->conn.hold_fd, &s->kfd, &s->lfd, &s->lhold, &s->conn.live_fd };
		unsigned int i;

		for (i = 0; i < IPCD_ARRAY_SIZE(f); i++) {
			if (*f[i] != fd)
				continue;
			if (nfd < 0)
				nfd = ipcd_real.fcntl(fd, F_DUPFD_CLOEXEC, 0);
			if (nfd < 0)
				goto out;
			*f[i] = nfd;
		}
	}
	if (nfd >= 0) {
		ipcd_fd_hide(nfd, true);
		ipcd_fd_hide(fd, false);
	}
out:
	pthread_mutex_unlock(&socks_mu);
	if (nfd < 0)
		ipcd_state_fd_relocate(fd);
}

void ipcd_hidden_fds(struct ipcd_fdset *h)
{
	struct ipcd_sock *s;

	ipcd_state_hidden_fds(h);
	ipcd_lanes_hidden_fds(h);
	pthread_mutex_lock(&socks_mu);
	for (s = socks; s; s = s->next) {
		hide(h, s->conn.wake_peer);
		hide(h, s->conn.hold_fd);
		hide(h, s->conn.live_fd);
		hide(h, s->kfd);
		hide(h, s->lfd);
		hide(h, s->lhold);
		if (s->state == IPCD_SK_LISTEN)
			ipcd_llanes_hidden_fds(s, h);
	}
	pthread_mutex_unlock(&socks_mu);
}

void ipcd_socks_hold_one(struct ipcd_sock *s, int delta)
{
	if (s->state == IPCD_SK_CONN && s->conn.ctl)
		ipcd_fetch_add(holders_of(s), (uint32_t)delta);
}

void ipcd_socks_hold_all(int delta)
{
	struct ipcd_sock *s;

	/* socks_mu is held (fork's prepare handler, or the caller). */
	for (s = socks; s; s = s->next) {
		if (s->state == IPCD_SK_LISTEN && delta > 0)
			s->forked = true;
		if (s->state == IPCD_SK_CONN && s->conn.ctl)
			ipcd_fetch_add(holders_of(s), (uint32_t)delta);
	}
}

/*
 * Before fork(), each connection end and listener gets a hold token
 * (proto.h IPCD_OP_HOLD) if it has none: the child inherits it, and the
 * monitor closes the end (drops the listener) when the last process
 * holding it is gone, whether it closed it or exited. Asked once per end;
 * a refusal (an old monitor, none, a limit) leaves the end to the holders
 * count alone, as before tokens.
 */
int ipcd_sock_hold(struct ipcd_sock *s)
{
	bool listener = s->state == IPCD_SK_LISTEN;
	int *hold = listener ? &s->lhold : &s->conn.hold_fd;

	if (*hold < 0) {
		int fd = listener ? ipcd_mon_hold(s->bind_id, IPCD_HOLD_LISTENER)
				  : ipcd_mon_hold(s->conn.conn_id, IPCD_END_OF(s));

		s->hold_asked = true;
		if (fd >= 0) {
			*hold = fd;
			ipcd_fd_hide(fd, true);
		}
	}
	return *hold;
}

static void hold_tokens(void)
{
	struct ipcd_sock *batch[32], *s;
	unsigned int n, i;

	do {
		n = 0;
		pthread_mutex_lock(&socks_mu);
		for (s = socks; s && n < IPCD_ARRAY_SIZE(batch); s = s->next) {
			if (s->hold_asked || !atomic_load_explicit(&s->refs, memory_order_relaxed))
				continue;
			if (s->state == IPCD_SK_CONN ? !s->conn.ctl
			    : s->state != IPCD_SK_LISTEN || !s->bind_id)
				continue;
			s->hold_asked = true;
			atomic_fetch_add(&s->refs, 1);
			batch[n++] = s;
		}
		pthread_mutex_unlock(&socks_mu);
		for (i = 0; i < n; i++) {
			(void)ipcd_sock_hold(batch[i]);	/* our reference: no teardown meanwhile */
			ipcd_sock_put(batch[i]);
		}
	} while (n == IPCD_ARRAY_SIZE(batch));
}

/*
 * Before fork(): every listener of ours that takes lanes stops (the monitor
 * is told with a LISTEN without IPCD_LISTEN_LANES) and hands back what its
 * lanes hold, so that after the fork any process holding it may accept
 * (lanes.c); every connection end gets its hold token (above). References
 * are taken under socks_mu and the work done outside it: posting takes the
 * request lock, which fork's prepare handler takes before socks_mu.
 */
void ipcd_socks_before_fork(void)
{
	struct ipcd_sock *batch[32], *s;
	unsigned int n, i;

	hold_tokens();

	do {
		n = 0;
		pthread_mutex_lock(&socks_mu);
		for (s = socks; s && n < IPCD_ARRAY_SIZE(batch); s = s->next) {
			if (s->state != IPCD_SK_LISTEN || s->forked ||
			    !atomic_load_explicit(&s->refs, memory_order_relaxed))
				continue;
			s->forked = true;	/* no new lanes from here on */
			atomic_fetch_add(&s->refs, 1);
			batch[n++] = s;
		}
		pthread_mutex_unlock(&socks_mu);
		for (i = 0; i < n; i++) {
			struct ipcd_req req = { .opcode = IPCD_OP_LISTEN };
			struct ipcd_listen_req *lr = (void *)req.body;

			s = batch[i];
			req.len = ipcd_listen_req_len();
			lr->id = s->bind_id;
			lr->backlog = s->backlog < 0 ? 0 : (uint32_t)s->backlog;
			lr->flags = 0;
			lr->kfd = s->kfd;	/* a LISTEN again: the monitor has its copy */
			ipcd_mon_post(&req);
			ipcd_lanes_listener_close(s);
			ipcd_sock_put(s);
		}
	} while (n == IPCD_ARRAY_SIZE(batch));
}

void ipcd_socks_exec(bool prepare)
{
	struct ipcd_sock *s;

	for (s = socks; s; s = s->next) {
		if (s->state != IPCD_SK_CONN || !s->conn.ctl)
			continue;
		if (s->exec_keep)
			continue;	/* handed to the new image, with our hold (exec.c) */
		if (prepare) {
			/* Held elsewhere: a failed exec counts this process back. */
			s->exec_released = end_release(s);
		} else if (s->exec_released) {
			ipcd_fetch_add(holders_of(s), 1);
			s->exec_released = false;
		}
	}
}
