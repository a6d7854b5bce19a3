/* SPDX-License-Identifier: MIT */
/*
 * sock.c - the control path of accelerated sockets: socket, bind, listen,
 * accept, connect, close, shutdown, names, options, fcntl, ioctl, dup.
 * (The data path is data.c; the state machine is described in sock.h.)
 *
 * The kernel stays the authority wherever it can be: bind() binds the
 * kernel socket first (so EADDRINUSE, EACCES and the port number are the
 * kernel's, and programs that are not preloaded see the port taken), and a
 * listener also listens in the kernel (hybrid: programs that are not
 * preloaded connect to it as usual). Only connect() consults the monitor
 * first; when there is no accelerated listener there, the same kernel
 * socket connects as if we were absent.
 */
#undef _FORTIFY_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <ipcd/addr.h>
#include <ipcd/wait.h>

#include "sock.h"

/* ---- addresses ---------------------------------------------------------- */

bool ipcd_addr_from(const struct sockaddr *sa, socklen_t len, uint8_t addr[16], uint16_t *port)
{
	return ipcd_sockaddr_key(sa, len, addr, port);
}

void ipcd_addr_to(int domain, const uint8_t addr[16], uint16_t port, struct sockaddr *sa,
		  socklen_t *len)
{
	union {
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} u;
	socklen_t n;

	memset(&u, 0, sizeof(u));
	if (domain == AF_INET) {
		u.in.sin_family = AF_INET;
		u.in.sin_port = htons(port);
		memcpy(&u.in.sin_addr, addr + 12, 4);
		n = sizeof(u.in);
	} else {
		u.in6.sin6_family = AF_INET6;
		u.in6.sin6_port = htons(port);
		memcpy(&u.in6.sin6_addr, addr, 16);
		n = sizeof(u.in6);
	}
	if (sa && len)
		memcpy(sa, &u, IPCD_MIN(*len, n));
	if (len)
		*len = n;
}

static int fail(int err)
{
	errno = err;
	return -1;
}

/* ---- socket ---------------------------------------------------------------- */

IPCD_EXPORT int socket(int domain, int type, int protocol)
{
	struct ipcd_sock *s;
	int fd;

	ipcd_init();
	if (unlikely(!ipcd_real.socket))
		return ipcd_enosys();
	fd = ipcd_real.socket(domain, type, protocol);
	/* After the real call: the application gets the fd number it would get without us. */
	if (fd < 0 || ipcd_inside)
		return fd;
	ipcd_state_on_socket(domain, type);	/* preserves errno */
	if (domain == AF_UNIX && (type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) == SOCK_STREAM &&
	    protocol == 0 && fd < IPCD_FDTAB_MAX && ipcd_pipes_enabled()) {
		/* Named AF_UNIX (unix.c): the monitor is asked at listen or connect. */
		s = ipcd_sock_new(domain, type);
		if (s)
			ipcd_fdtab_set(fd, s, (type & SOCK_CLOEXEC) != 0);
		return fd;
	}
	if ((domain != AF_INET && domain != AF_INET6) ||
	    (type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) != SOCK_STREAM ||
	    (protocol != 0 && protocol != IPPROTO_TCP) || fd >= IPCD_FDTAB_MAX ||
	    !ipcd_state_get())
		return fd;
	s = ipcd_sock_new(domain, type);
	if (s)
		ipcd_fdtab_set(fd, s, (type & SOCK_CLOEXEC) != 0);
	return fd;
}

void ipcd_sock_to_kernel(int fd)
{
	struct ipcd_sock *t = ipcd_fdtab_take(fd);

	if (t)
		ipcd_sock_put(t);
}

static void note_fallback(const uint8_t addr[16], uint16_t port, uint16_t reason)
{
	struct ipcd_req req = { .opcode = IPCD_OP_FALLBACK };
	struct ipcd_fallback_req *fb = (void *)req.body;

	req.len = sizeof(*fb);
	memcpy(fb->addr, addr, 16);
	fb->port = port;
	fb->reason = reason;
	ipcd_mon_post(&req);
}

/* Buffering the application asked for, as the kernel doubles it. */
static uint32_t ring_hint(const struct ipcd_sock *s)
{
	uint64_t b = (uint64_t)IPCD_MAX(s->sndbuf, s->rcvbuf) * 2;

	return b > (1u << 30) ? 1u << 30 : (uint32_t)b;
}

/* ---- bind, listen ---------------------------------------------------------- */

/* Lanes while this process is the only one that may accept on @s. */
static uint32_t listen_flags(const struct ipcd_sock *s)
{
	return !s->forked && ipcd_lanes_enabled() ? IPCD_LISTEN_LANES : 0;
}

/*
 * May this process bind @port (the config's bind_rules, which the kernel
 * does not know)? Asked before a bind() to an explicit port reaches the
 * kernel: false only when the monitor says no (IPCD_BIND_PROBE).
 */
static bool bind_allowed(uint16_t port)
{
	struct ipcd_req req = { .opcode = IPCD_OP_BIND };
	struct ipcd_bind_req *br = (void *)req.body;
	struct ipcd_resp resp;

	if (!ipcd_state_attach_quiet())
		return true;
	req.len = sizeof(*br);
	br->port = port;
	br->flags = IPCD_BIND_PROBE;
	return ipcd_mon_call(&req, &resp, NULL, NULL) || resp.status != -EACCES;
}

int ipcd_sock_bind(struct ipcd_sock *s, int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
	uint8_t a[16];
	uint16_t port;
	int rc;

	if (s->state != IPCD_SK_FRESH)
		return fail(EINVAL);
	if (s->domain != AF_UNIX && ipcd_addr_from(addr.__sockaddr__, len, a, &port) && port &&
	    !bind_allowed(port))
		return fail(EACCES);	/* as the kernel refuses a port below 1024 */
	rc = ipcd_real.bind(fd, addr, len);
	if (rc == 0) {
		s->bound = true;
		if (s->domain == AF_UNIX)
			ipcd_unix_bound(s, fd);	/* errno is not the application's after success */
	}
	return rc;
}

/*
 * A FRESH socket's FD_CLOEXEC is the kernel's (F_SETFD, FIOCLEX went
 * there); the fd is about to become one of ours, close-on-exec at the
 * kernel level: the table keeps the application's flag from now on.
 */
static void keep_cloexec(int fd)
{
	int f = ipcd_real.fcntl(fd, F_GETFD);

	if (f >= 0)
		ipcd_fdtab_set_cloexec(fd, (f & FD_CLOEXEC) != 0);
}

