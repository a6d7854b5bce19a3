/* SPDX-License-Identifier: MIT */
/*
 * wait.c - poll, ppoll, select, pselect with accelerated fds (epoll: epoll.c).
 *
 * A CONN fd's readiness is computed from its rings, and an epoll fd of ours
 * that holds accelerated fds from its set (epoll.c), without a syscall. If
 * one is ready, the kernel fds are polled with a zero timeout and both
 * answers merged. If none is, each CONN fd announces an eventfd sleeper in
 * its rings' doorbell words and each such epoll set arms its items; all are
 * re-checked, and the kernel then sleeps on everything at once: CONN fds as
 * their eventfd (POLLIN), epoll fds as themselves (POLLIN), the others as
 * asked. Listening fds are epoll fds and kernel sockets are themselves:
 * both are plain kernel entries.
 */
#undef _FORTIFY_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ipcd/wait.h>

#include "sock.h"

#define STACK_FDS	64

static bool is_conn(int fd, struct ipcd_sock **out)
{
	struct ipcd_sock *s = ipcd_fdtab_get(fd);

	*out = s;
	return s && s->state == IPCD_SK_CONN;
}

/* An fd whose readiness the kernel cannot tell alone: a CONN, or an epoll set of ours. */
static bool is_ours(int fd)
{
	struct ipcd_sock *s;

	return is_conn(fd, &s) || ipcd_ep_is(fd);
}

static int64_t ts_ns(const struct timespec *ts)
{
	if (!ts)
		return -1;
	if (ts->tv_sec < 0)
		return 0;
	return ts->tv_sec * 1000000000ll + ts->tv_nsec;
}

/*
 * One poll entry whose readiness is ours: a connection (@s, its fd is its
 * wake eventfd) or an epoll set holding such fds (@ep, its fd is the kernel
 * instance). The kernel sleeps on both as POLLIN.
 */
struct pent {
	struct ipcd_sock *s;
	struct ipcd_ep *ep;
};

static short pent_events(const struct pent *p, int fd, short want)
{
	if (p->s)
		return ipcd_conn_events(p->s, want);
	return ipcd_ep_poll_events(p->ep, fd) & want;
}

/* Kernel entries only (ours disabled), zero timeout; merge into @fds. */
static int poll_kernel_now(struct pollfd *fds, struct pollfd *k, nfds_t nfds,
			   const struct pent *pe)
{
	struct timespec zero = { 0, 0 };
	nfds_t i;
	int n, count = 0;

	for (i = 0; i < nfds; i++) {
		k[i] = fds[i];
		if (pe[i].s || pe[i].ep)
			k[i].fd = -1;
	}
	n = ipcd_real.ppoll(k, nfds, &zero, NULL);
	if (n < 0)
		return -1;
	for (i = 0; i < nfds; i++) {
		if (!pe[i].s && !pe[i].ep)
			fds[i].revents = k[i].revents;
		if (fds[i].revents)
			count++;
	}
	return count;
}

/* Take the entries ours; false if none is (the kernel answers alone). */
static bool pents_get(struct pollfd *fds, nfds_t nfds, struct pent *pe)
{
	bool any = false;
	nfds_t i;

	/* A reference each for the whole call: another thread may close meanwhile. */
	for (i = 0; i < nfds; i++) {
		pe[i].s = ipcd_sock_get(fds[i].fd);
		pe[i].ep = NULL;
		if (pe[i].s && pe[i].s->state != IPCD_SK_CONN) {
			ipcd_sock_put(pe[i].s);
			pe[i].s = NULL;
		}
		if (!pe[i].s && (pe[i].ep = ipcd_ep_get(fds[i].fd)) && !ipcd_ep_accel(pe[i].ep)) {
			ipcd_ep_put(pe[i].ep);
			pe[i].ep = NULL;
		}
		any |= pe[i].s || pe[i].ep;
	}
	return any;
}

static void pents_put(struct pent *pe, nfds_t nfds)
{
	nfds_t i;

	for (i = 0; i < nfds; i++) {
		if (pe[i].s)
			ipcd_sock_put(pe[i].s);	/* preserves errno */
		if (pe[i].ep)
			ipcd_ep_put(pe[i].ep);
	}
}