/* Turn @fd into epoll{kernel listener, accept eventfd}; the listener moves to a hidden fd. */
static int make_listener(struct ipcd_sock *s, int fd, int lfd)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int kfd, ep, err;

	kfd = ipcd_real.fcntl(fd, F_DUPFD_CLOEXEC, (void *)0);
	if (kfd < 0)
		return -errno;
	ep = ipcd_real.epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		goto err;
	ev.data.u32 = 0;
	if (ipcd_real.epoll_ctl(ep, EPOLL_CTL_ADD, kfd, &ev) < 0)
		goto err_ep;
	ev.data.u32 = 1;
	if (ipcd_real.epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
		goto err_ep;
	/* The kernel listener never blocks us: accept() waits on the epoll fd. */
	if (ipcd_real.ioctl(kfd, FIONBIO, &(int){ 1 }) < 0)
		goto err_ep;
	keep_cloexec(fd);
	if (ipcd_real.dup3(ep, fd, O_CLOEXEC) < 0)
		goto err_ep;
	ipcd_real.close(ep);
	s->kfd = kfd;
	s->lfd = lfd;
	ipcd_fd_hide(kfd, true);
	ipcd_fd_hide(lfd, true);
	return 0;
err_ep:
	err = errno;
	ipcd_real.close(ep);
	ipcd_real.close(kfd);
	return -err;
err:
	err = errno;
	ipcd_real.close(kfd);
	return -err;
}

int ipcd_sock_listen(struct ipcd_sock *s, int fd, int n)
{
	struct ipcd_req req = { 0 };
	struct ipcd_resp resp;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	uint8_t addr[16];
	uint16_t port;
	int fds[IPCD_CTL_CONN_NFDS];
	int rc;

	if (s->state == IPCD_SK_LISTEN) {
		/* A new backlog: the kernel's and the monitor's. */
		struct ipcd_listen_req *lr = (void *)req.body;

		rc = ipcd_real.listen(s->kfd, n);
		if (rc)
			return rc;
		req.opcode = IPCD_OP_LISTEN;
		req.len = ipcd_listen_req_len();
		lr->id = s->bind_id;
		lr->backlog = n < 0 ? 0 : (uint32_t)n;
		lr->ring_bytes = ring_hint(s);
		lr->flags = listen_flags(s);
		lr->kfd = s->kfd;
		s->backlog = n;
		ipcd_mon_call(&req, &resp, NULL, NULL);
		return 0;
	}
	if (s->state != IPCD_SK_FRESH)
		return fail(EINVAL);
	if (s->domain == AF_UNIX)
		return ipcd_unix_listen(s, fd, n);
	rc = ipcd_real.listen(fd, n);
	if (rc)
		return rc;
	/* Mirror the kernel's binding (the port it chose for 0) in the monitor. */
	if (ipcd_real.getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    !ipcd_addr_from((struct sockaddr *)&ss, sl, addr, &port))
		return 0;
	{
		struct ipcd_bind_req *br = (void *)req.body;
		int v = 0;
		socklen_t vl = sizeof(v);

		req.opcode = IPCD_OP_BIND;
		req.len = sizeof(*br);
		memcpy(br->addr, addr, 16);
		br->port = port;
		if (ipcd_real.getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &v, &vl) == 0 && v)
			br->flags |= IPCD_BIND_REUSEADDR;
		vl = sizeof(v);
		if (ipcd_real.getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &v, &vl) == 0 && v)
			br->flags |= IPCD_BIND_REUSEPORT;
		vl = sizeof(v);
		if (s->domain == AF_INET6 &&
		    ipcd_real.getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &vl) == 0 && v)
			br->flags |= IPCD_BIND_V6ONLY;
		if (ipcd_mon_call(&req, &resp, NULL, NULL) || resp.status)
			goto kernel_only;
		memcpy(&s->bind_id, resp.body, sizeof(s->bind_id));
	}
	{
		struct ipcd_listen_req *lr = (void *)req.body;

		memset(&req, 0, sizeof(req));
		req.opcode = IPCD_OP_LISTEN;
		req.len = ipcd_listen_req_len();
		lr->id = s->bind_id;
		lr->backlog = n < 0 ? 0 : (uint32_t)n;
		lr->ring_bytes = ring_hint(s);
		lr->flags = listen_flags(s);
		lr->kfd = fd;	/* the monitor keeps a copy: the port stays held in the kernel */
		s->backlog = n;
		if (ipcd_mon_call(&req, &resp, fds, &s->accept_token) || resp.status || fds[0] < 0)
			goto unbind;
	}
	rc = make_listener(s, fd, fds[0]);
	if (rc) {
		ipcd_real.close(fds[0]);
		goto unbind;
	}
	memcpy(s->self_addr, addr, 16);
	s->self_port = port;
	s->accept_spin.ns = (uint32_t)IPCD_MIN(ipcd_spin_ns, (uint64_t)UINT32_MAX);
	s->state = IPCD_SK_LISTEN;
	ipcd_ep_sock_changed(s, fd);	/* the fd is now an epoll fd: registrations follow */
	return 0;

unbind:
	memset(&req, 0, sizeof(req));
	req.opcode = IPCD_OP_UNBIND;
	req.len = sizeof(struct ipcd_unbind_req);
	memcpy(req.body, &s->bind_id, sizeof(s->bind_id));
	ipcd_mon_post(&req);
kernel_only:
	/* Still a working kernel listener: only accelerated peers are lost. */
	ipcd_sock_to_kernel(fd);
	return 0;
}

/* ---- accept ---------------------------------------------------------------- */

/* Wrap an accepted or connected end in a socket at fd @fd. */
static void conn_init(struct ipcd_sock *s, const struct ipcd_sock *parent)
{
	s->state = IPCD_SK_CONN;
	s->mon_id = ipcd_state_monitor_id();
	s->rx_spin.ns = s->tx_spin.ns = (uint32_t)IPCD_MIN(ipcd_spin_ns, (uint64_t)UINT32_MAX);
	/*
	 * An event loop registers a new connection with epoll before it ever
	 * calls recv: announce the eventfd sleeper now, so the first data
	 * wakes it (data.c keeps this up after every EAGAIN).
	 */
	ipcd_doorbell_arm_bits(&s->conn.rx.shm->cons_wait, IPCD_DB_EVENT);
	if (parent) {
		s->rcvtimeo_ns = parent->rcvtimeo_ns;
		s->sndtimeo_ns = parent->sndtimeo_ns;
		s->sndbuf = parent->sndbuf;
		s->rcvbuf = parent->rcvbuf;
		s->linger = parent->linger;
		s->nopts = parent->nopts;
		memcpy(s->opts, parent->opts, sizeof(s->opts));
	}
}

void ipcd_sock_conn_ready(struct ipcd_sock *s)
{
	conn_init(s, NULL);
}

/* Is kernel fd @fd readable now? One syscall, no sleep; an error counts as yes. */
static bool fd_ready(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return ipcd_real.poll(&p, 1, 0) != 0;
}

/*
 * The monitor cannot serve this process's accepts on @l (it is gone, or it
 * does not know the listener or our token: another monitor, a lost bind):
 * its backlog's eventfd leaves this process's listening epoll set, which
 * would otherwise stay readable for connections we can never take (a busy
 * loop in the application's event loop). The kernel listener and lanes
 * stay.
 */
static void accel_off(struct ipcd_sock *l, int lfd_app, int err)
{
	char line[160];

	if (atomic_exchange(&l->accel_off, true))
		return;
	if (!l->forked) {
		(void)ipcd_real.epoll_ctl(lfd_app, EPOLL_CTL_DEL, l->lfd, NULL);
	} else {
		/*
		 * After fork or exec the epoll fd is one open file for every
		 * process holding the listener, whose monitor may serve them:
		 * this process alone gets its own, with the kernel listener.
		 */
		struct epoll_event ev = { .events = EPOLLIN };
		int ep = ipcd_real.epoll_create1(EPOLL_CLOEXEC);

		if (ep >= 0 && ipcd_real.epoll_ctl(ep, EPOLL_CTL_ADD, l->kfd, &ev) == 0) {
			ipcd_ep_sock_kernel_del(l, lfd_app);
			if (ipcd_real.dup3(ep, lfd_app, O_CLOEXEC) == 0)
				ipcd_ep_sock_changed(l, lfd_app);
		}
		if (ep >= 0)
			ipcd_real.close(ep);
	}
	snprintf(line, sizeof(line),
		 "ipcd: accept on listener %u: the monitor cannot serve it (%s): "
		 "kernel connections only\n", l->bind_id, strerror(-err));
	ipcd_log_raw(line);
}

/*
 * One accelerated connection for listener @l (application fd @lfd_app, its
 * epoll set): from a lane, else from the monitor's backlog. Its fd, or
 * -errno.
 */
static int accept_accel(struct ipcd_sock *l, int lfd_app, struct sockaddr *addr,
			socklen_t *addrlen, int flags)
{
	struct ipcd_req req = { .opcode = IPCD_OP_ACCEPT };
	struct ipcd_accept_req *ar = (void *)req.body;
	struct ipcd_mon_lane ml;
	struct ipcd_conn_resp cr = { 0 };
	struct ipcd_resp resp;
	struct ipcd_sock *s;
	uint64_t size = 0, kit_id = 0, kit_tag = 0;
	int fds[IPCD_CTL_CONN_NFDS];
	bool lane;
	int rc, fd;

	lane = ipcd_lane_accept(l, fds, &size, &kit_id, &kit_tag) == 0;
	if (!lane) {
		/* The monitor's backlog: its accept eventfd says exactly when it has some. */
		if (atomic_load(&l->accel_off))
			return -ENOTCONN;
		if (!fd_ready(l->lfd))
			return -EAGAIN;		/* no round trip to hear it */
		req.len = sizeof(*ar);
		ar->id = l->bind_id;
		ar->token = l->accept_token;	/* what lets a forked worker accept */
		rc = ipcd_mon_call_lane(&req, &resp, fds, &size, &ml);
		if (rc == -ETIMEDOUT)
			return -EAGAIN;	/* a slow monitor, still ours: the next accept asks again */
		if (rc || resp.status == -ENOENT || resp.status == -EPERM) {
			/* Not the app's error: the kernel side still works. */
			accel_off(l, lfd_app, rc ? rc : resp.status);
			return -ENOTCONN;
		}
		if (resp.status)
			return resp.status == -EAGAIN ? -EAGAIN : -ENOTCONN;
		memcpy(&cr, resp.body, sizeof(cr));
		ipcd_lanes_adopt_listener(l, lfd_app, &ml);
	}
	s = ipcd_sock_new(l->domain, flags & SOCK_NONBLOCK ? SOCK_NONBLOCK : 0);
	if (!s) {
		rc = -ENOMEM;
		goto err_fds;
	}
	/* A kit's mapping may be one we kept (attach.c): the region must carry its id. */
	rc = ipcd_conn_open_id(fds, size, true, lane ? kit_id : 0, &s->conn);
	if (rc) {
		atomic_store(&s->refs, 1);
		ipcd_sock_put(s);
		return rc == -EPROTO ? -ECONNABORTED : rc;
	}
	if (lane && kit_tag && ipcd_load_relaxed(&s->conn.ctl->kit_tag) != kit_tag) {
		/*
		 * The connector rewrote the kit's id: it names a connection that
		 * is not this kit. Nothing may reach the monitor in that name:
		 * unmapped, untold, as a connection aborted before accept.
		 */
		ipcd_conn_release(&s->conn);
		atomic_store(&s->refs, 1);
		ipcd_sock_put(s);
		return -ECONNABORTED;
	}
	if (s->conn.ctl->remote_host && ipcd_remote_attach(&s->conn)) {
		/*
		 * No engine here for a connection from another host: as a reset
		 * before accept. The reset bit makes our monitor reset the
		 * connector's end (monitor/conns.c remote_local_done).
		 */
		uint64_t id = s->conn.conn_id;

		ipcd_fetch_or(&s->conn.ctl->reset, IPCD_CONN_RESET_B);
		ipcd_conn_close(&s->conn);
		ipcd_mon_post_close(id, IPCD_CLOSE_B);
		atomic_store(&s->refs, 1);
		ipcd_sock_put(s);
		return -ECONNABORTED;
	}
	fd = s->conn.wake_self;
	s->conn.wake_self = -1;
	if (fd >= IPCD_FDTAB_MAX) {
		/* Cannot be in the table: close it; the peer sees a reset-free EOF. */
		ipcd_real.close(fd);
		atomic_store(&s->refs, 1);
		s->state = IPCD_SK_CONN;
		ipcd_sock_put(s);
		return -EMFILE;
	}
	conn_init(s, l);
	memcpy(s->self_addr, s->conn.ctl->b_addr, 16);
	s->self_port = s->conn.ctl->b_port;
	if (lane) {
		struct ipcd_req note = { .opcode = IPCD_OP_KIT_ACCEPTED };
		struct ipcd_kit_accepted_req *ka = (void *)note.body;

		/* As the monitor wrote it in the kit (the connector could change it). */
		memcpy(s->peer_addr, s->conn.ctl->a_addr, 16);
		s->peer_port = s->conn.ctl->a_port;
		note.len = sizeof(*ka);
		ka->conn_id = s->conn.conn_id;
		ipcd_mon_post_lazy(&note);
	} else {
		memcpy(s->peer_addr, cr.peer_addr, 16);
		s->peer_port = cr.peer_port;
	}
	ipcd_fdtab_set(fd, s, (flags & SOCK_CLOEXEC) != 0);
	ipcd_addr_to(l->domain, s->peer_addr, s->peer_port, addr, addr ? addrlen : NULL);
	return fd;

err_fds:
	for (rc = 0; rc < IPCD_CTL_CONN_NFDS; rc++)
		if (fds[rc] >= 0)
			ipcd_real.close(fds[rc]);
	return -ENOMEM;
}