static int poll_core(struct pollfd *fds, nfds_t nfds, const struct timespec *tmo,
		     const sigset_t *ss)
{
	struct pollfd kstack[STACK_FDS], *k = kstack;
	struct pent pstack[STACK_FDS], *pe = pstack;
	uint64_t deadline = ipcd_deadline(ts_ns(tmo));
	nfds_t i, nacc = 0;
	bool lives = false;
	int rc;

	for (i = 0; i < nfds; i++)
		if (is_ours(fds[i].fd))
			nacc++;
	if (!nacc)
		return ipcd_real.ppoll(fds, nfds, tmo, ss);
	if (nfds > STACK_FDS) {
		k = malloc(nfds * sizeof(*k));
		pe = malloc(nfds * sizeof(*pe));
		if (!k || !pe) {
			free(k);
			free(pe);
			errno = ENOMEM;
			return -1;
		}
	}
	if (!pents_get(fds, nfds, pe)) {
		rc = ipcd_real.ppoll(fds, nfds, tmo, ss);
		goto out;
	}
	for (i = 0; i < nfds; i++)
		lives |= pe[i].s && pe[i].s->conn.live_fd >= 0;
	for (;;) {
		int64_t left = ipcd_remaining(deadline);
		struct timespec lts;
		bool any = false, slice;
		int n;

		/* Every time round (at most once a second per socket): a busy loop may never sleep. */
		for (i = 0; lives && i < nfds; i++)
			if (pe[i].s)
				(void)ipcd_sock_peer_check(pe[i].s);
		for (i = 0; i < nfds; i++) {
			if (pe[i].s || pe[i].ep) {
				fds[i].revents = pent_events(&pe[i], fds[i].fd, fds[i].events);
				any |= fds[i].revents != 0;
			}
		}
		if (any || left == 0) {
			rc = poll_kernel_now(fds, k, nfds, pe);
			break;
		}
		/*
		 * Count ourselves as a poller before announcing the sleep, so
		 * that a thread taking the eventfd's count from now on hands
		 * it on (ipcd_conn_clear) instead of keeping it from us.
		 */
		for (i = 0; i < nfds; i++) {
			if (pe[i].s) {
				atomic_fetch_add(&pe[i].s->pollers, 1);
				ipcd_conn_arm(pe[i].s, fds[i].fd, fds[i].events);
				any |= ipcd_conn_events(pe[i].s, fds[i].events) != 0;
			} else if (pe[i].ep) {
				any |= !ipcd_ep_arm(pe[i].ep);
			}
		}
		for (i = 0; i < nfds; i++) {
			k[i] = fds[i];
			if (pe[i].s || pe[i].ep)
				k[i].events = POLLIN;	/* the eventfd, the epoll fd */
		}
		if (any) {
			for (i = 0; i < nfds; i++)
				if (pe[i].s)
					atomic_fetch_sub(&pe[i].s->pollers, 1);
			continue;
		}
		/* Ends with a life socket: in slices, to look for a peer's hang-up (attach.h). */
		slice = lives && (left < 0 || left > IPCD_LIVE_CHECK_NS);
		if (slice)
			left = IPCD_LIVE_CHECK_NS;
		if (left > 0) {
			lts.tv_sec = left / 1000000000;
			lts.tv_nsec = left % 1000000000;
		}
		n = ipcd_real.ppoll(k, nfds, left < 0 ? NULL : &lts, ss);
		for (i = 0; i < nfds; i++)
			if (pe[i].s)
				atomic_fetch_sub(&pe[i].s->pollers, 1);
		if (n < 0) {
			rc = -1;
			break;
		}
		rc = 0;
		for (i = 0; i < nfds; i++) {
			if (pe[i].s || pe[i].ep) {
				if (pe[i].s && (k[i].revents & POLLIN))
					ipcd_conn_clear(pe[i].s, fds[i].fd);
				fds[i].revents = pent_events(&pe[i], fds[i].fd, fds[i].events);
			} else {
				fds[i].revents = k[i].revents;
			}
			if (fds[i].revents)
				rc++;
		}
		if (rc)
			break;
		/* Only stale eventfd counts woke us: sleep again for what is left. */
	}
out:
	pents_put(pe, nfds);
	if (k != kstack) {
		free(k);
		free(pe);
	}
	return rc;
}

IPCD_EXPORT int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	struct timespec ts = { .tv_sec = timeout / 1000, .tv_nsec = timeout % 1000 * 1000000ll };

	ipcd_init();
	if (unlikely(!ipcd_real.poll || !ipcd_real.ppoll))
		return ipcd_enosys();
	if (ipcd_inside)
		return ipcd_real.poll(fds, nfds, timeout);
	return poll_core(fds, nfds, timeout < 0 ? NULL : &ts, NULL);
}