/* One connection from the kernel listener (a peer that is not preloaded). */
static int accept_kernel(struct ipcd_sock *l, struct sockaddr *addr, socklen_t *addrlen,
			 int flags)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	uint8_t a[16];
	uint16_t port;
	int fd = ipcd_real.accept4(l->kfd, (struct sockaddr *)&ss, &sl, flags);

	if (fd < 0)
		return -errno;
	if (addr && addrlen) {
		memcpy(addr, &ss, IPCD_MIN(*addrlen, sl));
		*addrlen = sl;
	}
	atomic_store(&l->kernel_seen, true);
	if (ipcd_addr_from((struct sockaddr *)&ss, sl, a, &port))
		note_fallback(a, port, IPCD_FB_KERNEL_PEER);
	return fd;
}

/* Anything to accept on *@arg (a listening epoll set)? For ipcd_spin(). */
static bool listen_ready(void *arg)
{
	return fd_ready(*(int *)arg);
}

static int accept_common(struct ipcd_sock *s, int fd, struct sockaddr *addr, socklen_t *addrlen,
			 int flags)
{
	uint64_t deadline;

	if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC))
		return fail(EINVAL);
	if (s->state != IPCD_SK_LISTEN) {
		/* FRESH: not listening (EINVAL from the kernel); CONN: not a listener. */
		if (s->state == IPCD_SK_FRESH)
			return s->domain == AF_UNIX ? ipcd_unix_accept(s, fd, addr, addrlen, flags)
						    : ipcd_real.accept4(fd, addr, addrlen, flags);
		return fail(EINVAL);
	}
	deadline = ipcd_deadline(s->rcvtimeo_ns ? s->rcvtimeo_ns : -1);
	for (;;) {
		/*
		 * Accelerated first while only preloaded peers came (a kernel
		 * accept that finds nothing is a wasted syscall); once kernel
		 * peers come too, alternate so that neither starves the other.
		 */
		bool accel_first = !atomic_load(&s->kernel_seen) ||
				   (atomic_fetch_add(&s->accept_turn, 1) & 1);
		bool accel_usable = true;
		int i, rc = -EAGAIN;

		for (i = 0; i < 2 && (rc == -EAGAIN || rc == -ENOTCONN); i++) {
			if ((i == 0) == accel_first) {
				rc = accept_accel(s, fd, addr, addrlen, flags);
				accel_usable = rc != -ENOTCONN;
			} else {
				rc = accept_kernel(s, addr, addrlen, flags);
			}
		}
		if (rc >= 0)
			return rc;
		if (rc != -EAGAIN && rc != -EWOULDBLOCK && rc != -ENOTCONN)
			return fail(-rc);
		if (atomic_load(&s->nonblock))
			return fail(EAGAIN);
		{
			/*
			 * Sleep on the listening epoll fd (kernel and accelerated
			 * backlogs); on the kernel listener alone when this process
			 * cannot take from the accelerated one (no monitor), or its
			 * readiness would never let us sleep.
			 */
			struct pollfd p = { .fd = accel_usable ? fd : s->kfd, .events = POLLIN };
			int64_t left = ipcd_remaining(deadline);
			int n;

			if (left == 0)
				return fail(EAGAIN);
			/*
			 * A connector down a lane is often a few microseconds
			 * away: spin (adaptive) before the sleep and its wake-up.
			 */
			if (accel_usable && ipcd_spin(&s->accept_spin, listen_ready, &p.fd))
				continue;
			n = ipcd_real.poll(&p, 1, left < 0 ? -1 : (int)((left + 999999) / 1000000));
			if (n < 0 && errno == EINTR && (s->rcvtimeo_ns || !ipcd_restartable()))
				return -1;
		}
	}
}

int ipcd_sock_accept(struct ipcd_sock *s, int fd, __SOCKADDR_ARG addr, socklen_t *addrlen)
{
	return accept_common(s, fd, addr.__sockaddr__, addrlen, 0);
}

int ipcd_sock_accept4(struct ipcd_sock *s, int fd, __SOCKADDR_ARG addr, socklen_t *addrlen,
		      int flags)
{
	return accept_common(s, fd, addr.__sockaddr__, addrlen, flags);
}

/* ---- connect --------------------------------------------------------------- */

/*
 * @s's connection is open (s->conn): the application's fd @fd becomes this
 * end's eventfd (the kernel socket goes). 0, or -errno with s->conn closed.
 */
static int connected(struct ipcd_sock *s, int fd)
{
	int efd = s->conn.wake_self;

	keep_cloexec(fd);
	if (ipcd_real.dup3(efd, fd, O_CLOEXEC) < 0) {
		int err = errno;

		ipcd_conn_close(&s->conn);
		return -err;
	}
	ipcd_real.close(efd);
	s->conn.wake_self = -1;
	conn_init(s, NULL);
	ipcd_ep_sock_changed(s, fd);	/* registrations of the socket follow the fd */
	memcpy(s->self_addr, s->conn.ctl->a_addr, 16);
	s->self_port = s->conn.ctl->a_port;
	memcpy(s->peer_addr, s->conn.ctl->b_addr, 16);
	s->peer_port = s->conn.ctl->b_port;
	return 0;
}

int ipcd_sock_connect(struct ipcd_sock *s, int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
	struct ipcd_req req = { .opcode = IPCD_OP_CONNECT };
	struct ipcd_connect_req *cq = (void *)req.body;
	struct ipcd_mon_lane ml;
	struct ipcd_resp resp;
	uint64_t size = 0, kit_mon = 0;
	uint8_t dst[16];
	uint16_t port;
	int fds[IPCD_CTL_CONN_NFDS];
	uint16_t reason;
	int rc;

	/*
	 * Connected, or listening. After a nonblocking connect's EINPROGRESS
	 * the kernel answers the first repeat with success, then EISCONN.
	 */
	if (s->domain == AF_UNIX)
		return ipcd_unix_connect(s, fd, addr.__sockaddr__, len);
	if (s->state != IPCD_SK_FRESH) {
		if (s->state == IPCD_SK_CONN && atomic_exchange(&s->connect_pending, false))
			return 0;
		return fail(EISCONN);
	}
	if (!ipcd_addr_from(addr.__sockaddr__, len, dst, &port) ||
	    (s->domain == AF_INET && addr.__sockaddr__->sa_family != AF_INET) || port == 0) {
		ipcd_sock_to_kernel(fd);	/* AF_UNSPEC, bad addresses: the kernel's answer */
		return ipcd_real.connect(fd, addr, len);
	}
	/* Down a lane: kits have the listener's ring size, enough unless we asked for more. */
	if (!ring_hint(s) && ipcd_lane_connect(dst, port, &s->conn, &kit_mon) == 0) {
		if (connected(s, fd) == 0) {
			s->mon_id = kit_mon;	/* the kit's monitor, not ours now */
			goto done;
		}
		reason = IPCD_FB_ERROR;
		goto fallback;
	}
	req.len = sizeof(*cq);
	memcpy(cq->addr, dst, 16);
	cq->port = port;
	cq->ring_bytes = ring_hint(s);
	if (ipcd_remote_wanted(dst))
		cq->flags = IPCD_CONNECT_REMOTE;
	rc = ipcd_mon_call_lane(&req, &resp, fds, &size, &ml);
	if (rc) {
		ipcd_sock_to_kernel(fd);
		return ipcd_real.connect(fd, addr, len);
	}
	switch (resp.status) {
	case 0:
		break;
	case -ECONNREFUSED:
		reason = IPCD_FB_NO_LISTENER;
		goto fallback;
	case -EAGAIN:
		reason = IPCD_FB_BACKLOG_FULL;
		goto fallback;
	case -ENOBUFS:
	case -EMFILE:
	case -EDQUOT:
		rc = ipcd_limit_errno(resp.status);
		if (rc) {
			/* limit_action = error: refused as the kernel refuses, unconnected. */
			note_fallback(dst, port, IPCD_FB_LIMIT);
			ipcd_sock_to_kernel(fd);
			return fail(rc);
		}
		reason = IPCD_FB_LIMIT;
		goto fallback;
	default:
		reason = IPCD_FB_ERROR;
		goto fallback;
	}
	ipcd_lanes_adopt_connector(&ml, dst, port);
	rc = ipcd_conn_open(fds, size, false, &s->conn);
	if (!rc && s->conn.ctl->remote_host && ipcd_remote_attach(&s->conn)) {
		uint64_t id = s->conn.conn_id;

		ipcd_fetch_or(&s->conn.ctl->reset, IPCD_CONN_RESET_A);	/* the acceptor: a reset */
		ipcd_conn_close(&s->conn);
		ipcd_mon_post_close(id, IPCD_CLOSE_A);
		rc = -ENOTCONN;
	}
	if (rc || connected(s, fd)) {
		reason = IPCD_FB_ERROR;
		goto fallback;
	}
done:
	if (atomic_load(&s->nonblock)) {
		/* As the kernel answers a nonblocking connect, even to loopback. */
		atomic_store(&s->connect_pending, true);
		return fail(EINPROGRESS);
	}
	return 0;

fallback:
	note_fallback(dst, port, reason);
	ipcd_sock_to_kernel(fd);
	return ipcd_real.connect(fd, addr, len);
}

/* ---- close, shutdown ---------------------------------------------------------- */

IPCD_EXPORT int close(int fd)
{
	struct ipcd_sock *t;
	int rc;

	ipcd_init();
	if (unlikely(!ipcd_real.close))
		return ipcd_enosys();
	if (likely(!ipcd_fdtab_get(fd) && !ipcd_ep_is(fd)) || ipcd_inside) {
		if (unlikely(!ipcd_inside && ipcd_fd_hidden(fd)))
			return fail(EBADF);	/* ours, never the application's (attach.h) */
		return ipcd_real.close(fd);
	}
	t = ipcd_sock_get(fd);
	if (t) {
		/* Its last fd, and no call under way: ours and the fd's references. */
		if (atomic_load(&t->refs) == 2)
			(void)ipcd_sock_settle_on_close(t);
		ipcd_sock_put(t);
	}
	t = ipcd_fdtab_take(fd);
	if (t && t->state == IPCD_SK_CONN && t->ep_items) {
		if (atomic_load(&t->refs) == 1)
			ipcd_ep_sock_closing(t, fd);
		else
			ipcd_ep_sock_fd_leaving(t, fd);
	}
	rc = ipcd_real.close(fd);
	if (t)
		ipcd_sock_put(t);
	ipcd_ep_fd_gone(fd);
	return rc;
}

#define HIDDEN_MAX	16384u

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/*
 * close_range() around the library's own fds (struct ipcd_fdset): the
 * application closes everything it has in the range, not our connections'
 * wake eventfds, hold tokens or the monitor's socket. The kernel's answer
 * of the last piece (they only fail alike: EINVAL, ENOSYS).
 */
static int close_range_keep(unsigned int first, unsigned int last, int flags)
{
	struct ipcd_fdset h = { .max = HIDDEN_MAX };
	uint64_t lo = first;		/* past UINT_MAX once a hidden fd is the range's last */
	size_t i;
	int rc = 0;

	h.fds = malloc(HIDDEN_MAX * sizeof(*h.fds));
	if (!h.fds)
		return ipcd_real.close_range(first, last, flags);
	ipcd_hidden_fds(&h);
	qsort(h.fds, h.n, sizeof(*h.fds), cmp_int);
	for (i = 0; i < h.n && rc == 0; i++) {
		unsigned int fd = (unsigned int)h.fds[i];

		if (fd < lo || fd > last)
			continue;
		if (fd > lo)
			rc = ipcd_real.close_range((unsigned int)lo, fd - 1, flags);
		lo = (uint64_t)fd + 1;
	}
	if (rc == 0 && lo <= last)
		rc = ipcd_real.close_range((unsigned int)lo, last, flags);
	free(h.fds);
	return rc;
}

IPCD_EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	ipcd_init();
	if (unlikely(!ipcd_real.close_range))
		return ipcd_enosys();
	if (ipcd_inside || first > last)
		return ipcd_real.close_range(first, last, flags);
	if (!(flags & CLOSE_RANGE_CLOEXEC)) {
		ipcd_fdtab_drop_range(first, last);
		ipcd_ep_drop_range(first, last);
	}
	return close_range_keep(first, last, flags);
}

IPCD_EXPORT void closefrom(int lowfd)
{
	ipcd_init();
	if (!ipcd_inside && lowfd >= 0) {
		ipcd_fdtab_drop_range((unsigned int)lowfd, ~0u);
		ipcd_ep_drop_range((unsigned int)lowfd, ~0u);
		if (ipcd_real.close_range && close_range_keep((unsigned int)lowfd, ~0u, 0) == 0)
			return;
	}
	if (ipcd_real.closefrom)
		ipcd_real.closefrom(lowfd);
}

int ipcd_sock_shutdown(struct ipcd_sock *s, int fd, int how)
{
	if (s->state != IPCD_SK_CONN)
		return ipcd_real.shutdown(s->state == IPCD_SK_LISTEN ? s->kfd : fd, how);
	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
		return fail(EINVAL);
	if (how != SHUT_WR) {
		atomic_store(&s->shut_rd, true);
		/* AF_UNIX tells the peer: its sends fail with EPIPE from now on. */
		if (s->kind == IPCD_CONN_KIND_UNIX)
			ipcd_spsc_close_cons(&s->conn.rx);
		/* Wake our own sleepers: a blocked recv returns 0. */
		ipcd_eventfd_signal(fd);
		ipcd_futex_wake(&s->conn.rx.shm->cons_wait);
	}
	if (how != SHUT_RD && !atomic_exchange(&s->shut_wr, true))
		ipcd_spsc_close_prod(&s->conn.tx);	/* the peer reads EOF once drained */
	/*
	 * Its control data goes no further either; but not before the peer
	 * has the connection: its monitor may die first, and the connection
	 * then moves to this kernel one, whose peer must not see EOF before
	 * the bytes (ipcd_sock_settle applies the shutdown after them).
	 */
	if (s->kind == IPCD_CONN_KIND_UNIX &&
	    (s->conn.acceptor ||
	     (ipcd_load_acquire(&s->conn.ctl->opened) & IPCD_CONN_CLOSED_B)))
		(void)ipcd_real.shutdown(s->kfd, how);
	return 0;
}