IPCD_EXPORT int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
		      const __sigset_t *ss)
{
	ipcd_init();
	if (unlikely(!ipcd_real.ppoll))
		return ipcd_enosys();
	if (ipcd_inside)
		return ipcd_real.ppoll(fds, nfds, timeout, ss);
	return poll_core(fds, nfds, timeout, ss);
}

/* Linux's select() sets (fs/select.c). */
#define SEL_IN	(POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR)
#define SEL_OUT	(POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR)
#define SEL_EX	(POLLPRI)

static bool sets_have_conn(int nfds, fd_set *r, fd_set *w, fd_set *e)
{
	int fd;

	for (fd = 0; fd < nfds; fd++)
		if (((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (e && FD_ISSET(fd, e))) &&
		    is_ours(fd))
			return true;
	return false;
}

static int select_core(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *tmo,
		       const sigset_t *ss)
{
	struct pollfd p[FD_SETSIZE];
	nfds_t n = 0, i;
	int fd, rc, count = 0;

	for (fd = 0; fd < nfds; fd++) {
		short ev = 0;

		if (r && FD_ISSET(fd, r))
			ev |= POLLIN;
		if (w && FD_ISSET(fd, w))
			ev |= POLLOUT;
		if (e && FD_ISSET(fd, e))
			ev |= POLLPRI;
		if (ev)
			p[n++] = (struct pollfd){ .fd = fd, .events = ev };
	}
	rc = poll_core(p, n, tmo, ss);
	if (rc < 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (p[i].revents & POLLNVAL) {
			errno = EBADF;
			return -1;
		}
	}
	if (r)
		FD_ZERO(r);
	if (w)
		FD_ZERO(w);
	if (e)
		FD_ZERO(e);
	for (i = 0; i < n; i++) {
		if (r && (p[i].events & POLLIN) && (p[i].revents & SEL_IN)) {
			FD_SET(p[i].fd, r);
			count++;
		}
		if (w && (p[i].events & POLLOUT) && (p[i].revents & SEL_OUT)) {
			FD_SET(p[i].fd, w);
			count++;
		}
		if (e && (p[i].events & POLLPRI) && (p[i].revents & SEL_EX)) {
			FD_SET(p[i].fd, e);
			count++;
		}
	}
	return count;
}

IPCD_EXPORT int select(int nfds, fd_set *__restrict readfds, fd_set *__restrict writefds,
		       fd_set *__restrict exceptfds, struct timeval *__restrict timeout)
{
	struct timespec ts;
	uint64_t deadline;
	int rc;

	ipcd_init();
	if (unlikely(!ipcd_real.select))
		return ipcd_enosys();
	if (ipcd_inside || nfds < 0 || nfds > FD_SETSIZE ||
	    !sets_have_conn(nfds, readfds, writefds, exceptfds) ||
	    (timeout && (timeout->tv_sec < 0 || timeout->tv_usec < 0)))
		return ipcd_real.select(nfds, readfds, writefds, exceptfds, timeout);
	if (timeout) {
		ts.tv_sec = timeout->tv_sec + timeout->tv_usec / 1000000;
		ts.tv_nsec = timeout->tv_usec % 1000000 * 1000;
	}
	deadline = ipcd_deadline(timeout ? ts_ns(&ts) : -1);
	rc = select_core(nfds, readfds, writefds, exceptfds, timeout ? &ts : NULL, NULL);
	if (timeout) {
		/* Linux writes back the time left. */
		int64_t left = ipcd_remaining(deadline);

		timeout->tv_sec = left / 1000000000;
		timeout->tv_usec = left % 1000000000 / 1000;
	}
	return rc;
}

IPCD_EXPORT int pselect(int nfds, fd_set *__restrict readfds, fd_set *__restrict writefds,
			fd_set *__restrict exceptfds, const struct timespec *__restrict timeout,
			const __sigset_t *__restrict sigmask)
{
	ipcd_init();
	if (unlikely(!ipcd_real.pselect))
		return ipcd_enosys();
	if (ipcd_inside || nfds < 0 || nfds > FD_SETSIZE ||
	    !sets_have_conn(nfds, readfds, writefds, exceptfds))
		return ipcd_real.pselect(nfds, readfds, writefds, exceptfds, timeout, sigmask);
	return select_core(nfds, readfds, writefds, exceptfds, timeout, sigmask);
}