/* ---- names ------------------------------------------------------------------ */

int ipcd_sock_getsockname(struct ipcd_sock *s, int fd, __SOCKADDR_ARG addr,
			  socklen_t *__restrict len)
{
	if (s->domain == AF_UNIX && s->state != IPCD_SK_LISTEN)
		return ipcd_unix_name(s, fd, false, addr.__sockaddr__, len);	/* unix.c */
	if (s->state == IPCD_SK_FRESH)
		return ipcd_real.getsockname(fd, addr, len);
	if (s->state == IPCD_SK_LISTEN)
		return ipcd_real.getsockname(s->kfd, addr, len);	/* the kernel's answer */
	if (!len)
		return fail(EFAULT);
	ipcd_addr_to(s->domain, s->self_addr, s->self_port, addr.__sockaddr__, len);
	return 0;
}

int ipcd_sock_getpeername(struct ipcd_sock *s, int fd, __SOCKADDR_ARG addr,
			  socklen_t *__restrict len)
{
	if (s->domain == AF_UNIX && s->state != IPCD_SK_LISTEN)
		return ipcd_unix_name(s, fd, true, addr.__sockaddr__, len);	/* unix.c */
	if (s->state == IPCD_SK_FRESH)
		return ipcd_real.getpeername(fd, addr, len);
	if (s->state == IPCD_SK_LISTEN)
		return fail(ENOTCONN);
	if (!len)
		return fail(EFAULT);
	ipcd_addr_to(s->domain, s->peer_addr, s->peer_port, addr.__sockaddr__, len);
	return 0;
}

/* ---- options ---------------------------------------------------------------- */

static int64_t tv_ns(const struct timeval *tv)
{
	if (tv->tv_sec < 0 || (tv->tv_sec == 0 && tv->tv_usec == 0))
		return 0;
	return (int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000;
}

static void remember_opt(struct ipcd_sock *s, int level, int name, int val)
{
	unsigned int i;

	for (i = 0; i < s->nopts; i++)
		if (s->opts[i].level == level && s->opts[i].name == name)
			break;
	if (i == s->nopts) {
		if (s->nopts == IPCD_SOCK_OPTS)
			return;
		s->nopts++;
	}
	s->opts[i] = (struct ipcd_sockopt){ .level = level, .name = name, .val = val };
}

/* Options every state records (timeouts and buffers apply to our own paths). */
static int record_opt(struct ipcd_sock *s, int level, int name, const void *val, socklen_t len)
{
	if (level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO)) {
		struct timeval tv;

		if (!val || len < (socklen_t)sizeof(tv))
			return -EINVAL;
		memcpy(&tv, val, sizeof(tv));
		if (tv.tv_usec < 0 || tv.tv_usec >= 1000000)
			return -EDOM;
		if (name == SO_RCVTIMEO)
			s->rcvtimeo_ns = tv_ns(&tv);
		else
			s->sndtimeo_ns = tv_ns(&tv);
		return 0;
	}
	if (level == SOL_SOCKET && name == SO_LINGER) {
		if (!val || len < (socklen_t)sizeof(struct linger))
			return -EINVAL;
		memcpy(&s->linger, val, sizeof(s->linger));
		return 0;
	}
	if (!val || len < (socklen_t)sizeof(int))
		return -EINVAL;
	{
		int v;

		memcpy(&v, val, sizeof(v));
		if (level == SOL_SOCKET && name == SO_SNDBUF)
			s->sndbuf = v < 0 ? 0 : v;
		else if (level == SOL_SOCKET && name == SO_RCVBUF)
			s->rcvbuf = v < 0 ? 0 : v;
		remember_opt(s, level, name, v);
	}
	return 0;
}

int ipcd_sock_setsockopt(struct ipcd_sock *s, int fd, int level, int optname,
			 const void *optval, socklen_t optlen)
{
	int rc;

	if (s->state != IPCD_SK_CONN || s->kind == IPCD_CONN_KIND_UNIX) {
		/* A socketpair end: the kernel socket behind it checks and keeps them. */
		rc = ipcd_real.setsockopt(s->state != IPCD_SK_FRESH ? s->kfd : fd, level, optname,
					  optval, optlen);
		if (rc == 0)
			record_opt(s, level, optname, optval, optlen);
		if (rc == 0 && s->state == IPCD_SK_CONN && level == SOL_SOCKET &&
		    optname == SO_PASSCRED && optval && optlen >= (socklen_t)sizeof(int))
			ipcd_unix_passcred(s, *(const int *)optval != 0);	/* data.c */
		return rc;
	}
	if (level != SOL_SOCKET && level != IPPROTO_TCP && level != IPPROTO_IP &&
	    level != IPPROTO_IPV6)
		return fail(ENOPROTOOPT);
	rc = record_opt(s, level, optname, optval, optlen);
	return rc ? fail(-rc) : 0;
}

static int put_int(void *optval, socklen_t *optlen, int v)
{
	if (!optlen || !optval)
		return fail(EFAULT);
	if (*optlen < (socklen_t)sizeof(int))
		return fail(EINVAL);
	memcpy(optval, &v, sizeof(v));
	*optlen = sizeof(v);
	return 0;
}

static int put_tv(void *optval, socklen_t *optlen, int64_t ns)
{
	struct timeval tv = { .tv_sec = ns / 1000000000, .tv_usec = ns % 1000000000 / 1000 };

	if (!optlen || !optval)
		return fail(EFAULT);
	if (*optlen < (socklen_t)sizeof(tv))
		return fail(EINVAL);
	memcpy(optval, &tv, sizeof(tv));
	*optlen = sizeof(tv);
	return 0;
}

int ipcd_sock_getsockopt(struct ipcd_sock *s, int fd, int level, int optname,
			 void *__restrict optval, socklen_t *__restrict optlen)
{
	unsigned int i;

	if (s->state != IPCD_SK_CONN ||
	    (s->kind == IPCD_CONN_KIND_UNIX && !(level == SOL_SOCKET && optname == SO_ERROR)))
		return ipcd_real.getsockopt(s->state != IPCD_SK_FRESH ? s->kfd : fd, level, optname,
					    optval, optlen);
	if (level == SOL_SOCKET) {
		switch (optname) {
		case SO_ERROR: {
			uint32_t bit = s->conn.acceptor ? IPCD_CONN_RESET_A : IPCD_CONN_RESET_B;
			int err = 0;

			if ((ipcd_load_acquire(&s->conn.ctl->reset) & bit) &&
			    !atomic_exchange(&s->reset_told, true))
				err = ECONNRESET;
			else if (atomic_load(&s->rst_sent) && !atomic_exchange(&s->rst_told, true))
				err = EPIPE;
			return put_int(optval, optlen, err);
		}
		case SO_TYPE:
			return put_int(optval, optlen, SOCK_STREAM);
		case SO_DOMAIN:
			return put_int(optval, optlen, s->domain);
		case SO_PROTOCOL:
			return put_int(optval, optlen, IPPROTO_TCP);
		case SO_ACCEPTCONN:
			return put_int(optval, optlen, 0);
		case SO_SNDBUF:
			return put_int(optval, optlen, (int)s->conn.tx.capacity);
		case SO_RCVBUF:
			return put_int(optval, optlen, (int)s->conn.rx.capacity);
		case SO_RCVTIMEO:
			return put_tv(optval, optlen, s->rcvtimeo_ns);
		case SO_SNDTIMEO:
			return put_tv(optval, optlen, s->sndtimeo_ns);
		case SO_LINGER:
			if (!optlen || !optval)
				return fail(EFAULT);
			if (*optlen < (socklen_t)sizeof(struct linger))
				return fail(EINVAL);
			memcpy(optval, &s->linger, sizeof(s->linger));
			*optlen = sizeof(s->linger);
			return 0;
		}
	}
	for (i = 0; i < s->nopts; i++)
		if (s->opts[i].level == level && s->opts[i].name == optname)
			return put_int(optval, optlen, s->opts[i].val);
	if (level == SOL_SOCKET || level == IPPROTO_TCP)
		return put_int(optval, optlen, 0);	/* never set: off */
	return fail(ENOPROTOOPT);
}

/* ---- fcntl, ioctl, dup ---------------------------------------------------- */

/* A new fd naming @s (dup): the real dup keeps the kernel object shared. */
static int dup_into(struct ipcd_sock *s, int newfd, bool cloexec)
{
	if (newfd < 0)
		return newfd;
	if (newfd >= IPCD_FDTAB_MAX) {
		/* Beyond the table: the new fd would be an eventfd to the kernel. */
		ipcd_real.close(newfd);
		return fail(EMFILE);
	}
	if (s->state == IPCD_SK_FRESH) {
		/* dup of a plain kernel socket: the copy stays the kernel's. */
		return newfd;
	}
	ipcd_fdtab_set(newfd, s, cloexec);
	return newfd;
}

/* A duplicate of an epoll fd of ours (@nfd, from the real call) names its set too. */
static int ep_dup_into(int fd, int nfd)
{
	struct ipcd_ep *ep;

	if (nfd < 0 || !(ep = ipcd_ep_get(fd)))
		return nfd;
	ipcd_ep_dup(ep, nfd);
	ipcd_ep_put(ep);
	return nfd;
}

IPCD_EXPORT int dup(int fd)
{
	struct ipcd_sock *s;
	int nfd;

	ipcd_init();
	if (unlikely(!ipcd_real.dup))
		return ipcd_enosys();
	if (likely(!ipcd_fdtab_get(fd) && !ipcd_ep_is(fd)) || ipcd_inside)
		return ipcd_real.dup(fd);
	s = ipcd_sock_get(fd);
	if (!s)
		return ep_dup_into(fd, ipcd_real.dup(fd));
	nfd = s->state == IPCD_SK_FRESH ? ipcd_real.dup(fd)
					  : ipcd_real.fcntl(fd, F_DUPFD_CLOEXEC, (void *)0);
	nfd = dup_into(s, nfd, false);
	ipcd_sock_put(s);
	return nfd;
}

static int dup_to(int fd, int fd2, int flags, bool is_dup2)
{
	struct ipcd_sock *s = ipcd_inside ? NULL : ipcd_sock_get(fd), *old;
	int rc;

	if (!ipcd_inside && fd != fd2 && ipcd_fd_hidden(fd2))
		ipcd_fd_relocate(fd2);	/* ours moves out of the application's way */
	if (!s) {
		rc = is_dup2 ? ipcd_real.dup2(fd, fd2) : ipcd_real.dup3(fd, fd2, flags);
		if (rc < 0 || fd == fd2 || ipcd_inside)
			return rc;
		/* A kernel fd replaced an accelerated one: the table forgets it. */
		if (ipcd_fdtab_get(fd2) && (old = ipcd_fdtab_take(fd2)))
			ipcd_sock_put(old);
		if (fd2 <= 2)
			ipcd_stdio_give_back(fd2);
		ipcd_ep_fd_gone(fd2);
		return ep_dup_into(fd, rc);
	}
	if (fd == fd2 || (!is_dup2 && (flags & ~O_CLOEXEC))) {
		ipcd_sock_put(s);
		return is_dup2 ? fd2 : fail(EINVAL);
	}
	rc = ipcd_real.dup3(fd, fd2, s->state == IPCD_SK_FRESH ? flags : O_CLOEXEC);
	if (rc >= 0) {
		old = ipcd_fdtab_take(fd2);
		if (old)
			ipcd_sock_put(old);
		ipcd_ep_fd_gone(fd2);
		rc = dup_into(s, rc, (flags & O_CLOEXEC) != 0);
	}
	ipcd_sock_put(s);
	return rc;
}

IPCD_EXPORT int dup2(int fd, int fd2)
{
	ipcd_init();
	if (unlikely(!ipcd_real.dup2))
		return ipcd_enosys();
	return dup_to(fd, fd2, 0, true);
}

IPCD_EXPORT int dup3(int fd, int fd2, int flags)
{
	ipcd_init();
	if (unlikely(!ipcd_real.dup3))
		return ipcd_enosys();
	return dup_to(fd, fd2, flags, false);
}

static int sock_fcntl(struct ipcd_sock *s, int fd, int cmd, void *arg,
		      int (*real)(int, int, ...))
{
	long v = (long)arg;

	switch (cmd) {
	case F_GETFL:
		if (s->state == IPCD_SK_FRESH)
			return real(fd, cmd);
		return (s->kind != IPCD_CONN_KIND_PIPE ? O_RDWR : s->conn.acceptor ? O_RDONLY
												 : O_WRONLY) |
		       (atomic_load(&s->nonblock) ? O_NONBLOCK : 0);
	case F_GETPIPE_SZ:
	case F_SETPIPE_SZ:
		if (s->kind != IPCD_CONN_KIND_PIPE)
			return fail(EBADF);
		/*
		 * The ring (2 MiB: 1 MiB, /proc/sys/fs/pipe-max-size's
		 * default, with room for the records' headers) holds any size
		 * set: the size is what the pipe reports, rounded up to a
		 * power-of-two number of pages as the kernel does; more than
		 * half the ring is refused as beyond pipe-max-size.
		 */
		if (cmd == F_SETPIPE_SZ) {
			uint32_t cap = (s->conn.acceptor ? s->conn.rx.capacity
							 : s->conn.tx.capacity) / 2;
			uint32_t sz = 4096;

			if (v < 0)
				return fail(EINVAL);	/* 0: a page, as round_pipe_size() */
			if ((unsigned long)v > cap)
				return fail(EPERM);
			while (sz < (unsigned long)v)
				sz <<= 1;
			/* Smaller than what it holds now: the kernel refuses too. */
			if (ipcd_spsc_bytes_ready(s->conn.acceptor ? &s->conn.rx : &s->conn.tx) > sz)
				return fail(EBUSY);
			ipcd_store_relaxed(&s->conn.ctl->pipe_size, sz);
			return (int)sz;
		}
		v = ipcd_load_relaxed(&s->conn.ctl->pipe_size);
		return v ? (int)v : 65536;
	case F_SETFL:
		if (s->state == IPCD_SK_FRESH) {
			int rc = real(fd, cmd, v);

			if (rc == 0)
				atomic_store(&s->nonblock, (v & O_NONBLOCK) != 0);
			return rc;
		}
		atomic_store(&s->nonblock, (v & O_NONBLOCK) != 0);
		if (s->kind == IPCD_CONN_KIND_UNIX)	/* O_ASYNC and the rest: its kernel socket */
			(void)real(s->kfd, cmd, v & ~O_NONBLOCK);
		return 0;
	case F_GETFD:
		if (s->state == IPCD_SK_FRESH)
			return real(fd, cmd);
		return ipcd_fdtab_cloexec(fd) ? FD_CLOEXEC : 0;
	case F_SETFD:
		if (s->state == IPCD_SK_FRESH)
			return real(fd, cmd, v);
		ipcd_fdtab_set_cloexec(fd, (v & FD_CLOEXEC) != 0);
		return 0;
	case F_DUPFD:
	case F_DUPFD_CLOEXEC:
		if (s->state == IPCD_SK_FRESH)
			return real(fd, cmd, v);
		return dup_into(s, real(fd, F_DUPFD_CLOEXEC, v), cmd == F_DUPFD_CLOEXEC);
	case F_SETOWN:
	case F_GETOWN:
	case F_SETOWN_EX:
	case F_GETOWN_EX:
	case F_SETSIG:
	case F_GETSIG:
		/* Signal-driven I/O: what the kernel socket behind a socketpair end keeps. */
		return real(s->kind == IPCD_CONN_KIND_UNIX ? s->kfd : fd, cmd, arg);
	default:
		return real(fd, cmd, arg);
	}
}

#define IPCD_FCNTL(name)							\
	IPCD_EXPORT int name(int fd, int cmd, ...)				\
	{									\
		struct ipcd_sock *s;						\
		va_list ap;							\
		void *arg;							\
										\
		va_start(ap, cmd);						\
		arg = va_arg(ap, void *);					\
		va_end(ap);							\
		ipcd_init();							\
		if (unlikely(!ipcd_real.name))					\
			return ipcd_enosys();					\
		if (likely(!ipcd_fdtab_get(fd)) || ipcd_inside ||		\
		    !(s = ipcd_sock_get(fd))) {					\
			int r = ipcd_real.name(fd, cmd, arg);			\
										\
			if (unlikely(ipcd_ep_is(fd)) && !ipcd_inside &&		\
			    (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))		\
				r = ep_dup_into(fd, r);				\
			return r;						\
		}								\
		{								\
			int r = sock_fcntl(s, fd, cmd, arg, ipcd_real.name);	\
										\
			ipcd_sock_put(s);					\
			return r;						\
		}								\
	}
/*
 * fcntl's third argument is an int or a pointer depending on cmd; like
 * glibc's own fcntl64 we take it as void * unconditionally (same register /
 * stack slot on every Linux ABI, garbage when cmd takes none, which the
 * kernel ignores) and forward it.
 */
IPCD_FCNTL(fcntl)
IPCD_FCNTL(fcntl64)

static int sock_ioctl(struct ipcd_sock *s, int fd, unsigned long request, void *arg);

IPCD_EXPORT int ioctl(int fd, unsigned long request, ...)
{
	struct ipcd_sock *s;
	va_list ap;
	void *arg;
	int rc;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	ipcd_init();
	if (unlikely(!ipcd_real.ioctl))
		return ipcd_enosys();
	if (likely(!ipcd_fdtab_get(fd)) || ipcd_inside || !(s = ipcd_sock_get(fd)))
		return ipcd_real.ioctl(fd, request, arg);
	rc = sock_ioctl(s, fd, request, arg);
	ipcd_sock_put(s);
	return rc;
}

static int sock_ioctl(struct ipcd_sock *s, int fd, unsigned long request, void *arg)
{
	if (request == FIOCLEX || request == FIONCLEX) {
		/* As F_SETFD: ours are close-on-exec in the kernel, the table has the flag. */
		if (s->state == IPCD_SK_FRESH)
			return ipcd_real.ioctl(fd, request, arg);
		ipcd_fdtab_set_cloexec(fd, request == FIOCLEX);
		return 0;
	}
	if (request == FIONBIO) {
		int on;

		if (!arg)
			return fail(EFAULT);
		memcpy(&on, arg, sizeof(on));
		if (s->state == IPCD_SK_FRESH && ipcd_real.ioctl(fd, request, arg) < 0)
			return -1;
		atomic_store(&s->nonblock, on != 0);
		return 0;
	}
	if (s->kind == IPCD_CONN_KIND_PIPE) {
		int v;

		/* pipe_ioctl(): FIONREAD at either end (the bytes in the pipe), nothing else. */
		if (request != FIONREAD)
			return fail(ENOTTY);
		if (!arg)
			return fail(EFAULT);
		v = (int)IPCD_MIN(ipcd_spsc_bytes_ready(s->conn.acceptor ? &s->conn.rx
									: &s->conn.tx),
				  (uint64_t)INT32_MAX);
		memcpy(arg, &v, sizeof(v));
		return 0;
	}
	if (s->state == IPCD_SK_CONN && (request == FIONREAD || request == TIOCOUTQ ||
					 request == SIOCATMARK)) {
		int v = 0;

		if (!arg)
			return fail(EFAULT);
		if (request == FIONREAD)
			v = (int)IPCD_MIN(ipcd_spsc_bytes_ready(&s->conn.rx), (uint64_t)INT32_MAX);
		else if (request == TIOCOUTQ)
			v = (int)IPCD_MIN(ipcd_spsc_bytes_ready(&s->conn.tx), (uint64_t)INT32_MAX);
		memcpy(arg, &v, sizeof(v));
		return 0;
	}
	/* A listener's or a socketpair end's kernel socket answers the rest (FIOASYNC...). */
	return ipcd_real.ioctl(s->state == IPCD_SK_LISTEN || s->kind == IPCD_CONN_KIND_UNIX ?
			       s->kfd : fd, request, arg);
}
